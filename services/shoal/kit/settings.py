"""Typed settings, parsed once from `SHOAL_*` environment variables.

Every service reads the same variables; `shoal up` and the Helm chart set the per-service ones (ports) for each
process. Missing or placeholder secrets stop start-up with a message that says which variable to set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

SERVICES: Final = ("ingest", "versioning", "asset", "metrics", "embedding")

# gRPC and Prometheus ports of each service on one machine (`shoal up`); in Kubernetes every pod uses its own.
DEFAULT_GRPC_PORTS: Final = {"ingest": 50051, "versioning": 50052, "asset": 50053, "metrics": 50054, "embedding": 50055}
DEFAULT_METRICS_PORTS: Final = {"ingest": 9461, "versioning": 9462, "asset": 9463, "metrics": 9464, "embedding": 9465}

# Values that are clearly not real secrets; refusing them keeps a copied example config out of production.
_PLACEHOLDERS: Final = frozenset({"changeme", "change-me", "secret", "password", "admin", "test", "xxx", "todo"})
MIN_ADMIN_KEY_LENGTH: Final = 16


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class StoreSettings:
    """Where the object store is: `file:///path` (local directory) or `s3://bucket[/prefix]`."""

    url: str = "file://./.shoal/store"
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_region: str = "us-east-1"
    s3_secure: bool = True
    # Where clients outside the cluster reach the store: presigned URLs are signed for this host (the signature
    # covers it) while the services talk to `s3_endpoint`. Empty: presign for `s3_endpoint`.
    s3_public_endpoint: str = ""
    # How long one request to the store may wait for an answer before it fails as UNAVAILABLE (a hung store must
    # push back on callers, not hold their calls until their deadlines).
    s3_timeout_seconds: float = 10.0

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StoreSettings:
        """The object store's settings from SHOAL_STORE_URL and the SHOAL_S3_* variables."""
        store = cls(
            url=env.get("SHOAL_STORE_URL", StoreSettings.url),
            s3_endpoint=env.get("SHOAL_S3_ENDPOINT", ""),
            s3_access_key=env.get("SHOAL_S3_ACCESS_KEY", ""),
            s3_secret_key=env.get("SHOAL_S3_SECRET_KEY", ""),
            s3_region=env.get("SHOAL_S3_REGION", "us-east-1"),
            s3_secure=_bool(env, "SHOAL_S3_SECURE", default=True),
            s3_public_endpoint=env.get("SHOAL_S3_PUBLIC_ENDPOINT", ""),
            s3_timeout_seconds=_float(env, "SHOAL_S3_TIMEOUT_SECONDS", 10.0),
        )
        if not (store.is_s3 or store.url.startswith("file://")):
            raise SettingsError(f"SHOAL_STORE_URL must start with file:// or s3://, got {store.url!r}")
        if store.is_s3:
            missing = [
                name
                for name, value in (
                    ("SHOAL_S3_ENDPOINT", store.s3_endpoint),
                    ("SHOAL_S3_ACCESS_KEY", store.s3_access_key),
                    ("SHOAL_S3_SECRET_KEY", store.s3_secret_key),
                )
                if not value
            ]
            if missing:
                raise SettingsError(f"SHOAL_STORE_URL is an s3:// URL, so set {', '.join(missing)}")
        return store


@dataclass(frozen=True)
class Settings:
    """Everything a service process needs to start."""

    service: str
    admin_api_key: str
    host: str = "127.0.0.1"
    grpc_port: int = 0
    metrics_port: int = 0
    redis_url: str = "redis://127.0.0.1:6379/0"
    store: StoreSettings = field(default_factory=StoreSettings)
    log_level: str = "INFO"
    shutdown_grace_seconds: float = 10.0
    max_message_bytes: int = 64 * 1024 * 1024
    api_key_cache_seconds: float = 30.0
    # The ingest queue: Redis stream partitions (one writer per dataset lives on one partition), the depth (queued
    # batches not yet applied) past which uploads are told to back off, and the largest batch accepted.
    ingest_partitions: int = 4
    ingest_max_queue_depth: int = 2000
    ingest_max_batch_frames: int = 5000
    # The largest serialized metadata value, label attribute value and whole frame (or label update, or inference
    # frame) ingest accepts; a bigger one fails its frame. Far below the gRPC message limit, so a committed frame can
    # always be read back.
    ingest_max_metadata_value_bytes: int = 64 * 1024
    ingest_max_attribute_bytes: int = 64 * 1024
    ingest_max_frame_bytes: int = 4 * 1024 * 1024
    # An upload whose stream is gone (refused, broken, its client or server dead) without closing it is over after
    # this long: it ends as what it queued ends (FAILED when nothing was committed) unless a stream resumes it.
    ingest_upload_idle_seconds: float = 900.0
    # Helper processes each ingest process encodes accepted batches into table rows with, beside the one that
    # validates them (0: encode on a thread of the ingest process).
    ingest_encode_processes: int = 1
    # Worker processes sharing the gRPC port (SO_REUSEPORT): Python runs one core per process, so a CPU-bound
    # service (ingest validation) scales across cores this way; the parent serves the merged Prometheus metrics.
    processes: int = 1
    reuse_port: bool = False
    # The versioning service runs the queue worker beside its server unless told not to.
    run_worker: bool = True
    # How long a worker's hold on a stream partition lasts without renewal: the time before a dead worker's
    # partitions are taken over.
    worker_lease_seconds: float = 15.0
    # Claim checks a worker reads at once; those of one dataset commit together as one version.
    worker_read_count: int = 64
    # Most frames one commit applies; larger groups of queued batches are split, bounding a commit's memory.
    worker_max_commit_frames: int = 16_000
    # While batches stream in (a commit of the partition ended less than a second ago), how long the worker waits for
    # more before committing fewer than `worker_max_commit_frames` frames: fewer, larger versions cost less per frame
    # and leave fewer fragments to compact (1 s against 0.25 s: 17 versions instead of 33 for the benchmark's 181,000
    # changed frames, 110 µs of worker CPU a frame instead of 170). A lone upload after a quiet second commits at once.
    worker_gather_seconds: float = 1.0
    # Versions older than this may be dropped (0: every version is kept forever). Checkpointed versions, and those an
    # inference set or segment is pinned to, are always kept; the newest always is.
    version_retention_seconds: float = 0.0
    # Assets: the largest upload, where uploads are spooled while checked, how long signed URLs last, and the
    # HTTP endpoint that serves signed URLs when the store is a local directory (S3 presigns its own).
    asset_max_bytes: int = 5 << 30
    asset_spool_dir: str = ""
    asset_url_ttl_seconds: float = 3600.0
    asset_http_port: int = 50056
    asset_public_url: str = ""
    # Bytes of decoded pixels the asset service's image checks may hold at once (decompression bombs are refused).
    asset_decode_budget_bytes: int = 512 << 20
    url_signing_key: str = ""
    # The embedding service's compute device: "auto" (CuPy on a GPU when one is usable, else NumPy), "gpu" (fail at
    # start without a usable GPU: a pod scheduled for one must not quietly compute on the CPU) or "cpu".
    embedding_device: str = "auto"
    # Where this service calls the versioning service (the embedding service saves selections as segments through
    # it), and how long such a call may take before it fails as UNAVAILABLE.
    versioning_address: str = f"127.0.0.1:{DEFAULT_GRPC_PORTS['versioning']}"
    call_timeout_seconds: float = 30.0

    @classmethod
    def from_env(cls, service: str, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse settings for `service` from the environment (or `environ`)."""
        env = os.environ if environ is None else environ
        if service not in SERVICES:
            raise SettingsError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
        admin_key = env.get("SHOAL_ADMIN_API_KEY", "")
        check_admin_key(admin_key)
        store = StoreSettings.from_env(env)
        settings = cls(
            service=service,
            admin_api_key=admin_key,
            host=env.get("SHOAL_HOST", "127.0.0.1"),
            grpc_port=_int(env, "SHOAL_GRPC_PORT", DEFAULT_GRPC_PORTS[service]),
            metrics_port=_int(env, "SHOAL_METRICS_PORT", DEFAULT_METRICS_PORTS[service]),
            redis_url=env.get("SHOAL_REDIS_URL", "redis://127.0.0.1:6379/0"),
            store=store,
            log_level=env.get("SHOAL_LOG_LEVEL", "INFO").upper(),
            shutdown_grace_seconds=_float(env, "SHOAL_SHUTDOWN_GRACE_SECONDS", 10.0),
            api_key_cache_seconds=_float(env, "SHOAL_API_KEY_CACHE_SECONDS", 30.0),
            max_message_bytes=_int(env, "SHOAL_MAX_MESSAGE_BYTES", 64 * 1024 * 1024),
            ingest_partitions=max(1, _int(env, "SHOAL_INGEST_PARTITIONS", 4)),
            ingest_max_queue_depth=_int(env, "SHOAL_INGEST_MAX_QUEUE_DEPTH", 2000),
            ingest_max_batch_frames=max(1, _int(env, "SHOAL_INGEST_MAX_BATCH_FRAMES", 5000)),
            ingest_max_metadata_value_bytes=max(1, _int(env, "SHOAL_INGEST_MAX_METADATA_VALUE_BYTES", 64 * 1024)),
            ingest_max_attribute_bytes=max(1, _int(env, "SHOAL_INGEST_MAX_ATTRIBUTE_BYTES", 64 * 1024)),
            ingest_max_frame_bytes=max(1, _int(env, "SHOAL_INGEST_MAX_FRAME_BYTES", 4 * 1024 * 1024)),
            ingest_upload_idle_seconds=max(1.0, _float(env, "SHOAL_INGEST_UPLOAD_IDLE_SECONDS", 900.0)),
            ingest_encode_processes=max(0, _int(env, "SHOAL_INGEST_ENCODE_PROCESSES", 1)),
            processes=max(1, _int(env, "SHOAL_PROCESSES", 1)),
            reuse_port=_bool(env, "SHOAL_REUSE_PORT", default=False),
            run_worker=_bool(env, "SHOAL_VERSIONING_WORKER", default=True),
            worker_lease_seconds=max(0.5, _float(env, "SHOAL_WORKER_LEASE_SECONDS", 15.0)),
            worker_read_count=max(1, _int(env, "SHOAL_WORKER_READ_COUNT", 64)),
            worker_max_commit_frames=max(1, _int(env, "SHOAL_WORKER_MAX_COMMIT_FRAMES", 16_000)),
            worker_gather_seconds=max(0.0, _float(env, "SHOAL_WORKER_GATHER_SECONDS", 1.0)),
            version_retention_seconds=max(0.0, _float(env, "SHOAL_VERSION_RETENTION_SECONDS", 0.0)),
            asset_max_bytes=max(1, _int(env, "SHOAL_ASSET_MAX_BYTES", 5 << 30)),
            asset_spool_dir=env.get("SHOAL_ASSET_SPOOL_DIR", ""),
            asset_url_ttl_seconds=min(604800.0, max(1.0, _float(env, "SHOAL_ASSET_URL_TTL_SECONDS", 3600.0))),
            asset_http_port=_int(env, "SHOAL_ASSET_HTTP_PORT", 50056),
            asset_public_url=env.get("SHOAL_ASSET_PUBLIC_URL", ""),
            asset_decode_budget_bytes=max(1 << 20, _int(env, "SHOAL_ASSET_DECODE_BUDGET_BYTES", 512 << 20)),
            url_signing_key=env.get("SHOAL_URL_SIGNING_KEY", ""),
            embedding_device=env.get("SHOAL_EMBEDDING_DEVICE", "auto").lower(),
            versioning_address=env.get("SHOAL_VERSIONING_ADDRESS", "") or cls.versioning_address,
            call_timeout_seconds=max(0.1, _float(env, "SHOAL_CALL_TIMEOUT_SECONDS", 30.0)),
        )
        if settings.embedding_device not in ("auto", "gpu", "cpu"):
            raise SettingsError(f"SHOAL_EMBEDDING_DEVICE must be auto, gpu or cpu, got {settings.embedding_device!r}")
        return settings


def check_admin_key(key: str) -> None:
    """Refuse a missing, short or placeholder admin key."""
    if not key:
        raise SettingsError("SHOAL_ADMIN_API_KEY is not set: give the admin API key (16 characters or more)")
    if key.strip().lower() in _PLACEHOLDERS or len(key) < MIN_ADMIN_KEY_LENGTH:
        raise SettingsError(
            f"SHOAL_ADMIN_API_KEY looks like a placeholder: use a random key of {MIN_ADMIN_KEY_LENGTH} characters "
            "or more (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not -1 <= value <= 65535 and name.endswith("_PORT"):
        raise SettingsError(f"{name} must be a port number 0..65535, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise SettingsError(f"{name} must not be negative, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")
