"""IngestService servicer: proto ⇄ domain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from shoal.ingest.backlog import measured_when_scraped
from shoal.ingest.uploads import Uploads, stream_upload
from shoal.kit import auth
from shoal.kit.bootstrap import Runtime
from shoal.kit.names import DatasetName, InferenceSetName, parse_target, parse_upload
from shoal.kit.server import Service
from shoal.v1 import ingest_service_pb2, ingest_service_pb2_grpc, upload_pb2

Ctx = Any


def _project(target: DatasetName | InferenceSetName) -> str:
    return f"projects/{target.project}"


class IngestServicer(ingest_service_pb2_grpc.IngestServiceServicer):
    """Upload sessions and the producer side of the ingest queue."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.uploads = Uploads(runtime.settings, runtime.store, runtime.redis)

    async def UploadFrames(
        self, request_iterator: AsyncIterator[ingest_service_pb2.UploadFramesRequest], context: Ctx
    ) -> AsyncIterator[ingest_service_pb2.UploadFramesResponse]:
        principal = auth.current()

        async def authorize(target: DatasetName | InferenceSetName) -> None:
            auth.require(_project(target), "WRITER", principal)

        async for response in stream_upload(self.uploads, request_iterator, authorize):
            yield response

    async def GetUpload(self, request: ingest_service_pb2.GetUploadRequest, context: Ctx) -> upload_pb2.Upload:
        name = parse_upload(request.name)
        auth.require(_project(name.target))
        return await self.uploads.get(name)

    async def ListUploads(
        self, request: ingest_service_pb2.ListUploadsRequest, context: Ctx
    ) -> ingest_service_pb2.ListUploadsResponse:
        target = parse_target(request.parent, "parent")
        auth.require(_project(target))
        found, token = await self.uploads.list_uploads(target, request.page_size, request.page_token)
        return ingest_service_pb2.ListUploadsResponse(uploads=found, next_page_token=token)

    async def ListUploadErrors(
        self, request: ingest_service_pb2.ListUploadErrorsRequest, context: Ctx
    ) -> ingest_service_pb2.ListUploadErrorsResponse:
        name = parse_upload(request.parent, "parent")
        auth.require(_project(name.target))
        errors, token = await self.uploads.list_errors(name, request.page_size, request.page_token)
        return ingest_service_pb2.ListUploadErrorsResponse(errors=errors, next_page_token=token)


def build(runtime: Runtime) -> Sequence[Service]:
    runtime.background.append(measured_when_scraped(runtime.redis, runtime.settings.ingest_partitions))
    servicer = IngestServicer(runtime)
    runtime.closers.append(servicer.uploads.aclose)
    return [
        Service(
            servicer,
            ingest_service_pb2_grpc.add_IngestServiceServicer_to_server,
            "shoal.v1.IngestService",
        )
    ]
