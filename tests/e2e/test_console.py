"""The console in a real browser (Debian's Chromium, driven by Playwright) against a suite started as `shoal up`
starts it, holding the demo data: signing in, the grid and its filter, a frame and its history, a confusion-matrix
cell, a lasso saved as a segment (read back through the SDK), and what a wrong key or another project's key sees.
Every view is screenshotted into build/screenshots/."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import shoal
from shoal.demo import populate

from tests.e2e.test_suite import Suite, _free_range

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM = os.environ.get("SHOAL_CHROMIUM", "/usr/bin/chromium")
# Debian's Chromium as root on a machine without outside network: no sandbox, no background connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DATASET = "/projects/shapes/datasets/drawn"


class Console:
    def __init__(self, suite: Suite, admin: str, writer: str, other: str) -> None:
        self.suite, self.admin, self.writer, self.other = suite, admin, writer, other
        self.url = suite.config.console_url
        config = suite.config
        self.addresses = {name: f"127.0.0.1:{ports.grpc_port}" for name, ports in config.services.items()}

    def client(self, key: str = "") -> shoal.Client:
        return shoal.Client(api_key=key or self.admin, addresses=self.addresses, show_progress=False)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    if not (ROOT / "console" / "dist" / "index.html").is_file():
        pytest.fail("console/dist is missing: run `make console` (make test does) to build the web app")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    state = tmp_path_factory.mktemp("console") / "state"
    suite = Suite(
        state,
        ["--base-port", str(_free_range(7)), "--metrics-base-port", str(_free_range(5)),
         "--redis-port", str(_free_range(1))],
        env,
    )  # fmt: skip
    up = suite.up()
    assert up.returncode == 0, up.stderr + up.stdout
    assert f"console: {suite.config.console_url}" in up.stdout
    try:
        admin = (state / "admin_api_key").read_text().strip()
        populate(suite.config, admin)
        c = Console(suite, admin, "", "")
        with c.client() as client:
            c.writer = client.create_api_key(["shapes"], role="WRITER", display_name="console test").secret
            c.other = client.create_api_key(["pose"], role="WRITER", display_name="another project").secret
        yield c
    finally:
        suite.shoal("down", timeout=60)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium (or set SHOAL_CHROMIUM)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda err: errors.append(str(err)))
    pg.set_default_timeout(15_000)
    yield pg
    context.close()
    assert not errors, f"the page threw: {errors}"


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def sign_in(page: Any, console: Console, key: str, path: str) -> None:
    page.goto(console.url + path)
    page.fill("input[name=apiKey]", key)
    page.click("button[type=submit]")


def tile_ids(page: Any) -> list[str]:
    return [t.get_attribute("data-frame") for t in page.query_selector_all(".grid-space a.tile[data-frame]")]


def test_grid_filter_frame_and_history(page: Any, console: Console) -> None:
    sign_in(page, console, console.writer, DATASET + "/frames")
    page.wait_for_selector(".grid-space a.tile[data-frame] svg rect")
    with console.client() as client:
        everything = [f.frame_id for f in client.get_frames("shapes", "drawn")]
        circles = [f.frame_id for f in client.get_frames("shapes", "drawn", filter='labels.classification = "circle"')]
    page.wait_for_function(
        f"document.querySelectorAll('.grid-space a.tile[data-frame]').length >= {min(40, len(everything))}"
    )
    assert set(tile_ids(page)) <= set(everything)
    assert page.get_attribute(".count", "data-loaded") == str(len(everything))
    # The key stays out of the URL and out of local storage.
    assert console.writer not in page.url
    assert page.evaluate("JSON.stringify(localStorage)") == "{}"
    shot(page, "grid")

    page.fill("input[name=filter]", 'labels.classification = "circle"')
    page.click("form.filter button[type=submit]")
    page.wait_for_url(re.compile(r"filter=labels.classification"))
    page.wait_for_function(f"document.querySelector('.count')?.dataset.loaded === '{len(circles)}'")
    page.wait_for_function(f"document.querySelectorAll('.grid-space a.tile[data-frame]').length === {len(circles)}")
    assert sorted(tile_ids(page)) == sorted(circles)
    assert len(circles) < len(everything)
    # The filter is part of the URL: a reload (or a colleague) sees the same grid.
    page.reload()
    page.wait_for_function(f"document.querySelectorAll('.grid-space a.tile[data-frame]').length === {len(circles)}")
    shot(page, "grid-filtered")
    page.fill("input[name=filter]", "labels.classification = ")
    page.click("form.filter button[type=submit]")
    assert "unexpected end at position 23" in page.inner_text("[role=alert]")

    # A frame whose box moved in the newest version: its history goes back to the old box.
    page.goto(console.url + DATASET + "/frames/shapes-0001")
    page.wait_for_selector(".timeline li")
    with console.client() as client:
        history = client.get_frame_history("shapes", "drawn", "shapes-0001")
    label = history[-1].frame.labels[0]
    rect = f'.sensors rect[data-label="{label.label_id}"]'
    assert float(page.get_attribute(rect, "x")) == pytest.approx(label.box_2d.left)
    shot(page, "frame")
    # The newest version before the move (later versions changed the frame's embedding, not its boxes).
    previous = next(
        r
        for r in reversed(history)
        if next(x for x in r.frame.labels if x.label_id == label.label_id).box_2d.left != label.box_2d.left
    )
    page.click(f'.timeline button[data-version="{previous.version}"]')
    page.wait_for_url(re.compile(f"version={previous.version}"))
    old = next(x for x in previous.frame.labels if x.label_id == label.label_id).box_2d
    page.wait_for_function(f"Number(document.querySelector('{rect}')?.getAttribute('x')) === {old.left}")
    assert float(page.get_attribute(rect, "y")) == pytest.approx(old.top)
    assert page.get_attribute(".timeline li.active button", "data-version") == str(previous.version)
    shot(page, "frame-history")


def test_confusion_matrix_cell_opens_its_frames(page: Any, console: Console) -> None:
    sign_in(page, console, console.writer, DATASET + "/evaluations")
    page.click("table a[href*='/evaluations/']")
    page.wait_for_selector("table.matrix a[data-cell]")
    shot(page, "evaluation")
    cells = [c.get_attribute("data-cell") for c in page.query_selector_all("table.matrix a[data-cell]")]
    row, column = next((c for c in cells if c.split(",")[0] != c.split(",")[1]), cells[0]).split(",")
    page.click(f'table.matrix a[data-cell="{row},{column}"]')
    page.wait_for_selector(".cell-frames .tile[data-frame]")
    shown = {t.get_attribute("data-frame") for t in page.query_selector_all(".cell-frames .tile[data-frame]")}
    inference_set, evaluation = page.url.split("/evaluations/")[1].split("?")[0].split("/")
    name = f"projects/shapes/datasets/drawn/inferenceSets/{inference_set}/evaluations/{evaluation}"
    with console.client() as client:
        expected = {f.frame_id for f in client.frame_matches(name, cell=(int(row), int(column)))}
    assert shown == expected
    assert shown
    shot(page, "evaluation-cell")
    # The review queue answers the keyboard.
    page.wait_for_selector(".review-item")
    page.keyboard.press("a")
    page.wait_for_selector(".review-item strong:has-text('2 /')")
    page.keyboard.press("k")
    assert page.inner_text(".verdict") == "accepted"


def test_lasso_saves_a_segment_read_back_by_the_sdk(page: Any, console: Console) -> None:
    sign_in(page, console, console.writer, DATASET + "/embeddings")
    canvas = page.wait_for_selector("canvas[data-drawn]")
    drawn = int(canvas.get_attribute("data-drawn"))
    assert drawn > 0
    page.wait_for_selector(".legend li")
    box = canvas.bounding_box()
    # Shift + drag a lasso around the whole plot.
    page.keyboard.down("Shift")
    x0, y0, x1, y1 = box["x"] + 3, box["y"] + 3, box["x"] + box["width"] - 3, box["y"] + box["height"] - 3
    page.mouse.move(x0, y0)
    page.mouse.down()
    for x, y in ((x1, y0), (x1, y1), (x0, y1), (x0, y0 + 5)):
        page.mouse.move(x, y, steps=12)
    page.mouse.up()
    page.keyboard.up("Shift")
    page.wait_for_selector("[data-selected]:not([data-selected='0'])")
    selected = int(page.get_attribute("[data-selected]", "data-selected"))
    shot(page, "embeddings")
    page.click("text=Save as segment")
    link = page.wait_for_selector(".saved a")
    segment = link.inner_text()
    with console.client() as client:
        saved = client.get_segment("shapes", "drawn", segment)
        everything = {f.frame_id for f in client.get_frames("shapes", "drawn")}
    assert len(saved.frame_ids) == selected
    assert set(saved.frame_ids) <= everything
    link.click()
    page.wait_for_selector("table.elements tbody tr")
    shot(page, "segment")


def test_keypoint_checks_review_queue_files_a_segment(page: Any, console: Console) -> None:
    sign_in(page, console, console.admin, "/projects/pose/datasets/people/pose?version=1")
    page.wait_for_selector(".review-item svg circle")
    with console.client() as client:
        found = client.check_keypoints("pose", "people", version=1)
    first = found[0]
    assert first.frame_id in page.inner_text(".review-item")
    # The candidate's skeleton is drawn with the rig: 17 points, the edges between them.
    assert len(page.query_selector_all(".review-item svg circle")) == 17
    assert len(page.query_selector_all(".review-item svg line")) >= 10
    shot(page, "pose-review")
    page.keyboard.press("a")
    page.wait_for_selector(".verdict:has-text('not reviewed')")
    page.click("text=File 1 accepted into a segment")
    segment = page.wait_for_selector(".saved a").inner_text()
    with console.client() as client:
        saved = client.get_segment("pose", "people", segment)
    assert [(e.frame_id, e.label_id) for e in saved.elements] == [(first.frame_id, first.ground_truth_label_id)]


def test_a_wrong_key_reveals_nothing(page: Any, console: Console) -> None:
    sign_in(page, console, "not-a-key-" + "x" * 30, DATASET + "/frames")
    message = page.inner_text("[role=alert]")
    assert "not accepted" in message
    assert "shapes" not in page.inner_text("body").replace(DATASET, "")
    assert page.query_selector("input[name=apiKey]") is not None
    shot(page, "sign-in-refused")


def test_another_projects_key_cannot_open_this_one(page: Any, console: Console) -> None:
    sign_in(page, console, console.other, DATASET + "/frames")
    alert = page.wait_for_selector("[role=alert]")
    assert "may not open" in alert.inner_text()
    assert not tile_ids(page)
    for path in (DATASET, DATASET + "/frames/shapes-0001", DATASET + "/evaluations", DATASET + "/segments"):
        page.goto(console.url + path)
        alert = page.wait_for_selector("[role=alert]")
        assert "may not open" in alert.inner_text(), path
        assert not page.query_selector_all("main table tbody tr, main .labeled, .timeline li"), path
    page.goto(console.url + "/")
    page.wait_for_selector(".cards li")
    assert [e.inner_text() for e in page.query_selector_all(".cards li strong")] == ["pose"]


def test_every_view_renders(page: Any, console: Console) -> None:
    sign_in(page, console, console.admin, DATASET)
    page.wait_for_selector("table.versions tbody tr")
    shot(page, "dataset")
    page.goto(console.url + DATASET + "?base=1&target=5")
    page.wait_for_selector("table.diff tbody tr")
    shot(page, "diff")
    page.goto(console.url + DATASET + "/uploads")
    page.click("table.uploads tbody tr:first-child a")
    page.wait_for_selector(".upload-errors")
    shot(page, "uploads")
    page.goto(console.url + DATASET + "/frames?inference=shape-detector-v1&show=side")
    page.wait_for_selector(".grid-space .tile-images .labeled + .labeled svg")
    shot(page, "grid-side-by-side")
    # A frame with one inference set's predictions: drawn dashed over the ground truth, and listed.
    page.goto(console.url + DATASET + "/frames/shapes-0003?inference=shape-detector-v1")
    page.wait_for_selector(".sensors g.pred rect")
    with console.client() as client:
        (pair,) = client.get_inference_frames("shapes", "drawn", "shape-detector-v1", frame_ids=["shapes-0003"])
    predicted = {r.get_attribute("data-label") for r in page.query_selector_all(".sensors g.pred rect")}
    assert predicted == {lb.label_id for lb in pair.inference.labels if lb.HasField("box_2d")}
    assert len(page.query_selector_all("table.labels")) == 2
    shot(page, "frame-predictions")
    # A semantic-segmentation mask, read through ReadAsset and coloured from the class map.
    with console.client() as client:
        masked = next(
            f
            for f in client.get_frames("shapes", "drawn")
            if any(lb.HasField("semantic_segmentation_2d") for lb in f.labels)
        )
    page.goto(console.url + DATASET + f"/frames/{masked.frame_id}")
    mask = page.wait_for_selector(".sensors image[data-mask]")
    assert mask.get_attribute("href").startswith("blob:")
    colours = page.evaluate(
        """async (src) => {
            const el = new Image(); el.src = src; await el.decode();
            const img = await createImageBitmap(el);
            const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
            const g = c.getContext('2d'); g.drawImage(img, 0, 0);
            const d = g.getImageData(0, 0, c.width, c.height).data, seen = new Set();
            for (let i = 0; i < d.length; i += 4) if (d[i + 3]) seen.add(`${d[i]},${d[i + 1]},${d[i + 2]}`);
            return [...seen];
        }""",
        mask.get_attribute("href"),
    )
    assert colours, "the mask overlay is empty"
    shot(page, "frame-mask")
    page.goto(console.url + "/projects/pose/datasets/people/frames")
    page.wait_for_selector(".grid-space a.tile svg circle")
    shot(page, "pose")
    page.goto(console.url + "/projects/shapes")
    page.wait_for_selector("table.classmap tbody tr")
    shot(page, "project")


def _post(console: Console, path: str, body: bytes, content_type: str, key: str = "") -> tuple[int, str, bytes]:
    import urllib.error
    import urllib.request

    headers = {"Content-Type": content_type, "Connect-Protocol-Version": "1"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(console.url + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def _envelopes(body: bytes) -> list[tuple[int, dict[str, Any]]]:
    import json
    import struct

    out = []
    while body:
        flags, size = struct.unpack(">BI", body[:5])
        out.append((flags, json.loads(body[5 : 5 + size])))
        body = body[5 + size :]
    return out


def test_connect_protocol_unary_stream_and_errors(console: Console) -> None:
    import json
    import struct

    status, kind, body = _post(
        console, "/shoal.v1.VersioningService/GetDataset", b'{"name": "projects/shapes/datasets/drawn"}',
        "application/json", console.writer,
    )  # fmt: skip
    assert (status, kind) == (200, "application/json")
    assert json.loads(body)["name"] == "projects/shapes/datasets/drawn"
    # Field violations come back as Connect error details (BadRequest), named as the API names them.
    status, _, body = _post(
        console, "/shoal.v1.VersioningService/ListFrames",
        b'{"parent": "projects/shapes/datasets/drawn", "filter": "count(labels) >"}', "application/json", console.writer,
    )  # fmt: skip
    error = json.loads(body)
    assert (status, error["code"]) == (400, "invalid_argument")
    details = {d["type"]: d["debug"] for d in error["details"]}
    assert details["google.rpc.ErrorInfo"]["reason"] == "INVALID_FILTER"
    assert details["google.rpc.BadRequest"]["fieldViolations"][0]["field"] == "filter"
    # A body that is not the request message, a method that does not exist, a stream browsers cannot send.
    status, _, body = _post(console, "/shoal.v1.VersioningService/GetDataset", b'{"nom": 1}', "application/json")
    assert (status, json.loads(body)["code"]) == (400, "invalid_argument")
    status, _, body = _post(console, "/shoal.v1.VersioningService/Nothing", b"{}", "application/json")
    assert (status, json.loads(body)["code"]) == (404, "unimplemented")
    status, _, body = _post(console, "/shoal.v1.IngestService/UploadFrames", b"{}", "application/json")
    assert (status, json.loads(body)["code"]) == (501, "unimplemented")
    # Another project's key: refused by the service, and the refusal names nothing of the project.
    status, _, body = _post(
        console, "/shoal.v1.VersioningService/GetFrame",
        b'{"name": "projects/shapes/datasets/drawn/frames/shapes-0001"}', "application/json", console.other,
    )  # fmt: skip
    assert (status, json.loads(body)["code"]) == (403, "permission_denied")
    assert b"shapes-0001" not in body

    # Binary Connect (what the web app sends): the message passes through as bytes, both ways.
    from shoal.v1 import dataset_pb2, versioning_service_pb2

    ask = versioning_service_pb2.GetDatasetRequest(name="projects/shapes/datasets/drawn").SerializeToString()
    status, kind, body = _post(
        console, "/shoal.v1.VersioningService/GetDataset", ask, "application/proto", console.writer
    )
    assert (status, kind) == (200, "application/proto")
    assert dataset_pb2.Dataset.FromString(body).name == "projects/shapes/datasets/drawn"
    status, _, body = _post(console, "/shoal.v1.VersioningService/GetDataset", b"\xff\xff", "application/proto")
    assert (status, json.loads(body)["code"]) == (400, "invalid_argument")

    # A server stream: enveloped messages, then the end of the stream.
    request = json.dumps({"parent": "projects/shapes/datasets/drawn", "batchSize": 25}).encode()
    status, kind, body = _post(
        console, "/shoal.v1.VersioningService/StreamFrames", struct.pack(">BI", 0, len(request)) + request,
        "application/connect+json", console.writer,
    )  # fmt: skip
    assert (status, kind) == (200, "application/connect+json")
    messages = _envelopes(body)
    assert messages[-1] == (2, {})
    streamed = [f["frameId"] for flags, m in messages[:-1] for f in m["frames"]]
    with console.client() as client:
        assert streamed == [f.frame_id for f in client.get_frames("shapes", "drawn")]
    # A failing stream ends with its error.
    request = b'{"parent": "projects/shapes/datasets/nowhere"}'
    _, _, body = _post(
        console, "/shoal.v1.VersioningService/StreamFrames", struct.pack(">BI", 0, len(request)) + request,
        "application/connect+json", console.writer,
    )  # fmt: skip
    flags, end = _envelopes(body)[-1]
    assert flags == 2
    assert end["error"]["code"] == "not_found"
    # A stream refused before it starts ends the same way, with status 200 as Connect's streams do.
    status, kind, body = _post(
        console, "/shoal.v1.VersioningService/StreamFrames", b"\x00\x00", "application/connect+json", console.writer
    )
    assert (status, kind) == (200, "application/connect+json")
    assert _envelopes(body)[-1][1]["error"]["code"] == "invalid_argument"
    # Oversized bodies are refused from their declared length, before a byte of them is read.
    import http.client
    import urllib.parse

    where = urllib.parse.urlsplit(console.url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    conn.putrequest("POST", "/shoal.v1.VersioningService/GetDataset")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(9 << 20))
    conn.endheaders()
    answer = conn.getresponse()
    assert (answer.status, json.loads(answer.read())["code"]) == (429, "resource_exhausted")
    conn.close()
    # Keys never reach the console's log.
    log = (console.suite.state / "logs" / "console.log").read_text()
    assert '"method": "/shoal.v1.VersioningService/StreamFrames"' in log
    for key in (console.admin, console.writer, console.other):
        assert key not in log
