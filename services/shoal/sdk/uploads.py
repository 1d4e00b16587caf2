"""Streaming uploads: frames in batches over UploadFrames, one stream at a time, reopened with the same upload id
after a transient failure until every batch is acknowledged.

- The source (the caller's items, often a generator) is advanced by one thread at a time, under the feed's pull
  lock, and only for the newest stream. grpc drives each stream's request iterator from a thread of its own, so the
  iterator of a stream that broke may still be inside the source when the next stream starts: it finishes that
  pull, the batch it got is kept for the next stream, and it pulls nothing more. Without this a generator is
  entered twice ("generator already executing") and the upload fails.
- A batch is kept until the server acknowledges it. A new stream sends the kept batches first, in seq order, then
  new ones; the server recognises a batch it already queued by (upload, seq), so nothing is queued twice.
- The retry budget is per outage: `max_retries` failed streams in a row. A stream on which the server acknowledged
  something ends the outage, so any number of separate restarts of the ingest service are ridden out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from shoal.kit.status import unpack
from shoal.sdk.errors import UploadError
from shoal.sdk.retries import backoff, retryable
from shoal.v1 import frame_pb2, ingest_service_pb2, ingest_service_pb2_grpc, label_pb2, upload_pb2

log = logging.getLogger("shoal.sdk")

Item = frame_pb2.Frame | label_pb2.LabelUpdate | frame_pb2.InferenceFrame


@dataclass
class UploadReport:
    """What an upload did: its resource name, acknowledged counts and every frame rejected at validation."""

    name: str
    batches: int = 0
    accepted: int = 0
    rejected: list[upload_pb2.FrameError] = field(default_factory=list)
    retries: int = 0
    duplicates: int = 0

    @property
    def upload_id(self) -> str:
        return self.name.rsplit("/", 1)[1]


def batches(items: Iterable[Item], size: int) -> Iterator[ingest_service_pb2.FrameBatch]:
    """`items` in FrameBatches of `size`, numbered from 0."""
    batch = ingest_service_pb2.FrameBatch(seq=0)
    count = 0
    seq = 0
    for item in items:
        if isinstance(item, frame_pb2.Frame):
            batch.frames.append(item)
        elif isinstance(item, label_pb2.LabelUpdate):
            batch.label_updates.append(item)
        else:
            batch.inference_frames.append(item)
        count += 1
        if count == size:
            yield batch
            seq += 1
            batch, count = ingest_service_pb2.FrameBatch(seq=seq), 0
    if count:
        yield batch


class Progress:
    """A progress bar on stderr (tqdm) when asked for; silent otherwise."""

    def __init__(self, total: int | None, enabled: bool) -> None:
        self.bar: Any = None
        if enabled:
            from tqdm import tqdm  # noqa: PLC0415

            self.bar = tqdm(total=total, unit="frame", unit_scale=True, desc="upload")

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Feed:
    """The batches of one upload: pulled from the source for the newest stream only, kept until acknowledged."""

    def __init__(self, source: Iterator[ingest_service_pb2.FrameBatch]) -> None:
        self._source = source
        self._pull = threading.Lock()  # held while the source runs, which may take as long as the caller's code
        self._state = threading.Lock()  # held briefly, never while the source runs
        self._unacked: dict[int, ingest_service_pb2.FrameBatch] = {}
        self._stream = 0
        self._exhausted = False
        self.error: Exception | None = None

    def open_stream(self) -> int:
        """A number for a new stream; from now on the streams before it get nothing more. Does not wait for a pull
        in progress: that pull's batch is kept, and the new stream sends it."""
        with self._state:
            self._stream += 1
            return self._stream

    def take(self, stream: int, after: int) -> ingest_service_pb2.FrameBatch | None:
        """The next batch for `stream` after seq `after`: a kept one, else a new one from the source. None when the
        source is done (or raised, see `error`) or a newer stream has taken over."""
        with self._pull:
            with self._state:
                if stream != self._stream:
                    return None
                kept = [seq for seq in self._unacked if seq > after]
                if kept:
                    return self._unacked[min(kept)]
                if self._exhausted or self.error is not None:
                    return None
            try:
                batch = next(self._source)
            except StopIteration:
                with self._state:
                    self._exhausted = True
                return None
            except Exception as err:  # the caller's items raised: the upload stops and re-raises it
                with self._state:
                    self.error = err
                return None
            with self._state:
                self._unacked[batch.seq] = batch
                return batch if stream == self._stream else None

    def acknowledge(self, seq: int) -> ingest_service_pb2.FrameBatch | None:
        """Forget an acknowledged batch; None when it was not kept (already acknowledged)."""
        with self._state:
            return self._unacked.pop(seq, None)

    @property
    def done(self) -> bool:
        """Every batch of the source pulled and acknowledged."""
        with self._state:
            return self._exhausted and not self._unacked


def upload(
    stub: ingest_service_pb2_grpc.IngestServiceStub,
    metadata: Callable[[], tuple[tuple[str, str], ...]],
    target: str,
    items: Iterable[Item],
    *,
    upload_id: str,
    batch_size: int,
    window: int,
    max_retries: int,
    progress: Progress,
) -> UploadReport:
    """Stream `items` to `target` until every batch is acknowledged; see the module's docstring. UploadError when
    a failure is not transient or one outage outlasts `max_retries` reopenings; an exception raised by `items`
    propagates as itself."""
    feed = Feed(batches(items, batch_size))
    report = UploadReport(name="")
    failures = 0
    try:
        while True:
            acknowledged = report.batches
            failure: grpc.RpcError | None = None
            try:
                _stream(
                    stub,
                    metadata,
                    target,
                    upload_id=upload_id,
                    window=window,
                    feed=feed,
                    report=report,
                    progress=progress,
                )
            except grpc.RpcError as err:
                failure = err
            if feed.error is not None:
                raise feed.error
            if failure is None and feed.done:
                return report
            if report.batches > acknowledged:
                failures = 0  # the server made progress on this stream: whatever broke it is a new outage
            if failure is None:
                reason, server_delay = "the server closed the stream with batches unacknowledged", 0.0
            else:
                reason, server_delay = (
                    f"{failure.code().name}: {failure.details()}",
                    unpack(failure).retry_delay_seconds,
                )
            if failure is not None and not retryable(failure):
                raise UploadError(f"upload {upload_id} to {target} failed: {reason}") from failure
            if failures >= max_retries:
                raise UploadError(
                    f"upload {upload_id} to {target} failed: {reason} (still failing after {failures} retries)"
                ) from failure
            delay = backoff(failures, server_delay)
            log.warning("upload stream broke (%s); resuming in %.1f s", reason, delay)
            failures += 1
            report.retries += 1
            time.sleep(delay)
    finally:
        progress.close()


def _stream(
    stub: ingest_service_pb2_grpc.IngestServiceStub,
    metadata: Callable[[], tuple[tuple[str, str], ...]],
    target: str,
    *,
    upload_id: str,
    window: int,
    feed: Feed,
    report: UploadReport,
    progress: Progress,
) -> None:
    """One stream: the kept batches, then new ones, at most `window` unacknowledged. Returns when the server has
    closed the stream; grpc.RpcError when it broke."""
    number = feed.open_stream()
    slots = threading.Semaphore(window)
    ended = threading.Event()
    opened = threading.Event()
    calls: list[Any] = []

    def requests() -> Iterator[ingest_service_pb2.UploadFramesRequest]:
        yield ingest_service_pb2.UploadFramesRequest(
            start=ingest_service_pb2.UploadStart(target=target, upload_id=upload_id)
        )
        last = -1
        while True:
            while not slots.acquire(timeout=0.2):
                if ended.is_set():
                    return
            batch = feed.take(number, last)
            if batch is None:
                # Half-closing would close the upload on the server; a failed source cancels the stream instead,
                # so the upload stays open to be resumed.
                if feed.error is not None and opened.wait(10.0):
                    calls[0].cancel()
                return
            last = batch.seq
            yield ingest_service_pb2.UploadFramesRequest(batch=batch)

    responses: Any = stub.UploadFrames(requests(), metadata=metadata())
    calls.append(responses)
    opened.set()
    try:
        for response in responses:
            kind = response.WhichOneof("kind")
            if kind == "upload":
                report.name = response.upload.name
            elif kind == "ack":
                ack = response.ack
                slots.release()
                batch = feed.acknowledge(ack.seq)
                if batch is None:
                    continue
                report.batches += 1
                report.accepted += ack.accepted
                report.rejected.extend(ack.rejected)
                report.duplicates += int(ack.duplicate)
                progress.update(len(batch.frames) + len(batch.label_updates) + len(batch.inference_frames))
    finally:
        ended.set()
        responses.cancel()
