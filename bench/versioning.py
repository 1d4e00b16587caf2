"""Versioning throughput and read latencies on a suite started as `shoal up` starts it.

A dataset of --frames frames (image, 3 boxes, 3 metadata fields, 128-d embedding) is uploaded and committed, then
--changes batches of --change-size changed frames (a box moved) go through the whole path: ingest → queue → worker →
table. Prints JSON with committed frames/s and the CPU each process spent per frame, open-any-version and frame-history
latencies, the time to read 100,000 frames of an old version, and disk growth per commit before and after compaction.

    .venv/bin/python bench/versioning.py --out bench/results/versioning.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import lance
import shoal
from shoal.kit.names import DatasetName
from shoal.kit.settings import StoreSettings
from shoal.storage import tables as tables_module
from shoal.storage.tables import TableRoot
from shoal.v1 import frame_pb2, label_pb2
from shoal.versioning import worker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import local_suite

CLASSES = ["car", "person", "bike"]


# Embeddings drawn once: generating 128 random numbers per frame in Python would cost the client more CPU than the
# services spend on the frame, on the same cores.
EMBEDDINGS = [[random.Random(j).random() for _ in range(128)] for j in range(4096)]


def make_frame(i: int, shift: float = 0.0) -> frame_pb2.Frame:
    frame = frame_pb2.Frame(frame_id=f"f{i:07d}")
    frame.sensors.add(sensor_id="cam").image.url = f"s3://bench/{i:07d}.jpg"
    frame.user_metadata["weather"].string_value = "rain" if i % 3 == 0 else "sun"
    frame.user_metadata["speed"].float_value = float(i % 90)
    frame.user_metadata["night"].bool_value = i % 5 == 0
    for b in range(3):
        label = frame.labels.add(label_id=f"f{i:07d}-{b}", classification=CLASSES[b], sensor_id="cam")
        label.box_2d.CopyFrom(label_pb2.Box2D(left=10.0 * b + shift, top=20.0 + shift, width=40.0, height=30.0))
    frame.embedding.values.extend(EMBEDDINGS[i % len(EMBEDDINGS)])
    frame.embedding.model_id = "bench-model"
    return frame


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def files(path: Path) -> dict[str, int]:
    return {str(f.relative_to(path)): f.stat().st_size for f in path.rglob("*") if f.is_file()}


def growth_by_kind(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Bytes added between two listings, by table and kind of file (data, deletions, indices, manifests, ...)."""
    out: dict[str, int] = {}
    for name, size in after.items():
        parts = Path(name).parts
        kind = f"{parts[0].removesuffix('.lance')}/{parts[1].lstrip('_')}" if len(parts) > 2 else parts[0]
        out[kind] = out.get(kind, 0) + size - before.get(name, 0)
    return dict(sorted(((k, v) for k, v in out.items() if v), key=lambda kv: -kv[1]))


def _cpu_by_service(state: Path) -> dict[str, float]:
    """CPU seconds used so far by each service of the suite whose state directory is `state` (its processes run
    `-m shoal.<service>` with the state directory in their environment; replicas, and the helper processes they
    start, add up), and by this process (the client, as "bench")."""
    ticks: dict[str, int] = {}
    helpers: list[tuple[int, int]] = []  # (parent pid, ticks) of processes started by a service process
    services: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if proc.name == str(os.getpid()):
                service = "bench"
            elif str(state).encode() not in (proc / "environ").read_bytes():
                continue
            elif b"-m\x00shoal." in cmdline:
                service = cmdline.split(b"-m\x00shoal.", 1)[1].split(b"\x00", 1)[0].decode()
            else:
                service = ""
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used = int(fields[11]) + int(fields[12])  # utime + stime
        if service:
            services[int(proc.name)] = service
            ticks[service] = ticks.get(service, 0) + used
        else:
            helpers.append((int(fields[1]), used))
    for parent, used in helpers:
        if parent in services:
            ticks[services[parent]] = ticks.get(services[parent], 0) + used
    return {service: n / os.sysconf("SC_CLK_TCK") for service, n in sorted(ticks.items())}


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent so far outside idle and I/O wait (every process, the kernel too)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _service_cpu_seconds(state: Path) -> float:
    """CPU seconds used so far by the suite's services (not this process)."""
    return sum(v for k, v in _cpu_by_service(state).items() if k != "bench")


def cpu_per_frame(before: dict[str, float], after: dict[str, float], frames: int) -> dict[str, float]:
    """Microseconds of CPU per frame each process spent between two readings of `_cpu_by_service`, and in total."""
    spent = {k: (v - before.get(k, 0.0)) * 1e6 / max(1, frames) for k, v in after.items()}
    spent = {k: round(v, 1) for k, v in spent.items() if v >= 0.05}
    return spent | {"total": round(sum(spent.values()), 1)}


# A quiet window longer than the versioning worker waits before maintaining what it committed (it maintains once no
# partition has committed for QUIET_SECONDS, and looks at most every IDLE_WAIT_SECONDS): a shorter window could fall
# between the last commit and that maintenance, and the reads after it would be timed beside it (a run that settled
# in 1.0 s timed histories through the RPC at 15.2 ms, with GetDataset's server CPU three times its usual).
SETTLE_WINDOW = worker.QUIET_SECONDS + worker.IDLE_WAIT_SECONDS + 1.0


def settle(state: Path, quiet: float = 0.05, window: float = SETTLE_WINDOW, limit: float = 120.0) -> float:
    """Wait until the suite's services together use less than `quiet` of a core over a `window` (a process that
    exits meanwhile counts as busy), and this process' own cache warming is done; the seconds waited."""
    started = time.perf_counter()
    before = _service_cpu_seconds(state)
    while time.perf_counter() - started < limit:
        time.sleep(window)
        after = _service_cpu_seconds(state)
        if 0 <= after - before < quiet * window and not tables_module.LOG_WARMER.busy:
            break
        before = after
    return round(time.perf_counter() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--change-size", type=int, default=1000)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", type=Path, help="copy the store here at the end, to study its tables afterwards")
    args = parser.parse_args()

    result: dict[str, object] = {}
    stack = contextlib.ExitStack()
    try:
        suite = stack.enter_context(local_suite("versioning"))
        state = suite.state
        client = suite.client(batch_size=1000)
        client.create_project("bench", shoal.LabelClassMap.from_classnames(CLASSES))
        client.create_dataset(
            "bench",
            "big",
            embedding_dim=128,
            embedding_source="bench-model",
            metadata_schema=[
                {"name": "weather", "type": "STRING"},
                {"name": "speed", "type": "FLOAT"},
                {"name": "night", "type": "BOOL"},
            ],
        )
        target = "projects/bench/datasets/big"
        tables = TableRoot(StoreSettings(url=(state / "store").resolve().as_uri())).tables(DatasetName("bench", "big"))

        # The frames are made before the clock starts, as the change phase's are: making protobuf messages in Python
        # (12 µs a frame) is the benchmark's own work, not the suite's, and it shares the suite's cores. The client's
        # batching, serializing and sending them is timed. 1,000,000 frames hold about 2.5 GB.
        loaded = [make_frame(i) for i in range(args.frames)]
        cpu = _cpu_by_service(state)
        started = time.perf_counter()
        report = client.upload(target, loaded, total=args.frames)
        client.wait_for_upload(report.name, timeout=3600, poll_seconds=0.2)
        load_seconds = time.perf_counter() - started
        load_cpu = cpu_per_frame(cpu, cpu := _cpu_by_service(state), args.frames)
        del loaded
        versions_after_load = len(client.list_versions("bench", "big"))
        # Compact the load phase first, so the change phase's growth is measured from a steady state.
        tables.maintain(max_fragments=1, log_grace=timedelta(0))
        before_changes = du(Path(tables.path))
        listing_before_changes = files(Path(tables.path))

        # The change phase: --changes batches of --change-size frames, each frame with its boxes moved.
        rng = random.Random(1)
        changed = [rng.randrange(args.frames) for _ in range(args.changes * args.change_size)]
        changed_bytes = sum(len(make_frame(i, 5.0).SerializeToString()) for i in changed[: 10 * args.change_size]) * (
            len(changed) / (10 * args.change_size)
        )
        # The changed frames are made before the clock starts too.
        seen: set[int] = set()
        items = []
        for i in changed:
            if i not in seen:  # one change per frame per upload: ids are unique within a batch
                seen.add(i)
                items.append(make_frame(i, 5.0))
        cpu = _cpu_by_service(state)
        started = time.perf_counter()
        report = client.upload(target, items)
        client.wait_for_upload(report.name, timeout=3600, poll_seconds=0.2)
        change_seconds = time.perf_counter() - started
        change_cpu = cpu_per_frame(cpu, _cpu_by_service(state), len(items))
        versions = client.list_versions("bench", "big")
        change_commits = len(versions) - versions_after_load
        growth = du(Path(tables.path)) - before_changes
        growth_kinds = growth_by_kind(listing_before_changes, files(Path(tables.path)))

        # Reads, once the suite has finished what the writes left it to do in the background (maintenance after the
        # last commit, warming caches), so they are timed on a settled service.
        settle_seconds = settle(state)
        records = tables.versions()
        opens = []
        for record in rng.sample(records, min(50, len(records))):
            t = time.perf_counter()
            ds = lance.dataset(tables.frames_uri, version=record.table_version)
            ds.count_rows()
            opens.append(time.perf_counter() - t)
        # Histories through the RPC first: reading the tables in this process (below) warms its own caches on these
        # two cores, beside the service.
        rpc_histories = []
        cpu = _cpu_by_service(state)
        machine_busy = _machine_busy()
        for i in rng.sample(changed, 20):
            t = time.perf_counter()
            client.get_frame_history("bench", "big", f"f{i:07d}")
            rpc_histories.append(time.perf_counter() - t)
        rpc_cpu = cpu_per_frame(cpu, _cpu_by_service(state), len(rpc_histories))
        rpc_machine_busy = (_machine_busy() - machine_busy) / max(1e-9, sum(rpc_histories))
        # The cheapest read of the same service through the same client (one catalog record, no table): what any
        # RPC costs on this machine, the floor under the history's figure.
        floor = []
        cpu = _cpu_by_service(state)
        for _ in range(200):
            t = time.perf_counter()
            client.get_dataset("bench", "big")
            floor.append(time.perf_counter() - t)
        floor_cpu = cpu_per_frame(cpu, _cpu_by_service(state), len(floor))
        settle(state)  # the RPCs warmed nothing here, but timing them let this process' warming of the log start
        histories = []
        latest_version = versions[0].version
        for i in rng.sample(changed, 50):
            t = time.perf_counter()
            tables.history(f"f{i:07d}", up_to=latest_version)
            histories.append(time.perf_counter() - t)
        t = time.perf_counter()
        read = 0
        old_version = versions[len(versions) - versions_after_load].version  # the last version of the load phase
        for _ in client.stream_frames("bench", "big", version=old_version, batch_size=1000):
            read += 1
            if read == 100_000:
                break
        read_seconds = time.perf_counter() - t
        # The same old version as Arrow columns (labels and metadata), as a bulk reader or another engine reads it.
        t = time.perf_counter()
        columns = tables.read(
            old_version, ["frame_id", "labels", "user_metadata", "metadata_weather", "metadata_speed"]
        )
        arrow_rows = min(columns.num_rows, 100_000)
        arrow_seconds = (time.perf_counter() - t) * arrow_rows / max(1, columns.num_rows)

        before_compaction = du(Path(tables.path))
        t = time.perf_counter()
        compacted = tables.maintain(max_fragments=1, log_grace=timedelta(0))
        compaction_seconds = time.perf_counter() - t
        after_compaction = du(Path(tables.path))
        settle(state)
        compacted_histories = []
        for i in rng.sample(changed, 50):
            t = time.perf_counter()
            tables.history(f"f{i:07d}", up_to=latest_version)
            compacted_histories.append(time.perf_counter() - t)
        client.close()
        if args.keep:
            shutil.copytree(state / "store", args.keep, dirs_exist_ok=True)
        result = {
            "benchmark": "versioning",
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "params": vars(args) | {"out": str(args.out) if args.out else None},
            "targets": {
                "committed_fps": 10_000,
                "open_version_median_ms": 10,
                "frame_history_median_ms": 10,
                "growth_after_compaction_vs_changed": 2.0,
            },
            "load": {
                "frames": args.frames,
                "seconds": round(load_seconds, 2),
                "committed_fps": round(args.frames / load_seconds, 1),
                "versions": versions_after_load,
                "cpu_us_per_frame": load_cpu,
            },
            "changes": {
                "frames": len(items),
                "seconds": round(change_seconds, 2),
                "committed_fps": round(len(items) / change_seconds, 1),
                "commits": change_commits,
                "cpu_us_per_frame": change_cpu,
            },
            "settle_seconds": settle_seconds,
            "open_version_ms": {
                "median": round(statistics.median(opens) * 1000, 3),
                "max": round(max(opens) * 1000, 3),
            },
            "frame_history_ms": {
                "median": round(statistics.median(histories) * 1000, 3),
                "max": round(max(histories) * 1000, 3),
            },
            "frame_history_rpc_ms": {
                "median": round(statistics.median(rpc_histories) * 1000, 3),
                "samples": [round(s * 1000, 1) for s in rpc_histories],
                # What each process spent per history, and how many cores the whole machine kept busy meanwhile.
                "cpu_us_per_history": rpc_cpu,
                "machine_cores_busy": round(rpc_machine_busy, 2),
            },
            "rpc_floor_ms": {
                "rpc": "GetDataset",
                "median": round(statistics.median(floor) * 1000, 3),
                "cpu_us_per_call": floor_cpu,
            },
            "frame_history_after_compaction_ms": {"median": round(statistics.median(compacted_histories) * 1000, 3)},
            "read_old_version": {
                "frames": read,
                "seconds": round(read_seconds, 3),
                "fps": round(read / read_seconds, 1),
            },
            "read_old_version_arrow": {
                "frames": arrow_rows,
                "columns": ["frame_id", "labels", "user_metadata", "metadata_weather", "metadata_speed"],
                "seconds_per_100k": round(arrow_seconds * 100_000 / max(1, arrow_rows), 3),
                "target_seconds_per_100k": 0.5,
            },
            "disk": {
                "changed_bytes": int(changed_bytes),
                "growth_bytes_during_changes": growth,
                "growth_per_commit_bytes": int(growth / max(1, change_commits)),
                "growth_by_kind_bytes": growth_kinds,
                "growth_vs_changed": round(growth / changed_bytes, 3),
                "after_compaction_growth_vs_changed": round((after_compaction - before_changes) / changed_bytes, 3),
                "bytes_before_compaction": before_compaction,
                "bytes_after_compaction": after_compaction,
                "compaction_seconds": round(compaction_seconds, 2),
                "compacted": compacted,
            },
        }
    finally:
        stack.close()
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
