"""Filters compiled to columnar evaluation over the frame table layout (one row per frame, labels as a list of
structs, metadata as typed `metadata_<name>` columns and a `user_metadata` map), checked against a plain-Python
reference over the same rows: in memory (whole tables, several chunks, sliced batches, only the columns the filter
names) and through a Lance dataset, with the SQL pushed down and the mask applied when residual."""

from __future__ import annotations

import json
import operator
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import lance
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shoal.kit.errors import InvalidArgument
from shoal.storage import filters

# the table layout ------------------------------------------------------------------------------------------------


def _values_of(t: pa.DataType) -> pa.DataType:
    return pa.struct([("values", pa.list_(t))])


F64 = pa.float64()
SCALAR_KINDS = {bool: "bool_value", int: "int_value", float: "float_value", str: "string_value"}
LIST_KINDS = {bool: "bool_list_value", int: "int_list_value", float: "float_list_value", str: "string_list_value"}
MV = pa.struct(
    [
        ("string_value", pa.string()),
        ("int_value", pa.int64()),
        ("float_value", F64),
        ("bool_value", pa.bool_()),
        ("string_list_value", _values_of(pa.string())),
        ("int_list_value", _values_of(pa.int64())),
        ("float_list_value", _values_of(F64)),
        ("bool_list_value", _values_of(pa.bool_())),
        ("null_value", pa.int32()),
        ("kind", pa.string()),  # which member is set, as the tables write each oneof
    ]
)
BOX = pa.struct([("left", F64), ("top", F64), ("width", F64), ("height", F64), ("iscrowd", pa.bool_())])
KEYPOINT = pa.struct([("name", pa.string()), ("x", F64), ("y", F64), ("visibility", pa.int32())])
LABEL = pa.struct(
    [
        ("label_id", pa.string()),
        ("classification", pa.string()),
        ("sensor_id", pa.string()),
        ("coordinate_frame_id", pa.string()),
        ("attributes", pa.map_(pa.string(), MV)),
        ("confidence", pa.float32()),
        ("box_2d", BOX),
        ("keypoints_2d", pa.struct([("keypoints", pa.list_(KEYPOINT)), ("box", BOX)])),
        # polygon_list_2d (struct<polygons: list<struct<vertices: list<struct>>>>) is left out: written as
        # from_pylist builds it, pylance 14.0.2 cannot read it back once a frame has no labels and a label has no
        # polygons ("Incorrect number of nulls for StructArray").
        ("geometry", pa.string()),
        ("area", F64),
    ]
)
TYPED = {"weather": pa.string(), "speed": pa.int64(), "score": F64, "night": pa.bool_(), "tags": pa.list_(pa.string())}
SCHEMA = pa.schema(
    [
        pa.field("frame_id", pa.string(), nullable=False),
        pa.field("labels", pa.list_(LABEL)),
        pa.field("user_metadata", pa.map_(pa.string(), MV)),
        *(pa.field(f"metadata_{name}", t) for name, t in TYPED.items()),
        pa.field("label_count", pa.int32(), nullable=False),
        pa.field("label_ids", pa.list_(pa.string()), nullable=False),
    ]
)


def metadata_value(value: Any) -> dict[str, Any]:
    """A MetadataValue struct: exactly one member set (a typed null for None)."""
    if value is None:
        return {"null_value": 1, "kind": "null_value"}
    if isinstance(value, list):
        kind = LIST_KINDS[type(value[0])] if value else "string_list_value"
        return {kind: {"values": value}, "kind": kind}
    return {SCALAR_KINDS[type(value)]: value, "kind": SCALAR_KINDS[type(value)]}


def frame_row(frame_id: str, metadata: dict[str, Any], labels: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A row as the tables write it, from plain metadata (key -> scalar, list or None) and label dicts."""
    rows = [
        {
            "label_id": label.get("label_id", f"{frame_id}-{i}"),
            "classification": label.get("classification", ""),
            "sensor_id": "cam",
            "coordinate_frame_id": "",
            "attributes": [(k, metadata_value(v)) for k, v in label.get("attributes", {}).items()],
            "confidence": label.get("confidence"),
            "box_2d": label.get("box"),
            "keypoints_2d": None,
            "geometry": "box_2d" if label.get("box") else None,
            "area": label.get("area"),
        }
        for i, label in enumerate(labels)
    ]
    return {
        "frame_id": frame_id,
        "labels": rows,
        "user_metadata": [(k, metadata_value(v)) for k, v in metadata.items()],
        **{f"metadata_{name}": metadata.get(name) for name in TYPED},
        "label_count": len(rows),
        "label_ids": [r["label_id"] for r in rows],
    }


def table_of(rows: Sequence[dict[str, Any]], schema: pa.Schema = SCHEMA) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=schema)


# the reference: plain Python over the rows as Arrow gives them back ----------------------------------------------


def decoded(mv: dict[str, Any] | None) -> Any:
    """The value a MetadataValue struct holds; None for a typed null."""
    for kind in SCALAR_KINDS.values():
        if mv is not None and mv[kind] is not None:
            return mv[kind]
    for kind in LIST_KINDS.values():
        if mv is not None and mv[kind] is not None:
            return list(mv[kind]["values"])
    return None


def family(value: Any) -> type:
    return bool if isinstance(value, bool) else str if isinstance(value, str) else float


ORDERED = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
COMPARED = {**ORDERED, "=": operator.eq, "!=": operator.ne}


def holds(actual: Any, op: str, literal: Any) -> bool:
    """The documented comparison semantics, written out case by case."""
    if literal is None:
        return {"=": actual is None, "!=": actual is not None}.get(op, False)
    if op == "!=":
        return not holds(actual, "=", literal)
    if actual is None:
        return False
    if op == ":":
        return isinstance(actual, list) and any(family(x) is family(literal) and x == literal for x in actual)
    if isinstance(actual, list | dict) or family(actual) is not family(literal):
        return False
    if op == "=":
        return bool(actual == literal)
    return family(literal) is not bool and ORDERED[op](actual, literal)


def metadata_of(row: dict[str, Any]) -> dict[str, Any]:
    return {key: decoded(mv) for key, mv in row["user_metadata"] or []}


def label_value(label: dict[str, Any], path: Sequence[str]) -> Any:
    if path[0] == "attributes":
        return next((decoded(mv) for key, mv in label["attributes"] or [] if key == path[1]), None)
    value: Any = label
    for segment in path:
        value = None if value is None else value[segment]
    return value


@dataclass(frozen=True)
class Cond:
    """A filter and what the reference says of it: `text` as written at frame level (label conditions spelled
    `labels.<path>`), `relative` as written inside labels(...), `test` of a frame row (or of a label)."""

    text: str
    test: Callable[[dict[str, Any]], bool]
    relative: str = ""


def literal_text(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=len(value) % 2 == 0) if isinstance(value, str) else repr(value)


def expected(table: pa.Table, cond: Cond) -> list[bool]:
    return [cond.test(row) for row in table.to_pylist()]


# strategies ------------------------------------------------------------------------------------------------------

WORDS = ["car", "bus", "rain", "sun", "", "it's", 'é"x', "urban", "1", "true"]
NUMBERS = [-3, 0, 1, 2, 5, 1024, 0.5, 2.5, -0.0, 1e12, 0.9, 0.75]
OPS = ["=", "!=", "<", "<=", ">", ">=", ":"]
words = st.sampled_from(WORDS)
ints = st.sampled_from([-3, 0, 1, 2, 5, 1024]) | st.integers(-4, 4)
floats = st.sampled_from([0.5, 2.5, 1.0, -0.0, 1e12, 0.75])
scalars = words | ints | floats | st.booleans()
lists = (
    st.lists(words, max_size=3)
    | st.lists(ints, max_size=3)
    | st.lists(floats, max_size=2)
    | st.lists(st.booleans(), max_size=2)
)
literals = st.sampled_from(WORDS) | st.sampled_from(NUMBERS) | st.booleans() | st.none()
TYPED_VALUES = {
    "weather": words,
    "speed": ints,
    "score": floats | ints,
    "night": st.booleans(),
    "tags": st.lists(words, max_size=3),
}
absent = st.just(...)


@st.composite
def frame_metadata(draw: st.DrawFn) -> dict[str, Any]:
    """Typed keys hold their schema's type (or null); other keys hold any kind, differing between frames."""
    found: dict[str, Any] = {}
    for key, values in {**TYPED_VALUES, "mood": scalars | lists, "vals": lists | scalars}.items():
        value = draw(values | st.none() | absent)
        if value is not ...:
            found[key] = value
    return found


labels_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "classification": st.sampled_from(["car", "bus", "person"]),
            "confidence": st.none() | st.sampled_from([0.25, 0.5, 0.9]),
            "area": st.none() | st.sampled_from([50.0, 500.0, 1024.0, 5000.0]),
            "box": st.none()
            | st.fixed_dictionaries(
                {
                    "left": st.just(1.0),
                    "top": st.just(2.0),
                    "width": st.sampled_from([50.0, 120.0]),
                    "height": st.just(9.0),
                    "iscrowd": st.booleans(),
                }
            ),
            "attributes": st.dictionaries(st.sampled_from(["occluded", "color", "n", "parts"]), scalars | lists),
        }
    ),
    max_size=4,
)
tables = st.lists(st.tuples(frame_metadata(), labels_strategy), max_size=8).map(
    lambda frames: table_of([frame_row(f"f{i:02}", m, ls) for i, (m, ls) in enumerate(frames)])
)

LABEL_PATHS = [
    ("classification",),
    ("label_id",),
    ("confidence",),
    ("area",),
    ("sensor_id",),
    ("box_2d", "width"),
    ("box_2d", "iscrowd"),
    ("attributes", "occluded"),
    ("attributes", "n"),
    ("attributes", "parts"),
    ("attributes", "nothere"),
]


@st.composite
def label_comparisons(draw: st.DrawFn) -> Cond:
    if draw(st.integers(0, 9)) == 0:  # a struct is only tested against null
        path, op, literal = ("box_2d",), draw(st.sampled_from(["=", "!="])), None
    else:
        path, op = draw(st.sampled_from(LABEL_PATHS)), draw(st.sampled_from(OPS))
        literal = draw(st.sampled_from(["f00-0", "f01-1"]) if path == ("label_id",) else literals)
    name = ".".join(path)
    rest = f" {op} {literal_text(literal)}"
    return Cond(f"labels.{name}{rest}", lambda label: holds(label_value(label, path), op, literal), f"{name}{rest}")


def both(a: Cond, b: Cond, word: str = "AND") -> Cond:
    return Cond(f"({a.text} {word} {b.text})", lambda x: a.test(x) and b.test(x), f"({a.relative} {word} {b.relative})")


def either(a: Cond, b: Cond, word: str = "OR") -> Cond:
    return Cond(f"({a.text} {word} {b.text})", lambda x: a.test(x) or b.test(x), f"({a.relative} {word} {b.relative})")


def negated(c: Cond) -> Cond:
    return Cond(f"NOT {c.text}", lambda x: not c.test(x), f"NOT {c.relative}")


def combinations(parts: st.SearchStrategy[Cond]) -> st.SearchStrategy[Cond]:
    """AND, OR (either case) and NOT of conditions."""
    return (
        st.builds(both, parts, parts, st.sampled_from(["AND", "and"]))
        | st.builds(either, parts, parts, st.sampled_from(["OR", "or"]))
        | parts.map(negated)
    )


label_conditions = st.recursive(label_comparisons(), combinations, max_leaves=3)


@st.composite
def metadata_comparisons(draw: st.DrawFn) -> Cond:
    key = draw(st.sampled_from([*TYPED, "mood", "vals", "nothere"]))
    op, literal = draw(st.sampled_from(OPS)), draw(literals)
    return Cond(f"{key} {op} {literal_text(literal)}", lambda row: holds(metadata_of(row).get(key), op, literal))


@st.composite
def label_forms(draw: st.DrawFn) -> Cond:
    """A frame condition over labels: any, one label meeting a condition, all, and counts."""
    cond = draw(label_conditions)
    form = draw(st.sampled_from(["any", "one", "all", "count", "count one", "count all"]))
    if form == "any":
        cond = draw(label_comparisons())
        return Cond(cond.text, lambda row: any(cond.test(x) for x in row["labels"] or []))
    if form == "one":
        return Cond(f"labels({cond.relative})", lambda row: any(cond.test(x) for x in row["labels"] or []))
    if form == "all":
        return Cond(f"all({cond.text})", lambda row: all(cond.test(x) for x in row["labels"] or []))
    op, n = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="])), draw(st.sampled_from([0, 1, 2, 1.5, 1e12]))
    counted = {"count": cond.text, "count one": f"labels({cond.relative})", "count all": "labels"}[form]
    test = (lambda x: True) if form == "count all" else cond.test
    return Cond(
        f"count({counted}) {op} {n!r}",
        lambda row: COMPARED[op](sum(1 for x in row["labels"] or [] if test(x)), n),
    )


any_conditions = st.recursive(metadata_comparisons() | label_forms(), combinations, max_leaves=4)
metadata_conditions = st.recursive(metadata_comparisons(), combinations, max_leaves=4)


# properties ------------------------------------------------------------------------------------------------------


def mask_of(compiled: filters.CompiledFilter, rows: pa.Table | pa.RecordBatch) -> list[bool]:
    found = compiled.mask(rows)
    assert isinstance(found, pa.BooleanArray)
    assert found.null_count == 0
    assert len(found) == rows.num_rows
    return found.to_pylist()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables, cond=any_conditions, cut=st.integers(0, 8))
def test_mask_matches_the_reference(table: pa.Table, cond: Cond, cut: int) -> None:
    compiled = filters.compile(cond.text, table.schema)
    want = expected(table, cond)
    assert mask_of(compiled, table) == want, compiled
    # Several chunks, a sliced batch (non-zero offsets) and only the columns the filter names give the same.
    cut = min(cut, table.num_rows)
    assert mask_of(compiled, pa.concat_tables([table.slice(0, cut), table.slice(cut)])) == want
    batch = table.combine_chunks().to_batches()[0] if table.num_rows else None
    if batch is not None:
        assert mask_of(compiled, batch.slice(cut)) == want[cut:]
    assert mask_of(compiled, table.select(["frame_id", *compiled.columns])) == want


@settings(max_examples=100, deadline=None)
@given(table=tables, cond=metadata_conditions)
def test_metadata_without_typed_columns_reads_the_map(table: pa.Table, cond: Cond) -> None:
    """An old table version without the typed columns answers the same from user_metadata."""
    old = table.drop_columns([f"metadata_{name}" for name in TYPED])
    compiled = filters.compile(cond.text, old.schema)
    assert mask_of(compiled, old) == expected(table, cond)
    assert not {c for c in compiled.columns if c.startswith("metadata_")}


@settings(max_examples=150, deadline=None)
@given(table=tables, cond=metadata_conditions)
def test_parse_agrees_on_metadata_dicts(table: pa.Table, cond: Cond) -> None:
    predicate = filters.parse(cond.text)
    assert [predicate(metadata_of(row)) for row in table.to_pylist()] == expected(table, cond)


def scan(ds: lance.LanceDataset, compiled: filters.CompiledFilter, *, apply_mask: bool = True) -> list[str]:
    """The frame ids a reader gets: the SQL pushed down, then the mask where residual."""
    columns = ["frame_id", *compiled.columns]
    got = ds.to_table(columns=columns, filter=compiled.sql)
    if apply_mask and compiled.residual:
        got = got.filter(compiled.mask(got))
    return sorted(got.column("frame_id").to_pylist())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables, conds=st.lists(any_conditions, min_size=1, max_size=6))
def test_lance_push_down_then_mask_matches_the_reference(table: pa.Table, conds: list[Cond]) -> None:
    with tempfile.TemporaryDirectory() as where:
        ds = lance.write_dataset(table, where)
        rows = ds.to_table().to_pylist()
        for cond in conds:
            compiled = filters.compile(cond.text, ds.schema)
            want = sorted(row["frame_id"] for row in rows if cond.test(row))
            assert scan(ds, compiled) == want, compiled
            # The SQL alone selects a superset, exactly the answer when nothing is residual.
            pushed = scan(ds, compiled, apply_mask=False)
            assert set(want) <= set(pushed), compiled
            if not compiled.residual:
                assert pushed == want, compiled


# what each predicate kind means ----------------------------------------------------------------------------------


def car(area: float, confidence: float | None, **more: Any) -> dict[str, Any]:
    return {"classification": "car", "area": area, "confidence": confidence, **more}


EXAMPLE = table_of(
    [
        frame_row(
            "f0",
            {"weather": "rain", "speed": 12, "tags": ["urban", "1"], "mood": "happy"},
            [
                car(
                    500,
                    0.875,
                    box={"left": 0, "top": 0, "width": 120, "height": 4, "iscrowd": False},
                    attributes={"occluded": True},
                ),
                {"classification": "bus", "area": 5000, "confidence": 0.25, "attributes": {"n": 3}},
            ],
        ),
        frame_row(
            "f1",
            {"weather": "sun", "speed": 5, "score": 2.5, "night": False, "mood": 3.0, "vals": [True]},
            [
                car(
                    2000,
                    0.75,
                    box={"left": 0, "top": 0, "width": 50, "height": 4, "iscrowd": True},
                    attributes={"occluded": False},
                ),
                car(100, 0.25, attributes={"n": 3.0, "parts": ["door", "wheel"]}),
            ],
        ),
        frame_row("f2", {}),
        frame_row(
            "f3",
            {"weather": None, "mood": 3},
            [
                {
                    "classification": "person",
                    "area": 50,
                    "box": {"left": 0, "top": 0, "width": 200, "height": 4, "iscrowd": False},
                }
            ],
        ),
    ]
)


@pytest.mark.parametrize(
    ("text", "frames"),
    [
        ('weather = "rain"', "f0"),
        ('weather != "rain"', "f1 f2 f3"),  # != is the negation of =: frames without weather too
        ("weather = null", "f2 f3"),  # missing and typed null alike
        ("weather != null", "f0 f1"),
        ('weather > "s"', "f1"),
        ("speed > 10", "f0"),
        ("speed >= 4.5", "f0 f1"),
        ("speed < null", ""),  # ordering against null is false
        ('tags : "urban"', "f0"),
        ('tags = "urban"', ""),  # a list equals no scalar
        ("mood = 3", "f1 f3"),  # numbers compare across integer and float
        ('mood = "happy"', "f0"),
        ("night = 0", ""),  # booleans are not numbers
        ("night = false", "f1"),
        ("night >= false", ""),  # booleans are not ordered
        ("tags : 1", ""),  # "1" is a string
        ("vals : 1", ""),  # true is not 1
        ("vals : true", "f1"),
        ("vals != null", "f1"),  # a list is present
        ("nothere = 1", ""),  # unknown keys: every frame lacks them
        ("nothere != 1", "f0 f1 f2 f3"),
        ("nothere = null", "f0 f1 f2 f3"),
        ('labels.classification = "car"', "f0 f1"),  # some label
        ('labels.classification = "car" AND labels.confidence > 0.5 AND labels.area < 1024', "f0 f1"),
        ('labels(classification = "car" AND confidence > 0.5 AND area < 1024)', "f0"),  # one label meets all
        ('all(labels.classification = "car")', "f1 f2"),  # vacuously true without labels
        ('all(labels.classification = "car" AND labels.area > 1000)', "f2"),
        ("count(labels) > 1", "f0 f1"),
        ("count(labels) = 0", "f2"),
        ('count(labels.classification = "car") >= 2', "f1"),
        ('count(labels(classification = "car" AND confidence > 0.5)) = 0', "f2 f3"),
        ("labels.box_2d.width > 100", "f0 f3"),
        ("labels.box_2d.iscrowd = true", "f1"),
        ("labels.box_2d = null", "f0 f1"),  # a label that is not a box
        ("labels.area < 1024", "f0 f1 f3"),
        ("labels.confidence = null", "f3"),
        ('labels.label_id = "f1-1"', "f1"),
        ("labels.attributes.occluded = true", "f0"),
        ("labels.attributes.occluded != true", "f0 f1 f3"),  # some label is not occluded (or lacks the key)
        ("labels.attributes.n = 3", "f0 f1"),
        ('labels.attributes.parts : "wheel"', "f1"),
        ("labels.attributes.parts != null", "f1"),
        ("labels.attributes.parts = null", "f0 f1 f3"),
        ('labels.geometry = "box_2d"', "f0 f1 f3"),
        ('labels.label_id != "f1-1"', "f0 f1 f3"),  # some other label
        ("labels.attributes.n > 2.5 AND weather = null", ""),
        ('NOT (labels.classification = "car" OR count(labels) = 0)', "f3"),
        ('labels.classification = "person" or WEATHER = "x" or speed > 11', "f0 f3"),
        ("", "f0 f1 f2 f3"),
    ],
)
def test_predicate_kinds(text: str, frames: str) -> None:
    compiled = filters.compile(text, SCHEMA)
    found = [
        fid for fid, hit in zip(EXAMPLE.column("frame_id").to_pylist(), mask_of(compiled, EXAMPLE), strict=True) if hit
    ]
    assert found == frames.split()
    with tempfile.TemporaryDirectory() as where:
        ds = lance.write_dataset(EXAMPLE, where)
        assert scan(ds, filters.compile(text, ds.schema)) == frames.split()


@pytest.mark.parametrize(
    ("text", "sql", "columns"),
    [
        (
            'weather = "it\'s"',
            "(`metadata_weather` IS NOT NULL AND `metadata_weather` = 'it''s')",
            ("metadata_weather",),
        ),
        ("speed > 4.5", "(`metadata_speed` IS NOT NULL AND `metadata_speed` >= 5)", ("metadata_speed",)),
        ("speed = 4.5", "FALSE", ("metadata_speed",)),
        ("speed > 1e30", "FALSE", ("metadata_speed",)),
        ('tags : "urban"', "(`metadata_tags` IS NOT NULL AND array_has(`metadata_tags`, 'urban'))", ("metadata_tags",)),
        ("count(labels) >= 2", "`label_count` >= 2", ("label_count",)),
        ('labels.label_id = "x"', "array_has(`label_ids`, 'x')", ("labels",)),
        ("NOT night = true", "NOT ((`metadata_night` IS NOT NULL AND `metadata_night` = TRUE))", ("metadata_night",)),
        ("night < true", "FALSE", ("metadata_night",)),
        ("tags : 1", "FALSE", ("metadata_tags",)),
    ],
)
def test_exact_push_down(text: str, sql: str, columns: tuple[str, ...]) -> None:
    compiled = filters.compile(text, SCHEMA)
    assert (compiled.sql, compiled.residual, compiled.columns) == (sql, False, columns)


def test_residual_conditions_keep_what_can_be_pushed_down() -> None:
    speed = "(`metadata_speed` IS NOT NULL AND `metadata_speed` > 10)"
    both = filters.compile('speed > 10 AND labels.classification = "car"', SCHEMA)
    # A label condition needs a label: label_count > 0 is a sound pre-filter.
    assert (both.sql, both.residual) == (f"({speed}) AND (`label_count` > 0)", True)
    assert both.columns == ("labels", "metadata_speed")
    either = filters.compile('speed > 10 OR labels.classification = "car"', SCHEMA)
    assert (either.sql, either.residual) == (f"({speed}) OR (`label_count` > 0)", True)
    # An OR with a side that pushes nothing, or a NOT of a pre-filter, pushes nothing: no superset to offer.
    for text in ("speed > 10 OR mood = 3", 'NOT (speed > 10 AND labels.classification = "car")'):
        compiled = filters.compile(text, SCHEMA)
        assert (compiled.sql, compiled.residual) == (None, True)
    assert filters.compile("mood = 3", SCHEMA).sql is None  # map entries are read by the mask
    assert filters.compile('labels.label_id != "x"', SCHEMA).sql == "`label_count` > 0"  # only = has label_ids
    assert filters.compile('all(labels.classification = "car")', SCHEMA).sql is None  # true without labels
    everything = filters.compile("", SCHEMA)
    assert (everything.columns, everything.sql, everything.residual) == ((), None, False)


def test_a_typed_column_is_authoritative() -> None:
    """A frame whose typed column is null counts as lacking the key, whatever its user_metadata map holds."""
    row = frame_row("old", {"weather": "rain"}) | {"metadata_weather": None}
    table = table_of([row])
    assert mask_of(filters.compile('weather = "rain"', SCHEMA), table) == [False]
    assert mask_of(filters.compile('weather = "rain"', table.drop_columns(["metadata_weather"]).schema), table) == [
        True
    ]


def test_count_without_label_count_reads_the_labels() -> None:
    table = EXAMPLE.drop_columns(["label_count"])
    compiled = filters.compile("count(labels) >= 2", table.schema)
    assert (compiled.columns, compiled.sql, compiled.residual) == (("labels",), None, True)
    assert mask_of(compiled, table) == [True, True, False, False]


def test_mask_names_a_column_the_rows_lack() -> None:
    compiled = filters.compile('labels.classification = "car"', SCHEMA)
    with pytest.raises(ValueError, match="'labels'"):
        compiled.mask(EXAMPLE.select(["frame_id"]))


# errors ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "problem"),
    [
        ("weather = ", 10, "unexpected end"),
        ("weather ~ 1", 8, "unexpected character"),
        ("(weather = 1", 0, "unclosed parenthesis"),
        ("weather = 1 speed", 12, "unexpected token"),
        ("weather = rain", 10, "expected a value"),
        ('weather = "\\q"', 10, "invalid escape"),
        ("speed > 1e999", 8, "number out of range"),
        ("AND = 1", 0, "expected a field name"),
        ("weather 1", 8, "expected a comparison"),
        ("a.b = 1", 2, "metadata keys have no '.'"),
        ("labels = 1", 0, "name a label field"),
        ("labels.foo = 1", 7, "unknown label field labels.foo"),
        ("x = 1 AND labels.box_2d.depth > 1", 24, "unknown label field labels.box_2d.depth"),
        ("labels.area.x = 1", 12, "labels.area has no field 'x'"),
        ("labels.box_2d > 1", 7, "labels.box_2d is a struct"),
        ("labels.attributes = true", 7, "name a key: labels.attributes.<key>"),
        ("labels.keypoints_2d.keypoints = 1", 20, "cannot be compared"),
        ("labels(area > 1 AND nope = 1)", 20, "unknown label field labels.nope"),
        ("labels(labels.area > 1)", 7, "without 'labels.'"),
        ("all(weather = 1)", 4, "conditions are on labels.<field>"),
        ("all(count(labels) > 1)", 4, "cannot stand inside"),
        ('count(labels) > "x"', 16, "compares with a number"),
        ("count(labels) : 1", 14, "expected a comparison after count"),
        ("count(labels.area > 1", 21, "expected ')' closing count("),
    ],
)
def test_errors_name_the_position(text: str, position: int, problem: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        filters.compile(text, SCHEMA)
    assert caught.value.reason == "INVALID_FILTER"
    (violation,) = caught.value.violations
    assert violation.field == "filter"
    assert problem in violation.description
    assert f"at position {position}:" in violation.description


def test_label_conditions_need_a_labels_column() -> None:
    with pytest.raises(InvalidArgument, match="no labels"):
        filters.compile('labels.classification = "car"', pa.schema([("frame_id", pa.string())]))


def test_parse_keeps_serving_metadata_dicts() -> None:
    predicate = filters.parse('weather = "rain" AND (speed > 10 OR night = true) AND NOT tags : "x"')
    assert predicate({"weather": "rain", "speed": 11, "tags": ["y"]})
    assert not predicate({"weather": "rain", "speed": 11, "tags": ["x"]})
    assert not predicate({"weather": "rain", "speed": 1, "night": False})
    assert filters.parse("")({})
    with pytest.raises(InvalidArgument, match="position 0"):
        filters.parse('labels.classification = "car"')
