"""Deleting a project, a dataset or an inference set: everything the suite keeps of it, in the store and in Redis.

What a resource owns, by the layout every service writes (the one place that lists it, so a delete cannot forget a
kind of object): its catalog entries (project, datasets, inference sets, segments, checkpoints, API-key scopes),
its versioned tables, its assets, its evaluation results and stored checks, its claim-check batches and upload
records; in Redis its queued batches, upload progress and errors, and its operations.

Order matters for a crash or a cancelled call in the middle. Keys scoped to a deleted project are revoked first
(announced, then removed), then Redis is cleared and the data removed, and the catalog entry goes last: until then
the name stays taken (nobody can create a new resource over half-deleted data) and asking again finishes the
delete, since every step is idempotent and tolerates what is already gone. The servicer runs the delete shielded
from the caller's cancellation, so a client deadline does not stop it halfway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Final, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shoal.kit import apikeys
from shoal.kit.errors import FailedPrecondition
from shoal.kit.names import DatasetName, InferenceSetName, ProjectName
from shoal.kit.objectstore import ObjectNotFound, ObjectStore
from shoal.kit.operations import OperationStore
from shoal.storage import queue

log = logging.getLogger("shoal.storage.deletion")

# An upload that has not been closed and whose stream was alive this recently may still send batches.
LIVE_UPLOAD_SECONDS: Final = 120.0
SCAN_COUNT: Final = 1000

Target = ProjectName | DatasetName | InferenceSetName


def _parts(target: Target) -> tuple[str, str, str]:
    if isinstance(target, ProjectName):
        return target.project, "", ""
    if isinstance(target, DatasetName):
        return target.project, target.dataset, ""
    return target.project, target.dataset, target.inference_set


def store_prefixes(target: Target) -> list[str]:
    """Every object-store prefix (or exact key) holding something of `target`."""
    p, d, i = _parts(target)
    if i:
        return [
            f"catalog/inference_sets/{p}/{d}/{i}.json",
            f"datasets/{p}/{d}/inference_sets/{i}/",
            f"tables/{p}/{d}/inference_sets/{i}/",
            f"metrics/{p}/{d}/{i}/",
            queue.objects_prefix(str(target)),
        ]
    if d:
        return [
            f"catalog/datasets/{p}/{d}.json",
            f"catalog/inference_sets/{p}/{d}/",
            f"catalog/segments/{p}/{d}/",
            f"catalog/checkpoints/{p}/{d}/",
            f"datasets/{p}/{d}/",
            f"tables/{p}/{d}/",
            f"assets/{p}/{d}/",
            f"metrics/{p}/{d}/",
            f"indexes/{p}/{d}/",
            f"checks/{target}/",
            queue.objects_prefix(str(target)),
        ]
    return [
        f"catalog/projects/{p}.json",
        f"catalog/datasets/{p}/",
        f"catalog/inference_sets/{p}/",
        f"catalog/segments/{p}/",
        f"catalog/checkpoints/{p}/",
        f"datasets/{p}/",
        f"tables/{p}/",
        f"assets/{p}/",
        f"metrics/{p}/",
        f"indexes/{p}/",
        f"checks/{target}/",
        queue.objects_prefix(str(target)),
    ]


def _matches(name: str, target: Target) -> bool:
    """True when the resource name `name` is `target` or lies under it."""
    text = str(target)
    return name == text or name.startswith(text + "/")


@dataclass
class DeleteReport:
    """What a delete removed."""

    objects: int = 0
    redis_keys: int = 0
    queued_batches: int = 0
    operations: int = 0
    api_keys_revoked: list[str] = field(default_factory=list)


class Deleter:
    """Removes a resource and all it owns. Blocking store calls run in threads; Redis is the suite's asyncio client."""

    def __init__(
        self, store: ObjectStore, redis: Redis, partitions: int, live_seconds: float = LIVE_UPLOAD_SECONDS
    ) -> None:
        self.store = store
        self.redis = redis
        self.partitions = partitions
        self.live_seconds = live_seconds
        self.operations = OperationStore(redis)

    async def busy_uploads(self, target: Target) -> list[str]:
        """Uploads into `target` that are still being applied (queued batches not committed yet) or whose stream is
        still open (its heartbeat is recent)."""
        busy = []
        now = time.time()
        async for raw in self.redis.scan_iter(match=queue.upload_keys_matching(_glob(target)), count=SCAN_COUNT):
            key = _text(raw)
            name = queue.named_by_key(key)
            if key != queue.upload_key(name) or not _matches(name, target):
                continue  # one of the upload's other keys (batches, errors, committed), or another resource's
            fields = {
                (k.decode() if isinstance(k, bytes) else str(k)): (v.decode() if isinstance(v, bytes) else str(v))
                for k, v in (await self.redis.hgetall(key)).items()
            }
            queued = int(fields.get(queue.Progress.BATCHES_QUEUED, "0") or 0)
            committed = int(fields.get(queue.Progress.BATCHES_COMMITTED, "0") or 0)
            closed = fields.get(queue.Progress.CLOSED) == "1"
            last_seen = max(
                float(fields.get(f, "0") or 0) for f in (queue.Progress.UPDATE_TIME, queue.Progress.ALIVE_TIME)
            )
            if committed < queued or (not closed and now - last_seen < self.live_seconds):
                busy.append(name)
        return sorted(busy)

    async def check_idle(self, target: Target, force: bool) -> None:
        if force:
            return
        busy = await self.busy_uploads(target)
        if busy:
            raise FailedPrecondition(
                f"{target} has {len(busy)} upload(s) still being applied ({', '.join(busy[:3])}); wait for them, "
                "or delete with force",
                reason="UPLOAD_IN_PROGRESS",
                metadata={"resource": str(target), "upload": busy[0]},
            )

    def delete_objects(self, target: Target) -> int:
        """Remove every object of `target`, its catalog entry last. Blocking."""
        removed = 0
        prefixes = store_prefixes(target)
        for prefix in prefixes[1:] + prefixes[:1]:
            if prefix.endswith(".json"):
                try:
                    self.store.delete(prefix)
                    removed += 1
                except ObjectNotFound:
                    pass
                continue
            # Collect first: deleting while paging a listing may skip objects on some stores.
            keys = [info.key for info in self.store.iter_all(prefix)]
            for key in keys:
                try:
                    self.store.delete(key)
                except ObjectNotFound:
                    continue
                removed += 1
        return removed

    def scoped_keys(self, project: ProjectName) -> list[str]:
        """The keys that name `project`. Blocking."""
        found = []
        for record in apikeys.list_keys(self.store):
            if str(project) not in record.projects:
                continue
            found.append(record.key_id)
        return found

    async def revoke_keys(self, project: ProjectName) -> list[str]:
        """Keys that named only `project` are revoked; keys of several projects lose it. Every one of them is
        announced first, so no service goes on accepting it from its cache."""
        key_ids = await asyncio.to_thread(self.scoped_keys, project)
        for key_id in key_ids:
            await self.redis.set(apikeys.revoked_marker(key_id), b"1", ex=apikeys.REVOCATION_MARKER_SECONDS)
        revoked = []
        for key_id in key_ids:
            if await asyncio.to_thread(apikeys.drop_project, self.store, key_id, str(project)):
                revoked.append(key_id)
            else:
                # Still valid for its other projects: the announcement is withdrawn, and caches reload the record.
                await self.redis.delete(apikeys.revoked_marker(key_id))
        return revoked

    async def delete_redis(self, target: Target) -> tuple[int, int, int]:
        """Queued batches, upload records and operations of `target`: (keys removed, batches dequeued, operations)."""
        dequeued = 0
        for partition in range(self.partitions):
            stream = queue.stream_key(partition)
            entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await self.redis.xrange(stream) or [])
            ids = [entry_id for entry_id, entry in entries if _matches(queue.entry_target(entry), target)]
            if ids:
                # Acknowledge (drops them from the consumers' pending lists) and delete them from the stream.
                try:
                    await self.redis.xack(stream, queue.CONSUMER_GROUP, *ids)
                except ResponseError:  # no group yet: nothing pending to acknowledge
                    log.debug("no consumer group on %s", stream)
                dequeued += await self.redis.xdel(stream, *ids)
        removed = 0
        for pattern in (queue.upload_keys_matching(_glob(target)), queue.upload_indexes_matching(_glob(target))):
            keys = [raw async for raw in self.redis.scan_iter(match=pattern, count=SCAN_COUNT)]
            keys = [k for k in keys if _matches(queue.named_by_key(_text(k)), target)]
            if keys:
                removed += await self.redis.delete(*keys)
        operations = await self.operations.forget(str(target))
        return removed, dequeued, operations

    async def delete(self, target: Target, *, force: bool) -> DeleteReport:
        """Delete `target` and everything under it (FAILED_PRECONDITION while an upload into it is being applied,
        unless `force`)."""
        await self.check_idle(target, force)
        report = DeleteReport()
        if isinstance(target, ProjectName):
            report.api_keys_revoked = await self.revoke_keys(target)
        report.redis_keys, report.queued_batches, report.operations = await self.delete_redis(target)
        report.objects = await asyncio.to_thread(self.delete_objects, target)
        log.info(
            "deleted %s: %d objects, %d Redis keys, %d queued batches, %d operations",
            target,
            report.objects,
            report.redis_keys,
            report.queued_batches,
            report.operations,
        )
        return report


def _glob(target: Target) -> str:
    """A SCAN pattern that matches `target`'s name and names under it (checked exactly afterwards)."""
    text = str(target)
    for special in "*?[]\\":
        text = text.replace(special, "\\" + special)
    return text + "*"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
