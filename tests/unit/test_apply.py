"""The apply semantics of queued batches, on messages in memory."""

from __future__ import annotations

import pytest
from google.protobuf import field_mask_pb2
from shoal.storage import batchrows
from shoal.storage.columnar import digest
from shoal.storage.tables import Stored
from shoal.v1 import frame_pb2, ingest_service_pb2, label_pb2
from shoal.versioning.apply import (
    ADDED,
    DELETED,
    MODIFIED,
    QueuedBatch,
    QueuedRows,
    apply_batches,
    apply_rows,
    needs_loading,
)


def frame(frame_id: str, boxes: int = 2, weather: str = "sun") -> frame_pb2.Frame:
    f = frame_pb2.Frame(frame_id=frame_id)
    f.sensors.add(sensor_id="cam").image.url = "u"
    f.user_metadata["weather"].string_value = weather
    for b in range(boxes):
        label = f.labels.add(label_id=f"{frame_id}-{b}", classification="car", sensor_id="cam")
        label.box_2d.CopyFrom(label_pb2.Box2D(left=b, top=b, width=1, height=1))
    return f


def batch(seq: int, *items: object) -> QueuedBatch:
    b = ingest_service_pb2.FrameBatch(seq=seq)
    for item in items:
        if isinstance(item, label_pb2.LabelUpdate):
            b.label_updates.append(item)
        else:
            b.frames.append(item)  # type: ignore[arg-type]
    return QueuedBatch("up", seq, b)


def test_add_modify_delete_and_their_failures() -> None:
    current = {"a": frame("a"), "b": frame("b")}
    modify = frame_pb2.Frame(frame_id="a", change_type=frame_pb2.CHANGE_TYPE_MODIFY)
    modify.user_metadata["weather"].string_value = "rain"
    modify.sensors.add(sensor_id="lidar").point_cloud_pcd.url = "p"
    missing = frame_pb2.Frame(frame_id="zz", change_type=frame_pb2.CHANGE_TYPE_MODIFY)
    delete_b = frame_pb2.Frame(frame_id="b", change_type=frame_pb2.CHANGE_TYPE_DELETE)
    delete_missing = frame_pb2.Frame(frame_id="yy", change_type=frame_pb2.CHANGE_TYPE_DELETE)
    result = apply_batches(
        [batch(0, frame("c"), modify, missing, delete_b, delete_missing)],
        current,
        inference=False,
        embedding_dimension=0,
    )
    kinds = {c.frame_id: c.change_type for c in result.changes}
    assert kinds == {"a": MODIFIED, "b": DELETED, "c": ADDED}
    assert (result.added, result.modified, result.deleted) == (1, 1, 1)
    merged = next(c.frame for c in result.changes if c.frame_id == "a")
    assert merged.user_metadata["weather"].string_value == "rain"
    assert [s.sensor_id for s in merged.sensors] == ["cam", "lidar"]
    assert len(merged.labels) == 2  # MODIFY leaves labels alone
    failures = {f.frame_id: f.reason for f in result.outcomes["up#0"].failures}
    assert failures == {"zz": "MODIFY_MISSING_FRAME", "yy": "DELETE_MISSING_FRAME"}
    assert result.outcomes["up#0"].committed == 3


def test_label_updates_with_and_without_masks() -> None:
    current = {"a": frame("a")}
    whole = label_pb2.LabelUpdate(frame_id="a")
    moved = whole.labels.add(label_id="a-0", classification="truck", sensor_id="cam")
    moved.box_2d.CopyFrom(label_pb2.Box2D(left=9, top=9, width=2, height=2))
    added = whole.labels.add(label_id="a-9", classification="car", sensor_id="cam")
    added.box_2d.CopyFrom(label_pb2.Box2D(left=1, top=1, width=1, height=1))
    masked = label_pb2.LabelUpdate(frame_id="a", update_mask=field_mask_pb2.FieldMask(paths=["box_2d"]))
    only_box = masked.labels.add(label_id="a-1", classification="ignored", sensor_id="cam")
    only_box.box_2d.CopyFrom(label_pb2.Box2D(left=5, top=5, width=5, height=5))
    result = apply_batches([batch(0, whole), batch(1, masked)], current, inference=False, embedding_dimension=0)
    after = result.changes[0].frame
    by_id = {label.label_id: label for label in after.labels}
    assert by_id["a-0"].classification == "truck"
    assert by_id["a-0"].box_2d.left == 9
    assert by_id["a-1"].classification == "car"  # the mask kept the class
    assert by_id["a-1"].box_2d.width == 5
    assert "a-9" in by_id
    assert (
        apply_batches([batch(2, label_pb2.LabelUpdate(frame_id="nope"))], {}, inference=False, embedding_dimension=0)
        .outcomes["up#2"]
        .failures[0]
        .reason
        == "UPDATE_MISSING_FRAME"
    )


def test_replace_drops_labels_and_reapplying_changes_nothing() -> None:
    current = {"a": frame("a", boxes=3)}
    result = apply_batches([batch(0, frame("a", boxes=1))], current, inference=False, embedding_dimension=0)
    assert len(result.changes[0].frame.labels) == 1
    again = apply_batches(
        [batch(0, frame("a", boxes=1))], {"a": result.changes[0].frame}, inference=False, embedding_dimension=0
    )  # type: ignore[dict-item]
    assert again.changes == []


def test_embedding_dimension_is_fixed_by_the_first_and_enforced() -> None:
    a, b = frame("a"), frame("b")
    a.embedding.values.extend([1, 2, 3])
    b.embedding.values.extend([1, 2])
    result = apply_batches([batch(0, a, b)], {}, inference=False, embedding_dimension=0)
    assert result.embedding_dimension == 3
    assert [f.reason for f in result.outcomes["up#0"].failures] == ["WRONG_EMBEDDING_DIMENSION"]
    fixed = apply_batches([batch(1, frame("c"), a)], {}, inference=False, embedding_dimension=4)
    assert [f.frame_id for f in fixed.outcomes["up#1"].failures] == ["a"]


def test_add_then_delete_in_one_version_leaves_no_trace() -> None:
    gone = frame_pb2.Frame(frame_id="t", change_type=frame_pb2.CHANGE_TYPE_DELETE)
    result = apply_batches([batch(0, frame("t")), batch(1, gone)], {}, inference=False, embedding_dimension=0)
    assert result.changes == []


class DictOwners:
    """Label holders of the base state, from a plain dictionary."""

    def __init__(self, frames: dict[str, frame_pb2.Frame]) -> None:
        self.holder = {label.label_id: f.frame_id for f in frames.values() for label in f.labels}

    def elsewhere(self, pairs: list[tuple[str, str]]) -> dict[str, str]:
        return {label: self.holder[label] for label, f in pairs if self.holder.get(label, f) != f}


def relabel(f: frame_pb2.Frame, *label_ids: str) -> frame_pb2.Frame:
    for label, label_id in zip(f.labels, label_ids, strict=False):
        label.label_id = label_id
    return f


def test_a_label_id_held_by_another_frame_fails_that_frame_alone() -> None:
    base = {"a": frame("a"), "b": frame("b")}
    current = {k: v for k, v in base.items()}
    stolen = relabel(frame("c"), "a-0")  # takes a's label id
    update = label_pb2.LabelUpdate(frame_id="b")
    update.labels.add(label_id="zz", classification="car", sensor_id="cam")
    update.labels.add(label_id="a-1", classification="car", sensor_id="cam")  # also a's
    result = apply_batches(
        [batch(0, stolen, frame("d"), update)], current, inference=False, embedding_dimension=0, owners=DictOwners(base)
    )
    failures = {(f.frame_id, f.reason, f.field) for f in result.outcomes["up#0"].failures}
    assert failures == {
        ("c", "DUPLICATE_LABEL_ID", "frames[0].labels[0].label_id"),
        ("b", "DUPLICATE_LABEL_ID", "label_updates[0].labels[1].label_id"),
    }
    assert "'a'" in result.outcomes["up#0"].failures[0].description
    assert {c.frame_id for c in result.changes} == {"d"}
    assert result.outcomes["up#0"].committed == 1


def test_label_ids_freed_earlier_in_the_run_may_be_taken_and_clashes_within_the_run_fail() -> None:
    base = {"a": frame("a"), "b": frame("b")}
    current = {k: v for k, v in base.items()}
    delete_a = frame_pb2.Frame(frame_id="a", change_type=frame_pb2.CHANGE_TYPE_DELETE)
    b_without_labels = frame("b", boxes=0)  # ADD replaces b: its labels b-0, b-1 are freed
    result = apply_batches(
        [
            batch(0, relabel(frame("c"), "a-0"), delete_a),  # a still holds a-0 when c arrives
            batch(1, relabel(frame("e"), "a-0"), b_without_labels, relabel(frame("f"), "b-1")),
            batch(2, relabel(frame("g"), "f-1")),  # f took f-1 one batch earlier
        ],
        current,
        inference=False,
        embedding_dimension=0,
        owners=DictOwners(base),
    )
    assert [f.frame_id for f in result.outcomes["up#0"].failures] == ["c"]
    assert result.outcomes["up#1"].failures == []
    assert [(f.frame_id, f.reason) for f in result.outcomes["up#2"].failures] == [("g", "DUPLICATE_LABEL_ID")]
    assert sorted(result.released) == ["a-0", "a-1", "b-0", "b-1"]
    assert sorted(result.claimed) == [("a-0", "e"), ("b-1", "f"), ("e-1", "e"), ("f-1", "f")]


def test_replacing_a_frame_keeps_its_own_label_ids() -> None:
    base = {"a": frame("a")}
    current = {"a": base["a"]}
    again = frame("a", weather="rain")
    result = apply_batches([batch(0, again)], current, inference=False, embedding_dimension=0, owners=DictOwners(base))
    assert result.outcomes["up#0"].failures == []
    assert [[label.label_id for label in c.frame.labels] for c in result.changes] == [["a-0", "a-1"]]  # type: ignore[union-attr]


def test_replacements_and_deletes_need_no_stored_content_and_an_identical_add_is_no_change() -> None:
    stored = {i: Stored(digest(frame(i)), [f"{i}-0", f"{i}-1"]) for i in ("a", "b", "c")}
    result = apply_batches(
        [
            batch(
                0,
                frame("a", boxes=1),  # replaced: its label a-1 is freed
                frame_pb2.Frame(frame_id="b", change_type=frame_pb2.CHANGE_TYPE_DELETE),
                frame("c"),  # the same frame again
            )
        ],
        {},
        stored,
        inference=False,
        embedding_dimension=0,
    )
    assert [(c.frame_id, c.change_type) for c in result.changes] == [("a", MODIFIED), ("b", DELETED)]
    assert (result.modified, result.deleted, result.added) == (1, 1, 0)
    assert sorted(result.released) == ["a-1", "b-0", "b-1"]
    assert result.claimed == []  # a and c keep the ids they had


def test_a_merge_into_a_frame_the_caller_did_not_load_is_a_bug_not_a_silent_overwrite() -> None:
    modify = frame_pb2.Frame(frame_id="a", change_type=frame_pb2.CHANGE_TYPE_MODIFY)
    assert needs_loading([batch(0, modify)]) == {"a"}
    with pytest.raises(RuntimeError, match="not loaded"):
        apply_batches(
            [batch(0, modify)],
            {},
            {"a": Stored(digest(frame("a")), ["a-0", "a-1"])},
            inference=False,
            embedding_dimension=0,
        )


def test_origins_name_the_items_committed_as_they_came() -> None:
    modify = frame_pb2.Frame(frame_id="b", change_type=frame_pb2.CHANGE_TYPE_MODIFY)
    modify.user_metadata["weather"].string_value = "rain"
    thief = frame("c")
    thief.labels[0].label_id = "a-0"  # a's label: this item fails
    result = apply_batches(
        [batch(0, frame("a"), frame("b")), batch(1, modify, thief, frame("d"))],
        {},
        inference=False,
        embedding_dimension=0,
    )
    # b was added whole, then merged: its final state is no item; c failed; a and d are items as they came.
    assert result.origins == {"a": ("up#0", 0), "d": ("up#1", 2)}


def whole_rows(seq: int, *frames: frame_pb2.Frame, dimension: int = 0) -> QueuedRows:
    """A batch of whole frames as the worker gets it from ingest: its rows, made and read back by `batchrows`."""
    b = ingest_service_pb2.FrameBatch(seq=seq, frames=[copy_of(f) for f in frames])
    body = b.SerializeToString(deterministic=True)
    raw = batchrows.encode(b, body, inference=False, embedding_dimension=dimension, metadata=[])
    rows = batchrows.decode(raw, body)
    assert rows is not None
    assert batchrows.whole(rows)
    return QueuedRows("up", seq, rows)


def copy_of(f: frame_pb2.Frame) -> frame_pb2.Frame:
    out = frame_pb2.Frame()
    out.CopyFrom(f)
    return out


def with_embedding(f: frame_pb2.Frame, *values: float) -> frame_pb2.Frame:
    f.embedding.values.extend(values)
    return f


def test_whole_batches_applied_from_their_rows_come_out_as_frame_by_frame() -> None:
    base = {i: frame(i) for i in ("a", "b", "c")}
    stored = {i: Stored(digest(f), [label.label_id for label in f.labels]) for i, f in base.items()}
    # a drops a label; b is as it was; c swaps a label id in its last item; n2 comes twice and its last item wins
    groups = [
        [frame("a", boxes=1), frame("b"), with_embedding(frame("n1", boxes=3), 1, 2), frame("c", weather="fog")],
        [relabel(frame("c"), "c-0", "c-7"), with_embedding(frame("n2", boxes=0), 3, 4), frame("n2", boxes=1)],
    ]
    by_rows = apply_rows(
        [whole_rows(seq, *frames, dimension=2) for seq, frames in enumerate(groups)],
        stored,
        embedding_dimension=0,
        owners=DictOwners(base),
    )
    by_frame = apply_batches(
        [batch(seq, *(copy_of(f) for f in frames)) for seq, frames in enumerate(groups)],
        {},
        stored,
        inference=False,
        embedding_dimension=0,
        owners=DictOwners(base),
    )
    assert by_rows is not None
    assert [(c.frame_id, c.change_type, c.upload) for c in by_rows.changes] == [
        (c.frame_id, c.change_type, c.upload) for c in by_frame.changes
    ]
    assert [c.frame_id for c in by_rows.changes] == ["a", "c", "n1", "n2"]
    for row_change, frame_change in zip(by_rows.changes, by_frame.changes, strict=True):
        assert row_change.frame is None
        assert row_change.row is not None
        assert not row_change.deletes
        table, row = row_change.row
        assert table.column("digest")[row].as_py() == digest(frame_change.frame)  # the very frame, as a row
    assert (by_rows.added, by_rows.modified, by_rows.deleted) == (by_frame.added, by_frame.modified, 0) == (2, 2, 0)
    assert sorted(by_rows.released) == sorted(by_frame.released) == ["a-1", "c-1"]
    assert sorted(by_rows.claimed) == sorted(by_frame.claimed)
    assert by_rows.embedding_dimension == by_frame.embedding_dimension == 2
    assert {k: (o.committed, o.failures) for k, o in by_rows.outcomes.items()} == {
        k: (o.committed, list(o.failures)) for k, o in by_frame.outcomes.items()
    }


@pytest.mark.parametrize(
    "groups",
    [
        pytest.param([[frame("n"), relabel(frame("m"), "n-0")]], id="a label id of two frames"),
        pytest.param([[frame("n")], [relabel(frame("m"), "n-1")]], id="a label id of two frames, batches apart"),
        pytest.param([[relabel(frame("n"), "a-0")]], id="a label id another frame holds"),
        pytest.param([[with_embedding(frame("n"), 1, 2, 3)]], id="an embedding of another dimension"),
    ],
)
def test_whole_batches_that_need_a_frame_by_frame_decision_are_left_to_it(groups: list[list[frame_pb2.Frame]]) -> None:
    base = {"a": frame("a")}
    stored = {"a": Stored(digest(base["a"]), ["a-0", "a-1"])}
    queued = [whole_rows(seq, *frames) for seq, frames in enumerate(groups)]
    assert apply_rows(queued, stored, embedding_dimension=2, owners=DictOwners(base)) is None
    by_frame = apply_batches(
        [batch(seq, *frames) for seq, frames in enumerate(groups)],
        {},
        stored,
        inference=False,
        embedding_dimension=2,
        owners=DictOwners(base),
    )
    # Frame by frame, each of these fails a frame or lets a later item win: nothing the rows alone could decide.
    failures = [f for o in by_frame.outcomes.values() for f in o.failures]
    assert failures or len(by_frame.changes) < sum(len(g) for g in groups)


def test_a_batch_with_anything_but_whole_frames_is_not_whole() -> None:
    b = ingest_service_pb2.FrameBatch(
        seq=0, frames=[frame("a"), frame_pb2.Frame(frame_id="b", change_type=frame_pb2.CHANGE_TYPE_DELETE)]
    )
    body = b.SerializeToString(deterministic=True)
    rows = batchrows.decode(batchrows.encode(b, body, inference=False, embedding_dimension=0, metadata=[]), body)
    assert rows is not None
    assert rows.num_rows == 1
    assert not batchrows.whole(rows)
