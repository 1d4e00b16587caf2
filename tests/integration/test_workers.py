"""A service run as several worker processes behind one port (`SHOAL_PROCESSES`, as `shoal up` runs ingest): when
the parent is killed with SIGKILL — it cannot pass anything on — its workers go too, instead of staying behind as
orphans that share the port with the parent's successor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from shoal.kit import bootstrap, heap
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


def test_a_service_process_serves_with_a_settled_heap_and_its_first_use_imports_done(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    """`bootstrap.run_service`, as every service's entry point runs it: by the time background jobs run, what
    libraries import on first use is imported and the start-up heap is frozen out of the collector's walks."""
    out = tmp_path / "process.json"
    script = textwrap.dedent(
        """
        import gc, json, sys
        from pathlib import Path
        from shoal.kit import bootstrap

        def build(runtime):
            async def report(stop):
                facts = {
                    "frozen": gc.get_freeze_count(),
                    "young_threshold": gc.get_threshold()[0],
                    "imported": [m for m in bootstrap.FIRST_USE_IMPORTS if m in sys.modules],
                }
                Path(sys.argv[1]).write_text(json.dumps(facts))
                await stop.wait()

            runtime.background.append(report)
            return []

        bootstrap.run_service("ingest", build)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")} | {
        "SHOAL_ADMIN_API_KEY": ADMIN_KEY,
        "SHOAL_GRPC_PORT": str(free_port()),
        "SHOAL_METRICS_PORT": str(free_port()),
        "SHOAL_REDIS_URL": redis_server.url,
        "SHOAL_STORE_URL": (tmp_path / "store").as_uri(),
        "SHOAL_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-c", script, str(out)], env=env)
    try:
        wait_until(out.exists, timeout=60)
        facts = json.loads(out.read_text())
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert facts["frozen"] > 10_000
    assert facts["young_threshold"] == heap.YOUNG_THRESHOLD
    assert facts["imported"] == list(bootstrap.FIRST_USE_IMPORTS)
