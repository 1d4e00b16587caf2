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

class EvaluationTask(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVALUATION_TASK_UNSPECIFIED: _ClassVar[EvaluationTask]
    EVALUATION_TASK_CLASSIFICATION_2D: _ClassVar[EvaluationTask]
    EVALUATION_TASK_DETECTION_2D: _ClassVar[EvaluationTask]
    EVALUATION_TASK_INSTANCE_SEGMENTATION_2D: _ClassVar[EvaluationTask]
    EVALUATION_TASK_SEMANTIC_SEGMENTATION_2D: _ClassVar[EvaluationTask]
    EVALUATION_TASK_KEYPOINTS_2D: _ClassVar[EvaluationTask]
    EVALUATION_TASK_CUBOID_3D: _ClassVar[EvaluationTask]

class EvaluationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVALUATION_STATE_UNSPECIFIED: _ClassVar[EvaluationState]
    EVALUATION_STATE_RUNNING: _ClassVar[EvaluationState]
    EVALUATION_STATE_SUCCEEDED: _ClassVar[EvaluationState]
    EVALUATION_STATE_FAILED: _ClassVar[EvaluationState]

class MatchKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MATCH_KIND_UNSPECIFIED: _ClassVar[MatchKind]
    MATCH_KIND_TRUE_POSITIVE: _ClassVar[MatchKind]
    MATCH_KIND_FALSE_POSITIVE: _ClassVar[MatchKind]
    MATCH_KIND_FALSE_NEGATIVE: _ClassVar[MatchKind]
    MATCH_KIND_CLASS_MISMATCH: _ClassVar[MatchKind]

class LabelErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LABEL_ERROR_REASON_UNSPECIFIED: _ClassVar[LabelErrorReason]
    LABEL_ERROR_REASON_MISSING_LABEL: _ClassVar[LabelErrorReason]
    LABEL_ERROR_REASON_WRONG_CLASS: _ClassVar[LabelErrorReason]
    LABEL_ERROR_REASON_LOOSE_BOX: _ClassVar[LabelErrorReason]
    LABEL_ERROR_REASON_UNMATCHED_GROUND_TRUTH: _ClassVar[LabelErrorReason]
    LABEL_ERROR_REASON_SWAPPED_KEYPOINTS: _ClassVar[LabelErrorReason]
    LABEL_ERROR_REASON_KEYPOINT_OUTSIDE_IMAGE: _ClassVar[LabelErrorReason]
    LABEL_ERROR_REASON_KEYPOINT_OUTSIDE_BOX: _ClassVar[LabelErrorReason]
    LABEL_ERROR_REASON_MISSING_KEYPOINTS: _ClassVar[LabelErrorReason]
    LABEL_ERROR_REASON_BONE_LENGTH_OUTLIER: _ClassVar[LabelErrorReason]
    LABEL_ERROR_REASON_DUPLICATE_KEYPOINTS: _ClassVar[LabelErrorReason]
EVALUATION_TASK_UNSPECIFIED: EvaluationTask
EVALUATION_TASK_CLASSIFICATION_2D: EvaluationTask
EVALUATION_TASK_DETECTION_2D: EvaluationTask
EVALUATION_TASK_INSTANCE_SEGMENTATION_2D: EvaluationTask
EVALUATION_TASK_SEMANTIC_SEGMENTATION_2D: EvaluationTask
EVALUATION_TASK_KEYPOINTS_2D: EvaluationTask
EVALUATION_TASK_CUBOID_3D: EvaluationTask
EVALUATION_STATE_UNSPECIFIED: EvaluationState
EVALUATION_STATE_RUNNING: EvaluationState
EVALUATION_STATE_SUCCEEDED: EvaluationState
EVALUATION_STATE_FAILED: EvaluationState
MATCH_KIND_UNSPECIFIED: MatchKind
MATCH_KIND_TRUE_POSITIVE: MatchKind
MATCH_KIND_FALSE_POSITIVE: MatchKind
MATCH_KIND_FALSE_NEGATIVE: MatchKind
MATCH_KIND_CLASS_MISMATCH: MatchKind
LABEL_ERROR_REASON_UNSPECIFIED: LabelErrorReason
LABEL_ERROR_REASON_MISSING_LABEL: LabelErrorReason
LABEL_ERROR_REASON_WRONG_CLASS: LabelErrorReason
LABEL_ERROR_REASON_LOOSE_BOX: LabelErrorReason
LABEL_ERROR_REASON_UNMATCHED_GROUND_TRUTH: LabelErrorReason
LABEL_ERROR_REASON_SWAPPED_KEYPOINTS: LabelErrorReason
LABEL_ERROR_REASON_KEYPOINT_OUTSIDE_IMAGE: LabelErrorReason
LABEL_ERROR_REASON_KEYPOINT_OUTSIDE_BOX: LabelErrorReason
LABEL_ERROR_REASON_MISSING_KEYPOINTS: LabelErrorReason
LABEL_ERROR_REASON_BONE_LENGTH_OUTLIER: LabelErrorReason
LABEL_ERROR_REASON_DUPLICATE_KEYPOINTS: LabelErrorReason

class AreaRange(_message.Message):
    __slots__ = ("name", "min_area", "max_area")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MIN_AREA_FIELD_NUMBER: _ClassVar[int]
    MAX_AREA_FIELD_NUMBER: _ClassVar[int]
    name: str
    min_area: float
    max_area: float
    def __init__(self, name: _Optional[str] = ..., min_area: _Optional[float] = ..., max_area: _Optional[float] = ...) -> None: ...

class KeypointSigmas(_message.Message):
    __slots__ = ("sigmas",)
    class SigmasEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SIGMAS_FIELD_NUMBER: _ClassVar[int]
    sigmas: _containers.ScalarMap[str, float]
    def __init__(self, sigmas: _Optional[_Mapping[str, float]] = ...) -> None: ...

class EvaluationParams(_message.Message):
    __slots__ = ("task", "iou_thresholds", "confidence_threshold", "area_ranges", "max_detections", "classes", "stratify_by", "stratify_values", "match_iou_threshold", "match_confidence_threshold", "keypoint_sigmas", "top_k")
    class KeypointSigmasEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: KeypointSigmas
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[KeypointSigmas, _Mapping]] = ...) -> None: ...
    TASK_FIELD_NUMBER: _ClassVar[int]
    IOU_THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    AREA_RANGES_FIELD_NUMBER: _ClassVar[int]
    MAX_DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    STRATIFY_BY_FIELD_NUMBER: _ClassVar[int]
    STRATIFY_VALUES_FIELD_NUMBER: _ClassVar[int]
    MATCH_IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MATCH_CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    KEYPOINT_SIGMAS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    task: EvaluationTask
    iou_thresholds: _containers.RepeatedScalarFieldContainer[float]
    confidence_threshold: float
    area_ranges: _containers.RepeatedCompositeFieldContainer[AreaRange]
    max_detections: _containers.RepeatedScalarFieldContainer[int]
    classes: _containers.RepeatedScalarFieldContainer[str]
    stratify_by: str
    stratify_values: _containers.RepeatedCompositeFieldContainer[_common_pb2.MetadataValue]
    match_iou_threshold: float
    match_confidence_threshold: float
    keypoint_sigmas: _containers.MessageMap[str, KeypointSigmas]
    top_k: int
    def __init__(self, task: _Optional[_Union[EvaluationTask, str]] = ..., iou_thresholds: _Optional[_Iterable[float]] = ..., confidence_threshold: _Optional[float] = ..., area_ranges: _Optional[_Iterable[_Union[AreaRange, _Mapping]]] = ..., max_detections: _Optional[_Iterable[int]] = ..., classes: _Optional[_Iterable[str]] = ..., stratify_by: _Optional[str] = ..., stratify_values: _Optional[_Iterable[_Union[_common_pb2.MetadataValue, _Mapping]]] = ..., match_iou_threshold: _Optional[float] = ..., match_confidence_threshold: _Optional[float] = ..., keypoint_sigmas: _Optional[_Mapping[str, KeypointSigmas]] = ..., top_k: _Optional[int] = ...) -> None: ...

class ClassMetrics(_message.Message):
    __slots__ = ("class_name", "class_id", "metrics", "support")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    class_name: str
    class_id: int
    metrics: _containers.ScalarMap[str, float]
    support: int
    def __init__(self, class_name: _Optional[str] = ..., class_id: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., support: _Optional[int] = ...) -> None: ...

class PrecisionRecallCurve(_message.Message):
    __slots__ = ("class_name", "iou_threshold", "recall", "precision", "confidence")
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    class_name: str
    iou_threshold: float
    recall: _containers.RepeatedScalarFieldContainer[float]
    precision: _containers.RepeatedScalarFieldContainer[float]
    confidence: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, class_name: _Optional[str] = ..., iou_threshold: _Optional[float] = ..., recall: _Optional[_Iterable[float]] = ..., precision: _Optional[_Iterable[float]] = ..., confidence: _Optional[_Iterable[float]] = ...) -> None: ...

class ConfusionMatrix(_message.Message):
    __slots__ = ("labels", "counts")
    LABELS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.RepeatedScalarFieldContainer[str]
    counts: _common_pb2.Matrix
    def __init__(self, labels: _Optional[_Iterable[str]] = ..., counts: _Optional[_Union[_common_pb2.Matrix, _Mapping]] = ...) -> None: ...

class EvaluationResult(_message.Message):
    __slots__ = ("metrics", "per_class", "confusion_matrix", "pr_curves", "custom_metrics", "frame_count")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class CustomMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    METRICS_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    CONFUSION_MATRIX_FIELD_NUMBER: _ClassVar[int]
    PR_CURVES_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_METRICS_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    metrics: _containers.ScalarMap[str, float]
    per_class: _containers.RepeatedCompositeFieldContainer[ClassMetrics]
    confusion_matrix: ConfusionMatrix
    pr_curves: _containers.RepeatedCompositeFieldContainer[PrecisionRecallCurve]
    custom_metrics: _containers.ScalarMap[str, float]
    frame_count: int
    def __init__(self, metrics: _Optional[_Mapping[str, float]] = ..., per_class: _Optional[_Iterable[_Union[ClassMetrics, _Mapping]]] = ..., confusion_matrix: _Optional[_Union[ConfusionMatrix, _Mapping]] = ..., pr_curves: _Optional[_Iterable[_Union[PrecisionRecallCurve, _Mapping]]] = ..., custom_metrics: _Optional[_Mapping[str, float]] = ..., frame_count: _Optional[int] = ...) -> None: ...

class Stratum(_message.Message):
    __slots__ = ("value", "result")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    value: _common_pb2.MetadataValue
    result: EvaluationResult
    def __init__(self, value: _Optional[_Union[_common_pb2.MetadataValue, _Mapping]] = ..., result: _Optional[_Union[EvaluationResult, _Mapping]] = ...) -> None: ...

class Evaluation(_message.Message):
    __slots__ = ("name", "dataset_version", "params", "state", "result", "strata", "create_time", "complete_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    STRATA_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    dataset_version: int
    params: EvaluationParams
    state: EvaluationState
    result: EvaluationResult
    strata: _containers.RepeatedCompositeFieldContainer[Stratum]
    create_time: _timestamp_pb2.Timestamp
    complete_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., dataset_version: _Optional[int] = ..., params: _Optional[_Union[EvaluationParams, _Mapping]] = ..., state: _Optional[_Union[EvaluationState, str]] = ..., result: _Optional[_Union[EvaluationResult, _Mapping]] = ..., strata: _Optional[_Iterable[_Union[Stratum, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Match(_message.Message):
    __slots__ = ("kind", "ground_truth_label_id", "prediction_label_id", "ground_truth_class", "prediction_class", "iou", "confidence")
    KIND_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_LABEL_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_LABEL_ID_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_CLASS_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_CLASS_FIELD_NUMBER: _ClassVar[int]
    IOU_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    kind: MatchKind
    ground_truth_label_id: str
    prediction_label_id: str
    ground_truth_class: str
    prediction_class: str
    iou: float
    confidence: float
    def __init__(self, kind: _Optional[_Union[MatchKind, str]] = ..., ground_truth_label_id: _Optional[str] = ..., prediction_label_id: _Optional[str] = ..., ground_truth_class: _Optional[str] = ..., prediction_class: _Optional[str] = ..., iou: _Optional[float] = ..., confidence: _Optional[float] = ...) -> None: ...

class FrameMatches(_message.Message):
    __slots__ = ("frame_id", "matches")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    matches: _containers.RepeatedCompositeFieldContainer[Match]
    def __init__(self, frame_id: _Optional[str] = ..., matches: _Optional[_Iterable[_Union[Match, _Mapping]]] = ...) -> None: ...

class LabelErrorCandidate(_message.Message):
    __slots__ = ("frame_id", "ground_truth_label_id", "prediction_label_id", "reason", "score", "description", "keypoints")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_LABEL_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_LABEL_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    ground_truth_label_id: str
    prediction_label_id: str
    reason: LabelErrorReason
    score: float
    description: str
    keypoints: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, frame_id: _Optional[str] = ..., ground_truth_label_id: _Optional[str] = ..., prediction_label_id: _Optional[str] = ..., reason: _Optional[_Union[LabelErrorReason, str]] = ..., score: _Optional[float] = ..., description: _Optional[str] = ..., keypoints: _Optional[_Iterable[str]] = ...) -> None: ...
