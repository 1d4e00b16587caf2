"""Page tokens and page sizes for every listing: tokens are opaque to callers and checked when they come back (a
token this server did not issue is INVALID_ARGUMENT naming the field, never an internal error)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Final

from shoal.kit.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE: Final = 100
MAX_PAGE: Final = 1000


def not_issued(field: str = "page_token") -> InvalidArgument:
    """The error for a page token this server did not issue (or issued for another listing)."""
    return InvalidArgument.of([FieldViolation(field, "not a token this server issued")], reason="INVALID_PAGE_TOKEN")


def page_size(size: int, field: str = "page_size", *, cap: int = MAX_PAGE) -> int:
    """The page size a request asks for: DEFAULT_PAGE for 0, at most `cap` (MAX_PAGE unless a listing sets its own:
    more for small items, fewer for costly ones); INVALID_ARGUMENT when negative."""
    if size < 0:
        raise InvalidArgument.of([FieldViolation(field, "must not be negative")])
    return DEFAULT_PAGE if size == 0 else min(size, cap)


def offset_token(position: int) -> str:
    """The token of the page that starts at `position`."""
    return base64.urlsafe_b64encode(f"o{position}".encode()).decode()


def offset_of(token: str, field: str = "page_token") -> int:
    """The position a token names; 0 for no token. INVALID_ARGUMENT for a token this server did not issue."""
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if not text.startswith("o"):
            raise ValueError(text)
        position = int(text[1:])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise not_issued(field) from None
    if position < 0:
        raise not_issued(field)
    return position


def payload_token(payload: Mapping[str, object]) -> str:
    """The token of a page that starts where `payload` says (a listing that resumes after a key, not a position)."""
    return base64.urlsafe_b64encode(b"p" + json.dumps(dict(payload), sort_keys=True).encode()).decode()


def payload_of(token: str, field: str = "page_token") -> dict[str, object]:
    """The payload a `payload_token` carries; empty for no token. INVALID_ARGUMENT for a token this server did not
    issue."""
    if not token:
        return {}
    try:
        raw = base64.urlsafe_b64decode(token.encode())
        data = json.loads(raw[1:]) if raw.startswith(b"p") else None
    except (binascii.Error, ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise not_issued(field)
    return data
