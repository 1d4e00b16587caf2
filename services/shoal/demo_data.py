"""Demo data with real pixels: images of drawn shapes whose boxes, classes and metadata match what is drawn, and a
simulated model's predictions on them with a few planted mistakes."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import shoal

CLASSES = ["circle", "square", "triangle"]
BACKGROUND = len(CLASSES)  # the mask value of pixels no shape covers: the class map's "background"
WIDTH, HEIGHT = 320, 240
_COLORS = {"red": (220, 40, 40), "green": (40, 180, 70), "blue": (40, 90, 220), "yellow": (230, 200, 40)}


@dataclass
class Shape:
    label_id: str
    cls: str
    color: str
    left: int
    top: int
    size: int


@dataclass
class DemoFrame:
    frame_id: str
    path: Path
    background: str
    shapes: list[Shape] = field(default_factory=list)


@dataclass
class Planted:
    """The mistakes the simulated model makes, for the demo to point at."""

    missed: list[str] = field(default_factory=list)
    wrong_class: list[str] = field(default_factory=list)
    loose_box: list[str] = field(default_factory=list)
    false_positive: list[str] = field(default_factory=list)


def _paint(pen: ImageDraw.ImageDraw, s: Shape, fill: int | tuple[int, int, int]) -> None:
    box = (s.left, s.top, s.left + s.size, s.top + s.size)
    if s.cls == "circle":
        pen.ellipse(box, fill=fill)
    elif s.cls == "square":
        pen.rectangle(box, fill=fill)
    else:
        pen.polygon(
            [(s.left + s.size / 2, s.top), (s.left + s.size, s.top + s.size), (s.left, s.top + s.size)], fill=fill
        )


def draw_frames(folder: Path, count: int, seed: int = 7) -> list[DemoFrame]:
    """Draw `count` PNG images of 1–4 non-overlapping shapes each."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for i in range(count):
        background = rng.choice(["light", "dark"])
        image = Image.new("RGB", (WIDTH, HEIGHT), (235, 235, 235) if background == "light" else (30, 30, 40))
        pen = ImageDraw.Draw(image)
        frame = DemoFrame(f"shapes-{i:04d}", folder / f"shapes-{i:04d}.png", background)
        for s in range(rng.randint(1, 4)):
            size = rng.randint(30, 70)
            for _ in range(50):  # place it where it overlaps nothing drawn yet
                left, top = rng.randint(0, WIDTH - size), rng.randint(0, HEIGHT - size)
                if all(
                    left + size < o.left or o.left + o.size < left or top + size < o.top or o.top + o.size < top
                    for o in frame.shapes
                ):
                    break
            else:
                continue
            cls, color = rng.choice(CLASSES), rng.choice(list(_COLORS))
            shape = Shape(f"{frame.frame_id}-{s}", cls, color, left, top, size)
            _paint(pen, shape, _COLORS[color])
            frame.shapes.append(shape)
        image.save(frame.path)
        frames.append(frame)
    return frames


def class_mask(frame: DemoFrame) -> np.ndarray:
    """The frame's semantic mask: each pixel the class id of the shape drawn there, BACKGROUND elsewhere."""
    image = Image.new("L", (WIDTH, HEIGHT), BACKGROUND)
    pen = ImageDraw.Draw(image)
    for s in frame.shapes:
        _paint(pen, s, CLASSES.index(s.cls))
    return np.asarray(image)


def write_scene_pcd(path: Path, points: int = 20_000, seed: int = 3) -> Path:
    """A binary PCD of a made-up lidar sweep: a ground plane and a box standing on it (x, y, z, intensity)."""
    rng = np.random.default_rng(seed)
    cloud = np.zeros(points, np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")]))
    ground = points * 3 // 4
    cloud["x"][:ground] = rng.uniform(-20, 20, ground)
    cloud["y"][:ground] = rng.uniform(-20, 20, ground)
    cloud["x"][ground:] = rng.uniform(4, 6, points - ground)
    cloud["y"][ground:] = rng.uniform(-1, 1, points - ground)
    cloud["z"][ground:] = rng.uniform(0, 1.5, points - ground)
    cloud["intensity"] = rng.uniform(0, 1, points)
    header = (
        "VERSION 0.7\nFIELDS x y z intensity\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 1\n"
        f"WIDTH {points}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {points}\nDATA binary\n"
    )
    path.write_bytes(header.encode() + cloud.tobytes())
    return path


def labeled_dataset(
    frames: list[DemoFrame], urls: dict[str, str] | None = None, *, lidar_url: str = ""
) -> shoal.LabeledDataset:
    """The frames with their boxes; `urls` maps image file names to asset URLs (else file URLs are used). The
    first frame also gets a semantic mask (uploaded from its array) and, with `lidar_url`, a point cloud."""
    dataset = shoal.LabeledDataset()
    for i, f in enumerate(frames):
        frame = shoal.LabeledFrame(frame_id=f.frame_id, device_id="shape-painter")
        url = (urls or {}).get(f.path.name) or f.path.resolve().as_uri()
        frame.add_image(sensor_id="camera", image_url=url, width=WIDTH, height=HEIGHT)
        if i == 0:
            frame.add_label_2d_semseg(sensor_id="camera", label_id=f"{f.frame_id}-semseg", mask_data=class_mask(f))
            if lidar_url:
                frame.add_point_cloud_pcd(sensor_id="lidar", pcd_url=lidar_url)
        frame.add_user_metadata("background", f.background)
        frame.add_user_metadata("shape_count", len(f.shapes))
        frame.add_user_metadata_list("colors", sorted({s.color for s in f.shapes}) or ["none"])
        for s in f.shapes:
            frame.add_label_2d_bbox(
                sensor_id="camera", label_id=s.label_id, classification=s.cls,
                left=s.left, top=s.top, width=s.size, height=s.size, user_attrs={"color": s.color},
            )  # fmt: skip
        dataset.add_frame(frame)
    return dataset


def model_inferences(frames: list[DemoFrame], seed: int = 11) -> tuple[shoal.Inferences, Planted]:
    """Predictions close to the truth, except for one planted mistake of each kind every ten frames."""
    rng = random.Random(seed)
    inferences, planted = shoal.Inferences(), Planted()
    for n, f in enumerate(frames):
        frame = shoal.InferencesFrame(frame_id=f.frame_id)
        for k, s in enumerate(f.shapes):
            cls, jitter, conf = s.cls, 2, rng.uniform(0.75, 0.99)
            if n % 10 == 3 and k == 0:
                planted.missed.append(s.label_id)
                continue
            if n % 10 == 5 and k == 0:
                cls = next(c for c in CLASSES if c != s.cls)
                planted.wrong_class.append(s.label_id)
            dx, dy = rng.randint(-jitter, jitter), rng.randint(-jitter, jitter)
            if n % 10 == 7 and k == 0:  # a quarter of the size off in both directions: IoU 0.3-0.65
                dx = dy = rng.choice([-1, 1]) * max(6, s.size // 4)
                planted.loose_box.append(s.label_id)
            frame.add_inference_2d_bbox(
                sensor_id="camera", label_id=f"pred-{s.label_id}", classification=cls, confidence=round(conf, 3),
                left=max(0, s.left + dx), top=max(0, s.top + dy), width=s.size + abs(dx), height=s.size + abs(dy),
            )  # fmt: skip
        if n % 10 == 9:
            # A confident prediction where nothing is drawn: the first corner no shape touches.
            corners = [(5, 5), (WIDTH - 45, 5), (5, HEIGHT - 45), (WIDTH - 45, HEIGHT - 45)]
            left, top = next(
                ((x, y) for x, y in corners if all(
                    x + 40 < o.left or o.left + o.size < x or y + 40 < o.top or o.top + o.size < y for o in f.shapes
                )),
                corners[0],
            )  # fmt: skip
            frame.add_inference_2d_bbox(
                sensor_id="camera", label_id=f"pred-{f.frame_id}-ghost", classification="circle", confidence=0.9,
                left=left, top=top, width=40, height=40,
            )  # fmt: skip
            planted.false_positive.append(f"pred-{f.frame_id}-ghost")
        frame.add_custom_metric("latency_ms", round(rng.uniform(8, 20), 2))
        inferences.add_frame(frame)
    return inferences, planted
