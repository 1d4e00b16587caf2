"""Moving tables of the release before into the columnar layout.

That release kept, per dataset and inference set, `tables/{project}/{dataset}/…/{frames,changes,versions}.lance`
with every frame one serialized message. Its change log holds every version's changes in full, so migrating is
replaying that log, version by version, through the ordinary commit path into `datasets/…` (same version numbers,
commit times, uploads, batches and counts); checkpoints become tags on the new table versions, and pins of
inference sets and segments name dataset versions, which keep their numbers. Versions that retention had dropped
come back readable, since the log still held them.

A migration can stop anywhere and run again: it continues after the newest version already in the new layout. The
old tables go last, their version table very last, so readers keep being told to retry (UNAVAILABLE) until the
new tables are whole.

The versioning worker migrates a dataset before it applies anything to it, the versioning service migrates every
dataset in the background when it starts, and `shoal migrate` does it with the services stopped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow.compute as pc

from shoal.kit.names import DatasetName, InferenceSetName
from shoal.kit.objectstore import ObjectStore
from shoal.storage import columnar
from shoal.storage.catalog import Catalog
from shoal.storage.tables import Change, Commit, TableRoot, VersionedTables
from shoal.v1 import frame_pb2

log = logging.getLogger("shoal.storage.migration")


@dataclass
class Migrated:
    target: str
    versions: int


def migrate_tables(
    tables: VersionedTables,
    *,
    embedding_dimension: int,
    metadata: list[columnar.MetadataColumn],
    checkpoints: dict[str, int],
    remove: Callable[[], None],
) -> int:
    """Replay the legacy tables of `tables` into its columnar ones; tag `checkpoints` (id → dataset version); then
    `remove` the legacy tables. Returns how many versions were written now."""
    assert tables.legacy is not None
    # A missing table reads as None, a failing store raises: an unreadable log never passes for an empty one.
    legacy_versions = tables.open_table(f"{tables.legacy}/versions.lance")
    if legacy_versions is None:
        return 0
    records = {r["version"]: r for r in legacy_versions.to_table().to_pylist()}
    changes = tables.open_table(f"{tables.legacy}/changes.lance")
    logged = changes.to_table() if changes is not None else None
    versions = set(records)
    if logged is not None:
        versions |= set(logged.column("version").to_pylist())
    own = tables.own_versions()
    done = own[-1].version if own else 0
    message_type = frame_pb2.InferenceFrame if tables.inference else frame_pb2.Frame
    written = 0
    for version in sorted(v for v in versions if v > done):
        rows = logged.filter(pc.equal(logged.column("version"), version)).to_pylist() if logged is not None else []
        record = records.get(version)
        meta = json.loads(rows[0]["commit"]) if rows else {}
        commit = Commit(
            version=version,
            changes=[
                Change(
                    r["frame_id"],
                    r["change_type"],
                    message_type.FromString(r["frame"]) if r["frame"] is not None else None,
                    r["upload"],
                )
                for r in rows
            ],
            uploads=list(record["uploads"] if record else meta.get("uploads", [])),
            batches=list(record["batches"] if record else meta.get("batches", [])),
            added=int(record["frames_added"] if record else meta.get("added", 0)),
            modified=int(record["frames_modified"] if record else meta.get("modified", 0)),
            deleted=int(record["frames_deleted"] if record else meta.get("deleted", 0)),
            commit_time=record["commit_time"] if record else rows[0]["commit_time"],
            embedding_dimension=embedding_dimension,
            metadata=metadata,
        )
        tables.commit(commit)
        written += 1
    # The old tables go only when the new ones hold their newest version with the same counts.
    migrated = tables.own_versions()
    last = max(versions) if versions else 0
    if not migrated or migrated[-1].version != last:
        raise RuntimeError(f"migrating {tables.legacy} stopped at {migrated[-1].version if migrated else 0} of {last}")
    record = records.get(last)
    if record is not None and (migrated[-1].frame_count, migrated[-1].label_count) != (
        record["frame_count"],
        record["label_count"],
    ):
        raise RuntimeError(f"migrating {tables.legacy}: version {last} does not hold what the old tables hold")
    by_version = {r.version: r.table_version for r in migrated}
    tagged = tables.open_table(tables.frames_uri)
    existing = set(tagged.tags.list()) if tagged is not None else set()
    for checkpoint_id, version in checkpoints.items():
        if checkpoint_id not in existing and version in by_version:
            tables.tag(checkpoint_id, by_version[version])
    remove()
    return written


def _remover(store: ObjectStore, prefix: str) -> Callable[[], None]:
    def remove() -> None:
        # The version table last: until it is gone, the old tables count as not yet migrated.
        keys = [info.key for info in store.iter_all(prefix)]
        last = f"{prefix}versions.lance/"
        for key in sorted(keys, key=lambda k: k.startswith(last)):
            store.delete(key)

    return remove


def migrate_target(store: ObjectStore, root: TableRoot, target: DatasetName | InferenceSetName) -> int:
    """Migrate one dataset or inference set, if it has legacy tables."""
    tables = root.tables(target)
    if not tables.legacy_pending():
        return 0
    catalog = Catalog(store)
    dataset = catalog.get_dataset(target.dataset_name if isinstance(target, InferenceSetName) else target)
    checkpoints: dict[str, int] = {}
    if isinstance(target, DatasetName):
        prefix = f"catalog/checkpoints/{target.project}/{target.dataset}/"
        for info in store.iter_all(prefix):
            body = json.loads(store.get(info.key))
            checkpoints[info.key[len(prefix) : -len(".json")]] = int(body["resource"].get("version", 0))
    inference = isinstance(target, InferenceSetName)
    written = migrate_tables(
        tables,
        embedding_dimension=0 if inference else dataset.embedding_dimension,
        metadata=[] if inference else columnar.metadata_columns(dataset.metadata_schema),
        checkpoints=checkpoints,
        remove=_remover(store, TableRoot.path(target, "tables") + "/"),
    )
    log.info("migrated %d versions of %s to the columnar layout", written, target)
    return written


def targets(store: ObjectStore) -> list[DatasetName | InferenceSetName]:
    """Every dataset and inference set the catalog knows."""
    out: list[DatasetName | InferenceSetName] = []
    for info in store.iter_all("catalog/datasets/"):
        project, dataset = info.key.removeprefix("catalog/datasets/").removesuffix(".json").split("/")
        out.append(DatasetName(project, dataset))
    for info in store.iter_all("catalog/inference_sets/"):
        project, dataset, inference_set = (
            info.key.removeprefix("catalog/inference_sets/").removesuffix(".json").split("/")
        )
        out.append(InferenceSetName(project, dataset, inference_set))
    return out


def migrate_store(store: ObjectStore, root: TableRoot) -> list[Migrated]:
    """Migrate every dataset and inference set that still has legacy tables."""
    done = []
    for target in targets(store):
        if root.tables(target).legacy_pending():
            done.append(Migrated(str(target), migrate_target(store, root, target)))
    return done
