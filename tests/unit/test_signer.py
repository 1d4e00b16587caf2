"""Signed URLs of the local store: valid until their deadline, for their method and key only."""

from __future__ import annotations

import time
import urllib.parse
from datetime import timedelta
from pathlib import Path

from shoal.asset.assets import UrlSigner
from shoal.kit.objectstore import LocalObjectStore
from shoal.storage.assetnames import referenced_asset


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
