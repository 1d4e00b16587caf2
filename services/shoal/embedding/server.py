"""EmbeddingService servicer: proto ⇄ domain."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any

from shoal.embedding import quantized
from shoal.embedding.compute import Backend
from shoal.embedding.indexes import Analyses, Indexes, parse_index_name
from shoal.embedding.samples import Sampler
from shoal.kit import auth, peers
from shoal.kit.bootstrap import Runtime
from shoal.kit.errors import FieldViolation, InvalidArgument
from shoal.kit.operations import OperationStore, Progress, operations_service
from shoal.kit.server import Service
from shoal.v1 import (
    embedding_pb2,
    embedding_service_pb2,
    embedding_service_pb2_grpc,
    operation_pb2,
    versioning_service_pb2,
    versioning_service_pb2_grpc,
)

log = logging.getLogger("shoal.embedding.server")


class EmbeddingServicer(embedding_service_pb2_grpc.EmbeddingServiceServicer):
    """Indexes, search, selection, duplicates, uniqueness and projections."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # Chosen once at start-up (SHOAL_EMBEDDING_DEVICE): CuPy on a GPU when one is usable, else NumPy.
        self.backend = Backend.detect(runtime.settings.embedding_device)
        self.indexes = Indexes(runtime.store, runtime.settings.store, self.backend)
        if self.backend.device == "cpu":
            # Exact cosine search on the CPU runs its int8 product in ONNX Runtime: import it now, not in the first
            # search someone waits for.
            threading.Thread(target=quantized.warm, name="int8-warm", daemon=True).start()
        self.analyses = Analyses(self.indexes)
        self.sampler = Sampler(self.indexes)
        # Selections are saved as segments by the versioning service, the only writer of the catalog.
        settings = runtime.settings
        self.versioning = peers.Peer(
            "versioning",
            settings.versioning_address,
            timeout_seconds=settings.call_timeout_seconds,
            max_message_bytes=settings.max_message_bytes,
        )
        runtime.closers.append(self.versioning.close)
        self.operations = OperationStore(runtime.redis)
        self.running: set[asyncio.Task[None]] = set()
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

    async def GetIndex(
        self, request: embedding_service_pb2.GetIndexRequest, context: Any
    ) -> embedding_pb2.EmbeddingIndex:
        dataset, _, _ = parse_index_name(request.name, "name")
        auth.require("/".join(dataset.split("/")[:2]))
        index = await asyncio.to_thread(self.indexes.get, request.name, 0, "name")
        return index.proto(self.backend)

    async def BuildIndex(
        self, request: embedding_service_pb2.BuildIndexRequest, context: Any
    ) -> operation_pb2.Operation:
        kinds = {
            embedding_pb2.EMBEDDING_KIND_UNSPECIFIED: "frame",
            embedding_pb2.EMBEDDING_KIND_FRAME: "frame",
            embedding_pb2.EMBEDDING_KIND_CROP: "crop",
        }
        if request.kind not in kinds:
            raise InvalidArgument.of([FieldViolation("kind", "unknown embedding kind")])
        ref = await asyncio.to_thread(self.indexes.reads.resolve, request.parent, "parent")
        auth.require(str(ref.dataset.parent), "WRITER")
        name = f"{ref.dataset}/versions/{ref.version}/indexes/{kinds[request.kind]}"
        precision = request.precision or embedding_pb2.INDEX_PRECISION_FLOAT32
        op, created = await self.operations.create(
            operation_pb2.OperationProgress(stage="queued"),
            key=f"index:{name}:{precision}:{request.approximate}",  # one build per mode; builds of an index queue
            project=str(ref.dataset.parent),
            dataset=str(ref.dataset),
        )
        if created:

            async def work(progress: Progress) -> embedding_pb2.EmbeddingIndex:
                progress("building")
                index = await asyncio.to_thread(
                    self.indexes.approximate, name, precision, request.approximate, "parent"
                )
                return index.proto(self.backend)

            task = asyncio.create_task(
                self.operations.run(op, work, key=f"index:{name}:{precision}:{request.approximate}")
            )
            self.running.add(task)
            task.add_done_callback(self.running.discard)
        return op

    async def Search(
        self, request: embedding_service_pb2.SearchRequest, context: Any
    ) -> embedding_service_pb2.SearchResponse:
        dataset, _, _ = parse_index_name(request.index)
        auth.require("/".join(dataset.split("/")[:2]))
        return await asyncio.to_thread(self.indexes.search, request)

    async def SelectSamples(
        self, request: embedding_service_pb2.SelectSamplesRequest, context: Any
    ) -> operation_pb2.Operation:
        ref = await asyncio.to_thread(self.indexes.reads.resolve, request.parent, "parent")
        auth.require(str(ref.dataset.parent), "WRITER")
        credentials = peers.Credentials.of_call(context)
        # A request id is the caller's within its project: the same id in another project is another request.
        key = "select:" + (request.request_id or "")
        op, created = await self.operations.create(
            operation_pb2.OperationProgress(stage="queued"),
            key=key if request.request_id else "",
            project=str(ref.dataset.parent),
            dataset=str(ref.dataset),
        )
        if created:

            async def work(progress: Progress) -> embedding_service_pb2.SelectSamplesResponse:
                progress("selecting")
                chosen = await asyncio.to_thread(self.sampler.select, request)
                progress("saving the segment")
                create = versioning_service_pb2.CreateSegmentRequest(
                    parent=str(chosen.dataset),
                    segment_id=chosen.segment_id,
                    segment=chosen.segment,
                    request_id=request.request_id,
                )
                stub = versioning_service_pb2_grpc.VersioningServiceStub(self.versioning.channel)
                saved = await self.versioning.call(stub.CreateSegment, create, credentials)
                return embedding_service_pb2.SelectSamplesResponse(
                    segment=saved.name, frame_ids=chosen.frame_ids, scores=chosen.scores
                )

            task = asyncio.create_task(self.operations.run(op, work, key=key if request.request_id else ""))
            self.running.add(task)
            task.add_done_callback(self.running.discard)
        return op

    async def FindDuplicates(
        self, request: embedding_service_pb2.FindDuplicatesRequest, context: Any
    ) -> embedding_service_pb2.FindDuplicatesResponse:
        auth.require(_project_of_index(request.index))
        return await asyncio.to_thread(self.analyses.duplicates, request)

    async def ComputeUniqueness(
        self, request: embedding_service_pb2.ComputeUniquenessRequest, context: Any
    ) -> embedding_service_pb2.ComputeUniquenessResponse:
        auth.require(_project_of_index(request.index))
        return await asyncio.to_thread(self.analyses.uniqueness, request)

    async def ProjectEmbeddings(
        self, request: embedding_service_pb2.ProjectEmbeddingsRequest, context: Any
    ) -> embedding_service_pb2.ProjectEmbeddingsResponse:
        auth.require(_project_of_index(request.index))
        return await asyncio.to_thread(self.analyses.project, request)


def _project_of_index(name: str) -> str:
    dataset, _, _ = parse_index_name(name)
    return "/".join(dataset.split("/")[:2])


def build(runtime: Runtime) -> Sequence[Service]:
    return [
        Service(
            EmbeddingServicer(runtime),
            embedding_service_pb2_grpc.add_EmbeddingServiceServicer_to_server,
            "shoal.v1.EmbeddingService",
        ),
        operations_service(runtime.redis),
    ]
