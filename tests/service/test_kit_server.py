"""The kit's server and interceptors, through real channels: domain errors become rich statuses on every kind of
RPC, unknown errors do not leak, request ids travel, and graceful shutdown lets in-flight calls finish."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY
from shoal.kit import grpc_metrics
from shoal.kit.apikeys import ApiKeyVerifier
from shoal.kit.errors import FieldViolation, InvalidArgument, NotFound, Unavailable
from shoal.kit.server import Service, ShoalServer
from shoal.kit.settings import Settings
from shoal.kit.status import unpack
from shoal.v1 import (
    asset_pb2,
    asset_service_pb2,
    asset_service_pb2_grpc,
    frame_pb2,
    ingest_service_pb2,
    ingest_service_pb2_grpc,
    project_pb2,
    versioning_service_pb2,
    versioning_service_pb2_grpc,
)

from tests.conftest import ADMIN_KEY, ServerThread, wait_until

AUTH = (("x-api-key", ADMIN_KEY),)


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait on state, never on the clock: fail naming the state that did not come."""
    try:
        wait_until(predicate, timeout=timeout, interval=0.01)
    except TimeoutError:
        pytest.fail(f"not seen within {timeout:.0f} s: {what}")


class Gate:
    """Holds `projects/slow` on the server until the test opens it, so a test knows a call is in flight (`entered`)
    and decides when it ends."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    async def pass_through(self) -> None:
        self.entered.set()
        await asyncio.to_thread(self.opened.wait, 60)


class Versioning(versioning_service_pb2_grpc.VersioningServiceServicer):
    """Raises what the requested name asks for, so each error path can be driven from the client."""

    def __init__(self) -> None:
        self.gate = Gate()

    async def GetProject(self, request: versioning_service_pb2.GetProjectRequest, context: Any) -> project_pb2.Project:
        if request.name == "projects/missing":
            raise NotFound(
                "project projects/missing does not exist", reason="PROJECT_NOT_FOUND", metadata={"name": request.name}
            )
        if request.name == "projects/bad":
            raise InvalidArgument.of(
                [
                    FieldViolation("frames[3].labels[0].box_2d.width", "must be positive, got -2"),
                    FieldViolation("frames[7].frame_id", "contains '/'"),
                ]
            )
        if request.name == "projects/boom":
            raise RuntimeError("secret connection string redis://user:pw@host")
        if request.name == "projects/slow":
            await self.gate.pass_through()
        return project_pb2.Project(name=request.name)

    async def StreamFrames(
        self, request: versioning_service_pb2.StreamFramesRequest, context: Any
    ) -> AsyncIterator[Any]:
        for i in range(3):
            yield versioning_service_pb2.StreamFramesResponse(frames=[frame_pb2.Frame(frame_id=f"f{i}")], version=1)
        if request.parent == "fail-midway":
            raise Unavailable("object store unreachable", reason="STORE_UNAVAILABLE")


class Ingest(ingest_service_pb2_grpc.IngestServiceServicer):
    async def UploadFrames(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        async for request in request_iterator:
            if request.HasField("batch"):
                if request.batch.seq < 0:
                    raise InvalidArgument.of([FieldViolation("batch.seq", "must not be negative")])
                ack = ingest_service_pb2.BatchAck(seq=request.batch.seq, accepted=len(request.batch.frames))
                yield ingest_service_pb2.UploadFramesResponse(ack=ack)


class Asset(asset_service_pb2_grpc.AssetServiceServicer):
    async def UploadAsset(self, request_iterator: Any, context: Any) -> asset_pb2.Asset:
        size = 0
        async for request in request_iterator:
            size += len(request.chunk)
        if size == 0:
            raise InvalidArgument.of([FieldViolation("chunk", "the upload has no content")])
        return asset_pb2.Asset(size_bytes=size)


@pytest.fixture
def versioning() -> Versioning:
    return Versioning()  # type: ignore[abstract]


@pytest.fixture
def server(versioning: Versioning) -> Iterator[ServerThread]:
    settings = Settings(
        service="versioning", admin_api_key=ADMIN_KEY, grpc_port=0, metrics_port=0, shutdown_grace_seconds=5
    )
    shoal = ShoalServer(
        settings=settings,
        services=[
            Service(
                versioning,
                versioning_service_pb2_grpc.add_VersioningServiceServicer_to_server,
                "shoal.v1.VersioningService",
            ),  # type: ignore[abstract]
            Service(Ingest(), ingest_service_pb2_grpc.add_IngestServiceServicer_to_server, "shoal.v1.IngestService"),  # type: ignore[abstract]
            Service(Asset(), asset_service_pb2_grpc.add_AssetServiceServicer_to_server, "shoal.v1.AssetService"),  # type: ignore[abstract]
        ],
        verifier=ApiKeyVerifier(None, ADMIN_KEY),
    )
    thread = ServerThread(shoal).start()
    yield thread
    versioning.gate.opened.set()
    if thread.thread.is_alive():
        thread.stop(0.5)


def _get_project(target: str, name: str, metadata: Any = AUTH) -> project_pb2.Project:
    with grpc.insecure_channel(target) as channel:
        stub = versioning_service_pb2_grpc.VersioningServiceStub(channel)
        return stub.GetProject(versioning_service_pb2.GetProjectRequest(name=name), metadata=metadata, timeout=30)


def _health(target: str) -> str:
    """The serving status health answers, or the code of the error when it does not answer."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError as err:
            return str(err.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def _slow_call_in_thread(target: str, result: dict[str, Any]) -> threading.Thread:
    """Calls `projects/slow` from a thread; `result` gets the project or the error."""

    def call() -> None:
        try:
            result["project"] = _get_project(target, "projects/slow")
        except grpc.RpcError as err:
            result["error"] = err

    caller = threading.Thread(target=call)
    caller.start()
    return caller


def test_not_found_carries_reason_and_metadata(server: ServerThread) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _get_project(server.target, "projects/missing")
    details = unpack(info.value)
    assert details.code == grpc.StatusCode.NOT_FOUND
    assert details.message == "project projects/missing does not exist"
    assert details.reason == "PROJECT_NOT_FOUND"
    assert details.metadata == {"name": "projects/missing"}


def test_invalid_argument_lists_every_field_violation(server: ServerThread) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _get_project(server.target, "projects/bad")
    details = unpack(info.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.message == "2 fields are invalid"
    assert [(v.field, v.description) for v in details.violations] == [
        ("frames[3].labels[0].box_2d.width", "must be positive, got -2"),
        ("frames[7].frame_id", "contains '/'"),
    ]


def test_unknown_error_is_internal_and_leaks_nothing(server: ServerThread, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _get_project(server.target, "projects/boom", metadata=(*AUTH, ("x-request-id", "trace-42")))
    details = unpack(info.value)
    assert details.code == grpc.StatusCode.INTERNAL
    assert "redis://" not in details.message
    assert "trace-42" not in details.message
    assert "request id" in details.message
    assert ("x-request-id", "trace-42") in info.value.trailing_metadata()  # type: ignore[attr-defined]
    assert any("secret connection string" in (r.exc_text or "") for r in caplog.records if r.levelname == "ERROR")


def test_request_id_is_taken_from_the_caller_or_made(server: ServerThread) -> None:
    with grpc.insecure_channel(server.target) as channel:
        stub = versioning_service_pb2_grpc.VersioningServiceStub(channel)
        request = versioning_service_pb2.GetProjectRequest(name="projects/ok")
        _, call = stub.GetProject.with_call(request, metadata=(*AUTH, ("x-request-id", "abc-123")), timeout=5)
        assert ("x-request-id", "abc-123") in call.trailing_metadata()
        # A malformed id is replaced, never echoed.
        _, call = stub.GetProject.with_call(
            request, metadata=(*AUTH, ("x-request-id", "bad id with spaces")), timeout=5
        )
        made = dict(call.trailing_metadata())["x-request-id"]
        assert len(made) == 32
        assert made != "bad id with spaces"


def test_server_stream_error_after_messages_reaches_client(server: ServerThread) -> None:
    with grpc.insecure_channel(server.target) as channel:
        stub = versioning_service_pb2_grpc.VersioningServiceStub(channel)
        ok = list(
            stub.StreamFrames(versioning_service_pb2.StreamFramesRequest(parent="fine"), metadata=AUTH, timeout=5)
        )
        assert [r.frames[0].frame_id for r in ok] == ["f0", "f1", "f2"]
        received = []
        with pytest.raises(grpc.RpcError) as info:  # noqa: PT012 (the messages before the error matter too)
            for reply in stub.StreamFrames(
                versioning_service_pb2.StreamFramesRequest(parent="fail-midway"), metadata=AUTH, timeout=5
            ):
                received.append(reply.frames[0].frame_id)
    assert received == ["f0", "f1", "f2"]
    details = unpack(info.value)
    assert details.code == grpc.StatusCode.UNAVAILABLE
    assert details.reason == "STORE_UNAVAILABLE"


def test_bidi_stream_acks_and_maps_errors(server: ServerThread) -> None:
    def batches(seqs: list[int]) -> Iterator[ingest_service_pb2.UploadFramesRequest]:
        yield ingest_service_pb2.UploadFramesRequest(
            start=ingest_service_pb2.UploadStart(target="projects/p/datasets/d")
        )
        for seq in seqs:
            frames = [frame_pb2.Frame(frame_id=f"{seq}-{i}") for i in range(seq + 1)]
            yield ingest_service_pb2.UploadFramesRequest(batch=ingest_service_pb2.FrameBatch(seq=seq, frames=frames))

    with grpc.insecure_channel(server.target) as channel:
        stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
        acks = [r.ack for r in stub.UploadFrames(batches([0, 1, 2]), metadata=AUTH, timeout=5)]
        assert [(a.seq, a.accepted) for a in acks] == [(0, 1), (1, 2), (2, 3)]
        with pytest.raises(grpc.RpcError) as info:
            list(stub.UploadFrames(batches([0, -1]), metadata=AUTH, timeout=5))
        assert unpack(info.value).violations == [FieldViolation("batch.seq", "must not be negative")]
        with pytest.raises(grpc.RpcError) as info:
            list(stub.UploadFrames(batches([0]), timeout=5))
        assert unpack(info.value).code == grpc.StatusCode.UNAUTHENTICATED


def test_client_stream_passes_through_interceptors(server: ServerThread) -> None:
    def chunks(n: int) -> Iterator[asset_service_pb2.UploadAssetRequest]:
        yield asset_service_pb2.UploadAssetRequest(
            header=asset_service_pb2.AssetUploadHeader(parent="projects/p/datasets/d")
        )
        for _ in range(n):
            yield asset_service_pb2.UploadAssetRequest(chunk=b"x" * 1000)

    with grpc.insecure_channel(server.target) as channel:
        stub = asset_service_pb2_grpc.AssetServiceStub(channel)
        assert stub.UploadAsset(chunks(5), metadata=AUTH, timeout=5).size_bytes == 5000
        with pytest.raises(grpc.RpcError) as info:
            stub.UploadAsset(chunks(0), metadata=AUTH, timeout=5)
        assert unpack(info.value).code == grpc.StatusCode.INVALID_ARGUMENT


def test_graceful_shutdown_finishes_in_flight_call_and_refuses_new_ones(
    server: ServerThread, versioning: Versioning
) -> None:
    result: dict[str, Any] = {}
    caller = _slow_call_in_thread(server.target, result)
    _wait_for(versioning.gate.entered.is_set, "the slow call in flight on the server")
    # A grace far longer than the test: shutdown must end when the in-flight call does, not when the grace runs out.
    stopper = threading.Thread(target=server.stop, kwargs={"grace": 20.0})
    stopper.start()
    try:
        _wait_for(lambda: _health(server.target) != "SERVING", "the server draining (health no longer SERVING)")
        assert caller.is_alive(), "the in-flight call ended before it was let go"
        assert stopper.is_alive(), "shutdown finished with a call still in flight"
    finally:
        versioning.gate.opened.set()
    _wait_for(lambda: not caller.is_alive(), "the in-flight call to finish once let go")
    _wait_for(lambda: not stopper.is_alive(), "shutdown to finish once the in-flight call did (before the grace)")
    assert "error" not in result, result.get("error")
    assert result["project"].name == "projects/slow"
    with pytest.raises(grpc.RpcError) as info:
        _get_project(server.target, "projects/ok")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_health_reports_not_serving_while_draining() -> None:
    versioning = Versioning()  # type: ignore[abstract]
    settings = Settings(service="versioning", admin_api_key=ADMIN_KEY, grpc_port=0, metrics_port=0)
    shoal = ShoalServer(
        settings=settings,
        services=[
            Service(
                versioning,
                versioning_service_pb2_grpc.add_VersioningServiceServicer_to_server,
                "shoal.v1.VersioningService",
            )
        ],  # type: ignore[abstract]
        verifier=ApiKeyVerifier(None, ADMIN_KEY),
    )
    thread = ServerThread(shoal).start()
    target = thread.target
    assert _health(target) == "SERVING"
    result: dict[str, Any] = {}
    caller = _slow_call_in_thread(target, result)
    stopper = threading.Thread(target=thread.stop, kwargs={"grace": 20.0})
    try:
        _wait_for(versioning.gate.entered.is_set, "the slow call in flight on the server")
        stopper.start()
        seen: list[str] = []

        def refused() -> bool:
            seen.append(_health(target))
            return seen[-1] in {"NOT_SERVING", "UNAVAILABLE"}

        # While draining, health answers NOT_SERVING, or the listener is already closed to new calls.
        _wait_for(refused, "health answering NOT_SERVING or refusing new calls while the server drains")
        # Once the change is seen, nothing answers SERVING again (a check racing the listener's close is CANCELLED).
        changed = next(i for i, answer in enumerate(seen) if answer != "SERVING")
        assert "SERVING" not in seen[changed:], seen
        assert caller.is_alive(), "the in-flight call ended before it was let go: the server was not draining"
    finally:
        versioning.gate.opened.set()
    _wait_for(lambda: not caller.is_alive() and not stopper.is_alive(), "the drained server to stop")
    assert result["project"].name == "projects/slow", result.get("error")


def _stream_frames_handled() -> float:
    """How many StreamFrames calls the server has finished, whatever their code."""
    kind = grpc_metrics.rpc_type(client_streaming=False, server_streaming=True)
    labels = {"grpc_type": kind, "grpc_service": "shoal.v1.VersioningService", "grpc_method": "StreamFrames"}
    return sum(
        REGISTRY.get_sample_value("grpc_server_handled_total", labels | {"grpc_code": code.name}) or 0.0
        for code in grpc.StatusCode
    )


def test_abandoned_server_stream_closes_cleanly(server: ServerThread, caplog: pytest.LogCaptureFixture) -> None:
    handled = _stream_frames_handled()
    with grpc.insecure_channel(server.target) as channel:
        stub = versioning_service_pb2_grpc.VersioningServiceStub(channel)
        replies = stub.StreamFrames(versioning_service_pb2.StreamFramesRequest(parent="fine"), metadata=AUTH, timeout=5)
        next(replies)
        replies.cancel()

    def closed() -> bool:
        # The abandoned generators are closed by asyncio's finaliser once collected; the interceptors' scopes exit
        # outermost first, so the call counted as handled means every scope has been left.
        gc.collect()
        return _stream_frames_handled() > handled

    _wait_for(closed, "the server closing the abandoned stream (counted in grpc_server_handled_total)")
    server.run(asyncio.sleep(0))
    gc.collect()  # a failed close would surface here, as an unretrieved task exception
    assert not [
        r for r in caplog.records if "different Context" in r.getMessage() or "never retrieved" in r.getMessage()
    ]
