"""Keypoint checks of a dataset version: plan (validate, resolve, name the result), run (read the version's keypoint
labels, run the rules of `keypoints` per class, store the ranked list), page. The ranked list is stored keyed by
everything it depends on (version, class map, classes, rules), so paging through it, or asking again, reads it back
instead of scanning the version again; the server runs checks as operations so that a long one outlives the call
that asked for it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from shoal.kit.errors import FieldViolation, InvalidArgument
from shoal.kit.names import DatasetName
from shoal.kit.objectstore import ObjectStore
from shoal.kit.paging import offset_of, offset_token
from shoal.kit.paging import page_size as page_size_of
from shoal.kit.parsed import ParsedObjects
from shoal.kit.settings import StoreSettings
from shoal.metrics import keypoints
from shoal.storage.catalog import Catalog
from shoal.storage.reads import Reads
from shoal.storage.tables import VersionedTables
from shoal.v1 import metrics_service_pb2

#: Changes when the rules change, so stored results of older rules are not served.
RULES_VERSION: Final = "keypoint-rules-2"
#: Frames are read (and progress reported) this many at a time.
PROGRESS_EVERY: Final = 5000


@dataclass(frozen=True)
class CheckPlan:
    """One check, resolved: the concrete version, its tables, the rigs and rules, and where its result is stored."""

    dataset: DatasetName
    version: int
    tables: VersionedTables
    rigs: dict[str, keypoints.Rig]
    rules: list[int]
    key: str  # object-store key of the stored result
    digest: str  # identifies the check: the same dataset, version, class map, classes and rules, the same digest


class KeypointChecks:
    def __init__(self, store: ObjectStore, settings: StoreSettings) -> None:
        self.store = store
        self.catalog = Catalog(store)
        self.reads = Reads(store, settings)
        self.results = ParsedObjects(store, metrics_service_pb2.CheckKeypointsResponse.FromString)

    def plan(self, dataset_version: str, classes: Sequence[str], rules: Sequence[int]) -> CheckPlan:
        """Validate a request and resolve what it checks; INVALID_ARGUMENT names the field at fault."""
        if not dataset_version:
            raise InvalidArgument.of([FieldViolation("dataset_version", "is required")])
        ref = self.reads.resolve(dataset_version, "dataset_version")
        project = self.catalog.get_project(ref.dataset.parent)
        rigged = {e.name: keypoints.Rig.of(e) for e in project.class_map.entries if e.keypoints}
        violations = [
            FieldViolation(f"classes[{i}]", f"{c!r} is not a class with a keypoint rig in {ref.dataset.parent}")
            for i, c in enumerate(classes)
            if c not in rigged
        ]
        violations += [
            FieldViolation(f"rules[{i}]", f"{r} is not a keypoint rule")
            for i, r in enumerate(rules)
            if r not in keypoints.RULES
        ]
        if violations:
            raise InvalidArgument.of(violations)
        chosen = sorted(set(classes) or set(rigged))
        chosen_rules = sorted(int(r) for r in set(rules) or set(keypoints.RULES))
        digest = hashlib.sha256(
            b"\0".join(
                [
                    RULES_VERSION.encode(),
                    str(ref.dataset).encode(),
                    str(ref.version).encode(),
                    project.class_map.SerializeToString(deterministic=True),
                    ",".join(chosen).encode(),
                    ",".join(map(str, chosen_rules)).encode(),
                ]
            )
        ).hexdigest()
        return CheckPlan(
            ref.dataset,
            ref.version,
            ref.tables,
            {c: rigged[c] for c in chosen},
            chosen_rules,
            f"checks/{ref.dataset}/keypoints/{digest}.binpb",
            digest,
        )

    def stored(self, plan: CheckPlan) -> metrics_service_pb2.CheckKeypointsResponse | None:
        """The stored result of the check, if it ran before."""
        return self.results.get(plan.key)

    def run(
        self, plan: CheckPlan, progress: Callable[..., None] = lambda *a, **k: None
    ) -> metrics_service_pb2.CheckKeypointsResponse:
        """Scan the version, run the rules, store the ranked result; returns its summary (no candidates)."""
        result = self._compute(plan, progress)
        self.store.put(plan.key, result.SerializeToString(deterministic=True), "application/x-protobuf")
        return summary(result)

    @staticmethod
    def page(
        result: metrics_service_pb2.CheckKeypointsResponse, page_size: int, page_token: str
    ) -> metrics_service_pb2.CheckKeypointsResponse:
        size, start = page_size_of(page_size), offset_of(page_token)
        return metrics_service_pb2.CheckKeypointsResponse(
            candidates=result.candidates[start : start + size],
            next_page_token=offset_token(start + size) if start + size < len(result.candidates) else "",
            dataset_version=result.dataset_version,
            labels_checked=result.labels_checked,
            total_candidates=len(result.candidates),
        )

    @staticmethod
    def _compute(plan: CheckPlan, progress: Callable[..., None]) -> metrics_service_pb2.CheckKeypointsResponse:
        columns = {cls: keypoints.Columns(rig) for cls, rig in plan.rigs.items()}
        scanned = 0
        # The columns keypoints are gathered from, in frame-id order (the order instances are sampled in), a batch of
        # PROGRESS_EVERY frames at a time.
        for batch in plan.tables.scan(plan.version, columns=keypoints.GATHER_COLUMNS, batch_size=PROGRESS_EVERY):
            keypoints.gather(batch, columns)
            scanned += batch.num_rows
            progress("reading frames", scanned, 0, "frames")
        found: list[keypoints.Candidate] = []
        labels = sum(len(c) for c in columns.values())
        progress("checking", 0, labels, "labels")
        for gathered in columns.values():
            found.extend(keypoints.check_columns(gathered, plan.rules))
        return metrics_service_pb2.CheckKeypointsResponse(
            candidates=[c.to_proto() for c in keypoints.rank(found)],
            dataset_version=plan.version,
            labels_checked=labels,
            total_candidates=len(found),
        )


def summary(result: metrics_service_pb2.CheckKeypointsResponse) -> metrics_service_pb2.CheckKeypointsResponse:
    """A stored result without its candidates: what a finished StartKeypointCheck operation answers."""
    return metrics_service_pb2.CheckKeypointsResponse(
        dataset_version=result.dataset_version,
        labels_checked=result.labels_checked,
        total_candidates=len(result.candidates),
    )
