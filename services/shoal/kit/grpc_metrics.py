"""gRPC request metrics with the go-grpc-prometheus names, pre-initialised for every method and code."""

from __future__ import annotations

from typing import Final

import grpc
from prometheus_client import Counter, Gauge, Histogram

LABELS: Final = ("grpc_type", "grpc_service", "grpc_method")

STARTED = Counter("grpc_server_started_total", "RPCs started on the server.", LABELS)
HANDLED = Counter("grpc_server_handled_total", "RPCs completed on the server, by status code.", (*LABELS, "grpc_code"))
HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time to handle an RPC until the server finished it.",
    LABELS,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
MSG_RECEIVED = Counter("grpc_server_msg_received_total", "Stream messages received by the server.", LABELS)
BUILD_INFO = Gauge(
    "shoal_build_info",
    "Always 1; labels tell which service and version run.",
    ("service", "version"),
    multiprocess_mode="max",
)
MSG_SENT = Counter("grpc_server_msg_sent_total", "Stream messages sent by the server.", LABELS)


def rpc_type(client_streaming: bool, server_streaming: bool) -> str:
    if client_streaming and server_streaming:
        return "bidi_stream"
    if client_streaming:
        return "client_stream"
    if server_streaming:
        return "server_stream"
    return "unary"


def split_method(full_method: str) -> tuple[str, str]:
    """`/shoal.v1.IngestService/UploadFrames` → (`shoal.v1.IngestService`, `UploadFrames`)."""
    _, service, method = full_method.split("/", 2)
    return service, method


def preinitialize(service: str, method: str, kind: str) -> None:
    """Create every series of a method at zero, so dashboards and rate() see it before its first call."""
    STARTED.labels(kind, service, method)
    HANDLING_SECONDS.labels(kind, service, method)
    if kind in {"client_stream", "bidi_stream"}:
        MSG_RECEIVED.labels(kind, service, method)
    if kind in {"server_stream", "bidi_stream"}:
        MSG_SENT.labels(kind, service, method)
    for code in grpc.StatusCode:
        HANDLED.labels(kind, service, method, code.name)
