"""SelectSamples: the inputs of each criterion read from a dataset version (its embeddings and queryable metadata) and
from inference sets (custom-metric scores, predicted classes), the combined selection, and the segment of the dataset
pinned to that version that holds the result. The versioning service saves the segment (it is the only writer of the
catalog): this module only says what it holds."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from shoal.embedding import selection
from shoal.embedding.indexes import Index, Indexes
from shoal.kit.errors import FailedPrecondition, FieldViolation, InvalidArgument
from shoal.kit.names import DatasetName, parse_inference_set
from shoal.storage.tables import TableRoot
from shoal.v1 import dataset_pb2, embedding_pb2, embedding_service_pb2, frame_pb2

E = embedding_pb2


@dataclass
class Selection:
    """The frames a selection chose, in the order chosen, and the segment of `dataset` (to be created as
    `segment_id`) that holds them."""

    dataset: DatasetName
    segment_id: str
    segment: dataset_pb2.Segment
    frame_ids: list[str]
    scores: list[float]


class Sampler:
    def __init__(self, indexes: Indexes) -> None:
        self.indexes = indexes
        self.root: TableRoot = indexes.reads.root

    def _inference_frames(self, index: Index, name: str, field: str) -> dict[str, frame_pb2.InferenceFrame]:
        target = parse_inference_set(name if "/" in name else f"{index.dataset}/inferenceSets/{name}", field)
        if target.dataset_name != index.dataset:
            raise InvalidArgument.of([FieldViolation(field, f"is not an inference set of {index.dataset}")])
        self.indexes.reads.catalog.get_inference_set(target)
        tables = self.root.tables(target)
        latest = tables.latest()
        if latest is None:
            return {}
        return dict(tables.frames(latest.version))  # type: ignore[arg-type]

    def _numbers(self, index: Index, c: embedding_pb2.SelectionCriterion, where: str) -> np.ndarray:
        t = c.input.type
        if t == E.SELECTION_INPUT_TYPE_METADATA:
            out = np.full(index.count, np.nan)
            for i, m in enumerate(index.metadata):
                v = m.get(c.input.key)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    out[i] = float(v)
            return out
        if t == E.SELECTION_INPUT_TYPE_SCORES:
            frames = self._inference_frames(index, c.input.inference_set, f"{where}.input.inference_set")
            out = np.full(index.count, np.nan)
            for i, fid in enumerate(index.frame_ids):
                f = frames.get(fid)
                if (
                    f is not None
                    and c.input.key in f.custom_metrics
                    and f.custom_metrics[c.input.key].WhichOneof("value") == "objective"
                ):
                    out[i] = f.custom_metrics[c.input.key].objective
            return out
        raise InvalidArgument.of([FieldViolation(f"{where}.input.type", "needs SCORES or METADATA (a numeric value)")])

    def _categories(
        self, index: Index, c: embedding_pb2.SelectionCriterion, where: str
    ) -> tuple[np.ndarray, list[str]]:
        labels: list[str | None]
        if c.input.type == E.SELECTION_INPUT_TYPE_METADATA:
            labels = [None if m.get(c.input.key) is None else str(m.get(c.input.key)) for m in index.metadata]
        elif c.input.type == E.SELECTION_INPUT_TYPE_PREDICTIONS:
            frames = self._inference_frames(index, c.input.inference_set, f"{where}.input.inference_set")
            labels = []
            for fid in index.frame_ids:
                f = frames.get(fid)
                seen = Counter(lb.classification for lb in f.labels) if f is not None else Counter()
                labels.append(seen.most_common(1)[0][0] if seen else None)
        else:
            raise InvalidArgument.of([FieldViolation(f"{where}.input.type", "BALANCE needs PREDICTIONS or METADATA")])
        names = sorted({v for v in labels if v is not None} | set(c.target))
        at = {n: i for i, n in enumerate(names)}
        return np.array([-1 if v is None else at[v] for v in labels], np.int64), names

    def select(self, request: embedding_service_pb2.SelectSamplesRequest) -> Selection:
        ref = self.indexes.reads.resolve(request.parent, "parent")
        index = self.indexes.get(f"{ref.dataset}/versions/{ref.version}/indexes/frame", 0, "parent")
        if not request.criteria:
            raise InvalidArgument.of([FieldViolation("criteria", "give at least one criterion")])
        eligible = np.ones(index.count, bool)
        if request.filter:
            eligible &= index.matching(request.filter)
        names = {
            E.SELECTION_STRATEGY_TYPE_DIVERSITY: "DIVERSITY",
            E.SELECTION_STRATEGY_TYPE_WEIGHTS: "WEIGHTS",
            E.SELECTION_STRATEGY_TYPE_THRESHOLD: "THRESHOLD",
            E.SELECTION_STRATEGY_TYPE_BALANCE: "BALANCE",
            E.SELECTION_STRATEGY_TYPE_SIMILARITY: "SIMILARITY",
            E.SELECTION_STRATEGY_TYPE_TYPICALITY: "TYPICALITY",
            E.SELECTION_STRATEGY_TYPE_RANDOM: "RANDOM",
        }
        ops = {
            E.THRESHOLD_OPERATION_GREATER: "GREATER",
            E.THRESHOLD_OPERATION_GREATER_EQUAL: "GREATER_EQUAL",
            E.THRESHOLD_OPERATION_SMALLER: "SMALLER",
            E.THRESHOLD_OPERATION_SMALLER_EQUAL: "SMALLER_EQUAL",
        }
        criteria: list[selection.Criterion] = []
        for i, c in enumerate(request.criteria):
            where = f"criteria[{i}]"
            if c.strategy not in names:
                raise InvalidArgument.of([FieldViolation(f"{where}.strategy", "give a strategy")])
            strategy = names[c.strategy]
            crit = selection.Criterion(strategy, strength=c.strength or 1.0, minimum_distance=c.minimum_distance)
            if strategy in ("WEIGHTS", "THRESHOLD"):
                crit.values = self._numbers(index, c, where)
                crit.threshold = c.threshold
                crit.operation = ops.get(c.operation, "GREATER")
            elif strategy == "BALANCE":
                crit.classes, order = self._categories(index, c, where)
                if not c.target:
                    raise InvalidArgument.of([FieldViolation(f"{where}.target", "BALANCE needs target shares")])
                crit.target = {order.index(k): v for k, v in c.target.items()}
            elif strategy == "SIMILARITY":
                rows = []
                for fid in c.query_frame_ids:
                    found = index.rows_of_frame.get(fid)
                    if not found:
                        raise InvalidArgument.of(
                            [
                                FieldViolation(
                                    f"{where}.query_frame_ids", f"{fid!r} has no embedding at version {index.version}"
                                )
                            ]
                        )
                    rows.append(found[0])
                crit.queries = rows
            elif strategy == "TYPICALITY":
                crit.neighbors = c.neighbors or 10
            criteria.append(crit)
        total = int(eligible.sum())
        if request.WhichOneof("amount") == "proportion":
            if not 0 < request.proportion <= 1:
                raise InvalidArgument.of([FieldViolation("proportion", "must be in (0, 1]")])
            count = max(1, round(request.proportion * total))
        else:
            count = int(request.count)
            if count <= 0:
                raise InvalidArgument.of([FieldViolation("count", "give a positive count or a proportion")])
        if index.count == 0 or total == 0:
            raise FailedPrecondition("no frame with an embedding passes the filter", reason="NOTHING_TO_SELECT")
        picked = selection.select(
            self.indexes.backend,
            index.vectors,
            criteria,
            count,
            metric=index.metric,
            eligible=eligible,
            seed=int(request.seed),
        )
        frame_ids = [index.frame_ids[r] for r in picked.rows]
        segment_id = (
            request.segment_id
            or "selection-" + hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()[:12]
        )
        segment = dataset_pb2.Segment(
            display_name="selection", description=f"{len(frame_ids)} frames selected at version {ref.version}"
        )
        segment.elements.extend(dataset_pb2.SegmentElement(frame_id=f, version=ref.version) for f in frame_ids)
        scores = [float(s) if math.isfinite(s) else 1e308 for s in picked.scores]
        return Selection(ref.dataset, segment_id, segment, frame_ids, scores)
