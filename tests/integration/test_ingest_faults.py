"""Faults on the ingest path: the ingest process killed mid-upload, a full queue, and a worker that dies between a
commit and the progress record."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import lance
import pytest
import redis
import shoal
from shoal.ingest.server import build as build_ingest
from shoal.kit import redisconn
from shoal.kit.names import parse_target
from shoal.kit.objectstore import open_store
from shoal.kit.settings import StoreSettings
from shoal.kit.status import unpack
from shoal.storage import queue
from shoal.storage.tables import TableRoot, VersionedTables, VersionRecord
from shoal.v1 import ingest_service_pb2, ingest_service_pb2_grpc, upload_pb2
from shoal.versioning import worker as worker_module
from shoal.versioning.server import build as build_versioning
from shoal.versioning.worker import Worker

from tests.conftest import ADMIN_KEY, RedisProcess, ServerThread, free_port, service_settings, unique, wait_until
from tests.integration.test_ingest import make_frame

pytestmark = pytest.mark.integration


class IngestProcess:
    """The ingest service as its own process, as `shoal up` runs it, so it can be killed."""

    def __init__(self, port: int, env: dict[str, str], log: Path) -> None:
        self.port, self.env, self.log = port, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shoal.ingest"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        from shoal.runner import health

        wait_until(lambda: health.check("127.0.0.1", self.port, "shoal.v1.IngestService") == "SERVING", timeout=30)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@pytest.fixture
def env(
    start_service: Callable[..., ServerThread], tmp_path: Path, redis_server: RedisProcess
) -> Iterator[tuple[ServerThread, dict[str, str], str]]:
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
    return versioning, environ, f"127.0.0.1:{port}"


def test_killed_ingest_loses_nothing_acknowledged_and_queues_nothing_twice(
    env: tuple[ServerThread, dict[str, str], str], tmp_path: Path, redis_server: RedisProcess
) -> None:
    versioning, environ, ingest_address = env
    ingest = IngestProcess(int(ingest_address.rsplit(":", 1)[1]), environ, tmp_path / "ingest.log")
    ingest.start()
    client = shoal.Client(
        api_key=ADMIN_KEY,
        addresses={"versioning": versioning.target, "ingest": ingest_address},
        batch_size=50,
        window=4,
        show_progress=False,
    )
    project = unique("p")
    client.create_project(project, shoal.LabelClassMap.from_classnames(["car", "person", "bike"]))
    client.create_dataset(project, "faulty")
    frames = [make_frame(i).to_proto() for i in range(3000)]
    target = f"projects/{project}/datasets/faulty"
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["report"] = client.upload(target, frames, upload_id="crashy")
        except Exception as err:
            result["error"] = err

    uploader = threading.Thread(target=run)
    r = redis.Redis.from_url(redis_server.url)
    name = f"{target}/uploads/crashy"
    try:
        uploader.start()
        wait_until(lambda: int(r.hget(queue.upload_key(name), "batches_received") or 0) >= 10, timeout=60)
        ingest.kill()
        ingest.start()  # waits until the new process serves
        uploader.join(timeout=120)
        assert "error" not in result, result.get("error")
        report = result["report"]
        assert isinstance(report, shoal.UploadReport)
        assert report.retries >= 1
        upload = client.get_upload(name)
        assert upload.frames_accepted == 3000
        partition = queue.partition_of(target, 4)
        entries = [e for _, e in r.xrange(queue.stream_key(partition)) if e[b"upload"].decode() == name]
        seqs = [int(e[b"seq"]) for e in entries]
        assert sorted(seqs) == list(range(60)), "a batch was queued twice or lost"
        assert sum(int(e[b"frames"]) for e in entries) == 3000
    finally:
        ingest.stop()
        client.close()
        r.close()


def test_full_queue_answers_resource_exhausted_with_retry_delay(
    env: tuple[ServerThread, dict[str, str], str], tmp_path: Path
) -> None:
    versioning, environ, ingest_address = env
    environ["SHOAL_INGEST_MAX_QUEUE_DEPTH"] = "2"
    environ["SHOAL_INGEST_PARTITIONS"] = "1"
    environ["SHOAL_INGEST_MAX_BATCH_FRAMES"] = "100"
    ingest = IngestProcess(int(ingest_address.rsplit(":", 1)[1]), environ, tmp_path / "ingest.log")
    ingest.start()
    client = shoal.Client(
        api_key=ADMIN_KEY, addresses={"versioning": versioning.target, "ingest": ingest_address}, show_progress=False
    )
    project = unique("p")
    try:
        client.create_project(project, shoal.LabelClassMap.from_classnames(["car", "person", "bike"]))
        client.create_dataset(project, "busy")
        target = f"projects/{project}/datasets/busy"
        stub = ingest_service_pb2_grpc.IngestServiceStub(grpc.insecure_channel(ingest_address))

        def send(batches: list[ingest_service_pb2.FrameBatch]) -> list[ingest_service_pb2.UploadFramesResponse]:
            start = ingest_service_pb2.UploadFramesRequest(start=ingest_service_pb2.UploadStart(target=target))
            requests = [start] + [ingest_service_pb2.UploadFramesRequest(batch=b) for b in batches]
            return list(stub.UploadFrames(iter(requests), metadata=(("x-api-key", ADMIN_KEY),), timeout=10))

        too_big = ingest_service_pb2.FrameBatch(seq=0, frames=[make_frame(i).to_proto() for i in range(101)])
        with pytest.raises(grpc.RpcError) as info:
            send([too_big])
        details = unpack(info.value)
        assert (details.code, details.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "BATCH_TOO_LARGE")
        assert "limit is 100" in details.violations[0].description
        # No consumer drains the queue here: the third batch finds it full.
        batches = [
            ingest_service_pb2.FrameBatch(seq=s, frames=[make_frame(s * 10 + i).to_proto() for i in range(10)])
            for s in range(3)
        ]
        with pytest.raises(grpc.RpcError) as info:
            send(batches)
        details = unpack(info.value)
        assert details.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert details.reason == "QUEUE_FULL"
        assert details.retry_delay_seconds > 0
    finally:
        ingest.stop()
        client.close()


@dataclass
class Queued:
    """An upload whose batches wait in the queue: no worker runs beside the services that took it."""

    client: shoal.Client
    project: str
    target: str
    upload: str


@contextlib.contextmanager
def queued_upload(
    start_service: Callable[..., ServerThread],
    store: StoreSettings,
    redis_url: str,
    frames: int,
    batch_size: int = 10,
    **limits: Any,
) -> Iterator[Queued]:
    """Ingest and versioning (without its worker) on `store`, a new dataset, and `frames` frames uploaded to it in
    batches of `batch_size`."""
    ingest = start_service("ingest", build_ingest, redis_url=redis_url, store=store, **limits)
    catalog = start_service("versioning", build_versioning, redis_url=redis_url, store=store, **limits)
    with shoal.Client(
        api_key=ADMIN_KEY,
        addresses={"versioning": catalog.target, "ingest": ingest.target},
        batch_size=batch_size,
        show_progress=False,
    ) as client:
        p = unique("p")
        client.create_project(p, shoal.LabelClassMap.from_classnames(["car", "person", "bike"]))
        client.create_dataset(p, "d")
        target = f"projects/{p}/datasets/d"
        report = client.upload(target, [make_frame(i).to_proto() for i in range(frames)])
        assert report.accepted == frames
        yield Queued(client, p, target, report.name)


def test_a_streams_batches_are_worked_on_together_but_validated_queued_and_acknowledged_in_order(
    start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str
) -> None:
    """Ingest works on several batches of a stream at once; the upload's label-id memory, the queue and the acks
    still follow the order the batches came in, and a batch that fails ends the stream with nothing after it
    queued."""
    store = StoreSettings(url=(tmp_path / "store").as_uri())
    batches = [
        ingest_service_pb2.FrameBatch(seq=s, frames=[make_frame(s * 10 + i).to_proto() for i in range(10)])
        for s in range(10)
    ]
    # Batch 4 reuses a label id of batch 3: the later batch is the one refused, however the work interleaves.
    batches[4].frames[0].labels[0].label_id = batches[3].frames[0].labels[0].label_id
    batches.insert(6, batches[2])  # sent again in the same stream: acknowledged as a duplicate, queued once
    batches += [
        ingest_service_pb2.FrameBatch(seq=-1),
        ingest_service_pb2.FrameBatch(seq=11, frames=[make_frame(999).to_proto()]),
    ]
    with queued_upload(start_service, store, redis_db, 0) as queued:  # a dataset, and no worker
        start = ingest_service_pb2.UploadFramesRequest(start=ingest_service_pb2.UploadStart(target=queued.target))
        requests = [start] + [ingest_service_pb2.UploadFramesRequest(batch=b) for b in batches]
        responses: list[ingest_service_pb2.UploadFramesResponse] = []
        call = queued.client.ingest.UploadFrames(iter(requests), metadata=(("x-api-key", ADMIN_KEY),), timeout=60)
        with pytest.raises(grpc.RpcError) as info:
            responses.extend(call)
    assert (unpack(info.value).code, unpack(info.value).reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SEQ")
    acks = [r.ack for r in responses if r.HasField("ack")]
    assert [(a.seq, a.duplicate) for a in acks] == [(s, False) for s in range(6)] + [(2, True)] + [
        (s, False) for s in range(6, 10)
    ]
    assert [(a.seq, [e.reason for e in a.rejected]) for a in acks if a.rejected] == [(4, ["DUPLICATE_LABEL_ID"])]
    r = redis.Redis.from_url(redis_db)
    try:
        partitions = service_settings("ingest", redis_db, store).ingest_partitions
        entries = r.xrange(queue.stream_key(queue.partition_of(queued.target, partitions)))
        seqs = [int(fields[b"seq"]) for _, fields in entries if fields[b"target"].decode() == queued.target]
    finally:
        r.close()
    assert seqs == list(range(10))  # in the order sent, and nothing of the batch after the failing one


def test_a_worker_killed_between_commit_and_progress_record_loses_no_version(
    start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str
) -> None:
    store = StoreSettings(url=(tmp_path / "store").as_uri())
    with queued_upload(start_service, store, redis_db, 30) as queued:
        client, p, target = queued.client, queued.project, queued.target
        settings = service_settings("versioning", redis_db, store, worker_read_count=1)
        partition = queue.partition_of(target, settings.ingest_partitions)
        stream = queue.stream_key(partition)

        async def crash_then_recover() -> None:
            r = redisconn.connect(redis_db)
            try:
                first = Worker(settings, open_store(store), r)
                assert await first.drain(partition)  # batch 0: version 1, recorded
                # Batch 1: read and committed as version 2, then the worker dies before recording progress.
                consumer = queue.consumer_name(partition)
                (reply,) = await r.xreadgroup(queue.CONSUMER_GROUP, consumer, {stream: ">"}, count=1)
                (entry_id, fields), *_ = reply[1]
                entry = queue.read_entry(entry_id, fields)
                record, _ = first.apply_group(target, [entry])
                assert record is not None
                assert record.version == 2
                # Another worker takes over: it finishes the pending entry first, then batch 2 (version 3).
                second = Worker(settings, open_store(store), r)
                while await second.drain(partition):
                    pass
            finally:
                await r.aclose()

        asyncio.run(crash_then_recover())
        upload = client.get_upload(queued.upload)
        assert upload.state == upload_pb2.UPLOAD_STATE_COMMITTED
        assert (upload.batches_committed, upload.frames_committed) == (3, 30)
        assert list(upload.versions) == [1, 2, 3]
        assert [v.version for v in client.list_versions(p, "d")] == [3, 2, 1]


@pytest.mark.parametrize("gather", [0.0, 2.0])
def test_batches_streaming_in_commit_together_and_a_lone_batch_at_once(
    start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str, gather: float
) -> None:
    store = StoreSettings(url=(tmp_path / "store").as_uri())
    with queued_upload(start_service, store, redis_db, 50) as queued:  # five batches queued
        client, p, target = queued.client, queued.project, queued.target
        settings = service_settings(
            "versioning",
            redis_db,
            store,
            worker_read_count=1,
            worker_max_commit_frames=30,
            worker_gather_seconds=gather,
        )
        partition = queue.partition_of(target, settings.ingest_partitions)

        async def drain() -> None:
            r = redisconn.connect(redis_db)
            try:
                worker = Worker(settings, open_store(store), r)
                while await worker.drain(partition):
                    pass
            finally:
                await r.aclose()

        asyncio.run(drain())
        versions = client.list_versions(p, "d")
        upload = client.get_upload(queued.upload)
    assert (upload.state, upload.frames_committed) == (upload_pb2.UPLOAD_STATE_COMMITTED, 50)
    # Without gathering, one version a batch. Gathering: the first batch (nothing streamed before it) commits alone,
    # then the worker waits for more up to a commit's 30 frames: batches 2-4, then 5 alone (the queue is empty).
    assert [v.frames_added for v in reversed(versions)] == ([10] * 5 if not gather else [10, 30, 10])


def test_the_worker_maintains_only_once_its_partitions_are_quiet(
    start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the batches of a stream the worker has nothing queued, but it is not idle: maintenance (compaction,
    index merges) waits until no partition has committed for `QUIET_SECONDS`."""
    store = StoreSettings(url=(tmp_path / "store").as_uri())
    with queued_upload(start_service, store, redis_db, 30) as queued:  # three batches queued
        settings = service_settings("versioning", redis_db, store, worker_read_count=1, worker_gather_seconds=0)
        maintained: list[int] = []

        async def run() -> None:
            r = redisconn.connect(redis_db)
            stop = asyncio.Event()
            try:
                worker = Worker(settings, open_store(store), r)
                now = [0.0]
                worker.clock = lambda: now[0]
                monkeypatch.setattr(worker, "maintain_one", lambda: maintained.append(worker.commits))
                task = asyncio.create_task(worker.run(stop))
                for _ in range(600):
                    if worker.commits == 3:
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.2)  # passes of the idle loop, each waiting in Redis for new entries
                assert worker.commits == 3
                assert maintained == []  # the partition committed just now (by the worker's clock)
                now[0] += worker_module.QUIET_SECONDS + 0.1
                for _ in range(600):
                    if maintained:
                        break
                    await asyncio.sleep(0.05)
                assert maintained[:1] == [3]
                stop.set()
                await task
            finally:
                await r.aclose()

        asyncio.run(run())
        assert queued.client.get_upload(queued.upload).frames_committed == 30


def test_an_idle_worker_waits_in_redis_and_wakes_for_an_entry_queued_after_its_last_look(
    tmp_path: Path, redis_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle worker blocks in Redis instead of polling: an entry newer than what it saw before its last pass ends
    the wait, whether it came before the wait began or during it; so does being stopped. (The waits are long: a
    worker that missed the entry would still be waiting when the test's guard runs out.)"""
    store = StoreSettings(url=(tmp_path / "store").as_uri())
    settings = service_settings("versioning", redis_db, store)
    monkeypatch.setattr(worker_module, "IDLE_WAIT_SECONDS", 60.0)

    async def run() -> None:
        r = redisconn.connect(redis_db)
        stop = asyncio.Event()
        try:
            worker = Worker(settings, open_store(store), r)
            worker.owned.update({0, 1})
            streams = [queue.stream_key(0), queue.stream_key(1)]
            await r.delete(*streams)
            ends = await worker._stream_ends()
            assert ends == {streams[0]: b"0-0", streams[1]: b"0-0"}
            # Queued between the pass and the wait: the wait ends at once.
            added = await r.xadd(streams[1], {"k": "v"})
            await asyncio.wait_for(worker._wait_for_entries(stop, ends), 20)
            ends = await worker._stream_ends()
            assert ends == {streams[0]: b"0-0", streams[1]: added}
            # Queued while it waits, on the other partition: the wait ends.
            waiting = asyncio.create_task(worker._wait_for_entries(stop, ends))
            await asyncio.sleep(0.2)
            assert not waiting.done()
            await r.xadd(streams[0], {"k": "v"})
            await asyncio.wait_for(waiting, 20)
            # Nothing new: only stopping ends it.
            ends = await worker._stream_ends()
            waiting = asyncio.create_task(worker._wait_for_entries(stop, ends))
            await asyncio.sleep(0.2)
            assert not waiting.done()
            stop.set()
            await asyncio.wait_for(waiting, 20)
            # Holding no partition, it waits on the stop alone, and no longer than a wait in Redis would last.
            worker.owned.clear()
            assert await worker._stream_ends() == {}
            await asyncio.wait_for(worker._wait_for_entries(stop, {}), 20)
            monkeypatch.setattr(worker_module, "IDLE_WAIT_SECONDS", 0.1)
            await asyncio.wait_for(worker._wait_for_entries(asyncio.Event(), {}), 20)
        finally:
            await r.aclose()

    asyncio.run(run())


def test_a_gathered_group_that_failed_half_way_commits_again_as_it_was_first_read(
    start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StoreSettings(url=(tmp_path / "store").as_uri())
    with queued_upload(start_service, store, redis_db, 50) as queued:  # five batches queued
        settings = service_settings(
            "versioning", redis_db, store, worker_read_count=1, worker_max_commit_frames=30, worker_gather_seconds=2.0
        )
        partition = queue.partition_of(queued.target, settings.ingest_partitions)
        append_version = VersionedTables._append_version
        calls = []

        def flaky(self: VersionedTables, record: VersionRecord) -> None:
            calls.append(record.version)
            if len(calls) == 2:  # the gathered group of version 2: its log and frames are written, its record not
                raise OSError("the store went away")
            append_version(self, record)

        monkeypatch.setattr(VersionedTables, "_append_version", flaky)

        async def drain() -> None:
            r = redisconn.connect(redis_db)
            try:
                worker = Worker(settings, open_store(store), r)
                worker.owned.add(partition)
                for _ in range(20):
                    with contextlib.suppress(OSError):
                        if not await worker.drain(partition):
                            return
            finally:
                await r.aclose()

        asyncio.run(drain())
        upload = queued.client.get_upload(queued.upload)
        tables = TableRoot(store).tables(parse_target(queued.target))
    assert (upload.state, upload.frames_committed) == (upload_pb2.UPLOAD_STATE_COMMITTED, 50)
    log = lance.dataset(tables.changes_uri).to_table(columns=["version"]).column("version").to_pylist()
    for record in tables.versions():  # each version logged exactly the frames it added, and its table holds them
        assert log.count(record.version) == record.frames_added, record
        assert tables.frames_at(record.version).count_rows() == record.frame_count, record
    assert [r.frames_added for r in tables.versions()] == [10, 30, 10]
