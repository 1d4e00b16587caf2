"""What the versioning worker reads off a frame message beside its columns."""

from __future__ import annotations

from google.protobuf.message import Message


def label_ids_of(frame: Message | None) -> list[str]:
    return [] if frame is None else [label.label_id for label in frame.labels]  # type: ignore[attr-defined]
