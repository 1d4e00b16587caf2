"""The embedding service's arithmetic, written once over an array module `xp`: CuPy when a GPU is present, NumPy
otherwise, chosen once at start-up. Exact k-nearest-neighbour search (faiss' exhaustive kernels on the CPU when faiss
is installed; chunked, so a set larger than device memory still works) and k-center greedy selection.

Search keeps, per query, the k best scores seen so far; each chunk of the base is scored with one matrix product and
only the scores that beat the query's current k-th best are merged, so after the first chunk almost nothing is sorted.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final

import numpy as np

from shoal.embedding import quantized

log = logging.getLogger("shoal.embedding.compute")

#: Scores per chunk of the base: queries × chunk rows, bounded so the score block stays a few hundred MiB.
SCORE_BLOCK_ELEMENTS: Final = 16 * 1024 * 1024
#: Rows normalised at once on one core.
UNIT_ROWS_CHUNK: Final = 65_536
COSINE: Final = "cosine"
EUCLIDEAN: Final = "euclidean"


@dataclass(frozen=True)
class Backend:
    """The array module and the device it computes on."""

    xp: ModuleType
    device: str  # "gpu" or "cpu"
    device_name: str
    memory_bytes: int
    library_version: str

    @staticmethod
    def detect(prefer: str = "auto") -> Backend:
        """CuPy on the first GPU when one is usable (and `prefer` is not "cpu"), else NumPy."""
        if prefer != "cpu":
            try:
                import cupy  # noqa: PLC0415

                if cupy.cuda.runtime.getDeviceCount() > 0:
                    props = cupy.cuda.runtime.getDeviceProperties(0)
                    _, total = cupy.cuda.runtime.memGetInfo()
                    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
                    return Backend(cupy, "gpu", name, int(total), f"cupy {cupy.__version__}")
            except Exception as err:
                if prefer == "gpu":
                    raise RuntimeError(f"a GPU was asked for but is not usable: {err}") from err
                log.info("no usable GPU (%s); computing on the CPU with NumPy", err)
        pages = os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
        size = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0
        advise_huge_pages(os.environ.get("SHOAL_HUGE_PAGES", "off"))
        return Backend(np, "cpu", f"{os.cpu_count()} CPU cores", int(pages * size), f"numpy {np.__version__}")

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        return self.xp.asarray(a, dtype=dtype)

    def to_host(self, a: Any) -> np.ndarray:
        if self.xp is np:
            return np.asarray(a)
        return self.xp.asnumpy(a)  # type: ignore[no-any-return]


def advise_huge_pages(setting: str) -> None:
    """Whether NumPy asks the kernel for transparent huge pages on its large arrays (`on`) or not (`off`).

    NumPy asks by default. Where the kernel's THP mode is `madvise` but huge pages cannot be had (fragmented memory,
    most VMs), each first touch of a page then stalls on a failed compaction: on a 2-core VM, filling a fresh
    512 MB array took 0.52–1.15 s asking and 0.20–0.28 s not, and a 1,000,000 × 128 index build 4.2 s against
    2.6 s. Indexes are built and dropped all the time, so the service does not ask unless told to."""
    setter = getattr(getattr(getattr(np, "_core", None), "multiarray", None), "_set_madvise_hugepage", None)
    if setter is not None:
        setter(setting.strip().lower() in ("on", "1", "true"))


def prepare(backend: Backend, vectors: np.ndarray | Sequence[np.ndarray], metric: str, dtype: Any = np.float32) -> Any:
    """Vectors as the index keeps them: on the backend's device, in `dtype`, unit length for cosine. `vectors` is one
    [rows, dim] array or its parts in order (a column's chunks as the table hands them over); a cosine base on the
    CPU is scaled from the parts straight into the index's array, with no joined copy of them made first. A cosine
    base on the CPU large enough for it also gets its int8 form (see `quantized`), kept beside it."""
    xp = backend.xp
    parts = [vectors] if isinstance(vectors, np.ndarray) else list(vectors)
    if metric == COSINE and xp is np:
        x = _unit_rows(parts)
    else:
        joined = parts[0] if len(parts) == 1 else np.concatenate(parts)
        x = xp.asarray(joined, dtype=xp.float32)
        if metric == COSINE:
            x = x / _safe_norms(xp, x)
    x = x.astype(dtype, copy=False)
    if _int8_wanted(backend, x, metric):
        quantized.CACHE.put(x, quantized.quantize(x))
    return x


def _safe_norms(xp: Any, rows: Any) -> Any:
    """Row norms [n, 1] from one pass of einsum (no squared copy of the rows, as `linalg.norm` makes); 1 for a zero
    row."""
    norms = xp.sqrt(xp.einsum("ij,ij->i", rows, rows))[:, None]
    norms[norms == 0] = 1
    return norms


def _unit_rows(parts: list[np.ndarray]) -> np.ndarray:
    """The rows of `parts`, in order, each non-zero one scaled to unit length, in one new float32 array: a norm pass
    and a division per piece of at most UNIT_ROWS_CHUNK rows, the pieces on every core at once (NumPy releases the
    GIL in both). Each row is read from its part and written once, so the array's memory is first touched here."""
    parts = [np.asarray(p, dtype=np.float32) for p in parts]
    dim = int(parts[0].shape[1]) if parts and parts[0].ndim == 2 else 0
    out = np.empty((sum(len(p) for p in parts), dim), np.float32)
    pieces: list[tuple[np.ndarray, int]] = []
    at = 0
    for part in parts:
        for start in range(0, len(part), UNIT_ROWS_CHUNK):
            pieces.append((part[start : start + UNIT_ROWS_CHUNK], at + start))
        at += len(part)

    def scale(piece: tuple[np.ndarray, int]) -> None:
        rows, start = piece
        np.divide(rows, _safe_norms(np, rows), out=out[start : start + len(rows)])

    if len(pieces) <= 1:
        for piece in pieces:
            scale(piece)
        return out
    with ThreadPoolExecutor(min(len(pieces), os.cpu_count() or 1)) as pool:
        list(pool.map(scale, pieces))
    return out


def _int8_wanted(backend: Backend, base: Any, metric: str) -> bool:
    return (
        backend.xp is np
        and metric == COSINE
        and base.dtype == np.float32
        and base.ndim == 2
        and int(base.shape[0]) >= quantized.MIN_ROWS
        and int(base.shape[1]) <= quantized.MAX_DIM
        and faiss_module() is not None
        and os.environ.get("SHOAL_EXACT_ENGINE", "auto").lower() not in ("faiss", "numpy")
        and quantized.available()
    )


def knn(
    backend: Backend,
    base: Any,
    queries: Any,
    k: int,
    metric: str,
    *,
    allowed: Any = None,
    base_sq_norms: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of each query among `base` rows (only `allowed` ones when given). Returns
    (distances [q, k], row indices [q, k]) on the host, nearest first; cosine distance is 1 − cosine similarity,
    euclidean distance is the L2 distance. Rows are padded with -1 / inf when fewer than k are allowed.

    On the CPU, unmasked float32 bases are searched by faiss' exhaustive kernels (the BLAS product and its
    per-query heaps, the same code as faiss' IndexFlat) when faiss is installed. Elsewhere (CuPy, float16 bases,
    masks) the chunked search below runs."""
    xp = backend.xp
    n = int(base.shape[0])
    q = xp.asarray(queries, dtype=xp.float32)
    nq = int(q.shape[0])
    if metric == COSINE:
        norms = xp.linalg.norm(q, axis=1, keepdims=True)
        q = q / xp.where(norms > 0, norms, 1)
    # Masked searches stay on the chunked path, which masks scores in place (faiss would need a copy of the rows).
    engine = faiss_module() if xp is np and base.dtype == np.float32 and allowed is None else None
    if engine is not None:
        int8 = _int8_form(base, metric, k)
        if int8 is not None:
            return _int8_knn(engine, int8, base, q, k)
        return _faiss_knn(engine, base, q, k, metric)
    # Larger is better: cosine similarity, or −(squared distance) up to the query's own norm, which is constant.
    if metric == EUCLIDEAN and base_sq_norms is None:
        base_sq_norms = squared_norms(backend, base)
    best_val = xp.full((nq, k), -xp.inf, dtype=xp.float32)
    best_idx = xp.full((nq, k), -1, dtype=xp.int64)
    chunk = max(1024, SCORE_BLOCK_ELEMENTS // max(1, nq))
    # A small first chunk sets every query's threshold cheaply; later chunks then pass few scores.
    bounds = [0, min(n, max(k, 2048))]
    while bounds[-1] < n:
        bounds.append(min(n, bounds[-1] + chunk))
    for start, stop in itertools.pairwise(bounds):
        block = base[start:stop]
        if block.dtype != xp.float32:
            block = block.astype(xp.float32)
        scores = block @ q.T  # [c, nq]: the base rows' layout, so the product and the scans below run contiguous
        if metric == EUCLIDEAN:
            scores = 2 * scores - base_sq_norms[start:stop][:, None]
        if allowed is not None:
            scores = xp.where(allowed[start:stop][:, None], scores, -xp.inf)
        if start == 0 and scores.shape[0] > k:
            # The first chunk: take each query's k best directly, which sets every threshold.
            top = xp.argpartition(xp.ascontiguousarray(scores.T), scores.shape[0] - k, axis=1)[:, -k:]  # [nq, k]
            rows = xp.repeat(xp.arange(nq), k)
            cols = top.ravel()
        else:
            rows, cols = _passing(xp, scores, best_val[:, -1])
        if rows.size == 0:
            continue
        values = scores[cols, rows]
        # Merge the candidates with the current best: all of them per query, best first, keep k.
        all_rows = xp.concatenate([xp.repeat(xp.arange(nq), k), rows])
        all_vals = xp.concatenate([best_val.ravel(), values])
        all_idx = xp.concatenate([best_idx.ravel(), cols.astype(xp.int64) + start])
        order = xp.lexsort(xp.stack([all_idx, -all_vals, all_rows]))
        all_rows, all_vals, all_idx = all_rows[order], all_vals[order], all_idx[order]
        counts = xp.bincount(all_rows, minlength=nq)
        firsts = xp.cumsum(counts) - counts
        rank = xp.arange(all_rows.shape[0]) - xp.repeat(firsts, counts)
        keep = rank < k
        best_val[all_rows[keep], rank[keep]] = all_vals[keep]
        best_idx[all_rows[keep], rank[keep]] = all_idx[keep]
    vals = backend.to_host(best_val).astype(np.float64)
    idx = backend.to_host(best_idx)
    if metric == COSINE:
        dist = 1.0 - vals
    else:
        qn = backend.to_host((q * q).sum(axis=1)).astype(np.float64)
        dist = np.sqrt(np.maximum(qn[:, None] - vals, 0.0))
    dist[idx < 0] = np.inf
    return dist, idx


_FAISS: list[ModuleType | None] = []


def faiss_module() -> ModuleType | None:
    """faiss when it is installed (and SHOAL_EXACT_ENGINE is not "numpy"), else None."""
    if not _FAISS:
        found: ModuleType | None = None
        if os.environ.get("SHOAL_EXACT_ENGINE", "auto").lower() != "numpy":
            try:
                import faiss  # noqa: PLC0415

                found = faiss
            except ImportError:
                log.info("faiss is not installed: exact search runs on NumPy")
        _FAISS.append(found)
    return _FAISS[0]


def exact_engine(backend: Backend, *, masked: bool = False, base: Any = None, metric: str = "", k: int = 1) -> str:
    """What answers exact searches of `k` neighbours on this backend: "int8-rerank" (a cosine `base` with an int8
    form, k up to `quantized.MAX_K`), "faiss", "numpy" or "cupy" (masked: never faiss)."""
    if backend.xp is not np:
        return "cupy"
    if faiss_module() is None or masked:
        return "numpy"
    if base is not None and _int8_form(base, metric, k) is not None:
        return "int8-rerank"
    return "faiss"


def _int8_form(base: Any, metric: str, k: int) -> quantized.QuantizedBase | None:
    """The int8 form that answers a cosine search of `k` neighbours in `base`, if it has one and k is in range."""
    if metric != COSINE or not 0 < k <= quantized.MAX_K or not quantized.available():
        return None
    return quantized.CACHE.get(base)


def _int8_knn(
    faiss: ModuleType, int8: quantized.QuantizedBase, base: np.ndarray, q: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine kNN through the int8 prefilter; the queries it cannot settle go to faiss' float32 kernel."""
    nq = int(q.shape[0])
    dist = np.full((nq, k), np.inf)
    idx = np.full((nq, k), -1, np.int64)
    sims, found, unsettled = quantized.search(faiss, int8, base, q, k)
    kk = sims.shape[1]
    dist[:, :kk], idx[:, :kk] = 1.0 - sims.astype(np.float64), found
    if unsettled.any():
        quantized.FALLBACKS.add(int(unsettled.sum()))
        again_dist, again_idx = _faiss_knn(faiss, base, q[unsettled], k, COSINE)
        dist[unsettled], idx[unsettled] = again_dist, again_idx
    return dist, idx


def _faiss_knn(
    faiss: ModuleType, base: np.ndarray, q: np.ndarray, k: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    kk = min(k, int(base.shape[0]))
    nq = int(q.shape[0])
    dist = np.full((nq, k), np.inf)
    idx = np.full((nq, k), -1, np.int64)
    if kk == 0:
        return dist, idx
    q = np.ascontiguousarray(q, np.float32)
    base = np.ascontiguousarray(base)
    if metric == COSINE:
        sims, found = faiss.knn(q, base, kk, metric=faiss.METRIC_INNER_PRODUCT)
        got = 1.0 - sims.astype(np.float64)
    else:
        squared, found = faiss.knn(q, base, kk, metric=faiss.METRIC_L2)
        got = np.sqrt(np.maximum(squared.astype(np.float64), 0.0))
    found = found.astype(np.int64)
    got[found < 0] = np.inf
    dist[:, :kk], idx[:, :kk] = got, found
    return dist, idx


GROUP: Final = 64


def _passing(xp: ModuleType, scores: Any, threshold: Any) -> tuple[Any, Any]:
    """(query, base row) of the scores [rows, queries] above each query's threshold. Rows are first looked at in
    interleaved groups of 64 (row j belongs to group j mod G) through each group's maximum — an elementwise maximum
    over 64 contiguous slabs, which vectorises — so the full comparison only runs on the few groups holding one."""
    c, nq = scores.shape
    span = c // GROUP  # G
    whole = span * GROUP
    q_out, r_out = [], []
    if span:
        peaks = scores[:whole].reshape(GROUP, span, nq).max(axis=0)  # [G, nq]
        g_idx, g_q = xp.nonzero(peaks > threshold[None, :])
        if g_idx.size:
            window = g_idx[:, None] + span * xp.arange(GROUP)[None, :]  # [hits, 64] base rows
            vals = scores[window, g_q[:, None]]
            hit, slot = xp.nonzero(vals > threshold[g_q][:, None])
            q_out.append(g_q[hit])
            r_out.append(window[hit, slot])
    if whole < c:
        r, qq = xp.nonzero(scores[whole:] > threshold[None, :])
        q_out.append(qq)
        r_out.append(r + whole)
    if not q_out:
        return xp.zeros(0, xp.int64), xp.zeros(0, xp.int64)
    return xp.concatenate(q_out), xp.concatenate(r_out)


def squared_norms(backend: Backend, base: Any) -> Any:
    xp = backend.xp
    out = xp.empty(base.shape[0], dtype=xp.float32)
    step = 1 << 18
    for start in range(0, int(base.shape[0]), step):
        b = base[start : start + step].astype(xp.float32)
        out[start : start + step] = (b * b).sum(axis=1)
    return out


def k_center_greedy(
    backend: Backend,
    x: Any,
    count: int,
    *,
    metric: str = EUCLIDEAN,
    selected: list[int] | None = None,
    minimum_distance: float = 0.0,
    first: int = 0,
    eligible: Any = None,
) -> tuple[list[int], list[float]]:
    """Pick up to `count` rows, each the one farthest from everything picked so far (and from `selected`); stop early
    when the farthest is closer than `minimum_distance`. Returns the rows and the distance each was picked at (the
    first pick of an empty selection is `first`, at distance inf)."""
    xp = backend.xp
    n = int(x.shape[0])
    sq = squared_norms(backend, x)
    min_d2 = xp.full(n, xp.inf, dtype=xp.float32)
    if eligible is not None:
        min_d2 = xp.where(eligible, min_d2, -xp.inf)

    rows32 = x.astype(xp.float32, copy=False)
    # Buffers reused by every pick: each pick is one matrix-vector product over the rows (bound by memory
    # bandwidth), and the passes after it run in place, with the operations of `maximum(sq + sq[row] − 2 x·c, 0)`
    # in the same order.
    dots = xp.empty(n, dtype=xp.float32)
    d2 = xp.empty(n, dtype=xp.float32)

    def update(row: int) -> None:
        c = rows32[row]
        xp.matmul(rows32, c, out=dots)
        if metric == COSINE:
            xp.subtract(1, dots, out=d2)  # cosine distance of unit vectors
        else:
            xp.add(sq, sq[row], out=d2)
            xp.multiply(dots, 2, out=dots)
            xp.subtract(d2, dots, out=d2)
        xp.maximum(d2, 0, out=d2)
        xp.minimum(min_d2, d2, out=min_d2)

    picks: list[int] = []
    at: list[float] = []
    for row in selected or []:
        update(int(row))
    floor = minimum_distance**2 if metric == EUCLIDEAN else minimum_distance
    while len(picks) < count:
        if not picks and not selected:
            row, value = first, float("inf")
        else:
            row = int(xp.argmax(min_d2))
            best = float(min_d2[row])
            if best == -np.inf or (best <= 0 and row in picks):
                break
            value = float(np.sqrt(best)) if metric == EUCLIDEAN else best
            if minimum_distance > 0 and best < floor:
                break
        picks.append(row)
        at.append(value)
        update(row)
        min_d2[row] = -xp.inf
    return picks, at


Neighbours = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def duplicates(
    backend: Backend, x: Any, threshold: float, metric: str, *, k: int = 16, neighbours: Neighbours | None = None
) -> list[tuple[list[int], float]]:
    """Groups of rows within `threshold` of each other (connected through pairs closer than it), with the largest
    pair distance inside each group; exact duplicates have distance 0. Pairs are found by a k-NN of every row (k
    grows while a row's k-th neighbour is still within the threshold): exact, or `neighbours(rows, k)` — an
    approximate index's — for large sets."""
    n = int(x.shape[0])
    find = neighbours or _exact_neighbours(backend, x, metric)
    a_rows: list[np.ndarray] = []
    b_rows: list[np.ndarray] = []
    d_vals: list[np.ndarray] = []
    todo = np.arange(n)
    kk = min(k, n)
    while todo.size and kk > 1:
        dist, idx = find(todo, kk)
        close = (dist <= threshold) & (idx >= 0)
        r, j = np.nonzero(close)
        other = idx[r, j]
        keep = other != todo[r]
        a_rows.append(todo[r][keep])
        b_rows.append(other[keep])
        d_vals.append(dist[r, j][keep])
        full = close.all(axis=1)
        if kk >= n:
            break
        todo = todo[full]
        kk = min(n, kk * 4)
    a = np.concatenate(a_rows) if a_rows else np.zeros(0, np.int64)
    b = np.concatenate(b_rows) if b_rows else np.zeros(0, np.int64)
    d = np.concatenate(d_vals) if d_vals else np.zeros(0)
    if not a.size:
        return []
    # Connected components of the pairs (union-find over the few rows in a pair).
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        parent.setdefault(i, i)
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for u, v in zip(a.tolist(), b.tolist(), strict=True):
        ru, rv = root(u), root(v)
        if ru != rv:
            parent[ru] = rv
    worst: dict[int, float] = {}
    for u, dd in zip(a.tolist(), d.tolist(), strict=True):
        r0 = root(u)
        worst[r0] = max(worst.get(r0, 0.0), dd)
    groups: dict[int, list[int]] = {}
    for i in sorted(parent):
        groups.setdefault(root(i), []).append(i)
    return sorted(((rows, worst[r0]) for r0, rows in groups.items()), key=lambda g: (-len(g[0]), g[0][0]))


def _exact_neighbours(backend: Backend, x: Any, metric: str) -> Neighbours:
    def find(rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = x[backend.asarray(rows)] if backend.xp is not np else x[rows]
        return knn(backend, x, queries, k, metric)

    return find


def uniqueness(
    backend: Backend, x: Any, metric: str, *, k: int = 5, neighbours: Neighbours | None = None
) -> np.ndarray:
    """Per row, the mean distance to its k nearest other rows, scaled so the most unique row scores 1 (neighbours
    found exactly, or by `neighbours(rows, k)` for large sets)."""
    n = int(x.shape[0])
    if n < 2:
        return np.ones(n)
    kk = min(k, n - 1)
    find = neighbours or _exact_neighbours(backend, x, metric)
    dist, idx = find(np.arange(n), kk + 1)
    # Each row's own entry (distance 0, normally first) is left out; a row whose list missed itself drops its last.
    usable = (idx != np.arange(n)[:, None]) & np.isfinite(dist)
    ordered = np.sort(np.where(usable, dist, np.inf), axis=1)[:, :kk]
    counted = np.isfinite(ordered)
    mean = np.where(counted, ordered, 0.0).sum(axis=1) / np.maximum(counted.sum(axis=1), 1)
    top = float(mean.max())
    return mean / top if top > 0 else np.zeros(n)


def pca_2d(backend: Backend, x: Any) -> np.ndarray:
    """Rows projected on their first two principal components (on the backend's device)."""
    xp = backend.xp
    a = x.astype(xp.float32) if x.dtype != xp.float32 else x
    centred = a - a.mean(axis=0, keepdims=True)
    cov = centred.T @ centred / max(1, int(a.shape[0]) - 1)
    _, vecs = xp.linalg.eigh(cov)
    comps = vecs[:, ::-1][:, :2]
    # A sign convention, so the same data always gives the same picture.
    signs = xp.sign(comps[xp.argmax(xp.abs(comps), axis=0), xp.arange(comps.shape[1])])
    return backend.to_host(centred @ (comps * xp.where(signs == 0, 1, signs))).astype(np.float64)
