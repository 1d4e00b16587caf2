"""What the benchmarks share: the machine's description, the JSON report, and the COCO reference evaluators."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import platform
import time
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
