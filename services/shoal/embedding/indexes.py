"""Embedding indexes: one per (dataset version, frame or crop embeddings), built from the stored frames of that
version — so a later version never changes an earlier one's answers — and kept in memory on the backend's device
(least recently used dropped first when over the memory budget)."""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf import timestamp_pb2

from shoal.embedding import approximate as approximate_module
from shoal.embedding import compute, quantized
from shoal.kit import paging
from shoal.kit.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from shoal.kit.names import DatasetName
from shoal.kit.objectstore import ObjectStore
from shoal.kit.settings import StoreSettings
from shoal.storage import columnar, filters
from shoal.storage.reads import Reads
from shoal.v1 import dataset_pb2, embedding_pb2, embedding_service_pb2

INDEX_NAME: Final = re.compile(r"(projects/[^/]+/datasets/[^/]+)/versions/(\d+)/indexes/(frame|crop)")
MAX_K: Final = 10_000
DATASET_CHECK_SECONDS: Final = 1.0
MAX_QUERIES: Final = 10_000


@dataclass
class Index:
    """The embeddings of one dataset version, one row per frame (or per labeled crop)."""

    name: str
    dataset: DatasetName
    version: int
    kind: str  # "frame" or "crop"
    metric: str
    precision: int
    frame_ids: list[str]
    label_ids: list[str]
    vectors: Any  # [n, d] on the backend's device
    # Reads, per row, the columns filters need: the frame's `user_metadata`, typed `metadata_*` columns and `labels`,
    # and `classes` (the frame's label classes, or the crop's label's). Read on first use: a search without a filter
    # never needs them.
    load_attributes: Callable[[], pa.Table]
    create_time: timestamp_pb2.Timestamp
    dataset_born: int = 0  # the dataset's create time (ns): an index answers only for the dataset it was built from
    base_sq_norms: Any = None
    derived: dict[str, Any] = field(default_factory=dict)  # computed once per index: uniqueness, projections
    # The version's approximate index, when it has one (stored beside the version; read back, never rebuilt).
    approximate: approximate_module.Approximate | None = None

    def _once(self, key: str, make: Callable[[], Any]) -> Any:
        found = self.derived.get(key)
        if found is None:
            found = self.derived[key] = make()
        return found

    @property
    def attributes(self) -> pa.Table:
        found: pa.Table = self._once("attributes", self.load_attributes)
        return found

    @property
    def rows_of_frame(self) -> dict[str, list[int]]:
        """The rows of each frame id."""

        def make() -> dict[str, list[int]]:
            out: dict[str, list[int]] = {}
            for i, frame_id in enumerate(self.frame_ids):
                out.setdefault(frame_id, []).append(i)
            return out

        found: dict[str, list[int]] = self._once("rows_of_frame", make)
        return found

    @property
    def row_of_label(self) -> dict[str, int]:
        """The row of each crop's label id."""
        found: dict[str, int] = self._once(
            "row_of_label", lambda: {label: i for i, label in enumerate(self.label_ids) if label}
        )
        return found

    @property
    def count(self) -> int:
        return len(self.frame_ids)

    def matching(self, filter_text: str) -> np.ndarray:
        """Which rows a filter (the language of ListFrames: metadata and label conditions) keeps, evaluated over
        the rows' columns."""
        compiled = filters.compile(filter_text, self.attributes.schema)
        kept: np.ndarray = compiled.mask(self.attributes).to_numpy(zero_copy_only=False)
        return kept

    def with_classes(self, classes: Sequence[str]) -> np.ndarray:
        """Which rows have a label of one of `classes` (a crop: its own label)."""
        lists = self.attributes.column("classes").combine_chunks()
        hits = pc.is_in(lists.flatten(), value_set=pa.array(list(classes), pa.string())).to_numpy(zero_copy_only=False)
        out = np.zeros(self.count, bool)
        out[pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)[hits]] = True
        return out

    @property
    def metadata(self) -> list[dict[str, Any]]:
        """Each row's metadata as a dict (computed once)."""
        found: list[dict[str, Any]] = self._once(
            "metadata",
            lambda: [
                {k: _plain(v) for k, v in entries} for entries in self.attributes.column("user_metadata").to_pylist()
            ],
        )
        return found

    @property
    def classes(self) -> list[frozenset[str]]:
        """Each row's label classes (computed once)."""
        found: list[frozenset[str]] = self._once(
            "classes", lambda: [frozenset(c) for c in self.attributes.column("classes").to_pylist()]
        )
        return found

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1]) if self.count else 0

    @property
    def memory_bytes(self) -> int:
        held = int(self.vectors.nbytes) if self.count else 0
        int8 = quantized.CACHE.get(self.vectors) if self.count else None
        held += int8.nbytes if int8 is not None else 0  # the int8 form exact cosine search keeps beside it
        return held + (self.approximate.memory_bytes if self.approximate is not None else 0)

    def proto(self, backend: compute.Backend) -> embedding_pb2.EmbeddingIndex:
        return embedding_pb2.EmbeddingIndex(
            name=self.name,
            version=self.version,
            kind=embedding_pb2.EMBEDDING_KIND_FRAME if self.kind == "frame" else embedding_pb2.EMBEDDING_KIND_CROP,
            count=self.count,
            dimension=self.dimension,
            metric=dataset_pb2.DISTANCE_METRIC_COSINE
            if self.metric == compute.COSINE
            else dataset_pb2.DISTANCE_METRIC_EUCLIDEAN,
            precision=self.precision,  # type: ignore[arg-type]
            device=embedding_pb2.COMPUTE_DEVICE_GPU if backend.device == "gpu" else embedding_pb2.COMPUTE_DEVICE_CPU,
            memory_bytes=self.memory_bytes,
            state=embedding_pb2.INDEX_STATE_READY,
            create_time=self.create_time,
            approximate=self.approximate.info if self.approximate is not None else None,
        )


def parse_index_name(name: str, field_name: str = "index") -> tuple[str, int, str]:
    found = INDEX_NAME.fullmatch(name)
    if not found:
        raise InvalidArgument.of(
            [FieldViolation(field_name, "must look like projects/{p}/datasets/{d}/versions/{n}/indexes/{frame|crop}")],
            reason="INVALID_NAME",
        )
    return found.group(1), int(found.group(2)), found.group(3)


class Indexes:
    def __init__(
        self, store: ObjectStore, settings: StoreSettings, backend: compute.Backend, budget_bytes: int = 8 << 30
    ) -> None:
        self.reads = Reads(store, settings)
        self.store = store
        self.backend = backend
        self.budget = budget_bytes
        self.cache: OrderedDict[tuple[str, int], Index] = OrderedDict()
        self.checked: dict[str, tuple[float, int]] = {}  # dataset → (when read, its create time; -1: gone)
        self.lock = threading.Lock()
        self.building: dict[str, threading.Lock] = {}  # index name → held while its approximate index changes

    def get(self, name: str, precision: int = 0, field_name: str = "index") -> Index:
        """The index, built from the stored frames when not in memory."""
        dataset_ref, version, kind = parse_index_name(name, field_name)
        key = (name, precision or embedding_pb2.INDEX_PRECISION_FLOAT32)
        with self.lock:
            found = self.cache.get(key)
            if found is not None:
                self.cache.move_to_end(key)
        if found is not None:
            if self._still_exists(found):
                return found
            with self.lock:
                self.cache.pop(key, None)
        built = self.build(dataset_ref, version, kind, key[1], field_name)
        with self.lock:
            self.cache[key] = built
        self._evict()
        return built

    def _still_exists(self, index: Index) -> bool:
        """An index in memory answers only while the dataset it was built from exists: not after a delete, nor
        once the name belongs to a new dataset. The dataset's create time is read at most once a second."""
        now = time.monotonic()
        cached = self.checked.get(str(index.dataset))
        if cached is None or now - cached[0] >= DATASET_CHECK_SECONDS:
            try:
                born = self.reads.catalog.get_dataset(index.dataset).create_time.ToNanoseconds()
            except NotFound:
                born = -1
            cached = self.checked[str(index.dataset)] = (now, born)
        return cached[1] == index.dataset_born

    def build(self, dataset_ref: str, version: int, kind: str, precision: int, field_name: str) -> Index:
        ref = self.reads.resolve(f"{dataset_ref}/versions/{version}", field_name)
        dataset = self.reads.catalog.get_dataset(ref.dataset)
        metric = (
            compute.EUCLIDEAN if dataset.distance_metric == dataset_pb2.DISTANCE_METRIC_EUCLIDEAN else compute.COSINE
        )
        table = ref.tables.read(ref.version, ["frame_id", "embedding" if kind == "frame" else "crop_embeddings"])
        dtype = np.float16 if precision == embedding_pb2.INDEX_PRECISION_FLOAT16 else np.float32
        parts, frame_ids, label_ids, rows = _vectors(table, kind, dataset.embedding_dimension)
        tables, number = ref.tables, ref.version

        def attributes() -> pa.Table:
            schema = tables.schema(number)
            typed = [n for n in schema.names if n.startswith(columnar.METADATA_PREFIX)] if schema else []
            return _attributes(tables.read(number, ["user_metadata", "labels", *typed]), rows, label_ids, kind)

        vectors = compute.prepare(self.backend, parts, metric, dtype=dtype)
        created = timestamp_pb2.Timestamp()
        created.GetCurrentTime()
        index = Index(
            name=f"{dataset_ref}/versions/{version}/indexes/{kind}",
            dataset=ref.dataset,
            version=version,
            kind=kind,
            metric=metric,
            precision=precision,
            frame_ids=frame_ids,
            label_ids=label_ids,
            vectors=vectors,
            load_attributes=attributes,
            create_time=created,
            dataset_born=dataset.create_time.ToNanoseconds(),
        )
        if metric == compute.EUCLIDEAN and len(frame_ids):
            index.base_sq_norms = compute.squared_norms(self.backend, vectors)
        if len(frame_ids) and compute.faiss_module() is not None:
            index.approximate = approximate_module.load(
                self.store,
                index.name,
                index.dataset_born,
                metric=metric,
                rows=len(frame_ids),
                dimension=index.dimension,
            )
        return index

    def approximate(self, name: str, precision: int, mode: int, field_name: str = "parent") -> Index:
        """The index with its approximate index as `mode` asks: read back or built and stored when missing (ALWAYS,
        or by default above SHOAL_APPROXIMATE_MIN_ROWS), dropped from memory and the store (NEVER), else as it is.
        One build or drop of an index at a time in this process."""
        with self.lock:
            guard = self.building.setdefault(name, threading.Lock())
        with guard:
            index = self.get(name, precision, field_name)
            if mode == embedding_service_pb2.APPROXIMATE_MODE_NEVER:
                approximate_module.delete(self.store, index.name, index.dataset_born)
                index.approximate = None
                return index
            wanted = (
                mode == embedding_service_pb2.APPROXIMATE_MODE_ALWAYS or index.count >= approximate_module.min_rows()
            )
            if not wanted or index.approximate is not None or not index.count:
                return index
            if compute.faiss_module() is None:
                raise FailedPrecondition(
                    "approximate indexes need faiss on the embedding service", reason="APPROXIMATE_UNAVAILABLE"
                )
            stored = approximate_module.load(
                self.store,
                index.name,
                index.dataset_born,
                metric=index.metric,
                rows=index.count,
                dimension=index.dimension,
            )
            if stored is None:
                stored = approximate_module.build(self.backend.to_host(index.vectors).astype(np.float32), index.metric)
                approximate_module.save(self.store, index.name, index.dataset_born, stored)
            index.approximate = stored
            self._evict()
            return index

    def _evict(self) -> None:
        with self.lock:
            while sum(i.memory_bytes for i in self.cache.values()) > self.budget and len(self.cache) > 1:
                self.cache.popitem(last=False)

    # search ---------------------------------------------------------------------------------------------------------

    def search(self, request: embedding_service_pb2.SearchRequest) -> embedding_service_pb2.SearchResponse:
        index = self.get(request.index)
        if index.count == 0:
            raise FailedPrecondition(f"{index.name} holds no embeddings", reason="NO_EMBEDDINGS")
        violations: list[FieldViolation] = []
        if not request.queries:
            violations.append(FieldViolation("queries", "give at least one query"))
        if len(request.queries) > MAX_QUERIES:
            violations.append(FieldViolation("queries", f"at most {MAX_QUERIES} queries per call"))
        k = request.k or 10
        allowed = self._allowed(index, request.filter, list(request.classes))
        available = int(allowed.sum()) if allowed is not None else index.count
        if not 0 < k <= min(MAX_K, available):
            violations.append(FieldViolation("k", f"must be in 1..{min(MAX_K, available)} (the rows that may answer)"))
        vectors = np.zeros((len(request.queries), index.dimension), np.float32)
        for i, q in enumerate(request.queries):
            which = q.WhichOneof("query")
            where = f"queries[{i}]"
            if which == "vector":
                values = list(q.vector.values)
                if len(values) != index.dimension:
                    violations.append(
                        FieldViolation(
                            f"{where}.vector.values",
                            f"has {len(values)} values; the index has dimension {index.dimension}",
                        )
                    )
                elif not all(math.isfinite(v) for v in values):
                    violations.append(FieldViolation(f"{where}.vector.values", "must be finite (no NaN or infinity)"))
                else:
                    vectors[i] = values
            elif which == "frame_id":
                found = index.rows_of_frame.get(q.frame_id)
                if not found:
                    violations.append(
                        FieldViolation(
                            f"{where}.frame_id", f"{q.frame_id!r} has no embedding at version {index.version}"
                        )
                    )
                else:
                    vectors[i] = self.backend.to_host(index.vectors[found[0]]).astype(np.float32)
            elif which == "label_id":
                row = index.row_of_label.get(q.label_id)
                if row is None:
                    violations.append(
                        FieldViolation(
                            f"{where}.label_id", f"{q.label_id!r} has no crop embedding at version {index.version}"
                        )
                    )
                else:
                    vectors[i] = self.backend.to_host(index.vectors[row]).astype(np.float32)
            else:
                violations.append(FieldViolation(where, "give a vector, a frame_id or a label_id"))
        if violations:
            raise InvalidArgument.of(violations)
        # The approximate index answers unfiltered searches unless the caller asks for exact ones; a filter or a
        # class list (which may leave few rows) is answered exactly.
        if index.approximate is not None and not request.exact and allowed is None:
            queries: np.ndarray = vectors
            if index.metric == compute.COSINE:
                norms = np.linalg.norm(vectors, axis=1, keepdims=True)
                queries = (vectors / np.where(norms > 0, norms, 1)).astype(np.float32)
            dist, idx = index.approximate.search(queries, k)
            engine = f"approximate/{index.approximate.info.engine}"
        else:
            dist, idx = compute.knn(
                self.backend,
                index.vectors,
                vectors,
                k,
                index.metric,
                allowed=None if allowed is None else self.backend.asarray(allowed),
                base_sq_norms=index.base_sq_norms,
            )
            engine = compute.exact_engine(
                self.backend, masked=allowed is not None, base=index.vectors, metric=index.metric, k=k
            )
            engine = f"exact/{engine}"
        reply = embedding_service_pb2.SearchResponse(engine=engine)
        for drow, irow in zip(dist.tolist(), idx.tolist(), strict=True):
            result = reply.results.add()
            for d, i in zip(drow, irow, strict=True):
                if i < 0:
                    continue
                score = 1.0 - d if index.metric == compute.COSINE else 1.0 / (1.0 + d)
                result.neighbors.add(frame_id=index.frame_ids[i], label_id=index.label_ids[i], distance=d, score=score)
        return reply

    @staticmethod
    def _allowed(index: Index, filter_text: str, classes: list[str]) -> np.ndarray | None:
        if not filter_text and not classes:
            return None
        mask = np.ones(index.count, bool)
        if filter_text:
            mask &= index.matching(filter_text)
        if classes:
            mask &= index.with_classes(classes)
        return mask


def _plain(value: dict[str, Any]) -> Any:
    """A MetadataValue struct row as the plain value filters compare."""
    for kind, v in value.items():
        if v is None or kind in {"kind", "null_value"}:
            continue
        return v["values"] if kind.endswith("_list_value") else v
    return None


def _vectors(table: pa.Table, kind: str, dimension: int) -> tuple[list[np.ndarray], list[str], list[str], pa.Array]:
    """(vectors, frame ids, label ids, rows of `table`) of the index rows in a version's columns: one row per frame
    with an embedding, or one per crop embedding. The vectors come as [rows, dim] float32 parts in row order, views
    of the column's chunks where they can be (no joined copy: `compute.prepare` makes the index's own array). Column
    reads only: no frame is decoded."""
    if kind == "frame":
        embedding = table.column("embedding")
        present = pc.is_valid(embedding)
        rows = pa.array(np.flatnonzero(present.to_numpy(zero_copy_only=False)))
        # `present` is chunked as the column is: each chunk with nulls keeps its rows with a vector.
        chunks = [
            c if c.null_count == 0 else c.filter(valid)
            for c, valid in zip(embedding.chunks, present.chunks, strict=True)
        ]
        values = [(c.flatten(), len(c)) for c in chunks if len(c)]
        label_ids = [""] * len(rows)
    else:
        crops = table.column("crop_embeddings").combine_chunks()
        rows = pc.list_parent_indices(crops)
        flat = crops.flatten()
        values = [(flat.field("values").flatten(), len(rows))]
        label_ids = flat.field("label_id").to_pylist()
    ids = table.column("frame_id")
    frame_ids = (ids if len(rows) == len(ids) else ids.take(rows)).to_pylist()
    parts = [v.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(n, -1) for v, n in values]
    if not len(rows):
        parts = [np.zeros((0, dimension or 1), np.float32)]
    return parts, frame_ids, label_ids, rows


def _attributes(table: pa.Table, rows: pa.Array, label_ids: list[str], kind: str) -> pa.Table:
    """Per index row, the columns filters read (see `Index.load_attributes`), from a version's columns."""
    labels = table.column("labels").combine_chunks()
    if kind == "frame":
        taken = labels if len(rows) == len(labels) else labels.take(rows)
        classes = pa.ListArray.from_arrays(taken.offsets, taken.flatten().field("classification"))
    else:
        flat_labels = labels.flatten()
        owners = pa.table(
            {
                "frame": pc.list_parent_indices(labels),
                "label_id": flat_labels.field("label_id"),
                "class": flat_labels.field("classification"),
            }
        )
        wanted = pa.table(
            {"frame": rows, "label_id": pa.array(label_ids, pa.string()), "order": pa.array(np.arange(len(rows)))}
        )
        joined = wanted.join(owners, ["frame", "label_id"], join_type="left outer").sort_by("order")
        classes = pa.ListArray.from_arrays(
            pa.array(np.arange(len(rows) + 1, dtype=np.int32)),
            pc.fill_null(joined.column("class"), "").combine_chunks(),
        )
    kept = table if len(rows) == table.num_rows else table.take(rows)
    return kept.append_column("classes", classes)


# duplicates, uniqueness, projection ----------------------------------------------------------------------------------

# Up to this many rows, duplicates and uniqueness compare every row with every row (exact); above it they read each
# row's neighbours from the version's approximate index when it has one.
EXACT_ANALYSIS_MAX: Final = 100_000


def _self_neighbours(index: Index) -> compute.Neighbours | None:
    """Above EXACT_ANALYSIS_MAX rows, every row's neighbours from the approximate index (read once per index and
    shared by duplicates and uniqueness)."""
    found = index.approximate
    if found is None or index.count <= EXACT_ANALYSIS_MAX or not isinstance(index.vectors, np.ndarray):
        return None
    shared: compute.Neighbours = index._once(
        "self_neighbours",
        lambda: approximate_module.SelfNeighbours(found, np.asarray(index.vectors, np.float32)),
    )
    return shared


# Projected points are three small fields: a scatter of 100,000 takes one page.
MAX_PROJECTION_PAGE: Final = 100_000


def _page(size: int, token: str, cap: int = paging.MAX_PAGE) -> tuple[int, int]:
    """(first row, rows) of the page a request asks for: the shared position tokens of `kit.paging`."""
    return paging.offset_of(token), paging.page_size(size, cap=cap)


def _next(start: int, size: int, total: int) -> str:
    return paging.offset_token(start + size) if start + size < total else ""


class Analyses:
    """Duplicates, uniqueness and 2-D projections of an index, computed once and paged."""

    def __init__(self, indexes: Indexes) -> None:
        self.indexes = indexes

    def _ready(self, name: str) -> Index:
        index = self.indexes.get(name)
        if index.count == 0:
            raise FailedPrecondition(f"{index.name} holds no embeddings", reason="NO_EMBEDDINGS")
        return index

    def _id(self, index: Index, row: int) -> str:
        return f"{index.frame_ids[row]}#{index.label_ids[row]}" if index.label_ids[row] else index.frame_ids[row]

    def duplicates(
        self, request: embedding_service_pb2.FindDuplicatesRequest
    ) -> embedding_service_pb2.FindDuplicatesResponse:
        if not (math.isfinite(request.threshold) and request.threshold >= 0):
            raise InvalidArgument.of([FieldViolation("threshold", "must be a non-negative distance")])
        index = self._ready(request.index)
        key = f"duplicates:{request.threshold!r}"
        if key not in index.derived:
            index.derived[key] = compute.duplicates(
                self.indexes.backend, index.vectors, request.threshold, index.metric, neighbours=_self_neighbours(index)
            )
        groups = index.derived[key]
        start, size = _page(request.page_size, request.page_token)
        reply = embedding_service_pb2.FindDuplicatesResponse(next_page_token=_next(start, size, len(groups)))
        for rows, worst in groups[start : start + size]:
            reply.groups.add(ids=[self._id(index, r) for r in rows], max_distance=worst)
        return reply

    def uniqueness(
        self, request: embedding_service_pb2.ComputeUniquenessRequest
    ) -> embedding_service_pb2.ComputeUniquenessResponse:
        index = self._ready(request.index)
        if "uniqueness" not in index.derived:
            index.derived["uniqueness"] = compute.uniqueness(
                self.indexes.backend, index.vectors, index.metric, neighbours=_self_neighbours(index)
            )
        scores = index.derived["uniqueness"]
        start, size = _page(request.page_size, request.page_token)
        reply = embedding_service_pb2.ComputeUniquenessResponse(next_page_token=_next(start, size, index.count))
        for r in range(start, min(start + size, index.count)):
            reply.scores.add(id=self._id(index, r), score=float(scores[r]))
        return reply

    def project(
        self, request: embedding_service_pb2.ProjectEmbeddingsRequest
    ) -> embedding_service_pb2.ProjectEmbeddingsResponse:
        index = self._ready(request.index)
        method = request.method or embedding_service_pb2.PROJECTION_METHOD_PCA
        key = f"projection:{method}"
        if key not in index.derived:
            if method == embedding_service_pb2.PROJECTION_METHOD_UMAP:
                try:
                    import umap  # type: ignore[import-not-found]  # noqa: PLC0415
                except ImportError:
                    raise FailedPrecondition(
                        "UMAP needs the optional umap-learn package on the embedding service",
                        reason="UMAP_NOT_INSTALLED",
                    ) from None
                points = umap.UMAP(n_components=2, random_state=0).fit_transform(
                    self.indexes.backend.to_host(index.vectors).astype(np.float32)
                )
            else:
                points = compute.pca_2d(self.indexes.backend, index.vectors)
            index.derived[key] = np.asarray(points, np.float64)
        points = index.derived[key]
        start, size = _page(request.page_size, request.page_token, MAX_PROJECTION_PAGE)
        end = min(start + size, index.count)
        reply = embedding_service_pb2.ProjectEmbeddingsResponse(next_page_token=_next(start, size, index.count))
        xs, ys = points[start:end, 0].tolist(), points[start:end, 1].tolist()
        reply.points.extend(
            embedding_service_pb2.ProjectedPoint(frame_id=f, label_id=lb, x=x, y=y)
            for f, lb, x, y in zip(index.frame_ids[start:end], index.label_ids[start:end], xs, ys, strict=True)
        )
        return reply
