"""VersioningService servicer: proto ⇄ domain. RPCs not overridden here answer UNIMPLEMENTED until their issue lands."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from google.protobuf import empty_pb2

from shoal.kit import auth
from shoal.kit.bootstrap import Runtime
from shoal.kit.errors import FieldViolation, InvalidArgument, NotFound
from shoal.kit.names import DatasetName, ProjectName, check_id, parse_dataset, parse_inference_set, parse_project
from shoal.kit.server import Service
from shoal.storage.catalog import Catalog
from shoal.v1 import dataset_pb2, frame_pb2, project_pb2, versioning_service_pb2, versioning_service_pb2_grpc
from shoal.versioning.reads import Reads
from shoal.versioning.segments import Segments
from shoal.versioning.worker import Worker

Ctx = Any


class VersioningServicer(versioning_service_pb2_grpc.VersioningServiceServicer):
    """The catalog, versions, checkpoints, frames at a version, history and diffs."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.catalog = Catalog(runtime.store)
        self.reads = Reads(runtime.store, runtime.settings.store)
        self.segments = Segments(self.catalog, self.reads.root)

    # projects

    async def CreateProject(
        self, request: versioning_service_pb2.CreateProjectRequest, context: Ctx
    ) -> project_pb2.Project:
        auth.require_admin()
        return await asyncio.to_thread(
            self.catalog.create_project, request.project_id, request.project, request.request_id
        )

    async def GetProject(self, request: versioning_service_pb2.GetProjectRequest, context: Ctx) -> project_pb2.Project:
        name = parse_project(request.name)
        auth.require(str(name))
        return await asyncio.to_thread(self.catalog.get_project, name)

    async def ListProjects(
        self, request: versioning_service_pb2.ListProjectsRequest, context: Ctx
    ) -> versioning_service_pb2.ListProjectsResponse:
        who = auth.current()
        projects, token = await asyncio.to_thread(self.catalog.list_projects, request.page_size, request.page_token)
        visible = [p for p in projects if who.may_access(p.name)]
        return versioning_service_pb2.ListProjectsResponse(projects=visible, next_page_token=token)

    async def UpdateProject(
        self, request: versioning_service_pb2.UpdateProjectRequest, context: Ctx
    ) -> project_pb2.Project:
        name = parse_project(request.project.name, "project.name")
        auth.require(str(name), "ADMIN")
        paths = list(request.update_mask.paths)
        return await asyncio.to_thread(self.catalog.update_project, request.project, paths, name)

    # datasets

    async def CreateDataset(
        self, request: versioning_service_pb2.CreateDatasetRequest, context: Ctx
    ) -> dataset_pb2.Dataset:
        parent = parse_project(request.parent, "parent")
        auth.require(str(parent), "WRITER")
        return await asyncio.to_thread(
            self.catalog.create_dataset, parent, request.dataset_id, request.dataset, request.request_id
        )

    async def GetDataset(self, request: versioning_service_pb2.GetDatasetRequest, context: Ctx) -> dataset_pb2.Dataset:
        name = parse_dataset(request.name)
        auth.require(str(name.parent))
        return await asyncio.to_thread(self.catalog.get_dataset, name)

    async def ListDatasets(
        self, request: versioning_service_pb2.ListDatasetsRequest, context: Ctx
    ) -> versioning_service_pb2.ListDatasetsResponse:
        parent = parse_project(request.parent, "parent")
        auth.require(str(parent))
        datasets, token = await asyncio.to_thread(
            self.catalog.list_datasets, parent, request.page_size, request.page_token
        )
        return versioning_service_pb2.ListDatasetsResponse(datasets=datasets, next_page_token=token)

    async def UpdateDataset(
        self, request: versioning_service_pb2.UpdateDatasetRequest, context: Ctx
    ) -> dataset_pb2.Dataset:
        name = parse_dataset(request.dataset.name, "dataset.name")
        auth.require(str(name.parent), "WRITER")
        paths = list(request.update_mask.paths)
        return await asyncio.to_thread(self.catalog.update_dataset, request.dataset, paths, name)

    # inference sets

    async def CreateInferenceSet(
        self, request: versioning_service_pb2.CreateInferenceSetRequest, context: Ctx
    ) -> dataset_pb2.InferenceSet:
        parent = parse_dataset(request.parent, "parent")
        auth.require(str(parent.parent), "WRITER")
        if request.inference_set.dataset_version > 0:
            # An old version can be pinned only while retention has not dropped it (NOT_FOUND, VERSION_EXPIRED).
            tables = self.reads.root.tables(parent)
            try:
                await asyncio.to_thread(tables.frames_at, request.inference_set.dataset_version)
            except NotFound as err:
                if err.reason == "VERSION_EXPIRED":
                    raise  # a version that does not exist is the catalog's INVALID_ARGUMENT, below

        return await asyncio.to_thread(
            self.catalog.create_inference_set,
            parent,
            request.inference_set_id,
            request.inference_set,
            request.request_id,
        )

    async def GetInferenceSet(
        self, request: versioning_service_pb2.GetInferenceSetRequest, context: Ctx
    ) -> dataset_pb2.InferenceSet:
        name = parse_inference_set(request.name)
        auth.require(str(ProjectName(name.project)))
        return await asyncio.to_thread(self.catalog.get_inference_set, name)

    async def ListInferenceSets(
        self, request: versioning_service_pb2.ListInferenceSetsRequest, context: Ctx
    ) -> versioning_service_pb2.ListInferenceSetsResponse:
        parent = parse_dataset(request.parent, "parent")
        auth.require(str(parent.parent))
        found, token = await asyncio.to_thread(
            self.catalog.list_inference_sets, parent, request.page_size, request.page_token
        )
        return versioning_service_pb2.ListInferenceSetsResponse(inference_sets=found, next_page_token=token)

    async def ListInferenceFrames(
        self, request: versioning_service_pb2.ListInferenceFramesRequest, context: Ctx
    ) -> versioning_service_pb2.ListInferenceFramesResponse:
        name = parse_inference_set(request.parent, "parent")
        auth.require(str(ProjectName(name.project)))
        return await asyncio.to_thread(self.reads.list_inference_frames, name, request.page_size, request.page_token)

    # versions, frames, history, diffs

    async def GetVersion(
        self, request: versioning_service_pb2.GetVersionRequest, context: Ctx
    ) -> dataset_pb2.DatasetVersion:
        auth.require(_project_of(request.name))
        return await asyncio.to_thread(self.reads.get_version, request.name)

    async def ListVersions(
        self, request: versioning_service_pb2.ListVersionsRequest, context: Ctx
    ) -> versioning_service_pb2.ListVersionsResponse:
        parent = parse_dataset(request.parent, "parent")
        auth.require(str(parent.parent))
        versions, token = await asyncio.to_thread(
            self.reads.list_versions, parent, request.page_size, request.page_token
        )
        return versioning_service_pb2.ListVersionsResponse(versions=versions, next_page_token=token)

    async def ListFrames(
        self, request: versioning_service_pb2.ListFramesRequest, context: Ctx
    ) -> versioning_service_pb2.ListFramesResponse:
        auth.require(_project_of(request.parent, "parent"))
        mask = request.read_mask if request.HasField("read_mask") else None
        frames, token, version = await asyncio.to_thread(
            self.reads.list_frames, request.parent, request.page_size, request.page_token, mask, request.filter
        )
        return versioning_service_pb2.ListFramesResponse(frames=frames, next_page_token=token, version=version)

    async def StreamFrames(
        self, request: versioning_service_pb2.StreamFramesRequest, context: Ctx
    ) -> AsyncIterator[versioning_service_pb2.StreamFramesResponse]:
        auth.require(_project_of(request.parent, "parent"))
        mask = request.read_mask if request.HasField("read_mask") else None
        version, batches = await asyncio.to_thread(
            self.reads.stream_frames, request.parent, request.batch_size, mask, request.filter
        )
        done = object()
        while True:
            chunk = await asyncio.to_thread(next, batches, done)
            if chunk is done:
                return
            yield versioning_service_pb2.StreamFramesResponse(frames=chunk, version=version)  # type: ignore[arg-type]

    async def GetFrame(self, request: versioning_service_pb2.GetFrameRequest, context: Ctx) -> frame_pb2.Frame:
        auth.require(_project_of(request.name))
        mask = request.read_mask if request.HasField("read_mask") else None
        return await asyncio.to_thread(self.reads.get_frame, request.name, mask)

    async def ListFrameHistory(
        self, request: versioning_service_pb2.ListFrameHistoryRequest, context: Ctx
    ) -> versioning_service_pb2.ListFrameHistoryResponse:
        auth.require(_project_of(request.name))
        revisions, token = await asyncio.to_thread(
            self.reads.history, request.name, request.page_size, request.page_token
        )
        return versioning_service_pb2.ListFrameHistoryResponse(revisions=revisions, next_page_token=token)

    async def DiffVersions(
        self, request: versioning_service_pb2.DiffVersionsRequest, context: Ctx
    ) -> versioning_service_pb2.DiffVersionsResponse:
        auth.require(_project_of(request.base, "base"))
        return await asyncio.to_thread(
            self.reads.diff, request.base, request.target, request.include_frames, request.page_size, request.page_token
        )

    # checkpoints

    async def CreateCheckpoint(
        self, request: versioning_service_pb2.CreateCheckpointRequest, context: Ctx
    ) -> dataset_pb2.Checkpoint:
        parent = parse_dataset(request.parent, "parent")
        auth.require(str(parent.parent), "WRITER")
        return await asyncio.to_thread(
            self.reads.create_checkpoint,
            parent,
            request.checkpoint_id,
            request.version,
            request.description,
            request.request_id,
        )

    async def GetCheckpoint(
        self, request: versioning_service_pb2.GetCheckpointRequest, context: Ctx
    ) -> dataset_pb2.Checkpoint:
        dataset, checkpoint = _split_child(request.name, "checkpoints")
        auth.require(str(dataset.parent))
        return await asyncio.to_thread(self.reads.get_checkpoint, dataset, checkpoint)

    async def ListCheckpoints(
        self, request: versioning_service_pb2.ListCheckpointsRequest, context: Ctx
    ) -> versioning_service_pb2.ListCheckpointsResponse:
        parent = parse_dataset(request.parent, "parent")
        auth.require(str(parent.parent))
        found = await asyncio.to_thread(self.reads.list_checkpoints, parent)
        return versioning_service_pb2.ListCheckpointsResponse(checkpoints=found)

    async def DeleteCheckpoint(
        self, request: versioning_service_pb2.DeleteCheckpointRequest, context: Ctx
    ) -> empty_pb2.Empty:
        dataset, checkpoint = _split_child(request.name, "checkpoints")
        auth.require(str(dataset.parent), "WRITER")
        await asyncio.to_thread(self.reads.delete_checkpoint, dataset, checkpoint)
        return empty_pb2.Empty()

    # segments

    async def CreateSegment(
        self, request: versioning_service_pb2.CreateSegmentRequest, context: Ctx
    ) -> dataset_pb2.Segment:
        parent = parse_dataset(request.parent, "parent")
        auth.require(str(parent.parent), "WRITER")
        return await asyncio.to_thread(
            self.segments.create, parent, request.segment_id, request.segment, request.request_id
        )

    async def UpdateSegment(
        self, request: versioning_service_pb2.UpdateSegmentRequest, context: Ctx
    ) -> dataset_pb2.Segment:
        dataset, segment_id = _split_child(request.segment.name, "segments")
        auth.require(str(dataset.parent), "WRITER")
        paths = list(request.update_mask.paths)
        return await asyncio.to_thread(self.segments.update, dataset, segment_id, request.segment, paths)

    async def GetSegment(self, request: versioning_service_pb2.GetSegmentRequest, context: Ctx) -> dataset_pb2.Segment:
        dataset, segment_id = _split_child(request.name, "segments")
        auth.require(str(dataset.parent))
        return await asyncio.to_thread(self.segments.get, dataset, segment_id)

    async def ListSegments(
        self, request: versioning_service_pb2.ListSegmentsRequest, context: Ctx
    ) -> versioning_service_pb2.ListSegmentsResponse:
        parent = parse_dataset(request.parent, "parent")
        auth.require(str(parent.parent))
        found, token = await asyncio.to_thread(self.segments.list, parent, request.page_size, request.page_token)
        return versioning_service_pb2.ListSegmentsResponse(segments=found, next_page_token=token)

    async def DeleteSegment(
        self, request: versioning_service_pb2.DeleteSegmentRequest, context: Ctx
    ) -> empty_pb2.Empty:
        dataset, segment_id = _split_child(request.name, "segments")
        auth.require(str(dataset.parent), "WRITER")
        await asyncio.to_thread(self.segments.delete, dataset, segment_id)
        return empty_pb2.Empty()


def _project_of(name: str, field: str = "name") -> str:
    """`projects/{p}` of any name under a project."""
    parts = name.split("/")
    if len(parts) < 2 or parts[0] != "projects":
        return str(parse_project(name, field))
    return str(parse_project("/".join(parts[:2]), field))


def _split_child(name: str, collection: str) -> tuple[DatasetName, str]:
    dataset_part, sep, child = name.rpartition(f"/{collection}/")
    if not sep:
        raise InvalidArgument.of(
            [FieldViolation("name", f"expected {{dataset}}/{collection}/{{id}}")], reason="INVALID_NAME"
        )
    return parse_dataset(dataset_part), check_id(child, "name")


def build(runtime: Runtime) -> Sequence[Service]:
    if runtime.settings.run_worker:
        runtime.background.append(Worker(runtime.settings, runtime.store, runtime.redis).run)
    return [
        Service(
            VersioningServicer(runtime),  # type: ignore[abstract]  # unimplemented RPCs answer UNIMPLEMENTED
            versioning_service_pb2_grpc.add_VersioningServiceServicer_to_server,
            "shoal.v1.VersioningService",
        )
    ]
