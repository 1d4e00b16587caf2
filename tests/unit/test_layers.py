"""The layers hold: no service imports another service's package, and the shared layers (`shoal.kit`,
`shoal.storage`) import no service. Read from the source with `ast`, so an import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "shoal"
SERVICES = ("ingest", "versioning", "asset", "metrics", "embedding")
SHARED = ("kit", "storage")


def imported_packages(package: str) -> dict[str, set[str]]:
    """For every module of `shoal.<package>`: the `shoal.<x>` packages it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                if parts[0] == "shoal" and len(parts) > 1:
                    names.add(parts[1])
                elif node.module == "shoal":
                    names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] == "shoal" and len(parts) > 1:
                        names.add(parts[1])
        found[str(path.relative_to(PACKAGE))] = names
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_imports_another_service(service: str) -> None:
    wrong = {
        module: sorted(names & (set(SERVICES) - {service}))
        for module, names in imported_packages(service).items()
        if names & (set(SERVICES) - {service})
    }
    assert not wrong, f"services talk through their contracts, not each other's modules: {wrong}"


@pytest.mark.parametrize("layer", SHARED)
def test_shared_layers_import_no_service(layer: str) -> None:
    wrong = {
        module: sorted(names & set(SERVICES))
        for module, names in imported_packages(layer).items()
        if names & set(SERVICES)
    }
    assert not wrong, f"shoal.{layer} is shared by every service and may not depend on one: {wrong}"


def test_the_scan_sees_imports() -> None:
    # A guard against a scan that finds nothing: the versioning service does use the storage layer.
    assert any("storage" in names for names in imported_packages("versioning").values())
