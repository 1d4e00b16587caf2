"""Demo data with real pixels: images of drawn shapes whose boxes, classes and metadata match what is drawn, and a
simulated model's predictions on them with a few planted mistakes."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

import shoal

CLASSES = ["circle", "square", "triangle"]
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
            box = (left, top, left + size, top + size)
            if cls == "circle":
                pen.ellipse(box, fill=_COLORS[color])
            elif cls == "square":
                pen.rectangle(box, fill=_COLORS[color])
            else:
                pen.polygon(
                    [(left + size / 2, top), (left + size, top + size), (left, top + size)], fill=_COLORS[color]
                )
            frame.shapes.append(Shape(f"{frame.frame_id}-{s}", cls, color, left, top, size))
        image.save(frame.path)
        frames.append(frame)
    return frames


def labeled_dataset(frames: list[DemoFrame]) -> shoal.LabeledDataset:
    dataset = shoal.LabeledDataset()
    for f in frames:
        frame = shoal.LabeledFrame(frame_id=f.frame_id, device_id="shape-painter")
        frame.add_image(sensor_id="camera", image_url=f.path.resolve().as_uri(), width=WIDTH, height=HEIGHT)
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
            if n % 10 == 7 and k == 0:
                jitter = 25
                planted.loose_box.append(s.label_id)
            dx, dy = rng.randint(-jitter, jitter), rng.randint(-jitter, jitter)
            frame.add_inference_2d_bbox(
                sensor_id="camera", label_id=f"pred-{s.label_id}", classification=cls, confidence=round(conf, 3),
                left=max(0, s.left + dx), top=max(0, s.top + dy), width=s.size + abs(dx), height=s.size + abs(dy),
            )  # fmt: skip
        if n % 10 == 9:
            frame.add_inference_2d_bbox(
                sensor_id="camera", label_id=f"pred-{f.frame_id}-ghost", classification="circle", confidence=0.9,
                left=5, top=5, width=40, height=40,
            )  # fmt: skip
            planted.false_positive.append(f"pred-{f.frame_id}-ghost")
        frame.add_custom_metric("latency_ms", round(rng.uniform(8, 20), 2))
        inferences.add_frame(frame)
    return inferences, planted
