"""Who holds each label id of a dataset (or inference set), so the worker can keep label ids unique without reading
the table for every commit.

The index lives in the worker that holds the dataset's partition: built once from the table's `label_ids` column,
then moved forward by each commit it makes. It keeps 64-bit hashes (label id → holding frame id), sorted in NumPy
arrays with a small overlay of recent changes, so a million-frame dataset costs tens of megabytes, not a dictionary
of strings. A hash match is only a candidate: every clash it reports is confirmed against the table before a frame
fails, so a hash collision can never reject a good frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow.compute as pc

from shoal.storage.tables import VersionedTables, id_hashes

# Overlay entries past which the sorted arrays are rebuilt.
COMPACT_AT: Final = 262_144


class LabelIndex:
    """Label id → holding frame, at one version of one table."""

    def __init__(self, tables: VersionedTables, version: int) -> None:
        self.tables = tables
        self.version = version
        table = tables.label_ids(version)
        lengths = pc.list_value_length(table.column("label_ids")).to_numpy(zero_copy_only=False)
        labels = pc.list_flatten(table.column("label_ids")).to_pylist() if len(table) else []
        frames = id_hashes(table.column("frame_id").to_pylist())
        self._set_base(id_hashes(labels), np.repeat(frames, lengths.astype(np.int64)))
        self._added: dict[int, int] = {}
        self._removed: set[int] = set()

    def _set_base(self, keys: npt.NDArray[np.int64], owners: npt.NDArray[np.int64]) -> None:
        order = np.argsort(keys, kind="stable")
        self._keys = keys[order]
        self._owners = owners[order]

    def _owner_hashes(self, keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The holder's hash for each key (0 when nobody holds it)."""
        if not len(self._keys) and not self._added:
            return np.zeros(len(keys), dtype=np.int64)
        at = np.searchsorted(self._keys, keys)
        inside = at < len(self._keys)
        found = np.zeros(len(keys), dtype=bool)
        found[inside] = self._keys[at[inside]] == keys[inside]
        out = np.zeros(len(keys), dtype=np.int64)
        out[found] = self._owners[at[found]]
        if self._added or self._removed:
            for i, key in enumerate(keys.tolist()):
                if key in self._added:
                    out[i] = self._added[key]
                elif key in self._removed:
                    out[i] = 0
        return out

    def elsewhere(self, pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
        """Of (label id, frame id) pairs, the label ids another frame holds, mapped to that frame (confirmed against
        the table, so the answer is exact)."""
        if not pairs:
            return {}
        labels = [label for label, _ in pairs]
        holders = self._owner_hashes(id_hashes(labels))
        frames = id_hashes([frame for _, frame in pairs])
        suspects = sorted({labels[i] for i in np.flatnonzero((holders != 0) & (holders != frames)).tolist()})
        if not suspects:
            return {}
        owners = self.tables.label_owners(suspects, self.version)
        asked: dict[str, set[str]] = {}
        for label, frame in pairs:
            asked.setdefault(label, set()).add(frame)
        return {label: owner for label, owner in owners.items() if asked.get(label, set()) - {owner}}

    def advance(self, version: int, released: Sequence[str], claimed: Sequence[tuple[str, str]]) -> None:
        """Move the index to `version`, which freed `released` and gave `claimed` (label id, frame id)."""
        for key in id_hashes(released).tolist():
            self._removed.add(key)
            self._added.pop(key, None)
        for key, owner in zip(
            id_hashes([label for label, _ in claimed]).tolist(),
            id_hashes([frame for _, frame in claimed]).tolist(),
            strict=True,
        ):
            self._added[key] = owner
        self.version = version
        if len(self._added) + len(self._removed) > COMPACT_AT:
            self._compact()

    def _compact(self) -> None:
        """Fold the overlay into the sorted arrays: a pass over them, not a sort of the whole index."""
        gone = np.fromiter(self._removed | set(self._added), dtype=np.int64, count=-1)
        # Every base entry whose key the overlay names goes (a key may repeat: equal hashes of different ids).
        starts = np.searchsorted(self._keys, gone, side="left")
        ends = np.searchsorted(self._keys, gone, side="right")
        marks = np.zeros(len(self._keys) + 1, dtype=np.int64)
        np.add.at(marks, starts, 1)
        np.add.at(marks, ends, -1)
        keep = np.cumsum(marks[:-1]) == 0
        keys, owners = self._keys[keep], self._owners[keep]
        added_keys = np.fromiter(self._added.keys(), dtype=np.int64, count=len(self._added))
        added_owners = np.fromiter(self._added.values(), dtype=np.int64, count=len(self._added))
        order = np.argsort(added_keys, kind="stable")
        at = np.searchsorted(keys, added_keys[order], side="right")
        self._keys = np.insert(keys, at, added_keys[order])
        self._owners = np.insert(owners, at, added_owners[order])
        self._added.clear()
        self._removed.clear()
