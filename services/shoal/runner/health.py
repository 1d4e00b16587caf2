"""Health of the suite's services, as `shoal status` and `shoal up` see it."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(host: str, port: int, service: str = "", timeout: float = 1.0) -> str:
    """`SERVING`, `NOT_SERVING`, `UNKNOWN`, or `UNREACHABLE` when nothing answers."""
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError:
            return "UNREACHABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def check_http(url: str, timeout: float = 1.0) -> str:
    """The console's health the same way: `SERVING` when `url` answers 200, `NOT_SERVING` for any other answer."""
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return "SERVING" if response.status == 200 else "NOT_SERVING"
    except urllib.error.HTTPError:
        return "NOT_SERVING"
    except OSError:
        return "UNREACHABLE"
