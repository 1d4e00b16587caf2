"""Write the old-layout store fixture (tables with a serialized-protobuf `frame` column) and what it must read back as.

Run it with the code of the release that wrote the fixture on the path, not the working tree's:

    git worktree add /tmp/oldrel 231e2ef
    PYTHONPATH=/tmp/oldrel/services .venv/bin/python tests/data/old_layout/make_fixture.py --out tests/data/old_layout
    PYTHONPATH=/tmp/oldrel/services .venv/bin/python tests/data/old_layout/make_fixture.py --verify tests/data/old_layout
    git worktree remove /tmp/oldrel --force

Writing starts a suite as `shoal up` does (five service processes, a private redis-server, the store a local
directory), fills it through the SDK, reads everything back over the RPCs, stops the suite, reads everything again
with `shoal.storage` directly on the store directory, checks the two agree, and writes `store.tar.gz` (the store
directory only) and `expected.json`. `--verify` extracts the tarball into a temporary directory and checks that the
code on the path reads it back exactly as `expected.json` says.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import shoal
from google.protobuf import json_format
from shoal.kit.names import DatasetName, InferenceSetName, ProjectName
from shoal.kit.objectstore import open_store
from shoal.kit.settings import SERVICES, StoreSettings
from shoal.sdk import (
    ClassMapEntry,
    Client,
    Inferences,
    InferencesFrame,
    LabelClassMap,
    LabeledDataset,
    LabeledFrame,
    UpdateGTLabelSet,
)
from shoal.storage.reads import Reads
from shoal.v1 import frame_pb2, upload_pb2

RELEASE_COMMIT = "231e2ef"
FORMAT = "shoal-old-layout-fixture/1"
ADMIN_KEY = "fixture-admin-key-0123456789abcdef"
PROJECT = "fleet"
DRIVE = "drive"  # six versions, embeddings, a checkpoint, an inference set
PARKING = "parking"  # no embeddings, one version
CHECKPOINT = "gold"
INFERENCE_SET = "model-a"
PINNED_VERSION = 3
EMBEDDER = "fixture-embedder"
DIM = 8
FRAME_COUNT = 40
MODIFIED = ["f001", "f002", "f003", "f004", "f005"]
LABEL_UPDATED = ["f002", "f010"]
DELETED = ["f007", "f008", "f009"]
READDED = "f008"
# Frames whose ListFrameHistory goes into expected.json: modified, modified + relabelled, deleted, deleted + re-added,
# and one never changed after its ADD.
HISTORY_FRAMES = ["f001", "f002", "f007", "f008", "f030"]
KEYPOINTS = ["nose", "left_eye", "right_eye", "left_shoulder", "right_shoulder"]
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


# ---- the data ----------------------------------------------------------------------------------------------------


def class_map() -> LabelClassMap:
    return LabelClassMap(
        [
            ClassMapEntry(name="car", class_id=0, color=(0, 130, 200), category="vehicle"),
            ClassMapEntry(name="pedestrian", class_id=1, category="person"),
            ClassMapEntry(name="cyclist", class_id=2, category="person"),
            ClassMapEntry(
                name="person",
                class_id=3,
                keypoint_names=KEYPOINTS,
                skeleton=[("nose", "left_eye"), ("nose", "right_eye"), ("left_shoulder", "right_shoulder")],
                keypoint_sigmas=[0.026, 0.025, 0.025, 0.079, 0.079],
            ),
            ClassMapEntry(name="crosswalk", class_id=4, category="road", ignore_in_eval=True),
        ]
    )


SCHEMA = [
    {"name": "weather", "type": "STRING"},
    {"name": "speed", "type": "FLOAT"},
    {"name": "is_night", "type": "BOOL"},
    {"name": "tags", "type": "ARRAY<STRING>"},
]
WEATHER = ["sun", "cloud", "fog"]
TAGS = ["highway", "urban", "rural", "tunnel", "bridge"]


def _vector(rng: random.Random) -> list[float]:
    # Values exactly representable in float32, so what was sent is what any layout stores.
    return [rng.randint(-512, 512) / 256.0 for _ in range(DIM)]


def drive_frame(i: int, *, variant: int = 0) -> LabeledFrame:
    """Frame f{i:03d} of the drive dataset; `variant` 1 is the re-added frame's new content."""
    rng = random.Random(1000 * variant + i)
    fid = f"f{i:03d}"
    frame = LabeledFrame(frame_id=fid, date_captured=T0 + timedelta(minutes=i, days=variant), device_id="rig-1")
    frame.add_coordinate_frame_3d(coord_frame_id="ego", position=(0.0, 0.0, 0.0), orientation=(0.0, 0.0, 0.0, 1.0))
    frame.add_coordinate_frame_2d(
        coord_frame_id="cam_front_cf", fx=1000.0, fy=1000.0, cx=960.0, cy=540.0, parent_frame_id="ego"
    )
    frame.add_image(
        sensor_id="cam_front",
        image_url=f"https://images.example.com/drive/{fid}_front{'_v2' if variant else ''}.jpg",
        preview_url=f"https://images.example.com/drive/{fid}_front_preview.jpg" if i % 2 == 0 else None,
        width=1920,
        height=1080,
        date_captured=T0 + timedelta(minutes=i, seconds=1, days=variant),
        coord_frame_id="cam_front_cf",
    )
    if i % 2 == 0:
        frame.add_image(
            sensor_id="cam_rear", image_url=f"https://images.example.com/drive/{fid}_rear.jpg", width=1280, height=720
        )
    classes = ["car", "pedestrian", "cyclist"]
    for k in range(1 + i % 3):
        frame.add_label_2d_bbox(
            sensor_id="cam_front",
            label_id=f"{fid}-box{k}",
            classification=classes[(i + k) % 3] if variant == 0 else "car",
            top=float(rng.randint(0, 800)),
            left=float(rng.randint(0, 1600)),
            width=float(rng.randint(20, 300)) + 0.5,
            height=float(rng.randint(20, 250)) + 0.25,
            iscrowd=(k == 2),
            # Ground truth with attributes and no confidence.
            user_attrs=(
                {"occluded": i % 2 == 1, "truncation": 0.25 * (i % 4), "colour": "red", "lanes": ["left", "centre"]}
                if k == 0
                else None
            ),
        )
    if i % 3 == 0:
        frame.add_label_2d_polygon_list(
            sensor_id="cam_front",
            label_id=f"{fid}-crosswalk",
            classification="crosswalk",
            polygons=[
                {"vertices": [(100.0, 900.0), (400.0, 880.0), (420.0, 1000.0), (90.0, 1020.0)]},
                {"vertices": [(500.0, 900.0), (700.0, 900.0), (600.0, 1000.0)]},
            ],
        )
    if i % 4 == 0:
        frame.add_label_2d_keypoints(
            sensor_id="cam_front",
            label_id=f"{fid}-pose",
            classification="person",
            keypoints=[
                {"name": n, "x": 300.0 + 10 * j + i, "y": 200.0 + 5 * j, "visibility": (0, 1, 2, 2, 2)[j]}
                for j, n in enumerate(KEYPOINTS)
            ],
            top=180.0,
            left=290.0 + i,
            width=80.0,
            height=120.0,
        )
    if i % 5 == 0:
        frame.add_label_2d_classification(
            sensor_id="cam_front",
            label_id=f"{fid}-scene",
            classification="car",
            secondary_labels={"time_of_day": "morning"},
            user_attrs={"reviewed": True, "reviewer_count": 2},
        )
    frame.add_frame_embedding(embedding=_vector(rng), model_id=EMBEDDER)
    frame.add_crop_embedding(label_id=f"{fid}-box0", embedding=_vector(rng), model_id=EMBEDDER)
    frame.add_geo_latlong_data(52.52 + i / 1000.0, 13.405 + i / 500.0)
    # Schema fields, with typed nulls on some frames (a STRING null and an empty ARRAY<STRING>).
    if i % 5 == 0:
        frame.add_user_metadata("weather", None, val_type="str")
    else:
        frame.add_user_metadata("weather", WEATHER[i % 3] if variant == 0 else "snow")
    frame.add_user_metadata("speed", 12.5 + i * 0.75)
    frame.add_user_metadata("is_night", i % 7 == 0)
    if i % 6 == 0:
        frame.add_user_metadata_list("tags", [], list_elt_type="str")
    else:
        frame.add_user_metadata_list("tags", [TAGS[i % 5], TAGS[(i + 2) % 5]])
    # Metadata outside the schema.
    frame.add_user_metadata("route", f"route-{i % 4}")
    frame.add_user_metadata("lap", i // 10)
    frame.add_user_metadata_list("sensor_temps", [21.5, 22.0 + i % 3])
    return frame


def modified_frame(fid: str) -> LabeledFrame:
    """A MODIFY that changes metadata only (schema fields, a non-schema field, one new key)."""
    frame = LabeledFrame(frame_id=fid, update_type="MODIFY")
    frame.add_user_metadata("weather", "rain")
    frame.add_user_metadata("speed", 3.5)
    frame.add_user_metadata_list("tags", ["wet-road"])
    frame.add_user_metadata("reviewed_by", "qa-team")
    return frame


def label_update(fid: str) -> UpdateGTLabelSet:
    """Replace box0 (same id, new class and geometry, new attributes) and add a new box."""
    update = UpdateGTLabelSet(frame_id=fid)
    update.update_label_2d_bbox(
        sensor_id="cam_front",
        label_id=f"{fid}-box0",
        classification="cyclist",
        top=10.0,
        left=20.0,
        width=64.0,
        height=128.0,
        user_attrs={"occluded": False, "relabelled": True},
    )
    update.update_label_2d_bbox(
        sensor_id="cam_front",
        label_id=f"{fid}-box9",
        classification="pedestrian",
        top=300.0,
        left=400.0,
        width=40.0,
        height=90.0,
    )
    return update


def parking_frame(i: int) -> LabeledFrame:
    fid = f"p{i:02d}"
    frame = LabeledFrame(frame_id=fid, date_captured=T0 + timedelta(hours=1, minutes=i))
    frame.add_image(sensor_id="cam", image_url=f"https://images.example.com/parking/{fid}.png", width=640, height=480)
    frame.add_label_2d_bbox(
        sensor_id="cam",
        label_id=f"{fid}-car",
        classification="car",
        top=100.0 + i,
        left=50.0 + 2 * i,
        width=120.0,
        height=60.0,
    )
    frame.add_user_metadata("lot", "north" if i % 2 else "south")
    frame.add_user_metadata("occupied", i % 3 != 0)
    frame.add_geo_latlong_data(48.137, 11.575)
    return frame


def inference_frame(i: int, *, second: bool = False) -> InferencesFrame:
    fid = f"f{i:03d}"
    rng = random.Random(5000 + i + (100 if second else 0))
    frame = InferencesFrame(frame_id=fid)
    frame.add_inference_2d_bbox(
        sensor_id="cam_front",
        label_id=f"{fid}-pred0",
        classification="car" if i % 2 else "pedestrian",
        top=float(rng.randint(0, 800)),
        left=float(rng.randint(0, 1600)),
        width=100.0,
        height=50.0,
        confidence=rng.randint(1, 100) / 128.0,
    )
    if i % 3 == 0:
        frame.add_inference_2d_bbox(
            sensor_id="cam_front",
            label_id=f"{fid}-pred1",
            classification="cyclist",
            top=5.0,
            left=6.0,
            width=7.0,
            height=8.0,
            confidence=0.5,
            user_attrs={"nms_kept": True},
        )
    frame.add_custom_metric("iou_mean", 0.625 if not second else 0.75)
    frame.add_user_metadata("run", "second" if second else "first")
    return frame


# ---- the suite ---------------------------------------------------------------------------------------------------


def _free_range(count: int) -> int:
    for _ in range(500):
        base = random.randint(20000, 40000)
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free port range")


def _our_processes(marker: str) -> list[str]:
    """Processes whose command line or environment names `marker` (this run's state directory or ports)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline or marker in environ:
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found


class Suite:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.state = work / "state"
        self.store = work / "store"
        self.base = _free_range(6)  # five gRPC ports and the asset service's HTTP port
        self.metrics_base = _free_range(5)
        self.redis_port = _free_range(1)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")} | {
            "SHOAL_ADMIN_API_KEY": ADMIN_KEY
        }
        self.addresses = {name: f"127.0.0.1:{self.base + i}" for i, name in enumerate(SERVICES)}

    def _cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shoal.cli", *args, "--state-dir", str(self.state)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def up(self) -> None:
        done = self._cli(
            "up",
            "--store-url", self.store.resolve().as_uri(),
            "--base-port", str(self.base),
            "--metrics-base-port", str(self.metrics_base),
            "--redis-port", str(self.redis_port),
            "--log-level", "WARNING",
            "--timeout", "120",
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"shoal up failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def down(self) -> None:
        done = self._cli("down", "--timeout", "60")
        if done.returncode != 0:
            raise RuntimeError(f"shoal down failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        # Every process of the suite names the working directory: the supervisor and redis-server on their command
        # lines, the services (and ingest's worker processes) in SHOAL_STORE_URL.
        left = _our_processes(str(self.work))
        for _ in range(50):
            if not left:
                break
            time.sleep(0.2)
            left = _our_processes(str(self.work))
        if left:
            raise RuntimeError("processes outlived `shoal down`:\n" + "\n".join(left))


def _committed(client: Client, report: Any, frames: int) -> None:
    upload = client.wait_for_upload(report.name, timeout=120)
    errors = client.list_upload_errors(report.name)
    if upload.state != upload_pb2.UPLOAD_STATE_COMMITTED or errors or upload.frames_committed != frames:
        raise RuntimeError(f"{report.name} did not commit {frames} frames: {upload}\n{errors}")
    print(f"  {report.name}: {upload_pb2.UploadState.Name(upload.state)}, versions {list(upload.versions)}")


def fill(client: Client) -> None:
    """The whole history of the fixture, one committed upload at a time."""
    client.create_project(PROJECT, class_map(), display_name="Fleet", description="old-layout fixture")
    client.create_dataset(
        PROJECT,
        DRIVE,
        embedding_dim=DIM,
        embedding_source=EMBEDDER,
        embedding_distance_metric="cosine",
        metadata_schema=SCHEMA,
        display_name="Drive",
    )
    # v1, v2: ADDs.
    for version, ids in ((1, range(0, 24)), (2, range(24, FRAME_COUNT))):
        batch = LabeledDataset()
        for i in ids:
            batch.add_frame(drive_frame(i))
        report = client.create_or_update_dataset(PROJECT, DRIVE, dataset=batch, upload_id=f"v{version}-add")
        _committed(client, report, len(ids))
    client.create_checkpoint(PROJECT, DRIVE, CHECKPOINT, version=2, description="all 40 frames as first labelled")
    # v3: MODIFY metadata.
    report = client.update_dataset_frames(PROJECT, DRIVE, [modified_frame(f) for f in MODIFIED], upload_id="v3-modify")
    _committed(client, report, len(MODIFIED))
    # v4: label updates.
    report = client.update_dataset_labels(
        PROJECT, DRIVE, [label_update(f) for f in LABEL_UPDATED], upload_id="v4-labels"
    )
    _committed(client, report, len(LABEL_UPDATED))
    # v5: DELETEs.
    batch = LabeledDataset()
    for fid in DELETED:
        batch.delete_frame(fid)
    report = client.create_or_update_dataset(PROJECT, DRIVE, dataset=batch, upload_id="v5-delete")
    _committed(client, report, len(DELETED))
    # v6: a deleted frame id added again, with new content.
    report = client.update_dataset_frames(
        PROJECT, DRIVE, [drive_frame(int(READDED[1:]), variant=1)], upload_id="v6-readd"
    )
    _committed(client, report, 1)
    # The inference set, pinned to v3 explicitly, in two uploads (two inference-set versions).
    client.create_inferences_set(PROJECT, DRIVE, INFERENCE_SET, model_id="detector-v1", dataset_version=PINNED_VERSION)
    first = Inferences()
    for i in range(0, 12):
        first.add_frame(inference_frame(i))
    report = client.create_or_update_inferences(PROJECT, DRIVE, INFERENCE_SET, inferences=first, upload_id="inf-1")
    _committed(client, report, 12)
    second = Inferences()
    for i in [0, *range(12, 20)]:  # f000 predicted again: replaced in the second version
        second.add_frame(inference_frame(i, second=True))
    report = client.create_or_update_inferences(PROJECT, DRIVE, INFERENCE_SET, inferences=second, upload_id="inf-2")
    _committed(client, report, 9)
    # The second dataset: no embeddings, no schema, one version.
    client.create_dataset(PROJECT, PARKING, display_name="Parking")
    batch = LabeledDataset()
    for i in range(8):
        batch.add_frame(parking_frame(i))
    report = client.create_or_update_dataset(PROJECT, PARKING, dataset=batch, upload_id="p1-add")
    _committed(client, report, 8)


# ---- reading it back ---------------------------------------------------------------------------------------------


def _b64(message: Any) -> str:
    return base64.b64encode(message.SerializeToString(deterministic=True)).decode()


def _dict(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _frames(messages: Any) -> dict[str, str]:
    return {m.frame_id: _b64(m) for m in messages}


def _revision(rev: Any) -> dict[str, Any]:
    return {
        "version": rev.version,
        "change_type": frame_pb2.ChangeType.Name(rev.change_type),
        "upload": rev.upload,
        "commit_time": rev.commit_time.ToJsonString(),
        "frame": _b64(rev.frame) if rev.HasField("frame") else None,
    }


def rpc_view(client: Client) -> dict[str, Any]:
    """What the running suite answers, for comparison with the direct reads."""
    out: dict[str, Any] = {}
    for dataset in (DRIVE, PARKING):
        versions = client.list_versions(PROJECT, dataset)
        view: dict[str, Any] = {
            "versions": [_b64(v) for v in sorted(versions, key=lambda v: v.version)],
            "frames": {
                str(v.version): _frames(client.get_frames(PROJECT, dataset, version=v.version)) for v in versions
            },
            "checkpoints": {},
            "history": {},
        }
        for cp in client.list_checkpoints(PROJECT, dataset):
            cid = cp.name.rsplit("/", 1)[1]
            view["checkpoints"][cid] = {
                "checkpoint": _b64(cp),
                "frames": _frames(client.get_frames(PROJECT, dataset, checkpoint=cid)),
            }
        if dataset == DRIVE:
            for fid in HISTORY_FRAMES:
                view["history"][fid] = [_revision(r) for r in client.get_frame_history(PROJECT, dataset, fid)]
            pairs = list(client.get_inference_frames(PROJECT, dataset, INFERENCE_SET))
            view["inference_latest"] = {p.inference.frame_id: _b64(p.inference) for p in pairs}
            view["inference_truth"] = {p.inference.frame_id: _b64(p.ground_truth) for p in pairs}
        out[dataset] = view
    return out


def _record(record: Any) -> dict[str, Any]:
    return {
        "version": record.version,
        "table_version": record.table_version,
        "commit_time": record.commit_time.astimezone(UTC).isoformat(),
        "uploads": list(record.uploads),
        "batches": list(record.batches),
        "frames_added": record.frames_added,
        "frames_modified": record.frames_modified,
        "frames_deleted": record.frames_deleted,
        "frame_count": record.frame_count,
        "label_count": record.label_count,
    }


def _all_frames(reads: Reads, ref: str) -> list[frame_pb2.Frame]:
    frames: list[frame_pb2.Frame] = []
    token = ""
    while True:
        page, token, _ = reads.list_frames(ref, 1000, token, None, "")
        frames.extend(page)
        if not token:
            return frames


def _all_history(reads: Reads, name: str) -> list[Any]:
    revisions: list[Any] = []
    token = ""
    while True:
        page, token = reads.history(name, 1000, token)
        revisions.extend(page)
        if not token:
            return revisions


def direct_view(store_dir: Path) -> dict[str, Any]:
    """Everything the store holds, read with `shoal.storage` on the directory (no services, no Redis)."""
    settings = StoreSettings(url=store_dir.resolve().as_uri())
    reads = Reads(open_store(settings), settings)
    catalog = reads.catalog
    project = catalog.get_project(ProjectName(PROJECT))
    datasets: dict[str, Any] = {}
    for dataset_proto in catalog.list_datasets(ProjectName(PROJECT), 1000, "")[0]:
        name = DatasetName(PROJECT, dataset_proto.name.rsplit("/", 1)[1])
        tables = reads.root.tables(name)
        protos = {v.version: v for v in reads.list_versions(name, 1000, "")[0]}
        versions = []
        for record in tables.versions():
            entry = _record(record)
            entry["checkpoints"] = list(protos[record.version].checkpoints)
            entry["expired"] = protos[record.version].expired
            entry["proto"] = _b64(protos[record.version])
            versions.append(entry)
        frames = {
            str(r.version): _frames(_all_frames(reads, f"{name}/versions/{r.version}")) for r in tables.versions()
        }
        checkpoints = {}
        for cp in reads.list_checkpoints(name):
            cid = cp.name.rsplit("/", 1)[1]
            checkpoints[cid] = {
                "name": cp.name,
                "version": cp.version,
                "description": cp.description,
                "create_time": cp.create_time.ToJsonString(),
                "lance_tag": cid in (tables._open(tables.frames_uri).tags.list() or {}),
                "proto": _b64(cp),
                "frames": _frames(_all_frames(reads, f"{name}/checkpoints/{cid}")),
            }
        history = {}
        if name.dataset == DRIVE:
            for fid in HISTORY_FRAMES:
                history[fid] = [_revision(r) for r in _all_history(reads, f"{name}/frames/{fid}")]
        inference_sets = {}
        for inference in catalog.list_inference_sets(name, 1000, "")[0]:
            iname = InferenceSetName(PROJECT, name.dataset, inference.name.rsplit("/", 1)[1])
            itables = reads.root.tables(iname)
            inference_sets[iname.inference_set] = {
                "name": str(iname),
                "catalog": _dict(inference),
                "dataset_version": inference.dataset_version,
                "model_id": inference.model_id,
                "versions": [_record(r) for r in itables.versions()],
                "frames": {
                    str(r.version): {
                        fid: _b64(frame_pb2.InferenceFrame.FromString(raw)) for fid, raw in itables.scan(r.version)
                    }
                    for r in itables.versions()
                },
            }
        datasets[name.dataset] = {
            "name": str(name),
            "catalog": _dict(dataset_proto),
            "latest_version": dataset_proto.latest_version,
            "versions": versions,
            "frames": frames,
            "checkpoints": checkpoints,
            "history": history,
            "inference_sets": inference_sets,
        }
    return {"projects": {PROJECT: {"name": str(ProjectName(PROJECT)), "catalog": _dict(project), "datasets": datasets}}}


def _check(ok: bool, what: str) -> None:
    """A failed check stops the script (plain `assert` would vanish under `python -O`)."""
    if not ok:
        raise SystemExit(f"check failed: {what}")


def compare(rpc: dict[str, Any], direct: dict[str, Any]) -> None:
    """The running services and the direct reads must agree on every frame, version, checkpoint and revision."""
    datasets = direct["projects"][PROJECT]["datasets"]
    for dataset, view in rpc.items():
        got = datasets[dataset]
        _check(view["versions"] == [v["proto"] for v in got["versions"]], f"{dataset}: versions differ")
        _check(view["frames"] == got["frames"], f"{dataset}: frames differ")
        _check(
            {k: v["frames"] for k, v in view["checkpoints"].items()}
            == {k: v["frames"] for k, v in got["checkpoints"].items()},
            f"{dataset}: checkpoint frames differ",
        )
        _check(
            {k: v["checkpoint"] for k, v in view["checkpoints"].items()}
            == {k: v["proto"] for k, v in got["checkpoints"].items()},
            f"{dataset}: checkpoints differ",
        )
        _check(view["history"] == got["history"], f"{dataset}: history differs")
        if dataset == DRIVE:
            inference = got["inference_sets"][INFERENCE_SET]
            newest = str(inference["versions"][-1]["version"])
            _check(view["inference_latest"] == inference["frames"][newest], "inference frames differ")
            pinned = got["frames"][str(inference["dataset_version"])]
            _check(view["inference_truth"] == {f: pinned[f] for f in view["inference_truth"]}, "ground truth differs")


def sanity(direct: dict[str, Any]) -> None:
    """The store holds what it is documented to hold."""
    drive = direct["projects"][PROJECT]["datasets"][DRIVE]
    parking = direct["projects"][PROJECT]["datasets"][PARKING]
    counts = [
        (v["version"], v["frames_added"], v["frames_modified"], v["frames_deleted"], v["frame_count"])
        for v in drive["versions"]
    ]
    want = [
        (1, 24, 0, 0, 24),
        (2, 16, 0, 0, 40),
        (3, 0, 5, 0, 40),
        (4, 0, 2, 0, 40),
        (5, 0, 0, 3, 37),
        (6, 1, 0, 0, 38),
    ]
    _check(counts == want, f"drive versions (version, added, modified, deleted, frames): {counts}")
    _check(drive["latest_version"] == 6, "drive's latest version")
    _check(drive["checkpoints"][CHECKPOINT]["version"] == 2, "the checkpoint's version")
    _check(drive["checkpoints"][CHECKPOINT]["frames"] == drive["frames"]["2"], "the checkpoint's frames")
    inference = drive["inference_sets"][INFERENCE_SET]
    _check(inference["dataset_version"] == PINNED_VERSION, "the inference set's pin")
    _check([len(f) for f in inference["frames"].values()] == [12, 20], "inference frames per version")
    _check(inference["frames"]["1"]["f000"] != inference["frames"]["2"]["f000"], "f000 predicted again")
    _check([v["frame_count"] for v in parking["versions"]] == [8], "parking's one version")
    _check(not parking["inference_sets"], "parking has no inference set")
    _check(not parking["checkpoints"], "parking has no checkpoint")
    readded = [r["change_type"] for r in drive["history"][READDED]]
    _check(readded == ["CHANGE_TYPE_ADD", "CHANGE_TYPE_DELETE", "CHANGE_TYPE_ADD"], f"{READDED} history: {readded}")
    _check([r["version"] for r in drive["history"]["f002"]] == [1, 3, 4], "f002 history")


# ---- the files ---------------------------------------------------------------------------------------------------


def _tar_filter(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if "/.shoal-tmp" in info.name or info.name.endswith(".shoal-tmp"):
        return None  # the local store's scratch directory: recreated on open
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_tarball(store: Path, path: Path) -> None:
    with tarfile.open(path, "w:gz", compresslevel=9) as tar:
        tar.add(store, arcname="store", filter=_tar_filter)


def _release() -> dict[str, str]:
    source = Path(shoal.__file__).resolve().parent
    commit = subprocess.run(
        ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return {"commit": commit, "shoal_version": shoal.__version__}


def write(out: Path, keep: bool, allow_other_commit: bool) -> None:
    release = _release()
    print(f"shoal from {Path(shoal.__file__).parent} at {release['commit']}")
    if not release["commit"].startswith(RELEASE_COMMIT) and not allow_other_commit:
        raise SystemExit(f"the code on the path is {release['commit']}, not {RELEASE_COMMIT}; see the module docstring")
    work = Path(tempfile.mkdtemp(prefix="shoal-old-layout-"))
    suite = Suite(work)
    try:
        suite.up()
        print(f"suite up: {suite.addresses}, redis :{suite.redis_port}, store {suite.store}")
        with Client(api_key=ADMIN_KEY, addresses=suite.addresses, show_progress=False, timeout=60) as client:
            fill(client)
            rpc = rpc_view(client)
    finally:
        suite.down()
    print("suite down, no processes left")
    direct = direct_view(suite.store)
    compare(rpc, direct)
    sanity(direct)
    out.mkdir(parents=True, exist_ok=True)
    write_tarball(suite.store, out / "store.tar.gz")
    expected = {
        "format": FORMAT,
        "written_by": release,
        "store_root": "store",
        "frame_encoding": "base64 of SerializeToString(deterministic=True) (Frame; InferenceFrame for inference sets)",
        **direct,
    }
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out / 'store.tar.gz'} and {out / 'expected.json'}")
    if keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work)
    verify(out)


def verify(folder: Path) -> None:
    expected = json.loads((folder / "expected.json").read_text())
    with tempfile.TemporaryDirectory(prefix="shoal-old-layout-verify-") as tmp:
        with tarfile.open(folder / "store.tar.gz") as tar:
            tar.extractall(tmp, filter="data")
        got = direct_view(Path(tmp) / expected["store_root"])
    want = {k: v for k, v in expected.items() if k == "projects"}
    if got != want:
        raise SystemExit("the extracted store does not read back as expected.json")
    sanity(got)
    print(f"verified: {folder / 'store.tar.gz'} reads back exactly as {folder / 'expected.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write store.tar.gz and expected.json here")
    parser.add_argument("--verify", type=Path, help="check the fixture in this folder against the code on the path")
    parser.add_argument("--keep", action="store_true", help="keep the suite's working directory")
    parser.add_argument("--allow-other-commit", action="store_true", help=f"run with code other than {RELEASE_COMMIT}")
    args = parser.parse_args()
    if bool(args.out) == bool(args.verify):
        parser.error("give exactly one of --out and --verify")
    if args.out:
        write(args.out, args.keep, args.allow_other_commit)
    else:
        verify(args.verify)


if __name__ == "__main__":
    main()
