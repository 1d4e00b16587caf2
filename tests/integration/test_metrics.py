"""The metrics service end to end: frames and inferences go in through ingest, the versioning worker commits them, and
the metrics service evaluates an inference set against the labels of the version it is pinned to — figures identical
to pycocotools, every task, label-error candidates that find planted mistakes, results cached in the store."""

from __future__ import annotations

import contextlib
import copy
import io
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import shoal
from shoal.ingest.server import build as build_ingest
from shoal.kit.settings import StoreSettings
from shoal.kit.status import unpack
from shoal.metrics.server import build as build_metrics
from shoal.sdk.errors import OperationError
from shoal.v1 import evaluation_pb2, upload_pb2
from shoal.versioning.server import build as build_versioning

from tests.conftest import ADMIN_KEY, S3Server, ServerThread, unique

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

CLASSES = ["car", "person", "bike"]


def suite(start: Callable[..., ServerThread], store: StoreSettings, redis_url: str) -> shoal.Client:
    versioning = start("versioning", build_versioning, redis_url=redis_url, store=store, run_worker=True)
    ingest = start("ingest", build_ingest, redis_url=redis_url, store=store)
    metrics = start("metrics", build_metrics, redis_url=redis_url, store=store)
    from shoal.asset.server import build as build_asset

    asset = start("asset", build_asset, redis_url=redis_url, store=store, asset_http_port=0)
    return shoal.Client(
        api_key=ADMIN_KEY,
        addresses={
            "versioning": versioning.target,
            "ingest": ingest.target,
            "metrics": metrics.target,
            "asset": asset.target,
        },
        show_progress=False,
    )


@pytest.fixture
def client(start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str) -> Iterator[shoal.Client]:
    with suite(start_service, StoreSettings(url=(tmp_path / "store").as_uri()), redis_db) as c:
        yield c


def committed(client: shoal.Client, report: shoal.UploadReport) -> upload_pb2.Upload:
    done = client.wait_for_upload(report.name, timeout=120, poll_seconds=0.05)
    assert done.state == upload_pb2.UPLOAD_STATE_COMMITTED, done
    return done


# a synthetic detection set ----------------------------------------------------------------------------------------


def synthetic(seed: int, frames: int = 40) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Ground truth and predictions as plain records (frame, label id, class, box, crowd / confidence)."""
    rng = np.random.default_rng(seed)
    gt, dt = [], []
    for f in range(frames):
        for j in range(int(rng.integers(0, 6))):
            w, h = float(rng.integers(6, 120)), float(rng.integers(6, 120))
            x, y = float(rng.integers(0, 300)), float(rng.integers(0, 300))
            cls = CLASSES[int(rng.integers(0, 3))]
            gt.append({"frame": f, "id": f"g{f}-{j}", "cls": cls, "box": [x, y, w, h], "crowd": rng.random() < 0.05})
            if rng.random() < 0.8:
                jit = rng.normal(0, 0.1, 4)
                dt.append(
                    {
                        "frame": f,
                        "id": f"p{f}-{j}",
                        "cls": cls if rng.random() < 0.9 else CLASSES[int(rng.integers(0, 3))],
                        "box": [
                            round(x + jit[0] * w, 1),
                            round(y + jit[1] * h, 1),
                            round(w * math.exp(jit[2]), 1),
                            round(h * math.exp(jit[3]), 1),
                        ],
                        "conf": round(float(rng.uniform(0.2, 1.0)), 2),
                    }
                )
        for j in range(int(rng.integers(0, 4))):
            dt.append(
                {
                    "frame": f,
                    "id": f"q{f}-{j}",
                    "cls": CLASSES[int(rng.integers(0, 3))],
                    "box": [
                        float(rng.integers(0, 300)),
                        float(rng.integers(0, 300)),
                        float(rng.integers(5, 80)),
                        float(rng.integers(5, 80)),
                    ],
                    "conf": round(float(rng.uniform(0.0, 0.6)), 2),
                }
            )
    return gt, dt


def upload(client: shoal.Client, p: str, gt: list[dict[str, Any]], frames: int) -> None:
    ds = shoal.LabeledDataset()
    for f in range(frames):
        fr = shoal.LabeledFrame(frame_id=f"f{f:03d}")
        fr.add_image(sensor_id="cam", image_url=f"s3://b/{f}.jpg", width=640, height=480)
        fr.add_user_metadata("split", "day" if f % 2 else "night")
        for g in (g for g in gt if g["frame"] == f):
            x, y, w, h = g["box"]
            fr.add_label_2d_bbox(
                sensor_id="cam",
                label_id=g["id"],
                classification=g["cls"],
                left=x,
                top=y,
                width=w,
                height=h,
                iscrowd=g["crowd"],
            )
        ds.add_frame(fr)
    committed(client, client.create_or_update_dataset(p, "d", dataset=ds))


def infer(client: shoal.Client, p: str, name: str, dt: list[dict[str, Any]], frames: int) -> None:
    inf = shoal.Inferences()
    for f in range(frames):
        fr = shoal.InferencesFrame(frame_id=f"f{f:03d}")
        fr.add_custom_metric("latency_ms", 10.0 + f)
        for d in (d for d in dt if d["frame"] == f):
            x, y, w, h = d["box"]
            fr.add_inference_2d_bbox(
                sensor_id="cam",
                label_id=d["id"],
                classification=d["cls"],
                left=x,
                top=y,
                width=w,
                height=h,
                confidence=d["conf"],
            )
        inf.add_frame(fr)
    committed(client, client.create_or_update_inferences(p, "d", name, inferences=inf))


def pycocotools_stats(gt: list[dict[str, Any]], dt: list[dict[str, Any]], frames: int) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    data = {
        "images": [{"id": f + 1, "width": 640, "height": 480} for f in range(frames)],
        "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)],
        "annotations": [
            {
                "id": i + 1,
                "image_id": g["frame"] + 1,
                "category_id": CLASSES.index(g["cls"]) + 1,
                "bbox": g["box"],
                "area": g["box"][2] * g["box"][3],
                "iscrowd": int(g["crowd"]),
            }
            for i, g in enumerate(gt)
        ],
    }
    results = [
        {"image_id": d["frame"] + 1, "category_id": CLASSES.index(d["cls"]) + 1, "bbox": d["box"], "score": d["conf"]}
        for d in dt
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO()
        g.dataset = copy.deepcopy(data)
        g.createIndex()
        e = COCOeval(g, g.loadRes(results), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return np.asarray(e.stats)


STAT_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def test_detection_uses_the_pinned_version_and_matches_pycocotools(client: shoal.Client) -> None:
    p = unique("p")
    client.create_project(p, shoal.LabelClassMap.from_classnames(CLASSES))
    client.create_dataset(p, "d")
    frames = 40
    gt, dt = synthetic(1, frames)
    upload(client, p, gt, frames)  # v1
    infer(client, p, "m1", dt, frames)  # pinned to v1
    # v2 moves every box: an evaluation on v2 would give different numbers.
    moved = [{**g, "box": [g["box"][0] + 30, *g["box"][1:]]} for g in gt]
    upload(client, p, moved, frames)
    assert client.list_versions(p, "d")[0].version == 2

    evaluation = client.evaluate(p, "d", "m1", iou_thresholds=(), classes=())
    assert evaluation.state == evaluation_pb2.EVALUATION_STATE_SUCCEEDED
    assert evaluation.dataset_version == 1
    assert evaluation.params.task == evaluation_pb2.EVALUATION_TASK_DETECTION_2D
    got = np.array([evaluation.result.metrics[n] for n in STAT_NAMES])
    np.testing.assert_array_equal(got, pycocotools_stats(gt, dt, frames))
    assert evaluation.result.frame_count == frames
    assert evaluation.result.custom_metrics["latency_ms"] == pytest.approx(np.mean([10.0 + f for f in range(frames)]))
    assert {c.class_name for c in evaluation.result.per_class} == set(CLASSES)
    assert any(c.class_name == "" and c.iou_threshold == 0.5 for c in evaluation.result.pr_curves)
    cm = evaluation.result.confusion_matrix
    assert list(cm.labels) == [*CLASSES, "background"]
    assert cm.counts.rows == 4

    # Against v2 explicitly: other labels, other numbers.
    later = client.evaluate(p, "d", "m1", version=2)
    assert later.dataset_version == 2
    assert later.result.metrics["AP"] < evaluation.result.metrics["AP"]
    np.testing.assert_array_equal(
        np.array([later.result.metrics[n] for n in STAT_NAMES]), pycocotools_stats(moved, dt, frames)
    )

    # Asking again answers from the store: same evaluation, done at once.
    op = client.start_evaluation(p, "d", "m1")
    assert op.done
    again = evaluation_pb2.Evaluation()
    op.response.Unpack(again)
    assert again.name == evaluation.name
    assert again.result == evaluation.result
    assert client.get_metrics(evaluation.name).result == evaluation.result
    assert {e.name for e in client.list_evaluations(p, "d", "m1")} == {evaluation.name, later.name}

    # Per-frame matches: every prediction above the match confidence and every ground truth appears once.
    matches = client.frame_matches(evaluation.name)
    kinds = [m.kind for f in matches for m in f.matches]
    confident = [d for d in dt if d["conf"] >= 0.5]
    preds_seen = [m.prediction_label_id for f in matches for m in f.matches if m.prediction_label_id]
    assert sorted(preds_seen) == sorted(d["id"] for d in confident if not _in_crowd(d, gt, matches))
    assert evaluation_pb2.MATCH_KIND_TRUE_POSITIVE in kinds
    fns = client.frame_matches(evaluation.name, kind="false_negative")
    assert all(any(m.kind == evaluation_pb2.MATCH_KIND_FALSE_NEGATIVE for m in f.matches) for f in fns)
    counts = np.array(cm.counts.values).reshape(4, 4)
    # A confusion-matrix cell lists the frames whose matches it counted, and no others.
    for row, column in zip(*np.nonzero(counts), strict=True):
        names = [*cm.labels[:-1], ""]
        in_cell = client.frame_matches(evaluation.name, cell=(int(row), int(column)))
        counted = [
            m
            for f in in_cell
            for m in f.matches
            if (m.ground_truth_class, m.prediction_class) == (names[row], names[column])
        ]
        assert len(counted) == counts[row, column]
        assert {f.frame_id for f in in_cell} == {
            f.frame_id
            for f in matches
            if any((m.ground_truth_class, m.prediction_class) == (names[row], names[column]) for m in f.matches)
        }
    with pytest.raises(grpc.RpcError) as bad_cell:
        client.frame_matches(evaluation.name, cell=(9, 0))
    assert bad_cell.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in unpack(bad_cell.value).violations] == ["cell.row"]
    assert counts[:3, :].sum() + counts[3, :].sum() == kinds.count(
        evaluation_pb2.MATCH_KIND_TRUE_POSITIVE
    ) + kinds.count(evaluation_pb2.MATCH_KIND_CLASS_MISMATCH) + kinds.count(
        evaluation_pb2.MATCH_KIND_FALSE_NEGATIVE
    ) + kinds.count(evaluation_pb2.MATCH_KIND_FALSE_POSITIVE)


def _in_crowd(d: dict[str, Any], gt: list[dict[str, Any]], matches: Any) -> bool:
    """Predictions absorbed by a crowd region are left out of the matches."""
    listed = {m.prediction_label_id for f in matches for m in f.matches}
    return d["id"] not in listed and any(g["crowd"] and g["frame"] == d["frame"] for g in gt)


def test_stratified_results_per_metadata_value(client: shoal.Client) -> None:
    p = unique("p")
    client.create_project(p, shoal.LabelClassMap.from_classnames(CLASSES))
    client.create_dataset(p, "d")
    frames = 30
    gt, dt = synthetic(2, frames)
    upload(client, p, gt, frames)
    infer(client, p, "m", dt, frames)
    evaluation = client.evaluate(p, "d", "m", stratify_by="split")
    assert [s.value.string_value for s in evaluation.strata] == ["day", "night"]
    for stratum in evaluation.strata:
        parity = 1 if stratum.value.string_value == "day" else 0
        sub_gt = [g for g in gt if g["frame"] % 2 == parity]
        sub_dt = [d for d in dt if d["frame"] % 2 == parity]
        # Re-index frames densely as the stratum's image order.
        order = sorted(
            {g["frame"] for g in sub_gt} | {d["frame"] for d in sub_dt} | {f for f in range(frames) if f % 2 == parity}
        )
        index = {f: i for i, f in enumerate(order)}
        ref = pycocotools_stats(
            [{**g, "frame": index[g["frame"]]} for g in sub_gt],
            [{**d, "frame": index[d["frame"]]} for d in sub_dt],
            len(order),
        )
        np.testing.assert_array_equal(np.array([stratum.result.metrics[n] for n in STAT_NAMES]), ref)
        assert stratum.result.frame_count == len(order)
    only = client.evaluate(p, "d", "m", stratify_by="split", stratify_values=["night", "dusk"])
    assert [s.value.string_value for s in only.strata] == ["night", "dusk"]
    assert only.strata[1].result.frame_count == 0


def test_bad_requests_are_rejected_with_field_violations(client: shoal.Client) -> None:
    p = unique("p")
    client.create_project(p, shoal.LabelClassMap.from_classnames(CLASSES))
    client.create_dataset(p, "d")
    gt, dt = synthetic(3, 5)
    upload(client, p, gt, 5)
    infer(client, p, "m", dt, 5)
    with pytest.raises(grpc.RpcError) as err:
        client.evaluate(p, "d", "m", iou_thresholds=(0.5, 1.5), max_detections=(10, 5), classes=("truck",))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {v.field for v in unpack(err.value).violations}
    assert {"params.iou_thresholds[1]", "params.max_detections"} <= fields
    with pytest.raises(grpc.RpcError) as err:
        client.evaluate(p, "d", "m", classes=("truck",))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert unpack(err.value).violations[0].field == "params.classes"
    with pytest.raises(grpc.RpcError) as err:
        client.evaluate(p, "d", "nope")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        client.evaluate(p, "d", "m", version=9)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        client.get_metrics(f"projects/{p}/datasets/d/inferenceSets/m/evaluations/{'0' * 32}")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(OperationError) as failed:
        client.evaluate(p, "d", "m", task="semantic_segmentation")
    assert failed.value.reason == "NOTHING_TO_EVALUATE"


def test_operations_service_lists_and_gets(client: shoal.Client) -> None:
    p = unique("p")
    client.create_project(p, shoal.LabelClassMap.from_classnames(CLASSES))
    client.create_dataset(p, "d")
    gt, dt = synthetic(4, 5)
    upload(client, p, gt, 5)
    infer(client, p, "m", dt, 5)
    op = client.start_evaluation(p, "d", "m")
    done = client.wait_operation(op, timeout=60)
    assert done.done
    assert done.HasField("response")
    deadline = time.monotonic() + 5
    listed = []
    from shoal.v1 import operation_pb2

    while time.monotonic() < deadline and op.name not in listed:
        listed = [
            o.name
            for o in client.operations["metrics"]
            .ListOperations(operation_pb2.ListOperationsRequest(filter="done=true"), metadata=client._metadata)
            .operations
        ]
    assert op.name in listed


def test_s3_store(start_service: Callable[..., ServerThread], s3_server: S3Server, redis_db: str) -> None:
    with suite(start_service, s3_server.store_settings(unique("b")), redis_db) as client:
        p = unique("p")
        client.create_project(p, shoal.LabelClassMap.from_classnames(CLASSES))
        client.create_dataset(p, "d")
        gt, dt = synthetic(5, 12)
        upload(client, p, gt, 12)
        infer(client, p, "m", dt, 12)
        evaluation = client.evaluate(p, "d", "m")
        np.testing.assert_array_equal(
            np.array([evaluation.result.metrics[n] for n in STAT_NAMES]), pycocotools_stats(gt, dt, 12)
        )
        assert client.get_metrics(evaluation.name).result == evaluation.result


def test_an_operation_whose_process_died_reads_as_abandoned(redis_db: str) -> None:
    """A runner refreshes its operation; one nobody refreshes for a minute lost its process, and says so."""
    import asyncio

    from redis.asyncio import Redis
    from shoal.kit.operations import STALE_AFTER, OperationStore
    from shoal.v1 import operation_pb2

    async def scenario() -> None:
        redis = Redis.from_url(redis_db)
        store = OperationStore(redis)
        op, created = await store.create(key="k1", project="projects/p")
        again, created_again = await store.create(key="k1", project="projects/p")
        assert created
        assert not created_again  # the same question joins the running one
        assert again.name == op.name
        assert not (await store.get(op.name)).done
        stale = await store.find(op.name)
        assert stale is not None
        stale.update_time.FromSeconds(int(time.time() - STALE_AFTER - 5))
        await redis.set(f"shoal:op:{op.name}", stale.SerializeToString())
        read = await store.get(op.name)
        assert read.done
        assert read.error.reason == "OPERATION_ABANDONED"
        fresh, created_fresh = await store.create(key="k1", project="projects/p")  # asking again starts afresh
        assert created_fresh
        assert fresh.name != op.name
        await store.cancel(fresh.name)
        assert await store.cancel_requested(fresh.name)
        finished = await store.finish(fresh.name, operation_pb2.OperationProgress(stage="done"))
        assert finished.done
        assert finished.HasField("response")
        await redis.aclose()

    asyncio.run(scenario())


def test_a_callers_operations_page_across_its_projects(redis_db: str) -> None:
    """A caller who is not the admin lists its projects' operations one project after another: every page token
    says which project and where in it, pages of any size give each operation once, newest first per project, and
    a token this server did not issue (or a negative page size) is refused naming the field."""
    import asyncio

    from redis.asyncio import Redis
    from shoal.kit import paging
    from shoal.kit.errors import InvalidArgument
    from shoal.kit.operations import OperationsServicer, OperationStore
    from shoal.v1 import operation_pb2

    async def scenario() -> None:
        redis = Redis.from_url(redis_db)
        store = OperationStore(redis)
        projects = [f"projects/{unique('q')}" for _ in range(3)]
        counts = dict(zip(projects, (3, 0, 2), strict=True))
        made = {p: [(await store.create(project=p))[0].name for _ in range(n)] for p, n in counts.items()}
        servicer = OperationsServicer(store)
        want = [name for p in projects for name in reversed(made[p])]
        for size in (1, 2, 3, 5, 0):
            seen: list[str] = []
            token = ""
            while True:
                request = operation_pb2.ListOperationsRequest(page_size=size, page_token=token)
                ops, token = await servicer._list_projects(projects, None, request)
                assert len(ops) <= (size or paging.DEFAULT_PAGE)
                seen += [op.name for op in ops]
                if not token:
                    break
            assert seen == want, size
        foreign = [paging.offset_token(1), paging.payload_token({"project": 7, "inner": ""}), "0.", "x"]
        for token in foreign:
            request = operation_pb2.ListOperationsRequest(page_token=token)
            with pytest.raises(InvalidArgument) as err:
                await servicer._list_projects(projects, None, request)
            assert [v.field for v in err.value.violations] == ["page_token"], token
        with pytest.raises(InvalidArgument) as err:
            await servicer._list_projects(projects, None, operation_pb2.ListOperationsRequest(page_size=-1))
        assert [v.field for v in err.value.violations] == ["page_size"]
        await redis.aclose()

    asyncio.run(scenario())
