"""Domain errors. Domain modules raise these and never import grpc; one interceptor maps them to a
`google.rpc.Status` with `BadRequest` and `ErrorInfo` details and the gRPC code that fits."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


class Code(enum.Enum):
    """The gRPC status codes a domain error may carry (names match `grpc.StatusCode`)."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ABORTED = "ABORTED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field. `field` is a path such as `frames[3].labels[0].box_2d.width`."""

    field: str
    description: str


@dataclass
class ShoalError(Exception):
    """Base of all domain errors.

    `reason` is a stable UPPER_SNAKE_CASE string clients may branch on; `metadata` adds context (resource names,
    limits) to the `ErrorInfo` detail.
    """

    message: str
    reason: str = "UNKNOWN"
    metadata: Mapping[str, str] = field(default_factory=dict)
    violations: tuple[FieldViolation, ...] = ()
    # When set, the status carries a google.rpc.RetryInfo telling the client how long to wait before retrying.
    retry_delay_seconds: float = 0.0
    code = Code.INTERNAL

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        if not self.violations:
            return self.message
        details = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        return f"{self.message} ({details})"


class InvalidArgument(ShoalError):
    """The request is malformed; `violations` name every offending field."""

    code = Code.INVALID_ARGUMENT

    @classmethod
    def of(cls, violations: Iterable[FieldViolation], reason: str = "INVALID_ARGUMENT") -> InvalidArgument:
        found = tuple(violations)
        noun = "field is" if len(found) == 1 else "fields are"
        return cls(f"{len(found)} {noun} invalid", reason=reason, violations=found)


class NotFound(ShoalError):
    """The named resource does not exist (or the caller may not know that it does)."""

    code = Code.NOT_FOUND


class AlreadyExists(ShoalError):
    """A resource with that name exists."""

    code = Code.ALREADY_EXISTS


class FailedPrecondition(ShoalError):
    """The system is not in a state that allows the request (e.g. a class map change that removes a class)."""

    code = Code.FAILED_PRECONDITION


class Aborted(ShoalError):
    """A concurrent change won (etag mismatch); the caller should re-read and retry."""

    code = Code.ABORTED


class PermissionDenied(ShoalError):
    """The caller is known but may not do this."""

    code = Code.PERMISSION_DENIED


class Unauthenticated(ShoalError):
    """No valid credentials."""

    code = Code.UNAUTHENTICATED


class ResourceExhausted(ShoalError):
    """A quota or size limit was hit."""

    code = Code.RESOURCE_EXHAUSTED


class Unavailable(ShoalError):
    """A dependency (Redis, the object store) cannot be reached; retrying later may succeed."""

    code = Code.UNAVAILABLE


class Unimplemented(ShoalError):
    """The RPC exists in the contract but this server does not serve it (yet)."""

    code = Code.UNIMPLEMENTED


class Internal(ShoalError):
    """A bug or an unexpected failure; the message is generic and the details are in the server log."""

    code = Code.INTERNAL


_BY_CODE = {
    kind.code: kind
    for kind in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Aborted,
        PermissionDenied,
        Unauthenticated,
        ResourceExhausted,
        Unavailable,
        Unimplemented,
        Internal,
    )
}


def error_type(code: Code) -> type[ShoalError]:
    """The domain error that carries `code` (an error that came back from elsewhere is raised again as its kind)."""
    return _BY_CODE[code]
