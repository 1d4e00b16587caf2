"""Sample selection as the Lightly strategies, combined greedily: at each step the candidate with the highest product of
its objectives, each raised to its strength, is taken.

- DIVERSITY: distance to the nearest sample taken so far (k-center greedy), scaled by the largest such distance;
  `minimum_distance` stops the selection when the farthest candidate is closer than that.
- WEIGHTS: a numeric value per sample (a score or metadata field) as a weight proportional to it; high is preferred.
- THRESHOLD: a filter on a value (>, ≥, <, ≤); samples that fail it are never taken.
- BALANCE: how far the sample's class is below its target share of the selection so far.
- SIMILARITY: cosine similarity to the nearest query sample, scaled to [0, 1].
- TYPICALITY: inverse of the mean distance to the sample's k nearest neighbours, scaled to [0, 1].
- RANDOM: a uniform draw from the seed.

With DIVERSITY alone the selection is exactly k-center greedy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shoal.embedding import compute
from shoal.kit.errors import FieldViolation, InvalidArgument

STRATEGIES = ("DIVERSITY", "WEIGHTS", "THRESHOLD", "BALANCE", "SIMILARITY", "TYPICALITY", "RANDOM")
OPERATIONS = {
    "GREATER": np.greater,
    "GREATER_EQUAL": np.greater_equal,
    "SMALLER": np.less,
    "SMALLER_EQUAL": np.less_equal,
}


@dataclass
class Criterion:
    strategy: str
    strength: float = 1.0
    values: np.ndarray | None = None  # WEIGHTS, THRESHOLD: one number per sample (NaN: missing)
    classes: np.ndarray | None = None  # BALANCE: class index per sample (-1: none)
    target: Mapping[int, float] = field(default_factory=dict)  # BALANCE: class index → share
    threshold: float = 0.0
    operation: str = "GREATER"
    minimum_distance: float = 0.0
    queries: Sequence[int] = ()  # SIMILARITY: rows of the query samples
    neighbors: int = 10  # TYPICALITY


@dataclass
class Selection:
    rows: list[int]
    scores: list[float]


def _scaled(v: np.ndarray) -> np.ndarray:
    finite = np.isfinite(v)
    out = np.zeros_like(v, dtype=np.float64)
    if finite.any():
        lo, hi = float(v[finite].min()), float(v[finite].max())
        out[finite] = 1.0 if hi == lo else (v[finite] - lo) / (hi - lo)
    return out


def _weights(v: np.ndarray) -> np.ndarray:
    """Values as weights in [0, 1], proportional to the value (shifted up first when some are negative)."""
    finite = np.isfinite(v)
    out = np.zeros_like(v, dtype=np.float64)
    if finite.any():
        lo = min(0.0, float(v[finite].min()))
        hi = float(v[finite].max()) - lo
        out[finite] = 1.0 if hi == 0 else (v[finite] - lo) / hi
    return out


def select(
    backend: compute.Backend,
    vectors: Any,
    criteria: Sequence[Criterion],
    count: int,
    *,
    metric: str = compute.EUCLIDEAN,
    eligible: np.ndarray | None = None,
    seed: int = 0,
) -> Selection:
    """Pick up to `count` rows of `vectors` (prepared by `compute.prepare`) by the combined criteria."""
    xp = backend.xp
    n = int(vectors.shape[0]) if vectors is not None else len(eligible if eligible is not None else [])
    if count < 0:
        raise InvalidArgument.of([FieldViolation("count", "must not be negative")])
    for i, c in enumerate(criteria):
        if c.strategy not in STRATEGIES:
            raise InvalidArgument.of([FieldViolation(f"criteria[{i}].strategy", f"unknown strategy {c.strategy!r}")])
        if not (np.isfinite(c.strength) and c.strength >= 0):
            raise InvalidArgument.of([FieldViolation(f"criteria[{i}].strength", "must be a non-negative number")])
    ok = np.ones(n, bool) if eligible is None else np.asarray(eligible, bool).copy()
    static = np.zeros(n)  # log of the product of the static objectives
    diversity: list[Criterion] = []
    balance: list[Criterion] = []
    for i, c in enumerate(criteria):
        where = f"criteria[{i}]"
        if c.strategy == "THRESHOLD":
            if c.values is None or c.operation not in OPERATIONS:
                raise InvalidArgument.of([FieldViolation(where, "THRESHOLD needs values and an operation")])
            with np.errstate(invalid="ignore"):
                ok &= OPERATIONS[c.operation](c.values, c.threshold) & np.isfinite(c.values)
        elif c.strategy == "WEIGHTS":
            if c.values is None:
                raise InvalidArgument.of([FieldViolation(where, "WEIGHTS needs a numeric input")])
            static += c.strength * np.log(np.maximum(_weights(np.asarray(c.values, np.float64)), 1e-12))
        elif c.strategy == "RANDOM":
            static += c.strength * np.log(np.random.default_rng(seed + i).random(n) + 1e-12)
        elif c.strategy == "SIMILARITY":
            if not c.queries:
                raise InvalidArgument.of([FieldViolation(f"{where}.query_frame_ids", "SIMILARITY needs query samples")])
            # Distance of every sample to its nearest query: the queries are the base of this search.
            d_all, _ = compute.knn(backend, vectors[xp.asarray(list(c.queries))], vectors, 1, metric)
            static += c.strength * np.log(np.maximum(1 - _scaled(d_all[:, 0]), 1e-12))
        elif c.strategy == "TYPICALITY":
            k = max(1, min(c.neighbors or 10, n - 1))
            d, _ = compute.knn(backend, vectors, vectors, k + 1, metric)
            mean = d[:, 1:].mean(axis=1)
            static += c.strength * np.log(np.maximum(_scaled(1.0 / (1e-12 + mean)), 1e-12))
        elif c.strategy == "DIVERSITY":
            diversity.append(c)
        elif c.strategy == "BALANCE":
            if c.classes is None or not c.target:
                raise InvalidArgument.of([FieldViolation(where, "BALANCE needs classes and target shares")])
            balance.append(c)

    if diversity and not balance and static.max(initial=0) == static.min(initial=0) and len(criteria) == len(diversity):
        # Diversity alone: k-center greedy, started from the first eligible sample.
        first = int(np.flatnonzero(ok)[0]) if ok.any() else 0
        rows, at = compute.k_center_greedy(
            backend,
            vectors,
            count,
            metric=metric,
            minimum_distance=max(c.minimum_distance for c in diversity),
            first=first,
            eligible=xp.asarray(ok),
        )
        return Selection(rows, at)

    picked: list[int] = []
    scores: list[float] = []
    min_d = np.full(n, np.inf)
    sq = backend.to_host(compute.squared_norms(backend, vectors)) if diversity else None
    counts: dict[int, int] = {}
    taken = np.zeros(n, bool)
    while len(picked) < count:
        candidates = ok & ~taken
        if not candidates.any():
            break
        objective = static.copy()
        if diversity and picked:
            top = float(min_d[candidates].max())
            floor = max(c.minimum_distance for c in diversity)
            if floor > 0 and top < floor:
                break
            scaled = min_d / top if top > 0 else np.zeros(n)
            for c in diversity:
                objective += c.strength * np.log(np.maximum(scaled, 1e-12))
        for c in balance:
            total = max(1, len(picked))
            cls = np.asarray(c.classes)
            deficit = np.array(
                [c.target.get(int(k), 0.0) - counts.get(int(k), 0) / total for k in range(int(cls.max()) + 1)] + [0.0]
            )
            per = np.where(cls >= 0, deficit[np.where(cls >= 0, cls, -1)], 0.0)
            objective += c.strength * np.log(np.maximum(_scaled(per), 1e-12))
        objective = np.where(candidates, objective, -np.inf)
        row = int(np.argmax(objective))
        picked.append(row)
        scores.append(float(np.exp(objective[row])))
        taken[row] = True
        for c in balance:
            k = int(np.asarray(c.classes)[row])
            counts[k] = counts.get(k, 0) + 1
        if diversity:
            assert sq is not None
            v = vectors[row].astype(xp.float32)
            d = backend.to_host(vectors.astype(xp.float32, copy=False) @ v)
            dist = 1 - d if metric == compute.COSINE else np.sqrt(np.maximum(sq + sq[row] - 2 * d, 0))
            min_d = np.minimum(min_d, dist)
    return Selection(picked, scores)
