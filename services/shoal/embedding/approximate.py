"""Approximate indexes of large versions: faiss IVF-Flat (vectors kept whole, each search visits the inverted lists
nearest the query), stored in the object store beside the version, so that every replica shares one build and a
restart reads it back instead of building again.

Why IVF-Flat: it builds in seconds where a graph index (HNSW) takes minutes on the same cores, its answers are exact
distances over the lists it visits, and one knob (`probes`) trades speed for recall. The build picks the fewest probes
that reach RECALL_TARGET on queries drawn from the version's own vectors (each query's own row left out), and records
the recall it measured."""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from google.protobuf import json_format

from shoal.embedding import compute
from shoal.kit.objectstore import ObjectStore
from shoal.v1 import embedding_pb2

log = logging.getLogger("shoal.embedding.approximate")

ENGINE: Final = "ivf-flat"
RECALL_TARGET: Final = 0.97
# Queries the build measures recall with, and the most lists a search may visit.
CALIBRATION_QUERIES: Final = 256
# Lists a row's own neighbourhood is read from when every row is a query (duplicates, uniqueness): the nearest few
# hold almost all of a row's close neighbours.
SELF_PROBES: Final = 2
CHUNK: Final = 8 << 20


class SelfNeighbours:
    """Each row's neighbours among the rows, read from an approximate index once and shared: duplicates and
    uniqueness both ask for every row's nearest few, so the second asks nothing of the index."""

    def __init__(self, made: Approximate, vectors: np.ndarray, probes: int = SELF_PROBES, k: int = 16) -> None:
        self.made, self.vectors, self.probes, self.k = made, vectors, probes, k
        self._all: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = int(self.vectors.shape[0])
        if k <= self.k:
            if self._all is None:
                self._all = self.made.search(self.vectors, self.k, self.probes)
            dist, idx = self._all
            return dist[rows, :k], idx[rows, :k]
        return self.made.search(self.vectors[rows], min(k, n), self.probes)


def min_rows() -> int:
    """Versions with at least this many rows get an approximate index when BuildIndex does not say otherwise."""
    return int(os.environ.get("SHOAL_APPROXIMATE_MIN_ROWS", "") or 200_000)


@dataclass
class Approximate:
    index: Any  # faiss.IndexIVFFlat
    info: embedding_pb2.ApproximateIndex
    metric: str

    @property
    def memory_bytes(self) -> int:
        """What it holds in memory: every vector as float32, its id, and the list centres."""
        d, n = int(self.index.d), int(self.index.ntotal)
        return n * (4 * d + 8) + int(self.info.lists) * 4 * d

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


def description_key(index_name: str, dataset_born: int) -> str:
    """Where the description of an index's approximate index lies: under the dataset's creation time, so a dataset
    deleted and made again under its name never reads the old one (deleting a dataset deletes `indexes/{p}/{d}/`)."""
    project, dataset, rest = _split(index_name)
    return f"indexes/{project}/{dataset}/{dataset_born}/{rest}.json"


def _split(index_name: str) -> tuple[str, str, str]:
    # projects/{p}/datasets/{d}/versions/{n}/indexes/{kind}
    parts = index_name.split("/")
    return parts[1], parts[3], f"{parts[5]}/{parts[7]}"


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


def save(store: ObjectStore, index_name: str, dataset_born: int, made: Approximate) -> None:
    """Write the index under a key of its own, then the description naming it (a reader that finds the description
    finds the whole index); the index an earlier description named is deleted after."""
    import faiss  # noqa: PLC0415

    info_key = description_key(index_name, dataset_born)
    data_key = info_key.removesuffix(".json") + f".{uuid.uuid4().hex}.ivf"
    earlier = _description(store, info_key)
    with tempfile.NamedTemporaryFile(suffix=".ivf") as spool:
        faiss.write_index(made.index, spool.name)
        made.info.size_bytes = os.path.getsize(spool.name)
        store.put_stream(data_key, _chunks(spool.name), "application/octet-stream")
    body = {"data": data_key, "rows": int(made.index.ntotal), "info": json_format.MessageToDict(made.info)}
    store.put(info_key, json.dumps(body).encode(), "application/json")
    if earlier is not None and earlier.get("data") != data_key:
        store.delete(str(earlier["data"]))


def load(
    store: ObjectStore, index_name: str, dataset_born: int, *, metric: str, rows: int, dimension: int
) -> Approximate | None:
    """The stored approximate index of `index_name`, or None when it has none — or when what is stored does not fit
    the index (other rows or dimension), or cannot be read: searches are then exact, never wrong."""
    import faiss  # noqa: PLC0415

    try:
        found = _description(store, description_key(index_name, dataset_born))
        if found is None:
            return None
        info = json_format.ParseDict(found["info"], embedding_pb2.ApproximateIndex())
        if int(found.get("rows", -1)) != rows:
            log.warning("the approximate index of %s holds other rows: ignored", index_name)
            return None
        with tempfile.NamedTemporaryFile(suffix=".ivf") as spool:
            with open(spool.name, "wb") as out:
                for offset in range(0, info.size_bytes, CHUNK):
                    out.write(store.get_range(str(found["data"]), offset, min(CHUNK, info.size_bytes - offset)))
            index = faiss.read_index(spool.name)
    except Exception as err:  # a store hiccup or a torn file: exact search answers meanwhile
        log.warning("the approximate index of %s could not be read (%s): searches stay exact", index_name, err)
        return None
    if index.ntotal != rows or index.d != dimension:
        log.warning("the approximate index of %s does not fit it: ignored", index_name)
        return None
    return Approximate(index, info, metric)


def delete(store: ObjectStore, index_name: str, dataset_born: int) -> None:
    """The description first (readers then see none), then the index it named."""
    info_key = description_key(index_name, dataset_born)
    found = _description(store, info_key)
    store.delete(info_key)
    if found is not None:
        store.delete(str(found["data"]))


def _description(store: ObjectStore, key: str) -> dict[str, Any] | None:
    raw = store.get_or_none(key)
    return None if raw is None else dict(json.loads(raw))


def _chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk
