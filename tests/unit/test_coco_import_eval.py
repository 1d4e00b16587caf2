"""COCO files imported with the SDK importer and evaluated by the metrics tasks, as the metrics service reads them
(frames in the table's frame-id order, i.e. as strings), give pycocotools' figures exactly: on a set whose equal
scores rank by image order (integer ids 1..12) and on one whose areas are segmentation areas (real COCO val2017 dogs
and polygons whose area sits in another range than their box)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pycocotools")
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from shoal import rigs
from shoal.metrics import tasks
from shoal.metrics.cocojson import evaluate_coco
from shoal.sdk import coco
from shoal.v1 import evaluation_pb2, frame_pb2

DATA = Path(__file__).parents[1] / "data" / "coco"
STATS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
TASKS = {
    "bbox": evaluation_pb2.EVALUATION_TASK_DETECTION_2D,
    "segm": evaluation_pb2.EVALUATION_TASK_INSTANCE_SEGMENTATION_2D,
}

# pycocotools' compiled mask module predates NumPy 2's copy keyword.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def load(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return json.loads((DATA / f"{name}.json").read_text()), json.loads((DATA / f"{name}_results.json").read_text())


def pycocotools_stats(gt: dict[str, Any], dets: list[dict[str, Any]], iou_type: str) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO()
        g.dataset = copy.deepcopy(gt)
        g.createIndex()
        e = COCOeval(g, g.loadRes(copy.deepcopy(dets)), iou_type)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return np.asarray(e.stats)


def through_shoal(gt: dict[str, Any], dets: list[dict[str, Any]], iou_type: str) -> np.ndarray:
    """Import both files, pair the frames as the metrics service reads them (frame ids in string order) and evaluate."""
    class_map, dataset = coco.import_coco(gt)
    inferences = coco.import_coco_results(dets, gt["categories"], image_ids=[i["id"] for i in gt["images"]])
    truth = {f.frame_id: f for f in dataset.items if isinstance(f, frame_pb2.Frame)}
    predictions = sorted(
        (f for f in inferences.items if isinstance(f, frame_pb2.InferenceFrame)), key=lambda f: f.frame_id
    )
    pairs = [tasks.Pair(f.frame_id, truth[f.frame_id], f) for f in predictions]
    outcome = tasks.evaluate(
        pairs, TASKS[iou_type], evaluation_pb2.EvaluationParams(), tasks.Classes.of(class_map.to_proto(), []), _no_mask
    )
    return np.array([outcome.result.metrics[n] for n in STATS])


def _no_mask(url: str) -> np.ndarray:
    raise AssertionError(url)


@pytest.mark.parametrize(
    ("name", "iou_type"), [("tie_heavy", "bbox"), ("polygon_areas", "bbox"), ("polygon_areas", "segm")]
)
def test_imported_sets_evaluate_to_pycocotools_figures(name: str, iou_type: str) -> None:
    gt, dets = load(name)
    expected = pycocotools_stats(gt, dets, iou_type)
    assert (expected[:6] > 0).all()  # every AP, the small/medium/large ones included, has something to compare
    np.testing.assert_array_equal(through_shoal(gt, dets, iou_type), expected)
    np.testing.assert_array_equal(evaluate_coco(gt, dets, iou_type).stats, expected)


def test_the_tie_heavy_set_depends_on_the_image_order() -> None:
    """Renumber the images so that numeric order is the string order of their ids: pycocotools' own figures move,
    so an evaluation that took the images as strings could not equal them."""
    gt, dets = load("tie_heavy")
    as_strings = {i: n for n, i in enumerate(sorted((im["id"] for im in gt["images"]), key=str), start=1)}
    renumbered = copy.deepcopy(gt)
    for im in renumbered["images"]:
        im["id"] = as_strings[im["id"]]
    for a in renumbered["annotations"]:
        a["image_id"] = as_strings[a["image_id"]]
    moved = [{**d, "image_id": as_strings[d["image_id"]]} for d in dets]
    assert not np.array_equal(pycocotools_stats(renumbered, moved, "bbox"), pycocotools_stats(gt, dets, "bbox"))


def test_the_polygon_set_depends_on_the_coco_areas() -> None:
    """With each annotation's area replaced by its box's w·h pycocotools' own figures move: the areas matter."""
    gt, dets = load("polygon_areas")
    boxed = copy.deepcopy(gt)
    for a in boxed["annotations"]:
        a["area"] = a["bbox"][2] * a["bbox"][3]
    small = 32.0**2
    assert any(
        (a["area"] < small) != (b["area"] < small) for a, b in zip(gt["annotations"], boxed["annotations"], strict=True)
    )
    for iou_type in ("bbox", "segm"):
        assert not np.array_equal(pycocotools_stats(boxed, dets, iou_type), pycocotools_stats(gt, dets, iou_type))


def test_the_real_coco_area_is_kept_on_every_label() -> None:
    gt = json.loads((DATA / "val2017_dogs.json").read_text())
    _, dataset = coco.import_coco(gt)
    frame = next(f for f in dataset.items if isinstance(f, frame_pb2.Frame) and f.frame_id == "289343")
    assert {lb.label_id: lb.attributes["area"].float_value for lb in frame.labels} == {
        "1768": 702.1057499999998,  # a small dog in a medium box (38.65 × 28.67 = 1108.1)
        "1768-segm": 702.1057499999998,
    }


def test_detections_carry_the_area_loadres_gives_them() -> None:
    cats = [{"id": 1, "name": "person", "keypoints": ["a", "b"], "skeleton": []}]
    det = {
        "image_id": 3,
        "category_id": 1,
        "bbox": [1, 2, 10, 20],
        "area": 5.0,  # loadRes overwrites a result's own area with the box's
        "segmentation": [[1, 2, 11, 2, 11, 22]],
        "keypoints": [2, 3, 1, 9, 20, 1],
        "score": 0.5,
    }
    inferences = coco.import_coco_results([det], cats, image_ids=[1, 3, 2])
    frames = [f for f in inferences.items if isinstance(f, frame_pb2.InferenceFrame)]
    assert [f.frame_id for f in frames] == ["1", "3", "2"]  # every ground-truth image, one without detections too
    assert not frames[0].labels
    labels = {lb.label_id: lb for lb in frames[1].labels}
    assert {k: lb.attributes["area"].float_value for k, lb in labels.items()} == {
        "det0": 200.0,
        "det0-segm": 200.0,
        "det0-kp": 200.0,
    }
    box = labels["det0-kp"].keypoints_2d.box
    assert (box.left, box.top, box.width, box.height) == (1, 2, 10, 20)


def test_integer_frame_ids_sort_by_value() -> None:
    ids = ["10", "2", "b", "1", "a10", "-3", "007", "7"]
    assert sorted(ids, key=tasks.image_key) == ["-3", "1", "2", "007", "7", "10", "a10", "b"]


def test_cocojson_ranges_mask_results_with_boxes_by_the_box_and_ignores_the_ignore_flag() -> None:
    """loadRes gives results that have boxes the box's area, masks too; pycocotools' _prepare replaces an
    annotation's `ignore` with its `iscrowd`."""
    gt, dets = load("polygon_areas")
    flagged = copy.deepcopy(gt)
    for a in flagged["annotations"][::3]:
        a["ignore"] = 1
    for iou_type in ("bbox", "segm"):
        np.testing.assert_array_equal(
            evaluate_coco(flagged, dets, iou_type).stats, pycocotools_stats(flagged, dets, iou_type)
        )


def test_imported_keypoints_evaluate_to_pycocotools_figures() -> None:
    """Keypoint annotations keep their box (OKS of an instance without labeled points) and area (OKS scale and
    ranges); detections with boxes are ranged by the box, as loadRes does."""
    rng = np.random.default_rng(5)
    names = list(rigs.COCO_PERSON_KEYPOINTS)  # pycocotools' sigmas are the person rig's
    cats = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": names, "skeleton": []}]
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in range(1, 13)]
    anns: list[dict[str, Any]] = []
    dets: list[dict[str, Any]] = []
    for im in images:
        for _ in range(int(rng.integers(1, 4))):
            x, y = float(rng.integers(0, 400)), float(rng.integers(0, 300))
            w, h = float(rng.integers(20, 150)), float(rng.integers(20, 150))
            points: list[float] = []
            for _k in names:
                v = int(rng.choice([0, 1, 2, 2]))
                points += [round(x + rng.random() * w, 1) if v else 0, round(y + rng.random() * h, 1) if v else 0, v]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": im["id"],
                    "category_id": 1,
                    "keypoints": points,
                    "num_keypoints": sum(v > 0 for v in points[2::3]),
                    "bbox": [x, y, w, h],
                    "area": round(w * h * float(rng.uniform(0.3, 0.9)), 2),  # a person fills part of the box
                    "iscrowd": 0,
                }
            )
            if im["id"] != 5:  # nothing found on image 5
                moved = [round(v + rng.normal(0, 3), 2) if i % 3 != 2 else 1 for i, v in enumerate(points)]
                score = float(rng.choice([0.9, 0.5]))
                dets.append(
                    {"image_id": im["id"], "category_id": 1, "keypoints": moved, "bbox": [x, y, w, h], "score": score}
                )
    gt = {"images": images, "annotations": anns, "categories": cats}
    class_map, dataset = coco.import_coco(gt)
    inferences = coco.import_coco_results(dets, cats, image_ids=[i["id"] for i in images])
    truth = {f.frame_id: f for f in dataset.items if isinstance(f, frame_pb2.Frame)}
    predictions = sorted(
        (f for f in inferences.items if isinstance(f, frame_pb2.InferenceFrame)), key=lambda f: f.frame_id
    )
    outcome = tasks.evaluate(
        [tasks.Pair(f.frame_id, truth[f.frame_id], f) for f in predictions],
        evaluation_pb2.EVALUATION_TASK_KEYPOINTS_2D,
        evaluation_pb2.EvaluationParams(),
        tasks.Classes.of(class_map.to_proto(), []),
        _no_mask,
    )
    got = np.array(
        [outcome.result.metrics[n] for n in ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]]
    )
    expected = pycocotools_stats(gt, dets, "keypoints")
    assert (expected > 0).all()
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(evaluate_coco(gt, dets, "keypoints").stats, expected)
