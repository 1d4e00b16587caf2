"""AssetService servicer: proto ⇄ domain. RPCs not overridden here answer UNIMPLEMENTED until their issue lands."""

from __future__ import annotations

from collections.abc import Sequence

from shoal.kit.bootstrap import Runtime
from shoal.kit.server import Service
from shoal.v1 import asset_service_pb2_grpc


class AssetServicer(asset_service_pb2_grpc.AssetServiceServicer):
    """Blobs in the object store, their validation and signed URLs."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime


def build(runtime: Runtime) -> Sequence[Service]:
    return [
        Service(
            AssetServicer(runtime),  # type: ignore[abstract]  # unimplemented RPCs answer UNIMPLEMENTED
            asset_service_pb2_grpc.add_AssetServiceServicer_to_server,
            "shoal.v1.AssetService",
        )
    ]
