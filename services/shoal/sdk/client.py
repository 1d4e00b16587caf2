"""The Python client: `shoal.Client`.

client = shoal.Client(api_key="…")                       # or SHOAL_API_KEY / SHOAL_HOST in the environment
client.create_project("roads", shoal.LabelClassMap.from_classnames(["car", "person"]))
upload = client.create_or_update_dataset("roads", "drive-1", dataset=dataset)
client.get_upload(upload.name).frames_accepted
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import grpc
from google.protobuf import field_mask_pb2

from shoal.kit.settings import DEFAULT_GRPC_PORTS
from shoal.sdk import retries, uploads
from shoal.sdk.classmap import LabelClassMap
from shoal.sdk.errors import OperationError
from shoal.sdk.frames import PENDING_MASK, Inferences, LabeledDataset, LabeledFrame, UpdateGTLabelSet
from shoal.sdk.retries import RETRYABLE
from shoal.sdk.uploads import Item, UploadReport
from shoal.v1 import (
    asset_pb2,
    asset_service_pb2,
    asset_service_pb2_grpc,
    common_pb2,
    dataset_pb2,
    embedding_pb2,
    embedding_service_pb2,
    embedding_service_pb2_grpc,
    evaluation_pb2,
    frame_pb2,
    ingest_service_pb2,
    ingest_service_pb2_grpc,
    metrics_service_pb2,
    metrics_service_pb2_grpc,
    operation_pb2,
    operation_pb2_grpc,
    project_pb2,
    upload_pb2,
    versioning_service_pb2,
    versioning_service_pb2_grpc,
)
from shoal.validation import asset_kind_for

__all__ = ["RETRYABLE", "TERMINAL_STATES", "Client", "Item", "UploadReport", "asset_name", "parse_field_type"]

log = logging.getLogger("shoal.sdk")

TERMINAL_STATES: Final = frozenset(
    {upload_pb2.UPLOAD_STATE_COMMITTED, upload_pb2.UPLOAD_STATE_PARTIALLY_FAILED, upload_pb2.UPLOAD_STATE_FAILED}
)
_FIELD_TYPES: Final = {
    "STRING": dataset_pb2.FIELD_TYPE_STRING,
    "BOOL": dataset_pb2.FIELD_TYPE_BOOL,
    "BOOLEAN": dataset_pb2.FIELD_TYPE_BOOL,
    "INTEGER": dataset_pb2.FIELD_TYPE_INTEGER,
    "INT64": dataset_pb2.FIELD_TYPE_INTEGER,
    "FLOAT": dataset_pb2.FIELD_TYPE_FLOAT,
    "FLOAT64": dataset_pb2.FIELD_TYPE_FLOAT,
    "NUMERIC": dataset_pb2.FIELD_TYPE_NUMERIC,
}
ASSET_CHUNK: Final = 1 << 20
_ASSET_NAME_RE: Final = re.compile(r"(?:^|shoal://|/)assets/([a-z][a-z0-9-]*)/([a-z][a-z0-9-]*)/blobs/([0-9a-f]{64})")
_METRICS: Final = {"cosine": dataset_pb2.DISTANCE_METRIC_COSINE, "euclidean": dataset_pb2.DISTANCE_METRIC_EUCLIDEAN}


def parse_field_type(value: str) -> tuple[int, int]:
    """`"STRING"`, `"ARRAY<FLOAT>"` … → (type, element type)."""
    text = value.strip().upper()
    if text.startswith("ARRAY<") and text.endswith(">"):
        inner = _FIELD_TYPES.get(text[6:-1].strip())
        if inner is None:
            raise ValueError(f"unknown array element type in {value!r}")
        return dataset_pb2.FIELD_TYPE_ARRAY, inner
    found = _FIELD_TYPES.get(text)
    if found is None:
        raise ValueError(f"unknown field type {value!r}; use STRING, BOOL, INTEGER, FLOAT, NUMERIC or ARRAY<…>")
    return found, dataset_pb2.FIELD_TYPE_UNSPECIFIED


_TASKS: Final = {
    "": "EVALUATION_TASK_UNSPECIFIED",
    "classification": "EVALUATION_TASK_CLASSIFICATION_2D",
    "detection": "EVALUATION_TASK_DETECTION_2D",
    "instance_segmentation": "EVALUATION_TASK_INSTANCE_SEGMENTATION_2D",
    "semantic_segmentation": "EVALUATION_TASK_SEMANTIC_SEGMENTATION_2D",
    "keypoints": "EVALUATION_TASK_KEYPOINTS_2D",
    "cuboids": "EVALUATION_TASK_CUBOID_3D",
}


def _task(name: str) -> str:
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; use one of {', '.join(t for t in _TASKS if t)}")
    return _TASKS[name]


def _metadata_value(value: str | int | float | bool) -> common_pb2.MetadataValue:
    if isinstance(value, bool):
        return common_pb2.MetadataValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.MetadataValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.MetadataValue(float_value=value)
    return common_pb2.MetadataValue(string_value=value)


def _criterion(spec: Mapping[str, Any]) -> embedding_pb2.SelectionCriterion:
    strategy = str(spec["strategy"]).upper()
    kind = str(spec.get("input", "EMBEDDINGS" if strategy in {"DIVERSITY", "SIMILARITY", "TYPICALITY"} else "RANDOM"))
    out = embedding_pb2.SelectionCriterion(
        input=embedding_pb2.SelectionInput(
            type=f"SELECTION_INPUT_TYPE_{kind.upper()}",
            key=str(spec.get("key", "")),
            inference_set=str(spec.get("inference_set", "")),
        ),
        strategy=f"SELECTION_STRATEGY_TYPE_{strategy}",
        strength=float(spec.get("strength", 1.0)),
        minimum_distance=float(spec.get("minimum_distance", 0.0)),
        threshold=float(spec.get("threshold", 0.0)),
        operation=f"THRESHOLD_OPERATION_{str(spec.get('operation', 'UNSPECIFIED')).upper()}",
        query_frame_ids=list(spec.get("query_frame_ids", [])),
        neighbors=int(spec.get("neighbors", 0)),
    )
    out.target.update({str(k): float(v) for k, v in dict(spec.get("target", {})).items()})
    return out


def _keypoint_rules(rules: Sequence[str]) -> list[Any]:
    """Rule names (swapped_keypoints, …) as LabelErrorReason values; ValueError names the unknown ones."""
    wanted = [f"LABEL_ERROR_REASON_{r.upper()}" for r in rules]
    unknown = [w for w in wanted if w not in set(evaluation_pb2.LabelErrorReason.keys())]
    if unknown:
        raise ValueError(f"unknown rules: {', '.join(unknown)}")
    return [evaluation_pb2.LabelErrorReason.Value(w) for w in wanted]


class Client:
    """A connection to a Shoal suite. Addresses default to `host` and the standard ports; `address` (or
    SHOAL_ADDRESS) sends every service's calls to one `host:port`, such as an ingress that routes by gRPC service
    path; `addresses` (or SHOAL_<SERVICE>_ADDRESS) overrides any one service. `tls` (or SHOAL_TLS=true) encrypts
    the channels, trusting the system's roots or the PEM file `root_certificates` (SHOAL_TLS_ROOT_CERTS)."""

    def __init__(
        self,
        host: str | None = None,
        api_key: str | None = None,
        *,
        address: str | None = None,
        addresses: Mapping[str, str] | None = None,
        tls: bool | None = None,
        root_certificates: str | None = None,
        batch_size: int = 500,
        window: int = 8,
        timeout: float = 60.0,
        max_retries: int = 10,
        show_progress: bool | None = None,
    ) -> None:
        self.host = host or os.environ.get("SHOAL_HOST", "localhost")
        self.api_key = api_key or os.environ.get("SHOAL_API_KEY", "")
        if not self.api_key:
            raise ValueError("give api_key or set SHOAL_API_KEY")
        single = address or os.environ.get("SHOAL_ADDRESS", "")
        self.addresses = {
            name: (addresses or {}).get(name)
            or os.environ.get(f"SHOAL_{name.upper()}_ADDRESS")
            or single
            or f"{self.host}:{port}"
            for name, port in DEFAULT_GRPC_PORTS.items()
        }
        if tls is None:
            tls = os.environ.get("SHOAL_TLS", "").strip().lower() in ("1", "true", "yes", "on")
        roots_path = root_certificates or os.environ.get("SHOAL_TLS_ROOT_CERTS", "")
        self.batch_size = batch_size
        self.window = window
        self.timeout = timeout
        self.max_retries = max_retries
        self.show_progress = sys.stderr.isatty() if show_progress is None else show_progress
        options = [
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            # While a channel waits to reconnect, calls on it fail at once, spending retries. grpc's own schedule
            # (1 s, growing to 120 s) outlasts the SDK's backoff, so a service back after a restart would go
            # unnoticed for minutes; reconnect on the SDK's schedule instead.
            ("grpc.initial_reconnect_backoff_ms", int(retries.BACKOFF_BASE_SECONDS * 1000)),
            ("grpc.max_reconnect_backoff_ms", int(retries.BACKOFF_CAP_SECONDS * 1000)),
        ]
        if tls:
            roots = Path(roots_path).read_bytes() if roots_path else None
            credentials = grpc.ssl_channel_credentials(root_certificates=roots)
            self._channels = {
                name: grpc.secure_channel(addr, credentials, options=options) for name, addr in self.addresses.items()
            }
        else:
            self._channels = {
                name: grpc.insecure_channel(addr, options=options) for name, addr in self.addresses.items()
            }
        self.tls = bool(tls)
        self.versioning = versioning_service_pb2_grpc.VersioningServiceStub(self._channels["versioning"])
        self.ingest = ingest_service_pb2_grpc.IngestServiceStub(self._channels["ingest"])
        self.asset = asset_service_pb2_grpc.AssetServiceStub(self._channels["asset"])
        self.metrics = metrics_service_pb2_grpc.MetricsServiceStub(self._channels["metrics"])
        self.embedding = embedding_service_pb2_grpc.EmbeddingServiceStub(self._channels["embedding"])
        self.operations = {
            name: operation_pb2_grpc.OperationsServiceStub(self._channels[name]) for name in ("metrics", "embedding")
        }

    @property
    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-api-key", self.api_key), ("x-request-id", uuid.uuid4().hex))

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Any, request: Any) -> Any:
        """A unary call, retried on transient failures with backoff (honouring the server's RetryInfo)."""
        return retries.call(
            lambda: method(request, metadata=self._metadata, timeout=self.timeout),
            self.max_retries,
            type(request).__name__,
        )

    # catalog --------------------------------------------------------------------------------------------------

    def create_project(
        self,
        project_id: str,
        label_class_map: LabelClassMap,
        *,
        display_name: str = "",
        description: str = "",
        exist_ok: bool = False,
    ) -> project_pb2.Project:
        """Create a project with its class map."""
        request = versioning_service_pb2.CreateProjectRequest(
            project_id=project_id,
            project=project_pb2.Project(
                display_name=display_name, description=description, class_map=label_class_map.to_proto()
            ),
            request_id=uuid.uuid4().hex,
        )
        try:
            project: project_pb2.Project = self._call(self.versioning.CreateProject, request)
        except grpc.RpcError as err:
            if exist_ok and err.code() == grpc.StatusCode.ALREADY_EXISTS:
                return self.get_project(project_id)
            raise
        return project

    def get_project(self, project_id: str) -> project_pb2.Project:
        project: project_pb2.Project = self._call(
            self.versioning.GetProject, versioning_service_pb2.GetProjectRequest(name=f"projects/{project_id}")
        )
        return project

    def project_exists(self, project_id: str) -> bool:
        return self._exists(lambda: self.get_project(project_id))

    def create_dataset(
        self,
        project_id: str,
        dataset_id: str,
        *,
        embedding_dim: int | None = None,
        embedding_source: str | None = None,
        embedding_distance_metric: str = "cosine",
        metadata_schema: Sequence[Mapping[str, str]] | None = None,
        display_name: str = "",
        exist_ok: bool = False,
    ) -> dataset_pb2.Dataset:
        """Create a dataset; `metadata_schema` is a list of {"name": …, "type": "STRING" | … | "ARRAY<FLOAT>"}."""
        dataset = dataset_pb2.Dataset(
            display_name=display_name,
            embedding_dimension=embedding_dim or 0,
            embedding_source=embedding_source or "",
            distance_metric=_METRICS[embedding_distance_metric],
            metadata_schema=_schema(metadata_schema or []),
        )
        request = versioning_service_pb2.CreateDatasetRequest(
            parent=f"projects/{project_id}", dataset_id=dataset_id, dataset=dataset, request_id=uuid.uuid4().hex
        )
        try:
            created: dataset_pb2.Dataset = self._call(self.versioning.CreateDataset, request)
        except grpc.RpcError as err:
            if exist_ok and err.code() == grpc.StatusCode.ALREADY_EXISTS:
                return self.get_dataset(project_id, dataset_id)
            raise
        return created

    def get_dataset(self, project_id: str, dataset_id: str) -> dataset_pb2.Dataset:
        request = versioning_service_pb2.GetDatasetRequest(name=f"projects/{project_id}/datasets/{dataset_id}")
        dataset: dataset_pb2.Dataset = self._call(self.versioning.GetDataset, request)
        return dataset

    def dataset_exists(self, project_id: str, dataset_id: str) -> bool:
        return self._exists(lambda: self.get_dataset(project_id, dataset_id))

    def inference_set_exists(self, project_id: str, dataset_id: str, inference_set_id: str) -> bool:
        name = f"projects/{project_id}/datasets/{dataset_id}/inferenceSets/{inference_set_id}"
        return self._exists(
            lambda: self._call(
                self.versioning.GetInferenceSet, versioning_service_pb2.GetInferenceSetRequest(name=name)
            )
        )

    def _exists(self, get: Any) -> bool:
        try:
            get()
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        return True

    def update_dataset_object_metadata_schema(
        self, project_id: str, dataset_id: str, object_metadata_fields: Sequence[Mapping[str, str]]
    ) -> dataset_pb2.Dataset:
        """Add queryable metadata fields: [{"name": "weather", "type": "STRING"}, …]. Fields are never retyped."""
        current = self.get_dataset(project_id, dataset_id)
        merged = dataset_pb2.MetadataSchema()
        merged.CopyFrom(current.metadata_schema)
        known = {f.name for f in merged.fields}
        for f in _schema(object_metadata_fields).fields:
            if f.name not in known:
                merged.fields.append(f)
        request = versioning_service_pb2.UpdateDatasetRequest(
            dataset=dataset_pb2.Dataset(name=current.name, etag=current.etag, metadata_schema=merged),
            update_mask=field_mask_pb2.FieldMask(paths=["metadata_schema"]),
        )
        updated: dataset_pb2.Dataset = self._call(self.versioning.UpdateDataset, request)
        return updated

    def create_inferences_set(
        self, project_id: str, dataset_id: str, inferences_id: str, *, model_id: str = "", dataset_version: int = 0
    ) -> dataset_pb2.InferenceSet:
        request = versioning_service_pb2.CreateInferenceSetRequest(
            parent=f"projects/{project_id}/datasets/{dataset_id}",
            inference_set_id=inferences_id,
            inference_set=dataset_pb2.InferenceSet(model_id=model_id, dataset_version=dataset_version),
            request_id=uuid.uuid4().hex,
        )
        created: dataset_pb2.InferenceSet = self._call(self.versioning.CreateInferenceSet, request)
        return created

    # versions and reads ---------------------------------------------------------------------------------------

    @staticmethod
    def version_ref(project_id: str, dataset_id: str, version: int | None = None, checkpoint: str | None = None) -> str:
        """The name of a version: newest (default), a number, or a checkpoint."""
        base = f"projects/{project_id}/datasets/{dataset_id}"
        if checkpoint:
            return f"{base}/checkpoints/{checkpoint}"
        return f"{base}/versions/{version}" if version else base

    def list_versions(self, project_id: str, dataset_id: str) -> list[dataset_pb2.DatasetVersion]:
        """Every version of a dataset, newest first."""
        out: list[dataset_pb2.DatasetVersion] = []
        token = ""
        while True:
            request = versioning_service_pb2.ListVersionsRequest(
                parent=f"projects/{project_id}/datasets/{dataset_id}", page_size=1000, page_token=token
            )
            reply = self._call(self.versioning.ListVersions, request)
            out.extend(reply.versions)
            token = reply.next_page_token
            if not token:
                return out

    def get_version(
        self, project_id: str, dataset_id: str, version: int | None = None, *, checkpoint: str | None = None
    ) -> dataset_pb2.DatasetVersion:
        request = versioning_service_pb2.GetVersionRequest(
            name=self.version_ref(project_id, dataset_id, version, checkpoint)
        )
        found: dataset_pb2.DatasetVersion = self._call(self.versioning.GetVersion, request)
        return found

    def get_frames(
        self,
        project_id: str,
        dataset_id: str,
        *,
        version: int | None = None,
        checkpoint: str | None = None,
        fields: Sequence[str] | None = None,
        filter: str = "",
        page_size: int = 500,
    ) -> Iterator[frame_pb2.Frame]:
        """Every frame of a version (newest by default), in frame id order, paged; `fields` masks the frames and
        `filter` selects on queryable metadata (`weather = "rain" AND speed > 10`)."""
        token = ""
        parent = self.version_ref(project_id, dataset_id, version, checkpoint)
        while True:
            request = versioning_service_pb2.ListFramesRequest(
                parent=parent, page_size=page_size, page_token=token, filter=filter
            )
            if fields:
                request.read_mask.paths.extend(fields)
            reply = self._call(self.versioning.ListFrames, request)
            yield from reply.frames
            token = reply.next_page_token
            if not token:
                return

    def stream_frames(
        self,
        project_id: str,
        dataset_id: str,
        *,
        version: int | None = None,
        checkpoint: str | None = None,
        filter: str = "",
        batch_size: int = 500,
    ) -> Iterator[frame_pb2.Frame]:
        """Every frame of a version over one server stream (for exports and training jobs). A stream that breaks
        is reopened on the version it was reading, skipping the frames already received."""
        parent = self.version_ref(project_id, dataset_id, version, checkpoint)
        received = 0
        skip = 0

        def open_stream() -> Iterable[versioning_service_pb2.StreamFramesResponse]:
            nonlocal skip
            skip = received
            request = versioning_service_pb2.StreamFramesRequest(parent=parent, filter=filter, batch_size=batch_size)
            stream: Iterable[versioning_service_pb2.StreamFramesResponse] = self.versioning.StreamFrames(
                request, metadata=self._metadata
            )
            return stream

        def position() -> int:
            return received

        for reply in retries.server_stream(open_stream, position, self.max_retries, "StreamFrames"):
            if reply.version:
                # Pinned, so a reopened stream reads the same frames in the same order even if a version is added.
                parent = self.version_ref(project_id, dataset_id, reply.version)
            frames = reply.frames[skip:] if skip else reply.frames
            skip = max(0, skip - len(reply.frames))
            received += len(frames)
            yield from frames

    def get_frame(
        self,
        project_id: str,
        dataset_id: str,
        frame_id: str,
        *,
        version: int | None = None,
        checkpoint: str | None = None,
    ) -> frame_pb2.Frame:
        request = versioning_service_pb2.GetFrameRequest(
            name=f"{self.version_ref(project_id, dataset_id, version, checkpoint)}/frames/{frame_id}"
        )
        frame: frame_pb2.Frame = self._call(self.versioning.GetFrame, request)
        return frame

    def get_frame_history(self, project_id: str, dataset_id: str, frame_id: str) -> list[dataset_pb2.FrameRevision]:
        """Every version in which the frame changed, oldest first, with the change and the frame after it."""
        out: list[dataset_pb2.FrameRevision] = []
        token = ""
        while True:
            request = versioning_service_pb2.ListFrameHistoryRequest(
                name=f"projects/{project_id}/datasets/{dataset_id}/frames/{frame_id}", page_size=1000, page_token=token
            )
            reply = self._call(self.versioning.ListFrameHistory, request)
            out.extend(reply.revisions)
            token = reply.next_page_token
            if not token:
                return out

    def diff(
        self, project_id: str, dataset_id: str, base: int | str, target: int | str, *, include_frames: bool = False
    ) -> versioning_service_pb2.DiffVersionsResponse:
        """Frames added, deleted and modified between two versions (numbers or checkpoint names)."""

        def ref(v: int | str) -> str:
            return self.version_ref(
                project_id, dataset_id, v if isinstance(v, int) else None, v if isinstance(v, str) else None
            )

        merged = versioning_service_pb2.DiffVersionsResponse()
        token = ""
        while True:
            request = versioning_service_pb2.DiffVersionsRequest(
                base=ref(base), target=ref(target), include_frames=include_frames, page_size=1000, page_token=token
            )
            reply = self._call(self.versioning.DiffVersions, request)
            merged.diffs.extend(reply.diffs)
            merged.added_count, merged.modified_count, merged.deleted_count = (
                reply.added_count,
                reply.modified_count,
                reply.deleted_count,
            )
            token = reply.next_page_token
            if not token:
                return merged

    def create_checkpoint(
        self, project_id: str, dataset_id: str, checkpoint_id: str, *, version: int = 0, description: str = ""
    ) -> dataset_pb2.Checkpoint:
        """Name a version (the newest by default); a checkpointed version is kept forever."""
        request = versioning_service_pb2.CreateCheckpointRequest(
            parent=f"projects/{project_id}/datasets/{dataset_id}",
            checkpoint_id=checkpoint_id,
            version=version,
            description=description,
            request_id=uuid.uuid4().hex,
        )
        created: dataset_pb2.Checkpoint = self._call(self.versioning.CreateCheckpoint, request)
        return created

    def list_checkpoints(self, project_id: str, dataset_id: str) -> list[dataset_pb2.Checkpoint]:
        request = versioning_service_pb2.ListCheckpointsRequest(parent=f"projects/{project_id}/datasets/{dataset_id}")
        return list(self._call(self.versioning.ListCheckpoints, request).checkpoints)

    def delete_checkpoint(self, project_id: str, dataset_id: str, checkpoint_id: str) -> None:
        request = versioning_service_pb2.DeleteCheckpointRequest(
            name=f"projects/{project_id}/datasets/{dataset_id}/checkpoints/{checkpoint_id}"
        )
        self._call(self.versioning.DeleteCheckpoint, request)

    def list_projects(self) -> list[project_pb2.Project]:
        """The projects this key may read."""
        return self._pages(
            lambda size, token: self._call(
                self.versioning.ListProjects,
                versioning_service_pb2.ListProjectsRequest(page_size=size, page_token=token),
            ),
            "projects",
            None,
        )

    def list_datasets(self, project_id: str) -> list[dataset_pb2.Dataset]:
        """A project's datasets."""
        return self._pages(
            lambda size, token: self._call(
                self.versioning.ListDatasets,
                versioning_service_pb2.ListDatasetsRequest(
                    parent=f"projects/{project_id}", page_size=size, page_token=token
                ),
            ),
            "datasets",
            None,
        )

    def list_uploads(self, project_id: str, dataset_id: str, *, limit: int | None = None) -> list[upload_pb2.Upload]:
        """A dataset's uploads, newest first, with their counts and states."""
        return self._pages(
            lambda size, token: self._call(
                self.ingest.ListUploads,
                ingest_service_pb2.ListUploadsRequest(
                    parent=f"projects/{project_id}/datasets/{dataset_id}", page_size=size, page_token=token
                ),
            ),
            "uploads",
            limit,
        )

    # deletes and API keys ---------------------------------------------------------------------------------------

    def delete_project(self, project_id: str, *, force: bool = False) -> None:
        """Delete a project and everything in it (datasets, versions, assets, results, keys scoped to it alone).
        Refused (FAILED_PRECONDITION) while an upload into it is being applied, unless `force`."""
        request = versioning_service_pb2.DeleteProjectRequest(name=f"projects/{project_id}", force=force)
        self._call(self.versioning.DeleteProject, request)

    def delete_dataset(self, project_id: str, dataset_id: str, *, force: bool = False) -> None:
        """Delete a dataset with all its versions, inference sets, assets and results."""
        request = versioning_service_pb2.DeleteDatasetRequest(
            name=f"projects/{project_id}/datasets/{dataset_id}", force=force
        )
        self._call(self.versioning.DeleteDataset, request)

    def delete_inference_set(
        self, project_id: str, dataset_id: str, inference_set_id: str, *, force: bool = False
    ) -> None:
        """Delete an inference set and its evaluations."""
        request = versioning_service_pb2.DeleteInferenceSetRequest(
            name=f"projects/{project_id}/datasets/{dataset_id}/inferenceSets/{inference_set_id}", force=force
        )
        self._call(self.versioning.DeleteInferenceSet, request)

    def create_api_key(
        self,
        projects: Sequence[str],
        *,
        role: str = "READER",
        display_name: str = "",
        expires_in: timedelta | None = None,
    ) -> versioning_service_pb2.CreateApiKeyResponse:
        """Make an API key for `projects` (`projects/{id}` or bare ids) with `role` (READER, WRITER or ADMIN). The
        response's `secret` is shown this once; keep it.

        >>> made = client.create_api_key(["roads"], role="WRITER", expires_in=timedelta(days=30))
        >>> shoal.Client(api_key=made.secret)
        """
        name = f"API_KEY_ROLE_{role.upper()}"
        if name not in {"API_KEY_ROLE_READER", "API_KEY_ROLE_WRITER", "API_KEY_ROLE_ADMIN"}:
            raise ValueError(f"role must be one of READER, WRITER, ADMIN, got {role!r}")
        key = project_pb2.ApiKey(
            display_name=display_name,
            projects=[p if p.startswith("projects/") else f"projects/{p}" for p in projects],
            role=name,
        )
        if expires_in is not None:
            key.expire_time.FromDatetime(datetime.now(UTC) + expires_in)
        made: versioning_service_pb2.CreateApiKeyResponse = self._call(
            self.versioning.CreateApiKey, versioning_service_pb2.CreateApiKeyRequest(api_key=key)
        )
        return made

    def list_api_keys(self) -> list[project_pb2.ApiKey]:
        """The keys this key may manage (all, for the suite's admin key); never their secrets."""
        return self._pages(
            lambda size, token: self._call(
                self.versioning.ListApiKeys, versioning_service_pb2.ListApiKeysRequest(page_size=size, page_token=token)
            ),
            "api_keys",
            None,
        )

    def delete_api_key(self, name: str) -> None:
        """Revoke a key (`apiKeys/{id}`): the next call with it is refused on every service."""
        self._call(self.versioning.DeleteApiKey, versioning_service_pb2.DeleteApiKeyRequest(name=name))

    def get_inference_frames(
        self,
        project_id: str,
        dataset_id: str,
        inferences_id: str,
        *,
        frame_ids: Sequence[str] = (),
        page_size: int = 500,
    ) -> Iterator[versioning_service_pb2.InferenceFramePair]:
        """An inference set's predictions, each beside the ground truth of the version the set is pinned to: every
        frame, or only `frame_ids` (up to 1,000)."""
        token = ""
        while True:
            request = versioning_service_pb2.ListInferenceFramesRequest(
                parent=f"projects/{project_id}/datasets/{dataset_id}/inferenceSets/{inferences_id}",
                page_size=page_size,
                page_token=token,
                frame_ids=frame_ids,
            )
            reply = self._call(self.versioning.ListInferenceFrames, request)
            yield from reply.frames
            token = reply.next_page_token
            if not token:
                return

    # segments -------------------------------------------------------------------------------------------------

    def create_segment(
        self,
        project_id: str,
        dataset_id: str,
        segment_id: str,
        *,
        frame_ids: Iterable[str] = (),
        label_ids: Iterable[tuple[str, str]] = (),
        description: str = "",
        display_name: str = "",
    ) -> dataset_pb2.Segment:
        """A segment of frames and (frame id, label id) labels, each pinned to the newest version."""
        segment = dataset_pb2.Segment(display_name=display_name, description=description)
        segment.elements.extend(dataset_pb2.SegmentElement(frame_id=f) for f in frame_ids)
        segment.elements.extend(dataset_pb2.SegmentElement(frame_id=f, label_id=lbl) for f, lbl in label_ids)
        request = versioning_service_pb2.CreateSegmentRequest(
            parent=f"projects/{project_id}/datasets/{dataset_id}",
            segment_id=segment_id,
            segment=segment,
            request_id=uuid.uuid4().hex,
        )
        created: dataset_pb2.Segment = self._call(self.versioning.CreateSegment, request)
        return created

    def get_segment(self, project_id: str, dataset_id: str, segment_id: str) -> dataset_pb2.Segment:
        """The segment; elements whose frames changed since they were pinned have `outdated` set."""
        request = versioning_service_pb2.GetSegmentRequest(
            name=f"projects/{project_id}/datasets/{dataset_id}/segments/{segment_id}"
        )
        found: dataset_pb2.Segment = self._call(self.versioning.GetSegment, request)
        return found

    def list_segments(self, project_id: str, dataset_id: str) -> list[dataset_pb2.Segment]:
        request = versioning_service_pb2.ListSegmentsRequest(
            parent=f"projects/{project_id}/datasets/{dataset_id}", page_size=1000
        )
        return list(self._call(self.versioning.ListSegments, request).segments)

    def update_segment(
        self, segment: dataset_pb2.Segment, *, state: str | None = None, add_frame_ids: Iterable[str] = ()
    ) -> dataset_pb2.Segment:
        """Change a segment's state ("open", "resolved", "archived") and/or add frames, pinned to the newest
        version."""
        changed = dataset_pb2.Segment(name=segment.name, etag=segment.etag, state=segment.state)
        paths = []
        if state is not None:
            changed.state = dataset_pb2.SegmentState.Value(f"SEGMENT_STATE_{state.upper()}")  # type: ignore[assignment]
            paths.append("state")
        extra = list(add_frame_ids)
        if extra:
            changed.elements.extend(segment.elements)
            changed.elements.extend(dataset_pb2.SegmentElement(frame_id=f) for f in extra)
            paths.append("elements")
        request = versioning_service_pb2.UpdateSegmentRequest(
            segment=changed, update_mask=field_mask_pb2.FieldMask(paths=paths)
        )
        updated: dataset_pb2.Segment = self._call(self.versioning.UpdateSegment, request)
        return updated

    def delete_segment(self, project_id: str, dataset_id: str, segment_id: str) -> None:
        request = versioning_service_pb2.DeleteSegmentRequest(
            name=f"projects/{project_id}/datasets/{dataset_id}/segments/{segment_id}"
        )
        self._call(self.versioning.DeleteSegment, request)

    # assets ---------------------------------------------------------------------------------------------------

    def upload_asset(
        self,
        project_id: str,
        dataset_id: str,
        source: str | os.PathLike[str] | bytes,
        *,
        kind: int | str | None = None,
        filename: str = "",
        content_type: str = "",
        expected_width: int = 0,
        expected_height: int = 0,
        validate_only: bool = False,
    ) -> asset_pb2.Asset:
        """Upload a file (a path) or bytes as an asset of the dataset, in 1 MiB chunks; it is validated by its kind
        (from the file name when not given) and stored once per distinct content. Returns the Asset, whose `url`
        loads it."""
        if isinstance(source, bytes):
            name = filename or "blob"
            size = len(source)
        else:
            name = filename or os.path.basename(os.fspath(source))
            size = os.path.getsize(source)
        header = asset_service_pb2.AssetUploadHeader(
            parent=f"projects/{project_id}/datasets/{dataset_id}",
            kind=_asset_kind(kind, name),
            content_type=content_type,
            filename=name,
            size_bytes=size,
            expected_width=expected_width,
            expected_height=expected_height,
            validate_only=validate_only,
        )

        def requests() -> Iterator[asset_service_pb2.UploadAssetRequest]:
            yield asset_service_pb2.UploadAssetRequest(header=header)
            if isinstance(source, bytes):
                for start in range(0, len(source), ASSET_CHUNK):
                    yield asset_service_pb2.UploadAssetRequest(chunk=source[start : start + ASSET_CHUNK])
                return
            with open(source, "rb") as fh:
                while chunk := fh.read(ASSET_CHUNK):
                    yield asset_service_pb2.UploadAssetRequest(chunk=chunk)

        # Content-addressed, so sending the same bytes again after a broken stream stores nothing twice.
        asset: asset_pb2.Asset = retries.call(
            lambda: self.asset.UploadAsset(requests(), metadata=self._metadata, timeout=max(self.timeout, size / 5e6)),
            self.max_retries,
            "UploadAsset",
        )
        return asset

    def upload_asset_from_filepath(
        self, project_id: str, dataset_id: str, filepath: str | os.PathLike[str], *, kind: int | str | None = None
    ) -> str:
        """Upload a local file as an asset; returns its download URL (usable in frames: Shoal recognises its own
        asset URLs, and `sign_asset_url` renews one that expired)."""
        return self.upload_asset(project_id, dataset_id, filepath, kind=kind).url

    def upload_asset_from_url(
        self, project_id: str, dataset_id: str, url: str, *, kind: int | str | None = None
    ) -> str:
        """Fetch `url` (streamed to a temporary file) and upload it as an asset; returns the asset's download URL."""
        import shutil  # noqa: PLC0415
        import tempfile  # noqa: PLC0415
        import urllib.parse  # noqa: PLC0415
        import urllib.request  # noqa: PLC0415

        name = os.path.basename(urllib.parse.urlsplit(url).path) or "download"
        with tempfile.TemporaryDirectory(prefix="shoal-asset-") as folder:
            path = os.path.join(folder, name)
            with urllib.request.urlopen(url, timeout=self.timeout) as response, open(path, "wb") as out:
                shutil.copyfileobj(response, out, ASSET_CHUNK)
            return self.upload_asset(project_id, dataset_id, path, kind=kind).url

    def upload_asset_direct(
        self,
        project_id: str,
        dataset_id: str,
        filepath: str | os.PathLike[str],
        *,
        kind: int | str | None = None,
        ttl_seconds: int = 3600,
    ) -> asset_pb2.Asset:
        """Upload a large file straight to the store through a presigned URL, then have the service check it."""
        import urllib.request  # noqa: PLC0415

        name = os.path.basename(os.fspath(filepath))
        size = os.path.getsize(filepath)
        parent = f"projects/{project_id}/datasets/{dataset_id}"
        header = asset_service_pb2.AssetUploadHeader(
            parent=parent, kind=_asset_kind(kind, name), filename=name, size_bytes=size
        )
        request = asset_service_pb2.CreateUploadUrlRequest(header=header)
        request.ttl.FromSeconds(ttl_seconds)
        target: asset_service_pb2.CreateUploadUrlResponse = self._call(self.asset.CreateUploadUrl, request)
        with open(filepath, "rb") as fh:
            put = urllib.request.Request(
                target.url,
                data=fh,
                method="PUT",
                headers={
                    # Without a type urllib sends a form type, which some S3 servers read as a form, not the file.
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(size),
                    **target.headers,
                },
            )
            with urllib.request.urlopen(put, timeout=max(self.timeout, size / 5e6)):
                pass
        done: asset_pb2.Asset = self._call(
            self.asset.CompleteDirectUpload,
            asset_service_pb2.CompleteDirectUploadRequest(parent=parent, upload_id=target.upload_id),
        )
        return done

    def get_asset(self, name: str) -> asset_pb2.Asset:
        """An asset by name (`projects/{p}/datasets/{d}/assets/{sha256}`), with fresh URLs."""
        asset: asset_pb2.Asset = self._call(self.asset.GetAsset, asset_service_pb2.GetAssetRequest(name=name))
        return asset

    def read_asset(self, name: str, offset: int = 0, length: int = 0) -> bytes:
        """An asset's bytes (a range of them when `offset`/`length` are given). A stream that breaks is reopened
        at the first byte not yet received."""
        chunks: list[bytes] = []
        received = 0

        def open_stream() -> Iterable[asset_service_pb2.ReadAssetResponse]:
            if length and received >= length:
                return ()
            request = asset_service_pb2.ReadAssetRequest(
                name=name, offset=offset + received, length=length - received if length else 0
            )
            stream: Iterable[asset_service_pb2.ReadAssetResponse] = self.asset.ReadAsset(
                request, metadata=self._metadata, timeout=self.timeout
            )
            return stream

        def position() -> int:
            return received

        for reply in retries.server_stream(open_stream, position, self.max_retries, "ReadAsset"):
            chunks.append(reply.chunk)
            received += len(reply.chunk)
        return b"".join(chunks)

    def list_assets(self, project_id: str, dataset_id: str, page_size: int = 100) -> Iterator[asset_pb2.Asset]:
        """Every asset of a dataset."""
        token = ""
        while True:
            page: asset_service_pb2.ListAssetsResponse = self._call(
                self.asset.ListAssets,
                asset_service_pb2.ListAssetsRequest(
                    parent=f"projects/{project_id}/datasets/{dataset_id}", page_size=page_size, page_token=token
                ),
            )
            yield from page.assets
            if not (token := page.next_page_token):
                return

    def delete_asset(self, name: str) -> None:
        self._call(self.asset.DeleteAsset, asset_service_pb2.DeleteAssetRequest(name=name))

    def sign_asset_url(self, name_or_url: str, ttl_seconds: int = 3600) -> str:
        """A fresh signed download URL for an asset, by name or by any of its (possibly expired) URLs."""
        name = asset_name(name_or_url)
        request = asset_service_pb2.SignAssetUrlRequest(name=name)
        request.ttl.FromSeconds(ttl_seconds)
        signed: asset_service_pb2.SignAssetUrlResponse = self._call(self.asset.SignAssetUrl, request)
        return signed.url

    def resolve_masks(self, target: str, items: Sequence[Item], pending: Mapping[str, bytes]) -> None:
        """Upload masks given as arrays (`collection.pending_masks`) as mask assets of the target's dataset and put
        their URLs into the labels that wait for them. The create/update methods do this themselves; call it before
        `upload` when sending a collection's items directly."""
        parts = target.split("/")
        project_id, dataset_id = parts[1], parts[3]
        urls = {
            placeholder: self.upload_asset(
                project_id, dataset_id, png, kind=asset_pb2.ASSET_KIND_MASK, filename="mask.png"
            ).url
            for placeholder, png in pending.items()
        }
        for item in items:
            for label in item.labels:
                for shape in (label.semantic_segmentation_2d, label.instance_segmentation_2d):
                    if shape.mask_url.startswith(PENDING_MASK):
                        shape.mask_url = urls[shape.mask_url]

    # operations and evaluations -------------------------------------------------------------------------------

    def wait_operation(
        self, operation: operation_pb2.Operation, *, service: str = "metrics", timeout: float | None = None
    ) -> operation_pb2.Operation:
        """Poll until the operation is done; raises OperationError when it failed, TimeoutError when `timeout`
        passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while not operation.done:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{operation.name} still running after {timeout} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)
            operation = self._call(
                self.operations[service].GetOperation, operation_pb2.GetOperationRequest(name=operation.name)
            )
        if operation.HasField("error"):
            e = operation.error
            raise OperationError(operation.name, e.code, e.reason, e.message)
        return operation

    def cancel_operation(self, operation: operation_pb2.Operation, *, service: str = "metrics") -> None:
        """Ask a running operation to stop; it ends with a CANCELLED error at its next progress report."""
        self._call(self.operations[service].CancelOperation, operation_pb2.CancelOperationRequest(name=operation.name))

    def start_evaluation(
        self,
        project_id: str,
        dataset_id: str,
        inference_set_id: str,
        *,
        task: str = "",
        version: int | str | None = None,
        iou_thresholds: Sequence[float] = (),
        confidence_threshold: float = 0.0,
        area_ranges: Sequence[tuple[str, float, float]] = (),
        max_detections: Sequence[int] = (),
        classes: Sequence[str] = (),
        stratify_by: str = "",
        stratify_values: Sequence[str | int | float | bool] = (),
        match_iou_threshold: float = 0.0,
        match_confidence_threshold: float = 0.0,
        keypoint_sigmas: Mapping[str, Mapping[str, float]] | None = None,
        top_k: int = 0,
    ) -> operation_pb2.Operation:
        """Evaluate an inference set against the labels of the dataset version it is pinned to (or `version`: a
        version number or a checkpoint id). `task` is one of classification, detection, instance_segmentation,
        semantic_segmentation, keypoints, cuboids (default: from the predictions). The same question asked again is
        answered from the stored results (the operation comes back done). See `evaluate` for the arguments."""
        params = evaluation_pb2.EvaluationParams(
            task=_task(task),
            iou_thresholds=list(iou_thresholds),
            confidence_threshold=confidence_threshold,
            area_ranges=[evaluation_pb2.AreaRange(name=n, min_area=lo, max_area=hi) for n, lo, hi in area_ranges],
            max_detections=list(max_detections),
            classes=list(classes),
            stratify_by=stratify_by,
            stratify_values=[_metadata_value(v) for v in stratify_values],
            match_iou_threshold=match_iou_threshold,
            match_confidence_threshold=match_confidence_threshold,
            top_k=top_k,
        )
        for cls, sigmas in (keypoint_sigmas or {}).items():
            params.keypoint_sigmas[cls].sigmas.update(sigmas)
        dataset = f"projects/{project_id}/datasets/{dataset_id}"
        ref = ""
        if isinstance(version, int):
            ref = f"{dataset}/versions/{version}"
        elif version:
            ref = f"{dataset}/checkpoints/{version}"
        request = metrics_service_pb2.CreateEvaluationRequest(
            parent=f"{dataset}/inferenceSets/{inference_set_id}",
            dataset_version=ref,
            params=params,
            request_id=uuid.uuid4().hex,
        )
        operation: operation_pb2.Operation = self._call(self.metrics.CreateEvaluation, request)
        return operation

    def evaluate(
        self,
        project_id: str,
        dataset_id: str,
        inference_set_id: str,
        *,
        timeout: float | None = 3600.0,
        **params: Any,
    ) -> evaluation_pb2.Evaluation:
        """Evaluate an inference set against the labels of the dataset version it is pinned to and wait for the
        results. Keyword arguments: `task` (classification, detection, instance_segmentation, semantic_segmentation,
        keypoints, cuboids; default: from the predictions), `version` (a version number or a checkpoint id instead
        of the pinned version), `iou_thresholds`, `confidence_threshold`, `area_ranges` ((name, min, max) tuples),
        `max_detections`, `classes`, `stratify_by` and `stratify_values`, `match_iou_threshold` and
        `match_confidence_threshold` (confusion matrix, per-frame matches, label-error candidates),
        `keypoint_sigmas` ({class: {keypoint: sigma}}), `top_k`. The same question asked again is answered from the
        stored results."""
        operation = self.start_evaluation(project_id, dataset_id, inference_set_id, **params)
        done = self.wait_operation(operation, timeout=timeout)
        evaluation = evaluation_pb2.Evaluation()
        done.response.Unpack(evaluation)
        return evaluation

    def get_metrics(self, evaluation_name: str) -> evaluation_pb2.Evaluation:
        """An evaluation with its results (`result.metrics`, `per_class`, `confusion_matrix`, `pr_curves`, `strata`)."""
        found: evaluation_pb2.Evaluation = self._call(
            self.metrics.GetEvaluation, metrics_service_pb2.GetEvaluationRequest(name=evaluation_name)
        )
        return found

    def list_evaluations(
        self, project_id: str, dataset_id: str, inference_set_id: str
    ) -> list[evaluation_pb2.Evaluation]:
        parent = f"projects/{project_id}/datasets/{dataset_id}/inferenceSets/{inference_set_id}"
        out: list[evaluation_pb2.Evaluation] = []
        token = ""
        while True:
            reply = self._call(
                self.metrics.ListEvaluations,
                metrics_service_pb2.ListEvaluationsRequest(parent=parent, page_size=1000, page_token=token),
            )
            out.extend(reply.evaluations)
            token = reply.next_page_token
            if not token:
                return out

    def label_error_candidates(
        self, evaluation_name: str, *, reasons: Sequence[str] = (), limit: int | None = None
    ) -> list[evaluation_pb2.LabelErrorCandidate]:
        """Labels most likely wrong first; `reasons` among missing_label, wrong_class, loose_box,
        unmatched_ground_truth, swapped_keypoints."""
        wanted = [f"LABEL_ERROR_REASON_{r.upper()}" for r in reasons]
        known = set(evaluation_pb2.LabelErrorReason.keys())
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise ValueError(f"unknown reasons: {', '.join(unknown)}")
        return self._pages(
            lambda size, token: self._call(
                self.metrics.ListLabelErrorCandidates,
                metrics_service_pb2.ListLabelErrorCandidatesRequest(
                    parent=evaluation_name, reasons=wanted, page_size=size, page_token=token
                ),
            ),
            "candidates",
            limit,
        )

    def start_keypoint_check(
        self,
        project_id: str,
        dataset_id: str,
        *,
        version: int | None = None,
        checkpoint: str | None = None,
        classes: Sequence[str] = (),
        rules: Sequence[str] = (),
    ) -> operation_pb2.Operation:
        """Start checking a dataset version's ground-truth keypoints (or find the stored or running check of the
        same version, classes and rules); `wait_operation` waits for it, `check_keypoints` then pages the result."""
        operation: operation_pb2.Operation = self._call(
            self.metrics.StartKeypointCheck,
            metrics_service_pb2.StartKeypointCheckRequest(
                dataset_version=self.version_ref(project_id, dataset_id, version, checkpoint),
                classes=list(classes),
                rules=_keypoint_rules(rules),
            ),
        )
        return operation

    def check_keypoints(
        self,
        project_id: str,
        dataset_id: str,
        *,
        version: int | None = None,
        checkpoint: str | None = None,
        classes: Sequence[str] = (),
        rules: Sequence[str] = (),
        limit: int | None = None,
        timeout: float | None = None,
    ) -> list[evaluation_pb2.LabelErrorCandidate]:
        """Ground-truth keypoints of a dataset version checked against their rigs, most likely wrong first. `rules`
        among swapped_keypoints, keypoint_outside_image, keypoint_outside_box, missing_keypoints,
        bone_length_outlier, duplicate_keypoints (default: all). Each candidate names its rule (`reason`) and
        the keypoints it fired on. A large version is checked as an operation, waited for up to `timeout` seconds
        (no limit by default), then paged.

        >>> client.check_keypoints("pose", "people", rules=["swapped_keypoints"], limit=20)
        """
        wanted = _keypoint_rules(rules)
        ref = self.version_ref(project_id, dataset_id, version, checkpoint)
        op = self.start_keypoint_check(
            project_id, dataset_id, version=version, checkpoint=checkpoint, classes=classes, rules=rules
        )
        self.wait_operation(op, timeout=timeout)
        return self._pages(
            lambda size, token: self._call(
                self.metrics.CheckKeypoints,
                metrics_service_pb2.CheckKeypointsRequest(
                    dataset_version=ref, classes=list(classes), rules=wanted, page_size=size, page_token=token
                ),
            ),
            "candidates",
            limit,
        )

    def frame_matches(
        self,
        evaluation_name: str,
        *,
        kind: str = "",
        cell: tuple[int, int] | None = None,
        limit: int | None = None,
    ) -> list[evaluation_pb2.FrameMatches]:
        """Per-frame matches (true/false positives, false negatives, class mismatches) of an evaluation; `kind`
        keeps frames with at least one match of that kind (true_positive, false_positive, false_negative,
        class_mismatch); `cell` (row, column of the confusion matrix) those with a match counted in that cell."""
        wanted = f"MATCH_KIND_{kind.upper()}" if kind else "MATCH_KIND_UNSPECIFIED"
        if wanted not in set(evaluation_pb2.MatchKind.keys()):
            raise ValueError(f"unknown match kind {kind!r}")
        where = metrics_service_pb2.ConfusionCell(row=cell[0], column=cell[1]) if cell is not None else None
        return self._pages(
            lambda size, token: self._call(
                self.metrics.ListFrameMatches,
                metrics_service_pb2.ListFrameMatchesRequest(
                    parent=evaluation_name, kind=wanted, page_size=size, page_token=token, cell=where
                ),
            ),
            "frames",
            limit,
        )

    @staticmethod
    def _pages(fetch: Any, field: str, limit: int | None) -> list[Any]:
        """Items of a paginated list, page by page, until the last page or `limit` items."""
        out: list[Any] = []
        token = ""
        while limit is None or len(out) < limit:
            reply = fetch(1000 if limit is None else min(1000, limit - len(out)), token)
            out.extend(getattr(reply, field))
            token = reply.next_page_token
            if not token:
                break
        return out

    def segment_from_candidates(
        self,
        project_id: str,
        dataset_id: str,
        segment_id: str,
        candidates: Iterable[evaluation_pb2.LabelErrorCandidate],
        *,
        display_name: str = "",
    ) -> dataset_pb2.Segment:
        """A segment of the candidates' ground-truth labels (or their frames, for missing labels) for review."""
        frames: list[str] = []
        labels: list[tuple[str, str]] = []
        for c in candidates:
            if c.ground_truth_label_id:
                labels.append((c.frame_id, c.ground_truth_label_id))
            elif c.frame_id not in frames:
                frames.append(c.frame_id)
        return self.create_segment(
            project_id,
            dataset_id,
            segment_id,
            frame_ids=frames,
            label_ids=labels,
            display_name=display_name or "label-error candidates",
        )

    # embeddings -----------------------------------------------------------------------------------------------

    def _index_name(self, project_id: str, dataset_id: str, version: int | None, kind: str) -> str:
        if version is None:
            version = self.list_versions(project_id, dataset_id)[0].version
        return f"projects/{project_id}/datasets/{dataset_id}/versions/{version}/indexes/{kind}"

    def search(
        self,
        project_id: str,
        dataset_id: str,
        *,
        vectors: Sequence[Sequence[float]] = (),
        frame_ids: Sequence[str] = (),
        label_ids: Sequence[str] = (),
        k: int = 10,
        version: int | None = None,
        filter: str = "",
        classes: Sequence[str] = (),
        kind: str = "frame",
    ) -> list[list[embedding_pb2.Neighbor]]:
        """Exact k nearest neighbours (with distances and scores) of each query — vectors, frame ids or label ids — in
        the embeddings of a dataset version (default: the newest); `filter` on queryable metadata, `classes` on the
        frames' (or crops') classes."""
        queries = [
            *(
                embedding_service_pb2.SearchQuery(vector=embedding_service_pb2.QueryVector(values=list(v)))
                for v in vectors
            ),
            *(embedding_service_pb2.SearchQuery(frame_id=f) for f in frame_ids),
            *(embedding_service_pb2.SearchQuery(label_id=lb) for lb in label_ids),
        ]
        request = embedding_service_pb2.SearchRequest(
            index=self._index_name(project_id, dataset_id, version, kind),
            queries=queries,
            k=k,
            filter=filter,
            classes=list(classes),
        )
        reply: embedding_service_pb2.SearchResponse = self._call(self.embedding.Search, request)
        return [list(r.neighbors) for r in reply.results]

    def select(
        self,
        project_id: str,
        dataset_id: str,
        criteria: Sequence[embedding_pb2.SelectionCriterion | Mapping[str, Any]],
        *,
        count: int = 0,
        proportion: float = 0.0,
        version: int | None = None,
        filter: str = "",
        segment_id: str = "",
        seed: int = 0,
        timeout: float | None = 3600.0,
    ) -> embedding_service_pb2.SelectSamplesResponse:
        """Select frames of a dataset version by combined strategies and save them as a segment. A criterion is a
        SelectionCriterion or a dict such as {"strategy": "DIVERSITY"}, {"strategy": "WEIGHTS", "input": "METADATA",
        "key": "sharpness"}, {"strategy": "BALANCE", "input": "PREDICTIONS", "inference_set": "m1",
        "target": {"car": 0.5, "person": 0.5}}, with optional "strength", "minimum_distance", "threshold",
        "operation", "query_frame_ids", "neighbors"."""
        protos = [c if isinstance(c, embedding_pb2.SelectionCriterion) else _criterion(c) for c in criteria]
        dataset = f"projects/{project_id}/datasets/{dataset_id}"
        request = embedding_service_pb2.SelectSamplesRequest(
            parent=f"{dataset}/versions/{version}" if version else dataset,
            criteria=protos,
            filter=filter,
            segment_id=segment_id,
            seed=seed,
            request_id=uuid.uuid4().hex,
        )
        if proportion:
            request.proportion = proportion
        else:
            request.count = count
        operation = self._call(self.embedding.SelectSamples, request)
        done = self.wait_operation(operation, service="embedding", timeout=timeout)
        reply = embedding_service_pb2.SelectSamplesResponse()
        done.response.Unpack(reply)
        return reply

    def find_duplicates(
        self, project_id: str, dataset_id: str, threshold: float, *, version: int | None = None, kind: str = "frame"
    ) -> list[embedding_service_pb2.DuplicateGroup]:
        """Groups of frames (or crops) whose embeddings lie within `threshold` of each other; 0 finds exact copies."""
        name = self._index_name(project_id, dataset_id, version, kind)
        return self._pages(
            lambda size, token: self._call(
                self.embedding.FindDuplicates,
                embedding_service_pb2.FindDuplicatesRequest(
                    index=name, threshold=threshold, page_size=size, page_token=token
                ),
            ),
            "groups",
            None,
        )

    def uniqueness(
        self, project_id: str, dataset_id: str, *, version: int | None = None, kind: str = "frame"
    ) -> dict[str, float]:
        """Per frame (or crop), how far it lies from its nearest neighbours, 1 for the most unique."""
        name = self._index_name(project_id, dataset_id, version, kind)
        scores = self._pages(
            lambda size, token: self._call(
                self.embedding.ComputeUniqueness,
                embedding_service_pb2.ComputeUniquenessRequest(index=name, page_size=size, page_token=token),
            ),
            "scores",
            None,
        )
        return {s.id: s.score for s in scores}

    def project_embeddings(
        self, project_id: str, dataset_id: str, *, method: str = "pca", version: int | None = None, kind: str = "frame"
    ) -> list[embedding_service_pb2.ProjectedPoint]:
        """2-D points for plotting: PCA, or UMAP when the service has umap-learn installed."""
        name = self._index_name(project_id, dataset_id, version, kind)
        chosen = f"PROJECTION_METHOD_{method.upper()}"
        return self._pages(
            lambda size, token: self._call(
                self.embedding.ProjectEmbeddings,
                embedding_service_pb2.ProjectEmbeddingsRequest(
                    index=name, method=chosen, page_size=size, page_token=token
                ),
            ),
            "points",
            None,
        )

    def import_embeddings(
        self,
        project_id: str,
        dataset_id: str,
        path: str,
        *,
        ids: Sequence[str] | str | None = None,
        model_id: str = "",
    ) -> UploadReport:
        """Frame embeddings from NumPy (`.npy` with `ids`, `.npz` with an id array), Parquet (an id column and a
        vector column, or one numeric column per dimension) or Lightly's CSV, matched to frames by frame id or image
        file name, as one new version. Checked whole before anything is sent."""
        from shoal.sdk import embeddings_io  # noqa: PLC0415

        return embeddings_io.import_embeddings(self, project_id, dataset_id, path, ids=ids, model_id=model_id)

    def import_lightly_embeddings(
        self, project_id: str, dataset_id: str, csv_path: str, *, metadata_path: str | None = None
    ) -> UploadReport:
        """Frame embeddings (and custom metadata) from Lightly's files, matched to frames by image file name, as
        one new version."""
        from shoal.sdk import lightly_io  # noqa: PLC0415

        return lightly_io.import_embeddings(self, project_id, dataset_id, csv_path, metadata_path=metadata_path)

    def export_lightly_embeddings(
        self,
        project_id: str,
        dataset_id: str,
        csv_path: str,
        *,
        metadata_path: str | None = None,
        version: int | None = None,
    ) -> int:
        """Write Lightly's embeddings CSV (and custom metadata JSON) for a dataset version; the number of rows."""
        from shoal.sdk import lightly_io  # noqa: PLC0415

        return lightly_io.export_embeddings(
            self, project_id, dataset_id, csv_path, metadata_path=metadata_path, version=version
        )

    # uploads --------------------------------------------------------------------------------------------------

    def create_or_update_dataset(
        self,
        project_id: str,
        dataset_id: str,
        *,
        dataset: LabeledDataset,
        wait_until_finish: bool = False,
        embedding_distance_metric: str = "cosine",
        upload_id: str | None = None,
        timeout: float | None = None,
    ) -> UploadReport:
        """Create the dataset if needed, then stream every frame of `dataset` into it."""
        if not self.dataset_exists(project_id, dataset_id):
            self.create_dataset(
                project_id, dataset_id, embedding_distance_metric=embedding_distance_metric, exist_ok=True
            )
        return self._upload_items(
            f"projects/{project_id}/datasets/{dataset_id}",
            dataset.items,
            upload_id,
            wait_until_finish,
            timeout,
            pending_masks=dataset.pending_masks,
        )

    def update_dataset_frames(
        self,
        project_id: str,
        dataset_id: str,
        update: Iterable[LabeledFrame],
        *,
        wait_until_finish: bool = False,
        upload_id: str | None = None,
    ) -> UploadReport:
        """Add, replace (ADD) or merge into (MODIFY) existing frames."""
        collected = LabeledDataset()
        for frame in update:
            collected.add_frame(frame)
        return self._upload_items(
            f"projects/{project_id}/datasets/{dataset_id}",
            collected.items,
            upload_id,
            wait_until_finish,
            None,
            pending_masks=collected.pending_masks,
        )

    def update_dataset_labels(
        self,
        project_id: str,
        dataset_id: str,
        updates: Iterable[UpdateGTLabelSet],
        *,
        wait_until_finish: bool = False,
        upload_id: str | None = None,
    ) -> UploadReport:
        """Upsert ground-truth labels by label id on existing frames."""
        collected = LabeledDataset()
        for u in updates:
            collected.add_label_update(u)
        return self._upload_items(
            f"projects/{project_id}/datasets/{dataset_id}",
            collected.items,
            upload_id,
            wait_until_finish,
            None,
            pending_masks=collected.pending_masks,
        )

    def create_inferences(
        self,
        project_id: str,
        dataset_id: str,
        inferences_id: str,
        *,
        inferences: Inferences,
        model_id: str = "",
        wait_until_finish: bool = False,
        upload_id: str | None = None,
    ) -> UploadReport:
        """Create an inference set pinned to the dataset's current version and upload its frames."""
        self.create_inferences_set(project_id, dataset_id, inferences_id, model_id=model_id)
        target = f"projects/{project_id}/datasets/{dataset_id}/inferenceSets/{inferences_id}"
        return self._upload_items(
            target, inferences.items, upload_id, wait_until_finish, None, pending_masks=inferences.pending_masks
        )

    def create_or_update_inferences(
        self,
        project_id: str,
        dataset_id: str,
        inferences_id: str,
        *,
        inferences: Inferences,
        model_id: str = "",
        wait_until_finish: bool = False,
        upload_id: str | None = None,
    ) -> UploadReport:
        """Like create_inferences, but adds to the inference set when it exists."""
        try:
            self.create_inferences_set(project_id, dataset_id, inferences_id, model_id=model_id)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
        target = f"projects/{project_id}/datasets/{dataset_id}/inferenceSets/{inferences_id}"
        return self._upload_items(
            target, inferences.items, upload_id, wait_until_finish, None, pending_masks=inferences.pending_masks
        )

    def get_upload(self, upload_id: str) -> upload_pb2.Upload:
        """An upload's progress, by its resource name (as in UploadReport.name)."""
        upload: upload_pb2.Upload = self._call(
            self.ingest.GetUpload, ingest_service_pb2.GetUploadRequest(name=upload_id)
        )
        return upload

    def list_upload_errors(self, upload_id: str) -> list[upload_pb2.FrameError]:
        """Every failed frame of an upload."""
        errors: list[upload_pb2.FrameError] = []
        token = ""
        while True:
            reply = self._call(
                self.ingest.ListUploadErrors,
                ingest_service_pb2.ListUploadErrorsRequest(parent=upload_id, page_size=1000, page_token=token),
            )
            errors.extend(reply.errors)
            token = reply.next_page_token
            if not token:
                return errors

    def wait_for_upload(
        self, upload_id: str, timeout: float | None = None, poll_seconds: float = 0.5
    ) -> upload_pb2.Upload:
        """Block until every queued batch of the upload is applied (COMMITTED, PARTIALLY_FAILED or FAILED)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            upload = self.get_upload(upload_id)
            if upload.state in TERMINAL_STATES:
                return upload
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"{upload_id} is still {upload_pb2.UploadState.Name(upload.state)} after {timeout} s"
                )
            time.sleep(poll_seconds)

    def _upload_items(
        self,
        target: str,
        items: Sequence[Item],
        upload_id: str | None,
        wait: bool,
        timeout: float | None,
        *,
        pending_masks: Mapping[str, bytes] | None = None,
    ) -> UploadReport:
        if pending_masks:
            self.resolve_masks(target, items, pending_masks)
        report = self.upload(target, items, upload_id=upload_id)
        if wait:
            self.wait_for_upload(report.name, timeout)
        return report

    def upload(
        self, target: str, items: Iterable[Item], *, upload_id: str | None = None, total: int | None = None
    ) -> UploadReport:
        """Stream `items` (a sequence or any iterable, a generator included) to a dataset or inference set in
        batches of `batch_size`, at most `window` batches unacknowledged. A broken stream is reopened with the same
        upload id and the unacknowledged batches are sent again; the server recognises batches it already queued,
        so nothing is queued twice. Retries are per outage: UploadError when one outage outlasts `max_retries`
        reopenings in a row (with backoff, honouring the server's RetryInfo) or a failure is not transient; an
        exception raised by `items` propagates as itself.

        >>> client.upload("projects/p/datasets/d", (make_frame(i) for i in range(50_000)), total=50_000)
        """
        return uploads.upload(
            self.ingest,
            lambda: self._metadata,
            target,
            items,
            upload_id=upload_id or "u" + uuid.uuid4().hex,
            batch_size=self.batch_size,
            window=self.window,
            max_retries=self.max_retries,
            progress=uploads.Progress(total if total is not None else _len(items), self.show_progress),
        )


def _schema(fields: Sequence[Mapping[str, str]]) -> dataset_pb2.MetadataSchema:
    schema = dataset_pb2.MetadataSchema()
    for f in fields:
        ftype, element = parse_field_type(f["type"])
        schema.fields.add(name=f["name"], type=ftype, element_type=element)
    return schema


def _len(items: Iterable[Any]) -> int | None:
    try:
        return len(items)  # type: ignore[arg-type]
    except TypeError:
        return None


def _asset_kind(kind: int | str | None, filename: str) -> Any:
    """An AssetKind value: given by number or name (`"mask"`), else suggested by the file name."""
    if kind is None:
        return asset_kind_for(filename)
    if isinstance(kind, str):
        return asset_pb2.AssetKind.Value("ASSET_KIND_" + kind.upper())
    return int(kind)


def asset_name(name_or_url: str) -> str:
    """An asset's resource name, from its name, its `shoal://` URI or one of its URLs."""
    import urllib.parse  # noqa: PLC0415

    if name_or_url.startswith("projects/"):
        return name_or_url
    if name_or_url.startswith("shoal://"):
        return name_or_url.removeprefix("shoal://")
    found = _ASSET_NAME_RE.search(urllib.parse.unquote(urllib.parse.urlsplit(name_or_url).path))
    if not found:
        raise ValueError(f"{name_or_url!r} is not a Shoal asset name or URL")
    project, dataset, sha = found.groups()
    return f"projects/{project}/datasets/{dataset}/assets/{sha}"
