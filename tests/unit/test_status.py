"""Domain errors → google.rpc.Status and back, without a server."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from shoal.kit import errors
from shoal.kit.status import to_grpc_status, to_status_proto, unpack


class FakeCallError(grpc.RpcError):
    """What a failed call looks like to the client, built from the status a server would send."""

    def __init__(self, status: grpc.Status) -> None:
        self.status = status

    def code(self) -> Any:
        return self.status.code

    def details(self) -> Any:
        return self.status.details

    def trailing_metadata(self) -> Any:
        return self.status.trailing_metadata


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotFound, grpc.StatusCode.NOT_FOUND),
        (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
        (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
        (errors.Aborted, grpc.StatusCode.ABORTED),
        (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
        (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
        (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
        (errors.Unimplemented, grpc.StatusCode.UNIMPLEMENTED),
        (errors.Internal, grpc.StatusCode.INTERNAL),
    ],
)
def test_every_error_class_maps_to_its_code(cls: type[errors.ShoalError], code: grpc.StatusCode) -> None:
    err = cls("something happened", reason="SOME_REASON", metadata={"name": "projects/p"})
    status = to_grpc_status(err, (("x-request-id", "r1"),))
    assert status.code == code
    details = unpack(FakeCallError(status))
    assert details.code == code
    assert details.domain_code is not None
    assert details.domain_code.value == code.name
    assert (details.message, details.reason, details.metadata) == (
        "something happened",
        "SOME_REASON",
        {"name": "projects/p"},
    )
    assert ("x-request-id", "r1") in status.trailing_metadata


def test_bad_request_details_list_violations_in_order() -> None:
    violations = [errors.FieldViolation(f"frames[{i}].frame_id", "contains '#'") for i in range(3)]
    proto = to_status_proto(errors.InvalidArgument.of(violations, reason="INVALID_FRAMES"))
    assert proto.code == code_pb2.INVALID_ARGUMENT
    assert proto.message == "3 fields are invalid"
    bad = error_details_pb2.BadRequest()
    assert proto.details[1].Unpack(bad)
    assert [v.field for v in bad.field_violations] == ["frames[0].frame_id", "frames[1].frame_id", "frames[2].frame_id"]


def test_str_of_invalid_argument_names_fields() -> None:
    err = errors.InvalidArgument.of([errors.FieldViolation("labels[0].confidence", "must be in [0, 1], got 1.5")])
    assert str(err) == "1 field is invalid (labels[0].confidence: must be in [0, 1], got 1.5)"


def test_unpack_without_rich_details() -> None:
    plain = grpc.Status()
    plain.code, plain.details, plain.trailing_metadata = grpc.StatusCode.UNAVAILABLE, "connection refused", ()  # type: ignore[misc]
    details = unpack(FakeCallError(plain))
    assert details.code == grpc.StatusCode.UNAVAILABLE
    assert details.reason == ""
    assert details.violations == []
