"""MetricsService servicer: proto ⇄ domain. RPCs not overridden here answer UNIMPLEMENTED until their issue lands."""

from __future__ import annotations

from collections.abc import Sequence

from shoal.kit.bootstrap import Runtime
from shoal.kit.operations import operations_service
from shoal.kit.server import Service
from shoal.v1 import metrics_service_pb2_grpc


class MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    """Evaluations of inference sets and label-error candidates."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime


def build(runtime: Runtime) -> Sequence[Service]:
    return [
        Service(
            MetricsServicer(runtime),  # type: ignore[abstract]  # unimplemented RPCs answer UNIMPLEMENTED
            metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server,
            "shoal.v1.MetricsService",
        ),
        operations_service(),
    ]
