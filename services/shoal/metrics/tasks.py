"""Evaluation tasks: ground truth and predictions of a set of frames → figures, per-frame matches and label-error
candidates. Plain Python and NumPy; the labels come from the stored frames, parsed once into columns."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeAlias

import numpy as np
import shapely

from shoal import rigs
from shoal.kit.errors import FailedPrecondition, FieldViolation, InvalidArgument
from shoal.metrics import coco
from shoal.metrics.coco import F64, I64, Bool
from shoal.v1 import common_pb2, evaluation_pb2, frame_pb2, label_pb2, project_pb2

Task: TypeAlias = evaluation_pb2.EvaluationTask
T = evaluation_pb2

#: COCO's person rig OKS sigmas (used for any class whose keypoint names match and whose rig sets none).
COCO_PERSON_SIGMAS: Final = rigs.COCO_PERSON_SIGMAS
#: Sigma of a keypoint that is neither in COCO's rig nor given by its class: the mean of COCO's.
DEFAULT_SIGMA: Final = 0.072
#: Defaults of the match thresholds (confusion matrix, per-frame matches, label-error candidates).
DEFAULT_MATCH_IOU: Final = 0.5
DEFAULT_MATCH_CONFIDENCE: Final = 0.5
#: A confident same-class match below this IoU is a loose box.
LOOSE_IOU: Final = 0.75
#: Overlap below which a prediction is "not near" any ground truth.
NEAR_IOU: Final = 0.2
#: Default IoU thresholds of 3-D cuboid AP.
CUBOID_IOU_THRESHOLDS: Final = (0.25, 0.5, 0.7)
BACKGROUND: Final = "background"
NONE: Final = "(none)"

_GEOMETRY_TASK: Final = {
    "classification_2d": T.EVALUATION_TASK_CLASSIFICATION_2D,
    "box_2d": T.EVALUATION_TASK_DETECTION_2D,
    "instance_segmentation_2d": T.EVALUATION_TASK_INSTANCE_SEGMENTATION_2D,
    "polygon_list_2d": T.EVALUATION_TASK_INSTANCE_SEGMENTATION_2D,
    "semantic_segmentation_2d": T.EVALUATION_TASK_SEMANTIC_SEGMENTATION_2D,
    "keypoints_2d": T.EVALUATION_TASK_KEYPOINTS_2D,
    "cuboid_3d": T.EVALUATION_TASK_CUBOID_3D,
}

#: Loads a mask asset by URL as a 2-D uint8 array.
MaskLoader = Callable[[str], np.ndarray]
#: A frame id that is an integer (COCO's image ids, imported as frame ids, are).
_INTEGER: Final = re.compile(r"-?[0-9]+")


@dataclass
class Pair:
    """One frame to evaluate: its ground truth at the pinned version and the model's predictions."""

    frame_id: str
    truth: frame_pb2.Frame
    prediction: frame_pb2.InferenceFrame


@dataclass
class Classes:
    """The classes an evaluation covers, in class-id order (ties between equal scores follow this order)."""

    names: list[str]
    ids: list[int]
    entries: dict[str, project_pb2.ClassMapEntry]

    @property
    def index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}

    @staticmethod
    def of(class_map: project_pb2.ClassMap, wanted: Sequence[str]) -> Classes:
        entries = {e.name: e for e in class_map.entries}
        unknown = [c for c in wanted if c not in entries]
        if unknown:
            raise InvalidArgument.of(
                [FieldViolation("params.classes", f"not in the project's class map: {', '.join(unknown)}")],
                reason="UNKNOWN_CLASS",
            )
        chosen = [
            e
            for e in sorted(class_map.entries, key=lambda e: e.class_id)
            if (e.name in wanted if wanted else not e.ignore_in_eval)
        ]
        return Classes([e.name for e in chosen], [e.class_id for e in chosen], entries)


@dataclass
class Outcome:
    """What one evaluation produces."""

    result: evaluation_pb2.EvaluationResult
    matches: list[evaluation_pb2.FrameMatches] = field(default_factory=list)
    candidates: list[evaluation_pb2.LabelErrorCandidate] = field(default_factory=list)


def infer_task(pairs: Sequence[Pair]) -> Task:
    """The task the predictions' geometry calls for (the most common one)."""
    seen: Counter[Task] = Counter()
    for p in pairs:
        for label in p.prediction.labels:
            kind = label.WhichOneof("geometry")
            if kind in _GEOMETRY_TASK:
                seen[_GEOMETRY_TASK[kind]] += 1
    if not seen:
        raise FailedPrecondition(
            "the inference set has no labels whose geometry can be evaluated; name params.task",
            reason="NOTHING_TO_EVALUATE",
        )
    return seen.most_common(1)[0][0]


def check_task(pairs: Sequence[Pair], task: Task) -> None:
    """Refuse a task that none of the predictions can be evaluated for."""
    kinds = {k for k, t in _GEOMETRY_TASK.items() if t == task}
    if pairs and not any(lb.WhichOneof("geometry") in kinds for p in pairs for lb in p.prediction.labels):
        raise FailedPrecondition(
            f"no prediction has a geometry the task can evaluate ({', '.join(sorted(kinds))})",
            reason="NOTHING_TO_EVALUATE",
        )


def thresholds(params: evaluation_pb2.EvaluationParams, default: Sequence[float] | F64) -> F64:
    return (
        np.asarray(list(params.iou_thresholds), np.float64)
        if params.iou_thresholds
        else np.asarray(default, np.float64)
    )


def coco_params(params: evaluation_pb2.EvaluationParams, task: Task) -> coco.CocoParams:
    base = coco.CocoParams.keypoints() if task == T.EVALUATION_TASK_KEYPOINTS_2D else coco.CocoParams()
    if task == T.EVALUATION_TASK_CUBOID_3D:
        base = coco.CocoParams(
            iou_thresholds=np.asarray(CUBOID_IOU_THRESHOLDS), area_ranges=(("all", 0.0, 1e10),), max_dets=(100,)
        )
    areas = (
        tuple((a.name, a.min_area, a.max_area if a.max_area > 0 else 1e10) for a in params.area_ranges)
        if params.area_ranges
        else base.area_ranges
    )
    return coco.CocoParams(
        iou_thresholds=thresholds(params, base.iou_thresholds),
        area_ranges=areas,
        max_dets=tuple(int(m) for m in params.max_detections) or tuple(base.max_dets),
    )


def image_key(frame_id: str) -> tuple[int, int, str]:
    """Where a frame stands in the image order: integer ids by value, as pycocotools sorts COCO's integer image ids
    ("2" before "10"), then every other id as a string, as it sorts string ids."""
    if _INTEGER.fullmatch(frame_id):
        return (0, int(frame_id), frame_id)
    return (1, 0, frame_id)


def in_image_order(pairs: Sequence[Pair]) -> list[Pair]:
    """`pairs` in the image order. It decides how detections of equal score rank against each other across frames,
    so it must be pycocotools' for the figures to be its own."""
    return sorted(pairs, key=lambda p: image_key(p.frame_id))


def evaluate(
    pairs: Sequence[Pair],
    task: Task,
    params: evaluation_pb2.EvaluationParams,
    classes: Classes,
    masks: MaskLoader,
) -> Outcome:
    """Figures of one task over `pairs`, taken in the image order (see `image_key`)."""
    pairs = in_image_order(pairs)
    if task == T.EVALUATION_TASK_CLASSIFICATION_2D:
        outcome = classification(pairs, params, classes)
    elif task == T.EVALUATION_TASK_SEMANTIC_SEGMENTATION_2D:
        outcome = semantic_segmentation(pairs, classes, masks)
    else:
        outcome = instances(pairs, task, params, classes, masks)
    outcome.result.frame_count = len(pairs)
    outcome.result.custom_metrics.update(custom_metrics(pairs))
    return outcome


# instance tasks (COCO protocol) ----------------------------------------------------------------------------------


@dataclass
class Side:
    """Ground truth or predictions of one geometry, as columns."""

    frame: list[int] = field(default_factory=list)
    category: list[int] = field(default_factory=list)
    label_id: list[str] = field(default_factory=list)
    crowd: list[bool] = field(default_factory=list)
    ignore: list[bool] = field(default_factory=list)
    score: list[float] = field(default_factory=list)
    area: list[float] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    masks: list[coco.Mask] = field(default_factory=list)
    points: list[np.ndarray] = field(default_factory=list)  # [K, 3]: x, y, labeled
    cuboids: list[tuple[float, ...]] = field(default_factory=list)  # x, y, z, l, w, h, yaw

    def instances(self) -> coco.Instances:
        return coco.Instances.make(
            self.frame, self.category, self.area, crowd=self.crowd, ignore=self.ignore, score=self.score
        )


def _image_size(frame: frame_pb2.Frame, sensor_id: str) -> tuple[int, int]:
    for s in frame.sensors:
        if s.WhichOneof("data") == "image" and (not sensor_id or s.sensor_id == sensor_id):
            return int(s.image.height), int(s.image.width)
    return 0, 0


def coco_area(label: label_pb2.Label) -> float | None:
    """The `area` attribute a label carries (the COCO importer sets it to the area pycocotools evaluates the
    annotation with), or None."""
    if "area" not in label.attributes:
        return None
    value = label.attributes["area"]
    kind = value.WhichOneof("kind")
    if kind == "float_value":
        return float(value.float_value)
    if kind == "int_value":
        return float(value.int_value)
    return None


def _yaw(q: common_pb2.Quaternion) -> float:
    w = q.w if (q.x or q.y or q.z or q.w) else 1.0
    return math.atan2(2.0 * (w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def _collect(
    pairs: Sequence[Pair],
    task: Task,
    classes: Classes,
    masks: MaskLoader,
    truth: bool,
) -> Side:
    if task == T.EVALUATION_TASK_KEYPOINTS_2D:
        return _collect_keypoints(pairs, classes, truth)
    side = Side()
    index = classes.index
    for f, pair in enumerate(pairs):
        labels: Iterable[label_pb2.Label] = pair.truth.labels if truth else pair.prediction.labels
        for label in labels:
            kind = label.WhichOneof("geometry")
            if task == T.EVALUATION_TASK_DETECTION_2D and kind == "box_2d":
                b = label.box_2d
                if label.classification not in index:
                    continue
                side.boxes.append((b.left, b.top, b.width, b.height))
                # Ground truth is ranged by its COCO area where it has one (a segmentation's area, for real COCO
                # data); detections always by w·h, as pycocotools' loadRes sets it for box results.
                given = coco_area(label) if truth else None
                side.area.append(b.width * b.height if given is None else given)
                _common(side, f, index[label.classification], label, b.iscrowd)
            elif task == T.EVALUATION_TASK_INSTANCE_SEGMENTATION_2D and kind == "polygon_list_2d":
                if label.classification not in index:
                    continue
                h, w = _image_size(pair.truth, label.sensor_id)
                polys = [
                    np.array([(v.x, v.y) for v in poly.vertices], np.float64).ravel()
                    for poly in label.polygon_list_2d.polygons
                ]
                if not h:
                    h = int(max((p[1::2].max() for p in polys if p.size), default=0)) + 1
                    w = int(max((p[0::2].max() for p in polys if p.size), default=0)) + 1
                m = coco.Mask.crop(coco.polygon_mask(polys, h, w))
                _add_mask(side, m, f, index[label.classification], label)
            elif task == T.EVALUATION_TASK_INSTANCE_SEGMENTATION_2D and kind == "instance_segmentation_2d":
                pixels = masks(label.instance_segmentation_2d.mask_url)
                for inst in label.instance_segmentation_2d.instances:
                    if inst.classification not in index:
                        continue
                    m = coco.Mask.crop(pixels == inst.id)
                    sub = label_pb2.Label()
                    sub.CopyFrom(label)
                    sub.label_id = f"{label.label_id}#{inst.id}"
                    _add_mask(side, m, f, index[inst.classification], sub)
            elif task == T.EVALUATION_TASK_CUBOID_3D and kind == "cuboid_3d":
                if label.classification not in index:
                    continue
                c = label.cuboid_3d
                box3 = (
                    c.position.x,
                    c.position.y,
                    c.position.z,
                    c.dimensions.x,
                    c.dimensions.y,
                    c.dimensions.z,
                    _yaw(c.rotation),
                )
                side.cuboids.append(box3)
                side.area.append(box3[3] * box3[4])
                _common(side, f, index[label.classification], label, False)
    return side


def _collect_keypoints(pairs: Sequence[Pair], classes: Classes, truth: bool) -> Side:
    """Keypoint labels as columns: points are placed by name into their class's rig order (one flat pass over the
    keypoints, then one array assignment), boxes and areas computed for all labels at once."""
    side = Side()
    index = classes.index
    where = {name: {k.name: i for i, k in enumerate(classes.entries[name].keypoints)} for name in classes.names}
    width = max((len(w) for w in where.values()), default=0)
    rows: list[int] = []
    cols: list[int] = []
    values: list[tuple[float, float, bool]] = []
    given: list[tuple[float, float, float, float]] = []
    areas: list[float | None] = []
    not_labeled = label_pb2.KEYPOINT_VISIBILITY_NOT_LABELED
    for f, pair in enumerate(pairs):
        labels: Iterable[label_pb2.Label] = pair.truth.labels if truth else pair.prediction.labels
        for label in labels:
            if label.WhichOneof("geometry") != "keypoints_2d" or label.classification not in index:
                continue
            rig = where[label.classification]
            row = len(given)
            for kp in label.keypoints_2d.keypoints:
                i = rig.get(kp.name)
                if i is not None:
                    rows.append(row)
                    cols.append(i)
                    values.append((kp.x, kp.y, kp.visibility != not_labeled))
            b = label.keypoints_2d.box
            given.append((b.left, b.top, b.width, b.height))
            areas.append(coco_area(label))
            _common(side, f, index[label.classification], label, False)
    n = len(given)
    pts = np.full((n, width, 3), np.inf)
    pts[:, :, 2] = 0
    if rows:
        pts[np.array(rows), np.array(cols)] = np.array(values, np.float64)
    labeled: Bool = pts[:, :, 2] > 0
    finite: Bool = np.isfinite(pts[:, :, 0])
    use = labeled if truth else finite
    with np.errstate(invalid="ignore"):
        x0 = np.where(use, pts[:, :, 0], np.inf).min(axis=1, initial=np.inf)
        y0 = np.where(use, pts[:, :, 1], np.inf).min(axis=1, initial=np.inf)
        x1 = np.where(use, pts[:, :, 0], -np.inf).max(axis=1, initial=-np.inf)
        y1 = np.where(use, pts[:, :, 1], -np.inf).max(axis=1, initial=-np.inf)
    extent = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
    box = np.array(given, np.float64).reshape(n, 4)
    has_box = (box[:, 2] > 0) & (box[:, 3] > 0)
    any_use: Bool = np.asarray(use.any(axis=1))
    box = np.where(has_box[:, None], box, np.where(any_use[:, None], extent, 0.0))
    side.boxes = [(float(a), float(b), float(c), float(d)) for a, b, c, d in box.tolist()]
    side.points = list(pts)
    if truth:
        side.area = (box[:, 2] * box[:, 3]).tolist()
        side.ignore = [not a for a in np.asarray(labeled.any(axis=1)).tolist()]
    else:  # as pycocotools' loadRes: the extent of the predicted points
        side.area = np.where(finite.any(axis=1), extent[:, 2] * extent[:, 3], 0.0).tolist()
    # An imported COCO annotation's own area wins: ground truth's (ranges and OKS), a detection's as loadRes set it.
    side.area = [a if a is not None else computed for a, computed in zip(areas, side.area, strict=True)]
    return side


def _common(
    side: Side, frame: int, category: int, label: label_pb2.Label, crowd: bool, *, ignore: bool = False
) -> None:
    side.frame.append(frame)
    side.category.append(category)
    side.label_id.append(label.label_id)
    side.crowd.append(bool(crowd))
    side.ignore.append(ignore)
    side.score.append(float(label.confidence) if label.HasField("confidence") else 1.0)


def _add_mask(side: Side, m: coco.Mask, frame: int, category: int, label: label_pb2.Label) -> None:
    side.masks.append(m)
    given = coco_area(label)  # COCO's area of an imported annotation, else the mask's as pycocotools computes it
    side.area.append(float(m.area) if given is None else given)
    side.boxes.append((float(m.left), float(m.top), float(m.pixels.shape[1]), float(m.pixels.shape[0])))
    _common(side, frame, category, label, False)


def _box_array(side: Side) -> F64:
    return np.array(side.boxes, np.float64).reshape(-1, 4)


def _overlap(
    task: Task, params: evaluation_pb2.EvaluationParams, gt: Side, dt: Side, classes: Classes, *, bev: bool = False
) -> coco.PairOverlap:
    crowd = np.array(gt.crowd, bool)
    if task == T.EVALUATION_TASK_DETECTION_2D:
        return coco.box_overlap(_box_array(dt), _box_array(gt), crowd)
    if task == T.EVALUATION_TASK_INSTANCE_SEGMENTATION_2D:
        return coco.mask_overlap(dt.masks, gt.masks, crowd)
    if task == T.EVALUATION_TASK_KEYPOINTS_2D:
        sigmas = _sigmas(params, classes)
        width = sigmas.shape[1]
        gp = np.array(gt.points, np.float64).reshape(-1, width, 3)
        dp = np.array(dt.points, np.float64).reshape(-1, width, 3)
        rig_size = np.array([len(classes.entries[n].keypoints) for n in classes.names], np.int64)
        valid = (
            np.arange(width)[None, :] < rig_size[np.array(dt.category, np.int64)][:, None]
            if dt.category
            else np.zeros((0, width), bool)
        )
        return coco.keypoint_overlap(
            dp[:, :, :2],
            gp[:, :, :2],
            gt_visible=gp[:, :, 2] > 0,
            gt_boxes=_box_array(gt),
            gt_area=np.array(gt.area, np.float64),
            sigmas=sigmas[np.array(gt.category, np.int64)] if gt.category else np.zeros((0, width)),
            dt_valid=valid,
        )
    if task == T.EVALUATION_TASK_CUBOID_3D:
        return cuboid_overlap(
            np.array(dt.cuboids, np.float64).reshape(-1, 7), np.array(gt.cuboids, np.float64).reshape(-1, 7), bev=bev
        )
    raise InvalidArgument.of([FieldViolation("params.task", "is not an instance task")])


def _sigmas(params: evaluation_pb2.EvaluationParams, classes: Classes) -> F64:
    width = max((len(classes.entries[n].keypoints) for n in classes.names), default=0)
    out = np.ones((len(classes.names), max(width, 1)))
    for k, name in enumerate(classes.names):
        override = params.keypoint_sigmas.get(name) if name in params.keypoint_sigmas else None
        for i, kp in enumerate(classes.entries[name].keypoints):
            if override is not None and kp.name in override.sigmas:
                out[k, i] = override.sigmas[kp.name]
            elif kp.sigma > 0:
                out[k, i] = kp.sigma
            else:
                out[k, i] = COCO_PERSON_SIGMAS.get(kp.name, DEFAULT_SIGMA)
    return out


def cuboid_overlap(dt: F64, gt: F64, *, bev: bool) -> coco.PairOverlap:
    """Bird's-eye-view or 3-D IoU of cuboids (x, y, z, length, width, height, yaw), rotation about z."""

    def footprint(c: F64) -> np.ndarray:
        if c.shape[0] == 0:
            return np.zeros(0, dtype=object)
        half = np.stack([c[:, 3] / 2, c[:, 4] / 2], axis=1)
        signs = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], np.float64)
        local = signs[None] * half[:, None, :]
        cos, sin = np.cos(c[:, 6])[:, None], np.sin(c[:, 6])[:, None]
        x = c[:, 0:1] + local[:, :, 0] * cos - local[:, :, 1] * sin
        y = c[:, 1:2] + local[:, :, 0] * sin + local[:, :, 1] * cos
        polygons: np.ndarray = shapely.polygons(np.stack([x, y], axis=2))
        return polygons

    d_poly, g_poly = footprint(dt), footprint(gt)

    def overlap(d: I64, g: I64) -> F64:
        if d.size == 0:
            return np.zeros(0)
        inter = shapely.area(shapely.intersection(d_poly[d], g_poly[g]))
        a, b = dt[d], gt[g]
        if bev:
            union = a[:, 3] * a[:, 4] + b[:, 3] * b[:, 4] - inter
        else:
            top = np.minimum(a[:, 2] + a[:, 5] / 2, b[:, 2] + b[:, 5] / 2)
            bottom = np.maximum(a[:, 2] - a[:, 5] / 2, b[:, 2] - b[:, 5] / 2)
            inter = inter * np.maximum(0.0, top - bottom)
            union = a[:, 3] * a[:, 4] * a[:, 5] + b[:, 3] * b[:, 4] * b[:, 5] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, inter / union, 0.0)

    return overlap


def instances(
    pairs: Sequence[Pair], task: Task, params: evaluation_pb2.EvaluationParams, classes: Classes, masks: MaskLoader
) -> Outcome:
    gt = _collect(pairs, task, classes, masks, truth=True)
    dt = _collect(pairs, task, classes, masks, truth=False)
    conf = params.confidence_threshold
    if conf > 0:
        dt = _filter(dt, np.array(dt.score) >= conf)
    p = coco_params(params, task)
    gi, di = gt.instances(), dt.instances()
    result = evaluation_pb2.EvaluationResult()
    keypoints = task == T.EVALUATION_TASK_KEYPOINTS_2D
    if task == T.EVALUATION_TASK_CUBOID_3D:
        for bev, tag in ((True, "BEV"), (False, "3D")):
            r = coco.evaluate(gi, di, len(classes.names), _overlap(task, params, gt, dt, classes, bev=bev), p)
            result.metrics[f"AP_{tag}"] = r.mean_precision()
            result.metrics[f"AR_{tag}"] = r.mean_recall()
            for t in p.iou_thresholds:
                result.metrics[f"AP_{tag}@{t:g}"] = r.mean_precision(iou=float(t))
            _per_class(result, r, classes, gi, prefix=f"{tag}_")
            if not bev:
                _curves(result, r, classes)
        _summary_support(result, gi, classes)
        main = coco.evaluate(gi, di, len(classes.names), _overlap(task, params, gt, dt, classes, bev=True), p)
    else:
        main = coco.evaluate(gi, di, len(classes.names), _overlap(task, params, gt, dt, classes), p)
        rows, _ = coco.summarize(main, keypoints=keypoints) if _standard(p, keypoints) else (_general(main), None)
        for name, value in rows:
            result.metrics[name] = value
        _per_class(result, main, classes, gi)
        _curves(result, main, classes)
    outcome = Outcome(result)
    if task in (
        T.EVALUATION_TASK_DETECTION_2D,
        T.EVALUATION_TASK_INSTANCE_SEGMENTATION_2D,
        T.EVALUATION_TASK_CUBOID_3D,
    ):
        matched = confusion(
            pairs, gt, dt, params=params, classes=classes, overlap=_overlap(task, params, gt, dt, classes, bev=True)
        )
        result.confusion_matrix.CopyFrom(matched.matrix)
        outcome.matches = matched.frames
        outcome.candidates = matched.candidates
    return outcome


def _standard(p: coco.CocoParams, keypoints: bool) -> bool:
    names = [a[0] for a in p.area_ranges]
    if keypoints:
        return names == ["all", "medium", "large"] and 0.5 in p.iou_thresholds and 0.75 in p.iou_thresholds
    return (
        names == ["all", "small", "medium", "large"]
        and len(p.max_dets) == 3
        and 0.5 in p.iou_thresholds
        and 0.75 in p.iou_thresholds
    )


def _general(r: coco.CocoResult) -> list[tuple[str, float]]:
    """Headline figures for parameters other than COCO's: AP and AR per area range and detection cap."""
    rows = [("AP", r.mean_precision())]
    for t in r.params.iou_thresholds:
        rows.append((f"AP@{t:g}", r.mean_precision(iou=float(t))))
    for name, _, _ in r.params.area_ranges:
        rows.append((f"AP_{name}", r.mean_precision(area=name)))
        for m in r.params.max_dets:
            rows.append((f"AR{m}_{name}", r.mean_recall(area=name, max_dets=int(m))))
    return rows


def _per_class(
    result: evaluation_pb2.EvaluationResult, r: coco.CocoResult, classes: Classes, gi: coco.Instances, prefix: str = ""
) -> None:
    support = np.bincount(gi.category[~gi.crowd & ~gi.ignore], minlength=len(classes.names))
    existing = {c.class_name: c for c in result.per_class}
    thr = list(r.params.iou_thresholds)
    for k, name in enumerate(classes.names):
        entry = existing.get(name) or result.per_class.add(
            class_name=name, class_id=classes.ids[k], support=int(support[k])
        )
        entry.metrics[f"{prefix}AP"] = r.class_precision(k)
        for t in (0.5, 0.75):
            if t in thr:
                entry.metrics[f"{prefix}AP{int(t * 100)}"] = r.class_precision(k, iou=t)
        rec = r.recall[:, k, 0, -1]
        entry.metrics[f"{prefix}AR"] = float(np.mean(rec[rec > -1])) if (rec > -1).any() else -1.0


def _summary_support(result: evaluation_pb2.EvaluationResult, gi: coco.Instances, classes: Classes) -> None:
    result.metrics["ground_truth_instances"] = float(np.count_nonzero(~gi.crowd & ~gi.ignore))


def _curves(result: evaluation_pb2.EvaluationResult, r: coco.CocoResult, classes: Classes) -> None:
    recall_points = r.params.recall_thresholds.tolist()
    for t in (0.5, 0.75):
        hits = np.where(r.params.iou_thresholds == t)[0]
        if hits.size == 0:
            continue
        ti = int(hits[0])
        prec = r.precision[ti, :, :, 0, -1]  # [R, K]
        for k, name in enumerate(classes.names):
            if (prec[:, k] > -1).all():
                result.pr_curves.add(
                    class_name=name,
                    iou_threshold=t,
                    recall=recall_points,
                    precision=prec[:, k].tolist(),
                    confidence=r.scores[ti, :, k, 0, -1].tolist(),
                )
        with_truth = np.asarray((prec > -1).any(axis=0), bool)  # classes with ground truth
        if with_truth.any():
            mean = prec[:, with_truth].mean(axis=1)
            result.pr_curves.add(class_name="", iou_threshold=t, recall=recall_points, precision=mean.tolist())


def _filter(side: Side, keep: Bool) -> Side:
    out = Side()
    for name in (
        "frame",
        "category",
        "label_id",
        "crowd",
        "ignore",
        "score",
        "area",
        "boxes",
        "masks",
        "points",
        "cuboids",
    ):
        values = getattr(side, name)
        if values:
            setattr(out, name, [v for v, k in zip(values, keep, strict=True) if k])
    return out


# confusion matrix, per-frame matches and label-error candidates ---------------------------------------------------


@dataclass
class Confusion:
    matrix: evaluation_pb2.ConfusionMatrix
    frames: list[evaluation_pb2.FrameMatches]
    candidates: list[evaluation_pb2.LabelErrorCandidate]


def confusion(
    pairs: Sequence[Pair],
    gt: Side,
    dt: Side,
    *,
    params: evaluation_pb2.EvaluationParams,
    classes: Classes,
    overlap: coco.PairOverlap,
) -> Confusion:
    """Class-agnostic greedy matching at one IoU and confidence threshold (a same-class partner preferred), the
    confusion matrix it gives (with a background row and column), per-frame matches, and label-error candidates."""
    iou_thr = params.match_iou_threshold or DEFAULT_MATCH_IOU
    conf_thr = params.match_confidence_threshold or DEFAULT_MATCH_CONFIDENCE
    n_k = len(classes.names)
    g_cat, d_cat = np.array(gt.category, np.int64), np.array(dt.category, np.int64)
    g_frame, d_frame = np.array(gt.frame, np.int64), np.array(dt.frame, np.int64)
    score = np.array(dt.score, np.float64)
    crowd = np.array(gt.crowd, bool)
    confident = score >= conf_thr

    # Every (prediction, ground truth) pair in a frame, with its overlap.
    g_order = np.argsort(g_frame, kind="stable")
    lo = np.searchsorted(g_frame[g_order], d_frame, side="left")
    hi = np.searchsorted(g_frame[g_order], d_frame, side="right")
    counts = hi - lo
    pd = np.repeat(np.arange(d_frame.shape[0]), counts)
    pg = g_order[np.repeat(lo, counts) + (np.arange(pd.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts))]
    piou = np.asarray(overlap(pd, pg), np.float64) if pd.size else np.zeros(0)
    same = d_cat[pd] == g_cat[pg]

    # Matching: confident predictions only; value = IoU, plus 1 for a same-class partner, 0 below the threshold.
    def agnostic(d: I64, g: I64) -> F64:
        rows = dt_rows[d]
        iou = np.asarray(overlap(rows, g), np.float64)
        return np.where(iou >= iou_thr, iou + (d_cat[rows] == g_cat[g]), 0.0)

    dt_rows = np.flatnonzero(confident)
    gi = coco.Instances.make(g_frame, np.zeros_like(g_frame), np.zeros(len(g_frame)), crowd=crowd)
    di = coco.Instances.make(
        d_frame[dt_rows], np.zeros(dt_rows.shape[0], np.int64), np.zeros(dt_rows.shape[0]), score=score[dt_rows]
    )
    m = coco.match(
        gi,
        di,
        1,
        agnostic,
        coco.CocoParams(iou_thresholds=np.array([iou_thr]), area_ranges=(("all", 0.0, np.inf),), max_dets=(10**9,)),
    )
    partner = np.full(len(dt.frame), -1, np.int64)
    partner[dt_rows[m.dt_index]] = m.matched_gt[0, 0]
    taken_by = np.full(len(gt.frame), -1, np.int64)
    has = partner >= 0
    taken_by[partner[has]] = np.flatnonzero(has)

    labels = [*classes.names, BACKGROUND if BACKGROUND not in classes.names else f"({BACKGROUND})"]
    counts_m = np.zeros((n_k + 1, n_k + 1), np.int64)
    per_frame: dict[int, list[evaluation_pb2.Match]] = defaultdict(list)
    with_partner = np.flatnonzero(partner >= 0)
    partner_iou = np.zeros(len(dt.frame))
    if with_partner.size:
        partner_iou[with_partner] = overlap(with_partner, partner[with_partner])
    for d in np.flatnonzero(confident):
        g = int(partner[d])
        if g >= 0 and crowd[g]:
            continue  # a prediction inside a crowd region counts neither way
        if g >= 0:
            counts_m[g_cat[g], d_cat[d]] += 1
            kind = (
                evaluation_pb2.MATCH_KIND_TRUE_POSITIVE
                if g_cat[g] == d_cat[d]
                else evaluation_pb2.MATCH_KIND_CLASS_MISMATCH
            )
            per_frame[int(d_frame[d])].append(
                evaluation_pb2.Match(
                    kind=kind,
                    ground_truth_label_id=gt.label_id[g],
                    prediction_label_id=dt.label_id[d],
                    ground_truth_class=classes.names[g_cat[g]],
                    prediction_class=classes.names[d_cat[d]],
                    iou=float(partner_iou[d]),
                    confidence=score[d],
                )
            )
        else:
            counts_m[n_k, d_cat[d]] += 1
            per_frame[int(d_frame[d])].append(
                evaluation_pb2.Match(
                    kind=evaluation_pb2.MATCH_KIND_FALSE_POSITIVE,
                    prediction_label_id=dt.label_id[d],
                    prediction_class=classes.names[d_cat[d]],
                    confidence=score[d],
                )
            )
    for g in np.flatnonzero((taken_by < 0) & ~crowd).tolist():
        counts_m[g_cat[g], n_k] += 1
        per_frame[int(g_frame[g])].append(
            evaluation_pb2.Match(
                kind=evaluation_pb2.MATCH_KIND_FALSE_NEGATIVE,
                ground_truth_label_id=gt.label_id[g],
                ground_truth_class=classes.names[g_cat[g]],
            )
        )
    matrix = evaluation_pb2.ConfusionMatrix(labels=labels)
    matrix.counts.rows = n_k + 1
    matrix.counts.columns = n_k + 1
    matrix.counts.values.extend(counts_m.astype(np.float64).ravel().tolist())
    frames = [evaluation_pb2.FrameMatches(frame_id=pairs[f].frame_id, matches=per_frame[f]) for f in sorted(per_frame)]
    cands = label_errors(
        pairs,
        gt,
        dt,
        classes=classes,
        pd=pd,
        pg=pg,
        piou=piou,
        same=same,
        confident=confident,
        crowd=crowd,
        iou_thr=iou_thr,
    )
    return Confusion(matrix, frames, cands)


def label_errors(
    pairs: Sequence[Pair],
    gt: Side,
    dt: Side,
    *,
    classes: Classes,
    pd: I64,
    pg: I64,
    piou: F64,
    same: Bool,
    confident: Bool,
    crowd: Bool,
    iou_thr: float,
) -> list[evaluation_pb2.LabelErrorCandidate]:
    """Rank labels by how likely they are wrong, judging the ground truth by a confident model.

    Each ground-truth label is looked at once, in this order: its best same-class confident prediction overlaps it
    but loosely (LOOSE_BOX, score confidence × (1 − IoU)); else a confident prediction of another class covers it
    (WRONG_CLASS, confidence × IoU); else no prediction comes near it (UNMATCHED_GROUND_TRUTH, 0.3 × (1 − best IoU
    with any prediction)). Then each confident prediction that no ground truth comes near and that no candidate
    above used is a MISSING_LABEL, scored by its confidence."""
    r = evaluation_pb2
    score = np.array(dt.score, np.float64)
    n_g = len(gt.frame)
    out: list[r.LabelErrorCandidate] = []
    used = np.zeros(len(dt.frame), bool)
    names = classes.names
    g_cat, d_cat = np.array(gt.category, np.int64), np.array(dt.category, np.int64)

    def best(mask: Bool) -> tuple[I64, F64]:
        """Per ground truth, the pair (index into pairs) with the highest IoU among `mask`, or -1."""
        idx = np.full(n_g, -1, np.int64)
        val = np.full(n_g, -1.0)
        sel = np.flatnonzero(mask)
        if sel.size:
            order = sel[np.lexsort((piou[sel], pg[sel]))]
            last = np.r_[pg[order][1:] != pg[order][:-1], True]
            idx[pg[order][last]] = order[last]
            val[pg[order][last]] = piou[order][last]
        return idx, val

    conf_pair = confident[pd] if pd.size else np.zeros(0, bool)
    same_idx, same_iou = best(conf_pair & same)
    other_idx, other_iou = best(conf_pair & ~same & (piou >= iou_thr))
    _, any_iou = best(np.ones(pd.shape[0], bool))
    for g in range(n_g):
        if crowd[g]:
            continue
        frame_id = pairs[gt.frame[g]].frame_id
        if same_idx[g] >= 0 and NEAR_IOU <= same_iou[g] < LOOSE_IOU:
            d = int(pd[same_idx[g]])
            used[d] = True
            out.append(
                r.LabelErrorCandidate(
                    frame_id=frame_id,
                    ground_truth_label_id=gt.label_id[g],
                    prediction_label_id=dt.label_id[d],
                    reason=r.LABEL_ERROR_REASON_LOOSE_BOX,
                    score=float(score[d] * (1 - same_iou[g])),
                    description=(
                        f"{names[g_cat[g]]} matched by a {score[d]:.2f}-confident prediction at IoU {same_iou[g]:.2f}"
                    ),
                )
            )
        elif same_iou[g] < NEAR_IOU and other_idx[g] >= 0:
            d = int(pd[other_idx[g]])
            used[d] = True
            out.append(
                r.LabelErrorCandidate(
                    frame_id=frame_id,
                    ground_truth_label_id=gt.label_id[g],
                    prediction_label_id=dt.label_id[d],
                    reason=r.LABEL_ERROR_REASON_WRONG_CLASS,
                    score=float(score[d] * other_iou[g]),
                    description=(
                        f"labeled {names[g_cat[g]]}, predicted {names[d_cat[d]]} with confidence {score[d]:.2f} "
                        f"at IoU {other_iou[g]:.2f}"
                    ),
                )
            )
        elif any_iou[g] < NEAR_IOU:
            out.append(
                r.LabelErrorCandidate(
                    frame_id=frame_id,
                    ground_truth_label_id=gt.label_id[g],
                    reason=r.LABEL_ERROR_REASON_UNMATCHED_GROUND_TRUTH,
                    score=float(0.3 * (1 - max(any_iou[g], 0.0))),
                    description=f"{names[g_cat[g]]} with no prediction near it (best IoU {max(any_iou[g], 0.0):.2f})",
                )
            )
    # Predictions: the best overlap with any ground truth.
    d_best = np.zeros(len(dt.frame))
    if pd.size:
        np.maximum.at(d_best, pd, piou)
    for d in np.flatnonzero(confident & ~used & (d_best < NEAR_IOU)).tolist():
        out.append(
            r.LabelErrorCandidate(
                frame_id=pairs[dt.frame[d]].frame_id,
                prediction_label_id=dt.label_id[d],
                reason=r.LABEL_ERROR_REASON_MISSING_LABEL,
                score=float(score[d]),
                description=f"{names[d_cat[d]]} predicted with confidence {score[d]:.2f} where nothing is labeled",
            )
        )
    out.sort(key=lambda c: (-c.score, c.frame_id, c.ground_truth_label_id, c.prediction_label_id))
    return out


# classification --------------------------------------------------------------------------------------------------


def classification(pairs: Sequence[Pair], params: evaluation_pb2.EvaluationParams, classes: Classes) -> Outcome:
    index = classes.index
    n_k = len(classes.names)
    truth, top1, ranked, frames, pred_ids, conf = [], [], [], [], [], []
    for f, pair in enumerate(pairs):
        g = next(
            (
                lb
                for lb in pair.truth.labels
                if lb.WhichOneof("geometry") == "classification_2d" and lb.classification in index
            ),
            None,
        )
        if g is None:
            continue
        preds = sorted(
            (
                lb
                for lb in pair.prediction.labels
                if lb.WhichOneof("geometry") == "classification_2d" and lb.classification in index
            ),
            key=lambda lb: -(lb.confidence if lb.HasField("confidence") else 1.0),
        )
        truth.append(index[g.classification])
        top1.append(index[preds[0].classification] if preds else n_k)
        ranked.append([index[lb.classification] for lb in preds])
        frames.append(f)
        pred_ids.append((g.label_id, preds[0].label_id if preds else ""))
        conf.append(preds[0].confidence if preds and preds[0].HasField("confidence") else 1.0)
    y, p = np.array(truth, np.int64), np.array(top1, np.int64)
    cm = np.zeros((n_k + 1, n_k + 1), np.int64)
    np.add.at(cm, (y, p), 1)
    result = evaluation_pb2.EvaluationResult()
    n = y.shape[0]
    result.metrics["accuracy"] = float((y == p).mean()) if n else 0.0
    tp = np.diag(cm)[:n_k].astype(np.float64)
    predicted = cm[:, :n_k].sum(axis=0).astype(np.float64)
    actual = cm[:n_k, :].sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = actual > 0
    result.metrics["macro_precision"] = float(precision[present].mean()) if present.any() else 0.0
    result.metrics["macro_recall"] = float(recall[present].mean()) if present.any() else 0.0
    result.metrics["macro_f1"] = float(f1[present].mean()) if present.any() else 0.0
    result.metrics["weighted_f1"] = float((f1 * actual).sum() / actual.sum()) if actual.sum() else 0.0
    if params.top_k > 1 and any(len(r) > 1 for r in ranked):
        k = int(params.top_k)
        result.metrics[f"top_{k}_accuracy"] = (
            float(np.mean([t in r[:k] for t, r in zip(truth, ranked, strict=True)])) if n else 0.0
        )
    for k, name in enumerate(classes.names):
        c = result.per_class.add(class_name=name, class_id=classes.ids[k], support=int(actual[k]))
        c.metrics["precision"] = float(precision[k])
        c.metrics["recall"] = float(recall[k])
        c.metrics["f1"] = float(f1[k])
    keep = np.r_[np.ones(n_k, bool), cm[:, n_k].any() or cm[n_k, :].any()]
    labels = [*classes.names, NONE]
    sub = cm[np.ix_(keep, keep)]
    result.confusion_matrix.labels.extend([lb for lb, k in zip(labels, keep, strict=True) if k])
    result.confusion_matrix.counts.rows = sub.shape[0]
    result.confusion_matrix.counts.columns = sub.shape[1]
    result.confusion_matrix.counts.values.extend(sub.astype(np.float64).ravel().tolist())
    outcome = Outcome(result)
    conf_thr = params.match_confidence_threshold or DEFAULT_MATCH_CONFIDENCE
    for i, f in enumerate(frames):
        kind = evaluation_pb2.MATCH_KIND_TRUE_POSITIVE if y[i] == p[i] else evaluation_pb2.MATCH_KIND_CLASS_MISMATCH
        pred_class = classes.names[p[i]] if p[i] < n_k else ""
        outcome.matches.append(
            evaluation_pb2.FrameMatches(
                frame_id=pairs[f].frame_id,
                matches=[
                    evaluation_pb2.Match(
                        kind=kind if pred_class else evaluation_pb2.MATCH_KIND_FALSE_NEGATIVE,
                        ground_truth_label_id=pred_ids[i][0],
                        prediction_label_id=pred_ids[i][1],
                        ground_truth_class=classes.names[y[i]],
                        prediction_class=pred_class,
                        confidence=conf[i],
                    )
                ],
            )
        )
        if pred_class and y[i] != p[i] and conf[i] >= conf_thr:
            outcome.candidates.append(
                evaluation_pb2.LabelErrorCandidate(
                    frame_id=pairs[f].frame_id,
                    ground_truth_label_id=pred_ids[i][0],
                    prediction_label_id=pred_ids[i][1],
                    reason=evaluation_pb2.LABEL_ERROR_REASON_WRONG_CLASS,
                    score=float(conf[i]),
                    description=f"labeled {classes.names[y[i]]}, predicted {pred_class} with confidence {conf[i]:.2f}",
                )
            )
    outcome.candidates.sort(key=lambda c: (-c.score, c.frame_id))
    return outcome


# semantic segmentation -------------------------------------------------------------------------------------------


def semantic_segmentation(pairs: Sequence[Pair], classes: Classes, masks: MaskLoader) -> Outcome:
    """Per-class IoU, mIoU and pixel accuracy from class-id masks; pixels whose ground truth is a class not evaluated
    (ignored in evaluation, or not in the class map) count nowhere."""
    lut = np.full(256, -1, np.int64)
    for k, cid in enumerate(classes.ids):
        if 0 <= cid < 256:
            lut[cid] = k
    n_k = len(classes.names)
    cm = np.zeros((n_k + 1, n_k + 1), np.int64)  # last column: predicted pixels of classes not evaluated
    for pair in pairs:
        g = next((lb for lb in pair.truth.labels if lb.WhichOneof("geometry") == "semantic_segmentation_2d"), None)
        d = next((lb for lb in pair.prediction.labels if lb.WhichOneof("geometry") == "semantic_segmentation_2d"), None)
        if g is None or d is None:
            continue
        gm, dm = masks(g.semantic_segmentation_2d.mask_url), masks(d.semantic_segmentation_2d.mask_url)
        if gm.shape != dm.shape:
            raise InvalidArgument.of(
                [
                    FieldViolation(
                        f"frames[{pair.frame_id}].labels[{d.label_id}].semantic_segmentation_2d.mask_url",
                        f"prediction mask is {dm.shape[1]}×{dm.shape[0]}, ground truth {gm.shape[1]}×{gm.shape[0]}",
                    )
                ],
                reason="MASK_SIZE_MISMATCH",
            )
        gk, dk = lut[gm.ravel()], lut[dm.ravel()]
        valid = gk >= 0
        dk = np.where(dk >= 0, dk, n_k)
        cm += np.bincount(gk[valid] * (n_k + 1) + dk[valid], minlength=(n_k + 1) ** 2).reshape(n_k + 1, n_k + 1)
    tp = np.diag(cm)[:n_k].astype(np.float64)
    gt_px = cm[:n_k].sum(axis=1).astype(np.float64)
    pred_px = cm[:n_k, :n_k].sum(axis=0).astype(np.float64)
    union = gt_px + pred_px - tp
    result = evaluation_pb2.EvaluationResult()
    present = union > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(present, tp / union, 0.0)
        acc = np.where(gt_px > 0, tp / gt_px, 0.0)
    total = cm.sum()
    result.metrics["mIoU"] = float(iou[present].mean()) if present.any() else 0.0
    result.metrics["pixel_accuracy"] = float(tp.sum() / total) if total else 0.0
    result.metrics["mean_class_accuracy"] = float(acc[gt_px > 0].mean()) if (gt_px > 0).any() else 0.0
    freq = gt_px / gt_px.sum() if gt_px.sum() else gt_px
    result.metrics["frequency_weighted_IoU"] = float((freq * iou).sum())
    for k, name in enumerate(classes.names):
        c = result.per_class.add(class_name=name, class_id=classes.ids[k], support=int(gt_px[k]))
        c.metrics["iou"] = float(iou[k]) if present[k] else -1.0
        c.metrics["accuracy"] = float(acc[k]) if gt_px[k] else -1.0
    result.confusion_matrix.labels.extend([*classes.names, NONE])
    result.confusion_matrix.counts.rows = n_k + 1
    result.confusion_matrix.counts.columns = n_k + 1
    result.confusion_matrix.counts.values.extend(cm.astype(np.float64).ravel().tolist())
    return Outcome(result)


# custom metrics --------------------------------------------------------------------------------------------------


def custom_metrics(pairs: Sequence[Pair]) -> Mapping[str, float]:
    """Objectives averaged over the frames that carry them; confusion matrices summed and reported by accuracy."""
    sums: dict[str, float] = defaultdict(float)
    counts: Counter[str] = Counter()
    matrices: dict[str, np.ndarray] = {}
    for pair in pairs:
        for name, metric in pair.prediction.custom_metrics.items():
            if metric.WhichOneof("value") == "objective":
                if math.isfinite(metric.objective):
                    sums[name] += metric.objective
                    counts[name] += 1
            elif metric.WhichOneof("value") == "confusion_matrix":
                mat = metric.confusion_matrix
                arr = np.array(mat.values, np.float64).reshape(mat.rows, mat.columns)
                if name in matrices and matrices[name].shape == arr.shape:
                    matrices[name] += arr
                elif name not in matrices:
                    matrices[name] = arr
    out = {name: sums[name] / counts[name] for name in counts}
    for name, arr in matrices.items():
        total = arr.sum()
        out[f"{name}.accuracy"] = float(np.trace(arr) / total) if total else 0.0
    return out
