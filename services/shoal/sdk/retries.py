"""Retries of the SDK's calls on transient failures.

Every call the client makes to a service goes through `call` (unary and client-streaming calls, whose request can
be sent again whole) or `server_stream` (server streams, reopened where they broke). Both wait between attempts
with capped exponential backoff, never shorter than the server's RetryInfo asks for. The budget is per outage:
`max_retries` failed attempts in a row; a server stream that delivers something new starts a new count.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, TypeVar

import grpc

from shoal.kit.status import unpack

log = logging.getLogger("shoal.sdk")

RETRYABLE: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
    }
)
BACKOFF_BASE_SECONDS: Final = 0.2
BACKOFF_CAP_SECONDS: Final = 10.0

T = TypeVar("T")


def backoff(attempt: int, server_delay: float) -> float:
    """Exponential backoff with equal jitter (half fixed, half random), never shorter than what the server asked
    for. The fixed half makes an outage budget a known minimum time: 10 attempts wait at least ~26 s in all."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * float(2**attempt))
    return max(server_delay, ceiling / 2 + random.uniform(0, ceiling / 2))


def retryable(err: grpc.RpcError) -> bool:
    """Transient failures. RESOURCE_EXHAUSTED is transient only when the server says when to retry (a full queue, a
    busy decoder); without RetryInfo it is a limit that asking again cannot cure, such as a message over the size
    limit."""
    code = err.code()
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return unpack(err).retry_delay_seconds > 0
    return code in RETRYABLE


def call(attempt: Callable[[], T], max_retries: int, what: str = "call") -> T:
    """`attempt()` (one whole call), made again on transient failures up to `max_retries` more times."""
    for failures in range(max_retries + 1):
        try:
            return attempt()
        except grpc.RpcError as err:
            if not retryable(err) or failures == max_retries:
                raise
            delay = backoff(failures, unpack(err).retry_delay_seconds)
            log.info("%s failed (%s); retrying in %.2f s", what, err.code().name, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def server_stream(
    open_stream: Callable[[], Iterable[T]], position: Callable[[], int], max_retries: int, what: str = "stream"
) -> Iterator[T]:
    """The replies of a server stream, reopened by `open_stream()` after a transient failure. The caller keeps its
    place (`position()`: frames or bytes received so far) and `open_stream` asks for what comes after it, so
    nothing is received twice. A stream that got further than the last failure starts a new outage count; one
    that keeps breaking at the same place gives up after `max_retries` reopenings."""
    failures = 0
    mark = position()
    while True:
        stream = open_stream()
        try:
            yield from stream
            return
        except grpc.RpcError as err:
            if position() > mark:
                failures = 0
            mark = position()
            if not retryable(err) or failures >= max_retries:
                raise
            delay = backoff(failures, unpack(err).retry_delay_seconds)
            log.info("%s broke (%s) after %d; reopening in %.2f s", what, err.code().name, mark, delay)
            failures += 1
            time.sleep(delay)
        finally:
            # A reader that stops early must not leave the call running on the server.
            cancel: Any = getattr(stream, "cancel", None)
            if cancel is not None:
                cancel()
