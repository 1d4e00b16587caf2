"""The ingest queue's layout, shared by its producer (ingest) and consumer (versioning): Redis stream partitions that
carry claim checks (pointers to immutable batch objects), upload progress in Redis, and the durable objects in the
store from which all of it can be rebuilt.

A partition's stream holds what is still to do, not its history: the consumer trims entries every group has
acknowledged, so its length stays bounded by the backlog. The backlog (batches queued and not yet acknowledged) is
measured from the consumer group, as its lag plus its pending entries, never from the stream's length.
"""

from __future__ import annotations

import zlib
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import ResponseError

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


# the backlog ----------------------------------------------------------------------------------------------------


def _field(group: dict[Any, Any], name: str) -> Any:
    return group.get(name, group.get(name.encode()))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id(value: Any) -> tuple[int, int]:
    ms, _, seq = _text(value).partition("-")
    return int(ms), int(seq or 0)


async def _groups(redis: Redis, stream: str) -> list[dict[Any, Any]]:
    try:
        raw = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream: nothing was ever queued there
        return []
    return [dict(g) for g in raw]


async def backlog(redis: Redis, stream: str, cap: int = 1_000_000) -> int:
    """Entries of `stream` the consumer group has not acknowledged: not yet delivered (its lag) plus delivered and
    pending. Where Redis cannot tell the lag (it lost the group's read counter, as after a restart), the undelivered
    entries are counted, up to `cap`. A stream without the group yet holds only undelivered entries."""
    for group in await _groups(redis, stream):
        if _text(_field(group, "name")) != CONSUMER_GROUP:
            continue
        pending = int(_field(group, "pending") or 0)
        lag = _field(group, "lag")
        if lag is None:
            after = _text(_field(group, "last-delivered-id"))
            lag = len(await redis.xrange(stream, min=f"({after}", max="+", count=max(1, cap)) or [])
        return pending + int(lag)
    return int(await redis.xlen(stream))


async def trim_acknowledged(redis: Redis, stream: str) -> int:
    """Drop the entries of `stream` that every consumer group has acknowledged: those before the oldest entry still
    pending or not yet delivered. Entries a group may still read or claim are never dropped; returns how many went."""
    groups = await _groups(redis, stream)
    if not groups:
        return 0
    keep: tuple[int, int] | None = None
    for group in groups:
        if int(_field(group, "pending") or 0):
            first = _id((await redis.xpending(stream, _field(group, "name")))["min"])
        else:
            ms, seq = _id(_field(group, "last-delivered-id"))
            first = (ms, seq + 1)
        keep = first if keep is None else min(keep, first)
    if keep is None or keep <= (0, 1):
        return 0
    return int(await redis.xtrim(stream, minid=f"{keep[0]}-{keep[1]}", approximate=False))
