"""The catalog: projects (class maps), datasets (schema, embedding settings) and inference sets, kept as JSON
objects in the object store. Updates are read-modify-write under etags (conditional writes), so concurrent writers
never lose an update; creates are create-only writes, so a name is taken once."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Final, TypeVar

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message

from shoal.kit.errors import AlreadyExists, FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from shoal.kit.names import DatasetName, InferenceSetName, ProjectName, check_id
from shoal.kit.objectstore import ObjectNotFound, ObjectStore, WriteConflict
from shoal.v1 import dataset_pb2, project_pb2

METADATA_KEY_RE: Final = re.compile(r"^[A-Za-z0-9_]+$")
MAX_UPDATE_ATTEMPTS: Final = 20
M = TypeVar("M", bound=Message)


# One flat prefix per kind, so listing one kind never walks through the entries of another.
def _key(name: ProjectName | DatasetName | InferenceSetName) -> str:
    if isinstance(name, ProjectName):
        return f"catalog/projects/{name.project}.json"
    if isinstance(name, DatasetName):
        return f"catalog/datasets/{name.project}/{name.dataset}.json"
    return f"catalog/inference_sets/{name.project}/{name.dataset}/{name.inference_set}.json"


def _ids(page_keys: Iterable[str]) -> list[str]:
    return [key.rsplit("/", 1)[1][: -len(".json")] for key in page_keys if key.endswith(".json")]


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(datetime.now(UTC))
    return ts


# ---- validation of what the catalog holds ---------------------------------------------------------------------


def validate_class_map(class_map: project_pb2.ClassMap, field: str = "project.class_map") -> None:
    """Ids and names unique, names non-empty, colours in range, rigs consistent."""
    violations: list[FieldViolation] = []
    ids: set[int] = set()
    names: set[str] = set()
    for i, entry in enumerate(class_map.entries):
        where = f"{field}.entries[{i}]"
        if entry.class_id in ids:
            violations.append(FieldViolation(f"{where}.class_id", f"class id {entry.class_id} is used twice"))
        ids.add(entry.class_id)
        if not entry.name:
            violations.append(FieldViolation(f"{where}.name", "must not be empty"))
        elif entry.name in names:
            violations.append(FieldViolation(f"{where}.name", f"class name {entry.name!r} is used twice"))
        names.add(entry.name)
        for channel in ("red", "green", "blue"):
            if getattr(entry.color, channel) > 255:
                violations.append(FieldViolation(f"{where}.color.{channel}", "must be 0..255"))
        keypoints: set[str] = set()
        for k, kp in enumerate(entry.keypoints):
            if not kp.name:
                violations.append(FieldViolation(f"{where}.keypoints[{k}].name", "must not be empty"))
            elif kp.name in keypoints:
                violations.append(
                    FieldViolation(f"{where}.keypoints[{k}].name", f"keypoint {kp.name!r} is named twice")
                )
            if kp.sigma < 0:
                violations.append(FieldViolation(f"{where}.keypoints[{k}].sigma", "must not be negative"))
            keypoints.add(kp.name)
        for e, edge in enumerate(entry.skeleton):
            for end in ("from_keypoint", "to_keypoint"):
                if getattr(edge, end) not in keypoints:
                    violations.append(
                        FieldViolation(
                            f"{where}.skeleton[{e}].{end}", f"{getattr(edge, end)!r} is not a keypoint of the rig"
                        )
                    )
    if violations:
        raise InvalidArgument.of(violations, reason="INVALID_CLASS_MAP")


def check_class_map_append_only(old: project_pb2.ClassMap, new: project_pb2.ClassMap) -> None:
    """Classes may be added or recoloured, never removed, renamed or renumbered; rigs only grow."""
    by_id = {e.class_id: (i, e) for i, e in enumerate(new.entries)}
    violations: list[FieldViolation] = []
    for entry in old.entries:
        found = by_id.get(entry.class_id)
        if found is None:
            violations.append(
                FieldViolation("project.class_map", f"class {entry.name!r} (id {entry.class_id}) cannot be removed")
            )
            continue
        i, now = found
        if now.name != entry.name:
            violations.append(
                FieldViolation(
                    f"project.class_map.entries[{i}].name",
                    f"class id {entry.class_id} is {entry.name!r}; ids are never renamed",
                )
            )
        old_kps = [k.name for k in entry.keypoints]
        if [k.name for k in now.keypoints][: len(old_kps)] != old_kps:
            violations.append(
                FieldViolation(
                    f"project.class_map.entries[{i}].keypoints", "keypoints may be appended, never removed or reordered"
                )
            )
    if violations:
        raise FailedPrecondition(
            "the class map is append-only", reason="CLASS_MAP_NOT_APPEND_ONLY", violations=tuple(violations)
        )


def validate_schema(schema: dataset_pb2.MetadataSchema, field: str = "dataset.metadata_schema") -> None:
    violations: list[FieldViolation] = []
    seen: set[str] = set()
    for i, f in enumerate(schema.fields):
        where = f"{field}.fields[{i}]"
        if not METADATA_KEY_RE.fullmatch(f.name):
            violations.append(FieldViolation(f"{where}.name", f"{f.name!r} must match ^[A-Za-z0-9_]+$"))
        elif f.name in seen:
            violations.append(FieldViolation(f"{where}.name", f"field {f.name!r} is declared twice"))
        seen.add(f.name)
        if f.type == dataset_pb2.FIELD_TYPE_UNSPECIFIED:
            violations.append(FieldViolation(f"{where}.type", "must be given"))
        if f.type == dataset_pb2.FIELD_TYPE_ARRAY and f.element_type in (
            dataset_pb2.FIELD_TYPE_UNSPECIFIED,
            dataset_pb2.FIELD_TYPE_ARRAY,
        ):
            violations.append(FieldViolation(f"{where}.element_type", "an ARRAY needs a scalar element type"))
        if f.type != dataset_pb2.FIELD_TYPE_ARRAY and f.element_type != dataset_pb2.FIELD_TYPE_UNSPECIFIED:
            violations.append(FieldViolation(f"{where}.element_type", "only ARRAY fields have an element type"))
    if violations:
        raise InvalidArgument.of(violations, reason="INVALID_SCHEMA")


def check_schema_additive(old: dataset_pb2.MetadataSchema, new: dataset_pb2.MetadataSchema) -> None:
    """Fields may be added, never removed or retyped."""
    now = {f.name: (i, f) for i, f in enumerate(new.fields)}
    violations: list[FieldViolation] = []
    for f in old.fields:
        found = now.get(f.name)
        if found is None:
            violations.append(FieldViolation("dataset.metadata_schema", f"field {f.name!r} cannot be removed"))
        elif (found[1].type, found[1].element_type) != (f.type, f.element_type):
            violations.append(
                FieldViolation(
                    f"dataset.metadata_schema.fields[{found[0]}].type",
                    f"field {f.name!r} is {dataset_pb2.FieldType.Name(f.type)}; a field's type never changes",
                )
            )
    if violations:
        raise FailedPrecondition(
            "the metadata schema only grows", reason="SCHEMA_NOT_ADDITIVE", violations=tuple(violations)
        )


# ---- the catalog ------------------------------------------------------------------------------------------------


class Catalog:
    """Reads and (for the versioning service) writes catalog entries."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    # generic helpers

    def _read(self, key: str, message: M, what: str) -> tuple[M, str]:
        try:
            body, etag = self.store.get_with_etag(key)
        except ObjectNotFound:
            raise NotFound(f"{what} does not exist", reason="NOT_FOUND", metadata={"name": what}) from None
        json_format.ParseDict(json.loads(body)["resource"], message, ignore_unknown_fields=True)
        return message, etag

    def _create(self, key: str, message: Message, request_id: str, what: str) -> None:
        body = json.dumps({"resource": json_format.MessageToDict(message), "request_id": request_id}).encode()
        try:
            self.store.put_if(key, body, "application/json", etag=None)
        except WriteConflict:
            existing = json.loads(self.store.get(key))
            if request_id and existing.get("request_id") == request_id:
                return  # a retry of the same create: replay its result
            raise AlreadyExists(f"{what} already exists", reason="ALREADY_EXISTS", metadata={"name": what}) from None

    def _update(
        self, key: str, factory: Callable[[], M], what: str, change: Callable[[M], None], expected_etag: str = ""
    ) -> M:
        """Read-modify-write under the object's etag; retried on conflict unless the caller pinned an etag."""
        for _ in range(MAX_UPDATE_ATTEMPTS):
            message, etag = self._read(key, factory(), what)
            if expected_etag and expected_etag != etag:
                raise FailedPrecondition(f"{what} changed since it was read (etag mismatch)", reason="ETAG_MISMATCH")
            change(message)
            body = json.dumps({"resource": json_format.MessageToDict(message)}).encode()
            try:
                info = self.store.put_if(key, body, "application/json", etag=etag)
            except WriteConflict:
                if expected_etag:
                    raise FailedPrecondition(f"{what} changed since it was read", reason="ETAG_MISMATCH") from None
                continue
            if hasattr(message, "etag"):
                message.etag = info.etag
            return message
        raise FailedPrecondition(f"{what} is changing too fast; retry", reason="CONTENDED")

    def _list(self, prefix: str, page_size: int, page_token: str) -> tuple[list[str], str]:
        page = self.store.list(prefix, 100 if page_size <= 0 else min(page_size, 1000), page_token)
        return _ids(o.key for o in page.objects), page.next_page_token

    # projects

    def create_project(
        self, project_id: str, project: project_pb2.Project, request_id: str = ""
    ) -> project_pb2.Project:
        check_id(project_id, "project_id")
        validate_class_map(project.class_map)
        name = ProjectName(project_id)
        created = project_pb2.Project()
        created.CopyFrom(project)
        created.name, created.etag = str(name), ""
        created.create_time.CopyFrom(_now())
        created.update_time.CopyFrom(created.create_time)
        self._create(_key(name), created, request_id, str(name))
        return self.get_project(name)

    def get_project(self, name: ProjectName) -> project_pb2.Project:
        project, etag = self._read(_key(name), project_pb2.Project(), str(name))
        project.etag = etag
        return project

    def list_projects(self, page_size: int = 0, page_token: str = "") -> tuple[list[project_pb2.Project], str]:
        ids, token = self._list("catalog/projects/", page_size, page_token)
        return [self.get_project(ProjectName(i)) for i in ids], token

    def update_project(
        self, project: project_pb2.Project, paths: Iterable[str], name: ProjectName
    ) -> project_pb2.Project:
        wanted = set(paths) or {"display_name", "description", "class_map"}
        unknown = wanted - {"display_name", "description", "class_map"}
        if unknown:
            raise InvalidArgument.of([FieldViolation("update_mask", f"cannot update {', '.join(sorted(unknown))}")])
        if "class_map" in wanted:
            validate_class_map(project.class_map)

        def change(current: project_pb2.Project) -> None:
            if "class_map" in wanted:
                check_class_map_append_only(current.class_map, project.class_map)
                current.class_map.CopyFrom(project.class_map)
            if "display_name" in wanted:
                current.display_name = project.display_name
            if "description" in wanted:
                current.description = project.description
            current.update_time.CopyFrom(_now())

        return self._update(_key(name), project_pb2.Project, str(name), change, project.etag)

    # datasets

    def create_dataset(
        self, parent: ProjectName, dataset_id: str, dataset: dataset_pb2.Dataset, request_id: str = ""
    ) -> dataset_pb2.Dataset:
        check_id(dataset_id, "dataset_id")
        self.get_project(parent)
        validate_schema(dataset.metadata_schema)
        if dataset.embedding_source and not dataset.embedding_dimension:
            raise InvalidArgument.of([FieldViolation("dataset.embedding_dimension", "give it with embedding_source")])
        name = DatasetName(parent.project, dataset_id)
        created = dataset_pb2.Dataset()
        created.CopyFrom(dataset)
        created.name, created.etag, created.latest_version, created.frame_count = str(name), "", 0, 0
        if created.distance_metric == dataset_pb2.DISTANCE_METRIC_UNSPECIFIED:
            created.distance_metric = dataset_pb2.DISTANCE_METRIC_COSINE
        created.create_time.CopyFrom(_now())
        created.update_time.CopyFrom(created.create_time)
        self._create(_key(name), created, request_id, str(name))
        return self.get_dataset(name)

    def get_dataset(self, name: DatasetName) -> dataset_pb2.Dataset:
        dataset, etag = self._read(_key(name), dataset_pb2.Dataset(), str(name))
        dataset.etag = etag
        return dataset

    def list_datasets(
        self, parent: ProjectName, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[dataset_pb2.Dataset], str]:
        self.get_project(parent)
        ids, token = self._list(f"catalog/datasets/{parent.project}/", page_size, page_token)
        return [self.get_dataset(DatasetName(parent.project, i)) for i in ids], token

    def update_dataset(
        self, dataset: dataset_pb2.Dataset, paths: Iterable[str], name: DatasetName
    ) -> dataset_pb2.Dataset:
        allowed = {
            "display_name",
            "description",
            "metadata_schema",
            "embedding_dimension",
            "embedding_source",
            "distance_metric",
        }
        wanted = set(paths) or {"display_name", "description", "metadata_schema"}
        unknown = wanted - allowed
        if unknown:
            raise InvalidArgument.of([FieldViolation("update_mask", f"cannot update {', '.join(sorted(unknown))}")])
        if "metadata_schema" in wanted:
            validate_schema(dataset.metadata_schema)

        def change(current: dataset_pb2.Dataset) -> None:
            if "metadata_schema" in wanted:
                check_schema_additive(current.metadata_schema, dataset.metadata_schema)
                current.metadata_schema.CopyFrom(dataset.metadata_schema)
            for fixed in ("embedding_dimension", "embedding_source", "distance_metric"):
                if fixed in wanted and getattr(dataset, fixed) != getattr(current, fixed):
                    if getattr(current, fixed) and not (fixed == "distance_metric" and current.latest_version == 0):
                        raise FailedPrecondition(
                            f"{fixed} is fixed once set", reason="FIELD_IMMUTABLE", metadata={"field": fixed}
                        )
                    setattr(current, fixed, getattr(dataset, fixed))
            if "display_name" in wanted:
                current.display_name = dataset.display_name
            if "description" in wanted:
                current.description = dataset.description
            current.update_time.CopyFrom(_now())

        return self._update(_key(name), dataset_pb2.Dataset, str(name), change, dataset.etag)

    def update_dataset_internal(
        self, name: DatasetName, change: Callable[[dataset_pb2.Dataset], None]
    ) -> dataset_pb2.Dataset:
        """A change the versioning worker makes (latest version, counts, embedding dimension), retried on conflict."""

        def stamped(current: dataset_pb2.Dataset) -> None:
            change(current)
            current.update_time.CopyFrom(_now())

        return self._update(_key(name), dataset_pb2.Dataset, str(name), stamped)

    # inference sets

    def create_inference_set(
        self, parent: DatasetName, inference_set_id: str, inference_set: dataset_pb2.InferenceSet, request_id: str = ""
    ) -> dataset_pb2.InferenceSet:
        check_id(inference_set_id, "inference_set_id")
        dataset = self.get_dataset(parent)
        if inference_set.dataset_version > dataset.latest_version:
            raise InvalidArgument.of(
                [
                    FieldViolation(
                        "inference_set.dataset_version",
                        f"{parent} has no version {inference_set.dataset_version} (latest {dataset.latest_version})",
                    )
                ]
            )
        name = InferenceSetName(parent.project, parent.dataset, inference_set_id)
        created = dataset_pb2.InferenceSet()
        created.CopyFrom(inference_set)
        created.name, created.frame_count = str(name), 0
        created.dataset_version = inference_set.dataset_version or dataset.latest_version
        created.create_time.CopyFrom(_now())
        created.update_time.CopyFrom(created.create_time)
        self._create(_key(name), created, request_id, str(name))
        return self.get_inference_set(name)

    def get_inference_set(self, name: InferenceSetName) -> dataset_pb2.InferenceSet:
        return self._read(_key(name), dataset_pb2.InferenceSet(), str(name))[0]

    def list_inference_sets(
        self, parent: DatasetName, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[dataset_pb2.InferenceSet], str]:
        self.get_dataset(parent)
        ids, token = self._list(f"catalog/inference_sets/{parent.project}/{parent.dataset}/", page_size, page_token)
        return [self.get_inference_set(InferenceSetName(parent.project, parent.dataset, i)) for i in ids], token

    def update_inference_set_counts(
        self, name: InferenceSetName, change: Callable[[dataset_pb2.InferenceSet], None]
    ) -> None:
        def stamped(current: dataset_pb2.InferenceSet) -> None:
            change(current)
            current.update_time.CopyFrom(_now())

        self._update(_key(name), dataset_pb2.InferenceSet, str(name), stamped)

    # segments (written by the versioning service only, which pins and flags their elements: storage/segments.py)

    @staticmethod
    def _segment_key(dataset: DatasetName, segment_id: str) -> str:
        return f"catalog/segments/{dataset.project}/{dataset.dataset}/{segment_id}.json"

    def put_new_segment(
        self, dataset: DatasetName, segment_id: str, segment: dataset_pb2.Segment, request_id: str
    ) -> None:
        self._create(self._segment_key(dataset, segment_id), segment, request_id, segment.name)

    def get_segment(self, dataset: DatasetName, segment_id: str) -> dataset_pb2.Segment:
        segment, etag = self._read(
            self._segment_key(dataset, segment_id), dataset_pb2.Segment(), f"{dataset}/segments/{segment_id}"
        )
        segment.etag = etag
        return segment

    def list_segment_ids(self, dataset: DatasetName, page_size: int, page_token: str) -> tuple[list[str], str]:
        return self._list(f"catalog/segments/{dataset.project}/{dataset.dataset}/", page_size, page_token)

    def update_segment(
        self, dataset: DatasetName, segment_id: str, change: Callable[[dataset_pb2.Segment], None], expected_etag: str
    ) -> dataset_pb2.Segment:
        def stamped(current: dataset_pb2.Segment) -> None:
            change(current)
            current.update_time.CopyFrom(_now())

        key = self._segment_key(dataset, segment_id)
        return self._update(key, dataset_pb2.Segment, f"{dataset}/segments/{segment_id}", stamped, expected_etag)

    def delete_segment(self, dataset: DatasetName, segment_id: str) -> None:
        self.get_segment(dataset, segment_id)
        self.store.delete(self._segment_key(dataset, segment_id))
