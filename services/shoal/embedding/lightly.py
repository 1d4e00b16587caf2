"""The Lightly embeddings CSV (`filenames, embedding_0 … embedding_{d-1}, labels`) and its COCO-like custom metadata
JSON (`images` with `id` and `file_name`, `metadata` with `image_id` and the fields), read with every problem named by
line and written back so that a file written from float32 values comes back byte for byte."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shoal.kit.errors import FieldViolation, InvalidArgument


@dataclass
class EmbeddingsCsv:
    filenames: list[str]
    vectors: np.ndarray  # [n, d] float32
    labels: list[str]


def read_embeddings_csv(text: str, *, dimension: int = 0) -> EmbeddingsCsv:
    """Parse the CSV; a wrong header, a short or long row, a value that is not a finite number, a repeated file name
    or (with `dimension`) a dimension that differs from the dataset's is INVALID_ARGUMENT naming the line."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise InvalidArgument.of([FieldViolation("csv", "is empty")], reason="INVALID_CSV")
    header = [h.strip() for h in rows[0]]
    d = len(header) - 2
    expected = ["filenames", *(f"embedding_{i}" for i in range(d)), "labels"]
    if d < 1 or header != expected:
        raise InvalidArgument.of(
            [FieldViolation("csv line 1", "header must be filenames, embedding_0 … embedding_{d-1}, labels")],
            reason="INVALID_CSV",
        )
    if dimension and d != dimension:
        raise InvalidArgument.of(
            [FieldViolation("csv line 1", f"{d} embedding columns; the dataset's embeddings have {dimension}")],
            reason="EMBEDDING_DIMENSION_MISMATCH",
        )
    violations: list[FieldViolation] = []
    names: list[str] = []
    labels: list[str] = []
    values = np.zeros((len(rows) - 1, d), np.float32)
    seen: set[str] = set()
    for i, row in enumerate(rows[1:]):
        line = f"csv line {i + 2}"
        if len(row) != d + 2:
            violations.append(FieldViolation(line, f"has {len(row)} values, the header {d + 2}"))
            continue
        name = row[0]
        if not name:
            violations.append(FieldViolation(line, "file name is empty"))
        elif name in seen:
            violations.append(FieldViolation(line, f"file name {name!r} appears twice"))
        seen.add(name)
        try:
            numbers = [float(v) for v in row[1:-1]]
        except ValueError as err:
            violations.append(FieldViolation(line, f"not a number: {err}"))
            continue
        if not all(math.isfinite(v) for v in numbers):
            violations.append(FieldViolation(line, "embedding values must be finite (no NaN or infinity)"))
            continue
        values[i] = numbers
        names.append(name)
        labels.append(row[-1])
    if violations:
        raise InvalidArgument.of(violations[:100], reason="INVALID_CSV")
    return EmbeddingsCsv(names, values, labels)


def _number(v: np.float32) -> str:
    return np.format_float_positional(v, unique=True, trim="-") if v != 0 else "0.0"


def write_embeddings_csv(data: EmbeddingsCsv) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    d = data.vectors.shape[1]
    writer.writerow(["filenames", *(f"embedding_{i}" for i in range(d)), "labels"])
    for name, vec, label in zip(data.filenames, data.vectors.astype(np.float32), data.labels, strict=True):
        writer.writerow([name, *(_number(v) for v in vec), label])
    return out.getvalue()


def read_metadata_json(text: str) -> dict[str, dict[str, Any]]:
    """file name → metadata fields, from Lightly's custom metadata JSON."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidArgument.of([FieldViolation("metadata", f"not JSON: {err}")], reason="INVALID_METADATA") from None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("images"), list)
        or not isinstance(doc.get("metadata"), list)
    ):
        raise InvalidArgument.of(
            [FieldViolation("metadata", "needs `images` and `metadata` lists")], reason="INVALID_METADATA"
        )
    files = {}
    for i, image in enumerate(doc["images"]):
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            raise InvalidArgument.of(
                [FieldViolation(f"metadata.images[{i}]", "needs id and file_name")], reason="INVALID_METADATA"
            )
        files[image["id"]] = str(image["file_name"])
    out: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(doc["metadata"]):
        if not isinstance(entry, dict) or entry.get("image_id") not in files:
            raise InvalidArgument.of(
                [FieldViolation(f"metadata.metadata[{i}]", "needs the image_id of one of the images")],
                reason="INVALID_METADATA",
            )
        out[files[entry["image_id"]]] = {k: v for k, v in entry.items() if k != "image_id"}
    return out


def write_metadata_json(metadata: Mapping[str, Mapping[str, Any]], order: Sequence[str] | None = None) -> str:
    names = list(order or sorted(metadata))
    doc = {
        "images": [{"id": i, "file_name": n} for i, n in enumerate(names)],
        "metadata": [{"image_id": i, **metadata[n]} for i, n in enumerate(names) if n in metadata],
    }
    return json.dumps(doc, indent=2)
