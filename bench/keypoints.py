"""Keypoints: COCO OKS evaluation beside pycocotools and faster-coco-eval, and the keypoint checks at scale, in one run.

The set is deterministic: --people people with COCO's 17-point rig (the demo's pose generator: random size, place,
tilt, a third seen from behind; a third shrunk into COCO's medium area range), three to an image, 8 % of points not
labeled (COCO v=0, stored as NOT_LABELED), 1 % of people with one left-right pair planted swapped. A simulated model
predicts 90 % of the people with noise proportional to each point's sigma and its own quality, 4 % of its people
mirrored, and adds false positives.

Evaluation: each tool starts from the same in-memory COCO dictionaries (iouType "keypoints") and does its whole job;
Shoal is timed again from the set as the service stores it, a dataset version and an inference set in Lance tables
(written before the clock starts): the columns of both read and joined by frame id, keypoints placed by name,
evaluated. The ten numbers must equal pycocotools'.

Checks: there is no reference tool for keypoint quality rules; Shoal's checks are timed from the stored version (what
a check does: read the labels and sensors columns a batch at a time, gather by class, run every rule, rank) and
scored on the planted swaps: how many are found and at what ranks. Then
--service-people people (150,000 by default) are uploaded to a suite started as `shoal up` starts it and checked
through the SDK: the swap rule, the same again (stored), every rule.

    .venv/bin/python bench/keypoints.py --out bench/results/keypoints.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import shoal
from benchlib import StoredSet, coco_from_frames, coco_reference, emit, local_suite, machine, read_stored, stored_tables
from shoal import rigs
from shoal.demo_pose import IMAGE_SIZE, pose_set
from shoal.metrics import cocojson, keypoint_checks, keypoints
from shoal.sdk.classmap import ClassMapEntry
from shoal.v1 import evaluation_pb2, frame_pb2, label_pb2, project_pb2

NAMES = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
KEYPOINTS = list(rigs.COCO_PERSON_KEYPOINTS)
SIGMAS = np.array([rigs.COCO_PERSON_SIGMAS[n] for n in KEYPOINTS])
PER_IMAGE = 3
VIS = label_pb2.KEYPOINT_VISIBILITY_VISIBLE
NOT_LABELED = label_pb2.KEYPOINT_VISIBILITY_NOT_LABELED


def synthetic(people: int, seed: int = 11) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, tuple[str, str]]]:
    """COCO ground truth, COCO keypoint results, and the planted swaps (by annotation id)."""
    rng = np.random.default_rng(seed)
    poses = pose_set(people, swaps=max(1, people // 100), seed=seed)
    images = (people + PER_IMAGE - 1) // PER_IMAGE
    anns: list[dict[str, Any]] = []
    dets: list[dict[str, Any]] = []
    swapped: dict[str, tuple[str, str]] = {}
    mirror = {a: b for p in rigs.mirror_pairs(KEYPOINTS) for a, b in (p, p[::-1])}
    for i, person in enumerate(poses.people):
        image_id = i // PER_IMAGE + 1
        xy = np.array([person.points[n] for n in KEYPOINTS], np.float64)
        left, top, width, height = person.box
        if rng.random() < 1 / 3:  # farther away: COCO's medium area range
            shrink = rng.uniform(0.15, 0.35)
            left, top = max(left, 0.0), max(top, 0.0)  # shrunk toward a corner inside the image
            xy = (xy - [left, top]) * shrink + [left, top]
            width, height = width * shrink, height * shrink
            person.points = {
                n: (round(float(x), 1), round(float(y), 1)) for n, (x, y) in zip(KEYPOINTS, xy, strict=True)
            }
            person.box = (left, top, width, height)
        labeled = rng.random(len(KEYPOINTS)) >= 0.08
        vis = np.where(labeled, np.where(rng.random(len(KEYPOINTS)) < 0.2, 1, 2), 0)
        flat = np.column_stack([np.where(labeled[:, None], xy, 0.0), vis]).ravel()
        aid = i + 1
        anns.append(
            {
                "id": aid,
                "image_id": image_id,
                "category_id": 1,
                "bbox": [round(left, 2), round(top, 2), round(width, 2), round(height, 2)],
                "area": round(width, 2) * round(height, 2),
                "iscrowd": 0,
                "keypoints": [round(float(v), 2) for v in flat],
                "num_keypoints": int(labeled.sum()),
            }
        )
        if person.label_id in poses.swapped:
            swapped[str(aid)] = poses.swapped[person.label_id]
        if rng.random() < 0.9:
            quality = rng.uniform(0.1, 1.2)
            scale = np.sqrt(width * height)
            guess = xy + rng.normal(0, 1, xy.shape) * (2 * SIGMAS[:, None]) * scale * quality
            if rng.random() < 0.04:
                guess = guess[[KEYPOINTS.index(mirror.get(n, n)) for n in KEYPOINTS]]
            score = float(np.clip(1.0 - 0.4 * quality + rng.normal(0, 0.1), 0.05, 1.0))
            dets.append(_result(image_id, guess, score))
    for _ in range(people // 5):  # false positives: someone else's pose at a random place, low score
        other = poses.people[int(rng.integers(people))]
        xy = np.array([other.points[n] for n in KEYPOINTS], np.float64)
        xy += [rng.uniform(-150, 150), rng.uniform(-50, 50)]
        dets.append(_result(int(rng.integers(images)) + 1, xy, float(rng.uniform(0.05, 0.5))))
    gt = {
        "images": [
            {"id": i + 1, "width": IMAGE_SIZE[0], "height": IMAGE_SIZE[1], "file_name": f"{i:06d}.jpg"}
            for i in range(images)
        ],
        "categories": [
            {"id": 1, "name": "person", "keypoints": KEYPOINTS, "skeleton": _skeleton()},
        ],
        "annotations": anns,
    }
    return gt, dets, swapped


def _result(image_id: int, xy: np.ndarray, score: float) -> dict[str, Any]:
    flat = np.column_stack([xy, np.ones(len(xy))]).ravel()
    return {"image_id": image_id, "category_id": 1, "keypoints": [round(float(v), 2) for v in flat], "score": score}


def _skeleton() -> list[list[int]]:
    index = {n: i + 1 for i, n in enumerate(KEYPOINTS)}
    return [[index[a], index[b]] for a, b in rigs.COCO_PERSON_SKELETON]


def stored_frames(
    gt: dict[str, Any], dets: list[dict[str, Any]]
) -> tuple[list[frame_pb2.Frame], list[frame_pb2.InferenceFrame]]:
    """One Frame and InferenceFrame per image, as the service takes them; points listed in reverse rig order, since
    the service matches them by name."""
    frames = {
        im["id"]: frame_pb2.Frame(
            frame_id=f"{im['id']:06d}",
            sensors=[
                frame_pb2.SensorData(
                    sensor_id="cam",
                    image=frame_pb2.Image(url=f"s3://people/{im['file_name']}", width=im["width"], height=im["height"]),
                )
            ],
        )
        for im in gt["images"]
    }
    preds = {im["id"]: frame_pb2.InferenceFrame(frame_id=f"{im['id']:06d}") for im in gt["images"]}

    def points(flat: list[float], truth: bool) -> list[label_pb2.Keypoint]:
        k = np.asarray(flat).reshape(-1, 3)
        return [
            label_pb2.Keypoint(
                name=KEYPOINTS[j],
                x=float(k[j, 0]),
                y=float(k[j, 1]),
                visibility=(NOT_LABELED if k[j, 2] == 0 else VIS) if truth else VIS,
            )
            for j in reversed(range(len(KEYPOINTS)))
        ]

    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        frames[a["image_id"]].labels.append(
            label_pb2.Label(
                label_id=str(a["id"]),
                classification="person",
                sensor_id="cam",
                keypoints_2d=label_pb2.Keypoints2D(
                    keypoints=points(a["keypoints"], True), box=label_pb2.Box2D(left=x, top=y, width=w, height=h)
                ),
            )
        )
    for i, d in enumerate(dets):
        preds[d["image_id"]].labels.append(
            label_pb2.Label(
                label_id=f"p{i}",
                classification="person",
                sensor_id="cam",
                confidence=d["score"],
                keypoints_2d=label_pb2.Keypoints2D(keypoints=points(d["keypoints"], False)),
            )
        )
    order = sorted(frames)
    return [frames[i] for i in order], [preds[i] for i in order]


def run_shoal(gt: dict[str, Any], dets: list[dict[str, Any]]) -> tuple[float, list[float]]:
    start = time.perf_counter()
    result = cocojson.evaluate_coco(gt, dets, "keypoints")
    return time.perf_counter() - start, [float(v) for v in result.stats]


def class_map() -> project_pb2.ClassMap:
    return project_pb2.ClassMap(entries=[ClassMapEntry.coco_person(class_id=1).to_proto()])


def run_shoal_stored(stored: StoredSet) -> tuple[float, list[float]]:
    start = time.perf_counter()
    stats = coco_from_frames(read_stored(stored), class_map(), evaluation_pb2.EVALUATION_TASK_KEYPOINTS_2D)
    return time.perf_counter() - start, stats


def run_checks(stored: StoredSet) -> tuple[float, list[keypoints.Candidate]]:
    """What a keypoint check does: read the version's columns a batch at a time in frame-id order, gather by class,
    run every rule, rank."""
    start = time.perf_counter()
    columns = {"person": keypoints.Columns(keypoints.Rig.of(class_map().entries[0]))}
    for batch in stored.dataset.scan(1, columns=keypoints.GATHER_COLUMNS, batch_size=keypoint_checks.PROGRESS_EVERY):
        keypoints.gather(batch, columns)
    ranked = keypoints.check_columns(columns["person"])
    return time.perf_counter() - start, ranked


def service_case(people: int) -> dict[str, Any]:
    """Keypoint checks through a suite started as `shoal up` starts it: upload the people, then check_keypoints
    (start the operation, wait, page every candidate) with the swap rule, again (stored), and with every rule."""
    gt, dets, _ = synthetic(people)
    truth, _ = stored_frames(gt, dets)
    out: dict[str, Any] = {"people": people, "frames": len(truth)}
    with local_suite("keypoints") as suite:
        client = suite.client(batch_size=1000)
        client.create_project("pose", shoal.LabelClassMap([ClassMapEntry.coco_person(class_id=1)]))
        client.create_dataset("pose", "people")
        t = time.perf_counter()
        report = client.upload("projects/pose/datasets/people", iter(truth), total=len(truth))
        client.wait_for_upload(report.name, timeout=3600, poll_seconds=0.2)
        out["upload_seconds"] = round(time.perf_counter() - t, 2)
        cases = (("swap_rule", ["swapped_keypoints"]), ("swap_rule_stored", ["swapped_keypoints"]), ("every_rule", []))
        for name, rules in cases:
            t = time.perf_counter()
            found = client.check_keypoints("pose", "people", rules=rules)
            out[f"{name}_seconds"] = round(time.perf_counter() - t, 2)
            out[f"{name}_candidates"] = len(found)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=15000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of Shoal and faster-coco-eval (median reported)")
    parser.add_argument("--service-people", type=int, default=150_000, help="people for the checks through a suite")
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    t0 = time.perf_counter()
    gt, dets, planted = synthetic(args.people)
    truth, predictions = stored_frames(gt, dets)
    generated = time.perf_counter() - t0

    timings: dict[str, list[float]] = {}
    stats: dict[str, list[float]] = {}

    def record(name: str, outcome: tuple[float, list[float]]) -> None:
        timings.setdefault(name, []).append(outcome[0])
        stats[name] = outcome[1]

    record("pycocotools", coco_reference("pycocotools", gt, dets, "keypoints"))
    ranked: list[keypoints.Candidate] = []
    with stored_tables(truth, predictions) as stored:
        for _ in range(args.repeat):
            record("faster_coco_eval", coco_reference("faster", gt, dets, "keypoints"))
            record("shoal", run_shoal(gt, dets))
            record("shoal_from_stored_frames", run_shoal_stored(stored))
            seconds_checks, ranked = run_checks(stored)
            timings.setdefault("shoal_keypoint_checks_from_stored_frames", []).append(seconds_checks)

    swap_ranks = [
        r for r, c in enumerate(ranked) if c.rule == keypoints.SWAPPED and c.label_id in planted
    ]  # first candidate of each planted label is enough: one candidate per (label, rule)
    found = len(swap_ranks)
    # A swap of two points neither of which is labeled changes nothing that can be seen.
    labeled = {str(a["id"]): set(np.flatnonzero(np.asarray(a["keypoints"])[2::3] > 0)) for a in gt["annotations"]}
    detectable = sum(1 for aid, (a, b) in planted.items() if labeled[aid] & {KEYPOINTS.index(a), KEYPOINTS.index(b)})
    by_rule: dict[str, int] = {}
    for c in ranked:
        name = evaluation_pb2.LabelErrorReason.Name(c.rule).removeprefix("LABEL_ERROR_REASON_")
        by_rule[name] = by_rule.get(name, 0) + 1
    swaps_listed = sum(1 for c in ranked if c.rule == keypoints.SWAPPED)

    ref = np.array(stats["pycocotools"])
    seconds = {k: statistics.median(v) for k, v in timings.items()}
    report = {
        "benchmark": "keypoints",
        "machine": machine(),
        "set": {
            "people": len(gt["annotations"]),
            "images": len(gt["images"]),
            "labeled_points": int(sum(a["num_keypoints"] for a in gt["annotations"])),
            "predictions": len(dets),
            "planted_swaps": len(planted),
            "generate_seconds": round(generated, 2),
        },
        "summary": {name: dict(zip(NAMES, values, strict=True)) for name, values in stats.items()},
        "max_abs_difference_from_pycocotools": {
            name: float(np.max(np.abs(np.array(v) - ref))) for name, v in stats.items() if name != "pycocotools"
        },
        "checks": {
            "reference_tool": None,
            "candidates": len(ranked),
            "candidates_by_rule": by_rule,
            "swap_candidates": swaps_listed,
            "planted_swaps_with_a_labeled_point": detectable,
            "planted_swaps_found": found,
            "planted_swap_ranks_first_10": swap_ranks[:10],
            "last_planted_swap_rank": swap_ranks[-1] if swap_ranks else None,
            "planted_in_first_n_candidates (n = planted)": sum(1 for r in swap_ranks if r < len(planted)),
            "people_per_second": round(len(gt["annotations"]) / seconds["shoal_keypoint_checks_from_stored_frames"]),
        },
        "through_the_service": service_case(args.service_people) if args.service_people else None,
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "runs": {k: [round(x, 4) for x in v] for k, v in timings.items()},
        "ratios": {
            "shoal_over_faster_coco_eval": round(seconds["shoal"] / seconds["faster_coco_eval"], 4),
            "shoal_over_pycocotools": round(seconds["shoal"] / seconds["pycocotools"], 4),
            "shoal_from_stored_frames_over_faster_coco_eval": round(
                seconds["shoal_from_stored_frames"] / seconds["faster_coco_eval"], 4
            ),
        },
        "targets": {
            "identical_to_pycocotools (max difference <= 1e-12)": all(
                float(np.max(np.abs(np.array(stats[n]) - ref))) <= 1e-12 for n in ("shoal", "shoal_from_stored_frames")
            ),
            "shoal_time <= faster_coco_eval": seconds["shoal"] <= seconds["faster_coco_eval"],
            "every planted swap with a labeled point found": found == detectable,
        },
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
