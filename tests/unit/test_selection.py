"""Each selection strategy on a small set whose answer can be checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from shoal.embedding import compute
from shoal.embedding.selection import Criterion, select
from shoal.kit.errors import InvalidArgument

B = compute.Backend.detect("cpu")

# Four tight clusters at the corners of a square, 10 points each: rows 0-9, 10-19, 20-29, 30-39.
_rng = np.random.default_rng(0)
CORNERS = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], np.float32)
POINTS = np.concatenate([c + _rng.normal(0, 0.1, (10, 2)) for c in CORNERS]).astype(np.float32)
X = compute.prepare(B, POINTS, compute.EUCLIDEAN)
CLUSTER = np.repeat(np.arange(4), 10)


def test_diversity_takes_one_per_cluster_then_stops_at_the_minimum_distance() -> None:
    s = select(B, X, [Criterion("DIVERSITY", minimum_distance=2.0)], 10)
    assert sorted(CLUSTER[s.rows]) == [0, 1, 2, 3]


def test_weights_prefer_high_values() -> None:
    values = np.arange(40, dtype=np.float64)
    s = select(B, X, [Criterion("WEIGHTS", values=values)], 3)
    assert s.rows == [39, 38, 37]


def test_threshold_filters_and_combines() -> None:
    values = np.arange(40, dtype=np.float64)
    s = select(
        B,
        X,
        [Criterion("THRESHOLD", values=values, threshold=30, operation="SMALLER"), Criterion("WEIGHTS", values=values)],
        2,
    )
    assert s.rows == [29, 28]
    with_nan = values.copy()
    with_nan[29] = np.nan
    s = select(
        B,
        X,
        [
            Criterion("THRESHOLD", values=with_nan, threshold=30, operation="SMALLER"),
            Criterion("WEIGHTS", values=values),
        ],
        1,
    )
    assert s.rows == [28]  # a missing value never passes a threshold


def test_balance_reaches_the_target_shares() -> None:
    s = select(B, X, [Criterion("BALANCE", classes=CLUSTER, target={0: 0.5, 1: 0.5})], 8)
    assert sorted(np.bincount(CLUSTER[s.rows], minlength=4).tolist()) == [0, 0, 4, 4]
    assert set(CLUSTER[s.rows]) == {0, 1}


def test_similarity_prefers_the_query_cluster() -> None:
    s = select(B, X, [Criterion("SIMILARITY", queries=[25])], 10)
    assert set(CLUSTER[s.rows]) == {2}


def test_typicality_prefers_dense_regions() -> None:
    pts = np.concatenate([POINTS, np.array([[50, 50], [-40, 30]], np.float32)])
    s = select(B, compute.prepare(B, pts, compute.EUCLIDEAN), [Criterion("TYPICALITY", neighbors=5)], 40)
    assert 40 not in s.rows
    assert 41 not in s.rows


def test_random_is_reproducible_and_diversity_with_weights_combines() -> None:
    a = select(B, X, [Criterion("RANDOM")], 5, seed=3)
    b = select(B, X, [Criterion("RANDOM")], 5, seed=3)
    assert a.rows == b.rows
    values = np.where(CLUSTER == 3, 1.0, 0.5)
    s = select(B, X, [Criterion("DIVERSITY"), Criterion("WEIGHTS", values=values, strength=1.0)], 4)
    assert s.rows[0] // 10 == 3  # the heavy cluster first
    assert sorted(CLUSTER[s.rows]) == [0, 1, 2, 3]  # then one per cluster


def test_bad_criteria_are_rejected() -> None:
    with pytest.raises(InvalidArgument):
        select(B, X, [Criterion("SIMILARITY")], 3)
    with pytest.raises(InvalidArgument):
        select(B, X, [Criterion("WEIGHTS", values=np.ones(40), strength=-1)], 3)
    with pytest.raises(InvalidArgument):
        select(B, X, [Criterion("NOPE")], 3)
