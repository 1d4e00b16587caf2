"""Versioned tables in Lance: per dataset (or inference set) a current-state table whose table versions are the
dataset versions, an append-only change log that answers per-frame history, and a version table that maps dataset
versions to table versions and records what each commit applied.

Commit order: change log first, then the current-state table (one merge-insert: upserts and deletes in one commit),
then the version record. A crash between the steps is repaired by `recover`, which replays the change log entries
that have no version record yet; re-applying a logged version is an idempotent upsert.

Only the versioning service writes; every reader opens immutable versions through this module.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import lance
import pyarrow as pa

from shoal.kit.errors import FailedPrecondition, NotFound
from shoal.kit.names import DatasetName, InferenceSetName
from shoal.kit.settings import StoreSettings
from shoal.storage.rows import derived_columns

log = logging.getLogger("shoal.storage.tables")
T = TypeVar("T")

# Lance's query memory pool (300 MB by default) is too small for merge-inserts of large commits into large tables;
# an operator may still set their own.
os.environ.setdefault("LANCE_MEM_POOL_SIZE", str(2 << 30))

FRAMES_SCHEMA: Final = pa.schema(
    [
        pa.field("frame_id", pa.string(), nullable=False),
        pa.field("frame", pa.binary(), nullable=False),
        pa.field("label_count", pa.int32(), nullable=False),
        pa.field("metadata", pa.string(), nullable=False),  # queryable metadata as JSON, for filters
        pa.field("label_ids", pa.list_(pa.string()), nullable=False),  # for dataset-wide label id uniqueness
    ]
)
CHANGES_SCHEMA: Final = pa.schema(
    [
        pa.field("version", pa.int64(), nullable=False),
        pa.field("frame_id", pa.string(), nullable=False),
        pa.field("change_type", pa.int8(), nullable=False),
        pa.field("frame", pa.binary(), nullable=True),
        pa.field("upload", pa.string(), nullable=False),
        pa.field("commit_time", pa.timestamp("us", tz="UTC"), nullable=False),
        # The commit's batches, uploads and counts (JSON), on every row, so a replay can write the version record.
        pa.field("commit", pa.string(), nullable=False),
    ]
)
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


def _missing(err: Exception) -> bool:
    text = str(err).lower()
    return isinstance(err, FileNotFoundError) or "not found" in text or "does not exist" in text


def quote(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def in_list(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(quote(v) for v in values)})"


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
    """One frame's change in a version: the state after it (None for a delete)."""

    frame_id: str
    change_type: int
    frame: bytes | None
    upload: str
    label_count: int = 0
    metadata: str = "{}"
    label_ids: list[str] = field(default_factory=list)


@dataclass
class Commit:
    """Everything one dataset version writes."""

    version: int
    changes: list[Change]
    uploads: list[str]
    batches: list[str]
    added: int = 0
    modified: int = 0
    deleted: int = 0
    commit_time: datetime = field(default_factory=lambda: datetime.now(UTC))


class TableRoot:
    """Where tables live: a local directory or an S3 prefix (with Lance's storage options)."""

    def __init__(self, settings: StoreSettings) -> None:
        parsed = urllib.parse.urlsplit(settings.url)
        if parsed.scheme == "file":
            raw = urllib.parse.unquote(parsed.path)
            base = os.path.abspath("." + raw if parsed.netloc == "." else raw)
            self.base = os.path.join(base, "tables")
            self.options: dict[str, str] = {}
        else:
            prefix = parsed.path.strip("/")
            self.base = f"s3://{parsed.netloc}/{prefix + '/' if prefix else ''}tables"
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
        if isinstance(target, InferenceSetName):
            path = f"{self.base}/{target.project}/{target.dataset}/inference_sets/{target.inference_set}"
            return VersionedTables(path, self.options, inference=True)
        return VersionedTables(f"{self.base}/{target.project}/{target.dataset}/dataset", self.options)


class VersionedTables:
    """The three tables of one dataset or inference set."""

    def __init__(self, path: str, options: Mapping[str, str], *, inference: bool = False) -> None:
        self.path = path
        self.inference = inference
        self.options = dict(options)
        self.frames_uri = f"{path}/frames.lance"
        self.changes_uri = f"{path}/changes.lance"
        self.versions_uri = f"{path}/versions.lance"

    def _open(self, uri: str, version: int | None = None) -> lance.LanceDataset | None:
        try:
            return lance.dataset(uri, version=version, storage_options=self.options or None)
        except (ValueError, FileNotFoundError, OSError) as err:
            if _missing(err):
                return None
            raise

    def _read_latest(self, uri: str, read: Callable[[lance.LanceDataset], T]) -> T | None:
        """`read` on the newest version of a table (None when there is none), tried again on a fresh open when a file
        vanished under it (compaction and clean-up between the open and the read)."""
        for attempt in range(3):
            ds = self._open(uri)
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
        """Every version, oldest first."""
        rows = self._read_latest(self.versions_uri, lambda ds: ds.to_table().to_pylist()) or []
        return sorted((VersionRecord(**row) for row in rows), key=lambda r: r.version)

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
        ds = self._open(self.frames_uri, record.table_version)
        if ds is None:
            raise NotFound(
                f"version {version} was dropped by the retention policy",
                reason="VERSION_EXPIRED",
                metadata={"version": str(version)},
            )
        return ds

    def readable_table_versions(self) -> set[int]:
        """Table versions of the frames table still on disk (retention drops old unpinned ones)."""
        found = self._read_latest(self.frames_uri, lambda ds: {int(v["version"]) for v in ds.versions()})
        return found or set()

    def get(self, ids: Sequence[str], version: int | None = None) -> dict[str, bytes]:
        """Serialized frames by id at `version` (default: latest)."""
        if not ids:
            return {}
        if version is None:
            latest = self.latest()
            if latest is None:
                return {}
            version = latest.version
        ds = self.frames_at(version)
        if ds is None:
            return {}
        out: dict[str, bytes] = {}
        # Chunked IN lists keep the filter small for large groups of ids.
        for start in range(0, len(ids), 8000):
            chunk = ids[start : start + 8000]
            table = ds.to_table(columns=["frame_id", "frame"], filter=in_list("frame_id", chunk))
            out.update(zip(table.column("frame_id").to_pylist(), table.column("frame").to_pylist(), strict=True))
        return out

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
            return pa.schema([FRAMES_SCHEMA.field("frame_id"), FRAMES_SCHEMA.field("label_ids")]).empty_table()
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
        self, version: int, *, after: str = "", limit: int = 0, filter_sql: str | None = None, batch_size: int = 1000
    ) -> Iterator[tuple[str, bytes]]:
        """Frames at `version` in frame id order, after `after`."""
        ds = self.frames_at(version)
        if ds is None:
            return
        clauses = [f"frame_id > {quote(after)}"] if after else []
        if filter_sql:
            clauses.append(f"({filter_sql})")
        scanner = ds.scanner(
            columns=["frame_id", "frame"],
            filter=" AND ".join(clauses) or None,
            limit=limit or None,
            order_by=["frame_id"],
            batch_size=batch_size,
        )
        for batch in scanner.to_batches():
            yield from zip(batch.column("frame_id").to_pylist(), batch.column("frame").to_pylist(), strict=True)

    def history(self, frame_id: str, up_to: int | None = None) -> list[dict[str, Any]]:
        """Every logged change of one frame, oldest first, up to version `up_to` (default: the newest committed one;
        a caller that knows it, from the catalog, saves reading the version table)."""
        if up_to is None:
            latest = self.latest()
            up_to = latest.version if latest else 0
        columns = ["version", "frame_id", "change_type", "frame", "upload", "commit_time"]
        where = f"frame_id = {quote(frame_id)} AND version <= {up_to}"
        rows = self._read_log(up_to, lambda ds: ds.to_table(columns=columns, filter=where).to_pylist())
        return sorted(rows or [], key=lambda r: r["version"])

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
        ds = self._open(self.changes_uri)
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
            ds = self._open(uri)
            out[name] = len(ds.get_fragments()) if ds is not None else 0
        return out

    def maintain(
        self, max_fragments: int = 8, small_rows: int = 65_536, log_grace: timedelta = LOG_GRACE
    ) -> dict[str, int]:
        """Keep small commits from fragmenting the tables: once more than `max_fragments` fragments have fewer than
        `small_rows` rows, merge them (larger fragments, and their deletion files, are left alone, so compaction
        never rewrites bulk data) and merge the index segments. Compaction writes a new table version with the same
        rows; committed versions keep reading the files they read before, so time travel is untouched. The change
        log and the version table are only ever read at their newest version, so their superseded versions (and
        the files compaction replaced) are deleted once `log_grace` old."""
        done = {}
        for name, uri in (("frames", self.frames_uri), ("changes", self.changes_uri), ("versions", self.versions_uri)):
            ds = self._open(uri)
            if ds is None:
                continue
            small = [f for f in ds.get_fragments() if f.metadata.physical_rows < small_rows]
            if len(small) <= max_fragments:
                continue
            metrics = ds.optimize.compact_files(target_rows_per_fragment=small_rows, materialize_deletions=False)
            done[name] = int(getattr(metrics, "fragments_removed", 0))
            ds = lance.dataset(uri, storage_options=self.options or None)
            if ds.describe_indices():
                ds.optimize.optimize_indices()
            if name != "frames":
                ds = lance.dataset(uri, storage_options=self.options or None)
                ds.cleanup_old_versions(older_than=log_grace)
        return done

    def retain(self, older_than: timedelta, keep: Iterable[int]) -> list[int]:
        """Drop frames-table versions older than `older_than`, except the newest, checkpointed ones (tags) and the
        dataset versions in `keep` (pinned by inference sets and segments; kept by tags of their own). Returns the
        dataset versions that are no longer readable."""
        ds = self._open(self.frames_uri)
        if ds is None:
            return []
        records = self.versions()
        pins = {f"{PIN_TAG}{r.table_version}": r.table_version for r in records if r.version in set(keep)}
        tags = ds.tags.list()
        readable = self.readable_table_versions()
        for tag, table_version in pins.items():
            if tag not in tags and table_version in readable:
                ds.tags.create(tag, table_version)
        for tag in tags:
            if tag.startswith(PIN_TAG) and tag not in pins:
                ds.tags.delete(tag)
        ds = lance.dataset(self.frames_uri, storage_options=self.options or None)
        ds.cleanup_old_versions(older_than=older_than, error_if_tagged_old_versions=False)
        readable = self.readable_table_versions()
        return [r.version for r in records if r.table_version not in readable]

    # tags: checkpoints keep their table versions through retention -------------------------------------------

    def tag(self, name: str, table_version: int) -> None:
        ds = self._open(self.frames_uri)
        if ds is not None:
            ds.tags.create(name, table_version)

    def untag(self, name: str) -> None:
        ds = self._open(self.frames_uri)
        if ds is not None and name in ds.tags.list():
            ds.tags.delete(name)

    # writes (versioning service only) --------------------------------------------------------------------------

    def commit(self, commit: Commit) -> VersionRecord:
        """Write one version: change log, then current state, then the version record."""
        latest = self.latest()
        expected = (latest.version if latest else 0) + 1
        if commit.version != expected:
            raise FailedPrecondition(f"next version is {expected}, not {commit.version}", reason="VERSION_OUT_OF_ORDER")
        self._append_log(commit)
        return self._apply(commit)

    def _append_log(self, commit: Commit) -> None:
        if not commit.changes:
            return
        meta = json.dumps(
            {
                "batches": commit.batches,
                "uploads": commit.uploads,
                "added": commit.added,
                "modified": commit.modified,
                "deleted": commit.deleted,
            }
        )
        rows = pa.table(
            {
                "version": [commit.version] * len(commit.changes),
                "frame_id": [c.frame_id for c in commit.changes],
                "change_type": [c.change_type for c in commit.changes],
                "frame": [c.frame for c in commit.changes],
                "upload": [c.upload for c in commit.changes],
                "commit_time": [commit.commit_time] * len(commit.changes),
                "commit": [meta] * len(commit.changes),
            },
            schema=CHANGES_SCHEMA,
        )
        ds = self._open(self.changes_uri)
        # The log of this version may be there already (a crash after writing it): the same rows, never twice.
        if ds is not None and ds.count_rows(filter=f"version = {commit.version}") > 0:
            return
        if ds is None:
            created = lance.write_dataset(
                rows, self.changes_uri, schema=CHANGES_SCHEMA, storage_options=self.options or None
            )
            created.create_scalar_index("frame_id", "BTREE")
        else:
            lance.write_dataset(rows, self.changes_uri, mode="append", storage_options=self.options or None)

    def _apply(self, commit: Commit) -> VersionRecord:
        upserts = [c for c in commit.changes if c.frame is not None]
        deletes = [c.frame_id for c in commit.changes if c.frame is None]
        source = pa.table(
            {
                "frame_id": [c.frame_id for c in upserts],
                "frame": [c.frame for c in upserts],
                "label_count": [c.label_count for c in upserts],
                "metadata": [c.metadata for c in upserts],
                "label_ids": [c.label_ids for c in upserts],
            },
            schema=FRAMES_SCHEMA,
        )
        ds = self._open(self.frames_uri)
        if ds is None:
            ds = lance.write_dataset(
                source, self.frames_uri, schema=FRAMES_SCHEMA, storage_options=self.options or None
            )
            ds.create_scalar_index("frame_id", "BTREE")
            ds = lance.dataset(self.frames_uri, storage_options=self.options or None)
        else:
            builder = ds.merge_insert("frame_id").when_matched_update_all().when_not_matched_insert_all()
            if deletes:
                builder = builder.when_not_matched_by_source_delete(in_list("frame_id", deletes))
            builder.execute(source)
            ds = lance.dataset(self.frames_uri, storage_options=self.options or None)
        counts = ds.to_table(columns=["label_count"])
        record = VersionRecord(
            version=commit.version,
            table_version=ds.version,
            commit_time=commit.commit_time,
            uploads=commit.uploads,
            batches=commit.batches,
            frames_added=commit.added,
            frames_modified=commit.modified,
            frames_deleted=commit.deleted,
            frame_count=counts.num_rows,
            label_count=int(pa.compute.sum(counts.column("label_count")).as_py() or 0),
        )
        self._append_version(record)
        return record

    def _append_version(self, record: VersionRecord) -> None:
        row = pa.Table.from_pylist([record.__dict__], schema=VERSIONS_SCHEMA)
        ds = self._open(self.versions_uri)
        if ds is None:
            lance.write_dataset(row, self.versions_uri, schema=VERSIONS_SCHEMA, storage_options=self.options or None)
        else:
            lance.write_dataset(row, self.versions_uri, mode="append", storage_options=self.options or None)

    def recover(self) -> list[VersionRecord]:
        """Replay logged versions that have no version record (a crash between the log and the commit)."""
        ds = self._open(self.changes_uri)
        if ds is None:
            return []
        latest = self.latest()
        done = latest.version if latest else 0
        pending = ds.to_table(filter=f"version > {done}").to_pylist()
        if not pending:
            return []
        replayed = []
        for version in sorted({r["version"] for r in pending}):
            if version != done + 1:
                break
            rows = [r for r in pending if r["version"] == version]
            meta = json.loads(rows[0]["commit"])
            commit = Commit(
                version=version,
                changes=[Change(r["frame_id"], r["change_type"], r["frame"], r["upload"]) for r in rows],
                uploads=list(meta.get("uploads", [])),
                batches=list(meta.get("batches", [])),
                added=int(meta.get("added", 0)),
                modified=int(meta.get("modified", 0)),
                deleted=int(meta.get("deleted", 0)),
                commit_time=rows[0]["commit_time"],
            )
            _fill_derived(commit, inference=self.inference)
            log.warning("replaying version %d of %s from the change log", version, self.path)
            replayed.append(self._apply(commit))
            done = version
        return replayed


def _fill_derived(commit: Commit, *, inference: bool) -> None:
    """Label counts and metadata of replayed changes, derived from the frames themselves."""
    for change in commit.changes:
        if change.frame is not None:
            change.label_count, change.metadata, change.label_ids = derived_columns(change.frame, inference=inference)
