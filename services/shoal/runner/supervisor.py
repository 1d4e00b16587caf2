"""The supervisor behind `shoal up`: starts the embedded Redis and the five services, restarts a service that dies
(with backoff), and on SIGTERM stops them all gracefully. It holds an exclusive lock on the state directory for
its whole life, so a second `shoal up` on the same directory is refused.

The restart backoff is capped at a few seconds: on one machine nothing else brings a service back, so a service
that crashed a few times in a row must not stay down for long once its cause is gone.

Run as `python -m shoal.runner.supervisor STATE_DIR`; `shoal up` does that in a new session.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

import redis

from shoal.kit import logs
from shoal.kit.settings import SERVICES
from shoal.runner.suite import LOCK_FILE, PID_FILE, PIDS_FILE, SuiteConfig, admin_key, redis_server_binary

log = logging.getLogger("shoal.runner.supervisor")

STOP_GRACE_SECONDS: Final = 15.0


@dataclass(frozen=True)
class Backoff:
    """How long a process that died stays down: `first_seconds`, doubling with each quick crash in a row, never more
    than `max_seconds`. A process that stayed up `reset_after_seconds` was healthy, so its next crash starts again
    from `first_seconds`."""

    first_seconds: float = 0.5
    max_seconds: float = 3.0
    reset_after_seconds: float = 30.0

    def delay(self, crashes_in_a_row: int) -> float:
        """The wait before starting again after a crash that follows `crashes_in_a_row` quick ones (0: the first)."""
        # The exponent is bounded: a service crashing for hours must not overflow the float and stop the supervisor.
        return min(self.max_seconds, self.first_seconds * 2.0 ** min(crashes_in_a_row, 64))

    def after_crash(self, crashes_in_a_row: int, uptime: float) -> tuple[float, int]:
        """For a process that died after `uptime` seconds up, having crashed `crashes_in_a_row` times in a row before
        this start: the wait before starting it again, and its crashes in a row to count on from that start."""
        crashes = 0 if uptime >= self.reset_after_seconds else crashes_in_a_row
        return self.delay(crashes), crashes + 1


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    crashes_in_a_row: int = 0
    # When a process that died is due to start again; None while it runs.
    next_start: float | None = None
    started_at: float = 0.0
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self, now: float) -> None:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.started_at = now
        log.info("started %s", self.name, extra={"pid": self.proc.pid, "child": self.name})

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, deadline: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", self.name)
            self.proc.kill()
            self.proc.wait()
        if self._log is not None:
            self._log.close()


class Supervisor:
    """Starts, watches and stops the suite."""

    def __init__(self, config: SuiteConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.backoff = Backoff(max_seconds=config.restart_max_backoff_seconds)
        self.clock = clock
        self.stopping = False
        self.redis: Child | None = None
        self.children: list[Child] = []

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        env["PYTHONUNBUFFERED"] = "1"
        return env | extra

    def _write_pids(self) -> None:
        pids = {c.name: c.proc.pid for c in ([self.redis] if self.redis else []) + self.children if c.proc is not None}
        tmp = self.config.state / (PIDS_FILE + ".tmp")
        tmp.write_text(json.dumps(pids))
        tmp.replace(self.config.state / PIDS_FILE)

    def start(self) -> None:
        logs_dir = self.config.state / "logs"
        logs_dir.mkdir(parents=True, exist_ok=True)
        if self.config.embedded_redis:
            data = self.config.state / "redis"
            data.mkdir(exist_ok=True)
            argv = [
                redis_server_binary(),
                "--port", str(self.config.redis_port),
                "--bind", self.config.host,
                "--dir", str(data.resolve()),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                "--protected-mode", "no",
            ]  # fmt: skip
            self.redis = Child("redis", argv, self._env({}), logs_dir / "redis.log")
            self.redis.start(self.clock())
            self._wait_for_redis()
        key = admin_key(self.config.state)
        for name in SERVICES:
            argv = [sys.executable, "-m", f"shoal.{name}"]
            child = Child(name, argv, self._env(self.config.service_env(name, key)), logs_dir / f"{name}.log")
            child.start(self.clock())
            self.children.append(child)
        if self.config.console_port:
            argv = [sys.executable, "-m", "shoal.console"]
            child = Child("console", argv, self._env(self.config.console_env()), logs_dir / "console.log")
            child.start(self.clock())
            self.children.append(child)
        self._write_pids()

    def _wait_for_redis(self, timeout: float = 20.0) -> None:
        client = redis.Redis.from_url(self.config.effective_redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                pass
            if self.redis is not None and not self.redis.alive():
                raise RuntimeError("embedded redis-server exited at start; see logs/redis.log")
            time.sleep(0.1)
        raise RuntimeError(f"embedded redis-server did not answer within {timeout:.0f} s")

    def watch_once(self) -> None:
        """Restart children that died, after the backoff's wait (see `Backoff`)."""
        now = self.clock()
        for child in ([self.redis] if self.redis else []) + self.children:
            if child.alive() or self.stopping:
                continue
            if child.next_start is None:
                code = child.proc.returncode if child.proc else None
                wait, child.crashes_in_a_row = self.backoff.after_crash(child.crashes_in_a_row, now - child.started_at)
                child.next_start = now + wait
                log.warning("%s exited with %s; restarting in %.1f s", child.name, code, wait)
            elif now >= child.next_start:
                child.next_start = None
                child.start(now)
                self._write_pids()

    def stop(self) -> None:
        """Services first (they drain in-flight calls), then Redis (which flushes its append-only file)."""
        self.stopping = True
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in self.children:
            child.terminate()
        for child in self.children:
            child.wait(deadline)
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait(time.monotonic() + STOP_GRACE_SECONDS)
        log.info("suite stopped")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    state = Path(args[0])
    logs.configure("supervisor")
    lock_fd = os.open(state / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.error("another supervisor holds %s", state / LOCK_FILE)
        return 1
    (state / PID_FILE).write_text(f"{os.getpid()}\n")
    config = SuiteConfig.load(state)
    supervisor = Supervisor(config)
    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        supervisor.start()
        while not stop_requested:
            supervisor.watch_once()
            time.sleep(0.2)
    except Exception:
        log.exception("supervisor failed")
        return 1
    finally:
        supervisor.stop()
        (state / PID_FILE).unlink(missing_ok=True)
        (state / PIDS_FILE).unlink(missing_ok=True)
        os.close(lock_fd)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
