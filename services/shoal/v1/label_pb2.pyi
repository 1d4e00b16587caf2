from google.protobuf import field_mask_pb2 as _field_mask_pb2
from shoal.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeypointVisibility(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEYPOINT_VISIBILITY_UNSPECIFIED: _ClassVar[KeypointVisibility]
    KEYPOINT_VISIBILITY_NOT_LABELED: _ClassVar[KeypointVisibility]
    KEYPOINT_VISIBILITY_OCCLUDED: _ClassVar[KeypointVisibility]
    KEYPOINT_VISIBILITY_VISIBLE: _ClassVar[KeypointVisibility]
KEYPOINT_VISIBILITY_UNSPECIFIED: KeypointVisibility
KEYPOINT_VISIBILITY_NOT_LABELED: KeypointVisibility
KEYPOINT_VISIBILITY_OCCLUDED: KeypointVisibility
KEYPOINT_VISIBILITY_VISIBLE: KeypointVisibility

class Label(_message.Message):
    __slots__ = ("label_id", "classification", "sensor_id", "coordinate_frame_id", "attributes", "confidence", "classification_2d", "box_2d", "cuboid_3d", "semantic_segmentation_2d", "instance_segmentation_2d", "polygon_list_2d", "keypoints_2d", "line_segment_2d", "classification_3d", "text_token")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.MetadataValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.MetadataValue, _Mapping]] = ...) -> None: ...
    LABEL_ID_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    SENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    COORDINATE_FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_2D_FIELD_NUMBER: _ClassVar[int]
    BOX_2D_FIELD_NUMBER: _ClassVar[int]
    CUBOID_3D_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_SEGMENTATION_2D_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_SEGMENTATION_2D_FIELD_NUMBER: _ClassVar[int]
    POLYGON_LIST_2D_FIELD_NUMBER: _ClassVar[int]
    KEYPOINTS_2D_FIELD_NUMBER: _ClassVar[int]
    LINE_SEGMENT_2D_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_3D_FIELD_NUMBER: _ClassVar[int]
    TEXT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    label_id: str
    classification: str
    sensor_id: str
    coordinate_frame_id: str
    attributes: _containers.MessageMap[str, _common_pb2.MetadataValue]
    confidence: float
    classification_2d: Classification2D
    box_2d: Box2D
    cuboid_3d: Cuboid3D
    semantic_segmentation_2d: SemanticSegmentation2D
    instance_segmentation_2d: InstanceSegmentation2D
    polygon_list_2d: PolygonList2D
    keypoints_2d: Keypoints2D
    line_segment_2d: LineSegment2D
    classification_3d: Classification3D
    text_token: TextToken
    def __init__(self, label_id: _Optional[str] = ..., classification: _Optional[str] = ..., sensor_id: _Optional[str] = ..., coordinate_frame_id: _Optional[str] = ..., attributes: _Optional[_Mapping[str, _common_pb2.MetadataValue]] = ..., confidence: _Optional[float] = ..., classification_2d: _Optional[_Union[Classification2D, _Mapping]] = ..., box_2d: _Optional[_Union[Box2D, _Mapping]] = ..., cuboid_3d: _Optional[_Union[Cuboid3D, _Mapping]] = ..., semantic_segmentation_2d: _Optional[_Union[SemanticSegmentation2D, _Mapping]] = ..., instance_segmentation_2d: _Optional[_Union[InstanceSegmentation2D, _Mapping]] = ..., polygon_list_2d: _Optional[_Union[PolygonList2D, _Mapping]] = ..., keypoints_2d: _Optional[_Union[Keypoints2D, _Mapping]] = ..., line_segment_2d: _Optional[_Union[LineSegment2D, _Mapping]] = ..., classification_3d: _Optional[_Union[Classification3D, _Mapping]] = ..., text_token: _Optional[_Union[TextToken, _Mapping]] = ...) -> None: ...

class Classification2D(_message.Message):
    __slots__ = ("secondary_labels",)
    class SecondaryLabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SECONDARY_LABELS_FIELD_NUMBER: _ClassVar[int]
    secondary_labels: _containers.ScalarMap[str, str]
    def __init__(self, secondary_labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Box2D(_message.Message):
    __slots__ = ("left", "top", "width", "height", "iscrowd")
    LEFT_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ISCROWD_FIELD_NUMBER: _ClassVar[int]
    left: float
    top: float
    width: float
    height: float
    iscrowd: bool
    def __init__(self, left: _Optional[float] = ..., top: _Optional[float] = ..., width: _Optional[float] = ..., height: _Optional[float] = ..., iscrowd: _Optional[bool] = ...) -> None: ...

class Cuboid3D(_message.Message):
    __slots__ = ("position", "dimensions", "rotation")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    position: _common_pb2.Vector3
    dimensions: _common_pb2.Vector3
    rotation: _common_pb2.Quaternion
    def __init__(self, position: _Optional[_Union[_common_pb2.Vector3, _Mapping]] = ..., dimensions: _Optional[_Union[_common_pb2.Vector3, _Mapping]] = ..., rotation: _Optional[_Union[_common_pb2.Quaternion, _Mapping]] = ...) -> None: ...

class SemanticSegmentation2D(_message.Message):
    __slots__ = ("mask_url",)
    MASK_URL_FIELD_NUMBER: _ClassVar[int]
    mask_url: str
    def __init__(self, mask_url: _Optional[str] = ...) -> None: ...

class InstanceMapping(_message.Message):
    __slots__ = ("id", "classification")
    ID_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    id: int
    classification: str
    def __init__(self, id: _Optional[int] = ..., classification: _Optional[str] = ...) -> None: ...

class InstanceSegmentation2D(_message.Message):
    __slots__ = ("mask_url", "instances")
    MASK_URL_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    mask_url: str
    instances: _containers.RepeatedCompositeFieldContainer[InstanceMapping]
    def __init__(self, mask_url: _Optional[str] = ..., instances: _Optional[_Iterable[_Union[InstanceMapping, _Mapping]]] = ...) -> None: ...

class Polygon(_message.Message):
    __slots__ = ("vertices",)
    VERTICES_FIELD_NUMBER: _ClassVar[int]
    vertices: _containers.RepeatedCompositeFieldContainer[_common_pb2.Point2D]
    def __init__(self, vertices: _Optional[_Iterable[_Union[_common_pb2.Point2D, _Mapping]]] = ...) -> None: ...

class PolygonList2D(_message.Message):
    __slots__ = ("polygons",)
    POLYGONS_FIELD_NUMBER: _ClassVar[int]
    polygons: _containers.RepeatedCompositeFieldContainer[Polygon]
    def __init__(self, polygons: _Optional[_Iterable[_Union[Polygon, _Mapping]]] = ...) -> None: ...

class Keypoint(_message.Message):
    __slots__ = ("name", "x", "y", "visibility")
    NAME_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    name: str
    x: float
    y: float
    visibility: KeypointVisibility
    def __init__(self, name: _Optional[str] = ..., x: _Optional[float] = ..., y: _Optional[float] = ..., visibility: _Optional[_Union[KeypointVisibility, str]] = ...) -> None: ...

class Keypoints2D(_message.Message):
    __slots__ = ("keypoints", "box")
    KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    keypoints: _containers.RepeatedCompositeFieldContainer[Keypoint]
    box: Box2D
    def __init__(self, keypoints: _Optional[_Iterable[_Union[Keypoint, _Mapping]]] = ..., box: _Optional[_Union[Box2D, _Mapping]] = ...) -> None: ...

class LineSegment2D(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: _common_pb2.Point2D
    end: _common_pb2.Point2D
    def __init__(self, start: _Optional[_Union[_common_pb2.Point2D, _Mapping]] = ..., end: _Optional[_Union[_common_pb2.Point2D, _Mapping]] = ...) -> None: ...

class Classification3D(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TextToken(_message.Message):
    __slots__ = ("index", "token", "visible")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    VISIBLE_FIELD_NUMBER: _ClassVar[int]
    index: int
    token: str
    visible: bool
    def __init__(self, index: _Optional[int] = ..., token: _Optional[str] = ..., visible: _Optional[bool] = ...) -> None: ...

class LabelUpdate(_message.Message):
    __slots__ = ("frame_id", "labels", "update_mask")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    labels: _containers.RepeatedCompositeFieldContainer[Label]
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, frame_id: _Optional[str] = ..., labels: _Optional[_Iterable[_Union[Label, _Mapping]]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...
