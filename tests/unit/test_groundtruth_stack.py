"""A custom skeleton job as the public example stack runs it, reproduced here in our own words (none of its code): its
pre-annotation step hands the task the JSON text of the line's `annotations` list; the skeleton component checks that
text against its schema (tests/data/groundtruth/) before the task opens and saves positions as whole pixels; the form
posts every value as a string; the consolidation step writes the output line with the input line's fields, the
worker's answer and the job's own `was_modified` flag. Shoal's exported manifest must pass all of it, and what comes
back must import fully with the right statistics. The fake client below stands in for the services and refuses ids
the way ingest does; tests/integration/test_groundtruth_stack.py runs the same job against the real services."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft7Validator
from shoal import validation as rules
from shoal.sdk import groundtruth as gt
from shoal.sdk.classmap import ClassMapEntry
from shoal.v1 import frame_pb2, label_pb2, project_pb2, upload_pb2

SCHEMAS = Path(__file__).parents[1] / "data" / "groundtruth"
JOB = "labeling-job/name"  # the documentation's own example of a job name
ATTRIBUTE = "label-results"
NOT_LABELED = label_pb2.KEYPOINT_VISIBILITY_NOT_LABELED
OCCLUDED = label_pb2.KEYPOINT_VISIBILITY_OCCLUDED
VISIBLE = label_pb2.KEYPOINT_VISIBILITY_VISIBLE

#: One image each: (worker, pixels every point is moved right, whether a second person is drawn, seconds, the job's
#: own was_modified). Three images are left as they were, three changed; the job calls five of them modified.
SCENARIO: Sequence[tuple[str, int, bool, int, bool]] = (
    ("w1", 0, False, 37, True),
    ("w1", 5, False, 52, True),
    ("w2", 0, False, 12, True),
    ("w2", 3, False, 41, True),
    ("w3", 0, False, 9, False),
    ("w3", 0, True, 63, True),
)


def schema(name: str) -> Draft7Validator:
    return Draft7Validator(json.loads((SCHEMAS / f"{name}.schema.json").read_text()))


def problems(name: str, value: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in schema(name).iter_errors(value)]


# the stack, reproduced ---------------------------------------------------------------------------------------------


def pre_annotation(line: Mapping[str, Any]) -> dict[str, str]:
    """The pre-annotation step: the task's image and the JSON text of the line's `annotations` (a line without
    that field fails the step, and its task never opens)."""
    return {"image_s3_uri": line["source-ref"], "initial_values": json.dumps(line["annotations"])}


def component_opens(task: Mapping[str, str]) -> list[dict[str, Any]]:
    """The component parses its initial values and refuses to open when they break its schema; an empty list means
    no pre-annotations and is not checked."""
    values: list[dict[str, Any]] = json.loads(task["initial_values"])
    if values != []:
        found = problems("initial-values", values)
        assert not found, f"the component refuses {task['image_s3_uri']}: {found}"
    return values


def whole_pixel(value: float) -> int:
    """How the component saves a position: to the nearest pixel, halves up."""
    return math.floor(value + 0.5)


def worker_submits(
    task: Mapping[str, str], shown: list[dict[str, Any]], *, move: int, extra: bool, seconds: int
) -> dict[str, str]:
    """The form the worker posts: every value a string; positions saved as whole pixels; a skeleton the worker draws
    has an empty name."""
    skeletons = copy.deepcopy(shown)
    for skeleton in skeletons:
        for p in skeleton["annotations"]:
            p["x"], p["y"] = whole_pixel(p["x"] + move), whole_pixel(p["y"])
    if extra:
        skeletons.append(
            {"name": "", "annotations": [{"label": "nose", "x": 20, "y": 30}, {"label": "left_hip", "x": 22, "y": 60}]}
        )
    return {
        "updated_annotations": json.dumps(skeletons, separators=(",", ":")),
        "original_annotations": task["initial_values"],
        "image_s3_uri": task["image_s3_uri"],
        "image_name": task["image_s3_uri"].rsplit("/", 1)[-1],
        "no_changes_needed": json.dumps(not move and not extra),
        "total_time_in_seconds": str(seconds),
    }


def consolidate(n: int, line: Mapping[str, Any], form: Mapping[str, str], worker: str, flag: bool) -> dict[str, Any]:
    """The consolidation step: the input line's fields, then one worker's answer under the label attribute, with
    the seconds left as the form's string and the flag the job computed itself."""
    return {
        **line,
        ATTRIBUTE: {
            "dataset_object_id": str(n),
            "data_object_s3_uri": line["source-ref"],
            "image_file_name": form["image_name"],
            "image_s3_location": form["image_s3_uri"],
            "original_annotations": json.loads(form["original_annotations"]),
            "updated_annotations": form["updated_annotations"],
            "worker_id": worker,
            "no_changes_needed": json.loads(form["no_changes_needed"]),
            "was_modified": flag,
            "total_time_in_seconds": form["total_time_in_seconds"],
        },
        f"{ATTRIBUTE}-metadata": {"type": gt.SKELETON_TYPE, "job-name": JOB, "human-annotated": "yes"},
    }


def run_job(manifest: Sequence[Mapping[str, Any]]) -> list[str]:
    """The whole job over an exported manifest, as the output manifest's lines."""
    out = []
    for n, (line, (worker, move, extra, seconds, flag)) in enumerate(zip(manifest, SCENARIO, strict=True)):
        task = pre_annotation(line)
        form = worker_submits(task, component_opens(task), move=move, extra=extra, seconds=seconds)
        out.append(json.dumps(consolidate(n, line, form, worker, flag)))
    return out


# a dataset and a client standing in for the services ----------------------------------------------------------------

RIG = ClassMapEntry("person", 0, keypoint_names=["nose", "neck", "left_hip", "right_hip"]).to_proto()


def frames() -> list[frame_pb2.Frame]:
    """Six images of one person each, at sub-pixel positions, halves among them; one hip occluded, one never
    labeled."""
    out = []
    for i in range(6):
        frame = frame_pb2.Frame(frame_id=f"img-{i}")
        sensor = frame.sensors.add(sensor_id="cam")
        sensor.image.url = f"s3://bucket/images/img-{i}.jpg"
        label = frame.labels.add(label_id=f"img-{i}-person", classification="person", sensor_id="cam")
        label.keypoints_2d.keypoints.extend(
            [
                label_pb2.Keypoint(name="nose", x=101.5 + i, y=60.25, visibility=VISIBLE),
                label_pb2.Keypoint(name="neck", x=99.49, y=90.5, visibility=VISIBLE),
                label_pb2.Keypoint(name="left_hip", x=120.7, y=200.2, visibility=OCCLUDED),
                label_pb2.Keypoint(name="right_hip", visibility=NOT_LABELED),
            ]
        )
        label.keypoints_2d.box.CopyFrom(label_pb2.Box2D(left=80, top=40, width=60, height=180))
        out.append(frame)
    return out


class FakeServices:
    """get_project, stream_frames, upload and its errors: ingest's id and duplicate-id checks, nothing else."""

    def __init__(self, data: Sequence[frame_pb2.Frame]) -> None:
        self.frames = {f.frame_id: f for f in data}
        self.uploaded: list[frame_pb2.Frame] = []
        self.refused: list[upload_pb2.FrameError] = []

    def get_project(self, project_id: str) -> project_pb2.Project:
        return project_pb2.Project(class_map=project_pb2.ClassMap(entries=[RIG]))

    @staticmethod
    def version_ref(project_id: str, dataset_id: str, version: int | None = None, checkpoint: str | None = None) -> str:
        return f"projects/{project_id}/datasets/{dataset_id}/versions/{version or 1}"

    def stream_frames(self, project_id: str, dataset_id: str, **_: Any) -> Iterator[frame_pb2.Frame]:
        for frame in self.frames.values():
            yield frame_pb2.Frame.FromString(frame.SerializeToString())

    def upload(self, target: str, items: Sequence[frame_pb2.Frame]) -> SimpleNamespace:
        self.uploaded = list(items)
        for frame in self.uploaded:
            ids = [lb.label_id for lb in frame.labels]
            for lid in ids:
                problem = rules.id_problem(lid)
                if problem:
                    self.refused.append(
                        upload_pb2.FrameError(
                            frame_id=frame.frame_id, label_id=lid, reason="INVALID_ID", description=problem
                        )
                    )
            if len(set(ids)) != len(ids):
                self.refused.append(upload_pb2.FrameError(frame_id=frame.frame_id, reason="DUPLICATE_LABEL_ID"))
        return SimpleNamespace(name=f"{target}/uploads/u1")

    def wait_for_upload(self, name: str, timeout: float | None = None) -> upload_pb2.Upload:
        return upload_pb2.Upload(name=name, versions=[2])

    def list_upload_errors(self, name: str) -> list[upload_pb2.FrameError]:
        return self.refused


def export(services: FakeServices, **kwargs: Any) -> gt.SkeletonJob:
    return gt.export_skeleton_job(cast(Any, services), "p", "d", class_name="person", version=1, **kwargs)


# the tests ---------------------------------------------------------------------------------------------------------


def test_exported_lines_pass_the_pre_annotation_step_and_the_components_schemas(tmp_path: Path) -> None:
    job = export(FakeServices(frames()))
    manifest, _ = job.write(tmp_path)
    lines = [json.loads(t) for t in manifest.read_text().splitlines()]
    assert len(lines) == 6
    for line in lines:
        values = component_opens(pre_annotation(line))
        assert json.loads(line["initial_values"]) == values == line["annotations"]
    # Whole pixels, halves up; the never-labeled point is left out; the name is the label's id.
    assert lines[0]["annotations"] == [
        {
            "name": "img-0-person",
            "annotations": [
                {"label": "nose", "x": 102, "y": 60},
                {"label": "neck", "x": 99, "y": 91},
                {"label": "left_hip", "x": 121, "y": 200},
            ],
        }
    ]
    assert not problems("keypoint-classes", job.template["keypointClasses"])
    assert not problems("skeleton-rig", job.template["skeletonRig"])
    assert {p["label"] for p in lines[0]["annotations"][0]["annotations"]} <= {
        k["label"] for k in job.template["keypointClasses"]
    }


def test_a_fresh_job_opens_with_no_pre_annotations() -> None:
    for line in export(FakeServices(frames()), pre_annotations="none").manifest:
        assert line["annotations"] == []
        assert json.loads(line["initial_values"]) == []
        assert component_opens(pre_annotation(line)) == []


def test_the_schema_refuses_what_the_component_refuses() -> None:
    """The checks can fail: sub-pixel positions and a skeleton without points list are refused."""
    assert problems("initial-values", [{"name": "a", "annotations": [{"label": "nose", "x": 101.5, "y": 2}]}])
    assert problems("initial-values", [{"name": "a"}])
    with pytest.raises(KeyError):
        pre_annotation({"source-ref": "s3://b/x.jpg", "initial_values": "[]"})


def test_the_stacks_output_imports_fully_with_shoals_own_statistics() -> None:
    services = FakeServices(frames())
    output = run_job(export(services).manifest)
    report = gt.import_results(cast(Any, services), "p", "d", output, class_name="person")
    assert report.errors == []
    assert (report.frames, report.labels) == (6, 7)
    stats = report.stats
    assert stats.images == 6
    assert stats.mean_seconds == pytest.approx((37 + 52 + 12 + 41 + 9 + 63) / 6)
    assert stats.median_seconds == pytest.approx(39.0)
    assert stats.modified_share == pytest.approx(3 / 6)  # moved twice, one person added
    assert stats.reported_modified_share == pytest.approx(5 / 6)  # what the job said
    assert stats.workers["w1"]["modified_share"] == pytest.approx(0.5)
    assert "50% modified (the job's own flag: 83%)" in stats.summary()

    new = {f.frame_id: f for f in services.uploaded}
    old = {f.frame_id: f for f in frames()}

    def persons(frame: frame_pb2.Frame) -> list[label_pb2.Label]:
        return [lb for lb in frame.labels if lb.classification == "person"]

    # Left alone: Shoal's exact positions, visibilities, box and id stand; only the job's attributes are new.
    (kept,) = persons(new["img-0"])
    (before,) = persons(old["img-0"])
    assert kept.keypoints_2d == before.keypoints_2d
    assert kept.attributes[gt.ATTR_MODIFIED].bool_value is False
    assert kept.attributes[gt.ATTR_REPORTED_MODIFIED].bool_value is True
    assert kept.attributes[gt.ATTR_SECONDS].float_value == 37.0
    assert kept.attributes[gt.ATTR_JOB].string_value == JOB
    # Moved right: x is the worker's whole pixel, y (left at its pixel) and the visibility stay Shoal's; the
    # never-labeled point is still there.
    (moved,) = persons(new["img-1"])
    points = {k.name: (k.x, k.y, k.visibility) for k in moved.keypoints_2d.keypoints}
    assert points == {
        "nose": (108.0, 60.25, VISIBLE),
        "neck": (104.0, 90.5, VISIBLE),
        "left_hip": (126.0, 200.2, OCCLUDED),
        "right_hip": (0.0, 0.0, NOT_LABELED),
    }
    # The drawn person's points are the worker's, visible.
    (drawn_points,) = [
        {k.name: (k.x, k.y, k.visibility) for k in lb.keypoints_2d.keypoints}
        for lb in persons(new["img-5"])
        if lb.label_id != "img-5-person"
    ]
    assert drawn_points == {"nose": (20.0, 30.0, VISIBLE), "left_hip": (22.0, 60.0, VISIBLE)}
    assert moved.label_id == "img-1-person"
    assert moved.attributes[gt.ATTR_MODIFIED].bool_value is True
    # A person drawn by the worker gets an id made from the job's name, valid however the job is called.
    drawn = [lb for lb in persons(new["img-5"]) if lb.label_id != "img-5-person"]
    assert [lb.label_id for lb in drawn] == ["img-5-cam-labeling-job%2Fname-kp1"]
    assert drawn[0].attributes[gt.ATTR_MODIFIED].bool_value is True


def test_modified_is_decided_from_the_frame_when_the_line_does_not_say() -> None:
    """An output line that carries neither the exported fields nor original_annotations: Shoal compares with the
    labels it holds, rounded as the export rounds them."""
    services = FakeServices(frames())
    lines = []
    for text in run_job(export(services).manifest):
        record = json.loads(text)
        del record["annotations"], record["initial_values"], record[ATTRIBUTE]["original_annotations"]
        lines.append(json.dumps(record))
    report = gt.import_results(cast(Any, services), "p", "d", lines, class_name="person")
    assert report.errors == []
    assert report.stats.modified_share == pytest.approx(3 / 6)
    (kept,) = [lb for lb in services.uploaded[0].labels if lb.classification == "person"]
    assert kept.keypoints_2d == frames()[0].labels[0].keypoints_2d


@given(job=st.text(max_size=2000))
def test_label_ids_made_from_any_job_name_are_valid(job: str) -> None:
    made = gt.label_id("img-0", "cam", job, "kp0")
    assert rules.id_problem(made) is None
    assert len(made) <= rules.MAX_ID_LENGTH


@given(a=st.text(max_size=40), b=st.text(max_size=40))
def test_different_job_names_make_different_ids(a: str, b: str) -> None:
    if a != b:
        assert gt.label_id("img-0", "cam", a, "kp0") != gt.label_id("img-0", "cam", b, "kp0")
