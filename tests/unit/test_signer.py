"""Signed URLs of the local store: valid until their deadline, for their method and key only."""

from __future__ import annotations

import struct
import time
import urllib.parse
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shoal.asset.assets import UrlSigner
from shoal.kit.objectstore import LocalObjectStore
from shoal.storage.assetnames import may_reference_assets, referenced_asset
from shoal.v1 import frame_pb2, ingest_service_pb2


def test_signatures_bind_method_key_and_deadline(tmp_path: Path) -> None:
    signer = UrlSigner(LocalObjectStore(tmp_path), b"secret", "http://h:1")
    url, _ = signer.sign("GET", "assets/p/d/blobs/x", timedelta(minutes=5))
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert signer.verify("GET", "assets/p/d/blobs/x", query["expires"], query["signature"])
    assert not signer.verify("PUT", "assets/p/d/blobs/x", query["expires"], query["signature"])
    assert not signer.verify("GET", "assets/p/d/blobs/y", query["expires"], query["signature"])
    assert not signer.verify("GET", "assets/p/d/blobs/x", str(int(query["expires"]) + 1), query["signature"])
    past = int(time.time()) - 1
    assert not signer.verify("GET", "k", str(past), signer.signature("GET", "k", past))
    other = UrlSigner(LocalObjectStore(tmp_path), b"other", "http://h:1")
    assert not other.verify("GET", "assets/p/d/blobs/x", query["expires"], query["signature"])


def test_frames_refer_to_assets_by_uri_or_by_url() -> None:
    sha = "ab" * 32
    assert str(referenced_asset(f"shoal://projects/p/datasets/d/assets/{sha}")) == f"projects/p/datasets/d/assets/{sha}"
    signed = f"http://127.0.0.1:9/blobs/assets/p/d/blobs/{sha}?expires=1&signature=x"
    assert referenced_asset(signed) == referenced_asset(f"https://s3.example/bucket/pre/assets/p/d/blobs/{sha}?X=1")
    assert referenced_asset("s3://their-bucket/images/1.jpg") is None
    assert referenced_asset(f"shoal://projects/p/datasets/d/assets/{sha[:-1]}") is None


_SHA = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
_ID = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
_PLAIN = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="%"), max_size=30)


def _quoted(text: str, data: st.DataObject) -> str:
    """`text` with some of its characters percent-encoded (letters and digits too, in either case of hex), as a URL
    may carry them."""
    out = []
    for c in text:
        if data.draw(st.booleans()):
            escape = "".join(f"%{b:02x}" for b in c.encode())
            out.append(escape.upper() if data.draw(st.booleans()) else escape)
        else:
            out.append(c)
    return "".join(out)


@given(project=_ID, dataset=_ID, sha=_SHA, before=_PLAIN, after=_PLAIN, data=st.data())
def test_a_batch_that_points_to_an_asset_is_never_passed_over(
    project: str, dataset: str, sha: str, before: str, after: str, data: st.DataObject
) -> None:
    """The scan of a batch's bytes that spares ingest walking its frames for asset URLs says True for every batch
    holding a URL `referenced_asset` takes, however the URL is written (percent-encoded in places, in any field)."""
    path = _quoted(f"assets/{project}/{dataset}/blobs/{sha}", data)
    url = data.draw(
        st.sampled_from(
            [
                f"shoal://projects/{project}/datasets/{dataset}/assets/{sha}",
                f"https://s3.example/bucket/{path}",
                f"http://127.0.0.1:9/blobs/{path}?expires=1&signature=x",
                f"s3://bucket/{path}",
            ]
        )
    )
    assert referenced_asset(url) is not None
    frame = frame_pb2.Frame(frame_id="f1")
    frame.user_metadata["note"].string_value = before + after
    where = data.draw(st.sampled_from(["image", "mask"]))
    if where == "image":
        frame.sensors.add(sensor_id="cam").image.url = url
    else:
        frame.labels.add(label_id="l1", classification="car").semantic_segmentation_2d.mask_url = url
    batch = ingest_service_pb2.FrameBatch(seq=0, frames=[frame])
    assert may_reference_assets(batch.SerializeToString(deterministic=True))


@pytest.mark.parametrize("upper", [False, True])
@pytest.mark.parametrize("position", range(len("/blobs/")))
def test_a_blob_key_with_one_character_escaped_is_never_passed_over(position: int, upper: bool) -> None:
    escape = f"%{ord('/blobs/'[position]):02x}"
    hidden = "/blobs/"[:position] + (escape.upper() if upper else escape) + "/blobs/"[position + 1 :]
    url = f"https://s3.example/bucket/assets/p/d{hidden}{'ab' * 32}"
    assert referenced_asset(url) is not None
    frame = frame_pb2.Frame(frame_id="f1")
    frame.sensors.add(sensor_id="cam").image.url = url
    assert may_reference_assets(ingest_service_pb2.FrameBatch(frames=[frame]).SerializeToString())


def test_a_batch_of_the_users_own_urls_is_passed_over() -> None:
    frame = frame_pb2.Frame(frame_id="f1")
    frame.sensors.add(sensor_id="cam").image.url = "s3://their-bucket/images/1%20a.jpg"
    frame.labels.add(label_id="l1", classification="car").semantic_segmentation_2d.mask_url = "https://h/masks/1.png"
    # An embedding whose float bytes hold `%`, some of it followed by what reads as hex.
    frame.embedding.values.extend(struct.unpack("<3f", b"%%%%%20xa%7E"))
    raw = ingest_service_pb2.FrameBatch(frames=[frame]).SerializeToString()
    assert b"%" in raw
    assert not may_reference_assets(raw)
    # Bytes that read as an escape of a character of `/blobs/` are taken as one: the scan errs only one way.
    frame.embedding.values[0] = struct.unpack("<f", b"%2fx")[0]
    assert may_reference_assets(ingest_service_pb2.FrameBatch(frames=[frame]).SerializeToString())
