"""Skeleton rigs: COCO's 17-point person rig, and how left and right keypoints pair up in any rig.

Keypoints are always matched by name; the order here is only COCO's own, used where a format lists points by
position (COCO's `keypoints` arrays).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

#: COCO's person keypoints, in COCO's order.
COCO_PERSON_KEYPOINTS: Final = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

#: COCO's 19 skeleton edges (its 1-based index pairs, by name).
COCO_PERSON_SKELETON: Final = tuple(
    (COCO_PERSON_KEYPOINTS[a - 1], COCO_PERSON_KEYPOINTS[b - 1])
    for a, b in (
        (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
        (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
    )
)  # fmt: skip

#: COCO's per-keypoint OKS sigmas.
COCO_PERSON_SIGMAS: Final = dict(
    zip(
        COCO_PERSON_KEYPOINTS,
        (0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087,
         0.089, 0.089),
        strict=True,
    )
)  # fmt: skip

#: Colours that tell the sides apart at a glance: left warm, right cool, centre grey.
LEFT_COLOR: Final = (230, 85, 13)
RIGHT_COLOR: Final = (49, 130, 189)
CENTER_COLOR: Final = (150, 150, 150)

_SIDES = (
    re.compile(r"^(?P<side>left|right)(?P<sep>[_\- ]?)(?P<part>.+)$", re.IGNORECASE),
    re.compile(r"^(?P<part>.+?)(?P<sep>[_\- ]?)(?P<side>left|right)$", re.IGNORECASE),
    re.compile(r"^(?P<side>[lr])(?P<sep>[_\-])(?P<part>.+)$", re.IGNORECASE),
    re.compile(r"^(?P<part>.+?)(?P<sep>[_\-])(?P<side>[lr])$", re.IGNORECASE),
)


def side_of(name: str) -> tuple[str, str] | None:
    """("left" or "right", the body part) for a sided keypoint name such as `left_knee`, `knee_r` or `RightEye`."""
    for pattern in _SIDES:
        m = pattern.match(name)
        if m:
            side = m.group("side").lower()
            return ("left" if side in ("left", "l") else "right"), m.group("part").lower().strip("_- ")
    return None


def mirror_pairs(names: Iterable[str]) -> list[tuple[str, str]]:
    """(left, right) keypoint name pairs of a rig, matched by body part; unpaired names are left out."""
    sides: dict[str, dict[str, str]] = {}
    for name in names:
        found = side_of(name)
        if found:
            sides.setdefault(found[1], {})[found[0]] = name
    return [(p["left"], p["right"]) for p in sides.values() if "left" in p and "right" in p]


def side_color(name: str) -> tuple[int, int, int]:
    found = side_of(name)
    if found is None:
        return CENTER_COLOR
    return LEFT_COLOR if found[0] == "left" else RIGHT_COLOR
