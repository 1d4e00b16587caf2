"""Labeling jobs in SageMaker Ground Truth's formats: export a custom skeleton (keypoint) job from a dataset version,
import its output manifest — or a built-in bounding-box job's — back as a new version, with labeling statistics.

    job = export_skeleton_job(client, "pose", "people", class_name="person", checkpoint="review-1")
    job.write("job/")                        # job/manifest.jsonl, job/template-attributes.json
    report = import_results(client, "pose", "people", "output.manifest", class_name="person")
    print(report.version, report.stats.summary(), report.errors)

Export. Each input manifest line holds the image (`source-ref`), where it came from (`shoal-frame-id`,
`shoal-sensor-id`, `shoal-dataset-version`) and the pre-annotations twice, as one list of skeletons
`[{"name": <label id>, "annotations": [{"label": <keypoint>, "x": <int>, "y": <int>}, …]}, …]`: as a list under
`annotations` (what a pre-annotation step that passes the line's `annotations` on to the task reads) and as that
list's JSON text under `initial_values` (what a template that reads the line directly takes). The skeleton component
accepts whole pixels only, so x and y are rounded to the nearest pixel, halves up (101.5 → 102, 101.49 → 101,
-0.5 → 0), the way the component itself rounds every position it saves; points never labeled are left out. The
rounding is only in the job: Shoal's labels keep their exact positions (next paragraph).

Import. Frames are matched to manifest lines by their image's source URI; keypoints are matched to the rig by name,
skeletons to labels by the name they were exported with. Numbers given as strings are numbers (`"37"` seconds,
`"101"` for x). Whether a worker modified an image is Shoal's own decision: the geometry that was exported (the
result's `original_annotations`, else the line's `annotations` or `initial_values`, else the label as Shoal holds it
now, rounded as the export rounds it) is compared at whole pixels with what came back; the job's own `was_modified`
flag is kept beside it (`Result.reported_modified`, the `gt_reported_modified` attribute, the statistics'
`reported_modified_share`). Each coordinate of a keypoint that came back at the pixel it was exported at keeps
Shoal's exact value, and a labeled keypoint keeps its visibility (the job cannot express it); a moved coordinate or a
new keypoint takes the worker's position. Label ids Shoal makes (from the frame, the sensor and the job's name) are
always valid ids: characters ids may not hold, and `%`, are percent-encoded (`labeling-job/name` →
`labeling-job%2Fname`), and an id over the length limit ends in a digest of the whole.

A bad line (not JSON, a field missing, `updated_annotations` that is not JSON, keypoint names the rig lacks, an image
no frame has) is reported with its line number and changes nothing; every other line imports.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from shoal import rigs
from shoal import validation as rules
from shoal.v1 import common_pb2, frame_pb2, label_pb2, project_pb2

if TYPE_CHECKING:
    from shoal.sdk.client import Client

SKELETON_TYPE: Final = "groundtruth/custom"
BOX_TYPE: Final = "groundtruth/object-detection"
SEMSEG_TYPE: Final = "groundtruth/semantic-segmentation"
#: Label attributes an import records on every label it writes.
ATTR_WORKER: Final = "gt_worker_id"
ATTR_SECONDS: Final = "gt_time_seconds"
ATTR_MODIFIED: Final = "gt_modified"
#: The job's own `was_modified` flag, where it gave one (Shoal's decision is ATTR_MODIFIED).
ATTR_REPORTED_MODIFIED: Final = "gt_reported_modified"
ATTR_JOB: Final = "gt_job"
_ID_NAMESPACE: Final = uuid.UUID("6f1d3c52-9a0e-4d8b-8e3a-3a4f2a1c7b10")

#: Where COCO's keypoints sit in a person 400 pixels tall, as the labeling tool's template shows them.
_COCO_LAYOUT: Final = {
    "nose": (62, 11), "left_eye": (70, 0), "right_eye": (52, 1), "left_ear": (87, 6), "right_ear": (39, 5),
    "left_shoulder": (107, 63), "right_shoulder": (17, 62), "left_elbow": (120, 130), "right_elbow": (7, 141),
    "left_wrist": (124, 188), "right_wrist": (0, 192), "left_hip": (95, 199), "right_hip": (22, 200),
    "left_knee": (108, 306), "right_knee": (15, 307), "left_ankle": (103, 387), "right_ankle": (16, 382),
}  # fmt: skip


def _hex(c: common_pb2.Color) -> str:
    return f"#{c.red:02X}{c.green:02X}{c.blue:02X}"


def _layout(names: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Template positions: COCO's where the names are COCO's, else sided points mirrored about a centre line and
    centre points down the middle, in rig order."""
    if set(names) <= set(_COCO_LAYOUT):
        return {n: _COCO_LAYOUT[n] for n in names}
    out: dict[str, tuple[int, int]] = {}
    rows: dict[str, int] = {}
    for name in names:
        found = rigs.side_of(name)
        part = found[1] if found else name
        row = rows.setdefault(part, len(rows))
        x = 100 if found is None else (160 if found[0] == "left" else 40)
        out[name] = (x, 20 + 40 * row)
    return out


def skeleton_template(entry: project_pb2.ClassMapEntry) -> dict[str, Any]:
    """The skeleton component's attributes for a class's rig: `keypointClasses` (id, colour, label, template x/y),
    `skeletonRig` (label pairs with their colours) and `skeletonBoundingBox`."""
    if not entry.keypoints:
        raise ValueError(f"class {entry.name!r} has no keypoint rig")
    names = [k.name for k in entry.keypoints]
    layout = _layout(names)
    classes = [
        {
            "id": str(uuid.uuid5(_ID_NAMESPACE, f"{entry.name}/{k.name}")),
            "color": _hex(k.color)
            if k.HasField("color")
            else _hex(
                common_pb2.Color(
                    red=rigs.side_color(k.name)[0], green=rigs.side_color(k.name)[1], blue=rigs.side_color(k.name)[2]
                )
            ),
            "label": k.name,
            "x": layout[k.name][0],
            "y": layout[k.name][1],
        }
        for k in entry.keypoints
    ]
    rig = [
        [e.from_keypoint, e.to_keypoint, _hex(e.color)] if e.HasField("color") else [e.from_keypoint, e.to_keypoint]
        for e in entry.skeleton
    ]
    xs = [p[0] for p in layout.values()]
    ys = [p[1] for p in layout.values()]
    return {
        "keypointClasses": classes,
        "skeletonRig": rig,
        "skeletonBoundingBox": {"left": min(xs), "top": min(ys), "right": max(xs), "bottom": max(ys)},
    }


@dataclass
class SkeletonJob:
    """An exported labeling job: input manifest lines and the skeleton component's attributes."""

    dataset_version: str
    class_name: str
    manifest: list[dict[str, Any]]
    template: dict[str, Any]

    def write(self, folder: str | Path) -> tuple[Path, Path]:
        """`manifest.jsonl` (one JSON object a line) and `template-attributes.json` in `folder`."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        manifest = out / "manifest.jsonl"
        manifest.write_text("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in self.manifest))
        template = out / "template-attributes.json"
        template.write_text(json.dumps(self.template, indent=2) + "\n")
        return manifest, template


def _images(frame: frame_pb2.Frame, sensor_id: str | None) -> Iterator[frame_pb2.SensorData]:
    for sensor in frame.sensors:
        if sensor.WhichOneof("data") == "image" and (sensor_id is None or sensor.sensor_id == sensor_id):
            yield sensor


def pixel(value: float) -> int:
    """The nearest whole pixel, halves up (101.5 → 102, -0.5 → 0): how the skeleton component rounds positions."""
    return math.floor(value + 0.5)


def initial_values(labels: Iterable[label_pb2.Label]) -> list[dict[str, Any]]:
    """Keypoint labels as the skeleton component's initial values: one skeleton per label, named by its id, its
    labeled points at whole pixels (see `pixel`)."""
    out = []
    for label in labels:
        points = [
            {"label": k.name, "x": pixel(k.x), "y": pixel(k.y)}
            for k in label.keypoints_2d.keypoints
            if k.visibility != label_pb2.KEYPOINT_VISIBILITY_NOT_LABELED
        ]
        out.append({"name": label.label_id, "annotations": points})
    return out


def manifest_line(
    frame: frame_pb2.Frame, sensor: frame_pb2.SensorData, ref: str, labels: Iterable[label_pb2.Label] | None
) -> dict[str, Any]:
    """One input manifest line: the image, where it came from, and the pre-annotations (None: none) both as the
    `annotations` list and as its JSON text in `initial_values`."""
    skeletons = initial_values(labels or [])
    return {
        "source-ref": sensor.image.url,
        "shoal-frame-id": frame.frame_id,
        "shoal-sensor-id": sensor.sensor_id,
        "shoal-dataset-version": ref,
        "annotations": skeletons,
        "initial_values": json.dumps(skeletons, separators=(",", ":")),
    }


def export_skeleton_job(
    client: Client,
    project_id: str,
    dataset_id: str,
    *,
    class_name: str,
    version: int | None = None,
    checkpoint: str | None = None,
    segment: str | None = None,
    sensor_id: str | None = None,
    pre_annotations: str = "labels",
) -> SkeletonJob:
    """A custom skeleton job over the images of a version, checkpoint or segment (the version it pins).

    `pre_annotations`: "labels" puts each image's existing keypoint labels of the class into its line (an
    adjustment or review job), "none" gives every line an empty list (a fresh job), or "inferences:<set id>" uses a
    model's predictions from that inference set. Positions are rounded to whole pixels in the job only (see the
    module's docstring).
    """
    project = client.get_project(project_id)
    entry = next((e for e in project.class_map.entries if e.name == class_name), None)
    if entry is None or not entry.keypoints:
        raise ValueError(f"{class_name!r} is not a class with a keypoint rig in project {project_id!r}")
    only: set[str] | None = None
    if segment:
        seg = client.get_segment(project_id, dataset_id, segment)
        version, checkpoint, only = int(seg.version), None, set(seg.frame_ids)
    ref = client.version_ref(project_id, dataset_id, version, checkpoint)
    predictions: dict[str, list[label_pb2.Label]] = {}
    if pre_annotations.startswith("inferences:"):
        set_id = pre_annotations.split(":", 1)[1]
        for pair in client.get_inference_frames(project_id, dataset_id, set_id):
            predictions[pair.inference.frame_id] = list(pair.inference.labels)
    elif pre_annotations not in ("labels", "none"):
        raise ValueError(f"pre_annotations must be labels, none or inferences:<set id>, got {pre_annotations!r}")
    lines: list[dict[str, Any]] = []
    for frame in client.stream_frames(project_id, dataset_id, version=version, checkpoint=checkpoint):
        if only is not None and frame.frame_id not in only:
            continue
        for sensor in _images(frame, sensor_id):
            mine: list[label_pb2.Label] | None = None
            if pre_annotations != "none":
                source = predictions.get(frame.frame_id, []) if predictions else list(frame.labels)
                mine = [
                    lb
                    for lb in source
                    if lb.classification == class_name
                    and lb.sensor_id == sensor.sensor_id
                    and lb.WhichOneof("geometry") == "keypoints_2d"
                ]
            lines.append(manifest_line(frame, sensor, ref, mine))
    return SkeletonJob(ref, class_name, lines, skeleton_template(entry))


# importing ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineError:
    """A manifest line that was not imported, and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


#: Skeletons by name, each its points by keypoint name: what a job was given or what came back.
Geometry = dict[str, dict[str, tuple[float, float]]]


@dataclass
class Result:
    """One labeled image of an output manifest.

    `modified` is Shoal's decision (the exported geometry against what came back, at whole pixels), None until the
    exported geometry is known: from the line itself when it carries it, else from the frame at import.
    `reported_modified` is the job's own `was_modified` flag."""

    line: int
    job: str
    kind: str  # SKELETON_TYPE, BOX_TYPE or SEMSEG_TYPE
    source: str
    worker: str = ""
    seconds: float | None = None
    modified: bool | None = None
    reported_modified: bool | None = None
    no_changes: bool | None = None
    skeletons: list[dict[str, Any]] = field(default_factory=list)  # name, annotations: [{label, x, y}]
    exported: Geometry | None = None  # what the job was given, where the line says
    skeletons_modified: list[bool] = field(default_factory=list)  # Shoal's decision per skeleton
    boxes: list[dict[str, Any]] = field(default_factory=list)  # class name, left, top, width, height, confidence
    mask: str = ""  # semantic segmentation: URL of the colour mask
    colors: dict[tuple[int, int, int], str] = field(default_factory=dict)  # its colours → class names

    def decide(self, exported: Geometry) -> None:
        """Set `modified` (and per skeleton) by comparing what came back with `exported`, at whole pixels: a
        skeleton is modified when it is new, or a point was moved, added or removed; the image also when an
        exported skeleton did not come back."""
        self.exported = exported
        self.skeletons_modified = [_changed(exported.get(s["name"]), s["annotations"]) for s in self.skeletons]
        returned = {s["name"] for s in self.skeletons}
        self.modified = any(self.skeletons_modified) or any(name not in returned for name in exported)


def _changed(exported: Mapping[str, tuple[float, float]] | None, points: Sequence[Mapping[str, Any]]) -> bool:
    if exported is None:
        return True
    back = {p["label"]: (pixel(p["x"]), pixel(p["y"])) for p in points}
    return back != {name: (pixel(x), pixel(y)) for name, (x, y) in exported.items()}


@dataclass
class LabelingStats:
    """How a labeling job went: images, time per image, per worker, share modified (Shoal's decision, and the job's
    own flag beside it) and share marked unchanged."""

    images: int = 0
    mean_seconds: float = 0.0
    median_seconds: float = 0.0
    modified_share: float = 0.0
    reported_modified_share: float = 0.0
    unchanged_share: float = 0.0
    workers: dict[str, dict[str, float]] = field(default_factory=dict)

    @staticmethod
    def of(results: Sequence[Result]) -> LabelingStats:
        if not results:
            return LabelingStats()
        times = [r.seconds for r in results if r.seconds is not None]
        by_worker: dict[str, list[Result]] = defaultdict(list)
        for r in results:
            by_worker[r.worker or "unknown"].append(r)

        def share(rs: Sequence[Result], attr: str) -> float:
            return sum(1 for r in rs if getattr(r, attr)) / len(rs)

        workers = {}
        for worker, rs in sorted(by_worker.items()):
            ts = [r.seconds for r in rs if r.seconds is not None]
            workers[worker] = {
                "images": float(len(rs)),
                "mean_seconds": statistics.fmean(ts) if ts else 0.0,
                "median_seconds": statistics.median(ts) if ts else 0.0,
                "modified_share": share(rs, "modified"),
                "reported_modified_share": share(rs, "reported_modified"),
            }
        return LabelingStats(
            images=len(results),
            mean_seconds=statistics.fmean(times) if times else 0.0,
            median_seconds=statistics.median(times) if times else 0.0,
            modified_share=share(results, "modified"),
            reported_modified_share=share(results, "reported_modified"),
            unchanged_share=share(results, "no_changes"),
            workers=workers,
        )

    def summary(self) -> str:
        flag = f" (the job's own flag: {self.reported_modified_share:.0%})" if self.reported_modified_share else ""
        lines = [
            f"{self.images} images, {self.mean_seconds:.1f} s mean and {self.median_seconds:.1f} s median per image, "
            f"{self.modified_share:.0%} modified{flag}, {self.unchanged_share:.0%} marked unchanged"
        ]
        lines += [
            f"  {w}: {int(s['images'])} images, {s['mean_seconds']:.1f} s mean, {s['modified_share']:.0%} modified"
            for w, s in self.workers.items()
        ]
        return "\n".join(lines)


def _norm(d: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata keys in one spelling: `class-map` and `class_map` are the same key."""
    return {str(k).replace("_", "-"): v for k, v in d.items()}


_NUMBER_RE: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def number(value: Any) -> float | None:
    """A finite number given as a JSON number or as a string holding one in JSON's or a decimal spelling ("37",
    " 12.5", "1e3"); None for anything else (booleans, "null", "nan", "", "1_000")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        out = float(value)
    elif isinstance(value, str) and _NUMBER_RE.fullmatch(value.strip()):
        out = float(value.strip())
    else:
        return None
    return out if math.isfinite(out) else None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _label_attribute(record: Mapping[str, Any]) -> str:
    names = [k for k in record if isinstance(k, str) and f"{k}-metadata" in record]
    if len(names) != 1:
        found = ", ".join(sorted(k for k in record if k != "source-ref")) or "nothing"
        raise ValueError(f"expected one label attribute with its '-metadata' block, found {found}")
    return names[0]


def _parse_skeletons(raw: Any, what: str) -> list[dict[str, Any]]:
    """Skeletons as `[{"name", "annotations": [{"label", "x", "y"}]}]` with x and y as floats, from a list, one
    skeleton, or a bare list of points, each given as JSON or as its text."""
    value = json.loads(raw) if isinstance(raw, str) else raw
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list of skeletons")
    if value and all(isinstance(v, dict) and "label" in v for v in value):
        value = [{"annotations": value}]  # one skeleton given as a bare list of points
    out = []
    for s, skeleton in enumerate(value):
        points = skeleton.get("annotations") if isinstance(skeleton, dict) else None
        if not isinstance(points, list):
            raise ValueError(f"{what}[{s}] has no annotations list")
        parsed = []
        for p, point in enumerate(points):
            if not isinstance(point, dict) or not isinstance(point.get("label"), str):
                raise ValueError(f"{what}[{s}].annotations[{p}] has no label")
            x, y = number(point.get("x")), number(point.get("y"))
            if x is None or y is None:
                raise ValueError(f"{what}[{s}].annotations[{p}] ({point['label']}) needs numeric x and y")
            parsed.append({"label": point["label"], "x": x, "y": y})
        name = skeleton.get("name")
        out.append({"name": "" if name is None else str(name), "annotations": parsed})
    return out


def _geometry(skeletons: Sequence[Mapping[str, Any]]) -> Geometry:
    return {s["name"]: {p["label"]: (p["x"], p["y"]) for p in s["annotations"]} for s in skeletons}


def _exported(record: Mapping[str, Any], result: Mapping[str, Any]) -> Geometry | None:
    """What the job was given for this image, where the line says: the result's `original_annotations` (what the
    component was handed), else the line's own `annotations` or `initial_values` (an exported line's fields, which
    the output manifest carries). None when none of them is there and readable."""
    for raw in (result.get("original_annotations"), record.get("annotations"), record.get("initial_values")):
        if raw is None or raw in ("", "null"):
            continue
        try:
            return _geometry(_parse_skeletons(raw, "exported"))
        except (ValueError, TypeError, AttributeError):
            continue  # the worker's answer is what matters; Shoal's own labels say what was exported
    return None


def _parse_line(line_no: int, record: Any) -> list[Result]:
    if not isinstance(record, dict):
        raise ValueError("a manifest line must be a JSON object")
    attribute = _label_attribute(record)
    meta = _norm(record[f"{attribute}-metadata"] or {})
    kind = str(meta.get("type", ""))
    job = str(meta.get("job-name", attribute))
    value = record[attribute]
    if kind == SEMSEG_TYPE:
        return [_parse_semseg(line_no, record, attribute, job, meta)]
    if kind == BOX_TYPE or (not kind and isinstance(value, dict) and "annotations" in value):
        source = record.get("source-ref")
        if not isinstance(source, str) or not source:
            raise ValueError("'source-ref' is missing")
        if not isinstance(value, dict) or not isinstance(value.get("annotations"), list):
            raise ValueError(f"'{attribute}' has no annotations list")
        class_map = {str(k): str(v) for k, v in dict(meta.get("class-map") or {}).items()}
        confidences = [number(o.get("confidence")) for o in meta.get("objects") or [] if isinstance(o, dict)]
        boxes = []
        for i, raw in enumerate(value["annotations"]):
            a = _under(raw)
            missing = [k for k in ("class_id", "left", "top", "width", "height") if k not in a]
            if missing:
                raise ValueError(f"annotations[{i}] lacks {', '.join(missing)}")
            name = class_map.get(str(a["class_id"]))
            if name is None:
                raise ValueError(f"annotations[{i}] class_id {a['class_id']} is not in the class-map")
            sides = {k: number(a[k]) for k in ("left", "top", "width", "height")}
            bad = [k for k, v in sides.items() if v is None]
            if bad:
                raise ValueError(f"annotations[{i}] {', '.join(bad)} must be numbers")
            conf = confidences[i] if i < len(confidences) else None
            boxes.append({"class": name, **sides, "conf": conf})
        worker = str(meta.get("worker-id", ""))
        return [Result(line_no, job, BOX_TYPE, source, worker=worker, boxes=boxes, modified=True)]
    results = value.get("label-results") if isinstance(value, dict) and "label-results" in value else value
    if isinstance(results, dict):
        results = [results]
    if not isinstance(results, list) or not results:
        raise ValueError(f"'{attribute}' holds no label-results")
    out = []
    for i, r in enumerate(results):
        where = f"label-results[{i}]"
        if not isinstance(r, dict):
            raise ValueError(f"{where} is not an object")
        source = r.get("data_object_s3_uri") or r.get("image_s3_location") or record.get("source-ref")
        if not isinstance(source, str) or not source:
            raise ValueError(f"{where} names no image (data_object_s3_uri, image_s3_location or source-ref)")
        if "updated_annotations" not in r:
            raise ValueError(f"{where} lacks updated_annotations")
        try:
            skeletons = _parse_skeletons(r["updated_annotations"], f"{where}.updated_annotations")
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}.updated_annotations is not valid JSON: {err.msg}") from err
        result = Result(
            line_no,
            job,
            SKELETON_TYPE,
            source,
            worker=str(r.get("worker_id", "")),
            seconds=number(r.get("total_time_in_seconds")),
            reported_modified=_bool(r.get("was_modified")),
            no_changes=_bool(r.get("no_changes_needed")),
            skeletons=skeletons,
        )
        exported = _exported(record, r)
        if exported is not None:
            result.decide(exported)
        out.append(result)
    return out


def _parse_semseg(line_no: int, record: Mapping[str, Any], attribute: str, job: str, meta: Mapping[str, Any]) -> Result:
    source = record.get("source-ref")
    if not isinstance(source, str) or not source:
        raise ValueError("'source-ref' is missing")
    mask = record[attribute]
    if not isinstance(mask, str) or not mask:
        raise ValueError(f"'{attribute}' must be the URL of the mask")
    palette = meta.get("internal-color-map")
    if not isinstance(palette, dict) or not palette:
        raise ValueError(f"'{attribute}-metadata' has no internal-color-map")
    colors: dict[tuple[int, int, int], str] = {}
    for key, entry in palette.items():
        e = _norm(entry) if isinstance(entry, dict) else {}
        name, color = e.get("class-name"), e.get("hex-color")
        if not isinstance(name, str) or not isinstance(color, str):
            raise ValueError(f"internal-color-map[{key}] needs class-name and hex-color")
        digits = color.lstrip("#")
        if len(digits) != 6 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise ValueError(f"internal-color-map[{key}] hex-color {color!r} is not #rrggbb")
        colors[(int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))] = name
    return Result(line_no, job, SEMSEG_TYPE, source, worker=str(meta.get("worker-id", "")), mask=mask, colors=colors)


def read_mask(url: str) -> bytes:
    """The default mask reader: local paths, file:// and http(s):// URLs. Pass your own for s3:// (credentials)."""
    import urllib.parse  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme in ("", "file"):
        return Path(urllib.parse.unquote(parsed.path)).read_bytes()
    if parsed.scheme in ("http", "https"):
        with urllib.request.urlopen(url, timeout=60) as response:
            return bytes(response.read())
    raise ValueError(f"cannot read {url}: give import_results a mask_reader for {parsed.scheme}:// URLs")


def class_id_mask(png: bytes, colors: Mapping[tuple[int, int, int], str], class_ids: Mapping[str, int]) -> Any:
    """A colour mask as class ids of the class map: every colour must be in `colors`, every class in the map
    (matched without regard to case, so Ground Truth's BACKGROUND finds a class named background)."""
    import io  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    by_lower = {name.lower(): cid for name, cid in class_ids.items()}
    lookup: dict[int, int] = {}
    for (r, g, b), name in colors.items():
        cid = class_ids.get(name, by_lower.get(name.lower()))
        if cid is None:
            raise ValueError(f"class {name!r} of the colour map is not in the project's class map")
        lookup[(r << 16) | (g << 8) | b] = cid
    with Image.open(io.BytesIO(png)) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    values, inverse = np.unique(packed, return_inverse=True)
    unknown = [f"#{v:06x}" for v in values.tolist() if v not in lookup]
    if unknown:
        raise ValueError(f"mask colours {', '.join(unknown[:5])} are not in the internal-color-map")
    return np.array([lookup[v] for v in values.tolist()], dtype=np.uint8)[inverse].reshape(packed.shape)


def _under(a: Any) -> dict[str, Any]:
    return {str(k).replace("-", "_"): v for k, v in a.items()} if isinstance(a, dict) else {}


def read_output_manifest(lines: Iterable[str]) -> tuple[list[Result], list[LineError]]:
    """Parse an output manifest (JSON Lines): the results, and each bad line with its number and reason."""
    results: list[Result] = []
    errors: list[LineError] = []
    for line_no, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            errors.append(LineError(line_no, f"not JSON: {err.msg} at column {err.colno}"))
            continue
        try:
            results.extend(_parse_line(line_no, record))
        except (ValueError, TypeError, AttributeError) as err:
            errors.append(LineError(line_no, str(err)))
    return results, errors


@dataclass
class ImportReport:
    """What an import did: the new version, the frames and labels written, bad lines, labeling statistics."""

    upload: str
    version: int
    frames: int
    labels: int
    errors: list[LineError]
    stats: LabelingStats


def _attrs(label: label_pb2.Label, r: Result, modified: bool | None) -> None:
    for key in (ATTR_JOB, ATTR_WORKER, ATTR_SECONDS, ATTR_MODIFIED, ATTR_REPORTED_MODIFIED):
        if key in label.attributes:
            del label.attributes[key]  # an earlier job's, on a label this one keeps
    label.attributes[ATTR_JOB].string_value = r.job
    if r.worker:
        label.attributes[ATTR_WORKER].string_value = r.worker
    if r.seconds is not None:
        label.attributes[ATTR_SECONDS].float_value = r.seconds
    if modified is not None:
        label.attributes[ATTR_MODIFIED].bool_value = modified
    if r.reported_modified is not None:
        label.attributes[ATTR_REPORTED_MODIFIED].bool_value = r.reported_modified


def _escape(text: str) -> str:
    return "".join(c if c.isprintable() and c not in rules.ID_FORBIDDEN and c != "%" else _percent(c) for c in text)


def _percent(c: str) -> str:
    return "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))


def label_id(frame_id: str, sensor_id: str, job: str, suffix: str) -> str:
    """The id of a label an import makes: `{frame}-{sensor}-{job}-{suffix}`, always a valid label id whatever the job
    is called. The job's name keeps its readable characters; those ids may not hold (`# [ ] ? * , /`, control
    characters) and `%` itself are percent-encoded, so two job names never give one id; an id over the length limit
    is cut and ends in a digest of the whole.

        label_id("pose-0001", "cam", "labeling-job/name", "kp0")  # 'pose-0001-cam-labeling-job%2Fname-kp0'
    """
    text = f"{frame_id}-{sensor_id}-{_escape(job)}-{suffix}"
    if len(text) <= rules.MAX_ID_LENGTH:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{text[: rules.MAX_ID_LENGTH - len(digest) - 1]}-{digest}"


def import_results(
    client: Client,
    project_id: str,
    dataset_id: str,
    manifest: str | Path | Iterable[str],
    *,
    class_name: str = "",
    version: int | None = None,
    timeout: float = 600.0,
    mask_reader: Callable[[str], bytes] = read_mask,
) -> ImportReport:
    """Import a Ground Truth output manifest as a new version of the dataset.

    Skeleton results replace the image's keypoint labels of `class_name`: a skeleton named after one of them keeps
    its id, its other fields, its keypoints' visibility and, for each coordinate that came back at the pixel it was
    exported at, the exact value (the job saw whole pixels); moved coordinates and new keypoints take the worker's.
    Bounding-box results replace the image's boxes; semantic-segmentation results replace its mask (read with
    `mask_reader`, converted from the job's colours to the class map's ids and stored as an asset). Every written
    label records the job, the worker, the seconds spent, whether it was modified (Shoal's decision) and the job's
    own `was_modified` flag (`gt_*` attributes). The frames are read from `version` (default: newest) and written
    back whole, so the earlier versions keep their labels.
    """
    text: Iterable[str] = Path(manifest).read_text().splitlines() if isinstance(manifest, str | Path) else manifest
    results, errors = read_output_manifest(text)
    project = client.get_project(project_id)
    rigs_by_class = {e.name: [k.name for k in e.keypoints] for e in project.class_map.entries}
    class_ids = {e.name: int(e.class_id) for e in project.class_map.entries}
    if any(r.kind == SKELETON_TYPE for r in results) and not rigs_by_class.get(class_name):
        raise ValueError(f"{class_name!r} is not a class with a keypoint rig in project {project_id!r}")
    by_source: dict[str, tuple[str, str]] = {}
    frames: dict[str, frame_pb2.Frame] = {}
    for frame in client.stream_frames(project_id, dataset_id, version=version):
        for sensor in _images(frame, None):
            by_source[sensor.image.url] = (frame.frame_id, sensor.sensor_id)
        frames[frame.frame_id] = frame
    changed: dict[str, frame_pb2.Frame] = {}
    imported: list[Result] = []
    lines_of: dict[str, list[int]] = defaultdict(list)
    written: dict[str, int] = {}
    bad_lines = {e.line for e in errors}
    for r in results:
        if r.line in bad_lines:
            continue
        found = by_source.get(r.source)
        if found is None:
            errors.append(LineError(r.line, f"no frame has the image {r.source}"))
            continue
        frame_id, sensor_id = found
        frame = changed.get(frame_id) or frame_pb2.Frame.FromString(frames[frame_id].SerializeToString())
        try:
            if r.kind == SEMSEG_TYPE:
                new = [_semseg_label(client, project_id, dataset_id, r, frame_id, sensor_id, class_ids, mask_reader)]
            else:
                new = _labels_for(r, frame, sensor_id, class_name, rigs_by_class)
        except (ValueError, OSError) as err:
            errors.append(LineError(r.line, str(err)))
            continue
        geometry = {SKELETON_TYPE: "keypoints_2d", BOX_TYPE: "box_2d", SEMSEG_TYPE: "semantic_segmentation_2d"}[r.kind]
        kept = [
            lb
            for lb in frame.labels
            if not (
                lb.sensor_id == sensor_id
                and lb.WhichOneof("geometry") == geometry
                and (r.kind != SKELETON_TYPE or lb.classification == class_name)
            )
        ]
        del frame.labels[:]
        frame.labels.extend([*kept, *new])
        frame.change_type = frame_pb2.CHANGE_TYPE_ADD
        changed[frame_id] = frame
        imported.append(r)
        lines_of[frame_id].append(r.line)
        written[frame_id] = written.get(frame_id, 0) + len(new)
    if not changed:
        errors.sort(key=lambda e: e.line)
        return ImportReport("", 0, 0, 0, errors, LabelingStats.of(imported))
    report = client.upload(f"projects/{project_id}/datasets/{dataset_id}", list(changed.values()))
    done = client.wait_for_upload(report.name, timeout=timeout)
    # Frames the server refused (a mask of the wrong size, a label it rejects) go back to their lines.
    refused: set[str] = set()
    for problem in client.list_upload_errors(report.name):
        refused.add(problem.frame_id)
        for line in lines_of.get(problem.frame_id, []):
            where = f" ({problem.label_id})" if problem.label_id else ""
            errors.append(LineError(line, f"{problem.reason}{where}: {problem.description}"))
    errors.sort(key=lambda e: e.line)
    refused_lines = {n for f in refused for n in lines_of.get(f, [])}
    landed = [r for r in imported if r.line not in refused_lines]
    return ImportReport(
        report.name,
        max(done.versions, default=0),
        len(changed) - len(refused & set(changed)),
        sum(n for f, n in written.items() if f not in refused),
        errors,
        LabelingStats.of(landed),
    )


def _semseg_label(  # noqa: PLR0917
    client: Client,
    project_id: str,
    dataset_id: str,
    r: Result,
    frame_id: str,
    sensor_id: str,
    class_ids: Mapping[str, int],
    mask_reader: Callable[[str], bytes],
) -> label_pb2.Label:
    from shoal.sdk.frames import mask_png  # noqa: PLC0415
    from shoal.v1 import asset_pb2  # noqa: PLC0415

    ids = class_id_mask(mask_reader(r.mask), r.colors, class_ids)

    def fail(problem: str) -> None:
        raise ValueError(problem)

    asset = client.upload_asset(
        project_id, dataset_id, mask_png(ids, fail), kind=asset_pb2.ASSET_KIND_MASK, filename="mask.png"
    )
    label = label_pb2.Label(label_id=label_id(frame_id, sensor_id, r.job, "semseg"), sensor_id=sensor_id)
    label.semantic_segmentation_2d.mask_url = asset.url
    _attrs(label, r, r.modified)
    return label


def _labels_for(
    r: Result,
    frame: frame_pb2.Frame,
    sensor_id: str,
    class_name: str,
    rigs_by_class: Mapping[str, Sequence[str]],
) -> list[label_pb2.Label]:
    frame_id = frame.frame_id
    out: list[label_pb2.Label] = []
    if r.kind == BOX_TYPE:
        for i, b in enumerate(r.boxes):
            if b["class"] not in rigs_by_class:
                raise ValueError(f"class {b['class']!r} is not in the project's class map")
            label = label_pb2.Label(
                label_id=label_id(frame_id, sensor_id, r.job, f"box{i}"), classification=b["class"], sensor_id=sensor_id
            )
            label.box_2d.CopyFrom(label_pb2.Box2D(left=b["left"], top=b["top"], width=b["width"], height=b["height"]))
            _attrs(label, r, r.modified)
            out.append(label)
        return out
    rig = rigs_by_class[class_name]
    order = {name: i for i, name in enumerate(rig)}
    for i, skeleton in enumerate(r.skeletons):
        names = [p["label"] for p in skeleton["annotations"]]
        unknown = sorted(set(names) - set(rig))
        if unknown:
            raise ValueError(f"skeleton {i}: {', '.join(unknown)} are not keypoints of the {class_name!r} rig")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"skeleton {i}: {', '.join(repeated)} given twice")
    current = {
        lb.label_id: lb
        for lb in frame.labels
        if lb.sensor_id == sensor_id and lb.classification == class_name and lb.WhichOneof("geometry") == "keypoints_2d"
    }
    if r.exported is None:  # the line did not say what the job was given: what Shoal holds is what it exported
        r.decide(
            {
                lid: {
                    k.name: (k.x, k.y)
                    for k in lb.keypoints_2d.keypoints
                    if k.visibility != label_pb2.KEYPOINT_VISIBILITY_NOT_LABELED
                }
                for lid, lb in current.items()
            }
        )
    exported = r.exported or {}
    taken: set[str] = set()
    for i, skeleton in enumerate(r.skeletons):
        name = skeleton["name"]
        before = current.get(name) if name not in taken else None
        shown = exported.get(name) or {}
        if before is not None:
            taken.add(name)
            label = label_pb2.Label()
            label.CopyFrom(before)
            del label.keypoints_2d.keypoints[:]
        else:
            label = label_pb2.Label(
                label_id=label_id(frame_id, sensor_id, r.job, f"kp{i}"), classification=class_name, sensor_id=sensor_id
            )
        old = {k.name: k for k in before.keypoints_2d.keypoints} if before is not None else {}
        points: list[label_pb2.Keypoint] = []
        for p in skeleton["annotations"]:
            points.append(_merged(p, shown.get(p["label"]), old.get(p["label"])))
        # Points the job never showed (never labeled, or added since the export) stay; shown ones left out were removed.
        returned = {p["label"] for p in skeleton["annotations"]}
        points += [k for n, k in old.items() if n not in returned and n not in shown]
        points.sort(key=lambda k: order.get(k.name, len(order)))
        label.keypoints_2d.keypoints.extend(points)
        label.keypoints_2d.SetInParent()
        _attrs(label, r, r.skeletons_modified[i] if i < len(r.skeletons_modified) else r.modified)
        out.append(label)
    return out


def _merged(
    back: Mapping[str, Any], shown: tuple[float, float] | None, held: label_pb2.Keypoint | None
) -> label_pb2.Keypoint:
    """A keypoint that came back: each coordinate still at the pixel it was shown at keeps Shoal's exact value (the
    job only saw whole pixels), a moved one takes the worker's; a labeled point keeps its visibility (the job cannot
    say), anything else becomes visible."""
    labeled = held is not None and held.visibility in (
        label_pb2.KEYPOINT_VISIBILITY_VISIBLE,
        label_pb2.KEYPOINT_VISIBILITY_OCCLUDED,
    )
    x, y = float(back["x"]), float(back["y"])
    if held is not None and labeled and shown is not None:
        if pixel(x) == pixel(shown[0]):
            x = held.x
        if pixel(y) == pixel(shown[1]):
            y = held.y
    visibility = held.visibility if held is not None and labeled else label_pb2.KEYPOINT_VISIBILITY_VISIBLE
    return label_pb2.Keypoint(name=str(back["label"]), x=x, y=y, visibility=visibility)
