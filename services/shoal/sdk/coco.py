"""COCO import and export: instances and keypoints files (ground truth) and results files (detections).

One COCO annotation becomes the labels it needs: a box (label id = the annotation id), a polygon list for polygon
segmentation (`<id>-segm`), keypoints (`<id>-kp`); run-length-encoded masks and the area travel as label attributes.
Images become frames (frame id = image id) whose image URL is `image_url_prefix` + `file_name`. Export regroups the
labels, so a file imported and exported again comes back with every field it had.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shoal.sdk.classmap import ClassMapEntry, LabelClassMap
from shoal.sdk.frames import Inferences, InferencesFrame, LabeledDataset, LabeledFrame
from shoal.v1 import frame_pb2, label_pb2, project_pb2

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
    attrs: dict[str, Any] = {}
    if "area" in ann:
        attrs["area"] = float(ann["area"])
    seg = ann.get("segmentation")
    if isinstance(seg, Mapping):
        attrs["rle"] = json.dumps(seg, separators=(",", ":"))
    add_box = frame._2d_bbox
    x, y, w, h = ann["bbox"]
    add_box(
        sensor_id=sensor_id, label_id=aid, classification=name,
        left=float(x), top=float(y), width=float(w), height=float(h),
        iscrowd=bool(ann.get("iscrowd", 0)), confidence=confidence, user_attrs=attrs or None,
    )  # fmt: skip
    if isinstance(seg, list) and seg:
        polygons = [{"vertices": [(poly[i], poly[i + 1]) for i in range(0, len(poly), 2)]} for poly in seg]
        frame._2d_polygon_list(
            sensor_id=sensor_id, label_id=f"{aid}-segm", classification=name, polygons=polygons, confidence=confidence
        )
    if ann.get("keypoints"):
        names = cat.get("keypoints") or [f"k{i}" for i in range(len(ann["keypoints"]) // 3)]
        frame._2d_keypoints(
            sensor_id=sensor_id, label_id=f"{aid}-kp", classification=name,
            keypoints=_keypoints(ann["keypoints"], names),
            confidence=confidence, user_attrs={"num_keypoints": int(ann.get("num_keypoints", 0))},
        )  # fmt: skip


def import_coco_results(
    source: str | Path | Sequence[Mapping[str, Any]],
    categories: Iterable[Mapping[str, Any]],
    *,
    sensor_id: str = SENSOR,
) -> Inferences:
    """A COCO results file (detections with scores) → inferences, one frame per image id."""
    results = _load(source)
    cats = {c["id"]: c for c in categories}
    frames: dict[Any, InferencesFrame] = {}
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
