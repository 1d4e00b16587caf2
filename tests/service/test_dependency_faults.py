"""When a dependency fails, every service says so in a way callers can act on: Redis down or restarting and an
object store that stops answering are UNAVAILABLE with a retry delay (never INTERNAL, never a hang to the caller's
deadline), readiness follows the dependency, and request bytes that do not parse are INVALID_ARGUMENT."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from shoal.asset.server import build as build_asset
from shoal.ingest.server import build as build_ingest
from shoal.kit.objectstore import open_store
from shoal.kit.settings import StoreSettings
from shoal.kit.status import unpack
from shoal.v1 import (
    asset_service_pb2,
    asset_service_pb2_grpc,
    ingest_service_pb2,
    ingest_service_pb2_grpc,
    versioning_service_pb2,
    versioning_service_pb2_grpc,
)
from shoal.versioning.server import build as build_versioning

from tests.conftest import ADMIN_KEY, RedisProcess, S3Server, ServerThread, moto_server, wait_until

ADMIN = (("x-api-key", ADMIN_KEY),)


def _health(target: str, service: str) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


def test_redis_down_is_unavailable_with_retry_info_on_reads(
    start_service: Callable[..., ServerThread], tmp_path: Path
) -> None:
    own = RedisProcess(tmp_path / "redis")
    own.directory.mkdir()
    own.start()
    try:
        server = start_service("ingest", build_ingest, redis_url=own.url)
        own.stop()
        with grpc.insecure_channel(server.target) as channel:
            stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.GetUpload(
                    ingest_service_pb2.GetUploadRequest(name="projects/p/datasets/d/uploads/u1"),
                    metadata=ADMIN,
                    timeout=30,
                )
        details = unpack(caught.value)
        assert details.code == grpc.StatusCode.UNAVAILABLE, details
        assert details.reason == "REDIS_UNAVAILABLE"
        assert details.retry_delay_seconds > 0
    finally:
        own.stop()


def test_undecodable_request_bytes_are_invalid_argument(start_service: Callable[..., ServerThread]) -> None:
    server = start_service("versioning", build_versioning)
    garbage = b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"  # field 1, a length no message can have
    with grpc.insecure_channel(server.target) as channel:
        unary = channel.unary_unary("/shoal.v1.VersioningService/GetProject")
        with pytest.raises(grpc.RpcError) as caught:
            unary(garbage, metadata=ADMIN, timeout=10)
        details = unpack(caught.value)
        assert (details.code, details.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "UNDECODABLE_REQUEST")
        assert "Error" not in details.message  # no Python exception class names leak
        with pytest.raises(grpc.RpcError) as keyless:
            unary(garbage, timeout=10)
        assert keyless.value.code() == grpc.StatusCode.UNAUTHENTICATED  # the key is checked first

        streaming = channel.stream_stream("/shoal.v1.IngestService/UploadFrames")
        # A service other than ingest does not serve it; the versioning server answers UNIMPLEMENTED untouched.
        with pytest.raises(grpc.RpcError) as missing:
            list(streaming(iter([garbage]), metadata=ADMIN, timeout=10))
        assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED

        # A valid request still works after the bad one.
        stub = versioning_service_pb2_grpc.VersioningServiceStub(channel)
        with pytest.raises(grpc.RpcError) as not_found:
            stub.GetProject(versioning_service_pb2.GetProjectRequest(name="projects/nope"), metadata=ADMIN, timeout=10)
        assert not_found.value.code() == grpc.StatusCode.NOT_FOUND


def test_undecodable_stream_message_is_invalid_argument(start_service: Callable[..., ServerThread]) -> None:
    server = start_service("ingest", build_ingest)
    garbage = b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    with grpc.insecure_channel(server.target) as channel:
        streaming = channel.stream_stream("/shoal.v1.IngestService/UploadFrames")
        with pytest.raises(grpc.RpcError) as caught:
            list(streaming(iter([garbage]), metadata=ADMIN, timeout=10))
    details = unpack(caught.value)
    assert (details.code, details.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "UNDECODABLE_REQUEST")


@pytest.fixture
def own_s3() -> Iterator[tuple[S3Server, subprocess.Popen[bytes]]]:
    """An S3 server of this test's own, which the test pauses (the session's server is shared)."""
    with moto_server() as started:
        yield started


def test_hung_object_store_flips_readiness_and_fails_calls_fast(
    start_service: Callable[..., ServerThread], own_s3: tuple[S3Server, subprocess.Popen[bytes]]
) -> None:
    s3, proc = own_s3
    settings = s3.store_settings("hung-store")
    # The bucket is made first, with the default timeout: a fresh S3 server's first answers can take longer than the
    # 2 s given to the service below while the machine runs other tests, and that is not the fault under test.
    open_store(settings)
    store = StoreSettings(**{**settings.__dict__, "s3_timeout_seconds": 2.0})
    server = start_service("asset", build_asset, store=store)
    service = "shoal.v1.AssetService"
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    wait_until(lambda: _health(server.target, service) == serving, timeout=30)
    name = "projects/p/datasets/d/assets/" + "a" * 64
    proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: _health(server.target, service) == not_serving, timeout=30)
        with grpc.insecure_channel(server.target) as channel:
            stub = asset_service_pb2_grpc.AssetServiceStub(channel)
            # Twice: the first call may be the one that waits out the store's timeout; the next fails at once.
            for _ in range(2):
                with pytest.raises(grpc.RpcError) as caught:
                    stub.GetAsset(asset_service_pb2.GetAssetRequest(name=name), metadata=ADMIN, timeout=60)
                details = unpack(caught.value)
                assert details.code == grpc.StatusCode.UNAVAILABLE, details
                assert details.retry_delay_seconds > 0
    finally:
        proc.send_signal(signal.SIGCONT)
    wait_until(lambda: _health(server.target, service) == serving, timeout=30)
    with grpc.insecure_channel(server.target) as channel:
        stub = asset_service_pb2_grpc.AssetServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetAsset(asset_service_pb2.GetAssetRequest(name=name), metadata=ADMIN, timeout=30)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # the store answers again
