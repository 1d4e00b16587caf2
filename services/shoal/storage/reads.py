"""Reads of any version: versions, frames at a version (paged, streamed, masked, filtered), one frame, a frame's
history, diffs between versions, and checkpoints. Version references are `…/versions/{n}`, `…/checkpoints/{c}`, or
the dataset's own name (its newest version).

A page of ListFrames and a message of StreamFrames are cut by the serialized size of their frames as well as by
count: together at most `response_bytes`, far below the message limit of servers and SDK, and always at least one
frame, so every version of a dataset that ingest accepted can be read whatever its frames' sizes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from google.protobuf import field_mask_pb2, timestamp_pb2

from shoal.kit.errors import FieldViolation, InvalidArgument, NotFound
from shoal.kit.names import DatasetName, InferenceSetName, check_id, parse_dataset
from shoal.kit.objectstore import ObjectStore
from shoal.kit.paging import not_issued, offset_of, offset_token, payload_of, payload_token
from shoal.kit.paging import page_size as page_size_of
from shoal.kit.settings import StoreSettings
from shoal.storage import columnar, filters
from shoal.storage.catalog import Catalog
from shoal.storage.tables import TableRoot, VersionedTables, VersionRecord
from shoal.v1 import dataset_pb2, frame_pb2, versioning_service_pb2

# Frame ids one ListInferenceFrames call may name.
MAX_FRAME_IDS: Final = 1000
# The most frame bytes in one response: a quarter of the 64 MiB message limit, so a page of frames at ingest's size
# limit still leaves room.
RESPONSE_BYTES: Final = 16 * 1024 * 1024
# Per frame in a response: its field tag and length prefix.
_FRAME_OVERHEAD: Final = 6


@dataclass(frozen=True)
class VersionRef:
    dataset: DatasetName
    version: int
    tables: VersionedTables


def _ts(when: object) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when)  # type: ignore[arg-type]
    return ts


def _resume(token: str) -> tuple[int | None, str]:
    """(The version a page token pins, the frame id its page ends after); (None, "") for no token."""
    payload = payload_of(token)
    version, after = payload.get("version"), payload.get("after", "")
    if (version is not None and not isinstance(version, int)) or not isinstance(after, str):
        raise not_issued()
    return version, after


def _columns(mask: field_mask_pb2.FieldMask | None) -> list[str] | None:
    """The table columns a read mask needs (None: all of them); INVALID_ARGUMENT for fields a Frame lacks."""
    if mask is None or not mask.paths:
        return None
    unknown = [p for p in mask.paths if p.split(".", 1)[0] not in frame_pb2.Frame.DESCRIPTOR.fields_by_name]
    if unknown:
        raise InvalidArgument.of([FieldViolation("read_mask", f"no such Frame fields: {', '.join(unknown)}")])
    return columnar.FRAMES.columns_for(list(mask.paths))


def _masked(frame: frame_pb2.Frame, mask: field_mask_pb2.FieldMask | None) -> frame_pb2.Frame:
    if mask is None or _columns(mask) is None:
        return frame
    out = frame_pb2.Frame()
    mask.MergeMessage(frame, out)
    return out


class Reads:
    """Read-only views of versioned datasets."""

    def __init__(self, store: ObjectStore, settings: StoreSettings, *, response_bytes: int = RESPONSE_BYTES) -> None:
        self.store = store
        self.catalog = Catalog(store)
        self.root = TableRoot(settings)
        self.response_bytes = response_bytes

    # references ------------------------------------------------------------------------------------------------

    def resolve(self, ref: str, field: str = "name") -> VersionRef:
        """A version reference → (dataset, concrete version)."""
        parts = ref.split("/")
        if len(parts) == 6 and parts[4] in {"versions", "checkpoints"}:
            dataset = parse_dataset("/".join(parts[:4]), field)
            self.catalog.get_dataset(dataset)
            tables = self.root.tables(dataset)
            if parts[4] == "checkpoints":
                return VersionRef(dataset, self.get_checkpoint(dataset, parts[5]).version, tables)
            if not parts[5].isdigit():
                raise InvalidArgument.of(
                    [FieldViolation(field, f"{parts[5]!r} is not a version number")], reason="INVALID_NAME"
                )
            number = int(parts[5])
            tables.version(number)  # NOT_FOUND when missing
            return VersionRef(dataset, number, tables)
        dataset = parse_dataset(ref, field)
        self.catalog.get_dataset(dataset)
        tables = self.root.tables(dataset)
        latest = tables.latest()
        return VersionRef(dataset, latest.version if latest else 0, tables)

    # versions --------------------------------------------------------------------------------------------------

    def _version_proto(
        self, dataset: DatasetName, record: VersionRecord, checkpoints: dict[int, list[str]], readable: set[int]
    ) -> dataset_pb2.DatasetVersion:
        version = dataset_pb2.DatasetVersion(
            name=f"{dataset}/versions/{record.version}",
            version=record.version,
            uploads=record.uploads,
            frame_count=record.frame_count,
            label_count=record.label_count,
            frames_added=record.frames_added,
            frames_modified=record.frames_modified,
            frames_deleted=record.frames_deleted,
            checkpoints=checkpoints.get(record.version, []),
            expired=record.table_version not in readable,
        )
        version.commit_time.CopyFrom(_ts(record.commit_time))
        return version

    def _checkpoints_by_version(self, dataset: DatasetName) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for cp in self.list_checkpoints(dataset):
            out.setdefault(cp.version, []).append(cp.name)
        return out

    def list_versions(
        self, dataset: DatasetName, page_size: int, page_token: str
    ) -> tuple[list[dataset_pb2.DatasetVersion], str]:
        self.catalog.get_dataset(dataset)
        tables = self.root.tables(dataset)
        records = list(reversed(tables.versions()))
        start, size = offset_of(page_token), page_size_of(page_size)
        checkpoints = self._checkpoints_by_version(dataset)
        readable = tables.readable_table_versions()
        page = [self._version_proto(dataset, r, checkpoints, readable) for r in records[start : start + size]]
        return page, (offset_token(start + size) if start + size < len(records) else "")

    def get_version(self, ref: str) -> dataset_pb2.DatasetVersion:
        resolved = self.resolve(ref)
        if resolved.version == 0:
            raise NotFound(f"{resolved.dataset} has no committed version yet", reason="VERSION_NOT_FOUND")
        record = resolved.tables.version(resolved.version)
        return self._version_proto(
            resolved.dataset,
            record,
            self._checkpoints_by_version(resolved.dataset),
            resolved.tables.readable_table_versions(),
        )

    # frames ----------------------------------------------------------------------------------------------------

    def _rows(
        self,
        resolved: VersionRef,
        after: str,
        filter_text: str,
        want: int,
        read_mask: field_mask_pb2.FieldMask | None,
    ) -> Iterator[frame_pb2.Frame]:
        """Frames of a version in frame id order after `after`, matching `filter_text`, read with only the columns
        `read_mask` needs."""
        if resolved.version == 0:
            return
        columns = _columns(read_mask)
        schema = resolved.tables.schema(resolved.version)
        if schema is None:
            return
        compiled = filters.compile(filter_text, schema) if filter_text else None
        if want:
            # A page: only its rows are read (the filter, when there is one, is judged on candidate rows in order).
            for batch in resolved.tables.scan(
                resolved.version, after=after, limit=want, where=compiled, columns=columns
            ):
                yield from resolved.tables.layout.decode(batch)  # type: ignore[misc]
            return
        if compiled is not None and columns is not None:
            columns = sorted(set(columns) | set(compiled.columns))
        scan = resolved.tables.scan(
            resolved.version,
            after=after,
            filter_sql=compiled.sql if compiled is not None else None,
            columns=columns,
        )
        for batch in scan:
            kept = batch.filter(compiled.mask(batch)) if compiled is not None and compiled.residual else batch
            yield from resolved.tables.layout.decode(kept)  # type: ignore[misc]

    def list_frames(
        self, ref: str, page_size: int, page_token: str, read_mask: field_mask_pb2.FieldMask | None, filter_text: str
    ) -> tuple[list[frame_pb2.Frame], str, int]:
        pinned, after = _resume(page_token)
        resolved = self.resolve(ref, "parent")
        # A token pins the version it started on, so paging a moving dataset never mixes versions.
        version = resolved.version if pinned is None else pinned
        if version != resolved.version:
            resolved = VersionRef(resolved.dataset, version, resolved.tables)
        size = page_size_of(page_size)
        frames: list[frame_pb2.Frame] = []
        used, last, more = 0, "", False
        for stored in self._rows(resolved, after, filter_text, size + 1, read_mask):
            frame, cost = self._framed(stored, read_mask)
            if len(frames) == size or (frames and used + cost > self.response_bytes):
                more = True
                break
            frames.append(frame)
            used += cost
            last = frame.frame_id
        next_token = payload_token({"version": resolved.version, "after": last}) if more else ""
        return frames, next_token, resolved.version

    def _framed(
        self, frame: frame_pb2.Frame, read_mask: field_mask_pb2.FieldMask | None
    ) -> tuple[frame_pb2.Frame, int]:
        """A stored frame as a reader asked for it, and what it adds to a response's size."""
        frame = _masked(frame, read_mask)
        return frame, frame.ByteSize() + _FRAME_OVERHEAD

    def stream_frames(
        self, ref: str, batch_size: int, read_mask: field_mask_pb2.FieldMask | None, filter_text: str
    ) -> tuple[int, Iterator[list[frame_pb2.Frame]]]:
        resolved = self.resolve(ref, "parent")
        size = page_size_of(batch_size or 500, "batch_size")
        _columns(read_mask)  # INVALID_ARGUMENT for unknown fields before the stream starts

        def batches() -> Iterator[list[frame_pb2.Frame]]:
            chunk: list[frame_pb2.Frame] = []
            used = 0
            for stored in self._rows(resolved, "", filter_text, 0, read_mask):
                frame, cost = self._framed(stored, read_mask)
                if chunk and used + cost > self.response_bytes:
                    yield chunk
                    chunk, used = [], 0
                chunk.append(frame)
                used += cost
                if len(chunk) == size:
                    yield chunk
                    chunk, used = [], 0
            if chunk:
                yield chunk

        return resolved.version, batches()

    def get_frame(self, name: str, read_mask: field_mask_pb2.FieldMask | None) -> frame_pb2.Frame:
        ref, sep, frame_id = name.rpartition("/frames/")
        if not sep or not frame_id:
            raise InvalidArgument.of(
                [FieldViolation("name", "expected {version reference}/frames/{frame_id}")], reason="INVALID_NAME"
            )
        resolved = self.resolve(ref)
        rows = resolved.tables.rows([frame_id], resolved.version, _columns(read_mask)) if resolved.version else None
        if rows is None or rows.num_rows == 0:
            raise NotFound(f"frame {frame_id!r} is not in {ref} (version {resolved.version})", reason="FRAME_NOT_FOUND")
        return _masked(resolved.tables.layout.decode(rows)[0], read_mask)  # type: ignore[arg-type]

    def history(self, name: str, page_size: int, page_token: str) -> tuple[list[dataset_pb2.FrameRevision], str]:
        ref, sep, frame_id = name.rpartition("/frames/")
        if not sep or not frame_id:
            raise InvalidArgument.of(
                [FieldViolation("name", "expected projects/{p}/datasets/{d}/frames/{frame_id}")], reason="INVALID_NAME"
            )
        dataset = parse_dataset(ref)
        latest = self.catalog.get_dataset(dataset).latest_version
        rows = self.root.tables(dataset).history(frame_id, up_to=latest)
        if not rows:
            raise NotFound(f"frame {frame_id!r} never was in {dataset}", reason="FRAME_NOT_FOUND")
        start, size = offset_of(page_token), page_size_of(page_size)
        out = []
        for row in rows[start : start + size]:
            revision = dataset_pb2.FrameRevision(
                version=row["version"], change_type=row["change_type"], upload=row["upload"]
            )
            if row["frame"] is not None:
                revision.frame.CopyFrom(row["frame"])
            revision.commit_time.CopyFrom(_ts(row["commit_time"]))
            out.append(revision)
        return out, (offset_token(start + size) if start + size < len(rows) else "")

    def diff(
        self, base_ref: str, target_ref: str, include_frames: bool, page_size: int, page_token: str
    ) -> versioning_service_pb2.DiffVersionsResponse:
        base = self.resolve(base_ref, "base")
        target = self.resolve(target_ref, "target")
        if base.dataset != target.dataset:
            raise InvalidArgument.of([FieldViolation("target", "base and target must be versions of one dataset")])
        low, high = sorted((base.version, target.version))
        ids = sorted(base.tables.changed_between(low, high))
        before = base.tables.get(ids, base.version) if base.version else {}
        after = base.tables.get(ids, target.version) if target.version else {}
        diffs = []
        for frame_id in ids:
            a, b = before.get(frame_id), after.get(frame_id)
            if a == b:
                continue
            diff = dataset_pb2.FrameDiff(frame_id=frame_id)
            if a is None:
                diff.kind = dataset_pb2.FRAME_DIFF_KIND_ADDED
            elif b is None:
                diff.kind = dataset_pb2.FRAME_DIFF_KIND_DELETED
            else:
                diff.kind = dataset_pb2.FRAME_DIFF_KIND_MODIFIED
                diff.changed_fields.extend(_changed_fields(a, b))  # type: ignore[arg-type]
            if include_frames:
                if a is not None:
                    diff.base.CopyFrom(a)  # type: ignore[arg-type]
                if b is not None:
                    diff.target.CopyFrom(b)  # type: ignore[arg-type]
            diffs.append(diff)
        start, size = offset_of(page_token), page_size_of(page_size)
        kinds = [d.kind for d in diffs]
        return versioning_service_pb2.DiffVersionsResponse(
            diffs=diffs[start : start + size],
            next_page_token=offset_token(start + size) if start + size < len(diffs) else "",
            added_count=kinds.count(dataset_pb2.FRAME_DIFF_KIND_ADDED),
            modified_count=kinds.count(dataset_pb2.FRAME_DIFF_KIND_MODIFIED),
            deleted_count=kinds.count(dataset_pb2.FRAME_DIFF_KIND_DELETED),
        )

    # inference sets --------------------------------------------------------------------------------------------

    def list_inference_frames(
        self, name: InferenceSetName, page_size: int, page_token: str, frame_ids: Sequence[str] = ()
    ) -> versioning_service_pb2.ListInferenceFramesResponse:
        """The newest predictions, each beside its frame's ground truth at the version the set is pinned to: every
        frame, paged, or only `frame_ids` (one page)."""
        if len(frame_ids) > MAX_FRAME_IDS:
            raise InvalidArgument.of(
                [FieldViolation("frame_ids", f"at most {MAX_FRAME_IDS} ids in one call, got {len(frame_ids)}")]
            )
        inference_set = self.catalog.get_inference_set(name)
        tables = self.root.tables(name)
        latest = tables.latest()
        pinned, after = _resume(page_token)
        version = pinned if pinned is not None else latest.version if latest else 0
        reply = versioning_service_pb2.ListInferenceFramesResponse(
            dataset_version=inference_set.dataset_version, inference_version=version
        )
        if version == 0:
            return reply
        size = page_size_of(page_size)
        if frame_ids:
            found = tables.get(sorted(set(frame_ids)), version)
            rows = sorted(found.items())
            size = len(rows)
        else:
            rows = list(tables.frames(version, after=after, limit=size + 1))
        page = rows[:size]
        truth = (
            self.root.tables(name.dataset_name).get([frame_id for frame_id, _ in page], inference_set.dataset_version)
            if inference_set.dataset_version
            else {}
        )
        for frame_id, inference in page:
            pair = reply.frames.add()
            pair.inference.CopyFrom(inference)  # type: ignore[arg-type]
            if frame_id in truth:
                pair.ground_truth.CopyFrom(truth[frame_id])  # type: ignore[arg-type]
        if len(rows) > size:
            reply.next_page_token = payload_token({"version": version, "after": page[-1][0]})
        return reply

    # checkpoints -----------------------------------------------------------------------------------------------

    def _checkpoint_key(self, dataset: DatasetName, checkpoint_id: str) -> str:
        return f"catalog/checkpoints/{dataset.project}/{dataset.dataset}/{checkpoint_id}.json"

    def create_checkpoint(
        self, dataset: DatasetName, checkpoint_id: str, version: int, description: str, request_id: str
    ) -> dataset_pb2.Checkpoint:
        from google.protobuf import json_format  # noqa: PLC0415

        from shoal.kit.errors import AlreadyExists  # noqa: PLC0415
        from shoal.kit.objectstore import WriteConflict  # noqa: PLC0415

        check_id(checkpoint_id, "checkpoint_id")
        self.catalog.get_dataset(dataset)
        tables = self.root.tables(dataset)
        if version == 0:
            latest = tables.latest()
            if latest is None:
                raise NotFound(f"{dataset} has no committed version to name", reason="VERSION_NOT_FOUND")
            version = latest.version
        record = tables.version(version)
        tables.frames_at(version)  # NOT_FOUND (VERSION_EXPIRED) when retention dropped it
        checkpoint = dataset_pb2.Checkpoint(
            name=f"{dataset}/checkpoints/{checkpoint_id}", version=version, description=description
        )
        checkpoint.create_time.GetCurrentTime()
        body = json.dumps({"resource": json_format.MessageToDict(checkpoint), "request_id": request_id}).encode()
        try:
            self.store.put_if(self._checkpoint_key(dataset, checkpoint_id), body, "application/json", etag=None)
        except WriteConflict:
            existing = json.loads(self.store.get(self._checkpoint_key(dataset, checkpoint_id)))
            if not (request_id and existing.get("request_id") == request_id):
                raise AlreadyExists(f"{checkpoint.name} already exists", reason="ALREADY_EXISTS") from None
            return self.get_checkpoint(dataset, checkpoint_id)
        tables.tag(checkpoint_id, record.table_version)
        return checkpoint

    def get_checkpoint(self, dataset: DatasetName, checkpoint_id: str) -> dataset_pb2.Checkpoint:
        from google.protobuf import json_format  # noqa: PLC0415

        from shoal.kit.objectstore import ObjectNotFound  # noqa: PLC0415

        try:
            raw = json.loads(self.store.get(self._checkpoint_key(dataset, checkpoint_id)))
        except ObjectNotFound:
            raise NotFound(
                f"{dataset}/checkpoints/{checkpoint_id} does not exist", reason="CHECKPOINT_NOT_FOUND"
            ) from None
        return json_format.ParseDict(raw["resource"], dataset_pb2.Checkpoint())

    def list_checkpoints(self, dataset: DatasetName) -> list[dataset_pb2.Checkpoint]:
        prefix = f"catalog/checkpoints/{dataset.project}/{dataset.dataset}/"
        ids = [o.key[len(prefix) : -len(".json")] for o in self.store.iter_all(prefix)]
        return [self.get_checkpoint(dataset, i) for i in ids]

    def delete_checkpoint(self, dataset: DatasetName, checkpoint_id: str) -> None:
        self.get_checkpoint(dataset, checkpoint_id)
        self.store.delete(self._checkpoint_key(dataset, checkpoint_id))
        self.root.tables(dataset).untag(checkpoint_id)


def _changed_fields(a: frame_pb2.Frame, b: frame_pb2.Frame) -> Sequence[str]:
    """Top-level Frame fields whose content differs."""
    names = []
    for f in frame_pb2.Frame.DESCRIPTOR.fields:
        if f.name == "change_type":
            continue
        mask = field_mask_pb2.FieldMask(paths=[f.name])
        x, y = frame_pb2.Frame(), frame_pb2.Frame()
        mask.MergeMessage(a, x)
        mask.MergeMessage(b, y)
        if x.SerializeToString(deterministic=True) != y.SerializeToString(deterministic=True):
            names.append(f.name)
    return names
