"""The ingest queue's backlog as Prometheus sees it: `shoal_ingest_queue_depth_batches{partition}` is measured from
the consumer group (lag plus pending) when it is scraped, so it falls to 0 when the workers drain the queue, whoever
last uploaded. Where several worker processes share the metrics (multiprocess mode, which reads values each process
wrote rather than asking it), each process measures every few seconds instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shoal.kit import pipeline_metrics
from shoal.storage import queue

log = logging.getLogger("shoal.ingest.backlog")

# How long a scrape waits for Redis before it reports the last value it measured.
SCRAPE_TIMEOUT_SECONDS: Final = 2.0
# How often each process measures in multiprocess mode.
REFRESH_SECONDS: Final = 5.0


class _Scrape:
    """What the gauge reads when scraped: the backlog measured then, through the Redis client and event loop of the
    newest running ingest server of this process (tests run several in turn)."""

    def __init__(self) -> None:
        self.owner: object | None = None
        self.redis: Redis | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread = 0
        self.last: dict[int, float] = {}
        self.installed: set[int] = set()

    def install(self, owner: object, redis: Redis, partitions: int) -> None:
        self.owner, self.redis = owner, redis
        self.loop, self.loop_thread = asyncio.get_running_loop(), threading.get_ident()
        for partition in range(partitions):
            if partition not in self.installed:
                child = pipeline_metrics.INGEST_QUEUE_DEPTH.labels(partition=str(partition))
                child.set_function(lambda p=partition: self.value(p))  # type: ignore[misc]
                self.installed.add(partition)

    def release(self, owner: object) -> None:
        if self.owner is owner:
            self.owner = self.redis = self.loop = None

    def value(self, partition: int) -> float:
        loop, redis = self.loop, self.redis
        # Never block the loop that would have to answer (a scrape from its own thread reads the last value).
        if loop is None or redis is None or not loop.is_running() or threading.get_ident() == self.loop_thread:
            return self.last.get(partition, 0.0)
        future = asyncio.run_coroutine_threadsafe(queue.backlog(redis, queue.stream_key(partition)), loop)
        try:
            self.last[partition] = float(future.result(SCRAPE_TIMEOUT_SECONDS))
        except Exception as err:  # a scrape must answer: Redis down or slow leaves the last value
            future.cancel()
            log.warning("cannot measure the backlog of partition %d: %s", partition, err)
        return self.last.get(partition, 0.0)


_SCRAPE: Final = _Scrape()


def measured_when_scraped(redis: Redis, partitions: int) -> Callable[[asyncio.Event], Awaitable[None]]:
    """A background job for the ingest server: while it runs, the queue-depth gauge of each of `partitions` is
    measured from Redis when scraped (or, in multiprocess mode, every REFRESH_SECONDS)."""

    async def run(stop: asyncio.Event) -> None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            await _refresh(redis, partitions, stop)
            return
        owner = object()
        _SCRAPE.install(owner, redis, partitions)
        try:
            await stop.wait()
        finally:
            _SCRAPE.release(owner)

    return run


async def _refresh(redis: Redis, partitions: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        for partition in range(partitions):
            try:
                depth = await queue.backlog(redis, queue.stream_key(partition))
            except (RedisError, OSError) as err:
                log.warning("cannot measure the backlog of partition %d: %s", partition, err)
                break
            pipeline_metrics.INGEST_QUEUE_DEPTH.labels(partition=str(partition)).set(depth)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), REFRESH_SECONDS)
