"""Each of the five services, started as `shoal up` starts it (all interceptors in place), answers through real
channels: health, reflection, metrics and authentication."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from shoal.asset.server import build as build_asset
from shoal.embedding import compute
from shoal.embedding.server import build as build_embedding
from shoal.ingest.server import build as build_ingest
from shoal.kit.apikeys import issue_key, revoke_key
from shoal.kit.objectstore import LocalObjectStore
from shoal.kit.settings import StoreSettings
from shoal.kit.status import unpack
from shoal.metrics.server import build as build_metrics
from shoal.v1 import (
    asset_service_pb2,
    asset_service_pb2_grpc,
    embedding_pb2,
    embedding_service_pb2,
    embedding_service_pb2_grpc,
    ingest_service_pb2,
    ingest_service_pb2_grpc,
    metrics_service_pb2,
    metrics_service_pb2_grpc,
    versioning_service_pb2,
    versioning_service_pb2_grpc,
)
from shoal.versioning.server import build as build_versioning

from tests.conftest import ADMIN_KEY, ServerThread, free_port, wait_until


def _get_upload(ch: grpc.Channel, md: Any) -> Any:
    stub = ingest_service_pb2_grpc.IngestServiceStub(ch)
    return stub.GetUpload(
        ingest_service_pb2.GetUploadRequest(name="projects/p/datasets/d/uploads/u"), metadata=md, timeout=5
    )


def _get_project(ch: grpc.Channel, md: Any) -> Any:
    stub = versioning_service_pb2_grpc.VersioningServiceStub(ch)
    return stub.GetProject(versioning_service_pb2.GetProjectRequest(name="projects/alpha"), metadata=md, timeout=5)


def _get_asset(ch: grpc.Channel, md: Any) -> Any:
    stub = asset_service_pb2_grpc.AssetServiceStub(ch)
    return stub.GetAsset(
        asset_service_pb2.GetAssetRequest(name="projects/p/datasets/d/assets/" + "a" * 64), metadata=md, timeout=5
    )


def _get_evaluation(ch: grpc.Channel, md: Any) -> Any:
    stub = metrics_service_pb2_grpc.MetricsServiceStub(ch)
    request = metrics_service_pb2.GetEvaluationRequest(
        name="projects/p/datasets/d/inferenceSets/i/evaluations/" + "0" * 32
    )
    return stub.GetEvaluation(request, metadata=md, timeout=5)


def _select(ch: grpc.Channel, md: Any) -> Any:
    stub = embedding_service_pb2_grpc.EmbeddingServiceStub(ch)
    request = embedding_service_pb2.SelectSamplesRequest(parent="projects/p/datasets/d/versions/1", count=3)
    return stub.SelectSamples(request, metadata=md, timeout=5)


SERVICES = [
    ("ingest", build_ingest, "shoal.v1.IngestService", _get_upload),  # implemented: answers NOT_FOUND
    ("versioning", build_versioning, "shoal.v1.VersioningService", _get_project),  # answers NOT_FOUND
    ("asset", build_asset, "shoal.v1.AssetService", _get_asset),  # implemented: answers NOT_FOUND
    ("metrics", build_metrics, "shoal.v1.MetricsService", _get_evaluation),
    ("embedding", build_embedding, "shoal.v1.EmbeddingService", _select),
]
IDS = [s[0] for s in SERVICES]
Call = Callable[[grpc.Channel, Any], Any]


def _reflected(target: str) -> set[str]:
    with grpc.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        return {s.name for reply in replies for s in reply.list_services_response.service}


def _health(target: str, service: str = "") -> int:
    with grpc.insecure_channel(target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(reply.status)


def _rpc_error(target: str, call: Call, metadata: Any) -> grpc.RpcError:
    with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as info:
        call(channel, metadata)
    return info.value


@pytest.mark.parametrize(("name", "build", "full_name", "call"), SERVICES, ids=IDS)
def test_service_is_serving_and_reflected(
    start_service: Callable[..., ServerThread], name: str, build: Any, full_name: str, call: Call
) -> None:
    server = start_service(name, build)
    assert _health(server.target) == health_pb2.HealthCheckResponse.SERVING
    assert _health(server.target, full_name) == health_pb2.HealthCheckResponse.SERVING
    services = _reflected(server.target)
    assert full_name in services
    assert "grpc.health.v1.Health" in services


@pytest.mark.parametrize(("name", "build", "full_name", "call"), SERVICES, ids=IDS)
@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ((), "API_KEY_MISSING"),
        ((("x-api-key", "not-the-key-0123456789"),), "API_KEY_INVALID"),
        ((("x-api-key", "shoal_0123456789abcdef_" + "A" * 43),), "API_KEY_INVALID"),
        ((("authorization", "Bearer " + ADMIN_KEY[:-1] + "x"),), "API_KEY_INVALID"),
    ],
    ids=["missing", "wrong", "unknown-id", "wrong-bearer"],
)
def test_call_without_valid_key_is_unauthenticated(
    start_service: Callable[..., ServerThread],
    name: str,
    build: Any,
    full_name: str,
    call: Call,
    metadata: Any,
    reason: str,
) -> None:
    server = start_service(name, build)
    details = unpack(_rpc_error(server.target, call, metadata))
    assert details.code == grpc.StatusCode.UNAUTHENTICATED
    assert details.reason == reason
    assert details.domain == "shoal.v1"


@pytest.mark.parametrize(("name", "build", "full_name", "call"), SERVICES, ids=IDS)
def test_admin_key_passes_auth(
    start_service: Callable[..., ServerThread], name: str, build: Any, full_name: str, call: Call
) -> None:
    server = start_service(name, build)
    for metadata in ((("x-api-key", ADMIN_KEY),), (("authorization", f"Bearer {ADMIN_KEY}"),)):
        error = _rpc_error(server.target, call, metadata)
        details = unpack(error)
        if name == "ingest":
            assert (details.code, details.reason) == (grpc.StatusCode.NOT_FOUND, "UPLOAD_NOT_FOUND")
        elif name == "asset":
            assert (details.code, details.reason) == (grpc.StatusCode.NOT_FOUND, "ASSET_NOT_FOUND")
        elif name == "metrics":
            assert (details.code, details.reason) == (grpc.StatusCode.NOT_FOUND, "EVALUATION_NOT_FOUND")
        elif name == "embedding":
            assert details.code == grpc.StatusCode.NOT_FOUND  # the dataset does not exist
        else:
            assert (details.code, details.reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
        request_ids = [v for k, v in error.trailing_metadata() if k == "x-request-id"]  # type: ignore[attr-defined]
        assert len(request_ids) == 1
        assert len(request_ids[0]) == 32


@pytest.mark.parametrize(("name", "build", "full_name", "call"), SERVICES, ids=IDS)
def test_metrics_port_serves_request_counters(
    start_service: Callable[..., ServerThread], name: str, build: Any, full_name: str, call: Call
) -> None:
    server = start_service(name, build)
    _rpc_error(server.target, call, ())
    url = f"http://127.0.0.1:{server.server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read().decode()
    assert "grpc_server_handled_total{" in body
    assert f'grpc_service="{full_name}"' in body
    unauthenticated = [
        line
        for line in body.splitlines()
        if line.startswith("grpc_server_handled_total{")
        and 'grpc_code="UNAUTHENTICATED"' in line
        and f'grpc_service="{full_name}"' in line
        and not line.endswith(" 0.0")
    ]
    assert unauthenticated, "the rejected call was not counted"
    assert "grpc_server_handling_seconds_bucket{" in body


def test_issued_key_is_accepted_and_revoked_key_is_not(
    start_service: Callable[..., ServerThread], tmp_path: Path
) -> None:
    store_dir = tmp_path / "shared-store"
    server = start_service("versioning", build_versioning, store=StoreSettings(url=store_dir.as_uri()))
    store = LocalObjectStore(store_dir)
    record, secret = issue_key(store, "ci", ["projects/alpha"], "WRITER")
    details = unpack(_rpc_error(server.target, _get_project, (("x-api-key", secret),)))
    assert details.code == grpc.StatusCode.NOT_FOUND  # authenticated; the project does not exist
    revoke_key(store, record.key_id)
    details = unpack(_rpc_error(server.target, _get_project, (("x-api-key", secret),)))
    assert details.code == grpc.StatusCode.UNAUTHENTICATED
    assert details.reason == "API_KEY_INVALID"


def test_health_needs_no_key_but_follows_redis(start_service: Callable[..., ServerThread]) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    server = start_service("ingest", build_ingest, redis_url=dead_redis)
    # Liveness ("") stays SERVING; the service's own status, used for readiness, reports the missing dependency.
    assert _health(server.target) == health_pb2.HealthCheckResponse.SERVING
    assert _health(server.target, "shoal.v1.IngestService") == health_pb2.HealthCheckResponse.NOT_SERVING


def test_probe_command_exits_by_health(
    start_service: Callable[..., ServerThread], capsys: pytest.CaptureFixture[str]
) -> None:
    """`shoal probe` is the container health check: 0 only while the named status is SERVING."""
    from shoal.cli import main

    server = start_service("ingest", build_ingest, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert main(["probe", server.target]) == 0
    assert main(["probe", server.target, "--service", "shoal.v1.IngestService"]) == 3
    assert main(["probe", f"127.0.0.1:{free_port()}", "--timeout", "0.5"]) == 3
    assert main(["probe", "no-port"]) == 2
    assert capsys.readouterr().out.split() == ["SERVING", "NOT_SERVING", "UNREACHABLE"]


def test_readiness_recovers_when_redis_comes_back(start_service: Callable[..., ServerThread], tmp_path: Path) -> None:
    from tests.conftest import RedisProcess

    redis_proc = RedisProcess(tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    server = start_service("versioning", build_versioning, redis_url=redis_proc.url)
    server.server.check_interval_seconds = 0.1
    assert _health(server.target, "shoal.v1.VersioningService") == health_pb2.HealthCheckResponse.NOT_SERVING
    redis_proc.start()
    try:
        wait_until(
            lambda: _health(server.target, "shoal.v1.VersioningService") == health_pb2.HealthCheckResponse.SERVING
        )
    finally:
        redis_proc.stop()


def test_embedding_service_reports_its_backend(start_service: Callable[..., ServerThread]) -> None:
    """The array backend is chosen once at start-up; without a GPU it is NumPy on the CPU."""
    server = start_service("embedding", build_embedding)
    with grpc.insecure_channel(server.target) as ch:
        stub = embedding_service_pb2_grpc.EmbeddingServiceStub(ch)
        backend = stub.GetBackend(embedding_service_pb2.GetBackendRequest(), metadata=(("x-api-key", ADMIN_KEY),))
        with pytest.raises(grpc.RpcError) as err:
            stub.GetBackend(embedding_service_pb2.GetBackendRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    expected = compute.Backend.detect()
    assert backend.device == (
        embedding_pb2.COMPUTE_DEVICE_GPU if expected.device == "gpu" else embedding_pb2.COMPUTE_DEVICE_CPU
    )
    assert backend.library_version == expected.library_version
    assert backend.device_memory_bytes > 0
