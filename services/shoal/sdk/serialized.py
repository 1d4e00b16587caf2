"""The reference client's serialized frames (the rows its `to_dict()` methods give; tests/data/reference_client
holds rows its version 0.0.67 wrote) ⇄ Shoal's wire messages.

The client writes JSON lines of three shapes, all read here, in one file or several, rows in any order:

- batch: one row per frame, its labels inline under `label_data`;
- streaming: one frame row per frame (no labels) and one crop row per frame holding all its labels,
  `{"task_id": <frame id>, "type": "GT", "label_data": [...]}`;
- inferences: one row per frame, its predictions under `inference_data` (`"type": "Inference"`).

What the client adds that the user did not give is taken off, so that a file and Shoal's own SDK store the same
thing for the same calls: the `user__` prefix of metadata keys and label attributes; the root frame `world` (Shoal's
empty coordinate frame id); the frame of its own that an image, text, audio or video gets when it names none (type
IMAGE, TEXT, AUDIO, VIDEO: in Shoal the sensor's empty coordinate frame id, its own 2-D frame for an image); the class
`__mask` of masks; and bookkeeping (`reuse_latest_embedding`, `mirror_asset`, empty `linked_labels`, a null
`resize_mode` or `center`, `"change": "ADD"` on labels). List metadata is typed by `user_metadata_types` (the
element type) and `user_metadata_modes` (`"list"`).

A row Shoal cannot take is rejected, with its file, line and reason; a part of a row that Shoal's contract has no
place for is reported the same way and the rest of the row imported. Nothing else is dropped.

Writing gives the same shapes back (`write_frames`); Shoal's embeddings, which the client keeps in separate Arrow
files, ride along under an `embedding` key of the frame row.

    result = serialized.import_frames(client, "proj", "drives", ["frames.jsonl"])
    result = serialized.import_frames(client, "proj", "drives", ["inferences.jsonl"], inference_set="model-a")
    for line in result.describe():
        print(line)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

import numpy as np

from shoal.sdk.frames import _timestamp, metadata_kind, metadata_list, metadata_value
from shoal.v1 import common_pb2, frame_pb2, label_pb2

if TYPE_CHECKING:
    from shoal.sdk.client import Client
    from shoal.sdk.uploads import UploadReport

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
# The frame of its own that the client gives a sensor naming none (an image's is a 2-D image frame).
_OWN_FRAME_TYPES: Final = {
    "image": "IMAGE",
    "image_overlay": "IMAGE",
    "text": "TEXT",
    "audio": "AUDIO",
    "video": "VIDEO",
}
_ROOT: Final = "world"
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
_INSTANCE: Final = "INSTANCE_LABEL_2D"  # one per instance of an instance mask, beside the mask's own entry
_MASK_DATA: Final = {"SEMANTIC_LABEL_ASSET_2D", "INSTANCE_LABEL_ASSET_2D"}
_MASK_CLASS: Final = "__mask"
_SCENE: Final = {"cuboid_3d", "classification_3d"}
# Attribute keys of each geometry; `confidence`, `user__*` and (for classifications) secondary labels aside.
_GEOMETRY_KEYS: Final = {
    "classification_2d": set(),
    "box_2d": {"top", "left", "width", "height", "iscrowd"},
    "cuboid_3d": {"pos_x", "pos_y", "pos_z", "dim_x", "dim_y", "dim_z", "rot_x", "rot_y", "rot_z", "rot_w"},
    "semantic_segmentation_2d": {"url"},
    "instance_segmentation_2d": {"url"},
    "polygon_list_2d": {"polygons"},
    "keypoints_2d": {"keypoints", "top", "left", "width", "height"},
    "line_segment_2d": {"x1", "y1", "x2", "y2"},
    "classification_3d": set(),
    "text_token": {"index", "token", "visible"},
}
# Client attribute keys with no place in Shoal's contract: imported without them, and reported, when set.
_NO_PLACE: Final = {
    "box_2d": {"area": "a box's area"},
    "cuboid_3d": {"iscrowd": "iscrowd on a cuboid"},
    "line_segment_2d": {"iscrowd": "iscrowd on a line segment"},
    "keypoints_2d": {"polygons": "polygons of a keypoints label", "center": "the center of a keypoints label"},
    "polygon_list_2d": {"center": "the center of a polygon list"},
    "semantic_segmentation_2d": {"resize_mode": "a mask's resize_mode"},
    "instance_segmentation_2d": {"resize_mode": "a mask's resize_mode"},
}
_LABEL_KEYS: Final = {
    "uuid", "linked_labels", "label_type", "label", "label_coordinate_frame", "attributes", "reuse_latest_embedding",
    "change", "sensor_id",
}  # fmt: skip
_FRAME_KEYS: Final = {
    "task_id", "date_captured", "device_id", "coordinate_frames", "sensor_data", "geo_data", "reuse_latest_embedding",
    "user_metadata_types", "user_metadata_modes", "change", "explicitly_set_keys", "previously_written_window",
    "label_data", "embedding", "type",
}  # fmt: skip
_INFERENCE_KEYS: Final = {
    "task_id", "type", "custom_metrics", "inference_metadata", "inference_data", "reuse_latest_embedding", "change",
    "embedding",
}  # fmt: skip
_SENSOR_KEYS: Final = {
    "coordinate_frame", "data_urls", "date_captured", "sensor_id", "sensor_metadata", "sensor_type", "mirror_asset",
}  # fmt: skip
_URL_KEYS: Final = {
    "image": {"image_url", "preview_url"},
    "image_overlay": {"image_url"},
    "point_cloud_pcd": {"pcd_url"},
    "point_cloud_bins": {"pointcloud_url", "kitti_format_url", "intensity_url", "range_url"},
    "obj_mesh": {"obj_url"},
    "audio": {"audio_url"},
    "video": {"video_url"},
    "text": {"text"},
}
_CAMERA_FIELDS: Final = ("fx", "fy", "k1", "k2", "k3", "k4", "k5", "k6", "p1", "p2", "s1", "s2", "s3", "s4", "skew")
_CAMERA_KEYS: Final = {*_CAMERA_FIELDS, "camera_model", "position", "orientation", "parent_frame_id", "camera_matrix",
                       "cx", "cy"}  # fmt: skip
_CAMERA_MODELS: Final = {
    frame_pb2.CAMERA_MODEL_BROWN_CONRADY: "brown_conrady",
    frame_pb2.CAMERA_MODEL_FISHEYE: "fisheye",
}
_CAMERA_MODEL_OF: Final = {v: k for k, v in _CAMERA_MODELS.items()}
# Keypoint visibility as in COCO (0 not labeled, 1 occluded, 2 visible; visible when not given), as the SDK reads it.
_VISIBILITY: Final = {
    0: label_pb2.KEYPOINT_VISIBILITY_NOT_LABELED,
    1: label_pb2.KEYPOINT_VISIBILITY_OCCLUDED,
    2: label_pb2.KEYPOINT_VISIBILITY_VISIBLE,
}
_COCO_VISIBILITY: Final = {v: k for k, v in _VISIBILITY.items()}
_ELEMENT_TYPES: Final = {
    "string_value": "str", "int_value": "int", "float_value": "float", "bool_value": "bool",
    "string_list_value": "str", "int_list_value": "int", "float_list_value": "float", "bool_list_value": "bool",
}  # fmt: skip
_CHANGE_OF: Final = {
    "ADD": frame_pb2.CHANGE_TYPE_ADD,
    "MODIFY": frame_pb2.CHANGE_TYPE_MODIFY,
    "DELETE": frame_pb2.CHANGE_TYPE_DELETE,
}
_CHANGES: Final = {v: k for k, v in _CHANGE_OF.items()}
_PREFIX: Final = "user__"
_LINK_PREFIX: Final = "link__"


# ---- what a reading gives ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowIssue:
    """A row (or a part of one) Shoal did not take, where it is and why."""

    source: str
    line: int
    frame_id: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.frame_id or '-'}: {self.reason}"


@dataclass
class ReadResult:
    """Rows read into upload items: `frames` (Frames, and LabelUpdates for labels added by MODIFY rows) and
    `inference_frames`, in the order of their rows; `rejected` rows were not taken at all (their frames with them),
    `not_kept` names parts of taken rows that Shoal's contract has no place for; `rows` and `inference_rows` map a
    frame id to where its rows are."""

    frames: list[frame_pb2.Frame | label_pb2.LabelUpdate] = field(default_factory=list)
    inference_frames: list[frame_pb2.InferenceFrame] = field(default_factory=list)
    rejected: list[RowIssue] = field(default_factory=list)
    not_kept: list[RowIssue] = field(default_factory=list)
    rows: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    inference_rows: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def where(self, frame_id: str, *, inference: bool = False) -> str:
        """`file:line` of the rows of `frame_id` (its inference rows), comma-separated."""
        found = (self.inference_rows if inference else self.rows).get(frame_id, [])
        return ", ".join(f"{source}:{line}" for source, line in found)


class RowsRejectedError(ValueError):
    """Rows that could not be read (from `read_frames`, which takes all or nothing)."""

    def __init__(self, rejected: Sequence[RowIssue]) -> None:
        self.rejected = list(rejected)
        shown = "; ".join(str(issue) for issue in self.rejected[:5])
        more = f" and {len(self.rejected) - 5} more" if len(self.rejected) > 5 else ""
        super().__init__(f"{len(self.rejected)} rows rejected: {shown}{more}")


class _RejectError(Exception):
    """The row being read cannot be taken; the message says why."""


def _reject(reason: str) -> NoReturn:
    raise _RejectError(reason)


def _fail(problem: str, where: str = "") -> NoReturn:
    raise _RejectError(f"{where}: {problem}" if where else problem)


class _Notes:
    """Parts of one row that are not kept, reported with the row."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, text: str) -> None:
        self.items.append(text)

    def unread(self, keys: Iterable[str], what: str) -> None:
        for key in sorted(keys):
            self.add(f"{what}: key {key!r} is not one the reference client writes; not imported")


# ---- values ------------------------------------------------------------------------------------------------------


def _metadata(
    values: Mapping[str, Any], types: Mapping[str, str], modes: Mapping[str, str], where: str
) -> dict[str, common_pb2.MetadataValue]:
    """Typed metadata (or label attributes) by the name the user gave; `types` holds the element type of lists."""
    out: dict[str, common_pb2.MetadataValue] = {}
    for key, value in values.items():
        name = key.removeprefix(_PREFIX)
        type_name = types.get(key) or types.get(name)
        mode = modes.get(key) or modes.get(name) or ("list" if isinstance(value, list) else "scalar")
        if type_name is not None and ":" in type_name:  # rows Shoal wrote before it read the client's own
            mode, type_name = "list", type_name.split(":", 1)[1]
        field_name = f"{where}[{name!r}]"
        if mode == "list":
            if value is None:
                if type_name is None:
                    _fail("a null list needs its element type", field_name)
                out[name] = metadata_list([], type_name, _fail, field_name)
            elif not isinstance(value, list):
                _fail(f"a list was expected, got {type(value).__name__}", field_name)
            else:
                out[name] = metadata_list(value, type_name, _fail, field_name)
        else:
            if value is None and type_name is None:
                _fail("a null value needs its type, and the row gives none", field_name)
            out[name] = metadata_value(value, type_name, _fail, field_name)
    return out


def _value_to_json(value: common_pb2.MetadataValue) -> tuple[Any, str, str]:
    """(JSON value, element type, mode) of a metadata value."""
    kind = metadata_kind(value)
    mode = "list" if kind.endswith("_list_value") else "scalar"
    if value.WhichOneof("kind") == "null_value":
        return None, _ELEMENT_TYPES[kind], mode
    data = getattr(value, kind)
    return (list(data.values) if mode == "list" else data), _ELEMENT_TYPES[kind], mode


def _timestamp_of(text: Any, where: str) -> Any:
    if not text:
        return None
    try:
        return _timestamp(str(text))
    except ValueError as err:
        _fail(f"not an ISO date: {text!r} ({err})", where)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(f"a number was expected, got {value!r}", where)
    return float(value)


def _f32(values: Iterable[float]) -> list[float]:
    """float32 values as the shortest decimals that read back to the same float32 (0.1, not 0.10000000149011612)."""
    return [float(text) for text in np.asarray(list(values), dtype=np.float32).astype(str)]


# ---- rows → messages ---------------------------------------------------------------------------------------------


def _coordinate_frames(rows: Sequence[Mapping[str, Any]], notes: _Notes) -> tuple[list[Any], dict[str, str]]:
    """Declared coordinate frames, and how the row's frame ids map to Shoal's (implicit frames map to "")."""
    declared: list[frame_pb2.CoordinateFrame] = []
    alias: dict[str, str] = {}
    implicit: set[str] = set()
    for cf in rows:
        cf_id, kind = cf["coordinate_frame_id"], cf.get("coordinate_frame_type")
        meta = cf.get("coordinate_frame_metadata")
        if isinstance(meta, str):
            meta = json.loads(meta) if meta else None
        where = f"coordinate frame {cf_id!r}"
        notes.unread(set(cf) - {"coordinate_frame_id", "coordinate_frame_type", "coordinate_frame_metadata"}, where)
        if kind in _OWN_FRAME_TYPES.values() or (kind == "WORLD" and cf_id == _ROOT and not meta):
            implicit.add(cf_id)  # the root, or a sensor's own frame: not declared in Shoal
            continue
        if kind not in {"WORLD", "IMAGE_PROJECTION"}:
            _reject(f"{where}: unknown coordinate_frame_type {kind!r}")
        meta = meta or {}
        parent = meta.get("parent_frame_id") or ""
        out = frame_pb2.CoordinateFrame(coordinate_frame_id=cf_id, parent_frame_id=parent)
        position = common_pb2.Vector3(**{k: _number(v, where) for k, v in (meta.get("position") or {}).items()})
        orientation = common_pb2.Quaternion(
            **{k: _number(v, where) for k, v in (meta.get("orientation") or {"w": 1.0}).items()}
        )
        if kind == "IMAGE_PROJECTION":
            notes.unread(set(meta) - _CAMERA_KEYS, where)
            model = meta.get("camera_model") or "brown_conrady"
            if model not in _CAMERA_MODEL_OF:
                _reject(f"{where}: unknown camera_model {model!r}")
            cam = frame_pb2.CoordinateFrame2D(
                camera_model=_CAMERA_MODEL_OF[model],
                position=position,
                orientation=orientation,
                camera_matrix=[_number(v, where) for row in meta.get("camera_matrix") or [] for v in row],
                **{f: _number(meta.get(f) or 0, where) for f in _CAMERA_FIELDS},
            )
            for axis in ("cx", "cy"):
                if meta.get(axis) is not None:
                    setattr(cam, axis, _number(meta[axis], where))
            out.frame_2d.CopyFrom(cam)
        else:
            notes.unread(set(meta) - {"position", "orientation", "parent_frame_id"}, where)
            out.frame_3d.CopyFrom(frame_pb2.CoordinateFrame3D(position=position, orientation=orientation))
        declared.append(out)
    names = {cf.coordinate_frame_id for cf in declared}
    alias.update({cf_id: "" for cf_id in implicit - names})
    for made in declared:
        made.parent_frame_id = alias.get(made.parent_frame_id, made.parent_frame_id)
    return declared, alias


def _sensor(sensor: Mapping[str, Any], alias: Mapping[str, str], notes: _Notes) -> frame_pb2.SensorData:
    sensor_type = sensor.get("sensor_type")
    if sensor_type not in _SENSOR_KINDS:
        _reject(f"sensor {sensor.get('sensor_id')!r}: unknown sensor_type {sensor_type!r}")
    kind = _SENSOR_KINDS[sensor_type]
    sensor_id = sensor["sensor_id"]
    where = f"sensor {sensor_id!r}"
    urls = sensor.get("data_urls") or {}
    meta = dict(sensor.get("sensor_metadata") or {})
    notes.unread(set(sensor) - _SENSOR_KEYS, where)
    notes.unread(set(urls) - _URL_KEYS[kind], f"{where} data_urls")
    cf = sensor.get("coordinate_frame") or ""
    out = frame_pb2.SensorData(sensor_id=sensor_id, coordinate_frame_id=alias.get(cf, cf))
    captured = _timestamp_of(sensor.get("date_captured"), f"{where} date_captured")
    if captured is not None:
        out.date_captured.CopyFrom(captured)
    size = {k: int(meta.pop(k)) for k in ("width", "height") if meta.get(k) is not None}
    if kind == "image":
        out.image.CopyFrom(frame_pb2.Image(url=urls["image_url"], preview_url=urls.get("preview_url") or "", **size))
    elif kind == "image_overlay":
        out.image_overlay.CopyFrom(frame_pb2.ImageOverlay(url=urls["image_url"], **size))
        out.coordinate_frame_id = ""  # an overlay is drawn in its image's frame
        if meta.get("overlay_id"):
            notes.add(
                f"{where}: overlay id {meta['overlay_id']!r} has no place in Shoal (it keeps an overlay under its "
                "image's sensor id); not imported"
            )
        meta.pop("overlay_id", None)
    elif kind == "point_cloud_pcd":
        out.point_cloud_pcd.url = urls["pcd_url"]
    elif kind == "point_cloud_bins":
        # Shoal's binary clouds are KITTI-like (x, y, z, intensity), the client's kitti_format_url.
        cloud = urls.get("pointcloud_url") or urls.get("kitti_format_url")
        if not cloud:
            _reject(f"{where}: a binary point cloud needs pointcloud_url or kitti_format_url")
        out.point_cloud_bins.CopyFrom(
            frame_pb2.PointCloudBins(
                pointcloud_url=cloud,
                intensity_url=urls.get("intensity_url") or "",
                range_url=urls.get("range_url") or "",
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
    if meta.get("resize_mode") not in (None, "None"):
        notes.add(f"{where}: resize_mode {meta['resize_mode']!r} has no place in Shoal; not imported")
    meta.pop("resize_mode", None)
    if meta:
        notes.add(f"{where}: sensor_metadata {sorted(meta)} has no place in Shoal; not imported")
    return out


def _labels(entries: Sequence[Mapping[str, Any]], alias: Mapping[str, str], notes: _Notes) -> list[label_pb2.Label]:
    """A frame's label_data (or inference_data) → Labels; an instance mask's instances (client entries of their own)
    join the mask."""
    instances: dict[str, Mapping[str, Any]] = {}
    for entry in entries:
        if entry.get("label_type") == _INSTANCE:
            instances[entry["uuid"]] = entry
    joined: set[str] = set()
    out: list[label_pb2.Label] = []
    for entry in entries:
        if entry.get("label_type") == _INSTANCE:
            continue
        label = _label(entry, alias, notes)
        if label.WhichOneof("geometry") == "instance_segmentation_2d":
            prefix = f"{label.label_id}_"
            for uuid, instance in instances.items():
                attrs = dict(instance.get("attributes") or {})
                if uuid != f"{prefix}{attrs.get('id')}":
                    continue
                joined.add(uuid)
                label.instance_segmentation_2d.instances.add(id=int(attrs.pop("id")), classification=instance["label"])
                attrs.pop("resize_mode", None)
                if attrs:
                    notes.add(
                        f"label {label.label_id!r}: attributes {sorted(attrs)} of instance {uuid!r} have no place in "
                        "Shoal; not imported"
                    )
        out.append(label)
    orphans = sorted(set(instances) - joined)
    if orphans:
        _reject(f"instances {orphans} have no instance mask (INSTANCE_LABEL_URL_2D) in the frame")
    return out


def row_to_label(row: Mapping[str, Any]) -> label_pb2.Label:
    """One label_data entry → a Label (instance masks need their frame's entries: see `read_rows`)."""
    try:
        return _label(row, {}, _Notes())
    except _RejectError as err:
        raise ValueError(str(err)) from None


def _label(entry: Mapping[str, Any], alias: Mapping[str, str], notes: _Notes) -> label_pb2.Label:
    label_type = entry.get("label_type")
    label_id = entry.get("uuid") or ""
    where = f"label {label_id!r}"
    if label_type in _MASK_DATA:
        _reject(
            f"{where}: the mask was given as data, whose pixels the client keeps out of the rows (in its label-asset "
            "file); give the mask by URL, or upload it as a Shoal asset first"
        )
    if label_type not in _LABEL_KINDS:
        _reject(f"{where}: unknown label_type {label_type!r}")
    kind = _LABEL_KINDS[label_type]
    notes.unread(set(entry) - _LABEL_KEYS, where)
    if entry.get("linked_labels"):
        notes.add(f"{where}: linked_labels {entry['linked_labels']!r} have no place in Shoal; not imported")
    classification = entry.get("label") or ""
    if kind in {"semantic_segmentation_2d", "instance_segmentation_2d"} and classification == _MASK_CLASS:
        classification = ""
    frame_ref = entry.get("label_coordinate_frame") or ""
    label = label_pb2.Label(label_id=label_id, classification=classification)
    if kind in _SCENE:
        label.coordinate_frame_id = alias.get(frame_ref, "" if frame_ref == _ROOT else frame_ref)
        label.sensor_id = entry.get("sensor_id") or ""
    else:
        label.sensor_id = entry.get("sensor_id") or frame_ref
    a = dict(entry.get("attributes") or {})
    confidence = a.pop("confidence", None)
    if confidence is not None:
        label.confidence = _number(confidence, f"{where} confidence")
    types = a.pop("user_attr_types", None) or {}
    user = {k: a.pop(k) for k in [k for k in a if k.startswith(_PREFIX)]}
    for name, value in _metadata(user, types, {}, f"{where} attributes").items():
        label.attributes[name].CopyFrom(value)
    links = sorted(k for k in a if k.startswith(_LINK_PREFIX))
    if links:
        notes.add(
            f"{where}: links {[k.removeprefix(_LINK_PREFIX) for k in links]} have no place in Shoal; not imported"
        )
        for k in links:
            a.pop(k)
    for key, what in _NO_PLACE.get(kind, {}).items():
        value = a.pop(key, None)
        if value is not None and value != "None" and not (key == "iscrowd" and value is False):
            notes.add(f"{where}: {what} ({value!r}) has no place in Shoal; not imported")
    if kind == "classification_2d":
        # Every other key of a classification is a secondary label (the client stores them unprefixed).
        label.classification_2d.secondary_labels.update({str(k): str(v) for k, v in a.items()})
        label.classification_2d.SetInParent()
        return label
    notes.unread(set(a) - _GEOMETRY_KEYS[kind] - {"resize_mode"}, f"{where} attributes")

    def num(key: str) -> float:
        if key not in a:
            _reject(f"{where}: missing attribute {key!r}")
        return _number(a[key], f"{where} {key}")

    if kind == "box_2d":
        label.box_2d.CopyFrom(
            label_pb2.Box2D(
                left=num("left"),
                top=num("top"),
                width=num("width"),
                height=num("height"),
                iscrowd=bool(a.get("iscrowd")),
            )
        )
    elif kind == "cuboid_3d":
        c = label.cuboid_3d
        c.position.x, c.position.y, c.position.z = num("pos_x"), num("pos_y"), num("pos_z")
        c.dimensions.x, c.dimensions.y, c.dimensions.z = num("dim_x"), num("dim_y"), num("dim_z")
        c.rotation.x, c.rotation.y, c.rotation.z, c.rotation.w = num("rot_x"), num("rot_y"), num("rot_z"), num("rot_w")
    elif kind == "semantic_segmentation_2d":
        label.semantic_segmentation_2d.mask_url = a["url"]
    elif kind == "instance_segmentation_2d":
        label.instance_segmentation_2d.mask_url = a["url"]
    elif kind == "polygon_list_2d":
        for polygon in a["polygons"]:
            label.polygon_list_2d.polygons.add(
                vertices=[common_pb2.Point2D(x=_number(x, where), y=_number(y, where)) for x, y in polygon["vertices"]]
            )
    elif kind == "keypoints_2d":
        for k in a["keypoints"]:
            visibility = k.get("visibility", 2)
            if visibility not in _VISIBILITY:
                _reject(f"{where}: keypoint visibility is 0, 1 or 2 (as in COCO), got {visibility!r}")
            label.keypoints_2d.keypoints.add(
                name=str(k["name"]),
                x=_number(k["x"], where),
                y=_number(k["y"], where),
                visibility=_VISIBILITY[visibility],
            )
            notes.unread(set(k) - {"name", "x", "y", "visibility"}, f"{where} keypoint {k['name']!r}")
        if any(a.get(k) is not None for k in ("top", "left", "width", "height")):
            label.keypoints_2d.box.CopyFrom(
                label_pb2.Box2D(left=num("left"), top=num("top"), width=num("width"), height=num("height"))
            )
        label.keypoints_2d.SetInParent()
    elif kind == "line_segment_2d":
        s = label.line_segment_2d
        s.start.x, s.start.y, s.end.x, s.end.y = num("x1"), num("y1"), num("x2"), num("y2")
    elif kind == "classification_3d":
        label.classification_3d.SetInParent()
    else:
        label.text_token.CopyFrom(
            label_pb2.TextToken(index=int(a["index"]), token=str(a["token"]), visible=bool(a.get("visible", True)))
        )
    return label


def _frame(row: Mapping[str, Any], notes: _Notes) -> tuple[frame_pb2.Frame, dict[str, str]]:
    """A frame row → a Frame (without the labels of crop rows), and its coordinate frame aliases."""
    change = row.get("change") or "ADD"
    if change not in _CHANGE_OF:
        _reject(f"unknown change {change!r}")
    frame = frame_pb2.Frame(frame_id=row["task_id"], change_type=_CHANGE_OF[change])
    if change == "DELETE":
        return frame, {}
    notes.unread(set(row) - _FRAME_KEYS - {k for k in row if k.startswith(_PREFIX)}, "frame row")
    # A MODIFY carries what was set on it (the client lists it); the rest are the client's defaults.
    given = set(row.get("explicitly_set_keys") or row) if change == "MODIFY" else set(row)
    if "device_id" in given:
        frame.device_id = row.get("device_id") or ""
    if "date_captured" in given:
        captured = _timestamp_of(row.get("date_captured"), "date_captured")
        if captured is not None:
            frame.date_captured.CopyFrom(captured)
    declared, alias = _coordinate_frames(row.get("coordinate_frames") or [], notes)
    frame.coordinate_frames.extend(declared)
    for sensor in row.get("sensor_data") or []:
        frame.sensors.append(_sensor(sensor, alias, notes))
    values = {k: v for k, v in row.items() if k.startswith(_PREFIX) and k in given}
    types, modes = row.get("user_metadata_types") or {}, row.get("user_metadata_modes") or {}
    for name, value in _metadata(values, types, modes, "user_metadata").items():
        frame.user_metadata[name].CopyFrom(value)
    geo = row.get("geo_data") or {}
    if geo and "geo_data" in given:
        frame.geo.latitude = _number(geo.get("geo_EPSG4326_lat"), "geo_data")
        frame.geo.longitude = _number(geo.get("geo_EPSG4326_lon"), "geo_data")
        notes.unread(set(geo) - {"geo_EPSG4326_lat", "geo_EPSG4326_lon"}, "geo_data")
    _read_embedding(row.get("embedding"), frame)
    return frame, alias


def _inference_frame(row: Mapping[str, Any], notes: _Notes) -> frame_pb2.InferenceFrame:
    if (row.get("change") or "ADD") != "ADD":
        _reject(f"a {row.get('change')} of an inference frame: an inference set takes whole frames")
    notes.unread(set(row) - _INFERENCE_KEYS, "inference row")
    frame = frame_pb2.InferenceFrame(frame_id=row["task_id"])
    frame.labels.extend(_labels(row.get("inference_data") or [], {}, notes))
    for name, value in (row.get("custom_metrics") or {}).items():
        metric = frame.custom_metrics[name]
        if isinstance(value, list):
            rows = [[_number(v, f"custom_metrics[{name!r}]") for v in r] for r in value]
            metric.confusion_matrix.CopyFrom(
                common_pb2.Matrix(
                    rows=len(rows), columns=len(rows[0]) if rows else 0, values=[v for r in rows for v in r]
                )
            )
        else:
            metric.objective = _number(value, f"custom_metrics[{name!r}]")
    meta = dict(row.get("inference_metadata") or {})
    for name, value in _metadata(
        meta.pop("user_metadata", None) or {}, meta.pop("user_metadata_types", None) or {}, {}, "user_metadata"
    ).items():
        frame.user_metadata[name].CopyFrom(value)
    assets = meta.pop("visualization_assets", None)
    if assets:
        notes.add(f"visualization assets {sorted(assets)} have no place in Shoal; not imported")
    notes.unread(meta, "inference_metadata")
    _read_embedding(row.get("embedding"), frame)
    return frame


def _read_embedding(embedding: Mapping[str, Any] | None, frame: frame_pb2.Frame | frame_pb2.InferenceFrame) -> None:
    """Shoal's own key: the client keeps embeddings in Arrow files beside the rows."""
    if not embedding:
        return
    model = embedding.get("model_id", "")
    if embedding.get("embedding"):
        frame.embedding.CopyFrom(frame_pb2.FrameEmbedding(values=embedding["embedding"], model_id=model))
    for crop in embedding.get("crop_embeddings", []):
        frame.crop_embeddings.add(label_id=crop["uuid"], values=crop["embedding"], model_id=model)


def _kind(row: Mapping[str, Any]) -> str:
    if "inference_data" in row or row.get("type") == "Inference":
        return "inference"
    if "label_data" in row and "sensor_data" not in row and "coordinate_frames" not in row:
        return "crop"
    return "frame"


@dataclass
class _Pending:
    """A frame being assembled from its frame row and its crop rows."""

    at: tuple[str, int] | None = None
    row: Mapping[str, Any] | None = None
    crops: list[tuple[str, int, Mapping[str, Any]]] = field(default_factory=list)


Located = tuple[str, int, Mapping[str, Any] | str]
_ROW_ERRORS: Final = (_RejectError, KeyError, TypeError, ValueError, AttributeError, IndexError)


def read_rows(rows: Iterable[Located]) -> ReadResult:
    """Rows as (source, line, row), or (source, line, error text) for a line that is not a JSON object, read into
    upload items. A crop row joins its frame row wherever either is."""
    result = ReadResult()
    frames: dict[str, _Pending] = {}
    for source, line, row in rows:
        if isinstance(row, str):
            result.rejected.append(RowIssue(source, line, "", row))
            continue
        task_id = row.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            result.rejected.append(RowIssue(source, line, "", "the row has no task_id (frame id)"))
            continue
        kind = _kind(row)
        if kind == "inference":
            _read_inference(source, line, task_id, row, result)
            continue
        result.rows.setdefault(task_id, []).append((source, line))
        pending = frames.setdefault(task_id, _Pending())
        if kind == "crop":
            pending.crops.append((source, line, row))
        elif pending.at is not None:
            first = f"{pending.at[0]}:{pending.at[1]}"
            result.rejected.append(
                RowIssue(source, line, task_id, f"a second frame row for the frame (first: {first})")
            )
        else:
            pending.at, pending.row = (source, line), row
    for task_id, pending in frames.items():
        _assemble(task_id, pending, result)
    return result


def _read_inference(source: str, line: int, task_id: str, row: Mapping[str, Any], result: ReadResult) -> None:
    seen = result.inference_rows.get(task_id)
    result.inference_rows.setdefault(task_id, []).append((source, line))
    if seen:
        first = f"{seen[0][0]}:{seen[0][1]}"
        result.rejected.append(
            RowIssue(source, line, task_id, f"a second inference row for the frame (first: {first})")
        )
        return
    notes = _Notes()
    try:
        result.inference_frames.append(_inference_frame(row, notes))
    except _ROW_ERRORS as err:
        result.rejected.append(RowIssue(source, line, task_id, _reason(err)))
        return
    result.not_kept.extend(RowIssue(source, line, task_id, note) for note in notes.items)


def _assemble(task_id: str, pending: _Pending, result: ReadResult) -> None:
    if pending.row is None or pending.at is None:
        for source, line, _ in pending.crops:
            result.rejected.append(RowIssue(source, line, task_id, "labels of a frame that has no frame row"))
        return
    source, line = pending.at
    notes = _Notes()
    try:
        frame, alias = _frame(pending.row, notes)
        frame.labels.extend(_labels(pending.row.get("label_data") or [], alias, notes))
    except _ROW_ERRORS as err:
        result.rejected.append(RowIssue(source, line, task_id, _reason(err)))
        result.rejected.extend(
            RowIssue(s, n, task_id, f"its frame row ({source}:{line}) is rejected") for s, n, _ in pending.crops
        )
        return
    found = [RowIssue(source, line, task_id, note) for note in notes.items]
    added: list[label_pb2.Label] = []
    for crop_source, crop_line, crop in pending.crops:
        notes = _Notes()
        try:
            added.extend(_labels(crop.get("label_data") or [], alias, notes))
        except _ROW_ERRORS as err:
            result.rejected.append(RowIssue(crop_source, crop_line, task_id, _reason(err)))
            result.rejected.append(
                RowIssue(source, line, task_id, f"its labels ({crop_source}:{crop_line}) are rejected")
            )
            return
        found += [RowIssue(crop_source, crop_line, task_id, note) for note in notes.items]
    if frame.change_type == frame_pb2.CHANGE_TYPE_DELETE and (frame.labels or added):
        result.rejected.append(RowIssue(source, line, task_id, "a DELETE with labels"))
        return
    result.not_kept.extend(found)
    if frame.change_type == frame_pb2.CHANGE_TYPE_MODIFY:
        # The client's MODIFY may add labels; in Shoal a MODIFY leaves labels alone and a label update adds them.
        result.frames.append(frame)
        if frame.labels or added:
            update = label_pb2.LabelUpdate(frame_id=task_id)
            update.labels.extend([*frame.labels, *added])
            del frame.labels[:]
            result.frames.append(update)
        return
    frame.labels.extend(added)
    result.frames.append(frame)


def _reason(err: BaseException) -> str:
    if isinstance(err, KeyError):
        return f"missing key {err.args[0]!r}"
    return str(err) or type(err).__name__


def read_frames(rows: Iterable[Mapping[str, Any]]) -> list[frame_pb2.Frame]:
    """Frames (ADD, MODIFY, DELETE) from frame and crop rows, all or nothing: RowsRejectedError names every row that
    cannot be read, or that is not a frame (an inference row; a MODIFY row adding labels, which Shoal takes as a
    label update). `read` and `import_frames` take those too."""
    result = read_rows(("<rows>", n, row) for n, row in enumerate(rows, 1))
    refused = list(result.rejected)
    for frame_id, where in result.inference_rows.items():
        refused += [RowIssue(s, n, frame_id, "an inference row, not a frame") for s, n in where]
    for item in result.frames:
        if isinstance(item, label_pb2.LabelUpdate):
            refused += [
                RowIssue(s, n, item.frame_id, "labels added by a MODIFY: a label update, not a frame")
                for s, n in result.rows.get(item.frame_id, [])
            ]
    if refused:
        raise RowsRejectedError(refused)
    return [item for item in result.frames if isinstance(item, frame_pb2.Frame)]


# ---- messages → rows ---------------------------------------------------------------------------------------------


def _attrs_to_row(attributes: Mapping[str, common_pb2.MetadataValue], attrs: dict[str, Any]) -> None:
    types = {}
    for key, value in attributes.items():
        data, element, mode = _value_to_json(value)
        attrs[_PREFIX + key] = data
        if data is None:  # a typed null: the client has no way to say its type; Shoal's own key does
            types[key] = f"list:{element}" if mode == "list" else element
    if types:
        attrs["user_attr_types"] = types


def label_to_rows(label: label_pb2.Label) -> list[dict[str, Any]]:
    """A Label → its label_data entries (one, or an instance mask's entry after one per instance)."""
    kind = label.WhichOneof("geometry")
    assert kind is not None
    attrs: dict[str, Any] = {}
    classification = label.classification
    extra: list[dict[str, Any]] = []
    scene = kind in _SCENE
    frame_ref = (label.coordinate_frame_id or _ROOT) if scene else label.sensor_id
    if kind == "classification_2d":
        attrs |= dict(label.classification_2d.secondary_labels)
    elif kind == "box_2d":
        b = label.box_2d
        attrs |= {"top": b.top, "left": b.left, "width": b.width, "height": b.height}
        if b.iscrowd:
            attrs["iscrowd"] = True
    elif kind == "cuboid_3d":
        c = label.cuboid_3d
        attrs |= {"pos_x": c.position.x, "pos_y": c.position.y, "pos_z": c.position.z}
        attrs |= {"dim_x": c.dimensions.x, "dim_y": c.dimensions.y, "dim_z": c.dimensions.z}
        attrs |= {"rot_x": c.rotation.x, "rot_y": c.rotation.y, "rot_z": c.rotation.z, "rot_w": c.rotation.w}
    elif kind == "semantic_segmentation_2d":
        attrs |= {"url": label.semantic_segmentation_2d.mask_url, "resize_mode": None}
        classification = classification or _MASK_CLASS
    elif kind == "instance_segmentation_2d":
        attrs |= {"url": label.instance_segmentation_2d.mask_url, "resize_mode": None}
        classification = classification or _MASK_CLASS
        extra = [
            _label_entry(
                f"{label.label_id}_{i.id}", _INSTANCE, i.classification, frame_ref, {"id": i.id, "resize_mode": None}
            )
            for i in label.instance_segmentation_2d.instances
        ]
    elif kind == "polygon_list_2d":
        attrs["polygons"] = [{"vertices": [[v.x, v.y] for v in p.vertices]} for p in label.polygon_list_2d.polygons]
        attrs["center"] = None
    elif kind == "keypoints_2d":
        kp = label.keypoints_2d
        attrs["keypoints"] = [
            {"x": k.x, "y": k.y, "name": k.name}
            | (
                {"visibility": _COCO_VISIBILITY[k.visibility]}
                if k.visibility in _COCO_VISIBILITY and k.visibility != label_pb2.KEYPOINT_VISIBILITY_VISIBLE
                else {}
            )
            for k in kp.keypoints
        ]
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
    _attrs_to_row(label.attributes, attrs)
    entry = _label_entry(label.label_id, _LABEL_TYPES[kind], classification, frame_ref, attrs)
    if scene and label.sensor_id:
        entry["sensor_id"] = label.sensor_id  # Shoal's own key: the client's 3-D labels name no sensor
    return [*extra, entry]


def _label_entry(
    uuid: str, label_type: str, classification: str, frame_ref: str, attrs: dict[str, Any]
) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "linked_labels": [],
        "label_type": label_type,
        "label": classification,
        "label_coordinate_frame": frame_ref,
        "attributes": attrs,
        "reuse_latest_embedding": False,
        "change": "ADD",
    }


def label_to_row(label: label_pb2.Label) -> dict[str, Any]:
    """A Label → its label_data entry (an instance mask's own; its instances are `label_to_rows`')."""
    return label_to_rows(label)[-1]


def _metadata_to_row(metadata: Mapping[str, common_pb2.MetadataValue], row: dict[str, Any]) -> None:
    types, modes = {}, {}
    for key, value in metadata.items():
        name = _PREFIX + key
        row[name], types[name], modes[name] = _value_to_json(value)
    row["user_metadata_types"] = types
    row["user_metadata_modes"] = modes


def _embedding_to_row(frame: frame_pb2.Frame | frame_pb2.InferenceFrame) -> dict[str, Any] | None:
    if not frame.HasField("embedding") and not frame.crop_embeddings:
        return None
    model = frame.embedding.model_id or next((c.model_id for c in frame.crop_embeddings), "")
    return {
        "task_id": frame.frame_id,
        "model_id": model,
        "embedding": _f32(frame.embedding.values),
        "crop_embeddings": [{"uuid": c.label_id, "embedding": _f32(c.values)} for c in frame.crop_embeddings],
    }


def _frames_to_rows(frame: frame_pb2.Frame) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(coordinate frames, sensor data) rows: Shoal's empty coordinate frame ids become the client's implicit frames."""
    declared = [_coordinate_frame_to_row(cf) for cf in frame.coordinate_frames]
    names = {cf.coordinate_frame_id for cf in frame.coordinate_frames}
    implicit: dict[str, dict[str, Any]] = {}
    sensors = []
    for sensor in frame.sensors:
        row = _sensor_to_row(sensor)
        if not sensor.coordinate_frame_id:
            kind = sensor.WhichOneof("data") or ""
            if kind in _OWN_FRAME_TYPES:
                row["coordinate_frame"] = sensor.sensor_id
                implicit.setdefault(
                    sensor.sensor_id,
                    {"coordinate_frame_id": sensor.sensor_id, "coordinate_frame_type": _OWN_FRAME_TYPES[kind]},
                )
            else:
                row["coordinate_frame"] = _ROOT
        sensors.append(row)
    uses_root = (
        any(not cf.parent_frame_id for cf in frame.coordinate_frames)
        or any(row["coordinate_frame"] == _ROOT for row in sensors)
        or any(label.WhichOneof("geometry") in _SCENE and not label.coordinate_frame_id for label in frame.labels)
    )
    root = (
        [{"coordinate_frame_id": _ROOT, "coordinate_frame_type": "WORLD"}] if uses_root and _ROOT not in names else []
    )
    own = [row for cf_id, row in implicit.items() if cf_id not in names]
    return [*root, *declared, *own], sensors


def frame_to_row(frame: frame_pb2.Frame, *, labels: bool = True) -> dict[str, Any]:
    """A Frame → one frame row, labels inline under `label_data` (or left out, for the streaming shape)."""
    row: dict[str, Any] = {"task_id": frame.frame_id}
    if frame.change_type == frame_pb2.CHANGE_TYPE_DELETE:
        return row | {"change": "DELETE"}
    if frame.HasField("date_captured"):
        row["date_captured"] = frame.date_captured.ToJsonString()
    row["device_id"] = frame.device_id
    row["coordinate_frames"], row["sensor_data"] = _frames_to_rows(frame)
    row["geo_data"] = (
        {"geo_EPSG4326_lat": frame.geo.latitude, "geo_EPSG4326_lon": frame.geo.longitude}
        if frame.HasField("geo")
        else {}
    )
    row["reuse_latest_embedding"] = False
    _metadata_to_row(frame.user_metadata, row)
    row["change"] = _CHANGES[frame.change_type or frame_pb2.CHANGE_TYPE_ADD]
    if labels:
        row["label_data"] = [entry for label in frame.labels for entry in label_to_rows(label)]
    embedding = _embedding_to_row(frame)
    if embedding:
        row["embedding"] = embedding
    return row


def inference_frame_to_row(frame: frame_pb2.InferenceFrame) -> dict[str, Any]:
    """An InferenceFrame → one inference row."""
    metrics: dict[str, Any] = {}
    for name, metric in frame.custom_metrics.items():
        if metric.WhichOneof("value") == "objective":
            metrics[name] = metric.objective
        else:
            m = metric.confusion_matrix
            metrics[name] = [list(m.values[r * m.columns : (r + 1) * m.columns]) for r in range(m.rows)]
    user_metadata: dict[str, Any] = {}
    types: dict[str, str] = {}
    for key, value in frame.user_metadata.items():
        data, element, mode = _value_to_json(value)
        user_metadata[key] = data
        if data is None or mode == "list":  # the client's inference metadata is scalar and untyped; Shoal's key
            types[key] = f"list:{element}" if mode == "list" else element
    inference_metadata: dict[str, Any] = {"visualization_assets": {}, "user_metadata": user_metadata}
    if types:
        inference_metadata["user_metadata_types"] = types
    row: dict[str, Any] = {
        "task_id": frame.frame_id,
        "type": "Inference",
        "custom_metrics": metrics,
        "inference_metadata": inference_metadata,
        "inference_data": [entry for label in frame.labels for entry in label_to_rows(label)],
        "reuse_latest_embedding": False,
        "change": "ADD",
    }
    embedding = _embedding_to_row(frame)
    if embedding:
        row["embedding"] = embedding
    return row


def _coordinate_frame_to_row(cf: frame_pb2.CoordinateFrame) -> dict[str, Any]:
    meta: dict[str, Any] = {"parent_frame_id": cf.parent_frame_id or _ROOT}
    if cf.WhichOneof("kind") == "frame_2d":
        c = cf.frame_2d
        meta |= {f: getattr(c, f) for f in _CAMERA_FIELDS}
        meta |= {
            "camera_model": _CAMERA_MODELS.get(c.camera_model, "brown_conrady"),
            "position": {"x": c.position.x, "y": c.position.y, "z": c.position.z},
            "orientation": {"w": c.orientation.w, "x": c.orientation.x, "y": c.orientation.y, "z": c.orientation.z},
        }
        if c.camera_matrix:
            meta["camera_matrix"] = [list(c.camera_matrix[r * 4 : r * 4 + 4]) for r in range(4)]
        for axis in ("cx", "cy"):
            if c.HasField(axis):
                meta[axis] = getattr(c, axis)
        kind = "IMAGE_PROJECTION"
    else:
        p, o = cf.frame_3d.position, cf.frame_3d.orientation
        meta |= {"position": {"x": p.x, "y": p.y, "z": p.z}, "orientation": {"w": o.w, "x": o.x, "y": o.y, "z": o.z}}
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
        urls["pointcloud_url"] = data.pointcloud_url
        urls |= {k: v for k, v in (("intensity_url", data.intensity_url), ("range_url", data.range_url)) if v}
    elif kind == "obj_mesh":
        urls["obj_url"] = data.url
    elif kind == "audio":
        urls["audio_url"] = data.url
    elif kind == "video":
        urls["video_url"] = data.url
    else:
        urls["text"] = data.text
    row: dict[str, Any] = {"coordinate_frame": sensor.coordinate_frame_id, "data_urls": urls}
    if sensor.HasField("date_captured"):
        row["date_captured"] = sensor.date_captured.ToJsonString()
    row |= {"sensor_id": sensor.sensor_id, "sensor_metadata": meta, "sensor_type": _SENSOR_TYPES[kind]}
    row["mirror_asset"] = False
    return row


# ---- files -------------------------------------------------------------------------------------------------------


def write_frames(frames: Iterable[frame_pb2.Frame], *, split: bool = False) -> Iterator[dict[str, Any]]:
    """Rows for `frames`: one row per frame with its labels inline, or (split, the streaming shape) a frame row and
    then a crop row holding all its labels, per frame."""
    for frame in frames:
        if not split:
            yield frame_to_row(frame)
            continue
        yield frame_to_row(frame, labels=False)
        if frame.change_type != frame_pb2.CHANGE_TYPE_DELETE:
            labels = [entry for label in frame.labels for entry in label_to_rows(label)]
            yield {"task_id": frame.frame_id, "label_data": labels, "type": "GT"}


def write_inferences(frames: Iterable[frame_pb2.InferenceFrame]) -> Iterator[dict[str, Any]]:
    """Inference rows for `frames`."""
    for frame in frames:
        yield inference_frame_to_row(frame)


def _located(paths: Iterable[str | Path]) -> Iterator[Located]:
    for path in paths:
        with Path(path).open() as fh:
            for n, text in enumerate(fh, 1):
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as err:
                    yield str(path), n, f"not JSON: {err}"
                    continue
                yield (str(path), n, row) if isinstance(row, dict) else (str(path), n, "not a JSON object")


def read(paths: str | Path | Sequence[str | Path]) -> ReadResult:
    """The rows of one JSON-lines file or several, read together (a frame's crop rows may be in another file)."""
    return read_rows(_located([paths] if isinstance(paths, str | Path) else paths))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with Path(path).open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(rows: Iterable[Mapping[str, Any]], path: str | Path) -> None:
    with Path(path).open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, separators=(",", ":")) + "\n")


# ---- importing ---------------------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    """What `import_frames` did: the rows read, the upload's report (None when no row could be sent) and, when MODIFY
    rows added labels, the report of the upload of those label updates (sent after the frames: in Shoal a frame and
    a label update of it cannot share a batch)."""

    read: ReadResult
    report: UploadReport | None
    label_report: UploadReport | None = None

    def describe(self) -> list[str]:
        """Lines for people: counts, then every rejected row, every part not kept and every frame the upload
        rejected, each with the file and line of its rows."""
        r = self.read
        sent = len(r.inference_frames) or len(r.frames)
        lines = [f"rows: {sent} frames read, {len(r.rejected)} rows rejected, {len(r.not_kept)} parts not kept"]
        lines += [f"  rejected {issue}" for issue in r.rejected]
        lines += [f"  not kept {issue}" for issue in r.not_kept]
        inference = bool(r.inference_frames)
        for what, report in (("upload", self.report), ("label updates", self.label_report)):
            if report is None:
                continue
            failed = len({err.frame_id for err in report.rejected})
            lines.append(f"{what}: {report.accepted} accepted, {failed} rejected ({report.name})")
            for err in report.rejected:
                lines.append(
                    f"  {r.where(err.frame_id, inference=inference) or '-'}: {err.frame_id} {err.label_id or '-'} "
                    f"{err.field}: {err.reason}: {err.description}"
                )
        return lines


def import_frames(
    client: Client,
    project_id: str,
    dataset_id: str,
    paths: str | Path | Sequence[str | Path],
    *,
    inference_set: str | None = None,
    model_id: str = "",
) -> ImportResult:
    """Upload the reference client's rows to an existing dataset, or (`inference_set`) its inference rows to that
    inference set of the dataset (created when it does not exist). Rows of the other kind are rejected, by line.

    >>> result = import_frames(client, "proj", "drives", ["frames.jsonl", "crops.jsonl"])
    >>> result = import_frames(client, "proj", "drives", "inferences.jsonl", inference_set="model-a")
    >>> print("\\n".join(result.describe()))
    """
    from shoal.sdk.frames import Inferences  # noqa: PLC0415

    read_result = read(paths)
    if inference_set is None:
        _reject_kind(read_result.inference_rows, read_result, "an inference row: import it into an inference set")
        read_result.inference_frames = []
        target = f"projects/{project_id}/datasets/{dataset_id}"
        # A label update follows its MODIFY frame: frames go first, their label updates in an upload after them.
        first: list[Any] = [i for i in read_result.frames if isinstance(i, frame_pb2.Frame)]
        later = [i for i in read_result.frames if isinstance(i, label_pb2.LabelUpdate)]
        report = client.upload(target, first) if first else None
        label_report = client.upload(target, later) if later else None
        return ImportResult(read_result, report, label_report)
    _reject_kind(read_result.rows, read_result, "a ground-truth row: import it into the dataset, not an inference set")
    read_result.frames = []
    if not read_result.inference_frames:
        return ImportResult(read_result, None)
    inferences = Inferences()
    inferences.items.extend(read_result.inference_frames)
    report = client.create_or_update_inferences(
        project_id, dataset_id, inference_set, inferences=inferences, model_id=model_id
    )
    return ImportResult(read_result, report)


def _reject_kind(rows: Mapping[str, list[tuple[str, int]]], result: ReadResult, reason: str) -> None:
    """Rows of the kind not being imported, rejected (those already rejected for a reason of their own aside)."""
    rejected = {(issue.source, issue.line) for issue in result.rejected}
    for frame_id, where in rows.items():
        result.rejected.extend(RowIssue(s, n, frame_id, reason) for s, n in where if (s, n) not in rejected)
    skipped = {at for where in rows.values() for at in where}
    result.not_kept = [issue for issue in result.not_kept if (issue.source, issue.line) not in skipped]
