"""Ingest throughput: 100,000 frames, each with an image, 10 boxes and 3 metadata fields, into a suite started as
`shoal up` starts it (real service processes, embedded Redis, local object store). Prints JSON with

  (a) sdk_build_and_send_fps: frames/s for building every frame with the SDK builders and uploading it, one process;
  (b) server_accept_fps: frames/s the ingest service accepts from 4 concurrent streams of prebuilt batches.

    .venv/bin/python bench/ingest.py --out bench/results/ingest.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import shoal
from shoal.v1 import ingest_service_pb2, ingest_service_pb2_grpc

CLASSES = ["car", "truck", "person", "bike", "bus", "sign", "light", "dog", "cat", "tree"]


def free_base(count: int) -> int:
    for _ in range(200):
        base = random.randint(20000, 40000)
        try:
            socks = []
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free ports")


def build_frame(i: int) -> shoal.LabeledFrame:
    frame = shoal.LabeledFrame(frame_id=f"f{i:07d}")
    frame.add_image(sensor_id="cam", image_url=f"s3://bench/{i:07d}.jpg", width=1920, height=1080)
    frame.add_user_metadata("weather", "rain" if i % 3 == 0 else "sun")
    frame.add_user_metadata("speed", float(i % 90))
    frame.add_user_metadata("night", i % 5 == 0)
    for b in range(10):
        frame.add_label_2d_bbox(
            sensor_id="cam",
            label_id=f"f{i:07d}-{b}",
            classification=CLASSES[b],
            top=10.0 + b,
            left=20.0 + b,
            width=50.0,
            height=40.0,
        )
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="shoal-bench-"))
    base, metrics_base, redis_port = free_base(5), free_base(5), free_base(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")} | {
        "SHOAL_ADMIN_API_KEY": "bench-admin-key-0123456789abcdef",
        # Two uploads of the whole set stay queued (no consumer drains them in this benchmark).
        "SHOAL_INGEST_MAX_QUEUE_DEPTH": str(4 * args.frames // args.batch + 100),
    }
    shoal_cmd = [sys.executable, "-m", "shoal.cli"]
    up = [
        *shoal_cmd,
        "up",
        "--state-dir",
        str(state),
        "--base-port",
        str(base),
        "--metrics-base-port",
        str(metrics_base),
    ]
    up += ["--redis-port", str(redis_port), "--log-level", "WARNING"]
    try:
        subprocess.run(up, env=env, check=True, capture_output=True)
        addresses = {"ingest": f"127.0.0.1:{base}", "versioning": f"127.0.0.1:{base + 1}"}
        client = shoal.Client(
            api_key=env["SHOAL_ADMIN_API_KEY"], addresses=addresses, batch_size=args.batch, show_progress=False
        )
        client.create_project("bench", shoal.LabelClassMap.from_classnames(CLASSES))
        schema = [
            {"name": "weather", "type": "STRING"},
            {"name": "speed", "type": "FLOAT"},
            {"name": "night", "type": "BOOL"},
        ]
        client.create_dataset("bench", "sdk", metadata_schema=schema)
        client.create_dataset("bench", "server", metadata_schema=schema)

        # (a) build with the SDK and send, one process.
        started = time.perf_counter()
        dataset = shoal.LabeledDataset()
        for i in range(args.frames):
            dataset.add_frame(build_frame(i))
        built = time.perf_counter()
        report = client.create_or_update_dataset("bench", "sdk", dataset=dataset)
        sent = time.perf_counter()
        assert report.accepted == args.frames, report.rejected[:3]
        sdk = {
            "frames": args.frames,
            "build_seconds": round(built - started, 3),
            "send_seconds": round(sent - built, 3),
            "sdk_build_and_send_fps": round(args.frames / (sent - started), 1),
            "send_only_fps": round(args.frames / (sent - built), 1),
        }

        # (b) prebuilt batches, N concurrent streams, server-side acceptance.
        items = [f.SerializeToString() for f in dataset.items]
        per_stream = args.frames // args.streams
        streams = []
        for s in range(args.streams):
            chunk = items[s * per_stream : (s + 1) * per_stream]
            batches = []
            for seq, offset in enumerate(range(0, len(chunk), args.batch)):
                batch = ingest_service_pb2.FrameBatch(seq=seq)
                for raw in chunk[offset : offset + args.batch]:
                    batch.frames.add().MergeFromString(raw)
                batches.append(ingest_service_pb2.UploadFramesRequest(batch=batch))
            streams.append(batches)
        accepted = [0] * args.streams
        metadata = (("x-api-key", env["SHOAL_ADMIN_API_KEY"]),)

        def run(index: int) -> None:
            # Each stream on its own connection, so the kernel can hand them to different ingest worker processes.
            options = [("grpc.max_send_message_length", 64 << 20), ("grpc.use_local_subchannel_pool", 1)]
            channel = grpc.insecure_channel(addresses["ingest"], options=options)
            stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
            start = ingest_service_pb2.UploadFramesRequest(
                start=ingest_service_pb2.UploadStart(target="projects/bench/datasets/server")
            )
            for reply in stub.UploadFrames(iter([start, *streams[index]]), metadata=metadata):
                if reply.WhichOneof("kind") == "ack":
                    accepted[index] += reply.ack.accepted
            channel.close()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(args.streams)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        server = {
            "streams": args.streams,
            "frames": sum(accepted),
            "seconds": round(elapsed, 3),
            "server_accept_fps": round(sum(accepted) / elapsed, 1),
        }
        client.close()
    finally:
        subprocess.run([*shoal_cmd, "down", "--state-dir", str(state)], env=env, check=False, capture_output=True)
    result = {
        "benchmark": "ingest",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "params": {"frames": args.frames, "boxes_per_frame": 10, "metadata_fields": 3, "batch": args.batch},
        "targets": {"sdk_build_and_send_fps": 5000, "server_accept_fps": 20000},
        "sdk": sdk,
        "server": server,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
