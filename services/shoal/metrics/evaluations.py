"""Evaluations of inference sets: validate the request, read both sides from the stored tables, compute, and keep the
results in the object store keyed by everything they depend on (inference set content, dataset version, parameters,
engine), so the same question is answered from the store the second time.

Layout: `metrics/{project}/{dataset}/{inference_set}/{evaluation}/` holds `evaluation.binpb` (the Evaluation),
`matches.binpb` and `candidates.binpb`. The evaluation record is written last, so a SUCCEEDED record means the rest
is there.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf import timestamp_pb2
from PIL import Image

from shoal.kit.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from shoal.kit.names import InferenceSetName, parse_inference_set
from shoal.kit.objectstore import ObjectStore
from shoal.kit.paging import offset_of, offset_token
from shoal.kit.paging import page_size as page_size_of
from shoal.kit.parsed import ParsedObjects
from shoal.kit.settings import StoreSettings
from shoal.metrics import tasks
from shoal.metrics.frames import METADATA, PREDICTION_COLUMNS, TRUTH_COLUMNS, Frames, column, entries
from shoal.storage.assetnames import referenced_asset
from shoal.storage.catalog import Catalog
from shoal.storage.reads import Reads
from shoal.storage.tables import TableRoot, VersionedTables
from shoal.v1 import common_pb2, evaluation_pb2, metrics_service_pb2

log = logging.getLogger("shoal.metrics.evaluations")

#: Bump when a change to the computation changes any figure: cached results of older engines are not reused.
#: 2: COCO areas from the labels' `area` attribute; images in pycocotools' order (integer ids by value).
ENGINE_VERSION: Final = "2"
MAX_DETECTIONS: Final = 10_000
EVALUATION_ID: Final = re.compile(r"[0-9a-f]{32}")

Report = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Plan:
    """A validated evaluation request, with the versions it will read."""

    inference_set: InferenceSetName
    dataset_version: int
    inference_version: int
    params: evaluation_pb2.EvaluationParams
    evaluation_id: str

    @property
    def name(self) -> str:
        return f"{self.inference_set}/evaluations/{self.evaluation_id}"


def _prefix(s: InferenceSetName) -> str:
    return f"metrics/{s.project}/{s.dataset}/{s.inference_set}/"


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


def validate_params(params: evaluation_pb2.EvaluationParams) -> list[FieldViolation]:
    """Every problem with the parameters, each naming its field."""
    out: list[FieldViolation] = []
    thr = list(params.iou_thresholds)
    for i, t in enumerate(thr):
        if not (math.isfinite(t) and 0 < t <= 1):
            out.append(FieldViolation(f"params.iou_thresholds[{i}]", f"{t} is not in (0, 1]"))
    if any(b <= a for a, b in itertools.pairwise(thr)):
        out.append(FieldViolation("params.iou_thresholds", "must be strictly ascending"))
    for field in ("confidence_threshold", "match_iou_threshold", "match_confidence_threshold"):
        v = getattr(params, field)
        if not (math.isfinite(v) and 0 <= v <= 1):
            out.append(FieldViolation(f"params.{field}", f"{v} is not in [0, 1]"))
    names = [a.name for a in params.area_ranges]
    for i, a in enumerate(params.area_ranges):
        where = f"params.area_ranges[{i}]"
        if not a.name:
            out.append(FieldViolation(f"{where}.name", "must not be empty"))
        elif names.count(a.name) > 1:
            out.append(FieldViolation(f"{where}.name", f"{a.name!r} is used twice"))
        if not (math.isfinite(a.min_area) and a.min_area >= 0):
            out.append(FieldViolation(f"{where}.min_area", "must be a non-negative number"))
        if not math.isfinite(a.max_area) or (a.max_area != 0 and a.max_area <= a.min_area):
            out.append(FieldViolation(f"{where}.max_area", "must be 0 (no bound) or above min_area"))
    if params.area_ranges and params.area_ranges[0].name != "all":
        out.append(
            FieldViolation("params.area_ranges[0].name", 'the first range must be "all" (headline figures use it)')
        )
    dets = list(params.max_detections)
    for i, m in enumerate(dets):
        if not 0 < m <= MAX_DETECTIONS:
            out.append(FieldViolation(f"params.max_detections[{i}]", f"must be in 1..{MAX_DETECTIONS}"))
    if any(b <= a for a, b in itertools.pairwise(dets)):
        out.append(FieldViolation("params.max_detections", "must be strictly ascending"))
    if params.stratify_values and not params.stratify_by:
        out.append(FieldViolation("params.stratify_values", "needs params.stratify_by"))
    for cls, sig in params.keypoint_sigmas.items():
        for kp, v in sig.sigmas.items():
            if not (math.isfinite(v) and v > 0):
                out.append(FieldViolation(f"params.keypoint_sigmas[{cls}].sigmas[{kp}]", "must be positive"))
    if params.top_k > 100:
        out.append(FieldViolation("params.top_k", "must be at most 100"))
    return out


def cache_key(plan_inputs: Sequence[str | bytes]) -> str:
    h = hashlib.sha256()
    for part in plan_inputs:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()[:32]


class Evaluations:
    """The metrics service's domain."""

    def __init__(self, store: ObjectStore, settings: StoreSettings) -> None:
        self.store = store
        self.catalog = Catalog(store)
        self.root = TableRoot(settings)
        self.reads = Reads(store, settings)
        # Read only once an evaluation succeeded, when they no longer change.
        self.matches = ParsedObjects(store, metrics_service_pb2.ListFrameMatchesResponse.FromString)
        self.label_errors = ParsedObjects(store, metrics_service_pb2.ListLabelErrorCandidatesResponse.FromString)

    # planning -------------------------------------------------------------------------------------------------------

    def plan(self, parent: str, dataset_version: str, params: evaluation_pb2.EvaluationParams) -> Plan:
        name = parse_inference_set(parent, "parent")
        violations = validate_params(params)
        if violations:
            raise InvalidArgument.of(violations)
        inference_set = self.catalog.get_inference_set(name)
        project = self.catalog.get_project(name.dataset_name.parent)
        tasks.Classes.of(project.class_map, list(params.classes))  # unknown classes are INVALID_ARGUMENT
        for cls in params.keypoint_sigmas:
            if cls not in {e.name for e in project.class_map.entries}:
                raise InvalidArgument.of(
                    [FieldViolation(f"params.keypoint_sigmas[{cls}]", "not in the project's class map")],
                    reason="UNKNOWN_CLASS",
                )
        if dataset_version:
            ref = self.reads.resolve(dataset_version, "dataset_version")
            if ref.dataset != name.dataset_name:
                raise InvalidArgument.of(
                    [FieldViolation("dataset_version", f"is a version of {ref.dataset}, not of {name.dataset_name}")]
                )
            version = ref.version
        else:
            version = int(inference_set.dataset_version)
        if version <= 0:
            raise FailedPrecondition(
                f"{name} is not pinned to a dataset version and none was named", reason="NO_DATASET_VERSION"
            )
        tables = self.root.tables(name.dataset_name)
        tables.frames_at(version)  # NOT_FOUND (VERSION_EXPIRED) when retention dropped it
        latest = self.root.tables(name).latest()
        inference_version = latest.version if latest else 0
        key = cache_key(
            [
                ENGINE_VERSION,
                str(name),
                str(version),
                str(inference_version),
                params.SerializeToString(deterministic=True),
                project.class_map.SerializeToString(deterministic=True),
            ]
        )
        return Plan(name, version, inference_version, params, key)

    # storage --------------------------------------------------------------------------------------------------------

    def _key(self, plan_or_name: Plan | str, part: str) -> str:
        if isinstance(plan_or_name, Plan):
            return f"{_prefix(plan_or_name.inference_set)}{plan_or_name.evaluation_id}/{part}"
        parent, evaluation_id = self._parse(plan_or_name)
        return f"{_prefix(parent)}{evaluation_id}/{part}"

    @staticmethod
    def _parse(name: str, field: str = "name") -> tuple[InferenceSetName, str]:
        head, sep, evaluation_id = name.rpartition("/evaluations/")
        if not sep:
            raise InvalidArgument.of(
                [FieldViolation(field, "must look like projects/{p}/datasets/{d}/inferenceSets/{i}/evaluations/{e}")],
                reason="INVALID_NAME",
            )
        if not EVALUATION_ID.fullmatch(evaluation_id):
            raise InvalidArgument.of(
                [FieldViolation(field, f"{evaluation_id!r} is not an evaluation id (32 hex digits)")],
                reason="INVALID_NAME",
            )
        return parse_inference_set(head, field), evaluation_id

    def cached(self, plan: Plan) -> evaluation_pb2.Evaluation | None:
        found = self.store.get_or_none(self._key(plan, "evaluation.binpb"))
        if found is None:
            return None
        evaluation = evaluation_pb2.Evaluation.FromString(found)
        return evaluation if evaluation.state == evaluation_pb2.EVALUATION_STATE_SUCCEEDED else None

    def get(self, name: str) -> evaluation_pb2.Evaluation:
        raw = self.store.get_or_none(self._key(name, "evaluation.binpb"))
        if raw is None:
            raise NotFound(f"{name} does not exist", reason="EVALUATION_NOT_FOUND", metadata={"name": name})
        return evaluation_pb2.Evaluation.FromString(raw)

    def list_evaluations(
        self, parent: str, page_size: int, page_token: str
    ) -> tuple[list[evaluation_pb2.Evaluation], str]:
        name = parse_inference_set(parent, "parent")
        self.catalog.get_inference_set(name)
        size = page_size_of(page_size)
        start = offset_of(page_token)
        keys = sorted(o.key for o in self.store.iter_all(_prefix(name)) if o.key.endswith("/evaluation.binpb"))
        out = []
        for key in keys[start : start + size]:
            raw = self.store.get_or_none(key)
            if raw is None:
                continue
            evaluation = evaluation_pb2.Evaluation.FromString(raw)
            evaluation.ClearField("result")
            evaluation.ClearField("strata")
            out.append(evaluation)
        return out, offset_token(start + size) if start + size < len(keys) else ""

    def frame_matches(
        self,
        name: str,
        kind: int,
        page_size: int,
        page_token: str,
        cell: metrics_service_pb2.ConfusionCell | None = None,
    ) -> metrics_service_pb2.ListFrameMatchesResponse:
        """Frames with their matches; with `kind`, those with a match of that kind; with `cell`, those with a match
        counted in that cell of the confusion matrix (the last label is background: a match without a partner)."""
        evaluation = self.get(name)
        if evaluation.state != evaluation_pb2.EVALUATION_STATE_SUCCEEDED:
            raise FailedPrecondition(f"{name} has not finished", reason="EVALUATION_NOT_DONE", metadata={"name": name})
        stored = self.matches.get(self._key(name, "matches.binpb")) or metrics_service_pb2.ListFrameMatchesResponse()
        frames = list(stored.frames)
        if kind:
            frames = [f for f in frames if any(m.kind == kind for m in f.matches)]
        if cell is not None:
            labels = list(evaluation.result.confusion_matrix.labels)
            bad = [
                FieldViolation(f"cell.{axis}", f"must be below {len(labels)}, the confusion matrix's size")
                for axis, index in (("row", cell.row), ("column", cell.column))
                if index >= len(labels)
            ]
            if bad:
                raise InvalidArgument.of(bad, reason="INVALID_CELL")
            names = [*labels[:-1], ""]  # background: no partner on that side
            truth, prediction = names[cell.row], names[cell.column]
            frames = [
                f
                for f in frames
                if any(
                    m.ground_truth_class == truth
                    and m.prediction_class == prediction
                    and m.kind != evaluation_pb2.MATCH_KIND_UNSPECIFIED
                    for m in f.matches
                )
            ]
        size, start = page_size_of(page_size), offset_of(page_token)
        return metrics_service_pb2.ListFrameMatchesResponse(
            frames=frames[start : start + size],
            next_page_token=offset_token(start + size) if start + size < len(frames) else "",
        )

    def candidates(
        self, name: str, reasons: Sequence[int], page_size: int, page_token: str
    ) -> metrics_service_pb2.ListLabelErrorCandidatesResponse:
        self._require_done(name)
        stored = (
            self.label_errors.get(self._key(name, "candidates.binpb"))
            or metrics_service_pb2.ListLabelErrorCandidatesResponse()
        )
        items = [c for c in stored.candidates if not reasons or c.reason in reasons]
        size, start = page_size_of(page_size), offset_of(page_token)
        return metrics_service_pb2.ListLabelErrorCandidatesResponse(
            candidates=items[start : start + size],
            next_page_token=offset_token(start + size) if start + size < len(items) else "",
        )

    def _require_done(self, name: str) -> None:
        evaluation = self.get(name)
        if evaluation.state != evaluation_pb2.EVALUATION_STATE_SUCCEEDED:
            raise FailedPrecondition(f"{name} has not finished", reason="EVALUATION_NOT_DONE", metadata={"name": name})

    # running --------------------------------------------------------------------------------------------------------

    def start(self, plan: Plan) -> evaluation_pb2.Evaluation:
        """The RUNNING record, written before the work starts (listed while it runs)."""
        evaluation = evaluation_pb2.Evaluation(
            name=plan.name,
            dataset_version=plan.dataset_version,
            params=plan.params,
            state=evaluation_pb2.EVALUATION_STATE_RUNNING,
            create_time=_now(),
        )
        self.store.put(self._key(plan, "evaluation.binpb"), evaluation.SerializeToString())
        return evaluation

    def failed(self, plan: Plan) -> None:
        raw = self.store.get_or_none(self._key(plan, "evaluation.binpb"))
        evaluation = evaluation_pb2.Evaluation.FromString(raw) if raw else evaluation_pb2.Evaluation(name=plan.name)
        evaluation.state = evaluation_pb2.EVALUATION_STATE_FAILED
        evaluation.complete_time.CopyFrom(_now())
        self.store.put(self._key(plan, "evaluation.binpb"), evaluation.SerializeToString())

    def load(self, plan: Plan, report: Report) -> tuple[Frames, int]:
        """Both sides of every frame the inference set covers at `plan`'s versions, as columns (one row per frame,
        in the image order); and how many inference frames have no frame at the dataset version."""
        report("reading", 0, 0)
        frames, missing = read_frames(
            self.root.tables(plan.inference_set.dataset_name),
            plan.dataset_version,
            self.root.tables(plan.inference_set),
            plan.inference_version,
            metadata=bool(plan.params.stratify_by),
        )
        report("reading", len(frames), len(frames))
        return frames, missing

    def mask_loader(self) -> tasks.MaskLoader:
        cache: dict[str, np.ndarray] = {}

        def load(url: str) -> np.ndarray:
            if url in cache:
                return cache[url]
            name = referenced_asset(url)
            raw = self.store.get_or_none(name.blob) if name else None
            if raw is None:
                raise FailedPrecondition(
                    f"mask {url} is not a readable Shoal asset", reason="MASK_UNREADABLE", metadata={"url": url}
                )
            with Image.open(io.BytesIO(raw)) as img:
                arr = np.asarray(img.convert("L") if img.mode not in {"L", "P", "I;16", "I"} else img)
            if len(cache) < 256:
                cache[url] = arr
            return arr

        return load

    def compute(self, plan: Plan, report: Report) -> evaluation_pb2.Evaluation:
        """Read, evaluate (overall and per stratum) and store; the stored Evaluation."""
        frames, missing = self.load(plan, report)
        project = self.catalog.get_project(plan.inference_set.dataset_name.parent)
        classes = tasks.Classes.of(project.class_map, list(plan.params.classes))
        task = plan.params.task or tasks.infer_task(frames)
        tasks.check_task(frames, task)
        masks = self.mask_loader()
        report("evaluating", 0, len(frames))
        outcome = tasks.evaluate(frames, task, plan.params, classes, masks)
        outcome.result.metrics["frames_without_ground_truth"] = float(missing)
        evaluation = evaluation_pb2.Evaluation(
            name=plan.name,
            dataset_version=plan.dataset_version,
            params=plan.params,
            state=evaluation_pb2.EVALUATION_STATE_SUCCEEDED,
            result=outcome.result,
        )
        evaluation.params.task = task
        if plan.params.stratify_by:
            for value, subset in strata(frames, plan.params):
                sub = tasks.evaluate(subset, task, plan.params, classes, masks)
                evaluation.strata.add(value=value, result=sub.result)
        report("storing", len(frames), len(frames))
        self.store.put(
            self._key(plan, "matches.binpb"),
            metrics_service_pb2.ListFrameMatchesResponse(frames=outcome.matches).SerializeToString(),
        )
        self.store.put(
            self._key(plan, "candidates.binpb"),
            metrics_service_pb2.ListLabelErrorCandidatesResponse(candidates=outcome.candidates).SerializeToString(),
        )
        raw = self.store.get_or_none(self._key(plan, "evaluation.binpb"))
        if raw:
            evaluation.create_time.CopyFrom(evaluation_pb2.Evaluation.FromString(raw).create_time)
        else:
            evaluation.create_time.CopyFrom(_now())
        evaluation.complete_time.CopyFrom(_now())
        self.store.put(self._key(plan, "evaluation.binpb"), evaluation.SerializeToString())
        return evaluation


def read_frames(
    dataset: VersionedTables,
    dataset_version: int,
    inference: VersionedTables,
    inference_version: int,
    *,
    metadata: bool = False,
) -> tuple[Frames, int]:
    """The columns an evaluation reads of both sides, joined by frame id and in the image order; and how many
    inference frames have no frame at the dataset version. Nothing is decoded: the ground truth is read whole when
    the inference set covers a good part of the version, else by frame id."""
    extra = [METADATA] if metadata else []
    predictions = (
        inference.read(inference_version, [*PREDICTION_COLUMNS, *extra])
        if inference_version
        else inference.layout.schema().empty_table().select([*PREDICTION_COLUMNS, *extra])
    )
    columns = [*TRUTH_COLUMNS, *extra]
    if predictions.num_rows * 2 >= dataset.version(dataset_version).frame_count:
        truth = dataset.read(dataset_version, columns)
    else:
        truth = dataset.rows(predictions.column("frame_id").to_pylist(), dataset_version, columns)
    frames, missing = Frames.join(predictions, truth)
    return tasks.in_image_order(frames), missing


#: MetadataValue members holding one scalar (and `null_value`'s type number); floats are compared by their bits, as
#: their serialization compares them (0.0 and -0.0 apart).
_SCALARS: Final = ("string_value", "int_value", "float_value", "bool_value", "null_value")


def _metadata_values(table: pa.Table, key: str) -> tuple[np.ndarray, pa.Array]:
    """Rows whose `user_metadata` has `key`, and the value each has there."""
    found = column(table, METADATA)
    if found is None:
        return np.zeros(0, np.int64), pa.array([], pa.struct([]))
    owner, keys, values = entries(found)
    hits = pc.equal(keys, key).fill_null(False)
    return owner[np.asarray(hits.to_numpy(zero_copy_only=False), bool)], values.filter(hits)


def _groups(values: pa.Array) -> tuple[np.ndarray, list[common_pb2.MetadataValue]]:
    """Each value's group and one MetadataValue per group: values in one group serialize alike. Groups are found
    per member of the oneof with NumPy; only list members are compared one value at a time (by their repr)."""
    group = np.zeros(len(values), np.int64)
    found: list[common_pb2.MetadataValue] = []
    member = np.asarray(pc.struct_field(values, "kind").fill_null("").to_numpy(zero_copy_only=False), dtype=object)
    for kind in sorted(set(member.tolist())):
        rows = np.flatnonzero(member == kind)
        if not kind:
            keys: np.ndarray = np.zeros(len(rows), np.int64)
        elif kind in _SCALARS:
            keys = np.asarray(pc.struct_field(values, kind).take(pa.array(rows)).to_numpy(zero_copy_only=False))
            if kind == "float_value":
                keys = keys.view(np.int64)
        else:
            items = pc.struct_field(values, [kind, "values"]).take(pa.array(rows)).to_pylist()
            seen: dict[str, int] = {}
            keys = np.array([seen.setdefault(repr(v), len(seen)) for v in items], np.int64)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        group[rows] = len(found) + inverse.reshape(-1)
        found.extend(_metadata_value(values, int(rows[i])) for i in first.tolist())
    return group, found


def _metadata_value(values: pa.Array, row: int) -> common_pb2.MetadataValue:
    """One MetadataValue of a column of them."""
    given = values.slice(row, 1).to_pylist()[0]
    value = common_pb2.MetadataValue()
    kind = given.get("kind")
    if kind is None:
        return value
    if kind.endswith("_list_value"):
        getattr(value, kind).SetInParent()
        getattr(value, kind).values.extend(given[kind]["values"] or [])
    else:
        setattr(value, kind, given[kind])
    return value


def strata(frames: Frames, params: evaluation_pb2.EvaluationParams) -> list[tuple[common_pb2.MetadataValue, Frames]]:
    """Frames grouped by the value of `params.stratify_by` (ground truth metadata first, then the inference frame's);
    only the listed values when `stratify_values` is given, in that order, else every value present, sorted."""
    field = params.stratify_by
    n = len(frames)
    truth_rows, truth_values = _metadata_values(frames.truth, field)
    predicted_rows, predicted_values = _metadata_values(frames.predictions, field)
    source = np.full(n, -1, np.int64)
    source[predicted_rows] = len(truth_rows) + np.arange(len(predicted_rows))
    source[truth_rows] = np.arange(len(truth_rows))
    rows = np.flatnonzero(source >= 0)
    groups: dict[bytes, tuple[common_pb2.MetadataValue, list[np.ndarray]]] = {}
    if rows.size:
        values = pa.concat_arrays([v for v in (truth_values, predicted_values) if len(v)]).take(pa.array(source[rows]))
        group, found = _groups(values)
        # First seen first: the order equal sort keys keep.
        order = np.argsort(np.unique(group, return_index=True)[1], kind="stable")
        for g in order.tolist():
            value = found[g]
            groups.setdefault(_value_key(value), (value, []))[1].append(rows[group == g])
    chosen = {k: (v, frames.take(np.sort(np.concatenate(parts)))) for k, (v, parts) in groups.items()}
    if params.stratify_values:
        return [
            (v, chosen[_value_key(v)][1] if _value_key(v) in chosen else frames.take(np.zeros(0, np.int64)))
            for v in params.stratify_values
        ]
    return [chosen[k] for k in sorted(chosen, key=lambda k: str(chosen[k][0]))]


def _value_key(value: common_pb2.MetadataValue) -> bytes:
    return value.SerializeToString(deterministic=True)
