"""Immutable stored objects kept parsed: read once, missing ones not remembered, the oldest dropped past `keep`."""

from __future__ import annotations

from pathlib import Path

from shoal.kit.objectstore import open_store
from shoal.kit.parsed import ParsedObjects
from shoal.kit.settings import StoreSettings


def test_objects_are_parsed_once_and_the_oldest_are_dropped(tmp_path: Path) -> None:
    store = open_store(StoreSettings(url=(tmp_path / "store").as_uri()))
    parsed: list[bytes] = []

    def parse(blob: bytes) -> list[bytes]:
        parsed.append(blob)
        return [blob]

    cache = ParsedObjects(store, parse, keep=2)
    assert cache.get("a") is None  # missing: not remembered
    store.put("a", b"1", "text/plain")
    first = cache.get("a")
    assert first == [b"1"]
    assert cache.get("a") is first
    assert parsed == [b"1"]
    store.put("b", b"2", "text/plain")
    store.put("c", b"3", "text/plain")
    cache.get("b")
    cache.get("a")  # a is now the most recent of a, b
    cache.get("c")  # drops b
    assert cache.get("a") is first
    cache.get("b")
    assert parsed == [b"1", b"2", b"3", b"2"]
