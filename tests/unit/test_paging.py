"""Page tokens and sizes: every listing's tokens round-trip, and a token this server did not issue (or one issued for
another kind of listing) is INVALID_ARGUMENT naming the field, never an internal error."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shoal.kit import paging
from shoal.kit.errors import InvalidArgument


@given(st.integers(min_value=0, max_value=2**40))
def test_offsets_round_trip(position: int) -> None:
    assert paging.offset_of(paging.offset_token(position)) == position


@given(st.integers(min_value=0, max_value=2**31), st.text(max_size=40))
def test_payloads_round_trip(version: int, after: str) -> None:
    payload = {"version": version, "after": after}
    assert paging.payload_of(paging.payload_token(payload)) == payload


def test_no_token_is_the_first_page() -> None:
    assert paging.offset_of("") == 0
    assert paging.payload_of("") == {}


@pytest.mark.parametrize(
    "token",
    [
        "%%%",
        "not base64!",
        base64.urlsafe_b64encode(b"o-3").decode(),  # a negative position
        base64.urlsafe_b64encode(b"oten").decode(),
        base64.urlsafe_b64encode(b'{"offset": 3}').decode(),  # the shape older servers issued
        paging.payload_token({"after": "f1"}),  # a token of a listing that resumes after a key
    ],
)
def test_offsets_refuse_tokens_not_issued_for_them(token: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        paging.offset_of(token, "page_token")
    assert info.value.reason == "INVALID_PAGE_TOKEN"
    assert [v.field for v in info.value.violations] == ["page_token"]


@pytest.mark.parametrize(
    "token",
    [
        "%%%",
        paging.offset_token(3),
        base64.urlsafe_b64encode(b"p[1, 2]").decode(),
        base64.urlsafe_b64encode(b"p{").decode(),
    ],
)
def test_payloads_refuse_tokens_not_issued_for_them(token: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        paging.payload_of(token)
    assert info.value.reason == "INVALID_PAGE_TOKEN"


def test_page_sizes() -> None:
    assert paging.page_size(0) == paging.DEFAULT_PAGE
    assert paging.page_size(7) == 7
    assert paging.page_size(10**9) == paging.MAX_PAGE
    assert paging.page_size(10**9, cap=100_000) == 100_000  # a listing of small items may allow more
    assert paging.page_size(0, cap=100_000) == paging.DEFAULT_PAGE
    with pytest.raises(InvalidArgument) as info:
        paging.page_size(-1, "batch_size")
    assert [v.field for v in info.value.violations] == ["batch_size"]
