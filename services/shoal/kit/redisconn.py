"""The Redis adapter: one configured asyncio client per process.

Redis carries pointers, progress, caches and locks — never the only copy of data — so a client retries briefly on
connection errors and otherwise fails fast with UNAVAILABLE instead of hanging a call.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from shoal.kit.errors import Unavailable


def connect(url: str, *, socket_timeout: float = 5.0) -> Redis:
    """A client for `url` (`redis://host:port/db`, `rediss://…`, `unix:///path.sock`)."""
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        decode_responses=False,
    )


async def check(client: Redis) -> None:
    """Raise Unavailable when Redis does not answer PING."""
    try:
        await client.ping()
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise Unavailable(f"Redis unreachable: {exc}", reason="REDIS_UNAVAILABLE") from exc
