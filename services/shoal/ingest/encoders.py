"""Encoding accepted batches into table rows (see `shoal.storage.batchrows`) in helper processes.

An upload stream is served by one ingest process, and Python runs one core per process. Validation must stay in that
process (it follows the stream's order and remembers the upload's label ids), but encoding a batch's rows needs only
the batch, so it goes to a helper process while the stream's next batch is validated: one stream then keeps two cores
busy. The helpers are spawned (not forked: the server's gRPC threads do not survive a fork) on first use, die with
their ingest process, and are replaced if one dies; a batch whose encoding fails for any reason is encoded in-process
instead, since the rows only save the versioning worker work and never decide what is committed.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pyarrow as pa

from shoal.kit import heap, workers
from shoal.storage import batchrows, columnar
from shoal.v1 import ingest_service_pb2

log = logging.getLogger("shoal.ingest.encoders")


def encode_rows(
    body: bytes,
    inference: bool,
    embedding_dimension: int,
    metadata: Sequence[columnar.MetadataColumn],
    unchecked: bool = False,
) -> bytes | None:
    """The rows of the batch stored as `body`, as Arrow IPC (None: the batch carries no whole frames). `unchecked`:
    the batch is not validated yet, and frames that cannot be encoded (a date out of range, embeddings of two
    dimensions) give None instead of an error."""
    try:
        return batchrows.encode(
            ingest_service_pb2.FrameBatch.FromString(body),
            body,
            inference=inference,
            embedding_dimension=embedding_dimension,
            metadata=metadata,
        )
    except (ValueError, TypeError, OverflowError, ArithmeticError, pa.ArrowException):
        if unchecked:
            return None
        raise


def _start_helper(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent decides
    workers.die_with(parent)
    heap.settle()


class Encoders:
    """Up to `processes` helper processes encoding rows; with 0, rows are encoded on a thread of this process."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self.fallbacks = 0  # batches encoded here because no helper could (the pool broke or was shut down)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_helper,
                initargs=(os.getpid(),),
            )
        return self._pool

    async def encode(
        self,
        body: bytes,
        *,
        inference: bool,
        embedding_dimension: int,
        metadata: Sequence[columnar.MetadataColumn],
        unchecked: bool = False,
    ) -> bytes | None:
        args = (body, inference, embedding_dimension, list(metadata), unchecked)
        if self.processes > 0:
            pool = self._executor()
            try:
                return await asyncio.get_running_loop().run_in_executor(pool, encode_rows, *args)
            except BrokenProcessPool:
                # Every batch waiting on the dead helper's pool lands here; only the first replaces that pool (a
                # later one must not close the new pool another stream may be using already).
                if self._pool is pool:
                    log.warning("a row encoder process died; starting new ones")
                    self.close()
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # this batch's stream is going away
                # The pool was shut down under this batch (the server is stopping): encode it here.
            except Exception:
                log.exception("encoding rows in a helper process failed; encoding them here")
        self.fallbacks += 1
        return await asyncio.to_thread(encode_rows, *args)

    def pids(self) -> list[int]:
        """The helper processes running now (for tests and diagnostics)."""
        pool = self._pool
        if pool is None:
            return []
        return [p.pid for p in list(pool._processes.values()) if p.is_alive() and p.pid is not None]

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
