"""SelectSamples: the inputs of each criterion read from a dataset version (its embeddings and queryable metadata) and
from inference sets (custom-metric scores, predicted classes), the combined selection, and the segment of the dataset
pinned to that version that holds the result. The versioning service saves the segment (it is the only writer of the
catalog): this module only says what it holds."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoal.embedding import selection
from shoal.embedding.indexes import Index, Indexes
from shoal.kit.errors import FailedPrecondition, FieldViolation, InvalidArgument
from shoal.kit.names import DatasetName, parse_inference_set
from shoal.storage import columnar
from shoal.storage.tables import TableRoot
from shoal.v1 import dataset_pb2, embedding_pb2, embedding_service_pb2

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

    def _inference_rows(self, index: Index, name: str, field: str, columns: list[str]) -> pa.Table:
        """Columns of the newest version of an inference set of the index's dataset, one row per index row (null
        where the set has no frame for it)."""
        target = parse_inference_set(name if "/" in name else f"{index.dataset}/inferenceSets/{name}", field)
        if target.dataset_name != index.dataset:
            raise InvalidArgument.of([FieldViolation(field, f"is not an inference set of {index.dataset}")])
        self.indexes.reads.catalog.get_inference_set(target)
        tables = self.root.tables(target)
        latest = tables.latest()
        rows = tables.read(latest.version if latest else 0, ["frame_id", *columns])
        if rows.num_rows == 0:
            rows = columnar.INFERENCES.schema().empty_table().select(["frame_id", *columns])
        at = pc.index_in(pa.array(index.frame_ids, pa.string()), value_set=rows.column("frame_id").combine_chunks())
        return rows.take(at)

    def _numbers(self, index: Index, c: embedding_pb2.SelectionCriterion, where: str) -> np.ndarray:
        t = c.input.type
        number = columnar.MetadataColumn(c.input.key, ("float_value", "int_value"), pa.float64())
        if t == E.SELECTION_INPUT_TYPE_METADATA:
            values = columnar.metadata_values(index.attributes.column("user_metadata").combine_chunks(), number)
            return _floats(values)
        if t == E.SELECTION_INPUT_TYPE_SCORES:
            rows = self._inference_rows(
                index, c.input.inference_set, f"{where}.input.inference_set", ["custom_metrics"]
            )
            metrics = rows.column("custom_metrics").combine_chunks()
            out = np.full(index.count, np.nan)
            owners, keys, metric = columnar.map_entries(metrics)
            if len(keys):
                hit = pc.and_(pc.equal(keys, c.input.key), pc.equal(pc.struct_field(metric, ["value"]), "objective"))
                hits = pc.fill_null(hit, False).to_numpy(zero_copy_only=False)
                out[owners[hits]] = _floats(pc.struct_field(metric, ["objective"]).filter(pa.array(hits)))
            return out
        raise InvalidArgument.of([FieldViolation(f"{where}.input.type", "needs SCORES or METADATA (a numeric value)")])

    def _categories(
        self, index: Index, c: embedding_pb2.SelectionCriterion, where: str
    ) -> tuple[np.ndarray, list[str]]:
        labels: list[str | None]
        if c.input.type == E.SELECTION_INPUT_TYPE_METADATA:
            labels = [None if m.get(c.input.key) is None else str(m.get(c.input.key)) for m in index.metadata]
        elif c.input.type == E.SELECTION_INPUT_TYPE_PREDICTIONS:
            rows = self._inference_rows(index, c.input.inference_set, f"{where}.input.inference_set", ["labels"])
            labels = _most_common_class(rows.column("labels").combine_chunks(), index.count)
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


def _floats(values: pa.Array) -> np.ndarray:
    """Finite floats of `values`; NaN where null or not finite."""
    out: np.ndarray = pc.fill_null(values.cast(pa.float64()), math.nan).to_numpy(zero_copy_only=False)
    out = out.astype(np.float64)
    out[~np.isfinite(out)] = np.nan
    return out


def _most_common_class(labels: pa.Array, n: int) -> list[str | None]:
    """Per row, the class most labels carry (ties: the one whose first label comes first), None without labels."""
    flat = labels.flatten()
    if len(flat) == 0:
        return [None] * n
    counted = (
        pa.table(
            {
                "row": pc.list_parent_indices(labels),
                "class": flat.field("classification"),
                "at": pa.array(np.arange(len(flat))),
            }
        )
        .group_by(["row", "class"], use_threads=False)
        .aggregate([("at", "min"), ("at", "count")])
        .sort_by([("row", "ascending"), ("at_count", "descending"), ("at_min", "ascending")])
    )
    rows = counted.column("row").to_numpy()
    first = np.concatenate([[True], rows[1:] != rows[:-1]]) if len(rows) else np.zeros(0, bool)
    out: list[str | None] = [None] * n
    for row, name in zip(
        rows[first].tolist(), counted.column("class").filter(pa.array(first)).to_pylist(), strict=True
    ):
        out[row] = name
    return out
