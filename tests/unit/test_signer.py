"""Signed URLs of the local store: valid until their deadline, for their method and key only."""

from __future__ import annotations

import time
import urllib.parse
from datetime import timedelta
from pathlib import Path

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
    """`text` with some of its characters percent-encoded, as a URL may carry them."""
    mask = data.draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(urllib.parse.quote(c, safe="") if m else c for c, m in zip(text, mask, strict=True))


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


def test_a_batch_of_the_users_own_urls_is_passed_over() -> None:
    frame = frame_pb2.Frame(frame_id="f1")
    frame.sensors.add(sensor_id="cam").image.url = "s3://their-bucket/images/1.jpg"
    frame.labels.add(label_id="l1", classification="car").semantic_segmentation_2d.mask_url = "https://h/masks/1.png"
    assert not may_reference_assets(ingest_service_pb2.FrameBatch(frames=[frame]).SerializeToString())
