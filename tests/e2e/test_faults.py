"""One upload through every fault the suite is built to survive, as an operator meets them: the suite runs as
`shoal up` runs it (its own processes, an embedded Redis, an S3 server), and while a client streams frames in, each
service process is killed with SIGKILL in turn, then Redis, then the object store stops answering for 30 s.

The client finishes on its own (no manual resume); every frame it sent is committed exactly once; readiness went
NOT_SERVING while the store was paused and SERVING after; the upload lists every version it made.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import shoal
from shoal.kit.objectstore import open_store
from shoal.runner import health
from shoal.v1 import frame_pb2, upload_pb2

from tests.conftest import S3Server, moto_server, unique, wait_until
from tests.e2e.test_suite import Suite
from tests.e2e.test_suite import suite as suite  # noqa: PLC0414 - the fixture, re-exported for this module
from tests.integration.test_ingest import make_frame

pytestmark = pytest.mark.e2e

FULL_NAMES = {
    "ingest": "shoal.v1.IngestService",
    "versioning": "shoal.v1.VersioningService",
    "asset": "shoal.v1.AssetService",
    "metrics": "shoal.v1.MetricsService",
    "embedding": "shoal.v1.EmbeddingService",
}
STORE_PAUSE_SECONDS = 30.0


@pytest.fixture
def paused_s3() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """An S3 server of this test's own (it gets paused)."""
    with moto_server() as (server, proc):
        yield server.endpoint, proc


class Faults:
    """Injects the faults one after another, recording what readiness said meanwhile."""

    def __init__(self, suite: Suite, moto: subprocess.Popen[bytes]) -> None:
        self.suite = suite
        self.moto = moto
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.during_pause: set[str] = set()
        self.after_pause: set[str] = set()
        self.log: list[str] = []

    def pids(self) -> dict[str, int]:
        return {k: int(v) for k, v in json.loads((self.suite.state / "pids.json").read_text()).items()}

    def readiness(self, name: str) -> str:
        port = self.suite.config.services[name].grpc_port
        return health.check("127.0.0.1", port, FULL_NAMES[name])

    def all_serving(self) -> bool:
        return all(self.readiness(name) == "SERVING" for name in FULL_NAMES)

    def kill(self, name: str) -> None:
        before = self.pids()[name]
        os.kill(before, signal.SIGKILL)
        self.log.append(f"killed {name} ({before})")
        wait_until(lambda: self.pids().get(name) not in (None, before), timeout=120, interval=0.2)
        wait_until(self.all_serving, timeout=120, interval=0.2)

    def run(self, started: threading.Event) -> None:
        try:
            started.wait(120)
            for name in ("ingest", "versioning", "asset", "metrics", "embedding", "redis"):
                self.kill(name)
            self.moto.send_signal(signal.SIGSTOP)
            self.log.append("store paused")
            paused_at = time.monotonic()
            while time.monotonic() - paused_at < STORE_PAUSE_SECONDS:
                self.during_pause.add(self.readiness("versioning"))
                time.sleep(0.5)
            self.moto.send_signal(signal.SIGCONT)
            self.log.append("store resumed")
            wait_until(self.all_serving, timeout=120, interval=0.2)
            self.after_pause.add(self.readiness("versioning"))
        except BaseException as err:  # reported by the test thread
            self.error = err
        finally:
            self.moto.send_signal(signal.SIGCONT)
            self.done.set()


def test_one_upload_survives_every_fault(
    suite: Suite, paused_s3: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    endpoint, moto = paused_s3
    bucket = unique("faults")
    # The bucket is made first, with the default timeout: a fresh S3 server's first answers can take longer than the
    # 3 s the suite is given below while the machine runs other tests, and that is not a fault under test.
    open_store(S3Server(endpoint, "shoal-faults", "shoal-faults-secret").store_settings(bucket))
    suite.env |= {
        "SHOAL_S3_ACCESS_KEY": "shoal-faults",
        "SHOAL_S3_SECRET_KEY": "shoal-faults-secret",
        "SHOAL_S3_TIMEOUT_SECONDS": "3",
    }
    up = suite.up("--store-url", f"s3://{bucket}", "--s3-endpoint", endpoint)
    assert up.returncode == 0, up.stderr + up.stdout
    key = (suite.state / "admin_api_key").read_text().strip()
    addresses = {name: f"127.0.0.1:{ports.grpc_port}" for name, ports in suite.config.services.items()}
    faults = Faults(suite, moto)
    started = threading.Event()
    sent: list[str] = []

    def frames() -> Iterator[frame_pb2.Frame]:
        """Frames until the faults are over (and a last stretch after), at a pace that spreads them over it."""
        i, stop_at = 0, -1
        while stop_at < 0 or i < stop_at:
            if stop_at < 0 and faults.done.is_set():
                stop_at = i + 400
            frame = make_frame(i).to_proto()
            sent.append(frame.frame_id)
            yield frame
            i += 1
            if i == 2000:
                started.set()
            if i % 100 == 0:
                time.sleep(0.05)

    injector = threading.Thread(target=faults.run, args=(started,), daemon=True)
    injector.start()
    with shoal.Client(api_key=key, addresses=addresses, show_progress=False, batch_size=200, timeout=30) as client:
        client.create_project("faults", shoal.LabelClassMap.from_classnames(["car", "person", "bike"]))
        schema = [{"name": "weather", "type": "STRING"}, {"name": "speed", "type": "FLOAT"}]
        client.create_dataset("faults", "d", embedding_dim=8, metadata_schema=schema)
        report = client.upload("projects/faults/datasets/d", frames())
        injector.join(timeout=600)
        assert faults.error is None, (faults.log, faults.error)
        assert report.accepted == len(sent)
        assert not report.rejected

        upload = client.wait_for_upload(report.name, timeout=600)
        assert upload.state == upload_pb2.UPLOAD_STATE_COMMITTED, upload
        committed = [f.frame_id for f in client.get_frames("faults", "d", fields=["frame_id"])]
        assert len(committed) == len(set(committed)) == len(sent)
        assert set(committed) == set(sent)
        versions = client.list_versions("faults", "d")
        assert sum(v.frames_added for v in versions) == len(sent)  # each frame added once, by one version
        assert sum(v.frames_modified for v in versions) == 0  # and never applied again
        assert sorted(upload.versions) == sorted(v.version for v in versions)

    assert "NOT_SERVING" in faults.during_pause, faults.during_pause
    assert faults.after_pause == {"SERVING"}
    supervisor_log = (suite.state / "logs" / "supervisor.log").read_text()
    for name in FULL_NAMES:
        assert f"{name} exited with -9" in supervisor_log
    (tmp_path / "faults.log").write_text("\n".join(faults.log))
