"""What the benchmarks share: the machine's description, the JSON report, and the COCO reference evaluators."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def emit(report: dict[str, Any], out: str) -> None:
    """Print the report as JSON, and write it to `out` when given."""
    text = json.dumps(report, indent=2)
    print(text)
    if out:
        with open(out, "w") as fh:
            fh.write(text + "\n")


def coco_reference(
    kind: str, gt: dict[str, Any], results: list[dict[str, Any]], iou_type: str
) -> tuple[float, list[float]]:
    """(seconds, summary numbers) of pycocotools ("pycocotools") or faster-coco-eval (anything else) doing the whole
    job from in-memory dictionaries: index, load results, evaluate, accumulate, summarise."""
    if kind == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval as Eval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as Eval
    gt_copy, dt_copy = copy.deepcopy(gt), copy.deepcopy(results)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_copy
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dt_copy)
        e = Eval(coco_gt, coco_dt, iou_type)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return time.perf_counter() - start, [float(v) for v in e.stats]


@dataclass
class StoredSet:
    """A dataset version and an inference set (version 1 of each) in Lance tables, written as the versioning service
    writes them."""

    dataset: Any  # shoal.storage.tables.VersionedTables
    inference: Any


@contextlib.contextmanager
def stored_tables(truth: Sequence[Any], predictions: Sequence[Any]) -> Iterator[StoredSet]:
    """Frames and inference frames committed to tables in a temporary directory, removed afterwards."""
    from shoal.storage.tables import Change, Commit, VersionedTables
    from shoal.v1 import frame_pb2

    root = tempfile.mkdtemp(prefix="shoal-bench-tables-")
    try:
        stored = StoredSet(
            VersionedTables(f"{root}/dataset", {}), VersionedTables(f"{root}/inference", {}, inference=True)
        )
        for tables, frames in ((stored.dataset, truth), (stored.inference, predictions)):
            changes = [Change(f.frame_id, frame_pb2.CHANGE_TYPE_ADD, f, "bench") for f in frames]
            tables.commit(Commit(version=1, changes=changes, uploads=["bench"], batches=["bench/0"], added=len(frames)))
        yield stored
    finally:
        shutil.rmtree(root, ignore_errors=True)


def read_stored(stored: StoredSet) -> Any:
    """Both sides of every frame as the metrics service reads them: the columns of one version of each table, joined
    by frame id (shoal.metrics.frames.Frames)."""
    from shoal.metrics import evaluations

    frames, missing = evaluations.read_frames(stored.dataset, 1, stored.inference, 1)
    assert not missing
    return frames


def coco_from_frames(frames: Any, class_map: Any, task: int) -> list[float]:
    """The COCO summary of one task from the frames' columns: labels gathered into arrays, matched, accumulated."""
    from shoal.metrics import coco, tasks
    from shoal.v1 import evaluation_pb2

    keypoints = task == evaluation_pb2.EVALUATION_TASK_KEYPOINTS_2D
    classes = tasks.Classes.of(class_map, [])
    params = evaluation_pb2.EvaluationParams(task=task)
    gt_side = tasks._collect(frames, task, classes, _no_masks, truth=True)
    dt_side = tasks._collect(frames, task, classes, _no_masks, truth=False)
    r = coco.evaluate(
        gt_side.instances(),
        dt_side.instances(),
        len(classes.names),
        tasks._overlap(task, params, gt_side, dt_side, classes),
        coco.CocoParams.keypoints() if keypoints else coco.CocoParams(),
    )
    _, arr = coco.summarize(r, keypoints=keypoints)
    return [float(v) for v in arr]


def _no_masks(url: str) -> Any:
    raise AssertionError(f"no masks in a benchmark set: {url}")


@dataclass
class Suite:
    """A suite on this machine: its state directory, the address of each service and the admin API key."""

    state: Path
    addresses: dict[str, str]
    api_key: str
    console: str = ""

    def client(self, **kwargs: Any) -> Any:
        import shoal

        return shoal.Client(api_key=self.api_key, addresses=self.addresses, show_progress=False, **kwargs)


@contextlib.contextmanager
def local_suite(name: str) -> Iterator[Suite]:
    """The five services, Redis and the local store started as `shoal up` starts them, in a fresh state directory;
    stopped and removed afterwards."""
    from ingest import free_base

    state = Path(tempfile.mkdtemp(prefix=f"shoal-bench-{name}-"))
    base, metrics_base, redis_port = free_base(7), free_base(5), free_base(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")} | {
        "SHOAL_ADMIN_API_KEY": "bench-admin-key-0123456789abcdef",
        "SHOAL_INGEST_MAX_QUEUE_DEPTH": "100000",
    }
    cli = [sys.executable, "-m", "shoal.cli"]
    up = [*cli, "up", "--state-dir", str(state), "--base-port", str(base), "--metrics-base-port", str(metrics_base)]
    up += ["--redis-port", str(redis_port), "--log-level", "WARNING", "--timeout", "120"]
    services = ["ingest", "versioning", "asset", "metrics", "embedding"]
    try:
        subprocess.run(up, env=env, check=True, capture_output=True)
        yield Suite(
            state,
            {s: f"127.0.0.1:{base + i}" for i, s in enumerate(services)},
            env["SHOAL_ADMIN_API_KEY"],
            f"http://127.0.0.1:{base + len(services) + 1}",
        )
    finally:
        subprocess.run([*cli, "down", "--state-dir", str(state)], env=env, check=False, capture_output=True)
        shutil.rmtree(state, ignore_errors=True)
