"""Evaluation tasks: ground truth and predictions of a set of frames → figures, per-frame matches and label-error
candidates. NumPy over the frames' Arrow columns (`shoal.metrics.frames`): each side's labels are flattened once and
read a field at a time; only masks (asset reads and rasterisation) are handled one label at a time."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from shoal import rigs
from shoal.kit.errors import FailedPrecondition, FieldViolation, InvalidArgument
from shoal.metrics import coco
from shoal.metrics.coco import F64, I64, Bool
from shoal.metrics.frames import (
    Frames,
    Labels,
    Pair,
    Strings,
    bools,
    column,
    elements,
    entries,
    floats,
    frame_keys,
    images,
    index_of,
)
from shoal.metrics.matching import DEFAULT_MATCH_CONFIDENCE, confusion
from shoal.v1 import evaluation_pb2, label_pb2, project_pb2

Task: TypeAlias = evaluation_pb2.EvaluationTask
T = evaluation_pb2

#: COCO's person rig OKS sigmas (used for any class whose keypoint names match and whose rig sets none).
COCO_PERSON_SIGMAS: Final = rigs.COCO_PERSON_SIGMAS
#: Sigma of a keypoint that is neither in COCO's rig nor given by its class: the mean of COCO's.
DEFAULT_SIGMA: Final = 0.072
#: Default IoU thresholds of 3-D cuboid AP.
CUBOID_IOU_THRESHOLDS: Final = (0.25, 0.5, 0.7)
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
_INTEGER_SQL: Final = "^-?[0-9]+$"
NOT_LABELED: Final = label_pb2.KEYPOINT_VISIBILITY_NOT_LABELED


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


def as_frames(frames: Frames | Sequence[Pair]) -> Frames:
    """Frames as columns; frames held as messages go through the tables' layout first."""
    return frames if isinstance(frames, Frames) else Frames.of(frames)


def infer_task(frames: Frames | Sequence[Pair]) -> Task:
    """The task the predictions' geometry calls for (the most common one; between equally common ones, the one
    seen first)."""
    kinds = list(_GEOMETRY_TASK)
    found = index_of(Labels.of(as_frames(frames).predictions).field("geometry"), kinds)
    found = found[found >= 0]
    if not found.size:
        raise FailedPrecondition(
            "the inference set has no labels whose geometry can be evaluated; name params.task",
            reason="NOTHING_TO_EVALUATE",
        )
    task_of = np.array([_GEOMETRY_TASK[k] for k in kinds], np.int64)[found]
    values, first, counts = np.unique(task_of, return_index=True, return_counts=True)
    most = counts == counts.max()
    winner = int(values[most][np.argmin(first[most])])
    return next(t for t in _GEOMETRY_TASK.values() if t == winner)


def check_task(frames: Frames | Sequence[Pair], task: Task) -> None:
    """Refuse a task that none of the predictions can be evaluated for."""
    frames = as_frames(frames)
    kinds = sorted(k for k, t in _GEOMETRY_TASK.items() if t == task)
    if len(frames) and not Labels.of(frames.predictions).kind(*kinds).any():
        raise FailedPrecondition(
            f"no prediction has a geometry the task can evaluate ({', '.join(kinds)})",
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


def image_order(frame_ids: pa.Array) -> I64:
    """Positions of `frame_ids` in the image order (`image_key`), computed on the column."""
    ids = frame_ids.cast(pa.string())
    integer = pc.match_substring_regex(ids, _INTEGER_SQL).fill_null(False)
    try:
        value = pc.if_else(integer, ids, pa.scalar("0")).cast(pa.int64())
    except (pa.ArrowInvalid, OverflowError):  # integers beyond int64: Python's own
        keys = frame_ids.to_pylist()
        return np.array(sorted(range(len(keys)), key=lambda i: image_key(keys[i])), np.int64)
    rank = pa.table({"kind": pc.invert(integer), "value": value, "id": ids})
    order = pc.sort_indices(rank, sort_keys=[("kind", "ascending"), ("value", "ascending"), ("id", "ascending")])
    return np.asarray(order.to_numpy(zero_copy_only=False), np.int64)


def in_image_order(frames: Frames | Sequence[Pair]) -> Frames:
    """`frames` in the image order. It decides how detections of equal score rank against each other across frames,
    so it must be pycocotools' for the figures to be its own."""
    frames = as_frames(frames)
    order = image_order(frames.predictions.column("frame_id").combine_chunks())
    if np.array_equal(order, np.arange(len(order))):
        return frames
    return frames.take(order)


def evaluate(
    frames: Frames | Sequence[Pair],
    task: Task,
    params: evaluation_pb2.EvaluationParams,
    classes: Classes,
    masks: MaskLoader,
) -> Outcome:
    """Figures of one task over `frames`, taken in the image order (see `image_key`)."""
    frames = in_image_order(frames)
    if task == T.EVALUATION_TASK_CLASSIFICATION_2D:
        outcome = classification(frames, params, classes)
    elif task == T.EVALUATION_TASK_SEMANTIC_SEGMENTATION_2D:
        outcome = semantic_segmentation(frames, classes, masks)
    else:
        outcome = instances(frames, task, params, classes, masks)
    outcome.result.frame_count = len(frames)
    outcome.result.custom_metrics.update(custom_metrics(frames))
    return outcome


# instance tasks (COCO protocol) ----------------------------------------------------------------------------------


@dataclass
class Side:
    """Ground truth or predictions of one geometry, one row per instance, as arrays."""

    frame: I64
    category: I64
    label_id: Strings
    crowd: Bool
    ignore: Bool
    score: F64
    area: F64
    boxes: F64  # [n, 4]: left, top, width, height
    masks: list[coco.Mask] = field(default_factory=list)
    points: F64 = field(default_factory=lambda: np.zeros((0, 0, 3)))  # [n, K, 3]: x, y, labeled
    cuboids: F64 = field(default_factory=lambda: np.zeros((0, 7)))  # [n, 7]: x, y, z, l, w, h, yaw

    @staticmethod
    def of(labels: Labels, rows: I64, category: I64, *, area: F64, boxes: F64, crowd: Bool | None = None) -> Side:
        """The labels `rows` of `labels`, with what every geometry has: frame, class, id, score."""
        n = len(rows)
        return Side(
            frame=labels.frame[rows],
            category=category,
            label_id=labels.strings(rows, "label_id"),
            crowd=np.zeros(n, bool) if crowd is None else crowd,
            ignore=np.zeros(n, bool),
            score=labels.scores(rows),
            area=area,
            boxes=boxes.reshape(n, 4),
        )

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    def instances(self) -> coco.Instances:
        return coco.Instances.make(
            self.frame, self.category, self.area, crowd=self.crowd, ignore=self.ignore, score=self.score
        )

    def take(self, rows: I64 | Bool) -> Side:
        index = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, np.int64)
        return Side(
            frame=self.frame[index],
            category=self.category[index],
            label_id=self.label_id[index],
            crowd=self.crowd[index],
            ignore=self.ignore[index],
            score=self.score[index],
            area=self.area[index],
            boxes=self.boxes[index],
            masks=[self.masks[i] for i in index.tolist()] if self.masks else [],
            points=self.points[index] if len(self.points) else self.points,
            cuboids=self.cuboids[index] if len(self.cuboids) else self.cuboids,
        )


def _collect(frames: Frames, task: Task, classes: Classes, masks: MaskLoader, truth: bool) -> Side:
    labels = Labels.of(frames.truth if truth else frames.predictions)
    category = labels.class_index(classes.names)
    if task == T.EVALUATION_TASK_KEYPOINTS_2D:
        return _collect_keypoints(labels, category, classes, truth)
    if task == T.EVALUATION_TASK_DETECTION_2D:
        return _collect_boxes(labels, category, truth)
    if task == T.EVALUATION_TASK_INSTANCE_SEGMENTATION_2D:
        return _collect_masks(frames, labels, category, classes.names, masks)
    if task == T.EVALUATION_TASK_CUBOID_3D:
        return _collect_cuboids(labels, category)
    rows = np.zeros(0, np.int64)
    return Side.of(labels, rows, rows, area=np.zeros(0), boxes=np.zeros((0, 4)))


def _box(labels: Labels, rows: I64, *path: str) -> F64:
    return np.stack([labels.floats(rows, *path, part) for part in ("left", "top", "width", "height")], axis=1)


def _collect_boxes(labels: Labels, category: I64, truth: bool) -> Side:
    rows = np.flatnonzero(labels.kind("box_2d") & (category >= 0))
    boxes = _box(labels, rows, "box_2d")
    area = boxes[:, 2] * boxes[:, 3]
    if truth:
        # Ground truth is ranged by its COCO area where it has one (a segmentation's area, for real COCO data): the
        # tables' derived `area` column, which is that attribute, else the box's w·h. Detections always by w·h, as
        # pycocotools' loadRes sets it for box results.
        stored = labels.floats(rows, "area", fill=np.nan)
        area = np.where(np.isnan(stored), area, stored)
    crowd = bools(labels.field("box_2d", "iscrowd").take(pa.array(rows, pa.int64())))
    return Side.of(labels, rows, category[rows], area=area, boxes=boxes, crowd=crowd)


def _collect_cuboids(labels: Labels, category: I64) -> Side:
    rows = np.flatnonzero(labels.kind("cuboid_3d") & (category >= 0))

    def part(*path: str) -> F64:
        return labels.floats(rows, "cuboid_3d", *path)

    qx, qy, qz, qw = (part("rotation", c) for c in "xyzw")
    w = np.where((qx != 0) | (qy != 0) | (qz != 0) | (qw != 0), qw, 1.0)  # an unset rotation is the identity
    # Yaw by math.atan2, as it always was computed: NumPy's arctan2 may differ from it in the last bit.
    sin, cos = 2.0 * (w * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz)
    yaw = np.fromiter(map(math.atan2, sin.tolist(), cos.tolist()), np.float64, count=len(rows))
    cuboids = np.stack([*(part("position", c) for c in "xyz"), *(part("dimensions", c) for c in "xyz"), yaw], axis=1)
    side = Side.of(labels, rows, category[rows], area=cuboids[:, 3] * cuboids[:, 4], boxes=np.zeros((len(rows), 4)))
    side.cuboids = cuboids.reshape(-1, 7)
    return side


def _image_sizes(frames: Frames, labels: Labels, rows: I64) -> tuple[I64, I64]:
    """(height, width) of the image each of the labels `rows` is on: the ground-truth frame's first image sensor
    with the label's sensor id (any image sensor for a label without one); 0 where there is none."""
    img_frame, img_sensor, width, height = images(frames.truth)
    frame = labels.frame[rows]
    sensor = labels.field("sensor_id").take(pa.array(rows, pa.int64())).fill_null("")
    exact = index_of(frame_keys(frame, sensor), frame_keys(img_frame, img_sensor))
    any_image = index_of(pa.array(frame, pa.int64()), pa.array(img_frame, pa.int64()))
    at = np.where(bools(pc.equal(sensor, "")), any_image, exact)
    found = at >= 0
    h, w = np.zeros(len(rows), np.int64), np.zeros(len(rows), np.int64)
    h[found], w[found] = height[at[found]], width[at[found]]
    return h, w


def _collect_masks(frames: Frames, labels: Labels, category: I64, names: list[str], masks: MaskLoader) -> Side:
    """Polygon and instance-mask labels as masks, in label order (an instance mask's instances in their order).
    Each mask is rasterised or read on its own; everything around it is read as columns."""
    polygons = np.flatnonzero(labels.kind("polygon_list_2d") & (category >= 0))
    mask_labels = np.flatnonzero(labels.kind("instance_segmentation_2d"))
    order: list[tuple[int, int]] = []  # (label row, instance position) of each mask
    found: list[coco.Mask] = []
    classes: list[int] = []
    suffix: list[str] = []
    if polygons.size:
        heights, widths = _image_sizes(frames, labels, polygons)
        owner, shapes = labels.children(polygons, "polygon_list_2d", "polygons")
        vertex_owner, vertices = elements(pc.struct_field(shapes, "vertices"))
        xy = np.empty(2 * len(vertices))
        xy[0::2] = floats(pc.struct_field(vertices, "x"))
        xy[1::2] = floats(pc.struct_field(vertices, "y"))
        shape_ends = 2 * np.r_[0, np.cumsum(np.bincount(vertex_owner, minlength=len(shapes)))]
        label_ends = np.r_[0, np.cumsum(np.bincount(owner, minlength=len(polygons)))]
        for i, row in enumerate(polygons.tolist()):
            polys = [xy[shape_ends[s] : shape_ends[s + 1]] for s in range(label_ends[i], label_ends[i + 1])]
            h, w = int(heights[i]), int(widths[i])
            if not h:
                h = int(max((p[1::2].max() for p in polys if p.size), default=0)) + 1
                w = int(max((p[0::2].max() for p in polys if p.size), default=0)) + 1
            order.append((row, 0))
            found.append(coco.Mask.crop(coco.polygon_mask(polys, h, w)))
            classes.append(int(category[row]))
            suffix.append("")
    if mask_labels.size:
        urls = labels.strings(mask_labels, "instance_segmentation_2d", "mask_url").tolist()
        owner, mapped = labels.children(mask_labels, "instance_segmentation_2d", "instances")
        ids = pc.struct_field(mapped, "id").fill_null(0).to_pylist()
        mapped_class = index_of(pc.struct_field(mapped, "classification"), names)
        ends = np.r_[0, np.cumsum(np.bincount(owner, minlength=len(mask_labels)))].tolist()
        for i, row in enumerate(mask_labels.tolist()):
            pixels = masks(urls[i])  # read even when none of its instances is evaluated: an unreadable mask fails
            for j in range(ends[i], ends[i + 1]):
                if mapped_class[j] < 0:
                    continue
                order.append((row, j - ends[i]))
                found.append(coco.Mask.crop(pixels == ids[j]))
                classes.append(int(mapped_class[j]))
                suffix.append(f"#{ids[j]}")
    at = np.array(order, np.int64).reshape(-1, 2)
    sort = np.lexsort((at[:, 1], at[:, 0]))
    rows = at[sort, 0]
    ordered = [found[i] for i in sort.tolist()]
    label_ids = labels.strings(rows, "label_id")
    label_ids = np.array([a + suffix[i] for a, i in zip(label_ids.tolist(), sort.tolist(), strict=True)], dtype=object)
    # COCO's area of an imported annotation, else the mask's as pycocotools computes it.
    given = labels.attribute_area(rows)
    area = np.where(np.isnan(given), np.array([m.area for m in ordered], np.float64), given)
    boxes = np.array([(m.left, m.top, m.pixels.shape[1], m.pixels.shape[0]) for m in ordered], np.float64)
    side = Side.of(labels, rows, np.array(classes, np.int64)[sort], area=area, boxes=boxes)
    side.label_id = label_ids.reshape(len(rows))
    side.masks = ordered
    return side


def _collect_keypoints(labels: Labels, category: I64, classes: Classes, truth: bool) -> Side:
    """Keypoint labels as columns: points are placed by name into their class's rig order (one pass over the
    keypoints of each class, then one array assignment), boxes and areas computed for all labels at once."""
    rows = np.flatnonzero(labels.kind("keypoints_2d") & (category >= 0))
    kinds = category[rows]
    where = {name: {k.name: i for i, k in enumerate(classes.entries[name].keypoints)} for name in classes.names}
    width = max((len(w) for w in where.values()), default=0)
    n = len(rows)
    pts = np.full((n, width, 3), np.inf)
    pts[:, :, 2] = 0
    owner, points = labels.children(rows, "keypoints_2d", "keypoints")
    if len(points):
        names = pc.struct_field(points, "name")
        column_of = np.full(len(points), -1, np.int64)
        point_class = kinds[owner]
        for k, name in enumerate(classes.names):
            mine = point_class == k
            if mine.any() and where[name]:
                at = index_of(names.filter(pa.array(mine)), list(where[name]))
                column_of[mine] = np.where(at >= 0, np.array(list(where[name].values()), np.int64)[at], -1)
        use = column_of >= 0
        labeled_point = pc.not_equal(pc.struct_field(points, "visibility").fill_null(0), NOT_LABELED)
        values = np.stack(
            [
                floats(pc.struct_field(points, "x")),
                floats(pc.struct_field(points, "y")),
                np.asarray(labeled_point.to_numpy(zero_copy_only=False), np.float64),
            ],
            axis=1,
        )
        pts[owner[use], column_of[use]] = values[use]
    labeled: Bool = pts[:, :, 2] > 0
    finite: Bool = np.isfinite(pts[:, :, 0])
    use_point = labeled if truth else finite
    with np.errstate(invalid="ignore"):
        x0 = np.where(use_point, pts[:, :, 0], np.inf).min(axis=1, initial=np.inf)
        y0 = np.where(use_point, pts[:, :, 1], np.inf).min(axis=1, initial=np.inf)
        x1 = np.where(use_point, pts[:, :, 0], -np.inf).max(axis=1, initial=-np.inf)
        y1 = np.where(use_point, pts[:, :, 1], -np.inf).max(axis=1, initial=-np.inf)
    extent = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
    box = _box(labels, rows, "keypoints_2d", "box").reshape(n, 4)
    has_box = (box[:, 2] > 0) & (box[:, 3] > 0)
    any_use: Bool = np.asarray(use_point.any(axis=1))
    box = np.where(has_box[:, None], box, np.where(any_use[:, None], extent, 0.0))
    # Ground truth by its box; detections as pycocotools' loadRes: the extent of the predicted points.
    area = box[:, 2] * box[:, 3] if truth else np.where(finite.any(axis=1), extent[:, 2] * extent[:, 3], 0.0)
    # An imported COCO annotation's own area wins: ground truth's (ranges and OKS), a detection's as loadRes set it.
    given = labels.attribute_area(rows)
    side = Side.of(labels, rows, kinds, area=np.where(np.isnan(given), area, given), boxes=box)
    side.points = pts
    if truth:
        side.ignore = ~np.asarray(labeled.any(axis=1))
    return side


def _overlap(
    task: Task, params: evaluation_pb2.EvaluationParams, gt: Side, dt: Side, classes: Classes, *, bev: bool = False
) -> coco.PairOverlap:
    if task == T.EVALUATION_TASK_DETECTION_2D:
        return coco.box_overlap(dt.boxes, gt.boxes, gt.crowd)
    if task == T.EVALUATION_TASK_INSTANCE_SEGMENTATION_2D:
        return coco.mask_overlap(dt.masks, gt.masks, gt.crowd)
    if task == T.EVALUATION_TASK_KEYPOINTS_2D:
        sigmas = _sigmas(params, classes)
        width = sigmas.shape[1]
        gp = gt.points.reshape(-1, width, 3)
        dp = dt.points.reshape(-1, width, 3)
        rig_size = np.array([len(classes.entries[n].keypoints) for n in classes.names], np.int64)
        valid = np.arange(width)[None, :] < rig_size[dt.category][:, None] if len(dt) else np.zeros((0, width), bool)
        return coco.keypoint_overlap(
            dp[:, :, :2],
            gp[:, :, :2],
            gt_visible=gp[:, :, 2] > 0,
            gt_boxes=gt.boxes,
            gt_area=gt.area,
            sigmas=sigmas[gt.category] if len(gt) else np.zeros((0, width)),
            dt_valid=valid,
        )
    if task == T.EVALUATION_TASK_CUBOID_3D:
        return cuboid_overlap(dt.cuboids.reshape(-1, 7), gt.cuboids.reshape(-1, 7), bev=bev)
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
    frames: Frames, task: Task, params: evaluation_pb2.EvaluationParams, classes: Classes, masks: MaskLoader
) -> Outcome:
    gt = _collect(frames, task, classes, masks, truth=True)
    dt = _collect(frames, task, classes, masks, truth=False)
    conf = params.confidence_threshold
    if conf > 0:
        dt = dt.take(dt.score >= conf)
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
            frames.frame_ids(),
            gt,
            dt,
            params=params,
            classes=classes,
            overlap=_overlap(task, params, gt, dt, classes, bev=True),
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


# classification --------------------------------------------------------------------------------------------------


def classification(frames: Frames, params: evaluation_pb2.EvaluationParams, classes: Classes) -> Outcome:
    """Top-1 classification: a frame's first ground-truth class against its most confident predicted class (the
    first of equally confident ones), over the frames that have a ground-truth class."""
    n_k = len(classes.names)
    truth, predicted = Labels.of(frames.truth), Labels.of(frames.predictions)
    g_class = truth.class_index(classes.names)
    g_rows = np.flatnonzero(truth.kind("classification_2d") & (g_class >= 0))
    rated, first = np.unique(truth.frame[g_rows], return_index=True)  # frames with ground truth, in frame order
    g_rows = g_rows[first]
    y = g_class[g_rows]
    d_class = predicted.class_index(classes.names)
    d_rows = np.flatnonzero(predicted.kind("classification_2d") & (d_class >= 0))
    d_conf = predicted.scores(d_rows)
    d_frame = predicted.frame[d_rows]
    # Each frame's predictions, most confident first (stable): a frame's top prediction is the first of its group.
    ranked = np.lexsort((np.arange(len(d_rows)), -d_conf, d_frame))
    d_rows, d_conf, d_frame = d_rows[ranked], d_conf[ranked], d_frame[ranked]
    lo = np.searchsorted(d_frame, rated, side="left")
    hi = np.searchsorted(d_frame, rated, side="right")
    has = hi > lo
    top = np.where(has, lo, 0)
    p = np.where(has, d_class[d_rows[top]] if len(d_rows) else n_k, n_k)
    conf = np.where(has, d_conf[top] if len(d_rows) else 1.0, 1.0)
    cm = np.zeros((n_k + 1, n_k + 1), np.int64)
    np.add.at(cm, (y, p), 1)
    result = evaluation_pb2.EvaluationResult()
    n = y.shape[0]
    result.metrics["accuracy"] = float((y == p).mean()) if n else 0.0
    tp = np.diag(cm)[:n_k].astype(np.float64)
    predicted_count = cm[:, :n_k].sum(axis=0).astype(np.float64)
    actual = cm[:n_k, :].sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_count > 0, tp / predicted_count, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = actual > 0
    result.metrics["macro_precision"] = float(precision[present].mean()) if present.any() else 0.0
    result.metrics["macro_recall"] = float(recall[present].mean()) if present.any() else 0.0
    result.metrics["macro_f1"] = float(f1[present].mean()) if present.any() else 0.0
    result.metrics["weighted_f1"] = float((f1 * actual).sum() / actual.sum()) if actual.sum() else 0.0
    if params.top_k > 1 and n and (hi - lo).max() > 1:
        k = int(params.top_k)
        # A frame's true class among its first k predictions.
        owner = np.searchsorted(rated, d_frame)
        rank = np.arange(len(d_rows)) - lo[np.minimum(owner, n - 1)]
        mine = (owner < n) & (rated[np.minimum(owner, n - 1)] == d_frame)
        hit = mine & (rank < k) & (d_class[d_rows] == y[np.minimum(owner, n - 1)])
        result.metrics[f"top_{k}_accuracy"] = float(np.mean(np.bincount(owner[hit], minlength=n) > 0))
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
    frame_ids = frames.frame_ids()
    names = [*classes.names, ""]
    truth_ids = truth.strings(g_rows, "label_id").tolist()
    top_ids = np.where(has, predicted.strings(d_rows[top], "label_id") if len(d_rows) else "", "").tolist()
    for f, t, q, c, truth_id, top_id in zip(
        rated.tolist(), y.tolist(), p.tolist(), conf.tolist(), truth_ids, top_ids, strict=True
    ):
        kind = evaluation_pb2.MATCH_KIND_TRUE_POSITIVE if t == q else evaluation_pb2.MATCH_KIND_CLASS_MISMATCH
        pred_class = names[q]
        outcome.matches.append(
            evaluation_pb2.FrameMatches(
                frame_id=frame_ids[f],
                matches=[
                    evaluation_pb2.Match(
                        kind=kind if pred_class else evaluation_pb2.MATCH_KIND_FALSE_NEGATIVE,
                        ground_truth_label_id=truth_id,
                        prediction_label_id=top_id,
                        ground_truth_class=names[t],
                        prediction_class=pred_class,
                        confidence=c,
                    )
                ],
            )
        )
        if pred_class and t != q and c >= conf_thr:
            outcome.candidates.append(
                evaluation_pb2.LabelErrorCandidate(
                    frame_id=frame_ids[f],
                    ground_truth_label_id=truth_id,
                    prediction_label_id=top_id,
                    reason=evaluation_pb2.LABEL_ERROR_REASON_WRONG_CLASS,
                    score=float(c),
                    description=f"labeled {names[t]}, predicted {pred_class} with confidence {c:.2f}",
                )
            )
    outcome.candidates.sort(key=lambda c: (-c.score, c.frame_id))
    return outcome


# semantic segmentation -------------------------------------------------------------------------------------------


def _first(labels: Labels, geometry: str) -> tuple[I64, I64]:
    """The frames that have a label of `geometry`, and the first such label of each."""
    rows = np.flatnonzero(labels.kind(geometry))
    frames, first = np.unique(labels.frame[rows], return_index=True)
    return frames, rows[first]


def semantic_segmentation(frames: Frames, classes: Classes, masks: MaskLoader) -> Outcome:
    """Per-class IoU, mIoU and pixel accuracy from class-id masks; pixels whose ground truth is a class not evaluated
    (ignored in evaluation, or not in the class map) count nowhere."""
    lut = np.full(256, -1, np.int64)
    for k, cid in enumerate(classes.ids):
        if 0 <= cid < 256:
            lut[cid] = k
    n_k = len(classes.names)
    cm = np.zeros((n_k + 1, n_k + 1), np.int64)  # last column: predicted pixels of classes not evaluated
    truth, predicted = Labels.of(frames.truth), Labels.of(frames.predictions)
    g_frames, g_rows = _first(truth, "semantic_segmentation_2d")
    d_frames, d_rows = _first(predicted, "semantic_segmentation_2d")
    both, gi, di = np.intersect1d(g_frames, d_frames, return_indices=True)
    g_urls = truth.strings(g_rows[gi], "semantic_segmentation_2d", "mask_url").tolist()
    d_urls = predicted.strings(d_rows[di], "semantic_segmentation_2d", "mask_url").tolist()
    d_ids = predicted.strings(d_rows[di], "label_id").tolist()
    frame_ids = frames.frame_ids()
    for f, g_url, d_url, d_id in zip(both.tolist(), g_urls, d_urls, d_ids, strict=True):
        gm, dm = masks(g_url), masks(d_url)
        if gm.shape != dm.shape:
            raise InvalidArgument.of(
                [
                    FieldViolation(
                        f"frames[{frame_ids[f]}].labels[{d_id}].semantic_segmentation_2d.mask_url",
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


def custom_metrics(frames: Frames | Sequence[Pair]) -> Mapping[str, float]:
    """Objectives averaged over the frames that carry them; confusion matrices summed (those of the shape a name
    first had) and reported by accuracy. Sums run in frame order, one frame after another, as they always did."""
    metrics = column(as_frames(frames).predictions, "custom_metrics")
    if metrics is None or not len(metrics):
        return {}
    _, keys, values = entries(metrics)
    names = np.asarray(keys.to_numpy(zero_copy_only=False), dtype=object)
    member = np.asarray(pc.struct_field(values, "value").fill_null("").to_numpy(zero_copy_only=False), dtype=object)
    objective = floats(pc.struct_field(values, "objective"), np.nan)
    out: dict[str, float] = {}
    counted = (member == "objective") & np.isfinite(objective)
    for name in dict.fromkeys(names[counted].tolist()):
        mine = objective[counted & (names == name)]
        out[name] = float(np.cumsum(np.r_[0.0, mine])[-1]) / len(mine)
    matrices = np.flatnonzero(member == "confusion_matrix")
    if matrices.size:
        at = pa.array(matrices, pa.int64())
        rows = floats(pc.struct_field(values, ["confusion_matrix", "rows"]).take(at)).astype(np.int64)
        cols = floats(pc.struct_field(values, ["confusion_matrix", "columns"]).take(at)).astype(np.int64)
        cells = pc.struct_field(values, ["confusion_matrix", "values"]).take(at)
        for name in dict.fromkeys(names[matrices].tolist()):
            mine = np.flatnonzero(names[matrices] == name)
            shape = (rows[mine[0]], cols[mine[0]])
            mine = mine[(rows[mine] == shape[0]) & (cols[mine] == shape[1])]
            stack = floats(pc.list_flatten(cells.take(pa.array(mine, pa.int64())))).reshape(len(mine), *shape)
            total = np.cumsum(stack, axis=0)[-1]
            count = total.sum()
            out[f"{name}.accuracy"] = float(np.trace(total) / count) if count else 0.0
    return out
