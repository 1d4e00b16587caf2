from shoal.v1 import embedding_pb2 as _embedding_pb2
from shoal.v1 import operation_pb2 as _operation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApproximateMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPROXIMATE_MODE_UNSPECIFIED: _ClassVar[ApproximateMode]
    APPROXIMATE_MODE_ALWAYS: _ClassVar[ApproximateMode]
    APPROXIMATE_MODE_NEVER: _ClassVar[ApproximateMode]

class ProjectionMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROJECTION_METHOD_UNSPECIFIED: _ClassVar[ProjectionMethod]
    PROJECTION_METHOD_PCA: _ClassVar[ProjectionMethod]
    PROJECTION_METHOD_UMAP: _ClassVar[ProjectionMethod]
APPROXIMATE_MODE_UNSPECIFIED: ApproximateMode
APPROXIMATE_MODE_ALWAYS: ApproximateMode
APPROXIMATE_MODE_NEVER: ApproximateMode
PROJECTION_METHOD_UNSPECIFIED: ProjectionMethod
PROJECTION_METHOD_PCA: ProjectionMethod
PROJECTION_METHOD_UMAP: ProjectionMethod

class GetBackendRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Backend(_message.Message):
    __slots__ = ("device", "device_name", "device_memory_bytes", "library_version")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_VERSION_FIELD_NUMBER: _ClassVar[int]
    device: _embedding_pb2.ComputeDevice
    device_name: str
    device_memory_bytes: int
    library_version: str
    def __init__(self, device: _Optional[_Union[_embedding_pb2.ComputeDevice, str]] = ..., device_name: _Optional[str] = ..., device_memory_bytes: _Optional[int] = ..., library_version: _Optional[str] = ...) -> None: ...

class BuildIndexRequest(_message.Message):
    __slots__ = ("parent", "kind", "precision", "request_id", "approximate")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    APPROXIMATE_FIELD_NUMBER: _ClassVar[int]
    parent: str
    kind: _embedding_pb2.EmbeddingKind
    precision: _embedding_pb2.IndexPrecision
    request_id: str
    approximate: ApproximateMode
    def __init__(self, parent: _Optional[str] = ..., kind: _Optional[_Union[_embedding_pb2.EmbeddingKind, str]] = ..., precision: _Optional[_Union[_embedding_pb2.IndexPrecision, str]] = ..., request_id: _Optional[str] = ..., approximate: _Optional[_Union[ApproximateMode, str]] = ...) -> None: ...

class GetIndexRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class SearchQuery(_message.Message):
    __slots__ = ("vector", "frame_id", "label_id")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_ID_FIELD_NUMBER: _ClassVar[int]
    vector: QueryVector
    frame_id: str
    label_id: str
    def __init__(self, vector: _Optional[_Union[QueryVector, _Mapping]] = ..., frame_id: _Optional[str] = ..., label_id: _Optional[str] = ...) -> None: ...

class QueryVector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("index", "queries", "k", "filter", "classes", "exact")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    index: str
    queries: _containers.RepeatedCompositeFieldContainer[SearchQuery]
    k: int
    filter: str
    classes: _containers.RepeatedScalarFieldContainer[str]
    exact: bool
    def __init__(self, index: _Optional[str] = ..., queries: _Optional[_Iterable[_Union[SearchQuery, _Mapping]]] = ..., k: _Optional[int] = ..., filter: _Optional[str] = ..., classes: _Optional[_Iterable[str]] = ..., exact: _Optional[bool] = ...) -> None: ...

class SearchResult(_message.Message):
    __slots__ = ("neighbors",)
    NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    neighbors: _containers.RepeatedCompositeFieldContainer[_embedding_pb2.Neighbor]
    def __init__(self, neighbors: _Optional[_Iterable[_Union[_embedding_pb2.Neighbor, _Mapping]]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("results", "engine")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SearchResult]
    engine: str
    def __init__(self, results: _Optional[_Iterable[_Union[SearchResult, _Mapping]]] = ..., engine: _Optional[str] = ...) -> None: ...

class SelectSamplesRequest(_message.Message):
    __slots__ = ("parent", "criteria", "count", "proportion", "filter", "segment_id", "seed", "request_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    CRITERIA_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    PROPORTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    criteria: _containers.RepeatedCompositeFieldContainer[_embedding_pb2.SelectionCriterion]
    count: int
    proportion: float
    filter: str
    segment_id: str
    seed: int
    request_id: str
    def __init__(self, parent: _Optional[str] = ..., criteria: _Optional[_Iterable[_Union[_embedding_pb2.SelectionCriterion, _Mapping]]] = ..., count: _Optional[int] = ..., proportion: _Optional[float] = ..., filter: _Optional[str] = ..., segment_id: _Optional[str] = ..., seed: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class SelectSamplesResponse(_message.Message):
    __slots__ = ("segment", "frame_ids", "scores")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    segment: str
    frame_ids: _containers.RepeatedScalarFieldContainer[str]
    scores: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, segment: _Optional[str] = ..., frame_ids: _Optional[_Iterable[str]] = ..., scores: _Optional[_Iterable[float]] = ...) -> None: ...

class FindDuplicatesRequest(_message.Message):
    __slots__ = ("index", "threshold", "page_size", "page_token")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    index: str
    threshold: float
    page_size: int
    page_token: str
    def __init__(self, index: _Optional[str] = ..., threshold: _Optional[float] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class DuplicateGroup(_message.Message):
    __slots__ = ("ids", "max_distance")
    IDS_FIELD_NUMBER: _ClassVar[int]
    MAX_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    max_distance: float
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., max_distance: _Optional[float] = ...) -> None: ...

class FindDuplicatesResponse(_message.Message):
    __slots__ = ("groups", "next_page_token")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[DuplicateGroup]
    next_page_token: str
    def __init__(self, groups: _Optional[_Iterable[_Union[DuplicateGroup, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ComputeUniquenessRequest(_message.Message):
    __slots__ = ("index", "page_size", "page_token")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    index: str
    page_size: int
    page_token: str
    def __init__(self, index: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class FrameScore(_message.Message):
    __slots__ = ("id", "score")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class ComputeUniquenessResponse(_message.Message):
    __slots__ = ("scores", "next_page_token")
    SCORES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[FrameScore]
    next_page_token: str
    def __init__(self, scores: _Optional[_Iterable[_Union[FrameScore, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ProjectEmbeddingsRequest(_message.Message):
    __slots__ = ("index", "method", "page_size", "page_token")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    index: str
    method: ProjectionMethod
    page_size: int
    page_token: str
    def __init__(self, index: _Optional[str] = ..., method: _Optional[_Union[ProjectionMethod, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ProjectedPoint(_message.Message):
    __slots__ = ("frame_id", "label_id", "x", "y")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_ID_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    label_id: str
    x: float
    y: float
    def __init__(self, frame_id: _Optional[str] = ..., label_id: _Optional[str] = ..., x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class ProjectEmbeddingsResponse(_message.Message):
    __slots__ = ("points", "next_page_token")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[ProjectedPoint]
    next_page_token: str
    def __init__(self, points: _Optional[_Iterable[_Union[ProjectedPoint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
