"""Faults on the consumer side: the versioning worker killed at random points, and two workers on one stream."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import shoal
from shoal.kit.names import DatasetName
from shoal.kit.settings import StoreSettings
from shoal.runner import health
from shoal.storage.tables import TableRoot
from shoal.v1 import frame_pb2, upload_pb2

from tests.conftest import ADMIN_KEY, free_port, unique, wait_until

pytestmark = pytest.mark.integration


class Service:
    """A service as its own process, as `shoal up` runs it, so it can be killed."""

    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name, self.env, self.log = name, env, log
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start on ports found free just now. A port found free can be taken by another socket before the service
        binds it; a start that dies of that is tried again on other ports, and any other failure says why. The
        service counts as started once its own log says it serves on the port (another server that took the port
        would answer health checks too) and the port answers SERVING."""
        for _ in range(3):
            self.port = free_port()
            env = self.env | {
                "SHOAL_GRPC_PORT": str(self.port),
                "SHOAL_METRICS_PORT": str(free_port()),
                "SHOAL_LOG_LEVEL": "INFO",  # for the "serving" line
            }
            with self.log.open("ab") as out:
                start = out.tell()
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", f"shoal.{self.name}"], env=env, stdout=out, stderr=subprocess.STDOUT
                )
            proc = self.proc
            try:
                wait_until(partial(self._started, proc, start), timeout=60)
            except TimeoutError:
                proc.kill()
                proc.wait()
                raise AssertionError(f"{self.name} not serving within 60 s:\n{self._log_from(start)}") from None
            if proc.poll() is None:
                return
            output = self._log_from(start)
            if "address already in use" not in output.lower() and "cannot bind" not in output.lower():
                raise AssertionError(f"{self.name} exited with {proc.returncode} on start:\n{output}")
        raise AssertionError(f"{self.name} could not bind free ports three times")

    def _started(self, proc: subprocess.Popen[bytes], offset: int) -> bool:
        """Serving on our port by its own account, or gone."""
        if proc.poll() is not None:
            return True
        serving = any(
            entry.get("message") == "serving" and entry.get("grpc_port") == self.port
            for entry in _json_lines(self._log_from(offset, tail=None))
        )
        return serving and health.check("127.0.0.1", self.port) == "SERVING"

    def _log_from(self, offset: int, tail: int | None = 4000) -> str:
        with self.log.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        return text if tail is None else text[-tail:]

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def _json_lines(text: str) -> Iterator[dict[str, object]]:
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                yield entry


def _upload_after(client: shoal.Client, upload: str, batches: int, timeout: float) -> upload_pb2.Upload | None:
    """The upload once it has committed `batches` batches or is no longer processing; None if neither came within
    `timeout` seconds."""
    seen: list[upload_pb2.Upload] = []

    def progressed() -> bool:
        seen.append(client.get_upload(upload))
        return seen[-1].batches_committed >= batches or seen[-1].state != upload_pb2.UPLOAD_STATE_PROCESSING

    try:
        wait_until(progressed, timeout=timeout, interval=0.02)
    except TimeoutError:
        return None
    return seen[-1]


@pytest.fixture
def env(tmp_path: Path, redis_db: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")} | {
        "SHOAL_ADMIN_API_KEY": ADMIN_KEY,
        "SHOAL_REDIS_URL": redis_db,
        "SHOAL_STORE_URL": (tmp_path / "store").as_uri(),
        "SHOAL_LOG_LEVEL": "WARNING",
        "SHOAL_WORKER_LEASE_SECONDS": "1.5",
    }


@pytest.mark.parametrize(("total", "batch_size", "kills"), [(6_000, 100, 8), (100_000, 1_000, 20)])
def test_killed_worker_commits_every_frame_exactly_once(
    env: dict[str, str], tmp_path: Path, total: int, batch_size: int, kills: int
) -> None:
    ingest = Service("ingest", env, tmp_path / "ingest.log")
    catalog = Service("versioning", env | {"SHOAL_VERSIONING_WORKER": "false"}, tmp_path / "catalog.log")
    # The worker reads few claim checks at a time and gathers no more, so the batches make many commits to be killed
    # among.
    read_count = "1" if total <= 10_000 else "2"
    versioning = Service(
        "versioning",
        env | {"SHOAL_WORKER_READ_COUNT": read_count, "SHOAL_WORKER_GATHER_SECONDS": "0"},
        tmp_path / "versioning.log",
    )
    ingest.start()
    catalog.start()
    rng = random.Random(total)
    batches = total // batch_size
    try:
        with shoal.Client(
            api_key=ADMIN_KEY,
            addresses={"ingest": ingest.target, "versioning": catalog.target},
            batch_size=batch_size,
            show_progress=False,
        ) as client:
            p = unique("p")
            client.create_project(p, shoal.LabelClassMap.from_classnames(["car"]))
            client.create_dataset(p, "d")
            frames = []
            for i in range(total):
                f = shoal.LabeledFrame(frame_id=f"f{i:06d}")
                f.add_image(sensor_id="cam", image_url=f"s3://b/{i}.jpg")
                f.add_label_2d_bbox(
                    sensor_id="cam", label_id=f"l{i}", classification="car", top=0, left=0, width=5, height=5
                )
                frames.append(f.to_proto())
            report = client.upload(f"projects/{p}/datasets/d", frames)
            assert report.accepted == total
            # Kills are placed by progress, not by the clock: each waits until the worker has committed a random
            # number of batches within the first three quarters, then for a random moment before its next commit,
            # so every kill lands mid-upload, anywhere in the worker's cycle, however fast the machine.
            marks = sorted(rng.sample(range(1, (3 * batches) // 4), kills))
            versioning.start()
            for killed, mark in enumerate(marks):
                upload = _upload_after(client, report.name, mark, timeout=300)
                if upload is None:
                    pytest.fail(f"the worker never committed {mark} batches after {killed} kills")
                assert upload.state == upload_pb2.UPLOAD_STATE_PROCESSING, (
                    f"the upload finished after {killed} kills, before {kills}"
                )
                _upload_after(client, report.name, upload.batches_committed + 1, timeout=rng.uniform(0.0, 0.6))
                versioning.kill()
                # Nothing commits while the worker is dead: an unfinished upload now means the kill was mid-upload.
                assert client.get_upload(report.name).state == upload_pb2.UPLOAD_STATE_PROCESSING, (
                    f"kill {killed + 1} came after the upload finished"
                )
                versioning.start()
            upload = client.wait_for_upload(report.name, timeout=600, poll_seconds=0.2)
            assert upload.state == upload_pb2.UPLOAD_STATE_COMMITTED
            assert (upload.frames_committed, upload.frames_failed, upload.batches_committed) == (total, 0, batches)
            versions = client.list_versions(p, "d")
            assert versions[0].frame_count == total
            assert sum(v.frames_added for v in versions) == total
            assert sum(v.frames_modified for v in versions) == 0
            tables = TableRoot(StoreSettings(url=env["SHOAL_STORE_URL"])).tables(DatasetName(p, "d"))
            records = tables.versions()
            committed = [b for r in records for b in r.batches]
            assert len(committed) == len(set(committed)) == batches, "a batch was committed twice"
            added = 0
            for record in records:  # every version readable, each one a prefix of the upload
                added += record.frames_added
                ids = tables.frame_ids(record.version)
                assert ids == [f"f{i:06d}" for i in range(added)] == ids[: record.frame_count]
            for v in rng.sample(versions, 3):  # and through the API
                assert len(list(client.get_frames(p, "d", version=v.version, fields=["frame_id"]))) == v.frame_count
            middle = f"f{total // 2:06d}"
            assert [h.change_type for h in client.get_frame_history(p, "d", middle)] == [frame_pb2.CHANGE_TYPE_ADD]
    finally:
        versioning.stop()
        catalog.stop()
        ingest.stop()


def test_two_workers_share_partitions_without_double_or_out_of_order_commits(
    env: dict[str, str], tmp_path: Path
) -> None:
    ingest = Service("ingest", env, tmp_path / "ingest.log")
    workers = [Service("versioning", env, tmp_path / f"versioning-{i}.log") for i in range(2)]
    ingest.start()
    for w in workers:
        w.start()
    try:
        with shoal.Client(
            api_key=ADMIN_KEY,
            addresses={"ingest": ingest.target, "versioning": workers[0].target},
            batch_size=20,
            show_progress=False,
        ) as client:
            p = unique("p")
            client.create_project(p, shoal.LabelClassMap.from_classnames(["car"]))
            datasets = [f"d{i}" for i in range(6)]
            for d in datasets:
                client.create_dataset(p, d)

            def upload(d: str) -> None:
                # Each of the 10 batches rewrites the same 20 frames: only in-order application ends on batch 9.
                items = []
                for rnd in range(10):
                    for i in range(20):
                        f = shoal.LabeledFrame(frame_id=f"f{i}")
                        f.add_user_metadata("round", rnd)
                        items.append(f.to_proto())
                report = client.upload(f"projects/{p}/datasets/{d}", items)
                client.wait_for_upload(report.name, timeout=120, poll_seconds=0.1)

            threads = [threading.Thread(target=upload, args=(d,)) for d in datasets]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=180)
            root = TableRoot(StoreSettings(url=env["SHOAL_STORE_URL"]))
            for d in datasets:
                frames = list(client.get_frames(p, d))
                assert {f.user_metadata["round"].int_value for f in frames} == {9}, d
                batches = [b for r in root.tables(DatasetName(p, d)).versions() for b in r.batches]
                assert len(batches) == len(set(batches)) == 10
                seqs = [int(b.rsplit("#", 1)[1]) for b in batches]
                assert seqs == sorted(seqs), f"{d} applied its batches out of order: {seqs}"
    finally:
        for w in workers:
            w.stop()
        ingest.stop()
