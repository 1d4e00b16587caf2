"""Rows written by the reference client itself, imported into a real suite (ingest, versioning and its worker, Redis,
a local store) and read back from the committed versions: every frame, label, metadata value and type, attribute
name, geo value, coordinate frame and confidence equal to what the client was given, field by field."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import shoal
from shoal.ingest.server import build as build_ingest
from shoal.kit.settings import StoreSettings
from shoal.sdk import serialized
from shoal.v1 import upload_pb2
from shoal.versioning.server import build as build_versioning

from tests.conftest import ADMIN_KEY, ServerThread, unique
from tests.unit.test_reference_rows import (
    DATA,
    EXPECTED,
    actual_frame,
    actual_inference,
    assert_same,
    expected_frames,
    expected_inferences,
    expected_label,
)

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


def _classes() -> list[str]:
    entries = EXPECTED["frames"] + EXPECTED["inferences"] + EXPECTED["updates"] + EXPECTED["edge_frames"]
    names = {c["args"].get("classification") for e in entries for c in e["calls"]}
    names |= {m["classification"] for e in entries for c in e["calls"] for m in c["args"].get("instance_mapping", [])}
    return sorted(n for n in names if n)


def _project(client: shoal.Client, *datasets: str) -> str:
    project = unique("ref")
    client.create_project(project, shoal.LabelClassMap.from_classnames(_classes()))
    for dataset in datasets:
        client.create_dataset(project, dataset)
    return project


def _committed(client: shoal.Client, result: serialized.ImportResult) -> upload_pb2.Upload:
    """The last of the import's uploads, once every one of them is applied."""
    assert result.report is not None
    reports = [r for r in (result.report, result.label_report) if r is not None]
    return [client.wait_for_upload(r.name, timeout=120, poll_seconds=0.05) for r in reports][-1]


def test_both_shapes_and_the_predictions_are_stored_as_the_client_was_given_them(client: shoal.Client) -> None:
    project = _project(client, "split", "inline")
    want = expected_frames()
    stored = {}
    for dataset, shape in (("split", "labeled_split.jsonl"), ("inline", "labeled_inline.jsonl")):
        result = serialized.import_frames(client, project, dataset, DATA / shape)
        assert (result.read.rejected, result.read.not_kept) == ([], [])
        assert result.report is not None
        assert (result.report.accepted, result.report.rejected) == (40, [])
        assert _committed(client, result).state == upload_pb2.UPLOAD_STATE_COMMITTED
        frames = list(client.get_frames(project, dataset))
        assert [f.frame_id for f in frames] == sorted(want)
        for frame in frames:
            assert_same(frame.frame_id, want[frame.frame_id], actual_frame(frame))
        stored[dataset] = frames
    assert stored["split"] == stored["inline"]
    assert sum(len(f.labels) for f in stored["split"]) == 210

    result = serialized.import_frames(client, project, "split", DATA / "inferences.jsonl", inference_set="model-a")
    assert (result.read.rejected, result.read.not_kept) == ([], [])
    assert result.report is not None
    assert (result.report.accepted, result.report.rejected) == (40, [])
    assert _committed(client, result).state == upload_pb2.UPLOAD_STATE_COMMITTED
    predictions = [pair.inference for pair in client.get_inference_frames(project, "split", "model-a")]
    wanted = expected_inferences()
    assert [f.frame_id for f in predictions] == sorted(wanted)
    for frame in predictions:
        assert_same(frame.frame_id, wanted[frame.frame_id], actual_inference(frame))
    assert sum(len(f.labels) for f in predictions) == 180
    # A few frames by id: the same predictions, each beside its ground truth.
    some = [*sorted(wanted)[3:7], "not-a-frame"]
    pairs = list(client.get_inference_frames(project, "split", "model-a", frame_ids=some))
    assert [p.inference.frame_id for p in pairs] == some[:4]
    assert [p.inference for p in pairs] == [f for f in predictions if f.frame_id in some]
    assert all(p.ground_truth.frame_id == p.inference.frame_id for p in pairs)


def test_a_modify_and_a_delete_make_the_next_version(client: shoal.Client) -> None:
    project = _project(client, "d")
    _committed(client, serialized.import_frames(client, project, "d", DATA / "labeled_split.jsonl"))
    result = serialized.import_frames(client, project, "d", DATA / "updates_split.jsonl")
    assert (result.read.rejected, result.read.not_kept) == ([], [])
    assert result.report is not None
    assert result.label_report is not None
    assert (result.report.accepted, result.label_report.accepted) == (2, 1)
    assert _committed(client, result).state == upload_pb2.UPLOAD_STATE_COMMITTED
    before = {f.frame_id: f for f in client.get_frames(project, "d", version=1)}
    after = {f.frame_id: f for f in client.get_frames(project, "d")}
    assert sorted(before) == sorted([*after, "ref-0001"])
    old, new = actual_frame(before["ref-0000"]), actual_frame(after["ref-0000"])
    assert new["metadata"] == old["metadata"] | {"weather": ("str", "clear"), "tags": ("list:str", ["reviewed"])}
    given = next(c for c in EXPECTED["updates"][0]["calls"] if c["call"] == "add_label_2d_bbox")
    assert new["labels"] == old["labels"] | {"ref-0000-box-9": expected_label(given["call"], given["args"])}
    assert {k: v for k, v in new.items() if k not in {"metadata", "labels"}} == {
        k: v for k, v in old.items() if k not in {"metadata", "labels"}
    }


def test_what_shoal_cannot_take_is_reported_by_line(client: shoal.Client) -> None:
    project = _project(client, "edge")
    result = serialized.import_frames(client, project, "edge", DATA / "edge_labeled.jsonl")
    assert [issue.line for issue in result.read.rejected] == [1, 2, 3, 4]
    assert {issue.line for issue in result.read.not_kept} == {5}
    assert result.report is not None
    assert (result.report.accepted, result.report.rejected) == (2, [])
    _committed(client, result)
    assert [f.frame_id for f in client.get_frames(project, "edge")] == ["edge-extras", "edge-fine"]

    # Predicted masks carry no confidence in the client; Shoal needs one: ingest refuses that frame, by its line.
    result = serialized.import_frames(client, project, "edge", DATA / "edge_inferences.jsonl", inference_set="m")
    assert result.report is not None
    assert result.report.accepted == 1
    assert [(e.frame_id, e.reason) for e in result.report.rejected] == [("edge-extras", "MISSING_CONFIDENCE")]
    described = "\n".join(result.describe())
    assert f"{DATA / 'edge_inferences.jsonl'}:1: edge-extras edge-extras-p-semseg" in described
    assert "visualization assets ['heat']" in described

    # Rows of the other kind are refused, each by its line, and nothing is sent.
    wrong = serialized.import_frames(client, project, "edge", DATA / "inferences.jsonl")
    assert wrong.report is None
    assert [issue.line for issue in wrong.read.rejected] == list(range(1, 41))
    assert "inference set" in wrong.read.rejected[0].reason
