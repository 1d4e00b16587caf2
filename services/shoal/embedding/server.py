"""EmbeddingService servicer: proto ⇄ domain. RPCs not overridden here answer UNIMPLEMENTED until their issue lands."""

from __future__ import annotations

from collections.abc import Sequence

from shoal.kit.bootstrap import Runtime
from shoal.kit.operations import operations_service
from shoal.kit.server import Service
from shoal.v1 import embedding_service_pb2_grpc


class EmbeddingServicer(embedding_service_pb2_grpc.EmbeddingServiceServicer):
    """Indexes, search, selection, duplicates, uniqueness and projections."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime


def build(runtime: Runtime) -> Sequence[Service]:
    return [
        Service(
            EmbeddingServicer(runtime),  # type: ignore[abstract]  # unimplemented RPCs answer UNIMPLEMENTED
            embedding_service_pb2_grpc.add_EmbeddingServiceServicer_to_server,
            "shoal.v1.EmbeddingService",
        ),
        operations_service(runtime.redis),
    ]
