"""Writes the generated COCO sets beside this file (run from the repository root: `python tests/data/coco/generate.py`).

- `tie_heavy.json` / `tie_heavy_results.json`: boxes on images 1..12 (so "10" < "2" as strings), detections whose
  scores come from three values, so the order of images decides how equal scores rank; image 7 has ground truth and
  no detection, as an image a detector found nothing in.
- `polygon_areas.json` / `polygon_areas_results.json`: the real COCO val2017 dogs of `val2017_dogs.json` plus
  diamond and L-shaped polygons whose `area` (the polygon's area, as COCO computes it) sits in another
  small/medium/large range than their box's w·h; detections carry a box and a polygon, as Detectron2-style results do.

The sets are fixed files: tests compare Shoal with pycocotools on them, and the numbers must not move with NumPy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
W, H = 640, 480


def _write(name: str, data: Any) -> None:
    (HERE / name).write_text(json.dumps(data, indent=1) + "\n")


def polygon_area(flat: list[float]) -> float:
    x, y = np.asarray(flat[0::2]), np.asarray(flat[1::2])
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def tie_heavy(seed: int = 7) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    cats = [
        {"id": 1, "name": "car", "supercategory": "vehicle"},
        {"id": 2, "name": "person", "supercategory": "person"},
    ]
    images = [{"id": i, "file_name": f"ties/{i:04d}.jpg", "width": W, "height": H} for i in range(1, 13)]
    anns: list[dict[str, Any]] = []
    dets: list[dict[str, Any]] = []
    for image in images:
        for _ in range(int(rng.integers(2, 6))):
            w, h = int(rng.integers(12, 140)), int(rng.integers(12, 140))
            x, y = int(rng.integers(0, W - w)), int(rng.integers(0, H - h))
            cat = int(rng.integers(1, 3))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image["id"],
                    "category_id": cat,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            if image["id"] == 7:
                continue
            score = float(rng.choice([0.9, 0.6, 0.3]))
            if rng.random() < 0.75:  # a hit, some loose enough to miss the stricter thresholds
                shift = float(rng.choice([0, 1, 2, 4, 8]))
                dets.append({"image_id": image["id"], "category_id": cat, "bbox": [x + shift, y, w, h], "score": score})
            else:  # a miss with the same score
                dets.append({"image_id": image["id"], "category_id": cat, "bbox": [x + w + 5, y, w, h], "score": score})
    return {"images": images, "annotations": anns, "categories": cats}, dets


def polygon_areas(seed: int = 11) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    gt = json.loads((HERE / "val2017_dogs.json").read_text())
    gt["categories"].append({"supercategory": "vehicle", "id": 3, "name": "car"})
    next_id = 1 + max(a["id"] for a in gt["annotations"])
    for image_id in range(1, 13):
        gt["images"].append({"id": image_id, "file_name": f"shapes/{image_id:04d}.jpg", "width": W, "height": H})
        for _ in range(int(rng.integers(1, 4))):
            # Boxes just above 32² or 96² whose diamond or L has about half or three quarters of the box's area.
            side = float(rng.choice([34, 40, 44, 100, 110, 120]) + rng.integers(0, 4))
            w, h = side, side + float(rng.integers(-2, 3))
            x, y = float(rng.integers(0, W - 130)), float(rng.integers(0, H - 130))
            if rng.random() < 0.5:
                poly = [x + w / 2, y, x + w, y + h / 2, x + w / 2, y + h, x, y + h / 2]
            else:
                poly = [x, y, x + w / 2, y, x + w / 2, y + h / 2, x + w, y + h / 2, x + w, y + h, x, y + h]
            gt["annotations"].append(
                {
                    "id": next_id,
                    "image_id": image_id,
                    "category_id": int(rng.choice([3, 18])),
                    "segmentation": [poly],
                    "area": polygon_area(poly),
                    "bbox": [x, y, w, h],
                    "iscrowd": 0,
                }
            )
            next_id += 1
    dets = []
    for ann in gt["annotations"]:
        x, y, w, h = ann["bbox"]
        poly = ann["segmentation"][0]
        for _ in range(int(rng.integers(1, 3))):
            dx, dy = float(rng.choice([0, 1, 3, 6])), float(rng.choice([0, 2, 5]))
            score = float(rng.choice([0.95, 0.7, 0.4]))
            other = 3 if ann["category_id"] == 18 else 18
            cat = ann["category_id"] if rng.random() < 0.85 else other
            dets.append(
                {
                    "image_id": ann["image_id"],
                    "category_id": cat,
                    "bbox": [round(x + dx, 2), round(y + dy, 2), w, h],
                    "segmentation": [[round(v + (dx if i % 2 == 0 else dy), 2) for i, v in enumerate(poly)]],
                    "score": score,
                }
            )
    return gt, dets


if __name__ == "__main__":
    for name, (gt, dets) in {"tie_heavy": tie_heavy(), "polygon_areas": polygon_areas()}.items():
        _write(f"{name}.json", gt)
        _write(f"{name}_results.json", dets)
