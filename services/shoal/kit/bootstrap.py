"""Start-up shared by every service process: settings → logging → adapters → server → serve until SIGTERM."""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from redis.asyncio import Redis

from shoal.kit import heap, logs, redisconn
from shoal.kit.apikeys import ApiKeyVerifier
from shoal.kit.errors import ShoalError
from shoal.kit.objectstore import ObjectStore, open_store
from shoal.kit.server import Service, ShoalServer, serve_until_signalled
from shoal.kit.settings import Settings, SettingsError

log = logging.getLogger("shoal.kit.bootstrap")

# Modules that libraries import on first use: numpy.ma (pyarrow's array checks reach it through NumPy's lazy
# attributes), zoneinfo (time zones of Arrow timestamps) and _strptime (protobuf's timestamp parsing). A service
# imports them at start, so that its first calls do not wait for them (about 20 ms together), and they are frozen
# with the rest of the start-up heap (see `heap`).
FIRST_USE_IMPORTS: Final = ("numpy.ma", "zoneinfo", "_strptime")


@dataclass
class Runtime:
    """The adapters a service's servicers are built with."""

    settings: Settings
    store: ObjectStore
    redis: Redis
    background: list[Callable[[asyncio.Event], Awaitable[None]]] = field(default_factory=list)
    # What to close when the server stops, after the background jobs (channels to other services).
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


Build = Callable[[Runtime], Sequence[Service]]


def create_server(settings: Settings, build: Build) -> ShoalServer:
    """A ready-to-start server for one service (tests call this with port-0 settings)."""
    store = open_store(settings.store)
    redis = redisconn.connect(settings.redis_url)
    runtime = Runtime(settings, store, redis)

    async def check_store() -> None:
        await asyncio.to_thread(store.check)

    async def check_redis() -> None:
        await redisconn.check(redis)

    services = build(runtime)
    return ShoalServer(
        settings=settings,
        services=services,
        background=runtime.background,
        verifier=ApiKeyVerifier(store, settings.admin_api_key, settings.api_key_cache_seconds, redis),
        checks=(check_redis, check_store),
        closers=(*runtime.closers, redis.aclose),
    )


def run_service(service: str, build: Build) -> None:
    """Entry point of a service process: exits 2 with a clear message on bad settings."""
    try:
        settings = Settings.from_env(service)
    except SettingsError as err:
        print(f"shoal-{service}: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    logs.configure(service, settings.log_level)
    from shoal.kit import workers  # noqa: PLC0415

    if settings.processes > 1:
        raise SystemExit(workers.run_workers(settings))
    workers.die_with_parent()
    try:
        server = create_server(settings, build)
    except ShoalError as err:
        log.error("cannot start: %s", err)
        raise SystemExit(1) from None
    for module in FIRST_USE_IMPORTS:
        importlib.import_module(module)
    heap.settle()
    asyncio.run(serve_until_signalled(server))
