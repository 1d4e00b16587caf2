"""The ingest queue's protocol, shared by its producer (ingest), its consumer (versioning) and whoever clears it
(deletion, the backlog gauge): Redis stream partitions that carry claim checks (pointers to immutable batch objects),
upload progress in Redis, and the durable objects in the store from which all of it can be rebuilt. Every stream and
field name, key pattern, Lua script and the consumer group's setup are defined here once; the services hold none of
their own.

A partition's stream holds what is still to do, not its history: the consumer trims entries every group has
acknowledged, so its length stays bounded by the backlog. The backlog (batches queued and not yet acknowledged) is
measured from the consumer group, as its lag plus its pending entries, never from the stream's length.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.typing import EncodableT, FieldT

CONSUMER_GROUP: Final = "versioning"

_UPLOAD_PREFIX: Final = "shoal:upload:"
_UPLOADS_INDEX_PREFIX: Final = "shoal:uploads:"


def partition_of(dataset: str, partitions: int) -> int:
    """The stream partition of a dataset: every batch of one dataset goes to one partition, so one consumer applies
    them in order."""
    return zlib.crc32(dataset.encode()) % partitions


def stream_key(partition: int) -> str:
    return f"shoal:ingest:{partition}"


def consumer_name(partition: int) -> str:
    """The partition's own consumer in the group: whichever worker holds the partition reads as it, so a worker that
    takes a partition over first finishes what its predecessor read but did not acknowledge."""
    return f"p{partition}"


def lease_key(partition: int) -> str:
    """The lease a worker holds on a partition (one writer per dataset at a time)."""
    return f"shoal:lease:ingest:{partition}"


async def ensure_group(redis: Redis, stream: str) -> None:
    """Create the consumer group of `stream` (and the stream) from its first entry, unless it exists."""
    try:
        await redis.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
    except ResponseError as err:
        if "BUSYGROUP" not in str(err):
            raise


# claim checks: the entries of a stream --------------------------------------------------------------------------


@dataclass
class Entry:
    """One claim check read from a stream."""

    entry_id: bytes
    upload: str
    target: str
    seq: int
    key: str
    frames: int = 0

    @property
    def batch_key(self) -> str:
        return f"{self.upload}#{self.seq}"


def claim_check(upload: str, target: str, seq: int, key: str, frames: int) -> dict[FieldT, EncodableT]:
    """The fields of the stream entry that queues batch `seq` of `upload`: its target, the key of its batch object and
    how many frames it holds."""
    return {"upload": upload, "target": target, "seq": seq, "key": key, "frames": frames}


def read_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> Entry:
    f = {k.decode(): v.decode() for k, v in fields.items()}
    return Entry(entry_id, f["upload"], f["target"], int(f["seq"]), f["key"], int(f.get("frames", "0")))


def entry_target(fields: dict[bytes, bytes]) -> str:
    """The target (dataset or inference set) a raw stream entry queues a batch for."""
    return _text(fields.get(b"target", b""))


# upload progress in Redis ---------------------------------------------------------------------------------------


class Progress:
    """The fields of an upload's progress hash (`upload_key`)."""

    TARGET: Final = "target"
    CREATE_TIME: Final = "create_time"
    UPDATE_TIME: Final = "update_time"
    # The last heartbeat of an open stream.
    ALIVE_TIME: Final = "alive_time"
    # "1" once the client closed its stream, "0" while it sends.
    CLOSED: Final = "closed"
    # The versions that committed the upload's batches, comma-separated, in the order they were recorded.
    VERSIONS: Final = "versions"
    BATCHES_QUEUED: Final = "batches_queued"
    BATCHES_RECEIVED: Final = "batches_received"
    BATCHES_COMMITTED: Final = "batches_committed"
    FRAMES_RECEIVED: Final = "frames_received"
    FRAMES_ACCEPTED: Final = "frames_accepted"
    FRAMES_REJECTED: Final = "frames_rejected"
    FRAMES_COMMITTED: Final = "frames_committed"
    FRAMES_FAILED: Final = "frames_failed"
    # The counters an Upload shows, named as its fields are.
    COUNTERS: Final = (
        BATCHES_RECEIVED,
        BATCHES_COMMITTED,
        FRAMES_RECEIVED,
        FRAMES_ACCEPTED,
        FRAMES_REJECTED,
        FRAMES_COMMITTED,
        FRAMES_FAILED,
    )


def upload_key(upload: str) -> str:
    """Hash of an upload's counters and flags (`Progress`)."""
    return f"{_UPLOAD_PREFIX}{upload}"


def upload_batches_key(upload: str) -> str:
    """Hash seq → JSON summary of every batch queued for an upload (how retries are recognised)."""
    return f"{upload_key(upload)}:batches"


def upload_errors_key(upload: str) -> str:
    """List of serialized FrameError messages of an upload."""
    return f"{upload_key(upload)}:errors"


def upload_committed_key(upload: str) -> str:
    """Hash seq → version of every batch of an upload whose outcome is recorded (so it is recorded once)."""
    return f"{upload_key(upload)}:committed"


def uploads_index_key(target: str) -> str:
    """Sorted set of a target's upload names, scored by creation time."""
    return f"{_UPLOADS_INDEX_PREFIX}{target}"


def upload_keys_matching(glob: str) -> str:
    """A SCAN pattern for the keys of the uploads whose names match `glob` (their progress hashes and sub-keys)."""
    return f"{_UPLOAD_PREFIX}{glob}"


def upload_indexes_matching(glob: str) -> str:
    """A SCAN pattern for the upload indexes of the targets whose names match `glob`."""
    return f"{_UPLOADS_INDEX_PREFIX}{glob}"


def named_by_key(key: str) -> str:
    """The upload an upload key (`upload_key` or one of its sub-keys) belongs to; the target of an uploads index."""
    return key.split(":", 2)[2].split(":", 1)[0]


# Mark an upload's stream alive, only while its record exists (a record Redis lost is not recreated half-empty).
_MARK_ALIVE: Final = f"""
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], '{Progress.ALIVE_TIME}', ARGV[1]) end
return 0
"""

# Record a batch's outcome on its upload exactly once, whatever the number of deliveries.
_RECORD_PROGRESS: Final = f"""
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[4]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], '{Progress.BATCHES_COMMITTED}', 1)
redis.call('HINCRBY', KEYS[1], '{Progress.FRAMES_COMMITTED}', tonumber(ARGV[2]))
redis.call('HINCRBY', KEYS[1], '{Progress.FRAMES_FAILED}', tonumber(ARGV[3]))
local versions = redis.call('HGET', KEYS[1], '{Progress.VERSIONS}')
if ARGV[4] ~= '0' then
  if versions and versions ~= '' then
    local last = string.match(versions, '([^,]+)$')
    if last ~= ARGV[4] then redis.call('HSET', KEYS[1], '{Progress.VERSIONS}', versions .. ',' .. ARGV[4]) end
  else
    redis.call('HSET', KEYS[1], '{Progress.VERSIONS}', ARGV[4])
  end
end
redis.call('HSET', KEYS[1], '{Progress.UPDATE_TIME}', ARGV[5])
for i = 6, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end
return 1
"""

# Extend a lease only while it is still ours.
_RENEW_LEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class Scripts:
    """The queue's Lua scripts, registered on one Redis client (registering sends nothing; each loads on first use)."""

    def __init__(self, redis: Redis) -> None:
        self._mark_alive = redis.register_script(_MARK_ALIVE)
        self._record_progress = redis.register_script(_RECORD_PROGRESS)
        self._renew_lease = redis.register_script(_RENEW_LEASE)

    async def mark_alive(self, upload: str, now: float) -> None:
        """Heartbeat of an upload's open stream."""
        await self._mark_alive(keys=[upload_key(upload)], args=[str(now)])

    async def record_progress(
        self, upload: str, seq: int, *, committed: int, failures: Sequence[bytes], version: int, now: str
    ) -> bool:
        """Record what batch `seq` of `upload` did: frames committed, serialized FrameErrors of those that failed, and
        the version that committed it (0: none). False when it was recorded before."""
        keys = [upload_key(upload), upload_committed_key(upload), upload_errors_key(upload)]
        done = await self._record_progress(keys=keys, args=[seq, committed, len(failures), version, now, *failures])
        return bool(done)

    async def renew_lease(self, partition: int, holder: str, lease_ms: int) -> bool:
        """Extend `holder`'s lease on `partition` by `lease_ms`; False when the lease is no longer its."""
        return bool(await self._renew_lease(keys=[lease_key(partition)], args=[holder, lease_ms]))


# durable objects in the store -----------------------------------------------------------------------------------


def objects_prefix(resource: str) -> str:
    """The store prefix of every queue object of `resource`: an upload, or whatever uploads go into (a project, a
    dataset, an inference set)."""
    return f"ingest/{resource}/"


def upload_record_object(upload: str) -> str:
    return f"{objects_prefix(upload)}upload.json"


def batch_object(upload: str, seq: int) -> str:
    """The immutable claim-check object holding a batch's accepted frames (a serialized FrameBatch)."""
    return f"{objects_prefix(upload)}batches/{seq:010d}.pb"


def rows_object(upload: str, seq: int) -> str:
    """The batch's whole frames as table rows (Arrow IPC, `shoal.storage.batchrows`), written by ingest beside the
    batch object so the worker need not encode them; optional: without it the worker encodes."""
    return f"{objects_prefix(upload)}rows/{seq:010d}.arrow"


def seq_object(upload: str, seq: int) -> str:
    """The create-only record of what a seq carried (the digest of the batch as received), written before anything
    else of the batch: a seq sent again with other content is refused against it, even when Redis lost its record."""
    return f"{objects_prefix(upload)}seqs/{seq:010d}.json"


def rejects_object(upload: str, seq: int) -> str:
    """The frames a batch rejected at validation (a serialized ListUploadErrorsResponse)."""
    return f"{objects_prefix(upload)}rejects/{seq:010d}.pb"


def outcome_object(upload: str, seq: int) -> str:
    """What applying a batch did (frames committed, frames failed with reasons), written before its commit so a
    redelivered, already-committed batch can still be recorded on its upload."""
    return f"{objects_prefix(upload)}outcomes/{seq:010d}.json"


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
