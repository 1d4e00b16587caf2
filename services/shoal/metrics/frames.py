"""The frames of an evaluation as Arrow columns, and the label columns the tasks read from them.

An evaluation reads the columns of two tables at one version each, the inference set's predictions and the dataset's
ground truth, and joins them by frame id (`Frames.join`): row i of both sides is one frame. Nothing is decoded per
frame: the tasks flatten a side's `labels` column once (`Labels`) and read the struct fields of all its labels at
once. Frame messages only come in at the edge (`Frames.of`), for callers that hold messages, and go through the
tables' own layout (`shoal.storage.columnar`), so they are read exactly as stored frames are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from shoal.storage import columnar
from shoal.v1 import frame_pb2

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]
Strings = NDArray[np.object_]

#: What an evaluation reads of each side (and `user_metadata` of both when it is stratified).
TRUTH_COLUMNS: Final = ("frame_id", "labels", "sensors")
PREDICTION_COLUMNS: Final = ("frame_id", "labels", "custom_metrics")
METADATA: Final = "user_metadata"


@dataclass
class Pair:
    """One frame as messages: its ground truth at the pinned version and the model's predictions."""

    frame_id: str
    truth: frame_pb2.Frame
    prediction: frame_pb2.InferenceFrame


def column(table: pa.Table, name: str) -> pa.Array | None:
    """One column as a single array (None when the table lacks it)."""
    if name not in table.column_names:
        return None
    return table.column(name).combine_chunks()


@dataclass(frozen=True)
class Frames:
    """The frames of an evaluation: row i of `truth` (dataset columns) and of `predictions` (inference-set columns)
    are the same frame."""

    truth: pa.Table
    predictions: pa.Table

    def __len__(self) -> int:
        return int(self.predictions.num_rows)

    def frame_ids(self) -> list[str]:
        ids: list[str] = self.predictions.column("frame_id").to_pylist()
        return ids

    def take(self, rows: I64 | Sequence[int]) -> Frames:
        at = pa.array(np.asarray(rows, np.int64), pa.int64())
        return Frames(self.truth.take(at), self.predictions.take(at))

    @staticmethod
    def join(predictions: pa.Table, truth: pa.Table) -> tuple[Frames, int]:
        """The prediction rows that have a ground-truth row of the same frame id, beside it, in the predictions'
        order; and how many have none."""
        at = pc.index_in(predictions.column("frame_id"), value_set=truth.column("frame_id").combine_chunks())
        found = at.is_valid()
        missing = len(at) - int(pc.sum(found.cast(pa.int64())).as_py() or 0)
        if missing:
            predictions = predictions.filter(found)
            at = at.filter(found)
        return Frames(truth.take(at), predictions), missing

    @staticmethod
    def of(pairs: Sequence[Pair]) -> Frames:
        """Frames held as messages, in the tables' layout."""
        truth = columnar.FRAMES.encode([p.truth for p in pairs])
        predictions = columnar.INFERENCES.encode([p.prediction for p in pairs])
        ids = pa.array([p.frame_id for p in pairs], pa.string())
        return Frames(
            truth.set_column(truth.schema.get_field_index("frame_id"), "frame_id", ids),
            predictions.set_column(predictions.schema.get_field_index("frame_id"), "frame_id", ids),
        )


def entries(values: pa.Array) -> tuple[I64, pa.Array, pa.Array]:
    """The entries of a map array: the row each belongs to, keys and values."""
    return columnar.map_entries(values)


def elements(values: pa.Array) -> tuple[I64, pa.Array]:
    """The elements of a list array and the row each belongs to."""
    parents = pc.list_parent_indices(values).to_numpy(zero_copy_only=False).astype(np.int64)
    return parents, pc.list_flatten(values)


@dataclass(frozen=True)
class Labels:
    """The labels of one side of some frames, one row per label, in frame then label order."""

    frame: I64  # the frame row each label belongs to
    values: pa.Array  # the label structs

    @staticmethod
    def of(table: pa.Table) -> Labels:
        labels = column(table, "labels")
        if labels is None:
            return Labels(np.zeros(0, np.int64), pa.array([], pa.struct([])))
        frame, values = elements(labels)
        return Labels(frame, values)

    def __len__(self) -> int:
        return len(self.values)

    def field(self, *path: str) -> pa.Array:
        """A field of every label (a struct's child by name at each step; null where any step is null)."""
        out = self.values
        for name in path:
            out = pc.struct_field(out, name)
        return out

    def kind(self, *geometries: str) -> Bool:
        """Whether each label's geometry is one of `geometries`."""
        found = pc.is_in(self.field("geometry"), value_set=pa.array(geometries, pa.string()))
        return bools(found)

    def class_index(self, names: Sequence[str]) -> I64:
        """Each label's class as its position in `names` (-1 for a class not there)."""
        return index_of(self.field("classification"), names)

    def floats(self, rows: I64, *path: str, fill: float = 0.0) -> F64:
        """A numeric field of the labels `rows` as float64 (`fill` where unset)."""
        return floats(self.field(*path).take(pa.array(rows, pa.int64())), fill)

    def strings(self, rows: I64, *path: str) -> Strings:
        """A string field of the labels `rows` ("" where unset)."""
        values = self.field(*path).take(pa.array(rows, pa.int64()))
        out: Strings = np.asarray(values.fill_null("").to_numpy(zero_copy_only=False), dtype=object)
        return out

    def scores(self, rows: I64) -> F64:
        """Confidence of the labels `rows` (1 where a label has none)."""
        return self.floats(rows, "confidence", fill=1.0)

    def attribute_area(self, rows: I64) -> F64:
        """The numeric `area` attribute of the labels `rows` (the area pycocotools evaluates an imported COCO
        annotation with), NaN where a label has none."""
        area = np.full(len(rows), np.nan)
        if not len(rows):
            return area
        owner, keys, items = entries(self.field("attributes").take(pa.array(rows, pa.int64())))
        hits = bools(pc.equal(keys, "area"))
        if not hits.any():
            return area
        found = items.filter(pa.array(hits))
        given = pc.coalesce(
            pc.struct_field(found, "float_value"), pc.struct_field(found, "int_value").cast(pa.float64())
        )
        values = floats(given, np.nan)
        numeric = ~np.isnan(values)
        area[owner[hits][numeric]] = values[numeric]
        return area

    def children(self, rows: I64, *path: str) -> tuple[I64, pa.Array]:
        """The elements of a list field of the labels `rows`, and which of `rows` (by position) each belongs to."""
        return elements(self.field(*path).take(pa.array(rows, pa.int64())))


def index_of(values: pa.Array, names: Sequence[str] | pa.Array) -> I64:
    """Each value's position in `names` (the first, where it is there twice), -1 where it is not there."""
    value_set = names if isinstance(names, pa.Array) else pa.array(list(names), values.type)
    found = pc.index_in(values, value_set=value_set)
    out: I64 = np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), np.int64)
    return out


def floats(values: pa.Array, fill: float = 0.0) -> F64:
    """A numeric array as float64, `fill` where null."""
    out: F64 = np.asarray(values.fill_null(fill).to_numpy(zero_copy_only=False), dtype=np.float64)
    return out


def bools(values: pa.Array) -> Bool:
    out: Bool = np.asarray(values.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
    return out


def frame_keys(frame: I64, ids: pa.Array) -> pa.Array:
    """One string per (frame row, id), for joins on both."""
    return pc.binary_join_element_wise(pa.array(frame.astype(np.int64)).cast(pa.string()), ids.fill_null(""), "\x00")


def images(truth: pa.Table) -> tuple[I64, pa.Array, I64, I64]:
    """The image sensors of the frames, in frame then sensor order: frame row, sensor id, width, height."""
    sensors = column(truth, "sensors")
    if sensors is None:
        return np.zeros(0, np.int64), pa.array([], pa.string()), np.zeros(0, np.int64), np.zeros(0, np.int64)
    frame, values = elements(sensors)
    image = bools(pc.equal(pc.struct_field(values, "data"), "image"))
    rows = pa.array(np.flatnonzero(image), pa.int64())
    width = floats(pc.struct_field(values, ["image", "width"]).take(rows)).astype(np.int64)
    height = floats(pc.struct_field(values, ["image", "height"]).take(rows)).astype(np.int64)
    return frame[image], pc.struct_field(values, "sensor_id").take(rows), width, height
