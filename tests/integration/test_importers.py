"""COCO and serialized-frame imports round-trip sample files with every field, through the SDK and ingest."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import shoal
from shoal.ingest.server import build as build_ingest
from shoal.kit.objectstore import LocalObjectStore
from shoal.kit.settings import StoreSettings
from shoal.sdk import coco, serialized
from shoal.v1 import ingest_service_pb2, versioning_service_pb2
from shoal.versioning.server import build as build_versioning

from tests.conftest import ADMIN_KEY, ServerThread, unique

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parents[1] / "data"
REFERENCE = DATA / "reference_client"


@pytest.fixture
def suite(
    start_service: Callable[..., ServerThread], tmp_path: Path
) -> Iterator[tuple[shoal.Client, LocalObjectStore]]:
    store = StoreSettings(url=(tmp_path / "store").as_uri())
    versioning = start_service("versioning", build_versioning, store=store)
    ingest = start_service("ingest", build_ingest, store=store)
    client = shoal.Client(
        api_key=ADMIN_KEY, addresses={"versioning": versioning.target, "ingest": ingest.target}, show_progress=False
    )
    yield client, LocalObjectStore(tmp_path / "store")
    client.close()


def stored(store: LocalObjectStore, upload: str) -> ingest_service_pb2.FrameBatch:
    merged = ingest_service_pb2.FrameBatch()
    for obj in store.iter_all(f"ingest/{upload}/batches/"):
        merged.MergeFrom(ingest_service_pb2.FrameBatch.FromString(store.get(obj.key)))
    return merged


def test_coco_ground_truth_and_results_round_trip(suite: tuple[shoal.Client, LocalObjectStore]) -> None:
    client, store = suite
    original = json.loads((DATA / "coco_sample.json").read_text())
    class_map, dataset = coco.import_coco(DATA / "coco_sample.json", image_url_prefix="s3://coco/")
    assert coco.export_coco([f for f in dataset.items], class_map.to_proto(), image_url_prefix="s3://coco/") == original  # type: ignore[misc]
    project = unique("coco")
    client.create_project(project, class_map)
    report = client.create_or_update_dataset(project, "val", dataset=dataset)
    assert (report.accepted, report.rejected) == (3, [])
    frames = list(stored(store, report.name).frames)
    assert coco.export_coco(frames, client.get_project(project).class_map, image_url_prefix="s3://coco/") == original

    results = coco.import_coco_results(DATA / "coco_results_sample.json", original["categories"])
    inf_report = client.create_inferences(project, "val", "detector", inferences=results)
    assert (inf_report.accepted, inf_report.rejected) == (3, [])
    predictions = stored(store, inf_report.name).inference_frames
    scores = sorted(round(label.confidence, 2) for f in predictions for label in f.labels)
    assert scores == [0.15, 0.42, 0.71, 0.93]


@pytest.mark.parametrize("form", ["inline", "split"])
def test_serialized_frames_round_trip(suite: tuple[shoal.Client, LocalObjectStore], form: str) -> None:
    """The reference client's rows (tests/data/reference_client) through ingest and back out in the same shape."""
    client, store = suite
    frames = serialized.read_frames(serialized.read_jsonl(REFERENCE / f"labeled_{form}.jsonl"))
    project = unique("frames")
    client.create_project(project, shoal.LabelClassMap.from_classnames(_reference_classes()))
    client.create_dataset(project, "drives")
    report = client.upload(f"projects/{project}/datasets/drives", frames)
    assert (report.accepted, report.rejected) == (40, [])
    kept = list(stored(store, report.name).frames)
    assert kept == frames
    written = list(serialized.write_frames(kept, split=form == "split"))
    assert len(written) == (80 if form == "split" else 40)
    assert serialized.read_frames(written) == frames


def _reference_classes() -> list[str]:
    rows = serialized.read_jsonl(REFERENCE / "labeled_inline.jsonl")
    return sorted({e["label"] for row in rows for e in row["label_data"]} - {"__mask"})


def test_shoal_import_commands(start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str) -> None:
    import os
    import subprocess
    import sys

    store = StoreSettings(url=(tmp_path / "store").as_uri())
    # `import coco` waits for its ground truth to be committed before it pins the results: a worker applies it.
    versioning = start_service("versioning", build_versioning, redis_url=redis_db, store=store, run_worker=True)
    ingest = start_service("ingest", build_ingest, redis_url=redis_db, store=store)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")} | {
        "SHOAL_API_KEY": ADMIN_KEY,
        "SHOAL_VERSIONING_ADDRESS": versioning.target,
        "SHOAL_INGEST_ADDRESS": ingest.target,
    }
    project = unique("cli")
    cmd = [sys.executable, "-m", "shoal.cli", "import"]
    coco_run = subprocess.run(
        [*cmd, "coco", "--project", project, "--dataset", "val", str(DATA / "coco_sample.json"), "--results", str(DATA / "coco_results_sample.json")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert coco_run.returncode == 0, coco_run.stderr
    assert "ground truth: 3 accepted, 0 rejected" in coco_run.stdout
    assert "inferences: 3 accepted, 0 rejected" in coco_run.stdout
    # The reference client's rows, into a project whose class map lacks "sign": those frames fail alone, with reasons.
    frames_project = unique("cli-frames")
    with shoal.Client(
        api_key=ADMIN_KEY, addresses={"versioning": versioning.target, "ingest": ingest.target}, show_progress=False
    ) as client:
        classes = [c for c in _reference_classes() if c != "sign"]
        client.create_project(frames_project, shoal.LabelClassMap.from_classnames(classes))
    frames_run = subprocess.run(
        [*cmd, "frames", "--project", frames_project, "--dataset", "drives", "--create", str(REFERENCE / "labeled_split.jsonl")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert frames_run.returncode == 1, frames_run.stderr  # frames were refused: the command says so by its exit
    rows = serialized.read_jsonl(REFERENCE / "labeled_inline.jsonl")
    fitting = sum(1 for row in rows if "sign" not in {e["label"] for e in row["label_data"]})
    assert 0 < fitting < 40
    assert f"upload: {fitting} accepted, {40 - fitting} rejected" in frames_run.stdout
    assert "UNKNOWN_CLASS" in frames_run.stdout
    # The client's inference rows, into an inference set of that dataset.
    inferences_run = subprocess.run(
        [*cmd, "frames", "--project", frames_project, "--dataset", "drives", "--inference-set", "model-a", str(REFERENCE / "inferences.jsonl")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert inferences_run.returncode == 1, inferences_run.stdout + inferences_run.stderr  # "sign" predictions refused
    assert "upload: 20 accepted, 20 rejected" in inferences_run.stdout
    with shoal.Client(
        api_key=ADMIN_KEY, addresses={"versioning": versioning.target, "ingest": ingest.target}, show_progress=False
    ) as client:
        sets = client.versioning.ListInferenceSets(
            versioning_service_pb2.ListInferenceSetsRequest(parent=f"projects/{frames_project}/datasets/drives"),
            metadata=client._metadata,
        )
        assert [s.name.rsplit("/", 1)[1] for s in sets.inference_sets] == ["model-a"]
    # Embeddings for the COCO images, from a NumPy file and a list of image file names.
    import numpy as np

    with shoal.Client(
        api_key=ADMIN_KEY, addresses={"versioning": versioning.target, "ingest": ingest.target}, show_progress=False
    ) as client:
        frames = list(client.stream_frames(project, "val"))
    names = [f.sensors[0].image.url.rsplit("/", 1)[1] for f in frames]
    vectors = np.random.default_rng(2).standard_normal((len(frames), 8)).astype(np.float32)
    np.save(tmp_path / "e.npy", vectors)
    (tmp_path / "e.txt").write_text("\n".join(names) + "\n")
    embeddings_run = subprocess.run(
        [*cmd, "embeddings", "--project", project, "--dataset", "val", str(tmp_path / "e.npy"), "--ids", str(tmp_path / "e.txt")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert embeddings_run.returncode == 0, embeddings_run.stderr
    assert f"embeddings: {len(frames)} accepted, 0 rejected" in embeddings_run.stdout
    with shoal.Client(
        api_key=ADMIN_KEY, addresses={"versioning": versioning.target, "ingest": ingest.target}, show_progress=False
    ) as client:
        stored = {f.frame_id: list(f.embedding.values) for f in client.stream_frames(project, "val")}
    for frame, vector in zip(frames, vectors, strict=True):
        np.testing.assert_allclose(stored[frame.frame_id], vector)
    (tmp_path / "e.txt").write_text("nope.jpg\n" * len(frames))
    refused = subprocess.run(
        [*cmd, "embeddings", "--project", project, "--dataset", "val", str(tmp_path / "e.npy"), "--ids", str(tmp_path / "e.txt")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "id 'nope.jpg' comes more than once" in refused.stderr
