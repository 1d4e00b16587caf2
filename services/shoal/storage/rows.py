"""What a frame row carries beside the frame itself: its label count, its queryable metadata (JSON) and its label
ids. The versioning worker derives them when it applies changes; the tables derive them again when they replay the
change log after a crash."""

from __future__ import annotations

import json

from google.protobuf.message import Message

from shoal.v1 import frame_pb2


def label_ids_of(frame: Message | None) -> list[str]:
    return [] if frame is None else [label.label_id for label in frame.labels]  # type: ignore[attr-defined]


def derived_columns(frame_bytes: bytes, *, inference: bool) -> tuple[int, str, list[str]]:
    """(label count, queryable metadata as JSON, label ids) of a serialized frame."""
    frame: Message = (
        frame_pb2.InferenceFrame.FromString(frame_bytes) if inference else frame_pb2.Frame.FromString(frame_bytes)
    )
    return derived_from(frame)


def derived_from(frame: Message, label_ids: list[str] | None = None) -> tuple[int, str, list[str]]:
    """(label count, queryable metadata as JSON, label ids) of a frame message (its label ids, when known)."""
    if label_ids is None:
        label_ids = label_ids_of(frame)
    metadata: dict[str, object] = {}
    for key, value in frame.user_metadata.items():  # type: ignore[attr-defined]
        kind = value.WhichOneof("kind")
        if kind is None or kind == "null_value":
            metadata[key] = None
        elif kind.endswith("_list_value"):
            metadata[key] = list(getattr(value, kind).values)
        else:
            metadata[key] = getattr(value, kind)
    return len(label_ids), json.dumps(metadata, sort_keys=True), label_ids
