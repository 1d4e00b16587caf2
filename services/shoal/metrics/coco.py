"""The COCO evaluation protocol, vectorised over a whole dataset.

The numbers are the ones pycocotools gives (its `evaluate` → `accumulate` → `summarize`), to the bit: the same greedy
matching per (image, class) — detections by descending score, each taking the best still-free ground truth, ignored
ground truth (crowd, outside the area range) only when no regular one qualifies, crowd regions matched any number of
times — and the same accumulation (stable sort of scores across images, interpolated precision at 101 recall points).

Instead of looping over (image, class, area range, threshold) in Python, the matching walks the detection ranks
(at most `max_dets[-1]` steps): at each step every group's detection of that rank is matched at once for every area
range and IoU threshold, on the sparse list of (detection, ground truth) pairs whose overlap can reach the lowest
threshold. Geometry (boxes, masks, keypoints, cuboids) only enters through the pairwise overlap function.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]

#: COCO's IoU thresholds, .50:.05:.95, computed exactly as pycocotools does.
IOU_THRESHOLDS: Final = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
#: COCO's 101 recall points.
RECALL_THRESHOLDS: Final = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
#: COCO's area ranges for boxes and masks (bounds inclusive, as pycocotools compares them).
AREA_RANGES: Final = (
    ("all", 0.0, 1e5**2),
    ("small", 0.0, 32.0**2),
    ("medium", 32.0**2, 96.0**2),
    ("large", 96.0**2, 1e5**2),
)
#: COCO's area ranges for keypoints.
KEYPOINT_AREA_RANGES: Final = (("all", 0.0, 1e5**2), ("medium", 32.0**2, 96.0**2), ("large", 96.0**2, 1e5**2))
#: pycocotools caps every threshold just below 1 so that a perfect overlap still passes.
_CAP: Final = 1 - 1e-10


@dataclass(frozen=True)
class CocoParams:
    """What an evaluation varies; the defaults are COCO's for boxes and masks."""

    iou_thresholds: F64 = field(default_factory=IOU_THRESHOLDS.copy)
    recall_thresholds: F64 = field(default_factory=RECALL_THRESHOLDS.copy)
    area_ranges: Sequence[tuple[str, float, float]] = AREA_RANGES
    max_dets: Sequence[int] = (1, 10, 100)

    @staticmethod
    def keypoints() -> CocoParams:
        return CocoParams(area_ranges=KEYPOINT_AREA_RANGES, max_dets=(20,))


@dataclass
class Instances:
    """Ground truth or detections of one geometry, one row per instance, in the order they were given.

    `image` is the image's position in the evaluation's image order and `category` the class's position in its
    class order; both decide how ties between equal scores are broken, as the image and class ids do in pycocotools.
    """

    image: I64
    category: I64
    area: F64
    crowd: Bool  # ground truth only (all False for detections)
    ignore: Bool  # ground truth that is always ignored (e.g. keypoints without a labeled point)
    score: F64  # detections only (all 0 for ground truth)

    def __len__(self) -> int:
        return int(self.image.shape[0])

    @staticmethod
    def make(
        image: Sequence[int] | I64,
        category: Sequence[int] | I64,
        area: Sequence[float] | F64,
        *,
        crowd: Sequence[bool] | Bool | None = None,
        ignore: Sequence[bool] | Bool | None = None,
        score: Sequence[float] | F64 | None = None,
    ) -> Instances:
        n = len(image)
        return Instances(
            image=np.asarray(image, dtype=np.int64).reshape(n),
            category=np.asarray(category, dtype=np.int64).reshape(n),
            area=np.asarray(area, dtype=np.float64).reshape(n),
            crowd=np.zeros(n, bool) if crowd is None else np.asarray(crowd, dtype=bool).reshape(n),
            ignore=np.zeros(n, bool) if ignore is None else np.asarray(ignore, dtype=bool).reshape(n),
            score=np.zeros(n) if score is None else np.asarray(score, dtype=np.float64).reshape(n),
        )


#: Overlap of (detection, ground truth) pairs given as row indices into the detections and the ground truth.
PairOverlap = Callable[[I64, I64], F64]


@dataclass
class Matching:
    """The outcome of the greedy matching, over the detections kept (the best `max_dets[-1]` of each group)."""

    dt_index: I64  # kept detections, as rows of the detections given
    dt_rank: I64  # rank by score within its (image, class) group
    matched_gt: I64  # [A, T, D] row of the ground truth matched, -1 for none
    dt_ignored: Bool  # [A, T, D]
    gt_ignored: Bool  # [A, G]
    gt_matched: Bool  # [A, T, G]
    pair_dt: I64  # candidate pairs (rows of the detections given / the ground truth given) and their overlap
    pair_gt: I64
    pair_iou: F64


@dataclass
class CocoResult:
    """pycocotools' `eval` dictionary, plus the matching it came from."""

    params: CocoParams
    precision: F64  # [T, R, K, A, M], -1 where a class has no ground truth
    recall: F64  # [T, K, A, M]
    scores: F64  # [T, R, K, A, M]
    matching: Matching
    stats: F64 = field(default_factory=lambda: np.zeros(0))

    def mean_precision(self, *, iou: float | None = None, area: str = "all", max_dets: int | None = None) -> float:
        s = self.precision
        if iou is not None:
            s = s[np.where(iou == self.params.iou_thresholds)[0]]
        s = s[:, :, :, self._area(area), self._max_dets(max_dets)]
        return _mean(s)

    def mean_recall(self, *, iou: float | None = None, area: str = "all", max_dets: int | None = None) -> float:
        s = self.recall
        if iou is not None:
            s = s[np.where(iou == self.params.iou_thresholds)[0]]
        s = s[:, :, self._area(area), self._max_dets(max_dets)]
        return _mean(s)

    def class_precision(self, k: int, *, iou: float | None = None) -> float:
        s = self.precision[:, :, k : k + 1, 0, -1]
        if iou is not None:
            s = self.precision[np.where(iou == self.params.iou_thresholds)[0], :, k : k + 1, 0, -1]
        return _mean(s)

    def _area(self, name: str) -> list[int]:
        return [i for i, (n, _, _) in enumerate(self.params.area_ranges) if n == name]

    def _max_dets(self, m: int | None) -> list[int]:
        wanted = self.params.max_dets[-1] if m is None else m
        return [i for i, d in enumerate(self.params.max_dets) if d == wanted]


def _mean(s: F64) -> float:
    kept = s[s > -1]
    return -1.0 if kept.size == 0 else float(np.mean(kept))


def evaluate(
    gt: Instances,
    dt: Instances,
    n_categories: int,
    overlap: PairOverlap,
    params: CocoParams | None = None,
) -> CocoResult:
    """Match `dt` to `gt` and accumulate precision and recall; `overlap` gives IoU (or OKS) of candidate pairs."""
    p = params or CocoParams()
    matching = match(gt, dt, n_categories, overlap, p)
    precision, recall, scores = accumulate(gt, dt, n_categories, matching, p)
    return CocoResult(p, precision, recall, scores, matching)


def match(
    gt: Instances,
    dt: Instances,
    n_categories: int,
    overlap: PairOverlap,
    p: CocoParams,
) -> Matching:
    """The greedy matching of pycocotools' `evaluateImg`, for every group, area range and threshold at once."""
    max_det = int(p.max_dets[-1])
    n_gt = len(gt)
    thresholds = np.minimum(np.asarray(p.iou_thresholds, dtype=np.float64), _CAP)
    n_t, n_a = thresholds.shape[0], len(p.area_ranges)

    # Detections by (image, class), best score first, ties in the order given; keep the best max_det of each group.
    order = np.lexsort((np.arange(len(dt)), -dt.score, dt.category, dt.image))
    group = dt.image[order] * n_categories + dt.category[order]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if order.size else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, order.size])
    rank = np.arange(order.size) - np.repeat(starts, sizes)
    keep = rank < max_det
    dt_index, dt_rank, dt_group = order[keep], rank[keep], group[keep]
    n_dt = dt_index.shape[0]

    # Ground truth by (image, class), in the order given.
    g_order = np.lexsort((np.arange(n_gt), gt.category, gt.image))
    g_group = gt.image[g_order] * n_categories + gt.category[g_order]
    lo = np.searchsorted(g_group, dt_group, side="left")
    hi = np.searchsorted(g_group, dt_group, side="right")
    counts = hi - lo
    pair_d = np.repeat(np.arange(n_dt), counts)  # position among kept detections
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    pair_gpos = np.repeat(lo, counts) + (np.arange(pair_d.shape[0]) - offsets)  # position in g_order
    pair_g = g_order[pair_gpos]
    ious = overlap(dt_index[pair_d], pair_g) if pair_d.size else np.zeros(0)
    ious = np.asarray(ious, dtype=np.float64)

    # Ground truth ignored per area range; detections outside the range are ignored when unmatched.
    gt_ignored = np.empty((n_a, n_gt), bool)
    dt_outside = np.empty((n_a, n_dt), bool)
    crowd = gt.crowd
    for a, (_, lo_area, hi_area) in enumerate(p.area_ranges):
        gt_ignored[a] = gt.crowd | gt.ignore | (gt.area < lo_area) | (gt.area > hi_area)
        d_area = dt.area[dt_index]
        dt_outside[a] = (d_area < lo_area) | (d_area > hi_area)

    matched_gt = np.full((n_a, n_t, n_dt), -1, np.int64)
    gt_matched = np.zeros((n_a, n_t, n_gt), bool)

    candidate = ious >= thresholds.min() if ious.size else np.zeros(0, bool)
    c_d, c_g, c_gpos, c_iou = pair_d[candidate], pair_g[candidate], pair_gpos[candidate], ious[candidate]
    c_rank = dt_rank[c_d]
    c_crowd = crowd[c_g]
    c_reach = c_iou[None, :] >= thresholds[:, None]  # [T, P]
    for a in range(n_a):
        # Within a detection, the pair taken is the last available one in (regular first, overlap, position) order.
        regular = ~gt_ignored[a, c_g]
        sort = np.lexsort((c_gpos, c_iou, regular, c_d, c_rank))
        s_d, s_g, s_rank = c_d[sort], c_g[sort], c_rank[sort]
        s_reach, s_crowd = c_reach[:, sort], c_crowd[sort]
        bounds = np.flatnonzero(np.r_[True, s_rank[1:] != s_rank[:-1], True]) if sort.size else np.zeros(1, np.int64)
        for lo_p, hi_p in itertools.pairwise(bounds):
            d = s_d[lo_p:hi_p]
            g = s_g[lo_p:hi_p]
            free = s_reach[:, lo_p:hi_p] & ~(gt_matched[a][:, g] & ~s_crowd[lo_p:hi_p])
            heads = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
            position = np.where(free, np.arange(hi_p - lo_p), -1)
            chosen = np.maximum.reduceat(position, heads, axis=1)  # [T, detections of this rank]
            t_idx, h_idx = np.nonzero(chosen >= 0)
            taken = chosen[t_idx, h_idx]
            matched_gt[a, t_idx, d[heads[h_idx]]] = g[taken]
            gt_matched[a, t_idx, g[taken]] = True

    dt_ignored = np.zeros((n_a, n_t, n_dt), bool)
    has = matched_gt >= 0
    rows = np.broadcast_to(np.arange(n_a)[:, None, None], matched_gt.shape)
    dt_ignored[has] = gt_ignored[rows[has], matched_gt[has]]
    dt_ignored |= ~has & dt_outside[:, None, :]
    return Matching(
        dt_index=dt_index,
        dt_rank=dt_rank,
        matched_gt=matched_gt,
        dt_ignored=dt_ignored,
        gt_ignored=gt_ignored,
        gt_matched=gt_matched,
        pair_dt=dt_index[pair_d],
        pair_gt=pair_g,
        pair_iou=ious,
    )


def accumulate(gt: Instances, dt: Instances, n_categories: int, m: Matching, p: CocoParams) -> tuple[F64, F64, F64]:
    """pycocotools' `accumulate`: per class, area range and detection cap, precision at each recall point."""
    rec_thr = np.asarray(p.recall_thresholds, dtype=np.float64)
    n_t, n_r, n_k = len(p.iou_thresholds), rec_thr.shape[0], n_categories
    n_a, n_m = len(p.area_ranges), len(p.max_dets)
    precision = -np.ones((n_t, n_r, n_k, n_a, n_m))
    recall = -np.ones((n_t, n_k, n_a, n_m))
    scores = -np.ones((n_t, n_r, n_k, n_a, n_m))

    # Regular ground truth per class and area range.
    regular = ~m.gt_ignored  # [A, G]
    npig = np.zeros((n_a, n_k), np.int64)
    for a in range(n_a):
        npig[a] = np.bincount(gt.category[regular[a]], minlength=n_k)[:n_k]

    # Detections per class in accumulation order: score descending, then image, then rank within the image.
    score = dt.score[m.dt_index]
    cat = dt.category[m.dt_index]
    img = dt.image[m.dt_index]
    order = np.lexsort((m.dt_rank, img, -score, cat))
    cat_sorted = cat[order]
    bounds = np.searchsorted(cat_sorted, np.arange(n_k + 1))
    matched = m.matched_gt[:, :, order] >= 0  # [A, T, D]
    ignored = m.dt_ignored[:, :, order]
    ranks = m.dt_rank[order]
    scores_sorted = score[order]
    tp_all = matched & ~ignored
    fp_all = ~matched & ~ignored
    eps = np.spacing(1)

    for k in range(n_k):
        if not npig[:, k].any():
            continue
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        previous = -1
        for mi, cap in enumerate(p.max_dets):
            sel = np.arange(lo, hi)[ranks[lo:hi] < cap]
            nd = sel.shape[0]
            if nd == previous:  # the caps are ascending, so the same count means the same detections
                precision[:, :, k, :, mi] = precision[:, :, k, :, mi - 1]
                recall[:, k, :, mi] = recall[:, k, :, mi - 1]
                scores[:, :, k, :, mi] = scores[:, :, k, :, mi - 1]
                continue
            previous = nd
            tp_sum = np.cumsum(tp_all[:, :, sel], axis=2, dtype=np.float64)  # exact: integers below 2**53
            fp_sum = np.cumsum(fp_all[:, :, sel], axis=2, dtype=np.float64)
            ss = scores_sorted[sel]
            for a in range(n_a):
                if npig[a, k] == 0:
                    continue
                tp, fp = tp_sum[a], fp_sum[a]  # [T, nd]
                if nd == 0:
                    recall[:, k, a, mi] = 0
                    precision[:, :, k, a, mi] = 0
                    scores[:, :, k, a, mi] = 0
                    continue
                rc = tp / npig[a, k]
                pr = tp / (fp + tp + eps)
                recall[:, k, a, mi] = rc[:, -1]
                envelope = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                first = _first_reaching(tp, int(npig[a, k]), rec_thr)  # [T, R]
                inside = first < nd
                safe = np.where(inside, first, 0)
                precision[:, :, k, a, mi] = np.where(inside, np.take_along_axis(envelope, safe, axis=1), 0.0)
                scores[:, :, k, a, mi] = np.where(inside, ss[safe], 0.0)
    return precision, recall, scores


def _first_reaching(tp: F64, npig: int, thresholds: F64) -> I64:
    """Row-wise `np.searchsorted(tp[row] / npig, thresholds, side="left")`, as pycocotools finds the first position
    whose recall reaches each recall point. Recall only takes the values c / npig, so each point needs the smallest
    count c whose quotient (computed as pycocotools computes it) reaches it, and then the first position with that
    many true positives."""
    quotients = np.arange(npig + 1, dtype=np.float64) / npig
    needed = np.searchsorted(quotients, thresholds, side="left").astype(np.float64)  # npig + 1 means never
    return np.stack([np.searchsorted(row, needed, side="left") for row in tp]).astype(np.int64)


def summarize(r: CocoResult, *, keypoints: bool = False) -> tuple[list[tuple[str, float]], F64]:
    """pycocotools' 12 summary numbers (10 for keypoints), with their names."""
    if keypoints:
        top = r.params.max_dets[-1]
        rows = [
            ("AP", r.mean_precision(max_dets=top)),
            ("AP50", r.mean_precision(iou=0.5, max_dets=top)),
            ("AP75", r.mean_precision(iou=0.75, max_dets=top)),
            ("APm", r.mean_precision(area="medium", max_dets=top)),
            ("APl", r.mean_precision(area="large", max_dets=top)),
            ("AR", r.mean_recall(max_dets=top)),
            ("AR50", r.mean_recall(iou=0.5, max_dets=top)),
            ("AR75", r.mean_recall(iou=0.75, max_dets=top)),
            ("ARm", r.mean_recall(area="medium", max_dets=top)),
            ("ARl", r.mean_recall(area="large", max_dets=top)),
        ]
    else:
        d = list(r.params.max_dets)
        big = d[2] if len(d) > 2 else d[-1]
        rows = [
            ("AP", r.mean_precision(max_dets=big)),
            ("AP50", r.mean_precision(iou=0.5, max_dets=big)),
            ("AP75", r.mean_precision(iou=0.75, max_dets=big)),
            ("APs", r.mean_precision(area="small", max_dets=big)),
            ("APm", r.mean_precision(area="medium", max_dets=big)),
            ("APl", r.mean_precision(area="large", max_dets=big)),
            (f"AR{d[0]}", r.mean_recall(max_dets=d[0])),
            (f"AR{d[1] if len(d) > 1 else d[0]}", r.mean_recall(max_dets=d[1] if len(d) > 1 else d[0])),
            (f"AR{big}", r.mean_recall(max_dets=big)),
            ("ARs", r.mean_recall(area="small", max_dets=big)),
            ("ARm", r.mean_recall(area="medium", max_dets=big)),
            ("ARl", r.mean_recall(area="large", max_dets=big)),
        ]
    r.stats = np.array([v for _, v in rows])
    return rows, r.stats


# Pairwise overlaps ----------------------------------------------------------------------------------------------


def box_overlap(dt_boxes: F64, gt_boxes: F64, gt_crowd: Bool) -> PairOverlap:
    """IoU of [x, y, w, h] boxes as pycocotools computes it (crowd: intersection over the detection's area)."""

    def overlap(d: I64, g: I64) -> F64:
        db, gb = dt_boxes[d], gt_boxes[g]
        w = np.minimum(db[:, 0] + db[:, 2], gb[:, 0] + gb[:, 2]) - np.maximum(db[:, 0], gb[:, 0])
        h = np.minimum(db[:, 1] + db[:, 3], gb[:, 1] + gb[:, 3]) - np.maximum(db[:, 1], gb[:, 1])
        inter = w * h
        da = db[:, 2] * db[:, 3]
        ga = gb[:, 2] * gb[:, 3]
        union = np.where(gt_crowd[g], da, da + ga - inter)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = inter / union
        return np.where((w > 0) & (h > 0), out, 0.0)

    return overlap


def keypoint_overlap(
    dt_points: F64, gt_points: F64, *, gt_visible: Bool, gt_boxes: F64, gt_area: F64, sigmas: F64, dt_valid: Bool
) -> PairOverlap:
    """OKS as pycocotools computes it. Points are [N, K, 2] padded to the largest rig; `sigmas` is [N_gt, K] and
    `dt_valid` [N_dt, K] marks the keypoints that belong to each instance's rig (padding is never summed)."""
    variances = (sigmas * 2) ** 2

    def overlap(d: I64, g: I64) -> F64:
        out = np.zeros(d.shape[0])
        if d.size == 0:
            return out
        xd, yd = dt_points[d, :, 0], dt_points[d, :, 1]
        xg, yg = gt_points[g, :, 0], gt_points[g, :, 1]
        vis = gt_visible[g]
        in_rig = dt_valid[d]
        k1 = np.count_nonzero(vis, axis=1)
        bb = gt_boxes[g]
        x0, x1 = bb[:, 0] - bb[:, 2], bb[:, 0] + bb[:, 2] * 2
        y0, y1 = bb[:, 1] - bb[:, 3], bb[:, 1] + bb[:, 3] * 2
        dx_vis, dy_vis = xd - xg, yd - yg
        dx_out = np.maximum(0, x0[:, None] - xd) + np.maximum(0, xd - x1[:, None])
        dy_out = np.maximum(0, y0[:, None] - yd) + np.maximum(0, yd - y1[:, None])
        labeled = (k1 > 0)[:, None]
        dx = np.where(labeled, dx_vis, dx_out)
        dy = np.where(labeled, dy_vis, dy_out)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            e = (dx**2 + dy**2) / variances[g] / (gt_area[g][:, None] + np.spacing(1)) / 2
        use = np.where(labeled, vis, in_rig)
        # Sum exp(-e) over the used points in keypoint order with the same summation as a 1-D np.sum of that many
        # numbers, so that results are bit-identical: rows are grouped by how many points they sum.
        n_used = np.count_nonzero(use, axis=1)
        for n in np.unique(n_used):
            rows = np.flatnonzero(n_used == n)
            if n == 0:
                out[rows] = np.nan
                continue
            sub_use = use[rows]
            cols = np.argsort(~sub_use, axis=1, kind="stable")[:, :n]
            vals = np.exp(-np.take_along_axis(e[rows], cols, axis=1))
            out[rows] = np.sum(vals, axis=1) / n
        return out

    return overlap


@dataclass
class Mask:
    """One instance's mask: a boolean crop and where it sits in its image."""

    top: int
    left: int
    pixels: Bool  # [h, w]

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.pixels))

    @staticmethod
    def crop(full: Bool) -> Mask:
        rows = np.flatnonzero(full.any(axis=1))
        if rows.size == 0:
            return Mask(0, 0, np.zeros((0, 0), bool))
        cols = np.flatnonzero(full.any(axis=0))
        return Mask(int(rows[0]), int(cols[0]), full[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy())


def mask_overlap(dt_masks: Sequence[Mask], gt_masks: Sequence[Mask], gt_crowd: Bool) -> PairOverlap:
    """Mask IoU as pycocotools computes it (crowd: intersection over the detection's area)."""
    d_area = np.array([m.area for m in dt_masks], dtype=np.float64)
    g_area = np.array([m.area for m in gt_masks], dtype=np.float64)

    def box(masks: Sequence[Mask]) -> NDArray[np.int64]:
        return np.array(
            [[m.top, m.left, m.top + m.pixels.shape[0], m.left + m.pixels.shape[1]] for m in masks], np.int64
        ).reshape(-1, 4)

    d_box, g_box = box(dt_masks), box(gt_masks)

    def overlap(d: I64, g: I64) -> F64:
        out = np.zeros(d.shape[0])
        top = np.maximum(d_box[d, 0], g_box[g, 0])
        left = np.maximum(d_box[d, 1], g_box[g, 1])
        bottom = np.minimum(d_box[d, 2], g_box[g, 2])
        right = np.minimum(d_box[d, 3], g_box[g, 3])
        inter = np.zeros(d.shape[0])
        for i in np.flatnonzero((bottom > top) & (right > left)):
            dm, gm = dt_masks[d[i]], gt_masks[g[i]]
            t, lf, b, r = int(top[i]), int(left[i]), int(bottom[i]), int(right[i])
            a = dm.pixels[t - dm.top : b - dm.top, lf - dm.left : r - dm.left]
            c = gm.pixels[t - gm.top : b - gm.top, lf - gm.left : r - gm.left]
            inter[i] = np.count_nonzero(a & c)
        union = np.where(gt_crowd[g], d_area[d], d_area[d] + g_area[g] - inter)
        positive = union > 0
        out[positive] = inter[positive] / union[positive]
        return out

    return overlap


def polygon_mask(polygons: Sequence[Sequence[float] | F64], height: int, width: int) -> Bool:
    """Rasterise polygons (flat x, y lists in pixels) the way pycocotools does (`frPyObjects` then `merge`), so that
    mask figures from polygons agree with it pixel for pixel: vertices on a 5× grid, edges walked one grid step at a
    time, and a pixel filled when its centre lies inside."""
    out = np.zeros((height, width), bool)
    for poly in polygons:
        out |= _one_polygon(np.asarray(poly, dtype=np.float64), height, width)
    return out


def _one_polygon(xy: F64, h: int, w: int) -> Bool:
    scale = 5.0
    k = xy.shape[0] // 2
    x = np.empty(k + 1, np.int64)
    y = np.empty(k + 1, np.int64)
    x[:k] = (scale * xy[0::2][:k] + 0.5).astype(np.int64)  # C's (int) cast truncates toward zero, as astype does
    y[:k] = (scale * xy[1::2][:k] + 0.5).astype(np.int64)
    x[k], y[k] = x[0], y[0]
    xs, xe, ys, ye = x[:-1], x[1:], y[:-1], y[1:]
    dx, dy = np.abs(xe - xs), np.abs(ys - ye)
    flip = ((dx >= dy) & (xs > xe)) | ((dx < dy) & (ys > ye))
    xs, xe = np.where(flip, xe, xs), np.where(flip, xs, xe)
    ys, ye = np.where(flip, ye, ys), np.where(flip, ys, ye)
    along_x = dx >= dy
    steps = np.where(along_x, dx, dy)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(along_x, (ye - ys) / dx.astype(np.float64), (xe - xs) / dy.astype(np.float64))
    slope = np.nan_to_num(slope)
    counts = steps + 1
    edge = np.repeat(np.arange(k), counts)
    d = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    t = np.where(flip[edge], steps[edge] - d, d)
    ax = along_x[edge]
    u = np.where(ax, t + xs[edge], (xs[edge] + slope[edge] * t + 0.5).astype(np.int64))
    v = np.where(ax, (ys[edge] + slope[edge] * t + 0.5).astype(np.int64), t + ys[edge])
    # Points where the boundary crosses to a new column, moved back to pixel coordinates.
    change = np.flatnonzero(u[1:] != u[:-1]) + 1
    uj, up, vj, vp = u[change], u[change - 1], v[change], v[change - 1]
    xd = (np.where(uj < up, uj, uj - 1).astype(np.float64) + 0.5) / scale - 0.5
    keep = (np.floor(xd) == xd) & (xd >= 0) & (xd <= w - 1)
    yd = (np.where(vj < vp, vj, vp).astype(np.float64) + 0.5) / scale - 0.5
    yd = np.ceil(np.clip(yd, 0, h))
    cols, rows = xd[keep].astype(np.int64), yd[keep].astype(np.int64)
    # Each crossing toggles the fill from there on, in column-major order.
    toggles = np.bincount(cols * h + rows, minlength=h * w + 1)[: h * w + 1]
    filled = (np.cumsum(toggles[: h * w]) % 2).astype(bool)
    return filled.reshape(w, h).T
