"""Building an embedding index from a stored version: Shoal reading the `embedding` column of the table, beside what
building it cost when every frame was a serialized message (parse each frame, collect its values) in the same run.

A dataset of --frames frames (a 128-d embedding, two boxes, two metadata fields) is committed straight through the
tables (no services), then the embedding service's `Indexes.build` makes the frame index of that version.

    .venv/bin/python bench/index_build.py --out bench/results/index_build.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from benchlib import emit, machine
from shoal.embedding import compute
from shoal.embedding.indexes import Indexes
from shoal.kit.names import DatasetName, ProjectName
from shoal.kit.objectstore import LocalObjectStore
from shoal.kit.settings import StoreSettings
from shoal.storage.catalog import Catalog
from shoal.storage.tables import Change, Commit, TableRoot
from shoal.v1 import dataset_pb2, frame_pb2, project_pb2

DIM = 128


def make_frames(start: int, n: int, rng: np.random.Generator) -> list[frame_pb2.Frame]:
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    out = []
    for i in range(n):
        frame = frame_pb2.Frame(frame_id=f"f{start + i:08d}")
        frame.user_metadata["weather"].string_value = "rain" if i % 3 == 0 else "sun"
        frame.user_metadata["speed"].float_value = float(i % 90)
        for b in range(2):
            label = frame.labels.add(label_id=f"f{start + i:08d}-{b}", classification="car" if b else "person")
            label.box_2d.width, label.box_2d.height = 10.0, 20.0
        frame.embedding.values.extend(vectors[i].tolist())
        frame.embedding.model_id = "bench"
        out.append(frame)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--backend", default="auto", choices=["auto", "gpu", "cpu"])
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        store_dir = Path(tmp) / "store"
        settings = StoreSettings(url=store_dir.as_uri())
        store = LocalObjectStore(store_dir)
        catalog = Catalog(store)
        catalog.create_project("bench", project_pb2.Project())
        dataset = DatasetName("bench", "big")
        catalog.create_dataset(
            ProjectName("bench"), "big", dataset_pb2.Dataset(embedding_dimension=DIM, embedding_source="bench")
        )
        tables = TableRoot(settings).tables(dataset)
        blobs: list[bytes] = []  # a sample of serialized frames, for the message-per-frame baseline
        started = time.perf_counter()
        for version, start in enumerate(range(0, args.frames, args.chunk), 1):
            frames = make_frames(start, min(args.chunk, args.frames - start), rng)
            if len(blobs) < 100_000:
                blobs.extend(f.SerializeToString() for f in frames[: 100_000 - len(blobs)])
            changes = [Change(f.frame_id, frame_pb2.CHANGE_TYPE_ADD, f, "bench") for f in frames]
            tables.commit(
                Commit(version, changes, ["bench"], [f"bench#{version}"], added=len(frames), embedding_dimension=DIM)
            )
        write_seconds = time.perf_counter() - started
        latest = tables.latest()
        assert latest is not None
        indexes = Indexes(store, settings, compute.Backend.detect(args.backend))
        started = time.perf_counter()
        index = indexes.build(str(dataset), latest.version, "frame", 0, "index")
        build_seconds = time.perf_counter() - started
        assert index.count == args.frames
        # The same build again in this process: what a build costs once the process has paid its one-time costs
        # (the first one touches the memory of its arrays for the first time).
        del index
        started = time.perf_counter()
        index = indexes.build(str(dataset), latest.version, "frame", 0, "index")
        again_seconds = time.perf_counter() - started

        # The message-per-frame baseline on the sample: parse each frame and gather its values, as a build did when
        # the table held serialized frames; scaled to all frames.
        started = time.perf_counter()
        rows = [frame_pb2.Frame.FromString(b).embedding.values for b in blobs]
        np.asarray(rows, np.float32)
        baseline_seconds = (time.perf_counter() - started) * args.frames / len(blobs)
    emit(
        {
            "benchmark": "index_build",
            "machine": machine(),
            "params": {"frames": args.frames, "dimension": DIM, "backend": index.vectors.__class__.__module__},
            "target_seconds": 3.0,
            "write_seconds": round(write_seconds, 2),
            "build_seconds": round(build_seconds, 3),
            "second_build_seconds": round(again_seconds, 3),
            "message_per_frame_seconds_scaled": round(baseline_seconds, 3),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
