"""Builders for labeled frames, inference frames and label updates, with the reference client's names.

Everything is validated when it is added; a ValidationError names the frame, the label and the field. The builders
hold the wire messages themselves, so sending a frame costs no conversion.

    frame = LabeledFrame(frame_id="frame-1")
    frame.add_image(sensor_id="cam", image_url="s3://bucket/frame-1.jpg", width=1920, height=1080)
    frame.add_label_2d_bbox(sensor_id="cam", label_id="frame-1-box-0", classification="car",
                            top=10, left=20, width=100, height=50)
    frame.add_user_metadata("weather", "rain")
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from google.protobuf import timestamp_pb2

from shoal import validation as rules
from shoal.sdk.errors import ValidationError
from shoal.v1 import common_pb2, frame_pb2, label_pb2

PENDING_MASK = "pending-mask:"


def mask_png(data: Any, fail: Any) -> bytes:
    """A 2-D array of class (or instance) ids 0–255 as a single-channel 8-bit PNG."""
    import numpy as np  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    array = np.asarray(data)
    if array.ndim != 2 or array.size == 0:
        fail(f"a mask is a non-empty 2-D array, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_)):
        fail(f"a mask holds integer ids, got {array.dtype}")
    if array.size and (array.min() < 0 or array.max() > 255):
        fail(f"mask ids must be 0-255, got {int(array.min())}..{int(array.max())}")
    out = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(out, "PNG")
    return out.getvalue()


UpdateType = Literal["ADD", "MODIFY"]
_CHANGE = {"ADD": frame_pb2.CHANGE_TYPE_ADD, "MODIFY": frame_pb2.CHANGE_TYPE_MODIFY}
_VAL_TYPES = {
    "str": common_pb2.METADATA_TYPE_STRING,
    "string": common_pb2.METADATA_TYPE_STRING,
    "int": common_pb2.METADATA_TYPE_INT,
    "float": common_pb2.METADATA_TYPE_FLOAT,
    "bool": common_pb2.METADATA_TYPE_BOOL,
}
_LIST_TYPES = {
    common_pb2.METADATA_TYPE_STRING: common_pb2.METADATA_TYPE_STRING_LIST,
    common_pb2.METADATA_TYPE_INT: common_pb2.METADATA_TYPE_INT_LIST,
    common_pb2.METADATA_TYPE_FLOAT: common_pb2.METADATA_TYPE_FLOAT_LIST,
    common_pb2.METADATA_TYPE_BOOL: common_pb2.METADATA_TYPE_BOOL_LIST,
}
_CAMERA_MODELS = {
    None: frame_pb2.CAMERA_MODEL_BROWN_CONRADY,
    "brown_conrady": frame_pb2.CAMERA_MODEL_BROWN_CONRADY,
    "fisheye": frame_pb2.CAMERA_MODEL_FISHEYE,
}
Vec3 = Mapping[str, float] | Sequence[float]
Quat = Mapping[str, float] | Sequence[float]


def _timestamp(value: datetime | str | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    ts.FromDatetime(value)
    return ts


def _vec3(value: Vec3 | None, what: str, fail: Any) -> common_pb2.Vector3:
    if value is None:
        return common_pb2.Vector3()
    x, y, z = (value["x"], value["y"], value["z"]) if isinstance(value, Mapping) else value
    problem = rules.finite_problem(x, y, z)
    if problem:
        fail(problem, what)
    return common_pb2.Vector3(x=x, y=y, z=z)


def _quat(value: Quat | None, what: str, fail: Any) -> common_pb2.Quaternion:
    if value is None:
        return common_pb2.Quaternion(w=1.0)
    x, y, z, w = (value["x"], value["y"], value["z"], value["w"]) if isinstance(value, Mapping) else value
    problem = rules.finite_problem(x, y, z, w)
    if problem:
        fail(problem, what)
    if x == y == z == w == 0:
        fail("a rotation quaternion must not be zero", what)
    return common_pb2.Quaternion(x=x, y=y, z=z, w=w)


def metadata_value(val: Any, val_type: str | None, fail: Any, field: str) -> common_pb2.MetadataValue:
    """A typed metadata value; `val_type` is required for None."""
    if val is None:
        if val_type not in _VAL_TYPES:
            fail(f"a None value needs val_type, one of {sorted(_VAL_TYPES)}", field)
        return common_pb2.MetadataValue(null_value=_VAL_TYPES[val_type])  # type: ignore[index]
    if isinstance(val, bool):
        return common_pb2.MetadataValue(bool_value=val)
    if isinstance(val, int):
        if val_type == "float":
            return common_pb2.MetadataValue(float_value=float(val))
        return common_pb2.MetadataValue(int_value=val)
    if isinstance(val, float):
        if not math.isfinite(val):
            fail(f"must be finite, got {val}", field)
        return common_pb2.MetadataValue(float_value=val)
    if isinstance(val, str):
        return common_pb2.MetadataValue(string_value=val)
    fail(f"unsupported metadata type {type(val).__name__}; use str, int, float, bool or a list of them", field)
    raise AssertionError  # fail raises


def metadata_list(val: Sequence[Any], list_elt_type: str | None, fail: Any, field: str) -> common_pb2.MetadataValue:
    values = list(val)
    kinds = {type(v) for v in values}
    if not values:
        if list_elt_type not in _VAL_TYPES:
            fail("an empty list needs list_elt_type", field)
        return common_pb2.MetadataValue(null_value=_LIST_TYPES[_VAL_TYPES[list_elt_type]])  # type: ignore[index]
    if kinds == {str}:
        return common_pb2.MetadataValue(string_list_value=common_pb2.StringList(values=values))
    if kinds == {bool}:
        return common_pb2.MetadataValue(bool_list_value=common_pb2.BoolList(values=values))
    if kinds == {int} and list_elt_type != "float":
        return common_pb2.MetadataValue(int_list_value=common_pb2.IntList(values=values))
    if kinds <= {int, float}:
        if rules.finite_problem(*values):
            fail("list values must be finite", field)
        return common_pb2.MetadataValue(float_list_value=common_pb2.FloatList(values=[float(v) for v in values]))
    fail(f"a metadata list holds one type of str, int, float or bool, got {sorted(k.__name__ for k in kinds)}", field)
    raise AssertionError


_NULL_KINDS = {
    common_pb2.METADATA_TYPE_STRING: "string_value",
    common_pb2.METADATA_TYPE_INT: "int_value",
    common_pb2.METADATA_TYPE_FLOAT: "float_value",
    common_pb2.METADATA_TYPE_BOOL: "bool_value",
    common_pb2.METADATA_TYPE_STRING_LIST: "string_list_value",
    common_pb2.METADATA_TYPE_INT_LIST: "int_list_value",
    common_pb2.METADATA_TYPE_FLOAT_LIST: "float_list_value",
    common_pb2.METADATA_TYPE_BOOL_LIST: "bool_list_value",
}


def metadata_kind(value: common_pb2.MetadataValue) -> str:
    """The value's kind (`string_value`, `int_list_value`, …), typed nulls counted as their type."""
    kind = value.WhichOneof("kind") or ""
    return _NULL_KINDS.get(value.null_value, kind) if kind == "null_value" else kind


def _attributes(user_attrs: Mapping[str, Any] | None, fail: Any) -> dict[str, common_pb2.MetadataValue]:
    out: dict[str, common_pb2.MetadataValue] = {}
    for key, value in (user_attrs or {}).items():
        problem = rules.metadata_key_problem(key)
        if problem:
            fail(problem, f"user_attrs[{key!r}]")
        if isinstance(value, list | tuple):
            out[key] = metadata_list(value, None, fail, f"user_attrs[{key!r}]")
        else:
            out[key] = metadata_value(value, None, fail, f"user_attrs[{key!r}]")
    return out


class _FrameBase:
    """What every frame-like builder shares: an id, labels with their checks, embeddings, metadata."""

    _ground_truth = True

    def __init__(self, frame_id: str) -> None:
        problem = rules.id_problem(frame_id)
        if problem:
            raise ValidationError(problem, frame_id=str(frame_id), field="frame_id")
        self.frame_id = frame_id
        self._label_ids: set[str] = set()
        self._sensor_ids: set[str] = set()
        self._coordinate_frame_ids: set[str] = set()
        self._metadata_types: dict[str, str] = {}
        # Masks given as arrays, encoded as PNG: their labels hold `pending-mask:{sha256}` until the client uploads
        # them as assets and puts the asset URLs in their place.
        self._pending_masks: dict[str, bytes] = {}

    def _fail(self, problem: str, field: str = "", label_id: str = "") -> None:
        raise ValidationError(problem, frame_id=self.frame_id, label_id=label_id, field=field)

    @property
    def _labels(self) -> Any:
        raise NotImplementedError

    def _check_sensor(self, sensor_id: str, label_id: str) -> None:
        problem = rules.id_problem(sensor_id)
        if problem:
            self._fail(problem, "sensor_id", label_id)

    def _check_coordinate_frame(self, coord_frame_id: str | None, label_id: str = "") -> None:
        if coord_frame_id and coord_frame_id not in self._coordinate_frame_ids:
            self._fail(
                f"coordinate frame {coord_frame_id!r} must be added before it is referenced", "coord_frame_id", label_id
            )

    # labels: one implementation each, exposed as add_label_* / add_inference_* / update_label_*

    def _new_label(
        self,
        label_id: str,
        classification: str,
        sensor_id: str,
        *,
        confidence: float | None,
        user_attrs: Mapping[str, Any] | None,
        coord_frame_id: str | None = None,
    ) -> label_pb2.Label:
        problem = rules.id_problem(label_id)
        if problem:
            self._fail(problem, "label_id", str(label_id))
        if label_id in self._label_ids:
            self._fail(f"label id {label_id!r} is used twice in this frame", "label_id", label_id)
        if sensor_id:
            self._check_sensor(sensor_id, label_id)
        self._check_coordinate_frame(coord_frame_id, label_id)
        if self._ground_truth and confidence is not None:
            self._fail("ground-truth labels carry no confidence", "confidence", label_id)
        if not self._ground_truth:
            if confidence is None:
                raise ValidationError(
                    "an inference needs a confidence", frame_id=self.frame_id, label_id=label_id, field="confidence"
                )
            problem = rules.confidence_problem(confidence)
            if problem:
                self._fail(problem, "confidence", label_id)
        label = label_pb2.Label(
            label_id=label_id,
            classification=classification,
            sensor_id=sensor_id,
            coordinate_frame_id=coord_frame_id or "",
            attributes=_attributes(user_attrs, lambda p, f: self._fail(p, f, label_id)),
        )
        if confidence is not None:
            label.confidence = confidence
        return label

    def _append(self, label: label_pb2.Label) -> None:
        self._labels.append(label)
        self._label_ids.add(label.label_id)

    def _2d_classification(
        self,
        *,
        sensor_id: str,
        label_id: str,
        classification: str,
        secondary_labels: Mapping[str, str] | None = None,
        confidence: float | None = None,
        user_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        label = self._new_label(label_id, classification, sensor_id, confidence=confidence, user_attrs=user_attrs)
        label.classification_2d.secondary_labels.update({str(k): str(v) for k, v in (secondary_labels or {}).items()})
        label.classification_2d.SetInParent()
        self._append(label)

    def _2d_bbox(
        self,
        *,
        sensor_id: str,
        label_id: str,
        classification: str,
        top: float,
        left: float,
        width: float,
        height: float,
        confidence: float | None = None,
        iscrowd: bool | None = None,
        user_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        problem = rules.finite_problem(top, left, width, height) or rules.positive_problem(width=width, height=height)
        if problem:
            self._fail(problem, "box_2d", label_id)
        label = self._new_label(label_id, classification, sensor_id, confidence=confidence, user_attrs=user_attrs)
        label.box_2d.CopyFrom(label_pb2.Box2D(left=left, top=top, width=width, height=height, iscrowd=bool(iscrowd)))
        self._append(label)

    def _3d_cuboid(
        self,
        *,
        label_id: str,
        classification: str,
        position: Vec3,
        dimensions: Vec3,
        rotation: Quat,
        sensor_id: str = "",
        confidence: float | None = None,
        iscrowd: bool | None = None,
        user_attrs: Mapping[str, Any] | None = None,
        coord_frame_id: str | None = None,
    ) -> None:
        fail = functools.partial(self._fail, label_id=label_id)
        dims = _vec3(dimensions, "dimensions", fail)
        problem = rules.positive_problem(x=dims.x, y=dims.y, z=dims.z)
        if problem:
            fail(problem, "dimensions")
        label = self._new_label(
            label_id,
            classification,
            sensor_id,
            confidence=confidence,
            user_attrs=user_attrs,
            coord_frame_id=coord_frame_id,
        )
        label.cuboid_3d.CopyFrom(
            label_pb2.Cuboid3D(
                position=_vec3(position, "position", fail), dimensions=dims, rotation=_quat(rotation, "rotation", fail)
            )
        )
        self._append(label)

    def _mask_url(self, mask_url: str, mask_data: Any, label_id: str) -> str:
        """The URL to put in the label: the one given, or a placeholder for `mask_data` (uploaded by the client)."""
        if bool(mask_url) == (mask_data is not None):
            self._fail("give exactly one of mask_url and mask_data", "mask_url", label_id)
        if mask_data is None:
            return mask_url
        png = mask_png(mask_data, lambda problem: self._fail(problem, "mask_data", label_id))
        placeholder = PENDING_MASK + hashlib.sha256(png).hexdigest()
        self._pending_masks[placeholder] = png
        return placeholder

    def _2d_semseg(
        self,
        *,
        sensor_id: str,
        label_id: str,
        mask_url: str = "",
        mask_data: Any = None,
        classification: str = "",
        confidence: float | None = None,
        user_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        url = self._mask_url(mask_url, mask_data, label_id)
        label = self._new_label(label_id, classification, sensor_id, confidence=confidence, user_attrs=user_attrs)
        label.semantic_segmentation_2d.mask_url = url
        self._append(label)

    def _2d_instance_seg(
        self,
        *,
        sensor_id: str,
        label_id: str,
        instance_mapping: Sequence[Mapping[str, Any]],
        mask_url: str = "",
        mask_data: Any = None,
        classification: str = "",
        confidence: float | None = None,
        user_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        mask_url = self._mask_url(mask_url, mask_data, label_id)
        ids = [int(m["id"]) for m in instance_mapping]
        if len(set(ids)) != len(ids):
            self._fail("instance ids must be unique", "instance_mapping", label_id)
        label = self._new_label(label_id, classification, sensor_id, confidence=confidence, user_attrs=user_attrs)
        label.instance_segmentation_2d.mask_url = mask_url
        label.instance_segmentation_2d.instances.extend(
            label_pb2.InstanceMapping(id=int(m["id"]), classification=str(m["classification"]))
            for m in instance_mapping
        )
        self._append(label)

    def _2d_polygon_list(
        self,
        *,
        sensor_id: str,
        label_id: str,
        classification: str,
        polygons: Sequence[Mapping[str, Any]],
        confidence: float | None = None,
        user_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        if not polygons:
            self._fail("give at least one polygon", "polygons", label_id)
        converted = []
        for i, polygon in enumerate(polygons):
            vertices = [(float(x), float(y)) for x, y in polygon["vertices"]]
            problem = rules.polygon_problem(vertices)
            if problem:
                self._fail(problem, f"polygons[{i}].vertices", label_id)
            converted.append(label_pb2.Polygon(vertices=[common_pb2.Point2D(x=x, y=y) for x, y in vertices]))
        label = self._new_label(label_id, classification, sensor_id, confidence=confidence, user_attrs=user_attrs)
        label.polygon_list_2d.polygons.extend(converted)
        self._append(label)

    def _2d_keypoints(
        self,
        *,
        sensor_id: str,
        label_id: str,
        classification: str,
        keypoints: Sequence[Mapping[str, Any]],
        top: float | None = None,
        left: float | None = None,
        width: float | None = None,
        height: float | None = None,
        confidence: float | None = None,
        user_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        names = [str(k.get("name", "")) for k in keypoints]
        problem = rules.keypoint_names_problem(names) or rules.finite_problem(
            *(float(c) for k in keypoints for c in (k["x"], k["y"]))
        )
        if problem:
            self._fail(problem, "keypoints", label_id)
        label = self._new_label(label_id, classification, sensor_id, confidence=confidence, user_attrs=user_attrs)
        visibility: dict[int, Any] = {
            0: label_pb2.KEYPOINT_VISIBILITY_NOT_LABELED,
            1: label_pb2.KEYPOINT_VISIBILITY_OCCLUDED,
            2: label_pb2.KEYPOINT_VISIBILITY_VISIBLE,
        }
        label.keypoints_2d.keypoints.extend(
            label_pb2.Keypoint(
                name=n, x=float(k["x"]), y=float(k["y"]), visibility=visibility.get(int(k.get("visibility", 2)), 0)
            )
            for n, k in zip(names, keypoints, strict=True)
        )
        box = (top, left, width, height)
        if any(v is not None for v in box):
            if any(v is None for v in box):
                self._fail("give all of top, left, width and height, or none", "box", label_id)
            t, le, w, h = (float(v) for v in box)  # type: ignore[arg-type]
            problem = rules.finite_problem(t, le, w, h) or rules.positive_problem(width=w, height=h)
            if problem:
                self._fail(problem, "box", label_id)
            label.keypoints_2d.box.CopyFrom(label_pb2.Box2D(left=le, top=t, width=w, height=h))
        label.keypoints_2d.SetInParent()
        self._append(label)

    def _2d_line_segment(
        self,
        *,
        sensor_id: str,
        label_id: str,
        classification: str,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        confidence: float | None = None,
        iscrowd: bool | None = None,
        user_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        problem = rules.finite_problem(x1, y1, x2, y2)
        if problem:
            self._fail(problem, "line_segment_2d", label_id)
        label = self._new_label(label_id, classification, sensor_id, confidence=confidence, user_attrs=user_attrs)
        label.line_segment_2d.start.x, label.line_segment_2d.start.y = x1, y1
        label.line_segment_2d.end.x, label.line_segment_2d.end.y = x2, y2
        self._append(label)

    def _3d_classification(
        self,
        *,
        label_id: str,
        classification: str,
        sensor_id: str = "",
        coord_frame_id: str | None = None,
        confidence: float | None = None,
        user_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        label = self._new_label(
            label_id,
            classification,
            sensor_id,
            confidence=confidence,
            user_attrs=user_attrs,
            coord_frame_id=coord_frame_id,
        )
        label.classification_3d.SetInParent()
        self._append(label)

    def _text_token(
        self,
        *,
        sensor_id: str,
        label_id: str,
        index: int,
        token: str,
        classification: str,
        visible: bool = True,
        confidence: float | None = None,
        user_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        if not token:
            self._fail("a token must not be empty", "token", label_id)
        if index < 0:
            self._fail("index must not be negative", "index", label_id)
        label = self._new_label(label_id, classification, sensor_id, confidence=confidence, user_attrs=user_attrs)
        label.text_token.CopyFrom(label_pb2.TextToken(index=index, token=token, visible=visible))
        self._append(label)


class _SensorsAndMetadata(_FrameBase):
    """Sensor data, coordinate frames, metadata and embeddings (labeled frames and inference frames)."""

    @property
    def _message(self) -> Any:
        raise NotImplementedError

    def add_user_metadata(self, key: str, val: str | int | float | bool | None, val_type: str | None = None) -> None:
        """Typed metadata; `val_type` ("str", "int", "float", "bool") is required when `val` is None."""
        problem = rules.metadata_key_problem(key)
        if problem:
            self._fail(problem, f"user_metadata[{key!r}]")
        value = metadata_value(val, val_type, self._fail, f"user_metadata[{key!r}]")
        self._set_metadata(key, value)

    def add_user_metadata_list(
        self, key: str, val: Sequence[str | int | float | bool], list_elt_type: str | None = None
    ) -> None:
        problem = rules.metadata_key_problem(key)
        if problem:
            self._fail(problem, f"user_metadata[{key!r}]")
        self._set_metadata(key, metadata_list(val, list_elt_type, self._fail, f"user_metadata[{key!r}]"))

    def _set_metadata(self, key: str, value: common_pb2.MetadataValue) -> None:
        self._metadata_types[key] = metadata_kind(value)
        self._message.user_metadata[key].CopyFrom(value)

    def add_frame_embedding(self, *, embedding: Sequence[float], model_id: str = "") -> None:
        values = [float(v) for v in embedding]
        if not values:
            self._fail("an embedding needs values", "embedding")
        if rules.finite_problem(*values):
            self._fail("embedding values must be finite", "embedding")
        self._message.embedding.CopyFrom(frame_pb2.FrameEmbedding(values=values, model_id=model_id))

    def add_crop_embedding(self, *, label_id: str, embedding: Sequence[float], model_id: str = "") -> None:
        if label_id not in self._label_ids:
            self._fail(
                f"label {label_id!r} must be added before its crop embedding", "crop_embeddings.label_id", label_id
            )
        values = [float(v) for v in embedding]
        if not values or rules.finite_problem(*values):
            self._fail("a crop embedding needs finite values", "crop_embeddings.values", label_id)
        self._message.crop_embeddings.append(
            frame_pb2.CropEmbedding(label_id=label_id, values=values, model_id=model_id)
        )

    @property
    def embedding_dims(self) -> set[int]:
        dims = {len(c.values) for c in self._message.crop_embeddings}
        if self._message.HasField("embedding"):
            dims.add(len(self._message.embedding.values))
        return dims


class LabeledFrame(_SensorsAndMetadata):
    """A frame of a dataset: sensor data, coordinate frames, metadata, ground-truth labels, embeddings.

    `update_type="MODIFY"` merges the given sensor data and metadata into an existing frame and leaves its labels
    alone; `"ADD"` (the default) adds the frame or replaces all of it.
    """

    def __init__(
        self,
        *,
        frame_id: str,
        update_type: UpdateType = "ADD",
        date_captured: datetime | str | None = None,
        device_id: str | None = None,
    ) -> None:
        super().__init__(frame_id)
        if update_type not in _CHANGE:
            self._fail(f"update_type must be ADD or MODIFY, got {update_type!r}", "update_type")
        self.update_type = update_type
        self.frame = frame_pb2.Frame(frame_id=frame_id, change_type=_CHANGE[update_type], device_id=device_id or "")
        captured = _timestamp(date_captured)
        if captured is not None:
            self.frame.date_captured.CopyFrom(captured)

    @property
    def _message(self) -> frame_pb2.Frame:
        return self.frame

    @property
    def _labels(self) -> Any:
        return self.frame.labels

    def to_proto(self) -> frame_pb2.Frame:
        return self.frame

    # coordinate frames

    def add_coordinate_frame_2d(
        self,
        *,
        coord_frame_id: str,
        fx: float,
        fy: float,
        camera_model: str | None = None,
        position: Vec3 | None = None,
        orientation: Quat | None = None,
        camera_matrix: Sequence[Sequence[float]] | Sequence[float] | None = None,
        k1: float = 0.0,
        k2: float = 0.0,
        k3: float = 0.0,
        k4: float = 0.0,
        k5: float = 0.0,
        k6: float = 0.0,
        p1: float = 0.0,
        p2: float = 0.0,
        cx: float | None = None,
        cy: float | None = None,
        s1: float = 0.0,
        s2: float = 0.0,
        s3: float = 0.0,
        s4: float = 0.0,
        skew: float = 0.0,
        parent_frame_id: str | None = None,
    ) -> None:
        """A camera: intrinsics (Brown–Conrady or fisheye) and pose in its parent frame."""
        self._declare_coordinate_frame(coord_frame_id, parent_frame_id)
        if camera_model not in _CAMERA_MODELS:
            self._fail(f"camera_model must be 'brown_conrady' or 'fisheye', got {camera_model!r}", "camera_model")
        numbers = [fx, fy, k1, k2, k3, k4, k5, k6, p1, p2, s1, s2, s3, s4, skew] + [
            v for v in (cx, cy) if v is not None
        ]
        problem = rules.finite_problem(*numbers) or rules.positive_problem(fx=fx, fy=fy)
        if problem:
            self._fail(problem, f"coordinate_frames[{coord_frame_id!r}]")
        matrix: list[float] = []
        if camera_matrix is not None:
            matrix = [float(v) for row in camera_matrix for v in (row if isinstance(row, Sequence) else [row])]
            if len(matrix) != 16 or rules.finite_problem(*matrix):
                self._fail("camera_matrix must be 4×4 finite values", "camera_matrix")
        fail = self._fail
        frame_2d = frame_pb2.CoordinateFrame2D(
            fx=fx, fy=fy, camera_model=_CAMERA_MODELS[camera_model], position=_vec3(position, "position", fail),
            orientation=_quat(orientation, "orientation", fail), camera_matrix=matrix,
            k1=k1, k2=k2, k3=k3, k4=k4, k5=k5, k6=k6, p1=p1, p2=p2, s1=s1, s2=s2, s3=s3, s4=s4, skew=skew,
        )  # fmt: skip
        if cx is not None:
            frame_2d.cx = cx
        if cy is not None:
            frame_2d.cy = cy
        self.frame.coordinate_frames.append(
            frame_pb2.CoordinateFrame(
                coordinate_frame_id=coord_frame_id, parent_frame_id=parent_frame_id or "", frame_2d=frame_2d
            )
        )

    def add_coordinate_frame_3d(
        self,
        *,
        coord_frame_id: str,
        position: Vec3 | None = None,
        orientation: Quat | None = None,
        parent_frame_id: str | None = None,
    ) -> None:
        """A 3-D pose (lidar, ego vehicle, world) in its parent frame."""
        self._declare_coordinate_frame(coord_frame_id, parent_frame_id)
        fail = self._fail
        self.frame.coordinate_frames.append(
            frame_pb2.CoordinateFrame(
                coordinate_frame_id=coord_frame_id,
                parent_frame_id=parent_frame_id or "",
                frame_3d=frame_pb2.CoordinateFrame3D(
                    position=_vec3(position, "position", fail), orientation=_quat(orientation, "orientation", fail)
                ),
            )
        )

    def _declare_coordinate_frame(self, coord_frame_id: str, parent_frame_id: str | None) -> None:
        problem = rules.id_problem(coord_frame_id)
        if problem:
            self._fail(problem, "coord_frame_id")
        if coord_frame_id in self._coordinate_frame_ids:
            self._fail(f"coordinate frame {coord_frame_id!r} is added twice", "coord_frame_id")
        if parent_frame_id and parent_frame_id not in self._coordinate_frame_ids:
            self._fail(f"parent {parent_frame_id!r} must be added before {coord_frame_id!r}", "parent_frame_id")
        self._coordinate_frame_ids.add(coord_frame_id)

    # sensor data

    def _sensor(
        self, sensor_id: str, coord_frame_id: str | None, date_captured: datetime | str | None, *, overlay: bool = False
    ) -> frame_pb2.SensorData:
        problem = rules.id_problem(sensor_id)
        if problem:
            self._fail(problem, "sensor_id")
        if sensor_id in self._sensor_ids and not overlay:
            self._fail(f"sensor {sensor_id!r} is added twice", "sensor_id")
        self._check_coordinate_frame(coord_frame_id)
        self._sensor_ids.add(sensor_id)
        sensor = frame_pb2.SensorData(sensor_id=sensor_id, coordinate_frame_id=coord_frame_id or "")
        captured = _timestamp(date_captured)
        if captured is not None:
            sensor.date_captured.CopyFrom(captured)
        return sensor

    def _url(self, url: str, field: str) -> str:
        if not url or not isinstance(url, str):
            self._fail("a URL is required", field)
        return url

    def add_image(
        self,
        *,
        sensor_id: str,
        image_url: str,
        preview_url: str | None = None,
        date_captured: datetime | str | None = None,
        width: int | None = None,
        height: int | None = None,
        coord_frame_id: str | None = None,
    ) -> None:
        for name, value in (("width", width), ("height", height)):
            if value is not None and (not isinstance(value, int) or value <= 0):
                self._fail(f"{name} must be a positive integer, got {value!r}", name)
        sensor = self._sensor(sensor_id, coord_frame_id, date_captured)
        sensor.image.CopyFrom(
            frame_pb2.Image(
                url=self._url(image_url, "image_url"),
                preview_url=preview_url or "",
                width=width or 0,
                height=height or 0,
            )
        )
        self.frame.sensors.append(sensor)

    def add_image_overlay(
        self,
        *,
        sensor_id: str,
        overlay_id: str,
        image_url: str,
        date_captured: datetime | str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> None:
        """An image drawn over the image of `sensor_id`; the overlay is stored as sensor `sensor_id`/`overlay_id`."""
        problem = rules.id_problem(overlay_id)
        if problem:
            self._fail(problem, "overlay_id")
        if sensor_id not in self._sensor_ids:
            self._fail(f"add the image of sensor {sensor_id!r} before its overlay", "sensor_id")
        sensor = self._sensor(sensor_id, None, date_captured, overlay=True)
        sensor.image_overlay.CopyFrom(
            frame_pb2.ImageOverlay(url=self._url(image_url, "image_url"), width=width or 0, height=height or 0)
        )
        sensor.coordinate_frame_id = ""
        self.frame.sensors.append(sensor)

    def add_point_cloud_pcd(
        self,
        *,
        sensor_id: str,
        pcd_url: str,
        coord_frame_id: str | None = None,
        date_captured: datetime | str | None = None,
    ) -> None:
        sensor = self._sensor(sensor_id, coord_frame_id, date_captured)
        sensor.point_cloud_pcd.url = self._url(pcd_url, "pcd_url")
        self.frame.sensors.append(sensor)

    def add_point_cloud_bins(
        self,
        *,
        sensor_id: str,
        pointcloud_url: str,
        intensity_url: str | None = None,
        range_url: str | None = None,
        coord_frame_id: str | None = None,
        date_captured: datetime | str | None = None,
    ) -> None:
        sensor = self._sensor(sensor_id, coord_frame_id, date_captured)
        sensor.point_cloud_bins.CopyFrom(
            frame_pb2.PointCloudBins(
                pointcloud_url=self._url(pointcloud_url, "pointcloud_url"),
                intensity_url=intensity_url or "",
                range_url=range_url or "",
            )
        )
        self.frame.sensors.append(sensor)

    def add_obj(
        self,
        *,
        sensor_id: str,
        obj_url: str,
        coord_frame_id: str | None = None,
        date_captured: datetime | str | None = None,
    ) -> None:
        sensor = self._sensor(sensor_id, coord_frame_id, date_captured)
        sensor.obj_mesh.url = self._url(obj_url, "obj_url")
        self.frame.sensors.append(sensor)

    def add_audio(self, *, sensor_id: str, audio_url: str, date_captured: datetime | str | None = None) -> None:
        sensor = self._sensor(sensor_id, None, date_captured)
        sensor.audio.url = self._url(audio_url, "audio_url")
        self.frame.sensors.append(sensor)

    def add_video(self, *, sensor_id: str, video_url: str, date_captured: datetime | str | None = None) -> None:
        sensor = self._sensor(sensor_id, None, date_captured)
        sensor.video.url = self._url(video_url, "video_url")
        self.frame.sensors.append(sensor)

    def add_text(self, *, sensor_id: str, text: str, date_captured: datetime | str | None = None) -> None:
        sensor = self._sensor(sensor_id, None, date_captured)
        sensor.text.text = text
        self.frame.sensors.append(sensor)

    def add_geo_latlong_data(self, lat: float, lon: float) -> None:
        """Where the frame was captured, in WGS 84 (EPSG:4326)."""
        problem = rules.latlong_problem(lat, lon)
        if problem:
            self._fail(problem, "geo")
        self.frame.geo.latitude, self.frame.geo.longitude = lat, lon

    def _check_sensor(self, sensor_id: str, label_id: str) -> None:
        super()._check_sensor(sensor_id, label_id)
        if self.update_type == "ADD" and sensor_id not in self._sensor_ids:
            self._fail(f"sensor {sensor_id!r} must be added to the frame before its labels", "sensor_id", label_id)

    def _new_label(self, *args: Any, **kwargs: Any) -> label_pb2.Label:
        if self.update_type == "MODIFY":
            self._fail("MODIFY leaves labels untouched; change labels with UpdateGTLabelSet", "labels")
        return super()._new_label(*args, **kwargs)

    add_label_2d_classification = _FrameBase._2d_classification
    add_label_2d_bbox = _FrameBase._2d_bbox
    add_label_3d_cuboid = _FrameBase._3d_cuboid
    add_label_2d_semseg = _FrameBase._2d_semseg
    add_label_2d_instance_seg = _FrameBase._2d_instance_seg
    add_label_2d_polygon_list = _FrameBase._2d_polygon_list
    add_label_2d_keypoints = _FrameBase._2d_keypoints
    add_label_2d_line_segment = _FrameBase._2d_line_segment
    add_label_3d_classification = _FrameBase._3d_classification
    add_label_text_token = _FrameBase._text_token


class InferencesFrame(_SensorsAndMetadata):
    """A model's predictions on one dataset frame; every `add_inference_*` takes a `confidence` in [0, 1]."""

    _ground_truth = False

    def __init__(self, *, frame_id: str) -> None:
        super().__init__(frame_id)
        self.frame = frame_pb2.InferenceFrame(frame_id=frame_id)

    @property
    def _message(self) -> frame_pb2.InferenceFrame:
        return self.frame

    @property
    def _labels(self) -> Any:
        return self.frame.labels

    def to_proto(self) -> frame_pb2.InferenceFrame:
        return self.frame

    def add_custom_metric(self, name: str, value: float | Sequence[Sequence[float]]) -> None:
        """A scalar objective, or a confusion matrix as a list of rows."""
        problem = rules.metadata_key_problem(name)
        if problem:
            self._fail(problem, f"custom_metrics[{name!r}]")
        metric = frame_pb2.CustomMetric()
        if isinstance(value, int | float):
            if rules.finite_problem(value):
                self._fail("must be finite", f"custom_metrics[{name!r}]")
            metric.objective = float(value)
        else:
            rows = [list(map(float, r)) for r in value]
            if not rows or len({len(r) for r in rows}) != 1 or rules.finite_problem(*(v for r in rows for v in r)):
                self._fail(
                    "a confusion matrix is a non-empty list of equal-length rows of finite values",
                    f"custom_metrics[{name!r}]",
                )
            metric.confusion_matrix.CopyFrom(
                common_pb2.Matrix(rows=len(rows), columns=len(rows[0]), values=[v for r in rows for v in r])
            )
        self.frame.custom_metrics[name].CopyFrom(metric)

    add_inference_2d_classification = _FrameBase._2d_classification
    add_inference_2d_bbox = _FrameBase._2d_bbox
    add_inference_3d_cuboid = _FrameBase._3d_cuboid
    add_inference_2d_semseg = _FrameBase._2d_semseg
    add_inference_2d_instance_seg = _FrameBase._2d_instance_seg
    add_inference_2d_polygon_list = _FrameBase._2d_polygon_list
    add_inference_2d_keypoints = _FrameBase._2d_keypoints
    add_inference_2d_line_segment = _FrameBase._2d_line_segment
    add_inference_3d_classification = _FrameBase._3d_classification
    add_inference_text_token = _FrameBase._text_token


class UpdateGTLabelSet(_FrameBase):
    """Ground-truth label changes on an existing frame: labels whose id exists are replaced, new ids are added."""

    def __init__(self, *, frame_id: str) -> None:
        super().__init__(frame_id)
        from shoal.v1 import label_pb2 as _label  # noqa: PLC0415

        self.update = _label.LabelUpdate(frame_id=frame_id)

    @property
    def _labels(self) -> Any:
        return self.update.labels

    def to_proto(self) -> label_pb2.LabelUpdate:
        return self.update

    update_label_2d_classification = _FrameBase._2d_classification
    update_label_2d_bbox = _FrameBase._2d_bbox
    update_label_3d_cuboid = _FrameBase._3d_cuboid
    update_label_2d_semseg = _FrameBase._2d_semseg
    update_label_2d_instance_seg = _FrameBase._2d_instance_seg
    update_label_2d_polygon_list = _FrameBase._2d_polygon_list
    update_label_2d_keypoints = _FrameBase._2d_keypoints
    update_label_2d_line_segment = _FrameBase._2d_line_segment
    update_label_3d_classification = _FrameBase._3d_classification
    update_label_text_token = _FrameBase._text_token


class _Collection:
    """Frames of one dataset or inference set: unique frame and label ids, one type per metadata key, one
    embedding dimension."""

    def __init__(self) -> None:
        self._frame_ids: set[str] = set()
        self._label_ids: set[str] = set()
        self._metadata_types: dict[str, str] = {}
        self.embedding_dim: int | None = None
        self.pending_masks: dict[str, bytes] = {}  # placeholder URL → PNG, uploaded by the client

    def _admit(self, frame: _FrameBase, label_ids: Iterable[str]) -> None:
        if frame.frame_id in self._frame_ids:
            raise ValidationError("frame id is used twice in this dataset", frame_id=frame.frame_id, field="frame_id")
        ids = list(label_ids)
        clash = next((i for i in ids if i in self._label_ids), None)
        if clash is not None:
            raise ValidationError(
                "label id is used twice in this dataset", frame_id=frame.frame_id, label_id=clash, field="label_id"
            )
        for key, kind in frame._metadata_types.items():
            known = self._metadata_types.get(key)
            if known is not None and known != kind:
                raise ValidationError(
                    f"metadata {key!r} was {known.removesuffix('_value')} on other frames, "
                    f"got {kind.removesuffix('_value')}",
                    frame_id=frame.frame_id,
                    field=f"user_metadata[{key!r}]",
                )
        dims = frame.embedding_dims if isinstance(frame, _SensorsAndMetadata) else set()
        for dim in dims:
            if self.embedding_dim is not None and dim != self.embedding_dim:
                raise ValidationError(
                    f"embeddings of this dataset have {self.embedding_dim} dimensions, got {dim}",
                    frame_id=frame.frame_id,
                    field="embedding",
                )
        if len(dims) > 1:
            raise ValidationError(
                f"embeddings of one frame differ in dimension: {sorted(dims)}",
                frame_id=frame.frame_id,
                field="embedding",
            )
        for key, kind in frame._metadata_types.items():
            self._metadata_types.setdefault(key, kind)
        if dims:
            self.embedding_dim = next(iter(dims))
        self._frame_ids.add(frame.frame_id)
        self._label_ids.update(ids)
        self.pending_masks.update(frame._pending_masks)


class LabeledDataset(_Collection):
    """The frames of a dataset upload, in order: additions, modifications, deletions and label updates."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[frame_pb2.Frame | label_pb2.LabelUpdate] = []

    def add_frame(self, frame: LabeledFrame) -> None:
        self._admit(frame, frame._label_ids)
        self.items.append(frame.to_proto())

    def delete_frame(self, frame_id: str) -> None:
        problem = rules.id_problem(frame_id)
        if problem:
            raise ValidationError(problem, frame_id=str(frame_id), field="frame_id")
        if frame_id in self._frame_ids:
            raise ValidationError("frame id is used twice in this dataset", frame_id=frame_id, field="frame_id")
        self._frame_ids.add(frame_id)
        self.items.append(frame_pb2.Frame(frame_id=frame_id, change_type=frame_pb2.CHANGE_TYPE_DELETE))

    def add_label_update(self, update: UpdateGTLabelSet) -> None:
        self._admit(update, update._label_ids)
        self.items.append(update.to_proto())

    def __len__(self) -> int:
        return len(self.items)


class Inferences(_Collection):
    """A model's predictions on frames of a dataset."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[frame_pb2.InferenceFrame] = []

    def add_frame(self, frame: InferencesFrame) -> None:
        self._admit(frame, frame._label_ids)
        self.items.append(frame.to_proto())

    def __len__(self) -> int:
        return len(self.items)
