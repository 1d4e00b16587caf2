"""EmbeddingService servicer: proto ⇄ domain. RPCs not overridden here answer UNIMPLEMENTED until their issue lands."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from shoal.embedding.compute import Backend
from shoal.kit import auth
from shoal.kit.bootstrap import Runtime
from shoal.kit.operations import operations_service
from shoal.kit.server import Service
from shoal.v1 import embedding_pb2, embedding_service_pb2, embedding_service_pb2_grpc

log = logging.getLogger("shoal.embedding.server")


class EmbeddingServicer(embedding_service_pb2_grpc.EmbeddingServiceServicer):
    """Indexes, search, selection, duplicates, uniqueness and projections."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # Chosen once at start-up: CuPy on a GPU when one is usable, else NumPy; every computation uses it.
        self.backend = Backend.detect()
        log.info(
            "embedding backend: %s (%s, %s)",
            self.backend.device,
            self.backend.device_name,
            self.backend.library_version,
        )

    async def GetBackend(
        self, request: embedding_service_pb2.GetBackendRequest, context: Any
    ) -> embedding_service_pb2.Backend:
        auth.current()
        return embedding_service_pb2.Backend(
            device=embedding_pb2.COMPUTE_DEVICE_GPU
            if self.backend.device == "gpu"
            else embedding_pb2.COMPUTE_DEVICE_CPU,
            device_name=self.backend.device_name,
            device_memory_bytes=self.backend.memory_bytes,
            library_version=self.backend.library_version,
        )


def build(runtime: Runtime) -> Sequence[Service]:
    return [
        Service(
            EmbeddingServicer(runtime),  # type: ignore[abstract]  # unimplemented RPCs answer UNIMPLEMENTED
            embedding_service_pb2_grpc.add_EmbeddingServiceServicer_to_server,
            "shoal.v1.EmbeddingService",
        ),
        operations_service(runtime.redis),
    ]
