"""COCO through the services: ground truth and results files imported with the SDK (`upload_coco`, what `shoal import
coco --results` runs), the inference set pinned to the version that holds the whole ground truth, and the metrics
service's figures equal to pycocotools' on a tie-heavy set with integer image ids and on a set of segmentation areas
(real COCO val2017 annotations among them)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import shoal
from shoal.asset.server import build as build_asset
from shoal.ingest.server import build as build_ingest
from shoal.kit.settings import StoreSettings
from shoal.metrics.server import build as build_metrics
from shoal.sdk import coco
from shoal.sdk.errors import UploadError
from shoal.v1 import evaluation_pb2, upload_pb2
from shoal.versioning.server import build as build_versioning

from tests.conftest import ADMIN_KEY, ServerThread, unique
from tests.integration.test_metrics import STAT_NAMES
from tests.unit.test_coco_import_eval import DATA, load, pycocotools_stats

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture
def client(start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str) -> Iterator[shoal.Client]:
    """The suite, its worker committing each batch as a version of its own, and a client sending batches of 5
    frames: every upload spans several versions."""
    store = StoreSettings(url=(tmp_path / "store").as_uri())
    services = {
        "versioning": start_service(
            "versioning",
            build_versioning,
            redis_url=redis_db,
            store=store,
            run_worker=True,
            worker_read_count=1,
            worker_gather_seconds=0,
        ),
        "ingest": start_service("ingest", build_ingest, redis_url=redis_db, store=store),
        "metrics": start_service("metrics", build_metrics, redis_url=redis_db, store=store),
        "asset": start_service("asset", build_asset, redis_url=redis_db, store=store, asset_http_port=0),
    }
    addresses = {name: s.target for name, s in services.items()}
    with shoal.Client(api_key=ADMIN_KEY, addresses=addresses, show_progress=False, batch_size=5) as c:
        yield c


def stats(evaluation: evaluation_pb2.Evaluation) -> np.ndarray:
    return np.array([evaluation.result.metrics[n] for n in STAT_NAMES])


@pytest.mark.parametrize(("name", "iou_types"), [("tie_heavy", ("bbox",)), ("polygon_areas", ("bbox", "segm"))])
def test_imported_coco_evaluates_to_pycocotools_figures(
    client: shoal.Client, name: str, iou_types: tuple[str, ...]
) -> None:
    p = unique("coco")
    done = coco.upload_coco(
        client, p, "val", DATA / f"{name}.json", results=DATA / f"{name}_results.json", wait_until_finish=True
    )
    gt, dets = load(name)
    assert done.ground_truth_upload.state == upload_pb2.UPLOAD_STATE_COMMITTED
    assert len(done.ground_truth_upload.versions) == -(-len(gt["images"]) // 5)  # one version per batch
    assert done.inference_set is not None
    assert done.inference_set.dataset_version == done.dataset_version == client.list_versions(p, "val")[0].version
    for iou_type in iou_types:
        task = "detection" if iou_type == "bbox" else "instance_segmentation"
        evaluation = client.evaluate(p, "val", "coco-results", task=task)
        assert evaluation.dataset_version == done.dataset_version
        assert evaluation.result.frame_count == len(gt["images"])
        assert evaluation.result.metrics["frames_without_ground_truth"] == 0
        np.testing.assert_array_equal(stats(evaluation), pycocotools_stats(gt, dets, iou_type))


def test_results_pin_to_the_version_holding_the_whole_import(client: shoal.Client) -> None:
    p = unique("coco")
    gt, dets = load("tie_heavy")
    first = coco.upload_coco(client, p, "val", gt, results=dets, inference_set="m")
    versions = list(first.ground_truth_upload.versions)
    assert len(versions) == 3  # 12 images in batches of 5
    assert first.dataset_version == max(versions)
    assert first.inference_set is not None
    assert first.inference_set.dataset_version == max(versions)
    assert first.inferences is not None
    client.wait_for_upload(first.inferences.name, timeout=120)

    # The version before the last holds part of the ground truth only: pinned there, frames would lack it.
    partial = client.evaluate(p, "val", "m", version=max(versions) - 1)
    assert partial.result.metrics["frames_without_ground_truth"] > 0
    whole = client.evaluate(p, "val", "m")
    assert whole.dataset_version == max(versions)
    assert whole.result.metrics["frames_without_ground_truth"] == 0
    np.testing.assert_array_equal(stats(whole), pycocotools_stats(gt, dets, "bbox"))

    # Importing again would make newer versions: the set pinned to the old ones is not silently reused, and the
    # refusal comes before anything is uploaded.
    moved = json.loads(json.dumps(gt))
    for a in moved["annotations"]:
        a["bbox"][0] += 3
    with pytest.raises(UploadError, match="exists"):
        coco.upload_coco(client, p, "val", moved, results=dets, inference_set="m")
    assert client.list_versions(p, "val")[0].version == first.dataset_version
    again = coco.upload_coco(client, p, "val", moved, results=dets, inference_set="m", replace=True)
    assert again.dataset_version > first.dataset_version
    assert again.inference_set is not None
    assert again.inference_set.dataset_version == again.dataset_version
    assert again.inferences is not None
    client.wait_for_upload(again.inferences.name, timeout=120)
    np.testing.assert_array_equal(stats(client.evaluate(p, "val", "m")), pycocotools_stats(moved, dets, "bbox"))
    # Without results only the ground truth goes in, and nothing is pinned.
    only = coco.upload_coco(client, p, "other", gt)
    assert only.inference_set is None
    assert only.dataset_version == client.list_versions(p, "other")[0].version
