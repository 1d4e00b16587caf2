"""Image checks within a memory budget: a decompression bomb is refused from its header before a pixel is decoded,
what is checked holds no more than it reserved, and concurrent checks never hold more than the budget together.

Bombs are built here without ever holding their pixels: the zlib stream repeats one fully flushed block of zero rows.
"""

from __future__ import annotations

import io
import json
import math
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile
from shoal.asset import formats
from shoal.kit.errors import InvalidArgument, ResourceExhausted
from shoal.v1 import asset_pb2

_PNG_COLOUR = {"L": (0, 1), "RGB": (2, 3), "RGBA": (6, 4)}
# What making a preview may take beside the decoded pixels, at most.
PREVIEW_BYTES = 24 << 20


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zero_png(width: int, height: int, mode: str = "RGBA") -> bytes:
    """A valid 8-bit PNG of `width`x`height` black pixels, compressed about 1000:1, made without holding them: after
    a full flush the compressor starts afresh, so one block of rows compresses to the same bytes every time."""
    colour, bands = _PNG_COLOUR[mode]
    line = bytes(1 + width * bands)  # filter byte 0, then the row
    per_block = math.gcd(height, 256)
    z = zlib.compressobj(9)
    first = z.compress(line * per_block) + z.flush(zlib.Z_FULL_FLUSH)  # with the zlib header
    again = z.compress(line * per_block) + z.flush(zlib.Z_FULL_FLUSH)
    raw = len(line) * height
    # Then an empty final block, and the Adler-32 of `raw` zero bytes (its sum of sums is the count, its sum 1).
    stream = first + again * (height // per_block - 1) + b"\x03\x00" + struct.pack(">I", (raw % 65521) << 16 | 1)
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")


def put(tmp_path: Path, data: bytes, name: str = "f.png") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def need(path: Path) -> int:
    """What checking the image at `path` reserves (measured on a budget that fits anything)."""
    budget = formats.DecodeBudget(1 << 40)
    formats.check_image(path, budget=budget)
    assert budget.in_use == 0
    return budget.peak


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def load(self: ImageFile.ImageFile) -> None:
        raise AssertionError(f"{self.width}x{self.height} pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def test_the_bomb_builder_writes_a_real_png() -> None:
    data = zero_png(300, 256, "RGB")
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (300, 256))
        assert not np.asarray(image).any()
    assert len(zero_png(15000, 15000)) < 1_000_000


def test_a_png_bomb_is_refused_from_its_header_before_a_pixel_is_decoded(tmp_path: Path, no_decoding: None) -> None:
    # 15000x15000 RGBA: under the pixel limit, under 1 MB on disk, 900 MB decoded.
    path = put(tmp_path, zero_png(15000, 15000))

    def refusal(budget: formats.DecodeBudget | None) -> str:
        given = {} if budget is None else {"budget": budget}
        with pytest.raises(InvalidArgument) as err:
            formats.check(asset_pb2.ASSET_KIND_IMAGE, path, **given)
        assert err.value.reason == "IMAGE_TOO_LARGE"
        (violation,) = err.value.violations
        assert violation.field == "content"
        return violation.description

    described = refusal(None)  # the process's own budget
    assert "the 15000x15000 RGBA PNG image needs about" in described
    assert f"more than the {formats.DECODE_BUDGET_BYTES:,}-byte image decode budget" in described
    assert int(described.split("about ")[1].split(" ")[0].replace(",", "")) >= 15000 * 15000 * 4
    budget = formats.DecodeBudget()
    assert refusal(budget) == described
    assert (budget.in_use, budget.peak) == (0, 0)


def test_masks_past_the_budget_are_refused_undecoded(tmp_path: Path, no_decoding: None) -> None:
    path = put(tmp_path, zero_png(3000, 2000, "L"))
    with pytest.raises(InvalidArgument) as err:
        formats.check_mask(path, budget=formats.DecodeBudget(3000 * 2000 - 1))
    assert err.value.reason == "IMAGE_TOO_LARGE"
    assert "3000x2000 L PNG mask" in err.value.violations[0].description


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_images_past_the_pixel_limit_are_refused_undecoded(tmp_path: Path, no_decoding: None) -> None:
    # Between the limit and twice it, the image library itself only warns (as it does in a service).
    path = put(tmp_path, zero_png(16000, 16000, "L"))
    with pytest.raises(InvalidArgument) as err:
        formats.check_image(path, budget=formats.DecodeBudget(1 << 40))
    assert err.value.reason == "IMAGE_TOO_LARGE"
    assert f"16000x16000, more than {formats.MAX_IMAGE_PIXELS:,} pixels" in err.value.violations[0].description


def test_what_fits_is_checked_within_its_reservation_and_gives_it_back(tmp_path: Path) -> None:
    path = put(tmp_path, zero_png(3000, 2000))
    reserved = need(path)
    decoded = 3000 * 2000 * 4
    # The decoded pixels, and a preview made strip by strip in a few MB whatever the size: never a second full-size
    # copy.
    assert 0 < reserved - decoded < PREVIEW_BYTES
    exact = formats.DecodeBudget(reserved)
    checked = formats.check_image(path, budget=exact)
    assert checked.info.width == 3000  # type: ignore[union-attr]
    assert Image.open(io.BytesIO(checked.preview or b"")).size == (512, 341)
    assert (exact.in_use, exact.peak) == (0, reserved)
    with pytest.raises(InvalidArgument) as err:
        formats.check_image(path, budget=formats.DecodeBudget(reserved - 1))
    assert err.value.reason == "IMAGE_TOO_LARGE"


def test_a_large_jpeg_is_decoded_reduced(tmp_path: Path) -> None:
    pixels = np.random.default_rng(1).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).resize((4000, 3000))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    path = put(tmp_path, out.getvalue(), "f.jpg")
    # libjpeg decodes it at 1/2 scale (the preview needs 1024 pixels across): a quarter of the pixels.
    assert need(path) < 4000 * 3000 * 4 / 2
    checked = formats.check_image(path)
    assert (checked.info.width, checked.info.height) == (4000, 3000)  # type: ignore[union-attr]
    assert Image.open(io.BytesIO(checked.preview or b"")).size == (512, 384)
    # A progressive JPEG keeps its coefficients at full size, whatever the scale: that is reserved too.
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80, progressive=True)
    assert need(put(tmp_path, out.getvalue(), "p.jpg")) > 4000 * 3000 * 3


def test_concurrent_checks_never_hold_more_than_the_budget(tmp_path: Path) -> None:
    paths = [put(tmp_path, zero_png(1000 + i, 800), f"{i}.png") for i in range(6)]
    one = max(need(p) for p in paths)
    budget = formats.DecodeBudget(one * 2, wait_seconds=60)
    mask = put(tmp_path, zero_png(1200, 900, "L"), "mask.png")
    problems: list[BaseException] = []

    def check(path: Path) -> None:
        try:
            if path == mask:
                formats.check_mask(path, budget=budget)
            else:
                formats.check_image(path, budget=budget)
        except BaseException as err:  # reported by the test's own thread
            problems.append(err)

    threads = [threading.Thread(target=check, args=(p,)) for p in [*paths, mask] * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    assert 0 < budget.peak <= budget.limit
    assert budget.in_use == 0


def test_a_check_that_finds_no_room_is_refused_as_busy_and_retryable(tmp_path: Path) -> None:
    path = put(tmp_path, zero_png(500, 400))
    reserved = need(path)
    budget = formats.DecodeBudget(reserved * 2, wait_seconds=0)
    with budget.reserve(reserved + 1, "another image"), pytest.raises(ResourceExhausted) as err:
        formats.check_image(path, budget=budget)
    assert err.value.reason == "DECODE_BUDGET_BUSY"
    assert err.value.retry_delay_seconds > 0
    assert err.value.violations[0].field == "content"
    assert budget.in_use == 0
    formats.check_image(path, budget=budget)  # room again


def test_a_check_that_fails_while_decoding_gives_its_reservation_back(tmp_path: Path) -> None:
    data = bytearray(zero_png(700, 600, "RGB"))
    length = struct.unpack(">I", data[33:37])[0]
    body = bytearray(data[37 : 41 + length])  # IDAT and its data: garbled, with a CRC that matches
    body[300:340] = bytes(b ^ 0xA5 for b in body[300:340])
    data[37 : 41 + length] = body
    data[41 + length : 45 + length] = struct.pack(">I", zlib.crc32(bytes(body)))
    budget = formats.DecodeBudget()
    with pytest.raises(InvalidArgument) as err:
        formats.check_image(put(tmp_path, bytes(data)), budget=budget)
    assert "corrupt" in err.value.violations[0].description
    assert budget.peak > 700 * 600 * 4
    assert budget.in_use == 0


_MEASURE = """
import json, sys
from pathlib import Path
from shoal.asset import formats
from shoal.kit.errors import InvalidArgument

def high_water() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))

out = {}
for name in sys.argv[1:]:
    budget = formats.DecodeBudget()
    before = high_water()
    try:
        formats.check_image(Path(name), budget=budget)
    except InvalidArgument as err:
        out[name] = {"refused": err.reason, "grew": high_water() - before}
    else:
        out[name] = {"reserved": budget.peak, "grew": high_water() - before}
print(json.dumps(out))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the high-water mark from /proc")
def test_the_process_stays_within_the_budget(tmp_path: Path) -> None:
    # The same check in a fresh process, by its resident high-water mark: the bomb costs nothing, and an image that
    # fits costs no more than it reserved (a second full-size copy would take half as much again).
    bomb = put(tmp_path, zero_png(15000, 15000), "bomb.png")
    fits = put(tmp_path, zero_png(4000, 4000), "fits.png")
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(bomb), str(fits)], capture_output=True, text=True, check=True, timeout=120
    )
    found = json.loads(run.stdout)
    assert found[str(bomb)]["refused"] == "IMAGE_TOO_LARGE"
    assert found[str(bomb)]["grew"] < 32 << 20
    decoded = 4000 * 4000 * 4
    assert found[str(fits)]["reserved"] < decoded + PREVIEW_BYTES
    assert found[str(fits)]["grew"] < found[str(fits)]["reserved"] + (8 << 20) < decoded * 1.5
