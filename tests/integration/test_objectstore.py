"""One contract, two adapters: the same tests run against a local directory and moto's S3 server."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from shoal.kit.errors import InvalidArgument, Unavailable
from shoal.kit.objectstore import (
    LocalObjectStore,
    ObjectNotFound,
    ObjectStore,
    S3ObjectStore,
    WriteConflict,
    open_store,
)
from shoal.kit.settings import StoreSettings

from tests.conftest import S3Server, free_port, unique

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield LocalObjectStore(tmp_path / "store")
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        yield open_store(s3.store_settings(unique("bucket")))


def test_put_get_stat_roundtrip(store: ObjectStore) -> None:
    data = os.urandom(10_000)
    info = store.put("a/b/blob.bin", data)
    assert info.size == len(data)
    assert store.get("a/b/blob.bin") == data
    stat = store.stat("a/b/blob.bin")
    assert stat.size == len(data)
    assert stat.etag == info.etag
    assert store.exists("a/b/blob.bin")


def test_etag_changes_with_content_and_only_with_content(store: ObjectStore) -> None:
    first = store.put("k.json", b'{"v": 1}').etag
    assert store.put("k.json", b'{"v": 1}').etag == first
    assert store.put("k.json", b'{"v": 2}').etag != first
    assert store.get("k.json") == b'{"v": 2}'


def test_missing_object_is_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound) as info:
        store.get("nope/missing.bin")
    assert info.value.reason == "OBJECT_NOT_FOUND"
    with pytest.raises(ObjectNotFound):
        store.stat("nope/missing.bin")
    assert not store.exists("nope/missing.bin")


def test_ranged_reads(store: ObjectStore) -> None:
    data = bytes(range(256)) * 40
    store.put("r.bin", data)
    assert store.get_range("r.bin", 0, 10) == data[:10]
    assert store.get_range("r.bin", 1000, 300) == data[1000:1300]
    assert store.get_range("r.bin", len(data) - 5, 100) == data[-5:]
    assert store.get_range("r.bin", len(data) + 10, 5) == b""
    assert b"".join(store.iter_range("r.bin", 500, chunk_size=77)) == data[500:]
    with pytest.raises(InvalidArgument):
        store.get_range("r.bin", -1, 5)


def test_streamed_put_of_many_chunks_without_length(store: ObjectStore) -> None:
    # 24 MiB in 1 MiB chunks: more than one 16 MiB multipart part on S3.
    chunk = os.urandom(1024 * 1024)
    digest = hashlib.sha256()
    for _ in range(24):
        digest.update(chunk)
    info = store.put_stream("big/cloud.pcd", (chunk for _ in range(24)))
    assert info.size == 24 * len(chunk)
    streamed = hashlib.sha256()
    for part in store.iter_range("big/cloud.pcd"):
        streamed.update(part)
    assert streamed.hexdigest() == digest.hexdigest()


def test_list_is_ordered_prefixed_and_paged(store: ObjectStore) -> None:
    keys = [f"ds/batches/{i:04d}.arrow" for i in range(23)] + ["ds/other/x", "elsewhere/y"]
    for key in keys:
        store.put(key, key.encode())
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = store.list("ds/batches/", page_size=10, page_token=token)
        pages += 1
        seen += [o.key for o in page.objects]
        assert all(o.size > 0 for o in page.objects)
        if not page.next_page_token:
            break
        token = page.next_page_token
    assert seen == sorted(k for k in keys if k.startswith("ds/batches/"))
    assert pages == 3
    assert [o.key for o in store.iter_all("ds/")] == sorted(k for k in keys if k.startswith("ds/"))
    with pytest.raises(InvalidArgument):
        store.list("ds/", page_token="%%%not-a-token")


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put("d/x.bin", b"x")
    store.delete("d/x.bin")
    store.delete("d/x.bin")
    assert not store.exists("d/x.bin")
    assert [o.key for o in store.iter_all("d/")] == []


@pytest.mark.parametrize(
    "key", ["", "/abs", "a/../b", "a//b", "a/./b", "sp ace", "semi;colon", ".shoal-tmp/x", "back\\slash"]
)
def test_bad_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidArgument):
        store.put(key, b"x")


def test_presigned_get_reads_without_credentials(store: ObjectStore) -> None:
    store.put("p/signed.txt", b"hello")
    url = store.presign_get("p/signed.txt", timedelta(minutes=5))
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.read() == b"hello"


def test_check_passes_on_a_reachable_store(store: ObjectStore) -> None:
    store.check()


def test_presigned_put_uploads_without_credentials(s3_server: S3Server) -> None:
    store = open_store(s3_server.store_settings(unique("bucket")))
    url = store.presign_put("direct/upload.bin", timedelta(minutes=5))
    headers = {"Content-Type": "application/octet-stream"}
    request = urllib.request.Request(url, data=b"direct bytes", method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=5):
        pass
    assert store.get("direct/upload.bin") == b"direct bytes"


def test_presigned_urls_name_the_public_endpoint(s3_server: S3Server) -> None:
    """Services reach the store at one address, clients at another: URLs are signed for the clients' one."""
    bucket = unique("bucket")
    public = s3_server.endpoint.replace("127.0.0.1", "localhost")
    settings = dataclasses.replace(s3_server.store_settings(bucket), s3_public_endpoint=public)
    store = open_store(settings)
    store.put("p/public.txt", b"seen from outside")
    url = store.presign_get("p/public.txt", timedelta(minutes=5))
    assert url.startswith(public + f"/{bucket}/p/public.txt?")
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.read() == b"seen from outside"
    put_url = store.presign_put("p/direct.bin", timedelta(minutes=5))
    assert put_url.startswith(public + "/")
    request = urllib.request.Request(
        put_url, data=b"up", method="PUT", headers={"Content-Type": "application/octet-stream"}
    )
    with urllib.request.urlopen(request, timeout=5):
        pass
    assert store.get("p/direct.bin") == b"up"


def test_prefix_scopes_keys_within_a_bucket(s3_server: S3Server) -> None:
    bucket = unique("bucket")
    one = open_store(s3_server.store_settings(bucket + "/tenant-one"))
    two = open_store(s3_server.store_settings(bucket + "/tenant-two"))
    one.put("k", b"1")
    two.put("k", b"2")
    assert one.get("k") == b"1"
    assert two.get("k") == b"2"
    assert [o.key for o in one.iter_all()] == ["k"]


def test_unreachable_s3_is_unavailable_fast() -> None:
    store = S3ObjectStore(
        f"http://127.0.0.1:{free_port()}", access_key="a", secret_key="b", bucket="nothing", connect_timeout=0.5
    )
    with pytest.raises(Unavailable) as info:
        store.put("k", b"x")
    assert info.value.reason == "STORE_UNAVAILABLE"
    with pytest.raises(Unavailable):
        store.check()


def test_open_store_understands_file_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = open_store(StoreSettings(url=(tmp_path / "abs").as_uri()))
    assert isinstance(absolute, LocalObjectStore)
    assert absolute.root == (tmp_path / "abs").resolve()
    monkeypatch.chdir(tmp_path)
    relative = open_store(StoreSettings(url="file://./rel/store"))
    assert isinstance(relative, LocalObjectStore)
    assert relative.root == (tmp_path / "rel" / "store").resolve()


def test_conditional_create_and_update(store: ObjectStore) -> None:
    first = store.put_if("catalog/p.json", b'{"v": 1}', etag=None)
    with pytest.raises(WriteConflict):
        store.put_if("catalog/p.json", b'{"v": 9}', etag=None)
    second = store.put_if("catalog/p.json", b'{"v": 2}', etag=first.etag)
    with pytest.raises(WriteConflict) as info:
        store.put_if("catalog/p.json", b'{"v": 3}', etag=first.etag)
    assert info.value.reason == "WRITE_CONFLICT"
    assert store.get("catalog/p.json") == b'{"v": 2}'
    store.put_if("catalog/p.json", b'{"v": 3}', etag=second.etag)
    with pytest.raises(WriteConflict):
        store.put_if("catalog/missing.json", b"x", etag=second.etag)


def test_a_read_with_its_etag_is_one_version_of_the_object(store: ObjectStore) -> None:
    """The bytes and the etag come from one read: the etag is the one `stat` gives for those bytes, a `put_if` under
    it succeeds while nobody wrote meanwhile and conflicts once somebody did."""
    first = store.put("catalog/d.json", b'{"v": 1}')
    body, etag = store.get_with_etag("catalog/d.json")
    assert (body, etag) == (b'{"v": 1}', first.etag)
    assert etag == store.stat("catalog/d.json").etag
    store.put("catalog/d.json", b'{"v": 2}')
    with pytest.raises(WriteConflict):
        store.put_if("catalog/d.json", b'{"v": 3}', etag=etag)
    body, etag = store.get_with_etag("catalog/d.json")
    assert body == b'{"v": 2}'
    store.put_if("catalog/d.json", b'{"v": 3}', etag=etag)
    assert store.get_with_etag("catalog/d.json")[0] == b'{"v": 3}'
    big = os.urandom(3 * 1024 * 1024)  # more than one chunk of a streamed read
    info = store.put("catalog/big.bin", big)
    assert store.get_with_etag("catalog/big.bin") == (big, info.etag)
    with pytest.raises(ObjectNotFound):
        store.get_with_etag("catalog/missing.json")


def test_concurrent_conditional_updates_lose_nothing(store: ObjectStore) -> None:
    """Eight writers increment one counter with read-modify-write under etags: every increment lands."""
    import json
    import threading

    store.put_if("counter.json", b'{"n": 0}', etag=None)

    def bump(times: int) -> None:
        done = 0
        while done < times:
            body, etag = store.get_with_etag("counter.json")
            value = json.loads(body)
            try:
                store.put_if("counter.json", json.dumps({"n": value["n"] + 1}).encode(), etag=etag)
            except WriteConflict:
                continue
            done += 1

    threads = [threading.Thread(target=bump, args=(5,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert json.loads(store.get("counter.json")) == {"n": 40}


def test_an_approximate_index_round_trips_through_the_s3_server(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The approximate index of a version is written as a stream and read back in ranges from a real S3 server
    (chunks smaller than the file, so both span several requests); deleting it leaves nothing."""
    import numpy as np
    from shoal.embedding import approximate, compute

    monkeypatch.setattr(approximate, "CHUNK", 64 * 1024)
    store = open_store(s3_server.store_settings(unique("bucket")))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4000, 32)).astype(np.float32)
    made = approximate.build(x, compute.EUCLIDEAN)
    name = "projects/p/datasets/d/versions/2/indexes/frame"
    approximate.save(store, name, 11, made)
    assert made.info.size_bytes > 4 * approximate.CHUNK
    back = approximate.load(store, name, 11, metric=compute.EUCLIDEAN, rows=4000, dimension=32)
    assert back is not None
    assert back.info == made.info
    np.testing.assert_array_equal(back.search(x[:20], 5)[1], made.search(x[:20], 5)[1])
    approximate.delete(store, name, 11)
    assert not [o.key for o in store.iter_all("indexes/")]
