"""Checking a batch from its encoded columns answers exactly what checking it frame by frame answers: the same
errors on the same frames, the same frames accepted, the same things remembered for the upload's next batches.
Batches are drawn around the common frame (an image, boxes, scalar metadata, an embedding) with any of the things
that break a rule or that the columns do not cover, over two batches of one upload."""

from __future__ import annotations

import math
from collections.abc import Callable

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shoal.ingest.encoders import encode_rows
from shoal.ingest.validation import BatchValidator, TargetRules, rules_for
from shoal.storage import batchrows, columnar
from shoal.v1 import common_pb2, dataset_pb2, frame_pb2, ingest_service_pb2

CLASSES = ["car", "person"]
SCHEMA = dataset_pb2.MetadataSchema(
    fields=[
        dataset_pb2.MetadataField(name="weather", type=dataset_pb2.FIELD_TYPE_STRING),
        dataset_pb2.MetadataField(name="speed", type=dataset_pb2.FIELD_TYPE_FLOAT),
        dataset_pb2.MetadataField(name="count", type=dataset_pb2.FIELD_TYPE_INTEGER),
        dataset_pb2.MetadataField(
            name="tags", type=dataset_pb2.FIELD_TYPE_ARRAY, element_type=dataset_pb2.FIELD_TYPE_STRING
        ),
    ]
)


def frame(i: int, dimension: int = 4) -> frame_pb2.Frame:
    f = frame_pb2.Frame(frame_id=f"f{i}")
    f.sensors.add(sensor_id="cam").image.url = f"s3://b/{i}.jpg"
    f.user_metadata["weather"].string_value = "sun"
    f.user_metadata["speed"].float_value = 1.5 * i
    for j in range(2):
        label = f.labels.add(label_id=f"f{i}-{j}", classification=CLASSES[j], sensor_id="cam")
        label.box_2d.left, label.box_2d.top, label.box_2d.width, label.box_2d.height = 1.0, 2.0, 3.0 + j, 4.0
    f.embedding.values.extend([0.5] * dimension)
    f.embedding.model_id = "model"
    return f


Change = Callable[[frame_pb2.Frame], None]


def _set(path: Callable[[frame_pb2.Frame], object], field: str, value: object) -> Change:
    return lambda f: setattr(path(f), field, value)


def _sensor(f: frame_pb2.Frame) -> frame_pb2.SensorData:
    return f.sensors[0] if f.sensors else f.sensors.add(sensor_id="cam")


def _label(f: frame_pb2.Frame) -> object:
    return f.labels[0] if f.labels else f.labels.add(label_id=f.frame_id + "-x", classification="car")


def _box(f: frame_pb2.Frame) -> object:
    return _label(f).box_2d  # type: ignore[attr-defined]


def _metadata(key: str) -> Callable[[frame_pb2.Frame], object]:
    return lambda f: f.user_metadata[key]


def _no_embedding(f: frame_pb2.Frame) -> None:
    f.ClearField("embedding")


def _not_finite(f: frame_pb2.Frame) -> None:
    values = f.embedding.values
    if values:
        values[len(values) // 2] = math.nan
    else:
        values.append(math.nan)


def _second_sensor(f: frame_pb2.Frame, sensor_id: str) -> None:
    f.sensors.add(sensor_id=sensor_id).image.url = "s3://b/x.jpg"


def _polygon(f: frame_pb2.Frame) -> None:
    label = f.labels.add(label_id=f.frame_id + "-p", classification="car", sensor_id="cam")
    polygon = label.polygon_list_2d.polygons.add()
    for x, y in [(0, 0), (1, 0), (1, 1)]:
        polygon.vertices.add(x=x, y=y)


CHANGES: list[Change] = [
    _set(lambda f: f, "frame_id", "a/b"),
    _set(lambda f: f, "frame_id", ""),
    _set(lambda f: f, "frame_id", "f0"),  # the first frame's id again
    _set(lambda f: f, "change_type", frame_pb2.CHANGE_TYPE_ADD),
    _set(lambda f: f, "change_type", frame_pb2.CHANGE_TYPE_MODIFY),
    lambda f: f.date_captured.FromSeconds(1_700_000_000),
    lambda f: setattr(f.date_captured, "nanos", -1),
    lambda f: setattr(f.geo, "latitude", 91.0),
    lambda f: f.coordinate_frames.add(coordinate_frame_id="world").frame_3d.orientation.SetInParent(),
    lambda f: f.crop_embeddings.add(label_id=_label(f).label_id, values=[1.0, 2.0]),  # type: ignore[attr-defined]
    _set(_sensor, "sensor_id", "c#m"),
    _set(_sensor, "coordinate_frame_id", "world"),
    lambda f: _sensor(f).image.ClearField("url"),
    lambda f: _sensor(f).point_cloud_pcd.SetInParent(),
    lambda f: setattr(_sensor(f).point_cloud_pcd, "url", "s3://b/x.pcd"),
    lambda f: _sensor(f).date_captured.FromSeconds(5),
    lambda f: _second_sensor(f, "cam"),
    lambda f: _second_sensor(f, "side"),
    lambda f: f.ClearField("sensors"),
    _set(_label, "classification", "truck"),
    _set(_label, "classification", ""),
    _set(_label, "sensor_id", "lidar"),
    _set(_label, "sensor_id", ""),
    _set(_label, "label_id", "l,1"),
    _set(_label, "label_id", "f0-1"),  # another label's id
    _set(_label, "coordinate_frame_id", "world"),
    lambda f: _label(f).ClearField("box_2d"),  # type: ignore[attr-defined]
    lambda f: _label(f).cuboid_3d.dimensions.SetInParent(),  # type: ignore[attr-defined]
    lambda f: setattr(_label(f).attributes["occluded"], "bool_value", True),  # type: ignore[attr-defined]
    _set(_label, "confidence", 0.5),
    _set(_box, "width", 0.0),
    _set(_box, "height", -1.0),
    _set(_box, "left", math.nan),
    _set(_box, "top", math.inf),
    _polygon,
    lambda f: f.ClearField("labels"),
    _set(_metadata("speed"), "float_value", math.nan),
    _set(_metadata("speed"), "int_value", 3),
    _set(_metadata("speed"), "string_value", "fast"),
    _set(_metadata("count"), "int_value", 3),
    _set(_metadata("count"), "float_value", 3.0),
    _set(_metadata("free"), "bool_value", True),
    _set(_metadata("bad key"), "bool_value", True),
    _set(_metadata("free"), "null_value", common_pb2.METADATA_TYPE_INT),
    _set(_metadata("free"), "null_value", common_pb2.METADATA_TYPE_UNSPECIFIED),
    lambda f: f.user_metadata["tags"].string_list_value.values.append("a"),
    lambda f: f.user_metadata["free"].float_list_value.values.append(math.inf),
    lambda f: f.user_metadata["empty"].SetInParent(),
    lambda f: f.user_metadata.clear(),
    _no_embedding,
    _set(lambda f: f.embedding, "model_id", "other"),
    _set(lambda f: f.embedding, "model_id", ""),
    _not_finite,
    lambda f: f.embedding.values.append(1.0),
    lambda f: f.embedding.ClearField("values"),
    lambda f: f.user_metadata["weather"].__setattr__("string_value", "x" * 700),
]


@st.composite
def batches(draw: st.DrawFn) -> list[list[frame_pb2.Frame]]:
    """Two batches of one upload, each frame the common one with up to three changes."""
    out = []
    for b in range(2):
        frames = []
        for i in range(draw(st.integers(1, 4))):
            f = frame(10 * b + i)
            for change in draw(st.lists(st.sampled_from(CHANGES), max_size=3)):
                change(f)
            frames.append(f)
        out.append(frames)
    return out


def rows_of(raw: bytes, validator: BatchValidator) -> pa.Table | None:
    """The rows the ingest service encodes before validating (see `Uploads._early_rows`)."""
    metadata = columnar.metadata_columns(SCHEMA)
    dimension = validator.memory.embedding_dimension or validator.target.embedding_dimension
    encoded = encode_rows(raw, False, dimension, metadata, unchecked=True)
    if encoded is None:
        return None
    table = pa.ipc.open_stream(encoded).read_all()
    return table if (table.schema.metadata or {}).get(batchrows.WHOLE_KEY) == b"1" else None


def _rules(dimension: int, source: str, floor: int) -> TargetRules:
    dataset = dataset_pb2.Dataset(embedding_dimension=dimension, embedding_source=source)
    return rules_for(
        [(c, []) for c in CLASSES],
        SCHEMA,
        dataset,
        inference=False,
        max_frames_per_batch=100,
        max_metadata_value_bytes=floor,
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    drawn=batches(),
    dimension=st.sampled_from([0, 4]),
    source=st.sampled_from(["", "model"]),
    floor=st.sampled_from([500, 64 * 1024]),
)
def test_checking_by_columns_answers_what_checking_frame_by_frame_answers(
    drawn: list[list[frame_pb2.Frame]], dimension: int, source: str, floor: int
) -> None:
    rules = _rules(dimension, source, floor)
    by_frames, by_columns = BatchValidator(rules), BatchValidator(rules)
    for seq, frames in enumerate(drawn):
        raw = ingest_service_pb2.FrameBatch(seq=seq, frames=frames).SerializeToString(deterministic=True)
        expected = by_frames.validate(ingest_service_pb2.FrameBatch.FromString(raw))
        batch = ingest_service_pb2.FrameBatch.FromString(raw)
        got = by_columns.validate(batch, None, rows_of(raw, by_columns))
        assert not expected.by_columns
        assert [e.SerializeToString(deterministic=True) for e in got.errors] == [
            e.SerializeToString(deterministic=True) for e in expected.errors
        ]
        assert got.accepted == expected.accepted
        assert (got.received, got.rejected) == (expected.received, expected.rejected)
        assert got.by_columns <= (not expected.errors)
        assert by_columns.memory == by_frames.memory


def test_the_common_batch_is_checked_by_its_columns() -> None:
    validator = BatchValidator(_rules(4, "model", 64 * 1024))
    for seq in range(2):
        frames = [frame(100 * seq + i) for i in range(50)]
        frames[3].user_metadata["count"].int_value = 7
        frames[4].ClearField("embedding")
        frames[5].ClearField("labels")
        raw = ingest_service_pb2.FrameBatch(seq=seq, frames=frames).SerializeToString(deterministic=True)
        batch = ingest_service_pb2.FrameBatch.FromString(raw)
        result = validator.validate(batch, None, rows_of(raw, validator))
        assert result.by_columns
        assert result.accepted is batch
        assert (result.received, result.rejected, result.errors) == (50, 0, [])
    assert len(validator.memory.label_ids) == 2 * 49 * 2
    assert validator.memory.metadata_kinds == {"weather": "string_value", "speed": "float_value", "count": "int_value"}


def test_a_label_id_of_an_earlier_batch_is_found_by_the_checks_frame_by_frame() -> None:
    validator = BatchValidator(_rules(4, "model", 64 * 1024))
    for seq, frames in enumerate([[frame(1)], [frame(2), frame(3)]]):
        if seq:
            frames[1].labels[0].label_id = "f1-0"
        raw = ingest_service_pb2.FrameBatch(seq=seq, frames=frames).SerializeToString(deterministic=True)
        result = validator.validate(ingest_service_pb2.FrameBatch.FromString(raw), None, rows_of(raw, validator))
    assert not result.by_columns
    assert [(e.frame_id, e.label_id, e.reason) for e in result.errors] == [("f3", "f1-0", "DUPLICATE_LABEL_ID")]
    assert [f.frame_id for f in result.accepted.frames] == ["f2"]
