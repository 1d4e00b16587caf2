"""Keypoint quality checks: the ground truth of a dataset version against its rigs, ranked as label-error candidates.

Each rule works on all instances of one class at once (arrays of N instances × K rig keypoints):

- swapped left-right pairs: for every (left_x, right_x) pair the rig has, the direction from left to right is
  compared with the direction the instance's other pairs agree on; a pair pointing the opposite way, or whose
  bones cross their mirror bones, is likely swapped. Comparing pairs with each other, not with the camera, keeps
  people seen from behind (every pair reversed, consistently) out of the list.
  A pair with only one point labeled is judged by the side of the body that point lies on (the midline fitted
  through the other pairs' midpoints): a left point on the right side may be the right one labeled as left.
- points outside the image or outside the instance's box;
- rig keypoints missing or not labeled;
- bones (rig edges) whose length relative to the instance is far from the class's distribution (robust z-score of
  the log ratio, median and MAD over the dataset);
- two keypoints of one instance at one place, where the class usually has them apart at that size.

Scores are comparable across rules: about 1 for a clear error, lower for weaker evidence.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoal import rigs
from shoal.metrics.frames import Labels, bools, floats, frame_keys, images, index_of
from shoal.v1 import evaluation_pb2, label_pb2, project_pb2

R = evaluation_pb2
SWAPPED: Final = R.LABEL_ERROR_REASON_SWAPPED_KEYPOINTS
OUTSIDE_IMAGE: Final = R.LABEL_ERROR_REASON_KEYPOINT_OUTSIDE_IMAGE
OUTSIDE_BOX: Final = R.LABEL_ERROR_REASON_KEYPOINT_OUTSIDE_BOX
MISSING: Final = R.LABEL_ERROR_REASON_MISSING_KEYPOINTS
BONE_LENGTH: Final = R.LABEL_ERROR_REASON_BONE_LENGTH_OUTLIER
DUPLICATE: Final = R.LABEL_ERROR_REASON_DUPLICATE_KEYPOINTS
_NO_BOX: Final = (np.nan, np.nan, np.nan, np.nan)
_NO_IMAGE: Final = (np.nan, np.nan)
RULES: Final = (SWAPPED, OUTSIDE_IMAGE, OUTSIDE_BOX, MISSING, BONE_LENGTH, DUPLICATE)

#: A pair is reported when it points against the others by more than this cosine.
SWAP_MIN_OPPOSITION: Final = 0.5
#: Bone lengths beyond this robust z-score (log scale) are outliers.
BONE_Z: Final = 4.0
#: ...and at least this far from the usual length (as a factor): short bones (eye to nose) vary by noise alone.
BONE_MIN_FACTOR: Final = 2.0
#: Fewest measured bones of an edge before its distribution is trusted.
BONE_MIN_SAMPLES: Final = 8
#: Points closer than this fraction of the instance's size count as one place.
DUPLICATE_FRACTION: Final = 0.01
#: ...judged only for points that usually lie at least this many times that distance apart at the instance's size.
DUPLICATE_MIN_SEPARATION: Final = 2.5
#: Dataset medians (usual distances) are taken over at most this many instances, evenly spaced.
MEDIAN_ROWS: Final = 20_000
#: Tolerance outside the box, as a fraction of the box's size (annotators' boxes are loose by a few pixels).
BOX_MARGIN: Final = 0.05
#: A lone point of a pair (its mirror not labeled) is judged only when the instance's complete pairs agree on the
#: body's left-to-right direction at least this much (1 = all parallel)...
LONE_MIN_AGREEMENT: Final = 0.8
#: ...and their widths are at least this share of their usual widths (near-frontal or back views, not profiles);
LONE_MIN_FRONTAL: Final = 0.5
#: it is reported past this much of its usual offset from the midline on the other side (1 = its mirror's place),
LONE_MIN_CROSSING: Final = 0.5
#: and weighs less than a pair seen swapped: one point on the wrong side is weaker evidence.
LONE_WEIGHT: Final = 0.8
#: Missing points weigh less than geometric errors: occlusion and truncation make many of them legitimate.
MISSING_WEIGHT: Final = 0.5


@dataclass
class Instance:
    """One keypoint label, its frame's image size and its box."""

    frame_id: str
    label_id: str
    points: dict[str, tuple[float, float]]  # labeled points only, by name
    box: tuple[float, float, float, float] | None = None  # left, top, width, height
    image: tuple[float, float] | None = None  # width, height


@dataclass
class Rig:
    """A class's keypoint names (in the rig's order) and edges."""

    name: str
    keypoints: list[str]
    edges: list[tuple[str, str]] = field(default_factory=list)

    @staticmethod
    def of(entry: project_pb2.ClassMapEntry) -> Rig:
        return Rig(
            entry.name, [k.name for k in entry.keypoints], [(e.from_keypoint, e.to_keypoint) for e in entry.skeleton]
        )


@dataclass(frozen=True)
class Candidate:
    frame_id: str
    label_id: str
    rule: int
    score: float
    keypoints: tuple[str, ...]
    description: str

    def to_proto(self) -> evaluation_pb2.LabelErrorCandidate:
        return evaluation_pb2.LabelErrorCandidate(
            frame_id=self.frame_id,
            ground_truth_label_id=self.label_id,
            reason=self.rule,  # type: ignore[arg-type]
            score=self.score,
            description=self.description,
            keypoints=list(self.keypoints),
        )


NOT_LABELED: Final = label_pb2.KEYPOINT_VISIBILITY_NOT_LABELED
#: The columns `gather` reads of a dataset version.
GATHER_COLUMNS: Final = ("frame_id", "labels", "sensors")


def gather(frames: pa.Table | pa.RecordBatch, columns: Mapping[str, Columns]) -> None:
    """Add every keypoint label of some frames (rows of a dataset table, `GATHER_COLUMNS` at least) whose class has
    columns to them: one pass over the labels column, then one over the keypoints of each class."""
    table = pa.Table.from_batches([frames]) if isinstance(frames, pa.RecordBatch) else frames
    labels = Labels.of(table)
    wanted = list(columns)
    category = labels.class_index(wanted)
    rows = np.flatnonzero(labels.kind("keypoints_2d") & (category >= 0))
    if not rows.size:
        return
    frame = labels.frame[rows]
    category = category[rows]
    frame_ids = np.asarray(table.column("frame_id").combine_chunks().to_numpy(zero_copy_only=False), dtype=object)
    label_ids = labels.strings(rows, "label_id")
    box = np.stack([labels.floats(rows, "keypoints_2d", "box", c) for c in ("left", "top", "width", "height")], 1)
    box[box[:, 2] == 0] = np.nan  # no box, or one without a width
    image = _image_sizes(table, frame, labels.field("sensor_id").take(pa.array(rows, pa.int64())))
    owner, points = labels.children(rows, "keypoints_2d", "keypoints")
    labeled = bools(pc.not_equal(pc.struct_field(points, "visibility").fill_null(0), NOT_LABELED))
    names = pc.struct_field(points, "name")
    x, y = floats(pc.struct_field(points, "x")), floats(pc.struct_field(points, "y"))
    point_class = category[owner]
    for k, name in enumerate(wanted):
        mine = np.flatnonzero(category == k)
        if not mine.size:
            continue
        into = columns[name]
        position = np.full(len(rows), -1, np.int64)
        position[mine] = np.arange(len(mine))
        chosen = np.flatnonzero((point_class == k) & labeled)
        at = index_of(names.take(pa.array(chosen, pa.int64())), list(into.index))
        keep = at >= 0
        chosen = chosen[keep]
        into.extend(
            frame_ids[frame[mine]].tolist(),
            label_ids[mine].tolist(),
            boxes=box[mine],
            images=image[mine],
            rows=position[owner[chosen]],
            cols=np.array(list(into.index.values()), np.int64)[at[keep]],
            xs=x[chosen],
            ys=y[chosen],
        )


def _image_sizes(table: pa.Table, frame: np.ndarray, sensor: pa.Array) -> np.ndarray:
    """(width, height) of the image sensor each label names in its frame, NaN where the frame has none with a size
    (a sensor id given twice: the last one)."""
    img_frame, img_sensor, width, height = images(table)
    sized = np.flatnonzero((width != 0) & (height != 0))[::-1]  # reversed: the first found is the last given
    keys = frame_keys(img_frame[sized], img_sensor.take(pa.array(sized, pa.int64())))
    at = index_of(frame_keys(frame, sensor), keys)
    found = at >= 0
    out = np.full((len(frame), 2), np.nan)
    out[found, 0] = width[sized[at[found]]]
    out[found, 1] = height[sized[at[found]]]
    return out


class _Ref(NamedTuple):
    frame_id: str
    label_id: str


class _Refs:
    """The (frame id, label id) of each gathered instance, by position."""

    def __init__(self, frame_ids: Sequence[str], label_ids: Sequence[str]) -> None:
        self.frame_ids, self.label_ids = frame_ids, label_ids

    def __len__(self) -> int:
        return len(self.label_ids)

    def __getitem__(self, i: int) -> _Ref:
        return _Ref(self.frame_ids[i], self.label_ids[i])


class Columns:
    """The keypoint labels of one class as flat columns (instance, rig keypoint, x, y), gathered a batch of frames at
    a time while a version is read, so that no per-instance objects are built."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.index = {n: i for i, n in enumerate(rig.keypoints)}
        self.frame_ids: list[str] = []
        self.label_ids: list[str] = []
        self._boxes: list[np.ndarray] = []
        self._images: list[np.ndarray] = []
        self._points: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return len(self.label_ids)

    @property
    def refs(self) -> _Refs:
        return _Refs(self.frame_ids, self.label_ids)

    def extend(
        self,
        frame_ids: Sequence[str],
        label_ids: Sequence[str],
        *,
        boxes: np.ndarray,
        images: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        xs: np.ndarray,
        ys: np.ndarray,
    ) -> None:
        """Instances given as columns: boxes [n, 4] and image sizes [n, 2] (NaN where unknown), and their labeled
        points: instance (0 for the first of these), rig keypoint, x, y."""
        base = len(self)
        self.frame_ids.extend(frame_ids)
        self.label_ids.extend(label_ids)
        self._boxes.append(np.asarray(boxes, np.float64).reshape(-1, 4))
        self._images.append(np.asarray(images, np.float64).reshape(-1, 2))
        self._points.append(
            (
                np.asarray(rows, np.int64) + base,
                np.asarray(cols, np.int64),
                np.asarray(xs, np.float64),
                np.asarray(ys, np.float64),
            )
        )

    def add(self, inst: Instance) -> None:
        found = [(self.index[name], x, y) for name, (x, y) in inst.points.items() if name in self.index]
        cols, xs, ys = (list(c) for c in zip(*found, strict=True)) if found else ([], [], [])
        self.extend(
            [inst.frame_id],
            [inst.label_id],
            boxes=np.array([inst.box or _NO_BOX]),
            images=np.array([inst.image or _NO_IMAGE]),
            rows=np.zeros(len(cols), np.int64),
            cols=np.array(cols, np.int64),
            xs=np.array(xs, np.float64),
            ys=np.array(ys, np.float64),
        )

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Boxes, image sizes, and the points' instances, rig keypoints, x and y, of every instance gathered."""
        n = len(self)
        boxes = np.concatenate(self._boxes) if self._boxes else np.zeros((0, 4))
        images = np.concatenate(self._images) if self._images else np.zeros((0, 2))
        points = [np.concatenate(p) if p else np.zeros(0) for p in zip(*self._points, strict=True)] or [np.zeros(0)] * 4
        return boxes.reshape(n, 4), images.reshape(n, 2), *points  # type: ignore[return-value]


class _Arrays:
    """N instances × K keypoints of one class as arrays: coordinates (NaN where not labeled) and sizes."""

    def __init__(self, columns: Columns) -> None:
        self.rig = rig = columns.rig
        self.instances = columns.refs
        self.index = columns.index
        n, k = len(columns), len(rig.keypoints)
        boxes, images, rows, cols, xs, ys = columns.arrays()
        self.xy = np.full((n, k, 2), np.nan)
        if rows.size:
            self.xy[rows.astype(np.int64), cols.astype(np.int64), 0] = xs
            self.xy[rows.astype(np.int64), cols.astype(np.int64), 1] = ys
        self.labeled = ~np.isnan(self.xy[:, :, 0])
        self.box = boxes
        self.image = images
        # The instance's size: its box diagonal, else the diagonal of its labeled points' extent.
        with np.errstate(invalid="ignore"), _quiet():
            extent = np.nanmax(self.xy, axis=1) - np.nanmin(self.xy, axis=1)
        point_diag = np.hypot(extent[:, 0], extent[:, 1])
        box_diag = np.hypot(boxes[:, 2], boxes[:, 3])
        self.scale = np.where(np.isfinite(box_diag) & (box_diag > 0), box_diag, point_diag)
        self.scale = np.where(np.isfinite(self.scale) & (self.scale > 0), self.scale, 1.0)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence NumPy's all-NaN slice warnings (instances with no labeled points)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        yield


def _segments_cross(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Whether segments a-b and c-d properly intersect (arrays of points, shape (..., 2))."""

    def orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        out: np.ndarray = (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (
            r[..., 0] - p[..., 0]
        )
        return out

    o1, o2, o3, o4 = orient(a, b, c), orient(a, b, d), orient(c, d, a), orient(c, d, b)
    crossed: np.ndarray = (o1 * o2 < 0) & (o3 * o4 < 0)
    return crossed


def check_swaps(arrays: _Arrays) -> list[Candidate]:
    rig, xy = arrays.rig, arrays.xy
    pairs = [(arrays.index[a], arrays.index[b], a, b) for a, b in rigs.mirror_pairs(rig.keypoints)]
    if len(pairs) < 2:
        return []
    left = np.array([p[0] for p in pairs])
    right = np.array([p[1] for p in pairs])
    d = xy[:, right] - xy[:, left]  # N × J × 2: left → right of each pair
    length = np.hypot(d[..., 0], d[..., 1])
    ok = np.isfinite(length) & (length > 1e-6 * arrays.scale[:, None])
    unit = np.where(ok[..., None], d / np.where(ok, length, 1.0)[..., None], 0.0)
    # Each pair's reference: what the other pairs agree on (their unit vectors summed).
    total = unit.sum(axis=1, keepdims=True)
    others = total - unit
    others_n = ok.sum(axis=1, keepdims=True) - ok
    ref_len = np.hypot(others[..., 0], others[..., 1])
    cos = np.where(ref_len > 0, (unit * others).sum(axis=-1) / np.where(ref_len > 0, ref_len, 1.0), 0.0)
    # How strongly the others agree among themselves: 1 when all point the same way.
    agreement = np.where(others_n > 0, ref_len / np.maximum(others_n, 1), 0.0)
    # Mirror bones that cross: pair (L, R) with rig edges L-X and R-Y where (X, Y) is another pair.
    mirror = {a: b for _, _, a, b in pairs} | {b: a for _, _, a, b in pairs}
    crossing = np.zeros_like(cos, dtype=bool)
    undirected = {frozenset(e) for e in rig.edges}
    for j, (li, ri, a, b) in enumerate(pairs):
        for q in (n for e in undirected if a in e for n in e if n != a):
            partner = mirror.get(q)
            if partner is None or q in (partner, b) or frozenset((b, partner)) not in undirected:
                continue
            qi, pi = arrays.index[q], arrays.index[partner]
            crossing[:, j] |= _segments_cross(xy[:, li], xy[:, qi], xy[:, ri], xy[:, pi]) & ok[:, j]
    score = np.clip(-cos, 0.0, 1.0) * agreement + 0.25 * crossing
    flagged = ok & (others_n >= 1) & ((-cos > SWAP_MIN_OPPOSITION) & (agreement > 0.5) | crossing)
    lone, lone_score = _lone_sides(arrays, pairs, length, ok, unit)
    best = np.where(flagged, score, np.where(lone, lone_score, -1.0))
    out: list[Candidate] = []
    for i in np.flatnonzero((flagged | lone).any(axis=1)):
        j = int(np.argmax(best[i]))
        a, b = pairs[j][2], pairs[j][3]
        inst = arrays.instances[int(i)]
        if not flagged[i, j]:
            named, mirrored = (a, b) if arrays.labeled[i, pairs[j][0]] else (b, a)
            side = "right" if named == a else "left"
            out.append(
                Candidate(
                    inst.frame_id,
                    inst.label_id,
                    SWAPPED,
                    float(lone_score[i, j]),
                    (named, mirrored),
                    f"{named} lies on the body's {side} side and {mirrored} is not labeled: "
                    f"it may be the {mirrored} labeled as {named}",
                )
            )
            continue
        why = []
        if -cos[i, j] > SWAP_MIN_OPPOSITION:
            why.append(f"points against {int(others_n[i, j])} other left-right pairs (cos {cos[i, j]:.2f})")
        if crossing[i, j]:
            why.append("its bones cross their mirror bones")
        out.append(
            Candidate(
                inst.frame_id,
                inst.label_id,
                SWAPPED,
                float(score[i, j]),
                (a, b),
                f"{a} and {b} look swapped: the pair " + " and ".join(why),
            )
        )
    return out


def _lone_sides(
    arrays: _Arrays,
    pairs: list[tuple[int, int, str, str]],
    length: np.ndarray,
    ok: np.ndarray,
    unit: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs with one point labeled whose point lies on the wrong side of the body: (flagged, score), N × J.

    The body's left-to-right direction comes from the instance's complete pairs, its midline from a line fitted
    through their midpoints (so a tilted person is measured along their own axis), and the expected offset of the
    lone point from the pair's usual width over the dataset. Only near-frontal or back views are judged: in profile
    the pairs are short, the sides overlap and one of each pair is usually hidden for good reason."""
    xy, scale = arrays.xy, arrays.scale
    n, j = ok.shape
    left = np.array([p[0] for p in pairs])
    right = np.array([p[1] for p in pairs])
    lab_l, lab_r = arrays.labeled[:, left], arrays.labeled[:, right]
    one = lab_l ^ lab_r
    complete = ok.sum(axis=1)
    if not one.any():
        return np.zeros((n, j), bool), np.zeros((n, j))
    width = np.where(ok, length / scale[:, None], np.nan)  # pair width relative to the instance's size
    with _quiet():
        usual = np.nanmedian(width, axis=0)  # per pair, over the dataset
        trusted = ok.sum(axis=0) >= BONE_MIN_SAMPLES
        frontal = np.nanmedian(width / np.where(trusted, usual, np.nan), axis=1)
    total = unit.sum(axis=1)
    total_len = np.hypot(total[:, 0], total[:, 1])
    agreement = np.where(complete > 0, total_len / np.maximum(complete, 1), 0.0)
    u = total / np.where(total_len > 0, total_len, 1.0)[:, None]  # left → right
    v = np.stack([-u[:, 1], u[:, 0]], axis=1)  # along the body
    mid = (xy[:, left] + xy[:, right]) / 2
    lat = np.einsum("njc,nc->nj", np.nan_to_num(mid), u)
    ax = np.einsum("njc,nc->nj", np.nan_to_num(mid), v)
    w = ok.astype(np.float64)
    cnt = np.maximum(w.sum(axis=1), 1.0)
    ax_mean, lat_mean = (w * ax).sum(axis=1) / cnt, (w * lat).sum(axis=1) / cnt
    ax_c = np.where(ok, ax - ax_mean[:, None], 0.0)
    spread = (ax_c**2).sum(axis=1)
    fit = (complete >= 3) & (spread > (0.2 * scale) ** 2 * cnt)
    slope = np.where(fit, (ax_c * (lat - lat_mean[:, None])).sum(axis=1) / np.where(spread > 0, spread, 1.0), 0.0)
    point = np.where(lab_l[..., None], xy[:, left], xy[:, right])  # the labeled one
    p_lat = np.einsum("njc,nc->nj", np.nan_to_num(point), u)
    p_ax = np.einsum("njc,nc->nj", np.nan_to_num(point), v)
    offset = p_lat - (lat_mean[:, None] + slope[:, None] * (p_ax - ax_mean[:, None]))
    with _quiet():
        own = np.nanmedian(width, axis=1)  # where the dataset has too few of a pair: the instance's own pairs
    expected = np.where(trusted[None, :], usual[None, :], own[:, None])
    half = np.where(np.isfinite(expected) & (expected > 0), expected / 2, np.nan) * scale[:, None]
    # Left points belong at negative offsets, right at positive: t is about -1 where it should be, +1 mirrored.
    with np.errstate(invalid="ignore"):
        t = np.where(lab_l, offset, -offset) / half
        flagged = (
            one
            & (complete >= 2)[:, None]
            & (agreement > LONE_MIN_AGREEMENT)[:, None]
            & (frontal >= LONE_MIN_FRONTAL)[:, None]
            & (t > LONE_MIN_CROSSING)
        )
    score = np.where(flagged, LONE_WEIGHT * np.minimum(np.nan_to_num(t), 1.0) * agreement[:, None], 0.0)
    return flagged, score


def check_outside(arrays: _Arrays) -> list[Candidate]:
    xy, names = arrays.xy, arrays.rig.keypoints
    out: list[Candidate] = []
    w, h = arrays.image[:, 0:1], arrays.image[:, 1:2]  # NaN where the frame gives no image size
    with np.errstate(invalid="ignore"):
        dx = np.maximum(0.0, np.maximum(-xy[:, :, 0], xy[:, :, 0] - w))
        dy = np.maximum(0.0, np.maximum(-xy[:, :, 1], xy[:, :, 1] - h))
        beyond_image = np.nan_to_num(np.hypot(dx, dy))
        left, top, bw, bh = (arrays.box[:, c : c + 1] for c in range(4))
        diag = np.hypot(bw, bh)
        dx = np.maximum(0.0, np.maximum(left - xy[:, :, 0], xy[:, :, 0] - (left + bw)))
        dy = np.maximum(0.0, np.maximum(top - xy[:, :, 1], xy[:, :, 1] - (top + bh)))
        beyond_box = np.nan_to_num(np.hypot(dx, dy))
        out_of_box = beyond_box > np.nan_to_num(BOX_MARGIN * diag, nan=np.inf)
    out_of_image = beyond_image > 0
    for i in np.flatnonzero(out_of_image.any(axis=1) | out_of_box.any(axis=1)):
        inst = arrays.instances[int(i)]
        if out_of_image[i].any():
            bad = [names[j] for j in np.flatnonzero(out_of_image[i])]
            iw, ih = float(arrays.image[i, 0]), float(arrays.image[i, 1])
            worst = float(beyond_image[i].max() / np.hypot(iw, ih))
            out.append(
                Candidate(
                    inst.frame_id,
                    inst.label_id,
                    OUTSIDE_IMAGE,
                    0.8 + min(0.2, worst),
                    tuple(bad),
                    f"{', '.join(bad)} outside the {iw:.0f}×{ih:.0f} image",
                )
            )
        if out_of_box[i].any():
            bad = [names[j] for j in np.flatnonzero(out_of_box[i])]
            ratio = float(beyond_box[i][out_of_box[i]].max() / max(float(diag[i, 0]), 1e-9))
            out.append(
                Candidate(
                    inst.frame_id,
                    inst.label_id,
                    OUTSIDE_BOX,
                    min(1.0, 0.5 + ratio),
                    tuple(bad),
                    f"{', '.join(bad)} outside the instance's box",
                )
            )
    return out


def check_missing(arrays: _Arrays) -> list[Candidate]:
    out: list[Candidate] = []
    names = arrays.rig.keypoints
    missing = ~arrays.labeled
    for i in np.flatnonzero(missing.any(axis=1)):
        inst = arrays.instances[int(i)]
        gone = [names[j] for j in np.flatnonzero(missing[i])]
        share = len(gone) / len(names)
        out.append(
            Candidate(
                inst.frame_id,
                inst.label_id,
                MISSING,
                MISSING_WEIGHT * share,
                tuple(gone),
                f"{len(gone)} of {len(names)} keypoints missing or not labeled: {', '.join(gone)}",
            )
        )
    return out


def check_bones(arrays: _Arrays) -> list[Candidate]:
    edges = [(arrays.index[a], arrays.index[b], a, b) for a, b in arrays.rig.edges]
    if not edges:
        return []
    a = np.array([e[0] for e in edges])
    b = np.array([e[1] for e in edges])
    d = arrays.xy[:, b] - arrays.xy[:, a]
    ratio = np.hypot(d[..., 0], d[..., 1]) / arrays.scale[:, None]  # N × E, NaN where an end is missing
    with np.errstate(divide="ignore", invalid="ignore"), _quiet():
        logr = np.log(np.where(ratio > 0, ratio, np.nan))
        median = np.nanmedian(logr, axis=0)
        mad = 1.4826 * np.nanmedian(np.abs(logr - median), axis=0)
    counts = np.isfinite(logr).sum(axis=0)
    spread = np.maximum(mad, 0.05)  # a rig measured identically everywhere still tolerates 5 %
    z = (logr - median) / spread
    z = np.where(counts >= BONE_MIN_SAMPLES, z, np.nan)
    out: list[Candidate] = []
    absz = np.nan_to_num(np.abs(z))
    absz = np.where(np.nan_to_num(np.abs(logr - median)) > np.log(BONE_MIN_FACTOR), absz, 0.0)
    for i in np.flatnonzero((absz > BONE_Z).any(axis=1)):
        e = int(np.argmax(absz[i]))
        inst = arrays.instances[int(i)]
        factor = float(np.exp(logr[i, e] - median[e]))
        out.append(
            Candidate(
                inst.frame_id,
                inst.label_id,
                BONE_LENGTH,
                float(min(1.0, 0.4 + absz[i, e] / 40.0)),
                (edges[e][2], edges[e][3]),
                f"bone {edges[e][2]}–{edges[e][3]} is {factor:.2f}× its usual length for the instance's size "
                f"(z {z[i, e]:.1f})",
            )
        )
    return out


def check_duplicates(arrays: _Arrays) -> list[Candidate]:
    names, scale = arrays.rig.keypoints, arrays.scale
    ju, ku = np.triu_indices(len(names), 1)  # every pair of rig points once
    # Pairs × instances: gathering rows of a transposed array is several times faster than columns of N × K × 2.
    x, y = np.ascontiguousarray(arrays.xy[:, :, 0].T), np.ascontiguousarray(arrays.xy[:, :, 1].T)
    dist = np.hypot(x[ju] - x[ku], y[ju] - y[ku])
    threshold = np.maximum(DUPLICATE_FRACTION * scale, 1.0)[None, :]
    # Judge a pair only where it usually sits well apart at the instance's size: the eyes and nose of someone
    # twenty pixels tall are within a pixel of each other by nature. The usual distances are medians over at most
    # MEDIAN_ROWS instances (evenly spaced), plenty for a median and far cheaper on large sets.
    sample = (dist / scale[None, :])[:, :: max(1, dist.shape[1] // MEDIAN_ROWS)]
    with _quiet():
        usual = np.where(np.isfinite(sample).sum(axis=1) >= BONE_MIN_SAMPLES, np.nanmedian(sample, axis=1), np.inf)
    close = (dist <= threshold) & (usual[:, None] * scale[None, :] >= DUPLICATE_MIN_SEPARATION * threshold)
    out: list[Candidate] = []
    for i in np.flatnonzero(close.any(axis=0)):
        inst = arrays.instances[int(i)]
        hit = np.flatnonzero(close[:, i])
        together = sorted({names[j] for j in ju[hit]} | {names[q] for q in ku[hit]}, key=names.index)
        out.append(
            Candidate(
                inst.frame_id,
                inst.label_id,
                DUPLICATE,
                0.9,
                tuple(together),
                f"{', '.join(together)} are at one place",
            )
        )
    return out


CHECKS: Final[dict[int, Callable[[_Arrays], list[Candidate]]]] = {
    SWAPPED: check_swaps,
    OUTSIDE_IMAGE: check_outside,
    OUTSIDE_BOX: check_outside,
    MISSING: check_missing,
    BONE_LENGTH: check_bones,
    DUPLICATE: check_duplicates,
}


def check(rig: Rig, instances: Sequence[Instance], rules: Iterable[int] = RULES) -> list[Candidate]:
    """Candidates of one class, best first; at most one per (label, rule)."""
    columns = Columns(rig)
    for inst in instances:
        columns.add(inst)
    return check_columns(columns, rules)


def check_columns(columns: Columns, rules: Iterable[int] = RULES) -> list[Candidate]:
    """`check` of labels gathered as columns."""
    if not len(columns) or not columns.rig.keypoints:
        return []
    wanted = set(rules)
    arrays = _Arrays(columns)
    found: list[Candidate] = []
    for fn in dict.fromkeys(CHECKS[r] for r in wanted):
        found.extend(c for c in fn(arrays) if c.rule in wanted)
    return rank(found)


def rank(candidates: Iterable[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=lambda c: (-c.score, c.frame_id, c.label_id, c.rule))
