"""What an evaluation of instances gives besides its COCO figures: a class-agnostic matching at one IoU and
confidence threshold, the confusion matrix it gives, the matches of every frame, and label-error candidates.

Everything is computed on the instances' arrays (`tasks.Side`): the overlap of every (prediction, ground truth)
pair of a frame once, then masks, maxima and sorts over those pairs. Messages are built only for what is returned,
one per match or candidate.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoal.metrics import coco
from shoal.metrics.coco import F64, I64, Bool
from shoal.metrics.frames import Strings
from shoal.v1 import evaluation_pb2

if TYPE_CHECKING:  # tasks builds the instances and calls in here
    from shoal.metrics.tasks import Classes, Side

#: Defaults of the match thresholds (confusion matrix, per-frame matches, label-error candidates).
DEFAULT_MATCH_IOU: Final = 0.5
DEFAULT_MATCH_CONFIDENCE: Final = 0.5
#: A confident same-class match below this IoU is a loose box.
LOOSE_IOU: Final = 0.75
#: Overlap below which a prediction is "not near" any ground truth.
NEAR_IOU: Final = 0.2
BACKGROUND: Final = "background"


@dataclass
class Confusion:
    matrix: evaluation_pb2.ConfusionMatrix
    frames: list[evaluation_pb2.FrameMatches]
    candidates: list[evaluation_pb2.LabelErrorCandidate]


@dataclass
class _Pairs:
    """Every (prediction, ground truth) pair in a frame and its overlap. A prediction's pairs are consecutive and in
    its frame's ground-truth order, so the position of any pair follows from its two rows, without a search."""

    d: I64
    g: I64
    iou: F64
    first: I64  # per prediction: position of its first pair
    lo: I64  # per prediction: position of its frame's first ground truth in the frame order of the ground truth
    rank: I64  # per ground truth: its position in that order

    @staticmethod
    def of(gt: Side, dt: Side, overlap: coco.PairOverlap) -> _Pairs:
        g_order = np.argsort(gt.frame, kind="stable")
        lo = np.searchsorted(gt.frame[g_order], dt.frame, side="left")
        hi = np.searchsorted(gt.frame[g_order], dt.frame, side="right")
        counts = hi - lo
        first = np.cumsum(counts) - counts
        d = np.repeat(np.arange(len(dt)), counts)
        g = g_order[np.repeat(lo, counts) + (np.arange(d.shape[0]) - np.repeat(first, counts))]
        iou = np.asarray(overlap(d, g), np.float64) if d.size else np.zeros(0)
        rank = np.empty(len(gt), np.int64)
        rank[g_order] = np.arange(len(gt))
        return _Pairs(d, g, iou, first, lo, rank)

    def at(self, d: I64, g: I64) -> F64:
        """The overlap of predictions `d` with ground truth `g` in their frames."""
        out: F64 = self.iou[self.first[d] + self.rank[g] - self.lo[d]]
        return out


@dataclass
class _Matches:
    """Per-frame matches as columns, one row per match, turned into messages frame by frame."""

    frame: I64
    kind: I64
    truth_id: Strings
    prediction_id: Strings
    truth_class: Strings
    prediction_class: Strings
    iou: F64
    confidence: F64

    def by_frame(self, frame_ids: Sequence[str]) -> list[evaluation_pb2.FrameMatches]:
        """Frames in frame order; a frame's matches in row order."""
        order = np.argsort(self.frame, kind="stable")
        frame = self.frame[order]
        starts = np.flatnonzero(np.r_[True, frame[1:] != frame[:-1]]) if order.size else np.zeros(0, np.int64)
        sizes = np.diff(np.r_[starts, order.size]).tolist()
        rows = zip(
            self.kind[order].tolist(),
            self.truth_id[order].tolist(),
            self.prediction_id[order].tolist(),
            self.truth_class[order].tolist(),
            self.prediction_class[order].tolist(),
            self.iou[order].tolist(),
            self.confidence[order].tolist(),
            strict=True,
        )
        out = []
        # Unset fields are left at their defaults: an empty id or class, a zero IoU or confidence.
        for f, size in zip(frame[starts].tolist(), sizes, strict=True):
            matches = evaluation_pb2.FrameMatches(frame_id=frame_ids[f])
            add = matches.matches.add
            for kind, truth_id, prediction_id, truth_class, prediction_class, iou, confidence in itertools.islice(
                rows, size
            ):
                add(
                    kind=kind,
                    ground_truth_label_id=truth_id,
                    prediction_label_id=prediction_id,
                    ground_truth_class=truth_class,
                    prediction_class=prediction_class,
                    iou=iou,
                    confidence=confidence,
                )
            out.append(matches)
        return out


def confusion(
    frame_ids: Sequence[str],
    gt: Side,
    dt: Side,
    *,
    params: evaluation_pb2.EvaluationParams,
    classes: Classes,
    overlap: coco.PairOverlap,
) -> Confusion:
    """Class-agnostic greedy matching at one IoU and confidence threshold (a same-class partner preferred), the
    confusion matrix it gives (with a background row and column), per-frame matches, and label-error candidates.
    The overlap of every pair in a frame is computed once; the matching and everything after it look it up."""
    iou_thr = params.match_iou_threshold or DEFAULT_MATCH_IOU
    conf_thr = params.match_confidence_threshold or DEFAULT_MATCH_CONFIDENCE
    n_k = len(classes.names)
    size = n_k + 1
    score = dt.score
    confident = score >= conf_thr
    pairs = _Pairs.of(gt, dt, overlap)
    # Ground-truth columns with one more row, -1, for "none": a prediction without a partner reads background.
    g_cat = np.r_[gt.category, n_k]
    g_crowd = np.r_[gt.crowd, False]

    # Matching: confident predictions only; value = IoU, plus 1 for a same-class partner, 0 below the threshold.
    dt_rows = np.flatnonzero(confident)

    def agnostic(d: I64, g: I64) -> F64:
        rows = dt_rows[d]
        iou = pairs.at(rows, g)
        return np.where(iou >= iou_thr, iou + (dt.category[rows] == g_cat[g]), 0.0)

    gi = coco.Instances.make(gt.frame, np.zeros(len(gt), np.int64), np.zeros(len(gt)), crowd=gt.crowd)
    di = coco.Instances.make(
        dt.frame[dt_rows], np.zeros(dt_rows.shape[0], np.int64), np.zeros(dt_rows.shape[0]), score=score[dt_rows]
    )
    m = coco.match(
        gi,
        di,
        1,
        agnostic,
        coco.CocoParams(iou_thresholds=np.array([iou_thr]), area_ranges=(("all", 0.0, np.inf),), max_dets=(10**9,)),
    )
    partner = np.full(len(dt), -1, np.int64)
    partner[dt_rows[m.dt_index]] = m.matched_gt[0, 0]
    taken = np.zeros(len(gt), bool)
    taken[partner[partner >= 0]] = True

    # Confident predictions, but for those inside a crowd region (they count neither way); then missed ground truth.
    d = dt_rows[~g_crowd[partner[dt_rows]]]
    g = partner[d]
    matched = g >= 0
    missed = np.flatnonzero(~taken & ~gt.crowd)
    cells = np.r_[g_cat[g] * size + dt.category[d], gt.category[missed] * size + n_k]
    counts = np.bincount(cells, minlength=size * size).reshape(size, size)
    labels = [*classes.names, BACKGROUND if BACKGROUND not in classes.names else f"({BACKGROUND})"]
    matrix = evaluation_pb2.ConfusionMatrix(labels=labels)
    matrix.counts.rows = size
    matrix.counts.columns = size
    matrix.counts.values.extend(counts.astype(np.float64).ravel().tolist())

    # Per-frame matches: a frame's predictions in prediction order, then the ground truth it missed.
    r = evaluation_pb2
    iou = np.zeros(len(d))
    iou[matched] = pairs.at(d[matched], g[matched])
    kind = np.select(
        [~matched, g_cat[g] == dt.category[d]],
        [r.MATCH_KIND_FALSE_POSITIVE, r.MATCH_KIND_TRUE_POSITIVE],
        r.MATCH_KIND_CLASS_MISMATCH,
    )
    names = np.array([*classes.names, ""], dtype=object)
    nothing = np.full(len(missed), "", dtype=object)
    matches = _Matches(
        frame=np.r_[dt.frame[d], gt.frame[missed]],
        kind=np.r_[kind, np.full(len(missed), r.MATCH_KIND_FALSE_NEGATIVE)].astype(np.int64),
        truth_id=np.r_[np.r_[gt.label_id, np.array([""], dtype=object)][g], gt.label_id[missed]],
        prediction_id=np.r_[dt.label_id[d], nothing],
        truth_class=np.r_[names[g_cat[g]], names[gt.category[missed]]],
        prediction_class=np.r_[names[dt.category[d]], nothing],
        iou=np.r_[iou, np.zeros(len(missed))],
        confidence=np.r_[score[d], np.zeros(len(missed))],
    )
    candidates = label_errors(frame_ids, gt, dt, classes=classes, pairs=pairs, confident=confident, iou_thr=iou_thr)
    return Confusion(matrix, matches.by_frame(frame_ids), candidates)


def label_errors(
    frame_ids: Sequence[str],
    gt: Side,
    dt: Side,
    *,
    classes: Classes,
    pairs: _Pairs,
    confident: Bool,
    iou_thr: float,
) -> list[evaluation_pb2.LabelErrorCandidate]:
    """Rank labels by how likely they are wrong, judging the ground truth by a confident model.

    Each ground-truth label is looked at once, in this order: its best same-class confident prediction overlaps it
    but loosely (LOOSE_BOX, score confidence × (1 − IoU)); else a confident prediction of another class covers it
    (WRONG_CLASS, confidence × IoU); else no prediction comes near it (UNMATCHED_GROUND_TRUTH, 0.3 × (1 − best IoU
    with any prediction)). Then each confident prediction that no ground truth comes near and that no candidate
    above used is a MISSING_LABEL, scored by its confidence."""
    r = evaluation_pb2
    score = dt.score
    n_g = len(gt)
    pd, pg, piou = pairs.d, pairs.g, pairs.iou
    g_cat, d_cat = gt.category, dt.category
    names = np.array(classes.names, dtype=object)

    def best(mask: Bool) -> tuple[I64, F64]:
        """Per ground truth, the pair with the highest IoU among `mask` (the last such pair on a tie), or -1."""
        idx = np.full(n_g, -1, np.int64)
        val = np.full(n_g, -1.0)
        sel = np.flatnonzero(mask)
        if sel.size:
            np.maximum.at(val, pg[sel], piou[sel])
            top = sel[piou[sel] == val[pg[sel]]]
            np.maximum.at(idx, pg[top], top)
        return idx, val

    conf_pair = confident[pd]
    same = d_cat[pd] == g_cat[pg]
    same_idx, same_iou = best(conf_pair & same)
    other_idx, other_iou = best(conf_pair & ~same & (piou >= iou_thr))
    any_iou = np.full(n_g, -1.0)
    np.maximum.at(any_iou, pg, piou)
    open_ = ~gt.crowd
    loose = open_ & (same_idx >= 0) & (same_iou >= NEAR_IOU) & (same_iou < LOOSE_IOU)
    wrong = open_ & ~loose & (same_iou < NEAR_IOU) & (other_idx >= 0)
    lonely = open_ & ~loose & ~wrong & (any_iou < NEAR_IOU)
    used = np.zeros(len(dt), bool)
    used[pd[same_idx[loose]]] = True
    used[pd[other_idx[wrong]]] = True
    # Predictions: the best overlap with any ground truth.
    d_best = np.zeros(len(dt))
    if pd.size:
        np.maximum.at(d_best, pd, piou)
    missing = np.flatnonzero(confident & ~used & (d_best < NEAR_IOU))

    # One row per candidate, ground truth in its order then predictions in theirs (the order ties keep).
    g = np.flatnonzero(loose | wrong | lonely)
    pair = np.where(loose[g], same_idx[g], np.where(wrong[g], other_idx[g], -1))
    d = np.r_[np.where(pair >= 0, pd[np.maximum(pair, 0)] if pd.size else 0, -1), missing]
    kinds = [loose[g], wrong[g]]
    reason = np.r_[
        np.select(
            kinds,
            [r.LABEL_ERROR_REASON_LOOSE_BOX, r.LABEL_ERROR_REASON_WRONG_CLASS],
            r.LABEL_ERROR_REASON_UNMATCHED_GROUND_TRUTH,
        ),
        np.full(len(missing), r.LABEL_ERROR_REASON_MISSING_LABEL),
    ].astype(np.int64)
    conf = np.r_[score, 0.0][d]
    near = np.r_[np.maximum(any_iou[g], 0.0), np.zeros(len(missing))]
    overlap = np.r_[np.where(loose[g], same_iou[g], other_iou[g]), np.zeros(len(missing))]
    value = np.r_[
        np.select(
            kinds, [conf[: len(g)] * (1 - same_iou[g]), conf[: len(g)] * other_iou[g]], 0.3 * (1 - near[: len(g)])
        ),
        conf[len(g) :],
    ]
    frame = np.r_[gt.frame[g], dt.frame[missing]]
    g_ids = np.r_[gt.label_id[g], np.full(len(missing), "", dtype=object)]
    d_ids = np.r_[dt.label_id, np.array([""], dtype=object)][d]
    frame_id = np.array(frame_ids, dtype=object)[frame] if len(frame) else np.zeros(0, dtype=object)
    order = pc.sort_indices(
        pa.table(
            {
                "score": pa.array(-value, pa.float64()),
                "frame_id": pa.array(frame_id.tolist(), pa.string()),
                "truth": pa.array(g_ids.tolist(), pa.string()),
                "prediction": pa.array(d_ids.tolist(), pa.string()),
            }
        ),
        sort_keys=[(k, "ascending") for k in ("score", "frame_id", "truth", "prediction")],
    ).to_numpy(zero_copy_only=False)
    truth_class = np.r_[names[g_cat[g]], np.full(len(missing), "", dtype=object)]
    predicted_class = np.r_[names, np.array([""], dtype=object)][np.r_[d_cat, -1][d]]
    rows = zip(
        *(
            column[order].tolist()
            for column in (frame_id, g_ids, d_ids, reason, value, conf, overlap, near, truth_class, predicted_class)
        ),
        strict=True,
    )
    out = []
    for frame, truth_id, prediction_id, why, score, confidence, iou, best_iou, labeled, predicted in rows:
        if why == r.LABEL_ERROR_REASON_LOOSE_BOX:
            text = f"{labeled} matched by a {confidence:.2f}-confident prediction at IoU {iou:.2f}"
        elif why == r.LABEL_ERROR_REASON_WRONG_CLASS:
            text = f"labeled {labeled}, predicted {predicted} with confidence {confidence:.2f} at IoU {iou:.2f}"
        elif why == r.LABEL_ERROR_REASON_UNMATCHED_GROUND_TRUTH:
            text = f"{labeled} with no prediction near it (best IoU {best_iou:.2f})"
        else:
            text = f"{predicted} predicted with confidence {confidence:.2f} where nothing is labeled"
        out.append(
            r.LabelErrorCandidate(
                frame_id=frame,
                ground_truth_label_id=truth_id,
                prediction_label_id=prediction_id,
                reason=why,
                score=score,
                description=text,
            )
        )
    return out
