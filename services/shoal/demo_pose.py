"""A synthetic pose set with COCO's person rig: people of random size, place and facing, with planted left-right
swaps. The demo and the tests use it; the planted swaps are the answer the keypoint checks must find."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shoal import rigs

#: A person facing the camera, in a box one unit tall: their left side is on the image's right.
TEMPLATE: dict[str, tuple[float, float]] = {
    "nose": (0.0, 0.08), "left_eye": (0.03, 0.06), "right_eye": (-0.03, 0.06), "left_ear": (0.06, 0.07),
    "right_ear": (-0.06, 0.07), "left_shoulder": (0.15, 0.22), "right_shoulder": (-0.15, 0.22),
    "left_elbow": (0.2, 0.38), "right_elbow": (-0.2, 0.38), "left_wrist": (0.22, 0.52), "right_wrist": (-0.22, 0.52),
    "left_hip": (0.1, 0.55), "right_hip": (-0.1, 0.55), "left_knee": (0.11, 0.75), "right_knee": (-0.11, 0.75),
    "left_ankle": (0.11, 0.95), "right_ankle": (-0.11, 0.95),
}  # fmt: skip

IMAGE_SIZE = (640, 480)


@dataclass
class Person:
    frame_id: str
    label_id: str
    points: dict[str, tuple[float, float]]
    box: tuple[float, float, float, float]  # left, top, width, height


@dataclass
class PoseSet:
    people: list[Person]
    swapped: dict[str, tuple[str, str]] = field(default_factory=dict)  # label id → the pair planted swapped

    def image_url(self, frame_id: str) -> str:
        return f"s3://pose-images/{frame_id}.jpg"


def pose_set(count: int, *, swaps: int = 0, seed: int = 5) -> PoseSet:
    """`count` people, one per frame; `swaps` of them with one left-right pair swapped."""
    rng = np.random.default_rng(seed)
    pairs = rigs.mirror_pairs(rigs.COCO_PERSON_KEYPOINTS)
    names = list(rigs.COCO_PERSON_KEYPOINTS)
    template = np.array([TEMPLATE[n] for n in names])
    people: list[Person] = []
    for i in range(count):
        height = rng.uniform(150, 400)
        facing = 1.0 if rng.random() < 0.7 else -1.0  # seen from the front or from behind
        angle = rng.normal(0, 0.12)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        pts = (template * [facing, 1.0]) @ rot.T * height
        pts += rng.normal(0, 0.003 * height, size=pts.shape)
        origin = np.array([rng.uniform(0.3 * height, IMAGE_SIZE[0] - 0.3 * height), rng.uniform(5, 60)])
        pts += origin
        pts = np.clip(pts, 0, [IMAGE_SIZE[0] - 1, IMAGE_SIZE[1] - 1])
        low, high = pts.min(axis=0) - 0.03 * height, pts.max(axis=0) + 0.03 * height
        frame_id = f"pose-{i:04d}"
        people.append(
            Person(
                frame_id,
                f"{frame_id}-person",
                {n: (round(float(x), 1), round(float(y), 1)) for n, (x, y) in zip(names, pts, strict=True)},
                (float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1])),
            )
        )
    out = PoseSet(people)
    for person in (people[int(j)] for j in rng.choice(count, size=swaps, replace=False)):
        left, right = pairs[int(rng.integers(len(pairs)))]
        person.points[left], person.points[right] = person.points[right], person.points[left]
        out.swapped[person.label_id] = (left, right)
    return out
