"""Uploads left unclosed expire: a stream that was refused or broke leaves its upload to end after the idle timeout
(FAILED when nothing of it was committed), while an open stream, however quiet, keeps its upload RECEIVING."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis
import shoal
from shoal.ingest.server import build as build_ingest
from shoal.kit.settings import StoreSettings
from shoal.kit.status import unpack
from shoal.storage import queue
from shoal.v1 import ingest_service_pb2, upload_pb2
from shoal.versioning.server import build as build_versioning

from tests.conftest import ADMIN_KEY, ServerThread, unique, wait_until
from tests.integration.test_ingest import make_frame

pytestmark = pytest.mark.integration

AUTH = (("x-api-key", ADMIN_KEY),)
IDLE = 1.0


@dataclass
class Suite:
    client: shoal.Client
    redis: redis.Redis
    target: str


@pytest.fixture
def suite(start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str) -> Iterator[Suite]:
    store = StoreSettings(url=(tmp_path / "store").as_uri())
    # No worker, and a queue that is always full: every batch is refused.
    limits = {"ingest_upload_idle_seconds": IDLE, "ingest_max_queue_depth": 0}
    catalog = start_service("versioning", build_versioning, redis_url=redis_db, store=store, **limits)
    ingest = start_service("ingest", build_ingest, redis_url=redis_db, store=store, **limits)
    r = redis.Redis.from_url(redis_db)
    with shoal.Client(
        api_key=ADMIN_KEY, addresses={"versioning": catalog.target, "ingest": ingest.target}, show_progress=False
    ) as client:
        p = unique("p")
        client.create_project(p, shoal.LabelClassMap.from_classnames(["car", "person", "bike"]))
        client.create_dataset(p, "d")
        yield Suite(client, r, f"projects/{p}/datasets/d")
    r.close()


def start(target: str, upload_id: str) -> ingest_service_pb2.UploadFramesRequest:
    return ingest_service_pb2.UploadFramesRequest(
        start=ingest_service_pb2.UploadStart(target=target, upload_id=upload_id)
    )


def test_an_upload_whose_stream_was_refused_expires_to_failed(suite: Suite) -> None:
    batch = ingest_service_pb2.FrameBatch(seq=0, frames=[make_frame(1).to_proto()])
    requests = [start(suite.target, "refused"), ingest_service_pb2.UploadFramesRequest(batch=batch)]
    with pytest.raises(grpc.RpcError) as info:
        list(suite.client.ingest.UploadFrames(iter(requests), metadata=AUTH, timeout=30))
    assert unpack(info.value).reason == "QUEUE_FULL"
    name = f"{suite.target}/uploads/refused"
    wait_until(lambda: suite.client.get_upload(name).state != upload_pb2.UPLOAD_STATE_RECEIVING, timeout=30)
    upload = suite.client.get_upload(name)
    assert upload.state == upload_pb2.UPLOAD_STATE_FAILED
    assert upload.frames_committed == 0
    listed = suite.client.ingest.ListUploads(ingest_service_pb2.ListUploadsRequest(parent=suite.target), metadata=AUTH)
    assert [(u.name, u.state) for u in listed.uploads] == [(name, upload_pb2.UPLOAD_STATE_FAILED)]
    # Resuming it makes it an upload in progress again.
    resumed = suite.client.ingest.UploadFrames(iter([start(suite.target, "refused")]), metadata=AUTH, timeout=30)
    assert next(resumed).upload.state == upload_pb2.UPLOAD_STATE_RECEIVING


def test_an_open_stream_keeps_its_upload_receiving_past_the_idle_timeout(suite: Suite) -> None:
    done = threading.Event()

    def requests() -> Iterator[ingest_service_pb2.UploadFramesRequest]:
        yield start(suite.target, "quiet")
        done.wait(60)

    replies = suite.client.ingest.UploadFrames(requests(), metadata=AUTH, timeout=60)
    opened = next(replies).upload
    key = queue.upload_key(opened.name)
    began = float(suite.redis.hget(key, "alive_time") or 0)
    try:
        # The stream sends nothing, yet its heartbeat marks the upload alive beyond the idle timeout.
        wait_until(lambda: float(suite.redis.hget(key, "alive_time") or 0) > began + 2 * IDLE, timeout=30)
        assert suite.client.get_upload(opened.name).state == upload_pb2.UPLOAD_STATE_RECEIVING
    finally:
        done.set()
    summary = [r.summary for r in replies if r.HasField("summary")]
    assert [s.state for s in summary] == [upload_pb2.UPLOAD_STATE_COMMITTED]
