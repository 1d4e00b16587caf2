"""The change-log map's search over every fragment at once finds exactly what a search of each fragment finds."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from shoal.storage.tables import _LogRows

_INT64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
# Hashes that agree in their top 47 bits and differ below, at both ends of the range and around zero.
_NEAR = st.sampled_from([-(1 << 63), -(1 << 63) + 1, -1, 1, 2, (1 << 17) - 1, 1 << 17, (1 << 63) - 2, (1 << 63) - 1])
_KEY = st.one_of(_INT64, _NEAR)


def _part(keys: list[int]) -> _LogRows.Part:
    ordered = np.sort(np.array(keys, dtype=np.int64), kind="stable")
    n = len(ordered)
    return _LogRows.Part(ordered, np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int32), ["{}"])


def _positions(parts: list[_LogRows.Part], found: Iterable[tuple[_LogRows.Part, int]]) -> list[tuple[int, int]]:
    """(position of the part, index in it) of what `Keys.find` yielded."""
    where = {id(part): i for i, part in enumerate(parts)}
    return sorted((where[id(part)], j) for part, j in found)


def _each_part(parts: list[_LogRows.Part], key: int) -> list[tuple[int, int]]:
    found = []
    for i, part in enumerate(parts):
        low, high = np.searchsorted(part.keys, key, "left"), np.searchsorted(part.keys, key, "right")
        found.extend((i, j) for j in range(int(low), int(high)))
    return found


@given(st.lists(st.lists(_KEY, max_size=40), max_size=12), st.lists(_KEY, max_size=10))
@settings(max_examples=300, deadline=None)
def test_one_search_over_every_fragment_finds_what_a_search_of_each_finds(
    keys: list[list[int]], others: list[int]
) -> None:
    parts = [_part(k) for k in keys]
    together = _LogRows.Keys(parts)
    for key in [k for ks in keys for k in ks] + others:
        assert _positions(parts, together.find(key)) == _each_part(parts, key)


def test_hashes_equal_in_their_top_bits_are_told_apart() -> None:
    parts = [_part([0, 1, 2, 5]), _part([1, 1, 7]), _part([])]
    together = _LogRows.Keys(parts)
    assert _positions(parts, together.find(1)) == [(0, 1), (1, 0), (1, 1)]
    assert list(together.find(3)) == []
    assert _positions(parts, together.find(7)) == [(1, 2)]
