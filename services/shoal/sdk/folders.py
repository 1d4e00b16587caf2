"""Upload a folder of media as assets: in parallel, with progress, and resumable.

Every file uploaded is appended to a manifest (JSON lines: path, size, mtime, asset name, URL) as soon as it is
stored, so a run that is interrupted, or that met bad files, picks up where it stopped: files whose size and mtime
match a manifest line are skipped. The manifest doubles as the path → URL map for building frames.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from shoal.kit.status import unpack
from shoal.v1 import asset_pb2
from shoal.validation import asset_kind_for

if TYPE_CHECKING:
    from shoal.sdk.client import Client

MANIFEST = ".shoal-assets.jsonl"


@dataclass
class FolderReport:
    uploaded: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (relative path, why)
    not_media: list[str] = field(default_factory=list)  # files whose name says no kind of media: left alone
    manifest: str = ""


def read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    """The manifest's entries by relative path (the last line of a path wins; a torn last line is ignored)."""
    entries: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return entries
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by an interruption
        entries[entry["path"]] = entry
    return entries


def _why(err: grpc.RpcError) -> str:
    """A refusal in one line: the code, the reason and what each field violation says (such as "image is corrupt
    or truncated"), not only the summary."""
    details = unpack(err)
    said = "; ".join(f"{v.field}: {v.description}" for v in details.violations) or details.message
    return f"{details.code.name} {details.reason}: {said}" if details.reason else f"{details.code.name}: {said}"


def _files(folder: Path, manifest: Path) -> Iterator[Path]:
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(root) / name
            if not name.startswith(".") and path != manifest:
                yield path


def upload_folder(
    client: Client,
    project_id: str,
    dataset_id: str,
    folder: str | os.PathLike[str],
    *,
    workers: int = 4,
    manifest: str | os.PathLike[str] | None = None,
    kind: int | str | None = None,
    progress: bool = False,
) -> FolderReport:
    """Upload every media file under `folder` (hidden ones aside) as an asset of the dataset. Without `kind`, files
    whose extension names no kind of media (a README, a CSV) are skipped and listed in the report's `not_media`."""
    from tqdm import tqdm  # noqa: PLC0415

    root = Path(folder)
    manifest_path = Path(manifest) if manifest else root / MANIFEST
    done = read_manifest(manifest_path)
    report = FolderReport(manifest=str(manifest_path))
    todo = []
    for path in _files(root, manifest_path):
        rel = path.relative_to(root).as_posix()
        if kind is None and asset_kind_for(path.name) == asset_pb2.ASSET_KIND_OTHER:
            report.not_media.append(rel)
            continue
        stat = path.stat()
        entry = done.get(rel)
        if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            report.skipped += 1
        else:
            todo.append((rel, path, stat))
    lock = threading.Lock()
    bar = tqdm(total=sum(s.st_size for _, _, s in todo), unit="B", unit_scale=True, disable=not progress)

    def one(rel: str, path: Path, stat: os.stat_result) -> None:
        asset = client.upload_asset(project_id, dataset_id, path, kind=kind)
        line = json.dumps(
            {"path": rel, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "name": asset.name, "url": asset.url}
        )
        with lock, manifest_path.open("a") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(one, rel, path, stat): (rel, stat) for rel, path, stat in todo}
        for future in as_completed(futures):
            rel, stat = futures[future]
            bar.update(stat.st_size)
            try:
                future.result()
                report.uploaded += 1
            except grpc.RpcError as err:
                report.failed.append((rel, _why(err)))
            except OSError as err:
                report.failed.append((rel, str(err)))
    bar.close()
    report.failed.sort()
    return report
