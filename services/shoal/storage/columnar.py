"""Frames as Arrow columns: the row layout of dataset and inference-set tables, and the exact conversion between
frame messages and those columns.

The layout follows the message descriptors, so every field a Frame or InferenceFrame can hold has a column and
round-trips exactly:

- scalars keep their type (`double` → float64, `float` → float32, `uint32` → uint32, enums → int32 numbers);
  fields with presence (`optional`, oneof members, messages) are null when unset;
- a message is a struct (a message without fields is a bool: true when set), a `Timestamp` is
  `timestamp[ns, UTC]`, a repeated field a list, a map an Arrow map;
- each oneof also gets a string child named after the oneof that says which member is set (`labels.geometry` is
  `"box_2d"`, `sensors.data` is `"image"`), so SQL can select by kind without testing every member. One member is
  never null: `polygon_list_2d` (lists of lists) is an empty struct on labels of other kinds, since pylance 14 cannot
  read back a null struct of that shape; its `geometry` says whether a label is a polygon.

On top of the message fields the tables carry columns derived at write time, ignored when frames are read back:
`label_count`, `label_ids`, `area` in each label (its COCO-style area: the `area` attribute a COCO import sets,
else the polygons' area, else the box's), one typed column `metadata_<field>` per field of the dataset's metadata
schema, and the frame embedding as `embedding: fixed_size_list<float32, dim>` with `embedding_model_id` beside it, and
`digest`, a hash of the frame's content that tells a no-op change without reading the frame.

Conversion is column by column over all the messages of a batch (one pass per field, not per frame), and a null
struct is spread with one `take`, so a message type with many oneof members costs only for the members set.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from shoal.v1 import dataset_pb2, frame_pb2

_SCALARS: Final[dict[int, pa.DataType]] = {
    FieldDescriptor.TYPE_DOUBLE: pa.float64(),
    FieldDescriptor.TYPE_FLOAT: pa.float32(),
    FieldDescriptor.TYPE_INT64: pa.int64(),
    FieldDescriptor.TYPE_SINT64: pa.int64(),
    FieldDescriptor.TYPE_SFIXED64: pa.int64(),
    FieldDescriptor.TYPE_UINT64: pa.uint64(),
    FieldDescriptor.TYPE_FIXED64: pa.uint64(),
    FieldDescriptor.TYPE_INT32: pa.int32(),
    FieldDescriptor.TYPE_SINT32: pa.int32(),
    FieldDescriptor.TYPE_SFIXED32: pa.int32(),
    FieldDescriptor.TYPE_UINT32: pa.uint32(),
    FieldDescriptor.TYPE_FIXED32: pa.uint32(),
    FieldDescriptor.TYPE_BOOL: pa.bool_(),
    FieldDescriptor.TYPE_STRING: pa.string(),
    FieldDescriptor.TYPE_BYTES: pa.binary(),
    FieldDescriptor.TYPE_ENUM: pa.int32(),
}
TIMESTAMP: Final = pa.timestamp("ns", tz="UTC")

# Field kinds.
_SCALAR, _TIME, _EMPTY, _MESSAGE, _SCALAR_LIST, _MESSAGE_LIST, _MAP = range(7)


@dataclass
class _Field:
    name: str
    kind: int
    arrow: pa.DataType
    presence: bool
    oneof: str | None
    plan: _Plan | None = None  # messages, message lists, and maps with message values
    map_value: _Field | None = None
    # A oneof member stored on every row (empty where another member is set): see `_always_set`.
    always: bool = False


@dataclass
class _Plan:
    """How one message type maps to a struct."""

    descriptor: Descriptor
    fields: list[_Field]
    oneofs: list[str]
    skip: frozenset[str] = frozenset()
    arrow_fields: list[pa.Field] = field(default_factory=list)
    empty: pa.Array | None = None  # one empty message, encoded (see `_empties`)

    @property
    def arrow(self) -> pa.StructType:
        return pa.struct(self.arrow_fields)


_PLANS: dict[str, _Plan] = {}


def _plan(descriptor: Descriptor, skip: Iterable[str] = ()) -> _Plan:
    key = descriptor.full_name + "|" + ",".join(sorted(skip))
    found = _PLANS.get(key)
    if found is not None:
        return found
    skipped = frozenset(skip)
    plan = _Plan(descriptor, [], [o.name for o in descriptor.oneofs if not o.name.startswith("_")], skipped)
    _PLANS[key] = plan  # before the fields: a message type that contains itself would recurse forever
    for fd in descriptor.fields:
        if fd.name in skipped:
            continue
        plan.fields.append(_field(fd))
    plan.arrow_fields = [pa.field(f.name, f.arrow) for f in plan.fields]
    plan.arrow_fields += [pa.field(o, pa.string()) for o in plan.oneofs]
    return plan


def _field(fd: FieldDescriptor) -> _Field:
    oneof = fd.containing_oneof.name if fd.containing_oneof is not None else None
    if oneof is not None and oneof.startswith("_"):
        oneof = None  # the synthetic oneof of a proto3 `optional` field: presence, not a choice
    presence = fd.has_presence
    repeated = fd.is_repeated
    if repeated and fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        key = _field(fd.message_type.fields_by_name["key"])
        value = _field(fd.message_type.fields_by_name["value"])
        return _Field(fd.name, _MAP, pa.map_(key.arrow, value.arrow), False, None, value.plan, value)
    if fd.message_type is not None:
        if fd.message_type.full_name == "google.protobuf.Timestamp" and not repeated:
            return _Field(fd.name, _TIME, TIMESTAMP, presence, oneof)
        if not fd.message_type.fields and not repeated:
            return _Field(fd.name, _EMPTY, pa.bool_(), presence, oneof)
        sub = _plan(fd.message_type)
        if repeated:
            return _Field(fd.name, _MESSAGE_LIST, pa.list_(sub.arrow), False, None, sub)
        return _Field(
            fd.name, _MESSAGE, sub.arrow, presence, oneof, sub, always=oneof is not None and _lists_in_lists(sub.arrow)
        )
    arrow = _SCALARS[fd.type]
    if repeated:
        return _Field(fd.name, _SCALAR_LIST, pa.list_(arrow), False, None)
    return _Field(fd.name, _SCALAR, arrow, presence, oneof)


def always_stored(struct: pa.StructType, path: Sequence[str]) -> str | None:
    """The oneof naming the member at `path` of `struct` when that member is stored on every row (see
    `_lists_in_lists`), else None."""
    if len(path) != 1 or struct.get_field_index(path[0]) < 0:
        return None
    member = struct.field(path[0]).type
    if not (pa.types.is_struct(member) and _lists_in_lists(member)):
        return None
    for i in range(struct.num_fields):
        f = struct.field(i)
        if pa.types.is_string(f.type) and f.name in _ONEOF_NAMES:
            return str(f.name)
    return None


def _lists_in_lists(kind: pa.DataType) -> bool:
    """Whether a type holds a list whose elements hold a list (a polygon list: polygons of vertices)."""
    if pa.types.is_struct(kind):
        return any(_lists_in_lists(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind):
        return _holds_list(kind.value_type)
    return False


def _holds_list(kind: pa.DataType) -> bool:
    if pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind) or pa.types.is_map(kind):
        return True
    return pa.types.is_struct(kind) and any(_holds_list(kind.field(i).type) for i in range(kind.num_fields))


# messages → columns ---------------------------------------------------------------------------------------------


def _offsets(lengths: Sequence[int]) -> pa.Array:
    out = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=out[1:])
    return pa.array(out)


def nulls(n: int, arrow: pa.DataType) -> pa.Array:
    """`n` nulls of type `arrow`, every buffer (its children's too) sized for `n` rows. (`pa.nulls` shares one
    short buffer among a struct's children, which Lance's writer rejects once it slices a batch.) The last one made
    of each type is kept (arrays are immutable): batches of one size ask for the same ones over and over, and a wide
    struct's `take` costs about as much as encoding the fields that are set."""
    kept = _NULLS.get(arrow)
    if kept is not None and len(kept) == n:
        return kept
    made = pa.array([], arrow).take(pa.nulls(n, pa.int64()))
    if len(_NULLS) >= 256:
        _NULLS.clear()
    _NULLS[arrow] = made
    return made


_NULLS: dict[pa.DataType, pa.Array] = {}


def _empties(plan: _Plan, n: int) -> pa.Array:
    """`n` empty messages of `plan` as a struct array: one encoded once, then repeated."""
    if plan.empty is None:
        message = message_factory.GetMessageClass(plan.descriptor)()
        plan.empty = pa.StructArray.from_arrays(_encode(plan, [message]), fields=plan.arrow_fields)
    return plan.empty.take(pa.array(np.zeros(n, dtype=np.int32)))


def _spread(values: pa.Array, present: Sequence[bool], n: int) -> pa.Array:
    """`values` (one per present row) placed at the present rows of `n`, null elsewhere."""
    if len(values) == n:
        return values
    if len(values) == 0:
        return nulls(n, values.type)
    mask = np.asarray(present, dtype=bool)
    positions = np.full(n, -1, dtype=np.int64)
    positions[mask] = np.arange(len(values))
    return values.take(pa.array(positions, mask=~mask))


def _encode(plan: _Plan, messages: Sequence[Message]) -> list[pa.Array]:
    """One array per field of `plan` (then one per oneof), a row per message."""
    n = len(messages)
    which = {o: [m.WhichOneof(o) for m in messages] for o in plan.oneofs}
    chosen = {o: set(members) for o, members in which.items()}  # the members set on some message
    arrays: list[pa.Array] = []
    for f in plan.fields:
        name = f.name
        present: list[bool] | None = None
        if f.oneof is not None:
            present = [w == name for w in which[f.oneof]] if name in chosen[f.oneof] else []
        elif f.presence:
            present = [m.HasField(name) for m in messages]
        if present is not None and not any(present):
            # Set on no message (most members of a oneof, most optional fields): nulls, without visiting the
            # messages or, for a message field, encoding its fields for none of them; a member stored on every row
            # is then empty on every row.
            if f.always and f.plan is not None:
                arrays.append(_empties(f.plan, n))
            else:
                arrays.append(nulls(n, f.plan.arrow if f.plan is not None else f.arrow))
        elif f.kind == _SCALAR:
            if present is None:
                values = [getattr(m, name) for m in messages]
            else:
                values = [getattr(m, name) if p else None for m, p in zip(messages, present, strict=True)]
            arrays.append(pa.array(values, type=f.arrow))
        elif f.kind == _TIME:
            stamps = [
                getattr(m, name).ToNanoseconds() if p else None for m, p in zip(messages, present or [], strict=True)
            ]
            arrays.append(pa.array(stamps, type=pa.int64()).cast(TIMESTAMP))
        elif f.kind == _EMPTY:
            arrays.append(pa.array([True if p else None for p in present or []], type=pa.bool_()))
        elif f.kind == _MESSAGE and f.always:
            # pylance 14 cannot read back a null struct holding lists of lists within a list beside an empty list
            # ("Incorrect number of nulls for StructArray"), so such a oneof member is stored on every row, empty
            # where it is not the member set; the oneof's own column says which one is.
            assert f.plan is not None
            subs = [getattr(m, name) for m in messages]
            arrays.append(pa.StructArray.from_arrays(_encode(f.plan, subs), fields=f.plan.arrow_fields))
        elif f.kind == _MESSAGE:
            assert f.plan is not None
            assert present is not None
            subs = [getattr(m, name) for m, p in zip(messages, present, strict=True) if p]
            child = pa.StructArray.from_arrays(_encode(f.plan, subs), fields=f.plan.arrow_fields)
            arrays.append(_spread(child, present, n))
        elif f.kind == _SCALAR_LIST:
            containers = [getattr(m, name) for m in messages]
            flat = pa.array(list(itertools.chain.from_iterable(containers)), type=f.arrow.value_type)
            arrays.append(pa.ListArray.from_arrays(_offsets([len(c) for c in containers]), flat, type=f.arrow))
        elif f.kind == _MESSAGE_LIST:
            assert f.plan is not None
            containers = [getattr(m, name) for m in messages]
            subs = list(itertools.chain.from_iterable(containers))
            if subs:
                child = pa.StructArray.from_arrays(_encode(f.plan, subs), fields=f.plan.arrow_fields)
            else:
                child = nulls(0, f.plan.arrow)
            arrays.append(pa.ListArray.from_arrays(_offsets([len(c) for c in containers]), child, type=f.arrow))
        else:
            arrays.append(_encode_map(f, [getattr(m, name) for m in messages]))
    for o in plan.oneofs:
        arrays.append(pa.array(which[o], type=pa.string()))
    return arrays


def _encode_map(f: _Field, maps: Sequence[Any]) -> pa.Array:
    lengths = [len(e) for e in maps]
    keys: list[Any] = []
    values: list[Any] = []
    if any(lengths):
        for entries in maps:
            for k in entries:  # a map's `items()` is a slow Python view
                keys.append(k)
                values.append(entries[k])
    value = f.map_value
    assert value is not None
    if not values:
        items: pa.Array = nulls(0, value.plan.arrow if value.plan is not None else value.arrow)
    elif value.plan is not None:
        items = pa.StructArray.from_arrays(_encode(value.plan, values), fields=value.plan.arrow_fields)
    else:
        items = pa.array(values, type=value.arrow)
    return pa.MapArray.from_arrays(_offsets(lengths), pa.array(keys, type=f.arrow.key_type), items, type=f.arrow)


def sound(array: pa.Array, gone: pa.Array | None = None) -> pa.Array:
    """`array` in the form pylance 14 can write: below a null struct, bools are false and structs valid. (Its
    writer fails on a struct with nulls holding a bool, or holding a null struct of bools, once it splits rows
    across pages or files: "null_bit_buffer size too small".) Readers see no difference: what lies below a null
    struct is no value. `gone`: where an enclosing struct is null."""
    kind = array.type
    if pa.types.is_struct(kind):
        if array.offset:
            array = pa.concat_arrays([array])  # the children below are read unsliced
        own = array.is_null() if array.null_count else None
        if gone is not None:
            own = pc.and_(own, pc.invert(gone)) if own is not None else None
        below = own if gone is None else (gone if own is None else pc.or_(gone, own))
        children = []
        for i in range(kind.num_fields):
            child = array.field(i)
            if below is not None and child.null_count and pa.types.is_boolean(child.type):
                child = pc.if_else(below, False, child)
            children.append(sound(child, below))
        if own is not None and not pc.any(own).as_py():
            own = None
        return pa.StructArray.from_arrays(children, fields=list(kind), mask=own)
    if isinstance(array, pa.MapArray):
        mask = array.is_null() if array.null_count else None
        return pa.MapArray.from_arrays(array.offsets, array.keys, sound(array.items), type=kind, mask=mask)
    if isinstance(array, pa.ListArray):
        mask = array.is_null() if array.null_count else None
        return pa.ListArray.from_arrays(array.offsets, sound(array.values), type=kind, mask=mask)
    return array


# columns → messages ---------------------------------------------------------------------------------------------


def struct_children(array: pa.Array) -> dict[str, pa.Array]:
    """A struct array's children by name, with the parent's offset and nulls applied."""
    struct = array.type
    return {struct.field(i).name: child for i, child in enumerate(array.flatten())}


def map_entries(array: pa.Array) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """(the row each entry belongs to, keys, values) of a map array: slices respected, null rows hold none."""
    kind = array.type
    lists = array.view(pa.list_(pa.field("entries", pa.struct([kind.key_field, kind.item_field]), nullable=False)))
    flat = pc.list_flatten(lists)
    owners: np.ndarray = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    return owners, pc.struct_field(flat, [0]), pc.struct_field(flat, [1])


def holds_nothing(array: pa.Array | pa.ChunkedArray) -> bool:
    """Whether `array` holds nothing a frame would read back: every value null, or every list or map empty (fields
    without presence read back empty when absent). A struct that is set anywhere holds something: its presence."""
    if array.null_count == len(array):
        return True
    kind = array.type
    if pa.types.is_map(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind):
        whole = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
        return not _lengths(whole).any()
    return False


def _holds_nothing(f: _Field, array: pa.Array | pa.ChunkedArray) -> bool:
    """Whether the column of field `f` holds nothing a frame would read back: `_empty`, or a scalar without presence
    that has its default on every row (decoding sets no default, so such a column is never worth a read: an
    unused `device_id` or `coordinate_frame_id`). -0.0 is a value of its own."""
    if holds_nothing(array):
        return True
    if f.kind != _SCALAR or f.presence:
        return False
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_binary(kind) or pa.types.is_large_string(kind):
        return not pc.any(pc.greater(pc.binary_length(array), 0)).as_py()
    if pa.types.is_boolean(kind):
        return not pc.any(array).as_py()
    if pa.types.is_floating(kind):
        values = pc.fill_null(array, 0).to_numpy(zero_copy_only=False)
        return not (values != 0).any() and not np.signbit(values).any()
    if pa.types.is_integer(kind):
        return not pc.any(pc.not_equal(array, 0)).as_py()
    return False


def _lengths(array: pa.Array) -> np.ndarray:
    """Elements per row of a list or map array (0 for null rows)."""
    if isinstance(array, pa.FixedSizeListArray):
        found: np.ndarray = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False)
        return found
    offsets = array.offsets.to_numpy(zero_copy_only=False)
    lengths: np.ndarray = np.diff(offsets)
    if array.null_count:
        lengths[~array.is_valid().to_numpy(zero_copy_only=False)] = 0
    return lengths


def _decode(plan: _Plan, columns: Mapping[str, pa.Array], messages: Sequence[Message]) -> None:
    """Fill `messages` (one per row) from the columns named like the fields of `plan`; absent columns are skipped."""
    chosen_anywhere: dict[str, set[str]] = {}  # per oneof, the members set on some row
    for f in plan.fields:
        array = columns.get(f.name)
        if array is None:
            continue
        name = f.name
        if f.oneof is not None and f.oneof in columns:
            # A member no row chose holds nothing to read: skipped without a comparison per row (most members of
            # a oneof, each a few compute calls, which small reads such as a frame's history pay in full).
            if f.oneof not in chosen_anywhere:
                chosen_anywhere[f.oneof] = {c for c in pc.unique(columns[f.oneof]).to_pylist() if c is not None}
            if name not in chosen_anywhere[f.oneof]:
                continue
        if f.kind == _SCALAR:
            values = array.to_pylist()
            if f.presence:
                for m, v in zip(messages, values, strict=True):
                    if v is not None:
                        setattr(m, name, v)
            elif pa.types.is_floating(f.arrow):
                for m, v in zip(messages, values, strict=True):
                    if v or (v is not None and math.copysign(1.0, v) < 0):  # -0.0 is a value of its own
                        setattr(m, name, v)
            else:
                for m, v in zip(messages, values, strict=True):
                    if v:  # a default is what an unset field holds already
                        setattr(m, name, v)
        elif f.kind == _TIME:
            for m, v in zip(messages, array.cast(pa.int64()).to_pylist(), strict=True):
                if v is not None:
                    getattr(m, name).FromNanoseconds(v)
        elif f.kind == _EMPTY:
            for m, v in zip(messages, array.to_pylist(), strict=True):
                if v:
                    getattr(m, name).SetInParent()
        elif f.kind == _MESSAGE:
            assert f.plan is not None
            chosen = columns.get(f.oneof) if f.oneof is not None else None
            if chosen is not None:  # a oneof member is set where its oneof says so
                valid = pc.fill_null(pc.equal(chosen, name), False).to_numpy(zero_copy_only=False)
            else:
                valid = array.is_valid().to_numpy(zero_copy_only=False)
            if not valid.any():
                continue
            subs = [getattr(messages[i], name) for i in np.flatnonzero(valid).tolist()]
            for sub in subs:
                sub.SetInParent()
            _decode(f.plan, struct_children(array if valid.all() else array.filter(pa.array(valid))), subs)
        elif f.kind == _SCALAR_LIST:
            lengths = _lengths(array)
            flat = array.flatten().to_pylist()
            start = 0
            for m, k in zip(messages, lengths.tolist(), strict=True):
                if k:
                    getattr(m, name).extend(flat[start : start + k])
                    start += k
        elif f.kind == _MESSAGE_LIST:
            assert f.plan is not None
            lengths = _lengths(array)
            subs = []
            for m, k in zip(messages, lengths.tolist(), strict=True):
                if k:
                    container = getattr(m, name)
                    subs.extend(container.add() for _ in range(k))
            if subs:
                _decode(f.plan, struct_children(array.flatten()), subs)
        else:
            _decode_map(f, array, messages)


# Rows a decode reads one by one, as Python values, rather than column by column: a column costs a few Arrow calls
# whatever its length, so a frame's history (two or three rows of the columns its commits wrote) decoded in 0.94 ms
# column by column and in 0.57 ms row by row. Rows of every column hold many null fields, each a Python value row by
# row: 8 of them took 0.83 ms row by row and 1.07 ms column by column, 16 about 1.2 ms either way, 32 2.8 ms against
# 1.5.
ROWS_ONE_BY_ONE: Final = 8


# Per Arrow type, the same type with its timestamps as int64 (None: it holds none). Made once a type: rebuilding the
# types of every column of a frame took 0.3 ms, a third of a small decode.
_INTEGER_TIMES: dict[pa.DataType, pa.DataType | None] = {}


def _with_integer_times(array: pa.Array) -> pa.Array:
    """`array` viewed with its timestamps as int64 nanoseconds (the same bytes)."""
    kind = array.type
    found = _INTEGER_TIMES.get(kind, kind)
    if found is kind:
        changed = _times_as_integers(kind)
        found = None if changed == kind else changed
        if len(_INTEGER_TIMES) >= 1024:  # projections make types of their own: keep the cache bounded
            _INTEGER_TIMES.clear()
        _INTEGER_TIMES[kind] = found
    return array if found is None else array.view(found)


def _times_as_integers(kind: pa.DataType) -> pa.DataType:
    """`kind` with each timestamp an int64 (the same bytes): Python values of nanoseconds, not datetimes."""
    if kind == TIMESTAMP:
        return pa.int64()
    if pa.types.is_struct(kind):
        return pa.struct([f.with_type(_times_as_integers(f.type)) for f in kind])
    if pa.types.is_map(kind):
        return pa.map_(kind.key_field, kind.item_field.with_type(_times_as_integers(kind.item_type)))
    if pa.types.is_list(kind):
        return pa.list_(kind.value_field.with_type(_times_as_integers(kind.value_type)))
    return kind


def _fill(plan: _Plan, row: Mapping[str, Any], message: Message) -> None:
    """`_decode` for one row given as Python values (`to_pylist`'s, timestamps as integers): the same fields set."""
    for f in plan.fields:
        name = f.name
        if name not in row:
            continue
        value = row[name]
        kind = f.kind
        if kind == _SCALAR:
            if value is None:
                continue
            if f.presence:
                setattr(message, name, value)
            elif isinstance(value, float):
                if value or math.copysign(1.0, value) < 0:  # -0.0 is a value of its own
                    setattr(message, name, value)
            elif value:
                setattr(message, name, value)
        elif kind == _TIME:
            if value is not None:
                getattr(message, name).FromNanoseconds(value)
        elif kind == _EMPTY:
            if value:
                getattr(message, name).SetInParent()
        elif kind == _MESSAGE:
            assert f.plan is not None
            if f.oneof is not None and f.oneof in row:
                if row[f.oneof] != name:  # a oneof member is set where its oneof says so
                    continue
            elif value is None:
                continue
            sub = getattr(message, name)
            sub.SetInParent()
            if value:
                _fill(f.plan, value, sub)
        elif kind == _SCALAR_LIST:
            if value:
                getattr(message, name).extend(value)
        elif kind == _MESSAGE_LIST:
            assert f.plan is not None
            if value:
                container = getattr(message, name)
                for item in value:
                    added = container.add()
                    if item:
                        _fill(f.plan, item, added)
        elif value:
            target = getattr(message, name)
            entry = f.map_value
            assert entry is not None
            for key, item in value:
                if entry.plan is None:
                    target[key] = item
                    continue
                sub = target[key]
                sub.SetInParent()
                if item:
                    _fill(entry.plan, item, sub)


def _decode_map(f: _Field, array: pa.Array, messages: Sequence[Message]) -> None:
    owners, found, items = map_entries(array)
    keys = found.to_pylist()
    if not keys:
        return
    value = f.map_value
    assert value is not None
    if value.plan is None:
        for i, k, v in zip(owners.tolist(), keys, items.to_pylist(), strict=True):
            getattr(messages[i], f.name)[k] = v
        return
    subs = [getattr(messages[i], f.name)[k] for i, k in zip(owners.tolist(), keys, strict=True)]
    for sub in subs:
        sub.SetInParent()
    _decode(value.plan, struct_children(items), subs)


# the row layout ----------------------------------------------------------------------------------------------------

METADATA_PREFIX: Final = "metadata_"
_SCALAR_TYPES: Final = {
    dataset_pb2.FIELD_TYPE_STRING: (("string_value",), pa.string()),
    dataset_pb2.FIELD_TYPE_BOOL: (("bool_value",), pa.bool_()),
    dataset_pb2.FIELD_TYPE_INTEGER: (("int_value",), pa.int64()),
    dataset_pb2.FIELD_TYPE_FLOAT: (("float_value", "int_value"), pa.float64()),
    dataset_pb2.FIELD_TYPE_NUMERIC: (("float_value", "int_value"), pa.float64()),
}


@dataclass(frozen=True)
class MetadataColumn:
    """One typed column of a metadata-schema field: the values of the MetadataValue members the schema allows
    for it (FLOAT and NUMERIC fields take integers too), as one Arrow type."""

    name: str  # the metadata key
    kinds: tuple[str, ...]
    arrow: pa.DataType

    @property
    def column(self) -> str:
        return METADATA_PREFIX + self.name


def metadata_columns(schema: dataset_pb2.MetadataSchema | None) -> list[MetadataColumn]:
    """The typed columns of a dataset's metadata schema (fields of unknown type have none)."""
    out = []
    for f in schema.fields if schema is not None else ():
        if f.type == dataset_pb2.FIELD_TYPE_ARRAY:
            found = _SCALAR_TYPES.get(f.element_type)
            if found is not None:
                kinds = tuple(k.replace("_value", "_list_value") for k in found[0])
                out.append(MetadataColumn(f.name, kinds, pa.list_(found[1])))
        elif (scalar := _SCALAR_TYPES.get(f.type)) is not None:
            out.append(MetadataColumn(f.name, scalar[0], scalar[1]))
    return out


class Layout:
    """The columns of one kind of table (dataset frames or inference frames)."""

    def __init__(self, message_type: type[Message]) -> None:
        self.message_type = message_type
        self.plan = _plan(message_type.DESCRIPTOR, skip=("frame_id", "change_type", "embedding"))  # type: ignore[arg-type]

    def schema(self, embedding_dimension: int = 0, metadata: Sequence[MetadataColumn] = ()) -> pa.Schema:
        """The table schema for frames with embeddings of `embedding_dimension` (0: not known yet)."""
        return pa.schema(
            [
                pa.field("frame_id", pa.string(), nullable=False),
                *(self._labels_field() if f.name == "labels" else pa.field(f.name, f.arrow) for f in self.plan.fields),
                pa.field("embedding", _embedding_type(embedding_dimension)),
                pa.field("embedding_model_id", pa.string()),
                pa.field("digest", pa.binary(16), nullable=False),
                pa.field("label_count", pa.int32(), nullable=False),
                pa.field("label_ids", pa.list_(pa.string()), nullable=False),
                *(pa.field(c.column, c.arrow) for c in metadata),
            ]
        )

    def _labels_field(self) -> pa.Field:
        labels = next(f for f in self.plan.fields if f.name == "labels")
        assert labels.plan is not None
        return pa.field("labels", pa.list_(pa.struct([*labels.plan.arrow_fields, pa.field("area", pa.float64())])))

    def encode(
        self,
        frames: Sequence[Message],
        *,
        embedding_dimension: int = 0,
        metadata: Sequence[MetadataColumn] = (),
    ) -> pa.Table:
        """Rows of `frames` in the table layout."""
        schema = self.schema(embedding_dimension, metadata)
        arrays = _encode(self.plan, frames)[: len(self.plan.fields)]
        columns: dict[str, pa.Array] = {"frame_id": pa.array([f.frame_id for f in frames], type=pa.string())}  # type: ignore[attr-defined]
        for f, array in zip(self.plan.fields, arrays, strict=True):
            columns[f.name] = _with_area(array) if f.name == "labels" else array
        present = [f.HasField("embedding") for f in frames]
        embeddings = [f.embedding for f, p in zip(frames, present, strict=True) if p]  # type: ignore[attr-defined]
        flat, lengths = embedding_values(embeddings)
        vectors = pa.ListArray.from_arrays(_offsets(lengths), pa.array(flat, type=pa.float32()))
        columns["embedding"] = _spread(vectors.cast(_embedding_type(embedding_dimension)), present, len(frames))
        columns["embedding_model_id"] = _spread(
            pa.array([e.model_id for e in embeddings], type=pa.string()), present, len(frames)
        )
        columns["digest"] = pa.array([digest(f) for f in frames], type=pa.binary(16))
        labels = columns["labels"]
        columns["label_count"] = pc.list_value_length(labels).cast(pa.int32())
        label_ids = struct_children(labels.flatten())["label_id"]
        columns["label_ids"] = pa.ListArray.from_arrays(labels.offsets, label_ids)
        for column in metadata:
            columns[column.column] = metadata_values(columns["user_metadata"], column)
        return pa.Table.from_arrays([sound(columns[f.name]) for f in schema], schema=schema)

    def decode(self, rows: pa.Table | pa.RecordBatch, *, one_by_one: bool | None = None) -> list[Message]:
        """Frames of `rows`; columns that are absent (projected away) leave their fields unset. The rows are read
        one by one when there are few of them (`ROWS_ONE_BY_ONE`), or as `one_by_one` says; the frames are the
        same either way."""
        table = pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
        table = table.combine_chunks()
        frames = [self.message_type(frame_id=i) for i in table.column("frame_id").to_pylist()]
        columns = {
            name: column.chunk(0) if column.num_chunks else pa.array([], column.type)
            for name, column in zip(table.column_names, table.columns, strict=True)
        }
        if one_by_one is None:
            one_by_one = len(frames) <= ROWS_ONE_BY_ONE
        if one_by_one:
            self.fill(columns, frames)
        else:
            _decode(self.plan, columns, frames)
        if "embedding" in columns:
            embedding = columns["embedding"]
            valid = embedding.is_valid().to_numpy(zero_copy_only=False)
            if valid.any():
                present = np.flatnonzero(valid)
                values = embedding.filter(pa.array(valid))
                raw = values.flatten().to_numpy(zero_copy_only=False).astype("<f4", copy=False).tobytes()
                lengths = _lengths(values).tolist()
                models = columns.get("embedding_model_id")
                model_ids = models.filter(pa.array(valid)).to_pylist() if models is not None else [None] * len(present)
                start = 0
                for i, k, model_id in zip(present.tolist(), lengths, model_ids, strict=True):
                    target = frames[i].embedding  # type: ignore[attr-defined]
                    target.SetInParent()
                    if k:  # the packed field's bytes, parsed by protobuf: no Python float per value
                        packed = raw[4 * start : 4 * (start + k)]
                        target.MergeFromString(_EMBEDDING_VALUES_TAG + _varint(4 * k) + packed)
                    start += k
                    if model_id:
                        target.model_id = model_id
        return frames

    def fill(self, columns: Mapping[str, pa.Array], frames: Sequence[Message]) -> None:
        """`_decode` row by row (see `ROWS_ONE_BY_ONE`): the message fields of `frames` from `columns`."""
        names = [f.name for f in self.plan.fields if f.name in columns]
        if not names:
            return
        arrays = [_with_integer_times(columns[name]) for name in names]
        for row, frame in zip(pa.Table.from_arrays(arrays, names=names).to_pylist(), frames, strict=True):
            _fill(self.plan, row, frame)

    def read_back(self, rows: pa.Table) -> list[str]:
        """The columns a reader of `rows` needs to decode them into frames, as Lance projection paths: the message
        fields that hold something in any of the rows (an all-null column, lists and maps all empty, or a scalar
        without presence at its default on every row, read back as absent ones do), each list of labels, sensors or
        other messages narrowed to the children that do. Derived columns (digests, label ids and counts, areas,
        typed metadata) are not needed to decode."""
        out = []
        for f in self.plan.fields:
            if f.name not in rows.column_names:
                continue
            array = rows.column(f.name).combine_chunks()
            if _holds_nothing(f, array):
                continue
            if f.kind == _MESSAGE_LIST and f.plan is not None:
                children = struct_children(array.flatten())
                wanted = [
                    g.name
                    for g in f.plan.fields
                    if g.name in children
                    and (
                        # A member stored on every item counts where its oneof chose it, even with nothing in it.
                        pc.any(pc.equal(children[g.oneof], g.name)).as_py()
                        if g.always and g.oneof in children
                        else not _holds_nothing(g, children[g.name])
                    )
                ]
                wanted += [o for o in f.plan.oneofs if o in children]
                # Items with nothing in them still count: the whole column then keeps how many there are.
                out.extend([f"{f.name}.item.{name}" for name in wanted] if wanted else [f.name])
            else:
                out.append(f.name)
        # The embedding is a message: null where unset, an empty list where set without values.
        out.extend(
            n for n in ("embedding", "embedding_model_id") if n in rows.column_names and rows[n].null_count < len(rows)
        )
        return out

    def columns_for(self, paths: Sequence[str]) -> list[str]:
        """The columns a field mask needs (top-level Frame fields; `frame_id` always)."""
        wanted = {p.split(".", 1)[0] for p in paths}
        out = ["frame_id"]
        for name in wanted - {"frame_id", "change_type"}:
            out.extend(["embedding", "embedding_model_id"] if name == "embedding" else [name])
        return out


# FrameEmbedding.values: field 1, length-delimited (a packed repeated float). Frame embeddings cross between
# messages and arrays as these bytes, one copy per vector instead of a Python float per value.
_EMBEDDING_VALUES_TAG: Final = bytes([frame_pb2.FrameEmbedding.VALUES_FIELD_NUMBER << 3 | 2])


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def embedding_values(embeddings: Sequence[frame_pb2.FrameEmbedding]) -> tuple[np.ndarray, list[int]]:
    """The values of `embeddings` end to end as one float32 array, and each one's length."""
    chunks: list[bytes] = []
    lengths: list[int] = []
    tag = _EMBEDDING_VALUES_TAG[0]
    for embedding in embeddings:
        n = len(embedding.values)
        lengths.append(n)
        if not n:
            continue
        raw = embedding.SerializeToString()
        # The packed field comes first (lowest field number): its tag, its byte length as a varint, the floats.
        pos, size, shift = 1, 0, 0
        while pos < len(raw):
            byte = raw[pos]
            size |= (byte & 0x7F) << shift
            pos += 1
            if byte < 0x80:
                break
            shift += 7
        if raw[0] == tag and size == 4 * n:
            chunks.append(raw[pos : pos + size])
        else:  # not the layout expected: the values one by one
            chunks.append(np.asarray(embedding.values, dtype="<f4").tobytes())
    flat = np.frombuffer(b"".join(chunks), dtype="<f4").astype(np.float32, copy=False)
    return flat, lengths


def digest(frame: Message) -> bytes:
    """A digest of a frame's content: equal frames have equal digests (maps are serialized in key order)."""
    return hashlib.blake2b(frame.SerializeToString(deterministic=True), digest_size=16).digest()


def _embedding_type(dimension: int) -> pa.DataType:
    return pa.list_(pa.float32(), dimension) if dimension > 0 else pa.list_(pa.float32())


def _with_area(labels: pa.ListArray) -> pa.ListArray:
    with np.errstate(over="ignore", invalid="ignore"):  # huge or infinite coordinates give an infinite area
        return _areas_added(labels)


def _areas_added(labels: pa.ListArray) -> pa.ListArray:
    """Labels with their COCO-style `area`: the numeric `area` attribute where a label has one (what a COCO import
    carries over), else the area of its polygons, else of its box (or its keypoints' box)."""
    flat = labels.flatten()
    children = struct_children(flat)
    n = len(flat)
    area = np.full(n, np.nan)
    for box_path in (("keypoints_2d", "box"), ("box_2d",)):
        box = children[box_path[0]]
        if len(box_path) == 2:
            box = struct_children(box)[box_path[1]]
        parts = struct_children(box)
        valid = box.is_valid().to_numpy(zero_copy_only=False)
        width = parts["width"].fill_null(0).to_numpy(zero_copy_only=False)
        height = parts["height"].fill_null(0).to_numpy(zero_copy_only=False)
        area = np.where(valid, width * height, area)
    is_polygon = pc.fill_null(pc.equal(children["geometry"], "polygon_list_2d"), False).to_numpy(zero_copy_only=False)
    if is_polygon.any():
        area = np.where(is_polygon, _polygon_areas(children["polygon_list_2d"]), area)
    attributes = children["attributes"]
    owners, keys, items = map_entries(attributes)
    if len(keys):
        hits = pc.equal(keys, "area").to_numpy(zero_copy_only=False)
        if hits.any():
            owners = owners[hits]
            value = struct_children(items.filter(pa.array(hits)))
            given = pc.coalesce(value["float_value"], value["int_value"].cast(pa.float64())).to_numpy(
                zero_copy_only=False
            )
            numeric = ~np.isnan(given)
            area[owners[numeric]] = given[numeric]
    struct = pa.StructArray.from_arrays(
        [*flat.flatten(), pa.array(area, mask=np.isnan(area))],
        fields=[*flat.type, pa.field("area", pa.float64())],
    )
    return pa.ListArray.from_arrays(labels.offsets, struct)


def _polygon_areas(polygons: pa.StructArray) -> np.ndarray:
    """Total shoelace area of each label's polygons (0 where a label has none)."""
    lists = struct_children(polygons)["polygons"]  # list<struct<vertices: list<point>>> per label
    per_label = _lengths(lists)
    flat_polygons = lists.flatten()
    vertices = struct_children(flat_polygons)["vertices"]
    per_polygon = _lengths(vertices)
    points = struct_children(vertices.flatten())
    x = points["x"].to_numpy(zero_copy_only=False)
    y = points["y"].to_numpy(zero_copy_only=False)
    starts = (
        np.concatenate([[0], np.cumsum(per_polygon)[:-1]]).astype(np.int64)
        if len(per_polygon)
        else np.array([], np.int64)
    )
    nxt = np.arange(len(x)) + 1
    ends = starts + per_polygon
    nxt[ends[per_polygon > 0] - 1] = starts[per_polygon > 0]  # the last vertex pairs with the first
    cross = x * y[nxt] - x[nxt] * y if len(x) else np.zeros(0)
    polygon_owner = np.repeat(np.arange(len(per_polygon)), per_polygon)
    per_polygon_area = np.abs(np.bincount(polygon_owner, weights=cross, minlength=len(per_polygon))) / 2
    label_owner = np.repeat(np.arange(len(per_label)), per_label)
    return np.bincount(label_owner, weights=per_polygon_area, minlength=len(per_label))


def metadata_values(user_metadata: pa.Array, column: MetadataColumn) -> pa.Array:
    """The typed values of one metadata key, one per row of a `user_metadata` map column (null where absent or
    a typed null)."""
    n = len(user_metadata)
    owners, keys, items = map_entries(user_metadata)
    if len(keys) == 0:
        return nulls(n, column.arrow)
    hits = pc.equal(keys, column.name).to_numpy(zero_copy_only=False)
    owners = owners[hits]
    members = struct_children(items.filter(pa.array(hits)))
    found = [members[kind] for kind in column.kinds]
    if column.kinds[0].endswith("_list_value"):
        found = [struct_children(v)["values"] if len(v) else pa.array([], v.type.field("values").type) for v in found]
    values = found[0].cast(column.arrow)
    for other in found[1:]:
        values = pc.if_else(values.is_null(), other.cast(column.arrow), values)
    positions = np.full(n, -1, dtype=np.int64)
    positions[owners] = np.arange(len(owners))
    return values.take(pa.array(positions, mask=positions < 0))


FRAMES: Final = Layout(frame_pb2.Frame)
INFERENCES: Final = Layout(frame_pb2.InferenceFrame)
# Every oneof's name (the string children that say which member is set).
_ONEOF_NAMES: Final = frozenset(o for plan in _PLANS.values() for o in plan.oneofs)


def layout(*, inference: bool) -> Layout:
    return INFERENCES if inference else FRAMES
