"""IngestService servicer: proto ⇄ domain. RPCs not overridden here answer UNIMPLEMENTED until their issue lands."""

from __future__ import annotations

from collections.abc import Sequence

from shoal.kit.bootstrap import Runtime
from shoal.kit.server import Service
from shoal.v1 import ingest_service_pb2_grpc


class IngestServicer(ingest_service_pb2_grpc.IngestServiceServicer):
    """Upload sessions and the producer side of the ingest queue."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime


def build(runtime: Runtime) -> Sequence[Service]:
    return [
        Service(
            IngestServicer(runtime),  # type: ignore[abstract]  # unimplemented RPCs answer UNIMPLEMENTED
            ingest_service_pb2_grpc.add_IngestServiceServicer_to_server,
            "shoal.v1.IngestService",
        )
    ]
