"""What the asset service knows about media formats: it reads each upload, refuses what is corrupt, truncated or not
what it claims to be, and returns the facts it read (sizes, channels, class ids, point counts, bounds, durations).

Readers work on a file on local disk (uploads are spooled there first), so a large point cloud is memory-mapped
rather than read into memory. Every failure is an InvalidArgument naming what is wrong; nothing here writes.

Images are decoded within a memory budget shared by the whole process (a `DecodeBudget`): before any pixel is
decoded, what decoding will hold is estimated from the header alone, and an image whose estimate exceeds the budget
is refused (IMAGE_TOO_LARGE) rather than decoded; one that fits waits for the decodes under way to leave room, and
is refused as busy (RESOURCE_EXHAUSTED, retryable) when none comes in time. A JPEG is decoded reduced (libjpeg
scales while decoding), and previews are made strip by strip, so no full-size copy of a decoded image is ever made.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import mutagen
import numpy as np
import numpy.typing as npt
import pylzf as lzf
from PIL import Image, ImageFile, ImageMode, JpegImagePlugin, UnidentifiedImageError

from shoal.kit.errors import FieldViolation, InvalidArgument, ResourceExhausted
from shoal.v1 import asset_pb2, common_pb2
from shoal.validation import asset_kind_for

# Images past this many pixels are refused rather than decoded (a decompression bomb guard).
MAX_IMAGE_PIXELS: Final = 250_000_000
PREVIEW_SIZE: Final = 512
# Bytes of decoded pixels the image checks of one process may hold at once (the default of the budget; an image whose
# decoding alone would need more is refused).
DECODE_BUDGET_BYTES: Final = 512 << 20
# How long a check waits for room in the budget while other uploads decode, before it is refused as busy (retryable).
DECODE_WAIT_SECONDS: Final = 5.0
# Decode and reduce to at least this multiple of the preview's size before the final resampling (as thumbnails do).
_PREVIEW_GAP: Final = 2
# Previews are made from strips of about this many decoded bytes.
_STRIP_BYTES: Final = 2 << 20
# What any decode holds besides pixels and canvases: the libraries' buffers, reads of the file, the preview's encoder.
_DECODER_WORKING_BYTES: Final = 4 << 20
_IMAGE_FORMATS: Final = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_PCD_TYPES: Final = {
    **{("F", 4): "<f4", ("F", 8): "<f8", ("I", 1): "i1", ("I", 2): "<i2", ("I", 4): "<i4"},
    **{("I", 8): "<i8", ("U", 1): "u1", ("U", 2): "<u2", ("U", 4): "<u4", ("U", 8): "<u8"},
}
_PCD_KEYS: Final = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")
_PCD_MAX_HEADER: Final = 64 * 1024

Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

Info = asset_pb2.ImageInfo | asset_pb2.MaskInfo | asset_pb2.PointCloudInfo | asset_pb2.AudioInfo


@dataclass
class Checked:
    """What validation found: the content type, the facts, and an image's preview (JPEG bytes)."""

    content_type: str
    info: Info | None = None
    preview: bytes | None = None


def bad(message: str, reason: str = "INVALID_ASSET") -> InvalidArgument:
    return InvalidArgument.of([FieldViolation("content", message)], reason=reason)


# images and masks --------------------------------------------------------------------------------------------------


class DecodeBudget:
    """Bytes of decoded pixels that image checks may hold at once, shared by every upload of a process.

    A check reserves what it estimates decoding will hold before it decodes, and gives it back when done: however
    many uploads arrive together, decoded images never add up to more than `limit`. An image whose estimate exceeds
    `limit` on its own is refused at once (IMAGE_TOO_LARGE: it could never be checked here); one that does not fit
    beside the decodes under way waits up to `wait_seconds` for them, then is refused as busy (RESOURCE_EXHAUSTED
    with a retry delay).
    """

    def __init__(self, limit: int = DECODE_BUDGET_BYTES, wait_seconds: float = DECODE_WAIT_SECONDS) -> None:
        if limit < 1:
            raise ValueError(f"a decode budget must be positive, got {limit}")
        self.limit = limit
        self.wait_seconds = wait_seconds
        self.in_use = 0
        self.peak = 0  # the most ever reserved at once
        self._room = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, nbytes: int, what: str = "image") -> Iterator[None]:
        """Hold `nbytes` of the budget for the block; `what` names the image in a refusal."""
        if nbytes > self.limit:
            raise bad(
                f"checking the {what} needs about {nbytes:,} bytes of decoded pixels, more than the "
                f"{self.limit:,}-byte image decode budget",
                "IMAGE_TOO_LARGE",
            )
        with self._room:
            if not self._room.wait_for(lambda: self.in_use + nbytes <= self.limit, timeout=self.wait_seconds):
                raise ResourceExhausted(
                    f"other uploads are decoding images: the {self.limit:,}-byte image decode budget has no room for "
                    f"this {what}'s {nbytes:,} bytes; retry later",
                    reason="DECODE_BUDGET_BUSY",
                    violations=(FieldViolation("content", f"the {what} waited for decode memory and got none"),),
                    retry_delay_seconds=max(1.0, self.wait_seconds),
                )
            self.in_use += nbytes
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            with self._room:
                self.in_use -= nbytes
                self._room.notify_all()


# What the image checks of this process share unless they are given a budget of their own.
DEFAULT_BUDGET: Final = DecodeBudget()


def _magic(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(12)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return ""


@contextlib.contextmanager
def _decoder_errors(path: Path, what: str) -> Iterator[None]:
    """Whatever the image library raises on a bad file, as the refusal it means."""
    try:
        yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise bad(f"the {what} has more than {MAX_IMAGE_PIXELS:,} pixels", "IMAGE_TOO_LARGE") from None
    except UnidentifiedImageError:
        claimed = _magic(path)
        if claimed:
            raise bad(f"the {what} starts like a {claimed} but is corrupt (it cannot be decoded)") from None
        raise bad(f"the {what} is not a PNG, JPEG or WebP image (unrecognised content)") from None
    except (OSError, SyntaxError, ValueError, struct.error) as err:
        raise bad(f"the {what} is corrupt or truncated: {err}") from None


@contextlib.contextmanager
def _opened(path: Path, what: str) -> Iterator[Image.Image]:
    """The image with its header read and its structure verified (PNG chunk CRCs), not one pixel decoded; the file
    stays open until the block ends."""
    with _decoder_errors(path, what):
        with Image.open(path) as probe:
            probe.verify()  # structure and checksums (PNG CRCs), without decoding
        image = Image.open(path)
    with image:
        if image.format not in _IMAGE_FORMATS:
            raise bad(f"the {what} is {image.format}; only PNG, JPEG and WebP are accepted")
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise bad(
                f"the {what} is {image.width}x{image.height}, more than {MAX_IMAGE_PIXELS:,} pixels", "IMAGE_TOO_LARGE"
            )
        _check_trailer(path, str(image.format), what)
        yield image


def _check_trailer(path: Path, fmt: str, what: str) -> None:
    """The decoder may stop before the end; the file must still be whole (IEND, EOI, the RIFF size)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(max(0, size - 4096))
        tail = fh.read()
        fh.seek(4)
        riff_size = fh.read(4)
    if fmt == "PNG" and not tail.endswith(b"IEND\xaeB`\x82"):
        raise bad(f"the {what} is truncated: the PNG does not end with its IEND chunk")
    if fmt == "JPEG" and b"\xff\xd9" not in tail:
        raise bad(f"the {what} is truncated: the JPEG has no end-of-image marker")
    if fmt == "WEBP" and len(riff_size) == 4 and struct.unpack("<I", riff_size)[0] + 8 > size:
        raise bad(f"the {what} is truncated: the WebP RIFF header says more bytes than the file holds")


def _pixel_bytes(mode: str) -> int:
    """Bytes one decoded pixel of `mode` takes (the image library stores every multi-band mode 4 bytes a pixel)."""
    described = ImageMode.getmode(mode)
    return 4 if len(described.bands) > 1 else np.dtype(described.typestr).itemsize


def decode_bytes(image: Image.Image, width: int, height: int) -> int:
    """What decoding `image` (opened, not loaded; `width`x`height` before any draft) holds at its peak, estimated
    from its header alone: the decoded pixels, plus what the decoder keeps besides them."""
    total = _DECODER_WORKING_BYTES + image.width * image.height * _pixel_bytes(image.mode)
    if isinstance(image, JpegImagePlugin.JpegImageFile) and image.info.get("progressive"):
        # A progressive JPEG's decoder keeps every component's DCT coefficients (2 bytes each) until the last scan,
        # at full size whatever the draft.
        h_max = max(1, *(h for _, h, _, _ in image.layer))  # 0 in a corrupt header: the decoder refuses it later
        v_max = max(1, *(v for _, _, v, _ in image.layer))
        for _, h, v, _ in image.layer:
            total += 8 * math.ceil(width * h / h_max / 8) * 8 * math.ceil(height * v / v_max / 8) * 2
    if image.format == "WEBP":
        total += _webp_decoder_bytes(image, width, height)
    return total


def _webp_decoder_bytes(image: Image.Image, width: int, height: int) -> int:
    """The WebP decoder holds the whole file twice, composes frames on two RGBA canvases and hands a frame over as one
    more RGBA copy; a lossless (VP8L) frame is first decoded whole into one more. Which one it is is read from the
    chunk headers (animations count as lossless)."""
    canvases = 4
    fh = image.fp if isinstance(image, ImageFile.ImageFile) else None
    if fh is None:
        return width * height * 4 * canvases
    at = fh.tell()
    try:
        size = fh.seek(0, 2)
        fh.seek(12)
        for _ in range(16):  # VP8X, ICCP, ANIM, ALPH … come first: a few chunks at most
            head = fh.read(8)
            if len(head) < 8:
                break
            fourcc, length = struct.unpack("<4sI", head)
            if fourcc in {b"VP8 ", b"VP8L", b"ANMF"}:
                canvases = 3 if fourcc == b"VP8 " else 4
                break
            fh.seek(length + (length & 1), 1)
    finally:
        fh.seek(at)
    return 2 * int(size) + width * height * 4 * canvases


def _preview_size(width: int, height: int) -> tuple[int, int]:
    scale = min(PREVIEW_SIZE / width, PREVIEW_SIZE / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True)
class _PreviewPlan:
    """How a decoded image becomes a preview: reduced by whole factors (an RGB image at once, any other strip by strip
    as it is made RGB), then resampled to the preview's size; and the bytes that takes beside the decoded image."""

    fx: int
    fy: int
    rows: int  # a strip's rows (a multiple of fy)
    bytes: int

    @classmethod
    def of(cls, mode: str, size: tuple[int, int], target: tuple[int, int]) -> _PreviewPlan:
        width, height = size
        fx = max(1, width // (target[0] * _PREVIEW_GAP))
        fy = max(1, height // (target[1] * _PREVIEW_GAP))
        rows = max(fy, _STRIP_BYTES // (4 * width) // fy * fy)
        reduced = (math.ceil(width / fx), math.ceil(height / fy))
        # Resampling goes through one intermediate image: the preview's width by the reduced image's height.
        total = (target[0] * reduced[1] + target[0] * target[1]) * 4
        if mode != "RGB":
            total += rows * width * 4 * 2  # a strip cut out, and the same made RGB
        if mode != "RGB" or (fx, fy) != (1, 1):
            total += reduced[0] * reduced[1] * 4
        return cls(fx, fy, rows, total)


def _preview(image: Image.Image, target: tuple[int, int]) -> bytes:
    """A JPEG of the decoded image, `target` in size, made without a full-size copy of the decoded image."""
    width, height = image.size
    plan = _PreviewPlan.of(image.mode, image.size, target)
    factors = (plan.fx, plan.fy)
    if image.mode == "RGB":
        reduced = image if factors == (1, 1) else image.reduce(factors)
    else:
        reduced = Image.new("RGB", (math.ceil(width / plan.fx), math.ceil(height / plan.fy)))
        for top in range(0, height, plan.rows):
            strip = image.crop((0, top, width, min(height, top + plan.rows))).convert("RGB")
            reduced.paste(strip if factors == (1, 1) else strip.reduce(factors), (0, top // plan.fy))
    preview = reduced if reduced.size == target else reduced.resize(target, Image.Resampling.BICUBIC)
    out = io.BytesIO()
    preview.save(out, "JPEG", quality=85)
    return out.getvalue()


def _described(what: str, image: Image.Image, width: int, height: int) -> str:
    return f"{width}x{height} {image.mode} {image.format} {what}"


def check_image(path: Path, *, budget: DecodeBudget | None = None) -> Checked:
    budget = budget or DEFAULT_BUDGET
    with _opened(path, "image") as image:
        width, height, fmt = image.width, image.height, str(image.format)
        info = asset_pb2.ImageInfo(format=fmt.lower(), width=width, height=height, channels=len(image.getbands()))
        target = _preview_size(width, height)
        if isinstance(image, JpegImagePlugin.JpegImageFile):
            # libjpeg scales by 1/2, 1/4 or 1/8 while it decodes, and still reads every byte of the scans.
            with _decoder_errors(path, "image"):
                image.draft(None, (target[0] * _PREVIEW_GAP, target[1] * _PREVIEW_GAP))
        need = decode_bytes(image, width, height) + _PreviewPlan.of(image.mode, image.size, target).bytes
        with budget.reserve(need, _described("image", image, width, height)):
            with _decoder_errors(path, "image"):
                image.load()  # the pixels themselves: catches truncation
            preview = _preview(image, target)
    return Checked(_IMAGE_FORMATS[fmt], info, preview)


def check_mask(
    path: Path,
    *,
    known_class_ids: Iterable[int] | None = None,
    width: int = 0,
    height: int = 0,
    budget: DecodeBudget | None = None,
) -> Checked:
    """A segmentation mask: a single-channel 8-bit PNG (grey or palette: each pixel is a class id)."""
    budget = budget or DEFAULT_BUDGET
    with _opened(path, "mask") as image:
        if image.format != "PNG":
            raise bad(f"a mask must be a PNG (lossless), got {image.format}", "INVALID_MASK")
        if image.mode not in {"L", "P"}:
            raise bad(
                f"a mask must be single-channel 8-bit (PNG mode L or P), got mode {image.mode} with "
                f"{len(image.getbands())} channel(s)",
                "INVALID_MASK",
            )
        if (width and image.width != width) or (height and image.height != height):
            raise bad(
                f"the mask is {image.width}x{image.height} but its image is {width or image.width}x"
                f"{height or image.height}",
                "MASK_SIZE_MISMATCH",
            )
        need = decode_bytes(image, image.width, image.height)
        with budget.reserve(need, _described("mask", image, image.width, image.height)):
            with _decoder_errors(path, "mask"):
                image.load()
            counts = image.histogram()  # class ids are the pixel values: counted in place, never copied
        present = [value for value, count in enumerate(counts) if count]
        unknown = [] if known_class_ids is None else sorted(set(present) - set(known_class_ids))
        info = asset_pb2.MaskInfo(width=image.width, height=image.height, class_ids=present, unknown_class_ids=unknown)
    return Checked("image/png", info)


# point clouds ------------------------------------------------------------------------------------------------------


@dataclass
class PcdHeader:
    fields: list[str]
    sizes: list[int]
    types: list[str]
    counts: list[int]
    width: int
    height: int
    points: int
    data: str
    data_offset: int
    # What the reader passed over, as PCL does (bytes after the declared points), for the asset's facts.
    warnings: list[str] = field(default_factory=list)

    def dtype(self) -> np.dtype[np.void]:
        """One point's layout, fields in file order (padding fields included)."""
        parts = []
        layout = zip(self.fields, self.sizes, self.types, self.counts, strict=True)
        for i, (name, size, kind, count) in enumerate(layout):
            base = _PCD_TYPES[(kind, size)]
            parts.append((f"{name}#{i}" if name == "_" else name, base, (count,) if count > 1 else ()))
        return np.dtype(parts)


def _pcd_header(head: bytes) -> PcdHeader:
    if not head.lstrip().startswith((b"#", b"VERSION", b"FIELDS")):
        raise bad("not a PCD file: it does not start with a PCD header (VERSION, FIELDS … DATA)", "INVALID_PCD")
    end = head.find(b"\nDATA ")
    if end < 0:
        raise bad(f"the PCD header has no DATA line within its first {_PCD_MAX_HEADER} bytes", "INVALID_PCD")
    line_end = head.find(b"\n", end + 1)
    if line_end < 0:
        raise bad("the PCD header's DATA line is not terminated", "INVALID_PCD")
    entries: dict[str, list[str]] = {}
    try:
        text = head[: line_end + 1].decode("ascii")
    except UnicodeDecodeError:
        raise bad("the PCD header is not ASCII text", "INVALID_PCD") from None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, *values = line.split()
        key = key.upper()
        if key not in _PCD_KEYS:
            raise bad(f"unknown PCD header entry {key!r}", "INVALID_PCD")
        entries[key] = values
    for required in ("FIELDS", "SIZE", "TYPE", "WIDTH", "HEIGHT", "DATA"):
        if required not in entries:
            raise bad(f"the PCD header has no {required} line", "INVALID_PCD")
    fields = entries["FIELDS"]
    n = len(fields)

    def ints(key: str, default: list[int] | None = None) -> list[int]:
        values = entries.get(key)
        if values is None and default is not None:
            return default
        try:
            return [int(v) for v in values or []]
        except ValueError:
            raise bad(f"PCD {key} must be integers, got {' '.join(values or [])!r}", "INVALID_PCD") from None

    sizes, counts = ints("SIZE"), ints("COUNT", [1] * n)
    types = [t.upper() for t in entries["TYPE"]]
    for key, length in (("SIZE", len(sizes)), ("TYPE", len(types)), ("COUNT", len(counts))):
        if length != n:
            raise bad(f"PCD {key} has {length} entries for {n} FIELDS", "INVALID_PCD")
    for name, size, kind, count in zip(fields, sizes, types, counts, strict=True):
        if (kind, size) not in _PCD_TYPES:
            raise bad(f"PCD field {name!r} has TYPE {kind} with SIZE {size}, which is not a valid pair", "INVALID_PCD")
        if count < 1:
            raise bad(f"PCD field {name!r} has COUNT {count}; it must be 1 or more", "INVALID_PCD")
    named = [f for f in fields if f != "_"]
    if len(set(named)) != len(named):
        raise bad(f"PCD FIELDS repeat a name: {' '.join(fields)}", "INVALID_PCD")
    for axis in ("x", "y", "z"):
        if axis not in fields:
            raise bad(f"the point cloud has no {axis!r} field (FIELDS {' '.join(fields)})", "INVALID_PCD")
        if counts[fields.index(axis)] != 1:
            raise bad(f"PCD field {axis!r} must have COUNT 1", "INVALID_PCD")
    dims = ints("WIDTH") + ints("HEIGHT")
    if len(dims) != 2:
        raise bad("PCD WIDTH and HEIGHT must be one integer each", "INVALID_PCD")
    width, height = dims
    points = ints("POINTS", [width * height])
    if len(points) != 1 or points[0] != width * height or width < 0 or height < 1:
        raise bad(
            f"PCD POINTS {' '.join(map(str, points))} does not equal WIDTH {width} x HEIGHT {height}", "INVALID_PCD"
        )
    data = entries["DATA"][0].lower() if entries["DATA"] else ""
    if data not in {"ascii", "binary", "binary_compressed"}:
        raise bad(f"PCD DATA must be ascii, binary or binary_compressed, got {data!r}", "INVALID_PCD")
    return PcdHeader(fields, sizes, types, counts, width, height, points[0], data, line_end + 1)


def read_pcd(path: Path) -> tuple[PcdHeader, npt.NDArray[np.void]]:
    """The header and the points (a structured array, fields in file order)."""
    with path.open("rb") as fh:
        head = fh.read(_PCD_MAX_HEADER)
    header = _pcd_header(head)
    dtype = header.dtype()
    size = path.stat().st_size - header.data_offset
    n = header.points
    if header.data == "binary":
        if size < n * dtype.itemsize:
            raise bad(
                f"the PCD header says {n} points of {dtype.itemsize} bytes ({n * dtype.itemsize} bytes) but the data "
                f"holds {size} bytes (truncated)",
                "PCD_SIZE_MISMATCH",
            )
        if size > n * dtype.itemsize:
            # PCL reads the declared points and ignores what follows; so does Shoal, and says so.
            header.warnings.append(_trailing(size - n * dtype.itemsize))
        if n == 0:
            return header, np.zeros(0, dtype)
        return header, np.memmap(path, dtype=dtype, mode="r", offset=header.data_offset, shape=(n,))
    with path.open("rb") as fh:
        fh.seek(header.data_offset)
        body = fh.read()
    if header.data == "ascii":
        return header, _pcd_ascii(body, header, dtype)
    return header, _pcd_compressed(body, header, dtype)


def _pcd_ascii(body: bytes, header: PcdHeader, dtype: np.dtype[np.void]) -> npt.NDArray[np.void]:
    per_point = sum(header.counts)
    lines = [line for line in body.split(b"\n") if line.strip()]
    if len(lines) < header.points:
        raise bad(
            f"the PCD header says {header.points} points but the data has {len(lines)} lines", "PCD_SIZE_MISMATCH"
        )
    if len(lines) > header.points:
        # PCL reads the declared number of lines and ignores the rest.
        extra = len(lines) - header.points
        header.warnings.append(f"{extra} line{'s' if extra > 1 else ''} after the declared points ignored")
        lines = lines[: header.points]
    try:
        values = np.array(b" ".join(lines).split(), dtype=np.float64)
    except ValueError:
        raise bad("the PCD ascii data holds something that is not a number", "INVALID_PCD") from None
    if values.size != header.points * per_point:
        raise bad(
            f"the PCD ascii data has {values.size} values; {header.points} points of {per_point} need "
            f"{header.points * per_point}",
            "PCD_SIZE_MISMATCH",
        )
    table = values.reshape(header.points, per_point)
    out = np.zeros(header.points, dtype)
    column = 0
    for name in dtype.names or ():
        width = int(np.prod(dtype[name].shape)) if dtype[name].shape else 1
        part = table[:, column : column + width]
        out[name] = part.reshape(out[name].shape)
        column += width
    return out


def _pcd_compressed(body: bytes, header: PcdHeader, dtype: np.dtype[np.void]) -> npt.NDArray[np.void]:
    if len(body) < 8:
        raise bad("the PCD binary_compressed data is missing its size words", "INVALID_PCD")
    compressed, uncompressed = struct.unpack("<II", body[:8])
    expected = header.points * dtype.itemsize
    if uncompressed != expected:
        raise bad(
            f"the PCD header says {header.points} points ({expected} bytes) but the compressed data unpacks to "
            f"{uncompressed} bytes",
            "PCD_SIZE_MISMATCH",
        )
    if len(body) - 8 < compressed:
        raise bad(f"the PCD compressed data is truncated: {len(body) - 8} of {compressed} bytes", "INVALID_PCD")
    if len(body) - 8 > compressed:
        header.warnings.append(_trailing(len(body) - 8 - compressed))
    if header.points == 0:
        return np.zeros(0, dtype)
    try:
        raw = lzf.decompress(body[8 : 8 + compressed], uncompressed)
    except ValueError:
        raw = None
    if raw is None or len(raw) != uncompressed:
        raise bad("the PCD compressed data is corrupt (LZF decompression failed)", "INVALID_PCD")
    # binary_compressed stores each field's values together (column-major), in FIELDS order.
    out = np.zeros(header.points, dtype)
    offset = 0
    for name in dtype.names or ():
        part = dtype[name]
        count = header.points * (int(np.prod(part.shape)) if part.shape else 1)
        out[name] = np.frombuffer(raw, dtype=part.base, count=count, offset=offset).reshape(out[name].shape)
        offset += part.itemsize * header.points
    return out


def _trailing(count: int) -> str:
    return f"{count} byte{'s' if count > 1 else ''} after the declared points ignored"


def _cloud_info(
    encoding: str, points: npt.NDArray[np.void], fields: list[str], warnings: Sequence[str] = ()
) -> asset_pb2.PointCloudInfo:
    info = asset_pb2.PointCloudInfo(encoding=encoding, point_count=len(points), fields=fields, warnings=warnings)
    if not len(points):
        return info
    # Bounds over the points whose three coordinates are all finite (organised clouds mark gaps with NaN); one
    # column at a time, in the file's own type, so a 10-million-point cloud costs no float64 copies.
    axes = [points[a] for a in ("x", "y", "z")]
    finite = np.isfinite(axes[0]) & np.isfinite(axes[1]) & np.isfinite(axes[2])
    if finite.all():
        lo = [float(axis.min()) for axis in axes]
        hi = [float(axis.max()) for axis in axes]
    elif finite.any():
        lo = [float(axis[finite].min()) for axis in axes]
        hi = [float(axis[finite].max()) for axis in axes]
    else:
        return info
    info.min.CopyFrom(common_pb2.Vector3(x=lo[0], y=lo[1], z=lo[2]))
    info.max.CopyFrom(common_pb2.Vector3(x=hi[0], y=hi[1], z=hi[2]))
    return info


def check_pcd(path: Path) -> Checked:
    header, points = read_pcd(path)
    return Checked("application/x-pcd", _cloud_info(header.data, points, header.fields, header.warnings))


def check_kitti_bin(path: Path) -> Checked:
    """A KITTI-like raw cloud: little-endian float32 x, y, z, intensity per point, nothing else."""
    size = path.stat().st_size
    if size == 0 or size % 16:
        raise bad(
            f"a KITTI-like point cloud is 16 bytes a point (float32 x, y, z, intensity); {size} bytes is "
            + ("empty" if size == 0 else f"{size // 16} points and {size % 16} bytes over"),
            "INVALID_POINT_CLOUD",
        )
    dtype = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
    points = np.memmap(path, dtype=dtype, mode="r", shape=(size // 16,))
    return Checked("application/octet-stream", _cloud_info("kitti_bin", points, ["x", "y", "z", "intensity"]))


# audio -------------------------------------------------------------------------------------------------------------

_WAV_RE: Final = re.compile(rb"^RIFF....WAVE", re.DOTALL)


def check_audio(path: Path) -> Checked:
    with path.open("rb") as fh:
        head = fh.read(12)
    is_wav = bool(_WAV_RE.match(head))
    is_mp3 = head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)
    if not (is_wav or is_mp3):
        raise bad("the audio is neither WAV (RIFF/WAVE) nor MP3 (ID3 tag or MPEG frame sync)", "INVALID_AUDIO")
    try:
        found = mutagen.File(path)
    except mutagen.MutagenError as err:
        raise bad(f"the audio is corrupt: {err}", "INVALID_AUDIO") from None
    if found is None or found.info is None:
        raise bad("the audio could not be read as WAV or MP3", "INVALID_AUDIO")
    info = found.info
    if is_wav:
        _check_wav_data(path)
    facts = asset_pb2.AudioInfo(
        format="wav" if is_wav else "mp3",
        duration_seconds=float(getattr(info, "length", 0.0) or 0.0),
        sample_rate_hz=int(getattr(info, "sample_rate", 0) or 0),
        channels=int(getattr(info, "channels", 0) or 0),
    )
    # The reader takes a header's word for these; audio with no channel or no samples a second holds no sound.
    header = "the WAV fmt chunk" if is_wav else "the MP3 frame header"
    if facts.channels < 1:
        raise bad(f"{header} says {facts.channels} channels; channels must be at least 1", "INVALID_AUDIO")
    if facts.sample_rate_hz < 1:
        raise bad(
            f"{header} says a sample rate of {facts.sample_rate_hz} Hz; the sample rate must be at least 1 Hz",
            "INVALID_AUDIO",
        )
    return Checked("audio/wav" if is_wav else "audio/mpeg", facts)


def _check_wav_data(path: Path) -> None:
    """The data chunk must be all there (a cut-off recording is refused)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(12)
        while True:
            head = fh.read(8)
            if len(head) < 8:
                raise bad("the WAV file has no data chunk", "INVALID_AUDIO")
            chunk, length = struct.unpack("<4sI", head)
            if chunk == b"data":
                if fh.tell() + length > size:
                    raise bad(
                        f"the WAV data chunk says {length} bytes but only {size - fh.tell()} follow (truncated)",
                        "INVALID_AUDIO",
                    )
                return
            fh.seek(length + (length & 1), 1)


# dispatch ----------------------------------------------------------------------------------------------------------


def kind_for(filename: str) -> int:
    """The asset kind a file name suggests (OTHER when it suggests none)."""
    return asset_kind_for(filename)


def check(
    kind: int,
    path: Path,
    *,
    content_type: str = "",
    known_class_ids: Iterable[int] | None = None,
    width: int = 0,
    height: int = 0,
    budget: DecodeBudget | None = None,
) -> Checked:
    """Validate the file at `path` as `kind`; kinds without a reader are stored as given. Images and masks are
    decoded within `budget` (the process's own when not given)."""
    if kind == asset_pb2.ASSET_KIND_IMAGE:
        return check_image(path, budget=budget)
    if kind == asset_pb2.ASSET_KIND_MASK:
        return check_mask(path, known_class_ids=known_class_ids, width=width, height=height, budget=budget)
    if kind == asset_pb2.ASSET_KIND_POINT_CLOUD_PCD:
        return check_pcd(path)
    if kind == asset_pb2.ASSET_KIND_POINT_CLOUD_BIN:
        return check_kitti_bin(path)
    if kind == asset_pb2.ASSET_KIND_AUDIO:
        return check_audio(path)
    return Checked(content_type or "application/octet-stream")
