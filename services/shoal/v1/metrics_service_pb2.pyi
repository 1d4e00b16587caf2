from shoal.v1 import evaluation_pb2 as _evaluation_pb2
from shoal.v1 import operation_pb2 as _operation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StartKeypointCheckRequest(_message.Message):
    __slots__ = ("dataset_version", "classes", "rules")
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    dataset_version: str
    classes: _containers.RepeatedScalarFieldContainer[str]
    rules: _containers.RepeatedScalarFieldContainer[_evaluation_pb2.LabelErrorReason]
    def __init__(self, dataset_version: _Optional[str] = ..., classes: _Optional[_Iterable[str]] = ..., rules: _Optional[_Iterable[_Union[_evaluation_pb2.LabelErrorReason, str]]] = ...) -> None: ...

class CheckKeypointsRequest(_message.Message):
    __slots__ = ("dataset_version", "classes", "page_size", "page_token", "rules")
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    dataset_version: str
    classes: _containers.RepeatedScalarFieldContainer[str]
    page_size: int
    page_token: str
    rules: _containers.RepeatedScalarFieldContainer[_evaluation_pb2.LabelErrorReason]
    def __init__(self, dataset_version: _Optional[str] = ..., classes: _Optional[_Iterable[str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., rules: _Optional[_Iterable[_Union[_evaluation_pb2.LabelErrorReason, str]]] = ...) -> None: ...

class CheckKeypointsResponse(_message.Message):
    __slots__ = ("candidates", "next_page_token", "dataset_version", "labels_checked", "total_candidates")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    LABELS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[_evaluation_pb2.LabelErrorCandidate]
    next_page_token: str
    dataset_version: int
    labels_checked: int
    total_candidates: int
    def __init__(self, candidates: _Optional[_Iterable[_Union[_evaluation_pb2.LabelErrorCandidate, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., dataset_version: _Optional[int] = ..., labels_checked: _Optional[int] = ..., total_candidates: _Optional[int] = ...) -> None: ...

class CreateEvaluationRequest(_message.Message):
    __slots__ = ("parent", "dataset_version", "params", "request_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    dataset_version: str
    params: _evaluation_pb2.EvaluationParams
    request_id: str
    def __init__(self, parent: _Optional[str] = ..., dataset_version: _Optional[str] = ..., params: _Optional[_Union[_evaluation_pb2.EvaluationParams, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetEvaluationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListEvaluationsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEvaluationsResponse(_message.Message):
    __slots__ = ("evaluations", "next_page_token")
    EVALUATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    evaluations: _containers.RepeatedCompositeFieldContainer[_evaluation_pb2.Evaluation]
    next_page_token: str
    def __init__(self, evaluations: _Optional[_Iterable[_Union[_evaluation_pb2.Evaluation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListFrameMatchesRequest(_message.Message):
    __slots__ = ("parent", "kind", "page_size", "page_token", "cell")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CELL_FIELD_NUMBER: _ClassVar[int]
    parent: str
    kind: _evaluation_pb2.MatchKind
    page_size: int
    page_token: str
    cell: ConfusionCell
    def __init__(self, parent: _Optional[str] = ..., kind: _Optional[_Union[_evaluation_pb2.MatchKind, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., cell: _Optional[_Union[ConfusionCell, _Mapping]] = ...) -> None: ...

class ConfusionCell(_message.Message):
    __slots__ = ("row", "column")
    ROW_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    row: int
    column: int
    def __init__(self, row: _Optional[int] = ..., column: _Optional[int] = ...) -> None: ...

class ListFrameMatchesResponse(_message.Message):
    __slots__ = ("frames", "next_page_token")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[_evaluation_pb2.FrameMatches]
    next_page_token: str
    def __init__(self, frames: _Optional[_Iterable[_Union[_evaluation_pb2.FrameMatches, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListLabelErrorCandidatesRequest(_message.Message):
    __slots__ = ("parent", "reasons", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    reasons: _containers.RepeatedScalarFieldContainer[_evaluation_pb2.LabelErrorReason]
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., reasons: _Optional[_Iterable[_Union[_evaluation_pb2.LabelErrorReason, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListLabelErrorCandidatesResponse(_message.Message):
    __slots__ = ("candidates", "next_page_token")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[_evaluation_pb2.LabelErrorCandidate]
    next_page_token: str
    def __init__(self, candidates: _Optional[_Iterable[_Union[_evaluation_pb2.LabelErrorCandidate, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
