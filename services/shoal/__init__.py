"""Shoal: versioned ML datasets, model metrics, embeddings and assets over gRPC.

import shoal
frame = shoal.LabeledFrame(frame_id="f1")
"""

__version__ = "0.1.0"

from shoal.sdk import (
    ClassMapEntry,
    Client,
    Inferences,
    InferencesFrame,
    LabelClassMap,
    LabeledDataset,
    LabeledFrame,
    UpdateGTLabelSet,
    UploadError,
    UploadReport,
    ValidationError,
)

__all__ = [
    "ClassMapEntry",
    "Client",
    "Inferences",
    "InferencesFrame",
    "LabelClassMap",
    "LabeledDataset",
    "LabeledFrame",
    "UpdateGTLabelSet",
    "UploadError",
    "UploadReport",
    "ValidationError",
    "__version__",
]
