"""Server-side batch validation, on messages built directly (as a client that skips the SDK would send them)."""

from __future__ import annotations

import pytest
from shoal.ingest.uploads import upload_state
from shoal.ingest.validation import BatchValidator, TargetRules
from shoal.v1 import common_pb2, dataset_pb2, frame_pb2, ingest_service_pb2, label_pb2, upload_pb2

RULES = TargetRules(
    classes=frozenset({"car", "person"}),
    rigs={"person": frozenset({"nose", "left_eye"})},
    schema={
        "weather": (dataset_pb2.FIELD_TYPE_STRING, 0),
        "tags": (dataset_pb2.FIELD_TYPE_ARRAY, dataset_pb2.FIELD_TYPE_STRING),
    },
    embedding_dimension=3,
    embedding_source="resnet",
)


def good_frame(frame_id: str) -> frame_pb2.Frame:
    frame = frame_pb2.Frame(frame_id=frame_id)
    frame.sensors.add(sensor_id="cam").image.url = "https://x/1.jpg"
    label = frame.labels.add(label_id=f"{frame_id}-b", classification="car", sensor_id="cam")
    label.box_2d.CopyFrom(label_pb2.Box2D(left=1, top=1, width=2, height=2))
    return frame


def reasons(frames: list[frame_pb2.Frame], rules: TargetRules = RULES) -> list[str]:
    result = BatchValidator(rules).validate(ingest_service_pb2.FrameBatch(frames=frames))
    return [e.reason for e in result.errors]


def test_clean_batch_passes_through_unchanged() -> None:
    batch = ingest_service_pb2.FrameBatch(seq=4, frames=[good_frame("a"), good_frame("b")])
    result = BatchValidator(RULES).validate(batch)
    assert (result.received, result.rejected, result.errors) == (2, 0, [])
    assert result.accepted == batch


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: f.labels.add(label_id="x", classification="car", sensor_id="cam"), "MISSING_GEOMETRY"),
        (lambda f: setattr(f, "change_type", frame_pb2.CHANGE_TYPE_MODIFY), "LABELS_IN_MODIFY"),
        (lambda f: setattr(f, "change_type", frame_pb2.CHANGE_TYPE_DELETE), "DELETE_WITH_DATA"),
        (lambda f: f.user_metadata["weather"].CopyFrom(common_pb2.MetadataValue(null_value=0)), "UNTYPED_NULL"),
        (
            lambda f: f.user_metadata["tags"].CopyFrom(common_pb2.MetadataValue(string_value="a")),
            "METADATA_TYPE_MISMATCH",
        ),
        (lambda f: f.user_metadata["bad-key"].CopyFrom(common_pb2.MetadataValue(int_value=1)), "INVALID_METADATA_KEY"),
        (lambda f: f.user_metadata["x"].CopyFrom(common_pb2.MetadataValue(float_value=float("nan"))), "NOT_FINITE"),
        (lambda f: f.embedding.CopyFrom(frame_pb2.FrameEmbedding(values=[1, float("nan"), 3])), "NOT_FINITE"),
        (lambda f: f.embedding.CopyFrom(frame_pb2.FrameEmbedding(values=[1, 2, float("-inf")])), "NOT_FINITE"),
        (lambda f: f.embedding.SetInParent(), "EMPTY_EMBEDDING"),
        (lambda f: f.embedding.CopyFrom(frame_pb2.FrameEmbedding(values=[1, 2])), "WRONG_EMBEDDING_DIMENSION"),
        (lambda f: setattr(f.geo, "latitude", 123.0), "INVALID_GEO"),
        (lambda f: f.sensors.add(sensor_id="cam").image.SetInParent(), "DUPLICATE_SENSOR_ID"),
        (lambda f: f.sensors.add(sensor_id="lidar"), "EMPTY_SENSOR"),
        (
            lambda f: f.embedding.CopyFrom(frame_pb2.FrameEmbedding(values=[1, 2, 3], model_id="clip")),
            "WRONG_EMBEDDING_SOURCE",
        ),
        (lambda f: f.crop_embeddings.add(label_id="other", values=[1, 2, 3]), "UNKNOWN_LABEL"),
        (
            lambda f: f.coordinate_frames.add(coordinate_frame_id="c", parent_frame_id="p").frame_3d.SetInParent(),
            "UNKNOWN_COORDINATE_FRAME",
        ),
        (lambda f: f.coordinate_frames.add(coordinate_frame_id="c").frame_2d.SetInParent(), "INVALID_CAMERA"),
        (lambda f: setattr(f.labels[0].box_2d, "height", -1), "NON_POSITIVE_BOX_SIZE"),
        (lambda f: setattr(f.labels[0], "sensor_id", "radar"), "UNKNOWN_SENSOR"),
    ],
)
def test_one_problem_one_reason(mutate: object, reason: str) -> None:
    frame = good_frame("f")
    mutate(frame)  # type: ignore[operator]
    assert reason in reasons([frame, good_frame("ok")])


def test_keypoints_follow_the_rig_and_polygons_their_rules() -> None:
    frame = good_frame("k")
    kp = frame.labels.add(label_id="kp", classification="person", sensor_id="cam")
    kp.keypoints_2d.keypoints.add(name="nose", x=1, y=1)
    kp.keypoints_2d.keypoints.add(name="tail", x=2, y=2)
    poly = frame.labels.add(label_id="poly", classification="car", sensor_id="cam")
    poly.polygon_list_2d.polygons.add().vertices.add(x=0, y=0)
    result = BatchValidator(RULES).validate(ingest_service_pb2.FrameBatch(frames=[frame]))
    by_label = {e.label_id: e for e in result.errors}
    assert by_label["kp"].reason == "UNKNOWN_KEYPOINT"
    assert "'tail'" in by_label["kp"].description
    assert by_label["poly"].reason == "INVALID_POLYGON"
    assert by_label["poly"].field == "frames[0].labels[2].polygon_list_2d.polygons[0]"


def test_metadata_keeps_one_type_per_key_across_batches() -> None:
    validator = BatchValidator(RULES)
    a = good_frame("a")
    a.user_metadata["speed"].int_value = 3
    assert validator.validate(ingest_service_pb2.FrameBatch(frames=[a])).errors == []
    b = good_frame("b")
    b.user_metadata["speed"].string_value = "fast"
    errors = validator.validate(ingest_service_pb2.FrameBatch(seq=1, frames=[b])).errors
    assert [(e.reason, e.batch_seq) for e in errors] == [("METADATA_TYPE_CHANGED", 1)]


def test_label_ids_are_unique_across_batches_of_an_upload() -> None:
    validator = BatchValidator(RULES)
    assert validator.validate(ingest_service_pb2.FrameBatch(frames=[good_frame("a")])).errors == []
    again = good_frame("b")
    again.labels[0].label_id = "a-b"
    errors = validator.validate(ingest_service_pb2.FrameBatch(seq=1, frames=[again])).errors
    assert [e.reason for e in errors] == ["DUPLICATE_LABEL_ID"]


def test_targets_take_only_their_kind_of_item() -> None:
    dataset_batch = ingest_service_pb2.FrameBatch(inference_frames=[frame_pb2.InferenceFrame(frame_id="x")])
    assert [e.reason for e in BatchValidator(RULES).validate(dataset_batch).errors] == ["WRONG_TARGET"]
    inference_rules = TargetRules(classes=RULES.classes, inference=True)
    assert [
        e.reason
        for e in BatchValidator(inference_rules)
        .validate(ingest_service_pb2.FrameBatch(frames=[good_frame("a")]))
        .errors
    ] == ["WRONG_TARGET"]


def test_first_embedding_fixes_the_dimension_when_the_dataset_has_none() -> None:
    rules = TargetRules(classes=RULES.classes)
    a, b = good_frame("a"), good_frame("b")
    a.embedding.values.extend([1, 2])
    b.embedding.values.extend([1, 2, 3])
    assert reasons([a, b], rules) == ["WRONG_EMBEDDING_DIMENSION"]


def test_each_frame_of_a_batch_answers_for_its_own_embedding() -> None:
    """The batch's embeddings are looked at together: each problem still lands on its own frame, whatever the frames
    around it hold (none, an empty one, another dimension)."""
    values: dict[str, list[float] | None] = {
        "a": [1, 2, 3],
        "b": None,
        "c": [],
        "d": [float("nan"), 2, 3],
        "e": [1, 2, 3],
        "f": [1, 2, float("inf")],
        "f2": [4, 5, 6],  # right after a value that is not finite
        "g": [1, 2],
        "h": [0, -0.0, 1e30],
    }
    frames = []
    for frame_id, vector in values.items():
        frame = good_frame(frame_id)
        if vector is not None:
            frame.embedding.SetInParent()
            frame.embedding.values.extend(vector)
        frames.append(frame)
    result = BatchValidator(RULES).validate(ingest_service_pb2.FrameBatch(frames=frames))
    assert [(e.frame_id, e.reason, e.field) for e in result.errors] == [
        ("c", "EMPTY_EMBEDDING", "frames[2].embedding.values"),
        ("d", "NOT_FINITE", "frames[3].embedding.values"),
        ("f", "NOT_FINITE", "frames[5].embedding.values"),
        ("g", "WRONG_EMBEDDING_DIMENSION", "frames[7].embedding.values"),
    ]
    assert [f.frame_id for f in result.accepted.frames] == ["a", "b", "e", "f2", "h"]


@pytest.mark.parametrize(
    ("counts", "closed", "state"),
    [
        ({"batches_queued": 2, "batches_committed": 0}, False, upload_pb2.UPLOAD_STATE_RECEIVING),
        ({"batches_queued": 2, "batches_committed": 1}, True, upload_pb2.UPLOAD_STATE_PROCESSING),
        (
            {"batches_queued": 2, "batches_committed": 2, "frames_committed": 10},
            True,
            upload_pb2.UPLOAD_STATE_COMMITTED,
        ),
        (
            {"batches_queued": 2, "batches_committed": 2, "frames_committed": 9, "frames_rejected": 1},
            True,
            upload_pb2.UPLOAD_STATE_PARTIALLY_FAILED,
        ),
        ({"batches_queued": 0, "batches_committed": 0, "frames_rejected": 5}, True, upload_pb2.UPLOAD_STATE_FAILED),
    ],
)
def test_upload_states(counts: dict[str, int], closed: bool, state: int) -> None:
    fields = {"frames_rejected": 0, "frames_failed": 0, "frames_committed": 0} | counts
    assert upload_state(fields, closed) == state


def test_dates_outside_what_the_tables_store_are_refused_by_field() -> None:
    late = good_frame("late")
    late.date_captured.FromSeconds(10_000_000_000)  # the year 2286
    early = good_frame("early")
    early.sensors[0].date_captured.FromSeconds(-10_000_000_000)  # 1653
    fine = good_frame("fine")
    fine.date_captured.FromSeconds(1_700_000_000)
    result = BatchValidator(RULES).validate(ingest_service_pb2.FrameBatch(frames=[late, early, fine]))
    assert [(e.frame_id, e.field, e.reason) for e in result.errors] == [
        ("late", "frames[0].date_captured", "TIME_OUT_OF_RANGE"),
        ("early", "frames[1].sensors[0].date_captured", "TIME_OUT_OF_RANGE"),
    ]
    assert [f.frame_id for f in result.accepted.frames] == ["fine"]
