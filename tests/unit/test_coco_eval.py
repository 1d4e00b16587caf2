"""Shoal's COCO engine against pycocotools, on hand-made edge cases and generated data: every figure identical."""

from __future__ import annotations

import contextlib
import copy
import io
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("pycocotools")
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from shoal.metrics import coco
from shoal.metrics.coco import polygon_mask
from shoal.metrics.cocojson import decode_counts, evaluate_coco, rle_decode, rle_encode

SIZE = 64

# pycocotools' compiled mask module predates NumPy 2's copy keyword.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def reference(gt: dict[str, Any], dets: list[dict[str, Any]], iou_type: str) -> COCOeval | None:
    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO()
        g.dataset = copy.deepcopy(gt)
        g.createIndex()
        if not dets:
            return None
        d = g.loadRes(copy.deepcopy(dets))
        e = COCOeval(g, d, iou_type)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e


def assert_same(gt: dict[str, Any], dets: list[dict[str, Any]], iou_type: str = "bbox") -> coco.CocoResult:
    mine = evaluate_coco(gt, dets, iou_type)
    ref = reference(gt, dets, iou_type)
    if ref is None:
        assert (mine.precision[mine.precision > -1] == 0).all()
        return mine
    np.testing.assert_array_equal(mine.precision, ref.eval["precision"])
    np.testing.assert_array_equal(mine.recall, ref.eval["recall"])
    np.testing.assert_array_equal(mine.scores, ref.eval["scores"])
    np.testing.assert_array_equal(mine.stats, np.asarray(ref.stats))
    return mine


def dataset(images: int, cats: int, anns: list[dict[str, Any]]) -> dict[str, Any]:
    for i, a in enumerate(anns, start=1):
        a.setdefault("id", i)
        a.setdefault("iscrowd", 0)
        if "area" not in a:
            a["area"] = a["bbox"][2] * a["bbox"][3]
    return {
        "images": [{"id": i + 1, "width": SIZE, "height": SIZE} for i in range(images)],
        "categories": [{"id": c + 1, "name": f"c{c + 1}"} for c in range(cats)],
        "annotations": anns,
    }


def box(image: int, cat: int, x: float, y: float, w: float, h: float, **extra: Any) -> dict[str, Any]:
    return {"image_id": image, "category_id": cat, "bbox": [x, y, w, h], **extra}


def det(image: int, cat: int, x: float, y: float, w: float, h: float, score: float) -> dict[str, Any]:
    return {"image_id": image, "category_id": cat, "bbox": [x, y, w, h], "score": score}


# hand-made cases ------------------------------------------------------------------------------------------------


def test_perfect_detections_give_one() -> None:
    gt = dataset(2, 1, [box(1, 1, 0, 0, 10, 10), box(2, 1, 5, 5, 40, 40)])
    r = assert_same(gt, [det(1, 1, 0, 0, 10, 10, 0.9), det(2, 1, 5, 5, 40, 40, 0.8)])
    assert r.stats[0] == pytest.approx(1.0)


def test_empty_frames_and_frames_without_predictions() -> None:
    gt = dataset(4, 2, [box(1, 1, 0, 0, 10, 10), box(2, 2, 5, 5, 20, 20), box(2, 1, 30, 30, 8, 8)])
    assert_same(gt, [det(1, 1, 1, 1, 10, 10, 0.5), det(4, 2, 0, 0, 5, 5, 0.7)])


def test_crowd_regions_absorb_predictions() -> None:
    gt = dataset(1, 1, [box(1, 1, 0, 0, 60, 60, iscrowd=1), box(1, 1, 2, 2, 10, 10)])
    dets = [det(1, 1, 2, 2, 10, 10, 0.9), det(1, 1, 20, 20, 10, 10, 0.8), det(1, 1, 30, 30, 10, 10, 0.7)]
    r = assert_same(gt, dets)
    assert r.stats[0] == pytest.approx(1.0)  # the extra boxes fall in the crowd: neither true nor false positives


def test_ties_in_scores_across_images() -> None:
    gt = dataset(3, 1, [box(1, 1, 0, 0, 10, 10), box(2, 1, 0, 0, 10, 10), box(3, 1, 0, 0, 10, 10)])
    dets = [
        det(3, 1, 0, 0, 10, 10, 0.5),
        det(1, 1, 40, 40, 10, 10, 0.5),
        det(2, 1, 0, 0, 10, 10, 0.5),
        det(1, 1, 0, 0, 10, 10, 0.5),
    ]
    assert_same(gt, dets)


def test_area_range_boundaries() -> None:
    # Areas exactly 32² and 96² sit in both neighbouring ranges, as pycocotools compares with < and >.
    gt = dataset(1, 1, [box(1, 1, 0, 0, 32, 32), box(1, 1, 0, 0, 96, 96), box(1, 1, 10, 10, 31, 33)])
    dets = [det(1, 1, 0, 0, 32, 32, 0.9), det(1, 1, 1, 1, 96, 95, 0.8), det(1, 1, 10, 10, 32, 32, 0.3)]
    assert_same(gt, dets)


def test_class_absent_from_ground_truth_is_left_out() -> None:
    gt = dataset(2, 3, [box(1, 1, 0, 0, 10, 10), box(2, 1, 0, 0, 10, 10)])
    r = assert_same(gt, [det(1, 1, 0, 0, 10, 10, 0.9), det(1, 3, 0, 0, 10, 10, 0.9), det(2, 2, 5, 5, 5, 5, 0.1)])
    assert (r.precision[:, :, 1:] == -1).all()


def test_more_detections_than_max() -> None:
    gt = dataset(1, 1, [box(1, 1, float(i), 0, 4, 4) for i in range(0, 60, 5)])
    dets = [det(1, 1, float(i % 60), 0, 4, 4, round(0.001 * (i % 37), 3)) for i in range(130)]
    assert_same(gt, dets)


def test_non_default_parameters() -> None:
    gt = dataset(2, 2, [box(1, 1, 0, 0, 10, 10), box(2, 2, 3, 3, 30, 30), box(2, 1, 0, 0, 50, 5)])
    dets = [det(1, 1, 1, 0, 10, 10, 0.9), det(2, 2, 3, 3, 29, 31, 0.6), det(2, 1, 0, 0, 50, 6, 0.4)]
    params = coco.CocoParams(
        iou_thresholds=np.array([0.3, 0.6, 0.9]), area_ranges=(("all", 0, 1e10), ("tiny", 0, 150)), max_dets=(1, 5)
    )
    mine = evaluate_coco(gt, dets, "bbox", params)
    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO()
        g.dataset = copy.deepcopy(gt)
        g.createIndex()
        e = COCOeval(g, g.loadRes(copy.deepcopy(dets)), "bbox")
        e.params.iouThrs = np.array([0.3, 0.6, 0.9])
        e.params.areaRng = [[0, 1e10], [0, 150]]
        e.params.areaRngLbl = ["all", "tiny"]
        e.params.maxDets = [1, 5]
        e.evaluate()
        e.accumulate()
    np.testing.assert_array_equal(mine.precision, e.eval["precision"])
    np.testing.assert_array_equal(mine.recall, e.eval["recall"])


# generated cases ------------------------------------------------------------------------------------------------

coords = st.integers(0, 40).map(float) | st.floats(0, 40, allow_nan=False).map(lambda v: round(v, 1))
sides = st.integers(1, 24).map(float) | st.floats(1, 24, allow_nan=False).map(lambda v: round(v, 1))
scores = st.sampled_from([0.1, 0.5, 0.5, 0.9, 0.3]) | st.floats(0, 1).map(lambda v: round(v, 2))


@st.composite
def detection_sets(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    images = draw(st.integers(1, 5))
    cats = draw(st.integers(1, 3))
    anns = [
        box(
            draw(st.integers(1, images)),
            draw(st.integers(1, cats)),
            draw(coords),
            draw(coords),
            draw(sides),
            draw(sides),
            iscrowd=int(draw(st.integers(0, 9)) == 0),
        )
        for _ in range(draw(st.integers(0, 12)))
    ]
    dets = []
    for _ in range(draw(st.integers(0, 25))):
        if anns and draw(st.booleans()):
            a = draw(st.sampled_from(anns))
            x, y, w, h = a["bbox"]
            jitter = draw(st.integers(-3, 3))
            dets.append(
                det(
                    a["image_id"],
                    draw(st.integers(1, cats)),
                    x + jitter,
                    y,
                    w,
                    h + draw(st.integers(0, 3)),
                    draw(scores),
                )
            )
        else:
            dets.append(
                det(
                    draw(st.integers(1, images)),
                    draw(st.integers(1, cats)),
                    draw(coords),
                    draw(coords),
                    draw(sides),
                    draw(sides),
                    draw(scores),
                )
            )
    return dataset(images, cats, anns), dets


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(detection_sets())
def test_generated_boxes_match_pycocotools(case: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    assert_same(*case)


@st.composite
def polygon_sets(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    images = draw(st.integers(1, 3))
    cats = draw(st.integers(1, 2))

    def polygon() -> list[list[float]]:
        x, y = draw(coords), draw(coords)
        w, h = draw(sides), draw(sides)
        skew = draw(st.floats(-5, 5).map(lambda v: round(v, 1)))
        return [[x, y, x + w, y + skew, x + w, y + h, x + skew, y + h]]

    anns = []
    for _ in range(draw(st.integers(0, 6))):
        seg = polygon()
        area = float(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects(seg, SIZE, SIZE))))
        image = draw(st.integers(1, images))
        crowd = int(draw(st.integers(0, 7)) == 0)
        if crowd:
            seg = {"counts": rle_encode(polygon_mask(seg[0:1], SIZE, SIZE)), "size": [SIZE, SIZE]}  # type: ignore[assignment]
        anns.append(
            {
                "image_id": image,
                "category_id": draw(st.integers(1, cats)),
                "segmentation": seg,
                "area": area,
                "iscrowd": crowd,
                "bbox": [0, 0, 1, 1],
            }
        )
    dets = []
    for _ in range(draw(st.integers(0, 10))):
        rle = mask_utils.merge(mask_utils.frPyObjects(polygon(), SIZE, SIZE))
        rle["counts"] = rle["counts"].decode()
        dets.append(
            {
                "image_id": draw(st.integers(1, images)),
                "category_id": draw(st.integers(1, cats)),
                "segmentation": rle,
                "score": draw(scores),
            }
        )
    return dataset(images, cats, anns), dets


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(polygon_sets())
def test_generated_masks_match_pycocotools(case: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    assert_same(*case, iou_type="segm")


@st.composite
def keypoint_sets(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    images = draw(st.integers(1, 4))
    anns = []
    for _ in range(draw(st.integers(0, 6))):
        x, y, w, h = draw(coords), draw(coords), draw(sides), draw(sides)
        pts = []
        labeled = 0
        for _k in range(17):
            v = draw(st.sampled_from([0, 1, 2, 2]))
            labeled += v > 0
            pts += [
                round(x + draw(st.floats(0, 1)) * w, 1) if v else 0,
                round(y + draw(st.floats(0, 1)) * h, 1) if v else 0,
                v,
            ]
        anns.append(
            {
                "image_id": draw(st.integers(1, images)),
                "category_id": 1,
                "keypoints": pts,
                "num_keypoints": labeled,
                "bbox": [x, y, w, h],
                "area": w * h,
                "iscrowd": int(draw(st.integers(0, 9)) == 0),
            }
        )
    dets = []
    for _ in range(draw(st.integers(0, 12))):
        if anns and draw(st.booleans()):
            base = draw(st.sampled_from(anns))
            pts = [round(v + draw(st.floats(-2, 2)), 2) if i % 3 != 2 else 1 for i, v in enumerate(base["keypoints"])]
            image = base["image_id"]
        else:
            pts = [draw(coords) if i % 3 != 2 else 1 for i in range(51)]
            image = draw(st.integers(1, images))
        dets.append({"image_id": image, "category_id": 1, "keypoints": pts, "score": draw(scores)})
    gt = dataset(1, 1, anns)
    gt["images"] = [{"id": i + 1, "width": SIZE, "height": SIZE} for i in range(images)]
    gt["categories"] = [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)], "skeleton": []}]
    return gt, dets


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keypoint_sets())
def test_generated_keypoints_match_pycocotools(case: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    assert_same(*case, iou_type="keypoints")


def test_rle_round_trip_matches_pycocotools() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        m = rng.random((13, 17)) < 0.4
        counts = rle_encode(m)
        np.testing.assert_array_equal(rle_decode(np.array(counts), 13, 17), m)
        ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        assert decode_counts(ref["counts"]) == counts
