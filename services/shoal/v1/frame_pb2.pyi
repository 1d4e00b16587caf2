import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.v1 import common_pb2 as _common_pb2
from shoal.v1 import label_pb2 as _label_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChangeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_TYPE_UNSPECIFIED: _ClassVar[ChangeType]
    CHANGE_TYPE_ADD: _ClassVar[ChangeType]
    CHANGE_TYPE_MODIFY: _ClassVar[ChangeType]
    CHANGE_TYPE_DELETE: _ClassVar[ChangeType]

class CameraModel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAMERA_MODEL_UNSPECIFIED: _ClassVar[CameraModel]
    CAMERA_MODEL_BROWN_CONRADY: _ClassVar[CameraModel]
    CAMERA_MODEL_FISHEYE: _ClassVar[CameraModel]
CHANGE_TYPE_UNSPECIFIED: ChangeType
CHANGE_TYPE_ADD: ChangeType
CHANGE_TYPE_MODIFY: ChangeType
CHANGE_TYPE_DELETE: ChangeType
CAMERA_MODEL_UNSPECIFIED: CameraModel
CAMERA_MODEL_BROWN_CONRADY: CameraModel
CAMERA_MODEL_FISHEYE: CameraModel

class CoordinateFrame2D(_message.Message):
    __slots__ = ("fx", "fy", "camera_model", "position", "orientation", "camera_matrix", "cx", "cy", "k1", "k2", "k3", "k4", "k5", "k6", "p1", "p2", "s1", "s2", "s3", "s4", "skew")
    FX_FIELD_NUMBER: _ClassVar[int]
    FY_FIELD_NUMBER: _ClassVar[int]
    CAMERA_MODEL_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ORIENTATION_FIELD_NUMBER: _ClassVar[int]
    CAMERA_MATRIX_FIELD_NUMBER: _ClassVar[int]
    CX_FIELD_NUMBER: _ClassVar[int]
    CY_FIELD_NUMBER: _ClassVar[int]
    K1_FIELD_NUMBER: _ClassVar[int]
    K2_FIELD_NUMBER: _ClassVar[int]
    K3_FIELD_NUMBER: _ClassVar[int]
    K4_FIELD_NUMBER: _ClassVar[int]
    K5_FIELD_NUMBER: _ClassVar[int]
    K6_FIELD_NUMBER: _ClassVar[int]
    P1_FIELD_NUMBER: _ClassVar[int]
    P2_FIELD_NUMBER: _ClassVar[int]
    S1_FIELD_NUMBER: _ClassVar[int]
    S2_FIELD_NUMBER: _ClassVar[int]
    S3_FIELD_NUMBER: _ClassVar[int]
    S4_FIELD_NUMBER: _ClassVar[int]
    SKEW_FIELD_NUMBER: _ClassVar[int]
    fx: float
    fy: float
    camera_model: CameraModel
    position: _common_pb2.Vector3
    orientation: _common_pb2.Quaternion
    camera_matrix: _containers.RepeatedScalarFieldContainer[float]
    cx: float
    cy: float
    k1: float
    k2: float
    k3: float
    k4: float
    k5: float
    k6: float
    p1: float
    p2: float
    s1: float
    s2: float
    s3: float
    s4: float
    skew: float
    def __init__(self, fx: _Optional[float] = ..., fy: _Optional[float] = ..., camera_model: _Optional[_Union[CameraModel, str]] = ..., position: _Optional[_Union[_common_pb2.Vector3, _Mapping]] = ..., orientation: _Optional[_Union[_common_pb2.Quaternion, _Mapping]] = ..., camera_matrix: _Optional[_Iterable[float]] = ..., cx: _Optional[float] = ..., cy: _Optional[float] = ..., k1: _Optional[float] = ..., k2: _Optional[float] = ..., k3: _Optional[float] = ..., k4: _Optional[float] = ..., k5: _Optional[float] = ..., k6: _Optional[float] = ..., p1: _Optional[float] = ..., p2: _Optional[float] = ..., s1: _Optional[float] = ..., s2: _Optional[float] = ..., s3: _Optional[float] = ..., s4: _Optional[float] = ..., skew: _Optional[float] = ...) -> None: ...

class CoordinateFrame3D(_message.Message):
    __slots__ = ("position", "orientation")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ORIENTATION_FIELD_NUMBER: _ClassVar[int]
    position: _common_pb2.Vector3
    orientation: _common_pb2.Quaternion
    def __init__(self, position: _Optional[_Union[_common_pb2.Vector3, _Mapping]] = ..., orientation: _Optional[_Union[_common_pb2.Quaternion, _Mapping]] = ...) -> None: ...

class CoordinateFrame(_message.Message):
    __slots__ = ("coordinate_frame_id", "parent_frame_id", "frame_2d", "frame_3d")
    COORDINATE_FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_2D_FIELD_NUMBER: _ClassVar[int]
    FRAME_3D_FIELD_NUMBER: _ClassVar[int]
    coordinate_frame_id: str
    parent_frame_id: str
    frame_2d: CoordinateFrame2D
    frame_3d: CoordinateFrame3D
    def __init__(self, coordinate_frame_id: _Optional[str] = ..., parent_frame_id: _Optional[str] = ..., frame_2d: _Optional[_Union[CoordinateFrame2D, _Mapping]] = ..., frame_3d: _Optional[_Union[CoordinateFrame3D, _Mapping]] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("url", "preview_url", "width", "height")
    URL_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_URL_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    url: str
    preview_url: str
    width: int
    height: int
    def __init__(self, url: _Optional[str] = ..., preview_url: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class ImageOverlay(_message.Message):
    __slots__ = ("url", "width", "height")
    URL_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    url: str
    width: int
    height: int
    def __init__(self, url: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class PointCloudPcd(_message.Message):
    __slots__ = ("url",)
    URL_FIELD_NUMBER: _ClassVar[int]
    url: str
    def __init__(self, url: _Optional[str] = ...) -> None: ...

class PointCloudBins(_message.Message):
    __slots__ = ("pointcloud_url", "intensity_url", "range_url")
    POINTCLOUD_URL_FIELD_NUMBER: _ClassVar[int]
    INTENSITY_URL_FIELD_NUMBER: _ClassVar[int]
    RANGE_URL_FIELD_NUMBER: _ClassVar[int]
    pointcloud_url: str
    intensity_url: str
    range_url: str
    def __init__(self, pointcloud_url: _Optional[str] = ..., intensity_url: _Optional[str] = ..., range_url: _Optional[str] = ...) -> None: ...

class Audio(_message.Message):
    __slots__ = ("url",)
    URL_FIELD_NUMBER: _ClassVar[int]
    url: str
    def __init__(self, url: _Optional[str] = ...) -> None: ...

class Video(_message.Message):
    __slots__ = ("url",)
    URL_FIELD_NUMBER: _ClassVar[int]
    url: str
    def __init__(self, url: _Optional[str] = ...) -> None: ...

class Text(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class ObjMesh(_message.Message):
    __slots__ = ("url",)
    URL_FIELD_NUMBER: _ClassVar[int]
    url: str
    def __init__(self, url: _Optional[str] = ...) -> None: ...

class SensorData(_message.Message):
    __slots__ = ("sensor_id", "coordinate_frame_id", "date_captured", "image", "image_overlay", "point_cloud_pcd", "point_cloud_bins", "audio", "video", "text", "obj_mesh")
    SENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    COORDINATE_FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    DATE_CAPTURED_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_OVERLAY_FIELD_NUMBER: _ClassVar[int]
    POINT_CLOUD_PCD_FIELD_NUMBER: _ClassVar[int]
    POINT_CLOUD_BINS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    OBJ_MESH_FIELD_NUMBER: _ClassVar[int]
    sensor_id: str
    coordinate_frame_id: str
    date_captured: _timestamp_pb2.Timestamp
    image: Image
    image_overlay: ImageOverlay
    point_cloud_pcd: PointCloudPcd
    point_cloud_bins: PointCloudBins
    audio: Audio
    video: Video
    text: Text
    obj_mesh: ObjMesh
    def __init__(self, sensor_id: _Optional[str] = ..., coordinate_frame_id: _Optional[str] = ..., date_captured: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., image_overlay: _Optional[_Union[ImageOverlay, _Mapping]] = ..., point_cloud_pcd: _Optional[_Union[PointCloudPcd, _Mapping]] = ..., point_cloud_bins: _Optional[_Union[PointCloudBins, _Mapping]] = ..., audio: _Optional[_Union[Audio, _Mapping]] = ..., video: _Optional[_Union[Video, _Mapping]] = ..., text: _Optional[_Union[Text, _Mapping]] = ..., obj_mesh: _Optional[_Union[ObjMesh, _Mapping]] = ...) -> None: ...

class FrameEmbedding(_message.Message):
    __slots__ = ("values", "model_id")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    model_id: str
    def __init__(self, values: _Optional[_Iterable[float]] = ..., model_id: _Optional[str] = ...) -> None: ...

class CropEmbedding(_message.Message):
    __slots__ = ("label_id", "values", "model_id")
    LABEL_ID_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    label_id: str
    values: _containers.RepeatedScalarFieldContainer[float]
    model_id: str
    def __init__(self, label_id: _Optional[str] = ..., values: _Optional[_Iterable[float]] = ..., model_id: _Optional[str] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("frame_id", "change_type", "device_id", "date_captured", "coordinate_frames", "sensors", "user_metadata", "geo", "labels", "embedding", "crop_embeddings")
    class UserMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.MetadataValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.MetadataValue, _Mapping]] = ...) -> None: ...
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    DATE_CAPTURED_FIELD_NUMBER: _ClassVar[int]
    COORDINATE_FRAMES_FIELD_NUMBER: _ClassVar[int]
    SENSORS_FIELD_NUMBER: _ClassVar[int]
    USER_METADATA_FIELD_NUMBER: _ClassVar[int]
    GEO_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    CROP_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    change_type: ChangeType
    device_id: str
    date_captured: _timestamp_pb2.Timestamp
    coordinate_frames: _containers.RepeatedCompositeFieldContainer[CoordinateFrame]
    sensors: _containers.RepeatedCompositeFieldContainer[SensorData]
    user_metadata: _containers.MessageMap[str, _common_pb2.MetadataValue]
    geo: _common_pb2.GeoPoint
    labels: _containers.RepeatedCompositeFieldContainer[_label_pb2.Label]
    embedding: FrameEmbedding
    crop_embeddings: _containers.RepeatedCompositeFieldContainer[CropEmbedding]
    def __init__(self, frame_id: _Optional[str] = ..., change_type: _Optional[_Union[ChangeType, str]] = ..., device_id: _Optional[str] = ..., date_captured: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., coordinate_frames: _Optional[_Iterable[_Union[CoordinateFrame, _Mapping]]] = ..., sensors: _Optional[_Iterable[_Union[SensorData, _Mapping]]] = ..., user_metadata: _Optional[_Mapping[str, _common_pb2.MetadataValue]] = ..., geo: _Optional[_Union[_common_pb2.GeoPoint, _Mapping]] = ..., labels: _Optional[_Iterable[_Union[_label_pb2.Label, _Mapping]]] = ..., embedding: _Optional[_Union[FrameEmbedding, _Mapping]] = ..., crop_embeddings: _Optional[_Iterable[_Union[CropEmbedding, _Mapping]]] = ...) -> None: ...

class CustomMetric(_message.Message):
    __slots__ = ("objective", "confusion_matrix")
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    CONFUSION_MATRIX_FIELD_NUMBER: _ClassVar[int]
    objective: float
    confusion_matrix: _common_pb2.Matrix
    def __init__(self, objective: _Optional[float] = ..., confusion_matrix: _Optional[_Union[_common_pb2.Matrix, _Mapping]] = ...) -> None: ...

class InferenceFrame(_message.Message):
    __slots__ = ("frame_id", "labels", "custom_metrics", "user_metadata", "embedding", "crop_embeddings")
    class CustomMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: CustomMetric
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[CustomMetric, _Mapping]] = ...) -> None: ...
    class UserMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.MetadataValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.MetadataValue, _Mapping]] = ...) -> None: ...
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_METRICS_FIELD_NUMBER: _ClassVar[int]
    USER_METADATA_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    CROP_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    labels: _containers.RepeatedCompositeFieldContainer[_label_pb2.Label]
    custom_metrics: _containers.MessageMap[str, CustomMetric]
    user_metadata: _containers.MessageMap[str, _common_pb2.MetadataValue]
    embedding: FrameEmbedding
    crop_embeddings: _containers.RepeatedCompositeFieldContainer[CropEmbedding]
    def __init__(self, frame_id: _Optional[str] = ..., labels: _Optional[_Iterable[_Union[_label_pb2.Label, _Mapping]]] = ..., custom_metrics: _Optional[_Mapping[str, CustomMetric]] = ..., user_metadata: _Optional[_Mapping[str, _common_pb2.MetadataValue]] = ..., embedding: _Optional[_Union[FrameEmbedding, _Mapping]] = ..., crop_embeddings: _Optional[_Iterable[_Union[CropEmbedding, _Mapping]]] = ...) -> None: ...
