"""The format readers on generated and hand-made files: facts read right, bad files refused with a clear reason,
random and truncated bytes never crash or hang a reader."""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from shoal.asset import formats
from shoal.kit.errors import InvalidArgument
from shoal.v1 import asset_pb2

from tests.pcd import write_pcd

KINDS = [
    asset_pb2.ASSET_KIND_IMAGE,
    asset_pb2.ASSET_KIND_MASK,
    asset_pb2.ASSET_KIND_POINT_CLOUD_PCD,
    asset_pb2.ASSET_KIND_POINT_CLOUD_BIN,
    asset_pb2.ASSET_KIND_AUDIO,
]


def put(tmp_path: Path, data: bytes, name: str = "f") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def png(array: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, fmt)
    return out.getvalue()


def wav(seconds: float = 0.5, rate: int = 16000, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * channels * int(seconds * rate))
    return out.getvalue()


def wav_header_says(channels: int, rate: int, bits: int = 16, frames: int = 100) -> bytes:
    """A PCM WAV whose fmt chunk says what it is told (the standard library's writer refuses 0 channels or 0 Hz)."""
    block = max(1, channels) * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    data = bytes(block * frames)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def refused(kind: int, path: Path) -> str:
    with pytest.raises(InvalidArgument) as err:
        formats.check(kind, path)
    return err.value.violations[0].description


# images and masks


def test_images_report_size_channels_and_a_bounded_preview(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (600, 900, 3), dtype=np.uint8)
    for fmt, content_type in (("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")):
        checked = formats.check(asset_pb2.ASSET_KIND_IMAGE, put(tmp_path, png(rgb, fmt=fmt)))
        assert checked.content_type == content_type
        assert (checked.info.width, checked.info.height, checked.info.channels) == (900, 600, 3)  # type: ignore[union-attr]
        preview = Image.open(io.BytesIO(checked.preview or b""))
        assert preview.format == "JPEG"
        assert max(preview.size) == formats.PREVIEW_SIZE


def test_truncated_corrupt_and_foreign_images_are_refused(tmp_path: Path) -> None:
    good = png(np.zeros((64, 64, 3), dtype=np.uint8) + 7)
    assert "truncated" in refused(asset_pb2.ASSET_KIND_IMAGE, put(tmp_path, good[: len(good) // 2]))
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, "GIF")
    assert "only PNG, JPEG and WebP" in refused(asset_pb2.ASSET_KIND_IMAGE, put(tmp_path, gif.getvalue()))
    assert "not a PNG, JPEG or WebP" in refused(asset_pb2.ASSET_KIND_IMAGE, put(tmp_path, b"hello"))
    for at in (20, 40, len(good) - 30):  # the header, a chunk type, the pixel data
        flipped = bytearray(good)
        flipped[at] ^= 0xFF
        assert "corrupt" in refused(asset_pb2.ASSET_KIND_IMAGE, put(tmp_path, bytes(flipped)))


def test_masks_must_be_single_channel_png_of_the_image_size(tmp_path: Path) -> None:
    mask = np.zeros((30, 40), dtype=np.uint8)
    mask[5:10, 5:10] = 3
    mask[20:, :] = 7
    checked = formats.check_mask(put(tmp_path, png(mask)), known_class_ids=[0, 3], width=40, height=30)
    assert list(checked.info.class_ids) == [0, 3, 7]  # type: ignore[union-attr]
    assert list(checked.info.unknown_class_ids) == [7]  # type: ignore[union-attr]
    rgb = np.zeros((30, 40, 3), dtype=np.uint8)
    assert "mode RGB with 3 channel(s)" in refused(asset_pb2.ASSET_KIND_MASK, put(tmp_path, png(rgb)))
    with pytest.raises(InvalidArgument) as err:
        formats.check_mask(put(tmp_path, png(mask)), width=41, height=30)
    assert err.value.reason == "MASK_SIZE_MISMATCH"
    assert "must be a PNG" in refused(asset_pb2.ASSET_KIND_MASK, put(tmp_path, png(mask, fmt="JPEG")))
    sixteen = png(mask.astype(np.uint16) * 300)  # a 16-bit grey PNG
    assert "single-channel 8-bit" in refused(asset_pb2.ASSET_KIND_MASK, put(tmp_path, sixteen))


# point clouds

FIELD_TYPES = st.sampled_from(["<f4", "<f8", "<i2", "<u1", "<i4", "<u4"])


@st.composite
def clouds(draw: st.DrawFn) -> np.ndarray:
    n = draw(st.integers(0, 40))
    extra = draw(st.lists(st.sampled_from(["intensity", "range", "_pad", "_pad2", "rgb"]), unique=True, max_size=3))
    names = draw(st.permutations(["x", "y", "z", *extra]))
    dtype = np.dtype(
        [(name, "<f4" if name in "xyz" else draw(FIELD_TYPES), (2,) if name == "_pad2" else ()) for name in names]
    )
    points = np.zeros(n, dtype)
    for name in names:
        kind = dtype[name].base
        values = draw(
            hnp.arrays(
                kind,
                points[name].shape,
                elements=st.floats(-1e4, 1e4, width=32) if kind.kind == "f" else None,
            )
        )
        points[name] = values
    return points


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(points=clouds(), encoding=st.sampled_from(["ascii", "binary", "binary_compressed"]))
def test_pcd_reader_reads_every_encoding_field_order_and_padding(
    tmp_path: Path, points: np.ndarray, encoding: str
) -> None:
    path = put(tmp_path, write_pcd(points, encoding), "c.pcd")
    header, read = formats.read_pcd(path)
    assert header.data == encoding
    assert len(read) == len(points)
    for name in ("x", "y", "z"):
        np.testing.assert_array_equal(np.asarray(read[name]), points[name])
    info = formats.check_pcd(path).info
    assert info.point_count == len(points)  # type: ignore[union-attr]
    assert [f for f in info.fields if f != "_"] == [n for n in points.dtype.names if not n.startswith("_")]  # type: ignore[union-attr]
    if len(points):
        assert info.min.x == pytest.approx(float(points["x"].min()))  # type: ignore[union-attr]
        assert info.max.z == pytest.approx(float(points["z"].max()))  # type: ignore[union-attr]


@pytest.mark.parametrize("encoding", ["ascii", "binary", "binary_compressed"])
def test_a_pcd_header_that_promises_more_points_than_the_data_holds_is_refused(tmp_path: Path, encoding: str) -> None:
    points = np.zeros(10, np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")]))
    path = put(tmp_path, write_pcd(points, encoding, header_points=11), "c.pcd")
    with pytest.raises(InvalidArgument) as err:
        formats.check_pcd(path)
    assert err.value.reason == "PCD_SIZE_MISMATCH"
    assert "11 points" in err.value.violations[0].description


@pytest.mark.parametrize("encoding", ["ascii", "binary"])
def test_data_after_the_declared_points_is_ignored_as_pcl_does_with_a_warning(tmp_path: Path, encoding: str) -> None:
    points = np.zeros(10, np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")]))
    points["x"] = np.arange(10)
    path = put(tmp_path, write_pcd(points, encoding, header_points=9), "c.pcd")
    info = formats.check_pcd(path).info
    assert isinstance(info, asset_pb2.PointCloudInfo)
    assert info.point_count == 9
    assert info.max.x == 8.0  # the tenth point is not read
    assert len(info.warnings) == 1
    assert "after the declared points ignored" in info.warnings[0]


def test_bytes_after_a_compressed_block_are_ignored_with_a_warning(tmp_path: Path) -> None:
    points = np.zeros(10, np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")]))
    path = put(tmp_path, write_pcd(points, "binary_compressed") + b"\x00" * 7, "c.pcd")
    info = formats.check_pcd(path).info
    assert isinstance(info, asset_pb2.PointCloudInfo)
    assert info.point_count == 10
    assert list(info.warnings) == ["7 bytes after the declared points ignored"]


def test_pcd_header_rules(tmp_path: Path) -> None:
    base = "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1\nHEIGHT 1\nPOINTS 1\nDATA ascii\n1 2 3\n"
    cases = {
        base.replace("SIZE 4 4 4", "SIZE 4 4"): "SIZE has 2 entries for 3 FIELDS",
        base.replace("TYPE F F F", "TYPE F F I").replace("SIZE 4 4 4", "SIZE 4 4 3"): "TYPE I with SIZE 3",
        base.replace("FIELDS x y z", "FIELDS x y w"): "no 'z' field",
        base.replace("DATA ascii", "DATA zip"): "ascii, binary or binary_compressed",
        base.replace("POINTS 1", "POINTS 2"): "does not equal WIDTH 1 x HEIGHT 1",
        base.replace("\nDATA ascii", ""): "no DATA line",
        base.replace("COUNT 1 1 1", "COUNT 1 1 0"): "COUNT 0",
        "ply\nformat ascii 1.0\n": "not a PCD file",
    }
    for text, message in cases.items():
        assert message in refused(asset_pb2.ASSET_KIND_POINT_CLOUD_PCD, put(tmp_path, text.encode(), "c.pcd"))


def test_kitti_bins(tmp_path: Path) -> None:
    cloud = np.array([[1, 2, 3, 0.5], [-1, 5, 0, 0.1]], dtype="<f4")
    info = formats.check(asset_pb2.ASSET_KIND_POINT_CLOUD_BIN, put(tmp_path, cloud.tobytes())).info
    assert (info.point_count, info.min.x, info.max.y) == (2, -1, 5)  # type: ignore[union-attr]
    assert "bytes over" in refused(asset_pb2.ASSET_KIND_POINT_CLOUD_BIN, put(tmp_path, cloud.tobytes()[:-3]))
    assert "empty" in refused(asset_pb2.ASSET_KIND_POINT_CLOUD_BIN, put(tmp_path, b""))


# audio


def test_audio_facts_and_truncation(tmp_path: Path) -> None:
    info = formats.check(asset_pb2.ASSET_KIND_AUDIO, put(tmp_path, wav(0.5, 16000, 2))).info
    assert (info.format, info.sample_rate_hz, info.channels) == ("wav", 16000, 2)  # type: ignore[union-attr]
    assert info.duration_seconds == pytest.approx(0.5)  # type: ignore[union-attr]
    assert "truncated" in refused(asset_pb2.ASSET_KIND_AUDIO, put(tmp_path, wav(0.5)[:-1000]))
    assert "neither WAV" in refused(asset_pb2.ASSET_KIND_AUDIO, put(tmp_path, b"OggS" + b"\0" * 100))
    # An MPEG-1 layer III frame header (128 kbit/s, 44.1 kHz, stereo) repeated: a minimal MP3.
    frame = struct.pack(">I", 0xFFFB9064) + b"\0" * 413
    info = formats.check(asset_pb2.ASSET_KIND_AUDIO, put(tmp_path, frame * 40)).info
    assert (info.format, info.sample_rate_hz) == ("mp3", 44100)  # type: ignore[union-attr]
    assert info.duration_seconds > 0.9  # type: ignore[union-attr]


def test_wav_headers_with_no_channels_or_no_sample_rate_are_refused(tmp_path: Path) -> None:
    info = formats.check(asset_pb2.ASSET_KIND_AUDIO, put(tmp_path, wav_header_says(2, 8000))).info
    assert (info.channels, info.sample_rate_hz) == (2, 8000)  # type: ignore[union-attr]
    cases = {
        (0, 16000): "the WAV fmt chunk says 0 channels; channels must be at least 1",
        (1, 0): "the WAV fmt chunk says a sample rate of 0 Hz; the sample rate must be at least 1 Hz",
        (0, 0): "says 0 channels",
    }
    for (channels, rate), words in cases.items():
        with pytest.raises(InvalidArgument) as err:
            formats.check(asset_pb2.ASSET_KIND_AUDIO, put(tmp_path, wav_header_says(channels, rate)))
        assert err.value.reason == "INVALID_AUDIO"
        (violation,) = err.value.violations
        assert violation.field == "content"
        assert words in violation.description


# any bytes at all


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096), kind=st.sampled_from(KINDS))
def test_random_bytes_never_crash_a_reader(tmp_path: Path, data: bytes, kind: int) -> None:
    try:
        formats.check(kind, put(tmp_path, data))
    except InvalidArgument as err:
        problem = err.violations[0].description
    else:
        problem = "accepted"  # random bytes may happen to be a valid file (an empty KITTI cloud cannot)
    assert problem  # any other exception fails the test


@settings(max_examples=80, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.0, 0.999), which=st.integers(0, 5))
def test_truncated_files_are_refused_not_crashed_on(tmp_path: Path, cut: float, which: int) -> None:
    points = np.zeros(50, np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")]))
    points["x"] = np.arange(50)
    samples = [
        (asset_pb2.ASSET_KIND_IMAGE, png(np.full((32, 32, 3), 9, dtype=np.uint8))),
        (asset_pb2.ASSET_KIND_MASK, png(np.full((32, 32), 2, dtype=np.uint8))),
        (asset_pb2.ASSET_KIND_POINT_CLOUD_PCD, write_pcd(points, "binary")),
        (asset_pb2.ASSET_KIND_POINT_CLOUD_PCD, write_pcd(points, "binary_compressed")),
        (asset_pb2.ASSET_KIND_POINT_CLOUD_PCD, write_pcd(points, "ascii")),
        (asset_pb2.ASSET_KIND_AUDIO, wav(0.2)),
    ]
    kind, whole = samples[which]
    cut_file = whole[: int(len(whole) * cut)]
    if which == 4:
        # An ascii PCD cut inside its last number ("0.5" → "0.") is a whole file with another value: only a cut
        # that loses values is truncation.
        assume(len(cut_file.split()) != len(whole.split()))
    with pytest.raises(InvalidArgument):
        formats.check(kind, put(tmp_path, cut_file))


def test_extensions_name_their_kinds() -> None:
    assert formats.kind_for("a/b/mask.PNG") == asset_pb2.ASSET_KIND_IMAGE
    assert formats.kind_for("scan.pcd") == asset_pb2.ASSET_KIND_POINT_CLOUD_PCD
    assert formats.kind_for("000001.bin") == asset_pb2.ASSET_KIND_POINT_CLOUD_BIN
    assert formats.kind_for("clip.mp3") == asset_pb2.ASSET_KIND_AUDIO
    assert formats.kind_for("README") == asset_pb2.ASSET_KIND_OTHER
