"""The asset service end to end through the SDK, one suite on both backends: a local directory (URLs served by the
service's own HTTP endpoint) and moto's S3 server (URLs presigned by S3)."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
import shoal
from PIL import Image
from shoal.asset.server import build as build_asset
from shoal.ingest.server import build as build_ingest
from shoal.kit.apikeys import issue_key
from shoal.kit.objectstore import ObjectStore, open_store
from shoal.kit.settings import StoreSettings
from shoal.kit.status import unpack
from shoal.sdk.client import asset_name
from shoal.v1 import asset_pb2
from shoal.versioning.server import build as build_versioning

from tests.conftest import ADMIN_KEY, S3Server, ServerThread, unique
from tests.pcd import write_pcd
from tests.unit.test_asset_decode_budget import zero_png
from tests.unit.test_formats import wav_header_says

pytestmark = pytest.mark.integration


@dataclass
class Suite:
    client: shoal.Client
    store: ObjectStore
    settings: StoreSettings
    addresses: dict[str, str]
    project: str

    def blobs(self) -> list[str]:
        return [o.key for o in self.store.iter_all("assets/")]


@pytest.fixture(params=["local", "s3"])
def suite(
    request: pytest.FixtureRequest, start_service: Callable[..., ServerThread], tmp_path: Path
) -> Iterator[Suite]:
    if request.param == "local":
        settings = StoreSettings(url=(tmp_path / "store").as_uri())
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        settings = s3.store_settings(unique("assets"))
    versioning = start_service("versioning", build_versioning, store=settings)
    asset = start_service("asset", build_asset, store=settings, asset_http_port=0, asset_max_bytes=4 << 20)
    ingest = start_service("ingest", build_ingest, store=settings)
    addresses = {"versioning": versioning.target, "asset": asset.target, "ingest": ingest.target}
    with shoal.Client(api_key=ADMIN_KEY, addresses=addresses, show_progress=False) as client:
        project = unique("p")
        client.create_project(project, shoal.LabelClassMap.from_classnames(["road", "car", "person"]))
        client.create_dataset(project, "d")
        yield Suite(client, open_store(settings), settings, addresses, project)


def image_bytes(width: int = 800, height: int = 600, fmt: str = "PNG", seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt)
    return out.getvalue()


def fetch(url: str, headers: dict[str, str] | None = None) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
        return bytes(response.read())


def invalid(call: Callable[[], object]) -> tuple[str, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    details = unpack(err.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT, details.message
    return details.reason, " ".join(v.description for v in details.violations)


def test_upload_stat_read_list_sign_and_delete(suite: Suite, tmp_path: Path) -> None:
    c, p = suite.client, suite.project
    data = image_bytes()
    path = tmp_path / "frame 0001.png"
    path.write_bytes(data)
    asset = c.upload_asset(p, "d", path)
    sha = hashlib.sha256(data).hexdigest()
    assert asset.name == f"projects/{p}/datasets/d/assets/{sha}"
    assert (asset.kind, asset.size_bytes, asset.content_type, asset.filename) == (
        asset_pb2.ASSET_KIND_IMAGE,
        len(data),
        "image/png",
        "frame 0001.png",
    )
    assert (asset.image.width, asset.image.height, asset.image.channels) == (800, 600, 3)
    # Signed URLs work with a plain HTTP client: the bytes, a range of them, the preview.
    assert fetch(asset.url) == data
    assert fetch(asset.url, {"Range": "bytes=10-19"}) == data[10:20]
    preview = Image.open(io.BytesIO(fetch(asset.preview_url)))
    assert preview.format == "JPEG"
    assert max(preview.size) == 512
    # The same bytes again: the same asset, stored once.
    again = c.upload_asset(p, "d", data, filename="copy.png")
    assert again.name == asset.name
    assert again.filename == "frame 0001.png"
    assert len([k for k in suite.blobs() if "/blobs/" in k]) == 1
    assert c.get_asset(asset.name).size_bytes == len(data)
    assert c.read_asset(asset.name) == data
    assert c.read_asset(asset.name, offset=100, length=50) == data[100:150]
    for i in range(1, 4):
        c.upload_asset(p, "d", image_bytes(40, 30, seed=i))
    listed = list(c.list_assets(p, "d", page_size=2))
    assert len(listed) == 4
    assert asset.name in {a.name for a in listed}
    fresh = c.sign_asset_url(asset.url, ttl_seconds=60)
    assert fetch(fresh) == data
    c.delete_asset(asset.name)
    with pytest.raises(grpc.RpcError) as err:
        c.get_asset(asset.name)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert not [k for k in suite.blobs() if sha in k]


def test_formats_report_their_facts(suite: Suite) -> None:
    c, p = suite.client, suite.project
    mask = np.zeros((60, 80), dtype=np.uint8)
    mask[10:20, 10:20] = 1
    mask[30:, :] = 9  # not in the class map (0, 1, 2 are)
    out = io.BytesIO()
    Image.fromarray(mask).save(out, "PNG")
    m = c.upload_asset(p, "d", out.getvalue(), kind="mask", expected_width=80, expected_height=60)
    assert (list(m.mask.class_ids), list(m.mask.unknown_class_ids)) == ([0, 1, 9], [9])
    cloud = np.zeros(1000, np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")]))
    cloud["x"] = np.linspace(-5, 5, 1000)
    pcd = c.upload_asset(p, "d", write_pcd(cloud, "binary_compressed"), filename="scan.pcd")
    assert (pcd.point_cloud.encoding, pcd.point_cloud.point_count) == ("binary_compressed", 1000)
    assert (pcd.point_cloud.min.x, pcd.point_cloud.max.x) == (-5, 5)
    kitti = c.upload_asset(p, "d", np.ones((10, 4), "<f4").tobytes(), filename="000001.bin")
    assert kitti.point_cloud.point_count == 10


def test_bad_uploads_are_refused_and_leave_nothing(suite: Suite) -> None:
    c, p = suite.client, suite.project
    good = image_bytes(64, 64)
    rgb_mask = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(rgb_mask, "PNG")
    points = np.zeros(10, np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")]))
    cases: list[tuple[Callable[[], object], str, str]] = [
        (lambda: c.upload_asset(p, "d", good[:-100], filename="a.png"), "INVALID_ASSET", "truncated"),
        (lambda: c.upload_asset(p, "d", b"not an image", filename="a.jpg"), "INVALID_ASSET", "not a PNG"),
        (lambda: c.upload_asset(p, "d", rgb_mask.getvalue(), kind="mask"), "INVALID_MASK", "mode RGB"),
        (
            lambda: c.upload_asset(p, "d", write_pcd(points, "binary", header_points=12), filename="c.pcd"),
            "PCD_SIZE_MISMATCH",
            "says 12 points",
        ),
        (lambda: c.upload_asset(p, "d", b"\0" * (5 << 20), filename="big.bin"), "ASSET_TOO_LARGE", "limit"),
        (lambda: c.upload_asset(p, "d", b"", filename="empty.png"), "EMPTY_ASSET", "empty"),
        # A decompression bomb: 900 KB on the wire, 900 MB decoded. Refused from its header, never decoded.
        (
            lambda: c.upload_asset(p, "d", zero_png(15000, 15000), filename="bomb.png"),
            "IMAGE_TOO_LARGE",
            "the 15000x15000 RGBA PNG image needs about",
        ),
        (lambda: c.upload_asset(p, "d", wav_header_says(0, 16000), filename="a.wav"), "INVALID_AUDIO", "0 channels"),
        (lambda: c.upload_asset(p, "d", wav_header_says(1, 0), filename="a.wav"), "INVALID_AUDIO", "rate of 0 Hz"),
    ]
    for call, reason, words in cases:
        got_reason, message = invalid(call)
        assert got_reason == reason, message
        assert words in message
    assert suite.blobs() == []


def test_direct_upload_through_a_presigned_url(suite: Suite, tmp_path: Path) -> None:
    c, p = suite.client, suite.project
    path = tmp_path / "photo.jpg"
    path.write_bytes(image_bytes(300, 200, "JPEG"))
    asset = c.upload_asset_direct(p, "d", path)
    assert (asset.kind, asset.image.format, asset.image.width) == (asset_pb2.ASSET_KIND_IMAGE, "jpeg", 300)
    assert fetch(asset.url) == path.read_bytes()
    assert not [k for k in suite.blobs() if "/staging/" in k]
    bad = tmp_path / "broken.png"
    bad.write_bytes(image_bytes(50, 50)[:200])
    reason, message = invalid(lambda: c.upload_asset_direct(p, "d", bad))
    assert "truncated" in message or "corrupt" in message, reason
    assert [k for k in suite.blobs() if "/blobs/" in k] == [f"assets/{p}/d/blobs/{asset.sha256}"]


def test_upload_from_url_and_masks_from_arrays(suite: Suite) -> None:
    c, p = suite.client, suite.project
    source = c.upload_asset(p, "d", image_bytes(120, 90, seed=7), filename="src.png")
    copied = c.upload_asset_from_url(p, "d", source.url)
    assert fetch(copied) == fetch(source.url)
    frame = shoal.LabeledFrame(frame_id="f1")
    frame.add_image(sensor_id="cam", image_url=source.url, width=120, height=90)
    mask = np.zeros((90, 120), dtype=np.int64)
    mask[:45] = 2
    frame.add_label_2d_semseg(sensor_id="cam", label_id="seg", mask_data=mask)
    dataset = shoal.LabeledDataset()
    dataset.add_frame(frame)
    placeholder = next(iter(dataset.pending_masks))
    c.resolve_masks(f"projects/{p}/datasets/d", dataset.items, dataset.pending_masks)
    url = dataset.items[0].labels[0].semantic_segmentation_2d.mask_url  # type: ignore[union-attr]
    assert url != placeholder
    decoded = np.asarray(Image.open(io.BytesIO(fetch(url))))
    np.testing.assert_array_equal(decoded, mask.astype(np.uint8))
    assert c.get_asset(asset_name(url)).mask.class_ids == [0, 2]


def test_a_key_for_one_project_cannot_touch_another(suite: Suite) -> None:
    c, p = suite.client, suite.project
    asset = c.upload_asset(p, "d", image_bytes(10, 10))
    other = unique("q")
    c.create_project(other, shoal.LabelClassMap.from_classnames(["car"]))
    c.create_dataset(other, "d")
    _, secret = issue_key(suite.store, "other team", [f"projects/{other}"], "WRITER")
    with shoal.Client(api_key=secret, addresses=suite.addresses, show_progress=False) as outsider:
        outsider.upload_asset(other, "d", image_bytes(12, 12))  # its own project: fine
        for call in (
            lambda: outsider.get_asset(asset.name),
            lambda: outsider.read_asset(asset.name),
            lambda: list(outsider.list_assets(p, "d")),
            lambda: outsider.sign_asset_url(asset.name),
            lambda: outsider.delete_asset(asset.name),
            lambda: outsider.upload_asset(p, "d", image_bytes(11, 11)),
        ):
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert c.get_asset(asset.name).name == asset.name


def test_signed_urls_expire_and_cannot_be_forged(suite: Suite) -> None:
    c, p = suite.client, suite.project
    asset = c.upload_asset(p, "d", image_bytes(10, 10))
    url = c.sign_asset_url(asset.name, ttl_seconds=60)
    tampered = url.replace(asset.sha256[:8], "0" * 8, 1)
    with pytest.raises(urllib.error.HTTPError) as err:
        fetch(tampered)
    err.value.close()
    assert err.value.code in {403, 404}


def test_ingest_checks_the_assets_frames_point_to(suite: Suite) -> None:
    c, p = suite.client, suite.project
    image = c.upload_asset(p, "d", image_bytes(80, 60), filename="i.png")
    small = io.BytesIO()
    Image.fromarray(np.ones((60, 80), np.uint8)).save(small, "PNG")
    mask = c.upload_asset(p, "d", small.getvalue(), kind="mask")
    c.create_dataset(p, "other")
    foreign = c.upload_asset(p, "other", image_bytes(80, 60, seed=3), filename="x.png")
    missing = f"shoal://projects/{p}/datasets/d/assets/{'0' * 64}"

    def frame(frame_id: str, image_url: str, mask_url: str, width: int = 80) -> shoal.LabeledFrame:
        f = shoal.LabeledFrame(frame_id=frame_id)
        f.add_image(sensor_id="cam", image_url=image_url, width=width, height=60)
        f.add_label_2d_semseg(sensor_id="cam", label_id=f"{frame_id}-seg", mask_url=mask_url)
        return f

    frames = [
        frame("good", image.url, mask.url),
        frame("external", "s3://their-bucket/1.jpg", "s3://their-bucket/1.png"),
        frame("gone", missing, mask.url),
        frame("not-mask", image.url, image.url),
        frame("wrong-size", image.url, mask.url, width=81),
        frame("foreign", foreign.url, mask.url),
    ]
    report = c.upload(f"projects/{p}/datasets/d", [f.to_proto() for f in frames])
    assert report.accepted == 2
    reasons = {(e.frame_id, e.reason) for e in report.rejected}
    assert reasons == {
        ("gone", "ASSET_NOT_FOUND"),
        ("not-mask", "NOT_A_MASK"),
        ("wrong-size", "MASK_SIZE_MISMATCH"),
        ("foreign", "ASSET_OF_ANOTHER_DATASET"),
    }
    by_frame = {e.frame_id: e for e in report.rejected}
    assert by_frame["not-mask"].field == "frames[3].labels[0].semantic_segmentation_2d.mask_url"
    assert by_frame["not-mask"].label_id == "not-mask-seg"
    assert by_frame["gone"].field == "frames[2].sensors[0].image"


def test_folder_upload_is_parallel_and_resumes(suite: Suite, tmp_path: Path) -> None:
    from shoal.sdk.folders import MANIFEST, read_manifest, upload_folder

    folder = tmp_path / "media"
    (folder / "cam").mkdir(parents=True)
    for i in range(5):
        (folder / "cam" / f"{i}.png").write_bytes(image_bytes(32, 24, seed=10 + i))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    first = upload_folder(suite.client, suite.project, "d", folder, workers=3)
    assert (first.uploaded, first.skipped) == (5, 0)
    assert [rel for rel, _ in first.failed] == ["broken.png"]
    entries = read_manifest(folder / MANIFEST)
    assert sorted(entries) == [f"cam/{i}.png" for i in range(5)]
    assert fetch(entries["cam/3.png"]["url"]) == (folder / "cam" / "3.png").read_bytes()
    # Fixed and run again: only the file that failed is sent.
    (folder / "broken.png").write_bytes(image_bytes(8, 8, seed=99))
    second = upload_folder(suite.client, suite.project, "d", folder, workers=3)
    assert (second.uploaded, second.skipped, second.failed) == (1, 5, [])
    assert len(list(suite.client.list_assets(suite.project, "d"))) == 6
