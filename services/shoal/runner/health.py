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
