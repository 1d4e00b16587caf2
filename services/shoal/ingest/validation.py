"""Server-side validation of upload batches: every frame is checked against the project's class map, the dataset's
metadata schema and embedding settings, the size limits, and the rules in `shoal.validation`. A bad frame is rejected
alone, with one FrameError per problem naming the frame, the label and the field path; good frames pass through
unchanged. No accepted frame (label update, inference frame) is larger serialized than `max_frame_bytes`, and none
carries a metadata value or label attribute larger than its limit, so whatever is committed can be read back."""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf import timestamp_pb2

from shoal import validation as rules
from shoal.storage import columnar
from shoal.v1 import asset_pb2, common_pb2, dataset_pb2, frame_pb2, ingest_service_pb2, label_pb2, upload_pb2

VALIDATION: Final = upload_pb2.FRAME_ERROR_STAGE_VALIDATION
ADD, MODIFY, DELETE = frame_pb2.CHANGE_TYPE_ADD, frame_pb2.CHANGE_TYPE_MODIFY, frame_pb2.CHANGE_TYPE_DELETE
# Schema field type → the metadata value kinds it accepts.
_SCALAR_KINDS: Final[dict[int, set[str]]] = {
    dataset_pb2.FIELD_TYPE_STRING: {"string_value"},
    dataset_pb2.FIELD_TYPE_BOOL: {"bool_value"},
    dataset_pb2.FIELD_TYPE_INTEGER: {"int_value"},
    dataset_pb2.FIELD_TYPE_FLOAT: {"float_value", "int_value"},
    dataset_pb2.FIELD_TYPE_NUMERIC: {"float_value", "int_value"},
}
_LIST_KINDS: Final[dict[int, set[str]]] = {
    dataset_pb2.FIELD_TYPE_STRING: {"string_list_value"},
    dataset_pb2.FIELD_TYPE_BOOL: {"bool_list_value"},
    dataset_pb2.FIELD_TYPE_INTEGER: {"int_list_value"},
    dataset_pb2.FIELD_TYPE_FLOAT: {"float_list_value", "int_list_value"},
    dataset_pb2.FIELD_TYPE_NUMERIC: {"float_list_value", "int_list_value"},
}
_NULL_KIND: Final = {
    common_pb2.METADATA_TYPE_STRING: "string_value",
    common_pb2.METADATA_TYPE_INT: "int_value",
    common_pb2.METADATA_TYPE_FLOAT: "float_value",
    common_pb2.METADATA_TYPE_BOOL: "bool_value",
    common_pb2.METADATA_TYPE_STRING_LIST: "string_list_value",
    common_pb2.METADATA_TYPE_INT_LIST: "int_list_value",
    common_pb2.METADATA_TYPE_FLOAT_LIST: "float_list_value",
    common_pb2.METADATA_TYPE_BOOL_LIST: "bool_list_value",
}
# Kinds whose values need checking every time (finiteness), not only the first time a key is seen.
_RECHECK_KINDS: Final = frozenset({"float_value", "float_list_value", "null_value", None})
# 3-D labels live in a coordinate frame and need not name a sensor.
_SCENE_LEVEL: Final = frozenset({"cuboid_3d", "classification_3d"})
# Label geometries whose class lives elsewhere (mask pixel values, instance mapping).
_CLASSLESS: Final = frozenset({"semantic_segmentation_2d", "instance_segmentation_2d"})


# Dates are stored as nanoseconds since 1970 in 64 bits (Arrow's timestamp[ns]): 1677-09-21 to 2262-04-11.
_TIME_RANGE: Final = (-9_223_372_036, 9_223_372_035)


def _check_time(stamp: timestamp_pb2.Timestamp, where: str, check: _Frame) -> None:
    if not (_TIME_RANGE[0] <= stamp.seconds <= _TIME_RANGE[1]) or not 0 <= stamp.nanos < 1_000_000_000:
        check.add(where, "TIME_OUT_OF_RANGE", "dates must lie between 1677-09-22 and 2262-04-11")


@dataclass(frozen=True)
class TargetRules:
    """What the catalog says about the dataset (or inference set) being written."""

    classes: frozenset[str]
    rigs: dict[str, frozenset[str]] = field(default_factory=dict)
    schema: dict[str, tuple[int, int]] = field(default_factory=dict)
    embedding_dimension: int = 0
    embedding_source: str = ""
    inference: bool = False
    max_frames_per_batch: int = 5000
    # The dataset whose assets frames may point to (project, dataset); for an inference set, its dataset.
    dataset: tuple[str, str] = ("", "")
    # Size limits, in serialized bytes: one metadata value, one label attribute value, one whole item.
    max_metadata_value_bytes: int = 64 * 1024
    max_attribute_bytes: int = 64 * 1024
    max_frame_bytes: int = 4 * 1024 * 1024


@dataclass(frozen=True)
class AssetFacts:
    """What the asset service recorded about an asset a frame points to."""

    project: str
    dataset: str
    kind: int
    width: int = 0
    height: int = 0


# The URL fields of each kind of sensor data, from the contract (a missing attribute would cost an exception per
# sensor on the hot path).
_SENSOR_URL_FIELDS: Final = {
    f.name: tuple(u.name for u in f.message_type.fields if u.name.endswith("url")) if f.message_type else ()
    for f in frame_pb2.SensorData.DESCRIPTOR.oneofs_by_name["data"].fields
}


def sensor_urls(sensor: frame_pb2.SensorData) -> list[str]:
    kind = sensor.WhichOneof("data")
    if kind is None:
        return []
    data = getattr(sensor, kind)
    return [u for u in (getattr(data, name) for name in _SENSOR_URL_FIELDS[kind]) if u]


def mask_urls(labels: Sequence[label_pb2.Label]) -> list[str]:
    return [
        url
        for label in labels
        for url in (label.semantic_segmentation_2d.mask_url, label.instance_segmentation_2d.mask_url)
        if url
    ]


def batch_urls(batch: ingest_service_pb2.FrameBatch) -> set[str]:
    """Every media URL the batch's frames, labels and inferences carry."""
    urls: set[str] = set()
    for frame in batch.frames:
        for sensor in frame.sensors:
            urls.update(sensor_urls(sensor))
        urls.update(mask_urls(frame.labels))
    for update in batch.label_updates:
        urls.update(mask_urls(update.labels))
    for inference in batch.inference_frames:
        urls.update(mask_urls(inference.labels))
    return urls


@dataclass
class UploadMemory:
    """What one upload stream remembers across its batches, for rules that span frames."""

    label_ids: set[int] = field(default_factory=set)
    metadata_kinds: dict[str, str] = field(default_factory=dict)
    embedding_dimension: int = 0


@dataclass
class BatchResult:
    accepted: ingest_service_pb2.FrameBatch
    errors: list[upload_pb2.FrameError]
    received: int
    rejected: int
    by_columns: bool = False  # checked from the batch's encoded rows (see `BatchValidator.validate`)


_BAD_ID_RE: Final = re.compile(r"[#\[\]?*,/\x00-\x1f\x7f]")


def _ids_valid(ids: Sequence[str]) -> bool:
    """Whether every one of `ids` passes `rules.id_problem`: one scan of them all, joined by a character that is
    itself valid."""
    joined = " ".join(ids)
    return not (
        "" in ids or _BAD_ID_RE.search(joined) or not joined.isprintable() or max(map(len, ids)) > rules.MAX_ID_LENGTH
    )


class _Frame:
    """Collects the problems of one frame."""

    __slots__ = ("errors", "frame_id", "prefix", "seq")

    def __init__(self, frame_id: str, prefix: str, seq: int) -> None:
        self.frame_id = frame_id
        self.prefix = prefix
        self.seq = seq
        self.errors: list[upload_pb2.FrameError] = []

    def add(self, field_path: str, reason: str, description: str, label_id: str = "") -> None:
        self.errors.append(
            upload_pb2.FrameError(
                frame_id=self.frame_id,
                label_id=label_id,
                field=f"{self.prefix}.{field_path}" if field_path else self.prefix,
                reason=reason,
                description=description,
                batch_seq=self.seq,
                stage=VALIDATION,
            )
        )


@dataclass
class _LabelJob:
    """The labels of one frame, waiting for the batch-wide label check."""

    labels: Sequence[label_pb2.Label]
    check: _Frame
    label_ids: list[int]
    sensors: set[str] | None
    frames: dict[str, None] | None
    inference: bool


class BatchValidator:
    """Validates the batches of one upload stream."""

    def __init__(self, target: TargetRules) -> None:
        self.target = target
        self.memory = UploadMemory(embedding_dimension=target.embedding_dimension)
        # An item no bigger than the smallest limit cannot break any: one size per item is the whole check.
        self._size_floor = min(target.max_metadata_value_bytes, target.max_attribute_bytes, target.max_frame_bytes)
        # While a batch is checked: (dimension, all finite) of its items' frame embeddings, by the item's identity.
        self._vectors: dict[int, tuple[int, bool]] = {}

    def validate(
        self,
        batch: ingest_service_pb2.FrameBatch,
        assets: Mapping[str, AssetFacts | None] | None = None,
        rows: pa.Table | None = None,
    ) -> BatchResult:
        """Check one batch. `assets` maps the batch's URLs that point to Shoal assets to what the asset service
        recorded about them (None: no such asset); other URLs are the user's own and are taken as given. `rows`:
        the batch's frames encoded in the table layout, one row per frame in order (`storage.batchrows`), when the
        batch holds only whole frames; the batch is then first checked from their columns (`_by_columns`), and
        frame by frame only when those show something they do not prove right. The result is the same either way."""
        self._assets = assets or {}
        if rows is not None and not self._assets:
            found = self._by_columns(batch, rows)
            if found is not None:
                return found
        accepted = ingest_service_pb2.FrameBatch(seq=batch.seq)
        errors: list[upload_pb2.FrameError] = []
        rejected = 0
        seen_frames: set[str] = set()
        items: list[tuple[str, int, object]] = [
            *(("frames", i, f) for i, f in enumerate(batch.frames)),
            *(("label_updates", i, u) for i, u in enumerate(batch.label_updates)),
            *(("inference_frames", i, f) for i, f in enumerate(batch.inference_frames)),
        ]
        received = 0
        pending: list[tuple[str, object, _Frame, list[int]]] = []
        self._jobs: list[_LabelJob] = []
        holders = [m for kind, _, m in items if kind != "label_updates" and m.HasField("embedding")]  # type: ignore[attr-defined]
        self._vectors = dict(zip(map(id, holders), embedding_facts([m.embedding for m in holders]), strict=True))  # type: ignore[attr-defined]
        for kind, index, message in items:
            received += 1
            frame_id = getattr(message, "frame_id", "")
            check = _Frame(frame_id, f"{kind}[{index}]", batch.seq)
            problem = rules.id_problem(frame_id)
            if problem:
                check.add("frame_id", "INVALID_ID", problem)
            elif frame_id in seen_frames:
                check.add("frame_id", "DUPLICATE_FRAME_ID", f"frame {frame_id!r} appears twice in this batch")
            seen_frames.add(frame_id)
            size = message.ByteSize()  # type: ignore[attr-defined]
            if size > self._size_floor:
                self._sizes(message, size, check)
            label_ids: list[int] = []
            if kind == "frames":
                if self.target.inference:
                    check.add("", "WRONG_TARGET", "labeled frames go to a dataset, not an inference set")
                else:
                    self._frame(message, check, label_ids)  # type: ignore[arg-type]
            elif kind == "label_updates":
                if self.target.inference:
                    check.add("", "WRONG_TARGET", "label updates go to a dataset, not an inference set")
                else:
                    self._labels(message.labels, check, label_ids, sensors=None, frames=None, inference=False)  # type: ignore[attr-defined]
                    self._masks(message.labels, "labels", check, {})  # type: ignore[attr-defined]
            elif not self.target.inference:
                check.add("", "WRONG_TARGET", "inference frames go to an inference set, not a dataset")
            else:
                self._inference_frame(message, check, label_ids)  # type: ignore[arg-type]
            pending.append((kind, message, check, label_ids))
        self._vectors = {}  # the items' identities mean nothing once this batch is checked
        self._check_labels(self._jobs)
        clean = not any(check.errors for _, _, check, _ in pending)
        for kind, message, check, label_ids in pending:
            if check.errors:
                rejected += 1
                errors.extend(check.errors)
                continue
            self.memory.label_ids.update(label_ids)
            if not clean:
                getattr(accepted, kind).append(message)
        if clean:
            accepted = batch  # nothing rejected: the batch goes on as it came, without copying its frames
        return BatchResult(accepted, errors, received, rejected)

    # the common batch, from its columns ----------------------------------------------------------------------

    def _by_columns(self, batch: ingest_service_pb2.FrameBatch, rows: pa.Table) -> BatchResult | None:
        """The result of checking `batch` when its encoded `rows` prove it clean, else None (nothing is changed).

        The columns are read whole, so a batch costs a few passes over flat arrays instead of a visit of every field
        of every frame (34.5 µs a frame, most of ingest's own time). They cover the common frame: image sensors,
        box labels without attributes, scalar metadata, a frame embedding. A frame holding anything else (dates,
        geo, coordinate frames, other sensors or geometries, crop embeddings, list metadata), or any rule broken,
        sends the batch to the checks frame by frame, which name each problem; so the rules are written once for
        the answers, and these only say when there is nothing to answer."""
        target, memory = self.target, self.memory
        frames = batch.frames
        n = len(frames)
        if target.inference or batch.label_updates or batch.inference_frames or not n or rows.num_rows != n:
            return None
        ids = rows.column("frame_id").to_pylist()
        if not _ids_valid(ids) or len(set(ids)) != n:
            return None
        if max(f.ByteSize() for f in frames) > self._size_floor:
            return None
        if rows.column("date_captured").null_count != n or rows.column("geo").null_count != n:
            return None
        if not all(columnar.holds_nothing(rows.column(name)) for name in ("coordinate_frames", "crop_embeddings")):
            return None
        sensor_of, sensor = _flat(rows.column("sensors"))
        sensor_ids = sensor["sensor_id"].to_pylist()
        if sensor_ids:
            image = columnar.struct_children(sensor["image"])
            if (
                set(sensor["data"].to_pylist()) != {"image"}
                or pc.any(pc.equal(pc.utf8_length(image["url"]), 0)).as_py()
                or pc.any(pc.not_equal(sensor["coordinate_frame_id"], "")).as_py()
                or sensor["date_captured"].null_count != len(sensor_ids)
                or not _ids_valid(sensor_ids)
            ):
                return None
        sensor_keys = set(zip(sensor_of.tolist(), sensor_ids, strict=True))
        if len(sensor_keys) != len(sensor_ids):
            return None  # a sensor id twice in a frame
        kinds = self._metadata_by_columns(rows.column("user_metadata"))
        if kinds is None:
            return None
        label_of, label = _flat(rows.column("labels"))
        label_ids = label["label_id"].to_pylist()
        hashes = [hash(i) for i in label_ids]
        if label_ids:
            box = columnar.struct_children(label["box_2d"])
            sides = np.column_stack([box[k].to_numpy(zero_copy_only=False) for k in ("left", "top", "width", "height")])
            if (
                set(label["geometry"].to_pylist()) != {"box_2d"}
                or not target.classes.issuperset(label["classification"].to_pylist())
                or not sensor_keys.issuperset(zip(label_of.tolist(), label["sensor_id"].to_pylist(), strict=True))
                or pc.any(pc.not_equal(label["coordinate_frame_id"], "")).as_py()
                or not columnar.holds_nothing(label["attributes"])
                or not _ids_valid(label_ids)
                or len(set(hashes)) != len(hashes)
                or not memory.label_ids.isdisjoint(hashes)
                or not np.isfinite(sides).all()
                or not ((sides[:, 2] > 0) & (sides[:, 3] > 0)).all()
            ):
                return None
        dimension = self._embeddings_by_columns(rows.column("embedding"), rows.column("embedding_model_id"))
        if dimension is None:
            return None
        # Clean: what the checks frame by frame would remember, remembered.
        for key, kind in kinds.items():
            memory.metadata_kinds.setdefault(key, kind)
        if dimension and not memory.embedding_dimension:
            memory.embedding_dimension = dimension
        memory.label_ids.update(hashes)
        return BatchResult(batch, [], n, 0, by_columns=True)

    def _metadata_by_columns(self, column: pa.ChunkedArray) -> dict[str, str] | None:
        """The one kind of each metadata key of the batch, when every value passes `_metadata`; else None."""
        _, keys, values = columnar.map_entries(column.combine_chunks())
        if not len(keys):
            return {}
        value = columnar.struct_children(values)
        pairs = set(zip(keys.to_pylist(), value["kind"].to_pylist(), strict=True))
        kinds = dict(pairs)
        if len(kinds) != len(pairs):
            return None  # a key with two kinds in the batch
        known = self.memory.metadata_kinds
        for key, kind in kinds.items():
            if kind not in _COLUMN_KINDS or rules.metadata_key_problem(key) or known.get(key, kind) != kind:
                return None
            declared = self.target.schema.get(key)
            if declared is not None and kind not in _SCALAR_KINDS.get(declared[0], set()):
                return None  # (an ARRAY field allows no scalar kind)
        floats = value["float_value"].fill_null(0.0).to_numpy(zero_copy_only=False)
        return kinds if np.isfinite(floats).all() else None

    def _embeddings_by_columns(self, column: pa.ChunkedArray, models: pa.ChunkedArray) -> int | None:
        """The dimension of the batch's frame embeddings (0: none) when every one passes `_embeddings`; else None."""
        present = column.combine_chunks().drop_null()
        if not len(present):
            return 0
        if pa.types.is_fixed_size_list(present.type):
            lengths = {present.type.list_size}
            values = present.flatten()
        else:
            lengths = set(pc.list_value_length(present).to_numpy(zero_copy_only=False).tolist())
            values = pc.list_flatten(present)
        if len(lengths) != 1:
            return None
        (dimension,) = lengths
        expected = self.memory.embedding_dimension
        if not dimension or (expected and dimension != expected):
            return None
        if not np.isfinite(values.to_numpy(zero_copy_only=False)).all():
            return None
        source = self.target.embedding_source
        if source and not {source, ""}.issuperset(models.drop_null().to_pylist()):
            return None
        return int(dimension)

    # sizes -----------------------------------------------------------------------------------------------------

    def _sizes(self, message: object, size: int, check: _Frame) -> None:
        """The size limits of one item of `size` serialized bytes: the whole item, each metadata value, each label
        attribute value."""
        target = self.target
        if size > target.max_frame_bytes:
            check.add(
                "",
                "FRAME_TOO_LARGE",
                f"the item is {size} bytes serialized; the limit is {target.max_frame_bytes}",
            )
        metadata = getattr(message, "user_metadata", None) or {}
        for key, value in metadata.items():
            n = value.ByteSize()
            if n > target.max_metadata_value_bytes:
                check.add(
                    f"user_metadata[{key!r}]",
                    "METADATA_VALUE_TOO_LARGE",
                    f"the value is {n} bytes serialized; the limit is {target.max_metadata_value_bytes}",
                )
        for j, label in enumerate(getattr(message, "labels", ())):
            for key, value in label.attributes.items():
                n = value.ByteSize()
                if n > target.max_attribute_bytes:
                    check.add(
                        f"labels[{j}].attributes[{key!r}]",
                        "ATTRIBUTE_TOO_LARGE",
                        f"the value is {n} bytes serialized; the limit is {target.max_attribute_bytes}",
                        label.label_id,
                    )

    # frames ----------------------------------------------------------------------------------------------------

    def _frame(self, frame: frame_pb2.Frame, check: _Frame, label_ids: list[int]) -> None:
        change = frame.change_type or ADD
        if change == DELETE:
            if frame.labels or frame.sensors or frame.user_metadata or frame.HasField("embedding"):
                check.add("change_type", "DELETE_WITH_DATA", "a DELETE carries only the frame id")
            return
        if frame.HasField("date_captured"):
            _check_time(frame.date_captured, "date_captured", check)
        frames: dict[str, None] = {}
        for i, cf in enumerate(frame.coordinate_frames):
            self._coordinate_frame(cf, f"coordinate_frames[{i}]", frames, check)
        sensors: set[str] = set()
        images: dict[str, tuple[int, int]] = {}
        for i, sensor in enumerate(frame.sensors):
            sensor_id = sensor.sensor_id
            problem = rules.id_problem(sensor_id)
            if problem:
                check.add(f"sensors[{i}].sensor_id", "INVALID_ID", problem)
            elif sensor_id in sensors and sensor.WhichOneof("data") != "image_overlay":
                check.add(f"sensors[{i}].sensor_id", "DUPLICATE_SENSOR_ID", f"sensor {sensor_id!r} appears twice")
            sensors.add(sensor_id)
            sensor_cf = sensor.coordinate_frame_id
            if sensor_cf and sensor_cf not in frames:
                check.add(
                    f"sensors[{i}].coordinate_frame_id",
                    "UNKNOWN_COORDINATE_FRAME",
                    f"coordinate frame {sensor_cf!r} is not declared in this frame",
                )
            self._sensor_data(sensor, i, check)
            if sensor.HasField("date_captured"):
                _check_time(sensor.date_captured, f"sensors[{i}].date_captured", check)
            if sensor.WhichOneof("data") == "image" and sensor.image.width and sensor.image.height:
                images[sensor_id] = (sensor.image.width, sensor.image.height)
        if frame.user_metadata:
            self._metadata(frame.user_metadata, "user_metadata", check)
        if frame.HasField("geo"):
            problem = rules.latlong_problem(frame.geo.latitude, frame.geo.longitude)
            if problem:
                check.add("geo", "INVALID_GEO", problem)
        if change == MODIFY and frame.labels:
            check.add("labels", "LABELS_IN_MODIFY", "MODIFY leaves labels untouched; change labels with a label update")
        self._labels(
            frame.labels,
            check,
            label_ids,
            sensors=sensors if change == ADD else None,
            frames=frames if change == ADD else None,
            inference=False,
        )
        self._masks(frame.labels, "labels", check, images)
        has_embedding = frame.HasField("embedding")
        if has_embedding or frame.crop_embeddings:
            self._embeddings(frame.embedding if has_embedding else None, frame.crop_embeddings, label_ids, frame, check)

    def _inference_frame(self, frame: frame_pb2.InferenceFrame, check: _Frame, label_ids: list[int]) -> None:
        self._labels(frame.labels, check, label_ids, sensors=None, frames=None, inference=True)
        self._masks(frame.labels, "labels", check, {})
        self._metadata(frame.user_metadata, "user_metadata", check, schema=False)
        for name, metric in frame.custom_metrics.items():
            where = f"custom_metrics[{name!r}]"
            kind = metric.WhichOneof("value")
            if kind is None:
                check.add(where, "EMPTY_METRIC", "a custom metric needs a value")
            elif kind == "objective":
                problem = rules.finite_problem(metric.objective)
                if problem:
                    check.add(f"{where}.objective", "NOT_FINITE", problem)
            else:
                m = metric.confusion_matrix
                if m.rows * m.columns != len(m.values):
                    check.add(
                        f"{where}.confusion_matrix",
                        "BAD_MATRIX",
                        f"{m.rows}×{m.columns} needs {m.rows * m.columns} values, got {len(m.values)}",
                    )
                elif rules.finite_problem(*m.values):
                    check.add(f"{where}.confusion_matrix.values", "NOT_FINITE", "values must be finite")
        self._embeddings(
            frame.embedding if frame.HasField("embedding") else None, frame.crop_embeddings, label_ids, frame, check
        )

    def _coordinate_frame(
        self, cf: frame_pb2.CoordinateFrame, where: str, frames: dict[str, None], check: _Frame
    ) -> None:
        problem = rules.id_problem(cf.coordinate_frame_id)
        if problem:
            check.add(f"{where}.coordinate_frame_id", "INVALID_ID", problem)
        elif cf.coordinate_frame_id in frames:
            check.add(
                f"{where}.coordinate_frame_id",
                "DUPLICATE_COORDINATE_FRAME",
                f"{cf.coordinate_frame_id!r} is declared twice",
            )
        if cf.parent_frame_id and cf.parent_frame_id not in frames:
            check.add(
                f"{where}.parent_frame_id",
                "UNKNOWN_COORDINATE_FRAME",
                f"parent {cf.parent_frame_id!r} must be declared before its children",
            )
        kind = cf.WhichOneof("kind")
        if kind == "frame_2d":
            c = cf.frame_2d
            numbers = [
                c.fx,
                c.fy,
                c.k1,
                c.k2,
                c.k3,
                c.k4,
                c.k5,
                c.k6,
                c.p1,
                c.p2,
                c.s1,
                c.s2,
                c.s3,
                c.s4,
                c.skew,
                *c.camera_matrix,
            ]
            numbers += [
                c.position.x,
                c.position.y,
                c.position.z,
                c.orientation.x,
                c.orientation.y,
                c.orientation.z,
                c.orientation.w,
            ]
            numbers += [c.cx if c.HasField("cx") else 0.0, c.cy if c.HasField("cy") else 0.0]
            problem = rules.finite_problem(*numbers) or rules.positive_problem(fx=c.fx, fy=c.fy)
            if problem:
                check.add(f"{where}.frame_2d", "INVALID_CAMERA", problem)
            if c.camera_matrix and len(c.camera_matrix) != 16:
                check.add(
                    f"{where}.frame_2d.camera_matrix",
                    "INVALID_CAMERA",
                    f"a 4×4 matrix has 16 values, got {len(c.camera_matrix)}",
                )
        elif kind == "frame_3d":
            p, o = cf.frame_3d.position, cf.frame_3d.orientation
            problem = rules.finite_problem(p.x, p.y, p.z, o.x, o.y, o.z, o.w)
            if problem:
                check.add(f"{where}.frame_3d", "NOT_FINITE", problem)
        else:
            check.add(where, "EMPTY_COORDINATE_FRAME", "set frame_2d or frame_3d")
        frames[cf.coordinate_frame_id] = None

    def _sensor_data(self, sensor: frame_pb2.SensorData, index: int, check: _Frame) -> None:
        where = f"sensors[{index}]"
        kind = sensor.WhichOneof("data")
        if kind is None:
            check.add(where, "EMPTY_SENSOR", "sensor data needs one of image, point cloud, audio, video, text, mesh")
            return
        data = getattr(sensor, kind)
        if kind == "text":
            return
        url = data.pointcloud_url if kind == "point_cloud_bins" else data.url
        if not url:
            check.add(f"{where}.{kind}", "MISSING_URL", "a URL is required")
        if self._assets:
            for ref in sensor_urls(sensor):
                self._asset(ref, f"{where}.{kind}", check)

    # assets ----------------------------------------------------------------------------------------------------

    def _asset(self, url: str, where: str, check: _Frame, label_id: str = "") -> AssetFacts | None:
        """The facts of the Shoal asset `url` points to; a missing one or another dataset's is an error."""
        if url not in self._assets:
            return None  # the user's own storage
        facts = self._assets[url]
        if facts is None:
            check.add(where, "ASSET_NOT_FOUND", f"{url} points to a Shoal asset that does not exist", label_id)
            return None
        if (facts.project, facts.dataset) != self.target.dataset:
            check.add(
                where,
                "ASSET_OF_ANOTHER_DATASET",
                f"the asset belongs to projects/{facts.project}/datasets/{facts.dataset}; frames may only point to "
                "assets of their own dataset",
                label_id,
            )
            return None
        return facts

    def _masks(
        self, labels: Sequence[label_pb2.Label], prefix: str, check: _Frame, images: Mapping[str, tuple[int, int]]
    ) -> None:
        """A segmentation label that points to a Shoal asset must point to a mask (of its image's size)."""
        if not self._assets:
            return  # the batch points to no Shoal asset: nothing to check against
        for i, label in enumerate(labels):
            geometry = label.WhichOneof("geometry")
            if geometry not in _CLASSLESS:
                continue
            url = getattr(label, geometry).mask_url
            where = f"{prefix}[{i}].{geometry}.mask_url"
            facts = self._asset(url, where, check, label.label_id)
            if facts is None:
                continue
            if facts.kind != asset_pb2.ASSET_KIND_MASK:
                check.add(
                    where,
                    "NOT_A_MASK",
                    f"the asset was uploaded as {asset_pb2.AssetKind.Name(facts.kind)}, not as a mask "
                    "(a single-channel 8-bit PNG checked on upload)",
                    label.label_id,
                )
                continue
            size = images.get(label.sensor_id)
            if size and facts.width and size != (facts.width, facts.height):
                check.add(
                    where,
                    "MASK_SIZE_MISMATCH",
                    f"the mask is {facts.width}x{facts.height} but image {label.sensor_id!r} is {size[0]}x{size[1]}",
                    label.label_id,
                )

    def _metadata(self, metadata: object, where: str, check: _Frame, *, schema: bool = True) -> None:
        kinds = self.memory.metadata_kinds
        for key, value in metadata.items():  # type: ignore[attr-defined]
            kind = value.WhichOneof("kind")
            # Fast path: this key already passed every check with this kind in this upload.
            if kind == kinds.get(key) and kind not in _RECHECK_KINDS:
                continue
            if kind == "float_value" and kinds.get(key) == kind and math.isfinite(value.float_value):
                continue
            path = f"{where}[{key!r}]"
            problem = rules.metadata_key_problem(key)
            if problem:
                check.add(path, "INVALID_METADATA_KEY", problem)
                continue
            if kind is None:
                check.add(path, "EMPTY_METADATA", "a metadata value needs a value or a typed null")
                continue
            if kind == "null_value":
                if value.null_value == common_pb2.METADATA_TYPE_UNSPECIFIED:
                    check.add(path, "UNTYPED_NULL", "a null value needs its type")
                    continue
                kind = _NULL_KIND[value.null_value]
            elif kind == "float_value" and not math.isfinite(value.float_value):
                check.add(path, "NOT_FINITE", f"must be finite, got {value.float_value}")
            elif kind == "float_list_value" and rules.finite_problem(*value.float_list_value.values):
                check.add(path, "NOT_FINITE", "list values must be finite")
            declared = self.target.schema.get(key) if schema else None
            if declared is not None:
                ftype, element = declared
                allowed = (
                    _LIST_KINDS.get(element, set())
                    if ftype == dataset_pb2.FIELD_TYPE_ARRAY
                    else _SCALAR_KINDS.get(ftype, set())
                )
                if kind not in allowed:
                    type_name = dataset_pb2.FieldType.Name(ftype).removeprefix("FIELD_TYPE_")
                    if ftype == dataset_pb2.FIELD_TYPE_ARRAY:
                        type_name += f"<{dataset_pb2.FieldType.Name(element).removeprefix('FIELD_TYPE_')}>"
                    check.add(
                        path,
                        "METADATA_TYPE_MISMATCH",
                        f"{key!r} is {type_name} in the schema, got {kind.removesuffix('_value')}",
                    )
                    continue
            previous = kinds.get(key)
            if previous is None:
                kinds[key] = kind
            elif previous != kind:
                check.add(
                    path,
                    "METADATA_TYPE_CHANGED",
                    f"{key!r} was {previous.removesuffix('_value')} earlier in this upload, "
                    f"got {kind.removesuffix('_value')}",
                )

    # labels ----------------------------------------------------------------------------------------------------

    def _labels(
        self,
        labels: Sequence[label_pb2.Label],
        check: _Frame,
        label_ids: list[int],
        *,
        sensors: set[str] | None,
        frames: dict[str, None] | None,
        inference: bool,
    ) -> None:
        """Queue a frame's labels; `_check_labels` checks all labels of the batch together."""
        if labels:
            self._jobs.append(_LabelJob(labels, check, label_ids, sensors, frames, inference))

    def _check_labels(self, jobs: list[_LabelJob]) -> None:
        """Every label of the batch at once: the common case (all valid) costs a few passes over flat lists and
        one vectorised check of the boxes; only a batch with a problem is searched label by label."""
        labels = [label for job in jobs for label in job.labels]
        if not labels:
            return
        starts = list(accumulate((len(job.labels) for job in jobs), initial=0))

        def owner(k: int) -> tuple[_LabelJob, int]:
            """The job of flat label `k` and the label's index in its frame."""
            i = bisect_right(starts, k) - 1
            return jobs[i], k - starts[i]

        ids = [label.label_id for label in labels]
        geometries = [label.WhichOneof("geometry") for label in labels]
        classes = [label.classification for label in labels]
        if not _ids_valid(ids):
            for k, lid in enumerate(ids):
                problem = rules.id_problem(lid)
                if problem:
                    job, j = owner(k)
                    job.check.add(f"labels[{j}].label_id", "INVALID_ID", problem, lid)
        # Duplicates, within the batch and against earlier batches of this upload.
        hashes = [hash(i) for i in ids]
        seen = self.memory.label_ids
        if len(set(hashes)) != len(hashes) or not seen.isdisjoint(hashes):
            batch_seen: set[int] = set()
            for k, key in enumerate(hashes):
                if key in seen or key in batch_seen:
                    job, j = owner(k)
                    job.check.add(
                        f"labels[{j}].label_id",
                        "DUPLICATE_LABEL_ID",
                        f"label id {ids[k]!r} is used twice in this upload",
                        ids[k],
                    )
                batch_seen.add(key)
        for job, begin, stop in zip(jobs, starts, starts[1:], strict=False):
            job.label_ids.extend(hashes[begin:stop])
        # Classes and geometry presence.
        known = self.target.classes
        if None in geometries or not known.issuperset(classes):
            for k, (geometry, cls) in enumerate(zip(geometries, classes, strict=True)):
                if geometry is None:
                    job, j = owner(k)
                    job.check.add(
                        f"labels[{j}]", "MISSING_GEOMETRY", "a label needs a geometry (box_2d, cuboid_3d, …)", ids[k]
                    )
                elif cls not in known and (cls or geometry not in _CLASSLESS):
                    job, j = owner(k)
                    job.check.add(
                        f"labels[{j}].classification",
                        "UNKNOWN_CLASS",
                        f"{cls!r} is not in the project's class map",
                        ids[k],
                    )
        # References, confidence and attributes: cheap per-label tests, with the rare failures reported.
        k = 0
        for job in jobs:
            sensors, frames, check = job.sensors, job.frames, job.check
            for j, label in enumerate(job.labels):
                geometry = geometries[k]
                k += 1
                if (
                    sensors is not None
                    and label.sensor_id not in sensors
                    and (label.sensor_id or geometry not in _SCENE_LEVEL)
                ):
                    check.add(
                        f"labels[{j}].sensor_id",
                        "UNKNOWN_SENSOR",
                        f"sensor {label.sensor_id!r} is not in this frame",
                        label.label_id,
                    )
                cf = label.coordinate_frame_id
                if cf and frames is not None and cf not in frames:
                    check.add(
                        f"labels[{j}].coordinate_frame_id",
                        "UNKNOWN_COORDINATE_FRAME",
                        f"coordinate frame {cf!r} is not declared in this frame",
                        label.label_id,
                    )
                if job.inference:
                    if not label.HasField("confidence"):
                        check.add(
                            f"labels[{j}].confidence",
                            "MISSING_CONFIDENCE",
                            "an inference needs a confidence in [0, 1]",
                            label.label_id,
                        )
                    else:
                        problem = rules.confidence_problem(label.confidence)
                        if problem:
                            check.add(f"labels[{j}].confidence", "INVALID_CONFIDENCE", problem, label.label_id)
                if label.attributes:
                    self._metadata(label.attributes, f"labels[{j}].attributes", check, schema=False)
                if geometry is not None and geometry != "box_2d":
                    self._geometry(label, geometry, f"labels[{j}].{geometry}", check, label.label_id)
        # Boxes, the most common geometry, checked as one array.
        box_rows = [k for k, g in enumerate(geometries) if g == "box_2d"]
        if box_rows:
            boxes = np.array(
                [(b.left, b.top, b.width, b.height) for b in (labels[k].box_2d for k in box_rows)], dtype=np.float64
            )
            finite = np.asarray(np.isfinite(boxes).all(axis=1))
            positive = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
            for row in np.flatnonzero(~(finite & positive)):
                job, j = owner(box_rows[row])
                lid = ids[box_rows[row]]
                left, top, width, height = boxes[row]
                if not finite[row]:
                    problem = rules.finite_problem(left, top, width, height) or "must be finite"
                    job.check.add(f"labels[{j}].box_2d", "NOT_FINITE", problem, lid)
                else:
                    job.check.add(
                        f"labels[{j}].box_2d",
                        "NON_POSITIVE_BOX_SIZE",
                        f"width and height must be positive, got {width} × {height}",
                        lid,
                    )

    def _geometry(self, label: label_pb2.Label, geometry: str, where: str, check: _Frame, lid: str) -> None:
        if geometry == "box_2d":
            b = label.box_2d
            problem = rules.finite_problem(b.left, b.top, b.width, b.height)
            if problem:
                check.add(where, "NOT_FINITE", problem, lid)
            elif not (b.width > 0 and b.height > 0):
                check.add(
                    where,
                    "NON_POSITIVE_BOX_SIZE",
                    f"width and height must be positive, got {b.width} × {b.height}",
                    lid,
                )
        elif geometry == "cuboid_3d":
            c = label.cuboid_3d
            p, d, r = c.position, c.dimensions, c.rotation
            problem = rules.finite_problem(p.x, p.y, p.z, d.x, d.y, d.z, r.x, r.y, r.z, r.w)
            if problem:
                check.add(where, "NOT_FINITE", problem, lid)
            elif not (d.x > 0 and d.y > 0 and d.z > 0):
                check.add(
                    f"{where}.dimensions",
                    "NON_POSITIVE_SIZE",
                    f"dimensions must be positive, got {d.x}, {d.y}, {d.z}",
                    lid,
                )
            elif r.x == r.y == r.z == r.w == 0:
                check.add(f"{where}.rotation", "ZERO_QUATERNION", "the rotation quaternion must not be zero", lid)
        elif geometry == "polygon_list_2d":
            if not label.polygon_list_2d.polygons:
                check.add(where, "EMPTY_POLYGON_LIST", "give at least one polygon", lid)
            for k, polygon in enumerate(label.polygon_list_2d.polygons):
                problem = rules.polygon_problem([(v.x, v.y) for v in polygon.vertices])
                if problem:
                    check.add(f"{where}.polygons[{k}]", "INVALID_POLYGON", problem, lid)
        elif geometry == "keypoints_2d":
            kp = label.keypoints_2d
            names = [k.name for k in kp.keypoints]
            problem = rules.keypoint_names_problem(names) or rules.finite_problem(
                *(c for k in kp.keypoints for c in (k.x, k.y))
            )
            if problem:
                check.add(f"{where}.keypoints", "INVALID_KEYPOINTS", problem, lid)
            rig = self.target.rigs.get(label.classification)
            if rig is not None:
                unknown = [n for n in names if n not in rig]
                if unknown:
                    check.add(
                        f"{where}.keypoints",
                        "UNKNOWN_KEYPOINT",
                        f"{unknown} are not keypoints of the {label.classification!r} rig",
                        lid,
                    )
            if kp.HasField("box") and (
                rules.finite_problem(kp.box.left, kp.box.top, kp.box.width, kp.box.height)
                or not (kp.box.width > 0 and kp.box.height > 0)
            ):
                check.add(f"{where}.box", "NON_POSITIVE_BOX_SIZE", "the box must be finite with positive size", lid)
        elif geometry == "line_segment_2d":
            s = label.line_segment_2d
            problem = rules.finite_problem(s.start.x, s.start.y, s.end.x, s.end.y)
            if problem:
                check.add(where, "NOT_FINITE", problem, lid)
        elif geometry == "semantic_segmentation_2d":
            if not label.semantic_segmentation_2d.mask_url:
                check.add(f"{where}.mask_url", "MISSING_URL", "a mask URL is required", lid)
        elif geometry == "instance_segmentation_2d":
            seg = label.instance_segmentation_2d
            if not seg.mask_url:
                check.add(f"{where}.mask_url", "MISSING_URL", "a mask URL is required", lid)
            ids: set[int] = set()
            for k, inst in enumerate(seg.instances):
                if inst.id in ids:
                    check.add(
                        f"{where}.instances[{k}].id",
                        "DUPLICATE_INSTANCE",
                        f"instance id {inst.id} is mapped twice",
                        lid,
                    )
                ids.add(inst.id)
                if inst.classification not in self.target.classes:
                    check.add(
                        f"{where}.instances[{k}].classification",
                        "UNKNOWN_CLASS",
                        f"{inst.classification!r} is not in the project's class map",
                        lid,
                    )
        elif geometry == "text_token" and not label.text_token.token:
            check.add(f"{where}.token", "EMPTY_TOKEN", "a text token must not be empty", lid)

    # embeddings ------------------------------------------------------------------------------------------------

    def _embeddings(
        self,
        embedding: frame_pb2.FrameEmbedding | None,
        crops: Iterable[frame_pb2.CropEmbedding],
        label_ids: list[int],
        frame: frame_pb2.Frame | frame_pb2.InferenceFrame,
        check: _Frame,
    ) -> None:
        vectors: list[tuple[str, int, bool, str]] = []  # where, dimension, all values finite, model id
        if embedding is not None:
            # Found for the whole batch at once by `validate` (a frame checked on its own has its own looked at).
            known = self._vectors.get(id(frame))
            dimension, finite = known if known is not None else embedding_facts([embedding])[0]
            vectors.append(("embedding", dimension, finite, embedding.model_id))
        frame_labels = {label.label_id for label in frame.labels} if crops else set()
        for i, crop in enumerate(crops):
            finite = rules.finite_problem(*crop.values) is None
            vectors.append((f"crop_embeddings[{i}]", len(crop.values), finite, crop.model_id))
            if crop.label_id not in frame_labels:
                check.add(
                    f"crop_embeddings[{i}].label_id",
                    "UNKNOWN_LABEL",
                    f"label {crop.label_id!r} is not a label of this frame",
                    crop.label_id,
                )
        for where, dim, finite, model_id in vectors:
            expected = self.memory.embedding_dimension
            if dim == 0:
                check.add(f"{where}.values", "EMPTY_EMBEDDING", "an embedding needs values")
            elif expected and dim != expected:
                check.add(
                    f"{where}.values",
                    "WRONG_EMBEDDING_DIMENSION",
                    f"the dataset's embeddings have {expected} dimensions, got {dim}",
                )
            elif not finite:
                check.add(f"{where}.values", "NOT_FINITE", "embedding values must be finite")
            elif not expected:
                self.memory.embedding_dimension = dim
            if self.target.embedding_source and model_id and model_id != self.target.embedding_source:
                check.add(
                    f"{where}.model_id",
                    "WRONG_EMBEDDING_SOURCE",
                    f"the dataset's embeddings come from {self.target.embedding_source!r}, got {model_id!r}",
                )


def embedding_facts(embeddings: Sequence[frame_pb2.FrameEmbedding]) -> list[tuple[int, bool]]:
    """(dimension, every value finite) of each of `embeddings`, from one array of all their values: a batch's frame
    embeddings looked at one by one cost 5.3 µs a frame (128 dimensions), together 1.7."""
    values, lengths = columnar.embedding_values(embeddings)
    ends = np.cumsum(lengths, dtype=np.int64)
    bad = np.concatenate([[0], np.cumsum(~np.isfinite(values), dtype=np.int64)])
    bad_in_each = bad[ends] - bad[ends - np.asarray(lengths, dtype=np.int64)]
    return [(n, not b) for n, b in zip(lengths, bad_in_each.tolist(), strict=True)]


# Metadata value kinds `_metadata_by_columns` checks (list values and typed nulls go frame by frame).
_COLUMN_KINDS: Final = frozenset({"string_value", "int_value", "float_value", "bool_value"})


def _flat(column: pa.ChunkedArray) -> tuple[np.ndarray, dict[str, pa.Array]]:
    """(the row of each element, the elements' fields) of a list-of-struct column (a repeated field: no row null)."""
    lists = column.combine_chunks()
    owners = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    return owners, columnar.struct_children(pc.list_flatten(lists))


def rules_for(
    class_map: Iterable[tuple[str, Iterable[str]]],
    schema: dataset_pb2.MetadataSchema,
    dataset: dataset_pb2.Dataset,
    *,
    inference: bool,
    max_frames_per_batch: int,
    dataset_key: tuple[str, str] = ("", ""),
    max_metadata_value_bytes: int = 64 * 1024,
    max_attribute_bytes: int = 64 * 1024,
    max_frame_bytes: int = 4 * 1024 * 1024,
) -> TargetRules:
    """TargetRules from catalog entries: `class_map` as (class name, keypoint names) pairs."""
    classes: set[str] = set()
    rigs: dict[str, frozenset[str]] = {}
    for name, keypoints in class_map:
        classes.add(name)
        kps = frozenset(keypoints)
        if kps:
            rigs[name] = kps
    return TargetRules(
        classes=frozenset(classes),
        rigs=rigs,
        schema={f.name: (f.type, f.element_type) for f in schema.fields},
        embedding_dimension=dataset.embedding_dimension,
        embedding_source=dataset.embedding_source,
        inference=inference,
        max_frames_per_batch=max_frames_per_batch,
        dataset=dataset_key,
        max_metadata_value_bytes=max_metadata_value_bytes,
        max_attribute_bytes=max_attribute_bytes,
        max_frame_bytes=max_frame_bytes,
    )
