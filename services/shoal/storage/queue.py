"""The ingest queue's layout, shared by its producer (ingest) and consumer (versioning): Redis stream partitions that
carry claim checks (pointers to immutable batch objects), upload progress in Redis, and the durable objects in the
store from which all of it can be rebuilt."""

from __future__ import annotations

import zlib
from typing import Final

CONSUMER_GROUP: Final = "versioning"


def partition_of(dataset: str, partitions: int) -> int:
    """The stream partition of a dataset: every batch of one dataset goes to one partition, so one consumer applies
    them in order."""
    return zlib.crc32(dataset.encode()) % partitions


def stream_key(partition: int) -> str:
    return f"shoal:ingest:{partition}"


def upload_key(upload: str) -> str:
    """Hash of an upload's counters and flags."""
    return f"shoal:upload:{upload}"


def upload_batches_key(upload: str) -> str:
    """Hash seq → JSON summary of every batch queued for an upload (how retries are recognised)."""
    return f"shoal:upload:{upload}:batches"


def upload_errors_key(upload: str) -> str:
    """List of serialized FrameError messages of an upload."""
    return f"shoal:upload:{upload}:errors"


def uploads_index_key(target: str) -> str:
    """Sorted set of a target's upload names, scored by creation time."""
    return f"shoal:uploads:{target}"


def upload_record_object(upload: str) -> str:
    return f"ingest/{upload}/upload.json"


def batch_object(upload: str, seq: int) -> str:
    """The immutable claim-check object holding a batch's accepted frames (a serialized FrameBatch)."""
    return f"ingest/{upload}/batches/{seq:010d}.pb"


def seq_object(upload: str, seq: int) -> str:
    """The create-only record of what a seq carried (the digest of the batch as received), written before anything
    else of the batch: a seq sent again with other content is refused against it, even when Redis lost its record."""
    return f"ingest/{upload}/seqs/{seq:010d}.json"


def rejects_object(upload: str, seq: int) -> str:
    """The frames a batch rejected at validation (a serialized ListUploadErrorsResponse)."""
    return f"ingest/{upload}/rejects/{seq:010d}.pb"


def outcome_object(upload: str, seq: int) -> str:
    """What applying a batch did (frames committed, frames failed with reasons), written before its commit so a
    redelivered, already-committed batch can still be recorded on its upload."""
    return f"ingest/{upload}/outcomes/{seq:010d}.json"
