"""Every evaluation task through the running services, on an inference set pinned to an older dataset version: the
figures use that version's labels (checked against pycocotools or a straightforward reference), and an evaluation on
the newer version gives other figures."""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shoal
from shoal.kit.settings import StoreSettings
from shoal.metrics.coco import polygon_mask
from shoal.sdk.classmap import ClassMapEntry
from shoal.v1 import evaluation_pb2

from tests.conftest import ServerThread, unique
from tests.integration.test_metrics import committed, suite

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

W, H = 64, 48
FRAMES = 12
COCO_KEYPOINTS = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
]  # fmt: skip
SCENES = ["road", "car", "sky"]


@pytest.fixture
def client(start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str) -> Iterator[shoal.Client]:
    with suite(start_service, StoreSettings(url=(tmp_path / "store").as_uri()), redis_db) as c:
        yield c


def class_map() -> shoal.LabelClassMap:
    cm = shoal.LabelClassMap()
    cm.add_entry(ClassMapEntry(name="road", class_id=0))
    cm.add_entry(ClassMapEntry(name="car", class_id=1))
    cm.add_entry(ClassMapEntry(name="person", class_id=2, keypoint_names=COCO_KEYPOINTS))
    cm.add_entry(ClassMapEntry(name="sky", class_id=3))
    return cm


def scene(version: int) -> list[dict[str, Any]]:
    """The ground truth of every frame at a dataset version (version 2 changes every label)."""
    rng = np.random.default_rng(100 + version)
    out = []
    for f in range(FRAMES):
        mask = np.zeros((H, W), np.uint8)
        mask[: H // 3] = 3
        mask[H // 2 :, rng.integers(0, W // 2) :] = 1
        x, y = float(rng.integers(2, 30)), float(rng.integers(2, 20))
        w, h = float(rng.integers(8, 30)), float(rng.integers(8, 24))
        polygon = [(x, y), (x + w, y + 2), (x + w - 1, y + h), (x + 1, y + h - 1)]
        kx, ky, kw, kh = float(rng.integers(0, 20)), float(rng.integers(0, 10)), 30.0, 36.0
        points = [
            (round(kx + rng.random() * kw, 1), round(ky + rng.random() * kh, 1), int(rng.choice([0, 1, 2, 2])))
            for _ in COCO_KEYPOINTS
        ]
        out.append(
            {
                "scene": SCENES[(f + version) % 3],
                "mask": mask,
                "polygon": polygon,
                "keypoints": points,
                "kbox": (kx, ky, kw, kh),
                "cuboid": (float(f * 3 + 10 * version), 0.0, 0.0, 4.0, 2.0, 1.5),
            }
        )
    return out


def upload_version(client: shoal.Client, p: str, truth: list[dict[str, Any]]) -> None:
    ds = shoal.LabeledDataset()
    for f, t in enumerate(truth):
        fr = shoal.LabeledFrame(frame_id=f"f{f:02d}")
        fr.add_image(sensor_id="cam", image_url=f"s3://b/{f}.jpg", width=W, height=H)
        fr.add_point_cloud_pcd(sensor_id="lidar", pcd_url=f"s3://b/{f}.pcd")
        fr.add_label_2d_classification(sensor_id="cam", label_id=f"c{f}", classification=t["scene"])
        fr.add_label_2d_semseg(sensor_id="cam", label_id=f"s{f}", mask_data=t["mask"])
        fr.add_label_2d_polygon_list(
            sensor_id="cam", label_id=f"poly{f}", classification="car", polygons=[{"vertices": t["polygon"]}]
        )
        kx, ky, kw, kh = t["kbox"]
        fr.add_label_2d_keypoints(
            sensor_id="cam", label_id=f"k{f}", classification="person", left=kx, top=ky, width=kw, height=kh,
            keypoints=[{"name": n, "x": x, "y": y, "visibility": v} for n, (x, y, v) in zip(COCO_KEYPOINTS, t["keypoints"], strict=True)],
        )  # fmt: skip
        cx, cy, cz, ln, wd, ht = t["cuboid"]
        fr.add_label_3d_cuboid(
            sensor_id="lidar",
            label_id=f"b{f}",
            classification="car",
            position=(cx, cy, cz),
            dimensions=(ln, wd, ht),
            rotation=(0, 0, 0, 1),
        )
        ds.add_frame(fr)
    committed(client, client.create_or_update_dataset(p, "d", dataset=ds))


def predictions(truth: list[dict[str, Any]]) -> tuple[shoal.Inferences, list[dict[str, Any]]]:
    rng = np.random.default_rng(7)
    inf = shoal.Inferences()
    record = []
    for f, t in enumerate(truth):
        fr = shoal.InferencesFrame(frame_id=f"f{f:02d}")
        right = t["scene"]
        wrong = SCENES[(SCENES.index(right) + 1) % 3]
        first, second = (wrong, right) if f % 4 == 0 else (right, wrong)
        fr.add_inference_2d_classification(sensor_id="cam", label_id=f"pc{f}a", classification=first, confidence=0.8)
        fr.add_inference_2d_classification(sensor_id="cam", label_id=f"pc{f}b", classification=second, confidence=0.3)
        mask = t["mask"].copy()
        mask[-10:, :10] = 1
        fr.add_inference_2d_semseg(sensor_id="cam", label_id=f"ps{f}", mask_data=mask, confidence=1.0)
        shift = f % 3
        poly = [(x + shift, y) for x, y in t["polygon"]]
        fr.add_inference_2d_polygon_list(
            sensor_id="cam",
            label_id=f"pp{f}",
            classification="car",
            polygons=[{"vertices": poly}],
            confidence=round(0.5 + 0.04 * f, 2),
        )
        pts = [(round(x + rng.normal(0, 1.5), 2), round(y + rng.normal(0, 1.5), 2)) for x, y, _ in t["keypoints"]]
        fr.add_inference_2d_keypoints(
            sensor_id="cam", label_id=f"pk{f}", classification="person", confidence=round(0.9 - 0.03 * f, 2),
            keypoints=[{"name": n, "x": x, "y": y} for n, (x, y) in zip(COCO_KEYPOINTS, pts, strict=True)],
        )  # fmt: skip
        cx, cy, cz, ln, wd, ht = t["cuboid"]
        fr.add_inference_3d_cuboid(
            sensor_id="lidar",
            label_id=f"pb{f}",
            classification="car",
            position=(cx + 0.1 * shift, cy, cz),
            dimensions=(ln, wd, ht),
            rotation=(0, 0, 0, 1),
            confidence=0.9,
        )
        inf.add_frame(fr)
        record.append(
            {
                "mask": mask,
                "polygon": poly,
                "points": pts,
                "score_poly": round(0.5 + 0.04 * f, 2),
                "score_kp": round(0.9 - 0.03 * f, 2),
            }
        )
    return inf, record


def pycoco(gt: dict[str, Any], dets: list[dict[str, Any]], iou_type: str) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO()
        g.dataset = copy.deepcopy(gt)
        g.createIndex()
        e = COCOeval(g, g.loadRes(copy.deepcopy(dets)), iou_type)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return np.asarray(e.stats)


def flat(poly: list[tuple[float, float]]) -> list[float]:
    return [c for xy in poly for c in xy]


def test_every_task_uses_the_pinned_version(client: shoal.Client) -> None:
    p = unique("p")
    client.create_project(p, class_map())
    client.create_dataset(p, "d")
    v1 = scene(1)
    upload_version(client, p, v1)
    inf, pred = predictions(v1)
    committed(client, client.create_or_update_inferences(p, "d", "multi", inferences=inf))
    upload_version(client, p, scene(2))  # version 2 changes every label

    images = [{"id": f + 1, "width": W, "height": H} for f in range(FRAMES)]

    # classification: the wrong class leads on every fourth frame, the right one is always second.
    c = client.evaluate(p, "d", "multi", task="classification", top_k=2)
    assert c.dataset_version == 1
    assert c.result.metrics["accuracy"] == pytest.approx(0.75)
    assert c.result.metrics["top_2_accuracy"] == pytest.approx(1.0)
    later = client.evaluate(p, "d", "multi", task="classification", version=2)
    assert later.result.metrics["accuracy"] < 0.75

    # semantic segmentation from mask assets, against a straightforward computation on version 1's masks.
    s = client.evaluate(p, "d", "multi", task="semantic_segmentation")
    gts = np.concatenate([t["mask"].ravel() for t in v1])
    dts = np.concatenate([r["mask"].ravel() for r in pred])
    ious = {}
    for k, name in enumerate(["road", "car", "person", "sky"]):
        inter, union = np.sum((gts == k) & (dts == k)), np.sum((gts == k) | (dts == k))
        if union:
            ious[name] = inter / union
    assert s.result.metrics["mIoU"] == pytest.approx(np.mean(list(ious.values())))
    assert s.result.metrics["pixel_accuracy"] == pytest.approx(np.mean(gts == dts))
    assert (
        client.evaluate(p, "d", "multi", task="semantic_segmentation", version=2).result.metrics["mIoU"]
        < s.result.metrics["mIoU"]
    )

    # polygons: COCO segm, identical to pycocotools on version 1's polygons.
    seg = client.evaluate(p, "d", "multi", task="instance_segmentation")
    gt_coco = {
        "images": images,
        "categories": [{"id": 1, "name": "car"}],
        "annotations": [
            {
                "id": f + 1,
                "image_id": f + 1,
                "category_id": 1,
                "segmentation": [flat(t["polygon"])],
                "area": float(polygon_mask([flat(t["polygon"])], H, W).sum()),
                "iscrowd": 0,
                "bbox": [0, 0, 1, 1],
            }
            for f, t in enumerate(v1)
        ],
    }
    from pycocotools import mask as mask_utils

    dets = []
    for f, r in enumerate(pred):
        rle = mask_utils.merge(mask_utils.frPyObjects([flat(r["polygon"])], H, W))
        rle["counts"] = rle["counts"].decode()
        dets.append({"image_id": f + 1, "category_id": 1, "segmentation": rle, "score": r["score_poly"]})
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    ref = pycoco(gt_coco, dets, "segm")
    car_only = client.evaluate(p, "d", "multi", task="instance_segmentation", classes=["car"])
    np.testing.assert_array_equal(np.array([car_only.result.metrics[n] for n in names]), ref)
    assert 0 < ref[0] < 1
    assert seg.result.metrics["AP"] == car_only.result.metrics["AP"]  # no other class has polygons
    assert (
        client.evaluate(p, "d", "multi", task="instance_segmentation", version=2).result.metrics["AP"]
        < seg.result.metrics["AP"]
    )

    # keypoints: COCO OKS with the person rig's default sigmas, identical to pycocotools on version 1's points.
    kp = client.evaluate(p, "d", "multi", task="keypoints")
    gt_kp = {
        "images": images,
        "categories": [{"id": 1, "name": "person", "keypoints": COCO_KEYPOINTS, "skeleton": []}],
        "annotations": [
            {
                "id": f + 1,
                "image_id": f + 1,
                "category_id": 1,
                "keypoints": [c for x, y, v in t["keypoints"] for c in (x, y, v)],
                "num_keypoints": sum(v > 0 for _, _, v in t["keypoints"]),
                "bbox": list(t["kbox"]),
                "area": t["kbox"][2] * t["kbox"][3],
                "iscrowd": 0,
            }
            for f, t in enumerate(v1)
        ],
    }
    kp_dets = [
        {
            "image_id": f + 1,
            "category_id": 1,
            "keypoints": [c for x, y in r["points"] for c in (x, y, 1)],
            "score": r["score_kp"],
        }
        for f, r in enumerate(pred)
    ]
    ref_kp = pycoco(gt_kp, kp_dets, "keypoints")
    kp_names = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
    np.testing.assert_array_equal(np.array([kp.result.metrics[n] for n in kp_names]), ref_kp)
    assert 0 < ref_kp[0] < 1  # a real comparison, not two empty evaluations
    assert client.evaluate(p, "d", "multi", task="keypoints", version=2).result.metrics["AP"] < kp.result.metrics["AP"]

    # cuboids: every prediction within 0.2 m of its box on version 1; version 2 moved every box 10 m.
    cub = client.evaluate(p, "d", "multi", task="cuboids")
    assert cub.result.metrics["AP_BEV"] == pytest.approx(1.0)
    assert cub.result.metrics["AP_3D@0.7"] == pytest.approx(1.0)
    assert client.evaluate(p, "d", "multi", task="cuboids", version=2).result.metrics["AP_3D"] == pytest.approx(0.0)


def test_instance_masks_from_assets(client: shoal.Client) -> None:
    p = unique("p")
    client.create_project(p, class_map())
    client.create_dataset(p, "d")

    def masks(version: int) -> list[np.ndarray]:
        out = []
        for f in range(4):
            m = np.zeros((H, W), np.uint8)
            m[5 : 20 + f, 5 + 10 * version : 25 + 10 * version] = 1
            m[30:40, 40 : 50 + f] = 2
            out.append(m)
        return out

    def upload(version: int) -> None:
        ds = shoal.LabeledDataset()
        for f, m in enumerate(masks(version)):
            fr = shoal.LabeledFrame(frame_id=f"f{f}")
            fr.add_image(sensor_id="cam", image_url=f"s3://b/{f}.jpg", width=W, height=H)
            fr.add_label_2d_instance_seg(
                sensor_id="cam",
                label_id=f"i{f}",
                mask_data=m,
                instance_mapping=[{"id": 1, "classification": "car"}, {"id": 2, "classification": "person"}],
            )
            ds.add_frame(fr)
        committed(client, client.create_or_update_dataset(p, "d", dataset=ds))

    upload(1)
    inf = shoal.Inferences()
    for f, m in enumerate(masks(1)):
        fr = shoal.InferencesFrame(frame_id=f"f{f}")
        fr.add_inference_2d_instance_seg(
            sensor_id="cam",
            label_id=f"pi{f}",
            mask_data=m,
            instance_mapping=[{"id": 1, "classification": "car"}, {"id": 2, "classification": "person"}],
            confidence=0.9,
        )
        inf.add_frame(fr)
    committed(client, client.create_or_update_inferences(p, "d", "inst", inferences=inf))
    upload(2)
    pinned = client.evaluate(p, "d", "inst")
    assert pinned.params.task == evaluation_pb2.EVALUATION_TASK_INSTANCE_SEGMENTATION_2D
    assert pinned.result.metrics["AP"] == pytest.approx(1.0)
    later = client.evaluate(p, "d", "inst", version=2)
    per_class = {c.class_name: c.metrics["AP"] for c in later.result.per_class if c.support}
    assert per_class["person"] == pytest.approx(1.0)  # unchanged
    assert per_class["car"] < 0.5  # moved 10 px to the right on a 20 px wide region
