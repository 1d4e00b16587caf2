"""A generator upload through the real ingest service (its own process, killed and started again) while it restarts
more times than the SDK's retry budget allows for one outage: each restart is a separate outage, the upload
completes, and every batch is queued exactly once."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import shoal
from shoal.kit.settings import StoreSettings
from shoal.storage import queue
from shoal.v1 import frame_pb2
from shoal.versioning.server import build as build_versioning

from tests.conftest import ADMIN_KEY, RedisProcess, ServerThread, free_port, unique, wait_until
from tests.integration.test_ingest import make_frame
from tests.integration.test_ingest_faults import IngestProcess

pytestmark = pytest.mark.integration

FRAMES = 3000
BATCH = 30
RESTARTS = 6


def test_generator_upload_rides_out_repeated_ingest_restarts(
    start_service: Callable[..., ServerThread], tmp_path: Path, redis_server: RedisProcess
) -> None:
    store = StoreSettings(url=(tmp_path / "store").as_uri())
    versioning = start_service("versioning", build_versioning, store=store)
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")} | {
        "SHOAL_ADMIN_API_KEY": ADMIN_KEY,
        "SHOAL_GRPC_PORT": str(port),
        "SHOAL_METRICS_PORT": str(free_port()),
        "SHOAL_REDIS_URL": redis_server.url,
        "SHOAL_STORE_URL": store.url,
        "SHOAL_LOG_LEVEL": "WARNING",
    }
    ingest = IngestProcess(port, environ, tmp_path / "ingest.log")
    ingest.start()
    # Each outage (a killed process started again, about a second) fits in 5 retries; six of them do not.
    client = shoal.Client(
        api_key=ADMIN_KEY,
        addresses={"versioning": versioning.target, "ingest": f"127.0.0.1:{port}"},
        batch_size=BATCH,
        window=4,
        max_retries=5,
        show_progress=False,
    )
    project = unique("p")
    client.create_project(project, shoal.LabelClassMap.from_classnames(["car", "person", "bike"]))
    client.create_dataset(project, "restarts")
    target = f"projects/{project}/datasets/restarts"
    name = f"{target}/uploads/restarts"
    r = redis.Redis.from_url(redis_server.url)

    def received() -> int:
        return int(r.hget(queue.upload_key(name), "batches_received") or 0)

    def frames() -> Iterator[frame_pb2.Frame]:
        for i in range(FRAMES):
            time.sleep(0.0002)  # a source slower than the service, as real ones are
            yield make_frame(i).to_proto()

    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["report"] = client.upload(target, frames(), upload_id="restarts", total=FRAMES)
        except Exception as err:
            result["error"] = err

    uploader = threading.Thread(target=run)
    restarted = 0
    try:
        uploader.start()
        for _ in range(RESTARTS):
            mark = received()
            wait_until(lambda mark=mark: received() >= mark + 10 or not uploader.is_alive(), timeout=60)
            if not uploader.is_alive():
                break
            ingest.kill()
            ingest.start()
            restarted += 1
        uploader.join(timeout=120)
        assert "error" not in result, result.get("error")
        report = result["report"]
        assert isinstance(report, shoal.UploadReport)
        assert restarted == RESTARTS > client.max_retries
        assert report.retries >= RESTARTS
        assert (report.batches, report.accepted) == (FRAMES // BATCH, FRAMES)
        assert client.get_upload(name).frames_accepted == FRAMES
        partition = queue.partition_of(target, 4)
        entries = [e for _, e in r.xrange(queue.stream_key(partition)) if e[b"upload"].decode() == name]
        assert sorted(int(e[b"seq"]) for e in entries) == list(range(FRAMES // BATCH)), "a batch queued twice or lost"
    finally:
        uploader.join(timeout=30)
        ingest.stop()
        client.close()
        r.close()
