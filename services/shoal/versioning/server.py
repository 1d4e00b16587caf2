"""VersioningService servicer: proto ⇄ domain. RPCs not overridden here answer UNIMPLEMENTED until their issue lands."""

from __future__ import annotations

from collections.abc import Sequence

from shoal.kit.bootstrap import Runtime
from shoal.kit.server import Service
from shoal.v1 import versioning_service_pb2_grpc


class VersioningServicer(versioning_service_pb2_grpc.VersioningServiceServicer):
    """The catalog, versions, checkpoints, frames at a version, history and diffs."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime


def build(runtime: Runtime) -> Sequence[Service]:
    return [
        Service(
            VersioningServicer(runtime),  # type: ignore[abstract]  # unimplemented RPCs answer UNIMPLEMENTED
            versioning_service_pb2_grpc.add_VersioningServiceServicer_to_server,
            "shoal.v1.VersioningService",
        )
    ]
