"""Rules that the SDK checks when a thing is added and the ingest service checks again on every frame (the server
never trusts the client). Each check returns None when the value is fine, else a description of what is wrong."""

from __future__ import annotations

import math
import re
from typing import Final

ID_FORBIDDEN: Final = frozenset("#[]?*,/")
_FORBIDDEN_RE: Final = re.compile(r"[#\[\]?*,/]")
METADATA_KEY_RE: Final = re.compile(r"^[A-Za-z0-9_]+$")
MAX_ID_LENGTH: Final = 1024


def id_problem(value: object) -> str | None:
    """Frame, label, sensor and coordinate-frame ids: non-empty, no `# [ ] ? * , /` and no control characters."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"is longer than {MAX_ID_LENGTH} characters"
    if value.isprintable() and not _FORBIDDEN_RE.search(value):
        return None
    bad = next(c for c in value if c in ID_FORBIDDEN or not c.isprintable())
    return f"{value!r} contains {bad!r}; ids may not contain # [ ] ? * , / or control characters"


def finite_problem(*values: float) -> str | None:
    """All numbers finite (no NaN or infinity)."""
    try:
        if math.isfinite(math.fsum(values)):
            return None
    except (TypeError, OverflowError):
        pass
    for v in values:
        if not isinstance(v, int | float) or isinstance(v, bool):
            return f"must be a number, got {type(v).__name__}"
        if not math.isfinite(v):
            return f"must be finite, got {v}"
    return None


def positive_problem(**sizes: float) -> str | None:
    for name, v in sizes.items():
        if not v > 0:
            return f"{name} must be positive, got {v}"
    return None


def confidence_problem(value: float) -> str | None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        return f"must be in [0, 1], got {value}"
    return None


def polygon_problem(vertices: list[tuple[float, float]]) -> str | None:
    if len(vertices) < 3:
        return f"a polygon needs at least 3 vertices, got {len(vertices)}"
    problem = finite_problem(*(c for v in vertices for c in v))
    if problem:
        return problem
    if len(set(vertices)) != len(vertices):
        repeated = next(v for i, v in enumerate(vertices) if v in vertices[:i])
        return f"vertex {repeated} is repeated"
    return None


def keypoint_names_problem(names: list[str]) -> str | None:
    if any(not n for n in names):
        return "keypoint names must not be empty"
    if len(set(names)) != len(names):
        repeated = next(n for i, n in enumerate(names) if n in names[:i])
        return f"keypoint {repeated!r} is named twice"
    return None


def metadata_key_problem(key: object) -> str | None:
    if not isinstance(key, str) or not METADATA_KEY_RE.fullmatch(key):
        return f"metadata key {key!r} must match ^[A-Za-z0-9_]+$"
    return None


def latlong_problem(lat: float, lon: float) -> str | None:
    problem = finite_problem(lat, lon)
    if problem:
        return problem
    if not -90.0 <= lat <= 90.0:
        return f"latitude must be in [-90, 90], got {lat}"
    if not -180.0 <= lon <= 180.0:
        return f"longitude must be in [-180, 180], got {lon}"
    return None


# Asset kinds (shoal.v1.AssetKind values) that file name extensions suggest.
ASSET_EXTENSIONS: Final = {
    ".png": 1,
    ".jpg": 1,
    ".jpeg": 1,
    ".webp": 1,
    ".pcd": 3,
    ".bin": 4,
    ".wav": 5,
    ".mp3": 5,
    ".mp4": 6,
    ".obj": 7,
}


def asset_kind_for(filename: str) -> int:
    """The AssetKind a file name suggests (OTHER, 8, when it suggests none)."""
    dot = filename.rfind(".")
    return ASSET_EXTENSIONS.get(filename[dot:].lower() if dot >= 0 else "", 8)
