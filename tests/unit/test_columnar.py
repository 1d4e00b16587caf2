"""Frames as columns: whatever a Frame or InferenceFrame can hold comes back exactly (property tests over frames
generated from the message descriptors, so a field added to the protos is covered without touching this file), and
the derived columns say what the frames say."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shoal.storage import columnar, filters
from shoal.v1 import dataset_pb2, frame_pb2

_INTS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_TEXT = st.text(max_size=6)


def _scalar(fd: FieldDescriptor) -> st.SearchStrategy[Any]:
    if fd.type in _INTS:
        low, high = _INTS[fd.type]
        return st.one_of(st.just(0), st.integers(low, high))
    if fd.type == FieldDescriptor.TYPE_DOUBLE:
        return st.floats(allow_nan=False)
    if fd.type == FieldDescriptor.TYPE_FLOAT:
        return st.floats(allow_nan=False, width=32)
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if fd.type == FieldDescriptor.TYPE_STRING:
        return _TEXT
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=6)
    assert fd.type == FieldDescriptor.TYPE_ENUM
    return st.one_of(st.sampled_from([v.number for v in fd.enum_type.values]), st.integers(0, 50))


def _fill(draw: st.DrawFn, message: Message, depth: int) -> None:
    descriptor: Descriptor = message.DESCRIPTOR
    chosen = {o.name: draw(st.sampled_from([None, *[f.name for f in o.fields]])) for o in descriptor.oneofs}
    for fd in descriptor.fields:
        oneof = fd.containing_oneof
        if oneof is not None and not oneof.name.startswith("_") and chosen[oneof.name] != fd.name:
            continue
        must = oneof is not None and not oneof.name.startswith("_")
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            target = getattr(message, fd.name)
            for key in draw(st.lists(_TEXT, max_size=3 if depth < 3 else 0, unique=True)):
                if value_fd.message_type is not None:
                    _fill(draw, target[key], depth + 1)
                else:
                    target[key] = draw(_scalar(value_fd))
        elif fd.is_repeated:
            count = draw(st.integers(0, 3 if depth < 3 else 0))
            target = getattr(message, fd.name)
            for _ in range(count):
                if fd.message_type is not None:
                    _fill(draw, target.add(), depth + 1)
                else:
                    target.append(draw(_scalar(fd)))
        elif fd.message_type is not None:
            if fd.message_type.full_name == "google.protobuf.Timestamp":
                if must or draw(st.booleans()):
                    stamp = getattr(message, fd.name)
                    stamp.seconds = draw(st.integers(-(10**9), 9 * 10**9))
                    stamp.nanos = draw(st.integers(0, 999_999_999))
            elif must or (depth < 3 and draw(st.booleans())):
                sub = getattr(message, fd.name)
                sub.SetInParent()
                _fill(draw, sub, depth + 1)
        elif fd.has_presence and not must:
            if draw(st.booleans()):
                setattr(message, fd.name, draw(_scalar(fd)))
        else:
            setattr(message, fd.name, draw(_scalar(fd)))


@st.composite
def messages(draw: st.DrawFn, message_type: type[Message], *, dimension: int) -> Message:
    message = message_type()
    _fill(draw, message, 0)
    message.frame_id = draw(st.text(min_size=1, max_size=8))  # type: ignore[attr-defined]
    if hasattr(message, "change_type"):
        message.change_type = 0  # stored frames carry no change type
    message.ClearField("embedding")  # type: ignore[arg-type]
    if draw(st.booleans()):
        message.embedding.values.extend(  # type: ignore[attr-defined]
            draw(st.lists(st.floats(allow_nan=False, width=32), min_size=dimension, max_size=dimension))
        )
        message.embedding.model_id = draw(_TEXT)  # type: ignore[attr-defined]
    return message


def _project(table: pa.Table, paths: list[str]) -> pa.Table:
    """`table` narrowed to Lance projection paths (`column` or `column.item.child`), as a Lance take returns it."""
    columns: dict[str, list[str] | None] = {}
    for path in paths:
        name, _, child = path.partition(".item.")
        if child:
            kept = columns.setdefault(name, [])
            assert kept is not None
            kept.append(child)
        else:
            columns[name] = None
    out = {}
    for name, children in columns.items():
        column = table.column(name).combine_chunks()
        if children is not None:
            items = column.flatten()
            struct = pa.StructArray.from_arrays(
                [items.field(c) for c in children], fields=[items.type.field(c) for c in children]
            )
            column = pa.ListArray.from_arrays(column.offsets, struct, mask=column.is_null())
        out[name] = column
    return pa.table(out)


@pytest.mark.parametrize("dimension", [0, 3])
@given(data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_every_frame_round_trips_exactly(dimension: int, data: st.DataObject) -> None:
    frames = data.draw(st.lists(messages(frame_pb2.Frame, dimension=dimension), max_size=5))
    table = columnar.FRAMES.encode(frames, embedding_dimension=dimension)
    expected = [f.SerializeToString(deterministic=True) for f in frames]
    projected = _project(table, ["frame_id", *columnar.FRAMES.read_back(table)])
    for one_by_one in (False, True):  # column by column (many rows), row by row (a few): the same frames
        back = columnar.FRAMES.decode(table, one_by_one=one_by_one)
        assert [f.SerializeToString(deterministic=True) for f in back] == expected
        # Only the columns `read_back` names (as a history read takes them) decode the same frames.
        assert columnar.FRAMES.decode(projected, one_by_one=one_by_one) == back
        # A slice of the rows (as a reader's batch is) decodes the same frames.
        if len(frames) > 1:
            assert columnar.FRAMES.decode(table.slice(1), one_by_one=one_by_one) == back[1:]


def test_frames_with_little_in_them_need_few_columns() -> None:
    frame = frame_pb2.Frame(frame_id="a")
    frame.sensors.add(sensor_id="cam").image.url = "s3://b/a.jpg"
    frame.labels.add(label_id="l", classification="car").box_2d.width = 3.0
    paths = columnar.FRAMES.read_back(columnar.FRAMES.encode([frame]))
    assert "labels.item.box_2d" in paths
    assert "labels.item.cuboid_3d" not in paths
    assert "labels.item.polygon_list_2d" not in paths  # stored on every label, but no label is a polygon
    assert "sensors.item.point_cloud_bins" not in paths
    assert "coordinate_frames" not in paths
    assert not {"digest", "label_ids", "label_count", "labels.item.area"} & set(paths)
    # Scalars without presence left at their defaults everywhere decode to nothing: not read.
    assert not {"device_id", "sensors.item.coordinate_frame_id", "labels.item.coordinate_frame_id"} & set(paths)
    frame.device_id = "rig-7"
    frame.labels[0].confidence = 0.0  # `optional`: a zero set is a value, read like any other
    paths = columnar.FRAMES.read_back(columnar.FRAMES.encode([frame]))
    assert {"device_id", "labels.item.confidence"} <= set(paths)


@given(data=st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_every_inference_frame_round_trips_exactly(data: st.DataObject) -> None:
    frames = data.draw(st.lists(messages(frame_pb2.InferenceFrame, dimension=2), max_size=5))
    table = columnar.INFERENCES.encode(frames, embedding_dimension=2)
    for one_by_one in (False, True):
        assert columnar.INFERENCES.decode(table, one_by_one=one_by_one) == frames


def _sample() -> list[frame_pb2.Frame]:
    a = frame_pb2.Frame(frame_id="a")
    a.user_metadata["weather"].string_value = "rain"
    a.user_metadata["speed"].int_value = 3
    a.user_metadata["tags"].string_list_value.values.extend(["x", "y"])
    box = a.labels.add(label_id="a1", classification="car")
    box.box_2d.width, box.box_2d.height = 4.0, 5.0
    polygon = a.labels.add(label_id="a2", classification="road").polygon_list_2d.polygons.add()
    for x, y in [(0, 0), (4, 0), (4, 3), (0, 3)]:
        polygon.vertices.add(x=x, y=y)
    given_area = a.labels.add(label_id="a3", classification="car")
    given_area.box_2d.width = given_area.box_2d.height = 10.0
    given_area.attributes["area"].float_value = 42.5
    a.labels.add(label_id="a4", classification="scene").classification_2d.SetInParent()
    b = frame_pb2.Frame(frame_id="b")
    b.user_metadata["weather"].null_value = 1
    b.user_metadata["speed"].float_value = 2.5
    return [a, b]


def test_derived_columns_say_what_the_frames_say() -> None:
    schema = dataset_pb2.MetadataSchema(
        fields=[
            dataset_pb2.MetadataField(name="weather", type=dataset_pb2.FIELD_TYPE_STRING),
            dataset_pb2.MetadataField(name="speed", type=dataset_pb2.FIELD_TYPE_FLOAT),
            dataset_pb2.MetadataField(
                name="tags", type=dataset_pb2.FIELD_TYPE_ARRAY, element_type=dataset_pb2.FIELD_TYPE_STRING
            ),
        ]
    )
    table = columnar.FRAMES.encode(_sample(), metadata=columnar.metadata_columns(schema))
    assert table.column("label_count").to_pylist() == [4, 0]
    assert table.column("label_ids").to_pylist() == [["a1", "a2", "a3", "a4"], []]
    labels = table.column("labels").to_pylist()[0]
    assert [label["area"] for label in labels] == [20.0, 12.0, 42.5, None]
    assert [label["geometry"] for label in labels] == ["box_2d", "polygon_list_2d", "box_2d", "classification_2d"]
    assert table.column("metadata_weather").to_pylist() == ["rain", None]  # a typed null is null
    assert table.column("metadata_speed").to_pylist() == [3.0, 2.5]  # FLOAT fields take integers too
    assert table.column("metadata_tags").to_pylist() == [["x", "y"], None]
    assert table.schema.field("metadata_speed").type == pa.float64()


def test_a_projection_decodes_only_what_it_read() -> None:
    table = columnar.FRAMES.encode(_sample())
    frames = columnar.FRAMES.decode(table.select(columnar.FRAMES.columns_for(["labels"])))
    assert [len(f.labels) for f in frames] == [4, 0]
    assert not frames[0].user_metadata
    assert frames[0].labels == _sample()[0].labels


def test_the_embedding_is_a_fixed_size_vector_when_the_dimension_is_known() -> None:
    frame = frame_pb2.Frame(frame_id="e")
    frame.embedding.values.extend([0.5, math.pi, -1.0])
    frame.embedding.model_id = "m"
    table = columnar.FRAMES.encode([frame, frame_pb2.Frame(frame_id="none")], embedding_dimension=3)
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 3)
    assert table.column("embedding").null_count == 1
    assert columnar.FRAMES.decode(table) == [frame, frame_pb2.Frame(frame_id="none")]


def test_rows_with_every_kind_of_absent_geometry_write_and_compact_in_lance(tmp_path: Any) -> None:
    import lance

    frames = []
    for i in range(3000):
        frame = frame_pb2.Frame(frame_id=f"f{i:05d}")
        frame.labels.add(label_id=f"b{i}").box_2d.width = 2.0
        if i % 7 == 0:
            keypoints = frame.labels.add(label_id=f"k{i}").keypoints_2d
            keypoints.keypoints.add(name="nose", x=1.0, y=2.0)
            keypoints.box.iscrowd = True
            frame.labels.add(label_id=f"t{i}").text_token.visible = True
        frames.append(frame)
    table = columnar.FRAMES.encode(frames)
    # Split across files, read back, written again and compacted: each step slices the rows as Lance does.
    ds = lance.write_dataset(table, tmp_path / "a.lance", max_rows_per_file=700)
    read_back = ds.to_table()
    lance.write_dataset(
        pa.table([columnar.sound(c.combine_chunks()) for c in read_back.columns], schema=read_back.schema),
        tmp_path / "b.lance",
        max_rows_per_file=500,
    )
    ds.optimize.compact_files(target_rows_per_fragment=10_000)
    back = lance.dataset(tmp_path / "a.lance").to_table().sort_by("frame_id")
    assert columnar.FRAMES.decode(back) == frames


def test_frames_without_labels_beside_polygons_read_back_from_lance(tmp_path: Any) -> None:
    import lance

    polygon = frame_pb2.Frame(frame_id="p")
    ring = polygon.labels.add(label_id="p1", classification="road").polygon_list_2d.polygons.add()
    for x, y in [(0, 0), (2, 0), (2, 2)]:
        ring.vertices.add(x=x, y=y)
    polygon.labels.add(label_id="b1").box_2d.width = 3.0
    frames = [polygon, frame_pb2.Frame(frame_id="q"), frame_pb2.Frame(frame_id="r")]
    lance.write_dataset(columnar.FRAMES.encode(frames), tmp_path / "t.lance")
    back = lance.dataset(tmp_path / "t.lance").to_table()
    assert columnar.FRAMES.decode(back) == frames
    assert [label["area"] for label in back.column("labels").to_pylist()[0]] == [2.0, 0.0]


def test_a_member_stored_on_every_row_is_empty_where_no_label_has_it() -> None:
    """The polygon list (see `columnar._lists_in_lists`) is stored on every label, empty on those of another
    geometry, also when no label of the batch is a polygon list (then it is made without visiting the labels)."""
    frames = [frame_pb2.Frame(frame_id=f"f{i}") for i in range(3)]
    for i, frame in enumerate(frames):
        for j in range(i):
            frame.labels.add(label_id=f"b{i}{j}").box_2d.width = 1.0 + j
    labels = columnar.FRAMES.encode(frames).column("labels").combine_chunks().flatten()
    polygons = labels.field("polygon_list_2d")
    assert polygons.null_count == 0
    assert polygons.to_pylist() == [{"polygons": []}] * 3
    assert labels.field("geometry").to_pylist() == ["box_2d"] * 3


def test_testing_the_polygon_list_against_null_asks_whether_a_label_is_a_polygon() -> None:

    box = frame_pb2.Frame(frame_id="box")
    box.labels.add(label_id="b").box_2d.width = 1.0
    polygon = frame_pb2.Frame(frame_id="polygon")
    polygon.labels.add(label_id="p").polygon_list_2d.polygons.add().vertices.add(x=1.0, y=1.0)
    table = columnar.FRAMES.encode([box, polygon, frame_pb2.Frame(frame_id="none")])
    assert filters.compile("labels.polygon_list_2d != null", table.schema).mask(table).to_pylist() == [
        False,
        True,
        False,
    ]
    assert filters.compile("labels.polygon_list_2d = null", table.schema).mask(table).to_pylist() == [
        True,
        False,
        False,
    ]
