"""The catalog RPCs of the versioning service through real channels, with API-key scopes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from shoal.kit.apikeys import issue_key
from shoal.kit.objectstore import LocalObjectStore
from shoal.kit.settings import StoreSettings
from shoal.kit.status import RpcErrorDetails, unpack
from shoal.v1 import dataset_pb2, project_pb2, versioning_service_pb2_grpc
from shoal.v1 import versioning_service_pb2 as pb
from shoal.versioning.server import build

from tests.conftest import ADMIN_KEY, ServerThread

ADMIN = (("x-api-key", ADMIN_KEY),)


def class_map(*names: str) -> project_pb2.ClassMap:
    return project_pb2.ClassMap(entries=[project_pb2.ClassMapEntry(class_id=i, name=n) for i, n in enumerate(names)])


@pytest.fixture
def env(start_service: Callable[..., ServerThread], tmp_path: Path) -> Iterator[tuple[Any, LocalObjectStore]]:
    store_dir = tmp_path / "store"
    server = start_service("versioning", build, store=StoreSettings(url=store_dir.as_uri()))
    with grpc.insecure_channel(server.target) as channel:
        yield versioning_service_pb2_grpc.VersioningServiceStub(channel), LocalObjectStore(store_dir)


def fails(call: Callable[[], Any]) -> RpcErrorDetails:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return unpack(info.value)


def test_project_create_get_list_and_idempotent_retry(env: tuple[Any, LocalObjectStore]) -> None:
    stub, _ = env
    request = pb.CreateProjectRequest(
        project_id="roads",
        project=project_pb2.Project(display_name="Roads", class_map=class_map("car", "person")),
        request_id="r1",
    )
    created = stub.CreateProject(request, metadata=ADMIN)
    assert created.name == "projects/roads"
    assert created.etag
    assert [e.name for e in created.class_map.entries] == ["car", "person"]
    assert stub.CreateProject(request, metadata=ADMIN).name == "projects/roads"  # same request id: replayed
    request.request_id = "r2"
    assert fails(lambda: stub.CreateProject(request, metadata=ADMIN)).code == grpc.StatusCode.ALREADY_EXISTS
    assert stub.GetProject(pb.GetProjectRequest(name="projects/roads"), metadata=ADMIN).display_name == "Roads"
    listed = stub.ListProjects(pb.ListProjectsRequest(), metadata=ADMIN)
    assert [p.name for p in listed.projects] == ["projects/roads"]
    missing = fails(lambda: stub.GetProject(pb.GetProjectRequest(name="projects/nope"), metadata=ADMIN))
    assert missing.code == grpc.StatusCode.NOT_FOUND


def test_bad_names_and_class_maps_name_the_field(env: tuple[Any, LocalObjectStore]) -> None:
    stub, _ = env
    bad_name = fails(lambda: stub.GetProject(pb.GetProjectRequest(name="project/roads"), metadata=ADMIN))
    assert bad_name.code == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_name.violations[0].field == "name"
    bad_id = fails(lambda: stub.CreateProject(pb.CreateProjectRequest(project_id="Roads!"), metadata=ADMIN))
    assert bad_id.violations[0].field == "project_id"
    dup = project_pb2.ClassMap(
        entries=[project_pb2.ClassMapEntry(class_id=1, name="car"), project_pb2.ClassMapEntry(class_id=1, name="car")]
    )
    bad_map = fails(
        lambda: stub.CreateProject(
            pb.CreateProjectRequest(project_id="x", project=project_pb2.Project(class_map=dup)), metadata=ADMIN
        )
    )
    assert {v.field for v in bad_map.violations} == {
        "project.class_map.entries[1].class_id",
        "project.class_map.entries[1].name",
    }


def test_class_map_is_append_only(env: tuple[Any, LocalObjectStore]) -> None:
    stub, _ = env
    project = stub.CreateProject(
        pb.CreateProjectRequest(project_id="roads", project=project_pb2.Project(class_map=class_map("car", "person"))),
        metadata=ADMIN,
    )
    grown = project_pb2.Project(name=project.name, etag=project.etag, class_map=class_map("car", "person", "bike"))
    grown.class_map.entries[0].color.red = 200
    mask = field_mask_pb2.FieldMask(paths=["class_map"])
    updated = stub.UpdateProject(pb.UpdateProjectRequest(project=grown, update_mask=mask), metadata=ADMIN)
    assert [e.name for e in updated.class_map.entries] == ["car", "person", "bike"]
    assert updated.class_map.entries[0].color.red == 200
    assert updated.etag != project.etag
    stale = fails(lambda: stub.UpdateProject(pb.UpdateProjectRequest(project=grown, update_mask=mask), metadata=ADMIN))
    assert stale.code == grpc.StatusCode.FAILED_PRECONDITION
    assert stale.reason == "ETAG_MISMATCH"
    shrunk = project_pb2.Project(name=project.name, class_map=class_map("car"))
    removed = fails(
        lambda: stub.UpdateProject(pb.UpdateProjectRequest(project=shrunk, update_mask=mask), metadata=ADMIN)
    )
    assert removed.code == grpc.StatusCode.FAILED_PRECONDITION
    assert removed.reason == "CLASS_MAP_NOT_APPEND_ONLY"
    renamed = project_pb2.Project(name=project.name, class_map=class_map("truck", "person", "bike"))
    assert fails(
        lambda: stub.UpdateProject(pb.UpdateProjectRequest(project=renamed, update_mask=mask), metadata=ADMIN)
    ).violations[0].field == ("project.class_map.entries[0].name")


def test_dataset_schema_grows_but_never_retypes(env: tuple[Any, LocalObjectStore]) -> None:
    stub, _ = env
    stub.CreateProject(
        pb.CreateProjectRequest(project_id="roads", project=project_pb2.Project(class_map=class_map("car"))),
        metadata=ADMIN,
    )
    schema = dataset_pb2.MetadataSchema(
        fields=[dataset_pb2.MetadataField(name="weather", type=dataset_pb2.FIELD_TYPE_STRING)]
    )
    created = stub.CreateDataset(
        pb.CreateDatasetRequest(
            parent="projects/roads", dataset_id="drive-1", dataset=dataset_pb2.Dataset(metadata_schema=schema)
        ),
        metadata=ADMIN,
    )
    assert created.name == "projects/roads/datasets/drive-1"
    assert created.distance_metric == dataset_pb2.DISTANCE_METRIC_COSINE
    assert created.latest_version == 0
    grown = dataset_pb2.Dataset(name=created.name)
    grown.metadata_schema.CopyFrom(schema)
    grown.metadata_schema.fields.add(name="speed", type=dataset_pb2.FIELD_TYPE_FLOAT)
    mask = field_mask_pb2.FieldMask(paths=["metadata_schema"])
    updated = stub.UpdateDataset(pb.UpdateDatasetRequest(dataset=grown, update_mask=mask), metadata=ADMIN)
    assert [f.name for f in updated.metadata_schema.fields] == ["weather", "speed"]
    retyped = dataset_pb2.Dataset(name=created.name)
    retyped.metadata_schema.fields.add(name="weather", type=dataset_pb2.FIELD_TYPE_INTEGER)
    retyped.metadata_schema.fields.add(name="speed", type=dataset_pb2.FIELD_TYPE_FLOAT)
    err = fails(lambda: stub.UpdateDataset(pb.UpdateDatasetRequest(dataset=retyped, update_mask=mask), metadata=ADMIN))
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert err.violations[0].field == "dataset.metadata_schema.fields[0].type"
    bad = dataset_pb2.Dataset(name=created.name)
    bad.metadata_schema.fields.add(name="bad key", type=dataset_pb2.FIELD_TYPE_STRING)
    assert (
        fails(lambda: stub.UpdateDataset(pb.UpdateDatasetRequest(dataset=bad, update_mask=mask), metadata=ADMIN)).code
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    listed = stub.ListDatasets(pb.ListDatasetsRequest(parent="projects/roads"), metadata=ADMIN)
    assert [d.name for d in listed.datasets] == [created.name]
    no_project = fails(
        lambda: stub.CreateDataset(pb.CreateDatasetRequest(parent="projects/none", dataset_id="d"), metadata=ADMIN)
    )
    assert no_project.code == grpc.StatusCode.NOT_FOUND
    inference = stub.CreateInferenceSet(
        pb.CreateInferenceSetRequest(
            parent=created.name, inference_set_id="model-a", inference_set=dataset_pb2.InferenceSet(model_id="m")
        ),
        metadata=ADMIN,
    )
    assert inference.name == created.name + "/inferenceSets/model-a"
    assert [
        i.name
        for i in stub.ListInferenceSets(pb.ListInferenceSetsRequest(parent=created.name), metadata=ADMIN).inference_sets
    ] == [inference.name]


def test_project_scoped_keys_see_only_their_projects(env: tuple[Any, LocalObjectStore]) -> None:
    stub, store = env
    for pid in ("alpha", "beta"):
        stub.CreateProject(
            pb.CreateProjectRequest(project_id=pid, project=project_pb2.Project(class_map=class_map("car"))),
            metadata=ADMIN,
        )
    _, reader = issue_key(store, "reader", ["projects/alpha"], "READER")
    _, writer = issue_key(store, "writer", ["projects/alpha"], "WRITER")
    as_reader, as_writer = (("x-api-key", reader),), (("x-api-key", writer),)
    assert [p.name for p in stub.ListProjects(pb.ListProjectsRequest(), metadata=as_reader).projects] == [
        "projects/alpha"
    ]
    assert (
        fails(lambda: stub.GetProject(pb.GetProjectRequest(name="projects/beta"), metadata=as_reader)).code
        == grpc.StatusCode.PERMISSION_DENIED
    )
    create = pb.CreateDatasetRequest(parent="projects/alpha", dataset_id="d1")
    assert fails(lambda: stub.CreateDataset(create, metadata=as_reader)).code == grpc.StatusCode.PERMISSION_DENIED
    assert stub.CreateDataset(create, metadata=as_writer).name == "projects/alpha/datasets/d1"
    new_project = pb.CreateProjectRequest(project_id="gamma")
    assert fails(lambda: stub.CreateProject(new_project, metadata=as_writer)).reason == "ADMIN_REQUIRED"
