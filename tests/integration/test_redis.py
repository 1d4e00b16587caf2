"""The Redis adapter against a real redis-server, including a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from shoal.kit import redisconn
from shoal.kit.errors import Unavailable

from tests.conftest import RedisProcess, free_port

pytestmark = pytest.mark.integration


def test_check_and_roundtrip(redis_server: RedisProcess) -> None:
    async def go() -> bytes | None:
        client = redisconn.connect(redis_server.url)
        try:
            await redisconn.check(client)
            await client.set("shoal:test:key", b"v", ex=30)
            value: bytes | None = await client.get("shoal:test:key")
            return value
        finally:
            await client.aclose()

    assert asyncio.run(go()) == b"v"


def test_unreachable_redis_is_unavailable() -> None:
    async def go() -> None:
        client = redisconn.connect(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.5)
        try:
            await redisconn.check(client)
        finally:
            await client.aclose()

    with pytest.raises(Unavailable) as info:
        asyncio.run(go())
    assert info.value.reason == "REDIS_UNAVAILABLE"


def test_client_survives_a_redis_restart_and_aof_keeps_data(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    server = RedisProcess(tmp_path / "r")
    server.start()

    async def go() -> bytes | None:
        client = redisconn.connect(server.url)
        try:
            await client.set("k", b"kept")
            await client.execute_command("BGREWRITEAOF")
            await asyncio.sleep(0.3)
            server.stop()
            with pytest.raises(Unavailable):
                await redisconn.check(client)
            server.start()
            await redisconn.check(client)  # the same client reconnects by itself
            value: bytes | None = await client.get("k")
            return value
        finally:
            await client.aclose()

    try:
        assert asyncio.run(go()) == b"kept"
    finally:
        server.stop()
