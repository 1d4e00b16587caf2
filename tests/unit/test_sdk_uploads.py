"""The SDK's streaming upload against a fake ingest service that breaks streams: a generator source survives every
reconnect, every batch is queued exactly once and in order, and the retry budget is per outage."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc
import pytest
from shoal.kit.errors import Unavailable
from shoal.kit.status import to_grpc_status
from shoal.sdk.client import Client
from shoal.sdk.errors import UploadError
from shoal.v1 import frame_pb2, ingest_service_pb2, ingest_service_pb2_grpc, upload_pb2

from tests.conftest import ADMIN_KEY

TARGET = "projects/p/datasets/d"


class BreakingIngest(ingest_service_pb2_grpc.IngestServiceServicer):
    """Queues batches as the ingest service does (a seq queued before is acknowledged as a duplicate). The n-th
    stream breaks with UNAVAILABLE (and a short RetryInfo) when it receives batch number `breaks[n]` of that
    stream, after queueing it, so the client never sees that ack and must send the batch again."""

    def __init__(self, breaks: list[int]) -> None:
        self.breaks = list(breaks)
        self.lock = threading.Lock()
        self.queued: list[int] = []
        self.frames = 0
        self.streams = 0
        self.broken = 0
        self.closed = False

    def UploadFrames(
        self, request_iterator: Iterator[ingest_service_pb2.UploadFramesRequest], context: grpc.ServicerContext
    ) -> Iterator[ingest_service_pb2.UploadFramesResponse]:
        with self.lock:
            limit = self.breaks[self.streams] if self.streams < len(self.breaks) else None
            self.streams += 1
        received = 0
        name = ""
        for request in request_iterator:
            if request.HasField("start"):
                name = f"{request.start.target}/uploads/{request.start.upload_id}"
                yield ingest_service_pb2.UploadFramesResponse(upload=upload_pb2.Upload(name=name))
                continue
            batch = request.batch
            with self.lock:
                duplicate = batch.seq in self.queued
                if not duplicate:
                    self.queued.append(batch.seq)
                    self.frames += len(batch.frames)
            if received == limit:
                with self.lock:
                    self.broken += 1
                error = Unavailable("ingest is restarting", reason="RESTARTING", retry_delay_seconds=0.01)
                context.abort_with_status(to_grpc_status(error))
            received += 1
            yield ingest_service_pb2.UploadFramesResponse(
                ack=ingest_service_pb2.BatchAck(seq=batch.seq, accepted=len(batch.frames), duplicate=duplicate)
            )
        if context.is_active():  # half-closed by the client, not cancelled
            self.closed = True
            yield ingest_service_pb2.UploadFramesResponse(summary=upload_pb2.Upload(name=name))


def _serve(servicer: BreakingIngest) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    ingest_service_pb2_grpc.add_IngestServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("localhost:0")
    server.start()
    return server, f"localhost:{port}"


@pytest.fixture
def serve() -> Iterator[Callable[[BreakingIngest], str]]:
    servers: list[grpc.Server] = []

    def start(servicer: BreakingIngest) -> str:
        server, address = _serve(servicer)
        servers.append(server)
        return address

    yield start
    for server in servers:
        server.stop(None)


def _frames(ingest: BreakingIngest, count: int) -> Iterator[frame_pb2.Frame]:
    """A generator of frames, slow enough that the upload waits on it; after each break it stays inside until the
    next stream has started, as a source still busy when the client reconnects would."""
    handled = 0
    for i in range(count):
        if ingest.broken > handled:
            handled = ingest.broken
            deadline = time.monotonic() + 5
            while ingest.streams <= handled and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(0.1)
        time.sleep(0.0005)
        yield frame_pb2.Frame(frame_id=f"f{i:05d}")


def test_generator_upload_survives_more_outages_than_max_retries(serve: Callable[[BreakingIngest], str]) -> None:
    breaks = [3, 5, 2, 4, 6, 3]
    ingest = BreakingIngest(breaks)
    address = serve(ingest)
    with Client(api_key=ADMIN_KEY, address=address, batch_size=5, window=4, max_retries=2, timeout=5) as client:
        report = client.upload(TARGET, _frames(ingest, 300), upload_id="u-gen")
    assert ingest.broken == len(breaks) > client.max_retries
    assert ingest.streams == len(breaks) + 1
    assert report.retries == len(breaks)
    # Every batch queued exactly once, in order; each batch whose ack a break swallowed came back as a duplicate.
    assert ingest.queued == list(range(60))
    assert ingest.frames == 300
    assert (report.batches, report.accepted, report.duplicates) == (60, 300, len(breaks))
    assert report.name == f"{TARGET}/uploads/u-gen"
    assert ingest.closed


def test_retry_budget_is_per_outage(serve: Callable[[BreakingIngest], str]) -> None:
    # Five separate restarts, each after the upload made progress, with a budget of one retry per outage.
    ingest = BreakingIngest([4] * 5)
    address = serve(ingest)
    frames = [frame_pb2.Frame(frame_id=f"f{i:05d}") for i in range(200)]
    with Client(api_key=ADMIN_KEY, address=address, batch_size=5, window=4, max_retries=1, timeout=5) as client:
        report = client.upload(TARGET, frames, upload_id="u-list")
    assert (ingest.broken, report.retries) == (5, 5)
    assert ingest.queued == list(range(40))
    assert (report.batches, report.accepted) == (40, 200)


def test_one_outage_longer_than_the_budget_fails(serve: Callable[[BreakingIngest], str]) -> None:
    # The first stream gets somewhere; every stream after it breaks on its first batch.
    ingest = BreakingIngest([4, *[0] * 10])
    address = serve(ingest)
    client = Client(api_key=ADMIN_KEY, address=address, batch_size=5, window=4, max_retries=3, timeout=5)
    with client, pytest.raises(UploadError, match="UNAVAILABLE: ingest is restarting") as info:
        client.upload(TARGET, (frame_pb2.Frame(frame_id=f"f{i:05d}") for i in range(200)), upload_id="u-out")
    assert "still failing after 3 retries" in str(info.value)
    # The stream that got somewhere and then broke, then max_retries reopenings that failed at once.
    assert ingest.streams == 1 + client.max_retries
    assert ingest.queued == [0, 1, 2, 3, 4]
    assert not ingest.closed


def test_an_error_in_the_source_stops_the_upload_without_closing_it(serve: Callable[[BreakingIngest], str]) -> None:
    ingest = BreakingIngest([])
    address = serve(ingest)

    def frames() -> Iterator[frame_pb2.Frame]:
        for i in range(12):
            yield frame_pb2.Frame(frame_id=f"f{i:05d}")
        raise ValueError("the source broke")

    client = Client(api_key=ADMIN_KEY, address=address, batch_size=5, window=4, max_retries=3, timeout=5)
    with client, pytest.raises(ValueError, match="the source broke"):
        client.upload(TARGET, frames(), upload_id="u-err")
    # Not retried, and cancelled rather than half-closed: the upload stays open, to be resumed with the same id.
    assert ingest.streams <= 1
    assert not ingest.closed
