"""The OperationsService servicer shared by the services that run long-running operations (metrics, embedding).

Operations live in the shared store, so any replica of either service answers for any operation.
"""

from __future__ import annotations

from shoal.kit.server import Service
from shoal.v1 import operation_pb2_grpc


class OperationsServicer(operation_pb2_grpc.OperationsServiceServicer):
    """Get, list and cancel long-running operations."""


def operations_service() -> Service:
    return Service(
        OperationsServicer(),  # type: ignore[abstract]  # unimplemented RPCs answer UNIMPLEMENTED
        operation_pb2_grpc.add_OperationsServiceServicer_to_server,
        "shoal.v1.OperationsService",
    )
