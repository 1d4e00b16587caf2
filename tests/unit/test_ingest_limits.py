"""Size limits of uploaded items: checked per item at validation (the whole item, each metadata value, each label
attribute), and again when the worker merges a MODIFY or label update into a stored frame."""

from __future__ import annotations

from shoal.ingest.validation import BatchValidator, TargetRules
from shoal.v1 import frame_pb2, ingest_service_pb2, label_pb2
from shoal.versioning.apply import QueuedBatch, apply_batches

KIB = 1024
RULES = TargetRules(
    classes=frozenset({"car"}), max_metadata_value_bytes=4 * KIB, max_attribute_bytes=2 * KIB, max_frame_bytes=32 * KIB
)


def frame(frame_id: str) -> frame_pb2.Frame:
    f = frame_pb2.Frame(frame_id=frame_id)
    f.sensors.add(sensor_id="cam").image.url = "https://x/1.jpg"
    label = f.labels.add(label_id=f"{frame_id}-b", classification="car", sensor_id="cam")
    label.box_2d.CopyFrom(label_pb2.Box2D(left=1, top=1, width=2, height=2))
    return f


def test_each_limit_fails_its_frame_and_names_the_field() -> None:
    big_value = frame("big-value")
    big_value.user_metadata["notes"].string_value = "x" * (5 * KIB)
    big_value.user_metadata["fine"].string_value = "x" * (3 * KIB)
    big_list = frame("big-list")
    big_list.user_metadata["tags"].string_list_value.values.extend(["y" * 100] * 50)
    big_attribute = frame("big-attribute")
    big_attribute.labels[0].attributes["comment"].string_value = "z" * (3 * KIB)
    big_frame = frame("big-frame")
    for i in range(10):  # each value within its limit, the frame not
        big_frame.user_metadata[f"part{i}"].string_value = "w" * (3 * KIB + 512)
    at_limits = frame("at-limits")
    at_limits.user_metadata["notes"].string_value = "x" * (4 * KIB - 8)
    at_limits.labels[0].attributes["comment"].string_value = "z" * (2 * KIB - 8)
    batch = ingest_service_pb2.FrameBatch(seq=3, frames=[big_value, big_list, big_attribute, big_frame, at_limits])

    result = BatchValidator(RULES).validate(batch)

    found = {(e.frame_id, e.reason, e.field, e.label_id) for e in result.errors}
    assert found == {
        ("big-value", "METADATA_VALUE_TOO_LARGE", "frames[0].user_metadata['notes']", ""),
        ("big-list", "METADATA_VALUE_TOO_LARGE", "frames[1].user_metadata['tags']", ""),
        ("big-attribute", "ATTRIBUTE_TOO_LARGE", "frames[2].labels[0].attributes['comment']", "big-attribute-b"),
        ("big-frame", "FRAME_TOO_LARGE", "frames[3]", ""),
    }
    assert all(e.batch_seq == 3 for e in result.errors)
    assert "limit is 4096" in next(e.description for e in result.errors if e.frame_id == "big-value")
    assert [f.frame_id for f in result.accepted.frames] == ["at-limits"]
    assert result.rejected == 4


def test_label_updates_and_inference_frames_have_the_same_limits() -> None:
    update = label_pb2.LabelUpdate(frame_id="a")
    label = update.labels.add(label_id="a-0", classification="car", sensor_id="cam")
    label.box_2d.CopyFrom(label_pb2.Box2D(left=1, top=1, width=2, height=2))
    label.attributes["comment"].string_value = "z" * (3 * KIB)
    result = BatchValidator(RULES).validate(ingest_service_pb2.FrameBatch(label_updates=[update]))
    assert [(e.reason, e.field) for e in result.errors] == [
        ("ATTRIBUTE_TOO_LARGE", "label_updates[0].labels[0].attributes['comment']")
    ]
    inference = frame_pb2.InferenceFrame(frame_id="a")
    inference.user_metadata["blob"].string_value = "q" * (40 * KIB)
    rules = TargetRules(
        classes=RULES.classes,
        inference=True,
        max_metadata_value_bytes=RULES.max_metadata_value_bytes,
        max_frame_bytes=RULES.max_frame_bytes,
    )
    result = BatchValidator(rules).validate(ingest_service_pb2.FrameBatch(inference_frames=[inference]))
    assert {(e.reason, e.field) for e in result.errors} == {
        ("FRAME_TOO_LARGE", "inference_frames[0]"),
        ("METADATA_VALUE_TOO_LARGE", "inference_frames[0].user_metadata['blob']"),
    }


def test_a_merge_that_would_outgrow_the_frame_limit_fails_that_frame() -> None:
    stored = frame("a")
    for i in range(7):
        stored.user_metadata[f"part{i}"].string_value = "w" * (4 * KIB)
    grow = frame_pb2.Frame(frame_id="a", change_type=frame_pb2.CHANGE_TYPE_MODIFY)
    grow.user_metadata["more"].string_value = "v" * (4 * KIB)
    small = frame_pb2.Frame(frame_id="a", change_type=frame_pb2.CHANGE_TYPE_MODIFY)
    small.user_metadata["part0"].string_value = "short"
    queued = QueuedBatch("up", 0, ingest_service_pb2.FrameBatch(seq=0, frames=[grow, small]))
    result = apply_batches(
        [queued],
        {"a": stored},
        inference=False,
        embedding_dimension=0,
        max_frame_bytes=32 * KIB,
    )
    (failure,) = result.outcomes["up#0"].failures
    assert (failure.frame_id, failure.reason, failure.field) == ("a", "FRAME_TOO_LARGE", "frames[0]")
    assert result.outcomes["up#0"].committed == 1
    merged = result.changes[0].frame
    assert "more" not in merged.user_metadata
    assert merged.user_metadata["part0"].string_value == "short"
