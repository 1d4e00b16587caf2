"""Evaluation tasks on in-memory frames: classification, semantic segmentation and cuboids against straightforward
reference computations, custom metrics, and the label-error ranking on a synthetic set with planted mistakes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from shoal.kit.errors import FailedPrecondition
from shoal.metrics import tasks
from shoal.v1 import evaluation_pb2, frame_pb2, label_pb2, project_pb2

T = evaluation_pb2


def class_map(names: list[str], ignored: tuple[str, ...] = ()) -> project_pb2.ClassMap:
    return project_pb2.ClassMap(
        entries=[
            project_pb2.ClassMapEntry(class_id=i, name=n, ignore_in_eval=n in ignored) for i, n in enumerate(names)
        ]
    )


def box_label(
    label_id: str, cls: str, x: float, y: float, w: float, h: float, conf: float | None = None
) -> label_pb2.Label:
    label = label_pb2.Label(label_id=label_id, classification=cls, sensor_id="cam")
    label.box_2d.CopyFrom(label_pb2.Box2D(left=x, top=y, width=w, height=h))
    if conf is not None:
        label.confidence = conf
    return label


def pair(frame_id: str, truth: list[label_pb2.Label], preds: list[label_pb2.Label], **custom: Any) -> tasks.Pair:
    inference = frame_pb2.InferenceFrame(frame_id=frame_id, labels=preds)
    for name, value in custom.items():
        inference.custom_metrics[name].objective = value
    return tasks.Pair(frame_id, frame_pb2.Frame(frame_id=frame_id, labels=truth), inference)


def no_masks(url: str) -> np.ndarray:
    raise AssertionError(f"unexpected mask read {url}")


# classification ----------------------------------------------------------------------------------------------------


def cls_label(label_id: str, cls: str, conf: float | None = None) -> label_pb2.Label:
    label = label_pb2.Label(label_id=label_id, classification=cls, sensor_id="cam")
    label.classification_2d.SetInParent()
    if conf is not None:
        label.confidence = conf
    return label


def test_classification_against_reference() -> None:
    names = ["cat", "dog", "bird"]
    rng = np.random.default_rng(0)
    pairs, truth, top1, top2 = [], [], [], []
    for f in range(60):
        y = int(rng.integers(0, 3))
        scores = rng.random(3)
        scores[y] += 0.4 * rng.random()
        order = np.argsort(-scores)
        preds = [cls_label(f"p{f}-{k}", names[k], round(float(scores[k]) / 2, 3)) for k in range(3)]
        pairs.append(pair(f"f{f}", [cls_label(f"g{f}", names[y])], preds))
        truth.append(y)
        top1.append(int(np.argsort(-np.round(scores / 2, 3), kind="stable")[0]))
        top2.append(set(order[:2].tolist()))
    params = T.EvaluationParams(top_k=2)
    out = tasks.evaluate(
        pairs, T.EVALUATION_TASK_CLASSIFICATION_2D, params, tasks.Classes.of(class_map(names), []), no_masks
    )
    y, p = np.array(truth), np.array(top1)
    assert out.result.metrics["accuracy"] == pytest.approx(float((y == p).mean()))
    assert out.result.metrics["top_2_accuracy"] == pytest.approx(
        np.mean([t in s for t, s in zip(truth, top2, strict=True)])
    )
    for k, name in enumerate(names):
        tp = int(((y == k) & (p == k)).sum())
        prec = tp / max(1, int((p == k).sum()))
        rec = tp / max(1, int((y == k).sum()))
        c = next(c for c in out.result.per_class if c.class_name == name)
        assert c.metrics["precision"] == pytest.approx(prec)
        assert c.metrics["recall"] == pytest.approx(rec)
        assert c.metrics["f1"] == pytest.approx(0 if prec + rec == 0 else 2 * prec * rec / (prec + rec))
        assert c.support == int((y == k).sum())
    cm = np.array(out.result.confusion_matrix.counts.values).reshape(3, 3)
    ref = np.zeros((3, 3))
    np.add.at(ref, (y, p), 1)
    np.testing.assert_array_equal(cm, ref)
    wrong = [c for c in out.candidates if c.reason == T.LABEL_ERROR_REASON_WRONG_CLASS]
    assert len(wrong) == int(
        ((y != p) & (np.array([max(float(s.confidence) for s in q.prediction.labels) for q in pairs]) >= 0.5)).sum()
    )


# semantic segmentation -----------------------------------------------------------------------------------------------


def test_semantic_segmentation_against_reference() -> None:
    names = ["road", "car", "sky", "void"]
    rng = np.random.default_rng(1)
    store: dict[str, np.ndarray] = {}
    pairs = []
    for f in range(5):
        g = rng.integers(0, 4, (20, 30)).astype(np.uint8)
        d = np.where(rng.random((20, 30)) < 0.7, g, rng.integers(0, 4, (20, 30))).astype(np.uint8)
        d[0, 0] = 9  # a class id outside the class map
        store[f"g{f}"], store[f"d{f}"] = g, d
        gl = label_pb2.Label(label_id=f"g{f}", classification="road", sensor_id="cam")
        gl.semantic_segmentation_2d.mask_url = f"g{f}"
        dl = label_pb2.Label(label_id=f"d{f}", classification="road", sensor_id="cam", confidence=1.0)
        dl.semantic_segmentation_2d.mask_url = f"d{f}"
        pairs.append(pair(f"f{f}", [gl], [dl]))
    classes = tasks.Classes.of(class_map(names, ignored=("void",)), [])
    out = tasks.evaluate(
        pairs, T.EVALUATION_TASK_SEMANTIC_SEGMENTATION_2D, T.EvaluationParams(), classes, store.__getitem__
    )
    gts = np.concatenate([store[f"g{f}"].ravel() for f in range(5)])
    dts = np.concatenate([store[f"d{f}"].ravel() for f in range(5)])
    keep = gts != 3  # "void" is ignored in evaluation
    gts, dts = gts[keep], dts[keep]
    ious = []
    for k in range(3):
        inter = np.sum((gts == k) & (dts == k))
        union = np.sum(gts == k) + np.sum(dts == k) - inter
        ious.append(inter / union)
        assert next(c for c in out.result.per_class if c.class_name == names[k]).metrics["iou"] == pytest.approx(
            inter / union
        )
    assert out.result.metrics["mIoU"] == pytest.approx(np.mean(ious))
    assert out.result.metrics["pixel_accuracy"] == pytest.approx(np.mean(gts == dts))


# cuboids ---------------------------------------------------------------------------------------------------------------


def cuboid(
    label_id: str,
    x: float,
    y: float,
    z: float,
    length: float,
    w: float,
    h: float,
    yaw: float = 0.0,
    conf: float | None = None,
) -> label_pb2.Label:
    label = label_pb2.Label(label_id=label_id, classification="car", sensor_id="lidar")
    c = label.cuboid_3d
    c.position.x, c.position.y, c.position.z = x, y, z
    c.dimensions.x, c.dimensions.y, c.dimensions.z = length, w, h
    c.rotation.z, c.rotation.w = math.sin(yaw / 2), math.cos(yaw / 2)
    if conf is not None:
        label.confidence = conf
    return label


def test_cuboid_iou_by_hand() -> None:
    dt = np.array([[0, 0, 0, 4, 2, 2, 0.0], [0, 0, 0, 2, 2, 2, math.pi / 4], [1, 0, 0.5, 4, 2, 2, math.pi]])
    gt = np.array([[0, 0, 0, 4, 2, 2, math.pi / 2], [0, 0, 0, 2, 2, 2, 0.0], [0, 0, 0, 4, 2, 2, 0.0]])
    d, g = np.array([0, 1, 2]), np.array([0, 1, 2])
    bev = tasks.cuboid_overlap(dt, gt, bev=True)(d, g)
    full = tasks.cuboid_overlap(dt, gt, bev=False)(d, g)
    # A 4×2 box and the same box turned 90°: they share a 2×2 square.
    assert bev[0] == pytest.approx(4 / (8 + 8 - 4))
    # A 2×2 square and the same square turned 45°: the octagon 8(√2 − 1).
    octagon = 8 * (math.sqrt(2) - 1)
    assert bev[1] == pytest.approx(octagon / (4 + 4 - octagon))
    # Shifted by 1 along x (turned 180°, the same footprint) and 0.5 up: BEV 6/10, 3-D 6·1.5 / (16 + 16 − 9).
    assert bev[2] == pytest.approx(6 / 10)
    assert full[2] == pytest.approx(9 / (16 + 16 - 9))


def test_cuboid_ap() -> None:
    pairs = [
        pair(
            "a",
            [cuboid("g1", 0, 0, 0, 4, 2, 2), cuboid("g2", 10, 0, 0, 4, 2, 2)],
            [cuboid("p1", 0.1, 0, 0, 4, 2, 2, conf=0.9), cuboid("p2", 30, 0, 0, 4, 2, 2, conf=0.8)],
        ),
    ]
    out = tasks.evaluate(
        pairs, T.EVALUATION_TASK_CUBOID_3D, T.EvaluationParams(), tasks.Classes.of(class_map(["car"]), []), no_masks
    )
    # One of two objects found at the top score, then a false positive: AP = 0.5 at every threshold the match passes.
    assert out.result.metrics["AP_BEV@0.5"] == pytest.approx(0.5, abs=0.01)
    assert out.result.metrics["AP_3D@0.7"] == pytest.approx(0.5, abs=0.01)


def test_custom_metrics_are_averaged_and_matrices_summed() -> None:
    a = pair("a", [], [], loss=1.0)
    b = pair("b", [], [], loss=3.0)
    b.prediction.custom_metrics["cm"].confusion_matrix.rows = 2
    b.prediction.custom_metrics["cm"].confusion_matrix.columns = 2
    b.prediction.custom_metrics["cm"].confusion_matrix.values.extend([3, 1, 0, 4])
    out = tasks.custom_metrics([a, b])
    assert out == {"loss": 2.0, "cm.accuracy": 7 / 8}


def test_a_task_nothing_can_be_evaluated_for_is_refused() -> None:
    with pytest.raises(FailedPrecondition):
        tasks.check_task([pair("a", [], [box_label("p", "car", 0, 0, 1, 1, 0.5)])], T.EVALUATION_TASK_KEYPOINTS_2D)


# label errors ----------------------------------------------------------------------------------------------------------


def test_label_errors_find_planted_mistakes_near_the_top() -> None:
    """A good model on a set where 5% of the labels were damaged: removed, given another class, or shifted. The
    damaged labels must lead the candidate list."""
    rng = np.random.default_rng(7)
    names = ["car", "person", "bike", "truck"]
    pairs: list[tasks.Pair] = []
    planted: set[tuple[str, str]] = set()  # (frame, label or prediction id)
    for f in range(120):
        fid = f"f{f:03d}"
        truth, preds = [], []
        for j in range(int(rng.integers(3, 7))):
            x, y = 120.0 * j, float(rng.integers(0, 200))
            w, h = float(rng.integers(30, 100)), float(rng.integers(30, 100))
            cls = names[int(rng.integers(0, 4))]
            gid, pid = f"g{f}-{j}", f"p{f}-{j}"
            if rng.random() < 0.92:  # the model finds most objects, with its own small errors
                jx, jy = rng.normal(0, 0.04, 2)
                pcls = cls if rng.random() < 0.97 else names[int(rng.integers(0, 4))]
                preds.append(
                    box_label(pid, pcls, x + jx * w, y + jy * h, w, h, round(float(rng.uniform(0.55, 0.99)), 2))
                )
            # Damage only what the model saw: a mistake on an object the model misses is invisible to this method.
            damage = rng.random() if any(p.label_id == pid for p in preds) else 1.0
            if damage < 0.02:
                planted.add((fid, pid))  # label removed: the prediction has nothing under it
                continue
            if damage < 0.035:
                cls = next(n for n in names if n != cls)
                planted.add((fid, gid))
            elif damage < 0.05:
                x += 0.45 * w
                planted.add((fid, gid))
            truth.append(box_label(gid, cls, x, y, w, h))
        for j in range(int(rng.integers(0, 3))):  # background noise at low confidence
            preds.append(
                box_label(
                    f"n{f}-{j}",
                    names[int(rng.integers(0, 4))],
                    float(rng.integers(0, 700)),
                    300.0,
                    20,
                    20,
                    round(float(rng.uniform(0.01, 0.4)), 2),
                )
            )
        pairs.append(pair(fid, truth, preds))
    out = tasks.evaluate(
        pairs, T.EVALUATION_TASK_DETECTION_2D, T.EvaluationParams(), tasks.Classes.of(class_map(names), []), no_masks
    )
    ranked = [(c.frame_id, c.ground_truth_label_id or c.prediction_label_id) for c in out.candidates]
    # Removed labels are reported by their prediction; the others by the damaged label.
    ranks = sorted(ranked.index(k) + 1 for k in planted if k in ranked)
    found = [k for k in planted if k in ranked]
    assert len(found) == len(planted), sorted(planted - set(ranked))
    worst = max(ranked.index(k) + 1 for k in planted)
    # Every planted mistake sits within the first 1.5 × (number planted) candidates.
    assert len(planted) >= 12
    assert worst <= math.ceil(1.5 * len(planted)), (worst, len(planted), ranks)
    print(f"planted {len(planted)}, ranks {ranks}")
    reasons = {c.reason for c in out.candidates[: len(planted)]}
    assert {
        T.LABEL_ERROR_REASON_MISSING_LABEL,
        T.LABEL_ERROR_REASON_WRONG_CLASS,
        T.LABEL_ERROR_REASON_LOOSE_BOX,
    } <= reasons
