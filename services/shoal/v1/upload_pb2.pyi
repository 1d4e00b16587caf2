import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UploadState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPLOAD_STATE_UNSPECIFIED: _ClassVar[UploadState]
    UPLOAD_STATE_RECEIVING: _ClassVar[UploadState]
    UPLOAD_STATE_PROCESSING: _ClassVar[UploadState]
    UPLOAD_STATE_COMMITTED: _ClassVar[UploadState]
    UPLOAD_STATE_PARTIALLY_FAILED: _ClassVar[UploadState]
    UPLOAD_STATE_FAILED: _ClassVar[UploadState]

class FrameErrorStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FRAME_ERROR_STAGE_UNSPECIFIED: _ClassVar[FrameErrorStage]
    FRAME_ERROR_STAGE_VALIDATION: _ClassVar[FrameErrorStage]
    FRAME_ERROR_STAGE_APPLY: _ClassVar[FrameErrorStage]
UPLOAD_STATE_UNSPECIFIED: UploadState
UPLOAD_STATE_RECEIVING: UploadState
UPLOAD_STATE_PROCESSING: UploadState
UPLOAD_STATE_COMMITTED: UploadState
UPLOAD_STATE_PARTIALLY_FAILED: UploadState
UPLOAD_STATE_FAILED: UploadState
FRAME_ERROR_STAGE_UNSPECIFIED: FrameErrorStage
FRAME_ERROR_STAGE_VALIDATION: FrameErrorStage
FRAME_ERROR_STAGE_APPLY: FrameErrorStage

class FrameError(_message.Message):
    __slots__ = ("frame_id", "label_id", "field", "reason", "description", "batch_seq", "stage")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_ID_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    BATCH_SEQ_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    label_id: str
    field: str
    reason: str
    description: str
    batch_seq: int
    stage: FrameErrorStage
    def __init__(self, frame_id: _Optional[str] = ..., label_id: _Optional[str] = ..., field: _Optional[str] = ..., reason: _Optional[str] = ..., description: _Optional[str] = ..., batch_seq: _Optional[int] = ..., stage: _Optional[_Union[FrameErrorStage, str]] = ...) -> None: ...

class Upload(_message.Message):
    __slots__ = ("name", "target", "state", "batches_received", "batches_committed", "frames_received", "frames_accepted", "frames_rejected", "frames_committed", "frames_failed", "versions", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BATCHES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    BATCHES_COMMITTED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_REJECTED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_COMMITTED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FAILED_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    target: str
    state: UploadState
    batches_received: int
    batches_committed: int
    frames_received: int
    frames_accepted: int
    frames_rejected: int
    frames_committed: int
    frames_failed: int
    versions: _containers.RepeatedScalarFieldContainer[int]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., target: _Optional[str] = ..., state: _Optional[_Union[UploadState, str]] = ..., batches_received: _Optional[int] = ..., batches_committed: _Optional[int] = ..., frames_received: _Optional[int] = ..., frames_accepted: _Optional[int] = ..., frames_rejected: _Optional[int] = ..., frames_committed: _Optional[int] = ..., frames_failed: _Optional[int] = ..., versions: _Optional[_Iterable[int]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
