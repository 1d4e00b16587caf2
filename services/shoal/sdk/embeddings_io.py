"""Embeddings in the files people have: NumPy `.npy` / `.npz`, Parquet (an id column and a vector column), and
Lightly's CSV. Each row is matched to a frame by frame id or by its image's file name, checked whole before anything
is sent, and the vectors land as one new version (a MODIFY per frame).

    client.import_embeddings("roads", "drive-1", "vectors.npz")                     # arrays `ids` and `embeddings`
    client.import_embeddings("roads", "drive-1", "vectors.npy", ids="names.txt")    # one id per line
    client.import_embeddings("roads", "drive-1", "vectors.parquet")                 # columns frame_id, embedding
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from shoal.sdk.frames import LabeledFrame
from shoal.sdk.lightly_io import file_name

if TYPE_CHECKING:
    from shoal.sdk.client import Client, UploadReport

# Names an id array or column goes by, and a vector array or column, in the order they are looked for.
ID_NAMES: Final = (
    "frame_id",
    "frame_ids",
    "id",
    "ids",
    "filename",
    "filenames",
    "file_name",
    "file_names",
    "image",
    "path",
)
VECTOR_NAMES: Final = ("embedding", "embeddings", "vector", "vectors", "features", "emb", "x")


@dataclass
class Vectors:
    """Rows read from a file: an id (frame id or file name) and a vector each."""

    ids: list[str]
    vectors: np.ndarray  # [n, d] float32


def read(path: str | Path, *, ids: Sequence[str] | str | Path | None = None) -> Vectors:
    """The ids and vectors of `path` (.npy, .npz, .parquet or Lightly's .csv). A `.npy` holds vectors only: its ids
    come from `ids`, a list or a text file with one per line (as do an `.npz`'s without an id array)."""
    p = Path(path)
    suffix = p.suffix.lower()
    given = _ids(ids)
    if suffix == ".npy":
        vectors = np.load(p, allow_pickle=False)
        found = given
    elif suffix == ".npz":
        with np.load(p, allow_pickle=False) as arrays:
            vectors = _pick(arrays, VECTOR_NAMES, p, "vectors", 2)
            found = given if given is not None else _optional_ids(arrays, p)
    elif suffix in {".parquet", ".pq"}:
        found, vectors = _parquet(p, given)
    elif suffix == ".csv":
        from shoal.embedding import lightly  # noqa: PLC0415

        data = lightly.read_embeddings_csv(p.read_text())
        found, vectors = data.filenames, data.vectors
    else:
        raise ValueError(f"{p.name}: embeddings are read from .npy, .npz, .parquet or Lightly's .csv")
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.number):
        raise ValueError(
            f"{p.name}: the vectors must be a 2-D numeric array, got shape {vectors.shape} {vectors.dtype}"
        )
    if found is None:
        raise ValueError(f"{p.name}: no ids: give ids= (a list, or a text file with one frame id or file name a line)")
    if len(found) != len(vectors):
        raise ValueError(f"{p.name}: {len(vectors)} vectors but {len(found)} ids")
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if bad.size:
        raise ValueError(f"{p.name}: row {int(bad[0])} ({found[int(bad[0])]}) is not finite (NaN or infinity)")
    repeated = _first_repeat(found)
    if repeated is not None:
        raise ValueError(f"{p.name}: id {repeated!r} comes more than once")
    return Vectors([str(i) for i in found], vectors.astype(np.float32))


def import_embeddings(
    client: Client,
    project_id: str,
    dataset_id: str,
    path: str | Path,
    *,
    ids: Sequence[str] | str | Path | None = None,
    model_id: str = "",
) -> UploadReport:
    """Set the embedding of each frame a row names (by frame id, else by its image's file name) as one new version.
    Every problem is found before anything is sent: unknown ids, a dimension other than the dataset's, bad values."""
    data = read(path, ids=ids)
    dataset = client.get_dataset(project_id, dataset_id)
    if dataset.embedding_dimension and data.vectors.shape[1] != dataset.embedding_dimension:
        raise ValueError(
            f"{Path(path).name}: vectors have {data.vectors.shape[1]} values; "
            f"{project_id}/{dataset_id} takes {dataset.embedding_dimension}"
        )
    frames = list(client.get_frames(project_id, dataset_id, fields=["frame_id", "sensors"]))
    by_id = {f.frame_id: f.frame_id for f in frames}
    by_name: dict[str, str] = {}
    shared: set[str] = set()  # file names more than one frame has (000001.jpg of several sequences)
    for f in frames:
        name = file_name(f)
        if name in by_name:
            shared.add(name)
        by_name.setdefault(name, f.frame_id)
    ambiguous = [i for i in data.ids if i not in by_id and (i in shared or Path(i).name in shared)]
    if ambiguous:
        raise ValueError(
            f"{len(ambiguous)} rows name an image file name several frames have; name those frames by id: "
            + ", ".join(ambiguous[:10])
        )
    matched = [by_id.get(i) or by_name.get(i) or by_name.get(Path(i).name) for i in data.ids]
    unknown = [i for i, m in zip(data.ids, matched, strict=True) if m is None]
    if unknown:
        raise ValueError(
            f"{len(unknown)} rows name no frame of {project_id}/{dataset_id} (by frame id or image file name): "
            + ", ".join(unknown[:10])
        )
    twice = _first_repeat([m for m in matched if m is not None])
    if twice is not None:
        raise ValueError(f"two rows name frame {twice!r}")
    updates = []
    for frame_id, vector in zip(matched, data.vectors, strict=True):
        frame = LabeledFrame(frame_id=str(frame_id), update_type="MODIFY")
        frame.add_frame_embedding(embedding=vector.tolist(), model_id=model_id or dataset.embedding_source)
        updates.append(frame)
    return client.update_dataset_frames(project_id, dataset_id, updates)


def _ids(ids: Sequence[str] | str | Path | None) -> list[str] | None:
    if ids is None:
        return None
    if isinstance(ids, str | Path):
        return [line.strip() for line in Path(ids).read_text().splitlines() if line.strip()]
    return [str(i) for i in ids]


def _pick(arrays: Any, names: Sequence[str], p: Path, what: str, ndim: int) -> np.ndarray:
    keys = list(arrays.keys())
    for name in names:
        if name in keys:
            return np.asarray(arrays[name])
    shaped = [k for k in keys if np.asarray(arrays[k]).ndim == ndim and np.issubdtype(arrays[k].dtype, np.number)]
    if len(shaped) == 1:
        return np.asarray(arrays[shaped[0]])
    raise ValueError(f"{p.name}: no {what} array (looked for {', '.join(names)}; the file has {', '.join(keys)})")


def _optional_ids(arrays: Any, p: Path) -> list[str] | None:
    for name in ID_NAMES:
        if name in arrays:
            return [str(v) for v in np.asarray(arrays[name]).tolist()]
    return None


def _parquet(p: Path, given: list[str] | None) -> tuple[list[str] | None, np.ndarray]:
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError:
        raise ValueError("reading Parquet needs pyarrow: pip install pyarrow (or 'shoal[server]')") from None
    table = pq.read_table(p)
    names = table.column_names
    vector = next((n for n in VECTOR_NAMES if n in names), None)
    if vector is not None:
        import pyarrow.compute as pc  # noqa: PLC0415

        column = table.column(vector).combine_chunks()
        lengths = pc.list_value_length(column)
        if column.null_count or (len(column) and pc.min_max(lengths)["min"] != pc.min_max(lengths)["max"]):
            raise ValueError(f"{p.name}: column {vector!r} must hold one vector of the same length on every row")
        flat = np.asarray(column.flatten().to_numpy(zero_copy_only=False), np.float32)
        vectors = flat.reshape(len(column), -1) if len(column) else np.zeros((0, 0), np.float32)
    else:
        # Wide tables: one numeric column per dimension, named by a common prefix and the dimension's number
        # (embedding_0, embedding_1, …); other numeric columns (width, timestamp) are not dimensions.
        groups: dict[str, list[tuple[int, str]]] = {}
        for n in names:
            found = re.fullmatch(r"(.*?)_?(\d+)", n)
            if found and n not in ID_NAMES and _numeric(table.schema.field(n).type):
                groups.setdefault(found.group(1), []).append((int(found.group(2)), n))
        if not groups:
            raise ValueError(
                f"{p.name}: no vector column (looked for {', '.join(VECTOR_NAMES)}, or numbered columns such as "
                "embedding_0, embedding_1, …)"
            )
        widest = sorted(groups.values(), key=len)[-1]
        columns = [n for _, n in sorted(widest)]
        vectors = np.column_stack([table.column(n).to_numpy() for n in columns]).astype(np.float32)
    if given is not None:
        return given, vectors
    key = next((n for n in ID_NAMES if n in names), None)
    return (None if key is None else [str(v) for v in table.column(key).to_pylist()]), vectors


def _numeric(kind: Any) -> bool:
    import pyarrow as pa  # noqa: PLC0415

    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind))


def _first_repeat(values: Sequence[Any]) -> Any:
    seen: set[Any] = set()
    for v in values:
        if v in seen:
            return v
        seen.add(v)
    return None
