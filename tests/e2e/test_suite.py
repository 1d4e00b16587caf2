"""`shoal up` / `status` / `down` as a user runs them: five real service processes, a real Redis, a real store."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from shoal.kit.status import unpack
from shoal.runner.suite import SuiteConfig, process_running

from tests.conftest import RedisProcess, S3Server, unique, wait_until
from tests.service.test_services import SERVICES

pytestmark = pytest.mark.e2e


def _free_range(count: int) -> int:
    """A base port with `count` consecutive free ports."""
    import socket

    for _ in range(200):
        base = random.randint(20000, 40000)
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free port range")


@dataclass
class Suite:
    state: Path
    args: list[str]
    env: dict[str, str]

    def shoal(self, *command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shoal.cli", *command, "--state-dir", str(self.state)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def up(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.shoal("up", *self.args, *extra)

    @property
    def config(self) -> SuiteConfig:
        return SuiteConfig.load(self.state)


@pytest.fixture
def suite(tmp_path: Path) -> Iterator[Suite]:
    base = _free_range(7)  # five gRPC ports, the asset service's HTTP port, the console
    metrics_base = _free_range(7)  # five gRPC ports, the asset service's HTTP port, the console
    redis_port = _free_range(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    s = Suite(
        tmp_path / "state",
        ["--base-port", str(base), "--metrics-base-port", str(metrics_base), "--redis-port", str(redis_port)],
        env,
    )
    yield s
    s.shoal("down", timeout=60)


def test_up_status_down(suite: Suite) -> None:
    result = suite.up()
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.count("SERVING") == 6  # five services and the console
    key = (suite.state / "admin_api_key").read_text().strip()
    assert len(key) >= 32
    assert oct((suite.state / "admin_api_key").stat().st_mode & 0o777) == "0o600"

    config = suite.config
    for name, _, full_name, call in SERVICES:
        target = f"127.0.0.1:{config.services[name].grpc_port}"
        with grpc.insecure_channel(target) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            replies = stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
            assert full_name in {s.name for r in replies for s in r.list_services_response.service}
            with pytest.raises(grpc.RpcError) as info:
                call(channel, ())
            assert unpack(info.value).code == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as info:
                call(channel, (("x-api-key", key),))
            assert unpack(info.value).code in {grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND}
        with urllib.request.urlopen(f"http://127.0.0.1:{config.services[name].metrics_port}/metrics", timeout=5) as r:
            body = r.read().decode()
        assert 'grpc_code="UNAUTHENTICATED"' in body
        assert "grpc_server_handled_total{" in body

    status = suite.shoal("status")
    assert status.returncode == 0, status.stdout
    assert status.stdout.count("SERVING") == 6
    assert f"console     http://127.0.0.1:{config.console_port}" in status.stdout

    again = suite.up()
    assert again.returncode == 1
    assert "already running" in again.stderr

    assert {p.name for p in (suite.state / "logs").iterdir()} >= {f"{n}.log" for n in config.services} | {
        "redis.log",
        "supervisor.log",
    }
    pids = json.loads((suite.state / "pids.json").read_text())
    assert set(pids) == {*config.services, "console", "redis"}
    supervisor_pid = int((suite.state / "supervisor.pid").read_text())

    down = suite.shoal("down")
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert not process_running(supervisor_pid)
    for name, pid in pids.items():
        assert not process_running(pid), f"{name} (pid {pid}) still runs after shoal down"
    for name in config.services:
        with grpc.insecure_channel(f"127.0.0.1:{config.services[name].grpc_port}") as channel:
            with pytest.raises(grpc.RpcError) as info:
                call(channel, ())
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert suite.shoal("status").returncode == 3
    # Services shut down gracefully: each logged its stop.
    for name in config.services:
        assert '"message": "stopped"' in (suite.state / "logs" / f"{name}.log").read_text()


def test_supervisor_restarts_a_killed_service(suite: Suite) -> None:
    assert suite.up().returncode == 0
    pids = json.loads((suite.state / "pids.json").read_text())
    os.kill(pids["ingest"], signal.SIGKILL)

    def restarted() -> bool:
        now = json.loads((suite.state / "pids.json").read_text())
        return now["ingest"] != pids["ingest"] and suite.shoal("status").returncode == 0

    wait_until(restarted, timeout=60, interval=0.5)
    assert "ingest exited with -9" in (suite.state / "logs" / "supervisor.log").read_text()


def test_down_when_not_running_is_harmless(suite: Suite) -> None:
    result = suite.shoal("down")
    assert result.returncode == 0
    assert "not running" in result.stdout
    assert suite.shoal("status").returncode == 3


def test_up_refuses_busy_ports(suite: Suite) -> None:
    import socket

    port = int(suite.args[1])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        result = suite.up()
    assert result.returncode == 1
    assert f"ingest gRPC port {port}" in result.stderr


def test_up_against_external_redis_and_s3(suite: Suite, redis_server: RedisProcess, s3_server: S3Server) -> None:
    bucket = unique("suite")
    suite.env |= {"SHOAL_S3_ACCESS_KEY": s3_server.access_key, "SHOAL_S3_SECRET_KEY": s3_server.secret_key}
    result = suite.up(
        "--redis-url", redis_server.url, "--store-url", f"s3://{bucket}", "--s3-endpoint", s3_server.endpoint
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert "(embedded)" not in result.stdout
    assert not (suite.state / "logs" / "redis.log").exists()
    assert json.loads((suite.state / "pids.json").read_text()).keys() == {*suite.config.services, "console"}
    assert suite.shoal("down").returncode == 0


def test_demo_runs_the_suite_and_stops_it(suite: Suite) -> None:
    result = suite.shoal("demo", *suite.args)
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.count("SERVING") == 6  # five services and the console
    assert "UNAUTHENTICATED" in result.stdout
    assert "shoal.v1.EmbeddingService, shoal.v1.OperationsService" in result.stdout
    assert 'grpc_code="UNAUTHENTICATED"' in result.stdout
    assert "ground truth: 60 frames accepted" in result.stdout
    assert "1 rejected" in result.stdout
    assert "UNKNOWN_CLASS: 'hexagon' is not in the project's class map" in result.stdout
    assert "predictions: 60 frames accepted, 0 rejected" in result.stdout
    assert "received 61, accepted 60, rejected 1" in result.stdout
    assert len(list((suite.state / "demo" / "images").glob("*.png"))) == 60
    assert "assets: 60 images stored in Shoal (0 already there, 0 failed)" in result.stdout
    assert "bytes loaded from its signed URL" in result.stdout
    assert "20000 points (binary, fields x y z intensity)" in result.stdout
    assert "class ids [0, 2, 3]" in result.stdout
    assert "UPLOAD_STATE_PARTIALLY_FAILED received 61, accepted 60, rejected 1" in result.stdout
    assert "v1: 60 frames" in result.stdout
    assert "v4: 59 frames" in result.stdout
    assert "diff as-drawn → v4: 0 added, 2 modified, 1 deleted" in result.stdout
    assert "v4 CHANGE_TYPE_MODIFY" in result.stdout
    assert "60 frames at checkpoint as-drawn, 59 now" in result.stdout
    assert "== evaluation of shape-detector-v1 on version 1 (the version it is pinned to)" in result.stdout
    assert re.search(r"AP 0\.\d{3}  AP50 0\.\d{3}", result.stdout)
    assert "from the store in" in result.stdout
    found = re.search(r"planted: (\d+), found (\d+); all within the first (\d+) candidates", result.stdout)
    assert found, result.stdout
    planted, hits, worst = map(int, found.groups())
    assert planted == hits == 24
    assert worst <= 30
    assert "the first ten are in segment review-label-errors (10 elements)" in result.stdout
    assert "== embeddings: 59 8x8-thumbnail embeddings (192 values) added as version 5" in result.stdout
    assert "frames most like shapes-0001: shapes-0001 (1.000)" in result.stdout
    assert re.search(r"6 most diverse frames: (shapes-\d{4}, ){5}shapes-\d{4} → segment diverse-6", result.stdout)
    assert "== pose: 40 people with COCO's rig (17 keypoints, 19 edges) as version 1, 3 with a planted" in result.stdout
    assert "keypoint checks: 3 swap candidates; the planted ones at ranks [1, 2, 3]" in result.stdout
    assert "exported a skeleton review job from checkpoint to-review: 40 images → manifest.jsonl" in result.stdout
    assert "template-attributes.json: 17 keypoint classes, 19 rig lines" in result.stdout
    assert "imported the job's output as version 2: 40 frames, 40 labels, 0 bad lines" in result.stdout
    assert "40 images, " in result.stdout
    assert "5% modified (the job's own flag: 5%), 95% marked unchanged" in result.stdout
    assert re.search(r"swap candidates now: 1 \(pose-\d{4}\); version 1 still has 3", result.stdout)
    assert result.stdout.rstrip().endswith("shoal stopped")
    assert suite.shoal("status").returncode == 3


def test_demo_from_a_terminal_leaves_the_suite_and_console_up(suite: Suite) -> None:
    """Run from a terminal (a pseudo-terminal here, through util-linux's `script`), the demo ends with the suite
    still up and prints the console's URL, a key for the demo projects and how to stop it."""
    import shlex
    import shutil

    if shutil.which("script") is None:
        pytest.fail("util-linux's `script` is missing: it gives the demo a terminal")
    env = {k: v for k, v in suite.env.items() if k != "CI"}
    command = shlex.join([sys.executable, "-m", "shoal.cli", "demo", *suite.args, "--state-dir", str(suite.state)])
    result = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    out = result.stdout.replace("\r", "")
    assert result.returncode == 0, out + result.stderr
    assert "== shoal down" not in out
    assert suite.shoal("status").returncode == 0
    config = suite.config
    assert f"console:  {config.console_url}/projects/shapes/datasets/drawn/frames" in out
    assert f"stop it:  shoal down --state-dir {suite.state}" in out
    key = re.search(r"API key:  (\S+)", out)
    assert key, out
    addresses = {name: f"127.0.0.1:{ports.grpc_port}" for name, ports in config.services.items()}
    import shoal

    with shoal.Client(api_key=key.group(1), addresses=addresses, show_progress=False) as client:
        assert [p.name for p in client.list_projects()] == ["projects/pose", "projects/shapes"]
    with urllib.request.urlopen(f"{config.console_url}/readyz", timeout=5) as r:
        assert r.read() == b"ready"
    assert suite.shoal("down").returncode == 0
