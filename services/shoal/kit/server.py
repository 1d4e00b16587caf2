"""One bootstrap for every service: grpc.aio server with the interceptor chain, health, reflection, Prometheus
metrics on a separate port, dependency-aware readiness, and graceful shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer as AsyncHealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from shoal import __version__
from shoal.kit import grpc_metrics
from shoal.kit.apikeys import ApiKeyVerifier
from shoal.kit.errors import ShoalError
from shoal.kit.interceptors import default_interceptors
from shoal.kit.settings import Settings

log = logging.getLogger("shoal.kit.server")

Check = Callable[[], Awaitable[None]]


@dataclass
class Service:
    """A servicer to serve: the instance, the generated `add_*_to_server` function and the proto service name."""

    servicer: Any
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    full_name: str


@dataclass
class ShoalServer:
    """A running Shoal service. `grpc_port` and `metrics_port` are the bound ports (useful when asked for port 0)."""

    settings: Settings
    services: Sequence[Service]
    verifier: ApiKeyVerifier
    checks: Sequence[Check] = ()
    # Run after the server stopped, e.g. closing the Redis client.
    closers: Sequence[Callable[[], Awaitable[None]]] = ()
    # Long-running tasks beside the server (the versioning worker); each gets an event set at shutdown.
    background: Sequence[Callable[[asyncio.Event], Awaitable[None]]] = ()
    check_interval_seconds: float = 2.0
    check_timeout_seconds: float = 2.0
    interceptors: Sequence[grpc.aio.ServerInterceptor[Any, Any]] | None = None
    grpc_port: int = 0
    metrics_port: int = 0
    _server: grpc.aio.Server | None = None
    _health: AsyncHealthServicer | None = None
    _metrics_http: WSGIServer | None = None
    _metrics_thread: threading.Thread | None = None
    _probe: asyncio.Task[None] | None = None
    _stopping: bool = False
    _ready: dict[str, bool] = field(default_factory=dict)
    _checking: dict[int, asyncio.Future[None]] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stop_background: asyncio.Event | None = None

    async def start(self) -> None:
        options = [
            ("grpc.max_receive_message_length", self.settings.max_message_bytes),
            ("grpc.max_send_message_length", self.settings.max_message_bytes),
            ("grpc.so_reuseport", 1 if self.settings.reuse_port else 0),
        ]
        chain = self.interceptors if self.interceptors is not None else default_interceptors(self.verifier)
        server = grpc.aio.server(interceptors=chain, options=options)
        self._health = AsyncHealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = [s.full_name for s in self.services]
        for svc in self.services:
            svc.add_to_server(svc.servicer, server)
            _preinitialize_metrics(svc)
        grpc_metrics.BUILD_INFO.labels(self.settings.service, __version__).set(1)
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        self.grpc_port = server.add_insecure_port(f"{self.settings.host}:{self.settings.grpc_port}")
        if self.grpc_port == 0:
            raise OSError(f"cannot bind gRPC port {self.settings.host}:{self.settings.grpc_port}")
        if self.settings.metrics_port >= 0:  # a worker process (-1) leaves metrics to its parent
            self._metrics_http, self._metrics_thread = start_http_server(
                self.settings.metrics_port, addr=self.settings.host
            )
            self.metrics_port = self._metrics_http.server_port
        await server.start()
        self._server = server
        await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self._refresh_readiness()
        self._probe = asyncio.create_task(self._probe_loop(), name="readiness-probe")
        self._stop_background = asyncio.Event()
        self._tasks = [asyncio.create_task(_run_logged(job, self._stop_background)) for job in self.background]
        log.info(
            "serving",
            extra={"grpc_port": self.grpc_port, "metrics_port": self.metrics_port, "services": names},
        )

    async def _refresh_readiness(self) -> None:
        """Per-service health follows the dependencies (Redis, object store): NOT_SERVING while one is down, so a
        readiness probe takes the pod out of rotation; the overall "" status stays SERVING for liveness."""
        ok = True
        for i, check in enumerate(self.checks):
            # A dependency that hangs (a paused object store) must not hang readiness with it: a check that does not
            # answer within its bound counts as failed, and is not started again while the last one still hangs (a
            # check in a thread cannot be stopped; starting more would use up the thread pool).
            running = self._checking.get(i)
            if running is None or running.done():
                running = self._checking[i] = asyncio.ensure_future(check())
            done, _ = await asyncio.wait({running}, timeout=self.check_timeout_seconds)
            if not done:
                ok = False
                log.warning("dependency check did not answer within %.1f s", self.check_timeout_seconds)
                break
            err = running.exception()
            if isinstance(err, ShoalError):
                ok = False
                log.warning("dependency check failed: %s", err.message, extra={"reason": err.reason})
                break
            if err is not None:
                raise err
        if self._health is None or self._stopping:
            return
        status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
        for svc in self.services:
            if self._ready.get(svc.full_name) != ok:
                self._ready[svc.full_name] = ok
                await self._health.set(svc.full_name, status)

    async def _probe_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.check_interval_seconds)
            await self._refresh_readiness()

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING first, then stop taking calls and let in-flight ones finish within `grace` seconds."""
        if self._server is None or self._stopping:
            return
        self._stopping = True
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        log.info("shutting down", extra={"grace_seconds": grace})
        if self._probe is not None:
            self._probe.cancel()
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self._stop_background is not None:
            self._stop_background.set()
        await self._server.stop(grace)
        if self._tasks:
            # Background work finishes its current step (a commit) before the process exits.
            _, pending = await asyncio.wait(self._tasks, timeout=grace + 30)
            for task in pending:
                task.cancel()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
        for close in self.closers:
            await close()
        log.info("stopped")

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()


async def _run_logged(job: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event) -> None:
    try:
        await job(stop)
    except Exception:
        log.exception("background task failed")


def _preinitialize_metrics(svc: Service) -> None:
    descriptor = _service_descriptor(svc.full_name)
    if descriptor is None:
        return
    for method in descriptor.methods:
        kind = grpc_metrics.rpc_type(method.client_streaming, method.server_streaming)
        grpc_metrics.preinitialize(svc.full_name, method.name, kind)


def _service_descriptor(full_name: str) -> Any:
    from google.protobuf import descriptor_pool  # noqa: PLC0415

    try:
        return descriptor_pool.Default().FindServiceByName(full_name)
    except KeyError:
        return None


async def serve_until_signalled(server: ShoalServer) -> None:
    """Start `server` and run until SIGTERM or SIGINT, then shut down gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    watchdog = asyncio.create_task(_stop_when_orphaned(stop)) if server.settings.reuse_port else None
    await stop.wait()
    if watchdog is not None:
        watchdog.cancel()
    await server.stop()


async def _stop_when_orphaned(stop: asyncio.Event) -> None:
    """A worker process stops when its parent dies (killed with no chance to stop it), so none outlives it
    holding the shared port."""
    parent = os.getppid()
    while os.getppid() == parent:  # noqa: ASYNC110 (no event exists for "my parent died"; polling is the way)
        await asyncio.sleep(1.0)
    log.warning("parent process %d is gone; stopping", parent)
    stop.set()
