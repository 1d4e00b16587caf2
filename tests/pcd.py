"""A PCD writer for tests: every encoding, padding fields, any field order (as PCL writes them)."""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt
import pylzf as lzf

_TYPE = {"f": "F", "i": "I", "u": "U"}


def write_pcd(points: npt.NDArray[np.void], encoding: str, *, header_points: int | None = None) -> bytes:
    """`points` is a structured array; fields named `_…` are written as padding (`_`)."""
    names = list(points.dtype.names or ())
    fields, sizes, types, counts = [], [], [], []
    for name in names:
        field = points.dtype[name]
        fields.append("_" if name.startswith("_") else name)
        sizes.append(field.base.itemsize)
        types.append(_TYPE[field.base.kind])
        counts.append(int(np.prod(field.shape)) if field.shape else 1)
    n = len(points) if header_points is None else header_points
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n"
        f"FIELDS {' '.join(fields)}\nSIZE {' '.join(map(str, sizes))}\nTYPE {' '.join(types)}\n"
        f"COUNT {' '.join(map(str, counts))}\nWIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\n"
        f"DATA {encoding}\n"
    ).encode()
    packed = points.astype(points.dtype.newbyteorder("<"))
    if encoding == "binary":
        return header + packed.tobytes()
    if encoding == "ascii":
        rows = []
        for point in packed:
            values: list[str] = []
            for name in names:
                floats = points.dtype[name].base.kind == "f"
                values.extend(repr(float(v)) if floats else str(int(v)) for v in np.atleast_1d(point[name]))
            rows.append(" ".join(values))
        return header + ("\n".join(rows) + "\n").encode()
    columns = b"".join(np.ascontiguousarray(packed[name]).tobytes() for name in names)
    # LZF may expand incompressible data a little; allow for it as PCL does.
    compressed = lzf.compress(columns, len(columns) + len(columns) // 16 + 64) if columns else b""
    return header + struct.pack("<II", len(compressed), len(columns)) + compressed
