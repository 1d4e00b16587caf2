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

class AssetKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ASSET_KIND_UNSPECIFIED: _ClassVar[AssetKind]
    ASSET_KIND_IMAGE: _ClassVar[AssetKind]
    ASSET_KIND_MASK: _ClassVar[AssetKind]
    ASSET_KIND_POINT_CLOUD_PCD: _ClassVar[AssetKind]
    ASSET_KIND_POINT_CLOUD_BIN: _ClassVar[AssetKind]
    ASSET_KIND_AUDIO: _ClassVar[AssetKind]
    ASSET_KIND_VIDEO: _ClassVar[AssetKind]
    ASSET_KIND_MESH: _ClassVar[AssetKind]
    ASSET_KIND_OTHER: _ClassVar[AssetKind]
ASSET_KIND_UNSPECIFIED: AssetKind
ASSET_KIND_IMAGE: AssetKind
ASSET_KIND_MASK: AssetKind
ASSET_KIND_POINT_CLOUD_PCD: AssetKind
ASSET_KIND_POINT_CLOUD_BIN: AssetKind
ASSET_KIND_AUDIO: AssetKind
ASSET_KIND_VIDEO: AssetKind
ASSET_KIND_MESH: AssetKind
ASSET_KIND_OTHER: AssetKind

class ImageInfo(_message.Message):
    __slots__ = ("format", "width", "height", "channels")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    format: str
    width: int
    height: int
    channels: int
    def __init__(self, format: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., channels: _Optional[int] = ...) -> None: ...

class MaskInfo(_message.Message):
    __slots__ = ("width", "height", "class_ids", "unknown_class_ids")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    class_ids: _containers.RepeatedScalarFieldContainer[int]
    unknown_class_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., class_ids: _Optional[_Iterable[int]] = ..., unknown_class_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class PointCloudInfo(_message.Message):
    __slots__ = ("encoding", "point_count", "fields", "min", "max", "warnings")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    POINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    encoding: str
    point_count: int
    fields: _containers.RepeatedScalarFieldContainer[str]
    min: _common_pb2.Vector3
    max: _common_pb2.Vector3
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, encoding: _Optional[str] = ..., point_count: _Optional[int] = ..., fields: _Optional[_Iterable[str]] = ..., min: _Optional[_Union[_common_pb2.Vector3, _Mapping]] = ..., max: _Optional[_Union[_common_pb2.Vector3, _Mapping]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class AudioInfo(_message.Message):
    __slots__ = ("format", "duration_seconds", "sample_rate_hz", "channels")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    format: str
    duration_seconds: float
    sample_rate_hz: int
    channels: int
    def __init__(self, format: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., sample_rate_hz: _Optional[int] = ..., channels: _Optional[int] = ...) -> None: ...

class Asset(_message.Message):
    __slots__ = ("name", "sha256", "size_bytes", "content_type", "kind", "filename", "url", "preview_url", "create_time", "image", "mask", "point_cloud", "audio")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_URL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    POINT_CLOUD_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    name: str
    sha256: str
    size_bytes: int
    content_type: str
    kind: AssetKind
    filename: str
    url: str
    preview_url: str
    create_time: _timestamp_pb2.Timestamp
    image: ImageInfo
    mask: MaskInfo
    point_cloud: PointCloudInfo
    audio: AudioInfo
    def __init__(self, name: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., content_type: _Optional[str] = ..., kind: _Optional[_Union[AssetKind, str]] = ..., filename: _Optional[str] = ..., url: _Optional[str] = ..., preview_url: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., image: _Optional[_Union[ImageInfo, _Mapping]] = ..., mask: _Optional[_Union[MaskInfo, _Mapping]] = ..., point_cloud: _Optional[_Union[PointCloudInfo, _Mapping]] = ..., audio: _Optional[_Union[AudioInfo, _Mapping]] = ...) -> None: ...
