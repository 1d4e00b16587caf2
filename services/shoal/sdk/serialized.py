"""The reference client's serialized frames: JSON lines, one row per frame with its labels inline, or the streaming
split into frame rows and crop rows (one per label, carrying the label's crop embedding). Both read into the same
wire messages, and write back out, field for field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
from google.protobuf import timestamp_pb2

from shoal.sdk.frames import metadata_kind
from shoal.v1 import common_pb2, frame_pb2, label_pb2

_SENSOR_TYPES: Final = {
    "image": "IMAGE_V0",
    "image_overlay": "IMAGE_OVERLAY_V0",
    "point_cloud_pcd": "POINTCLOUD_PCD_V0",
    "point_cloud_bins": "POINTCLOUD_V0",
    "obj_mesh": "OBJ_V0",
    "audio": "AUDIO_V0",
    "video": "VIDEO_V0",
    "text": "TEXT",
}
_SENSOR_KINDS: Final = {v: k for k, v in _SENSOR_TYPES.items()}
_LABEL_TYPES: Final = {
    "classification_2d": "CLASSIFICATION_2D",
    "box_2d": "BBOX_2D",
    "cuboid_3d": "CUBOID_3D",
    "semantic_segmentation_2d": "SEMANTIC_LABEL_URL_2D",
    "instance_segmentation_2d": "INSTANCE_LABEL_URL_2D",
    "polygon_list_2d": "POLYGON_LIST_2D",
    "keypoints_2d": "KEYPOINTS_2D",
    "line_segment_2d": "LINE_SEGMENT_2D",
    "classification_3d": "CLASSIFICATION_3D",
    "text_token": "TEXT_TOKEN",
}
_LABEL_KINDS: Final = {v: k for k, v in _LABEL_TYPES.items()}
# Attribute keys that belong to a geometry; every other attribute is a user attribute.
_GEOMETRY_KEYS: Final = {
    "classification_2d": {"secondary_labels"},
    "box_2d": {"top", "left", "width", "height", "iscrowd"},
    "cuboid_3d": {"pos_x", "pos_y", "pos_z", "dim_x", "dim_y", "dim_z", "rot_x", "rot_y", "rot_z", "rot_w"},
    "semantic_segmentation_2d": {"url"},
    "instance_segmentation_2d": {"url", "instances"},
    "polygon_list_2d": {"polygons"},
    "keypoints_2d": {"keypoints", "top", "left", "width", "height"},
    "line_segment_2d": {"x1", "y1", "x2", "y2"},
    "classification_3d": set(),
    "text_token": {"index", "token", "visible"},
}
_CAMERA_FIELDS: Final = ("fx", "fy", "k1", "k2", "k3", "k4", "k5", "k6", "p1", "p2", "s1", "s2", "s3", "s4", "skew")
_CAMERA_MODELS: Final = {
    frame_pb2.CAMERA_MODEL_BROWN_CONRADY: "brown_conrady",
    frame_pb2.CAMERA_MODEL_FISHEYE: "fisheye",
}
_TYPE_NAMES: Final = {
    "string_value": "str", "int_value": "int", "float_value": "float", "bool_value": "bool",
    "string_list_value": "list:str", "int_list_value": "list:int",
    "float_list_value": "list:float", "bool_list_value": "list:bool",
}  # fmt: skip
_TYPE_KINDS: Final = {v: k for k, v in _TYPE_NAMES.items()}
_NULL_TYPES: Final = {
    "string_value": common_pb2.METADATA_TYPE_STRING, "int_value": common_pb2.METADATA_TYPE_INT,
    "float_value": common_pb2.METADATA_TYPE_FLOAT, "bool_value": common_pb2.METADATA_TYPE_BOOL,
    "string_list_value": common_pb2.METADATA_TYPE_STRING_LIST, "int_list_value": common_pb2.METADATA_TYPE_INT_LIST,
    "float_list_value": common_pb2.METADATA_TYPE_FLOAT_LIST, "bool_list_value": common_pb2.METADATA_TYPE_BOOL_LIST,
}  # fmt: skip
_CHANGES: Final = {
    frame_pb2.CHANGE_TYPE_ADD: "ADD",
    frame_pb2.CHANGE_TYPE_MODIFY: "MODIFY",
    frame_pb2.CHANGE_TYPE_DELETE: "DELETE",
}


# ---- values ------------------------------------------------------------------------------------------------------


def _value_to_json(value: common_pb2.MetadataValue) -> tuple[Any, str]:
    kind = metadata_kind(value)
    raw = value.WhichOneof("kind")
    if raw == "null_value":
        return None, _TYPE_NAMES[kind]
    data = getattr(value, kind)
    return (list(data.values) if kind.endswith("_list_value") else data), _TYPE_NAMES[kind]


def _value_from_json(data: Any, type_name: str) -> common_pb2.MetadataValue:
    kind = _TYPE_KINDS[type_name]
    if data is None:
        return common_pb2.MetadataValue(null_value=_NULL_TYPES[kind])
    value = common_pb2.MetadataValue()
    if kind.endswith("_list_value"):
        getattr(value, kind).values.extend(data)
    else:
        setattr(value, kind, data)
    return value


def _infer_type(data: Any) -> str:
    if isinstance(data, bool):
        return "bool"
    if isinstance(data, int):
        return "int"
    if isinstance(data, float):
        return "float"
    if isinstance(data, list):
        inner = {_infer_type(v) for v in data} or {"str"}
        return "list:" + ("float" if inner == {"int", "float"} else inner.pop())
    return "str"


def _timestamp_to_json(ts: timestamp_pb2.Timestamp) -> str:
    return ts.ToJsonString()


def _timestamp_from_json(text: str | None) -> timestamp_pb2.Timestamp | None:
    if not text:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromJsonString(text if text.endswith("Z") or "+" in text[10:] else text.replace(" ", "T") + "Z")
    return ts


def _vec(v: common_pb2.Vector3) -> dict[str, float]:
    return {"x": v.x, "y": v.y, "z": v.z}


def _quat(q: common_pb2.Quaternion) -> dict[str, float]:
    return {"w": q.w, "x": q.x, "y": q.y, "z": q.z}


# ---- rows → messages ---------------------------------------------------------------------------------------------


def row_to_frame(row: Mapping[str, Any]) -> frame_pb2.Frame:
    """One labels-inline frame row → a Frame."""
    frame = frame_pb2.Frame(frame_id=row["task_id"], device_id=row.get("device_id", ""))
    frame.change_type = {
        "ADD": frame_pb2.CHANGE_TYPE_ADD,
        "MODIFY": frame_pb2.CHANGE_TYPE_MODIFY,
        "DELETE": frame_pb2.CHANGE_TYPE_DELETE,
    }[row.get("change", "ADD")]
    captured = _timestamp_from_json(row.get("date_captured"))
    if captured is not None:
        frame.date_captured.CopyFrom(captured)
    for cf in row.get("coordinate_frames", []):
        frame.coordinate_frames.append(_coordinate_frame(cf))
    for sensor in row.get("sensor_data", []):
        frame.sensors.append(_sensor(sensor))
    _read_metadata(row, frame.user_metadata)
    geo = row.get("geo_data") or {}
    if "geo_EPSG4326_lat" in geo:
        frame.geo.latitude, frame.geo.longitude = geo["geo_EPSG4326_lat"], geo["geo_EPSG4326_lon"]
    for label in row.get("label_data", []):
        frame.labels.append(row_to_label(label))
    _read_embedding(row.get("embedding"), frame)
    return frame


def row_to_inference_frame(row: Mapping[str, Any]) -> frame_pb2.InferenceFrame:
    frame = frame_pb2.InferenceFrame(frame_id=row["task_id"])
    for label in row.get("label_data", []):
        frame.labels.append(row_to_label(label))
    for name, value in (row.get("custom_metrics") or {}).items():
        metric = frame.custom_metrics[name]
        if isinstance(value, list):
            metric.confusion_matrix.CopyFrom(
                common_pb2.Matrix(rows=len(value), columns=len(value[0]), values=[v for r in value for v in r])
            )
        else:
            metric.objective = float(value)
    _read_metadata(row, frame.user_metadata)
    _read_embedding(row.get("embedding"), frame)
    return frame


def _read_metadata(row: Mapping[str, Any], target: Any) -> None:
    types = row.get("user_metadata_types") or {}
    for key, data in row.items():
        if key.startswith("user__"):
            target[key[len("user__") :]].CopyFrom(_value_from_json(data, types.get(key) or _infer_type(data)))


def _read_embedding(embedding: Mapping[str, Any] | None, frame: frame_pb2.Frame | frame_pb2.InferenceFrame) -> None:
    if not embedding:
        return
    model = embedding.get("model_id", "")
    if embedding.get("embedding"):
        frame.embedding.CopyFrom(frame_pb2.FrameEmbedding(values=embedding["embedding"], model_id=model))
    for crop in embedding.get("crop_embeddings", []):
        frame.crop_embeddings.add(label_id=crop["uuid"], values=crop["embedding"], model_id=model)


def _coordinate_frame(cf: Mapping[str, Any]) -> frame_pb2.CoordinateFrame:
    meta = json.loads(cf.get("coordinate_frame_metadata") or "{}")
    out = frame_pb2.CoordinateFrame(
        coordinate_frame_id=cf["coordinate_frame_id"], parent_frame_id=meta.get("parent_frame_id", "")
    )
    position = common_pb2.Vector3(**meta.get("position", {}))
    orientation = common_pb2.Quaternion(**meta.get("orientation", {"w": 1.0}))
    if cf.get("coordinate_frame_type") == "IMAGE_PROJECTION":
        cam = frame_pb2.CoordinateFrame2D(
            camera_model={v: k for k, v in _CAMERA_MODELS.items()}.get(
                meta.get("camera_model", "brown_conrady"), frame_pb2.CAMERA_MODEL_BROWN_CONRADY
            ),
            position=position,
            orientation=orientation,
            camera_matrix=[v for row in meta.get("camera_matrix") or [] for v in row],
            **{f: float(meta.get(f, 0.0)) for f in _CAMERA_FIELDS},
        )
        for axis in ("cx", "cy"):
            if meta.get(axis) is not None:
                setattr(cam, axis, meta[axis])
        out.frame_2d.CopyFrom(cam)
    else:
        out.frame_3d.CopyFrom(frame_pb2.CoordinateFrame3D(position=position, orientation=orientation))
    return out


def _sensor(sensor: Mapping[str, Any]) -> frame_pb2.SensorData:
    kind = _SENSOR_KINDS[sensor["sensor_type"]]
    urls = sensor.get("data_urls") or {}
    meta = sensor.get("sensor_metadata") or {}
    out = frame_pb2.SensorData(sensor_id=sensor["sensor_id"], coordinate_frame_id=sensor.get("coordinate_frame", ""))
    captured = _timestamp_from_json(sensor.get("date_captured"))
    if captured is not None:
        out.date_captured.CopyFrom(captured)
    if kind == "image":
        out.image.CopyFrom(
            frame_pb2.Image(
                url=urls["image_url"],
                preview_url=urls.get("preview_url", ""),
                width=meta.get("width", 0),
                height=meta.get("height", 0),
            )
        )
    elif kind == "image_overlay":
        out.image_overlay.CopyFrom(
            frame_pb2.ImageOverlay(url=urls["image_url"], width=meta.get("width", 0), height=meta.get("height", 0))
        )
    elif kind == "point_cloud_pcd":
        out.point_cloud_pcd.url = urls["pcd_url"]
    elif kind == "point_cloud_bins":
        out.point_cloud_bins.CopyFrom(
            frame_pb2.PointCloudBins(
                pointcloud_url=urls["pointcloud_url"],
                intensity_url=urls.get("intensity_url", ""),
                range_url=urls.get("range_url", ""),
            )
        )
    elif kind == "obj_mesh":
        out.obj_mesh.url = urls["obj_url"]
    elif kind == "audio":
        out.audio.url = urls["audio_url"]
    elif kind == "video":
        out.video.url = urls["video_url"]
    else:
        out.text.text = urls["text"]
    return out


def row_to_label(row: Mapping[str, Any]) -> label_pb2.Label:
    """One label_data entry (or crop row) → a Label."""
    kind = _LABEL_KINDS[row["label_type"]]
    attrs = dict(row.get("attributes") or {})
    label = label_pb2.Label(
        label_id=row["uuid"], classification=row.get("label", ""), sensor_id=row.get("sensor_id", "")
    )
    label.coordinate_frame_id = (
        row.get("label_coordinate_frame", "") if kind in {"cuboid_3d", "classification_3d"} else ""
    )
    if kind not in {"cuboid_3d", "classification_3d"}:
        label.sensor_id = label.sensor_id or row.get("label_coordinate_frame", "")
    if "confidence" in attrs:
        label.confidence = attrs.pop("confidence")
    types = attrs.pop("user_attr_types", {})
    for key in [k for k in attrs if k not in _GEOMETRY_KEYS[kind]]:
        value = attrs.pop(key)
        label.attributes[key].CopyFrom(_value_from_json(value, types.get(key) or _infer_type(value)))
    a = attrs
    if kind == "classification_2d":
        label.classification_2d.secondary_labels.update(a.get("secondary_labels") or {})
        label.classification_2d.SetInParent()
    elif kind == "box_2d":
        label.box_2d.CopyFrom(
            label_pb2.Box2D(
                left=a["left"],
                top=a["top"],
                width=a["width"],
                height=a["height"],
                iscrowd=bool(a.get("iscrowd", False)),
            )
        )
    elif kind == "cuboid_3d":
        c = label.cuboid_3d
        c.position.x, c.position.y, c.position.z = a["pos_x"], a["pos_y"], a["pos_z"]
        c.dimensions.x, c.dimensions.y, c.dimensions.z = a["dim_x"], a["dim_y"], a["dim_z"]
        c.rotation.x, c.rotation.y, c.rotation.z, c.rotation.w = a["rot_x"], a["rot_y"], a["rot_z"], a["rot_w"]
    elif kind == "semantic_segmentation_2d":
        label.semantic_segmentation_2d.mask_url = a["url"]
    elif kind == "instance_segmentation_2d":
        label.instance_segmentation_2d.mask_url = a["url"]
        label.instance_segmentation_2d.instances.extend(
            label_pb2.InstanceMapping(id=i["id"], classification=i["classification"]) for i in a.get("instances", [])
        )
    elif kind == "polygon_list_2d":
        for polygon in a["polygons"]:
            label.polygon_list_2d.polygons.add(vertices=[common_pb2.Point2D(x=x, y=y) for x, y in polygon["vertices"]])
    elif kind == "keypoints_2d":
        for k in a["keypoints"]:
            label.keypoints_2d.keypoints.add(name=k["name"], x=k["x"], y=k["y"], visibility=k.get("visibility", 0))
        if "width" in a:
            label.keypoints_2d.box.CopyFrom(
                label_pb2.Box2D(left=a["left"], top=a["top"], width=a["width"], height=a["height"])
            )
        label.keypoints_2d.SetInParent()
    elif kind == "line_segment_2d":
        s = label.line_segment_2d
        s.start.x, s.start.y, s.end.x, s.end.y = a["x1"], a["y1"], a["x2"], a["y2"]
    elif kind == "classification_3d":
        label.classification_3d.SetInParent()
    else:
        label.text_token.CopyFrom(
            label_pb2.TextToken(index=a["index"], token=a["token"], visible=a.get("visible", True))
        )
    return label


# ---- messages → rows ---------------------------------------------------------------------------------------------


def label_to_row(label: label_pb2.Label) -> dict[str, Any]:
    kind = label.WhichOneof("geometry")
    assert kind is not None
    attrs: dict[str, Any] = {}
    if kind == "classification_2d":
        if label.classification_2d.secondary_labels:
            attrs["secondary_labels"] = dict(label.classification_2d.secondary_labels)
    elif kind == "box_2d":
        b = label.box_2d
        attrs |= {"top": b.top, "left": b.left, "width": b.width, "height": b.height, "iscrowd": b.iscrowd}
    elif kind == "cuboid_3d":
        c = label.cuboid_3d
        attrs |= {"pos_x": c.position.x, "pos_y": c.position.y, "pos_z": c.position.z}
        attrs |= {"dim_x": c.dimensions.x, "dim_y": c.dimensions.y, "dim_z": c.dimensions.z}
        attrs |= {"rot_x": c.rotation.x, "rot_y": c.rotation.y, "rot_z": c.rotation.z, "rot_w": c.rotation.w}
    elif kind == "semantic_segmentation_2d":
        attrs["url"] = label.semantic_segmentation_2d.mask_url
    elif kind == "instance_segmentation_2d":
        attrs["url"] = label.instance_segmentation_2d.mask_url
        attrs["instances"] = [
            {"id": i.id, "classification": i.classification} for i in label.instance_segmentation_2d.instances
        ]
    elif kind == "polygon_list_2d":
        attrs["polygons"] = [{"vertices": [[v.x, v.y] for v in p.vertices]} for p in label.polygon_list_2d.polygons]
    elif kind == "keypoints_2d":
        kp = label.keypoints_2d
        attrs["keypoints"] = [{"name": k.name, "x": k.x, "y": k.y, "visibility": k.visibility} for k in kp.keypoints]
        if kp.HasField("box"):
            attrs |= {"top": kp.box.top, "left": kp.box.left, "width": kp.box.width, "height": kp.box.height}
    elif kind == "line_segment_2d":
        s = label.line_segment_2d
        attrs |= {"x1": s.start.x, "y1": s.start.y, "x2": s.end.x, "y2": s.end.y}
    elif kind == "text_token":
        t = label.text_token
        attrs |= {"index": t.index, "token": t.token, "visible": t.visible}
    if label.HasField("confidence"):
        attrs["confidence"] = label.confidence
    types = {}
    for key, value in label.attributes.items():
        attrs[key], types[key] = _value_to_json(value)
    if types:
        attrs["user_attr_types"] = types
    scene = kind in {"cuboid_3d", "classification_3d"}
    row = {
        "uuid": label.label_id,
        "linked_labels": [],
        "label_type": _LABEL_TYPES[kind],
        "label": label.classification,
        "label_coordinate_frame": label.coordinate_frame_id if scene else label.sensor_id,
        "attributes": attrs,
    }
    if scene and label.sensor_id:
        row["sensor_id"] = label.sensor_id
    return row


def _metadata_to_row(metadata: Any, row: dict[str, Any]) -> None:
    types = {}
    for key, value in metadata.items():
        row[f"user__{key}"], types[f"user__{key}"] = _value_to_json(value)
    row["user_metadata_types"] = types


def _f32(values: Iterable[float]) -> list[float]:
    """float32 values as the shortest decimals that read back to the same float32 (0.1, not 0.10000000149011612)."""
    return [float(text) for text in np.asarray(list(values), dtype=np.float32).astype(str)]


def _embedding_to_row(
    frame: frame_pb2.Frame | frame_pb2.InferenceFrame, *, crops: bool = True
) -> dict[str, Any] | None:
    if not frame.HasField("embedding") and not frame.crop_embeddings:
        return None
    model = frame.embedding.model_id or next((c.model_id for c in frame.crop_embeddings), "")
    return {
        "task_id": frame.frame_id,
        "model_id": model,
        "embedding": _f32(frame.embedding.values),
        "crop_embeddings": [{"uuid": c.label_id, "embedding": _f32(c.values)} for c in frame.crop_embeddings]
        if crops
        else [],
    }


def frame_to_row(frame: frame_pb2.Frame) -> dict[str, Any]:
    """A Frame → one labels-inline frame row."""
    row: dict[str, Any] = {
        "task_id": frame.frame_id,
        "device_id": frame.device_id,
        "change": _CHANGES[frame.change_type or frame_pb2.CHANGE_TYPE_ADD],
    }
    if frame.HasField("date_captured"):
        row["date_captured"] = _timestamp_to_json(frame.date_captured)
    row["coordinate_frames"] = [_coordinate_frame_to_row(cf) for cf in frame.coordinate_frames]
    row["sensor_data"] = [_sensor_to_row(s) for s in frame.sensors]
    row["label_data"] = [label_to_row(label) for label in frame.labels]
    row["geo_data"] = (
        {"geo_EPSG4326_lat": frame.geo.latitude, "geo_EPSG4326_lon": frame.geo.longitude}
        if frame.HasField("geo")
        else {}
    )
    _metadata_to_row(frame.user_metadata, row)
    embedding = _embedding_to_row(frame)
    if embedding:
        row["embedding"] = embedding
    return row


def inference_frame_to_row(frame: frame_pb2.InferenceFrame) -> dict[str, Any]:
    row: dict[str, Any] = {"task_id": frame.frame_id, "label_data": [label_to_row(label) for label in frame.labels]}
    metrics: dict[str, Any] = {}
    for name, metric in frame.custom_metrics.items():
        if metric.WhichOneof("value") == "objective":
            metrics[name] = metric.objective
        else:
            m = metric.confusion_matrix
            metrics[name] = [list(m.values[r * m.columns : (r + 1) * m.columns]) for r in range(m.rows)]
    row["custom_metrics"] = metrics
    _metadata_to_row(frame.user_metadata, row)
    embedding = _embedding_to_row(frame)
    if embedding:
        row["embedding"] = embedding
    return row


def _coordinate_frame_to_row(cf: frame_pb2.CoordinateFrame) -> dict[str, Any]:
    meta: dict[str, Any] = {"parent_frame_id": cf.parent_frame_id}
    if cf.WhichOneof("kind") == "frame_2d":
        c = cf.frame_2d
        meta |= {f: getattr(c, f) for f in _CAMERA_FIELDS}
        meta |= {
            "camera_model": _CAMERA_MODELS.get(c.camera_model, "brown_conrady"),
            "position": _vec(c.position),
            "orientation": _quat(c.orientation),
        }
        meta["camera_matrix"] = (
            [list(c.camera_matrix[r * 4 : r * 4 + 4]) for r in range(4)] if c.camera_matrix else None
        )
        meta["cx"] = c.cx if c.HasField("cx") else None
        meta["cy"] = c.cy if c.HasField("cy") else None
        kind = "IMAGE_PROJECTION"
    else:
        meta |= {"position": _vec(cf.frame_3d.position), "orientation": _quat(cf.frame_3d.orientation)}
        kind = "WORLD"
    return {
        "coordinate_frame_id": cf.coordinate_frame_id,
        "coordinate_frame_type": kind,
        "coordinate_frame_metadata": json.dumps(meta),
    }


def _sensor_to_row(sensor: frame_pb2.SensorData) -> dict[str, Any]:
    kind = sensor.WhichOneof("data")
    assert kind is not None
    data = getattr(sensor, kind)
    urls: dict[str, str] = {}
    meta: dict[str, Any] = {}
    if kind in {"image", "image_overlay"}:
        urls["image_url"] = data.url
        if kind == "image" and data.preview_url:
            urls["preview_url"] = data.preview_url
        meta = {k: v for k, v in (("width", data.width), ("height", data.height)) if v}
    elif kind == "point_cloud_pcd":
        urls["pcd_url"] = data.url
    elif kind == "point_cloud_bins":
        urls = {"pointcloud_url": data.pointcloud_url, "intensity_url": data.intensity_url, "range_url": data.range_url}
    elif kind == "obj_mesh":
        urls["obj_url"] = data.url
    elif kind == "audio":
        urls["audio_url"] = data.url
    elif kind == "video":
        urls["video_url"] = data.url
    else:
        urls["text"] = data.text
    row = {
        "coordinate_frame": sensor.coordinate_frame_id,
        "data_urls": urls,
        "sensor_id": sensor.sensor_id,
        "sensor_metadata": meta,
        "sensor_type": _SENSOR_TYPES[kind],
    }
    if sensor.HasField("date_captured"):
        row["date_captured"] = _timestamp_to_json(sensor.date_captured)
    return row


# ---- files -------------------------------------------------------------------------------------------------------


def write_frames(frames: Iterable[frame_pb2.Frame], *, split: bool = False) -> Iterator[dict[str, Any]]:
    """Rows for `frames`: labels inline, or (split) a frame row per frame then a crop row per label."""
    for frame in frames:
        row = frame_to_row(frame)
        if not split:
            yield row
            continue
        labels = row.pop("label_data")
        crops = {c.label_id: _f32(c.values) for c in frame.crop_embeddings}
        if "embedding" in row:
            row["embedding"]["crop_embeddings"] = []
        yield {"row_type": "frame", **row}
        for label in labels:
            crop: dict[str, Any] = {"row_type": "crop", "task_id": frame.frame_id, **label}
            if label["uuid"] in crops:
                crop["embedding"] = crops[label["uuid"]]
            yield crop


def read_frames(rows: Iterable[Mapping[str, Any]]) -> list[frame_pb2.Frame]:
    """Frames from rows of either form; crop rows join their frame (which may come before or after them)."""
    frames: dict[str, frame_pb2.Frame] = {}
    crops: list[Mapping[str, Any]] = []
    for row in rows:
        if row.get("row_type") == "crop":
            crops.append(row)
        else:
            frame = row_to_frame(row)
            frames[frame.frame_id] = frame
    for crop in crops:
        frame = frames[crop["task_id"]]
        frame.labels.append(row_to_label(crop))
        if crop.get("embedding"):
            model = frame.embedding.model_id
            frame.crop_embeddings.add(label_id=crop["uuid"], values=crop["embedding"], model_id=model)
    return list(frames.values())


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with Path(path).open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(rows: Iterable[Mapping[str, Any]], path: str | Path) -> None:
    with Path(path).open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, separators=(",", ":")) + "\n")
