"""Versioned tables in Lance: per dataset (or inference set) a current-state table whose table versions are the
dataset versions, an append-only change log that answers per-frame history, and a version table that maps dataset
versions to table versions and records what each commit applied.

Commit order: change log first, then the current-state table (one merge-insert: upserts and deletes in one commit),
then the version record. A crash between the steps is repaired by `recover`, which replays the change log entries
that have no version record yet; re-applying a logged version is an idempotent upsert.

Rows are frames as Arrow columns (`shoal.storage.columnar`): the current-state table holds one row per frame, the
change log the same columns for every change (null for a delete) beside the version, change type, upload and commit
time. Tables of the release before stored each frame as one serialized message; `shoal.storage.migration` rewrites
them into this layout.

Only the versioning service writes; every reader opens immutable versions through this module.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.parse
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import lance
import lance.fragment
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.message import Message
from lance.commit import CommitConflictError

from shoal.kit.errors import FailedPrecondition, NotFound, Unavailable
from shoal.kit.names import DatasetName, InferenceSetName
from shoal.kit.settings import StoreSettings
from shoal.storage import columnar

log = logging.getLogger("shoal.storage.tables")
T = TypeVar("T")

# Lance's query memory pool (300 MB by default) is too small for merge-inserts of large commits into large tables;
# an operator may still set their own.
os.environ.setdefault("LANCE_MEM_POOL_SIZE", str(2 << 30))

# What the change log holds beside each change's frame columns.
LOG_FIELDS: Final = [
    pa.field("version", pa.int64(), nullable=False),
    pa.field("change_type", pa.int8(), nullable=False),
    pa.field("upload", pa.string(), nullable=False),
    pa.field("commit_time", pa.timestamp("us", tz="UTC"), nullable=False),
    # The commit's batches, uploads and counts (JSON), on every row, so a replay can write the version record.
    pa.field("commit", pa.string(), nullable=False),
]
LOG_ONLY: Final = frozenset(f.name for f in LOG_FIELDS)
VERSIONS_SCHEMA: Final = pa.schema(
    [
        pa.field("version", pa.int64(), nullable=False),
        pa.field("table_version", pa.int64(), nullable=False),
        pa.field("commit_time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("uploads", pa.list_(pa.string()), nullable=False),
        pa.field("batches", pa.list_(pa.string()), nullable=False),
        pa.field("frames_added", pa.int64(), nullable=False),
        pa.field("frames_modified", pa.int64(), nullable=False),
        pa.field("frames_deleted", pa.int64(), nullable=False),
        pa.field("frame_count", pa.int64(), nullable=False),
        pa.field("label_count", pa.int64(), nullable=False),
    ]
)


# Tags that keep pinned versions through retention. Checkpoint ids (also tags) cannot hold "_", so never clash.
PIN_TAG: Final = "pin_"
# How long superseded versions of the change log and version table stay on disk after compaction: only readers
# that opened them just before need them.
LOG_GRACE: Final = timedelta(minutes=1)
# Rows per change-log fragment that compaction makes. Taking one row (a frame's history takes each of its rows) decodes
# more the larger the fragment: measured on a log of 200,000 rows, one row of every column took 13.9 ms from 65,536-row
# fragments, 6.0 ms from 16,384-row ones and 5.1 ms from 4,096-row ones, while lookups by frame id slow a little with
# every fragment.
LOG_FRAGMENT_ROWS: Final = 16_384
# Schema metadata of a frames table: an id made with it (see `_made`).
TABLE_ID_KEY: Final = b"shoal.table_id"
# Frames a lookup must ask for before the writer scans a frames table for the address of every frame (see
# `_FrameAddresses`): at a million frames the scan cost what the index takes for about 15,000 frames, and the
# addresses then serve every later commit of this writer.
ADDRESSES_FROM: Final = 1000
# Frames past which a table's addresses are not kept (16 bytes a frame: 160 MB at this size); larger tables are
# looked up through the index.
ADDRESSES_MAX_FRAMES: Final = 10_000_000
# Segments of a frame-id index (one more with each commit) past which maintenance merges them.
INDEX_SEGMENTS: Final = 4
# The frame-id index of the frames table and the change log (the name Lance gives it by default).
FRAME_ID_INDEX: Final = "frame_id_idx"


class _LogHandles:
    """Open change-log tables kept across reads, so a frame's history reuses the table's manifest and the caches of
    its frame-id index instead of opening it anew (a fresh open costs more than the lookup). Each handle remembers
    the newest dataset version it is known to hold (the log is written before a version commits, so a handle
    opened after version N was recorded holds N); a read that needs a newer one reopens."""

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._handles: OrderedDict[str, tuple[lance.LanceDataset, int]] = OrderedDict()

    def get(self, uri: str, up_to: int) -> lance.LanceDataset | None:
        with self._lock:
            found = self._handles.get(uri)
            if found is not None and found[1] >= up_to:
                self._handles.move_to_end(uri)
                return found[0]
        return None

    def put(self, uri: str, ds: lance.LanceDataset, up_to: int) -> None:
        with self._lock:
            self._handles[uri] = (ds, up_to)
            self._handles.move_to_end(uri)
            while len(self._handles) > self.limit:
                self._handles.popitem(last=False)

    def drop(self, uri: str) -> None:
        with self._lock:
            self._handles.pop(uri, None)


LOG_HANDLES: Final = _LogHandles()

# One Lance session for every change log this process opens, so the caches of file metadata and index pages outlive
# a handle: each commit makes a new log version, and a handle opened on it with a session of its own read every file's
# metadata again. Measured on a change log of 1,181,331 rows (73 fragments), reopened before each frame's history:
# 16-18 ms a history with a session per handle, 7.5 ms with this one once the files had been read. Only the change
# logs share it: with the frames tables in it too (merge-inserts, scans of every version), a history through the
# service after a 1,000,000-frame load took 38-48 ms instead of 28-33.
LOG_SESSION: Final = lance.Session(  # type: ignore[attr-defined]  # exported at run time, absent from the typing
    index_cache_size_bytes=int(os.environ.get("SHOAL_LOG_INDEX_CACHE_MB", "256")) << 20,
    metadata_cache_size_bytes=int(os.environ.get("SHOAL_LOG_METADATA_CACHE_MB", "512")) << 20,
)


def open_dataset(
    uri: str, options: Mapping[str, str] | None, version: int | None = None, *, shared: bool = False
) -> lance.LanceDataset:
    """The Lance table at `uri` (at table `version`); `shared`: through `LOG_SESSION` (change logs)."""
    return lance.dataset(
        uri,
        version=version,
        storage_options=dict(options) if options else None,
        session=LOG_SESSION if shared else None,
    )


class _LogRows:
    """Where each frame's rows are in the change logs this process reads, so a frame's history finds them without a
    query: a query through the frame-id index cost 2.7-3.7 ms (planning the scan, then the index), this a hash and
    one vectorised binary search over every fragment (see `Keys`). Per fragment (named by its first data file, which
    no other fragment ever has, so a table made again under the same path shares nothing), the frame-id hashes of its
    rows, sorted, each with its row address and the `commit` value it was written with (which says the columns to
    take). A fragment is read once, by the warmer as commits add it or by the first history that needs it; what
    compaction replaced is forgotten with the handle that held it."""

    @dataclass
    class Part:
        keys: np.ndarray  # sorted frame-id hashes
        addresses: np.ndarray  # the row address of each key
        commits: np.ndarray  # of each key, its position in `texts`
        texts: list[str]

    class Keys:
        """The sorted keys of every part of one handle in one array, each part's prefixed by its position, so one
        `searchsorted` finds a hash in all of them: a search per fragment cost 0.44 ms a history over 73 fragments
        (two NumPy calls each). A prefixed key holds the hash's top 47 bits, made non-negative, and the part's position
        above them (an arithmetic shift keeps each part's order); hashes equal there are told apart by the parts' own
        keys."""

        SHIFT: Final = 17  # a hash keeps its top 47 bits, offset to be non-negative; parts sit above them

        def __init__(self, parts: Sequence[_LogRows.Part]) -> None:
            assert len(parts) < 1 << 15, "more fragments than a prefixed key can tell apart"
            self.parts = list(parts)
            self.starts = np.zeros(len(parts) + 1, dtype=np.int64)
            np.cumsum([len(p.keys) for p in parts], out=self.starts[1:])
            self.prefixed = np.empty(int(self.starts[-1]), dtype=np.int64)
            for i, part in enumerate(parts):
                self.prefixed[self.starts[i] : self.starts[i + 1]] = self.prefix(part.keys, i)

        @classmethod
        def prefix(cls, keys: np.ndarray | np.int64, position: np.ndarray | int) -> np.ndarray:
            return (np.asarray(position, dtype=np.int64) << 47) | ((keys >> cls.SHIFT) + (1 << 46))

        def find(self, key: int) -> Iterator[tuple[_LogRows.Part, int]]:
            """(part, index in it) of each row whose hash is `key`."""
            wanted = self.prefix(np.int64(key), np.arange(len(self.parts), dtype=np.int64))
            low = np.searchsorted(self.prefixed, wanted, "left")
            high = np.searchsorted(self.prefixed, wanted, "right")
            for i in np.flatnonzero(high > low).tolist():
                part = self.parts[i]
                for j in range(int(low[i] - self.starts[i]), int(high[i] - self.starts[i])):
                    if part.keys[j] == key:
                        yield part, j

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows  # 28 bytes a row: the logs read least recently are forgotten past this
        self._lock = threading.Lock()
        # per table, the handle last looked over, its parts by data file, their keys together, and their rows
        self._tables: OrderedDict[str, tuple[lance.LanceDataset, dict[str, _LogRows.Part], _LogRows.Keys, int]] = (
            OrderedDict()
        )

    @staticmethod
    def read_part(fragment: lance.LanceFragment) -> _LogRows.Part:
        rows = fragment.to_table(columns=["frame_id", "commit"], with_row_address=True)
        keys = id_hashes(rows.column("frame_id").to_pylist())
        order = np.argsort(keys, kind="stable")
        commits = pc.dictionary_encode(rows.column("commit").combine_chunks())
        return _LogRows.Part(
            keys[order],
            rows.column("_rowaddr").to_numpy().astype(np.int64)[order],
            commits.indices.to_numpy(zero_copy_only=False).astype(np.int32)[order],
            commits.dictionary.to_pylist(),
        )

    def parts(self, ds: lance.LanceDataset) -> _LogRows.Keys:
        """The parts of every fragment of `ds`, those not read before read now, with their keys together."""
        with self._lock:
            entry = self._tables.get(ds.uri)
            if entry is not None and entry[0] is ds:
                self._tables.move_to_end(ds.uri)
                return entry[2]
            known = entry[1] if entry is not None else {}
        parts: dict[str, _LogRows.Part] = {}
        for fragment in ds.get_fragments():
            files = fragment.data_files()
            if not files:
                continue
            name = files[0].path
            part = known.get(name)
            if part is None or fragment.metadata.deletion_file is not None:
                part = self.read_part(fragment)
            parts[name] = part
        keys = _LogRows.Keys(list(parts.values()))
        with self._lock:
            self._tables[ds.uri] = (ds, parts, keys, len(keys.prefixed))
            self._tables.move_to_end(ds.uri)
            while len(self._tables) > 1 and sum(e[3] for e in self._tables.values()) > self.max_rows:
                self._tables.popitem(last=False)
        return keys

    def find(self, ds: lance.LanceDataset, frame_id: str) -> tuple[list[int], list[str]]:
        """(Row addresses that may hold `frame_id`'s rows in `ds`, the `commit` value of each)."""
        addresses: list[int] = []
        commits: list[str] = []
        for part, i in self.parts(ds).find(int(id_hashes([frame_id])[0])):
            addresses.append(int(part.addresses[i]))
            commits.append(part.texts[part.commits[i]])
        return addresses, commits

    def files(self, uri: str) -> set[str]:
        """The data files (first of each fragment) whose rows are mapped for the table at `uri`."""
        with self._lock:
            entry = self._tables.get(uri)
            return set(entry[1]) if entry is not None else set()


LOG_ROWS: Final = _LogRows(int(os.environ.get("SHOAL_LOG_MAP_ROWS", "10000000")))


class _Warmer:
    """Reads, in the background, what a first take from each data file of a table costs: the file's metadata and its
    pages' (kept by `LOG_SESSION`: only handles opened with `open_dataset(..., shared=True)` share it), by taking one
    row of every column from each fragment not read this way before, and loads the frame-id index segments not
    loaded before. A frame's history takes rows from fragments all over the change log; taken cold, a history cost
    20-24 ms on a log of 73 fragments, warm 13-15 ms. Once per data file and process, on one thread; per table, a
    version asked for while it works is looked over next (the newest one asked for)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}  # per table, the newest version looked over or queued
        self.warm_files: dict[str, set[str]] = {}  # per table, its data files read (of its fragments when last seen)
        self.warm_segments: dict[str, set[str]] = {}  # per table, its frame-id index segments loaded
        self._queued: dict[str, tuple[lance.LanceDataset, list[str]]] = {}
        self._busy = False

    @property
    def busy(self) -> bool:
        """Whether it is reading now."""
        return self._busy

    def warm(self, ds: lance.LanceDataset, columns: Sequence[str]) -> None:
        with self._lock:
            if self._seen.get(ds.uri, -1) >= ds.version:
                return
            self._seen[ds.uri] = ds.version
            self._queued[ds.uri] = (ds, list(columns))
            if self._busy:
                return
            self._busy = True
        try:
            threading.Thread(target=self._run, name="shoal-warm", daemon=True).start()
        except RuntimeError:
            with self._lock:
                self._busy = False

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._queued:
                    self._busy = False
                    return
                uri = next(iter(self._queued))
                ds, columns = self._queued.pop(uri)
            try:
                self._warm(ds, columns)
            except Exception as err:  # compacted away meanwhile, or the store failed: a later version warms instead
                log.debug("warming %s stopped: %s", ds.uri, err)

    def _warm(self, ds: lance.LanceDataset, columns: list[str]) -> None:
        done = self.warm_files.get(ds.uri, set())
        now: set[str] = set()
        for fragment in ds.get_fragments():
            files = fragment.data_files()
            if not files:
                continue
            name = files[0].path
            if name not in done and fragment.count_rows():
                fragment.take([0], columns=columns)
            now.add(name)
        self.warm_files[ds.uri] = now  # files compaction replaced are forgotten
        # The frame-id index's new segments too (a cold lookup took 2.1-2.8 ms, a warm one 1.4-1.6 ms).
        loaded = self.warm_segments.get(ds.uri, set())
        current: set[str] = set()
        for index in ds.describe_indices():
            if index.name == FRAME_ID_INDEX:
                current = {str(g.uuid) for g in index.segments}
        if current - loaded:
            ds.prewarm_index(FRAME_ID_INDEX, index_segments=sorted(current - loaded))
        self.warm_segments[ds.uri] = current
        LOG_ROWS.parts(ds)  # where each frame's rows are, in the fragments not read before


LOG_WARMER: Final = _Warmer()


def warm_log(ds: lance.LanceDataset, columns: Sequence[str] | None = None) -> None:
    """Warm the change log's new data files for history takes (the writer warms what it wrote, in its process, where
    the versioning service's reads run too)."""
    LOG_WARMER.warm(ds, columns if columns is not None else [c for c in ds.schema.names if c != "commit"])


class _FrameOrder:
    """A table version's frame ids in order, with the address of each row: a page of a version in frame id order is
    then a slice and a take, whatever the page's depth (ordering a scan costs a sort of every row after the page's
    start, each page). Computed once per table version read, kept for the few versions read last (about 24 bytes a
    frame)."""

    def __init__(self, limit: int = 8) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._orders: OrderedDict[tuple[str, int, float], tuple[pa.Array, pa.Array]] = OrderedDict()

    def drop(self, uri: str) -> None:
        with self._lock:
            for key in [k for k in self._orders if k[0] == uri]:
                del self._orders[key]

    def of(self, ds: lance.LanceDataset, key: tuple[str, int, float]) -> tuple[pa.Array, pa.Array]:
        """The order of `ds`, kept under `key` (the handle's: table version and commit time)."""
        with self._lock:
            found = self._orders.get(key)
            if found is not None:
                self._orders.move_to_end(key)
                return found
        table = ds.to_table(columns=["frame_id"], with_row_address=True)
        order = pc.sort_indices(table.column("frame_id"))
        found = (
            table.column("frame_id").take(order).combine_chunks(),
            table.column("_rowaddr").take(order).combine_chunks(),
        )
        with self._lock:
            self._orders[key] = found
            while len(self._orders) > self.limit:
                self._orders.popitem(last=False)
        return found


# Takes of rows from several fragments run side by side here (Lance decodes each fragment's rows on the calling
# thread, with the GIL released).
_TAKES: Final = ThreadPoolExecutor(4, thread_name_prefix="shoal-take")


def take_addresses(ds: lance.LanceDataset, addresses: Sequence[int], columns: Sequence[str]) -> pa.Table:
    """The rows at `addresses` (fragment id << 32 | row offset), in no particular order. Each fragment's rows are
    taken by the fragment itself, fragments in parallel: a frame's history from a log of 1,181,331 rows took
    16.7 ms through the dataset's take and 7.2 ms this way (two rows, in two fragments, each 138 leaf columns wide)."""
    takes = fragment_takes(ds, addresses)
    parts = [take(columns) for take in takes] if len(takes) <= 1 else list(_TAKES.map(lambda t: t(columns), takes))
    if not parts:
        return ds.schema.empty_table().select(list(columns))
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts)


def fragment_takes(ds: lance.LanceDataset, addresses: Sequence[int]) -> list[Callable[[Sequence[str]], pa.Table]]:
    """For each fragment holding rows at `addresses`, a function that takes those rows with the columns (or Lance
    projection paths) given. A fragment with deleted rows counts its offsets past them, so its rows go through the
    dataset's take."""
    # Row ids are row addresses only without stable row ids (which these tables never enable).
    assert not ds.has_stable_row_ids, f"{ds.uri} has stable row ids: its row ids are not addresses"
    groups: dict[int, list[int]] = {}
    for address in addresses:
        groups.setdefault(address >> 32, []).append(address)
    fragments = {f.fragment_id: f for f in ds.get_fragments()} if groups else {}

    def taker(fragment_id: int) -> Callable[[Sequence[str]], pa.Table]:
        fragment = fragments.get(fragment_id)
        group = sorted(groups[fragment_id])  # a fragment takes its rows in order

        def take(columns: Sequence[str]) -> pa.Table:
            if fragment is None or fragment.metadata.deletion_file is not None:
                return ds._take_rows(group, columns=list(columns))
            return fragment.take([a & 0xFFFFFFFF for a in group], columns=list(columns))

        return take

    return [taker(fragment_id) for fragment_id in groups]


_LOG_HEAD: Final = ("version", "frame_id", "change_type", "upload", "commit_time")


_LOG_COLUMNS: OrderedDict[str, tuple[lance.LanceDataset, list[str]]] = OrderedDict()
_LOG_COLUMNS_LOCK: Final = threading.Lock()


def _log_columns(ds: lance.LanceDataset) -> list[str]:
    """The change log's columns but `commit`, per handle (a handle converts its schema anew each time it is asked:
    0.3-1 ms, a tenth of a history); the handle last asked about is kept per table."""
    with _LOG_COLUMNS_LOCK:
        found = _LOG_COLUMNS.get(ds.uri)
        if found is not None and found[0] is ds:
            _LOG_COLUMNS.move_to_end(ds.uri)
            return found[1]
    names = [c for c in ds.schema.names if c != "commit"]
    with _LOG_COLUMNS_LOCK:
        _LOG_COLUMNS[ds.uri] = (ds, names)
        _LOG_COLUMNS.move_to_end(ds.uri)
        while len(_LOG_COLUMNS) > 256:
            _LOG_COLUMNS.popitem(last=False)
    return names


def _read_back(commits: Sequence[str], everything: Sequence[str]) -> list[str]:
    """The change-log columns to read for rows of `commits` (their `commit` values): what each commit recorded its
    frames need (see `Layout.read_back`), or `everything` for commits logged before that was recorded."""
    paths: dict[str, None] = dict.fromkeys(_LOG_HEAD)
    for text in dict.fromkeys(commits):
        needed = json.loads(text).get("columns")
        if needed is None:
            return list(everything)
        paths.update(dict.fromkeys(needed))
    whole = {p for p in paths if "." not in p}
    return [p for p in paths if p.split(".", 1)[0] not in whole or "." not in p]


def _expired(version: int) -> NotFound:
    return NotFound(
        f"version {version} was dropped by the retention policy",
        reason="VERSION_EXPIRED",
        metadata={"version": str(version)},
    )


def _after(ids: pa.Array, frame_id: str) -> int:
    """Position of the first id greater than `frame_id` in sorted `ids`."""
    lo, hi = 0, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if ids[mid].as_py() <= frame_id:
            lo = mid + 1
        else:
            hi = mid
    return lo


FRAME_ORDER: Final = _FrameOrder()


class _TableHandles:
    """Open handles of table versions, which never change once written: a read reuses the handle's caches (the
    manifest, page tables, the index) instead of paying a fresh open each call. A handle is kept `ttl` seconds at
    most, so a version another replica's retention dropped stops reading here within that time (this process's own
    retention drops them at once)."""

    def __init__(self, limit: int = 32, ttl: float = 30.0) -> None:
        self.limit, self.ttl = limit, ttl
        self._lock = threading.Lock()
        self._handles: OrderedDict[tuple[str, int, float], tuple[lance.LanceDataset, float]] = OrderedDict()

    def get(self, key: tuple[str, int, float]) -> lance.LanceDataset | None:
        with self._lock:
            found = self._handles.get(key)
            if found is None:
                return None
            if time.monotonic() - found[1] > self.ttl:
                del self._handles[key]
                return None
            self._handles.move_to_end(key)
            return found[0]

    def put(self, key: tuple[str, int, float], ds: lance.LanceDataset) -> None:
        with self._lock:
            self._handles[key] = (ds, time.monotonic())
            while len(self._handles) > self.limit:
                self._handles.popitem(last=False)

    def drop(self, uri: str) -> None:
        with self._lock:
            for key in [k for k in self._handles if k[0] == uri]:
                del self._handles[key]


TABLE_HANDLES: Final = _TableHandles()


class _Latest:
    """What was read or written last at a table version, for tables read whole or checked at every commit: keyed by
    the table's version and the data files of its last fragment (a table deleted and made again under its name starts
    its versions anew, with new file names), so a value is only reused for exactly the table it was made from."""

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._values: OrderedDict[str, tuple[tuple[int, tuple[str, ...]], Any]] = OrderedDict()

    @staticmethod
    def key(ds: lance.LanceDataset) -> tuple[int, tuple[str, ...]]:
        fragments = ds.get_fragments()
        return ds.version, tuple(f.path for f in fragments[-1].data_files()) if fragments else ()

    def get(self, uri: str, ds: lance.LanceDataset) -> Any:
        with self._lock:
            found = self._values.get(uri)
        return found[1] if found is not None and found[0] == self.key(ds) else None

    def put(self, uri: str, ds: lance.LanceDataset, value: Any) -> None:
        key = self.key(ds)
        with self._lock:
            self._values[uri] = (key, value)
            self._values.move_to_end(uri)
            while len(self._values) > self.limit:
                self._values.popitem(last=False)


def _made(uri: str, ds: lance.LanceDataset) -> str:
    """`uri` and the id its frames table was made with (in its schema's metadata): what this process keeps of a
    table is kept under this key, so it never serves a table made again under the same path (its versions start
    anew). Tables made before the id existed are keyed by their path alone."""
    made = (ds.schema.metadata or {}).get(TABLE_ID_KEY)
    return f"{uri}#{made.decode()}" if made else uri


def id_hashes(ids: Sequence[str]) -> np.ndarray:
    """64-bit hashes of ids, for in-process indexes of frame and label ids. Python's string hash is salted per
    process, which is fine: these never leave it. 0 stands for "nobody" in such indexes, so an id hashing to 0
    counts as 1 (a hash only ever names a candidate, confirmed against the table)."""
    out = np.array(list(map(hash, ids)), dtype=np.int64)
    out[out == 0] = 1
    return out


class _FrameIds:
    """Hashes of the frame ids a frames table holds, kept by the process that writes it, so a lookup by frame id
    can skip ids that cannot be there: an upload of new frames then looks up none (each id looked up through the
    index costs tens of microseconds). The hashes are a superset (a frame deleted since still counts; equal hashes
    only cost a lookup) for every table version from `floor` to `top`: made from one version's frame ids, then moved
    on by this process's own commits and compactions; a version written by anyone else is outside the range, and
    the hashes are made again from it."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._tables: OrderedDict[str, tuple[int, int, np.ndarray, set[int]]] = OrderedDict()

    def candidates(self, uri: str, ds: lance.LanceDataset, ids: Sequence[str]) -> list[str]:
        """Those of `ids` that may be in `ds` (a version of the table at `uri`)."""
        with self._lock:
            entry = self._tables.get(uri)
        if entry is None or not entry[0] <= ds.version <= entry[1]:
            column = ds.to_table(columns=["frame_id"]).column("frame_id").to_pylist()
            entry = (ds.version, ds.version, np.sort(id_hashes(column)), set())
            with self._lock:
                self._tables[uri] = entry
                self._tables.move_to_end(uri)
                while len(self._tables) > self.limit:
                    self._tables.popitem(last=False)
        _, _, known, added = entry
        keys = id_hashes(ids)
        at = np.minimum(np.searchsorted(known, keys), max(len(known) - 1, 0))
        hit = known[at] == keys if len(known) else np.zeros(len(keys), dtype=bool)
        return [i for i, k, h in zip(ids, keys.tolist(), hit.tolist(), strict=True) if h or k in added]

    def advance(self, uri: str, before: int, after: int, ids: Iterable[str] = ()) -> None:
        """This process moved the table from version `before` to `after`, adding frames `ids` (if any)."""
        with self._lock:
            entry = self._tables.get(uri)
            if entry is None or entry[1] != before:
                self._tables.pop(uri, None)  # not as these hashes knew it: made again when next asked
                return
            floor, _, known, added = entry
            added.update(id_hashes(list(ids)).tolist())
            if len(added) > max(65_536, len(known) // 4):
                known, added = np.sort(np.concatenate([known, np.fromiter(added, np.int64, len(added))])), set()
            self._tables[uri] = (floor, after, known, added)


class _FrameAddresses:
    """The row address of every frame of one frames-table version, by frame-id hash, kept by the process that writes
    the table: a commit that replaces frames finds them here instead of through the frame-id index (tens of
    microseconds a frame). Made from a scan of one version, then moved on by this process's own commits and
    compactions, which know where the rows they write go; a version written by anyone else is not covered, and
    callers look up through the index (or make the addresses again). Frame ids whose hashes are equal are
    `ambiguous` and always looked up; every address found here is confirmed by reading its frame id."""

    @dataclass
    class Entry:
        floor: int  # the addresses are of `version`, which holds the same frames as every version from `floor` on
        version: int
        keys: np.ndarray  # sorted frame-id hashes
        addresses: np.ndarray  # the row address of each key (-1: gone since)
        newer: dict[int, int]  # hash → row address (-1: gone), changes since `keys` were sorted
        ambiguous: set[int]

        def at(self, keys: np.ndarray) -> np.ndarray:
            where = np.minimum(np.searchsorted(self.keys, keys), max(len(self.keys) - 1, 0))
            found = np.full(len(keys), -1, dtype=np.int64)
            if len(self.keys):
                hit = self.keys[where] == keys
                found[hit] = self.addresses[where[hit]]
            if self.newer:
                for i, key in enumerate(keys.tolist()):
                    found[i] = self.newer.get(key, found[i])
            return found

    def __init__(self, limit: int = 16) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._tables: OrderedDict[str, _FrameAddresses.Entry] = OrderedDict()

    def make(self, uri: str, ds: lance.LanceDataset) -> None:
        """Addresses of every frame of `ds` (a version of the table at `uri`)."""
        table = ds.to_table(columns=["frame_id"], with_row_address=True)
        keys = id_hashes(table.column("frame_id").to_pylist())
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        twice = set(keys[1:][keys[1:] == keys[:-1]].tolist())
        addresses = table.column("_rowaddr").to_numpy()[order].astype(np.int64)
        entry = self.Entry(ds.version, ds.version, keys, addresses, {}, twice)
        with self._lock:
            self._tables[uri] = entry
            self._tables.move_to_end(uri)
            while len(self._tables) > self.limit:
                self._tables.popitem(last=False)

    def find(
        self, uri: str, ds: lance.LanceDataset, ids: Sequence[str]
    ) -> tuple[dict[str, int], list[str], int] | None:
        """(frame id → row address of those of `ids` that `ds` holds, ids to look up through the index, the table
        version the addresses are of: `ds`'s, or a later one with the same frames), or None when these addresses
        do not cover `ds`."""
        with self._lock:
            entry = self._tables.get(uri)
            if entry is None or not entry.floor <= ds.version <= entry.version:
                return None
            version = entry.version
            keys = id_hashes(ids)
            found = entry.at(keys)
            unsure = [i for i, k in zip(ids, keys.tolist(), strict=True) if k in entry.ambiguous]
        held = {i: a for i, a in zip(ids, found.tolist(), strict=True) if a >= 0}
        for frame_id in unsure:
            held.pop(frame_id, None)
        return held, unsure, version

    def committed(
        self, uri: str, versions: tuple[int, int], gone: Sequence[str], added: Sequence[str], addresses: np.ndarray
    ) -> None:
        """This process moved the table from version `before` to `after`: the rows of frames `gone` went, frames
        `added` were written at `addresses`."""
        before, after = versions
        with self._lock:
            entry = self._tables.get(uri)
            if entry is None or entry.version != before:
                self._tables.pop(uri, None)
                return
            for key in id_hashes(gone).tolist():
                entry.newer[key] = -1
            keys = id_hashes(added)
            held = entry.at(keys)
            unique, counts = np.unique(keys, return_counts=True)
            entry.ambiguous.update(unique[counts > 1].tolist())  # two frames added with one hash
            for key, was, address in zip(keys.tolist(), held.tolist(), addresses.tolist(), strict=True):
                if was >= 0:  # another frame with this hash is there: both are looked up from now on
                    entry.ambiguous.add(key)
                entry.newer[key] = address
            entry.floor = entry.version = after
            if len(entry.newer) > max(65_536, len(entry.keys) // 4):
                self._fold(entry)

    def rewritten(self, uri: str, before: int, after: int, old: np.ndarray, new: np.ndarray) -> None:
        """A compaction by this process moved the table from `before` to `after`, moving the rows at addresses `old`
        to `new`."""
        with self._lock:
            entry = self._tables.get(uri)
            if entry is None or entry.version != before:
                self._tables.pop(uri, None)
                return
            order = np.argsort(old)
            old, new = old[order], new[order]

            def moved(addresses: np.ndarray) -> np.ndarray:
                where = np.minimum(np.searchsorted(old, addresses), max(len(old) - 1, 0))
                hit = (old[where] == addresses) & (addresses >= 0) if len(old) else np.zeros(len(addresses), bool)
                out = addresses.copy()
                out[hit] = new[where[hit]]
                return out

            entry.addresses = moved(entry.addresses)
            if entry.newer:
                keys = np.fromiter(entry.newer.keys(), np.int64, len(entry.newer))
                values = moved(np.fromiter(entry.newer.values(), np.int64, len(entry.newer)))
                entry.newer = dict(zip(keys.tolist(), values.tolist(), strict=True))
            entry.version = after

    def drop(self, uri: str) -> None:
        with self._lock:
            self._tables.pop(uri, None)

    @staticmethod
    def _fold(entry: _FrameAddresses.Entry) -> None:
        keys = np.fromiter(entry.newer.keys(), np.int64, len(entry.newer))
        values = np.fromiter(entry.newer.values(), np.int64, len(entry.newer))
        base = ~np.isin(entry.keys, keys)
        keep = values >= 0
        merged = np.concatenate([entry.keys[base], keys[keep]])
        addresses = np.concatenate([entry.addresses[base], values[keep]])
        order = np.argsort(merged, kind="stable")
        entry.keys, entry.addresses, entry.newer = merged[order], addresses[order], {}


class _Counts:
    """Frames and labels of a frames table at the version this process last wrote or compacted, so a commit counts
    on from them instead of reading a column of every row (41 ms at a million frames)."""

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._counts: OrderedDict[str, tuple[int, tuple[int, int]]] = OrderedDict()

    def get(self, key: str, version: int) -> tuple[int, int] | None:
        with self._lock:
            found = self._counts.get(key)
        return found[1] if found is not None and found[0] == version else None

    def put(self, key: str, version: int, counts: tuple[int, int]) -> None:
        with self._lock:
            self._counts[key] = (version, counts)
            self._counts.move_to_end(key)
            while len(self._counts) > self.limit:
                self._counts.popitem(last=False)

    def advance(self, key: str, before: int, after: int) -> None:
        """The table went from `before` to `after` holding the same frames (a compaction)."""
        counts = self.get(key, before)
        if counts is not None:
            self.put(key, after, counts)


FRAME_IDS: Final = _FrameIds()
FRAME_COUNTS: Final = _Counts()
# Where each frame's row is, in frames tables this process writes (see `_FrameAddresses`).
FRAME_ADDRESSES: Final = _FrameAddresses()
# The version records of each version table, as last read.
VERSION_RECORDS: Final = _Latest()
# The newest dataset version each change log holds, as last written or counted.
LOGGED_VERSION: Final = _Latest()
# Legacy table paths known to hold nothing to migrate.
_NO_LEGACY: Final[set[str]] = set()
_DELETE: Final = 3  # shoal.v1.CHANGE_TYPE_DELETE


def _index_new_rows(ds: lance.LanceDataset) -> None:
    """Bring the frame-id index over the rows a commit just wrote, as a segment of their own (merging would rewrite
    the rows of earlier segments at every commit, and the superseded index files stay on disk with the versions
    that read them): a lookup by frame id never scans unindexed fragments. Maintenance merges the segments when it
    compacts. A failure only costs speed until maintenance indexes the rows."""
    try:
        ds.optimize.optimize_indices(index_names=[FRAME_ID_INDEX], num_indices_to_merge=0)
    except (OSError, ValueError) as err:
        log.warning("indexing new rows of %s failed: %s", ds.uri, err)


def _index_segments(ds: lance.LanceDataset) -> int:
    return sum(len(i.segments) for i in ds.describe_indices())


def _merge_index_segments(ds: lance.LanceDataset) -> None:
    """Every index of `ds` as one segment over all its rows."""
    segments = _index_segments(ds)
    if segments:
        ds.optimize.optimize_indices(num_indices_to_merge=segments)


def _missing(err: Exception) -> bool:
    text = str(err).lower()
    return isinstance(err, FileNotFoundError) or "not found" in text or "does not exist" in text


def quote(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def in_list(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(quote(v) for v in values)})"


def _addresses(ds: lance.LanceDataset, ids: Sequence[str]) -> dict[str, int]:
    """Frame id → row address of those of `ids` in `ds`, found through the frame-id index (in chunks: a long IN
    list costs more to plan than it saves)."""
    out: dict[str, int] = {}
    for start in range(0, len(ids), 8000):
        found = ds.to_table(
            columns=["frame_id"], filter=in_list("frame_id", ids[start : start + 8000]), with_row_address=True
        )
        out.update(zip(found.column("frame_id").to_pylist(), found.column("_rowaddr").to_pylist(), strict=True))
    return out


@dataclass(frozen=True)
class Known:
    """What a writer knows of frames-table version `table_version`: the row `addresses` of frames in it, and whether
    those are all the frames of the commit that are in it (`complete`: the others are absent)."""

    table_version: int
    addresses: Mapping[str, int] = field(default_factory=dict)
    complete: bool = False
    labels: Mapping[int, int] = field(default_factory=dict)  # by row address, how many labels the row holds


@dataclass(frozen=True)
class VersionRecord:
    """One committed dataset version."""

    version: int
    table_version: int
    commit_time: datetime
    uploads: list[str]
    batches: list[str]
    frames_added: int
    frames_modified: int
    frames_deleted: int
    frame_count: int
    label_count: int


@dataclass
class Change:
    """One frame's change in a version: the state after it, as a frame or as its row already encoded (neither for a
    delete)."""

    frame_id: str
    change_type: int
    frame: Message | None
    upload: str
    # The frame's row already encoded (a table and a row of it: see `storage.batchrows`); None: encode the frame.
    row: tuple[pa.Table, int] | None = None

    @property
    def deletes(self) -> bool:
        return self.frame is None and self.row is None


@dataclass(frozen=True)
class Stored:
    """What the tables say of a stored frame without decoding it: its content digest and label ids, and its row's
    address in the table version it was read from (-1: not known)."""

    digest: bytes
    label_ids: Sequence[str]
    address: int = -1


@dataclass
class Commit:
    """Everything one dataset version writes. `embedding_dimension` and `metadata` shape the columns of a table's
    first commit and of columns the metadata schema gained since."""

    version: int
    changes: list[Change]
    uploads: list[str]
    batches: list[str]
    added: int = 0
    modified: int = 0
    deleted: int = 0
    commit_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    embedding_dimension: int = 0
    metadata: Sequence[columnar.MetadataColumn] = ()
    # Row addresses of the frames of the commit that were in frames-table version `found_at` (0: not looked up), as
    # the writer found them; the others were not there. While the table is still at that version, the commit need
    # not look them up again.
    found: Mapping[str, int] = field(default_factory=dict)
    found_at: int = 0
    # How many labels each frame of `found` held there (what its row's removal takes from the version's count).
    found_labels: Mapping[str, int] = field(default_factory=dict)


class TableRoot:
    """Where tables live: a local directory or an S3 prefix (with Lance's storage options)."""

    def __init__(self, settings: StoreSettings) -> None:
        parsed = urllib.parse.urlsplit(settings.url)
        if parsed.scheme == "file":
            raw = urllib.parse.unquote(parsed.path)
            base = os.path.abspath("." + raw if parsed.netloc == "." else raw)
            self.base = os.path.join(base, "datasets")
            self.legacy_base = os.path.join(base, "tables")
            self.options: dict[str, str] = {}
        else:
            prefix = parsed.path.strip("/")
            root = f"s3://{parsed.netloc}/{prefix + '/' if prefix else ''}"
            self.base = f"{root}datasets"
            self.legacy_base = f"{root}tables"
            endpoint = (
                settings.s3_endpoint
                if "://" in settings.s3_endpoint
                else f"{'https' if settings.s3_secure else 'http'}://{settings.s3_endpoint}"
            )
            self.options = {
                "aws_access_key_id": settings.s3_access_key,
                "aws_secret_access_key": settings.s3_secret_key,
                "aws_endpoint": endpoint,
                "aws_region": settings.s3_region,
                "allow_http": "true" if endpoint.startswith("http://") else "false",
                # Bounded like the services' own store client: a hung store fails the read, it does not hang it.
                "timeout": f"{max(1, round(settings.s3_timeout_seconds))}s",
                "connect_timeout": f"{max(1, round(min(5.0, settings.s3_timeout_seconds)))}s",
            }

    def tables(self, target: DatasetName | InferenceSetName) -> VersionedTables:
        inference = isinstance(target, InferenceSetName)
        return VersionedTables(
            self.path(target, self.base), self.options, inference=inference, legacy=self.path(target, self.legacy_base)
        )

    @staticmethod
    def path(target: DatasetName | InferenceSetName, base: str) -> str:
        """Where the tables of `target` live under `base`: `{project}/{dataset}` for a dataset,
        `{project}/{dataset}/inference_sets/{inference_set}` for an inference set."""
        if isinstance(target, InferenceSetName):
            return f"{base}/{target.project}/{target.dataset}/inference_sets/{target.inference_set}"
        return f"{base}/{target.project}/{target.dataset}/dataset"


class VersionedTables:
    """The three tables of one dataset or inference set."""

    def __init__(
        self, path: str, options: Mapping[str, str], *, inference: bool = False, legacy: str | None = None
    ) -> None:
        self.path = path
        self.inference = inference
        self.layout = columnar.layout(inference=inference)
        self.options = dict(options)
        self.frames_uri = f"{path}/frames.lance"
        self.changes_uri = f"{path}/changes.lance"
        self.versions_uri = f"{path}/versions.lance"
        # Where the release before kept these tables (one serialized frame per row), until they are migrated.
        self.legacy = legacy

    def _open(self, uri: str, version: int | None = None) -> lance.LanceDataset:
        """The table at `uri`; the change log's handles share `LOG_SESSION`."""
        return open_dataset(uri, self.options, version, shared=uri == self.changes_uri)

    def open_table(self, uri: str, version: int | None = None) -> lance.LanceDataset | None:
        """The Lance table at `uri` (at table `version`), or None when there is none; other failures are raised."""
        try:
            return self._open(uri, version)
        except (ValueError, FileNotFoundError, OSError) as err:
            if _missing(err):
                return None
            raise

    def _read_latest(self, uri: str, read: Callable[[lance.LanceDataset], T]) -> T | None:
        """`read` on the newest version of a table (None when there is none), tried again on a fresh open when a file
        vanished under it (compaction and clean-up between the open and the read)."""
        for attempt in range(3):
            ds = self.open_table(uri)
            if ds is None:
                return None
            try:
                return read(ds)
            except (ValueError, OSError) as err:
                if attempt == 2 or not _missing(err):
                    raise
        return None

    # versions --------------------------------------------------------------------------------------------------

    def versions(self) -> list[VersionRecord]:
        """Every version, oldest first. UNAVAILABLE while tables of the release before wait to be migrated."""
        found = self.own_versions()
        if self.legacy_pending():
            raise Unavailable(
                f"the tables of {self.path} are being migrated to the columnar layout; retry shortly",
                reason="TABLES_MIGRATING",
            )
        return found

    def own_versions(self) -> list[VersionRecord]:
        """The versions recorded in this layout's version table (none before the first commit or migration)."""

        def read(ds: lance.LanceDataset) -> tuple[VersionRecord, ...]:
            known: tuple[VersionRecord, ...] | None = VERSION_RECORDS.get(self.versions_uri, ds)
            if known is None:
                rows = ds.to_table().to_pylist()
                known = tuple(sorted((VersionRecord(**row) for row in rows), key=lambda r: r.version))
                VERSION_RECORDS.put(self.versions_uri, ds, known)
            return known

        return list(self._read_latest(self.versions_uri, read) or ())

    def legacy_pending(self) -> bool:
        """Whether tables of the release before exist here and have not been migrated (their version table goes
        last once a migration is done)."""
        if self.legacy is None or self.legacy in _NO_LEGACY:
            return False
        if self.open_table(f"{self.legacy}/versions.lance") is not None:
            return True
        _NO_LEGACY.add(self.legacy)  # nothing writes the old layout any more: never pending again
        return False

    def latest(self) -> VersionRecord | None:
        found = self.versions()
        return found[-1] if found else None

    def version(self, number: int) -> VersionRecord:
        for record in self.versions():
            if record.version == number:
                return record
        raise NotFound(
            f"version {number} does not exist", reason="VERSION_NOT_FOUND", metadata={"version": str(number)}
        )

    def committed_batches(self) -> set[str]:
        return {b for record in self.versions() for b in record.batches}

    # reads -----------------------------------------------------------------------------------------------------

    def frames_at(self, version: int) -> lance.LanceDataset | None:
        """The current-state table as it was at dataset `version` (None before the first commit)."""
        if version == 0:
            return None
        record = self.version(version)
        ds = self.open_table(self.frames_uri, record.table_version)
        if ds is None:
            raise _expired(version)
        return ds

    def _paging_handle(self, version: int) -> tuple[lance.LanceDataset, tuple[str, int, float]] | None:
        """A kept handle of the table at `version` for page reads, and its key: the table version and the commit
        time (a dataset deleted and made again under its name starts its versions anew)."""
        if version == 0:
            return None
        record = self.version(version)
        key = (self.frames_uri, record.table_version, record.commit_time.timestamp())
        ds = TABLE_HANDLES.get(key)
        if ds is None:
            ds = self.open_table(self.frames_uri, record.table_version)
            if ds is None:
                raise _expired(version)
            TABLE_HANDLES.put(key, ds)
        return ds, key

    def readable_table_versions(self) -> set[int]:
        """Table versions of the frames table still on disk (retention drops old unpinned ones)."""
        found = self._read_latest(self.frames_uri, lambda ds: {int(v["version"]) for v in ds.versions()})
        return found or set()

    def get(self, ids: Sequence[str], version: int | None = None) -> dict[str, Message]:
        """Frames by id at `version` (default: latest)."""
        rows = self.rows(ids, version)
        return dict(zip(rows.column("frame_id").to_pylist(), self.layout.decode(rows), strict=True))

    def stored(self, ids: Sequence[str], version: int) -> dict[str, Stored]:
        """Digest, label ids and row address of those of `ids` that exist at `version`, read without decoding a
        frame: the index finds the rows (or this process knows where they are), then only those are read."""
        return self.stored_at(ids, version)[0]

    def stored_at(self, ids: Sequence[str], version: int) -> tuple[dict[str, Stored], int]:
        """`stored(ids, version)`, and the frames-table version whose row addresses it gives: `version`'s, or a later
        one with the same frames that this process's compactions made (0: there is no table)."""
        ds = self.frames_at(version) if ids else None
        if ds is None:
            return {}, 0
        key = _made(self.frames_uri, ds)
        candidates = FRAME_IDS.candidates(key, ds, ids)
        found = FRAME_ADDRESSES.find(key, ds, candidates) if candidates else ({}, [], ds.version)
        if found is None and len(candidates) >= ADDRESSES_FROM and ds.count_rows() <= ADDRESSES_MAX_FRAMES:
            FRAME_ADDRESSES.make(key, ds)  # worth a scan: kept up to date by this process's commits
            found = FRAME_ADDRESSES.find(key, ds, candidates)
        if found is not None and found[2] != ds.version:
            # Addresses of a later version with the same frames (this process compacted the table since `version`).
            later = self.open_table(self.frames_uri, found[2])
            if later is None:
                found = None
            else:
                ds = later
        if found is None:
            addresses = _addresses(ds, candidates)
        else:
            addresses, unsure, _ = found
            if unsure:
                addresses.update(_addresses(ds, unsure))
        rows = take_addresses(ds, list(addresses.values()), ["frame_id", "digest", "label_ids"])
        ids_found = rows.column("frame_id").to_pylist()
        if sorted(ids_found) != sorted(addresses):  # an address that holds another frame: never trusted
            log.warning("frame addresses of %s disagree with the table; looking the frames up", self.frames_uri)
            FRAME_ADDRESSES.drop(key)
            addresses = _addresses(ds, candidates)
            rows = take_addresses(ds, list(addresses.values()), ["frame_id", "digest", "label_ids"])
            ids_found = rows.column("frame_id").to_pylist()
        found_rows = zip(
            ids_found, rows.column("digest").to_pylist(), rows.column("label_ids").to_pylist(), strict=True
        )
        return {i: Stored(digest, labels, addresses[i]) for i, digest, labels in found_rows}, ds.version

    def rows(self, ids: Sequence[str], version: int | None = None, columns: Sequence[str] | None = None) -> pa.Table:
        """The rows of frames `ids` at `version` (default: latest), all columns or `columns`."""
        if version is None:
            latest = self.latest()
            version = latest.version if latest else 0
        ds = self.frames_at(version) if ids else None
        if ds is None:
            return self.layout.schema().empty_table()
        wanted = None if columns is None else [c for c in columns if c in ds.schema.names]
        # Chunked IN lists keep the filter small for large groups of ids.
        parts = [
            ds.to_table(columns=wanted, filter=in_list("frame_id", ids[start : start + 8000]))
            for start in range(0, len(ids), 8000)
        ]
        return pa.concat_tables(parts)

    def embedding_dimension(self, record: VersionRecord | None) -> int:
        """The frame embedding's dimension the table holds at the version of `record` (0: not fixed: no table yet,
        or a table made before any embedding)."""
        ds = self.open_table(self.frames_uri, record.table_version) if record is not None else None
        schema = ds.schema if ds is not None else None
        if schema is None or "embedding" not in schema.names:
            return 0
        kind = schema.field("embedding").type
        return int(kind.list_size) if pa.types.is_fixed_size_list(kind) else 0

    def schema(self, version: int) -> pa.Schema | None:
        """The columns of the frames table at `version` (None before the first commit)."""
        ds = self.frames_at(version)
        return None if ds is None else ds.schema

    def read(self, version: int, columns: Sequence[str] | None = None, filter_sql: str | None = None) -> pa.Table:
        """Columns of every frame at `version` (only those the table has), in storage order: the bulk reader's
        path, with no frame ever decoded."""
        ds = self.frames_at(version)
        if ds is None:
            return self.layout.schema().empty_table()
        wanted = None if columns is None else [c for c in columns if c in ds.schema.names]
        return ds.to_table(columns=wanted, filter=filter_sql)

    def frame_ids(self, version: int) -> list[str]:
        ds = self.frames_at(version)
        if ds is None:
            return []
        ids: list[str] = ds.to_table(columns=["frame_id"]).column("frame_id").to_pylist()
        return sorted(ids)

    def label_ids(self, version: int) -> pa.Table:
        """(frame_id, label_ids) of every frame at `version`."""
        ds = self.frames_at(version)
        if ds is None:
            return pa.schema(
                [pa.field("frame_id", pa.string(), nullable=False), pa.field("label_ids", pa.list_(pa.string()))]
            ).empty_table()
        return ds.to_table(columns=["frame_id", "label_ids"])

    def label_owners(self, label_ids: Sequence[str], version: int) -> dict[str, str]:
        """Which frame holds each of `label_ids` at `version` (labels nobody holds are left out)."""
        ds = self.frames_at(version)
        if ds is None or not label_ids:
            return {}
        wanted = set(label_ids)
        found: dict[str, str] = {}
        listed = ", ".join(quote(v) for v in sorted(wanted))
        table = ds.to_table(columns=["frame_id", "label_ids"], filter=f"array_has_any(label_ids, [{listed}])")
        for frame_id, labels in zip(
            table.column("frame_id").to_pylist(), table.column("label_ids").to_pylist(), strict=True
        ):
            found.update((label, frame_id) for label in labels if label in wanted)
        return found

    def scan(
        self,
        version: int,
        *,
        after: str = "",
        limit: int = 0,
        filter_sql: str | None = None,
        columns: Sequence[str] | None = None,
        batch_size: int = 1000,
        where: Any = None,
    ) -> Iterator[pa.RecordBatch]:
        """Rows at `version` in frame id order, after `after`: all columns, or `columns` (those the table has);
        `filter_sql` selects rows in the scan.

        A page (`limit`) reads only its rows, through the version's frame order: a take of the next `limit` rows.
        Filtered by `where` (a storage.filters.CompiledFilter), spans of the order that grow fourfold are judged on
        the filter's own columns, and only the rows that match are read whole."""
        if limit > 0 and not filter_sql:
            handle = self._paging_handle(version)
            if handle is None:
                return
            try:
                page = list(self._page(handle, after, limit, where, columns))
            except (ValueError, OSError) as err:
                if not _missing(err):
                    raise
                # Its files went with a compaction or the retention policy since the handle was opened.
                TABLE_HANDLES.drop(self.frames_uri)
                FRAME_ORDER.drop(self.frames_uri)
                handle = self._paging_handle(version)
                page = list(self._page(handle, after, limit, where, columns)) if handle is not None else []
            yield from page
            return
        ds = self.frames_at(version)
        if ds is None:
            return
        clauses = [f"frame_id > {quote(after)}"] if after else []
        if filter_sql:
            clauses.append(f"({filter_sql})")
        scanner = ds.scanner(
            columns=None if columns is None else [c for c in columns if c in ds.schema.names],
            filter=" AND ".join(clauses) or None,
            limit=limit or None,
            order_by=["frame_id"],
            batch_size=batch_size,
        )
        yield from scanner.to_batches()

    def _page(
        self,
        handle: tuple[lance.LanceDataset, tuple[str, int, float]],
        after: str,
        limit: int,
        where: Any,
        columns: Sequence[str] | None,
    ) -> Iterator[pa.RecordBatch]:
        ds, key = handle
        ids, addresses = FRAME_ORDER.of(ds, key)
        names = set(ds.schema.names)
        wanted = None if columns is None else [c for c in columns if c in names]
        start = _after(ids, after) if after else 0
        if where is None:
            end = min(len(ids), start + limit)
            if start < end:
                yield from ds._take_rows(addresses[start:end].to_pylist(), columns=wanted).to_batches()
            return
        judged = [c for c in where.columns if c in names] or ["frame_id"]
        found, span = 0, max(256, 2 * limit)
        while start < len(ids) and found < limit:
            end = min(len(ids), start + span)
            candidates = addresses[start:end].to_pylist()
            keep = np.flatnonzero(where.mask(ds._take_rows(candidates, columns=judged)).to_numpy(zero_copy_only=False))
            keep = keep[: limit - found]
            if keep.size:
                yield from ds._take_rows([candidates[i] for i in keep.tolist()], columns=wanted).to_batches()
                found += int(keep.size)
            start, span = end, min(span * 4, 1 << 16)

    def frames(self, version: int, *, after: str = "", limit: int = 0) -> Iterator[tuple[str, Message]]:
        """(frame id, frame) at `version` in frame id order: for readers that need whole frames."""
        for batch in self.scan(version, after=after, limit=limit):
            yield from zip(batch.column("frame_id").to_pylist(), self.layout.decode(batch), strict=True)

    def history(self, frame_id: str, up_to: int | None = None) -> list[dict[str, Any]]:
        """Every logged change of one frame, oldest first, up to version `up_to` (default: the newest committed one;
        a caller that knows it, from the catalog, saves reading the version table)."""
        if up_to is None:
            latest = self.latest()
            up_to = latest.version if latest else 0
        elif self.legacy_pending():
            self.versions()  # UNAVAILABLE while the log is still being migrated

        def read(ds: lance.LanceDataset) -> list[pa.Table]:
            # This process's map of the log finds the rows (see `_LogRows`; the version is checked after the take);
            # then only those rows are read, each fragment's at once, fragments side by side (see `fragment_takes`),
            # and only the columns their commits wrote something in (a take costs per column read).
            everything = _log_columns(ds)
            warm_log(ds, everything)
            found, commits = LOG_ROWS.find(ds, frame_id)
            rows = take_addresses(ds, found, _read_back(commits, everything))
            if all(i == frame_id for i in rows.column("frame_id").to_pylist()):
                return [rows]
            return [rows.filter(pc.equal(rows.column("frame_id"), frame_id))]  # equal hashes, other frames

        parts = self._read_log(up_to, read)
        if not any(part.num_rows for part in parts or []):
            # A handle kept open may be of a log since made again under this path (the dataset deleted and made
            # anew elsewhere): its map knows none of the new log's rows, so finding none is confirmed on a fresh one.
            LOG_HANDLES.drop(self.changes_uri)
            parts = self._read_log(up_to, read)
        out = []
        for part in parts or []:
            frames = self.layout.decode(part)
            for row, frame in zip(
                part.select(["version", "frame_id", "change_type", "upload", "commit_time"]).to_pylist(),
                frames,
                strict=True,
            ):
                if row["version"] <= up_to:
                    row["frame"] = None if row["change_type"] == _DELETE else frame
                    out.append(row)
        return sorted(out, key=lambda row: row["version"])

    def _read_log(self, up_to: int, read: Callable[[lance.LanceDataset], T]) -> T | None:
        """`read` on a change-log handle that holds every version up to `up_to` (kept open across calls)."""
        cached = LOG_HANDLES.get(self.changes_uri, up_to)
        if cached is not None:
            try:
                return read(cached)
            except (ValueError, OSError) as err:
                if not _missing(err):
                    raise
                LOG_HANDLES.drop(self.changes_uri)  # its files were compacted away: open the newest
        ds = self.open_table(self.changes_uri)
        if ds is None:
            return None
        LOG_HANDLES.put(self.changes_uri, ds, up_to)
        try:
            return read(ds)
        except (ValueError, OSError) as err:
            if not _missing(err):
                raise
            LOG_HANDLES.drop(self.changes_uri)
            return self._read_latest(self.changes_uri, read)

    def changed_between(self, base: int, target: int) -> set[str]:
        """Ids of frames changed by versions in (base, target]."""
        where = f"version > {base} AND version <= {target}"
        ids = self._read_log(
            target, lambda ds: ds.to_table(columns=["frame_id"], filter=where).column("frame_id").to_pylist()
        )
        return set(ids or [])

    # maintenance -----------------------------------------------------------------------------------------------

    def fragment_counts(self) -> dict[str, int]:
        out = {}
        for name, uri in (("frames", self.frames_uri), ("changes", self.changes_uri), ("versions", self.versions_uri)):
            ds = self.open_table(uri)
            out[name] = len(ds.get_fragments()) if ds is not None else 0
        return out

    def maintain(
        self,
        *,
        max_fragments: int = 8,
        small_rows: int = 65_536,
        log_grace: timedelta = LOG_GRACE,
        frame_fragments: int | None = None,
        log_fragments: int | None = None,
        index_segments: int | None = INDEX_SEGMENTS,
    ) -> dict[str, int]:
        """Keep small commits from fragmenting the tables: once more than `max_fragments` fragments have fewer than
        `small_rows` rows, merge them (larger fragments, and their deletion files, are left alone, so compaction
        never rewrites bulk data) and merge the index segments. Compaction writes a new table version with the same
        rows; committed versions keep reading the files they read before, so time travel is untouched. The change
        log and the version table are only ever read at their newest version, so their superseded versions (and
        the files compaction replaced) are deleted once `log_grace` old. The frames table may hold up to
        `frame_fragments` small fragments and the change log `log_fragments` (default `max_fragments`): the files the
        frames table's compaction replaces stay for time travel, and those of the log for `log_grace`, so compacting
        often costs disk; each commit keeps the frame-id indexes over its new rows, so small fragments cost lookups
        little. The change log's fragments grow to `LOG_FRAGMENT_ROWS` rows at most: a frame's history takes its rows
        one by one, and taking one row costs more the larger its fragment. An index with more than `index_segments`
        segments (one more each commit) is merged even without compaction (None: only with it)."""
        done = {}
        for name, uri in (("frames", self.frames_uri), ("changes", self.changes_uri), ("versions", self.versions_uri)):
            target = min(small_rows, LOG_FRAGMENT_ROWS) if name == "changes" else small_rows
            for attempt in range(3):
                ds = self.open_table(uri)
                if ds is None:
                    break
                small = [f for f in ds.get_fragments() if f.metadata.physical_rows < target]
                allowed = {"frames": frame_fragments, "changes": log_fragments}.get(name) or max_fragments
                if len(small) <= allowed:
                    break
                try:
                    before = ds.version
                    done[name], moved = self._rewrite(ds, small, target, addresses=name == "frames")
                except CommitConflictError:
                    # Another writer changed the same fragments and committed first: look again at what is left.
                    if attempt == 2:
                        raise
                    continue
                break
            if name not in done:
                # Nothing to compact, but each commit gave the frame-id index a segment: once there are several, they
                # are merged (0.2 s over 1.3 million log rows), since a lookup searches every one (4.6 ms with 26
                # segments, 1.5 ms with one).
                if ds is None or name == "versions" or index_segments is None or _index_segments(ds) <= index_segments:
                    continue
                before, moved = ds.version, (np.zeros(0, np.int64), np.zeros(0, np.int64))  # no row moves
            _merge_index_segments(self._open(uri))
            if name == "frames":  # the same frames, rewritten or indexed anew
                assert ds is not None
                key, after = _made(uri, ds), self._open(uri).version
                FRAME_IDS.advance(key, before, after)
                FRAME_COUNTS.advance(key, before, after)
                if moved is None:
                    FRAME_ADDRESSES.drop(key)
                else:
                    FRAME_ADDRESSES.rewritten(key, before, after, *moved)
            else:
                ds = self._open(uri)
                ds.cleanup_old_versions(older_than=log_grace)
                if name == "changes":
                    LOG_HANDLES.drop(uri)  # histories read the compacted log and its merged index from now on
                    warm_log(ds)
        return done

    def _rewrite(
        self, ds: lance.LanceDataset, small: Sequence[lance.LanceFragment], target: int, *, addresses: bool = False
    ) -> tuple[int, tuple[np.ndarray, np.ndarray] | None]:
        """Merge a table's small fragments into fragments of `target` rows, as one Rewrite commit (their deleted rows
        are left behind). Lance's own compaction re-splits the rows it reads at new fragment boundaries and writes
        them as it read them, and pylance 14 then fails on some nullable nested structs ("null_bit_buffer size too
        small": seen on the change log, and on the frames table of a 1,000,000-frame load); here every batch is made
        sound first, as for any write. The rewritten rows count as unindexed until the index segments are merged
        after it (lookups stay correct meanwhile). Returns the number of fragments removed and, with `addresses`,
        the old and the new address of every row rewritten (None without, or if they could not be matched)."""
        schema = ds.schema
        scanner = ds.scanner(fragments=list(small), batch_size=4096, with_row_address=addresses)
        old: list[np.ndarray] = []

        def batches() -> Iterator[pa.RecordBatch]:
            for read in scanner.to_batches():
                if addresses:
                    old.append(read.column("_rowaddr").to_numpy().astype(np.int64))
                columns = [read.column(f.name) for f in schema]
                yield pa.RecordBatch.from_arrays([columnar.sound(c) for c in columns], schema=schema)

        written = lance.fragment.write_fragments(
            pa.RecordBatchReader.from_batches(schema, batches()),
            ds,
            schema=schema,
            max_rows_per_file=target,
            storage_options=self.options or None,
        )
        group = lance.LanceOperation.RewriteGroup([f.metadata for f in small], written)
        before = {f.fragment_id for f in ds.get_fragments()}
        committed = lance.LanceDataset.commit(
            ds.uri,
            lance.LanceOperation.Rewrite([group], []),
            read_version=ds.version,
            storage_options=self.options or None,
        )
        moved = None
        if addresses and committed.version == ds.version + 1:  # else another writer's commit came in between
            new = _row_addresses([f for f in committed.get_fragments() if f.fragment_id not in before])
            rows = np.concatenate(old) if old else np.zeros(0, dtype=np.int64)
            moved = (rows, new) if len(rows) == len(new) else None
        return len(small) - len(written), moved

    def retain(self, older_than: timedelta, keep: Iterable[int]) -> list[int]:
        """Drop frames-table versions older than `older_than`, except the newest table version and the newest dataset
        version's, checkpointed ones (tags) and the dataset versions in `keep` (pinned by inference sets and segments;
        kept by tags of their own). Returns the
        dataset versions that are no longer readable."""
        ds = self.open_table(self.frames_uri)
        if ds is None:
            return []
        records = self.versions()
        # The newest dataset version stays readable too: maintenance (compaction, index merges) moves the table past
        # its table version, and the next commit reads what it holds.
        kept = set(keep) | ({records[-1].version} if records else set())
        pins = {f"{PIN_TAG}{r.table_version}": r.table_version for r in records if r.version in kept}
        tags = ds.tags.list()
        readable = self.readable_table_versions()
        for tag, table_version in pins.items():
            if tag not in tags and table_version in readable:
                ds.tags.create(tag, table_version)
        for tag in tags:
            if tag.startswith(PIN_TAG) and tag not in pins:
                ds.tags.delete(tag)
        ds = open_dataset(self.frames_uri, self.options)
        ds.cleanup_old_versions(older_than=older_than, error_if_tagged_old_versions=False)
        TABLE_HANDLES.drop(self.frames_uri)  # a dropped version no longer pages here (other replicas: within a TTL)
        FRAME_ORDER.drop(self.frames_uri)
        readable = self.readable_table_versions()
        return [r.version for r in records if r.table_version not in readable]

    # tags: checkpoints keep their table versions through retention -------------------------------------------

    def tag(self, name: str, table_version: int) -> None:
        ds = self.open_table(self.frames_uri)
        if ds is not None:
            ds.tags.create(name, table_version)

    def untag(self, name: str) -> None:
        ds = self.open_table(self.frames_uri)
        if ds is not None and name in ds.tags.list():
            ds.tags.delete(name)

    # writes (versioning service only) --------------------------------------------------------------------------

    def commit(self, commit: Commit) -> VersionRecord:
        """Write one version: change log, then current state, then the version record."""
        own = self.own_versions()
        expected = (own[-1].version if own else 0) + 1
        if commit.version != expected:
            raise FailedPrecondition(f"next version is {expected}, not {commit.version}", reason="VERSION_OUT_OF_ORDER")
        commit = replace(commit, changes=_in_row_order(commit.changes))
        rows = self._rows_of(commit)
        self._append_log(commit, rows)
        deletes = [c.frame_id for c in commit.changes if c.deletes]
        # Where the writer found the frames holds while the frames table is still at the version it found them in;
        # once anything else wrote it (another process's compaction, or an earlier try of this commit that died before
        # its version record), every frame is looked up (see `_apply`).
        known = None
        if commit.found_at:
            labels = {commit.found[i]: n for i, n in commit.found_labels.items() if i in commit.found}
            known = Known(commit.found_at, commit.found, complete=True, labels=labels)
        return self._apply(commit, rows, deletes, known)

    def _rows_of(self, commit: Commit) -> pa.Table:
        """The rows of the frames `commit` upserts, in the order of its changes (see `_in_row_order`): those encoded
        already taken as they are, the rest encoded."""
        schema = self.layout.schema(commit.embedding_dimension, commit.metadata)
        upserts = [c for c in commit.changes if not c.deletes]
        fresh = [c.frame for c in upserts if c.row is None]
        parts = []
        if fresh or not upserts:
            encoded = self.layout.encode(
                fresh,  # type: ignore[arg-type]
                embedding_dimension=commit.embedding_dimension,
                metadata=commit.metadata,
            )
            parts.append(encoded)
        taken: dict[int, tuple[pa.Table, list[int]]] = {}
        for c in upserts:
            if c.row is not None:
                table, row = c.row
                taken.setdefault(id(table), (table, []))[1].append(row)
        for table, picked in taken.values():
            # Usually a run of rows, or a few (a frame changed again later in the commit leaves a gap): slices, which
            # copy nothing; a take otherwise.
            runs = _runs(picked)
            if len(runs) <= 16:
                part = pa.concat_tables([table.slice(start, length) for start, length in runs])
            else:
                part = table.take(pa.array(picked, pa.int64()))
            parts.append(_aligned(part, schema, commit.metadata))
        return parts[0] if len(parts) == 1 else pa.concat_tables([_aligned(p, schema, commit.metadata) for p in parts])

    def _log_rows(self, commit: Commit, rows: pa.Table) -> pa.Table:
        """The change log's rows of `commit`: each change's frame columns (null for a delete) and what it was."""
        ids = rows.column("frame_id").to_pylist()
        frames = rows.drop_columns(["frame_id"])
        deletes = commit.changes[len(ids) :]
        if [c.frame_id for c in commit.changes[: len(ids)]] == ids and all(c.deletes for c in deletes):
            if deletes:  # the rows line up with the changes (see `_in_row_order`): null columns for the deletes
                nullable = pa.schema([f.with_nullable(True) for f in frames.schema])
                empty = pa.Table.from_arrays([columnar.nulls(len(deletes), f.type) for f in nullable], schema=nullable)
                frames = pa.concat_tables([frames.cast(nullable), empty])
        else:
            # Not one row per change in the same order: a take of the nested columns, which costs more than every
            # other step of building the log rows together.
            at = {frame_id: i for i, frame_id in enumerate(ids)}
            frames = frames.take(pa.array([at.get(c.frame_id) for c in commit.changes], type=pa.int64()))
        meta = json.dumps(
            {
                "batches": commit.batches,
                "uploads": commit.uploads,
                "added": commit.added,
                "modified": commit.modified,
                "deleted": commit.deleted,
                # What a history read takes of these rows (Lance stores this repeated value in a few bytes).
                "columns": self.layout.read_back(rows),
            }
        )
        n = len(commit.changes)
        head = pa.table(
            {
                "version": pa.array([commit.version] * n, pa.int64()),
                "frame_id": pa.array([c.frame_id for c in commit.changes], pa.string()),
                "change_type": pa.array([c.change_type for c in commit.changes], pa.int8()),
                "upload": pa.array([c.upload for c in commit.changes], pa.string()),
                "commit_time": pa.array([commit.commit_time] * n, pa.timestamp("us", tz="UTC")),
                "commit": pa.array([meta] * n, pa.string()),
            }
        )
        for name, column in zip(frames.column_names, frames.columns, strict=True):
            head = head.append_column(pa.field(name, column.type), column)
        return head

    def _append_log(self, commit: Commit, rows: pa.Table) -> None:
        if not commit.changes:
            return
        log_rows = self._log_rows(commit, rows)
        ds = self.open_table(self.changes_uri)
        # The log of this version may be there already (a crash after writing it): the same rows, never twice. What
        # this process wrote last tells without a scan of the log, while the log is as that write left it.
        if ds is not None:
            logged = LOGGED_VERSION.get(self.changes_uri, ds)
            unsure = logged is None or logged >= commit.version
            if unsure and ds.count_rows(filter=f"version = {commit.version}") > 0:
                return
        if ds is None:
            schema = pa.schema([pa.field(f.name, f.type) for f in log_rows.schema])  # every column nullable
            created = lance.write_dataset(
                log_rows.cast(schema),
                self.changes_uri,
                schema=schema,
                max_rows_per_file=LOG_FRAGMENT_ROWS,
                storage_options=self.options or None,
            )
            created.create_scalar_index("frame_id", "BTREE", name=FRAME_ID_INDEX)
        else:
            ds = self._evolve(ds, log_rows.schema, ())
            appended = lance.write_dataset(
                _aligned(log_rows, ds.schema, commit.metadata),
                self.changes_uri,
                mode="append",
                max_rows_per_file=LOG_FRAGMENT_ROWS,
                storage_options=self.options or None,
            )
            _index_new_rows(appended)
        # Through a handle on the shared session (the one write_dataset returns has a cache of its own).
        ds = self._open(self.changes_uri)
        LOGGED_VERSION.put(self.changes_uri, ds, commit.version)
        warm_log(ds)

    def _evolve(
        self, ds: lance.LanceDataset, wanted: pa.Schema, backfill: Sequence[columnar.MetadataColumn]
    ) -> lance.LanceDataset:
        """Add the columns of `wanted` that the table lacks (metadata-schema fields added since it was made). Those
        of `backfill` take, in the rows already there, their values from `user_metadata`; the others start null."""
        have = set(ds.schema.names)  # the schema is built anew at every access
        missing = [f for f in wanted if f.name not in have]
        if not missing:
            return ds
        log.info("adding columns %s to %s", [f.name for f in missing], ds.uri)
        typed = {m.column: m for m in backfill}
        filled = [typed[f.name] for f in missing if f.name in typed] if ds.count_rows() else []
        plain = [pa.field(f.name, f.type) for f in missing if f.name not in {m.column for m in filled}]
        if plain:
            ds.add_columns(plain)
        if filled:
            schema = pa.schema([pa.field(m.column, m.arrow) for m in filled])

            @lance.batch_udf(output_schema=schema)
            def values(batch: pa.RecordBatch) -> pa.RecordBatch:
                source = batch.column("user_metadata")
                return pa.RecordBatch.from_arrays([columnar.metadata_values(source, m) for m in filled], schema=schema)

            open_dataset(ds.uri, self.options).add_columns(values, read_columns=["user_metadata"])
        return open_dataset(ds.uri, self.options)

    def _apply(
        self, commit: Commit, rows: pa.Table, deletes: Sequence[str], known: Known | None = None
    ) -> VersionRecord:
        """Bring the frames table to `commit`: upsert `rows`, delete `deletes`, with what is `known` of where the
        frames are (nothing: every frame is looked up)."""
        ds = self.open_table(self.frames_uri)
        if ds is None:
            rows = _nullable_as(rows, self.layout.schema())
            rows = rows.replace_schema_metadata(
                {**(rows.schema.metadata or {}), TABLE_ID_KEY: uuid.uuid4().hex.encode()}
            )
            ds = lance.write_dataset(rows, self.frames_uri, schema=rows.schema, storage_options=self.options or None)
            ds.create_scalar_index("frame_id", "BTREE", name=FRAME_ID_INDEX)
            ds = open_dataset(self.frames_uri, self.options)
            key = _made(self.frames_uri, ds)
            counts = (rows.num_rows, int(pc.sum(rows.column("label_count")).as_py() or 0))
        else:
            before, key = ds.version, _made(self.frames_uri, ds)
            counted = FRAME_COUNTS.get(key, before)
            ds = self._evolve(ds, rows.schema, commit.metadata)
            if ds.version != before:
                FRAME_ADDRESSES.drop(key)
            if known is None or ds.version != known.table_version:
                known = Known(ds.version)
            ids = rows.column("frame_id").to_pylist()
            fragments = {f.fragment_id for f in ds.get_fragments()}
            gone, gone_labels = self._upsert(ds, _aligned(rows, ds.schema, commit.metadata), ids, deletes, known)
            ds = open_dataset(self.frames_uri, self.options)
            # The new rows are the new fragments' rows, in order.
            written = [f for f in ds.get_fragments() if f.fragment_id not in fragments]
            _index_new_rows(ds)
            FRAME_IDS.advance(key, before, ds.version, ids)
            if sum(f.metadata.physical_rows for f in written) == len(ids):
                FRAME_ADDRESSES.committed(key, (before, ds.version), gone, ids, _row_addresses(written))
            else:
                FRAME_ADDRESSES.drop(key)
            if counted is None:  # not known here: counted over the whole table
                whole = ds.to_table(columns=["label_count"])
                counts = (whole.num_rows, int(pc.sum(whole.column("label_count")).as_py() or 0))
            else:  # counted on from the version before, by what went and what came
                labels = int(pc.sum(rows.column("label_count")).as_py() or 0)
                counts = (counted[0] + len(ids) - len(gone), counted[1] + labels - gone_labels)
        FRAME_COUNTS.put(key, ds.version, counts)
        record = VersionRecord(
            version=commit.version,
            table_version=ds.version,
            commit_time=commit.commit_time,
            uploads=commit.uploads,
            batches=commit.batches,
            frames_added=commit.added,
            frames_modified=commit.modified,
            frames_deleted=commit.deleted,
            frame_count=counts[0],
            label_count=counts[1],
        )
        self._append_version(record)
        return record

    def _upsert(
        self, ds: lance.LanceDataset, rows: pa.Table, ids: Sequence[str], deletes: Sequence[str], known: Known
    ) -> tuple[list[str], int]:
        """Write `rows` (of frames `ids`) and drop the rows of the frames they replace and of `deletes`, as one
        commit; returns the frames whose rows were dropped, and how many labels those rows held. The frames are
        found (through the frame-id index, unless `known` says where they are or that they are absent), their
        fragments get deletion vectors, and the new rows go into new fragments. A merge insert does the same with a
        join over the whole table, which at a million frames cost several times more than the rest of a commit."""
        addresses = dict(known.addresses)
        going = [*ids, *deletes]
        if not known.complete:
            addresses.update(_addresses(ds, [i for i in going if i not in addresses]))
        held: dict[int, list[int]] = {}  # fragment id → the addresses of its rows that go
        for frame_id in going:
            address = addresses.get(frame_id)
            if address is not None:
                held.setdefault(address >> 32, []).append(address)
        if not held:
            if rows.num_rows:
                lance.write_dataset(rows, ds.uri, mode="append", storage_options=self.options or None)
            return [], 0
        fragments = {f.fragment_id: f for f in ds.get_fragments()}

        def delete(fragment_id: int) -> tuple[int, Any, int]:
            # By physical row offset (the low half of the addresses the frame-id index and `Stored` give): a delete
            # by predicate plans and runs a scan of the fragment, 0.3 ms against 3-5 ms by `_rowaddr IN (...)` for
            # 300 rows of a 59,000-row fragment of the bench's table (and 5x more again by frame id).
            going = sorted(held[fragment_id])
            # The labels the rows held, known from the writer's lookup or else read (a take costs 1-2 ms a fragment).
            unknown = [a for a in going if a not in known.labels]
            labels = sum(known.labels.get(a, 0) for a in going)
            if unknown:
                labels += pc.sum(ds._take_rows(unknown, columns=["label_count"]).column("label_count")).as_py() or 0
            return fragment_id, fragments[fragment_id].delete_rows([a & 0xFFFFFFFF for a in going]), int(labels)

        updated, removed = [], []
        gone_labels = 0
        for fragment_id, kept, labels in _TAKES.map(delete, held):
            gone_labels += labels
            if kept is None:
                removed.append(fragment_id)  # every row of it went
            else:
                updated.append(kept)
        new = (
            lance.fragment.write_fragments(rows, ds, schema=ds.schema, storage_options=self.options or None)
            if rows.num_rows
            else []
        )
        operation = lance.LanceOperation.Update(
            removed_fragment_ids=removed, updated_fragments=updated, new_fragments=new
        )
        lance.LanceDataset.commit(ds.uri, operation, read_version=ds.version, storage_options=self.options or None)
        return [frame_id for frame_id in going if frame_id in addresses], gone_labels

    def _append_version(self, record: VersionRecord) -> None:
        row = pa.Table.from_pylist([record.__dict__], schema=VERSIONS_SCHEMA)
        ds = self.open_table(self.versions_uri)
        if ds is None:
            lance.write_dataset(row, self.versions_uri, schema=VERSIONS_SCHEMA, storage_options=self.options or None)
        else:
            lance.write_dataset(row, self.versions_uri, mode="append", storage_options=self.options or None)

    def recover(self) -> list[VersionRecord]:
        """Replay logged versions that have no version record (a crash between the log and the commit)."""
        ds = self.open_table(self.changes_uri)
        if ds is None:
            return []
        own = self.own_versions()
        done = own[-1].version if own else 0
        pending = ds.to_table(filter=f"version > {done}")
        if pending.num_rows == 0:
            return []
        # Rows read back from Lance are put in the form it can write again; their metadata columns are those the
        # replayed commits had.
        pending = pa.Table.from_arrays(
            [columnar.sound(c.combine_chunks()) for c in pending.columns], schema=pending.schema
        )
        metadata = [_metadata_column(f) for f in pending.schema if f.name.startswith(columnar.METADATA_PREFIX)]
        replayed = []
        for version in sorted(set(pending.column("version").to_pylist())):
            if version != done + 1:
                break
            logged = pending.filter(pc.equal(pending.column("version"), version))
            first = logged.slice(0, 1).to_pylist()[0]
            meta = json.loads(first["commit"])
            commit = Commit(
                version=version,
                changes=[],
                uploads=list(meta.get("uploads", [])),
                batches=list(meta.get("batches", [])),
                added=int(meta.get("added", 0)),
                modified=int(meta.get("modified", 0)),
                deleted=int(meta.get("deleted", 0)),
                commit_time=first["commit_time"],
                metadata=metadata,
            )
            deleted = pc.equal(logged.column("change_type"), _DELETE)
            upserts = logged.filter(pc.invert(deleted)).drop_columns([n for n in LOG_ONLY if n in logged.column_names])
            deletes = logged.filter(deleted).column("frame_id").to_pylist()
            log.warning("replaying version %d of %s from the change log", version, self.path)
            replayed.append(self._apply(commit, upserts, deletes))
            done = version
        return replayed


def _metadata_column(f: pa.Field) -> columnar.MetadataColumn:
    """The metadata column a table field is (its kinds from its Arrow type)."""
    kind = {
        pa.string(): ("string_value",),
        pa.int64(): ("int_value",),
        pa.float64(): ("float_value", "int_value"),
        pa.bool_(): ("bool_value",),
    }
    element = f.type.value_type if pa.types.is_list(f.type) else f.type
    kinds = kind[element]
    if pa.types.is_list(f.type):
        kinds = tuple(k.replace("_value", "_list_value") for k in kinds)
    return columnar.MetadataColumn(f.name.removeprefix(columnar.METADATA_PREFIX), kinds, f.type)


def _nullable_as(rows: pa.Table, layout: pa.Schema) -> pa.Table:
    """Rows that start a table, with the nullability of the layout's columns (a replayed log's are all nullable)."""
    fields = [
        pa.field(f.name, f.type, nullable=layout.field(f.name).nullable if f.name in layout.names else True)
        for f in rows.schema
    ]
    return rows.cast(pa.schema(fields))


def _row_addresses(fragments: Sequence[lance.LanceFragment]) -> np.ndarray:
    """The address of every row of `fragments`, fragment after fragment (none has deleted rows: just written)."""
    parts = [(f.fragment_id << 32) + np.arange(f.metadata.physical_rows, dtype=np.int64) for f in fragments]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _runs(rows: Sequence[int]) -> list[tuple[int, int]]:
    """(start, length) of each run of consecutive numbers in `rows`, in order."""
    runs: list[tuple[int, int]] = []
    for row in rows:
        if runs and runs[-1][0] + runs[-1][1] == row:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((row, 1))
    return runs


def _in_row_order(changes: Sequence[Change]) -> list[Change]:
    """`changes` in the order their rows are gathered: frames to encode first (as given), then those whose rows were
    made already, source by source and row by row, deletes last. The rows of a commit then line up with its changes
    without a take of the nested columns (batches that interleave frame ids would need one otherwise)."""
    sources: dict[int, int] = {}
    made = [c for c in changes if c.row is not None]
    for c in made:
        sources.setdefault(id(c.row[0]), len(sources))  # type: ignore[index]
    made.sort(key=lambda c: (sources[id(c.row[0])], c.row[1]))  # type: ignore[index]
    fresh = [c for c in changes if c.frame is not None and c.row is None]
    return [*fresh, *made, *(c for c in changes if c.deletes)]


def _aligned(rows: pa.Table, schema: pa.Schema, metadata: Sequence[columnar.MetadataColumn]) -> pa.Table:
    """`rows` in the columns of a table's `schema`: a metadata column of `metadata` they lack (rows encoded by
    ingest before the schema gained it) computed from `user_metadata`, any other column they lack null; types cast
    (a vector list to a fixed size, or back for a table made before the dimension was known); extra columns
    dropped."""
    if rows.schema.equals(schema):
        return rows
    by_column = {m.column: m for m in metadata}
    columns = []
    for f in schema:
        if f.name in rows.column_names:
            columns.append(rows.column(f.name).cast(f.type))
        elif f.name in by_column:
            columns.append(columnar.metadata_values(rows.column("user_metadata").combine_chunks(), by_column[f.name]))
        else:
            columns.append(columnar.nulls(rows.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)
