from __future__ import annotations

import pytest
from shoal.kit.settings import DEFAULT_GRPC_PORTS, Settings, SettingsError

KEY = "k" * 32


def test_defaults_per_service() -> None:
    for service, port in DEFAULT_GRPC_PORTS.items():
        settings = Settings.from_env(service, {"SHOAL_ADMIN_API_KEY": KEY})
        assert settings.grpc_port == port
        assert settings.store.url.startswith("file://")
        assert not settings.store.is_s3


def test_everything_from_environment() -> None:
    env = {
        "SHOAL_ADMIN_API_KEY": KEY,
        "SHOAL_GRPC_PORT": "6000",
        "SHOAL_METRICS_PORT": "6001",
        "SHOAL_HOST": "0.0.0.0",
        "SHOAL_REDIS_URL": "redis://redis:6379/2",
        "SHOAL_STORE_URL": "s3://datasets/shoal",
        "SHOAL_S3_ENDPOINT": "http://minio:9000",
        "SHOAL_S3_ACCESS_KEY": "ak",
        "SHOAL_S3_SECRET_KEY": "sk",
        "SHOAL_S3_SECURE": "false",
        "SHOAL_LOG_LEVEL": "debug",
        "SHOAL_SHUTDOWN_GRACE_SECONDS": "2.5",
        "SHOAL_S3_PUBLIC_ENDPOINT": "https://objects.example.com",
        "SHOAL_EMBEDDING_DEVICE": "GPU",
    }
    s = Settings.from_env("asset", env)
    assert (s.grpc_port, s.metrics_port, s.host) == (6000, 6001, "0.0.0.0")
    assert s.redis_url == "redis://redis:6379/2"
    assert s.store.is_s3
    assert (s.store.s3_endpoint, s.store.s3_access_key, s.store.s3_secret_key, s.store.s3_secure) == (
        "http://minio:9000",
        "ak",
        "sk",
        False,
    )
    assert s.log_level == "DEBUG"
    assert s.shutdown_grace_seconds == 2.5
    assert s.store.s3_public_endpoint == "https://objects.example.com"
    assert s.embedding_device == "gpu"


@pytest.mark.parametrize("key", ["", "changeme", "secret", "short-key"])
def test_missing_or_placeholder_admin_key_stops_start_up(key: str) -> None:
    with pytest.raises(SettingsError, match="SHOAL_ADMIN_API_KEY"):
        Settings.from_env("ingest", {"SHOAL_ADMIN_API_KEY": key})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SHOAL_GRPC_PORT": "http"}, "SHOAL_GRPC_PORT must be an integer"),
        ({"SHOAL_GRPC_PORT": "70000"}, "SHOAL_GRPC_PORT must be a port number"),
        ({"SHOAL_SHUTDOWN_GRACE_SECONDS": "-1"}, "must not be negative"),
        ({"SHOAL_S3_SECURE": "maybe"}, "SHOAL_S3_SECURE must be true or false"),
        ({"SHOAL_EMBEDDING_DEVICE": "tpu"}, "SHOAL_EMBEDDING_DEVICE must be auto, gpu or cpu"),
        ({"SHOAL_STORE_URL": "gs://bucket"}, "must start with file:// or s3://"),
        ({"SHOAL_STORE_URL": "s3://bucket"}, "set SHOAL_S3_ENDPOINT, SHOAL_S3_ACCESS_KEY, SHOAL_S3_SECRET_KEY"),
    ],
)
def test_malformed_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env("ingest", {"SHOAL_ADMIN_API_KEY": KEY, **env})


def test_unknown_service() -> None:
    with pytest.raises(SettingsError, match="unknown service"):
        Settings.from_env("gateway", {"SHOAL_ADMIN_API_KEY": KEY})
