from shoal.v1 import frame_pb2 as _frame_pb2
from shoal.v1 import label_pb2 as _label_pb2
from shoal.v1 import upload_pb2 as _upload_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UploadStart(_message.Message):
    __slots__ = ("target", "upload_id")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    target: str
    upload_id: str
    def __init__(self, target: _Optional[str] = ..., upload_id: _Optional[str] = ...) -> None: ...

class FrameBatch(_message.Message):
    __slots__ = ("seq", "frames", "label_updates", "inference_frames")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    LABEL_UPDATES_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_FRAMES_FIELD_NUMBER: _ClassVar[int]
    seq: int
    frames: _containers.RepeatedCompositeFieldContainer[_frame_pb2.Frame]
    label_updates: _containers.RepeatedCompositeFieldContainer[_label_pb2.LabelUpdate]
    inference_frames: _containers.RepeatedCompositeFieldContainer[_frame_pb2.InferenceFrame]
    def __init__(self, seq: _Optional[int] = ..., frames: _Optional[_Iterable[_Union[_frame_pb2.Frame, _Mapping]]] = ..., label_updates: _Optional[_Iterable[_Union[_label_pb2.LabelUpdate, _Mapping]]] = ..., inference_frames: _Optional[_Iterable[_Union[_frame_pb2.InferenceFrame, _Mapping]]] = ...) -> None: ...

class UploadFramesRequest(_message.Message):
    __slots__ = ("start", "batch")
    START_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    start: UploadStart
    batch: FrameBatch
    def __init__(self, start: _Optional[_Union[UploadStart, _Mapping]] = ..., batch: _Optional[_Union[FrameBatch, _Mapping]] = ...) -> None: ...

class BatchAck(_message.Message):
    __slots__ = ("seq", "accepted", "rejected", "duplicate")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    accepted: int
    rejected: _containers.RepeatedCompositeFieldContainer[_upload_pb2.FrameError]
    duplicate: bool
    def __init__(self, seq: _Optional[int] = ..., accepted: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[_upload_pb2.FrameError, _Mapping]]] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class UploadFramesResponse(_message.Message):
    __slots__ = ("upload", "ack", "summary")
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    upload: _upload_pb2.Upload
    ack: BatchAck
    summary: _upload_pb2.Upload
    def __init__(self, upload: _Optional[_Union[_upload_pb2.Upload, _Mapping]] = ..., ack: _Optional[_Union[BatchAck, _Mapping]] = ..., summary: _Optional[_Union[_upload_pb2.Upload, _Mapping]] = ...) -> None: ...

class GetUploadRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListUploadsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListUploadsResponse(_message.Message):
    __slots__ = ("uploads", "next_page_token")
    UPLOADS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    uploads: _containers.RepeatedCompositeFieldContainer[_upload_pb2.Upload]
    next_page_token: str
    def __init__(self, uploads: _Optional[_Iterable[_Union[_upload_pb2.Upload, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListUploadErrorsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListUploadErrorsResponse(_message.Message):
    __slots__ = ("errors", "next_page_token")
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    errors: _containers.RepeatedCompositeFieldContainer[_upload_pb2.FrameError]
    next_page_token: str
    def __init__(self, errors: _Optional[_Iterable[_Union[_upload_pb2.FrameError, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
