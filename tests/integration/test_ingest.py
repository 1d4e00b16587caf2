"""The ingest path end to end: SDK → IngestService → batch objects in the store and claim checks on the Redis stream,
with the versioning service's catalog behind it."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import shoal
from prometheus_client import REGISTRY
from shoal.ingest.server import build as build_ingest
from shoal.kit.objectstore import LocalObjectStore
from shoal.kit.settings import StoreSettings
from shoal.storage import queue
from shoal.v1 import frame_pb2, ingest_service_pb2, upload_pb2
from shoal.versioning.server import build as build_versioning

from tests.conftest import ADMIN_KEY, RedisProcess, ServerThread, unique

pytestmark = pytest.mark.integration

CLASSES = ["car", "person", "bike"]


@dataclass
class Suite:
    client: shoal.Client
    store: LocalObjectStore
    redis: redis.Redis
    project: str


@pytest.fixture
def suite(start_service: Callable[..., ServerThread], tmp_path: Path, redis_server: RedisProcess) -> Iterator[Suite]:
    store = StoreSettings(url=(tmp_path / "store").as_uri())
    versioning = start_service("versioning", build_versioning, store=store)
    ingest = start_service("ingest", build_ingest, store=store)
    client = shoal.Client(
        api_key=ADMIN_KEY,
        addresses={"versioning": versioning.target, "ingest": ingest.target},
        batch_size=100,
        show_progress=False,
    )
    project = unique("p")
    client.create_project(project, shoal.LabelClassMap.from_classnames(CLASSES))
    r = redis.Redis.from_url(redis_server.url)
    yield Suite(client, LocalObjectStore(tmp_path / "store"), r, project)
    client.close()
    r.close()


def make_frame(i: int, dim: int = 8) -> shoal.LabeledFrame:
    frame = shoal.LabeledFrame(frame_id=f"frame-{i:05d}", date_captured="2026-11-01T10:00:00Z", device_id="cam-rig-1")
    frame.add_coordinate_frame_3d(coord_frame_id="ego", position=(1.0, 2.0, 0.5))
    frame.add_coordinate_frame_2d(
        coord_frame_id="cam-frame", fx=1000.0, fy=1000.0, cx=960.0, cy=540.0, parent_frame_id="ego"
    )
    frame.add_image(
        sensor_id="cam", image_url=f"s3://bucket/{i}.jpg", width=1920, height=1080, coord_frame_id="cam-frame"
    )
    frame.add_user_metadata("weather", "rain" if i % 2 else "sun")
    frame.add_user_metadata("speed", float(i % 40))
    for b in range(3):
        frame.add_label_2d_bbox(
            sensor_id="cam",
            label_id=f"frame-{i:05d}-{b}",
            classification=CLASSES[b % 3],
            top=10.0 * b,
            left=5.0,
            width=40.0,
            height=30.0,
        )
    frame.add_frame_embedding(embedding=[float(i % 7)] * dim, model_id="resnet")
    return frame


def batch_objects(store: LocalObjectStore, upload: str) -> list[ingest_service_pb2.FrameBatch]:
    prefix = f"ingest/{upload}/batches/"
    return [ingest_service_pb2.FrameBatch.FromString(store.get(o.key)) for o in store.iter_all(prefix)]


OUTCOMES = ("accepted", "rejected")


def test_thousand_frames_with_seven_bad_ones(suite: Suite) -> None:
    client = suite.client
    client.create_dataset(
        suite.project,
        "drive",
        embedding_dim=8,
        metadata_schema=[{"name": "weather", "type": "STRING"}, {"name": "speed", "type": "FLOAT"}],
    )
    frames = [make_frame(i).to_proto() for i in range(1000)]
    # Seven frames a client that skips the SDK's checks might send; the server must catch each one alone.
    frames[10].labels[0].classification = "spaceship"
    frames[20].labels[1].box_2d.left = math.nan
    frames[30].labels[2].label_id = frames[29].labels[2].label_id
    frames[40].frame_id = "bad#id"
    del frames[50].embedding.values[4:]
    frames[60].user_metadata["weather"].int_value = 7
    frames[70].sensors[0].coordinate_frame_id = "lidar"
    counted = {o: REGISTRY.get_sample_value("shoal_ingest_frames_total", {"outcome": o}) or 0 for o in OUTCOMES}
    report = client.upload(f"projects/{suite.project}/datasets/drive", frames)
    assert report.accepted == 993
    # Prometheus counts what the acknowledgements said, and the depth of the partition the batches went to.
    for outcome, delta in zip(OUTCOMES, (993, 7), strict=True):
        assert REGISTRY.get_sample_value("shoal_ingest_frames_total", {"outcome": outcome}) == counted[outcome] + delta
    part = str(queue.partition_of(f"projects/{suite.project}/datasets/drive", 4))
    assert REGISTRY.get_sample_value("shoal_ingest_queue_depth_batches", {"partition": part}) is not None
    by_frame = {e.frame_id: e for e in report.rejected}
    assert len(by_frame) == 7
    assert by_frame["frame-00010"].reason == "UNKNOWN_CLASS"
    assert by_frame["frame-00010"].label_id == "frame-00010-0"
    assert by_frame["frame-00010"].field == "frames[10].labels[0].classification"
    assert by_frame["frame-00020"].reason == "NOT_FINITE"
    assert by_frame["frame-00020"].field == "frames[20].labels[1].box_2d"
    assert by_frame["frame-00030"].reason == "DUPLICATE_LABEL_ID"
    assert by_frame["frame-00030"].label_id == "frame-00029-2"
    assert by_frame["bad#id"].reason == "INVALID_ID"
    assert "'#'" in by_frame["bad#id"].description
    assert by_frame["frame-00050"].reason == "WRONG_EMBEDDING_DIMENSION"
    assert "8 dimensions, got 4" in by_frame["frame-00050"].description
    assert by_frame["frame-00060"].reason == "METADATA_TYPE_MISMATCH"
    assert by_frame["frame-00060"].field == "frames[60].user_metadata['weather']"
    assert by_frame["frame-00070"].reason == "UNKNOWN_COORDINATE_FRAME"
    assert by_frame["frame-00070"].field == "frames[70].sensors[0].coordinate_frame_id"

    upload = client.get_upload(report.name)
    assert (upload.frames_received, upload.frames_accepted, upload.frames_rejected) == (1000, 993, 7)
    assert upload.batches_received == 10
    assert upload.state == upload_pb2.UPLOAD_STATE_PROCESSING
    errors = client.list_upload_errors(report.name)
    assert sorted(e.frame_id for e in errors) == sorted(by_frame)

    stored = batch_objects(suite.store, report.name)
    assert len(stored) == 10
    ids = [f.frame_id for b in stored for f in b.frames]
    assert len(ids) == 993
    assert "frame-00010" not in ids
    assert "frame-00011" in ids
    # Accepted frames are stored exactly as sent.
    sent = {f.frame_id: f for f in frames}
    assert all(f == sent[f.frame_id] for b in stored for f in b.frames)
    # One claim check per batch on the dataset's stream partition.
    partition = queue.partition_of(f"projects/{suite.project}/datasets/drive", 4)
    entries = [e for _, e in suite.redis.xrange(queue.stream_key(partition)) if e[b"upload"].decode() == report.name]
    assert sorted(int(e[b"seq"]) for e in entries) == list(range(10))
    assert sum(int(e[b"frames"]) for e in entries) == 993


def test_every_data_and_label_type_round_trips_unchanged(suite: Suite) -> None:
    client = suite.client
    client.create_project(
        suite.project + "-rig",
        shoal.LabelClassMap(
            [
                shoal.ClassMapEntry(
                    name="person", class_id=0, keypoint_names=["nose", "left_eye"], skeleton=[("nose", "left_eye")]
                ),
                shoal.ClassMapEntry(name="car", class_id=1, color=(255, 0, 0), category="vehicle"),
                shoal.ClassMapEntry(name="road", class_id=2, ignore_in_eval=True),
                shoal.ClassMapEntry(name="B-PER", class_id=3),
            ]
        ),
    )
    project = suite.project + "-rig"
    client.create_dataset(project, "all-types")
    f = shoal.LabeledFrame(frame_id="everything", date_captured="2026-01-02T03:04:05Z", device_id="dev")
    f.add_coordinate_frame_3d(coord_frame_id="world")
    f.add_coordinate_frame_3d(
        coord_frame_id="lidar", position={"x": 1, "y": 2, "z": 3}, orientation=(0, 0, 0, 1), parent_frame_id="world"
    )
    f.add_coordinate_frame_2d(
        coord_frame_id="cam", fx=1200, fy=1100, camera_model="fisheye", position=(0.1, 0.2, 0.3), orientation=(0, 0, 0.7071, 0.7071),
        camera_matrix=[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], k1=0.1, k2=0.2, k3=0.3, k4=0.4, k5=0.5, k6=0.6,
        p1=0.01, p2=0.02, cx=640, cy=360, s1=0.001, s2=0.002, s3=0.003, s4=0.004, skew=0.5, parent_frame_id="lidar",
    )  # fmt: skip
    f.add_image(
        sensor_id="img",
        image_url="https://x/img.jpg",
        preview_url="https://x/p.jpg",
        width=1280,
        height=720,
        coord_frame_id="cam",
    )
    f.add_image_overlay(sensor_id="img", overlay_id="heat", image_url="https://x/heat.png", width=1280, height=720)
    f.add_point_cloud_pcd(sensor_id="pcd", pcd_url="https://x/c.pcd", coord_frame_id="lidar")
    f.add_point_cloud_bins(
        sensor_id="bins",
        pointcloud_url="https://x/c.bin",
        intensity_url="https://x/i.bin",
        range_url="https://x/r.bin",
        coord_frame_id="lidar",
    )
    f.add_obj(sensor_id="mesh", obj_url="https://x/m.obj", coord_frame_id="world")
    f.add_audio(sensor_id="mic", audio_url="https://x/a.wav")
    f.add_video(sensor_id="vid", video_url="https://x/v.mp4")
    f.add_text(sensor_id="txt", text="John lives in Paris")
    f.add_user_metadata("s", "x")
    f.add_user_metadata("i", 3)
    f.add_user_metadata("fl", 2.5)
    f.add_user_metadata("b", True)
    f.add_user_metadata("n", None, val_type="int")
    f.add_user_metadata_list("tags", ["a", "b"])
    f.add_user_metadata_list("scores", [0.5, 1.5])
    f.add_geo_latlong_data(48.85, 2.35)
    f.add_label_2d_classification(
        sensor_id="img",
        label_id="cls",
        classification="car",
        secondary_labels={"weather": "rain"},
        user_attrs={"occluded": False},
    )
    f.add_label_2d_bbox(
        sensor_id="img", label_id="box", classification="car", top=1, left=2, width=3, height=4, iscrowd=True
    )
    f.add_label_3d_cuboid(
        label_id="cub",
        classification="car",
        position=(1, 2, 3),
        dimensions=(4, 2, 1.5),
        rotation=(0, 0, 0, 1),
        coord_frame_id="lidar",
    )
    f.add_label_2d_semseg(sensor_id="img", label_id="sem", mask_url="https://x/mask.png")
    f.add_label_2d_instance_seg(
        sensor_id="img",
        label_id="inst",
        mask_url="https://x/inst.png",
        instance_mapping=[{"id": 1, "classification": "car"}, {"id": 2, "classification": "person"}],
    )
    f.add_label_2d_polygon_list(
        sensor_id="img", label_id="poly", classification="road", polygons=[{"vertices": [(0, 0), (10, 0), (10, 10)]}]
    )
    f.add_label_2d_keypoints(
        sensor_id="img",
        label_id="kp",
        classification="person",
        keypoints=[{"x": 1, "y": 2, "name": "nose"}, {"x": 3, "y": 4, "name": "left_eye", "visibility": 1}],
        top=0,
        left=0,
        width=10,
        height=10,
    )
    f.add_label_2d_line_segment(sensor_id="img", label_id="line", classification="road", x1=0, y1=0, x2=5, y2=5)
    f.add_label_3d_classification(label_id="scene", classification="road", coord_frame_id="lidar")
    f.add_label_text_token(sensor_id="txt", label_id="tok", index=0, token="John", classification="B-PER", visible=True)
    f.add_frame_embedding(embedding=[0.1, 0.2, 0.3], model_id="m")
    f.add_crop_embedding(label_id="box", embedding=[0.4, 0.5, 0.6], model_id="m")
    dataset = shoal.LabeledDataset()
    dataset.add_frame(f)
    report = client.create_or_update_dataset(project, "all-types", dataset=dataset)
    assert report.rejected == []
    assert report.accepted == 1
    (stored,) = batch_objects(suite.store, report.name)
    assert stored.frames[0] == f.to_proto()
    assert {label.WhichOneof("geometry") for label in stored.frames[0].labels} == {
        "classification_2d", "box_2d", "cuboid_3d", "semantic_segmentation_2d", "instance_segmentation_2d",
        "polygon_list_2d", "keypoints_2d", "line_segment_2d", "classification_3d", "text_token",
    }  # fmt: skip
    assert {s.WhichOneof("data") for s in stored.frames[0].sensors} == {
        "image", "image_overlay", "point_cloud_pcd", "point_cloud_bins", "obj_mesh", "audio", "video", "text",
    }  # fmt: skip

    inferences = shoal.Inferences()
    inf = shoal.InferencesFrame(frame_id="everything")
    inf.add_inference_2d_bbox(
        sensor_id="img", label_id="p-box", classification="car", top=1, left=2, width=3, height=4, confidence=0.9
    )
    inf.add_inference_2d_keypoints(
        sensor_id="img",
        label_id="p-kp",
        classification="person",
        keypoints=[{"x": 1, "y": 2, "name": "nose"}],
        confidence=0.4,
    )
    inf.add_inference_2d_classification(sensor_id="img", label_id="p-cls", classification="car", confidence=0.75)
    inf.add_custom_metric("loss", 0.25)
    inf.add_custom_metric("cm", [[1, 0], [0, 1]])
    inf.add_user_metadata("latency_ms", 12.5)
    inferences.add_frame(inf)
    inf_report = client.create_inferences(project, "all-types", "model-a", inferences=inferences, model_id="m")
    assert (inf_report.accepted, inf_report.rejected) == (1, [])
    (inf_stored,) = batch_objects(suite.store, inf_report.name)
    assert inf_stored.inference_frames[0] == inf.to_proto()

    updates = shoal.UpdateGTLabelSet(frame_id="everything")
    updates.update_label_2d_bbox(
        sensor_id="img", label_id="box", classification="car", top=5, left=5, width=5, height=5
    )
    upd_report = client.update_dataset_labels(project, "all-types", [updates])
    assert upd_report.accepted == 1
    (upd_stored,) = batch_objects(suite.store, upd_report.name)
    assert upd_stored.label_updates[0] == updates.to_proto()
    modify = shoal.LabeledFrame(frame_id="everything", update_type="MODIFY")
    modify.add_user_metadata("reviewed", True)
    mod_report = client.update_dataset_frames(project, "all-types", [modify])
    (mod_stored,) = batch_objects(suite.store, mod_report.name)
    assert mod_stored.frames[0].change_type == frame_pb2.CHANGE_TYPE_MODIFY
    deletion = shoal.LabeledDataset()
    deletion.delete_frame("everything")
    del_report = client.create_or_update_dataset(project, "all-types", dataset=deletion)
    (del_stored,) = batch_objects(suite.store, del_report.name)
    assert del_stored.frames[0].change_type == frame_pb2.CHANGE_TYPE_DELETE


def test_retried_batches_are_not_queued_twice(suite: Suite) -> None:
    suite.client.create_dataset(suite.project, "retry")
    frames = [make_frame(i).to_proto() for i in range(250)]
    target = f"projects/{suite.project}/datasets/retry"
    first = suite.client.upload(target, frames, upload_id="same-upload")
    again = suite.client.upload(target, frames, upload_id="same-upload")
    assert first.accepted == 250
    assert again.duplicates == 3
    assert again.accepted == 250
    upload = suite.client.get_upload(first.name)
    assert upload.frames_accepted == 250
    assert upload.batches_received == 3
    partition = queue.partition_of(target, 4)
    entries = [e for _, e in suite.redis.xrange(queue.stream_key(partition)) if e[b"upload"].decode() == first.name]
    assert len(entries) == 3


def test_schema_update_and_inference_rules(suite: Suite) -> None:
    client = suite.client
    client.create_dataset(suite.project, "schema")
    updated = client.update_dataset_object_metadata_schema(
        suite.project, "schema", [{"name": "tags", "type": "ARRAY<STRING>"}]
    )
    assert [(f.name, f.type) for f in updated.metadata_schema.fields] == [("tags", 6)]
    bad = make_frame(1).to_proto()
    bad.user_metadata["tags"].string_value = "not-a-list"
    report = client.upload(f"projects/{suite.project}/datasets/schema", [bad])
    assert report.rejected[0].reason == "METADATA_TYPE_MISMATCH"
    assert "ARRAY<STRING>" in report.rejected[0].description
    client.create_inferences_set(suite.project, "schema", "m1")
    missing_confidence = frame_pb2.InferenceFrame(frame_id="frame-00001")
    label = missing_confidence.labels.add(label_id="p1", classification="car", sensor_id="cam")
    label.box_2d.width, label.box_2d.height = 1, 1
    report = client.upload(f"projects/{suite.project}/datasets/schema/inferenceSets/m1", [missing_confidence])
    assert report.rejected[0].reason == "MISSING_CONFIDENCE"


def test_list_uploads_and_paged_errors(suite: Suite) -> None:
    import grpc
    from shoal.kit.status import unpack
    from shoal.v1 import ingest_service_pb2 as pb

    suite.client.create_dataset(suite.project, "listing")
    target = f"projects/{suite.project}/datasets/listing"
    bad = [make_frame(i).to_proto() for i in range(5)]
    for frame in bad:
        frame.labels[0].classification = "ufo"
    first = suite.client.upload(target, bad)
    second = suite.client.upload(target, [make_frame(9).to_proto()])
    listed = suite.client.ingest.ListUploads(pb.ListUploadsRequest(parent=target), metadata=(("x-api-key", ADMIN_KEY),))
    assert [u.name for u in listed.uploads] == [second.name, first.name]
    page = suite.client.ingest.ListUploadErrors(
        pb.ListUploadErrorsRequest(parent=first.name, page_size=2), metadata=(("x-api-key", ADMIN_KEY),)
    )
    assert len(page.errors) == 2
    assert page.next_page_token
    rest = suite.client.ingest.ListUploadErrors(
        pb.ListUploadErrorsRequest(parent=first.name, page_size=10, page_token=page.next_page_token),
        metadata=(("x-api-key", ADMIN_KEY),),
    )
    assert len(rest.errors) == 3
    assert not rest.next_page_token
    with pytest.raises(grpc.RpcError) as info:
        suite.client.get_upload(target + "/uploads/nope")
    assert unpack(info.value).reason == "UPLOAD_NOT_FOUND"
    with pytest.raises(grpc.RpcError) as info:
        suite.client.get_upload("projects/x/uploads/y")
    assert unpack(info.value).violations[0].field == "name"


def test_wait_for_upload_times_out_while_batches_wait_for_the_worker(suite: Suite) -> None:
    suite.client.create_dataset(suite.project, "waiting")
    report = suite.client.upload(f"projects/{suite.project}/datasets/waiting", [make_frame(1).to_proto()])
    with pytest.raises(TimeoutError, match="UPLOAD_STATE_PROCESSING"):
        suite.client.wait_for_upload(report.name, timeout=0.3, poll_seconds=0.1)


def _send(
    suite: Suite, target: str, upload_id: str, *batches: ingest_service_pb2.FrameBatch
) -> list[ingest_service_pb2.UploadFramesResponse]:
    start = ingest_service_pb2.UploadFramesRequest(
        start=ingest_service_pb2.UploadStart(target=target, upload_id=upload_id)
    )
    requests = [start, *(ingest_service_pb2.UploadFramesRequest(batch=b) for b in batches)]
    return list(suite.client.ingest.UploadFrames(iter(requests), metadata=(("x-api-key", ADMIN_KEY),), timeout=30))


def test_a_seq_resent_with_other_content_is_refused_even_when_redis_lost_its_record(suite: Suite) -> None:
    import grpc
    from shoal.kit.status import unpack

    suite.client.create_dataset(suite.project, "reuse")
    target = f"projects/{suite.project}/datasets/reuse"
    name = f"{target}/uploads/again"
    first = ingest_service_pb2.FrameBatch(seq=0, frames=[make_frame(i).to_proto() for i in range(3)])
    other = ingest_service_pb2.FrameBatch(seq=0, frames=[make_frame(i).to_proto() for i in range(3, 6)])
    # Every frame of seq 1 is rejected, so nothing of it but its record exists.
    bad = ingest_service_pb2.FrameBatch(seq=1, frames=[make_frame(10).to_proto()])
    bad.frames[0].labels[0].classification = "spaceship"
    good = ingest_service_pb2.FrameBatch(seq=1, frames=[make_frame(10).to_proto()])
    acks = [r.ack for r in _send(suite, target, "again", first, bad) if r.HasField("ack")]
    assert [(a.accepted, len(a.rejected)) for a in acks] == [(3, 0), (0, 1)]

    def refused(batch: ingest_service_pb2.FrameBatch) -> None:
        with pytest.raises(grpc.RpcError) as info:
            _send(suite, target, "again", batch)
        details = unpack(info.value)
        assert (details.code, details.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SEQ_CONTENT_MISMATCH")
        assert details.violations[0].field == "batch.seq"
        assert f"seq {batch.seq} " in details.violations[0].description

    refused(other)
    refused(good)
    # The same content again is a duplicate, acknowledged as before and queued once.
    (again,) = [r.ack for r in _send(suite, target, "again", first) if r.HasField("ack")]
    assert (again.duplicate, again.accepted) == (True, 3)
    # Redis loses every record of the upload: the store still knows what each seq carried.
    suite.redis.delete(queue.upload_batches_key(name), queue.upload_key(name))
    refused(other)
    refused(good)
    stored = batch_objects(suite.store, name)
    assert [[f.frame_id for f in b.frames] for b in stored] == [[f.frame_id for f in first.frames]]
    partition = queue.partition_of(target, 4)
    entries = [e for _, e in suite.redis.xrange(queue.stream_key(partition)) if e[b"upload"].decode() == name]
    assert [int(e[b"seq"]) for e in entries] == [0]
