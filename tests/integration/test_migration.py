"""A store written by the release before the columnar layout (tests/data/old_layout, made by running that release)
migrates with nothing lost: every version, the checkpoint, both inference-set versions and their pin, and frame
histories read exactly as that release read them."""

from __future__ import annotations

import base64
import json
import tarfile
from pathlib import Path
from typing import Any

import lance
import pytest
from shoal.kit.errors import Unavailable
from shoal.kit.names import DatasetName, InferenceSetName
from shoal.kit.objectstore import LocalObjectStore, ObjectStore, open_store
from shoal.kit.settings import StoreSettings
from shoal.storage import migration
from shoal.storage.reads import Reads
from shoal.storage.tables import TableRoot
from shoal.v1 import frame_pb2

from tests.conftest import S3Server, unique

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data" / "old_layout"


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    with tarfile.open(DATA / "store.tar.gz") as archive:
        archive.extractall(tmp_path, filter="data")
    return tmp_path / "store"


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return json.loads((DATA / "expected.json").read_text())["projects"]["fleet"]


def _frames(encoded: dict[str, str], message: type) -> dict[str, Any]:
    return {frame_id: message.FromString(base64.b64decode(raw)) for frame_id, raw in encoded.items()}


def _read_all(reads: Reads, ref: str) -> dict[str, frame_pb2.Frame]:
    out: dict[str, frame_pb2.Frame] = {}
    token = ""
    while True:
        frames, token, _ = reads.list_frames(ref, 1000, token, None, "")
        out.update((f.frame_id, f) for f in frames)
        if not token:
            return out


def test_old_store_migrates_with_every_version_intact(old_store: Path, expected: dict[str, Any]) -> None:
    _migrates_intact(LocalObjectStore(old_store), StoreSettings(url=old_store.as_uri()), expected)
    assert not (old_store / "tables").exists()


def test_an_old_store_in_s3_migrates_with_every_version_intact(
    old_store: Path, expected: dict[str, Any], s3_server: S3Server
) -> None:
    settings = s3_server.store_settings(unique("old"))
    store = open_store(settings)
    for path in sorted(p for p in old_store.rglob("*") if p.is_file()):
        store.put(path.relative_to(old_store).as_posix(), path.read_bytes())
    _migrates_intact(store, settings, expected)
    assert list(store.iter_all("tables/")) == []


def _migrates_intact(store: ObjectStore, settings: StoreSettings, expected: dict[str, Any]) -> None:
    root = TableRoot(settings)
    drive = DatasetName("fleet", "drive")
    reads = Reads(store, settings)

    # Before migrating, readers are told to retry rather than shown an empty dataset.
    with pytest.raises(Unavailable):
        reads.resolve(str(drive))

    done = {m.target: m.versions for m in migration.migrate_store(store, root)}
    assert done == {
        "projects/fleet/datasets/drive": 6,
        "projects/fleet/datasets/parking": 1,
        "projects/fleet/datasets/drive/inferenceSets/model-a": 2,
    }
    assert migration.migrate_store(store, root) == []  # nothing left: a second run is a no-op

    for name, dataset in expected["datasets"].items():
        ref = f"projects/fleet/datasets/{name}"
        versions = root.tables(DatasetName("fleet", name)).versions()
        assert [
            (v.version, v.uploads, v.batches, v.frames_added, v.frames_modified, v.frames_deleted, v.frame_count)
            for v in versions
        ] == [
            (
                v["version"],
                v["uploads"],
                v["batches"],
                v["frames_added"],
                v["frames_modified"],
                v["frames_deleted"],
                v["frame_count"],
            )
            for v in dataset["versions"]
        ]
        assert [v.label_count for v in versions] == [v["label_count"] for v in dataset["versions"]]
        assert [v.commit_time.isoformat() for v in versions] == [v["commit_time"] for v in dataset["versions"]]
        for version, frames in dataset["frames"].items():
            assert _read_all(reads, f"{ref}/versions/{version}") == _frames(frames, frame_pb2.Frame), version
        for checkpoint_id, checkpoint in dataset["checkpoints"].items():
            resolved = reads.resolve(f"{ref}/checkpoints/{checkpoint_id}")
            assert resolved.version == checkpoint["version"]
            assert _read_all(reads, f"{ref}/checkpoints/{checkpoint_id}") == _frames(
                checkpoint["frames"], frame_pb2.Frame
            )
            # The checkpoint keeps its table version through retention, as a tag of the new table.
            tables = root.tables(DatasetName("fleet", name))
            tags = lance.dataset(tables.frames_uri, storage_options=tables.options or None).tags.list()
            assert tags[checkpoint_id]["version"] == tables.version(checkpoint["version"]).table_version
        for frame_id, revisions in dataset["history"].items():
            got, _ = reads.history(f"{ref}/frames/{frame_id}", 100, "")
            assert [(r.version, r.upload, frame_pb2.ChangeType.Name(r.change_type)) for r in got] == [
                (r["version"], r["upload"], r["change_type"]) for r in revisions
            ]
            assert [r.frame if r.HasField("frame") else None for r in got] == [
                frame_pb2.Frame.FromString(base64.b64decode(r["frame"])) if r["frame"] else None for r in revisions
            ]
        for set_id, inference_set in dataset["inference_sets"].items():
            target = InferenceSetName("fleet", name, set_id)
            assert reads.catalog.get_inference_set(target).dataset_version == inference_set["dataset_version"]
            tables = root.tables(target)
            assert [v.version for v in tables.versions()] == [v["version"] for v in inference_set["versions"]]
            for version, frames in inference_set["frames"].items():
                assert dict(tables.frames(int(version))) == _frames(frames, frame_pb2.InferenceFrame), version


def test_migrate_command_moves_a_stopped_suites_store(old_store: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    command = [sys.executable, "-m", "shoal.cli", "migrate", "--state-dir", str(tmp_path / "state")]
    first = subprocess.run([*command, "--store-url", old_store.as_uri()], capture_output=True, text=True, check=True)
    assert "projects/fleet/datasets/drive: 6 versions migrated" in first.stdout
    again = subprocess.run([*command, "--store-url", old_store.as_uri()], capture_output=True, text=True, check=True)
    assert again.stdout.strip() == "nothing to migrate"
    settings = StoreSettings(url=old_store.as_uri())
    assert [v.version for v in TableRoot(settings).tables(DatasetName("fleet", "drive")).versions()] == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]
