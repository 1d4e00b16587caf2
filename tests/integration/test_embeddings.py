"""Embedding indexes and exact search through the running services: an index belongs to one dataset version, so a
later version does not change its answers; bad queries are named."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import shoal
from shoal.embedding.server import build as build_embedding
from shoal.kit import paging
from shoal.kit.settings import StoreSettings
from shoal.kit.status import unpack
from shoal.v1 import (
    dataset_pb2,
    embedding_pb2,
    embedding_service_pb2,
    embedding_service_pb2_grpc,
    operation_pb2,
    operation_pb2_grpc,
    versioning_service_pb2,
    versioning_service_pb2_grpc,
)

from tests.conftest import ADMIN_KEY, ServerThread, free_port, unique
from tests.integration.test_metrics import committed, suite

pytestmark = pytest.mark.integration


@pytest.fixture
def env(
    start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str
) -> Iterator[tuple[shoal.Client, embedding_service_pb2_grpc.EmbeddingServiceStub]]:
    store = StoreSettings(url=(tmp_path / "store").as_uri())
    with suite(start_service, store, redis_db) as client:
        # It saves selections through the versioning service of this suite.
        versioning = client.addresses["versioning"]
        embedding = start_service(
            "embedding", build_embedding, redis_url=redis_db, store=store, versioning_address=versioning
        )
        with grpc.insecure_channel(embedding.target) as channel:
            # The SDK talks to the embedding service started here (its default address is the standard port).
            client.embedding = embedding_service_pb2_grpc.EmbeddingServiceStub(channel)
            client.operations["embedding"] = operation_pb2_grpc.OperationsServiceStub(channel)
            yield client, client.embedding


MD = (("x-api-key", ADMIN_KEY),)


def vectors(version: int, n: int = 200, d: int = 16) -> np.ndarray:
    return np.random.default_rng(version).standard_normal((n, d)).astype(np.float32)


def upload(client: shoal.Client, p: str, x: np.ndarray) -> None:
    ds = shoal.LabeledDataset()
    for i, v in enumerate(x):
        f = shoal.LabeledFrame(frame_id=f"f{i:03d}")
        f.add_image(sensor_id="cam", image_url=f"s3://b/{i}.jpg", width=64, height=48)
        f.add_user_metadata("split", "a" if i % 2 else "b")
        f.add_label_2d_bbox(
            sensor_id="cam",
            label_id=f"l{i}",
            classification="car" if i % 3 else "person",
            left=1,
            top=1,
            width=5,
            height=5,
        )
        f.add_frame_embedding(embedding=v.tolist())
        ds.add_frame(f)
    committed(client, client.create_or_update_dataset(p, "d", dataset=ds))


def test_search_is_exact_and_pinned_to_its_version(
    env: tuple[shoal.Client, embedding_service_pb2_grpc.EmbeddingServiceStub],
) -> None:
    client, stub = env
    p = unique("p")
    client.create_project(p, shoal.LabelClassMap.from_classnames(["car", "person"]))
    client.create_dataset(p, "d", metadata_schema=[{"name": "split", "type": "STRING"}])
    x1 = vectors(1)
    upload(client, p, x1)
    upload(client, p, vectors(2))  # version 2 replaces every embedding
    name = f"projects/{p}/datasets/d/versions/1/indexes/frame"
    q = np.random.default_rng(9).standard_normal((3, 16)).astype(np.float32)
    request = embedding_service_pb2.SearchRequest(
        index=name,
        k=5,
        queries=[
            embedding_service_pb2.SearchQuery(vector=embedding_service_pb2.QueryVector(values=v.tolist())) for v in q
        ],
    )
    reply = stub.Search(request, metadata=MD)
    xn = x1 / np.linalg.norm(x1, axis=1, keepdims=True)
    sims = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ xn.T
    for result, row in zip(reply.results, sims, strict=True):
        want = np.argsort(-row)[:5]
        assert [n.frame_id for n in result.neighbors] == [f"f{i:03d}" for i in want]
        np.testing.assert_allclose([n.score for n in result.neighbors], row[want], atol=1e-5)
    # By frame id, with a metadata filter and a class filter.
    by_frame = stub.Search(
        embedding_service_pb2.SearchRequest(
            index=name,
            k=3,
            filter='split = "a"',
            classes=["person"],
            queries=[embedding_service_pb2.SearchQuery(frame_id="f003")],
        ),
        metadata=MD,
    )
    found = [int(n.frame_id[1:]) for n in by_frame.results[0].neighbors]
    assert found[0] == 3
    assert all(i % 2 == 1 and i % 3 == 0 for i in found)
    # The same with the class as a label condition of the filter language.
    by_label = stub.Search(
        embedding_service_pb2.SearchRequest(
            index=name,
            k=3,
            filter='split = "a" AND labels(classification = "person" AND area >= 25)',
            queries=[embedding_service_pb2.SearchQuery(frame_id="f003")],
        ),
        metadata=MD,
    )
    assert [int(n.frame_id[1:]) for n in by_label.results[0].neighbors] == found
    index = stub.GetIndex(embedding_service_pb2.GetIndexRequest(name=name), metadata=MD)
    assert (index.count, index.dimension, index.version) == (200, 16, 1)
    assert index.device == embedding_pb2.COMPUTE_DEVICE_CPU

    # Bad queries: each named.
    bad = embedding_service_pb2.SearchRequest(
        index=name,
        k=5,
        queries=[
            embedding_service_pb2.SearchQuery(vector=embedding_service_pb2.QueryVector(values=[1.0, 2.0])),
            embedding_service_pb2.SearchQuery(vector=embedding_service_pb2.QueryVector(values=[float("nan")] * 16)),
            embedding_service_pb2.SearchQuery(frame_id="nope"),
        ],
    )
    with pytest.raises(grpc.RpcError) as err:
        stub.Search(bad, metadata=MD)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in unpack(err.value).violations} == {
        "queries[0].vector.values",
        "queries[1].vector.values",
        "queries[2].frame_id",
    }
    with pytest.raises(grpc.RpcError) as err:
        stub.Search(
            embedding_service_pb2.SearchRequest(
                index=name, k=500, queries=[embedding_service_pb2.SearchQuery(frame_id="f001")]
            ),
            metadata=MD,
        )
    assert unpack(err.value).violations[0].field == "k"

    # BuildIndex is an operation; the index it reports is version 2's.
    op = stub.BuildIndex(embedding_service_pb2.BuildIndexRequest(parent=f"projects/{p}/datasets/d"), metadata=MD)
    done = client.wait_operation(op, timeout=60)  # operations live in Redis: the metrics service answers too
    built = embedding_pb2.EmbeddingIndex()
    done.response.Unpack(built)
    assert built.name == f"projects/{p}/datasets/d/versions/2/indexes/frame"


def test_the_int8_engine_answers_through_the_service_exactly(
    env: tuple[shoal.Client, embedding_service_pb2_grpc.EmbeddingServiceStub], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index large enough for the int8 prefilter (the floor lowered to this test's size) answers through it,
    says so, and returns the exact neighbours; a k above its largest goes to faiss."""
    from shoal.embedding import quantized

    if not quantized.available():
        pytest.skip("the int8 engine needs onnxruntime and a CPU with VNNI")
    monkeypatch.setattr(quantized, "MIN_ROWS", 0)
    client, stub = env
    p = unique("int8")
    client.create_project(p, shoal.LabelClassMap.from_classnames(["car", "person"]))
    client.create_dataset(p, "d")
    x = vectors(7, n=300)
    upload(client, p, x)
    q = np.random.default_rng(11).standard_normal((4, 16)).astype(np.float32)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ xn.T
    queries = [
        embedding_service_pb2.SearchQuery(vector=embedding_service_pb2.QueryVector(values=v.tolist())) for v in q
    ]
    name = f"projects/{p}/datasets/d/versions/{client.get_dataset(p, 'd').latest_version}/indexes/frame"
    for k, engine in ((10, "exact/int8-rerank"), (quantized.MAX_K + 1, "exact/faiss")):
        reply = stub.Search(embedding_service_pb2.SearchRequest(index=name, k=k, queries=queries), metadata=MD)
        assert reply.engine == engine
        for result, row in zip(reply.results, sims, strict=True):
            want = np.sort(row)[::-1][: min(k, 300)]
            np.testing.assert_allclose([n.score for n in result.neighbors], want, atol=1e-5)


def test_duplicates_uniqueness_and_projection(
    env: tuple[shoal.Client, embedding_service_pb2_grpc.EmbeddingServiceStub],
) -> None:
    client, stub = env
    p = unique("p")
    client.create_project(p, shoal.LabelClassMap.from_classnames(["car", "person"]))
    client.create_dataset(p, "d", metadata_schema=[{"name": "split", "type": "STRING"}])
    x = vectors(3, n=60)
    x[7] = x[2]  # an exact duplicate
    x[40] = x[2] * 1.0001  # the same direction: a cosine duplicate
    x[59] = 50 * np.ones(16, np.float32)  # far out along one direction, and a direction nothing else has
    x[59, ::2] = -50
    upload(client, p, x)
    name = f"projects/{p}/datasets/d/versions/1/indexes/frame"
    dup = stub.FindDuplicates(embedding_service_pb2.FindDuplicatesRequest(index=name, threshold=1e-4), metadata=MD)
    assert [sorted(g.ids) for g in dup.groups] == [["f002", "f007", "f040"]]
    scores: dict[str, float] = {}
    token = ""
    while True:
        page = stub.ComputeUniqueness(
            embedding_service_pb2.ComputeUniquenessRequest(index=name, page_size=25, page_token=token), metadata=MD
        )
        scores.update((s.id, s.score) for s in page.scores)
        token = page.next_page_token
        if not token:
            break
    assert len(scores) == 60
    assert max(scores.values()) == pytest.approx(1.0)
    assert scores["f002"] < np.median(list(scores.values()))  # it has two copies
    pts = stub.ProjectEmbeddings(embedding_service_pb2.ProjectEmbeddingsRequest(index=name, page_size=100), metadata=MD)
    assert len(pts.points) == 60
    assert {pt.frame_id for pt in pts.points} == {f"f{i:03d}" for i in range(60)}
    with pytest.raises(grpc.RpcError) as err:
        stub.FindDuplicates(embedding_service_pb2.FindDuplicatesRequest(index=name, threshold=-1), metadata=MD)
    assert unpack(err.value).violations[0].field == "threshold"
    # Page tokens are the server's own: a position written by hand (a negative one once paged from the end), or a
    # token of another listing's kind, is refused naming the field, on every paged analysis.
    foreign = paging.payload_token({"after": "f001"})
    for token in ("-5", "25", foreign):
        for call, request in (
            (stub.ComputeUniqueness, embedding_service_pb2.ComputeUniquenessRequest(index=name, page_token=token)),
            (stub.FindDuplicates, embedding_service_pb2.FindDuplicatesRequest(index=name, page_token=token)),
            (stub.ProjectEmbeddings, embedding_service_pb2.ProjectEmbeddingsRequest(index=name, page_token=token)),
        ):
            with pytest.raises(grpc.RpcError) as err:
                call(request, metadata=MD)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert [v.field for v in unpack(err.value).violations] == ["page_token"]


def test_select_samples_saves_a_segment(
    env: tuple[shoal.Client, embedding_service_pb2_grpc.EmbeddingServiceStub],
) -> None:
    client, stub = env
    p = unique("p")
    client.create_project(p, shoal.LabelClassMap.from_classnames(["car", "person"]))
    client.create_dataset(
        p, "d", metadata_schema=[{"name": "split", "type": "STRING"}], embedding_distance_metric="euclidean"
    )
    rng = np.random.default_rng(4)
    corners = np.eye(16, dtype=np.float32)[:4] * 10
    x = np.concatenate([c + rng.normal(0, 0.1, (10, 16)) for c in corners]).astype(np.float32)
    upload(client, p, x)
    diversity = embedding_pb2.SelectionCriterion(
        input=embedding_pb2.SelectionInput(type=embedding_pb2.SELECTION_INPUT_TYPE_EMBEDDINGS),
        strategy=embedding_pb2.SELECTION_STRATEGY_TYPE_DIVERSITY,
    )
    op = stub.SelectSamples(
        embedding_service_pb2.SelectSamplesRequest(
            parent=f"projects/{p}/datasets/d", criteria=[diversity], count=4, segment_id="diverse"
        ),
        metadata=MD,
    )
    done = client.wait_operation(op, timeout=60)
    reply = embedding_service_pb2.SelectSamplesResponse()
    done.response.Unpack(reply)
    assert sorted(int(f[1:]) // 10 for f in reply.frame_ids) == [0, 1, 2, 3]  # one per cluster
    segment = client.get_segment(p, "d", "diverse")
    assert [e.frame_id for e in segment.elements] == list(reply.frame_ids)
    assert all(e.version == 1 for e in segment.elements)
    # A threshold on metadata and a proportion; a bad amount is named.
    only_a = embedding_pb2.SelectionCriterion(strategy=embedding_pb2.SELECTION_STRATEGY_TYPE_RANDOM)
    op = stub.SelectSamples(
        embedding_service_pb2.SelectSamplesRequest(
            parent=f"projects/{p}/datasets/d",
            criteria=[only_a],
            proportion=0.5,
            filter='split = "a"',
            segment_id="half-a",
            seed=1,
        ),
        metadata=MD,
    )
    reply = embedding_service_pb2.SelectSamplesResponse()
    client.wait_operation(op, timeout=60).response.Unpack(reply)
    assert len(reply.frame_ids) == 10
    assert all(int(f[1:]) % 2 == 1 for f in reply.frame_ids)
    op = stub.SelectSamples(
        embedding_service_pb2.SelectSamplesRequest(parent=f"projects/{p}/datasets/d", criteria=[diversity], count=0),
        metadata=MD,
    )
    with pytest.raises(shoal.sdk.errors.OperationError) as err:
        client.wait_operation(op, timeout=60)
    assert err.value.reason == "INVALID_ARGUMENT"


def test_selections_are_saved_by_the_versioning_service_for_the_caller(
    env: tuple[shoal.Client, embedding_service_pb2_grpc.EmbeddingServiceStub],
    start_service: Callable[..., ServerThread],
    tmp_path: Path,
    redis_db: str,
) -> None:
    """The segment of a selection is created through VersioningService.CreateSegment with the caller's own key (the
    embedding service writes no catalog entry): it reads back through GetSegment, a key of another project is refused
    before anything runs, and a versioning service that is down or silent fails the selection as UNAVAILABLE within
    the call deadline, leaving no segment behind."""
    client, stub = env
    p, q = unique("p"), unique("q")
    for project in (p, q):
        client.create_project(project, shoal.LabelClassMap.from_classnames(["car", "person"]))
    client.create_dataset(p, "d", metadata_schema=[{"name": "split", "type": "STRING"}])
    upload(client, p, vectors(3, n=40))
    writer = (("x-api-key", client.create_api_key([p], role="WRITER").secret),)
    outsider = (("x-api-key", client.create_api_key([q], role="WRITER").secret),)

    def select(segment_id: str) -> embedding_service_pb2.SelectSamplesRequest:
        return embedding_service_pb2.SelectSamplesRequest(
            parent=f"projects/{p}/datasets/d",
            criteria=[embedding_pb2.SelectionCriterion(strategy=embedding_pb2.SELECTION_STRATEGY_TYPE_DIVERSITY)],
            count=5,
            segment_id=segment_id,
            request_id=f"r-{segment_id}",
        )

    with grpc.insecure_channel(client.addresses["versioning"]) as channel:
        versioning = versioning_service_pb2_grpc.VersioningServiceStub(channel)

        def get_segment(segment_id: str) -> dataset_pb2.Segment:
            name = f"projects/{p}/datasets/d/segments/{segment_id}"
            return versioning.GetSegment(versioning_service_pb2.GetSegmentRequest(name=name), metadata=writer)

        reply = embedding_service_pb2.SelectSamplesResponse()
        client.wait_operation(stub.SelectSamples(select("picked"), metadata=writer), timeout=60).response.Unpack(reply)
        assert reply.segment == f"projects/{p}/datasets/d/segments/picked"
        segment = get_segment("picked")
        assert [e.frame_id for e in segment.elements] == list(reply.frame_ids)
        assert len(reply.frame_ids) == 5
        assert all(e.version == 1 for e in segment.elements)
        # Asked again with the same request id: the same segment, not ALREADY_EXISTS.
        again = embedding_service_pb2.SelectSamplesResponse()
        client.wait_operation(stub.SelectSamples(select("picked"), metadata=writer), timeout=60).response.Unpack(again)
        assert again.segment == reply.segment

        with pytest.raises(grpc.RpcError) as err:
            stub.SelectSamples(select("theirs"), metadata=outsider)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED

        # The versioning service down (nothing listens), then hung (a socket that never answers).
        silent = socket.create_server(("127.0.0.1", 0))
        try:
            for address in (f"127.0.0.1:{free_port()}", f"127.0.0.1:{silent.getsockname()[1]}"):
                cut_off = start_service(
                    "embedding",
                    build_embedding,
                    redis_url=redis_db,
                    store=StoreSettings(url=(tmp_path / "store").as_uri()),
                    versioning_address=address,
                    call_timeout_seconds=1.0,
                )
                with grpc.insecure_channel(cut_off.target) as cut_channel:
                    started = time.monotonic()
                    op = embedding_service_pb2_grpc.EmbeddingServiceStub(cut_channel).SelectSamples(
                        select("unsaved"), metadata=writer
                    )
                    operations = operation_pb2_grpc.OperationsServiceStub(cut_channel)
                    while not op.done:
                        assert time.monotonic() - started < 30, "the selection hangs on the versioning service"
                        time.sleep(0.05)
                        op = operations.GetOperation(operation_pb2.GetOperationRequest(name=op.name), metadata=writer)
                assert (op.error.code, op.error.reason) == (
                    grpc.StatusCode.UNAVAILABLE.value[0],
                    "VERSIONING_UNAVAILABLE",
                )
                with pytest.raises(grpc.RpcError) as err:
                    get_segment("unsaved")
                assert err.value.code() == grpc.StatusCode.NOT_FOUND
        finally:
            silent.close()


def test_sdk_search_and_select(env: tuple[shoal.Client, embedding_service_pb2_grpc.EmbeddingServiceStub]) -> None:
    client, _ = env
    p = unique("p")
    client.create_project(p, shoal.LabelClassMap.from_classnames(["car", "person"]))
    client.create_dataset(p, "d", metadata_schema=[{"name": "split", "type": "STRING"}])
    x = vectors(5, n=50)
    upload(client, p, x)
    [near] = client.search(p, "d", frame_ids=["f010"], k=3)
    assert near[0].frame_id == "f010"
    assert near[0].distance == pytest.approx(0.0, abs=1e-6)
    assert len(near) == 3
    picked = client.select(
        p,
        "d",
        [{"strategy": "DIVERSITY"}, {"strategy": "THRESHOLD", "input": "METADATA", "key": "n", "threshold": 0}],
        count=5,
    )
    assert picked.frame_ids == []  # no numeric metadata "n": nothing passes the threshold
    picked = client.select(p, "d", [{"strategy": "DIVERSITY"}], count=5, segment_id="five")
    assert len(picked.frame_ids) == 5
    assert picked.segment.endswith("/segments/five")
    assert client.find_duplicates(p, "d", 0.0) == []
    assert len(client.uniqueness(p, "d")) == 50
    assert len(client.project_embeddings(p, "d")) == 50


def test_lightly_csv_imports_and_exports_identical(
    env: tuple[shoal.Client, embedding_service_pb2_grpc.EmbeddingServiceStub], tmp_path: Path
) -> None:
    from shoal.embedding import lightly

    client, _ = env
    p = unique("p")
    client.create_project(p, shoal.LabelClassMap.from_classnames(["car", "person"]))
    client.create_dataset(p, "d")
    upload(client, p, vectors(6, n=30))
    # Lightly's files name the images; rows in an order of their own, with labels and custom metadata.
    rng = np.random.default_rng(11)
    order = rng.permutation(30)
    data = lightly.EmbeddingsCsv(
        [f"{i}.jpg" for i in order], rng.standard_normal((30, 16)).astype(np.float32), [str(i % 4) for i in order]
    )
    src = tmp_path / "embeddings.csv"
    src.write_text(lightly.write_embeddings_csv(data))
    meta = tmp_path / "metadata.json"
    meta.write_text(
        lightly.write_metadata_json(
            {f"{i}.jpg": {"sharpness": float(i) / 2, "weather": "rain" if i % 2 else "sun"} for i in order},
            [f"{i}.jpg" for i in order],
        )
    )
    report = client.import_lightly_embeddings(p, "d", str(src), metadata_path=str(meta))
    committed(client, report)
    out, out_meta = tmp_path / "out.csv", tmp_path / "out.json"
    assert client.export_lightly_embeddings(p, "d", str(out), metadata_path=str(out_meta)) == 30
    assert out.read_text() == src.read_text()
    exported, imported = lightly.read_metadata_json(out_meta.read_text()), lightly.read_metadata_json(meta.read_text())
    assert exported.keys() == imported.keys()
    assert all(exported[k].items() >= imported[k].items() for k in imported)  # plus the frames' own metadata
    # The imported vectors answer searches on the new version.
    [near] = client.search(p, "d", vectors=[data.vectors[0].tolist()], k=1)
    assert near[0].frame_id == f"f{order[0]:03d}"
    # Bad input changes nothing: a file name no frame has, a wrong dimension.
    bad = tmp_path / "bad.csv"
    bad.write_text(
        lightly.write_embeddings_csv(lightly.EmbeddingsCsv(["nope.jpg"], np.zeros((1, 16), np.float32), ["0"]))
    )
    with pytest.raises(ValueError, match=r"nope\.jpg"):
        client.import_lightly_embeddings(p, "d", str(bad))
    bad.write_text(lightly.write_embeddings_csv(lightly.EmbeddingsCsv(["1.jpg"], np.zeros((1, 8), np.float32), ["0"])))
    with pytest.raises(shoal.kit.errors.InvalidArgument):
        client.import_lightly_embeddings(p, "d", str(bad))
    assert len(client.list_versions(p, "d")) == 2


def test_selection_inputs_read_scores_predictions_and_metadata_from_columns(
    env: tuple[shoal.Client, embedding_service_pb2_grpc.EmbeddingServiceStub],
) -> None:
    client, _ = env
    p = unique("p")
    client.create_project(p, shoal.LabelClassMap.from_classnames(["car", "person"]))
    client.create_dataset(p, "d", metadata_schema=[{"name": "split", "type": "STRING"}])
    ds = shoal.LabeledDataset()
    for i, v in enumerate(vectors(11, n=30)):
        f = shoal.LabeledFrame(frame_id=f"f{i:03d}")
        f.add_image(sensor_id="cam", image_url=f"s3://b/{i}.jpg", width=64, height=48)
        f.add_user_metadata("split", "a" if i % 2 else "b")
        if i % 3:
            f.add_user_metadata("sharpness", i)
        f.add_frame_embedding(embedding=v.tolist())
        ds.add_frame(f)
    committed(client, client.create_or_update_dataset(p, "d", dataset=ds))
    inferences = shoal.Inferences()
    for i in range(0, 30, 2):  # half the frames have predictions
        guess = shoal.InferencesFrame(frame_id=f"f{i:03d}")
        for j, name in enumerate(["person", "car", "car"] if i % 4 else ["person", "car"]):
            guess.add_inference_2d_bbox(
                sensor_id="cam",
                label_id=f"p{i}-{j}",
                classification=name,
                top=1,
                left=1,
                width=5,
                height=5,
                confidence=0.5,
            )
        guess.add_custom_metric("loss", i / 10)
        inferences.add_frame(guess)
    committed(client, client.create_or_update_inferences(p, "d", "m1", inferences=inferences))

    # Scores: the custom metric where there is one; frames without one never pass a threshold.
    picked = client.select(
        p,
        "d",
        [
            {
                "strategy": "THRESHOLD",
                "input": "SCORES",
                "inference_set": "m1",
                "key": "loss",
                "threshold": 2.0,
                "operation": "GREATER_EQUAL",
            }
        ],
        count=30,
    )
    assert sorted(picked.frame_ids) == [f"f{i:03d}" for i in range(0, 30, 2) if i / 10 >= 2.0]
    # Metadata: the numeric key's values (a key outside the schema: read from the map).
    picked = client.select(
        p,
        "d",
        [
            {
                "strategy": "THRESHOLD",
                "input": "METADATA",
                "key": "sharpness",
                "threshold": 20,
                "operation": "GREATER_EQUAL",
            }
        ],
        count=30,
    )
    assert sorted(picked.frame_ids) == [f"f{i:03d}" for i in range(30) if i % 3 and (i if i % 2 else i + 0.5) >= 20]
    # Predictions: each frame's most common predicted class (ties: the first predicted); balance asks for cars only.
    picked = client.select(
        p,
        "d",
        [{"strategy": "BALANCE", "input": "PREDICTIONS", "inference_set": "m1", "target": {"car": 1.0}}],
        count=5,
    )
    assert len(picked.frame_ids) == 5
    cars = [f for f in picked.frame_ids if int(f[1:]) % 4 == 2]  # the frames whose predictions are mostly cars
    assert picked.frame_ids[0] in cars
    assert len(cars) >= 4


def test_an_approximate_index_is_stored_beside_the_version_and_read_back_after_a_restart(
    start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str
) -> None:
    """BuildIndex makes an IVF-Flat index and stores it; searches report which index answered (exact on request, and
    under a filter); a restarted embedding service reads the stored index back instead of building it; NEVER drops
    it from memory and the store."""
    from shoal.embedding import approximate

    store = StoreSettings(url=(tmp_path / "store").as_uri())
    rng = np.random.default_rng(4)
    centres = rng.standard_normal((12, 16)).astype(np.float32) * 3
    x = centres[rng.integers(0, 12, 600)] + rng.standard_normal((600, 16)).astype(np.float32)
    with suite(start_service, store, redis_db) as client:
        versioning = client.addresses["versioning"]
        p = unique("ann")
        client.create_project(p, shoal.LabelClassMap.from_classnames(["car", "person"]))
        client.create_dataset(p, "d", embedding_dim=16, embedding_source="m")
        upload(client, p, x)
        latest = client.get_dataset(p, "d").latest_version  # the upload may take more than one version
        name = f"projects/{p}/datasets/d/versions/{latest}/indexes/frame"
        first = start_service(
            "embedding", build_embedding, redis_url=redis_db, store=store, versioning_address=versioning
        )

        def build(target: str, mode: int) -> embedding_pb2.EmbeddingIndex:
            with grpc.insecure_channel(target) as channel:
                stub = embedding_service_pb2_grpc.EmbeddingServiceStub(channel)
                client.operations["embedding"] = operation_pb2_grpc.OperationsServiceStub(channel)
                op = stub.BuildIndex(
                    embedding_service_pb2.BuildIndexRequest(parent=f"projects/{p}/datasets/d", approximate=mode),
                    metadata=MD,
                )
                done = client.wait_operation(op, timeout=60)
            built = embedding_pb2.EmbeddingIndex()
            done.response.Unpack(built)
            return built

        def search(target: str, **extra: Any) -> embedding_service_pb2.SearchResponse:
            with grpc.insecure_channel(target) as channel:
                stub = embedding_service_pb2_grpc.EmbeddingServiceStub(channel)
                queries = [embedding_service_pb2.SearchQuery(frame_id=f"f{i:03d}") for i in range(0, 600, 60)]
                reply: embedding_service_pb2.SearchResponse = stub.Search(
                    embedding_service_pb2.SearchRequest(index=name, queries=queries, k=5, **extra), metadata=MD
                )
                return reply

        built = build(first.target, embedding_service_pb2.APPROXIMATE_MODE_ALWAYS)
        assert built.approximate.engine == "ivf-flat"
        assert built.approximate.recall_at_10 >= approximate.RECALL_TARGET
        assert built.approximate.size_bytes > 600 * 16 * 4
        fast = search(first.target)
        assert fast.engine == "approximate/ivf-flat"
        exact = search(first.target, exact=True)
        assert exact.engine == "exact/faiss"
        assert search(first.target, filter='split = "a"').engine == "exact/numpy"  # masked in place, not copied
        # Each query's nearest is itself, whichever index answers.
        assert [r.neighbors[0].frame_id for r in fast.results] == [r.neighbors[0].frame_id for r in exact.results]

        first.stop()
        second = start_service(
            "embedding", build_embedding, redis_url=redis_db, store=store, versioning_address=versioning
        )
        with grpc.insecure_channel(second.target) as channel:
            again = embedding_service_pb2_grpc.EmbeddingServiceStub(channel).GetIndex(
                embedding_service_pb2.GetIndexRequest(name=name), metadata=MD
            )
        assert again.approximate == built.approximate  # read back, not built anew (same build time and recall)
        assert search(second.target).engine == "approximate/ivf-flat"

        dropped = build(second.target, embedding_service_pb2.APPROXIMATE_MODE_NEVER)
        assert not dropped.HasField("approximate")
        assert search(second.target).engine == "exact/faiss"
        assert not any((tmp_path / "store" / "indexes").rglob("*.ivf"))


def test_embeddings_import_from_numpy_and_parquet_files(
    env: tuple[shoal.Client, embedding_service_pb2_grpc.EmbeddingServiceStub], tmp_path: Path
) -> None:
    """Files written by NumPy, pyarrow and Polars themselves: matched by frame id or image file name, each import one
    version whose vectors answer searches; bad files change nothing and say what is wrong."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    client, _ = env
    p = unique("imp")
    client.create_project(p, shoal.LabelClassMap.from_classnames(["car", "person"]))
    client.create_dataset(p, "d", embedding_dim=16, embedding_source="m")
    upload(client, p, vectors(1, n=40))
    rng = np.random.default_rng(21)
    order = rng.permutation(40)

    def check(x: np.ndarray) -> None:
        """Every frame's embedding is its row of `x` (rows in `order`)."""
        got = {f.frame_id: list(f.embedding.values) for f in client.stream_frames(p, "d")}
        for row, i in enumerate(order):
            np.testing.assert_allclose(got[f"f{i:03d}"], x[row], rtol=1e-6)

    # .npz with frame ids, by NumPy.
    x1 = rng.standard_normal((40, 16)).astype(np.float32)
    np.savez(tmp_path / "a.npz", ids=np.array([f"f{i:03d}" for i in order]), embeddings=x1)
    committed(client, client.import_embeddings(p, "d", str(tmp_path / "a.npz")))
    check(x1)
    # .npy and a list of image file names.
    x2 = rng.standard_normal((40, 16)).astype(np.float32)
    np.save(tmp_path / "b.npy", x2)
    (tmp_path / "b.txt").write_text("".join(f"{i}.jpg\n" for i in order))
    committed(client, client.import_embeddings(p, "d", str(tmp_path / "b.npy"), ids=str(tmp_path / "b.txt")))
    check(x2)
    # Parquet by pyarrow (fixed-size lists) and by Polars (lists), frame ids and file names.
    x3 = rng.standard_normal((40, 16)).astype(np.float32)
    vectors3 = pa.FixedSizeListArray.from_arrays(pa.array(x3.ravel()), 16)
    pq.write_table(pa.table({"frame_id": [f"f{i:03d}" for i in order], "embedding": vectors3}), tmp_path / "c.parquet")
    committed(client, client.import_embeddings(p, "d", str(tmp_path / "c.parquet")))
    check(x3)
    x4 = rng.standard_normal((40, 16)).astype(np.float32)
    pl.DataFrame({"filename": [f"{i}.jpg" for i in order], "vector": x4.tolist()}).write_parquet(tmp_path / "d.parquet")
    committed(client, client.import_embeddings(p, "d", str(tmp_path / "d.parquet")))
    check(x4)
    [near] = client.search(p, "d", vectors=[x4[0].tolist()], k=1)
    assert near[0].frame_id == f"f{order[0]:03d}"
    versions = len(client.list_versions(p, "d"))

    # Bad files: named by the message, nothing sent.
    np.savez(tmp_path / "bad.npz", ids=np.array(["f000", "nope"]), embeddings=np.zeros((2, 16), np.float32))
    with pytest.raises(ValueError, match="nope"):
        client.import_embeddings(p, "d", str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "bad.npz", ids=np.array(["f000"]), embeddings=np.zeros((1, 8), np.float32))
    with pytest.raises(ValueError, match="takes 16"):
        client.import_embeddings(p, "d", str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "bad.npz", ids=np.array(["f000"]), embeddings=np.full((1, 16), np.nan, np.float32))
    with pytest.raises(ValueError, match="not finite"):
        client.import_embeddings(p, "d", str(tmp_path / "bad.npz"))
    with pytest.raises(ValueError, match="no ids"):
        client.import_embeddings(p, "d", str(tmp_path / "b.npy"))
    np.savez(tmp_path / "bad.npz", ids=np.array(["f000", "0.jpg"]), embeddings=np.zeros((2, 16), np.float32))
    with pytest.raises(ValueError, match="two rows name frame 'f000'"):
        client.import_embeddings(p, "d", str(tmp_path / "bad.npz"))
    # Wide Parquet: numbered columns are the dimensions, other numeric columns are not; ragged lists are refused.
    x5 = rng.standard_normal((40, 16)).astype(np.float32)
    wide = {"frame_id": [f"f{i:03d}" for i in order], "width": [64] * 40}
    wide |= {f"embedding_{j}": x5[:, j] for j in range(16)}
    pq.write_table(pa.table(wide), tmp_path / "e.parquet")
    committed(client, client.import_embeddings(p, "d", str(tmp_path / "e.parquet")))
    check(x5)
    versions = len(client.list_versions(p, "d"))
    ragged = pa.table({"frame_id": ["f000", "f001"], "embedding": [[1.0] * 3, [1.0]]})
    pq.write_table(ragged, tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="same length"):
        client.import_embeddings(p, "d", str(tmp_path / "bad.parquet"))
    assert len(client.list_versions(p, "d")) == versions
