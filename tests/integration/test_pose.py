"""Pose datasets end to end: the COCO rig in the class map, a skeleton labeling job exported from a checkpoint, its
output manifest (as the custom skeleton workflow writes it, bad lines included) imported as a new version, labeling
statistics, and the keypoint checks finding planted left-right swaps."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import shoal
from shoal import rigs
from shoal.demo_pose import IMAGE_SIZE, PoseSet, pose_set
from shoal.kit import operations
from shoal.kit.errors import InvalidArgument
from shoal.kit.settings import StoreSettings
from shoal.kit.status import unpack
from shoal.metrics import keypoint_checks, keypoints
from shoal.sdk import groundtruth as gt
from shoal.sdk.errors import OperationError
from shoal.v1 import evaluation_pb2, frame_pb2, label_pb2, metrics_service_pb2

from tests.conftest import ServerThread, thread_stacks, unique, wait_until
from tests.integration.test_metrics import committed, suite

pytestmark = pytest.mark.integration

P = "pose"


@pytest.fixture
def client(start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str) -> Iterator[shoal.Client]:
    with suite(start_service, StoreSettings(url=(tmp_path / "store").as_uri()), redis_db) as c:
        yield c


def load(client: shoal.Client, people: PoseSet) -> str:
    project = unique(P)
    classes = shoal.LabelClassMap(
        [
            shoal.ClassMapEntry.coco_person(class_id=0),
            shoal.ClassMapEntry("dog", 1),
            shoal.ClassMapEntry("background", 2),
        ]
    )
    client.create_project(project, classes)
    dataset = shoal.LabeledDataset()
    for person in people.people:
        frame = shoal.LabeledFrame(frame_id=person.frame_id)
        frame.add_image(
            sensor_id="cam", image_url=people.image_url(person.frame_id), width=IMAGE_SIZE[0], height=IMAGE_SIZE[1]
        )
        left, top, width, height = person.box
        # Listed in reverse rig order: points are matched by name, never by position.
        frame.add_label_2d_keypoints(
            sensor_id="cam",
            label_id=person.label_id,
            classification="person",
            keypoints=[{"name": n, "x": x, "y": y, "visibility": 2} for n, (x, y) in reversed(person.points.items())],
            top=top,
            left=left,
            width=width,
            height=height,
        )
        dataset.add_frame(frame)
    committed(client, client.create_or_update_dataset(project, "people", dataset=dataset))
    return project


def test_the_coco_rig_is_built_in() -> None:
    entry = shoal.ClassMapEntry.coco_person(class_id=3).to_proto()
    assert [k.name for k in entry.keypoints] == list(rigs.COCO_PERSON_KEYPOINTS)
    assert len(entry.keypoints) == 17
    assert len(entry.skeleton) == 19
    assert {k.name: round(k.sigma, 3) for k in entry.keypoints}["left_hip"] == 0.107
    assert rigs.mirror_pairs(["knee_l", "knee_r", "Left-Paw", "Right-Paw", "tail"]) == [
        ("knee_l", "knee_r"),
        ("Left-Paw", "Right-Paw"),
    ]


def test_keypoints_outside_the_rig_are_refused_at_ingest(client: shoal.Client) -> None:
    project = load(client, pose_set(2))
    bad = shoal.LabeledFrame(frame_id="odd")
    bad.add_image(sensor_id="cam", image_url="s3://pose-images/odd.jpg")
    bad.add_label_2d_keypoints(
        sensor_id="cam",
        label_id="odd-1",
        classification="person",
        keypoints=[{"name": "nose", "x": 1, "y": 1}, {"name": "left_paw", "x": 2, "y": 2}],
    )
    ds = shoal.LabeledDataset()
    ds.add_frame(bad)
    report = client.create_or_update_dataset(project, "people", dataset=ds)
    (error,) = report.rejected
    assert (error.frame_id, error.label_id, error.reason) == ("odd", "odd-1", "UNKNOWN_KEYPOINT")
    assert "left_paw" in error.description


def test_checks_rank_planted_swaps_first(client: shoal.Client) -> None:
    people = pose_set(120, swaps=6, seed=11)
    project = load(client, people)
    found = client.check_keypoints(project, "people", rules=["swapped_keypoints"])
    ranks = {c.ground_truth_label_id: i for i, c in enumerate(found)}
    planted = sorted(ranks[label] for label in people.swapped)
    # Every planted swap is found, ahead of anything else: ranks 0 to 5 of the list.
    assert planted == [0, 1, 2, 3, 4, 5], planted
    for c in found[:6]:
        assert c.reason == evaluation_pb2.LABEL_ERROR_REASON_SWAPPED_KEYPOINTS
        assert tuple(c.keypoints) == people.swapped[c.ground_truth_label_id]
        assert "look swapped" in c.description
    # All rules together: the swaps stay at the top.
    everything = client.check_keypoints(project, "people")
    assert {c.ground_truth_label_id for c in everything[:6]} == set(people.swapped)


def test_each_rule_fires_on_what_it_names(client: shoal.Client) -> None:
    people = pose_set(60, seed=4)
    a, b, c, d = people.people[:4]
    a.points["left_wrist"] = (IMAGE_SIZE[0] + 50.0, 10.0)  # outside the image (and the box)
    b.points["nose"] = b.points["left_eye"]  # two points at one place
    del c.points["left_ankle"], c.points["right_ankle"]  # missing
    lx, ly = d.points["left_knee"]
    hx, hy = d.points["left_hip"]
    d.points["left_knee"] = (hx + (lx - hx) * 0.25, hy + (ly - hy) * 0.25)  # a thigh a quarter long
    project = load(client, people)
    found = client.check_keypoints(project, "people")
    by = {(x.ground_truth_label_id, x.reason): x for x in found}
    assert "left_wrist" in by[(a.label_id, evaluation_pb2.LABEL_ERROR_REASON_KEYPOINT_OUTSIDE_IMAGE)].keypoints
    assert "left_wrist" in by[(a.label_id, evaluation_pb2.LABEL_ERROR_REASON_KEYPOINT_OUTSIDE_BOX)].keypoints
    assert set(by[(b.label_id, evaluation_pb2.LABEL_ERROR_REASON_DUPLICATE_KEYPOINTS)].keypoints) == {
        "nose",
        "left_eye",
    }
    assert list(by[(c.label_id, evaluation_pb2.LABEL_ERROR_REASON_MISSING_KEYPOINTS)].keypoints) == [
        "left_ankle",
        "right_ankle",
    ]
    bone = by[(d.label_id, evaluation_pb2.LABEL_ERROR_REASON_BONE_LENGTH_OUTLIER)]
    assert "left_knee" in bone.keypoints
    # Untouched people raise nothing.
    assert {x.ground_truth_label_id for x in found} <= {a.label_id, b.label_id, c.label_id, d.label_id}
    # Paging returns the same ranked list.
    paged = client._pages(
        lambda size, token: client._call(
            client.metrics.CheckKeypoints,
            shoal.v1.metrics_service_pb2.CheckKeypointsRequest(
                dataset_version=f"projects/{project}/datasets/people", page_size=2, page_token=token
            ),
        ),
        "candidates",
        None,
    )
    assert [(x.ground_truth_label_id, x.reason) for x in paged] == [(x.ground_truth_label_id, x.reason) for x in found]


def test_a_check_outlives_the_call_that_asked_for_it(client: shoal.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """A check slower than the caller's deadline goes on as an operation: asking again joins it instead of starting
    another, and once it is stored the candidates are paged at once."""
    project = load(client, pose_set(40, swaps=2, seed=9))
    runs: list[int] = []
    real = keypoints.check_columns
    release = threading.Event()

    def held(*args: Any, **kwargs: Any) -> list[keypoints.Candidate]:
        runs.append(1)
        # The check runs on only once the test lets it, so it is still running whatever the machine's speed.
        assert release.wait(60), "the held check was never released"
        return real(*args, **kwargs)

    monkeypatch.setattr(keypoints, "check_columns", held)
    request = metrics_service_pb2.CheckKeypointsRequest(dataset_version=f"projects/{project}/datasets/people")
    try:
        with pytest.raises(grpc.RpcError) as info:
            client.metrics.CheckKeypoints(request, timeout=0.5, metadata=client._metadata)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        first = client.start_keypoint_check(project, "people")
        again = client.start_keypoint_check(project, "people")
        assert not first.done
        assert again.name == first.name
    finally:
        release.set()
    done = client.wait_operation(first, timeout=60)
    summary = metrics_service_pb2.CheckKeypointsResponse()
    assert done.response.Unpack(summary)
    assert summary.labels_checked == 40
    assert not summary.candidates
    found = client.check_keypoints(project, "people")
    assert len(found) == summary.total_candidates >= 2
    assert client.start_keypoint_check(project, "people").done
    assert len(runs) == 1  # one class, checked once for all these calls


def test_a_running_check_can_be_cancelled(client: shoal.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    project = load(client, pose_set(40, seed=6))
    monkeypatch.setattr(operations, "HEARTBEAT_SECONDS", 0.1)
    monkeypatch.setattr(keypoint_checks, "PROGRESS_EVERY", 1)
    real = keypoints.gather
    gathered: list[float] = []  # when each batch of one frame was gathered

    def slow(*args: Any, **kwargs: Any) -> None:
        gathered.append(time.monotonic())
        time.sleep(0.25)  # paces the scan (40 frames: 10 s) so the cancellation lands in the middle of it
        real(*args, **kwargs)

    monkeypatch.setattr(keypoints, "gather", slow)
    op = client.start_keypoint_check(project, "people")
    try:
        wait_until(lambda: len(gathered) > 0, timeout=30)
    except TimeoutError:
        pytest.fail(f"the check never started scanning frames\n{thread_stacks('keypoint_checks')}")
    cancelled = time.monotonic()
    client.cancel_operation(op)

    def wait() -> None:
        try:
            client.wait_operation(op, timeout=30)
        except TimeoutError:
            paces = [round(t - cancelled, 2) for t in gathered]
            pytest.fail(
                f"the check still ran 30 s after it was cancelled; batches gathered at {paces} s from the "
                f"cancellation\n{thread_stacks('keypoint_checks')}"
            )

    with pytest.raises(OperationError) as info:
        wait()
    assert info.value.reason == "CANCELLED"
    assert len(gathered) < 40, "the scan read every frame: the cancellation did not stop it"
    # Nothing was stored: asking again starts afresh and finishes.
    monkeypatch.setattr(keypoints, "gather", real)
    again = client.start_keypoint_check(project, "people")
    assert again.name != op.name
    assert client.wait_operation(again, timeout=30).done


def test_a_failed_check_reports_its_error(client: shoal.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    project = load(client, pose_set(5, seed=2))

    def broken(*args: Any, **kwargs: Any) -> list[keypoints.Candidate]:
        raise InvalidArgument("a rig the rules cannot read", reason="BAD_RIG")

    monkeypatch.setattr(keypoints, "check_columns", broken)
    with pytest.raises(grpc.RpcError) as info:
        client._call(
            client.metrics.CheckKeypoints,
            metrics_service_pb2.CheckKeypointsRequest(dataset_version=f"projects/{project}/datasets/people"),
        )
    details = unpack(info.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == "BAD_RIG"
    with pytest.raises(OperationError) as failed:
        client.check_keypoints(project, "people", rules=["missing_keypoints"])
    assert failed.value.reason == "BAD_RIG"


def test_bad_check_requests_name_the_field(client: shoal.Client) -> None:
    project = load(client, pose_set(2))
    with pytest.raises(grpc.RpcError) as info:
        client.check_keypoints(project, "people", classes=["dog", "cat"])
    details = unpack(info.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details.violations] == ["classes[0]", "classes[1]"]


def _edit(initial: str, worker_moves: float) -> str:
    """The worker moves every point right by `worker_moves` pixels."""
    skeletons = json.loads(initial)
    for s in skeletons:
        for p in s["annotations"]:
            p["x"] += worker_moves
    return json.dumps(skeletons)


def _result_line(line: dict[str, Any], updated: str, worker: str, seconds: float, modified: bool) -> dict[str, Any]:
    uri = line["source-ref"]
    return {
        "source-ref": uri,
        "pose-review": {
            "label-results": [
                {
                    "dataset_object_id": line["shoal-frame-id"],
                    "data_object_s3_uri": uri,
                    "image_file_name": uri.rsplit("/", 1)[1],
                    "image_s3_location": uri,
                    "original_annotations": line["initial_values"],
                    "updated_annotations": updated,
                    "worker_id": worker,
                    "no_changes_needed": not modified,
                    "was_modified": modified,
                    "total_time_in_seconds": seconds,
                }
            ]
        },
        "pose-review-metadata": {
            "type": "groundtruth/custom",
            "job-name": "pose-review",
            "human-annotated": "yes",
            "creation-date": "2026-11-20T10:00:00.000000",
        },
    }


def test_export_then_import_makes_a_new_version(client: shoal.Client, tmp_path: Path) -> None:
    people = pose_set(6, seed=2)
    project = load(client, people)
    client.create_checkpoint(project, "people", "to-review")
    job = gt.export_skeleton_job(client, project, "people", class_name="person", checkpoint="to-review")
    manifest_path, template_path = job.write(tmp_path / "job")
    lines = [json.loads(t) for t in manifest_path.read_text().splitlines()]
    assert [line["shoal-frame-id"] for line in lines] == [p.frame_id for p in people.people]
    assert lines[0]["source-ref"] == people.image_url(people.people[0].frame_id)
    initial = json.loads(lines[0]["initial_values"])
    assert initial[0]["name"] == people.people[0].label_id
    assert {p["label"] for p in initial[0]["annotations"]} == set(rigs.COCO_PERSON_KEYPOINTS)
    template = json.loads(template_path.read_text())
    assert [k["label"] for k in template["keypointClasses"]] == list(rigs.COCO_PERSON_KEYPOINTS)
    assert all(k["color"].startswith("#") and {"id", "x", "y"} <= set(k) for k in template["keypointClasses"])
    assert len(template["skeletonRig"]) == 19
    assert ["left_hip", "right_hip", "#969696"] in template["skeletonRig"]
    assert set(template["skeletonBoundingBox"]) == {"left", "top", "right", "bottom"}

    # The workers' output: two moved every point by 5 px, one changed nothing, and four lines are broken.
    out = [
        _result_line(lines[0], _edit(lines[0]["initial_values"], 5.0), "worker-a", 30.0, True),
        _result_line(lines[1], _edit(lines[1]["initial_values"], 5.0), "worker-b", 50.0, True),
        _result_line(lines[2], lines[2]["initial_values"], "worker-a", 10.0, False),
    ]
    broken_json = _result_line(lines[3], lines[3]["initial_values"], "worker-b", 1.0, True)
    broken_json["pose-review"]["label-results"][0]["updated_annotations"] = '[{"annotations": [}'
    missing_field = _result_line(lines[4], lines[4]["initial_values"], "worker-b", 1.0, True)
    del missing_field["pose-review"]["label-results"][0]["updated_annotations"]
    unknown_point = _result_line(lines[5], lines[5]["initial_values"], "worker-b", 1.0, True)
    skeletons = json.loads(unknown_point["pose-review"]["label-results"][0]["updated_annotations"])
    skeletons[0]["annotations"].append({"label": "tail", "x": 1, "y": 1})
    unknown_point["pose-review"]["label-results"][0]["updated_annotations"] = json.dumps(skeletons)
    text = [json.dumps(r) for r in out]
    text.insert(1, '{"source-ref": "s3://pose-images/pose-0001.jpg", "pose-review": ')  # line 2: not JSON
    text += [json.dumps(broken_json), json.dumps(missing_field), json.dumps(unknown_point)]
    results = tmp_path / "output.manifest"
    results.write_text("\n".join(text) + "\n")

    before = client.list_versions(project, "people")[-1].version
    report = gt.import_results(client, project, "people", results, class_name="person")
    assert [(e.line, e.message.split(":")[0]) for e in report.errors] == [
        (2, "not JSON"),
        (5, "label-results[0].updated_annotations is not valid JSON"),
        (6, "label-results[0] lacks updated_annotations"),
        (7, "skeleton 0"),
    ]
    assert "tail" in report.errors[-1].message
    assert report.version == before + 1
    assert (report.frames, report.labels) == (3, 3)
    stats = report.stats
    assert stats.images == 3
    assert stats.mean_seconds == pytest.approx(30.0)
    assert stats.median_seconds == pytest.approx(30.0)
    assert stats.modified_share == pytest.approx(2 / 3)
    assert stats.unchanged_share == pytest.approx(1 / 3)
    assert stats.workers["worker-a"]["images"] == 2
    assert stats.workers["worker-a"]["mean_seconds"] == pytest.approx(20.0)
    assert "3 images" in stats.summary()

    def person(frame: frame_pb2.Frame) -> label_pb2.Label:
        (label,) = [lb for lb in frame.labels if lb.classification == "person"]
        return label

    new = {f.frame_id: f for f in client.get_frames(project, "people", version=report.version)}
    old = {f.frame_id: f for f in client.get_frames(project, "people", version=before)}
    first = people.people[0]
    moved = person(new[first.frame_id])
    assert moved.label_id == first.label_id  # the skeleton named after the label keeps its id
    points = {k.name: (k.x, k.y) for k in moved.keypoints_2d.keypoints}
    # Moved 5 px sideways in the job, which works on whole pixels: x is the job's; y, not moved, keeps Shoal's value.
    assert points["nose"] == pytest.approx((gt.pixel(first.points["nose"][0]) + 5.0, first.points["nose"][1]))
    assert moved.attributes[gt.ATTR_WORKER].string_value == "worker-a"
    assert moved.attributes[gt.ATTR_SECONDS].float_value == 30.0
    assert moved.attributes[gt.ATTR_MODIFIED].bool_value is True
    assert moved.attributes[gt.ATTR_JOB].string_value == "pose-review"
    # The earlier version is unchanged, and the frames of the bad lines are untouched in the new one.
    then = {k.name: (k.x, k.y) for k in person(old[first.frame_id]).keypoints_2d.keypoints}
    assert then["nose"] == pytest.approx(first.points["nose"])
    for p in people.people[3:]:
        assert person(new[p.frame_id]) == person(old[p.frame_id])
    # The box stays with the label's image.
    assert new[first.frame_id].sensors == old[first.frame_id].sensors


def test_built_in_bounding_box_output_imports_with_either_metadata_spelling(client: shoal.Client) -> None:
    people = pose_set(2, seed=3)
    project = load(client, people)
    uri0, uri1 = (people.image_url(p.frame_id) for p in people.people)
    lines = [
        {
            "source-ref": uri0,
            "dogs": {"image_size": [{"width": 640, "height": 480, "depth": 3}],
                     "annotations": [{"class_id": 0, "left": 10, "top": 20, "width": 30, "height": 40}]},
            "dogs-metadata": {"objects": [{"confidence": 0.9}], "class-map": {"0": "dog"},
                              "type": "groundtruth/object-detection", "human-annotated": "yes", "job-name": "dogs"},
        },
        {
            "source-ref": uri1,
            "dogs": {"annotations": [{"class_id": 0, "left": 1, "top": 2, "width": 3, "height": 4}]},
            "dogs-metadata": {"class_map": {"0": "dog"}, "type": "groundtruth/object-detection", "job_name": "dogs"},
        },
        {
            "source-ref": uri1,
            "dogs": {"annotations": [{"class_id": 7, "left": 1, "top": 2, "width": 3, "height": 4}]},
            "dogs-metadata": {"class-map": {"0": "dog"}, "type": "groundtruth/object-detection"},
        },
        {"source-ref": "s3://elsewhere/x.jpg", "dogs": {"annotations": []},
         "dogs-metadata": {"class-map": {}, "type": "groundtruth/object-detection"}},
    ]  # fmt: skip
    report = gt.import_results(client, project, "people", [json.dumps(x) for x in lines])
    assert [(e.line, e.message) for e in report.errors] == [
        (3, "annotations[0] class_id 7 is not in the class-map"),
        (4, "no frame has the image s3://elsewhere/x.jpg"),
    ]
    frames = {f.frame_id: f for f in client.get_frames(project, "people", version=report.version)}
    (box,) = [lb for lb in frames[people.people[1].frame_id].labels if lb.WhichOneof("geometry") == "box_2d"]
    assert (box.classification, box.box_2d.left, box.box_2d.height) == ("dog", 1.0, 4.0)
    assert box.attributes[gt.ATTR_JOB].string_value == "dogs"
    # Keypoints of the person are kept beside the new boxes.
    assert any(lb.classification == "person" for lb in frames[people.people[0].frame_id].labels)


def test_built_in_semantic_segmentation_output_imports_as_class_id_masks(client: shoal.Client, tmp_path: Path) -> None:
    import io

    import numpy as np
    from PIL import Image

    people = pose_set(2, seed=6)
    project = load(client, people)
    colours = np.zeros((IMAGE_SIZE[1], IMAGE_SIZE[0], 3), np.uint8)
    colours[:] = (255, 255, 255)
    colours[100:300, 200:500] = (0x2A, 0xCF, 0x59)
    good = tmp_path / "mask-0.png"
    Image.fromarray(colours).save(good)
    stray = colours.copy()
    stray[0, 0] = (1, 2, 3)
    bad = tmp_path / "mask-1.png"
    Image.fromarray(stray).save(bad)
    uri0, uri1 = (people.image_url(p.frame_id) for p in people.people)
    lines = [
        {
            "source-ref": uri0,
            "streets-ref": str(good),
            "streets-ref-metadata": {
                "internal-color-map": {
                    "0": {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0.9},
                    "1": {"class-name": "person", "hex-color": "#2acf59", "confidence": 0.9},
                },
                "type": "groundtruth/semantic-segmentation",
                "human-annotated": "yes",
                "job-name": "streets",
            },
        },
        {
            "source-ref": uri1,
            "streets-ref": str(bad),
            "streets-ref-metadata": {
                "internal_color_map": {"0": {"class_name": "BACKGROUND", "hex_color": "#ffffff"}},
                "type": "groundtruth/semantic-segmentation",
            },
        },
        {
            "source-ref": uri1,
            "streets-ref": str(bad),
            "streets-ref-metadata": {"type": "groundtruth/semantic-segmentation"},
        },
    ]
    report = gt.import_results(client, project, "people", [json.dumps(x) for x in lines])
    assert [(e.line, e.message.split(" are ")[0]) for e in report.errors] == [
        (2, "mask colours #010203, #2acf59"),
        (3, "'streets-ref-metadata' has no internal-color-map"),
    ]
    assert (report.frames, report.labels) == (1, 1), report
    assert not client.list_upload_errors(report.upload)
    frames = {f.frame_id: f for f in client.get_frames(project, "people", version=report.version)}
    (label,) = [
        lb for lb in frames[people.people[0].frame_id].labels if lb.WhichOneof("geometry") == "semantic_segmentation_2d"
    ]
    (asset,) = [a for a in client.list_assets(project, "people") if a.sha256 in label.semantic_segmentation_2d.mask_url]
    with Image.open(io.BytesIO(client.read_asset(asset.name))) as img:
        ids = np.asarray(img)
    expected = np.full((IMAGE_SIZE[1], IMAGE_SIZE[0]), 2, np.uint8)
    expected[100:300, 200:500] = 0
    assert np.array_equal(ids, expected)
    assert label.attributes[gt.ATTR_JOB].string_value == "streets"
    # A mask the server refuses (wrong size) is reported on its line, and nothing of that frame changes.
    small = tmp_path / "small.png"
    Image.fromarray(np.full((4, 6, 3), 255, np.uint8)).save(small)
    lines[0]["streets-ref"] = str(small)
    again = gt.import_results(client, project, "people", [json.dumps(lines[0])])
    assert [(e.line, e.message.split(" (")[0]) for e in again.errors] == [(1, "MASK_SIZE_MISMATCH")]
    assert (again.frames, again.labels, again.stats.images) == (0, 0, 0)


def test_cli_exports_and_imports(
    client: shoal.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from shoal.cli import main

    people = pose_set(3, seed=8)
    project = load(client, people)
    for name, address in client.addresses.items():
        monkeypatch.setenv(f"SHOAL_{name.upper()}_ADDRESS", address)
    monkeypatch.setenv("SHOAL_API_KEY", client.api_key)
    common = ["--project", project, "--dataset", "people", "--class", "person"]
    assert main(["gt", "export", *common, "--version", "1", "--out", str(tmp_path / "job")]) == 0
    assert "3 images from" in capsys.readouterr().out
    lines = [json.loads(t) for t in (tmp_path / "job" / "manifest.jsonl").read_text().splitlines()]
    output = tmp_path / "output.manifest"
    output.write_text(
        json.dumps(_result_line(lines[0], _edit(lines[0]["initial_values"], 2.0), "w", 5.0, True)) + "\n{oops\n"
    )
    stats = tmp_path / "stats.json"
    assert main(["gt", "import", *common, str(output), "--stats", str(stats)]) == 1  # a bad line: exit 1
    captured = capsys.readouterr()
    assert "version 2: 1 frames, 1 labels" in captured.out
    assert "line 2: not JSON" in captured.err
    assert json.loads(stats.read_text())["images"] == 1


def test_cli_checks_keypoints(
    client: shoal.Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from shoal.cli import KEYPOINT_RULES, main

    assert {f"LABEL_ERROR_REASON_{r.upper()}" for r in KEYPOINT_RULES} == {
        evaluation_pb2.LabelErrorReason.Name(r) for r in keypoints.RULES
    }
    people = pose_set(60, swaps=2, seed=12)
    project = load(client, people)
    for name, address in client.addresses.items():
        monkeypatch.setenv(f"SHOAL_{name.upper()}_ADDRESS", address)
    monkeypatch.setenv("SHOAL_API_KEY", client.api_key)
    common = ["keypoints", "check", "--project", project, "--dataset", "people", "--rule", "swapped_keypoints"]
    assert main([*common, "--json"]) == 0
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {c["ground_truth_label_id"] for c in found} == set(people.swapped)
    assert all(c["reason"] == "LABEL_ERROR_REASON_SWAPPED_KEYPOINTS" for c in found)
    assert main([*common, "--limit", "1"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1
    assert "swapped_keypoints" in captured.out
    assert "look swapped" in captured.out
    assert "1 candidates" in captured.err
    with pytest.raises(SystemExit):
        main([*common[:-1], "swapped"])  # not a rule: refused before calling the suite
