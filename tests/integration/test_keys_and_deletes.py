"""API keys made, listed, revoked and expiring through the API; deletes that leave nothing behind — checked by
listing the S3 server and Redis after each delete."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import redis
import shoal
from minio import Minio
from PIL import Image
from shoal.kit.status import unpack
from shoal.v1 import (
    embedding_service_pb2,
    ingest_service_pb2,
    ingest_service_pb2_grpc,
    project_pb2,
    upload_pb2,
    versioning_service_pb2,
)

from tests.conftest import ADMIN_KEY, S3Server, ServerThread, start_suite, unique, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


class Suite:
    def __init__(self, targets: dict[str, str], redis_url: str, s3: S3Server, bucket: str) -> None:
        self.targets = targets
        self.redis = redis.Redis.from_url(redis_url)
        self.s3 = s3
        self.bucket = bucket

    def client(self, key: str = ADMIN_KEY) -> shoal.Client:
        return shoal.Client(api_key=key, addresses=self.targets, show_progress=False, max_retries=2, timeout=30)

    def objects(self) -> list[str]:
        minio = Minio(
            self.s3.endpoint.removeprefix("http://"),
            access_key=self.s3.access_key,
            secret_key=self.s3.secret_key,
            secure=False,
        )
        return [o.object_name or "" for o in minio.list_objects(self.bucket, recursive=True)]

    def redis_keys(self) -> list[str]:
        return sorted(k.decode() for k in self.redis.scan_iter(count=1000))

    def redis_mentions(self, text: str) -> list[str]:
        """Keys naming `text`, and stream entries (the queue) that point into it."""
        found = [k for k in self.redis_keys() if text in k]
        for key in self.redis_keys():
            if self.redis.type(key) == b"stream":
                found += [
                    f"{key} {i!r}" for i, entry in self.redis.xrange(key) if text.encode() in b"".join(entry.values())
                ]
            elif self.redis.type(key) == b"zset":
                found += [f"{key} {m!r}" for m in self.redis.zrange(key, 0, -1) if text.encode() in m]
        return found


@pytest.fixture
def suite(start_service: Callable[..., ServerThread], s3_server: S3Server, redis_db: str) -> Suite:
    bucket = unique("deletes")
    store = s3_server.store_settings(bucket)
    targets = {name: server.target for name, server in start_suite(start_service, redis_db, store).items()}
    return Suite(targets, redis_db, s3_server, bucket)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 3), (10, 200, 10)).save(out, format="PNG")
    return out.getvalue()


def _populate(client: shoal.Client, project: str, dataset: str, tmp: str) -> None:
    """A dataset with everything a dataset can own: versions, a checkpoint, a segment, an asset, an inference set
    with an evaluation, and an index build."""
    if not client.project_exists(project):
        client.create_project(project, shoal.LabelClassMap.from_classnames(["car", "person"]))
    client.create_dataset(project, dataset, embedding_dim=3)
    frames = shoal.LabeledDataset()
    inferences = shoal.Inferences()
    for i in range(4):
        frame = shoal.LabeledFrame(frame_id=f"f{i}")
        frame.add_image(sensor_id="cam", image_url=f"s3://b/{i}.jpg", width=64, height=48)
        frame.add_label_2d_bbox(
            sensor_id="cam", label_id=f"l{i}", classification="car", top=1, left=1, width=9, height=9
        )
        frame.add_frame_embedding(embedding=[float(i), 1.0, 2.0])
        frames.add_frame(frame)
        inferred = shoal.InferencesFrame(frame_id=f"f{i}")
        inferred.add_inference_2d_bbox(
            sensor_id="cam", label_id=f"p{i}", classification="car", top=1, left=1, width=9, height=9, confidence=0.8
        )
        inferences.add_frame(inferred)
    report = client.create_or_update_dataset(project, dataset, dataset=frames, wait_until_finish=True)
    assert client.get_upload(report.name).state == upload_pb2.UPLOAD_STATE_COMMITTED
    client.create_or_update_inferences(project, dataset, "m", inferences=inferences, wait_until_finish=True)
    client.create_checkpoint(project, dataset, "gold")
    client.create_segment(project, dataset, "seg", frame_ids=["f1"])
    client.evaluate(project, dataset, "m")
    path = f"{tmp}/{dataset}.png"
    with open(path, "wb") as fh:
        fh.write(_png())
    client.upload_asset(project, dataset, path)
    op = client.embedding.BuildIndex(
        embedding_service_pb2.BuildIndexRequest(parent=f"projects/{project}/datasets/{dataset}/versions/1"),
        metadata=client._metadata,
        timeout=30,
    )
    client.wait_operation(op, service="embedding")


def _code(call: Callable[[], object]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as err:
        return unpack(err).code
    return grpc.StatusCode.OK


def test_deletes_leave_nothing_in_the_store_or_redis(suite: Suite, tmp_path: object) -> None:
    project = unique("gone")
    with suite.client() as admin:
        _populate(admin, project, "d1", str(tmp_path))
        _populate(admin, project, "d2", str(tmp_path))
        made = admin.versioning.CreateApiKey(
            versioning_service_pb2.CreateApiKeyRequest(
                api_key=project_pb2.ApiKey(projects=[f"projects/{project}"], role=project_pb2.API_KEY_ROLE_WRITER)
            ),
            metadata=admin._metadata,
        )
        d1 = f"projects/{project}/datasets/d1"
        before = [k for k in suite.objects() if f"/{project}/d1" in k or d1 in k]
        assert any(k.startswith("datasets/") for k in before)
        assert any(k.startswith("assets/") for k in before)
        assert any(k.startswith("metrics/") for k in before)
        assert any(k.startswith("ingest/") for k in before)
        assert suite.redis_mentions(d1)

        # An inference set alone.
        admin.versioning.DeleteInferenceSet(
            versioning_service_pb2.DeleteInferenceSetRequest(name=f"{d1}/inferenceSets/m"), metadata=admin._metadata
        )
        assert not [k for k in suite.objects() if "inference_sets" in k and f"/{project}/d1/" in k]
        assert not [k for k in suite.objects() if f"{d1}/inferenceSets/m" in k]

        # A dataset: nothing of it remains; its sibling is untouched.
        admin.versioning.DeleteDataset(versioning_service_pb2.DeleteDatasetRequest(name=d1), metadata=admin._metadata)
        assert [k for k in suite.objects() if f"/{project}/d1" in k or d1 in k] == []
        assert suite.redis_mentions(d1) == []
        assert [f.frame_id for f in admin.get_frames(project, "d2")] == ["f0", "f1", "f2", "f3"]
        assert _code(lambda: admin.get_dataset(project, "d1")) == grpc.StatusCode.NOT_FOUND

        # The name can be used again, and starts empty.
        admin.create_dataset(project, "d1", embedding_dim=3)
        assert list(admin.get_frames(project, "d1")) == []

        # The project: nothing of it remains anywhere, and its keys stop working.
        admin.versioning.DeleteProject(
            versioning_service_pb2.DeleteProjectRequest(name=f"projects/{project}"), metadata=admin._metadata
        )
        assert [k for k in suite.objects() if project in k] == []
        assert suite.redis_mentions(project) == []
        with suite.client(made.secret) as scoped:
            assert _code(lambda: scoped.get_project(project)) == grpc.StatusCode.UNAUTHENTICATED


def test_delete_waits_for_an_upload_being_applied_unless_forced(suite: Suite) -> None:
    project = unique("busy")
    with suite.client() as admin:
        admin.create_project(project, shoal.LabelClassMap.from_classnames(["car"]))
        admin.create_dataset(project, "d")
        dataset = f"projects/{project}/datasets/d"
        release = threading.Event()

        def requests() -> Iterator[ingest_service_pb2.UploadFramesRequest]:
            yield ingest_service_pb2.UploadFramesRequest(start=ingest_service_pb2.UploadStart(target=dataset))
            release.wait(60)

        ingest = ingest_service_pb2_grpc.IngestServiceStub(grpc.insecure_channel(suite.targets["ingest"]))
        stream = ingest.UploadFrames(requests(), metadata=admin._metadata, timeout=60)
        first = next(stream)
        assert first.WhichOneof("kind") == "upload"
        request = versioning_service_pb2.DeleteDatasetRequest(name=dataset)
        try:
            refused = _code(lambda: admin.versioning.DeleteDataset(request, metadata=admin._metadata))
            assert refused == grpc.StatusCode.FAILED_PRECONDITION
            assert admin.dataset_exists(project, "d")
        finally:
            release.set()
            for _ in stream:
                pass
        # Closed with nothing queued: the delete goes ahead without force.
        admin.versioning.DeleteDataset(request, metadata=admin._metadata)
        assert not admin.dataset_exists(project, "d")

        admin.create_dataset(project, "d")
        release.clear()
        stream = ingest.UploadFrames(requests(), metadata=admin._metadata, timeout=60)
        next(stream)
        try:
            forced = versioning_service_pb2.DeleteDatasetRequest(name=dataset, force=True)
            admin.versioning.DeleteDataset(forced, metadata=admin._metadata)
            assert not admin.dataset_exists(project, "d")
        finally:
            release.set()
            for _ in stream:
                pass


def test_keys_are_made_listed_revoked_and_expire(suite: Suite) -> None:
    project, other = unique("keys"), unique("keys")
    with suite.client() as admin:
        for p in (project, other):
            admin.create_project(p, shoal.LabelClassMap.from_classnames(["car"]))
        md = admin._metadata

        def make(
            role: int, projects: list[str], expire: datetime | None = None, key: str = ADMIN_KEY
        ) -> versioning_service_pb2.CreateApiKeyResponse:
            api_key = project_pb2.ApiKey(display_name="ci", projects=projects, role=role)
            if expire is not None:
                api_key.expire_time.FromDatetime(expire)
            made: versioning_service_pb2.CreateApiKeyResponse = admin.versioning.CreateApiKey(
                versioning_service_pb2.CreateApiKeyRequest(api_key=api_key), metadata=(("x-api-key", key),)
            )
            return made

        scope = [f"projects/{project}"]
        owner = make(project_pb2.API_KEY_ROLE_ADMIN, scope)
        assert owner.secret.startswith("shoal_")
        assert owner.api_key.key_prefix == owner.secret[:14]
        # A project admin makes keys for its project, not for another.
        writer = make(project_pb2.API_KEY_ROLE_WRITER, scope, key=owner.secret)
        denied = _code(lambda: make(project_pb2.API_KEY_ROLE_READER, [f"projects/{other}"], key=owner.secret))
        assert denied == grpc.StatusCode.PERMISSION_DENIED
        # Listing never shows a secret; a project admin sees only its project's keys.
        listed = admin.versioning.ListApiKeys(versioning_service_pb2.ListApiKeysRequest(), metadata=md)
        assert {owner.api_key.name, writer.api_key.name} <= {k.name for k in listed.api_keys}
        assert owner.secret.encode() not in listed.SerializeToString()
        assert writer.secret.encode() not in listed.SerializeToString()
        own = admin.versioning.ListApiKeys(
            versioning_service_pb2.ListApiKeysRequest(), metadata=(("x-api-key", owner.secret),)
        )
        assert {k.name for k in own.api_keys} == {owner.api_key.name, writer.api_key.name}

        # Revoked: the very next call with it, on any service, is UNAUTHENTICATED.
        with suite.client(writer.secret) as w:
            assert w.get_project(project).name == f"projects/{project}"
            admin.versioning.DeleteApiKey(
                versioning_service_pb2.DeleteApiKeyRequest(name=writer.api_key.name), metadata=md
            )
            assert _code(lambda: w.get_project(project)) == grpc.StatusCode.UNAUTHENTICATED
            assert _code(lambda: w.get_upload(f"projects/{project}/datasets/d/uploads/u1")) == (
                grpc.StatusCode.UNAUTHENTICATED
            )

        # Expiry: a key made to expire stops working then; a key cannot be made already expired.
        soon = make(project_pb2.API_KEY_ROLE_READER, scope, expire=datetime.now(UTC) + timedelta(seconds=2))
        with suite.client(soon.secret) as s:
            assert s.get_project(project).name == f"projects/{project}"
            wait_until(lambda: _code(lambda: s.get_project(project)) == grpc.StatusCode.UNAUTHENTICATED, timeout=30)
        past = datetime.now(UTC) - timedelta(days=1)
        assert _code(lambda: make(project_pb2.API_KEY_ROLE_READER, scope, past)) == grpc.StatusCode.INVALID_ARGUMENT

        # A key made by an expiring key expires no later than it; a project admin makes keys only for projects
        # that exist.
        expiring = make(project_pb2.API_KEY_ROLE_ADMIN, scope, expire=datetime.now(UTC) + timedelta(days=1))
        child = make(project_pb2.API_KEY_ROLE_READER, scope, key=expiring.secret)
        assert child.api_key.HasField("expire_time")
        assert child.api_key.expire_time.ToDatetime(tzinfo=UTC) <= datetime.now(UTC) + timedelta(days=1)
        later = datetime.now(UTC) + timedelta(days=30)
        assert _code(lambda: make(project_pb2.API_KEY_ROLE_READER, scope, later, key=expiring.secret)) == (
            grpc.StatusCode.INVALID_ARGUMENT
        )
        two = make(project_pb2.API_KEY_ROLE_ADMIN, [*scope, f"projects/{other}"])
        admin.delete_project(other)
        gone = [f"projects/{other}"]
        assert _code(lambda: make(project_pb2.API_KEY_ROLE_READER, gone, key=two.secret)) in {
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.NOT_FOUND,
        }
        # The key of two projects lost the deleted one and still works for the other.
        assert [k.projects for k in admin.list_api_keys() if k.name == two.api_key.name] == [scope]
        with suite.client(two.secret) as still:
            assert still.get_project(project).name == f"projects/{project}"


def test_a_search_after_delete_and_recreate_answers_from_the_new_dataset(suite: Suite) -> None:
    project = unique("reborn")
    with suite.client() as admin:
        admin.create_project(project, shoal.LabelClassMap.from_classnames(["car"]))

        def fill(prefix: str) -> None:
            admin.create_dataset(project, "d", embedding_dim=3)
            frames = shoal.LabeledDataset()
            for i in range(3):
                frame = shoal.LabeledFrame(frame_id=f"{prefix}{i}")
                frame.add_image(sensor_id="cam", image_url=f"s3://b/{i}.jpg", width=8, height=8)
                frame.add_frame_embedding(embedding=[float(i + 1), 1.0, 0.0])
                frames.add_frame(frame)
            admin.create_or_update_dataset(project, "d", dataset=frames, wait_until_finish=True)

        fill("old")
        first = admin.search(project, "d", frame_ids=["old0"], k=3)
        assert {n.frame_id for n in first[0]} == {"old0", "old1", "old2"}
        admin.delete_dataset(project, "d")
        fill("new")
        again = admin.search(project, "d", frame_ids=["new0"], k=3)
        assert {n.frame_id for n in again[0]} == {"new0", "new1", "new2"}


def test_shoal_keys_command(suite: Suite, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from shoal import cli

    project = unique("cli")
    with suite.client() as admin:
        admin.create_project(project, shoal.LabelClassMap.from_classnames(["car"]))
    for name, target in suite.targets.items():
        monkeypatch.setenv(f"SHOAL_{name.upper()}_ADDRESS", target)
    common = ["--api-key", ADMIN_KEY]
    assert cli.main(["keys", "create", "--project", project, "--role", "writer", "--json", *common]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["secret"].startswith("shoal_")
    assert cli.main(["keys", "list", *common]) == 0
    listed = capsys.readouterr().out
    assert made["name"] in listed
    assert "writer" in listed
    assert made["secret"] not in listed
    with suite.client(made["secret"]) as writer:
        assert writer.get_project(project).name == f"projects/{project}"
        assert cli.main(["keys", "revoke", made["name"], *common]) == 0
        assert capsys.readouterr().out == f"revoked {made['name']}\n"
        assert _code(lambda: writer.get_project(project)) == grpc.StatusCode.UNAUTHENTICATED
    assert cli.main(["keys", "list", *common]) == 0
    assert made["name"] not in capsys.readouterr().out
