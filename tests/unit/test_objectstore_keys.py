"""Property tests of the object-store helpers that every adapter shares."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shoal.kit.errors import InvalidArgument
from shoal.kit.objectstore import _decode_token, _encode_token, check_key

segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.=", min_size=1, max_size=20).filter(
    lambda s: s not in {".", ".."}
)


@given(st.lists(segment, min_size=1, max_size=6).filter(lambda parts: parts[0] != ".shoal-tmp"))
def test_well_formed_keys_pass(parts: list[str]) -> None:
    key = "/".join(parts)
    assert check_key(key) == key


def test_the_store_scratch_folder_is_reserved() -> None:
    with pytest.raises(InvalidArgument):
        check_key(".shoal-tmp/x")


@given(st.lists(segment, min_size=1, max_size=4), st.sampled_from(["..", ".", ""]), st.integers(0, 4))
def test_traversal_and_empty_segments_fail(parts: list[str], bad: str, where: int) -> None:
    parts.insert(min(where, len(parts)), bad)
    with pytest.raises(InvalidArgument):
        check_key("/".join(parts))


@given(st.text(min_size=1).filter(lambda s: any(ord(c) < 32 or c in ' \\#?[]"' for c in s)))
def test_control_and_special_characters_fail(key: str) -> None:
    with pytest.raises(InvalidArgument):
        check_key(key)


@given(st.text(max_size=200))
def test_page_tokens_roundtrip(key: str) -> None:
    assert _decode_token(_encode_token(key)) == key


def test_a_trailing_newline_is_no_loophole() -> None:
    from shoal.kit.names import check_id, parse_dataset
    from shoal.storage.assetnames import parse_asset

    for call in (
        lambda: check_key("a/b\n"),
        lambda: check_id("abc\n", "id"),
        lambda: parse_dataset("projects/p/datasets/d\n"),
        lambda: parse_asset("projects/p/datasets/d/assets/" + "a" * 64 + "\n"),
    ):
        with pytest.raises(InvalidArgument):
            call()
