"""A filter language over frames, in the style of AIP-160, compiled to columnar evaluation over a frame table.

    weather = "rain" AND (speed > 10 OR night = true) AND NOT tags : "urban"
    labels.classification = "car" AND count(labels(classification = "car" AND confidence > 0.5)) >= 2

Comparisons are `= != < <= > >=` and `:` (membership in a list); literals are strings (JSON escapes), numbers,
true, false and null; NOT, AND, OR (any case) and parentheses combine conditions. Errors are INVALID_FILTER with a
FieldViolation on `filter` naming the position.

Values. A bare name (`weather`) is the frame's metadata key: its typed `metadata_<name>` column when the table has
one (authoritative: null there means the frame lacks the key, even where a frame written before the field joined
the schema holds it in its map), else the entry of the `user_metadata` map. Keys no frame has are not errors:
every frame lacks them. `labels`, and `count` and `all` before `(`, are not metadata keys. Values compare within
their kind: strings with strings, numbers (integer or float) with numbers, booleans with booleans (= and != only).
A value of another kind, or a list, is simply not equal (and not ordered). `= null` holds when the value is
missing or null, `!= null` when it is present; `!=` is always the negation of `=`, so `weather != "rain"` also
holds for frames without weather. Ordering against null, or of a missing value, is false. `tags : "urban"` holds
when the list holds the value; on a scalar it is false.

Labels. `labels.<path>` names a field of the label struct: `labels.classification`, `labels.area`,
`labels.confidence`, `labels.box_2d.width` (any struct path down to a scalar; a struct itself may be tested against
null: `labels.box_2d != null` is "some label is a box"), `labels.attributes.<key>` (compared like metadata values).
Unknown label fields are errors.
- `labels.classification = "car"`: some label of the frame matches (any). Two such conditions joined by AND may be
  met by different labels.
- `labels(classification = "car" AND area < 1024)`: one label meets the whole condition; inside the parentheses
  label fields are named without the `labels.` prefix.
- `all(labels.classification = "car")`: every label matches; true for a frame without labels (vacuous truth, as
  Python's all()). Inside all() and count() AND/OR/NOT apply to each label: `all(labels.area < 1024 OR
  labels.classification = "person")`.
- `count(labels) > 10`, `count(labels.classification = "car") >= 2`, `count(labels(...)) = 0`: how many labels
  match, compared with a number.
Label conditions inside `labels(...)`, `all(...)` and `count(...)` cannot nest those forms or name metadata.

Evaluation: `compile(text, schema)` resolves names against a table version's Arrow schema and gives the columns
the filter reads, a Lance SQL filter to push down, and `mask`, the exact result computed with pyarrow.compute and
NumPy over whole columns (labels flattened once and grouped back to frames by their parent index; map entries
matched by key across all maps at once). Pushed down exactly: typed metadata columns, `count(labels)` (as
`label_count`) and `labels.label_id = "..."` (as `label_ids`). Other label conditions push down only the
pre-filter `label_count > 0` where they need a label, and `user_metadata` entries nothing; then `residual` is set
and the mask must run on what the scan returns. The SQL is written so that no comparison is NULL: NOT and OR keep
the semantics above. `labels.confidence` is float32, so `=` against a decimal literal rarely holds.

`parse(text)` evaluates a metadata-only filter over one frame's metadata dict, for callers that hold dicts.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoal.kit.errors import FieldViolation, InvalidArgument
from shoal.storage import columnar

Literal = str | int | float | bool | None
Predicate = Callable[[Mapping[str, Any]], bool]
Bools = np.ndarray[Any, np.dtype[np.bool_]]

_TOKEN: Final = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![A-Za-z0-9_]))'
    r"|(?P<op><=|>=|!=|=|<|>|:)|(?P<lp>\()|(?P<rp>\))|(?P<dot>\.)|(?P<word>[A-Za-z0-9_]+))"
)
_KEY: Final = re.compile(r"[A-Za-z0-9_]+")
_SPACE: Final = re.compile(r"\s*")
_MAX_DEPTH: Final = 100  # parentheses and NOTs: deeper filters are refused, not a RecursionError
_ORDER: Final = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_COUNT_OPS: Final[dict[str, Callable[[Any, Any], Any]]] = {**_ORDER, "=": operator.eq, "!=": operator.ne}
_PC_OPS: Final = {"=": pc.equal, "<": pc.less, "<=": pc.less_equal, ">": pc.greater, ">=": pc.greater_equal}
_SQL_OPS: Final = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_INT64: Final = (-(2**63), 2**63 - 1)
# The value kinds of a MetadataValue struct, by the literal kind they compare with; exactly one is non-null.
_MV_SCALARS: Final = {"S": ("string_value",), "N": ("int_value", "float_value"), "B": ("bool_value",)}
_MV_LISTS: Final = {"S": ("string_list_value",), "N": ("int_list_value", "float_list_value"), "B": ("bool_list_value",)}
_MV_FIELDS: Final = {n for names in (*_MV_SCALARS.values(), *_MV_LISTS.values()) for n in names} | {"null_value"}
LABELS: Final = "labels"
USER_METADATA: Final = "user_metadata"
LABEL_COUNT: Final = "label_count"
LABEL_IDS: Final = "label_ids"


# syntax ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


@dataclass(frozen=True)
class _Cmp:
    """`path op value`: a metadata key (one segment) or, under a label form, a path into the label struct."""

    path: tuple[str, ...]
    positions: tuple[int, ...]
    op: str
    value: Literal


@dataclass(frozen=True)
class _Bool:
    """AND / OR of parts, or NOT of one part."""

    op: str
    parts: tuple[_Node, ...]


@dataclass(frozen=True)
class _Labels:
    """A frame condition over its labels: any / all of them meet `cond`, or how many do (cond None: all labels)."""

    kind: str
    cond: _Node | None
    pos: int
    op: str = ""
    value: float = 0


_Node = _Cmp | _Bool | _Labels


def _error(text: str, pos: int, problem: str) -> InvalidArgument:
    return InvalidArgument.of(
        [FieldViolation("filter", f"{problem} at position {pos}: {text!r}")], reason="INVALID_FILTER"
    )


def _tokens(text: str) -> list[_Token]:
    out, pos, end = [], 0, len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None:
            skipped = _SPACE.match(text, pos)
            raise _error(text, skipped.end() if skipped else pos, "unexpected character")
        kind = m.lastgroup or ""
        out.append(_Token(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


class _Parser:
    """Recursive descent; `scope` is "frame" (metadata, label forms), "labels" (inside all()/count(): label
    conditions spelled `labels.<path>` or `labels(...)`) or "label" (inside labels(...): bare label paths)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0
        self.depth = 0

    def parse(self) -> _Node | None:
        if not self.tokens:
            return None
        node = self.expr("frame")
        if self.at != len(self.tokens):
            raise self.error(self.tokens[self.at], "unexpected token")
        return node

    def error(self, token: _Token | None, problem: str) -> InvalidArgument:
        return _error(self.text, len(self.text) if token is None else token.pos, problem)

    def peek(self, ahead: int = 0) -> _Token | None:
        at = self.at + ahead
        return self.tokens[at] if at < len(self.tokens) else None

    def take(self, kind: str = "", what: str = "") -> _Token:
        t = self.peek()
        if t is None:
            raise self.error(None, f"expected {what}" if what else "unexpected end")
        if kind and t.kind != kind:
            raise self.error(t, f"expected {what}")
        self.at += 1
        return t

    def keyword(self, word: str) -> bool:
        t = self.peek()
        if t is not None and t.kind == "word" and t.text.upper() == word:
            self.at += 1
            return True
        return False

    def call(self, name: str) -> bool:
        """The next tokens are `name (`."""
        t, paren = self.peek(), self.peek(1)
        return t is not None and t.text == name and t.kind == "word" and paren is not None and paren.kind == "lp"

    def expr(self, scope: str) -> _Node:
        parts = [self.term(scope)]
        while self.keyword("OR"):
            parts.append(self.term(scope))
        return parts[0] if len(parts) == 1 else _Bool("OR", tuple(parts))

    def term(self, scope: str) -> _Node:
        parts = [self.factor(scope)]
        while self.keyword("AND"):
            parts.append(self.factor(scope))
        return parts[0] if len(parts) == 1 else _Bool("AND", tuple(parts))

    def factor(self, scope: str) -> _Node:
        t = self.peek()
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.error(t, "nested too deeply")
        try:
            if self.keyword("NOT"):
                return _Bool("NOT", (self.factor(scope),))
            if t is not None and t.kind == "lp":
                self.take()
                inner = self.expr(scope)
                if (close := self.peek()) is None or close.kind != "rp":
                    raise self.error(t, "unclosed parenthesis")
                self.take()
                return inner
            for name in ("labels", "all", "count"):
                if self.call(name):
                    return self.form(name, scope)
            return self.comparison(scope)
        finally:
            self.depth -= 1

    def form(self, name: str, scope: str) -> _Node:
        start = self.take()
        if scope != "frame" and not (scope == "labels" and name == "labels"):
            raise self.error(start, f"{name}(...) cannot stand inside a label condition")
        self.take()
        t, after = self.peek(), self.peek(1)
        cond: _Node | None = None
        if name == "count" and t is not None and t.text == "labels" and after is not None and after.kind == "rp":
            self.take()  # count(labels): every label
        else:
            cond = self.expr("label" if name == "labels" else "labels")
        self.take("rp", f"')' closing {name}(")
        if name != "count":
            assert cond is not None
            # labels(...) inside all()/count() is already a condition on each label.
            return cond if scope == "labels" else _Labels("any" if name == "labels" else "all", cond, start.pos)
        op = self.take("op", "a comparison after count(...)")
        if op.text == ":":
            raise self.error(op, "expected a comparison after count(...)")
        value = self.literal(self.take())
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.error(self.tokens[self.at - 1], "count(...) compares with a number")
        return _Labels("count", cond, start.pos, op.text, value)

    def comparison(self, scope: str) -> _Node:
        path, positions = self.path()
        if scope == "label":
            if path[0] == "labels" and len(path) > 1:
                raise _error(self.text, positions[0], "inside labels(...) name label fields without 'labels.'")
            return self.compared(path, positions)
        if path[0] == "labels":
            if len(path) == 1:
                raise _error(self.text, positions[0], "name a label field (labels.<field>) or a condition labels(...)")
            cmp = self.compared(path[1:], positions[1:])
            return cmp if scope == "labels" else _Labels("any", cmp, positions[0])
        if scope == "labels":
            raise _error(self.text, positions[0], "inside all() and count() conditions are on labels.<field>")
        if len(path) > 1:
            raise _error(self.text, positions[1], "metadata keys have no '.'; label fields are labels.<field>")
        return self.compared(path, positions)

    def path(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        segments, positions = [], []
        while True:
            t = self.take()
            named = t.kind == "word" or (t.kind == "num" and _KEY.fullmatch(t.text))
            if not named or t.text.upper() in {"AND", "OR", "NOT"}:
                raise self.error(t, "expected a field name")
            segments.append(t.text)
            positions.append(t.pos)
            if (dot := self.peek()) is None or dot.kind != "dot":
                return tuple(segments), tuple(positions)
            self.take()

    def compared(self, path: tuple[str, ...], positions: tuple[int, ...]) -> _Cmp:
        op = self.take("op", "a comparison")
        return _Cmp(path, positions, op.text, self.literal(self.take()))

    def literal(self, t: _Token) -> Literal:
        if t.kind == "str":
            try:
                return str(json.loads(t.text, strict=False))
            except ValueError:
                raise self.error(t, "invalid escape in string") from None
        if t.kind == "num":
            if any(c in t.text for c in ".eE"):
                number = float(t.text)
                if not math.isfinite(number):
                    raise self.error(t, "number out of range")
                return number
            whole = int(t.text)
            return whole if _INT64[0] <= whole <= _INT64[1] else float(whole)
        if t.kind == "word" and t.text.lower() in {"true", "false", "null"}:
            return {"true": True, "false": False, "null": None}[t.text.lower()]
        raise self.error(t, "expected a value")


# value semantics ---------------------------------------------------------------------------------------------------


def _kind_of(value: Literal) -> str:
    """S(tring), N(umber) or B(oolean)."""
    return "B" if isinstance(value, bool) else "S" if isinstance(value, str) else "N"


def _missing_result(op: str, value: Literal) -> bool:
    """What a comparison gives for a missing or null value."""
    return (op == "=" and value is None) or (op == "!=" and value is not None)


def _py_test(actual: Any, op: str, value: Literal) -> bool:
    if actual is None or value is None:
        return _missing_result(op, value) if actual is None else op == "!="
    if op == "!=":
        return not _py_test(actual, "=", value)
    kind = _kind_of(value)
    if op == ":":
        return isinstance(actual, list) and any(_kind_of(a) == kind and a == value for a in actual)
    if isinstance(actual, list) or _kind_of(actual) != kind:
        return False
    if op == "=":
        return bool(actual == value)
    return kind != "B" and bool(_ORDER[op](actual, value))


# columnar evaluation -----------------------------------------------------------------------------------------------


def _arrow_kind(t: pa.DataType) -> str | None:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "S"
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return "N"
    return "B" if pa.types.is_boolean(t) else None


def _is_list(t: pa.DataType) -> bool:
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))


def _is_metadata_value(t: pa.DataType) -> bool:
    """A MetadataValue struct: value members, `null_value`, and the string naming the member set (`kind`)."""
    if not pa.types.is_struct(t):
        return False
    names = {t.field(i).name for i in range(t.num_fields)}
    return bool(names & {"string_value", "int_value", "float_value", "bool_value"}) and names <= _MV_FIELDS | {"kind"}


def _numpy(result: pa.Array) -> Bools:
    """A boolean array as NumPy, null as false, read straight from its bitmaps (pc.fill_null costs ten times as
    much)."""
    n, offset = len(result), result.offset
    if n == 0:
        return np.zeros(0, bool)
    validity, data = result.buffers()

    def bits(buffer: pa.Buffer) -> Bools:
        unpacked = np.unpackbits(np.frombuffer(buffer, np.uint8), count=offset + n, bitorder="little")
        return np.asarray(unpacked[offset:].view(bool))

    found = bits(data)
    return found & bits(validity) if validity is not None and result.null_count else found


def _scalar(value: Literal) -> pa.Scalar:
    if isinstance(value, bool):
        return pa.scalar(value, pa.bool_())
    if isinstance(value, int):
        return pa.scalar(value, pa.int64())
    return pa.scalar(value, pa.float64() if isinstance(value, float) else pa.string())


def _child(struct: pa.Array, name: str) -> pa.Array | None:
    """A struct's child with the struct's nulls (None when the struct has no such child)."""
    if struct.type.get_field_index(name) < 0:
        return None
    return pc.struct_field(struct, [name])


def _compare(values: pa.Array, op: str, value: Literal) -> Bools:
    """`values op value` for scalars of the value's kind; false for null, other kinds and ordered booleans."""
    kind = _kind_of(value)
    if _arrow_kind(values.type) != kind or (kind == "B" and op != "="):
        return np.zeros(len(values), bool)
    return _numpy(_PC_OPS[op](values, _scalar(value)))


def _contains(lists: pa.Array, value: Literal) -> Bools:
    """Whether each list holds the value: its elements compared at once, grouped back by parent index."""
    out = np.zeros(len(lists), bool)
    if _arrow_kind(lists.type.value_type) == _kind_of(value):
        hits = _numpy(pc.equal(pc.list_flatten(lists), _scalar(value)))
        out[np.asarray(pc.list_parent_indices(lists))[hits]] = True
    return out


@dataclass(frozen=True)
class _Values:
    """An operand at one level (frames or labels): `values[at[i]]` belongs to row `rows[i]` (every value to its
    row in order when `rows` is None); rows not listed lack the value. `shape` is scalar, list, mv (MetadataValue
    struct) or struct. Comparisons run over all of `values` and then pick `at`: cheaper than a `take` of wide
    MetadataValue structs."""

    n: int
    values: pa.Array
    rows: np.ndarray[Any, Any] | None = None
    shape: str = "scalar"
    at: np.ndarray[Any, Any] | None = None

    def test(self, op: str, value: Literal) -> Bools:
        if value is None:
            nulls = self._nulls()
            found = nulls if op == "=" else ~nulls if op == "!=" else np.zeros(len(self.values), bool)
        elif op == "!=":
            found = ~self._positive("=", value)
        else:
            found = self._positive(op, value)
        if self.at is not None:
            found = found[self.at]
        if self.rows is None:
            return found
        out = np.full(self.n, _missing_result(op, value))
        out[self.rows] = found
        return out

    def _nulls(self) -> Bools:
        if self.shape != "mv":
            return _numpy(self.values.is_null())
        nulls = np.ones(len(self.values), bool)
        for name in _MV_FIELDS - {"null_value"}:
            child = _child(self.values, name)
            if child is not None:
                nulls &= _numpy(child.is_null())
        return nulls

    def _positive(self, op: str, value: Literal) -> Bools:
        found = np.zeros(len(self.values), bool)
        if self.shape == "scalar" and op != ":":
            found = _compare(self.values, op, value)
        elif self.shape == "list" and op == ":":
            found = _contains(self.values, value)
        elif self.shape == "mv":
            kind = _kind_of(value)
            for name in (_MV_LISTS if op == ":" else _MV_SCALARS)[kind]:
                child = _child(self.values, name)
                if child is not None:
                    found |= _contains(pc.struct_field(child, [0]), value) if op == ":" else _compare(child, op, value)
        return found


class _Level:
    """The rows a condition is evaluated over; `array(path)` is a column (frames) or label field (labels) and the
    struct fields below it."""

    n: int

    def array(self, path: Sequence[str]) -> pa.Array:
        raise NotImplementedError


class _Frames(_Level):
    def __init__(self, data: pa.Table | pa.RecordBatch) -> None:
        self.data = data
        self.n = data.num_rows
        self._columns: dict[str, pa.Array] = {}
        self._labels: _LabelRows | None = None

    def array(self, path: Sequence[str]) -> pa.Array:
        column = self._columns.get(path[0])
        if column is None:
            if path[0] not in self.data.schema.names:
                raise ValueError(f"the filter reads column {path[0]!r}, which the rows do not have")
            column = self.data.column(path[0])
            if isinstance(column, pa.ChunkedArray):
                # combine_chunks copies even a single chunk.
                column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
            self._columns[path[0]] = column
        return pc.struct_field(column, list(path[1:])) if len(path) > 1 else column

    def labels(self) -> _LabelRows:
        if self._labels is None:
            lists = self.array([LABELS])
            self._labels = _LabelRows(pc.list_flatten(lists), np.asarray(pc.list_parent_indices(lists)))
        return self._labels


class _LabelRows(_Level):
    """Every label of the frames, flattened; `parents[i]` is the frame (row) of label i."""

    def __init__(self, rows: pa.Array, parents: np.ndarray[Any, Any]) -> None:
        self.rows, self.parents, self.n = rows, parents, len(rows)

    def array(self, path: Sequence[str]) -> pa.Array:
        return pc.struct_field(self.rows, list(path))


@dataclass(frozen=True)
class _Source:
    """Where an operand comes from: the array at `path`, or the entry `key` of the map at `path`."""

    path: tuple[str, ...]
    shape: str
    key: str | None = None

    def fetch(self, level: _Level) -> _Values:
        array = level.array(self.path)
        if self.key is None:
            return _Values(level.n, array, shape=self.shape)
        # A map read as its list of entries: all keys compared at once, the matching entry of each row kept.
        owners, keys, items = columnar.map_entries(array)
        at = np.flatnonzero(_numpy(pc.equal(keys, pa.scalar(self.key))))
        return _Values(level.n, items, owners[at], self.shape, at)


# compiled conditions -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sql:
    """A pushed-down condition: `text` holds for a superset of the matching rows (None: no condition), and exactly
    the matching rows when `exact`."""

    text: str | None
    exact: bool


_NO_SQL: Final = _Sql(None, False)


class _Bound:
    sql: _Sql = _NO_SQL
    columns: frozenset[str] = frozenset()

    def mask(self, level: _Level) -> Bools:
        raise NotImplementedError


@dataclass
class _Const(_Bound):
    value: bool

    def __post_init__(self) -> None:
        self.sql = _Sql("TRUE" if self.value else "FALSE", True)

    def mask(self, level: _Level) -> Bools:
        return np.full(level.n, self.value)


@dataclass
class _Test(_Bound):
    source: _Source
    op: str
    value: Literal
    sql: _Sql = _NO_SQL

    def __post_init__(self) -> None:
        self.columns = frozenset(self.source.path[:1])

    def mask(self, level: _Level) -> Bools:
        return self.source.fetch(level).test(self.op, self.value)


@dataclass
class _Combined(_Bound):
    op: str
    parts: tuple[_Bound, ...]

    def __post_init__(self) -> None:
        self.columns = frozenset().union(*(p.columns for p in self.parts))
        sqls = [p.sql for p in self.parts]
        exact = all(s.exact for s in sqls)
        if self.op == "NOT":
            self.sql = _Sql(f"NOT ({sqls[0].text})", True) if exact else _NO_SQL
        elif self.op == "AND":
            # A conjunction pushes down whatever parts it can: the rest only narrows the result further.
            known = [f"({s.text})" for s in sqls if s.text is not None]
            self.sql = _Sql(" AND ".join(known), exact) if known else _NO_SQL
        elif all(s.text is not None for s in sqls):
            self.sql = _Sql(" OR ".join(f"({s.text})" for s in sqls), exact)

    def mask(self, level: _Level) -> Bools:
        found = [p.mask(level) for p in self.parts]
        if self.op == "NOT":
            return ~found[0]
        return np.asarray((np.logical_and if self.op == "AND" else np.logical_or).reduce(found), bool)


@dataclass
class _OverLabels(_Bound):
    kind: str
    cond: _Bound | None
    op: str = ""
    value: float = 0
    sql: _Sql = _NO_SQL
    counted: str = LABELS  # the column count(labels) reads: label_count when the table has it

    def __post_init__(self) -> None:
        self.columns = frozenset({self.counted if self.cond is None else LABELS})

    def mask(self, level: _Level) -> Bools:
        assert isinstance(level, _Frames)
        if self.cond is None:
            counted = level.array([self.counted])
            if self.counted == LABELS:
                counted = pc.list_value_length(counted)
            counts = pc.fill_null(counted, 0).to_numpy(zero_copy_only=False)
            return np.asarray(_COUNT_OPS[self.op](counts, self.value))
        labels = level.labels()
        found = self.cond.mask(labels)
        if self.kind == "any":
            out = np.zeros(level.n, bool)
            out[labels.parents[found]] = True
            return out
        if self.kind == "all":
            out = np.ones(level.n, bool)
            out[labels.parents[~found]] = False
            return out
        counts = np.bincount(labels.parents[found], minlength=level.n)
        return np.asarray(_COUNT_OPS[self.op](counts, self.value))


# binding names to the schema ---------------------------------------------------------------------------------------


def _sql_literal(value: str | float) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return repr(value)


def _integer_bound(op: str, value: float, t: pa.DataType) -> tuple[str, int] | bool:
    """`x op value` for x of integer type `t` as `x op' literal` in t's range (Lance refuses other literals for an
    integer column), or the constant it is for every such x. `op` is not !=."""
    bits = t.bit_width
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if pa.types.is_signed_integer(t) else (0, 2**bits - 1)
    if float(value).is_integer() and low <= value <= high:
        return op, int(value)
    if op == "=":
        return False
    above = op in {">", ">="}
    bound = math.ceil(value) if above else math.floor(value)
    if bound > high or bound < low:
        return above == (bound < low)
    return (">=" if above else "<="), bound


def _sql_compare(q: str, t: pa.DataType, op: str, value: Literal, nullable: bool = True) -> str:
    """Two-valued SQL for `q op value` (q a column or expression of type t) under this module's semantics: never
    NULL, so that NOT and OR around it stay right."""
    if value is None:
        return {"=": f"{q} IS NULL", "!=": f"{q} IS NOT NULL"}.get(op, "FALSE")
    if op == "!=":
        return f"NOT ({_sql_compare(q, t, '=', value, nullable)})"
    kind = _kind_of(value)
    element = t.value_type if _is_list(t) else t
    if _arrow_kind(element) != kind or (op == ":") != _is_list(t) or (kind == "B" and op != "="):
        return "FALSE"
    sql_op, literal = op, value
    if isinstance(value, int | float) and pa.types.is_integer(element):
        bound = _integer_bound("=" if op == ":" else op, value, element)
        if isinstance(bound, bool):
            return f"{q} IS NOT NULL" if bound else "FALSE"
        sql_op, literal = bound
    if op == ":":
        return f"({q} IS NOT NULL AND array_has({q}, {_sql_literal(literal)}))"
    matched = f"{q} {_SQL_OPS[sql_op]} {_sql_literal(literal)}"
    return f"({q} IS NOT NULL AND {matched})" if nullable else matched


def _shape(t: pa.DataType) -> str | None:
    if _arrow_kind(t) is not None:
        return "scalar"
    if _is_list(t) and _arrow_kind(t.value_type) is not None:
        return "list"
    if _is_metadata_value(t):
        return "mv"
    return "struct" if pa.types.is_struct(t) else None


class _Binder:
    def __init__(self, text: str, schema: pa.Schema) -> None:
        self.text, self.schema = text, schema
        self.names = set(schema.names)

    def frame(self, node: _Node) -> _Bound:
        if isinstance(node, _Bool):
            return _Combined(node.op, tuple(self.frame(p) for p in node.parts))
        if isinstance(node, _Labels):
            return self.over_labels(node)
        name, op, value = node.path[0], node.op, node.value
        typed = f"metadata_{name}"
        if typed in self.names:
            f = self.schema.field(typed)
            shape = _shape(f.type)
            if shape in {"scalar", "list"}:
                sql = _Sql(_sql_compare(f"`{typed}`", f.type, op, value, f.nullable), True)
                return _Test(_Source((typed,), shape), op, value, sql)
        if USER_METADATA in self.names:
            t = self.schema.field(USER_METADATA).type
            if pa.types.is_map(t) and (shape := _shape(t.item_type)) not in {None, "struct"}:
                return _Test(_Source((USER_METADATA,), shape, name), op, value)
        return _Const(_missing_result(op, value))

    def over_labels(self, node: _Labels) -> _Bound:
        if node.cond is None:
            if LABEL_COUNT not in self.names:
                self.label_type(node.pos)
                return _OverLabels("count", None, node.op, node.value)
            sql = _Sql(self.label_count(node.op, node.value), True)
            return _OverLabels("count", None, node.op, node.value, sql, LABEL_COUNT)
        cond = self.label(node.cond, self.label_type(node.pos))
        sql = _NO_SQL
        if (
            node.kind == "any"
            and isinstance(cond, _Test)
            and cond.source == _Source(("label_id",), "scalar")
            and cond.op == "="
            and isinstance(cond.value, str)
            and LABEL_IDS in self.names
        ):
            sql = _Sql(f"array_has(`{LABEL_IDS}`, {_sql_literal(cond.value)})", True)
        elif node.kind == "any" and LABEL_COUNT in self.names:
            sql = _Sql(self.label_count(">", 0), False)  # only frames with labels can have a matching one
        return _OverLabels(node.kind, cond, node.op, node.value, sql)

    def label_count(self, op: str, value: float) -> str:
        f = self.schema.field(LABEL_COUNT)
        # A frame without labels counts 0, never null.
        q = f"coalesce(`{LABEL_COUNT}`, 0)" if f.nullable else f"`{LABEL_COUNT}`"
        return _sql_compare(q, f.type, op, value, nullable=False)

    def label_type(self, pos: int) -> pa.StructType:
        t = self.schema.field(LABELS).type if LABELS in self.names else None
        if t is None or not _is_list(t) or not pa.types.is_struct(t.value_type):
            raise _error(self.text, pos, "this table has no labels to filter on")
        return t.value_type

    def label(self, node: _Node, label_type: pa.StructType) -> _Bound:
        if isinstance(node, _Bool):
            return _Combined(node.op, tuple(self.label(p, label_type) for p in node.parts))
        assert isinstance(node, _Cmp)
        t: pa.DataType = label_type
        where = "labels"
        path: list[str] = []
        key = None
        for i, (segment, pos) in enumerate(zip(node.path, node.positions, strict=True)):
            if pa.types.is_struct(t) and not _is_metadata_value(t) and key is None:
                index = t.get_field_index(segment)
                if index < 0:
                    raise _error(self.text, pos, f"unknown label field {where}.{segment}")
                t = t.field(index).type
                path.append(segment)
            elif pa.types.is_map(t) and key is None:
                key = segment
                t = t.item_type
            else:
                raise _error(self.text, pos, f"{where} has no field {segment!r}")
            where += f".{segment}"
            if i == len(node.path) - 1 and pa.types.is_map(t):
                raise _error(self.text, pos, f"name a key: {where}.<key>")
        shape = _shape(t)
        pos = node.positions[-1]
        oneof = columnar.always_stored(label_type, path)
        if oneof is not None and node.value is None and node.op in {"=", "!="}:
            # Stored on every label (empty unless it is the member set): set means its oneof names it.
            chosen = _shape(label_type.field(oneof).type)
            return _Test(_Source((oneof,), chosen, None), "!=" if node.op == "=" else "=", path[0])  # type: ignore[arg-type]
        if shape is None or (shape == "struct" and (node.value is not None or node.op not in {"=", "!="})):
            if shape == "struct":
                fields = ", ".join(t.field(i).name for i in range(t.num_fields))
                raise _error(self.text, pos, f"{where} is a struct: compare a field ({fields}) or test it against null")
            raise _error(self.text, pos, f"{where} ({t}) cannot be compared")
        return _Test(_Source(tuple(path), shape, key), node.op, node.value)


# public API --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledFilter:
    """A filter resolved against one table version's schema.

    `columns`: what `mask` reads. `sql`: a Lance SQL filter (pylance `scanner(filter=...)`) that selects exactly
    the matching frames when `residual` is false, a superset of them otherwise; None when nothing can be pushed
    down. `mask`: the exact result over rows of that table (a Table or RecordBatch holding `columns`).

        f = compile('weather = "rain" AND count(labels.classification = "car") >= 2', ds.schema)
        for batch in ds.scanner(columns=["frame_id", *f.columns], filter=f.sql).to_batches():
            rows = batch.filter(f.mask(batch)) if f.residual else batch
    """

    text: str
    columns: tuple[str, ...]
    sql: str | None
    residual: bool
    _root: _Bound = field(repr=False)

    def mask(self, rows: pa.Table | pa.RecordBatch) -> pa.BooleanArray:
        if isinstance(rows, pa.Table) and rows.num_rows and any(c.num_chunks > 1 for c in rows.columns):
            # Batch by batch: concatenating chunks of a wide labels column copies it.
            found = np.concatenate([self._root.mask(_Frames(batch)) for batch in rows.to_batches()])
        else:
            found = self._root.mask(_Frames(rows))
        return pa.array(found, pa.bool_())


def compile(text: str, schema: pa.Schema) -> CompiledFilter:
    """Compile `text` for a frame table of this schema; an empty filter matches every frame."""
    node = _Parser(text).parse()
    if node is None:
        return CompiledFilter(text, (), None, False, _Const(True))
    root = _Binder(text, schema).frame(node)
    return CompiledFilter(text, tuple(sorted(root.columns)), root.sql.text, not root.sql.exact, root)


def parse(text: str) -> Predicate:
    """A metadata-only filter as a predicate over one frame's metadata dict (key -> scalar, list or None)."""
    node = _Parser(text).parse()
    if node is None:
        return lambda _: True

    def check(n: _Node) -> None:
        if isinstance(n, _Labels):
            raise _error(text, n.pos, "label conditions need the frame table")
        if isinstance(n, _Bool):
            for p in n.parts:
                check(p)

    check(node)

    def evaluate(n: _Node, metadata: Mapping[str, Any]) -> bool:
        if isinstance(n, _Cmp):
            return _py_test(metadata.get(n.path[0]), n.op, n.value)
        assert isinstance(n, _Bool)
        if n.op == "NOT":
            return not evaluate(n.parts[0], metadata)
        found = (evaluate(p, metadata) for p in n.parts)
        return all(found) if n.op == "AND" else any(found)

    return lambda metadata: evaluate(node, metadata)
