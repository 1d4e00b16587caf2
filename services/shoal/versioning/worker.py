"""The consumer side of the ingest queue: turns claim checks into dataset versions.

One worker owns a stream partition at a time through a lease in Redis, and reads it as the partition's own consumer
(`p<n>`), so a worker that takes a partition over first finishes what its predecessor read but did not acknowledge,
in order. Entries of one dataset read together commit as one version. A batch already committed (its `upload#seq` is
in a version record) is not applied again: its outcome (from the object written before the commit) and the version
that committed it (from that version record) are recorded on its upload, which a crash between commit and progress
record may have left undone. Progress is recorded once per batch (HSETNX), always with the version that committed the
batch, and the stream entry is acknowledged only after the commit, so a worker killed anywhere leaves nothing
half-applied and nothing applied twice. Acknowledged entries are then trimmed from the stream, so it holds only the
backlog.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Final, cast

import pyarrow as pa
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from shoal.kit import pipeline_metrics
from shoal.kit.errors import NotFound, ShoalError
from shoal.kit.names import DatasetName, InferenceSetName, parse_target
from shoal.kit.objectstore import ObjectStore
from shoal.kit.settings import Settings
from shoal.storage import batchrows, columnar, migration, queue
from shoal.storage.catalog import Catalog
from shoal.storage.queue import Entry
from shoal.storage.tables import INDEX_SEGMENTS, Commit, Stored, TableRoot, VersionRecord
from shoal.v1 import dataset_pb2, ingest_service_pb2, upload_pb2
from shoal.versioning.apply import (
    Applied,
    BatchOutcome,
    Queued,
    QueuedBatch,
    QueuedRows,
    apply_batches,
    apply_rows,
    needs_loading,
)
from shoal.versioning.labels import LabelIndex

log = logging.getLogger("shoal.versioning.worker")

MAINTAIN_EVERY: Final = 8
# A partition with no commit for this long no longer streams: the worker gathers no more for it, and maintenance
# waits until every partition it holds is this quiet (between the batches of a stream the worker is only waiting).
QUIET_SECONDS: Final = 1.0
# The longest an idle worker waits in Redis for new entries before it looks again at its leases, pending entries and
# maintenance; new entries end the wait at once.
IDLE_WAIT_SECONDS: Final = 0.5
# Small fragments the frames table and the change log may hold before compaction. What compaction replaces stays
# on disk (for time travel in the frames table, for a grace period in the log), so it runs seldom; each commit keeps
# the frame-id indexes over its own rows, so lookups by frame id stay fast over many fragments.
FRAME_FRAGMENTS: Final = 32
LOG_FRAGMENTS: Final = 32


class Worker:
    """Applies queued batches of the partitions it holds."""

    def __init__(self, settings: Settings, store: ObjectStore, redis: Redis, *, worker_id: str = "") -> None:
        self.settings = settings
        self.store = store
        self.redis = redis
        self.catalog = Catalog(store)
        self.root = TableRoot(settings.store)
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.owned: set[int] = set()
        self._recovered: set[str] = set()
        self._migrated_for: frozenset[int] = frozenset()  # the partitions whose datasets are migrated
        # Per target: the version that committed each batch (`upload#seq`), as of the newest version seen.
        self._committed: dict[str, dict[str, int]] = {}
        self._seen_version: dict[str, int] = {}
        self._labels: dict[str, LabelIndex] = {}
        self._groups: set[str] = set()  # streams whose consumer group this worker made or found
        self._scripts = queue.Scripts(redis)
        self.commits = 0
        # Targets committed to since their last maintenance; maintained once the worker has had nothing queued for
        # `QUIET_SECONDS`, so compaction never slows a backlog or a stream down.
        self._dirty: set[str] = set()
        self._since_maintenance: dict[str, int] = {}
        self._streaming: dict[int, float] = {}  # per partition, when its last commit ended (by `clock`)
        self.clock: Callable[[], float] = time.monotonic  # what says whether partitions still stream
        self.lease_ms = int(settings.worker_lease_seconds * 1000)

    # leases ----------------------------------------------------------------------------------------------------

    async def _hold_leases(self) -> None:
        for partition in range(self.settings.ingest_partitions):
            key = queue.lease_key(partition)
            if partition in self.owned:
                if not await self._scripts.renew_lease(partition, self.worker_id, self.lease_ms):
                    log.warning("lost the lease of partition %d", partition)
                    self.owned.discard(partition)
            elif await self.redis.set(key, self.worker_id, nx=True, px=self.lease_ms):
                log.info("took partition %d", partition)
                self.owned.add(partition)

    async def release(self) -> None:
        for partition in list(self.owned):
            key = queue.lease_key(partition)
            if (await self.redis.get(key)) == self.worker_id.encode():
                await self.redis.delete(key)
        self.owned.clear()

    # the loop --------------------------------------------------------------------------------------------------

    async def _keep_leases(self, stop: asyncio.Event) -> None:
        """Renew and take leases on a clock of their own, so a long commit (it runs in a thread) never lets a lease
        lapse while its partition is being worked on."""
        while not stop.is_set():
            try:
                await self._hold_leases()
            except (ConnectionError, OSError, RedisError) as err:
                # Redis restarting must not end this task: without it the worker would hold no partition for good.
                log.warning("cannot renew partition leases: %s", err)
            await _sleep_or_stop(stop, self.lease_ms / 3000)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set; never lets one bad batch stop the loop."""
        leases = asyncio.create_task(self._keep_leases(stop))
        try:
            while not stop.is_set():
                try:
                    ends = await self._stream_ends()
                    worked = False
                    for partition in sorted(self.owned):
                        worked |= await self.drain(partition)
                    if not worked and frozenset(self.owned) != self._migrated_for:
                        await asyncio.to_thread(self.migrate_owned)
                    elif not worked and self._dirty and self._quiet():
                        await asyncio.to_thread(self.maintain_one)
                    elif not worked:
                        await self._wait_for_entries(stop, ends)
                except ShoalError as err:
                    log.warning("worker step failed: %s", err)
                    await _sleep_or_stop(stop, 1.0)
                except (ConnectionError, OSError, RedisError) as err:
                    log.warning("worker cannot reach a dependency: %s", err)
                    await _sleep_or_stop(stop, 1.0)
                except Exception:
                    # A bug must not stop the worker for good: log it, back off, try again (the entries stay pending).
                    log.exception("worker step failed unexpectedly")
                    await _sleep_or_stop(stop, 2.0)
        finally:
            leases.cancel()
            await self.release()

    async def _stream_ends(self) -> dict[str, bytes]:
        """The id of the newest entry of each partition held (`0-0` for an empty one), read before a pass over them."""
        streams = [queue.stream_key(p) for p in sorted(self.owned)]
        if not streams:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xrevrange(stream, count=1)
            newest = await pipe.execute()
        return {s: (found[0][0] if found else b"0-0") for s, found in zip(streams, newest, strict=True)}

    async def _wait_for_entries(self, stop: asyncio.Event, ends: dict[str, bytes]) -> None:
        """Idle: wait (up to `IDLE_WAIT_SECONDS`, or until stopped) for an entry newer than `ends` in a partition held,
        blocked in Redis rather than polling: an idle worker used to read every partition twenty times a second. An
        entry queued after `ends` was read ends the wait at once; the next pass reads it through the consumer group."""
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
        if ends:
            waits.append(
                asyncio.ensure_future(
                    self.redis.xread(cast(dict[Any, Any], ends), count=1, block=int(IDLE_WAIT_SECONDS * 1000))
                )
            )
        # Redis ends its block itself: the longer timeout only guards against a reply that never comes.
        timeout = IDLE_WAIT_SECONDS + 2 if ends else IDLE_WAIT_SECONDS
        try:
            done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a Redis error reaches the loop's handler
        finally:
            for task in waits:
                task.cancel()

    async def drain(self, partition: int) -> bool:
        """Apply what the partition holds: first entries read before (pending), then new ones."""
        stream = queue.stream_key(partition)
        consumer = queue.consumer_name(partition)
        # The consumer group is made once (an idle worker looks at every partition twice a second); when Redis
        # lost it (restarted empty), the read fails with NOGROUP and the next pass makes it again.
        if stream not in self._groups:
            await queue.ensure_group(self.redis, stream)
            self._groups.add(stream)
        for start in ("0", ">"):
            try:
                entries, last = await self._read(stream, consumer, start)
                while start == "0" and last:
                    # Every pending entry, not a read's worth: a group that failed half-way is applied again whole,
                    # as it was first read (gathered groups hold more than one read), so a version logged by the
                    # failed try is made again from the same batches.
                    more, last = await self._read(stream, consumer, last)
                    entries += more
            except ResponseError as err:
                if "NOGROUP" in str(err):
                    self._groups.discard(stream)
                raise
            if entries:
                if start == ">":
                    entries += await self._gather(partition, sum(e.frames for e in entries))
                await self._process(stream, entries)
                self._streaming[partition] = self.clock()
                return True
        return False

    async def _read(
        self, stream: str, consumer: str, start: str, block_ms: int | None = None
    ) -> tuple[list[Entry], str]:
        """Entries of one read from `start` (waiting up to `block_ms` for new ones), and the id of the last one read
        ("": none)."""
        reply = await self.redis.xreadgroup(
            queue.CONSUMER_GROUP, consumer, {stream: start}, count=self.settings.worker_read_count, block=block_ms
        )
        replies = cast(list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]], reply)
        read = [(eid, fields) for _, messages in replies for eid, fields in messages]
        # Entries trimmed away meanwhile come back without fields: skipped.
        entries = [queue.read_entry(eid, fields) for eid, fields in read if fields]
        return entries, read[-1][0].decode() if read else ""

    def _quiet(self) -> bool:
        """Whether no partition has committed for `QUIET_SECONDS`."""
        return self.clock() - max(self._streaming.values(), default=-1e9) > QUIET_SECONDS

    async def _gather(self, partition: int, frames: int) -> list[Entry]:
        """While batches stream into the partition, more new entries, read for up to `worker_gather_seconds` or until
        a commit's worth of frames is read: one larger version instead of several small ones."""
        wait = self.settings.worker_gather_seconds
        if not wait or self.clock() - self._streaming.get(partition, -1e9) > QUIET_SECONDS:
            return []
        stream, consumer = queue.stream_key(partition), queue.consumer_name(partition)
        deadline = time.monotonic() + wait
        more: list[Entry] = []
        while frames < self.settings.worker_max_commit_frames and (left := deadline - time.monotonic()) > 0:
            read, _ = await self._read(stream, consumer, ">", block_ms=max(1, int(left * 1000)))
            if not read:
                break
            more += read
            frames += sum(e.frames for e in read)
        return more

    async def _process(self, stream: str, entries: list[Entry]) -> None:
        groups: OrderedDict[str, list[Entry]] = OrderedDict()
        for entry in entries:
            groups.setdefault(entry.target, []).append(entry)
        for target, group in _split(groups, self.settings.worker_max_commit_frames):
            _, outcomes = await asyncio.to_thread(self.apply_group, target, group)
            now = str(time.time())
            for entry in group:
                outcome = outcomes.get(entry.batch_key)
                if outcome is None:
                    continue  # committed earlier, and its outcome object is gone: nothing to record it from
                await self._scripts.record_progress(
                    entry.upload,
                    entry.seq,
                    committed=outcome.committed,
                    failures=[e.SerializeToString() for e in outcome.failures],
                    version=outcome.version,
                    now=now,
                )
            await self.redis.xack(stream, queue.CONSUMER_GROUP, *(e.entry_id for e in group))
        await queue.trim_acknowledged(self.redis, stream)

    # applying (in a thread) ------------------------------------------------------------------------------------

    def apply_group(
        self, target_name: str, entries: Sequence[Entry]
    ) -> tuple[VersionRecord | None, dict[str, BatchOutcome]]:
        started = time.perf_counter()
        record, outcomes = self._apply_group(target_name, entries)
        if record is not None:
            pipeline_metrics.VERSIONING_COMMITS.inc()
            pipeline_metrics.VERSIONING_COMMITTED_BATCHES.inc(len(record.batches))
            pipeline_metrics.VERSIONING_COMMIT_SECONDS.observe(time.perf_counter() - started)
        return record, outcomes

    def _apply_group(
        self, target_name: str, entries: Sequence[Entry]
    ) -> tuple[VersionRecord | None, dict[str, BatchOutcome]]:
        target = parse_target(target_name)
        dataset = self._owner(target)
        if dataset is None:
            # Deleted (with force) while these batches were queued: they fail, and nothing recreates its tables.
            gone = {
                e.batch_key: BatchOutcome(
                    committed=0,
                    failures=[
                        upload_pb2.FrameError(
                            reason="TARGET_DELETED",
                            description=f"{target_name} was deleted before this batch was applied",
                            batch_seq=e.seq,
                            stage=upload_pb2.FRAME_ERROR_STAGE_APPLY,
                        )
                    ],
                )
                for e in entries
            }
            return None, gone
        tables = self.root.tables(target)
        if target_name not in self._recovered:
            if tables.legacy_pending():
                migration.migrate_target(self.store, self.root, target)
            # Versions committed before a crash cut the catalog's figures short: bring them up to date.
            for record in tables.recover():
                self._after_commit(target, dataset, record, tables.embedding_dimension(record))
            if not tables.legacy_pending():
                self._recovered.add(target_name)
        records = tables.versions()
        latest = records[-1] if records else None
        base_version = latest.version if latest else 0
        committed = self._committed.get(target_name)
        if committed is None or self._seen_version.get(target_name) != base_version:
            # First look at this target, or versions were committed elsewhere meanwhile (another worker held the
            # partition): which batch each version committed is read again.
            committed = self._committed[target_name] = {b: r.version for r in records for b in r.batches}
            self._seen_version[target_name] = base_version
        fresh = [e for e in entries if e.batch_key not in committed]
        outcomes = self._replayed_outcomes([e for e in entries if e.batch_key in committed], committed)
        if not fresh:
            return None, outcomes
        loaded: list[tuple[Entry, bytes, pa.Table | None]] = []
        rows_objects: list[str] = []
        for entry in fresh:
            try:
                body = self.store.get(entry.key)
            except NotFound:
                # The claim check points at nothing: the batch is reported failed rather than blocking the partition.
                log.error("batch object %s is missing; failing the batch", entry.key)
                lost = upload_pb2.FrameError(
                    reason="BATCH_OBJECT_MISSING",
                    description=f"the stored batch {entry.key} is missing",
                    batch_seq=entry.seq,
                    stage=upload_pb2.FRAME_ERROR_STAGE_APPLY,
                )
                outcomes[entry.batch_key] = BatchOutcome(committed=0, failures=[lost])
                continue
            rows_key = queue.rows_object(entry.upload, entry.seq)
            rows = batchrows.decode(self.store.get_or_none(rows_key), body)
            if rows is not None:
                rows_objects.append(rows_key)
            loaded.append((entry, body, rows))
        if not loaded:
            return None, outcomes
        labels = self._labels.get(target_name)
        if labels is None or labels.version != base_version:
            # First commit here, or another worker committed meanwhile: read who holds which label id.
            labels = self._labels[target_name] = LabelIndex(tables, base_version)
        inference = isinstance(target, InferenceSetName)
        # An inference set keeps the dimension its table was made with; a dataset the one its catalog entry fixed (or
        # its table, if the catalog lags behind a crash).
        dimension = (0 if inference else dataset.embedding_dimension) or tables.embedding_dimension(latest)
        applied: Applied | None = None
        stored: dict[str, Stored] = {}
        found_at = 0  # the frames-table version whose row addresses `stored` gives
        queued: list[Queued] = []
        whole_only = all(rows is not None and batchrows.whole(rows) for _, _, rows in loaded)
        if whole_only:
            # Every item a whole frame, encoded by ingest: applied from the rows, no frame decoded.
            whole = [QueuedRows(e.upload, e.seq, rows) for e, _, rows in loaded if rows is not None]
            ids = sorted({i for q in whole for i in q.rows.column("frame_id").to_pylist()})
            stored, found_at = tables.stored_at(ids, base_version)
            applied = apply_rows(whole, stored, embedding_dimension=dimension, owners=labels)
            queued = list(whole)
        if applied is None:
            batches = [QueuedBatch(e.upload, e.seq, ingest_service_pb2.FrameBatch.FromString(b)) for e, b, _ in loaded]
            queued = list(batches)
            # (batch key, item index) → the item's row, as ingest encoded it
            encoded: dict[tuple[str, int], tuple[pa.Table, int]] = {}
            for (_, _, rows), batch in zip(loaded, batches, strict=True):
                if rows is not None:
                    for row, item in enumerate(rows.column(batchrows.ITEM).to_pylist()):
                        encoded[(batch.key, item)] = (rows, row)
            ids = sorted(
                {f.frame_id for b in batches for f in b.batch.frames}
                | {u.frame_id for b in batches for u in b.batch.label_updates}
                | {f.frame_id for b in batches for f in b.batch.inference_frames}
            )
            # Only frames that a merge needs are read whole; for the rest the digest and label ids are enough.
            if not whole_only:  # else looked up already, for the same frames
                stored, found_at = tables.stored_at(ids, base_version)
            current = tables.get(sorted(needs_loading(batches) & stored.keys()), base_version)
            applied = apply_batches(
                batches,
                current,
                stored,
                inference=inference,
                embedding_dimension=dimension,
                owners=labels,
                max_frame_bytes=self.settings.ingest_max_frame_bytes,
            )
            for change in applied.changes:
                origin = applied.origins.get(change.frame_id)
                if origin is not None:
                    change.row = encoded.get(origin)  # an item committed as it came: its row is made already
        for q in queued:
            outcome = applied.outcomes.get(q.key, BatchOutcome())
            self.store.put(queue.outcome_object(q.upload, q.seq), _outcome_json(outcome), "application/json")
        located = {frame_id: s for frame_id, s in stored.items() if s.address >= 0}  # where the lookup found them
        commit = Commit(
            version=base_version + 1,
            changes=applied.changes,
            uploads=sorted({q.upload for q in queued}),
            batches=[q.key for q in queued],
            added=applied.added,
            modified=applied.modified,
            deleted=applied.deleted,
            embedding_dimension=applied.embedding_dimension,
            metadata=[] if inference else columnar.metadata_columns(dataset.metadata_schema),
            found={frame_id: s.address for frame_id, s in located.items()},
            found_at=found_at,
            found_labels={frame_id: len(s.label_ids) for frame_id, s in located.items()},
        )
        try:
            record = tables.commit(commit)
        except BaseException:
            self._labels.pop(target_name, None)  # the table may or may not have moved: read it again next time
            raise
        labels.advance(record.version, applied.released, applied.claimed)
        for key in rows_objects:  # committed: the rows are in the table now (a redelivery encodes again)
            with contextlib.suppress(ShoalError, OSError):
                self.store.delete(key)
        committed.update(dict.fromkeys(commit.batches, record.version))
        self._seen_version[target_name] = record.version
        for key in commit.batches:
            applied.outcomes.setdefault(key, BatchOutcome()).version = record.version
        self.commits += 1
        # Maintenance runs when the worker is idle (see `QUIET_SECONDS`), and in a long backlog every few commits, so
        # fragments do not pile up while a big upload streams in. Index segments are merged when idle only: a merge
        # rewrites the whole index, and the frames table keeps every index file its versions read.
        since = self._since_maintenance.get(target_name, 0) + 1
        self._since_maintenance[target_name] = since
        self._dirty.add(target_name)
        if since >= MAINTAIN_EVERY:
            self._maintain(target_name, idle=False)
        self._after_commit(target, dataset, record, applied.embedding_dimension)
        outcomes.update(applied.outcomes)
        return record, outcomes

    def _owner(self, target: DatasetName | InferenceSetName) -> dataset_pb2.Dataset | None:
        """The dataset `target` is or belongs to, None when `target` is gone."""
        try:
            if isinstance(target, DatasetName):
                return self.catalog.get_dataset(target)
            self.catalog.get_inference_set(target)
        except NotFound:
            return None
        try:
            return self.catalog.get_dataset(target.dataset_name)
        except NotFound:
            return dataset_pb2.Dataset()  # deleted meanwhile: apply anyway, nothing to fix in the catalog

    def migrate_owned(self) -> None:
        """Migrate the datasets (and inference sets) of the partitions this worker holds that still have tables of
        the release before; a failure is logged and tried again when the worker is next idle."""
        owned = frozenset(self.owned)
        for target in migration.targets(self.store):
            dataset = target.dataset_name if isinstance(target, InferenceSetName) else target
            if queue.partition_of(str(dataset), self.settings.ingest_partitions) not in owned:
                continue
            try:
                migration.migrate_target(self.store, self.root, target)
            except Exception:
                log.exception("migrating %s failed; trying again later", target)
                return
        self._migrated_for = owned

    def maintain_one(self) -> None:
        """Compact one recently committed dataset (or inference set) and update its indexes."""
        self._maintain(self._dirty.pop())

    def _maintain(self, target_name: str, *, idle: bool = True) -> None:
        self._since_maintenance[target_name] = 0
        target = parse_target(target_name)
        dataset = target.dataset_name if isinstance(target, InferenceSetName) else target
        if queue.partition_of(str(dataset), self.settings.ingest_partitions) not in self.owned:
            return  # another worker holds its partition now, and writes (and maintains) its tables
        tables = self.root.tables(target)
        try:
            compacted = tables.maintain(
                frame_fragments=FRAME_FRAGMENTS,
                log_fragments=LOG_FRAGMENTS,
                index_segments=INDEX_SEGMENTS if idle else None,
            )
            if compacted:
                log.info("compacted %s", target_name, extra={"fragments_removed": compacted})
            retention = self.settings.version_retention_seconds
            if retention > 0 and isinstance(target, DatasetName):
                expired = tables.retain(timedelta(seconds=retention), pinned_versions(self.catalog, target))
                if expired:
                    log.info("%s: %d versions past retention", target_name, len(expired))
        except Exception:  # never fatal: the tables stay correct, only less compact; retried after the next commits
            log.exception("maintenance of %s failed", target_name)

    def _replayed_outcomes(self, entries: Sequence[Entry], committed: dict[str, int]) -> dict[str, BatchOutcome]:
        """Entries whose batches were committed but perhaps not recorded on their uploads (a crash in between): their
        outcome comes back from the object written before the commit, and the version from the version record that
        names the batch; recording it again is a no-op (HSETNX)."""
        outcomes = {}
        for entry in entries:
            try:
                raw = json.loads(self.store.get(queue.outcome_object(entry.upload, entry.seq)))
            except NotFound:
                continue
            outcomes[entry.batch_key] = BatchOutcome(
                committed=int(raw["committed"]),
                failures=[upload_pb2.FrameError.FromString(base64.b64decode(e)) for e in raw["errors"]],
                version=committed[entry.batch_key],
            )
        return outcomes

    def _after_commit(
        self, target: DatasetName | InferenceSetName, dataset: dataset_pb2.Dataset, record: VersionRecord, dim: int
    ) -> None:
        """Catalog figures that follow a commit: latest version and frame count; the embedding dimension once fixed."""
        if isinstance(target, InferenceSetName):

            def grow(current: dataset_pb2.InferenceSet) -> None:
                current.frame_count = record.frame_count

            self.catalog.update_inference_set_counts(target, grow)
            return

        def change(current: dataset_pb2.Dataset) -> None:
            current.latest_version = max(current.latest_version, record.version)
            current.frame_count = record.frame_count
            if dim and not current.embedding_dimension:
                current.embedding_dimension = dim

        if dataset.name:
            self.catalog.update_dataset_internal(target, change)


def pinned_versions(catalog: Catalog, dataset: DatasetName) -> set[int]:
    """Dataset versions retention must keep: checkpointed ones, and those inference sets and segments are pinned to.
    (Checkpoints are also kept by their tags; reading them here keeps them even if a tag was never written.)"""
    keep: set[int] = set()
    token = ""
    while True:
        page = catalog.store.list(f"catalog/checkpoints/{dataset.project}/{dataset.dataset}/", 1000, token)
        for obj in page.objects:
            keep.add(int(json.loads(catalog.store.get(obj.key))["resource"].get("version", 0)))
        if not (token := page.next_page_token):
            break
    while True:
        sets, token = catalog.list_inference_sets(dataset, 1000, token)
        keep.update(s.dataset_version for s in sets)
        if not token:
            break
    while True:
        ids, token = catalog.list_segment_ids(dataset, 1000, token)
        for segment_id in ids:
            keep.update(e.version for e in catalog.get_segment(dataset, segment_id).elements)
        if not token:
            break
    return keep


def _split(groups: OrderedDict[str, list[Entry]], max_frames: int) -> list[tuple[str, list[Entry]]]:
    """Each dataset's entries, in order, cut into runs of at most `max_frames` frames (at least one entry each)."""
    out: list[tuple[str, list[Entry]]] = []
    for target, group in groups.items():
        run: list[Entry] = []
        frames = 0
        for entry in group:
            if run and frames + entry.frames > max_frames:
                out.append((target, run))
                run, frames = [], 0
            run.append(entry)
            frames += entry.frames
        if run:
            out.append((target, run))
    return out


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _outcome_json(outcome: BatchOutcome) -> bytes:
    errors = [base64.b64encode(e.SerializeToString()).decode() for e in outcome.failures]
    return json.dumps({"committed": outcome.committed, "errors": errors}).encode()
