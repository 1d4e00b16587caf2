"""How the client commands pick the suite and the key: the command line over the environment over the state
directory, and the local suite's admin key never sent anywhere else."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from shoal import datacli
from shoal.runner.suite import ADMIN_KEY_FILE, ServicePorts, SuiteConfig

LOCAL_KEY = "local-admin-key-0123456789abcdef"


def _args(state: Path, **given: object) -> argparse.Namespace:
    values = {"state_dir": str(state), "address": None, "host": None, "api_key": "", "retries": 0} | given
    return argparse.Namespace(**values)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [*datacli.ADDRESS_ENV, "SHOAL_API_KEY"]:
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "state"
    services = {n: ServicePorts(40000 + i, 41000 + i) for i, n in enumerate(["ingest", "versioning", "asset"])}
    services |= {"metrics": ServicePorts(40003, 41003), "embedding": ServicePorts(40004, 41004)}
    SuiteConfig(state_dir=str(folder), services=services).save()
    (folder / ADMIN_KEY_FILE).write_text(LOCAL_KEY)
    return folder


def test_the_state_dir_gives_ports_and_key(state: Path) -> None:
    with datacli.client(_args(state)) as c:
        assert c.addresses["versioning"] == "127.0.0.1:40001"
        assert c.api_key == LOCAL_KEY


def test_the_command_line_address_wins_over_the_environment(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_INGEST_ADDRESS", "env-host:1")
    with datacli.client(_args(state, address="ingress:443", api_key="k" * 20)) as c:
        assert set(c.addresses.values()) == {"ingress:443"}
    with datacli.client(_args(state, api_key="k" * 20)) as c:
        assert c.addresses["ingest"] == "env-host:1"


def test_the_local_admin_key_is_not_sent_elsewhere(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(datacli.CommandError, match="no API key"):
        datacli.client(_args(state, address="prod.example:443"))
    monkeypatch.setenv("SHOAL_ADDRESS", "prod.example:443")
    with pytest.raises(datacli.CommandError, match="no API key"):
        datacli.client(_args(state))


def test_an_unexpected_failure_is_one_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOAL_DEBUG", raising=False)

    def broken(_: argparse.Namespace) -> int:
        return len(json.loads('{"images": null}')["images"])  # TypeError, as from a file of an unexpected shape

    assert datacli.run(broken, argparse.Namespace()) == 1
    said = capsys.readouterr().err
    assert said.startswith("error: TypeError:")
    assert len(said.splitlines()) == 1
