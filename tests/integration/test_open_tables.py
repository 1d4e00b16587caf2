"""The tables as other engines read them. A dataset is uploaded through a whole suite (boxes and polygons, metadata
with a schema, embeddings, a checkpoint, then changes after it); the Python blocks of docs/concepts.md's "Reading
the tables with other engines" run on it as written, in order, in one namespace, with DuckDB, Polars and Lance; and
every answer, at the newest version, at version 1 and at the checkpoint, equals what the API returns for the same
version. The columns the section lists are the tables' columns. Were frames stored as blobs again, every query would
fail."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lance
import numpy as np
import pyarrow as pa
import pytest
import shoal
from shoal.kit.settings import StoreSettings
from shoal.v1 import frame_pb2, label_pb2, upload_pb2

from tests.conftest import ADMIN_KEY, ServerThread, start_suite

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "concepts.md"
SECTION = "## Reading the tables with other engines"
# What the docs' blocks name: the project, dataset, checkpoint and query vector the upload below makes for them.
PROJECT, DATASET, CHECKPOINT = "traffic", "drives", "before-review"
QUERY = [0.9, 0.1, 0.0, 0.4]
CLASSES = ["car", "person", "bike"]
WEATHER = ["sun", "rain", "fog"]


def section() -> str:
    text = DOC.read_text()
    start = text.index(SECTION + "\n")
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end >= 0 else len(text)]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def committed(client: shoal.Client, report: shoal.UploadReport) -> None:
    done = client.wait_for_upload(report.name, timeout=120, poll_seconds=0.05)
    assert done.state == upload_pb2.UPLOAD_STATE_COMMITTED, done


def embedding_of(i: int) -> list[float] | None:
    if i == 7:
        return None  # a frame without an embedding: its vector is null
    if i == 5:
        return [0.9, 0.12, 0.01, 0.41]  # nearest to QUERY until it is deleted
    rng = np.random.default_rng(100 + i)
    return [float(v) for v in rng.standard_normal(4)]


def frame(i: int) -> shoal.LabeledFrame:
    """Frame i: weather by i % 3, i % 3 + 1 boxes of classes by i + box, a polygon on every fourth frame."""
    f = shoal.LabeledFrame(frame_id=f"f{i:02d}")
    f.add_image(sensor_id="cam", image_url=f"s3://b/{i}.jpg", width=200, height=100)
    f.add_user_metadata("weather", WEATHER[i % 3])
    f.add_user_metadata("speed", 10.0 + i)
    for b in range(i % 3 + 1):
        f.add_label_2d_bbox(
            sensor_id="cam",
            label_id=f"f{i:02d}-{b}",
            classification=CLASSES[(i + b) % 3],
            left=10 * b,
            top=i,
            width=5 + i + 2 * b,
            height=4 + b,
            # As a COCO import carries it over: the label's area, not its box's.
            user_attrs={"area": 33.0} if (i, b) == (2, 0) else None,
        )
    if i % 4 == 0:
        f.add_label_2d_polygon_list(
            sensor_id="cam",
            label_id=f"f{i:02d}-poly",
            classification="person",
            polygons=[{"vertices": [(0, 0), (20, 0), (0, 10)]}],
        )
    vector = embedding_of(i)
    if vector is not None:
        f.add_frame_embedding(embedding=vector, model_id="resnet")
    return f


@dataclass
class Uploaded:
    client: shoal.Client
    store: Path


@pytest.fixture
def uploaded(
    start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Uploaded]:
    """Four versions of traffic/drives, written by a whole suite into `.shoal/store` under the working directory
    (where the docs' blocks look): v1 twelve frames, checkpointed; v2 a box relabelled, another resized; v3 f05
    deleted; v4 f03's weather changed and f12 added."""
    store = tmp_path / ".shoal" / "store"
    started = start_suite(start_service, redis_db, StoreSettings(url=store.as_uri()))
    monkeypatch.chdir(tmp_path)
    with shoal.Client(
        api_key=ADMIN_KEY, addresses={n: s.target for n, s in started.items()}, show_progress=False
    ) as client:
        client.create_project(PROJECT, shoal.LabelClassMap.from_classnames(CLASSES))
        client.create_dataset(
            PROJECT,
            DATASET,
            embedding_dim=4,
            metadata_schema=[{"name": "weather", "type": "STRING"}, {"name": "speed", "type": "FLOAT"}],
        )
        first = shoal.LabeledDataset()
        for i in range(12):
            first.add_frame(frame(i))
        committed(client, client.create_or_update_dataset(PROJECT, DATASET, dataset=first))
        client.create_checkpoint(PROJECT, DATASET, CHECKPOINT, version=1)

        relabel = shoal.UpdateGTLabelSet(frame_id="f01")
        relabel.update_label_2d_bbox(
            sensor_id="cam", label_id="f01-0", classification="bike", left=0, top=1, width=30, height=3
        )
        resize = shoal.UpdateGTLabelSet(frame_id="f04")
        resize.update_label_2d_bbox(
            sensor_id="cam", label_id="f04-1", classification="bike", left=10, top=4, width=40, height=20
        )
        committed(client, client.update_dataset_labels(PROJECT, DATASET, [relabel, resize]))

        # A delete in a version of its own.
        deletion = shoal.LabeledDataset()
        deletion.delete_frame("f05")
        committed(client, client.create_or_update_dataset(PROJECT, DATASET, dataset=deletion))

        weather = shoal.LabeledFrame(frame_id="f03", update_type="MODIFY")
        weather.add_user_metadata("weather", "rain")
        committed(client, client.update_dataset_frames(PROJECT, DATASET, [weather, frame(12)]))
        assert [v.version for v in client.list_versions(PROJECT, DATASET)] == [4, 3, 2, 1]
        yield Uploaded(client, store.resolve())


def run_docs() -> dict[str, Any]:
    """The namespace the section's python blocks leave, run in order as a reader would paste them."""
    blocks = python_blocks(section())
    assert len(blocks) >= 5, "the section lost its code"
    namespace: dict[str, Any] = {}
    for number, block in enumerate(blocks, start=1):
        try:
            exec(compile(block, f"docs/concepts.md, reading the tables, python block {number}", "exec"), namespace)
        except Exception as err:
            pytest.fail(f"python block {number} failed: {type(err).__name__}: {err}\n{block}")
    return namespace


# What the API says, computed the plain way from the frames it returns.


def api_frames(
    client: shoal.Client, version: int | None = None, checkpoint: str | None = None
) -> list[frame_pb2.Frame]:
    return list(client.get_frames(PROJECT, DATASET, version=version, checkpoint=checkpoint))


def boxes(frames: Iterable[frame_pb2.Frame]) -> Iterator[tuple[frame_pb2.Frame, label_pb2.Label]]:
    for f in frames:
        for label in f.labels:
            if label.WhichOneof("geometry") == "box_2d":
                yield f, label


def boxes_per_class(frames: Iterable[frame_pb2.Frame]) -> list[tuple[str, int]]:
    return sorted(Counter(label.classification for _, label in boxes(frames)).items())


def mean_box_area_by_weather(frames: Iterable[frame_pb2.Frame]) -> list[tuple[str, float, int]]:
    areas: dict[str, list[float]] = defaultdict(list)
    for f, label in boxes(frames):
        given = label.attributes.get("area")
        area = given.float_value if given is not None else label.box_2d.width * label.box_2d.height
        areas[f.user_metadata["weather"].string_value].append(area)
    return [(weather, float(np.mean(values)), len(values)) for weather, values in sorted(areas.items())]


def same(found: list[tuple[Any, ...]], expected: list[tuple[str, float, int]]) -> None:
    """Rows of (group, mean, count) are equal: groups and counts exactly, means to float precision."""
    assert [(g, n) for g, _, n in found] == [(g, n) for g, _, n in expected]
    assert [m for _, m, _ in found] == pytest.approx([m for _, m, _ in expected])


def test_the_docs_queries_answer_what_the_api_answers(uploaded: Uploaded) -> None:
    client = uploaded.client
    docs = run_docs()
    store = docs["store"]
    assert Path(store).resolve() == uploaded.store  # the blocks read the store the suite wrote
    open_version, open_checkpoint = docs["open_version"], docs["open_checkpoint"]

    # Each version the docs open holds the frames the API lists for it; the checkpoint is version 1.
    for version in (1, 2, 3, 4, None):
        table = open_version(store, PROJECT, DATASET, version).to_table(columns=["frame_id"])
        assert sorted(table.column("frame_id").to_pylist()) == [f.frame_id for f in api_frames(client, version)]
    at_tag = open_checkpoint(store, PROJECT, DATASET, CHECKPOINT).to_table(columns=["frame_id"])
    assert sorted(at_tag.column("frame_id").to_pylist()) == [f"f{i:02d}" for i in range(12)]

    # Boxes per class (DuckDB), newest and at version 1: eight of each at first; then f01's `person` box became a
    # `bike`, f05's three boxes (one of each) went and f12's `car` came.
    assert docs["boxes_at_1"] == boxes_per_class(api_frames(client, 1))
    assert docs["boxes_now"] == boxes_per_class(api_frames(client))
    assert docs["boxes_at_1"] == [("bike", 8), ("car", 8), ("person", 8)]
    assert docs["boxes_now"] == [("bike", 8), ("car", 8), ("person", 6)]

    # Mean box area by weather (Polars) at the checkpoint; f02's first box counts its `area` attribute, 33, not 7 × 4.
    at_checkpoint = docs["area_by_weather"].rows()
    same(at_checkpoint, mean_box_area_by_weather(api_frames(client, checkpoint=CHECKPOINT)))
    same(at_checkpoint, [("fog", 831 / 12, 12), ("rain", 418 / 8, 8), ("sun", 152 / 4, 4)])
    f02 = open_checkpoint(store, PROJECT, DATASET, CHECKPOINT).to_table(columns=["labels"], filter="frame_id = 'f02'")
    areas = [(x["label_id"], x["area"]) for x in f02.column("labels")[0].as_py()]
    assert areas == [("f02-0", 33.0), ("f02-1", 45.0), ("f02-2", 66.0)]
    # The same function on the newest version: two boxes resized, f03 moved from sun to rain, f05 (fog) deleted,
    # f12 (sun) added.
    newest = open_version(store, PROJECT, DATASET).to_table(columns=["metadata_weather", "labels"])
    newest_rows = docs["mean_box_area"](newest, "metadata_weather").rows()
    same(newest_rows, mean_box_area_by_weather(api_frames(client)))
    same(newest_rows, [("fog", 647 / 9, 9), ("rain", 1261 / 9, 9), ("sun", 188 / 4, 4)])

    # Nearest frames (Lance and DuckDB) are the embedding service's exact search, newest and at version 1.
    [searched] = client.search(PROJECT, DATASET, vectors=[QUERY], k=3)
    expected = [(n.frame_id, n.distance) for n in searched]
    by_lance = [(r["frame_id"], r["_distance"]) for r in docs["nearest"].to_pylist()]
    for found in (by_lance, docs["nearest_sql"]):
        assert [frame_id for frame_id, _ in found] == [frame_id for frame_id, _ in expected]
        assert [d for _, d in found] == pytest.approx([d for _, d in expected], abs=1e-5)
    [searched_1] = client.search(PROJECT, DATASET, vectors=[QUERY], k=3, version=1)
    at_1 = docs["nearest_frames"](open_version(store, PROJECT, DATASET, 1), QUERY).to_pylist()
    assert [r["frame_id"] for r in at_1] == [n.frame_id for n in searched_1]
    assert at_1[0]["frame_id"] == "f05"
    assert "f05" not in [frame_id for frame_id, _ in by_lance]  # deleted in version 3


def test_the_documented_columns_are_the_tables_columns(uploaded: Uploaded) -> None:
    text = section()
    tables = uploaded.store / "datasets" / PROJECT / DATASET / "dataset"
    frames = lance.dataset(str(tables / "frames.lance")).schema
    changes = lance.dataset(str(tables / "changes.lance")).schema
    versions = lance.dataset(str(tables / "versions.lance")).schema

    # The section's table of frames.lance columns is the table's columns, `metadata_<field>` standing for each field.
    listed = re.findall(r"^\| `([a-z_<>]+)` \|", text[text.index("### Columns") :], flags=re.MULTILINE)
    metadata = [n for n in frames.names if n.startswith("metadata_")]
    assert metadata == ["metadata_weather", "metadata_speed"]
    assert [n for n in frames.names if n not in metadata] == [n for n in listed if n != "metadata_<field>"]
    assert frames.field("metadata_weather").type == pa.string()
    assert frames.field("metadata_speed").type == pa.float64()
    assert frames.field("embedding").type == pa.list_(pa.float32(), 4)
    assert frames.field("label_count").type == pa.int32()
    assert frames.field("label_ids").type == pa.list_(pa.string())

    label = frames.field("labels").type.value_type
    children = [label.field(i).name for i in range(label.num_fields)]
    assert children[-2:] == ["geometry", "area"]
    assert label.field("area").type == pa.float64()
    for name in children:
        assert f"`{name}`" in text, f"the section does not name the label's `{name}`"
    box = label.field("box_2d").type
    assert [box.field(i).name for i in range(box.num_fields)] == ["left", "top", "width", "height", "iscrowd"]

    log_only = ["version", "frame_id", "change_type", "upload", "commit_time", "commit"]
    assert changes.names == log_only + [n for n in frames.names if n != "frame_id"]
    assert changes.field("change_type").type == pa.int8()
    assert changes.field("commit_time").type == pa.timestamp("us", tz="UTC")
    assert versions.names == [
        "version",
        "table_version",
        "commit_time",
        "uploads",
        "batches",
        "frames_added",
        "frames_modified",
        "frames_deleted",
        "frame_count",
        "label_count",
    ]
    for name in [*log_only, *versions.names]:
        assert f"`{name}`" in text, f"the section does not name `{name}`"

    # The change log holds each frame's history as the API tells it, change types by their numbers.
    log = lance.dataset(str(tables / "changes.lance")).to_table(
        columns=["frame_id", "version", "change_type"], filter="frame_id IN ('f03', 'f05', 'f12')"
    )
    rows = sorted((r["frame_id"], r["version"], r["change_type"]) for r in log.to_pylist())
    api = sorted(
        (frame_id, h.version, h.change_type)
        for frame_id in ("f03", "f05", "f12")
        for h in uploaded.client.get_frame_history(PROJECT, DATASET, frame_id)
    )
    assert rows == api == [("f03", 1, 1), ("f03", 4, 2), ("f05", 1, 1), ("f05", 3, 3), ("f12", 4, 1)]


def test_a_frame_without_labels_leaves_the_version_readable(uploaded: Uploaded) -> None:
    bare = shoal.LabeledFrame(frame_id="f13")
    bare.add_image(sensor_id="cam", image_url="s3://b/13.jpg", width=200, height=100)
    # Written in one commit with a labelled frame, so that both land in one page.
    committed(uploaded.client, uploaded.client.update_dataset_frames(PROJECT, DATASET, [bare, frame(14)]))
    frames = uploaded.store / "datasets" / PROJECT / DATASET / "dataset" / "frames.lance"
    stored = lance.dataset(str(frames)).to_table(columns=["frame_id", "labels"])
    assert sorted(stored.column("frame_id").to_pylist()) == sorted(f.frame_id for f in api_frames(uploaded.client))
    assert "f13" in stored.column("frame_id").to_pylist()
    assert run_docs()["boxes_now"] == boxes_per_class(api_frames(uploaded.client))


def test_a_frame_deleted_beside_other_changes_keeps_its_history(uploaded: Uploaded) -> None:
    together = shoal.LabeledDataset()
    together.delete_frame("f06")
    together.add_frame(frame(13))
    committed(uploaded.client, uploaded.client.create_or_update_dataset(PROJECT, DATASET, dataset=together))
    changes = uploaded.store / "datasets" / PROJECT / DATASET / "dataset" / "changes.lance"
    logged = lance.dataset(str(changes)).to_table(columns=["version", "change_type", "labels"], filter="version = 5")
    assert sorted(logged.column("change_type").to_pylist()) == [1, 3]
    history = uploaded.client.get_frame_history(PROJECT, DATASET, "f06")
    assert [(h.version, h.change_type) for h in history] == [(1, 1), (5, 3)]
