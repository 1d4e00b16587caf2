"""Upload sessions: the producer side of the ingest queue.

For every batch: claim its seq in the store with the digest of the batch as received (create-only) → validate →
write the accepted frames as one immutable object (create-only, deterministic bytes, so a retried batch writes nothing
new) → in one Redis transaction, XADD the claim check to the dataset's stream partition and record the batch, its
digest and its counts → acknowledge. A seq comes with one content only: a batch whose seq is recorded (in Redis, or
failing that in the store) with the same digest is acknowledged as a duplicate and queued nothing; with another digest
it is refused (SEQ_CONTENT_MISMATCH), never silently dropped. A crash at any point before the acknowledgement leaves
the client to retry; after it, the batch is in the queue and its object in the store.

An open stream keeps its upload alive (a heartbeat in the upload's record); an upload left unclosed with no live
stream for `ingest_upload_idle_seconds` (its stream refused, broken, or its server killed) has expired: it reads as
closed, so it ends as its queued batches end, and FAILED when nothing of it was committed. A stream resuming it
(the same upload id) makes it RECEIVING again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, cast

import pyarrow as pa
from google.protobuf import json_format, timestamp_pb2
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shoal.ingest.encoders import Encoders
from shoal.ingest.validation import AssetFacts, BatchValidator, TargetRules, batch_urls, rules_for
from shoal.kit import pipeline_metrics
from shoal.kit.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound, ResourceExhausted
from shoal.kit.names import DatasetName, InferenceSetName, UploadName, check_id, parse_target, parse_upload
from shoal.kit.objectstore import ObjectNotFound, ObjectStore, WriteConflict
from shoal.kit.paging import offset_of, offset_token
from shoal.kit.paging import page_size as page_size_of
from shoal.kit.settings import Settings
from shoal.storage import batchrows, columnar, queue
from shoal.storage.assetnames import AssetName, may_reference_assets, referenced_asset
from shoal.storage.catalog import Catalog
from shoal.v1 import asset_pb2, dataset_pb2, frame_pb2, ingest_service_pb2, upload_pb2

ASSET_CACHE_SECONDS: Final = 60.0
# Uploads a ListUploads page holds at most: each is read from Redis on its own (its progress hash).
LIST_UPLOADS_CAP: Final = 500

log = logging.getLogger("shoal.ingest.uploads")

P: Final = queue.Progress


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def upload_state(fields: dict[str, int], closed: bool, *, expired: bool = False) -> int:
    """RECEIVING while the client sends; PROCESSING until every queued batch is applied; then COMMITTED,
    PARTIALLY_FAILED (some frames failed) or FAILED (none went through). An expired upload (abandoned unclosed) ends
    like a closed one, and FAILED when nothing of it was committed."""
    if not (closed or expired):
        return upload_pb2.UPLOAD_STATE_RECEIVING
    if fields[P.BATCHES_COMMITTED] < fields.get(P.BATCHES_QUEUED, 0):
        return upload_pb2.UPLOAD_STATE_PROCESSING
    failed = fields[P.FRAMES_REJECTED] + fields[P.FRAMES_FAILED]
    if fields[P.FRAMES_COMMITTED] == 0 and (failed or expired):
        return upload_pb2.UPLOAD_STATE_FAILED
    if failed == 0:
        return upload_pb2.UPLOAD_STATE_COMMITTED
    return upload_pb2.UPLOAD_STATE_PARTIALLY_FAILED


class Turn:
    """A batch's place in its stream, whose batches are worked on side by side (one's validation while the one
    before writes its objects): a batch is validated only after the one before it (the upload's memory of label ids
    follows the stream's order) and queued only after it (the worker applies a partition's batches in queue order).
    A batch that fails, or follows one that failed, queues nothing."""

    def __init__(self, before: Turn | None = None) -> None:
        self.before = before
        loop = asyncio.get_running_loop()
        self.validated: asyncio.Future[bool] = loop.create_future()
        self.queued: asyncio.Future[bool] = loop.create_future()

    async def validate(self) -> None:
        """Wait for the batch before to be validated (or found a duplicate)."""
        if self.before is not None and not await self.before.validated:
            raise _AbandonedError

    def validated_now(self) -> None:
        self._settle(self.validated, True)

    async def queue(self) -> None:
        """Wait for the batch before to be queued (or found a duplicate)."""
        if self.before is not None and not await self.before.queued:
            raise _AbandonedError

    async def done(self) -> None:
        """This batch is queued, or was a duplicate: once the ones before are, the next may go on."""
        await self.validate()
        self.validated_now()
        await self.queue()
        self._settle(self.queued, True)

    def failed(self) -> None:
        self._settle(self.validated, False)
        self._settle(self.queued, False)

    @staticmethod
    def _settle(future: asyncio.Future[bool], ok: bool) -> None:
        if not future.done():
            future.set_result(ok)


class _AbandonedError(Exception):
    """A batch after one that failed: the stream ends with that failure, and this batch queued nothing."""


# Batches of one stream worked on at once: while one waits for the store or Redis, the next is validated and encoded.
STREAM_PIPELINE: Final = 3


@dataclass
class Session:
    """One open upload stream."""

    name: UploadName
    target: DatasetName | InferenceSetName
    validator: BatchValidator
    partition: int


class Uploads:
    """Opens uploads, takes their batches, and answers for their progress."""

    def __init__(self, settings: Settings, store: ObjectStore, redis: Redis) -> None:
        self.settings = settings
        self.store = store
        self.redis = redis
        self.catalog = Catalog(store)
        self._groups_ready: set[int] = set()
        self._scripts = queue.Scripts(redis)
        self._asset_cache: dict[AssetName, tuple[AssetFacts, float]] = {}
        self.encoders = Encoders(settings.ingest_encode_processes)

    async def aclose(self) -> None:
        """Stop the row encoder processes."""
        self.encoders.close()

    async def _io(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    def asset_facts(self, urls: Iterable[str]) -> dict[str, AssetFacts | None]:
        """For each URL that points to a Shoal asset, what its record says (None: it does not exist). Records are
        immutable while they exist, so found ones are remembered for a minute."""
        out: dict[str, AssetFacts | None] = {}
        now = time.monotonic()
        for url in urls:
            name = referenced_asset(url)
            if name is None:
                continue
            cached = self._asset_cache.get(name)
            if cached is not None and now - cached[1] < ASSET_CACHE_SECONDS:
                out[url] = cached[0]
                continue
            try:
                record = json_format.Parse(self.store.get(name.record), asset_pb2.Asset(), ignore_unknown_fields=True)
            except NotFound:
                out[url] = None
                continue
            info = record.mask if record.HasField("mask") else record.image
            facts = AssetFacts(name.project, name.dataset, record.kind, info.width, info.height)
            if len(self._asset_cache) > 100_000:
                self._asset_cache.clear()
            self._asset_cache[name] = (facts, now)
            out[url] = facts
        return out

    async def _rules(self, target: DatasetName | InferenceSetName) -> TargetRules:
        def load() -> TargetRules:
            dataset_name = target.dataset_name if isinstance(target, InferenceSetName) else target
            project = self.catalog.get_project(dataset_name.parent)
            dataset = self.catalog.get_dataset(dataset_name)
            if isinstance(target, InferenceSetName):
                self.catalog.get_inference_set(target)
            return rules_for(
                ((e.name, [k.name for k in e.keypoints]) for e in project.class_map.entries),
                dataset.metadata_schema,
                dataset,
                inference=isinstance(target, InferenceSetName),
                max_frames_per_batch=self.settings.ingest_max_batch_frames,
                dataset_key=(dataset_name.project, dataset_name.dataset),
                max_metadata_value_bytes=self.settings.ingest_max_metadata_value_bytes,
                max_attribute_bytes=self.settings.ingest_max_attribute_bytes,
                max_frame_bytes=self.settings.ingest_max_frame_bytes,
            )

        rules: TargetRules = await self._io(load)
        return rules

    async def open(self, target: DatasetName | InferenceSetName, upload_id: str) -> tuple[Session, upload_pb2.Upload]:
        """Start an upload, or resume it when `upload_id` names one of this target."""
        if upload_id:
            check_id(upload_id, "start.upload_id")
        else:
            upload_id = "u" + uuid.uuid4().hex
        dataset = target.dataset_name if isinstance(target, InferenceSetName) else target
        name = UploadName(
            dataset.project,
            dataset.dataset,
            target.inference_set if isinstance(target, InferenceSetName) else "",
            upload_id,
        )
        rules = await self._rules(target)
        now = time.time()
        record = json.dumps({"name": str(name), "target": str(target), "create_time": now}).encode()
        try:
            await self._io(
                lambda: self.store.put_if(queue.upload_record_object(str(name)), record, "application/json", etag=None)
            )
        except WriteConflict:
            existing = json.loads(await self._io(self.store.get, queue.upload_record_object(str(name))))
            now = float(existing["create_time"])
        key = queue.upload_key(str(name))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, P.TARGET, str(target))
            pipe.hsetnx(key, P.CREATE_TIME, str(now))
            pipe.hset(key, mapping={P.CLOSED: 0, P.UPDATE_TIME: str(time.time()), P.ALIVE_TIME: str(time.time())})
            pipe.zadd(queue.uploads_index_key(str(target)), {str(name): now}, nx=True)
            await pipe.execute()
        partition = queue.partition_of(str(dataset), self.settings.ingest_partitions)
        await self._ensure_group(partition)
        return Session(name, target, BatchValidator(rules), partition), await self.get(name)

    async def _ensure_group(self, partition: int) -> None:
        if partition in self._groups_ready:
            return
        await queue.ensure_group(self.redis, queue.stream_key(partition))
        self._groups_ready.add(partition)

    async def queue_depth(self, partition: int) -> int:
        """Batches queued on the partition and not yet applied (undelivered lag plus delivered-but-pending), from the
        consumer group; counted exactly up to past the refusal limit."""
        return await queue.backlog(
            self.redis, queue.stream_key(partition), cap=self.settings.ingest_max_queue_depth + 1
        )

    async def add_batch(
        self, session: Session, batch: ingest_service_pb2.FrameBatch, turn: Turn | None = None
    ) -> ingest_service_pb2.BatchAck:
        """Take one batch of the stream; `turn` orders it after the batches of the stream sent before it."""
        turn = turn or Turn()
        try:
            ack = await self._add_batch(session, batch, turn)
            await turn.done()
        except BaseException:
            turn.failed()
            raise
        return ack

    async def _add_batch(
        self, session: Session, batch: ingest_service_pb2.FrameBatch, turn: Turn
    ) -> ingest_service_pb2.BatchAck:
        name = str(session.name)
        if batch.seq < 0:
            raise InvalidArgument.of(
                [FieldViolation("batch.seq", f"must not be negative, got {batch.seq}")], reason="INVALID_SEQ"
            )
        size = len(batch.frames) + len(batch.label_updates) + len(batch.inference_frames)
        if size > self.settings.ingest_max_batch_frames:
            raise InvalidArgument.of(
                [
                    FieldViolation(
                        "batch.frames",
                        f"{size} frames in one batch; the limit is {self.settings.ingest_max_batch_frames}",
                    )
                ],
                reason="BATCH_TOO_LARGE",
            )
        raw = batch.SerializeToString(deterministic=True)
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        done = await self.redis.hget(queue.upload_batches_key(name), str(batch.seq))
        if done is not None:
            summary = json.loads(done)
            if summary.get("digest", digest) != digest:  # records made before digests were kept match any content
                raise _seq_mismatch(name, batch.seq)
            return ingest_service_pb2.BatchAck(seq=batch.seq, accepted=summary["accepted"], duplicate=True)
        await self._room(session)
        resent = await self._claim_seq(name, batch.seq, digest)
        urls = batch_urls(batch) if may_reference_assets(raw) else set()
        assets = await self._io(self.asset_facts, urls) if urls else {}
        early = None if urls else await self._early_rows(session, batch, raw)
        await turn.validate()
        result = session.validator.validate(batch, assets, early.table if early is not None else None)
        turn.validated_now()
        accepted = _size(result.accepted)
        key = ""
        if accepted:
            key = queue.batch_object(name, batch.seq)
            body = raw if result.accepted is batch else result.accepted.SerializeToString(deterministic=True)
            stored = await self._write_once(key, body, name, batch.seq, resent=resent)
            if stored is body:
                try:
                    if early is not None and result.accepted is batch and early.dimension == _dimension(session):
                        await self._put_rows(name, batch.seq, early.encoded)  # the rows are those of `body`
                    else:
                        await self._write_rows(session, body, name, batch.seq)
                except Exception:  # the rows only save the worker work: without them it encodes the frames itself
                    log.exception("rows of %s#%d were not stored", name, batch.seq)
            else:
                # The same batch, stored when it was first sent (validated then against what that stream had seen):
                # the stored frames are what was acknowledged and what the claim check delivers.
                accepted = _size(ingest_service_pb2.FrameBatch.FromString(stored))
        if result.errors:
            report = ingest_service_pb2.ListUploadErrorsResponse(errors=result.errors).SerializeToString(
                deterministic=True
            )
            await self._write_once(queue.rejects_object(name, batch.seq), report, name, batch.seq, resent=resent)
        summary = json.dumps(
            {
                "accepted": accepted,
                "rejected": result.rejected,
                "received": result.received,
                "key": key,
                "digest": digest,
            }
        )
        await turn.queue()
        if accepted:
            await self._room(session)  # again, now the batches before it in the stream are queued
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(queue.upload_batches_key(name), str(batch.seq), summary)
            if accepted:
                pipe.xadd(
                    queue.stream_key(session.partition),
                    queue.claim_check(name, str(session.target), batch.seq, key, accepted),
                )
                pipe.hincrby(queue.upload_key(name), P.BATCHES_QUEUED, 1)
            pipe.hincrby(queue.upload_key(name), P.BATCHES_RECEIVED, 1)
            pipe.hincrby(queue.upload_key(name), P.FRAMES_RECEIVED, result.received)
            pipe.hincrby(queue.upload_key(name), P.FRAMES_ACCEPTED, accepted)
            pipe.hincrby(queue.upload_key(name), P.FRAMES_REJECTED, result.rejected)
            if result.errors:
                pipe.rpush(queue.upload_errors_key(name), *(e.SerializeToString() for e in result.errors))
            pipe.hset(queue.upload_key(name), mapping={P.UPDATE_TIME: str(time.time()), P.ALIVE_TIME: str(time.time())})
            await pipe.execute()
        pipeline_metrics.INGEST_FRAMES.labels(outcome="accepted").inc(accepted)
        pipeline_metrics.INGEST_FRAMES.labels(outcome="rejected").inc(result.rejected)
        return ingest_service_pb2.BatchAck(seq=batch.seq, accepted=accepted, rejected=result.errors)

    async def _room(self, session: Session) -> None:
        """RESOURCE_EXHAUSTED (with a retry delay) while the partition's queue is full."""
        depth = await self.queue_depth(session.partition)
        pipeline_metrics.INGEST_QUEUE_DEPTH.labels(partition=str(session.partition)).set(depth)
        if depth >= self.settings.ingest_max_queue_depth:
            pipeline_metrics.INGEST_BATCHES_REFUSED.inc()
            raise ResourceExhausted(
                f"the ingest queue holds {depth} batches (limit {self.settings.ingest_max_queue_depth}); retry later",
                reason="QUEUE_FULL",
                metadata={"queue_depth": str(depth)},
                retry_delay_seconds=min(30.0, 0.5 + depth / max(1, self.settings.ingest_max_queue_depth)),
            )

    async def _early_rows(
        self, session: Session, batch: ingest_service_pb2.FrameBatch, raw: bytes
    ) -> _EarlyRows | None:
        """The rows of a batch of whole frames of a dataset (serialized as `raw`), encoded by a helper process before
        the batch is validated, so validation reads their columns (see `BatchValidator.validate`); None for other
        batches, or frames that cannot be encoded."""
        if session.validator.target.inference or batch.label_updates or not batch.frames:
            return None
        if any(f.change_type not in _WHOLE_CHANGES for f in batch.frames):
            return None
        dimension = _dimension(session)
        encoded = await self._encode(session, raw, dimension, unchecked=True)
        if encoded is None:
            return None
        table = pa.ipc.open_stream(encoded).read_all()
        if (table.schema.metadata or {}).get(batchrows.WHOLE_KEY) != b"1":
            return None
        return _EarlyRows(table, encoded, dimension)

    async def _encode(self, session: Session, body: bytes, dimension: int, *, unchecked: bool = False) -> bytes | None:
        rules = session.validator.target
        schema = dataset_pb2.MetadataSchema(
            fields=[
                dataset_pb2.MetadataField(name=k, type=t, element_type=e)  # type: ignore[arg-type]
                for k, (t, e) in rules.schema.items()
            ]
        )
        return await self.encoders.encode(
            body,
            inference=rules.inference,
            embedding_dimension=dimension,
            metadata=[] if rules.inference else columnar.metadata_columns(schema),
            unchecked=unchecked,
        )

    async def _write_rows(self, session: Session, body: bytes, name: str, seq: int) -> None:
        """The accepted frames (stored as `body`) as table rows beside the batch object, for the worker (see
        `storage.batchrows`), encoded by a helper process while the stream's next batch is validated here."""
        rows = await self._encode(session, body, _dimension(session))
        if rows is not None:
            await self._put_rows(name, seq, rows)

    async def _put_rows(self, name: str, seq: int, rows: bytes) -> None:
        def put() -> None:
            with contextlib.suppress(WriteConflict):  # written by an earlier try of this batch: the same rows
                self.store.put_if(queue.rows_object(name, seq), rows, "application/vnd.apache.arrow.stream", etag=None)

        await self._io(put)

    async def _claim_seq(self, name: str, seq: int, digest: str) -> bool:
        """Record in the store what `seq` carries, create-only. True when it was recorded before with the same digest
        (a resend); another digest is refused."""
        body = json.dumps({"digest": digest}).encode()
        key = queue.seq_object(name, seq)
        try:
            await self._io(lambda: self.store.put_if(key, body, "application/json", etag=None))
        except WriteConflict:
            existing = json.loads(await self._io(self.store.get, key))
            if existing.get("digest") != digest:
                raise _seq_mismatch(name, seq) from None
            return True
        return False

    async def _write_once(self, key: str, body: bytes, name: str, seq: int, *, resent: bool) -> bytes:
        """Create-only write; returns the bytes stored under `key`. An existing object with the same bytes is a retry
        and fine; with other bytes it is kept when the batch is a resend of the same content (`resent`: validation
        may differ across streams), and otherwise means the seq was used before with other content."""
        try:
            await self._io(lambda: self.store.put_if(key, body, "application/x-protobuf", etag=None))
        except WriteConflict:
            existing: bytes = await self._io(self.store.get, key)
            if existing == body:
                return body
            if not resent:
                raise _seq_mismatch(name, seq) from None
            return existing
        return body

    async def keep_alive(self, session: Session) -> None:
        """Mark the upload's stream alive until cancelled (when the stream ends, however it ends)."""
        interval = min(30.0, self.settings.ingest_upload_idle_seconds / 4)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._scripts.mark_alive(str(session.name), time.time())
            except (RedisError, OSError) as err:  # the next beat may get through; the timeout leaves room for it
                log.warning("cannot mark upload %s alive: %s", session.name, err)

    async def close(self, session: Session) -> upload_pb2.Upload:
        name = str(session.name)
        await self.redis.hset(queue.upload_key(name), mapping={P.CLOSED: 1, P.UPDATE_TIME: str(time.time())})
        return await self.get(session.name)

    async def get(self, name: UploadName) -> upload_pb2.Upload:
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(queue.upload_key(str(name))))
        if not raw:
            try:
                await self._io(self.store.stat, queue.upload_record_object(str(name)))
            except ObjectNotFound:
                raise NotFound(
                    f"{name} does not exist", reason="UPLOAD_NOT_FOUND", metadata={"name": str(name)}
                ) from None
            raise NotFound(
                f"{name} has no progress record (Redis lost it); its batches are in the store",
                reason="UPLOAD_PROGRESS_LOST",
                metadata={"name": str(name)},
            )
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        counts = {c: int(fields.get(c, 0)) for c in (*P.COUNTERS, P.BATCHES_QUEUED)}
        closed = fields.get(P.CLOSED) == "1"
        alive = float(fields.get(P.ALIVE_TIME) or fields.get(P.UPDATE_TIME) or fields.get(P.CREATE_TIME) or 0)
        expired = not closed and time.time() - alive > self.settings.ingest_upload_idle_seconds
        upload = upload_pb2.Upload(
            name=str(name),
            target=fields.get(P.TARGET, str(name.target)),
            state=upload_state(counts, closed, expired=expired),  # type: ignore[arg-type]
        )
        for counter in P.COUNTERS:
            setattr(upload, counter, counts[counter])
        # Recorded as batches are; a batch recovered after a crash may add an older version after a newer one.
        upload.versions.extend(sorted({int(v) for v in fields.get(P.VERSIONS, "").split(",") if v and v != "0"}))
        upload.create_time.CopyFrom(_timestamp(float(fields.get(P.CREATE_TIME, 0))))
        upload.update_time.CopyFrom(_timestamp(float(fields.get(P.UPDATE_TIME, 0))))
        return upload

    async def list_uploads(
        self, target: DatasetName | InferenceSetName, page_size: int, page_token: str
    ) -> tuple[list[upload_pb2.Upload], str]:
        size = page_size_of(page_size, cap=LIST_UPLOADS_CAP)
        start = offset_of(page_token)
        names = cast(list[bytes], await self.redis.zrevrange(queue.uploads_index_key(str(target)), start, start + size))
        page = [await self.get(parse_upload(n.decode())) for n in names[:size]]
        return page, (offset_token(start + size) if len(names) > size else "")

    async def list_errors(
        self, name: UploadName, page_size: int, page_token: str
    ) -> tuple[list[upload_pb2.FrameError], str]:
        await self.get(name)
        size = page_size_of(page_size)
        start = offset_of(page_token)
        raw = cast(list[bytes], await self.redis.lrange(queue.upload_errors_key(str(name)), start, start + size))
        errors = [upload_pb2.FrameError.FromString(r) for r in raw[:size]]
        return errors, (offset_token(start + size) if len(raw) > size else "")


_WHOLE_CHANGES: Final = (frame_pb2.CHANGE_TYPE_UNSPECIFIED, frame_pb2.CHANGE_TYPE_ADD)


@dataclass(frozen=True)
class _EarlyRows:
    """A batch's rows encoded before it was validated: as a table, as stored, and the embedding dimension used."""

    table: pa.Table
    encoded: bytes
    dimension: int


def _dimension(session: Session) -> int:
    """The embedding dimension a session's rows are encoded with: the upload's, else the dataset's (0: not known)."""
    return session.validator.memory.embedding_dimension or session.validator.target.embedding_dimension


def _size(batch: ingest_service_pb2.FrameBatch) -> int:
    return len(batch.frames) + len(batch.label_updates) + len(batch.inference_frames)


def _seq_mismatch(upload: str, seq: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"batch seq {seq} of {upload} was sent before with other content; a seq carries one content only",
        reason="SEQ_CONTENT_MISMATCH",
        metadata={"upload": upload, "seq": str(seq)},
        violations=(
            FieldViolation(
                "batch.seq", f"seq {seq} was sent before with other content; resend it unchanged or use a new seq"
            ),
        ),
    )


async def stream_upload(
    uploads: Uploads,
    requests: AsyncIterator[ingest_service_pb2.UploadFramesRequest],
    authorize: Callable[[DatasetName | InferenceSetName], Awaitable[None]],
) -> AsyncIterator[ingest_service_pb2.UploadFramesResponse]:
    """The UploadFrames conversation: `start`, then batches each answered by an ack, then a summary. Up to
    `STREAM_PIPELINE` batches are worked on at once, in the order their `Turn`s set; their acks go back in the order
    the batches came, and the first failure ends the stream (the batches after it queue nothing). While it lasts,
    the upload is kept alive; however it ends, the heartbeat stops and the batches still being worked on are
    cancelled."""
    heartbeat: asyncio.Task[None] | None = None
    reader: asyncio.Task[None] | None = None
    working: asyncio.Queue[asyncio.Task[ingest_service_pb2.BatchAck] | Exception | None] = asyncio.Queue(
        STREAM_PIPELINE
    )
    try:
        first = await anext(aiter(requests), None)
        if first is None:
            return
        if first.WhichOneof("kind") != "start":
            raise InvalidArgument.of(
                [FieldViolation("start", "the first message of an upload must be `start`")], reason="MISSING_START"
            )
        target = parse_target(first.start.target, "start.target")
        await authorize(target)
        session, upload = await uploads.open(target, first.start.upload_id)
        heartbeat = asyncio.create_task(uploads.keep_alive(session))
        yield ingest_service_pb2.UploadFramesResponse(upload=upload)

        async def read() -> None:
            before: Turn | None = None
            seqs: set[int] = set()
            try:
                async for request in requests:
                    if request.WhichOneof("kind") != "batch":
                        raise InvalidArgument.of(
                            [FieldViolation("start", "an upload has one `start` message")], reason="DUPLICATE_START"
                        )
                    if request.batch.seq in seqs and before is not None:
                        await before.queued  # a seq sent twice: the second is a duplicate of the first, once queued
                    seqs.add(request.batch.seq)
                    before = Turn(before)
                    task = asyncio.create_task(uploads.add_batch(session, request.batch, before))
                    try:
                        await working.put(task)
                    except asyncio.CancelledError:
                        task.cancel()
                        raise
            except Exception as err:  # the stream broke, or sent what it must not: after the acks before it
                await working.put(err)
            else:
                await working.put(None)

        reader = asyncio.create_task(read())
        while (item := await working.get()) is not None:
            if isinstance(item, Exception):
                raise item
            yield ingest_service_pb2.UploadFramesResponse(ack=await item)
        yield ingest_service_pb2.UploadFramesResponse(summary=await uploads.close(session))
    finally:
        if heartbeat is not None:
            heartbeat.cancel()
        if reader is not None:
            reader.cancel()
        while not working.empty():
            left = working.get_nowait()
            if not isinstance(left, asyncio.Task):
                continue
            if not left.done():
                left.cancel()
            elif not left.cancelled():
                left.exception()  # seen: a batch after the one that failed
