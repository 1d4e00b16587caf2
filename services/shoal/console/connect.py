"""Connect's protocol in front of the gRPC services: how the browser calls the shoal.v1 contract.

A browser cannot speak gRPC, so the console takes Connect calls — `POST /shoal.v1.<Service>/<Method>` with the
request as a binary protobuf message or as protobuf JSON (unary), or enveloped for server streams — and makes the
same call over gRPC to the service that owns the method, with the caller's API key (`Authorization: Bearer …`) as
`x-api-key` metadata. Nothing is decided here: the service checks the key and the project, and its answer (a
message, or a status with ErrorInfo and BadRequest details) goes back in Connect's form. Binary messages pass
through as bytes (the web app sends them: a 100,000-point projection is never turned into JSON); errors are always
JSON. The methods are read off the generated descriptors, so a method added to the contract is reachable without
touching this module.

Client streams (UploadFrames, UploadAsset) are not offered: browsers cannot send a request body while reading the
response, and the console never uploads.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2

from shoal.kit.interceptors import API_KEY_KEY, REQUEST_ID_KEY
from shoal.kit.status import DETAILS_METADATA_KEY
from shoal.v1 import (
    asset_service_pb2,
    embedding_service_pb2,
    ingest_service_pb2,
    metrics_service_pb2,
    operation_pb2,
    versioning_service_pb2,
)

# Which process answers each service of the contract (operations live in the shared store: any service that runs
# them answers for all).
SERVICE_MODULES: Final = (
    ("ingest", ingest_service_pb2, "IngestService"),
    ("versioning", versioning_service_pb2, "VersioningService"),
    ("asset", asset_service_pb2, "AssetService"),
    ("metrics", metrics_service_pb2, "MetricsService"),
    ("embedding", embedding_service_pb2, "EmbeddingService"),
    ("embedding", operation_pb2, "OperationsService"),
)

# gRPC codes as Connect names them, with the HTTP status Connect's unary protocol gives each.
_CODES: Final = {
    grpc.StatusCode.CANCELLED: ("canceled", 499),
    grpc.StatusCode.UNKNOWN: ("unknown", 500),
    grpc.StatusCode.INVALID_ARGUMENT: ("invalid_argument", 400),
    grpc.StatusCode.DEADLINE_EXCEEDED: ("deadline_exceeded", 504),
    grpc.StatusCode.NOT_FOUND: ("not_found", 404),
    grpc.StatusCode.ALREADY_EXISTS: ("already_exists", 409),
    grpc.StatusCode.PERMISSION_DENIED: ("permission_denied", 403),
    grpc.StatusCode.RESOURCE_EXHAUSTED: ("resource_exhausted", 429),
    grpc.StatusCode.FAILED_PRECONDITION: ("failed_precondition", 400),
    grpc.StatusCode.ABORTED: ("aborted", 409),
    grpc.StatusCode.OUT_OF_RANGE: ("out_of_range", 400),
    grpc.StatusCode.UNIMPLEMENTED: ("unimplemented", 501),
    grpc.StatusCode.INTERNAL: ("internal", 500),
    grpc.StatusCode.UNAVAILABLE: ("unavailable", 503),
    grpc.StatusCode.DATA_LOSS: ("data_loss", 500),
    grpc.StatusCode.UNAUTHENTICATED: ("unauthenticated", 401),
}
DEFAULT_TIMEOUT_SECONDS: Final = 30.0
MAX_TIMEOUT_SECONDS: Final = 300.0
# Envelope flags of Connect's streaming protocol.
_END_STREAM: Final = 0x02
_COMPRESSED: Final = 0x01


@dataclass(frozen=True)
class Method:
    """One RPC of the contract, as the console forwards it."""

    path: str  # "/shoal.v1.VersioningService/GetFrame"
    service: str  # "versioning"
    request: type[Message]
    response: type[Message]
    server_streaming: bool
    client_streaming: bool


def methods() -> dict[str, Method]:
    """Every RPC of the five services, by its Connect path."""
    out = {}
    for service, module, name in SERVICE_MODULES:
        descriptor = module.DESCRIPTOR.services_by_name[name]
        for m in descriptor.methods:
            path = f"/{descriptor.full_name}/{m.name}"
            out[path] = Method(
                path=path,
                service=service,
                request=_message_class(m.input_type),
                response=_message_class(m.output_type),
                server_streaming=m.server_streaming,
                client_streaming=m.client_streaming,
            )
    return out


def _message_class(descriptor: Any) -> type[Message]:
    from google.protobuf import message_factory  # noqa: PLC0415

    return message_factory.GetMessageClass(descriptor)


class ConnectError(Exception):
    """A failed call as Connect sends it: a code name, HTTP status, message and packed details."""

    def __init__(self, code: str, status: int, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code, self.status, self.message, self.details = code, status, message, details or []

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = self.details
        return out

    @classmethod
    def of_rpc(cls, err: grpc.aio.AioRpcError) -> ConnectError:
        code, status = _CODES.get(err.code(), ("unknown", 500))
        details: list[dict[str, Any]] = []
        trailing: Any = err.trailing_metadata() or ()
        for key, value in trailing:
            if key == DETAILS_METADATA_KEY and isinstance(value, bytes):
                try:
                    rich = status_pb2.Status.FromString(value)
                except DecodeError:
                    continue
                details = [_detail(any_) for any_ in rich.details]
        return cls(code, status, err.details() or "", details)


def _detail(any_: Any) -> dict[str, Any]:
    """A packed error detail as Connect's JSON carries it: type name, unpadded base64 value, and a readable copy."""
    out: dict[str, Any] = {
        "type": any_.type_url.rpartition("/")[2],
        "value": base64.b64encode(any_.value).decode().rstrip("="),
    }
    try:
        from google.protobuf import symbol_database  # noqa: PLC0415

        message = symbol_database.Default().GetSymbol(out["type"])()
        message.ParseFromString(any_.value)
        out["debug"] = json_format.MessageToDict(message)
    except KeyError:
        pass
    return out


def bad_request(message: str) -> ConnectError:
    return ConnectError("invalid_argument", 400, message)


def timeout_of(headers: Mapping[str, str]) -> float:
    """The deadline the caller asked for (`Connect-Timeout-Ms`), capped; the default when none."""
    raw = headers.get("connect-timeout-ms", "")
    if raw.isascii() and raw.isdigit():
        return min(MAX_TIMEOUT_SECONDS, max(0.001, int(raw) / 1000))
    return DEFAULT_TIMEOUT_SECONDS


def metadata_of(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """What the gRPC call carries: the caller's key and, when given, its request id."""
    out = []
    auth = headers.get("authorization", "")
    scheme, _, key = auth.partition(" ")
    if scheme.lower() == "bearer" and key.strip():
        out.append((API_KEY_KEY, key.strip()))
    request_id = headers.get("x-request-id", "")
    if request_id:
        out.append((REQUEST_ID_KEY, request_id[:128]))
    return tuple(out)


def parse_json(method: Method, body: bytes) -> Message:
    request = method.request()
    if not body.strip():
        return request
    try:
        json_format.Parse(body, request)
    except (json_format.ParseError, UnicodeDecodeError, ValueError) as err:
        raise bad_request(f"the request is not a valid {method.request.DESCRIPTOR.full_name}: {err}") from err
    return request


def to_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message)


def envelope(payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def unenvelope(body: bytes) -> bytes:
    """The one message of a server-stream request body."""
    if len(body) < 5:
        raise bad_request("a streaming request carries one enveloped message")
    flags, size = struct.unpack(">BI", body[:5])
    if flags & _COMPRESSED:
        raise ConnectError("unimplemented", 501, "compressed messages are not accepted")
    if len(body) != 5 + size:
        raise bad_request("a streaming request carries exactly one enveloped message")
    return body[5:]


def end_stream(error: ConnectError | None) -> bytes:
    return envelope(json.dumps({"error": error.body()} if error else {}).encode(), _END_STREAM)


def check_binary(method: Method, body: bytes) -> bytes:
    """A binary request, checked to be the method's request message before it travels on as it came."""
    try:
        method.request.FromString(body)
    except DecodeError as err:
        raise bad_request(f"the request is not a valid {method.request.DESCRIPTOR.full_name}: {err}") from err
    return body


async def stream(call: Any, binary: bool) -> AsyncIterator[bytes]:
    """The enveloped responses of a server stream (messages as they came, or as JSON), then its end: an error there
    is the stream's outcome."""
    error: ConnectError | None = None
    try:
        async for message in call:
            yield envelope(bytes(message) if binary else json.dumps(to_json(message)).encode())
    except grpc.aio.AioRpcError as err:
        error = ConnectError.of_rpc(err)
    finally:
        # A browser that went away stops the call it started.
        cancel = getattr(call, "cancel", None)
        if cancel is not None:
            cancel()
    yield end_stream(error)
