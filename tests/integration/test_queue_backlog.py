"""The ingest queue's backlog on a real, restarted Redis: streams hold only what is still to do (acknowledged entries
are trimmed), and the backlog is measured from the consumer group, when admitting a batch and when scraped, so
neither a Redis restart nor a drained queue leaves a stale figure."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import redis
from prometheus_client import REGISTRY
from shoal.kit import redisconn
from shoal.kit.settings import StoreSettings
from shoal.storage import queue
from shoal.v1 import ingest_service_pb2, upload_pb2
from shoal.versioning.server import build as build_versioning

from tests.conftest import ADMIN_KEY, RedisProcess, ServerThread, wait_until
from tests.integration.test_ingest import make_frame
from tests.integration.test_ingest_faults import queued_upload

pytestmark = pytest.mark.integration

STREAM = queue.stream_key(0)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A Redis of this test's own, so it can be restarted."""
    (tmp_path / "redis").mkdir()
    server = RedisProcess(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def test_backlog_and_trimming_follow_the_consumer_group_across_a_restart(own_redis: RedisProcess) -> None:
    async def go() -> None:
        r = redisconn.connect(own_redis.url)
        try:
            assert await queue.backlog(r, STREAM) == 0  # no stream yet
            await r.xgroup_create(STREAM, queue.CONSUMER_GROUP, id="0", mkstream=True)
            ids = [await r.xadd(STREAM, {"seq": i}) for i in range(6)]
            await r.xreadgroup(queue.CONSUMER_GROUP, "p0", {STREAM: ">"}, count=4)
            await r.xack(STREAM, queue.CONSUMER_GROUP, ids[0], ids[2])
            # Entries 1 and 3 are pending, 4 and 5 not yet delivered.
            assert await queue.backlog(r, STREAM) == 4
            # Only what lies before the oldest pending entry goes; the acknowledged entry 2 waits behind entry 1.
            assert await queue.trim_acknowledged(r, STREAM) == 1
            assert [e[0] for e in await r.xrange(STREAM)] == ids[1:]
        finally:
            await r.aclose()
        own_redis.stop()
        own_redis.start()
        r = redisconn.connect(own_redis.url)
        try:
            # The restart lost the group's read counter: Redis cannot tell the lag, the undelivered entries are counted.
            (group,) = await r.xinfo_groups(STREAM)
            assert group["lag"] is None
            assert await queue.backlog(r, STREAM) == 4
            assert await queue.backlog(r, STREAM, cap=1) == 3  # counted up to the cap
            await r.xack(STREAM, queue.CONSUMER_GROUP, ids[1], ids[3])
            await r.xreadgroup(queue.CONSUMER_GROUP, "p0", {STREAM: ">"}, count=10)
            await r.xack(STREAM, queue.CONSUMER_GROUP, ids[4], ids[5])
            assert await queue.backlog(r, STREAM) == 0
            assert await queue.trim_acknowledged(r, STREAM) == 5
            assert await r.xlen(STREAM) == 0
            assert await queue.trim_acknowledged(r, STREAM) == 0
        finally:
            await r.aclose()

    asyncio.run(go())


def depth_gauge() -> float | None:
    return REGISTRY.get_sample_value("shoal_ingest_queue_depth_batches", {"partition": "0"})


def test_a_drained_queue_reads_empty_and_a_redis_restart_reports_no_false_queue_full(
    start_service: Callable[..., ServerThread], tmp_path: Path, own_redis: RedisProcess
) -> None:
    store = StoreSettings(url=(tmp_path / "store").as_uri())
    limits = {"ingest_partitions": 1, "ingest_max_queue_depth": 3}
    r = redis.Redis.from_url(own_redis.url)
    with queued_upload(start_service, store, own_redis.url, 3, batch_size=1, **limits) as queued:
        client, target = queued.client, queued.target
        # Three batches wait for a worker: the gauge says so when scraped, not what the last upload measured before.
        assert depth_gauge() == 3
        start_service("versioning", build_versioning, redis_url=own_redis.url, store=store, run_worker=True, **limits)
        upload = client.wait_for_upload(queued.upload, timeout=60, poll_seconds=0.05)
        assert upload.state == upload_pb2.UPLOAD_STATE_COMMITTED
        wait_until(lambda: depth_gauge() == 0)
        wait_until(lambda: r.xlen(STREAM) == 0)  # acknowledged entries are trimmed

        own_redis.stop()
        own_redis.start()
        # The restart forgets how far the group read; three batches ever queued must not read as a full queue.
        stub = client.ingest
        start = ingest_service_pb2.UploadFramesRequest(start=ingest_service_pb2.UploadStart(target=target))

        def send() -> list[ingest_service_pb2.UploadFramesResponse]:
            batches = [
                ingest_service_pb2.UploadFramesRequest(
                    batch=ingest_service_pb2.FrameBatch(seq=s, frames=[make_frame(10 + s).to_proto()])
                )
                for s in range(2)
            ]
            return list(stub.UploadFrames(iter([start, *batches]), metadata=(("x-api-key", ADMIN_KEY),), timeout=30))

        replies: list[ingest_service_pb2.UploadFramesResponse] = []

        def sent() -> bool:
            try:
                replies.extend(send())
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE:  # calls racing the reconnection may find Redis down
                    raise
                return False
            return True

        wait_until(sent)
        assert [reply.ack.accepted for reply in replies if reply.HasField("ack")] == [1, 1]
        done = client.wait_for_upload(replies[-1].summary.name, timeout=60, poll_seconds=0.05)
        assert done.state == upload_pb2.UPLOAD_STATE_COMMITTED
        wait_until(lambda: depth_gauge() == 0)
        wait_until(lambda: r.xlen(STREAM) == 0)
    r.close()
