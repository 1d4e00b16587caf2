"""CheckKeypoints: read a dataset version's keypoint labels, run the rules of `keypoints` per class, page the ranked
candidates. The ranked list is stored keyed by everything it depends on (version, class map, classes, rules), so
paging through it, or asking again, reads it back instead of scanning the version again."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Final

from shoal.kit.errors import FieldViolation, InvalidArgument
from shoal.kit.objectstore import ObjectStore
from shoal.kit.settings import StoreSettings
from shoal.metrics import keypoints
from shoal.metrics.evaluations import _offset, _page_size, _token
from shoal.storage.catalog import Catalog
from shoal.storage.tables import VersionedTables
from shoal.v1 import frame_pb2, metrics_service_pb2
from shoal.versioning.reads import Reads

#: Changes when the rules change, so stored results of older rules are not served.
RULES_VERSION: Final = "keypoint-rules-2"


class KeypointChecks:
    def __init__(self, store: ObjectStore, settings: StoreSettings) -> None:
        self.store = store
        self.catalog = Catalog(store)
        self.reads = Reads(store, settings)

    def check(self, request: metrics_service_pb2.CheckKeypointsRequest) -> metrics_service_pb2.CheckKeypointsResponse:
        if not request.dataset_version:
            raise InvalidArgument.of([FieldViolation("dataset_version", "is required")])
        ref = self.reads.resolve(request.dataset_version, "dataset_version")
        project = self.catalog.get_project(ref.dataset.parent)
        rigged = {e.name: keypoints.Rig.of(e) for e in project.class_map.entries if e.keypoints}
        violations = [
            FieldViolation(f"classes[{i}]", f"{c!r} is not a class with a keypoint rig in {ref.dataset.parent}")
            for i, c in enumerate(request.classes)
            if c not in rigged
        ]
        violations += [
            FieldViolation(f"rules[{i}]", f"{r} is not a keypoint rule")
            for i, r in enumerate(request.rules)
            if r not in keypoints.RULES
        ]
        if violations:
            raise InvalidArgument.of(violations)
        classes = sorted(set(request.classes) or set(rigged))
        rules = sorted(int(r) for r in set(request.rules) or set(keypoints.RULES))
        digest = hashlib.sha256(
            b"\0".join(
                [
                    RULES_VERSION.encode(),
                    str(ref.version).encode(),
                    project.class_map.SerializeToString(deterministic=True),
                    ",".join(classes).encode(),
                    ",".join(map(str, rules)).encode(),
                ]
            )
        ).hexdigest()
        key = f"checks/{ref.dataset}/keypoints/{digest}.binpb"
        stored = self.store.get_or_none(key)
        if stored is None:
            result = self._compute(ref.tables, ref.version, {c: rigged[c] for c in classes}, rules)
            self.store.put(key, result.SerializeToString(deterministic=True), "application/x-protobuf")
        else:
            result = metrics_service_pb2.CheckKeypointsResponse.FromString(stored)
        size, start = _page_size(request.page_size), _offset(request.page_token)
        return metrics_service_pb2.CheckKeypointsResponse(
            candidates=result.candidates[start : start + size],
            next_page_token=_token(start + size) if start + size < len(result.candidates) else "",
            dataset_version=ref.version,
            labels_checked=result.labels_checked,
            total_candidates=len(result.candidates),
        )

    @staticmethod
    def _compute(
        tables: VersionedTables, version: int, rigs: dict[str, keypoints.Rig], rules: list[int]
    ) -> metrics_service_pb2.CheckKeypointsResponse:
        by_class: dict[str, list[keypoints.Instance]] = defaultdict(list)
        wanted = set(rigs)
        for _, blob in tables.scan(version):
            frame = frame_pb2.Frame.FromString(blob)
            for cls, inst in keypoints.instances_of(frame, wanted):
                by_class[cls].append(inst)
        found: list[keypoints.Candidate] = []
        for cls, instances in by_class.items():
            found.extend(keypoints.check(rigs[cls], instances, rules))
        return metrics_service_pb2.CheckKeypointsResponse(
            candidates=[c.to_proto() for c in keypoints.rank(found)],
            dataset_version=version,
            labels_checked=sum(len(v) for v in by_class.values()),
        )
