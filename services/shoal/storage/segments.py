"""Segments: named collections of frames, labels or inferences with a workflow state. Each element is pinned to the
dataset version it had when added, and reads flag the elements whose frames changed since (the dataset moved on)."""

from __future__ import annotations

from collections.abc import Iterable

from shoal import validation as rules
from shoal.kit.errors import FieldViolation, InvalidArgument
from shoal.kit.names import DatasetName, check_id
from shoal.storage.catalog import Catalog, _now
from shoal.storage.tables import TableRoot, VersionedTables
from shoal.v1 import dataset_pb2

_EDITABLE = frozenset({"display_name", "description", "state", "elements"})


class Segments:
    def __init__(self, catalog: Catalog, root: TableRoot) -> None:
        self.catalog = catalog
        self.root = root

    def _pin(
        self, tables: VersionedTables, elements: Iterable[dataset_pb2.SegmentElement], field: str
    ) -> list[dataset_pb2.SegmentElement]:
        """Elements with their versions set (0 → newest) and checked: the frame exists at its version."""
        latest = tables.latest()
        newest = latest.version if latest else 0
        pinned, violations = [], []
        for i, element in enumerate(elements):
            where = f"{field}[{i}]"
            out = dataset_pb2.SegmentElement()
            out.CopyFrom(element)
            out.outdated = False
            out.version = element.version or newest
            problem = rules.id_problem(element.frame_id)
            if problem:
                violations.append(FieldViolation(f"{where}.frame_id", problem))
            elif not 0 < out.version <= newest:
                violations.append(
                    FieldViolation(f"{where}.version", f"the dataset has no version {out.version} (newest {newest})")
                )
            pinned.append(out)
        if not violations:
            by_version: dict[int, list[int]] = {}
            for i, element in enumerate(pinned):
                by_version.setdefault(element.version, []).append(i)
            for version, indexes in by_version.items():
                present = tables.stored([pinned[i].frame_id for i in indexes], version)
                violations += [
                    FieldViolation(
                        f"{field}[{i}].frame_id", f"frame {pinned[i].frame_id!r} is not in version {version}"
                    )
                    for i in indexes
                    if pinned[i].frame_id not in present
                ]
        if violations:
            raise InvalidArgument.of(violations, reason="INVALID_SEGMENT")
        return pinned

    def _flag(self, dataset: DatasetName, segment: dataset_pb2.Segment) -> dataset_pb2.Segment:
        tables = self.root.tables(dataset)
        latest = tables.latest()
        newest = latest.version if latest else 0
        changed: dict[int, set[str]] = {}
        for element in segment.elements:
            if element.version not in changed:
                changed[element.version] = (
                    tables.changed_between(element.version, newest) if element.version < newest else set()
                )
            element.outdated = element.frame_id in changed[element.version]
        return segment

    def create(
        self, dataset: DatasetName, segment_id: str, segment: dataset_pb2.Segment, request_id: str
    ) -> dataset_pb2.Segment:
        check_id(segment_id, "segment_id")
        self.catalog.get_dataset(dataset)
        created = dataset_pb2.Segment()
        created.CopyFrom(segment)
        created.name = f"{dataset}/segments/{segment_id}"
        created.etag = ""
        created.state = segment.state or dataset_pb2.SEGMENT_STATE_OPEN
        created.source = segment.source or "manual"
        del created.elements[:]
        created.elements.extend(self._pin(self.root.tables(dataset), segment.elements, "segment.elements"))
        created.create_time.CopyFrom(_now())
        created.update_time.CopyFrom(created.create_time)
        self.catalog.put_new_segment(dataset, segment_id, created, request_id)
        return self.get(dataset, segment_id)

    def get(self, dataset: DatasetName, segment_id: str) -> dataset_pb2.Segment:
        return self._flag(dataset, self.catalog.get_segment(dataset, segment_id))

    def list(self, dataset: DatasetName, page_size: int, page_token: str) -> tuple[list[dataset_pb2.Segment], str]:
        self.catalog.get_dataset(dataset)
        ids, token = self.catalog.list_segment_ids(dataset, page_size, page_token)
        return [self.get(dataset, i) for i in ids], token

    def update(
        self, dataset: DatasetName, segment_id: str, segment: dataset_pb2.Segment, paths: Iterable[str]
    ) -> dataset_pb2.Segment:
        wanted = set(paths) or {"display_name", "description", "state"}
        unknown = wanted - _EDITABLE
        if unknown:
            raise InvalidArgument.of([FieldViolation("update_mask", f"cannot update {', '.join(sorted(unknown))}")])
        pinned = (
            self._pin(self.root.tables(dataset), segment.elements, "segment.elements") if "elements" in wanted else []
        )

        def change(current: dataset_pb2.Segment) -> None:
            if "display_name" in wanted:
                current.display_name = segment.display_name
            if "description" in wanted:
                current.description = segment.description
            if "state" in wanted:
                current.state = segment.state or dataset_pb2.SEGMENT_STATE_OPEN
            if "elements" in wanted:
                del current.elements[:]
                current.elements.extend(pinned)

        self.catalog.update_segment(dataset, segment_id, change, segment.etag)
        return self.get(dataset, segment_id)

    def delete(self, dataset: DatasetName, segment_id: str) -> None:
        self.catalog.delete_segment(dataset, segment_id)
