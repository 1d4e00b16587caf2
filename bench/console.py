"""The console at scale, in Debian's Chromium (Playwright), against a suite started as `shoal up` starts it.

A dataset of --frames frames (an image sensor, 3 boxes, 3 metadata fields) and one of --scatter frames with 16-d
embeddings are uploaded through the SDK. Then, with the console:

- first grid paint: from the page's DOMContentLoaded to the first page of the grid on screen (`shoal:grid-first-page`
  mark), over fresh pages, median and max;
- pages of 200 frames through the console (binary Connect, as the web app calls): server time per page while
  walking --pages pages down the dataset, and with a label filter;
- memory while scrolling the grid through --scroll-pages pages: the page's JS heap, its DOM nodes, the frames it holds,
  and the console process's resident memory, sampled as it goes;
- the scatter: --scatter points fetched (`shoal:points-loaded`) and drawn by regl (`shoal:scatter-drawn`).

Chromium runs without a GPU here: WebGL is software-rendered (SwiftShader), so the scatter's draw time is an upper
bound. No reference tool runs beside it: FiftyOne's App needs MongoDB and its own server, which this machine lacks.

    .venv/bin/python bench/console.py --out bench/results/console.json
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import shoal
from shoal.v1 import frame_pb2, label_pb2, versioning_service_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import emit, local_suite, machine

CLASSES = ["car", "person", "bike"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--enable-precise-memory-info", "--js-flags=--expose-gc",
]  # fmt: skip


def make_frame(i: int, dim: int = 0) -> frame_pb2.Frame:
    rng = random.Random(i)
    frame = frame_pb2.Frame(frame_id=f"f{i:07d}")
    image = frame.sensors.add(sensor_id="cam").image
    image.url, image.width, image.height = f"s3://bench/{i:07d}.jpg", 640, 480
    frame.user_metadata["weather"].string_value = "rain" if i % 3 == 0 else "sun"
    frame.user_metadata["speed"].float_value = float(i % 90)
    frame.user_metadata["night"].bool_value = i % 5 == 0
    for b in range(3):
        label = frame.labels.add(label_id=f"f{i:07d}-{b}", classification=CLASSES[(i + b) % 3], sensor_id="cam")
        label.box_2d.CopyFrom(
            label_pb2.Box2D(left=rng.uniform(0, 500), top=rng.uniform(0, 380), width=80.0, height=60.0)
        )
    if dim:
        centre = i % 5
        frame.embedding.values.extend(centre + rng.gauss(0, 0.3) for _ in range(dim))
        frame.embedding.model_id = "bench"
    return frame


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def post(url: str, path: str, message: Any, key: str) -> tuple[float, bytes]:
    request = urllib.request.Request(
        url + path,
        data=message.SerializeToString(),
        headers={"Content-Type": "application/proto", "Authorization": f"Bearer {key}"},
        method="POST",
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as r:
        body = r.read()
    return time.perf_counter() - started, body


def walk(url: str, key: str, parent: str, pages: int, filter: str = "") -> list[float]:
    """Seconds per page of 200 frames, following the page tokens and reading the columns the grid reads."""
    token, times = "", []
    for _ in range(pages):
        ask = versioning_service_pb2.ListFramesRequest(parent=parent, page_size=200, page_token=token, filter=filter)
        ask.read_mask.paths.extend(["frame_id", "sensors", "labels"])
        seconds, body = post(url, "/shoal.v1.VersioningService/ListFrames", ask, key)
        times.append(seconds)
        token = versioning_service_pb2.ListFramesResponse.FromString(body).next_page_token
        if not token:
            break
    return times


def ms(values: list[float]) -> dict[str, float]:
    import numpy as np

    return {
        "median": round(1000 * statistics.median(values), 1),
        "p95": round(1000 * float(np.percentile(values, 95)), 1),
        "max": round(1000 * max(values), 1),
        "count": len(values),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--scatter", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=500, help="pages walked for the server-time figures")
    parser.add_argument("--scroll-pages", type=int, default=60, help="pages the browser scrolls through")
    parser.add_argument("--paints", type=int, default=5)
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with local_suite("console") as suite:
        key = suite.api_key
        report: dict[str, Any] = {"benchmark": "console", "machine": machine(), "params": vars(args)}
        with suite.client(batch_size=1000) as client:
            client.create_project("bench", shoal.LabelClassMap.from_classnames(CLASSES))
            schema = [
                {"name": "weather", "type": "STRING"},
                {"name": "speed", "type": "FLOAT"},
                {"name": "night", "type": "BOOL"},
            ]
            client.create_dataset("bench", "big", metadata_schema=schema)
            client.create_dataset("bench", "scatter", embedding_dim=16, embedding_source="bench")

            def frames(n: int, dim: int = 0) -> Iterator[frame_pb2.Frame]:
                return (make_frame(i, dim) for i in range(n))

            started = time.perf_counter()
            up = client.upload("projects/bench/datasets/big", frames(args.frames), total=args.frames)
            client.wait_for_upload(up.name, timeout=7200, poll_seconds=0.5)
            up = client.upload("projects/bench/datasets/scatter", frames(args.scatter, 16), total=args.scatter)
            client.wait_for_upload(up.name, timeout=7200, poll_seconds=0.5)
            report["load_seconds"] = round(time.perf_counter() - started, 1)
            started = time.perf_counter()
            points = client.project_embeddings("bench", "scatter")
            report["scatter_index_and_projection_seconds"] = round(time.perf_counter() - started, 2)
            assert len(points) == args.scatter

        console_pid = int(__import__("json").loads((suite.state / "pids.json").read_text())["console"])
        parent = "projects/bench/datasets/big"
        report["page_server_ms"] = {
            "target_ms": 100,
            "walking": ms(walk(suite.console, key, parent, args.pages)),
            "filtered": ms(walk(suite.console, key, parent, 50, 'labels(classification = "car" AND area > 0)')),
        }

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.add_init_script(f"sessionStorage.setItem('shoal.apiKey', {key!r})")
            grid = f"{suite.console}/projects/bench/datasets/big/frames"

            paints, loads = [], []
            for _ in range(args.paints):
                page = context.new_page()
                page.goto(grid)
                page.wait_for_function("performance.getEntriesByName('shoal:grid-first-page').length > 0")
                t = page.evaluate(
                    "(() => { const n = performance.getEntriesByType('navigation')[0];"
                    " const m = performance.getEntriesByName('shoal:grid-first-page')[0].startTime;"
                    " return [m - n.domContentLoadedEventEnd, m]; })()"
                )
                paints.append(t[0] / 1000)
                loads.append(t[1] / 1000)
                page.close()
            report["first_grid_paint_ms"] = {"after_dom_content_loaded": ms(paints), "after_navigation": ms(loads)}
            report["first_grid_paint_ms"]["target_ms"] = 1000

            page = context.new_page()
            page.goto(grid)
            page.wait_for_selector(".grid-space a.tile[data-frame]")
            samples = []
            per_row = page.evaluate("Math.max(1, Math.floor(document.querySelector('.grid-scroll').clientWidth / 188))")
            step_rows = 200 // per_row
            for n in range(args.scroll_pages):
                page.evaluate(f"document.querySelector('.grid-scroll').scrollTop += {step_rows * 168}")
                page.wait_for_function(
                    "document.querySelectorAll('.grid-space .tile.placeholder').length === 0"
                    " && document.querySelectorAll('.grid-space a.tile[data-frame]').length > 0",
                    timeout=30_000,
                )
                if n % 5 == 0 or n == args.scroll_pages - 1:
                    page.evaluate("window.gc && window.gc()")
                    state = page.evaluate(
                        "({heap: performance.memory.usedJSHeapSize, nodes: document.getElementsByTagName('*').length,"
                        " top: document.querySelector('.grid-scroll').scrollTop})"
                    )
                    samples.append(
                        {
                            "pages_scrolled": n + 1,
                            "js_heap_mib": round(state["heap"] / 2**20, 1),
                            "dom_nodes": state["nodes"],
                            "console_rss_mib": round(rss_kib(console_pid) / 1024, 1),
                        }
                    )
            report["scroll_memory"] = {
                "frames_scrolled": args.scroll_pages * step_rows * per_row,
                "samples": samples,
                "js_heap_growth_mib": round(samples[-1]["js_heap_mib"] - samples[0]["js_heap_mib"], 1),
                "console_rss_growth_mib": round(samples[-1]["console_rss_mib"] - samples[0]["console_rss_mib"], 1),
            }
            page.close()

            page = context.new_page()
            page.goto(f"{suite.console}/projects/bench/datasets/scatter/embeddings")
            page.wait_for_selector("canvas[data-drawn]", timeout=120_000)
            marks = page.evaluate(
                "Object.fromEntries(performance.getEntriesByType('mark').map(m => [m.name, m.startTime]))"
            )
            report["scatter"] = {
                "points": int(page.get_attribute("canvas[data-drawn]", "data-drawn")),
                "draw_ms": round(marks["shoal:scatter-drawn"] - marks["shoal:scatter-draw"], 1),
                "fetch_to_drawn_ms": round(marks["shoal:scatter-drawn"] - marks["shoal:points-loaded"], 1),
                "navigation_to_drawn_ms": round(marks["shoal:scatter-drawn"], 1),
                "target_ms": 1000,
                "webgl": "software (SwiftShader): Chromium runs with --disable-gpu here",
            }
            browser.close()
    emit(report, args.out)


if __name__ == "__main__":
    main()
