"""Domain errors ⇄ `google.rpc.Status` with `ErrorInfo` and `BadRequest` details."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2

from shoal.kit.errors import Code, FieldViolation, ShoalError

ERROR_DOMAIN = "shoal.v1"
DETAILS_METADATA_KEY = "grpc-status-details-bin"


def to_status_proto(err: ShoalError) -> status_pb2.Status:
    """The `google.rpc.Status` of a domain error: its code, message, ErrorInfo and (if any) BadRequest."""
    status = status_pb2.Status(code=code_pb2.Code.Value(err.code.value), message=err.message)
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain=ERROR_DOMAIN, metadata=dict(err.metadata))
    status.details.add().Pack(info)
    if err.retry_delay_seconds > 0:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(int(err.retry_delay_seconds * 1e9))
        status.details.add().Pack(retry)
    if err.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in err.violations
            ]
        )
        status.details.add().Pack(bad)
    return status


class _GrpcStatus(collections.namedtuple("_GrpcStatus", ("code", "details", "trailing_metadata")), grpc.Status):
    pass


def to_grpc_status(err: ShoalError, extra_metadata: tuple[tuple[str, str], ...] = ()) -> grpc.Status:
    """A `grpc.Status` for `context.abort_with_status`, carrying the rich status and `extra_metadata` (aborting
    replaces the trailing metadata, so whatever else the call must send back travels here)."""
    status = to_status_proto(err)
    code = next(c for c in grpc.StatusCode if c.value[0] == status.code)
    return _GrpcStatus(code, status.message, ((DETAILS_METADATA_KEY, status.SerializeToString()), *extra_metadata))


@dataclass
class RpcErrorDetails:
    """What a client reads off a failed call: code, message and the unpacked details."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    violations: list[FieldViolation] = field(default_factory=list)
    retry_delay_seconds: float = 0.0

    @property
    def domain_code(self) -> Code | None:
        try:
            return Code(self.code.name)
        except ValueError:
            return None


def unpack(error: grpc.RpcError) -> RpcErrorDetails:
    """Unpack the rich status of a failed call (works for sync and asyncio calls)."""
    call: Any = error  # grpc.Call and grpc.aio.AioRpcError both carry these methods; RpcError declares none
    out = RpcErrorDetails(code=call.code(), message=call.details() or "")
    raw = next((v for k, v in call.trailing_metadata() or () if k == DETAILS_METADATA_KEY), None)
    if not isinstance(raw, bytes):
        return out
    status = status_pb2.Status.FromString(raw)
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            out.reason, out.domain, out.metadata = info.reason, info.domain, dict(info.metadata)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            out.retry_delay_seconds = retry.retry_delay.ToNanoseconds() / 1e9
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
    return out
