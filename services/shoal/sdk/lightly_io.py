"""Import and export of the Lightly embeddings CSV and custom metadata JSON, matched to frames by image file name."""

from __future__ import annotations

import posixpath
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoal.embedding import lightly
from shoal.sdk.frames import LabeledFrame

if TYPE_CHECKING:
    from shoal.sdk.client import Client, UploadReport
    from shoal.v1 import frame_pb2

LABEL_KEY = "lightly_label"
ROW_KEY = "lightly_row"


def file_name(frame: frame_pb2.Frame) -> str:
    """The file name of a frame's first image (its URL's last path part), or the frame id."""
    for sensor in frame.sensors:
        if sensor.WhichOneof("data") == "image" and sensor.image.url:
            return posixpath.basename(urllib.parse.urlsplit(sensor.image.url).path)
    return frame.frame_id


def import_embeddings(
    client: Client,
    project_id: str,
    dataset_id: str,
    csv_path: str | Path,
    *,
    metadata_path: str | Path | None = None,
    model_id: str = "lightly",
) -> UploadReport:
    """Set each frame's embedding (and, with `metadata_path`, its metadata) from the files, as one new version.
    Every problem is found before anything is sent: bad lines, a dimension other than the dataset's, file names no
    frame has."""
    dataset = client.get_dataset(project_id, dataset_id)
    data = lightly.read_embeddings_csv(Path(csv_path).read_text(), dimension=dataset.embedding_dimension)
    metadata = lightly.read_metadata_json(Path(metadata_path).read_text()) if metadata_path else {}
    frames = {file_name(f): f.frame_id for f in client.stream_frames(project_id, dataset_id)}
    unknown = [n for n in [*data.filenames, *metadata] if n not in frames]
    if unknown:
        raise ValueError(f"no frame has the image file {', '.join(sorted(set(unknown))[:10])}")
    updates = []
    for row, (name, vector, label) in enumerate(zip(data.filenames, data.vectors, data.labels, strict=True)):
        frame = LabeledFrame(frame_id=frames[name], update_type="MODIFY")
        frame.add_frame_embedding(embedding=[float(v) for v in vector], model_id=model_id)
        frame.add_user_metadata(LABEL_KEY, label)
        frame.add_user_metadata(ROW_KEY, row)
        for key, value in metadata.get(name, {}).items():
            frame.add_user_metadata(key, value)
        updates.append(frame)
    return client.update_dataset_frames(project_id, dataset_id, updates)


def export_embeddings(
    client: Client,
    project_id: str,
    dataset_id: str,
    csv_path: str | Path,
    *,
    metadata_path: str | Path | None = None,
    version: int | None = None,
) -> int:
    """Write the frames' embeddings (in the order they were imported, then by file name) and, with `metadata_path`,
    their other metadata; returns the number of rows."""
    import numpy as np  # noqa: PLC0415

    rows: list[tuple[int, str, list[float], str, dict[str, Any]]] = []
    for frame in client.stream_frames(project_id, dataset_id, version=version):
        if not frame.embedding.values:
            continue
        meta = {k: getattr(v, v.WhichOneof("kind") or "string_value") for k, v in frame.user_metadata.items()}
        order = int(meta.pop(ROW_KEY, 1 << 62))
        label = str(meta.pop(LABEL_KEY, ""))
        rows.append((order, file_name(frame), list(frame.embedding.values), label, meta))
    rows.sort(key=lambda r: (r[0], r[1]))
    data = lightly.EmbeddingsCsv(
        [r[1] for r in rows], np.array([r[2] for r in rows], np.float32).reshape(len(rows), -1), [r[3] for r in rows]
    )
    Path(csv_path).write_text(lightly.write_embeddings_csv(data))
    if metadata_path:
        Path(metadata_path).write_text(lightly.write_metadata_json({r[1]: r[4] for r in rows}, [r[1] for r in rows]))
    return len(rows)
