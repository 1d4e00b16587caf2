"""The versioning worker and reads, end to end through the SDK: every change is a version, every version stays
readable as it was, and every frame remembers its history."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import shoal
from prometheus_client import REGISTRY
from shoal.ingest.server import build as build_ingest
from shoal.kit.settings import StoreSettings
from shoal.kit.status import unpack
from shoal.v1 import dataset_pb2, frame_pb2, upload_pb2
from shoal.versioning.server import build as build_versioning

from tests.conftest import ADMIN_KEY, ServerThread, unique

pytestmark = pytest.mark.integration


@pytest.fixture
def client(start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str) -> Iterator[shoal.Client]:
    store = StoreSettings(url=(tmp_path / "store").as_uri())
    versioning = start_service("versioning", build_versioning, redis_url=redis_db, store=store, run_worker=True)
    ingest = start_service("ingest", build_ingest, redis_url=redis_db, store=store)
    with shoal.Client(
        api_key=ADMIN_KEY, addresses={"versioning": versioning.target, "ingest": ingest.target}, show_progress=False
    ) as c:
        yield c


def frame(i: int, boxes: int = 3) -> shoal.LabeledFrame:
    f = shoal.LabeledFrame(frame_id=f"f{i}")
    f.add_image(sensor_id="cam", image_url=f"s3://b/{i}.jpg", width=100, height=100)
    f.add_user_metadata("weather", "rain" if i % 2 else "sun")
    for b in range(boxes):
        f.add_label_2d_bbox(
            sensor_id="cam", label_id=f"f{i}-{b}", classification="car", top=b, left=b, width=10, height=10
        )
    return f


def dataset_of(*frames: shoal.LabeledFrame) -> shoal.LabeledDataset:
    d = shoal.LabeledDataset()
    for f in frames:
        d.add_frame(f)
    return d


def committed(client: shoal.Client, report: shoal.UploadReport) -> upload_pb2.Upload:
    return client.wait_for_upload(report.name, timeout=60, poll_seconds=0.05)


def test_reference_workflow_every_step_is_a_version(client: shoal.Client) -> None:
    p = unique("p")
    client.create_project(p, shoal.LabelClassMap.from_classnames(["car", "person"]))
    client.create_dataset(p, "d")
    commits_before = REGISTRY.get_sample_value("shoal_versioning_commits_total") or 0
    timed_before = REGISTRY.get_sample_value("shoal_versioning_commit_seconds_count") or 0
    # v1: ten frames; v2: five more
    assert committed(
        client, client.create_or_update_dataset(p, "d", dataset=dataset_of(*(frame(i) for i in range(10))))
    ).state == (upload_pb2.UPLOAD_STATE_COMMITTED)
    # Each commit is counted and timed for Prometheus.
    assert REGISTRY.get_sample_value("shoal_versioning_commits_total") == commits_before + 1
    assert REGISTRY.get_sample_value("shoal_versioning_commit_seconds_count") == timed_before + 1
    committed(client, client.create_or_update_dataset(p, "d", dataset=dataset_of(*(frame(i) for i in range(10, 15)))))
    # v3: delete a frame
    deletion = shoal.LabeledDataset()
    deletion.delete_frame("f3")
    committed(client, client.create_or_update_dataset(p, "d", dataset=deletion))
    # v4: add a metadata field to a frame (MODIFY)
    modify = shoal.LabeledFrame(frame_id="f5", update_type="MODIFY")
    modify.add_user_metadata("reviewed", True)
    committed(client, client.update_dataset_frames(p, "d", [modify]))
    # v5: move a box (label update)
    move = shoal.UpdateGTLabelSet(frame_id="f6")
    move.update_label_2d_bbox(
        sensor_id="cam", label_id="f6-0", classification="car", top=50, left=50, width=10, height=10
    )
    committed(client, client.update_dataset_labels(p, "d", [move]))
    # v6: delete two labels by re-adding the frame with ADD
    committed(client, client.update_dataset_frames(p, "d", [frame(7, boxes=1)]))
    # an inference set, pinned to v6
    inferences = shoal.Inferences()
    prediction = shoal.InferencesFrame(frame_id="f7")
    prediction.add_inference_2d_bbox(
        sensor_id="cam", label_id="p7", classification="car", top=0, left=0, width=10, height=10, confidence=0.9
    )
    inferences.add_frame(prediction)
    committed(client, client.create_inferences(p, "d", "model-a", inferences=inferences))
    # v7: edit the dataset again
    again = shoal.LabeledFrame(frame_id="f7", update_type="MODIFY")
    again.add_user_metadata("weather", "snow")
    committed(client, client.update_dataset_frames(p, "d", [again]))

    versions = client.list_versions(p, "d")
    assert [v.version for v in versions] == [7, 6, 5, 4, 3, 2, 1]
    by_number = {v.version: v for v in versions}
    assert (by_number[1].frames_added, by_number[1].frame_count, by_number[1].label_count) == (10, 10, 30)
    assert (by_number[3].frames_deleted, by_number[3].frame_count) == (1, 14)
    assert by_number[6].label_count == by_number[5].label_count - 2
    dataset = client.get_dataset(p, "d")
    assert (dataset.latest_version, dataset.frame_count) == (7, 14)

    # Time travel: each version reads exactly as it was.
    assert [f.frame_id for f in client.get_frames(p, "d", version=1)] == sorted(f"f{i}" for i in range(10))
    assert len(list(client.get_frames(p, "d", version=2))) == 15
    assert "f3" not in {f.frame_id for f in client.get_frames(p, "d", version=3)}
    assert client.get_frame(p, "d", "f3", version=2).frame_id == "f3"
    with pytest.raises(grpc.RpcError) as info:
        client.get_frame(p, "d", "f3", version=3)
    assert unpack(info.value).code == grpc.StatusCode.NOT_FOUND
    assert "reviewed" not in client.get_frame(p, "d", "f5", version=3).user_metadata
    assert client.get_frame(p, "d", "f5", version=4).user_metadata["reviewed"].bool_value is True
    assert len(client.get_frame(p, "d", "f5", version=4).labels) == 3  # MODIFY left the labels alone
    assert client.get_frame(p, "d", "f6", version=4).labels[0].box_2d.top == 0
    assert client.get_frame(p, "d", "f6", version=5).labels[0].box_2d.top == 50
    assert [label.label_id for label in client.get_frame(p, "d", "f7", version=5).labels] == ["f7-0", "f7-1", "f7-2"]
    assert [label.label_id for label in client.get_frame(p, "d", "f7", version=6).labels] == ["f7-0"]
    assert client.get_frame(p, "d", "f7").user_metadata["weather"].string_value == "snow"

    # Per-frame history.
    history = client.get_frame_history(p, "d", "f7")
    assert [(h.version, h.change_type) for h in history] == [
        (1, frame_pb2.CHANGE_TYPE_ADD),
        (6, frame_pb2.CHANGE_TYPE_MODIFY),
        (7, frame_pb2.CHANGE_TYPE_MODIFY),
    ]
    assert len(history[0].frame.labels) == 3
    assert len(history[1].frame.labels) == 1
    assert [(h.version, h.change_type) for h in client.get_frame_history(p, "d", "f3")] == [
        (1, frame_pb2.CHANGE_TYPE_ADD),
        (3, frame_pb2.CHANGE_TYPE_DELETE),
    ]

    # Diffs.
    diff = client.diff(p, "d", 2, 3)
    assert (diff.added_count, diff.modified_count, diff.deleted_count) == (0, 0, 1)
    diff = client.diff(p, "d", 1, 7, include_frames=True)
    assert (diff.added_count, diff.deleted_count) == (5, 1)
    modified = {
        d.frame_id: list(d.changed_fields) for d in diff.diffs if d.kind == dataset_pb2.FRAME_DIFF_KIND_MODIFIED
    }
    assert modified == {"f5": ["user_metadata"], "f6": ["labels"], "f7": ["user_metadata", "labels"]} or set(
        modified
    ) == {"f5", "f6", "f7"}
    assert set(modified["f7"]) == {"labels", "user_metadata"}

    # The inference set stays pinned to the labels it was evaluated against.
    inference_set = client.versioning.GetInferenceSet(
        shoal.sdk.client.versioning_service_pb2.GetInferenceSetRequest(
            name=f"projects/{p}/datasets/d/inferenceSets/model-a"
        ),
        metadata=(("x-api-key", ADMIN_KEY),),
    )
    assert inference_set.dataset_version == 6
    assert inference_set.frame_count == 1
    assert [
        label.label_id for label in client.get_frame(p, "d", "f7", version=inference_set.dataset_version).labels
    ] == ["f7-0"]

    # Checkpoints name versions.
    client.create_checkpoint(p, "d", "before-delete", version=2)
    assert len(list(client.get_frames(p, "d", checkpoint="before-delete"))) == 15
    assert client.get_version(p, "d", 2).checkpoints == [f"projects/{p}/datasets/d/checkpoints/before-delete"]
    client.delete_checkpoint(p, "d", "before-delete")
    assert client.list_checkpoints(p, "d") == []

    # Filters on metadata, field masks, streaming.
    rainy = [f.frame_id for f in client.get_frames(p, "d", version=2, filter='weather = "rain"')]
    assert rainy == sorted(f"f{i}" for i in range(15) if i % 2)
    masked = next(iter(client.get_frames(p, "d", fields=["frame_id"])))
    assert masked.frame_id
    assert not masked.labels
    assert len(list(client.stream_frames(p, "d", version=2, batch_size=4))) == 15


def test_bad_frames_fail_alone_at_apply_and_retries_change_nothing(client: shoal.Client) -> None:
    p = unique("p")
    client.create_project(p, shoal.LabelClassMap.from_classnames(["car"]))
    client.create_dataset(p, "d")
    committed(client, client.create_or_update_dataset(p, "d", dataset=dataset_of(frame(1), frame(2))))
    missing = shoal.LabeledFrame(frame_id="ghost", update_type="MODIFY")
    missing.add_user_metadata("x", 1)
    fine = shoal.LabeledFrame(frame_id="f1", update_type="MODIFY")
    fine.add_user_metadata("x", 2)
    report = client.update_dataset_frames(p, "d", [missing, fine], upload_id="mixed")
    upload = committed(client, report)
    assert upload.state == upload_pb2.UPLOAD_STATE_PARTIALLY_FAILED
    assert (upload.frames_committed, upload.frames_failed) == (1, 1)
    errors = client.list_upload_errors(report.name)
    assert [(e.frame_id, e.reason, e.stage) for e in errors] == [
        ("ghost", "MODIFY_MISSING_FRAME", upload_pb2.FRAME_ERROR_STAGE_APPLY)
    ]
    assert list(upload.versions) == [2]
    # The same upload again: recognised, nothing applied twice, no new version.
    again = client.update_dataset_frames(p, "d", [missing, fine], upload_id="mixed")
    assert again.duplicates == 1
    assert [v.version for v in client.list_versions(p, "d")] == [2, 1]
    assert client.get_frame(p, "d", "f1").user_metadata["x"].int_value == 2


def test_label_ids_stay_unique_across_the_dataset(client: shoal.Client) -> None:
    p = unique("p")
    client.create_project(p, shoal.LabelClassMap.from_classnames(["car"]))
    client.create_dataset(p, "d")
    committed(client, client.create_or_update_dataset(p, "d", dataset=dataset_of(frame(1), frame(2))))
    thief = shoal.LabeledFrame(frame_id="f3")
    thief.add_image(sensor_id="cam", image_url="s3://b/3.jpg", width=100, height=100)
    thief.add_label_2d_bbox(sensor_id="cam", label_id="f1-0", classification="car", top=0, left=0, width=5, height=5)
    report = client.create_or_update_dataset(p, "d", dataset=dataset_of(thief, frame(4)))
    upload = committed(client, report)
    assert (upload.frames_committed, upload.frames_failed) == (1, 1)
    [error] = client.list_upload_errors(report.name)
    assert (error.frame_id, error.reason, error.field) == ("f3", "DUPLICATE_LABEL_ID", "frames[0].labels[0].label_id")
    assert "'f1'" in error.description
    # Once f1 is replaced without that label, the id is free for another frame, in the same upload.
    bare = shoal.LabeledFrame(frame_id="f1")
    bare.add_image(sensor_id="cam", image_url="s3://b/1.jpg", width=100, height=100)
    upload = committed(client, client.create_or_update_dataset(p, "d", dataset=dataset_of(bare, thief)))
    assert (upload.frames_committed, upload.frames_failed) == (2, 0)
    assert [label.label_id for label in client.get_frame(p, "d", "f3").labels] == ["f1-0"]


def test_segments_pin_elements_and_flag_what_moved_on(client: shoal.Client) -> None:
    p = unique("p")
    client.create_project(p, shoal.LabelClassMap.from_classnames(["car"]))
    client.create_dataset(p, "d")
    committed(client, client.create_or_update_dataset(p, "d", dataset=dataset_of(frame(0), frame(1), frame(2))))
    segment = client.create_segment(
        p, "d", "review", frame_ids=["f0", "f1"], label_ids=[("f2", "f2-0")], description="boxes to check"
    )
    assert segment.state == dataset_pb2.SEGMENT_STATE_OPEN
    assert [(e.frame_id, e.label_id, e.version, e.outdated) for e in segment.elements] == [
        ("f0", "", 1, False),
        ("f1", "", 1, False),
        ("f2", "f2-0", 1, False),
    ]
    change = shoal.LabeledFrame(frame_id="f1", update_type="MODIFY")
    change.add_user_metadata("weather", "hail")
    committed(client, client.update_dataset_frames(p, "d", [change]))
    segment = client.get_segment(p, "d", "review")
    assert {e.frame_id: e.outdated for e in segment.elements} == {"f0": False, "f1": True, "f2": False}
    resolved = client.update_segment(segment, state="resolved", add_frame_ids=["f1"])
    assert resolved.state == dataset_pb2.SEGMENT_STATE_RESOLVED
    assert [(e.frame_id, e.version, e.outdated) for e in resolved.elements][-1] == ("f1", 2, False)
    with pytest.raises(grpc.RpcError) as info:
        client.update_segment(segment, state="archived")  # stale etag: someone changed it since
    assert unpack(info.value).reason == "ETAG_MISMATCH"
    with pytest.raises(grpc.RpcError) as info:
        client.create_segment(p, "d", "bad", frame_ids=["f9"])
    details = unpack(info.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.violations[0].field == "segment.elements[0].frame_id"
    assert [s.name for s in client.list_segments(p, "d")] == [f"projects/{p}/datasets/d/segments/review"]
    client.delete_segment(p, "d", "review")
    assert client.list_segments(p, "d") == []


def test_retention_drops_old_versions_but_never_pinned_ones(
    start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str
) -> None:
    store = StoreSettings(url=(tmp_path / "store").as_uri())
    versioning = start_service(
        "versioning", build_versioning, redis_url=redis_db, store=store, run_worker=True, version_retention_seconds=0.01
    )
    ingest = start_service("ingest", build_ingest, redis_url=redis_db, store=store)
    with shoal.Client(
        api_key=ADMIN_KEY, addresses={"versioning": versioning.target, "ingest": ingest.target}, show_progress=False
    ) as client:
        p = unique("p")
        client.create_project(p, shoal.LabelClassMap.from_classnames(["car"]))
        client.create_dataset(p, "d")
        for i in range(1, 4):  # v1..v3
            committed(client, client.create_or_update_dataset(p, "d", dataset=dataset_of(frame(i))))
            if i == 1:
                client.create_checkpoint(p, "d", "first")
            if i == 2:
                client.create_inferences_set(p, "d", "model-a")  # pinned to v2
        client.create_segment(p, "d", "review", frame_ids=["f3"])  # pinned to v3
        for i in range(4, 7):  # v4..v6: each commit is followed by maintenance, which applies retention
            committed(client, client.create_or_update_dataset(p, "d", dataset=dataset_of(frame(i))))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            expired = {v.version for v in client.list_versions(p, "d") if v.expired}
            if expired == {4, 5}:
                break
            time.sleep(0.1)
        assert expired == {4, 5}
        with pytest.raises(grpc.RpcError) as err:
            list(client.get_frames(p, "d", version=4))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert unpack(err.value).reason == "VERSION_EXPIRED"
        for version, count in ((1, 1), (2, 2), (3, 3), (6, 6)):
            assert len(list(client.get_frames(p, "d", version=version))) == count
        assert [h.version for h in client.get_frame_history(p, "d", "f4")] == [4]  # history is the audit trail
        with pytest.raises(grpc.RpcError) as err:
            client.create_checkpoint(p, "d", "late", version=5)
        assert unpack(err.value).reason == "VERSION_EXPIRED"
        with pytest.raises(grpc.RpcError) as err:
            client.create_inferences_set(p, "d", "model-b", dataset_version=4)
        assert unpack(err.value).reason == "VERSION_EXPIRED"
