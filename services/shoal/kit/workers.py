"""Several worker processes behind one gRPC port.

The parent starts `processes` copies of the service, each binding the same port with SO_REUSEPORT (the kernel spreads
connections across them), serves their merged Prometheus metrics on the metrics port (prometheus_client's
multiprocess mode), restarts a worker that dies, and on SIGTERM passes the signal on and waits for every worker to
drain its calls.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess, start_http_server

from shoal.kit.settings import Settings

log = logging.getLogger("shoal.kit.workers")

# Set in each worker's environment: the pid of the parent whose death the worker must not outlive.
PARENT_ENV = "SHOAL_WORKER_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a worker: ask the kernel for SIGTERM when the parent dies, so a parent killed with SIGKILL (which cannot
    pass anything on) leaves no orphans holding the port beside its successor. Exits at once when the parent is
    already gone. Linux only; elsewhere the parent's SIGTERM handling is all there is."""
    parent = os.environ.get(PARENT_ENV, "")
    if parent.isdigit():
        die_with(int(parent))


def die_with(parent: int) -> None:
    """SIGTERM to this process when `parent` (its parent process) dies; exits at once when it is already gone.
    Linux only."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # noqa: PLC0415

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before the request took effect
        raise SystemExit(0)


def run_workers(settings: Settings) -> int:
    """Run `settings.processes` workers of `settings.service` until SIGTERM; returns the exit code."""
    metrics_dir = Path(tempfile.mkdtemp(prefix=f"shoal-{settings.service}-metrics-"))
    env = os.environ | {
        PARENT_ENV: str(os.getpid()),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "SHOAL_PROCESSES": "1",
        "SHOAL_REUSE_PORT": "true",
        "SHOAL_METRICS_PORT": "-1",
    }
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
    http, _ = start_http_server(settings.metrics_port, addr=settings.host, registry=registry)
    argv = [sys.executable, "-m", f"shoal.{settings.service}"]
    workers = [subprocess.Popen(argv, env=env) for _ in range(settings.processes)]
    log.info("started %d worker processes", len(workers), extra={"pids": [w.pid for w in workers]})
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping:
            for i, worker in enumerate(workers):
                code = worker.poll()
                if code is not None and not stopping:
                    log.warning("worker %d exited with %s; restarting it", worker.pid, code)
                    multiprocess.mark_process_dead(worker.pid, str(metrics_dir))  # type: ignore[no-untyped-call]
                    workers[i] = subprocess.Popen(argv, env=env)
            time.sleep(0.2)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + settings.shutdown_grace_seconds + 5
        for worker in workers:
            try:
                worker.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
        http.shutdown()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        log.info("stopped")
    return 0
