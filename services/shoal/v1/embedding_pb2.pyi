import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.v1 import dataset_pb2 as _dataset_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EmbeddingKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EMBEDDING_KIND_UNSPECIFIED: _ClassVar[EmbeddingKind]
    EMBEDDING_KIND_FRAME: _ClassVar[EmbeddingKind]
    EMBEDDING_KIND_CROP: _ClassVar[EmbeddingKind]

class IndexPrecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEX_PRECISION_UNSPECIFIED: _ClassVar[IndexPrecision]
    INDEX_PRECISION_FLOAT32: _ClassVar[IndexPrecision]
    INDEX_PRECISION_FLOAT16: _ClassVar[IndexPrecision]

class ComputeDevice(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPUTE_DEVICE_UNSPECIFIED: _ClassVar[ComputeDevice]
    COMPUTE_DEVICE_CPU: _ClassVar[ComputeDevice]
    COMPUTE_DEVICE_GPU: _ClassVar[ComputeDevice]

class IndexState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEX_STATE_UNSPECIFIED: _ClassVar[IndexState]
    INDEX_STATE_BUILDING: _ClassVar[IndexState]
    INDEX_STATE_READY: _ClassVar[IndexState]
    INDEX_STATE_FAILED: _ClassVar[IndexState]

class SelectionInputType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SELECTION_INPUT_TYPE_UNSPECIFIED: _ClassVar[SelectionInputType]
    SELECTION_INPUT_TYPE_EMBEDDINGS: _ClassVar[SelectionInputType]
    SELECTION_INPUT_TYPE_SCORES: _ClassVar[SelectionInputType]
    SELECTION_INPUT_TYPE_METADATA: _ClassVar[SelectionInputType]
    SELECTION_INPUT_TYPE_PREDICTIONS: _ClassVar[SelectionInputType]
    SELECTION_INPUT_TYPE_RANDOM: _ClassVar[SelectionInputType]

class SelectionStrategyType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SELECTION_STRATEGY_TYPE_UNSPECIFIED: _ClassVar[SelectionStrategyType]
    SELECTION_STRATEGY_TYPE_DIVERSITY: _ClassVar[SelectionStrategyType]
    SELECTION_STRATEGY_TYPE_WEIGHTS: _ClassVar[SelectionStrategyType]
    SELECTION_STRATEGY_TYPE_THRESHOLD: _ClassVar[SelectionStrategyType]
    SELECTION_STRATEGY_TYPE_BALANCE: _ClassVar[SelectionStrategyType]
    SELECTION_STRATEGY_TYPE_SIMILARITY: _ClassVar[SelectionStrategyType]
    SELECTION_STRATEGY_TYPE_TYPICALITY: _ClassVar[SelectionStrategyType]
    SELECTION_STRATEGY_TYPE_RANDOM: _ClassVar[SelectionStrategyType]

class ThresholdOperation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    THRESHOLD_OPERATION_UNSPECIFIED: _ClassVar[ThresholdOperation]
    THRESHOLD_OPERATION_GREATER: _ClassVar[ThresholdOperation]
    THRESHOLD_OPERATION_GREATER_EQUAL: _ClassVar[ThresholdOperation]
    THRESHOLD_OPERATION_SMALLER: _ClassVar[ThresholdOperation]
    THRESHOLD_OPERATION_SMALLER_EQUAL: _ClassVar[ThresholdOperation]
EMBEDDING_KIND_UNSPECIFIED: EmbeddingKind
EMBEDDING_KIND_FRAME: EmbeddingKind
EMBEDDING_KIND_CROP: EmbeddingKind
INDEX_PRECISION_UNSPECIFIED: IndexPrecision
INDEX_PRECISION_FLOAT32: IndexPrecision
INDEX_PRECISION_FLOAT16: IndexPrecision
COMPUTE_DEVICE_UNSPECIFIED: ComputeDevice
COMPUTE_DEVICE_CPU: ComputeDevice
COMPUTE_DEVICE_GPU: ComputeDevice
INDEX_STATE_UNSPECIFIED: IndexState
INDEX_STATE_BUILDING: IndexState
INDEX_STATE_READY: IndexState
INDEX_STATE_FAILED: IndexState
SELECTION_INPUT_TYPE_UNSPECIFIED: SelectionInputType
SELECTION_INPUT_TYPE_EMBEDDINGS: SelectionInputType
SELECTION_INPUT_TYPE_SCORES: SelectionInputType
SELECTION_INPUT_TYPE_METADATA: SelectionInputType
SELECTION_INPUT_TYPE_PREDICTIONS: SelectionInputType
SELECTION_INPUT_TYPE_RANDOM: SelectionInputType
SELECTION_STRATEGY_TYPE_UNSPECIFIED: SelectionStrategyType
SELECTION_STRATEGY_TYPE_DIVERSITY: SelectionStrategyType
SELECTION_STRATEGY_TYPE_WEIGHTS: SelectionStrategyType
SELECTION_STRATEGY_TYPE_THRESHOLD: SelectionStrategyType
SELECTION_STRATEGY_TYPE_BALANCE: SelectionStrategyType
SELECTION_STRATEGY_TYPE_SIMILARITY: SelectionStrategyType
SELECTION_STRATEGY_TYPE_TYPICALITY: SelectionStrategyType
SELECTION_STRATEGY_TYPE_RANDOM: SelectionStrategyType
THRESHOLD_OPERATION_UNSPECIFIED: ThresholdOperation
THRESHOLD_OPERATION_GREATER: ThresholdOperation
THRESHOLD_OPERATION_GREATER_EQUAL: ThresholdOperation
THRESHOLD_OPERATION_SMALLER: ThresholdOperation
THRESHOLD_OPERATION_SMALLER_EQUAL: ThresholdOperation

class EmbeddingIndex(_message.Message):
    __slots__ = ("name", "version", "kind", "count", "dimension", "metric", "precision", "device", "memory_bytes", "state", "create_time", "approximate")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    APPROXIMATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    kind: EmbeddingKind
    count: int
    dimension: int
    metric: _dataset_pb2.DistanceMetric
    precision: IndexPrecision
    device: ComputeDevice
    memory_bytes: int
    state: IndexState
    create_time: _timestamp_pb2.Timestamp
    approximate: ApproximateIndex
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., kind: _Optional[_Union[EmbeddingKind, str]] = ..., count: _Optional[int] = ..., dimension: _Optional[int] = ..., metric: _Optional[_Union[_dataset_pb2.DistanceMetric, str]] = ..., precision: _Optional[_Union[IndexPrecision, str]] = ..., device: _Optional[_Union[ComputeDevice, str]] = ..., memory_bytes: _Optional[int] = ..., state: _Optional[_Union[IndexState, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., approximate: _Optional[_Union[ApproximateIndex, _Mapping]] = ...) -> None: ...

class ApproximateIndex(_message.Message):
    __slots__ = ("engine", "lists", "probes", "recall_at_10", "size_bytes", "create_time")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    LISTS_FIELD_NUMBER: _ClassVar[int]
    PROBES_FIELD_NUMBER: _ClassVar[int]
    RECALL_AT_10_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    engine: str
    lists: int
    probes: int
    recall_at_10: float
    size_bytes: int
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, engine: _Optional[str] = ..., lists: _Optional[int] = ..., probes: _Optional[int] = ..., recall_at_10: _Optional[float] = ..., size_bytes: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Neighbor(_message.Message):
    __slots__ = ("frame_id", "label_id", "distance", "score")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_ID_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    label_id: str
    distance: float
    score: float
    def __init__(self, frame_id: _Optional[str] = ..., label_id: _Optional[str] = ..., distance: _Optional[float] = ..., score: _Optional[float] = ...) -> None: ...

class SelectionInput(_message.Message):
    __slots__ = ("type", "key", "inference_set")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SET_FIELD_NUMBER: _ClassVar[int]
    type: SelectionInputType
    key: str
    inference_set: str
    def __init__(self, type: _Optional[_Union[SelectionInputType, str]] = ..., key: _Optional[str] = ..., inference_set: _Optional[str] = ...) -> None: ...

class SelectionCriterion(_message.Message):
    __slots__ = ("input", "strategy", "strength", "minimum_distance", "threshold", "operation", "target", "query_frame_ids", "neighbors")
    class TargetEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    INPUT_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    QUERY_FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    input: SelectionInput
    strategy: SelectionStrategyType
    strength: float
    minimum_distance: float
    threshold: float
    operation: ThresholdOperation
    target: _containers.ScalarMap[str, float]
    query_frame_ids: _containers.RepeatedScalarFieldContainer[str]
    neighbors: int
    def __init__(self, input: _Optional[_Union[SelectionInput, _Mapping]] = ..., strategy: _Optional[_Union[SelectionStrategyType, str]] = ..., strength: _Optional[float] = ..., minimum_distance: _Optional[float] = ..., threshold: _Optional[float] = ..., operation: _Optional[_Union[ThresholdOperation, str]] = ..., target: _Optional[_Mapping[str, float]] = ..., query_frame_ids: _Optional[_Iterable[str]] = ..., neighbors: _Optional[int] = ...) -> None: ...
