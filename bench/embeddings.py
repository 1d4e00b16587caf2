"""Exact search and k-center greedy selection: Shoal's compute core beside faiss-cpu and scikit-activeml, in one run.

- search: k=10 for 1,000 queries over 1,000,000 × 128 and 100,000 × 512 unit vectors (cosine), against faiss
  `IndexFlatIP`; recall of faiss' neighbours in Shoal's answers (must be 1.0);
- selection: k-center greedy, 1,000 of 100,000 × 128, against scikit-activeml's `CoreSet` (Shoal starts from the
  first pick CoreSet made, which it draws at random); how many picks agree, position by position.

Shoal runs on the backend the service would use (CuPy on a GPU, else NumPy; --backend to force one).

    .venv/bin/python bench/embeddings.py --out bench/results/embeddings.json
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from benchlib import emit, machine
from shoal.embedding import compute


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def sync(backend: compute.Backend) -> None:
    if backend.device == "gpu":
        backend.xp.cuda.Stream.null.synchronize()


def search_case(backend: compute.Backend, n: int, d: int, queries: int, k: int) -> dict[str, Any]:
    import faiss

    rng = np.random.default_rng(n + d)
    x = unit(rng, n, d)
    q = unit(rng, queries, d)
    t0 = time.perf_counter()
    index = faiss.IndexFlatIP(d)
    index.add(x)
    t1 = time.perf_counter()
    _, ref = index.search(q, k)
    t2 = time.perf_counter()
    base = compute.prepare(backend, x, compute.COSINE)
    sync(backend)
    t3 = time.perf_counter()
    _, mine = compute.knn(backend, base, q, k, compute.COSINE)
    sync(backend)
    t4 = time.perf_counter()
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ref.tolist(), mine.tolist(), strict=True)]))
    out = {
        "vectors": n,
        "dimension": d,
        "queries": queries,
        "k": k,
        "faiss_add_seconds": round(t1 - t0, 4),
        "faiss_search_seconds": round(t2 - t1, 4),
        "shoal_prepare_seconds": round(t3 - t2, 4),
        "shoal_search_seconds": round(t4 - t3, 4),
        "shoal_over_faiss_search": round((t4 - t3) / (t2 - t1), 4),
        "shoal_queries_per_second": round(queries / (t4 - t3), 1),
        "faiss_queries_per_second": round(queries / (t2 - t1), 1),
        "recall_vs_faiss": recall,
    }
    flops = 2.0 * n * d * queries
    out["shoal_gflops"] = round(flops / (t4 - t3) / 1e9, 1)
    return out


def selection_case(backend: compute.Backend, n: int, d: int, picks: int) -> dict[str, Any]:
    from skactiveml.pool import CoreSet
    from skactiveml.utils import MISSING_LABEL

    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = np.full(n, MISSING_LABEL)
    t0 = time.perf_counter()
    ref = CoreSet(random_state=0).query(x.astype(np.float64), y, batch_size=picks)
    t1 = time.perf_counter()
    base = compute.prepare(backend, x, compute.EUCLIDEAN)
    mine, _ = compute.k_center_greedy(backend, base, picks, first=int(ref[0]))
    sync(backend)
    t2 = time.perf_counter()
    same = sum(int(a == b) for a, b in zip(ref.tolist(), mine, strict=True))
    first_difference = next((i for i, (a, b) in enumerate(zip(ref.tolist(), mine, strict=True)) if a != b), None)
    return {
        "vectors": n,
        "dimension": d,
        "picks": picks,
        "scikit_activeml_seconds": round(t1 - t0, 4),
        "shoal_seconds": round(t2 - t1, 4),
        "speedup": round((t1 - t0) / (t2 - t1), 2),
        "same_picks_in_order": same,
        "first_difference_at": first_difference,
        "same_set": len(set(ref.tolist()) & set(mine)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="auto", choices=["auto", "cpu", "gpu"])
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the sets for a quick run")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    backend = compute.Backend.detect(args.backend)
    s = args.scale
    report = {
        "benchmark": "embeddings",
        "machine": machine(),
        "backend": {"device": backend.device, "name": backend.device_name, "library": backend.library_version},
        "search": [
            search_case(backend, int(1_000_000 * s), 128, 1000, 10),
            search_case(backend, int(100_000 * s), 512, 1000, 10),
        ],
        "selection": selection_case(backend, int(100_000 * s), 128, int(1000 * min(1.0, s * 10))),
    }
    report["targets"] = {
        "search recall 1.0": all(c["recall_vs_faiss"] == 1.0 for c in report["search"]),
        "search at least as fast as faiss-cpu": all(c["shoal_over_faiss_search"] <= 1.0 for c in report["search"]),
        "selection >= 5x scikit-activeml": report["selection"]["speedup"] >= 5,
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
