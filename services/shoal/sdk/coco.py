"""COCO import and export: instances and keypoints files (ground truth) and results files (detections).

One COCO annotation becomes the labels it needs: a box (label id = the annotation id), a polygon list for polygon
segmentation (`<id>-segm`), keypoints (`<id>-kp`); run-length-encoded masks travel as a label attribute. Images become
frames (frame id = image id) whose image URL is `image_url_prefix` + `file_name`. Export regroups the labels, so a file
imported and exported again comes back with every field it had.

Every label of an annotation carries the `area` attribute that pycocotools evaluates it with, so that the metrics
service's figures are pycocotools' own: for ground truth the annotation's `area` (for real COCO data the area of its
segmentation, not the box's w·h); for a detection the box's w·h, as `COCO.loadRes` sets it for results with a box.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from shoal.sdk.classmap import ClassMapEntry, LabelClassMap
from shoal.sdk.errors import UploadError
from shoal.sdk.frames import Inferences, InferencesFrame, LabeledDataset, LabeledFrame
from shoal.sdk.uploads import UploadReport
from shoal.v1 import dataset_pb2, frame_pb2, label_pb2, project_pb2, upload_pb2

if TYPE_CHECKING:
    from shoal.sdk.client import Client

SENSOR = "image"


def _load(source: str | Path | Mapping[str, Any] | Sequence[Any]) -> Any:
    if isinstance(source, str | Path):
        return json.loads(Path(source).read_text())
    return source


def class_map_from_coco(categories: Iterable[Mapping[str, Any]]) -> LabelClassMap:
    """COCO categories → class map (class id = category id; keypoint rigs with their skeleton by name)."""
    entries = []
    for cat in categories:
        names = list(cat.get("keypoints") or [])
        skeleton = [(names[a - 1], names[b - 1]) for a, b in cat.get("skeleton") or []]
        entries.append(
            ClassMapEntry(
                name=cat["name"],
                class_id=int(cat["id"]),
                category=cat.get("supercategory"),
                keypoint_names=names or None,
                skeleton=skeleton or None,
            )
        )
    return LabelClassMap(entries)


def _keypoints(values: Sequence[float], names: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for i, name in enumerate(names):
        x, y, v = values[3 * i : 3 * i + 3]
        out.append({"name": name, "x": float(x), "y": float(y), "visibility": int(v)})
    return out


def import_coco(
    source: str | Path | Mapping[str, Any], *, image_url_prefix: str = "", sensor_id: str = SENSOR
) -> tuple[LabelClassMap, LabeledDataset]:
    """A COCO instances or keypoints file → (class map, dataset)."""
    coco = _load(source)
    class_map = class_map_from_coco(coco.get("categories", []))
    cats = {c["id"]: c for c in coco.get("categories", [])}
    by_image: dict[Any, list[Mapping[str, Any]]] = defaultdict(list)
    for ann in coco.get("annotations", []):
        by_image[ann["image_id"]].append(ann)
    dataset = LabeledDataset()
    for image in coco.get("images", []):
        frame = LabeledFrame(frame_id=str(image["id"]), date_captured=image.get("date_captured") or None)
        frame.add_image(
            sensor_id=sensor_id,
            image_url=image_url_prefix + image["file_name"],
            width=image.get("width"),
            height=image.get("height"),
        )
        frame.add_user_metadata("file_name", image["file_name"])
        for ann in by_image.get(image["id"], []):
            _add_annotation(frame, ann, cats[ann["category_id"]], sensor_id, confidence=None)
        dataset.add_frame(frame)
    return class_map, dataset


def _add_annotation(
    frame: LabeledFrame | InferencesFrame,
    ann: Mapping[str, Any],
    cat: Mapping[str, Any],
    sensor_id: str,
    confidence: float | None,
) -> None:
    name = cat["name"]
    aid = str(ann["id"])
    x, y, w, h = ann["bbox"]
    # The area pycocotools evaluates the annotation with, on each of its labels: ground truth keeps its own; a
    # detection gets its box's w·h, as COCO.loadRes overwrites it for results that have a box.
    area: float | None = float(w) * float(h) if confidence is not None else None
    if confidence is None and "area" in ann:
        area = float(ann["area"])
    attrs: dict[str, Any] = {} if area is None else {"area": area}
    seg = ann.get("segmentation")
    box_attrs = dict(attrs)
    if isinstance(seg, Mapping):
        box_attrs["rle"] = json.dumps(seg, separators=(",", ":"))
    add_box = frame._2d_bbox
    add_box(
        sensor_id=sensor_id, label_id=aid, classification=name,
        left=float(x), top=float(y), width=float(w), height=float(h),
        iscrowd=bool(ann.get("iscrowd", 0)), confidence=confidence, user_attrs=box_attrs or None,
    )  # fmt: skip
    if isinstance(seg, list) and seg:
        polygons = [{"vertices": [(poly[i], poly[i + 1]) for i in range(0, len(poly), 2)]} for poly in seg]
        frame._2d_polygon_list(
            sensor_id=sensor_id, label_id=f"{aid}-segm", classification=name, polygons=polygons,
            confidence=confidence, user_attrs=attrs or None,
        )  # fmt: skip
    if ann.get("keypoints"):
        names = cat.get("keypoints") or [f"k{i}" for i in range(len(ann["keypoints"]) // 3)]
        frame._2d_keypoints(
            sensor_id=sensor_id, label_id=f"{aid}-kp", classification=name,
            keypoints=_keypoints(ann["keypoints"], names),
            # pycocotools scores OKS against the annotation's box when no keypoint is labeled.
            left=float(x), top=float(y), width=float(w), height=float(h),
            confidence=confidence, user_attrs={"num_keypoints": int(ann.get("num_keypoints", 0)), **attrs},
        )  # fmt: skip


def import_coco_results(
    source: str | Path | Sequence[Mapping[str, Any]],
    categories: Iterable[Mapping[str, Any]],
    *,
    sensor_id: str = SENSOR,
    image_ids: Iterable[Any] | None = None,
) -> Inferences:
    """A COCO results file (detections with scores) → inferences, one frame per image id.

    `image_ids` are the ground truth's images (every id of its `images`): each gets a frame, one without a
    detection too, so that an evaluation covers the images pycocotools covers, the model's misses on images where it
    found nothing included.
    """
    results = _load(source)
    cats = {c["id"]: c for c in categories}
    frames: dict[Any, InferencesFrame] = {i: InferencesFrame(frame_id=str(i)) for i in image_ids or ()}
    for index, det in enumerate(results):
        frame = frames.setdefault(det["image_id"], InferencesFrame(frame_id=str(det["image_id"])))
        _add_annotation(
            frame,
            {**det, "id": det.get("id", f"det{index}")},
            cats[det["category_id"]],
            sensor_id,
            confidence=float(det["score"]),
        )
    inferences = Inferences()
    for frame in frames.values():
        inferences.add_frame(frame)
    return inferences


@dataclass
class CocoUpload:
    """What `upload_coco` did: the ground truth's upload (committed), the dataset version that holds all of it, and,
    with a results file, the inference set pinned to that version and its upload."""

    ground_truth: UploadReport
    ground_truth_upload: upload_pb2.Upload
    dataset_version: int
    inference_set: dataset_pb2.InferenceSet | None = None
    inferences: UploadReport | None = None


def upload_coco(
    client: Client,
    project_id: str,
    dataset_id: str,
    annotations: str | Path | Mapping[str, Any],
    *,
    results: str | Path | Sequence[Mapping[str, Any]] | None = None,
    inference_set: str = "coco-results",
    model_id: str = "",
    image_url_prefix: str = "",
    replace: bool = False,
    timeout: float | None = None,
    wait_until_finish: bool = False,
) -> CocoUpload:
    """Import a COCO ground-truth file into a dataset (creating the project and dataset when needed) and, with
    `results`, the detections as an inference set pinned to the dataset version that holds the whole ground truth.

    The inference set is created only once the ground-truth upload has committed, pinned to the newest version that
    upload made (its batches commit in order, so that version holds every one of them): never to a version taken
    before the upload finished, which would hold none or part of it. Every image of the ground truth gets an
    inference frame, one without detections too, so that the evaluation covers the images pycocotools covers.

    When an inference set of that name exists already (pinned to an older version), nothing is uploaded and
    UploadError says so, unless `replace`: then it is deleted, with its evaluations, and made anew once the ground
    truth has committed. `timeout` bounds each wait for an upload; `wait_until_finish` also waits for the detections
    to commit.

    >>> done = upload_coco(client, "p", "val", "instances_val.json", results="detections.json")
    >>> client.evaluate("p", "val", "coco-results").dataset_version == done.dataset_version
    True
    """
    coco = _load(annotations)
    class_map, dataset = import_coco(coco, image_url_prefix=image_url_prefix)
    detections = (
        None
        if results is None
        else import_coco_results(
            results, coco.get("categories", []), image_ids=[image["id"] for image in coco.get("images", [])]
        )
    )
    name = f"projects/{project_id}/datasets/{dataset_id}/inferenceSets/{inference_set}"
    if detections is not None and not replace and client.inference_set_exists(project_id, dataset_id, inference_set):
        raise UploadError(f"{name} exists: replace it to pin it to this import, or name another inference set")
    client.create_project(project_id, class_map, exist_ok=True)
    report = client.create_or_update_dataset(project_id, dataset_id, dataset=dataset)
    upload = client.wait_for_upload(report.name, timeout)
    if not upload.versions:
        raise UploadError(
            f"{report.name} committed no version ({upload_pb2.UploadState.Name(upload.state)}, "
            f"{upload.frames_rejected} frames rejected, {upload.frames_failed} failed)"
        )
    version = max(upload.versions)
    done = CocoUpload(report, upload, version)
    if detections is None:
        return done
    try:
        done.inference_set = client.create_inferences_set(
            project_id, dataset_id, inference_set, model_id=model_id, dataset_version=version
        )
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.ALREADY_EXISTS or not replace:
            raise
        client.delete_inference_set(project_id, dataset_id, inference_set)
        done.inference_set = client.create_inferences_set(
            project_id, dataset_id, inference_set, model_id=model_id, dataset_version=version
        )
    done.inferences = client.upload(name, detections.items)  # COCO results carry no masks to upload first
    if wait_until_finish:
        client.wait_for_upload(done.inferences.name, timeout)
    return done


def export_coco(
    frames: Iterable[frame_pb2.Frame], class_map: project_pb2.ClassMap, *, image_url_prefix: str = ""
) -> dict[str, Any]:
    """Frames → a COCO instances/keypoints dict (the inverse of import_coco)."""
    categories = []
    names_of: dict[str, list[str]] = {}
    id_of: dict[str, int] = {}
    for entry in class_map.entries:
        cat: dict[str, Any] = {"id": entry.class_id, "name": entry.name, "supercategory": entry.category}
        kps = [k.name for k in entry.keypoints]
        if kps:
            cat["keypoints"] = kps
            cat["skeleton"] = [[kps.index(e.from_keypoint) + 1, kps.index(e.to_keypoint) + 1] for e in entry.skeleton]
        names_of[entry.name] = kps
        id_of[entry.name] = entry.class_id
        categories.append(cat)
    images, annotations = [], []
    for frame in frames:
        image = next(s for s in frame.sensors if s.WhichOneof("data") == "image")
        file_name = (
            frame.user_metadata["file_name"].string_value
            if "file_name" in frame.user_metadata
            else image.image.url.removeprefix(image_url_prefix)
        )
        entry_image: dict[str, Any] = {
            "id": _int_or_str(frame.frame_id),
            "file_name": file_name,
            "width": image.image.width,
            "height": image.image.height,
        }
        if frame.HasField("date_captured"):
            entry_image["date_captured"] = frame.date_captured.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
        images.append(entry_image)
        annotations.extend(_annotations(frame.frame_id, frame.labels, id_of, names_of))
    return {"images": images, "annotations": annotations, "categories": categories}


def _annotations(
    frame_id: str, labels: Iterable[label_pb2.Label], id_of: Mapping[str, int], names_of: Mapping[str, list[str]]
) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for label in labels:
        base = label.label_id.removesuffix("-segm").removesuffix("-kp")
        ann = out.setdefault(
            base,
            {"id": _int_or_str(base), "image_id": _int_or_str(frame_id), "category_id": id_of[label.classification]},
        )
        kind = label.WhichOneof("geometry")
        if kind == "box_2d":
            b = label.box_2d
            ann["bbox"] = [b.left, b.top, b.width, b.height]
            ann["iscrowd"] = int(b.iscrowd)
            if "area" in label.attributes:
                ann["area"] = label.attributes["area"].float_value
            if "rle" in label.attributes:
                ann["segmentation"] = json.loads(label.attributes["rle"].string_value)
            if label.HasField("confidence"):
                ann["score"] = label.confidence
        elif kind == "polygon_list_2d":
            ann["segmentation"] = [[c for v in p.vertices for c in (v.x, v.y)] for p in label.polygon_list_2d.polygons]
        elif kind == "keypoints_2d":
            by_name = {k.name: k for k in label.keypoints_2d.keypoints}
            values: list[float] = []
            for name in names_of.get(label.classification) or list(by_name):
                k = by_name.get(name)
                values += [k.x, k.y, max(0, k.visibility - 1)] if k else [0.0, 0.0, 0]
            ann["keypoints"] = values
            ann["num_keypoints"] = (
                int(label.attributes["num_keypoints"].int_value) if "num_keypoints" in label.attributes else 0
            )
    return list(out.values())


def _int_or_str(value: str) -> int | str:
    return int(value) if value.isdigit() else value
