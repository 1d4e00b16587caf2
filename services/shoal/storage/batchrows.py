"""A claim-check batch's whole frames as table rows, encoded once by ingest beside the batch object.

The versioning worker is one process per partition and encoding frames into columns was most of its time; ingest
runs as several processes and already holds every accepted frame, so it encodes the frames a batch adds or replaces
whole (ADD items, inference frames) into the columnar layout and stores them as Arrow IPC next to the batch. The
worker takes those rows for the frames it commits unchanged and encodes only what it merged itself (MODIFY, label
updates). The rows name the digest of the batch object they were made from; rows that do not match the stored batch
(a resend that kept the first stream's batch) or that are missing (batches queued before this existed) are ignored
and the worker encodes, so correctness never depends on them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

import pyarrow as pa
from google.protobuf.message import Message

from shoal.storage import columnar
from shoal.v1 import frame_pb2, ingest_service_pb2

DIGEST_KEY: Final = b"shoal.batch_digest"
# Present when the rows are every item of the batch (no MODIFY, DELETE or label update in it): the worker can then
# apply the batch from its rows alone (see `versioning.apply.apply_rows`).
WHOLE_KEY: Final = b"shoal.whole_batch"
ITEM: Final = "item"  # the frame's index in the batch's `frames` (or `inference_frames`)


def batch_digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def encode(
    batch: ingest_service_pb2.FrameBatch,
    body: bytes,
    *,
    inference: bool,
    embedding_dimension: int,
    metadata: Sequence[columnar.MetadataColumn],
) -> bytes | None:
    """Arrow IPC of the rows of the frames `batch` (stored as `body`) carries whole; None when it carries none. The
    batch's frames lose their change type: call this once `body` is serialized."""
    items: list[tuple[int, Message]]
    if inference:
        items = list(enumerate(batch.inference_frames))
    else:
        items = [
            (i, f)
            for i, f in enumerate(batch.frames)
            if f.change_type in (frame_pb2.CHANGE_TYPE_UNSPECIFIED, frame_pb2.CHANGE_TYPE_ADD)
        ]
    if not items:
        return None
    for _, item in items:
        if not inference:
            item.change_type = frame_pb2.CHANGE_TYPE_UNSPECIFIED  # type: ignore[attr-defined]  # stored frames have none
    frames = [item for _, item in items]
    layout = columnar.layout(inference=inference)
    rows = layout.encode(frames, embedding_dimension=embedding_dimension, metadata=metadata)
    rows = rows.append_column(ITEM, pa.array([i for i, _ in items], pa.int32()))
    marks = {DIGEST_KEY: batch_digest(body).encode()}
    if len(items) == len(batch.frames) + len(batch.label_updates) + len(batch.inference_frames):
        marks[WHOLE_KEY] = b"1"
    rows = rows.replace_schema_metadata(marks)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    return bytes(sink.getvalue().to_pybytes())


def decode(raw: bytes | None, body: bytes) -> pa.Table | None:
    """The rows stored beside the batch object `body`, if they were made from exactly that batch."""
    if raw is None:
        return None
    table = pa.ipc.open_stream(raw).read_all()
    if (table.schema.metadata or {}).get(DIGEST_KEY) != batch_digest(body).encode():
        return None
    return table


def whole(rows: pa.Table) -> bool:
    """Whether `rows` (as `decode` returned them) are every item of their batch."""
    return (rows.schema.metadata or {}).get(WHOLE_KEY) == b"1"
