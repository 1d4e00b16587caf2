"""A custom skeleton job exported from a checkpoint, run through the example stack's steps as reproduced in
tests/unit/test_groundtruth_stack.py (pre-annotation, the component's schema check, whole pixels, numbers posted as
strings, a job named `labeling-job/name`), and its output imported by the real services: every image lands, the
statistics are Shoal's, and what nobody touched keeps its exact positions."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import shoal
from shoal import validation as rules
from shoal.demo_pose import IMAGE_SIZE, pose_set
from shoal.kit.settings import StoreSettings
from shoal.sdk import groundtruth as gt
from shoal.v1 import frame_pb2, label_pb2

from tests.conftest import ServerThread, unique
from tests.integration.test_metrics import committed, suite
from tests.unit.test_groundtruth_stack import JOB, component_opens, pre_annotation, problems, run_job

pytestmark = pytest.mark.integration


@pytest.fixture
def client(start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str) -> Iterator[shoal.Client]:
    with suite(start_service, StoreSettings(url=(tmp_path / "store").as_uri()), redis_db) as c:
        yield c


def person(frame: frame_pb2.Frame, label_id: str) -> label_pb2.Label:
    (label,) = [lb for lb in frame.labels if lb.label_id == label_id]
    return label


def test_the_stacks_job_round_trips(client: shoal.Client, tmp_path: Path) -> None:
    people = pose_set(6, seed=11)
    for p in people.people:  # halves and sub-pixel positions, which the job sees as whole pixels
        x, y = p.points["nose"]
        p.points["nose"] = (math.floor(x) + 0.5, math.floor(y) + 0.25)
    project = unique("gtstack")
    client.create_project(project, shoal.LabelClassMap([shoal.ClassMapEntry.coco_person(class_id=0)]))
    dataset = shoal.LabeledDataset()
    for p in people.people:
        frame = shoal.LabeledFrame(frame_id=p.frame_id)
        frame.add_image(
            sensor_id="cam", image_url=people.image_url(p.frame_id), width=IMAGE_SIZE[0], height=IMAGE_SIZE[1]
        )
        frame.add_label_2d_keypoints(
            sensor_id="cam",
            label_id=p.label_id,
            classification="person",
            keypoints=[{"name": n, "x": x, "y": y, "visibility": 2} for n, (x, y) in p.points.items()],
        )
        dataset.add_frame(frame)
    committed(client, client.create_or_update_dataset(project, "people", dataset=dataset))
    client.create_checkpoint(project, "people", "to-review")

    job = gt.export_skeleton_job(client, project, "people", class_name="person", checkpoint="to-review")
    manifest, template = job.write(tmp_path / "job")
    lines = [json.loads(t) for t in manifest.read_text().splitlines()]
    for line in lines:
        assert component_opens(pre_annotation(line)), line["source-ref"]  # every task opens, pre-annotated
    attributes = json.loads(template.read_text())
    assert not problems("keypoint-classes", attributes["keypointClasses"])
    assert not problems("skeleton-rig", attributes["skeletonRig"])

    output = tmp_path / "output.manifest"
    output.write_text("\n".join(run_job(lines)) + "\n")
    before = client.list_versions(project, "people")[-1].version
    report = gt.import_results(client, project, "people", output, class_name="person")
    assert report.errors == []
    assert (report.frames, report.labels) == (6, 7)
    assert not client.list_upload_errors(report.upload)
    stats = report.stats
    assert stats.images == 6
    assert stats.mean_seconds == pytest.approx(214 / 6)
    assert stats.median_seconds == pytest.approx(39.0)
    assert stats.modified_share == pytest.approx(0.5)
    assert stats.reported_modified_share == pytest.approx(5 / 6)

    new = {f.frame_id: f for f in client.get_frames(project, "people", version=report.version)}
    old = {f.frame_id: f for f in client.get_frames(project, "people", version=before)}
    untouched = people.people[0]
    kept = person(new[untouched.frame_id], untouched.label_id)
    assert kept.keypoints_2d == person(old[untouched.frame_id], untouched.label_id).keypoints_2d
    nose = next(k for k in kept.keypoints_2d.keypoints if k.name == "nose")
    assert (nose.x % 1, nose.y % 1) == (0.5, 0.25)
    assert kept.attributes[gt.ATTR_MODIFIED].bool_value is False
    assert kept.attributes[gt.ATTR_REPORTED_MODIFIED].bool_value is True
    assert kept.attributes[gt.ATTR_JOB].string_value == JOB
    moved = people.people[1]
    (nose,) = [k for k in person(new[moved.frame_id], moved.label_id).keypoints_2d.keypoints if k.name == "nose"]
    x, y = moved.points["nose"]
    assert (nose.x, nose.y) == (gt.pixel(x) + 5, y)  # moved right: the worker's x, Shoal's exact y
    drawn = [lb for lb in new[people.people[5].frame_id].labels if lb.label_id != people.people[5].label_id]
    assert [lb.label_id for lb in drawn] == [f"{people.people[5].frame_id}-cam-labeling-job%2Fname-kp1"]
    assert rules.id_problem(drawn[0].label_id) is None
