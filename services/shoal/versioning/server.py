"""VersioningService servicer: proto ⇄ domain. RPCs not overridden here answer UNIMPLEMENTED until their issue lands."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from shoal.kit import auth
from shoal.kit.bootstrap import Runtime
from shoal.kit.names import ProjectName, parse_dataset, parse_inference_set, parse_project
from shoal.kit.server import Service
from shoal.storage.catalog import Catalog
from shoal.v1 import dataset_pb2, project_pb2, versioning_service_pb2, versioning_service_pb2_grpc

Ctx = Any


class VersioningServicer(versioning_service_pb2_grpc.VersioningServiceServicer):
    """The catalog, versions, checkpoints, frames at a version, history and diffs."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.catalog = Catalog(runtime.store)

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


def build(runtime: Runtime) -> Sequence[Service]:
    return [
        Service(
            VersioningServicer(runtime),  # type: ignore[abstract]  # unimplemented RPCs answer UNIMPLEMENTED
            versioning_service_pb2_grpc.add_VersioningServiceServicer_to_server,
            "shoal.v1.VersioningService",
        )
    ]
