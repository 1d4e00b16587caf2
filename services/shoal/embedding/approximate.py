"""Approximate indexes of large versions: faiss IVF-Flat (vectors kept whole, each search visits the inverted lists
nearest the query), stored in the object store beside the version, so that every replica shares one build and a
restart reads it back instead of building again.

Why IVF-Flat: it builds in seconds where a graph index (HNSW) takes minutes on the same cores, its answers are exact
distances over the lists it visits, and one knob (`probes`) trades speed for recall. The build picks the fewest probes
that reach RECALL_TARGET on queries drawn from the version's own vectors (each query's own row left out), and records
the recall it measured."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from google.protobuf import json_format

from shoal.embedding import compute
from shoal.kit.objectstore import ObjectStore
from shoal.v1 import embedding_pb2

ENGINE: Final = "ivf-flat"
RECALL_TARGET: Final = 0.97
# Queries the build measures recall with, and the most lists a search may visit.
CALIBRATION_QUERIES: Final = 256
# Lists a row's own neighbourhood is read from when every row is a query (duplicates, uniqueness): the nearest few
# hold almost all of a row's close neighbours.
SELF_PROBES: Final = 2
CHUNK: Final = 8 << 20


def min_rows() -> int:
    """Versions with at least this many rows get an approximate index when BuildIndex does not say otherwise."""
    return int(os.environ.get("SHOAL_APPROXIMATE_MIN_ROWS", "") or 200_000)


@dataclass
class Approximate:
    index: Any  # faiss.IndexIVFFlat
    info: embedding_pb2.ApproximateIndex
    metric: str

    def search(self, queries: np.ndarray, k: int, probes: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(distances, rows) of each query's k nearest among the lists it visits, nearest first; distances as the
        exact search gives them (1 − cosine similarity, or L2)."""
        import faiss  # noqa: PLC0415

        params = faiss.SearchParametersIVF()
        params.nprobe = int(probes or self.info.probes)
        found, rows = self.index.search(np.ascontiguousarray(queries, np.float32), k, params=params)
        rows = rows.astype(np.int64)
        if self.metric == compute.COSINE:
            dist = 1.0 - found.astype(np.float64)
        else:
            dist = np.sqrt(np.maximum(found.astype(np.float64), 0.0))
        dist[rows < 0] = np.inf
        return dist, rows


def keys(index_name: str) -> tuple[str, str]:
    """Object-store keys of an index's approximate index and of its description."""
    base = "indexes/" + index_name.removeprefix("projects/").replace("/datasets/", "/").replace("/indexes/", "/")
    return f"{base}.ivf", f"{base}.json"


def build(vectors: np.ndarray, metric: str, *, seed: int = 0) -> Approximate:
    """An IVF-Flat index over `vectors` (float32, unit length for cosine), its probes chosen for RECALL_TARGET."""
    import faiss  # noqa: PLC0415

    n, d = vectors.shape
    lists = max(1, min(65_536, round(math.sqrt(n))))
    ip = metric == compute.COSINE
    kind = faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2
    quantizer = faiss.IndexFlatIP(d) if ip else faiss.IndexFlatL2(d)
    index = faiss.IndexIVFFlat(quantizer, d, lists, kind)
    rng = np.random.default_rng(seed)
    sample = vectors[np.sort(rng.choice(n, size=min(n, 64 * lists), replace=False))]
    index.train(np.ascontiguousarray(sample, np.float32))
    index.add(np.ascontiguousarray(vectors, np.float32))
    made = Approximate(index, embedding_pb2.ApproximateIndex(engine=ENGINE, lists=lists), metric)
    # Calibration: each query is a row of the version; its own row is left out of both answers.
    picks = rng.choice(n, size=min(n, CALIBRATION_QUERIES), replace=False)
    queries = np.ascontiguousarray(vectors[picks], np.float32)
    k = min(11, n)
    _, exact = faiss.knn(queries, np.ascontiguousarray(vectors, np.float32), k, metric=kind)
    probes, recall = 1, 0.0
    while True:
        _, rows = made.search(queries, k, probes)
        recall = _recall(exact, rows, picks)
        if recall >= RECALL_TARGET or probes >= lists:
            break
        probes = min(lists, probes * 2)
    made.info.probes, made.info.recall_at_10 = probes, recall
    made.info.create_time.GetCurrentTime()
    return made


def _recall(exact: np.ndarray, found: np.ndarray, own: np.ndarray) -> float:
    hits, total = 0, 0
    for row, want, got in zip(own.tolist(), exact.tolist(), found.tolist(), strict=True):
        truth = [r for r in want if r != row][:10]
        hits += len(set(truth) & {r for r in got if r != row})
        total += len(truth)
    return hits / total if total else 1.0


def save(store: ObjectStore, index_name: str, made: Approximate) -> None:
    """Write the index, then its description (a reader that finds the description finds the whole index)."""
    import faiss  # noqa: PLC0415

    data_key, info_key = keys(index_name)
    with tempfile.NamedTemporaryFile(suffix=".ivf") as spool:
        faiss.write_index(made.index, spool.name)
        made.info.size_bytes = os.path.getsize(spool.name)
        store.put_stream(data_key, _chunks(spool.name), "application/octet-stream")
    store.put(info_key, json_format.MessageToJson(made.info).encode(), "application/json")


def load(store: ObjectStore, index_name: str, metric: str) -> Approximate | None:
    """The stored approximate index of `index_name`, or None when it has none."""
    import faiss  # noqa: PLC0415

    data_key, info_key = keys(index_name)
    raw = store.get_or_none(info_key)
    if raw is None:
        return None
    info = json_format.Parse(raw, embedding_pb2.ApproximateIndex())
    with tempfile.NamedTemporaryFile(suffix=".ivf") as spool:
        with open(spool.name, "wb") as out:
            for offset in range(0, info.size_bytes, CHUNK):
                out.write(store.get_range(data_key, offset, min(CHUNK, info.size_bytes - offset)))
        index = faiss.read_index(spool.name)
    return Approximate(index, info, metric)


def delete(store: ObjectStore, index_name: str) -> None:
    for key in keys(index_name):
        store.delete(key)


def _chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk
