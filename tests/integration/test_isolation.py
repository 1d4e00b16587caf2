"""Every project is its own. Generated from the service descriptors: every RPC of every service is called with no
key, a malformed key, a revoked key, and a valid key of another project (the strongest role there) against the
first project's resources, and a reader of the first project calls every RPC that changes something. A new RPC is
covered without editing this file: requests are filled from the descriptors, by the names of their reference fields.

What passes: UNAUTHENTICATED without a valid key; otherwise PERMISSION_DENIED, or NOT_FOUND that reveals nothing
(the same request made by the owner finds the resource), or — for calls that name no resource, such as listing
projects — an answer that carries nothing of the first project.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
import shoal
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from shoal.asset.server import build as build_asset
from shoal.embedding.server import build as build_embedding
from shoal.ingest.server import build as build_ingest
from shoal.kit.bootstrap import create_server
from shoal.kit.settings import StoreSettings
from shoal.kit.status import unpack
from shoal.metrics.server import build as build_metrics
from shoal.v1 import (
    asset_service_pb2,
    embedding_service_pb2,
    ingest_service_pb2,
    metrics_service_pb2,
    operation_pb2,
    project_pb2,
    upload_pb2,
    versioning_service_pb2,
    versioning_service_pb2_grpc,
)
from shoal.versioning.server import build as build_versioning

from tests import conftest
from tests.conftest import ADMIN_KEY, RedisProcess, ServerThread, service_settings

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

OWNER = "alpha-isolated"  # the first project: nothing of it may reach anyone else
OTHER = "beta-intruder"
DATASET = f"projects/{OWNER}/datasets/d"
# Fields that name a resource; requests are filled through them.
REFERENCE_FIELDS = frozenset({"name", "parent", "target", "base", "index", "dataset_version"})
SERVICE_MODULES = (
    ("versioning", versioning_service_pb2),
    ("ingest", ingest_service_pb2),
    ("asset", asset_service_pb2),
    ("metrics", metrics_service_pb2),
    ("embedding", embedding_service_pb2),
    ("metrics", operation_pb2),
    ("embedding", operation_pb2),
)
DENIED = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND}


@dataclass
class World:
    targets: dict[str, str]
    candidates: list[str]
    keys: dict[str, str] = field(default_factory=dict)  # role → secret
    disposable_key: str = ""


def _start(name: str, build: Any, redis_url: str, store: StoreSettings, **overrides: Any) -> ServerThread:
    settings = service_settings(name, redis_url, store, **overrides)
    return ServerThread(create_server(settings, build)).start()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisProcess) -> Iterator[World]:
    db = 1 + next(conftest._next_db) % 15
    flush = redis.Redis(port=redis_server.port, db=db)
    flush.flushdb()
    flush.close()
    redis_url = f"redis://127.0.0.1:{redis_server.port}/{db}"
    store = StoreSettings(url=(tmp_path_factory.mktemp("isolation") / "store").as_uri())
    versioning = _start("versioning", build_versioning, redis_url, store, run_worker=True)
    servers = {
        "versioning": versioning,
        "ingest": _start("ingest", build_ingest, redis_url, store),
        "asset": _start("asset", build_asset, redis_url, store, asset_http_port=0),
        "metrics": _start("metrics", build_metrics, redis_url, store),
        "embedding": _start("embedding", build_embedding, redis_url, store, versioning_address=versioning.target),
    }
    targets = {name: server.target for name, server in servers.items()}
    try:
        with shoal.Client(api_key=ADMIN_KEY, addresses=targets, show_progress=False) as admin:
            yield _populate(admin, targets, Path(str(tmp_path_factory.mktemp("isolation-files"))))
    finally:
        for server in servers.values():
            server.stop(0.5)


def _populate(admin: shoal.Client, targets: dict[str, str], files: Path) -> World:
    for project in (OWNER, OTHER):
        admin.create_project(project, shoal.LabelClassMap.from_classnames(["car", "person"]))
        admin.create_dataset(project, "d", embedding_dim=4)
    dataset = shoal.LabeledDataset()
    for i in range(3):
        frame = shoal.LabeledFrame(frame_id=f"f{i}")
        frame.add_image(sensor_id="cam", image_url=f"s3://b/{i}.jpg", width=64, height=48)
        frame.add_label_2d_bbox(
            sensor_id="cam", label_id=f"f{i}-car", classification="car", top=1, left=2, width=10, height=8
        )
        frame.add_frame_embedding(embedding=[float(i), 1.0, 0.5, 0.25])
        dataset.add_frame(frame)
    report = admin.create_or_update_dataset(OWNER, "d", dataset=dataset, wait_until_finish=True)
    upload = admin.get_upload(report.name)
    assert upload.state == upload_pb2.UPLOAD_STATE_COMMITTED, upload
    inferences = shoal.Inferences()
    for i in range(3):
        inferred = shoal.InferencesFrame(frame_id=f"f{i}")
        inferred.add_inference_2d_bbox(
            sensor_id="cam", label_id=f"p{i}", classification="car", top=1, left=2, width=10, height=8, confidence=0.9
        )
        inferences.add_frame(inferred)
    admin.create_or_update_inferences(OWNER, "d", "m", inferences=inferences, wait_until_finish=True)
    admin.create_checkpoint(OWNER, "d", "gold")
    admin.create_segment(OWNER, "d", "seg", frame_ids=["f0"])
    evaluation = admin.evaluate(OWNER, "d", "m")
    image = files / "pixel.png"
    image.write_bytes(_png())
    asset = admin.upload_asset(OWNER, "d", str(image))
    versioning = versioning_service_pb2_grpc.VersioningServiceStub(grpc.insecure_channel(targets["versioning"]))
    metadata = (("x-api-key", ADMIN_KEY),)

    def make_key(projects: list[str], role: int) -> versioning_service_pb2.CreateApiKeyResponse:
        made: versioning_service_pb2.CreateApiKeyResponse = versioning.CreateApiKey(
            versioning_service_pb2.CreateApiKeyRequest(
                api_key=project_pb2.ApiKey(display_name="test", projects=projects, role=role)
            ),
            metadata=metadata,
            timeout=30,
        )
        return made

    owner_admin = make_key([f"projects/{OWNER}"], project_pb2.API_KEY_ROLE_ADMIN)
    disposable = make_key([f"projects/{OWNER}"], project_pb2.API_KEY_ROLE_READER)
    revoked = make_key([f"projects/{OTHER}"], project_pb2.API_KEY_ROLE_ADMIN)
    versioning.DeleteApiKey(versioning_service_pb2.DeleteApiKeyRequest(name=revoked.api_key.name), metadata=metadata)
    operation = admin.embedding.BuildIndex(
        embedding_service_pb2.BuildIndexRequest(parent=f"{DATASET}/versions/1"), metadata=metadata, timeout=30
    )
    candidates = [
        f"projects/{OWNER}",
        DATASET,
        f"{DATASET}/versions/1",
        f"{DATASET}/checkpoints/gold",
        f"{DATASET}/segments/seg",
        f"{DATASET}/frames/f0",
        f"{DATASET}/versions/1/frames/f0",
        f"{DATASET}/inferenceSets/m",
        evaluation.name,
        f"{DATASET}/versions/1/indexes/frame",
        asset.name,
        report.name,
        operation.name,
        owner_admin.api_key.name,
    ]
    world = World(targets=targets, candidates=candidates, disposable_key=disposable.api_key.name)
    world.keys = {
        "owner-admin": owner_admin.secret,
        "owner-reader": make_key([f"projects/{OWNER}"], project_pb2.API_KEY_ROLE_READER).secret,
        "other-admin": make_key([f"projects/{OTHER}"], project_pb2.API_KEY_ROLE_ADMIN).secret,
        "revoked": revoked.secret,
    }
    return world


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 10, 10)).save(out, format="PNG")
    return out.getvalue()


# requests from descriptors ----------------------------------------------------------------------------------------


def _methods() -> list[tuple[str, MethodDescriptor]]:
    found = []
    for service_name, module in SERVICE_MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            found.extend((service_name, method) for method in service.methods)
    return found


def _fill(message: Message, value: str, depth: int = 0) -> bool:
    """Set every reference field (and message fields' reference fields, one level down) to `value`; repeated
    `projects` fields name the owner's project. True when something was set."""
    filled = False
    for fd in message.DESCRIPTOR.fields:
        if fd.type == FieldDescriptor.TYPE_STRING and fd.name in REFERENCE_FIELDS and not _repeated(fd):
            setattr(message, fd.name, value)
            filled = True
        elif fd.type == FieldDescriptor.TYPE_STRING and fd.name == "projects" and _repeated(fd):
            getattr(message, fd.name).append(f"projects/{OWNER}")
            filled = True
        elif fd.type == FieldDescriptor.TYPE_MESSAGE and not _repeated(fd) and depth < 1:
            if not fd.message_type.full_name.startswith("shoal."):
                continue
            filled = _fill(getattr(message, fd.name), value, depth + 1) or filled
    return filled


def _repeated(fd: FieldDescriptor) -> bool:
    return bool(fd.is_repeated)


def _requests(method: MethodDescriptor, candidates: list[str]) -> list[Message]:
    """One request per candidate resource name; a single empty request for a method that names no resource."""
    cls = GetMessageClass(method.input_type)
    out = []
    for value in candidates:
        request = cls()
        if not _fill(request, value):
            return [cls()]
        out.append(request)
    return out


def _read_only(method: MethodDescriptor) -> bool:
    options = method.GetOptions()
    return bool(options.idempotency_level == descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS)


def _call(target: str, method: MethodDescriptor, request: Message, metadata: tuple[tuple[str, str], ...]) -> Any:
    """Call any method generically; returns the serialized answer (all of it, for streams) or raises RpcError."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    out_cls = GetMessageClass(method.output_type)
    with grpc.insecure_channel(target) as channel:
        kw: dict[str, Any] = {
            "request_serializer": lambda m: m.SerializeToString(),
            "response_deserializer": out_cls.FromString,
        }
        if method.client_streaming and method.server_streaming:
            stub = channel.stream_stream(path, **kw)
            return b"".join(r.SerializeToString() for r in stub(iter([request]), metadata=metadata, timeout=30))
        if method.client_streaming:
            return channel.stream_unary(path, **kw)(iter([request]), metadata=metadata, timeout=30).SerializeToString()
        if method.server_streaming:
            stub = channel.unary_stream(path, **kw)
            return b"".join(r.SerializeToString() for r in stub(request, metadata=metadata, timeout=30))
        return channel.unary_unary(path, **kw)(request, metadata=metadata, timeout=30).SerializeToString()


def _outcome(target: str, method: MethodDescriptor, request: Message, key: str) -> tuple[grpc.StatusCode, bytes]:
    metadata = (("x-api-key", key),) if key else ()
    try:
        # A client stream opens with its header message (UploadFrames' `start`, UploadAsset's `header`): the filled
        # request is that first message.
        return grpc.StatusCode.OK, _call(target, method, request, metadata)
    except grpc.RpcError as err:
        return unpack(err).code, b""


METHODS = _methods()
IDS = [f"{service}:{method.containing_service.name}.{method.name}" for service, method in METHODS]


@pytest.mark.parametrize(("service", "method"), METHODS, ids=IDS)
def test_every_rpc_refuses_calls_without_a_valid_key(world: World, service: str, method: MethodDescriptor) -> None:
    request = _requests(method, world.candidates)[0]
    for key in ("", "not-a-key", "shoal_0123456789abcdef_" + "A" * 43, world.keys["revoked"]):
        code, _ = _outcome(world.targets[service], method, request, key)
        assert code == grpc.StatusCode.UNAUTHENTICATED, (method.full_name, key[:12], code)


@pytest.mark.parametrize(("service", "method"), METHODS, ids=IDS)
def test_every_rpc_refuses_another_projects_key(world: World, service: str, method: MethodDescriptor) -> None:
    target = world.targets[service]
    requests = _requests(method, world.candidates)
    outcomes = [_outcome(target, method, request, world.keys["other-admin"]) for request in requests]
    for request, (code, answer) in zip(requests, outcomes, strict=True):
        assert code != grpc.StatusCode.OK or OWNER.encode() not in answer, (method.full_name, request)
        assert code in DENIED | {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}, (method.full_name, code)
        if code == grpc.StatusCode.OK:
            assert _read_only(method) or len(requests) == 1, f"{method.full_name} changed something: {request}"
    if len(requests) == 1 and not _fill(type(requests[0])(), "x"):
        return  # names no resource: what it answered carried nothing of the owner's
    refused = [request for request, (code, _) in zip(requests, outcomes, strict=True) if code in DENIED]
    assert refused, f"{method.full_name}: no request naming the owner's resources was refused: {outcomes}"
    if any(code == grpc.StatusCode.PERMISSION_DENIED for code, _ in outcomes) or not _read_only(method):
        return
    # Only NOT_FOUND: it must be a refusal that hides what exists, so the owner finds the same resource.
    found = [_outcome(target, method, r, world.keys["owner-admin"])[0] for r in refused]
    assert any(code != grpc.StatusCode.NOT_FOUND for code in found), f"{method.full_name} named nothing that exists"


@pytest.mark.parametrize(
    ("service", "method"),
    [(s, m) for s, m in METHODS if not _read_only(m)],
    ids=[i for i, (_, m) in zip(IDS, METHODS, strict=True) if not _read_only(m)],
)
def test_reader_keys_cannot_change_anything(world: World, service: str, method: MethodDescriptor) -> None:
    target = world.targets[service]
    requests = _requests(method, world.candidates)
    outcomes = [_outcome(target, method, request, world.keys["owner-reader"]) for request in requests]
    assert all(code != grpc.StatusCode.OK for code, _ in outcomes), (method.full_name, outcomes)
    assert any(code == grpc.StatusCode.PERMISSION_DENIED for code, _ in outcomes) or any(
        code == grpc.StatusCode.NOT_FOUND for code, _ in outcomes
    ), (method.full_name, outcomes)


def test_the_owners_data_survived_every_call(world: World) -> None:
    with shoal.Client(api_key=world.keys["owner-admin"], addresses=world.targets, show_progress=False) as owner:
        assert owner.get_dataset(OWNER, "d").name == DATASET
        assert [f.frame_id for f in owner.get_frames(OWNER, "d")] == ["f0", "f1", "f2"]
        assert [c.name.rsplit("/", 1)[1] for c in owner.list_checkpoints(OWNER, "d")] == ["gold"]


def test_listings_show_only_the_callers_projects(world: World) -> None:
    with shoal.Client(api_key=world.keys["other-admin"], addresses=world.targets, show_progress=False) as other:
        projects = other.versioning.ListProjects(
            versioning_service_pb2.ListProjectsRequest(), metadata=other._metadata, timeout=30
        )
        assert [p.name for p in projects.projects] == [f"projects/{OTHER}"]
        for service in ("metrics", "embedding"):
            ops = other.operations[service].ListOperations(
                operation_pb2.ListOperationsRequest(), metadata=other._metadata, timeout=30
            )
            assert not ops.operations
