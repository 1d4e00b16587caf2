"""A service run as several worker processes behind one port (`SHOAL_PROCESSES`, as `shoal up` runs ingest): when
the parent is killed with SIGKILL — it cannot pass anything on — its workers go too, instead of staying behind as
orphans that share the port with the parent's successor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from shoal.runner import health

from tests.conftest import ADMIN_KEY, RedisProcess, free_port, process_alive, wait_until

pytestmark = pytest.mark.integration


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_workers_do_not_outlive_a_killed_parent(tmp_path: Path, redis_server: RedisProcess) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")} | {
        "SHOAL_ADMIN_API_KEY": ADMIN_KEY,
        "SHOAL_GRPC_PORT": str(port),
        "SHOAL_METRICS_PORT": str(free_port()),
        "SHOAL_REDIS_URL": redis_server.url,
        "SHOAL_STORE_URL": (tmp_path / "store").as_uri(),
        "SHOAL_PROCESSES": "2",
        "SHOAL_LOG_LEVEL": "WARNING",
    }
    parent = subprocess.Popen([sys.executable, "-m", "shoal.ingest"], env=env)
    try:
        wait_until(lambda: health.check("127.0.0.1", port, "shoal.v1.IngestService") == "SERVING", timeout=60)
        wait_until(lambda: len(_children(parent.pid)) == 2, timeout=30)
        workers = _children(parent.pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        wait_until(lambda: not any(process_alive(w) for w in workers), timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in _children(parent.pid):
            os.kill(pid, signal.SIGKILL)
