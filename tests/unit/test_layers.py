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


# The catalog's segment writers, and the module that holds the segment rules (pinning, update masks) built on them.
SEGMENT_WRITERS = ("put_new_segment", "update_segment", "delete_segment")
SEGMENT_MODULE = "shoal.storage.segments"


def segment_writes(package: str) -> dict[str, list[str]]:
    """For every module of `shoal.<package>`: its imports of the segments module and its calls of segment writers."""
    found: dict[str, list[str]] = {}
    for path in sorted((PACKAGE / package).rglob("*.py")):
        hits: list[str] = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
                hits += [node.module] if node.module == SEGMENT_MODULE else [n for n in names if n == SEGMENT_MODULE]
            elif isinstance(node, ast.Import):
                hits += [alias.name for alias in node.names if alias.name == SEGMENT_MODULE]
            elif isinstance(node, ast.Attribute) and node.attr in SEGMENT_WRITERS:
                hits.append(node.attr)
        if hits:
            found[str(path.relative_to(PACKAGE))] = hits
    return found


@pytest.mark.parametrize("package", [s for s in SERVICES if s != "versioning"] + ["kit"])
def test_only_the_versioning_service_writes_segments(package: str) -> None:
    # The embedding service saves its selections through VersioningService.CreateSegment, never into the catalog.
    assert not segment_writes(package), f"segments are created through the versioning service's contract: {package}"


def test_the_segment_scan_sees_the_writer() -> None:
    # A guard against a scan that finds nothing: the versioning service does write segments.
    assert "shoal.storage.segments" in [hit for hits in segment_writes("versioning").values() for hit in hits]
