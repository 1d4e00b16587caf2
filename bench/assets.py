"""Asset throughput on a suite started as `shoal up` starts it, on the local-directory store and on an S3 server
(moto), each beside a reference measured in the same run:

- a --size-mb file (default 200 MB) uploaded through the chunked gRPC stream and through a presigned URL, against
  writing the same bytes straight into the store (local: a file copy; S3: the minio client's multipart put);
- parsing a --points-point (default 10 million) binary_compressed PCD, against the bare minimum of the same work
  (LZF decompression alone).

    .venv/bin/python bench/assets.py --out bench/results/assets.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pylzf as lzf
import shoal
from shoal.asset import formats
from shoal.kit.objectstore import open_store
from shoal.kit.settings import StoreSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import free_base

KEY = "bench-admin-key-0123456789abcdef"


def write_pcd(path: Path, points: int) -> None:
    rng = np.random.default_rng(0)
    fields = ("x", "y", "z", "intensity")
    # Values on a coarse grid, as real sweeps quantise: compressible, so LZF does real work.
    columns = [np.round(rng.uniform(-50, 50, points), 2).astype("<f4").tobytes() for _ in fields]
    raw = b"".join(columns)
    packed = lzf.compress(raw, len(raw) + len(raw) // 16 + 64)
    header = (
        f"VERSION 0.7\nFIELDS {' '.join(fields)}\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 1\nWIDTH {points}\n"
        f"HEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {points}\nDATA binary_compressed\n"
    ).encode()
    path.write_bytes(header + struct.pack("<II", len(packed), len(raw)) + packed)


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_base(1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(endpoint + "/moto-api/", timeout=0.5):
                return proc, endpoint
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto did not start")


def run_backend(name: str, big: Path, pcd: Path, state: Path, store: StoreSettings) -> dict[str, object]:
    base, metrics_base, redis_port = free_base(6), free_base(5), free_base(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")} | {
        "SHOAL_ADMIN_API_KEY": KEY,
        "SHOAL_ASSET_MAX_BYTES": str(1 << 30),
    }
    up = [sys.executable, "-m", "shoal.cli", "up", "--state-dir", str(state), "--base-port", str(base)]
    up += ["--metrics-base-port", str(metrics_base), "--redis-port", str(redis_port), "--log-level", "WARNING"]
    if store.is_s3:
        up += ["--store-url", store.url, "--s3-endpoint", store.s3_endpoint]
        env |= {"SHOAL_S3_ACCESS_KEY": store.s3_access_key, "SHOAL_S3_SECRET_KEY": store.s3_secret_key}
    subprocess.run(up, env=env, check=True, capture_output=True)
    size_mb = big.stat().st_size / 1e6
    try:
        addresses = {"versioning": f"127.0.0.1:{base + 1}", "asset": f"127.0.0.1:{base + 2}"}
        with shoal.Client(api_key=KEY, addresses=addresses, show_progress=False, timeout=600) as client:
            client.create_project("bench", shoal.LabelClassMap.from_classnames(["car"]))
            client.create_dataset("bench", "media")
            t = time.perf_counter()
            client.upload_asset("bench", "media", big, kind="other")
            stream_s = time.perf_counter() - t
            other = big.with_suffix(".2")  # different bytes, so content addressing stores it anew
            with big.open("rb") as src, other.open("wb") as dst:
                dst.write(b"\1")
                shutil.copyfileobj(src, dst, 1 << 20)
            t = time.perf_counter()
            client.upload_asset_direct("bench", "media", other, kind="other")
            direct_s = time.perf_counter() - t
            other.unlink()
            t = time.perf_counter()
            asset = client.upload_asset("bench", "media", pcd)
            pcd_upload_s = time.perf_counter() - t
            assert asset.point_cloud.point_count > 0
        # Reference: the same bytes straight into the store, no service in between.
        raw_store = open_store(store)
        t = time.perf_counter()
        with big.open("rb") as fh:
            raw_store.put_stream("bench/reference.bin", iter(lambda: fh.read(1 << 20), b""))
        reference_s = time.perf_counter() - t
    finally:
        down = [sys.executable, "-m", "shoal.cli", "down", "--state-dir", str(state)]
        subprocess.run(down, check=False, capture_output=True)
    return {
        "backend": name,
        "file_mb": round(size_mb, 1),
        "stream_mb_s": round(size_mb / stream_s, 1),
        "presigned_mb_s": round(size_mb / direct_s, 1),
        "reference_store_put_mb_s": round(size_mb / reference_s, 1),
        "pcd_upload_seconds": round(pcd_upload_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--backends", default="local,s3")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shoal-bench-assets-"))
    try:
        big = work / "big.bin"
        with big.open("wb") as fh:
            for _ in range(args.size_mb):
                fh.write(os.urandom(1 << 20))
        pcd = work / "sweep.pcd"
        write_pcd(pcd, args.points)

        # PCD parse rate, in process, against decompression alone.
        t = time.perf_counter()
        info = formats.check_pcd(pcd).info
        parse_s = time.perf_counter() - t
        body = pcd.read_bytes()
        start = body.index(b"DATA binary_compressed\n") + len(b"DATA binary_compressed\n")
        compressed, raw = struct.unpack("<II", body[start : start + 8])
        t = time.perf_counter()
        lzf.decompress(body[start + 8 : start + 8 + compressed], raw)
        lzf_s = time.perf_counter() - t

        backends = []
        for name in args.backends.split(","):
            if name == "local":
                store = StoreSettings(url=(work / "local" / "store").resolve().as_uri())
                backends.append(run_backend(name, big, pcd, work / "local", store))
            else:
                proc, endpoint = start_moto()
                try:
                    store = StoreSettings(
                        url="s3://bench-assets",
                        s3_endpoint=endpoint,
                        s3_access_key="bench",
                        s3_secret_key="bench-secret",
                        s3_secure=False,
                    )
                    backends.append(run_backend(name, big, pcd, work / "s3", store))
                finally:
                    proc.terminate()
                    proc.wait(timeout=10)
        result = {
            "benchmark": "assets",
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "params": {"size_mb": args.size_mb, "points": args.points},
            "pcd_parse": {
                "points": info.point_count,  # type: ignore[union-attr]
                "file_mb": round(pcd.stat().st_size / 1e6, 1),
                "seconds": round(parse_s, 3),
                "points_per_s": round(args.points / parse_s),
                "reference_lzf_only_seconds": round(lzf_s, 3),
            },
            "uploads": backends,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
