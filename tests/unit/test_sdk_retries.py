"""Every SDK call to a service is retried on transient failures, honouring RetryInfo: unary calls, the pages of a
listing, and server streams, which reopen where they broke and deliver nothing twice."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc
import pytest
from shoal.kit.errors import NotFound, ShoalError, Unavailable
from shoal.kit.status import to_grpc_status
from shoal.sdk import retries
from shoal.sdk.client import Client
from shoal.v1 import (
    asset_pb2,
    asset_service_pb2,
    asset_service_pb2_grpc,
    frame_pb2,
    ingest_service_pb2,
    ingest_service_pb2_grpc,
    upload_pb2,
    versioning_service_pb2,
    versioning_service_pb2_grpc,
)

from tests.conftest import ADMIN_KEY

UPLOAD = "projects/p/datasets/d/uploads/u1"
ASSET = "projects/p/datasets/d/assets/" + "ab" * 32
BLOB = bytes(range(256)) * 40
CHUNK = 1000
FRAME_IDS = [f"f{i:02d}" for i in range(10)]


def _abort(context: grpc.ServicerContext, error: ShoalError) -> None:
    context.abort_with_status(to_grpc_status(error))


def _unavailable(delay: float) -> Unavailable:
    return Unavailable("redis is unreachable", reason="DEPENDENCY_UNAVAILABLE", retry_delay_seconds=delay)


class Flaky:
    """Counts calls per method; the first `failures` calls of each fail the way the test says."""

    def __init__(self, failures: int = 2, delay: float = 0.01) -> None:
        self.failures = failures
        self.delay = delay
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def attempt(self, method: str) -> int:
        """This call's number (from 1) among the calls of `method`."""
        with self.lock:
            self.calls[method] = self.calls.get(method, 0) + 1
            return self.calls[method]


class Ingest(ingest_service_pb2_grpc.IngestServiceServicer):
    def __init__(self, flaky: Flaky) -> None:
        self.flaky = flaky

    def GetUpload(
        self, request: ingest_service_pb2.GetUploadRequest, context: grpc.ServicerContext
    ) -> upload_pb2.Upload:
        if self.flaky.attempt("GetUpload") <= self.flaky.failures:
            _abort(context, _unavailable(self.flaky.delay))
        return upload_pb2.Upload(name=request.name, state=upload_pb2.UPLOAD_STATE_COMMITTED, frames_accepted=7)

    def ListUploadErrors(
        self, request: ingest_service_pb2.ListUploadErrorsRequest, context: grpc.ServicerContext
    ) -> ingest_service_pb2.ListUploadErrorsResponse:
        # The first page answers at once; the second fails `failures` times first.
        if not request.page_token:
            return ingest_service_pb2.ListUploadErrorsResponse(
                errors=[upload_pb2.FrameError(frame_id="a")], next_page_token="2"
            )
        if self.flaky.attempt("ListUploadErrors") <= self.flaky.failures:
            _abort(context, _unavailable(self.flaky.delay))
        return ingest_service_pb2.ListUploadErrorsResponse(errors=[upload_pb2.FrameError(frame_id="b")])


class Versioning(versioning_service_pb2_grpc.VersioningServiceServicer):
    """StreamFrames of version 7, two frames a message. The first stream breaks after two messages, the second at
    once; later ones run to the end, unless `always_break_after` makes every stream break at the same place."""

    def __init__(self, flaky: Flaky, always_break_after: int | None = None) -> None:
        self.flaky = flaky
        self.always_break_after = always_break_after
        self.parents: list[str] = []

    def StreamFrames(
        self, request: versioning_service_pb2.StreamFramesRequest, context: grpc.ServicerContext
    ) -> Iterator[versioning_service_pb2.StreamFramesResponse]:
        self.parents.append(request.parent)
        number = self.flaky.attempt("StreamFrames")
        breaks_after = {1: 2, 2: 0}.get(number) if self.always_break_after is None else self.always_break_after
        for sent, start in enumerate(range(0, len(FRAME_IDS), 2)):
            if sent == breaks_after:
                _abort(context, _unavailable(self.flaky.delay))
            frames = [frame_pb2.Frame(frame_id=f) for f in FRAME_IDS[start : start + 2]]
            yield versioning_service_pb2.StreamFramesResponse(frames=frames, version=7)


class Assets(asset_service_pb2_grpc.AssetServiceServicer):
    """ReadAsset in chunks of 1,000 bytes; the first stream breaks after three chunks. UploadAsset fails the first
    `failures` calls after reading the whole upload."""

    def __init__(self, flaky: Flaky) -> None:
        self.flaky = flaky
        self.reads: list[tuple[int, int]] = []
        self.uploaded: list[bytes] = []

    def ReadAsset(
        self, request: asset_service_pb2.ReadAssetRequest, context: grpc.ServicerContext
    ) -> Iterator[asset_service_pb2.ReadAssetResponse]:
        if request.name != ASSET:
            _abort(context, NotFound(f"{request.name} does not exist", reason="ASSET_NOT_FOUND"))
        self.reads.append((request.offset, request.length))
        number = self.flaky.attempt("ReadAsset")
        end = request.offset + request.length if request.length else len(BLOB)
        for sent, start in enumerate(range(request.offset, end, CHUNK)):
            if number == 1 and sent == 3:
                _abort(context, _unavailable(self.flaky.delay))
            yield asset_service_pb2.ReadAssetResponse(chunk=BLOB[start : min(end, start + CHUNK)])

    def UploadAsset(
        self, request_iterator: Iterator[asset_service_pb2.UploadAssetRequest], context: grpc.ServicerContext
    ) -> asset_pb2.Asset:
        data = b"".join(r.chunk for r in request_iterator)
        self.uploaded.append(data)
        if self.flaky.attempt("UploadAsset") <= self.flaky.failures:
            _abort(context, _unavailable(self.flaky.delay))
        return asset_pb2.Asset(name=ASSET, size_bytes=len(data))


Serve = Callable[..., tuple[Client, Ingest, Versioning, Assets]]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Fake ingest, versioning and asset services on one port, and a client of them."""
    started: list[tuple[grpc.Server, Client]] = []

    def start(
        failures: int = 2, delay: float = 0.01, max_retries: int = 3, always_break_after: int | None = None
    ) -> tuple[Client, Ingest, Versioning, Assets]:
        flaky = Flaky(failures, delay)
        ingest, versioning, assets = Ingest(flaky), Versioning(flaky, always_break_after), Assets(flaky)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        ingest_service_pb2_grpc.add_IngestServiceServicer_to_server(ingest, server)
        versioning_service_pb2_grpc.add_VersioningServiceServicer_to_server(versioning, server)
        asset_service_pb2_grpc.add_AssetServiceServicer_to_server(assets, server)
        port = server.add_insecure_port("localhost:0")
        server.start()
        client = Client(api_key=ADMIN_KEY, address=f"localhost:{port}", max_retries=max_retries, timeout=5)
        started.append((server, client))
        return client, ingest, versioning, assets

    yield start
    for server, client in started:
        client.close()
        server.stop(None)


def test_get_upload_and_wait_for_upload_retry_unavailable_honouring_retry_info(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, ingest, _, _ = serve(delay=0.3)
    waits: list[float] = []
    monkeypatch.setattr(retries.time, "sleep", waits.append)
    upload = client.get_upload(UPLOAD)
    assert len(waits) == 2
    assert min(waits) >= 0.3  # never shorter than the server asked for
    monkeypatch.undo()
    assert (upload.name, upload.frames_accepted) == (UPLOAD, 7)
    assert ingest.flaky.calls["GetUpload"] == 3
    ingest.flaky.calls.clear()
    ingest.flaky.delay = 0.01
    assert client.wait_for_upload(UPLOAD, timeout=10).state == upload_pb2.UPLOAD_STATE_COMMITTED
    assert ingest.flaky.calls["GetUpload"] == 3


class SizeLimited(ingest_service_pb2_grpc.IngestServiceServicer):
    """Answers RESOURCE_EXHAUSTED the way gRPC does for a message over the size limit: no RetryInfo."""

    def __init__(self) -> None:
        self.calls = 0

    def GetUpload(
        self, request: ingest_service_pb2.GetUploadRequest, context: grpc.ServicerContext
    ) -> upload_pb2.Upload:
        self.calls += 1
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "Sent message larger than max (76888747 vs. 67108864)")
        raise AssertionError("unreachable")


def test_resource_exhausted_without_retry_info_is_not_retried() -> None:
    servicer = SizeLimited()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    ingest_service_pb2_grpc.add_IngestServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("localhost:0")
    server.start()
    try:
        client = Client(api_key=ADMIN_KEY, address=f"localhost:{port}", max_retries=5, timeout=5)
        with client, pytest.raises(grpc.RpcError) as info:
            client.get_upload(UPLOAD)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert servicer.calls == 1
    finally:
        server.stop(None)


def test_a_listing_retries_each_page(serve: Serve) -> None:
    client, ingest, _, _ = serve()
    assert [e.frame_id for e in client.list_upload_errors(UPLOAD)] == ["a", "b"]
    assert ingest.flaky.calls["ListUploadErrors"] == 3


def test_a_call_that_keeps_failing_gives_up_after_max_retries(serve: Serve) -> None:
    client, ingest, _, _ = serve(failures=10, max_retries=2)
    with pytest.raises(grpc.RpcError) as info:
        client.get_upload(UPLOAD)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert ingest.flaky.calls["GetUpload"] == 3


def test_stream_frames_reopens_on_the_same_version_and_delivers_each_frame_once(serve: Serve) -> None:
    client, _, versioning, _ = serve()
    frames = list(client.stream_frames("p", "d"))
    assert [f.frame_id for f in frames] == FRAME_IDS
    # The first stream asked for the newest version; the reopened ones read version 7, the one it was reading.
    assert versioning.parents == ["projects/p/datasets/d", *["projects/p/datasets/d/versions/7"] * 2]


def test_a_stream_that_keeps_breaking_at_the_same_place_gives_up(serve: Serve) -> None:
    client, _, versioning, _ = serve(max_retries=2, always_break_after=1)
    received: list[str] = []
    with pytest.raises(grpc.RpcError) as info:
        received.extend(f.frame_id for f in client.stream_frames("p", "d"))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert received == FRAME_IDS[:2]
    assert len(versioning.parents) == 3


def test_read_asset_resumes_at_the_first_byte_not_received(serve: Serve) -> None:
    client, _, _, assets = serve()
    assert client.read_asset(ASSET) == BLOB
    assert assets.reads == [(0, 0), (3 * CHUNK, 0)]
    assets.reads.clear()
    assets.flaky.calls.clear()
    assert client.read_asset(ASSET, offset=500, length=5000) == BLOB[500:5500]
    assert assets.reads == [(500, 5000), (500 + 3 * CHUNK, 5000 - 3 * CHUNK)]


def test_read_asset_does_not_retry_what_is_not_transient(serve: Serve) -> None:
    client, _, _, assets = serve()
    with pytest.raises(grpc.RpcError) as info:
        client.read_asset("projects/p/datasets/d/assets/" + "cd" * 32)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "ReadAsset" not in assets.flaky.calls


def test_upload_asset_sends_the_whole_file_again(serve: Serve) -> None:
    client, _, _, assets = serve()
    asset = client.upload_asset("p", "d", BLOB, filename="blob.bin", kind="image")
    assert asset.size_bytes == len(BLOB)
    assert assets.uploaded == [BLOB] * 3
