"""Stored objects that never change once written (their keys name everything they depend on), kept parsed in
memory: paging through a long stored list reads and parses the object once, not once a page."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from shoal.kit.objectstore import ObjectStore

T = TypeVar("T")


class ParsedObjects(Generic[T]):
    """The last `keep` objects read, parsed; thread-safe. Only objects that exist are kept."""

    def __init__(self, store: ObjectStore, parse: Callable[[bytes], T], keep: int = 4) -> None:
        self.store = store
        self.parse = parse
        self.keep = keep
        self._recent: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> T | None:
        with self._lock:
            if key in self._recent:
                self._recent.move_to_end(key)
                return self._recent[key]
        blob = self.store.get_or_none(key)
        if blob is None:
            return None
        value = self.parse(blob)
        with self._lock:
            self._recent[key] = value
            while len(self._recent) > self.keep:
                self._recent.popitem(last=False)
        return value
