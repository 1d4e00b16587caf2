"""What Shoal's server kit costs per call: unary and streaming throughput through the full interceptor chain
(request id, Prometheus metrics, error mapping, API-key auth) against the same servicer on a bare grpc.aio server,
measured side by side in one run. Prints JSON (and writes it to --out).

    .venv/bin/python bench/rpc_overhead.py --out bench/results/rpc_overhead.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shoal.kit.apikeys import ApiKeyVerifier
from shoal.kit.server import Service, ShoalServer
from shoal.kit.settings import Settings
from shoal.v1 import frame_pb2, project_pb2, versioning_service_pb2, versioning_service_pb2_grpc

ADMIN = "bench-admin-key-0123456789abcdef"


class Servicer(versioning_service_pb2_grpc.VersioningServiceServicer):
    async def GetProject(self, request: Any, context: Any) -> project_pb2.Project:  # noqa: N802
        return project_pb2.Project(name=request.name)

    async def StreamFrames(self, request: Any, context: Any) -> Any:  # noqa: N802
        batch = versioning_service_pb2.StreamFramesResponse(
            frames=[frame_pb2.Frame(frame_id=f"frame-{i:06d}", device_id="cam") for i in range(request.batch_size)]
        )
        for _ in range(int(request.filter or "1")):
            yield batch


async def _client(port: int, calls: int, concurrency: int, streams: int, batch: int) -> dict[str, float]:
    metadata = (("x-api-key", ADMIN),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = versioning_service_pb2_grpc.VersioningServiceStub(channel)
        request = versioning_service_pb2.GetProjectRequest(name="projects/bench")
        await stub.GetProject(request, metadata=metadata)
        latencies: list[float] = []

        async def worker(n: int) -> None:
            for _ in range(n):
                t = time.perf_counter()
                await stub.GetProject(request, metadata=metadata)
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
        unary_seconds = time.perf_counter() - start

        start = time.perf_counter()
        frames = 0
        stream_request = versioning_service_pb2.StreamFramesRequest(batch_size=batch, filter=str(streams))
        async for reply in stub.StreamFrames(stream_request, metadata=metadata):
            frames += len(reply.frames)
        stream_seconds = time.perf_counter() - start
    latencies.sort()
    return {
        "unary_calls_per_second": round(len(latencies) / unary_seconds, 1),
        "unary_p50_ms": round(statistics.median(latencies) * 1000, 3),
        "unary_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "stream_frames_per_second": round(frames / stream_seconds, 1),
    }


async def _run_kit(args: argparse.Namespace) -> dict[str, float]:
    settings = Settings(service="versioning", admin_api_key=ADMIN, grpc_port=0, metrics_port=0)
    server = ShoalServer(
        settings=settings,
        services=[
            Service(
                Servicer(),
                versioning_service_pb2_grpc.add_VersioningServiceServicer_to_server,
                "shoal.v1.VersioningService",
            )  # type: ignore[abstract]
        ],
        verifier=ApiKeyVerifier(None, ADMIN),
    )
    await server.start()
    try:
        return await _client(server.grpc_port, args.calls, args.concurrency, args.streams, args.batch)
    finally:
        await server.stop(0.5)


async def _run_bare(args: argparse.Namespace) -> dict[str, float]:
    server = grpc.aio.server()
    versioning_service_pb2_grpc.add_VersioningServiceServicer_to_server(Servicer(), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        return await _client(port, args.calls, args.concurrency, args.streams, args.batch)
    finally:
        await server.stop(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--streams", type=int, default=200, help="stream messages per streaming run")
    parser.add_argument("--batch", type=int, default=500, help="frames per stream message")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"shoal_kit": [], "bare_grpc_aio": []}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        runs["bare_grpc_aio"].append(asyncio.run(_run_bare(args)))
        runs["shoal_kit"].append(asyncio.run(_run_kit(args)))
    best = {
        name: {k: (min if k.endswith("_ms") else max)(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()
    }
    result = {
        "benchmark": "rpc_overhead",
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "machine": {"cpus": __import__("os").cpu_count(), "platform": platform.platform()},
        "params": {k: v for k, v in vars(args).items() if k != "out"},
        "best_of_repeats": best,
        "kit_vs_bare_unary_throughput": round(
            best["shoal_kit"]["unary_calls_per_second"] / best["bare_grpc_aio"]["unary_calls_per_second"], 3
        ),
        "kit_vs_bare_stream_throughput": round(
            best["shoal_kit"]["stream_frames_per_second"] / best["bare_grpc_aio"]["stream_frames_per_second"], 3
        ),
        "runs": runs,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    logging_off = __import__("logging").getLogger("shoal")
    logging_off.setLevel("WARNING")
    main()
