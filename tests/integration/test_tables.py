"""The versioned tables directly: commit order, crash repair by replaying the change log, compaction that keeps
time travel."""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shoal.kit.errors import FailedPrecondition, NotFound
from shoal.kit.names import DatasetName
from shoal.kit.settings import StoreSettings
from shoal.storage import columnar, filters
from shoal.storage import tables as tables_module
from shoal.storage.tables import Change, Commit, TableRoot, VersionedTables
from shoal.v1 import frame_pb2
from shoal.versioning import labels as labels_module
from shoal.versioning.labels import LabelIndex

from tests.unit.test_columnar import messages

pytestmark = pytest.mark.integration


def tables(tmp_path: Path) -> VersionedTables:
    return TableRoot(StoreSettings(url=(tmp_path / "store").as_uri())).tables(DatasetName("p", "d"))


def change(frame_id: str, weather: str, change_type: int = frame_pb2.CHANGE_TYPE_ADD) -> Change:
    frame = frame_pb2.Frame(frame_id=frame_id)
    frame.user_metadata["weather"].string_value = weather
    return Change(frame_id, change_type, frame, "u")


def test_versions_are_ordered_and_each_stays_readable(tmp_path: Path) -> None:
    t = tables(tmp_path)
    t.commit(Commit(1, [change("a", "sun"), change("b", "sun")], ["u"], ["u#0"], added=2))
    t.commit(
        Commit(
            2,
            [change("a", "rain", frame_pb2.CHANGE_TYPE_MODIFY), Change("b", frame_pb2.CHANGE_TYPE_DELETE, None, "u")],
            ["u"],
            ["u#1"],
            modified=1,
            deleted=1,
        )
    )
    with pytest.raises(FailedPrecondition):
        t.commit(Commit(5, [change("c", "x")], ["u"], ["u#2"]))
    assert sorted(t.get(["a", "b"], 1)) == ["a", "b"]
    assert list(t.get(["a", "b"], 2)) == ["a"]
    assert t.get(["a"], 1)["a"].user_metadata["weather"].string_value == "sun"
    assert [r["version"] for r in t.history("a")] == [1, 2]
    assert t.committed_batches() == {"u#0", "u#1"}


def test_crash_between_log_and_commit_is_replayed(tmp_path: Path) -> None:
    t = tables(tmp_path)
    t.commit(Commit(1, [change("a", "sun")], ["u"], ["u#0"], added=1))
    crashed = Commit(2, [change("b", "rain")], ["u"], ["u#1"], added=1)
    t._append_log(crashed, columnar.FRAMES.encode([c.frame for c in crashed.changes]))  # died here: logged only
    assert t.latest().version == 1  # type: ignore[union-attr]
    assert t.history("b") == []  # uncommitted changes are not history
    replayed = t.recover()
    assert [r.version for r in replayed] == [2]
    assert t.committed_batches() == {"u#0", "u#1"}
    assert sorted(t.get(["a", "b"])) == ["a", "b"]
    assert t.recover() == []


def test_a_commit_tried_again_after_a_failure_logs_its_changes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = tables(tmp_path)
    t.commit(Commit(1, [change("a", "sun")], ["u"], ["u#0"], added=1))
    failing = Commit(2, [change("a", "rain", frame_pb2.CHANGE_TYPE_MODIFY)], ["u"], ["u#1"], modified=1)
    apply = VersionedTables._apply

    def fail(self: VersionedTables, *args: object) -> None:
        raise OSError("the store went away")

    monkeypatch.setattr(VersionedTables, "_apply", fail)
    with pytest.raises(OSError, match="went away"):
        t.commit(failing)  # the log holds version 2, the frames table does not
    monkeypatch.setattr(VersionedTables, "_apply", apply)
    t.commit(failing)
    assert [r["version"] for r in t.history("a")] == [1, 2]
    log = lance.dataset(t.changes_uri).to_table(columns=["version"]).column("version").to_pylist()
    assert sorted(log) == [1, 2]


def test_a_commit_tried_again_after_its_frames_were_written_leaves_each_frame_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = tables(tmp_path)
    first = t.commit(Commit(1, [change("a", "sun"), change("b", "sun")], ["u"], ["u#0"], added=2))
    found = {i: s.address for i, s in t.stored(["a", "b", "c"], 1).items()}
    assert sorted(found) == ["a", "b"]  # where the writer found them, as the worker passes them on
    retried = Commit(
        2,
        [change("a", "rain", frame_pb2.CHANGE_TYPE_MODIFY), change("c", "fog")],
        ["u"],
        ["u#1"],
        added=1,
        modified=1,
        found=found,
        found_at=first.table_version,
    )
    append_version = VersionedTables._append_version

    def fail(self: VersionedTables, record: object) -> None:
        raise OSError("the store went away")

    monkeypatch.setattr(VersionedTables, "_append_version", fail)
    with pytest.raises(OSError, match="went away"):
        t.commit(retried)  # the frames table holds version 2's rows; no version record says so
    monkeypatch.setattr(VersionedTables, "_append_version", append_version)
    record = t.commit(retried)
    assert record.frame_count == 3
    rows = lance.dataset(t.frames_uri).to_table(columns=["frame_id"]).column("frame_id").to_pylist()
    assert sorted(rows) == ["a", "b", "c"]
    assert t.get(["a"], 2)["a"].user_metadata["weather"].string_value == "rain"
    assert t.get(["a"], 1)["a"].user_metadata["weather"].string_value == "sun"


def test_frames_are_found_whoever_wrote_them_and_new_ones_need_no_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = tables(tmp_path)
    t.commit(Commit(1, [change("a", "sun"), change("b", "sun")], ["u"], ["u#0"], added=2))
    assert sorted(t.stored(["a", "b", "c"], 1)) == ["a", "b"]
    t.commit(Commit(2, [change("c", "fog")], ["u"], ["u#1"], added=1))
    t.maintain(max_fragments=1, log_grace=timedelta(0))  # a compaction between commits changes no frame
    looked_up: list[list[str]] = []
    addresses = tables_module._addresses

    def spy(ds: lance.LanceDataset, ids: list[str]) -> dict[str, int]:
        looked_up.append(list(ids))
        return addresses(ds, ids)

    monkeypatch.setattr(tables_module, "_addresses", spy)
    assert sorted(t.stored(["a", "c", "new-1", "new-2"], 2)) == ["a", "c"]
    assert looked_up == [["a", "c"]]  # the frames this process knows are not there were not looked up
    # Another process writes version 3: what this one knew no longer covers the table, so it looks at it again.
    monkeypatch.setattr(tables_module.FRAME_IDS, "advance", lambda *args, **kwargs: None)
    t.commit(Commit(3, [change("x", "rain")], ["v"], ["v#0"], added=1))
    monkeypatch.undo()
    assert sorted(t.stored(["x", "a", "zz"], 3)) == ["a", "x"]


@pytest.mark.parametrize("hashes", ["distinct", "colliding"])
def test_replacing_and_deleting_frames_over_and_over_leaves_exactly_the_frames_each_version_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hashes: str
) -> None:
    """Frames go by row address from fragments that already lost rows (their offsets are no longer their
    addresses), with the addresses the writer passes on or looked up by the tables themselves; the writer's own
    record of every frame's address follows its commits and compactions exactly, and frame ids whose hashes collide
    still each find their own row. The version records count frames and labels on from the version before."""
    monkeypatch.setattr(tables_module, "ADDRESSES_FROM", 1)  # kept from the first lookup on
    if hashes == "colliding":
        monkeypatch.setattr(tables_module, "id_hashes", lambda ids: np.array([1 + len(i) % 3 for i in ids], np.int64))
    t = tables(tmp_path)
    rng = random.Random(7)

    def labelled(frame_id: str, weather: str, change_type: int = frame_pb2.CHANGE_TYPE_ADD) -> Change:
        made = change(frame_id, weather, change_type)
        for k in range(int(weather[1:]) % 4):  # 0 to 3 labels, by version
            made.frame.labels.add(label_id=f"{frame_id}-{weather}-{k}", classification="car")  # type: ignore[union-attr]
        return made

    model = {f"f{i:03d}": "w5" for i in range(120)}
    t.commit(Commit(1, [labelled(i, w) for i, w in model.items()], ["u"], ["u#0"], added=len(model)))
    models = {1: dict(model)}
    for version in range(2, 14):
        replaced = rng.sample(sorted(model), 15)
        deleted = rng.sample(sorted(set(model) - set(replaced)), 4)
        added = [f"n{version:02d}-{k}" for k in range(3)]
        changes = [labelled(i, f"w{version}", frame_pb2.CHANGE_TYPE_MODIFY) for i in replaced]
        changes += [labelled(i, f"w{version}") for i in added]
        changes += [Change(i, frame_pb2.CHANGE_TYPE_DELETE, None, "u") for i in deleted]
        latest = t.latest()
        assert latest is not None
        stored_before = t.stored([*replaced, *deleted], latest.version)
        found = {i: s.address for i, s in stored_before.items()}
        commit = Commit(version, changes, ["u"], [f"u#{version}"], added=3, modified=15, deleted=4)
        if version % 2:  # where the writer found them (and, every other time, their labels); else looked up
            labels = {i: len(s.label_ids) for i, s in stored_before.items()} if version % 4 == 3 else {}
            commit = replace(commit, found=found, found_at=latest.table_version, found_labels=labels)
        record = t.commit(commit)
        for i in deleted:
            del model[i]
        model.update(dict.fromkeys([*replaced, *added], f"w{version}"))
        models[version] = dict(model)
        assert record.frame_count == len(model)
        assert record.label_count == sum(int(w[1:]) % 4 for w in model.values())
        if version % 4 == 0:
            assert t.maintain(max_fragments=1, log_grace=timedelta(0)).get("frames")  # the rows move
        ds = lance.dataset(t.frames_uri)
        scanned = ds.to_table(columns=["frame_id"], with_row_address=True)
        stored = scanned.column("frame_id").to_pylist()
        assert sorted(stored) == sorted(model)  # every frame once, none that went
        if hashes == "distinct":
            key = tables_module._made(t.frames_uri, ds)
            kept = tables_module.FRAME_ADDRESSES.find(key, ds, [*model, "never-there"])
            assert kept == (dict(zip(stored, scanned.column("_rowaddr").to_pylist(), strict=True)), [], ds.version)
    for version in (1, 6, 13):  # each version reads as it was written
        got = t.get(sorted(models[version]), version)
        assert {i: f.user_metadata["weather"].string_value for i, f in got.items()} == models[version]


def test_two_frames_added_together_with_one_hash_each_keep_their_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tables_module, "ADDRESSES_FROM", 1)
    hashes = tables_module.id_hashes
    monkeypatch.setattr(tables_module, "id_hashes", lambda ids: hashes(["x" if i == "y" else i for i in ids]))
    t = tables(tmp_path)

    def commit(version: int, changes: list[Change]) -> tables_module.VersionRecord:
        latest = t.latest()
        found, at = t.stored_at([c.frame_id for c in changes], latest.version) if latest else ({}, 0)
        addresses = {i: s.address for i, s in found.items()}
        return t.commit(Commit(version, changes, ["u"], [f"u#{version}"], found=addresses, found_at=at))

    commit(1, [change("a", "sun")])
    assert sorted(t.stored(["a"], 1)) == ["a"]  # the writer now keeps every frame's address
    commit(2, [change("x", "sun"), change("y", "sun")])  # one hash, one commit
    commit(3, [Change("y", frame_pb2.CHANGE_TYPE_DELETE, None, "u")])
    record = commit(4, [change("x", "rain")])  # x is still there, and is replaced
    assert record.frame_count == 2
    assert sorted(lance.dataset(t.frames_uri).to_table().column("frame_id").to_pylist()) == ["a", "x"]


def test_a_dataset_made_again_under_its_name_reads_its_own_versions(tmp_path: Path) -> None:
    t = tables(tmp_path)
    for version in (1, 2, 3):
        t.commit(Commit(version, [change(f"f{version}", "sun")], ["u"], [f"u#{version}"], added=1))
    assert [r.version for r in t.versions()] == [1, 2, 3]
    assert sorted(t.stored(["f1", "f2", "f3"], 3)) == ["f1", "f2", "f3"]
    read_before = tables_module.VERSION_RECORDS._values[t.versions_uri]
    kept_before = [dict(c._tables) for c in (tables_module.FRAME_IDS, tables_module.FRAME_ADDRESSES)]
    counted_before = dict(tables_module.FRAME_COUNTS._counts)
    assert [r["version"] for r in t.history("f2")] == [2]  # this process maps the old log's rows
    shutil.rmtree(t.path)
    again = tables(tmp_path)  # as many versions again: its tables reach the same table versions
    for version in (1, 2, 3):
        again.commit(Commit(version, [change(f"x{version}", "rain")], ["v"], [f"v#{version}"], added=1))
    # As if another replica had made it again: this process last read the old table, at the same table version.
    tables_module.VERSION_RECORDS._values[t.versions_uri] = read_before
    for cache, kept in zip((tables_module.FRAME_IDS, tables_module.FRAME_ADDRESSES), kept_before, strict=True):
        cache._tables.clear()
        cache._tables.update(kept)  # type: ignore[arg-type]
    tables_module.FRAME_COUNTS._counts.clear()
    tables_module.FRAME_COUNTS._counts.update(counted_before)
    assert [r.batches for r in again.versions()] == [["v#1"], ["v#2"], ["v#3"]]
    assert [r["version"] for r in again.history("x2")] == [2]
    assert sorted(again.stored(["x1", "x2", "x3", "f1"], 3)) == ["x1", "x2", "x3"]
    record = again.commit(Commit(4, [change("x1", "fog", frame_pb2.CHANGE_TYPE_MODIFY)], ["v"], ["v#4"], modified=1))
    assert (record.frame_count, sorted(lance.dataset(again.frames_uri).to_table().column("frame_id").to_pylist())) == (
        3,
        ["x1", "x2", "x3"],
    )


@given(data=st.data())
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_history_reads_back_every_frame_exactly_from_the_columns_its_commit_needs(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    t = tables(tmp_path_factory.mktemp("history"))
    frames = data.draw(st.lists(messages(frame_pb2.Frame, dimension=3), min_size=1, max_size=4))
    unique = list({f.frame_id: f for f in frames}.values())
    t.commit(Commit(1, [Change(f.frame_id, frame_pb2.CHANGE_TYPE_ADD, f, "u") for f in unique], ["u"], ["u#0"]))
    # Version 2 makes the first frame a plain one: its log rows need far fewer columns than version 1's.
    plain = frame_pb2.Frame(frame_id=unique[0].frame_id)
    plain.user_metadata["weather"].string_value = "sun"
    t.commit(Commit(2, [Change(plain.frame_id, frame_pb2.CHANGE_TYPE_MODIFY, plain, "u")], ["u"], ["u#1"]))
    for frame in unique:
        history = t.history(frame.frame_id)
        assert history[0]["frame"] == frame
    assert [(r["version"], r["frame"]) for r in t.history(plain.frame_id)] == [(1, unique[0]), (2, plain)]
    assert [r["version"] for r in t.history(plain.frame_id, up_to=1)] == [1]


def test_history_reads_every_column_of_changes_logged_before_commits_named_their_columns(tmp_path: Path) -> None:
    t = tables(tmp_path)
    t.commit(Commit(1, [change("a", "sun")], ["u"], ["u#0"], added=1))
    log = lance.dataset(t.changes_uri)
    # A log row as the release before wrote it: its commit says nothing of columns.
    old = log.to_table()
    commit = old.column("commit").to_pylist()[0]
    meta = tables_module.json.loads(commit)
    del meta["columns"]
    old = old.set_column(old.schema.get_field_index("commit"), "commit", pa.array([tables_module.json.dumps(meta)]))
    lance.write_dataset(old, t.changes_uri, mode="overwrite")
    tables_module.LOG_HANDLES.drop(t.changes_uri)
    (row,) = t.history("a")
    assert row["frame"].user_metadata["weather"].string_value == "sun"


def test_compaction_keeps_every_version_readable(tmp_path: Path) -> None:
    t = tables(tmp_path)
    for v in range(1, 13):
        t.commit(Commit(v, [change(f"f{v}", "sun")], ["u"], [f"u#{v}"], added=1))
    before = t.fragment_counts()
    assert before["frames"] >= 12
    import lance

    compacted = t.maintain(max_fragments=4)
    assert compacted["frames"] > 0
    assert max(len(i.segments) for i in lance.dataset(t.changes_uri).describe_indices()) <= 2
    assert [r["version"] for r in t.history("f3")] == [3]
    assert t.fragment_counts()["frames"] < before["frames"]
    for v in range(1, 13):
        assert len(t.frame_ids(v)) == v
    t.commit(Commit(13, [change("f13", "sun")], ["u"], ["u#13"], added=1))
    assert len(t.frame_ids(13)) == 13


def test_every_commit_leaves_its_rows_indexed_by_frame_id(tmp_path: Path) -> None:
    """A lookup by frame id (history, the frames a batch touches) never scans rows an index does not cover."""
    import lance

    t = tables(tmp_path)
    for v in range(1, 6):
        t.commit(Commit(v, [change(f"g{v}", "sun"), change("f1", f"w{v}")], ["u"], [f"u#{v}"], added=1, modified=1))
    for uri in (t.frames_uri, t.changes_uri):
        stats = lance.dataset(uri).stats.index_stats("frame_id_idx")
        assert stats["num_unindexed_rows"] == 0, uri
        assert len(stats["segments"]) <= 6, uri
    assert [r["version"] for r in t.history("f1")] == [1, 2, 3, 4, 5]
    # Too few fragments to compact, but more index segments than a lookup should search: maintenance merges them, and
    # histories read the merged index from then on (not the handle they had open).
    assert t.maintain(max_fragments=100) == {}
    for uri in (t.frames_uri, t.changes_uri):
        assert len(lance.dataset(uri).stats.index_stats("frame_id_idx")["segments"]) == 1, uri
    assert tables_module.LOG_HANDLES.get(t.changes_uri, 5) is None
    assert [r["version"] for r in t.history("f1")] == [1, 2, 3, 4, 5]
    assert sorted(t.stored(["f1", "g2", "zz"], 5)) == ["f1", "g2"]


def labelled(frame_id: str, *label_ids: str) -> Change:
    frame = frame_pb2.Frame(frame_id=frame_id)
    for label_id in label_ids:
        frame.labels.add(label_id=label_id, classification="car", sensor_id="cam")
    return Change(frame_id, frame_pb2.CHANGE_TYPE_ADD, frame, "u")


@pytest.mark.parametrize("compact_at", [1, 1_000_000])
def test_label_index_follows_commits_and_answers_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compact_at: int
) -> None:
    monkeypatch.setattr(labels_module, "COMPACT_AT", compact_at)
    t = tables(tmp_path)
    assert LabelIndex(t, 0).elsewhere([("l1", "a")]) == {}
    t.commit(Commit(1, [labelled("a", "l1", "l2"), labelled("b", "l3")], ["u"], ["u#0"], added=2))
    assert t.label_owners(["l1", "l3", "nope"], 1) == {"l1": "a", "l3": "b"}
    index = LabelIndex(t, 1)
    assert index.elsewhere([("l1", "a"), ("l3", "b"), ("new", "c")]) == {}
    assert index.elsewhere([("l1", "c"), ("l3", "b"), ("l2", "a")]) == {"l1": "a"}
    # Version 2 moves l1 from a to c and frees l3 (b deleted); the index follows without reading the table.
    t.commit(
        Commit(
            2,
            [labelled("a", "l2"), labelled("c", "l1"), Change("b", frame_pb2.CHANGE_TYPE_DELETE, None, "u")],
            ["u"],
            ["u#1"],
        )
    )
    index.advance(2, released=["l1", "l2", "l3"], claimed=[("l2", "a"), ("l1", "c")])
    assert index.version == 2
    assert index.elsewhere([("l1", "a"), ("l3", "z"), ("l2", "a")]) == {"l1": "c"}
    assert index.elsewhere([("l1", "c")]) == {}
    assert LabelIndex(t, 2).elsewhere([("l1", "a"), ("l3", "z")]) == {"l1": "c"}
    assert LabelIndex(t, 1).elsewhere([("l1", "c")]) == {"l1": "a"}  # an old version keeps its holders


def test_retention_drops_old_unpinned_versions_only(tmp_path: Path) -> None:
    t = tables(tmp_path)
    for v in range(1, 7):
        t.commit(Commit(v, [change(f"f{v}", "sun")], ["u"], [f"u#{v}"], added=1))
    t.tag("named", t.version(2).table_version)  # a checkpoint
    assert t.retain(timedelta(0), keep={4}) == [1, 3, 5]
    for gone in (1, 3, 5):
        with pytest.raises(NotFound) as err:
            t.get(["f1"], gone)
        assert err.value.reason == "VERSION_EXPIRED"
    assert sorted(t.get(["f1", "f2", "f3"], 2)) == ["f1", "f2"]
    assert len(t.get([f"f{i}" for i in range(1, 7)], 4)) == 4
    assert len(t.get([f"f{i}" for i in range(1, 7)], 6)) == 6  # the newest always stays
    assert [r["version"] for r in t.history("f1")] == [1]  # the change log (the audit trail) is not pruned
    # Unpinned later (the inference set or segment went away), version 4 goes at the next pass; the tag keeps 2.
    assert t.retain(timedelta(0), keep=set()) == [1, 3, 4, 5]
    assert t.retain(timedelta(days=1), keep=set()) == [1, 3, 4, 5]


def test_log_compaction_cleans_superseded_log_versions(tmp_path: Path) -> None:
    t = tables(tmp_path)
    for v in range(1, 12):
        t.commit(Commit(v, [change(f"f{v}", "sun")], ["u"], [f"u#{v}"], added=1))
    log_files = lambda: sum(1 for _ in (Path(t.changes_uri) / "data").iterdir())  # noqa: E731
    before = log_files()
    assert t.maintain(max_fragments=2, log_grace=timedelta(0))["changes"] > 0
    assert log_files() < before
    assert [r["version"] for r in t.history("f3")] == [3]
    assert len(t.get([f"f{v}" for v in range(1, 12)], 1)) == 1  # time travel untouched


@pytest.mark.parametrize("where", ["local", "s3"])
def test_change_log_fragments_stay_small_for_history_takes(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """A frame's history takes its log rows one by one, which costs more the larger their fragment: the log is
    written and compacted (by a rewrite of its own) into fragments of at most LOG_FRAGMENT_ROWS rows, on a local
    store and on S3."""
    import lance
    from shoal.kit.objectstore import open_store
    from shoal.storage import tables as tables_module

    from tests.conftest import unique

    monkeypatch.setattr(tables_module, "LOG_FRAGMENT_ROWS", 4)
    if where == "s3":
        settings = request.getfixturevalue("s3_server").store_settings(unique("log"))
        open_store(settings)  # makes the bucket
        t = TableRoot(settings).tables(DatasetName("p", "d"))
    else:
        t = tables(tmp_path)
    options = t.options or None
    t.commit(Commit(1, [change(f"a{i}", "sun") for i in range(10)], ["u"], ["u#1"], added=10))
    for v in range(2, 12):
        t.commit(Commit(v, [change(f"f{v}", "sun")], ["u"], [f"u#{v}"], added=1))
    log_rows = lambda: [  # noqa: E731
        f.count_rows() for f in lance.dataset(t.changes_uri, storage_options=options).get_fragments()
    ]
    assert max(log_rows()) <= 4
    assert sum(log_rows()) == 20
    before = t.get(["f7", "a3"])
    compacted = t.maintain(max_fragments=2, log_grace=timedelta(0))
    assert compacted["changes"] > 0
    assert "frames" in compacted  # the frames table's small fragments were rewritten too
    assert t.get(["f7", "a3"]) == before
    assert max(log_rows()) <= 4
    assert sum(log_rows()) == 20
    assert [r["version"] for r in t.history("f7")] == [7]
    assert [r["version"] for r in t.history("a3")] == [1]
    # A commit that replaces and deletes frames of the compacted table, where the writer found them.
    found = {i: s.address for i, s in t.stored(["a3", "f7", "new"], 11).items()}
    record = t.commit(
        Commit(
            12,
            [change("a3", "rain", frame_pb2.CHANGE_TYPE_MODIFY), Change("f7", frame_pb2.CHANGE_TYPE_DELETE, None, "u")],
            ["u"],
            ["u#12"],
            modified=1,
            deleted=1,
            found=found,
            found_at=t.version(11).table_version,
        )
    )
    assert record.frame_count == 19
    assert t.get(["a3"])["a3"].user_metadata["weather"].string_value == "rain"
    assert t.get(["f7"]) == {}
    assert t.get(["f7", "a3"], 11) == before
    assert [r["version"] for r in t.history("f7")] == [7, 12]


def test_rows_are_taken_by_address_from_every_fragment_deleted_rows_or_not(tmp_path: Path) -> None:
    """A fragment's own take counts offsets past its deleted rows: rows of such a fragment must still come back as
    the rows at their addresses."""
    uri = str(tmp_path / "t.lance")
    lance.write_dataset(pa.table({"k": list(range(40)), "v": [f"v{i}" for i in range(40)]}), uri, max_rows_per_file=10)
    ds = lance.dataset(uri)
    ds.delete("k IN (11, 12, 30)")
    ds = lance.dataset(uri)
    assert sum(f.metadata.deletion_file is not None for f in ds.get_fragments()) == 2
    wanted = [3, 13, 17, 31, 39]
    found = ds.to_table(columns=[], filter=f"k IN ({', '.join(map(str, wanted))})", with_row_address=True)
    addresses = found.column("_rowaddr").to_pylist()
    assert len({a >> 32 for a in addresses}) == 3
    taken = tables_module.take_addresses(ds, addresses, ["k", "v"]).sort_by("k")
    assert taken.to_pydict() == {"k": wanted, "v": [f"v{k}" for k in wanted]}
    assert tables_module.take_addresses(ds, [], ["k"]).num_rows == 0


def test_history_takes_only_the_frames_own_rows_when_frame_ids_hash_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tables_module, "id_hashes", lambda ids: np.full(len(ids), 7, dtype=np.int64))
    t = tables(tmp_path)
    for version in (1, 2, 3):
        t.commit(Commit(version, [change(f"f{version}", "sun")], ["u"], [f"u#{version}"], added=1))
    t.commit(Commit(4, [change("f2", "rain"), change("f9", "fog")], ["u"], ["u#4"], added=1, modified=1))
    history = t.history("f2")
    assert [(r["version"], r["frame_id"], r["frame"].user_metadata["weather"].string_value) for r in history] == [
        (2, "f2", "sun"),
        (4, "f2", "rain"),
    ]
    assert [r["version"] for r in t.history("f9")] == [4]
    assert t.history("f5") == []


def test_the_map_of_change_log_rows_forgets_the_logs_read_least_recently_past_its_budget(tmp_path: Path) -> None:
    logs = []
    for name in ("a", "b"):
        t = tables(tmp_path / name)
        for version in (1, 2):
            t.commit(
                Commit(version, [change(f"f{version}", "sun"), change(f"g{version}", "sun")], ["u"], [f"u#{version}"])
            )
        logs.append(tables_module.open_dataset(t.changes_uri, None, shared=True))
    rows = tables_module._LogRows(max_rows=6)
    assert [len(rows.find(ds, "f2")[0]) for ds in logs] == [1, 1]
    assert rows.files(logs[0].uri) == set()  # 4 rows each: the first log went to make room for the second
    assert len(rows.files(logs[1].uri)) == 2
    assert len(rows.find(logs[0], "g1")[0]) == 1  # mapped again when read again
    assert rows.files(logs[1].uri) == set()


def test_the_writer_warms_each_new_change_log_file_for_history_reads(tmp_path: Path) -> None:
    t = tables(tmp_path)
    for version in (1, 2, 3):
        t.commit(Commit(version, [change(f"f{version}", "sun")], ["u"], [f"u#{version}"], added=1))
    ds = tables_module.open_dataset(t.changes_uri, None, shared=True)
    files = {f.data_files()[0].path for f in ds.get_fragments()}
    assert len(files) == 3
    segments = {
        str(g.uuid) for i in ds.describe_indices() if i.name == tables_module.FRAME_ID_INDEX for g in i.segments
    }
    assert segments
    warmer = tables_module.LOG_WARMER
    deadline = time.monotonic() + 60  # a background thread: wait for it, however slow the machine

    def warmed() -> bool:
        return (
            files <= warmer.warm_files.get(ds.uri, set())
            and segments <= warmer.warm_segments.get(ds.uri, set())
            and files <= tables_module.LOG_ROWS.files(ds.uri)  # where each frame's rows are, for history reads
        )

    while not warmed() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert warmed()


def test_rows_encoded_by_ingest_commit_exactly_what_the_worker_would_encode(tmp_path: Path) -> None:
    from shoal.storage import batchrows
    from shoal.v1 import dataset_pb2, ingest_service_pb2

    batch = ingest_service_pb2.FrameBatch(seq=0)
    for i in range(6):
        frame = batch.frames.add(frame_id=f"f{i}", change_type=frame_pb2.CHANGE_TYPE_ADD)
        frame.user_metadata["weather"].string_value = "rain" if i % 2 else "sun"
        frame.labels.add(label_id=f"l{i}", classification="car").box_2d.width = float(i)
        frame.embedding.values.extend([0.5, float(i)])
    batch.frames.add(frame_id="f1", change_type=frame_pb2.CHANGE_TYPE_MODIFY)  # a patch: not encoded by ingest
    body = batch.SerializeToString(deterministic=True)
    # Encoded before the metadata schema had `weather`, and before the dimension was known.
    raw = batchrows.encode(batch, body, inference=False, embedding_dimension=0, metadata=[])
    rows = batchrows.decode(raw, body)
    assert rows is not None
    assert rows.column(batchrows.ITEM).to_pylist() == [0, 1, 2, 3, 4, 5]
    assert batchrows.decode(raw, body + b"x") is None  # rows of another batch are never used
    weather = columnar.metadata_columns(
        dataset_pb2.MetadataSchema(
            fields=[dataset_pb2.MetadataField(name="weather", type=dataset_pb2.FIELD_TYPE_STRING)]
        )
    )
    frames = list(batch.frames)[:6]
    made = TableRoot(StoreSettings(url=(tmp_path / "a").as_uri())).tables(DatasetName("p", "d"))
    plain = TableRoot(StoreSettings(url=(tmp_path / "b").as_uri())).tables(DatasetName("p", "d"))
    for tables, with_rows in ((made, True), (plain, False)):
        changes = [
            Change(f.frame_id, frame_pb2.CHANGE_TYPE_ADD, f, "u", row=(rows, i) if with_rows else None)
            for i, f in enumerate(frames)
        ]
        tables.commit(Commit(1, changes, ["u"], ["u#0"], added=6, embedding_dimension=2, metadata=weather))
    assert made.read(1).sort_by("frame_id").equals(plain.read(1).sort_by("frame_id"))
    assert made.read(1, ["metadata_weather"]).column(0).to_pylist().count("rain") == 3
    assert made.get(["f3"], 1)["f3"] == frames[3]


def test_a_metadata_field_added_later_is_back_filled_for_the_frames_already_there(tmp_path: Path) -> None:
    from shoal.v1 import dataset_pb2

    t = tables(tmp_path)
    t.commit(Commit(1, [change("a", "sun"), change("b", "rain")], ["u"], ["u#0"], added=2))
    assert "metadata_weather" not in t.read(1).column_names
    weather = columnar.metadata_columns(
        dataset_pb2.MetadataSchema(
            fields=[dataset_pb2.MetadataField(name="weather", type=dataset_pb2.FIELD_TYPE_STRING)]
        )
    )
    t.commit(Commit(2, [change("c", "fog")], ["u"], ["u#1"], added=1, metadata=weather))
    got = t.read(2, ["frame_id", "metadata_weather"]).sort_by("frame_id")
    assert got.column("metadata_weather").to_pylist() == ["sun", "rain", "fog"]
    assert "metadata_weather" not in t.read(1).column_names  # version 1 reads as it was
    logged = t.history("c")[0]["frame"]
    assert logged.user_metadata["weather"].string_value == "fog"


def test_pages_follow_frame_id_order_at_any_depth_filtered_or_not(tmp_path: Path) -> None:
    """Pages read through a version's frame order: ids committed out of order, some modified and deleted later, come
    back sorted, page after page, with and without a filter, and an old version keeps its own order."""
    import random

    t = tables(tmp_path)
    ids = [f"f{i:04d}" for i in range(1200)]
    shuffled = random.Random(3).sample(ids, len(ids))

    def frame(frame_id: str) -> Change:
        made = change(frame_id, "sun")
        if int(frame_id[1:]) % 3 == 0:  # every third frame has a label
            made.frame.labels.add(label_id=frame_id + "-0", classification="car")  # type: ignore[union-attr]
        return made

    for n, start in enumerate(range(0, len(ids), 300), start=1):
        t.commit(Commit(n, [frame(i) for i in shuffled[start : start + 300]], ["u"], [f"u#{n}"]))
    gone = set(shuffled[:50])
    t.commit(Commit(5, [Change(i, frame_pb2.CHANGE_TYPE_DELETE, None, "u") for i in gone], ["u"], ["u#5"], deleted=50))

    def pages(version: int, size: int, text: str = "") -> list[str]:
        where = filters.compile(text, t.schema(version)) if text else None  # type: ignore[arg-type]
        out, after = [], ""
        while True:
            page = [x for b in t.scan(version, after=after, limit=size, where=where) for x in b["frame_id"].to_pylist()]
            assert page == sorted(page)
            assert len(page) <= size
            out += page
            if len(page) < size:
                return out
            after = page[-1]

    live = sorted(set(ids) - gone)
    assert pages(5, 97) == live
    rain = [i for i in live if int(i[1:]) % 3 == 0]
    assert pages(5, 40, 'labels.classification = "car"') == rain
    assert pages(5, 7, "count(labels) = 0")[:7] == [i for i in live if int(i[1:]) % 3][:7]
    assert pages(5, 1000, "count(labels) > 5") == []
    assert pages(4, 250) == ids  # before the deletes
    assert pages(2, 64) == sorted(shuffled[:600])


def test_a_services_first_history_imports_nothing_it_did_not_import_at_start(tmp_path: Path) -> None:
    """What libraries import on first use (`bootstrap.FIRST_USE_IMPORTS`) is imported when a service starts: the first
    frame history a fresh versioning process answers imports nothing more, so no caller waits for an import."""
    import json
    import subprocess
    import sys
    import textwrap

    from shoal.kit.names import ProjectName
    from shoal.kit.objectstore import LocalObjectStore
    from shoal.storage.catalog import Catalog
    from shoal.v1 import dataset_pb2, project_pb2

    store_url = (tmp_path / "store").as_uri()
    catalog = Catalog(LocalObjectStore(tmp_path / "store"))
    catalog.create_project("p", project_pb2.Project())
    catalog.create_dataset(ProjectName("p"), "d", dataset_pb2.Dataset())
    t = tables(tmp_path)
    t.commit(Commit(1, [change("a", "sun"), change("b", "sun")], ["u"], ["u#0"], added=2))
    t.commit(Commit(2, [change("a", "rain", frame_pb2.CHANGE_TYPE_MODIFY)], ["u"], ["u#1"]))
    catalog.update_dataset_internal(DatasetName("p", "d"), lambda d: setattr(d, "latest_version", 2))
    script = textwrap.dedent(
        f"""
        import importlib, json, os, sys
        import shoal.versioning.server  # what a versioning process has imported when it starts serving
        from shoal.kit import bootstrap
        from shoal.kit.objectstore import open_store
        from shoal.kit.settings import StoreSettings
        from shoal.storage.reads import Reads

        for module in bootstrap.FIRST_USE_IMPORTS:
            importlib.import_module(module)
        settings = StoreSettings(url={store_url!r})
        reads = Reads(open_store(settings), settings)
        before = set(sys.modules)
        revisions, _ = reads.history("projects/p/datasets/d/frames/a", 0, "")
        print(json.dumps({{"versions": [r.version for r in revisions], "new": sorted(set(sys.modules) - before)}}))
        sys.stdout.flush()
        # Lance's runtime threads can abort this interpreter's teardown ("FATAL: exception not rethrown", SIGABRT);
        # what the test checks is printed by then, so the process ends without it.
        os._exit(0)
        """
    )
    out = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    assert out["versions"] == [1, 2]
    assert out["new"] == []
