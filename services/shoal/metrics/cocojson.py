"""Evaluate COCO-format ground truth and results (the JSON pycocotools reads) with Shoal's engine.

Images are taken in ascending id order and classes in ascending id order, as pycocotools does, so that ties between
equal scores are broken the same way and the figures are identical. Areas are the ones pycocotools ranges by: the
annotations' own `area`, and for detections what `loadRes` sets — the box's w·h whenever the results have boxes (masks
and keypoints included), else the mask's area or the keypoints' extent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shoal.metrics import coco

#: COCO's person keypoint sigmas, in the order of its 17-point rig.
COCO_PERSON_SIGMAS = (
    np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
    / 10.0
)


def _index(ids: Sequence[int]) -> dict[int, int]:
    return {v: i for i, v in enumerate(sorted(ids))}


def evaluate_coco(
    gt: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
    iou_type: str = "bbox",
    params: coco.CocoParams | None = None,
    sigmas: np.ndarray | None = None,
) -> coco.CocoResult:
    """pycocotools' COCOeval(gt, gt.loadRes(results), iou_type) evaluate → accumulate → summarize."""
    images = {int(im["id"]): im for im in gt["images"]}
    image_index = _index(list(images))
    cat_index = _index([int(c["id"]) for c in gt["categories"]])
    anns = [a for a in gt["annotations"] if int(a["category_id"]) in cat_index and int(a["image_id"]) in images]
    dets = [d for d in results if int(d["category_id"]) in cat_index and int(d["image_id"]) in images]
    keypoints = iou_type == "keypoints"
    if params is None:
        params = coco.CocoParams.keypoints() if keypoints else coco.CocoParams()

    g_img = np.array([image_index[int(a["image_id"])] for a in anns], np.int64)
    g_cat = np.array([cat_index[int(a["category_id"])] for a in anns], np.int64)
    d_img = np.array([image_index[int(d["image_id"])] for d in dets], np.int64)
    d_cat = np.array([cat_index[int(d["category_id"])] for d in dets], np.int64)
    crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], bool)
    g_area = np.array([float(a["area"]) for a in anns], np.float64)
    score = np.array([float(d["score"]) for d in dets], np.float64)
    # pycocotools' _prepare overwrites an annotation's own `ignore` with its `iscrowd` (crowd is handled as such).
    ignore = np.zeros(len(anns), bool)
    # loadRes gives every detection the area of its box when the first one has a box, whatever the iou type.
    box_results = bool(results) and bool(results[0].get("bbox"))

    if iou_type == "bbox":
        gb = np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4)
        db = np.array([d["bbox"] for d in dets], np.float64).reshape(-1, 4)
        d_area = db[:, 2] * db[:, 3]
        overlap = coco.box_overlap(db, gb, crowd)
    elif iou_type == "segm":
        g_masks = [_mask(a["segmentation"], images[int(a["image_id"])]) for a in anns]
        d_masks = [_mask(d["segmentation"], images[int(d["image_id"])]) for d in dets]
        d_area = _box_area(dets) if box_results else np.array([m.area for m in d_masks], np.float64)
        overlap = coco.mask_overlap(d_masks, g_masks, crowd)
    elif keypoints:
        s = COCO_PERSON_SIGMAS if sigmas is None else np.asarray(sigmas, np.float64)
        n_points = s.shape[0]
        gk = np.array([a["keypoints"] for a in anns], np.float64).reshape(len(anns), n_points, 3)
        dk = np.array([d["keypoints"] for d in dets], np.float64).reshape(len(dets), n_points, 3)
        ignore = ignore | np.array([int(a.get("num_keypoints", 0)) == 0 for a in anns], bool)
        d_area = (
            (dk[:, :, 0].max(axis=1) - dk[:, :, 0].min(axis=1)) * (dk[:, :, 1].max(axis=1) - dk[:, :, 1].min(axis=1))
            if dets
            else np.zeros(0)
        )
        if box_results:
            d_area = _box_area(dets)
        gb = np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4)
        overlap = coco.keypoint_overlap(
            dk[:, :, :2],
            gk[:, :, :2],
            gt_visible=gk[:, :, 2] > 0,
            gt_boxes=gb,
            gt_area=g_area,
            sigmas=np.broadcast_to(s, (len(anns), s.shape[0])),
            dt_valid=np.ones((len(dets), s.shape[0]), bool),
        )
    else:
        raise ValueError(f"unknown iou_type {iou_type!r}")

    g = coco.Instances.make(g_img, g_cat, g_area, crowd=crowd, ignore=ignore)
    d = coco.Instances.make(d_img, d_cat, d_area, score=score)
    result = coco.evaluate(g, d, len(cat_index), overlap, params)
    coco.summarize(result, keypoints=keypoints)
    return result


def _box_area(dets: Sequence[Mapping[str, Any]]) -> np.ndarray:
    db = np.array([d["bbox"] for d in dets], np.float64).reshape(-1, 4)
    return db[:, 2] * db[:, 3]


def _mask(segmentation: Any, image: Mapping[str, Any]) -> coco.Mask:
    h, w = int(image["height"]), int(image["width"])
    if isinstance(segmentation, list):
        return coco.Mask.crop(coco.polygon_mask(segmentation, h, w))
    counts = segmentation["counts"]
    if isinstance(counts, (str, bytes)):
        counts = decode_counts(counts.encode() if isinstance(counts, str) else counts)
    return coco.Mask.crop(rle_decode(np.asarray(counts, np.int64), h, w))


def rle_decode(counts: np.ndarray, h: int, w: int) -> np.ndarray:
    """Uncompressed COCO RLE (alternating runs of 0s and 1s, column-major) → boolean mask."""
    values = np.arange(counts.shape[0]) % 2 == 1
    flat = np.repeat(values, counts)[: h * w]
    out = np.zeros(h * w, bool)
    out[: flat.shape[0]] = flat
    return out.reshape(w, h).T


def rle_encode(mask: np.ndarray) -> list[int]:
    """Boolean mask → uncompressed COCO RLE counts."""
    flat = np.asarray(mask, bool).T.ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.r_[0, change, flat.shape[0]]
    runs = np.diff(bounds).tolist()
    if flat.shape[0] and flat[0]:
        runs = [0, *runs]
    return [int(r) for r in runs]


def decode_counts(s: bytes) -> list[int]:
    """COCO's compressed RLE string (LEB128-like, 5 bits a character, deltas from two back) → counts."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x = 0
        k = 0
        more = True
        while more:
            c = s[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts
