"""The Shoal Python SDK: builders for datasets and inferences, and the client."""

from shoal.sdk.classmap import ClassMapEntry, LabelClassMap
from shoal.sdk.client import Client, UploadReport
from shoal.sdk.errors import UploadError, ValidationError
from shoal.sdk.frames import Inferences, InferencesFrame, LabeledDataset, LabeledFrame, UpdateGTLabelSet

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
]
