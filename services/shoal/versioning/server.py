"""VersioningService servicer: proto ⇄ domain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from google.protobuf import empty_pb2

from shoal.kit import auth
from shoal.kit.apikeys import (
    REVOCATION_MARKER_SECONDS,
    ApiKeyRecord,
    get_key,
    issue_key,
    list_keys,
    revoke_key,
    revoked_marker,
)
from shoal.kit.bootstrap import Runtime
from shoal.kit.context import Principal
from shoal.kit.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound, PermissionDenied
from shoal.kit.names import DatasetName, ProjectName, check_id, parse_dataset, parse_inference_set, parse_project
from shoal.kit.paging import offset_of, offset_token, page_size
from shoal.kit.server import Service
from shoal.storage.catalog import Catalog
from shoal.storage.deletion import Deleter
from shoal.storage.reads import Reads
from shoal.storage.segments import Segments
from shoal.v1 import dataset_pb2, frame_pb2, project_pb2, versioning_service_pb2, versioning_service_pb2_grpc
from shoal.versioning.worker import Worker

Ctx = Any


class VersioningServicer(versioning_service_pb2_grpc.VersioningServiceServicer):
    """The catalog, versions, checkpoints, frames at a version, history and diffs."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.catalog = Catalog(runtime.store)
        # A page or stream message of frames stays well under the message limit (a quarter of it).
        self.reads = Reads(
            runtime.store, runtime.settings.store, response_bytes=max(1 << 20, runtime.settings.max_message_bytes // 4)
        )
        self.segments = Segments(self.catalog, self.reads.root)
        self.deleter = Deleter(runtime.store, runtime.redis, runtime.settings.ingest_partitions)

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

    async def DeleteProject(
        self, request: versioning_service_pb2.DeleteProjectRequest, context: Ctx
    ) -> empty_pb2.Empty:
        name = parse_project(request.name)
        auth.require(str(name), "ADMIN")
        current = await asyncio.to_thread(self.catalog.get_project, name)
        _check_etag(request.etag, current.etag, str(name))
        await _shielded(self.deleter.delete(name, force=request.force))
        return empty_pb2.Empty()

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

    async def DeleteDataset(
        self, request: versioning_service_pb2.DeleteDatasetRequest, context: Ctx
    ) -> empty_pb2.Empty:
        name = parse_dataset(request.name)
        auth.require(str(name.parent), "ADMIN")
        current = await asyncio.to_thread(self.catalog.get_dataset, name)
        _check_etag(request.etag, current.etag, str(name))
        await _shielded(self.deleter.delete(name, force=request.force))
        return empty_pb2.Empty()

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
        return await asyncio.to_thread(
            self.reads.list_inference_frames, name, request.page_size, request.page_token, list(request.frame_ids)
        )

    async def DeleteInferenceSet(
        self, request: versioning_service_pb2.DeleteInferenceSetRequest, context: Ctx
    ) -> empty_pb2.Empty:
        name = parse_inference_set(request.name)
        auth.require(str(ProjectName(name.project)), "WRITER")
        await asyncio.to_thread(self.catalog.get_inference_set, name)
        await _shielded(self.deleter.delete(name, force=request.force))
        return empty_pb2.Empty()

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

    # API keys

    async def CreateApiKey(
        self, request: versioning_service_pb2.CreateApiKeyRequest, context: Ctx
    ) -> versioning_service_pb2.CreateApiKeyResponse:
        wanted = request.api_key
        who = auth.current()
        if not who.admin:
            if not wanted.projects:
                raise PermissionDenied(
                    "only the admin API key may make keys without a project", reason="ADMIN_REQUIRED"
                )
            for project in wanted.projects:
                auth.require(project, "ADMIN", who)
            for i, project in enumerate(wanted.projects):
                # A project admin's keys are for projects that exist (not for a name that a delete just freed).
                await asyncio.to_thread(self.catalog.get_project, parse_project(project, f"api_key.projects[{i}]"))
        expire = None
        if wanted.HasField("expire_time"):
            try:
                expire = wanted.expire_time.ToDatetime(tzinfo=UTC)
            except (ValueError, OverflowError):
                raise InvalidArgument.of([FieldViolation("api_key.expire_time", "out of range")]) from None
            if expire <= datetime.now(UTC):
                raise InvalidArgument.of([FieldViolation("api_key.expire_time", "must be in the future")])
        if who.expire_time:
            # A key cannot outlive the key that made it.
            limit = datetime.fromisoformat(who.expire_time)
            if expire is not None and expire > limit:
                raise InvalidArgument.of(
                    [FieldViolation("api_key.expire_time", f"must not be later than the calling key's ({limit})")]
                )
            expire = expire or limit
        role = _ROLE_NAMES.get(wanted.role, "")
        if not role:
            raise InvalidArgument.of([FieldViolation("api_key.role", "give READER, WRITER or ADMIN")])
        record, secret = await asyncio.to_thread(
            issue_key, self.runtime.store, wanted.display_name, list(wanted.projects), role, expire
        )
        return versioning_service_pb2.CreateApiKeyResponse(api_key=_api_key_proto(record), secret=secret)

    async def ListApiKeys(
        self, request: versioning_service_pb2.ListApiKeysRequest, context: Ctx
    ) -> versioning_service_pb2.ListApiKeysResponse:
        who = auth.current()
        size = page_size(request.page_size)
        records = [r for r in await asyncio.to_thread(list_keys, self.runtime.store) if _manages(who, r)]
        start = offset_of(request.page_token)
        page = records[start : start + size]
        token = offset_token(start + size) if start + size < len(records) else ""
        return versioning_service_pb2.ListApiKeysResponse(
            api_keys=[_api_key_proto(r) for r in page], next_page_token=token
        )

    async def DeleteApiKey(self, request: versioning_service_pb2.DeleteApiKeyRequest, context: Ctx) -> empty_pb2.Empty:
        who = auth.current()
        _, sep, key_id = request.name.partition("apiKeys/")
        if not sep or _ or not key_id:
            raise InvalidArgument.of([FieldViolation("name", "expected apiKeys/{api_key}")], reason="INVALID_NAME")
        record = await asyncio.to_thread(get_key, self.runtime.store, key_id)
        if record is None or not _manages(who, record):
            # A key the caller may not manage is as unknown to it as one that does not exist.
            raise NotFound(
                f"{request.name} does not exist", reason="API_KEY_NOT_FOUND", metadata={"name": request.name}
            )
        # Announce first, then delete: no moment in which a service accepts the key from its cache after the record
        # is gone.
        await self.runtime.redis.set(revoked_marker(key_id), b"1", ex=REVOCATION_MARKER_SECONDS)
        await asyncio.to_thread(revoke_key, self.runtime.store, key_id)
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


_ROLE_NAMES: Final = {
    project_pb2.API_KEY_ROLE_READER: "READER",
    project_pb2.API_KEY_ROLE_WRITER: "WRITER",
    project_pb2.API_KEY_ROLE_ADMIN: "ADMIN",
}
_ROLE_VALUES: Final = {name: value for value, name in _ROLE_NAMES.items()}


def _api_key_proto(record: ApiKeyRecord) -> project_pb2.ApiKey:
    out = project_pb2.ApiKey(
        name=f"apiKeys/{record.key_id}",
        display_name=record.display_name,
        projects=list(record.projects),
        role=_ROLE_VALUES.get(record.role, project_pb2.API_KEY_ROLE_UNSPECIFIED),
        key_prefix=record.key_prefix,
    )
    out.create_time.FromDatetime(datetime.fromisoformat(record.create_time))
    if record.expire_time:
        out.expire_time.FromDatetime(datetime.fromisoformat(record.expire_time))
    return out


def _check_etag(given: str, current: str, name: str) -> None:
    if given and given != current:
        raise FailedPrecondition(f"{name} changed since it was read (etag {given!r})", reason="ETAG_MISMATCH")


_deleting: set[asyncio.Task[Any]] = set()


async def _shielded(work: Coroutine[Any, Any, Any]) -> None:
    """Run a delete to its end even when the caller goes away (its deadline passes, it disconnects): a delete
    stopped halfway leaves half a resource until someone asks again."""
    task = asyncio.ensure_future(work)
    _deleting.add(task)
    task.add_done_callback(_deleting.discard)
    await asyncio.shield(task)


def _manages(who: Principal, record: ApiKeyRecord) -> bool:
    """A key is managed by the suite's admin, and by keys that are admins of every project it names."""
    return who.admin or (who.role == "ADMIN" and set(record.projects) <= who.projects)


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
            VersioningServicer(runtime),
            versioning_service_pb2_grpc.add_VersioningServiceServicer_to_server,
            "shoal.v1.VersioningService",
        )
    ]
