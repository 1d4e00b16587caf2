"""The SDK's channels: one address for every service (an ingress routing by gRPC path) and TLS with a given root."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from shoal.sdk.client import Client
from shoal.v1 import project_pb2, versioning_service_pb2

from tests.conftest import ADMIN_KEY


def test_one_address_for_every_service_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOAL_ADDRESS", raising=False)
    with Client(api_key=ADMIN_KEY, address="shoal.example.com:443", addresses={"asset": "assets:9"}) as client:
        assert client.addresses == {
            "ingest": "shoal.example.com:443",
            "versioning": "shoal.example.com:443",
            "asset": "assets:9",
            "metrics": "shoal.example.com:443",
            "embedding": "shoal.example.com:443",
        }
        assert not client.tls
    monkeypatch.setenv("SHOAL_ADDRESS", "gateway:8443")
    monkeypatch.setenv("SHOAL_TLS", "true")
    with Client(api_key=ADMIN_KEY) as client:
        assert set(client.addresses.values()) == {"gateway:8443"}
        assert client.tls


def _self_signed(tmp_path: Path) -> tuple[bytes, bytes, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    roots = tmp_path / "roots.pem"
    roots.write_bytes(cert_pem)
    return cert_pem, key_pem, roots


@pytest.fixture
def tls_endpoint(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """A TLS gRPC endpoint answering GetProject, standing where an ingress would terminate TLS."""
    cert_pem, key_pem, roots = _self_signed(tmp_path)
    seen: list[str] = []

    def get_project(request: versioning_service_pb2.GetProjectRequest, context: grpc.ServicerContext) -> object:
        seen.append(dict(context.invocation_metadata())["x-api-key"])
        return project_pb2.Project(name=request.name, display_name="over TLS")

    handler = grpc.method_handlers_generic_handler(
        "shoal.v1.VersioningService",
        {
            "GetProject": grpc.unary_unary_rpc_method_handler(
                get_project,
                request_deserializer=versioning_service_pb2.GetProjectRequest.FromString,
                response_serializer=project_pb2.Project.SerializeToString,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_secure_port("localhost:0", grpc.ssl_server_credentials([(key_pem, cert_pem)]))
    server.start()
    try:
        yield f"localhost:{port}", roots, seen
    finally:
        server.stop(0)


def test_tls_channel_trusts_the_given_root(tls_endpoint: tuple[str, Path, list[str]]) -> None:
    address, roots, seen = tls_endpoint
    with Client(api_key=ADMIN_KEY, address=address, tls=True, root_certificates=str(roots), max_retries=0) as client:
        assert client.get_project("p").display_name == "over TLS"
    assert seen == [ADMIN_KEY]
    # Without the root the server's certificate is not trusted; without TLS the handshake never happens.
    for kwargs in ({"tls": True}, {"tls": False}):
        with Client(api_key=ADMIN_KEY, address=address, max_retries=0, timeout=2, **kwargs) as client:  # type: ignore[arg-type]
            with pytest.raises(grpc.RpcError) as info:
                client.get_project("p")
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
