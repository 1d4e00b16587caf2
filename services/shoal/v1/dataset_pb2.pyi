import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.v1 import frame_pb2 as _frame_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DistanceMetric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISTANCE_METRIC_UNSPECIFIED: _ClassVar[DistanceMetric]
    DISTANCE_METRIC_COSINE: _ClassVar[DistanceMetric]
    DISTANCE_METRIC_EUCLIDEAN: _ClassVar[DistanceMetric]

class FieldType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIELD_TYPE_UNSPECIFIED: _ClassVar[FieldType]
    FIELD_TYPE_STRING: _ClassVar[FieldType]
    FIELD_TYPE_BOOL: _ClassVar[FieldType]
    FIELD_TYPE_INTEGER: _ClassVar[FieldType]
    FIELD_TYPE_FLOAT: _ClassVar[FieldType]
    FIELD_TYPE_NUMERIC: _ClassVar[FieldType]
    FIELD_TYPE_ARRAY: _ClassVar[FieldType]

class SegmentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEGMENT_STATE_UNSPECIFIED: _ClassVar[SegmentState]
    SEGMENT_STATE_OPEN: _ClassVar[SegmentState]
    SEGMENT_STATE_RESOLVED: _ClassVar[SegmentState]
    SEGMENT_STATE_ARCHIVED: _ClassVar[SegmentState]

class FrameDiffKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FRAME_DIFF_KIND_UNSPECIFIED: _ClassVar[FrameDiffKind]
    FRAME_DIFF_KIND_ADDED: _ClassVar[FrameDiffKind]
    FRAME_DIFF_KIND_MODIFIED: _ClassVar[FrameDiffKind]
    FRAME_DIFF_KIND_DELETED: _ClassVar[FrameDiffKind]
DISTANCE_METRIC_UNSPECIFIED: DistanceMetric
DISTANCE_METRIC_COSINE: DistanceMetric
DISTANCE_METRIC_EUCLIDEAN: DistanceMetric
FIELD_TYPE_UNSPECIFIED: FieldType
FIELD_TYPE_STRING: FieldType
FIELD_TYPE_BOOL: FieldType
FIELD_TYPE_INTEGER: FieldType
FIELD_TYPE_FLOAT: FieldType
FIELD_TYPE_NUMERIC: FieldType
FIELD_TYPE_ARRAY: FieldType
SEGMENT_STATE_UNSPECIFIED: SegmentState
SEGMENT_STATE_OPEN: SegmentState
SEGMENT_STATE_RESOLVED: SegmentState
SEGMENT_STATE_ARCHIVED: SegmentState
FRAME_DIFF_KIND_UNSPECIFIED: FrameDiffKind
FRAME_DIFF_KIND_ADDED: FrameDiffKind
FRAME_DIFF_KIND_MODIFIED: FrameDiffKind
FRAME_DIFF_KIND_DELETED: FrameDiffKind

class MetadataField(_message.Message):
    __slots__ = ("name", "type", "element_type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ELEMENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: FieldType
    element_type: FieldType
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[FieldType, str]] = ..., element_type: _Optional[_Union[FieldType, str]] = ...) -> None: ...

class MetadataSchema(_message.Message):
    __slots__ = ("fields",)
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.RepeatedCompositeFieldContainer[MetadataField]
    def __init__(self, fields: _Optional[_Iterable[_Union[MetadataField, _Mapping]]] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("name", "display_name", "description", "embedding_dimension", "embedding_source", "distance_metric", "metadata_schema", "latest_version", "frame_count", "create_time", "update_time", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIMENSION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_SOURCE_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_METRIC_FIELD_NUMBER: _ClassVar[int]
    METADATA_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    description: str
    embedding_dimension: int
    embedding_source: str
    distance_metric: DistanceMetric
    metadata_schema: MetadataSchema
    latest_version: int
    frame_count: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    etag: str
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., embedding_dimension: _Optional[int] = ..., embedding_source: _Optional[str] = ..., distance_metric: _Optional[_Union[DistanceMetric, str]] = ..., metadata_schema: _Optional[_Union[MetadataSchema, _Mapping]] = ..., latest_version: _Optional[int] = ..., frame_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class DatasetVersion(_message.Message):
    __slots__ = ("name", "version", "commit_time", "uploads", "frame_count", "label_count", "frames_added", "frames_modified", "frames_deleted", "checkpoints", "expired")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COMMIT_TIME_FIELD_NUMBER: _ClassVar[int]
    UPLOADS_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    LABEL_COUNT_FIELD_NUMBER: _ClassVar[int]
    FRAMES_ADDED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_MODIFIED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DELETED_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    commit_time: _timestamp_pb2.Timestamp
    uploads: _containers.RepeatedScalarFieldContainer[str]
    frame_count: int
    label_count: int
    frames_added: int
    frames_modified: int
    frames_deleted: int
    checkpoints: _containers.RepeatedScalarFieldContainer[str]
    expired: bool
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., commit_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uploads: _Optional[_Iterable[str]] = ..., frame_count: _Optional[int] = ..., label_count: _Optional[int] = ..., frames_added: _Optional[int] = ..., frames_modified: _Optional[int] = ..., frames_deleted: _Optional[int] = ..., checkpoints: _Optional[_Iterable[str]] = ..., expired: _Optional[bool] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("name", "version", "description", "create_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    description: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class InferenceSet(_message.Message):
    __slots__ = ("name", "display_name", "model_id", "dataset_version", "frame_count", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    model_id: str
    dataset_version: int
    frame_count: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., model_id: _Optional[str] = ..., dataset_version: _Optional[int] = ..., frame_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SegmentElement(_message.Message):
    __slots__ = ("frame_id", "label_id", "inference_set", "version", "outdated")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_ID_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    OUTDATED_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    label_id: str
    inference_set: str
    version: int
    outdated: bool
    def __init__(self, frame_id: _Optional[str] = ..., label_id: _Optional[str] = ..., inference_set: _Optional[str] = ..., version: _Optional[int] = ..., outdated: _Optional[bool] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("name", "display_name", "version", "frame_ids", "source", "create_time", "state", "elements", "description", "update_time", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    version: int
    frame_ids: _containers.RepeatedScalarFieldContainer[str]
    source: str
    create_time: _timestamp_pb2.Timestamp
    state: SegmentState
    elements: _containers.RepeatedCompositeFieldContainer[SegmentElement]
    description: str
    update_time: _timestamp_pb2.Timestamp
    etag: str
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., version: _Optional[int] = ..., frame_ids: _Optional[_Iterable[str]] = ..., source: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[SegmentState, str]] = ..., elements: _Optional[_Iterable[_Union[SegmentElement, _Mapping]]] = ..., description: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class FrameRevision(_message.Message):
    __slots__ = ("version", "change_type", "frame", "commit_time", "upload")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    COMMIT_TIME_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    version: int
    change_type: _frame_pb2.ChangeType
    frame: _frame_pb2.Frame
    commit_time: _timestamp_pb2.Timestamp
    upload: str
    def __init__(self, version: _Optional[int] = ..., change_type: _Optional[_Union[_frame_pb2.ChangeType, str]] = ..., frame: _Optional[_Union[_frame_pb2.Frame, _Mapping]] = ..., commit_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., upload: _Optional[str] = ...) -> None: ...

class FrameDiff(_message.Message):
    __slots__ = ("frame_id", "kind", "changed_fields", "base", "target")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    kind: FrameDiffKind
    changed_fields: _containers.RepeatedScalarFieldContainer[str]
    base: _frame_pb2.Frame
    target: _frame_pb2.Frame
    def __init__(self, frame_id: _Optional[str] = ..., kind: _Optional[_Union[FrameDiffKind, str]] = ..., changed_fields: _Optional[_Iterable[str]] = ..., base: _Optional[_Union[_frame_pb2.Frame, _Mapping]] = ..., target: _Optional[_Union[_frame_pb2.Frame, _Mapping]] = ...) -> None: ...
