import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApiKeyRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    API_KEY_ROLE_UNSPECIFIED: _ClassVar[ApiKeyRole]
    API_KEY_ROLE_READER: _ClassVar[ApiKeyRole]
    API_KEY_ROLE_WRITER: _ClassVar[ApiKeyRole]
    API_KEY_ROLE_ADMIN: _ClassVar[ApiKeyRole]
API_KEY_ROLE_UNSPECIFIED: ApiKeyRole
API_KEY_ROLE_READER: ApiKeyRole
API_KEY_ROLE_WRITER: ApiKeyRole
API_KEY_ROLE_ADMIN: ApiKeyRole

class KeypointDefinition(_message.Message):
    __slots__ = ("name", "color", "sigma")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    SIGMA_FIELD_NUMBER: _ClassVar[int]
    name: str
    color: _common_pb2.Color
    sigma: float
    def __init__(self, name: _Optional[str] = ..., color: _Optional[_Union[_common_pb2.Color, _Mapping]] = ..., sigma: _Optional[float] = ...) -> None: ...

class SkeletonEdge(_message.Message):
    __slots__ = ("from_keypoint", "to_keypoint", "color")
    FROM_KEYPOINT_FIELD_NUMBER: _ClassVar[int]
    TO_KEYPOINT_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    from_keypoint: str
    to_keypoint: str
    color: _common_pb2.Color
    def __init__(self, from_keypoint: _Optional[str] = ..., to_keypoint: _Optional[str] = ..., color: _Optional[_Union[_common_pb2.Color, _Mapping]] = ...) -> None: ...

class ClassMapEntry(_message.Message):
    __slots__ = ("class_id", "name", "color", "category", "ignore_in_eval", "keypoints", "skeleton")
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    IGNORE_IN_EVAL_FIELD_NUMBER: _ClassVar[int]
    KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    SKELETON_FIELD_NUMBER: _ClassVar[int]
    class_id: int
    name: str
    color: _common_pb2.Color
    category: str
    ignore_in_eval: bool
    keypoints: _containers.RepeatedCompositeFieldContainer[KeypointDefinition]
    skeleton: _containers.RepeatedCompositeFieldContainer[SkeletonEdge]
    def __init__(self, class_id: _Optional[int] = ..., name: _Optional[str] = ..., color: _Optional[_Union[_common_pb2.Color, _Mapping]] = ..., category: _Optional[str] = ..., ignore_in_eval: _Optional[bool] = ..., keypoints: _Optional[_Iterable[_Union[KeypointDefinition, _Mapping]]] = ..., skeleton: _Optional[_Iterable[_Union[SkeletonEdge, _Mapping]]] = ...) -> None: ...

class ClassMap(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[ClassMapEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[ClassMapEntry, _Mapping]]] = ...) -> None: ...

class Project(_message.Message):
    __slots__ = ("name", "display_name", "description", "class_map", "create_time", "update_time", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CLASS_MAP_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    description: str
    class_map: ClassMap
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    etag: str
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., class_map: _Optional[_Union[ClassMap, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class ApiKey(_message.Message):
    __slots__ = ("name", "display_name", "projects", "role", "key_prefix", "create_time", "expire_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    KEY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    projects: _containers.RepeatedScalarFieldContainer[str]
    role: ApiKeyRole
    key_prefix: str
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., projects: _Optional[_Iterable[str]] = ..., role: _Optional[_Union[ApiKeyRole, str]] = ..., key_prefix: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
