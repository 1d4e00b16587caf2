"""The keypoint rules on synthetic people, without the service: swapped pairs, and lone points on the wrong side of
the body — found where planted, silent on people seen from behind, tilted, or in profile."""

from __future__ import annotations

import numpy as np
import pytest
from shoal import rigs
from shoal.demo_pose import TEMPLATE, pose_set
from shoal.metrics import keypoints

RIG = keypoints.Rig("person", list(rigs.COCO_PERSON_KEYPOINTS), list(rigs.COCO_PERSON_SKELETON))
PAIRS = rigs.mirror_pairs(rigs.COCO_PERSON_KEYPOINTS)


def crowd(count: int = 300, *, drop: float = 0.0, seed: int = 3) -> list[keypoints.Instance]:
    """Correctly labeled people (a third seen from behind); a share `drop` of points not labeled."""
    rng = np.random.default_rng(seed)
    out = []
    for p in pose_set(count, seed=seed).people:
        points = {n: xy for n, xy in p.points.items() if rng.random() >= drop}
        out.append(keypoints.Instance(p.frame_id, p.label_id, points, p.box, (640.0, 480.0)))
    return out


def person(
    label_id: str, *, angle: float = 0.0, facing: float = 1.0, squeeze: float = 1.0, lean: float = 0.0
) -> keypoints.Instance:
    """One person 300 px tall; `squeeze` narrows them sideways (0.15 ≈ seen in profile), `lean` shifts the upper body
    sideways by that share of the height from the feet up."""
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = {}
    for name, (x, y) in TEMPLATE.items():
        px, py = rot @ np.array([x * facing * squeeze + lean * (0.95 - y), y]) * 300 + [320, 20]
        points[name] = (float(px), float(py))
    xs, ys = [p[0] for p in points.values()], [p[1] for p in points.values()]
    box = (min(xs) - 5, min(ys) - 5, max(xs) - min(xs) + 10, max(ys) - min(ys) + 10)
    return keypoints.Instance(label_id, label_id, points, box, (640.0, 480.0))


def swaps(instances: list[keypoints.Instance]) -> dict[str, keypoints.Candidate]:
    return {c.label_id: c for c in keypoints.check(RIG, instances, [keypoints.SWAPPED])}


def test_correct_people_raise_no_swap_even_with_points_missing() -> None:
    assert swaps(crowd()) == {}
    assert swaps(crowd(drop=0.15)) == {}


def test_a_swapped_pair_is_found_and_named() -> None:
    people = crowd()
    target = people[7]
    target.points["left_knee"], target.points["right_knee"] = target.points["right_knee"], target.points["left_knee"]
    found = swaps(people)
    assert list(found) == [target.label_id]
    assert found[target.label_id].keypoints == ("left_knee", "right_knee")


@pytest.mark.parametrize(("left", "right"), PAIRS)
def test_a_lone_point_on_the_wrong_side_is_found(left: str, right: str) -> None:
    """The right point labeled as the left one, the right one not labeled — for every pair of the rig."""
    people = crowd(drop=0.05)
    for i, keep_left in ((11, True), (12, False)):
        p = people[i]
        a, b = (left, right) if keep_left else (right, left)
        p.points[a] = p.points[b]
        del p.points[b]
    found = swaps(people)
    assert set(found) == {people[11].label_id, people[12].label_id}
    assert found[people[11].label_id].keypoints == (left, right)
    assert found[people[12].label_id].keypoints == (right, left)
    assert "not labeled" in found[people[11].label_id].description
    # One point on the wrong side is weaker evidence than a whole pair pointing the wrong way.
    assert 0 < found[people[11].label_id].score <= keypoints.LONE_WEIGHT


@pytest.mark.parametrize("facing", [1.0, -1.0])
@pytest.mark.parametrize(("angle", "lean"), [(0.6, 0.0), (0.0, 0.4), (0.0, -0.4), (-0.3, 0.3)])
def test_lone_points_of_tilted_and_leaning_people_are_judged_along_their_own_midline(
    facing: float, angle: float, lean: float
) -> None:
    people = crowd()
    pose = {"angle": angle, "facing": facing, "lean": lean}
    placed = []
    for a, b in (("left_ankle", "right_ankle"), ("right_ankle", "left_ankle"), ("left_wrist", "right_wrist")):
        right_place = person(f"ok-{a}", **pose)
        del right_place.points[b]
        wrong_place = person(f"wrong-{a}", **pose)
        wrong_place.points[a] = wrong_place.points.pop(b)
        placed += [right_place, wrong_place]
    found = swaps([*people, *placed])
    assert set(found) == {"wrong-left_ankle", "wrong-right_ankle", "wrong-left_wrist"}


def test_profiles_are_not_judged_by_a_lone_point() -> None:
    """Seen from the side the pairs overlap and one of each is hidden: a lone ear across the midline is normal."""
    people = crowd()
    profiles = []
    for i in range(5):
        p = person(f"profile-{i}", squeeze=0.12)
        p.points["right_ear"] = (p.points["right_ear"][0] + 40, p.points["right_ear"][1])  # the visible ear, turned
        del p.points["left_ear"]
        profiles.append(p)
    assert swaps([*people, *profiles]) == {}


def duplicates(instances: list[keypoints.Instance]) -> dict[str, keypoints.Candidate]:
    return {c.label_id: c for c in keypoints.check(RIG, instances, [keypoints.DUPLICATE])}


def test_two_points_at_one_place_are_found_but_tiny_people_are_not_flagged() -> None:
    people = crowd()
    for p in people[:100]:  # far away: 4 to 10 % of their size, eyes and nose within a pixel of each other
        shrink = 0.04 + 0.0006 * int(p.label_id.split("-")[1])
        p.points = {n: (x * shrink, y * shrink) for n, (x, y) in p.points.items()}
        p.box = None
    assert duplicates(people) == {}
    big = people[200]
    big.points["left_wrist"] = big.points["left_elbow"]
    small = people[3]
    small.points["right_ankle"] = small.points["left_ankle"]
    found = duplicates(people)
    assert set(found) == {big.label_id, small.label_id}
    assert set(found[big.label_id].keypoints) == {"left_elbow", "left_wrist"}
