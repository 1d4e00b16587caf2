"""COCO box evaluation: Shoal's engine beside pycocotools and faster-coco-eval, in one run on one synthetic set.

The set is deterministic: --images images (default 5,000), 80 classes, about 7 ground-truth boxes per image (3% crowd)
and up to 100 detections per image (most near a ground-truth box, some of another class, the rest background), with
scores rounded to 3 decimals so that ties occur as they do in real result files.

Each tool starts from the same in-memory COCO dictionaries and does its whole job: index the ground truth, load the
results, evaluate, accumulate, summarise. Shoal is timed twice more from the set as the service stores it, a dataset
version and an inference set in Lance tables (written before the clock starts): the columns of both versions read
and joined by frame id, labels flattened into arrays, evaluated; and that plus everything else the service computes
for a detection evaluation (per-class figures, PR curves, confusion matrix, per-frame matches, label-error
candidates).

    .venv/bin/python bench/coco_eval.py --out bench/results/coco_eval.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
from benchlib import StoredSet, coco_from_frames, coco_reference, emit, machine, read_stored, stored_tables
from shoal.metrics import cocojson, tasks
from shoal.v1 import evaluation_pb2, frame_pb2, label_pb2, project_pb2

NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
W, H = 640, 480


def synthetic(images: int, classes: int = 80, seed: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    n_gt = rng.poisson(7, images)
    img_of = np.repeat(np.arange(images), n_gt)
    g = img_of.shape[0]
    side = np.exp(rng.uniform(np.log(8), np.log(400), g))
    ratio = np.exp(rng.uniform(-0.7, 0.7, g))
    w = np.minimum(W - 1, side * ratio).round(2)
    h = np.minimum(H - 1, side / ratio).round(2)
    x = (rng.random(g) * (W - w)).round(2)
    y = (rng.random(g) * (H - h)).round(2)
    cat = rng.integers(1, classes + 1, g)
    crowd = rng.random(g) < 0.03
    anns = [
        {
            "id": i + 1,
            "image_id": int(img_of[i]) + 1,
            "category_id": int(cat[i]),
            "bbox": [float(x[i]), float(y[i]), float(w[i]), float(h[i])],
            "area": float(w[i] * h[i]),
            "iscrowd": int(crowd[i]),
        }
        for i in range(g)
    ]
    dets: list[dict[str, Any]] = []
    starts = np.r_[0, np.cumsum(n_gt)]
    n_dt = rng.integers(0, 101, images)
    for im in range(images):
        k = int(n_dt[im])
        lo, hi = int(starts[im]), int(starts[im + 1])
        near = min(k, hi - lo)
        hit = rng.random(near) < 0.85
        jit = rng.normal(0, 0.08, (near, 4))
        for j in range(near):
            if not hit[j]:
                continue
            gi = lo + j
            c = int(cat[gi]) if rng.random() >= 0.1 else int(rng.integers(1, classes + 1))
            bx = [
                x[gi] + jit[j, 0] * w[gi],
                y[gi] + jit[j, 1] * h[gi],
                w[gi] * np.exp(jit[j, 2]),
                h[gi] * np.exp(jit[j, 3]),
            ]
            dets.append(
                {
                    "image_id": im + 1,
                    "category_id": c,
                    "bbox": [round(float(v), 2) for v in bx],
                    "score": round(float(rng.uniform(0.3, 1.0)), 3),
                }
            )
        rest = k - int(hit.sum())
        s = np.exp(rng.uniform(np.log(8), np.log(300), rest))
        bw, bh = s, s * np.exp(rng.uniform(-0.5, 0.5, rest))
        bx, by = rng.random(rest) * (W - bw), rng.random(rest) * np.maximum(1, H - bh)
        bc = rng.integers(1, classes + 1, rest)
        sc = rng.uniform(0, 0.7, rest)
        for j in range(rest):
            dets.append(
                {
                    "image_id": im + 1,
                    "category_id": int(bc[j]),
                    "bbox": [
                        round(float(bx[j]), 2),
                        round(float(by[j]), 2),
                        round(float(bw[j]), 2),
                        round(float(bh[j]), 2),
                    ],
                    "score": round(float(sc[j]), 3),
                }
            )
    gt = {
        "images": [{"id": i + 1, "width": W, "height": H, "file_name": f"{i:06d}.jpg"} for i in range(images)],
        "categories": [{"id": c, "name": f"class{c:02d}"} for c in range(1, classes + 1)],
        "annotations": anns,
    }
    return gt, dets


def run_shoal(gt: dict[str, Any], dets: list[dict[str, Any]]) -> tuple[float, list[float]]:
    start = time.perf_counter()
    result = cocojson.evaluate_coco(gt, dets, "bbox")
    return time.perf_counter() - start, [float(v) for v in result.stats]


def stored_frames(
    gt: dict[str, Any], dets: list[dict[str, Any]]
) -> tuple[list[frame_pb2.Frame], list[frame_pb2.InferenceFrame], project_pb2.ClassMap]:
    """The set as the service takes it: one Frame and InferenceFrame per image."""
    names = {c["id"]: c["name"] for c in gt["categories"]}
    frames = {im["id"]: frame_pb2.Frame(frame_id=f"{im['id']:06d}") for im in gt["images"]}
    preds = {im["id"]: frame_pb2.InferenceFrame(frame_id=f"{im['id']:06d}") for im in gt["images"]}
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        frames[a["image_id"]].labels.append(
            label_pb2.Label(
                label_id=f"g{a['id']}",
                classification=names[a["category_id"]],
                sensor_id="cam",
                box_2d=label_pb2.Box2D(left=x, top=y, width=w, height=h, iscrowd=bool(a["iscrowd"])),
            )
        )
    for i, d in enumerate(dets):
        x, y, w, h = d["bbox"]
        preds[d["image_id"]].labels.append(
            label_pb2.Label(
                label_id=f"p{i}",
                classification=names[d["category_id"]],
                sensor_id="cam",
                confidence=d["score"],
                box_2d=label_pb2.Box2D(left=x, top=y, width=w, height=h),
            )
        )
    class_map = project_pb2.ClassMap(
        entries=[project_pb2.ClassMapEntry(class_id=c["id"], name=c["name"]) for c in gt["categories"]]
    )
    order = sorted(frames)
    return [frames[i] for i in order], [preds[i] for i in order], class_map


def run_shoal_stored(
    stored: StoredSet, class_map: project_pb2.ClassMap, *, everything: bool
) -> tuple[float, list[float]]:
    start = time.perf_counter()
    frames = read_stored(stored)
    task = evaluation_pb2.EVALUATION_TASK_DETECTION_2D
    if everything:
        params = evaluation_pb2.EvaluationParams(task=task)
        classes = tasks.Classes.of(class_map, [])
        outcome = tasks.evaluate(frames, params.task, params, classes, lambda url: np.zeros((1, 1), np.uint8))
        stats = [outcome.result.metrics[n] for n in NAMES]
    else:
        stats = coco_from_frames(frames, class_map, task)
    return time.perf_counter() - start, [float(v) for v in stats]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of Shoal and faster-coco-eval (median reported)")
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    t0 = time.perf_counter()
    gt, dets = synthetic(args.images)
    generated = time.perf_counter() - t0
    truth, predictions, class_map = stored_frames(gt, dets)

    timings: dict[str, list[float]] = {}
    stats: dict[str, list[float]] = {}

    def record(name: str, outcome: tuple[float, list[float]]) -> None:
        timings.setdefault(name, []).append(outcome[0])
        stats[name] = outcome[1]

    record("pycocotools", coco_reference("pycocotools", gt, dets, "bbox"))
    t0 = time.perf_counter()
    with stored_tables(truth, predictions) as stored:
        written = time.perf_counter() - t0
        for _ in range(args.repeat):
            record("faster_coco_eval", coco_reference("faster", gt, dets, "bbox"))
            record("shoal", run_shoal(gt, dets))
            record("shoal_from_stored_frames", run_shoal_stored(stored, class_map, everything=False))
            record("shoal_full_service_evaluation", run_shoal_stored(stored, class_map, everything=True))

    ref = np.array(stats["pycocotools"])
    seconds = {k: statistics.median(v) for k, v in timings.items()}
    report = {
        "benchmark": "coco_eval",
        "machine": machine(),
        "set": {
            "images": args.images,
            "classes": 80,
            "ground_truth": len(gt["annotations"]),
            "crowd": sum(a["iscrowd"] for a in gt["annotations"]),
            "detections": len(dets),
            "generate_seconds": round(generated, 2),
            "write_tables_seconds": round(written, 2),
        },
        "summary": {name: dict(zip(NAMES, values, strict=True)) for name, values in stats.items()},
        "max_abs_difference_from_pycocotools": {
            name: float(np.max(np.abs(np.array(v) - ref))) for name, v in stats.items() if name != "pycocotools"
        },
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "runs": {k: [round(x, 4) for x in v] for k, v in timings.items()},
        "ratios": {
            "shoal_over_faster_coco_eval": round(seconds["shoal"] / seconds["faster_coco_eval"], 4),
            "shoal_over_pycocotools": round(seconds["shoal"] / seconds["pycocotools"], 4),
            "shoal_from_stored_frames_over_shoal": round(seconds["shoal_from_stored_frames"] / seconds["shoal"], 4),
            "shoal_from_stored_frames_over_faster_coco_eval": round(
                seconds["shoal_from_stored_frames"] / seconds["faster_coco_eval"], 4
            ),
            "shoal_full_service_evaluation_over_faster_coco_eval": round(
                seconds["shoal_full_service_evaluation"] / seconds["faster_coco_eval"], 4
            ),
        },
        "targets": {
            "identical_to_pycocotools (max difference <= 1e-12)": all(
                float(np.max(np.abs(np.array(stats[n]) - ref))) <= 1e-12
                for n in ("shoal", "shoal_from_stored_frames", "shoal_full_service_evaluation")
            ),
            "shoal_time <= 0.5 x faster_coco_eval": seconds["shoal"] <= 0.5 * seconds["faster_coco_eval"],
            "shoal_full_service_evaluation_time <= 0.5 x faster_coco_eval": (
                seconds["shoal_full_service_evaluation"] <= 0.5 * seconds["faster_coco_eval"]
            ),
        },
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
