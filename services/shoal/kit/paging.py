"""Page tokens for listings that page by position: opaque to callers, checked when they come back."""

from __future__ import annotations

import base64
import binascii

from shoal.kit.errors import FieldViolation, InvalidArgument


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
        raise InvalidArgument.of(
            [FieldViolation(field, "not a token this server issued")], reason="INVALID_PAGE_TOKEN"
        ) from None
    if position < 0:
        raise InvalidArgument.of([FieldViolation(field, "not a token this server issued")], reason="INVALID_PAGE_TOKEN")
    return position
