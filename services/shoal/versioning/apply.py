"""How queued batches change a dataset: pure domain logic over wire messages, no storage and no grpc.

- ADD of a new frame adds it; ADD of an existing frame replaces all of it (sensor data, metadata, labels).
- MODIFY merges given sensor data, coordinate frames, metadata, geo and embeddings into an existing frame and leaves
  its labels alone; MODIFY of a missing frame fails that frame.
- DELETE removes the frame; deleting a missing frame fails it.
- A label update replaces the labels whose ids exist (only the fields of `update_mask`, when given) and adds the
  labels whose ids are new; updating a missing frame fails it.
- Embeddings must have the dataset's dimension; the first committed embedding fixes it when the dataset has none.
- A frame that MODIFY or a label update would make larger serialized than the frame limit fails (ingest holds each
  uploaded item to that limit; merging is how a stored frame could still outgrow it).
- Label ids are unique in the dataset (or inference set): a frame that would take a label id another frame holds
  fails; a label id freed earlier in the same run (its frame deleted, replaced or re-labelled) may be taken.
Items apply in upload order; the result is each touched frame's final state plus the frames that failed, with why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.message import Message

from shoal.storage.columnar import digest
from shoal.storage.rows import label_ids_of
from shoal.storage.tables import Change, Stored
from shoal.v1 import frame_pb2, ingest_service_pb2, label_pb2, upload_pb2

ADDED: Final = frame_pb2.CHANGE_TYPE_ADD
MODIFIED: Final = frame_pb2.CHANGE_TYPE_MODIFY
DELETED: Final = frame_pb2.CHANGE_TYPE_DELETE
APPLY: Final = upload_pb2.FRAME_ERROR_STAGE_APPLY


@dataclass
class Queued:
    """One claim check: which upload and seq."""

    upload: str
    seq: int

    @property
    def key(self) -> str:
        return f"{self.upload}#{self.seq}"


@dataclass
class QueuedBatch(Queued):
    """A claim check loaded: the batch itself."""

    batch: ingest_service_pb2.FrameBatch


@dataclass
class BatchOutcome:
    """What happened to one batch's frames, and the dataset version that committed it (0: none, or not known yet)."""

    committed: int = 0
    failures: list[upload_pb2.FrameError] = field(default_factory=list)
    version: int = 0


@dataclass
class Applied:
    changes: list[Change]
    outcomes: dict[str, BatchOutcome]
    added: int = 0
    modified: int = 0
    deleted: int = 0
    embedding_dimension: int = 0
    # Label ids the changed frames gave up, and (label id, frame id) of those they took (ids a frame kept are in
    # neither).
    released: list[str] = field(default_factory=list)
    claimed: list[tuple[str, str]] = field(default_factory=list)
    # Frames whose final state is an item of a batch taken whole (an ADD, an inference frame): frame id → (batch
    # key, the item's index in its group), so rows encoded from that item can be used as they are.
    origins: dict[str, tuple[str, int]] = field(default_factory=dict)


class LabelOwners(Protocol):
    """Who holds a label id in the state the batches apply to."""

    def elsewhere(self, pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
        """Of (label id, frame id) pairs, the label ids held by a frame other than the one paired with them, each
        mapped to the frame that holds it."""
        ...


class NoLabels:
    """Nobody holds any label: the owners of a dataset with no frames."""

    def elsewhere(self, pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
        return {}


def _merge_frame(existing: frame_pb2.Frame, patch: frame_pb2.Frame) -> frame_pb2.Frame:
    out = frame_pb2.Frame()
    out.CopyFrom(existing)
    if patch.device_id:
        out.device_id = patch.device_id
    if patch.HasField("date_captured"):
        out.date_captured.CopyFrom(patch.date_captured)
    frames = {cf.coordinate_frame_id: i for i, cf in enumerate(out.coordinate_frames)}
    for cf in patch.coordinate_frames:
        if cf.coordinate_frame_id in frames:
            out.coordinate_frames[frames[cf.coordinate_frame_id]].CopyFrom(cf)
        else:
            out.coordinate_frames.append(cf)
    sensors = {(s.sensor_id, s.WhichOneof("data")): i for i, s in enumerate(out.sensors)}
    for s in patch.sensors:
        sensor_key = (s.sensor_id, s.WhichOneof("data"))
        if sensor_key in sensors:
            out.sensors[sensors[sensor_key]].CopyFrom(s)
        else:
            out.sensors.append(s)
    for key, value in patch.user_metadata.items():
        out.user_metadata[key].CopyFrom(value)
    if patch.HasField("geo"):
        out.geo.CopyFrom(patch.geo)
    if patch.HasField("embedding"):
        out.embedding.CopyFrom(patch.embedding)
    crops = {c.label_id: i for i, c in enumerate(out.crop_embeddings)}
    for c in patch.crop_embeddings:
        if c.label_id in crops:
            out.crop_embeddings[crops[c.label_id]].CopyFrom(c)
        else:
            out.crop_embeddings.append(c)
    out.change_type = frame_pb2.CHANGE_TYPE_UNSPECIFIED
    return out


def _update_labels(existing: frame_pb2.Frame, update: label_pb2.LabelUpdate) -> frame_pb2.Frame:
    out = frame_pb2.Frame()
    out.CopyFrom(existing)
    index = {label.label_id: i for i, label in enumerate(out.labels)}
    paths = list(update.update_mask.paths)
    for label in update.labels:
        i = index.get(label.label_id)
        if i is None:
            out.labels.append(label)
            index[label.label_id] = len(out.labels) - 1
        elif not paths:
            out.labels[i].CopyFrom(label)
        else:
            target = out.labels[i]
            for path in paths:
                name = path.split(".", 1)[0]
                if (
                    label.DESCRIPTOR.fields_by_name[name].message_type is not None
                    and not label.HasField(name)
                    and name != "attributes"
                ):
                    target.ClearField(name)
                elif name == "attributes":
                    target.attributes.clear()
                    target.attributes.update(label.attributes)
                elif label.DESCRIPTOR.fields_by_name[name].message_type is not None:
                    getattr(target, name).CopyFrom(getattr(label, name))
                elif name == "confidence" and not label.HasField("confidence"):
                    target.ClearField("confidence")
                else:
                    setattr(target, name, getattr(label, name))
    return out


def _dims(frame: frame_pb2.Frame | frame_pb2.InferenceFrame) -> set[int]:
    dims = {len(c.values) for c in frame.crop_embeddings}
    if frame.HasField("embedding"):
        dims.add(len(frame.embedding.values))
    return dims


def apply_batches(
    batches: Iterable[QueuedBatch],
    current: Mapping[str, Message],
    stored: Mapping[str, Stored] | None = None,
    *,
    inference: bool,
    embedding_dimension: int,
    owners: LabelOwners | None = None,
    max_frame_bytes: int = 0,
) -> Applied:
    """Apply `batches` in order to the frames of the dataset: `stored` says which of the frames they touch exist (with
    their digest and label ids) and `current` holds, decoded, those that a merge needs (MODIFY, label updates; never
    modified); without `stored`, `current` holds every existing frame they touch.
    `owners` says who holds label ids in that state (default: nobody); a merged frame may be at most
    `max_frame_bytes` serialized (0: no limit). The batches' frames are taken over, not copied: callers must not
    reuse them."""
    batches = list(batches)
    state: dict[str, Message | None] = {}
    # Label ids of each loaded frame, as loaded and as it stands now (kept beside `state`: reading them is costly).
    original_ids: dict[str, list[str]] = {}
    state_ids: dict[str, list[str]] = {}
    if stored is None:
        stored = {i: Stored(digest(f), label_ids_of(f)) for i, f in current.items()}
    existed = {frame_id: True for frame_id in stored}
    uploads: dict[str, str] = {}
    origins: dict[str, tuple[str, int]] = {}
    outcomes: dict[str, BatchOutcome] = {}
    dim = embedding_dimension

    def load(frame_id: str) -> Message | None:
        if frame_id not in state:
            found = stored.get(frame_id)
            state[frame_id] = current.get(frame_id, _NOT_LOADED if found is not None else None)
            original_ids[frame_id] = state_ids[frame_id] = list(found.label_ids) if found is not None else []
        return state[frame_id]

    # Who holds a label id: `claims` records every change made by this run (None: freed); ids it does not name are
    # as `held` says, asked once for every (label id, frame id) pair the batches carry.
    held = (owners or NoLabels()).elsewhere(
        [
            (label.label_id, item.frame_id)
            for queued in batches
            for group in (queued.batch.frames, queued.batch.label_updates, queued.batch.inference_frames)
            for item in group
            for label in item.labels
        ]
    )
    claims: dict[str, str | None] = {}

    def taken(frame_id: str, before: list[str], after: list[str]) -> list[tuple[int, str, str]]:
        """(index, label id, holder) of the label ids in `after` that another frame holds."""
        own = set(before)
        out = []
        for i, label_id in enumerate(after):
            if label_id in own:
                continue
            holder = claims[label_id] if label_id in claims else held.get(label_id)
            if holder is not None and holder != frame_id:
                out.append((i, label_id, holder))
        return out

    def move(frame_id: str, after: list[str]) -> None:
        for label_id in state_ids[frame_id]:
            claims[label_id] = None
        for label_id in after:
            claims[label_id] = frame_id
        state_ids[frame_id] = after

    for queued in batches:
        outcome = outcomes.setdefault(queued.key, BatchOutcome())

        def fail(
            frame_id: str, reason: str, description: str, index: int, kind: str, *, queued: QueuedBatch = queued
        ) -> None:
            outcomes[queued.key].failures.append(
                upload_pb2.FrameError(
                    frame_id=frame_id,
                    field=f"{kind}[{index}]",
                    reason=reason,
                    description=description,
                    batch_seq=queued.seq,
                    stage=APPLY,
                )
            )

        items: list[tuple[str, int, Message]] = [
            *(("frames", i, f) for i, f in enumerate(queued.batch.frames)),
            *(("label_updates", i, u) for i, u in enumerate(queued.batch.label_updates)),
            *(("inference_frames", i, f) for i, f in enumerate(queued.batch.inference_frames)),
        ]
        for kind, index, item in items:
            frame_id: str = item.frame_id  # type: ignore[attr-defined]
            existing = load(frame_id)
            new: Message | None
            merged = kind == "label_updates" or (kind == "frames" and item.change_type == MODIFIED)  # type: ignore[attr-defined]
            if kind == "label_updates":
                if existing is None:
                    fail(frame_id, "UPDATE_MISSING_FRAME", "label updates need an existing frame", index, kind)
                    continue
                new = _update_labels(_loaded(existing, frame_id), item)  # type: ignore[arg-type]
            elif kind == "inference_frames":
                new = item
            else:
                change = item.change_type or ADDED  # type: ignore[attr-defined]
                if change == DELETED:
                    if existing is None:
                        fail(frame_id, "DELETE_MISSING_FRAME", "there is no such frame to delete", index, kind)
                        continue
                    move(frame_id, [])
                    state[frame_id] = None
                    uploads[frame_id] = queued.upload
                    outcome.committed += 1
                    continue
                if change == MODIFIED:
                    if existing is None:
                        fail(frame_id, "MODIFY_MISSING_FRAME", "MODIFY needs an existing frame; use ADD", index, kind)
                        continue
                    new = _merge_frame(_loaded(existing, frame_id), item)  # type: ignore[arg-type]
                else:
                    item.change_type = frame_pb2.CHANGE_TYPE_UNSPECIFIED  # type: ignore[attr-defined]
                    new = item
            if max_frame_bytes and merged and (size := new.ByteSize()) > max_frame_bytes:
                fail(
                    frame_id,
                    "FRAME_TOO_LARGE",
                    f"the frame would be {size} bytes serialized; the limit is {max_frame_bytes}",
                    index,
                    kind,
                )
                continue
            dims = _dims(new)  # type: ignore[arg-type]
            if dims and (len(dims) > 1 or (dim and next(iter(dims)) != dim)):
                fail(
                    frame_id,
                    "WRONG_EMBEDDING_DIMENSION",
                    f"the dataset's embeddings have {dim} dimensions, got {sorted(dims)}",
                    index,
                    kind,
                )
                continue
            new_ids = label_ids_of(new)
            clashes = taken(frame_id, state_ids[frame_id], new_ids)
            if clashes:
                label_index, label_id, holder = clashes[0]
                outcomes[queued.key].failures.append(
                    upload_pb2.FrameError(
                        frame_id=frame_id,
                        field=f"{kind}[{index}].labels[{_item_label_index(item, label_id, label_index)}].label_id",
                        reason="DUPLICATE_LABEL_ID",
                        description=(
                            f"label id {label_id!r} already belongs to frame {holder!r}; label ids are unique in the "
                            + ("inference set" if inference else "dataset")
                            + (f" ({len(clashes)} labels clash)" if len(clashes) > 1 else "")
                        ),
                        batch_seq=queued.seq,
                        stage=APPLY,
                    )
                )
                continue
            if dims and not dim:
                dim = next(iter(dims))
            move(frame_id, new_ids)
            state[frame_id] = new
            uploads[frame_id] = queued.upload
            if new is item:
                origins[frame_id] = (queued.key, index)
            else:
                origins.pop(frame_id, None)
            outcome.committed += 1

    changes: list[Change] = []
    added = modified = deleted = 0
    released: list[str] = []
    claimed: list[tuple[str, str]] = []
    for frame_id in sorted(uploads):
        before_ids, after_ids = original_ids[frame_id], state_ids[frame_id]
        if before_ids != after_ids:  # a frame replaced with the same labels (the usual edit) moves no label id
            kept = set(before_ids) & set(after_ids)
            released.extend(i for i in before_ids if i not in kept)
            claimed.extend((i, frame_id) for i in after_ids if i not in kept)
        after = state[frame_id]
        before = existed.get(frame_id, False)
        if after is None:
            if not before:
                continue  # added and deleted within the same version: no trace
            deleted += 1
            changes.append(Change(frame_id, DELETED, None, uploads[frame_id]))
            continue
        if before and digest(after) == stored[frame_id].digest:
            continue  # re-applied or no-op change
        change_type = MODIFIED if before else ADDED
        added += change_type == ADDED
        modified += change_type == MODIFIED
        changes.append(Change(frame_id, change_type, after, uploads[frame_id]))
    kept = {c.frame_id for c in changes if c.frame is not None}
    return Applied(
        changes,
        outcomes,
        added,
        modified,
        deleted,
        dim,
        released,
        claimed,
        origins={frame_id: origin for frame_id, origin in origins.items() if frame_id in kept},
    )


@dataclass
class QueuedRows(Queued):
    """A claim check whose every item is a whole frame (ADD, inference frames), as the rows ingest encoded them
    (see `storage.batchrows`)."""

    rows: pa.Table


def apply_rows(
    batches: Sequence[QueuedRows],
    stored: Mapping[str, Stored],
    *,
    embedding_dimension: int,
    owners: LabelOwners | None = None,
) -> Applied | None:
    """What `apply_batches` makes of batches of whole frames, from their rows alone: no frame is decoded or
    compared in Python. Every item adds or replaces its frame (a frame given twice ends as its last item), so the
    result follows from the rows' frame ids, label ids, digests and embedding sizes. None when the batches need a
    decision frame by frame (a label id taken by two frames, or held by a frame other than the one taking it; an
    embedding of another dimension): the caller then applies them with `apply_batches`, which says why a frame
    fails."""
    ids = [b.rows.column("frame_id").to_pylist() for b in batches]
    frame_ids = [i for part in ids for i in part]
    lists = pa.chunked_array([b.rows.column("label_ids").combine_chunks() for b in batches], pa.list_(pa.string()))
    counts = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    label_ids = pc.list_flatten(lists).to_pylist()
    takers: dict[str, str] = {}  # label id → the frame whose items carry it
    for label_id, frame_id in zip(
        label_ids, [frame_ids[i] for i in np.repeat(np.arange(len(frame_ids)), counts).tolist()], strict=True
    ):
        if takers.setdefault(label_id, frame_id) != frame_id:
            return None
    dims = _row_dims(batches)
    dim = embedding_dimension
    if dims and (len(dims) > 1 or (dim and dims != {dim})):
        return None
    if dims and not dim:
        dim = next(iter(dims))
    if (owners or NoLabels()).elsewhere(list(takers.items())):
        return None
    # Each frame's last item: where its row is, its label ids and its digest.
    final: dict[str, tuple[QueuedRows, int, list[str], bytes]] = {}
    start = 0
    counted = iter(counts.tolist())
    for queued, part in zip(batches, ids, strict=True):
        digests = queued.rows.column("digest").to_pylist()
        for row, frame_id in enumerate(part):
            n = next(counted)
            final[frame_id] = (queued, row, label_ids[start : start + n], digests[row])
            start += n
    changes: list[Change] = []
    released: list[str] = []
    claimed: list[tuple[str, str]] = []
    added = modified = 0
    for frame_id in sorted(final):
        queued, row, after, content = final[frame_id]
        before = stored.get(frame_id)
        before_ids = list(before.label_ids) if before is not None else []
        if before_ids != after:
            kept = set(before_ids) & set(after)
            released.extend(i for i in before_ids if i not in kept)
            claimed.extend((i, frame_id) for i in after if i not in kept)
        if before is not None and content == before.digest:
            continue  # re-applied or no-op change
        change_type = MODIFIED if before is not None else ADDED
        added += change_type == ADDED
        modified += change_type == MODIFIED
        changes.append(Change(frame_id, change_type, None, queued.upload, row=(queued.rows, row)))
    outcomes = {b.key: BatchOutcome(committed=b.rows.num_rows) for b in batches}
    return Applied(changes, outcomes, added, modified, 0, dim, released, claimed)


def _row_dims(batches: Sequence[QueuedRows]) -> set[int]:
    """The sizes of the frame and crop embeddings in the batches' rows."""
    dims: set[int] = set()
    for b in batches:
        embedding = b.rows.column("embedding")
        if embedding.null_count < len(embedding):
            if pa.types.is_fixed_size_list(embedding.type):
                dims.add(embedding.type.list_size)
            else:
                dims.update(pc.unique(pc.list_value_length(embedding.drop_null())).to_pylist())
        if "crop_embeddings" in b.rows.column_names:
            crops = pc.list_flatten(b.rows.column("crop_embeddings"))
            if len(crops):
                dims.update(pc.unique(pc.list_value_length(pc.struct_field(crops, "values"))).to_pylist())
    dims.discard(None)
    return dims


# An existing frame whose content the caller did not load (an ADD replaces it, a DELETE removes it).
_NOT_LOADED: Final = cast(Message, object())


def _loaded(frame: Message, frame_id: str) -> Message:
    if frame is _NOT_LOADED:
        raise RuntimeError(
            f"frame {frame_id!r} is merged but was not loaded: callers load what MODIFY and updates touch"
        )
    return frame


def needs_loading(batches: Iterable[QueuedBatch]) -> set[str]:
    """Ids of the frames whose stored content the batches merge into (MODIFY and label updates)."""
    return {u.frame_id for b in batches for u in b.batch.label_updates} | {
        f.frame_id for b in batches for f in b.batch.frames if f.change_type == MODIFIED
    }


def _item_label_index(item: Message, label_id: str, fallback: int) -> int:
    """Where `label_id` sits in the uploaded item (a label update's own list, not the merged frame's)."""
    for i, label in enumerate(item.labels):  # type: ignore[attr-defined]
        if label.label_id == label_id:
            return i
    return fallback
