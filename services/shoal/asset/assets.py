"""Assets: content-addressed blobs of one dataset, validated before they are stored.

Layout in the object store (keys are built here, never from client paths):

    assets/{project}/{dataset}/blobs/{sha256}           the bytes
    assets/{project}/{dataset}/previews/{sha256}.jpg    an image's preview
    assets/{project}/{dataset}/records/{sha256}.json    the Asset resource (kind, facts, file name, time)
    assets/{project}/{dataset}/staging/{upload_id}      a direct (presigned) upload before it is checked
    assets/{project}/{dataset}/staging/{upload_id}.json what CreateUploadUrl was told about it

An upload is spooled to a local file while its SHA-256 is computed, checked there, and only then copied into the
store: blob, then preview, then the record (create-only), so a record always points at whole bytes and a failed
upload leaves nothing behind. The same bytes uploaded twice to a dataset are stored once.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from google.protobuf import json_format

from shoal.asset import formats
from shoal.kit.errors import FieldViolation, InvalidArgument, NotFound
from shoal.kit.names import DatasetName, parse_dataset
from shoal.kit.objectstore import LocalObjectStore, ObjectStore, WriteConflict
from shoal.storage.assetnames import AssetName, parse_asset
from shoal.storage.catalog import Catalog
from shoal.v1 import asset_pb2, asset_service_pb2

CHUNK: Final = 1 << 20
MAX_TTL: Final = timedelta(days=7)  # the longest an S3 presigned URL may last
SHA_RE: Final = re.compile(r"^[0-9a-f]{64}$")


def _dataset_prefix(dataset: DatasetName) -> str:
    return f"assets/{dataset.project}/{dataset.dataset}"


# signed URLs -------------------------------------------------------------------------------------------------------


class UrlSigner:
    """Signed GET and PUT URLs for store keys: S3 presigning on S3, HMAC-signed URLs of the asset service's own
    HTTP endpoint on a local directory."""

    def __init__(self, store: ObjectStore, secret: bytes, public_url: str) -> None:
        self.store = store
        self.secret = secret
        self.public_url = public_url.rstrip("/")
        self.local = isinstance(store, LocalObjectStore)

    def signature(self, method: str, key: str, expires: int) -> str:
        return hmac.new(self.secret, f"{method}\n{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def verify(self, method: str, key: str, expires: str, signature: str) -> bool:
        try:
            deadline = int(expires)
        except ValueError:
            return False
        good = self.signature(method, key, deadline)
        return hmac.compare_digest(good, signature) and deadline >= int(time.time())

    def sign(self, method: str, key: str, ttl: timedelta) -> tuple[str, datetime]:
        ttl = min(max(ttl, timedelta(seconds=1)), MAX_TTL)
        expire = datetime.now(UTC) + ttl
        if not self.local:
            url = self.store.presign_get(key, ttl) if method == "GET" else self.store.presign_put(key, ttl)
            return url, expire
        deadline = int(expire.timestamp())
        query = urllib.parse.urlencode({"expires": deadline, "signature": self.signature(method, key, deadline)})
        return f"{self.public_url}/blobs/{urllib.parse.quote(key)}?{query}", expire


# spooling ----------------------------------------------------------------------------------------------------------


class Spool:
    """An upload on its way in: written to a local file, hashed and counted, refused past `limit` bytes."""

    def __init__(self, directory: str | None, limit: int) -> None:
        fd, name = tempfile.mkstemp(prefix="shoal-asset-", dir=directory)
        self.path = Path(name)
        self._fh = os.fdopen(fd, "wb")
        self.limit = limit
        self.size = 0
        self.sha = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise InvalidArgument.of(
                [FieldViolation("content", f"the upload is larger than the {self.limit:,}-byte limit")],
                reason="ASSET_TOO_LARGE",
            )
        self.sha.update(chunk)
        self._fh.write(chunk)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


# the service's domain ----------------------------------------------------------------------------------------------


class Assets:
    def __init__(
        self,
        store: ObjectStore,
        signer: UrlSigner,
        *,
        max_bytes: int,
        url_ttl: timedelta,
        spool_dir: str | None = None,
        decode_budget: formats.DecodeBudget | None = None,
    ) -> None:
        self.store = store
        self.catalog = Catalog(store)
        self.signer = signer
        self.max_bytes = max_bytes
        self.url_ttl = url_ttl
        self.spool_dir = spool_dir
        # Shared by every upload this service checks: decoded images never add up to more than its limit.
        self.decode_budget = decode_budget or formats.DEFAULT_BUDGET

    def spool(self) -> Spool:
        return Spool(self.spool_dir, self.max_bytes)

    # checks and storing ------------------------------------------------------------------------------------------

    def header_dataset(self, header: asset_service_pb2.AssetUploadHeader) -> DatasetName:
        dataset = parse_dataset(header.parent, "header.parent")
        if header.size_bytes < 0 or header.size_bytes > self.max_bytes:
            raise InvalidArgument.of(
                [FieldViolation("header.size_bytes", f"must be between 0 and the {self.max_bytes:,}-byte limit")],
                reason="ASSET_TOO_LARGE" if header.size_bytes > 0 else "INVALID_ARGUMENT",
            )
        if header.sha256 and not SHA_RE.fullmatch(header.sha256):
            raise InvalidArgument.of([FieldViolation("header.sha256", "must be 64 lower-case hex digits")])
        return dataset

    def finish(self, header: asset_service_pb2.AssetUploadHeader, spool: Spool) -> asset_pb2.Asset:
        """Check a spooled upload against its header and its format, then store it (unless `validate_only`)."""
        dataset = self.header_dataset(header)
        self.catalog.get_dataset(dataset)
        spool.close()
        sha = spool.sha.hexdigest()
        if header.size_bytes and header.size_bytes != spool.size:
            raise InvalidArgument.of(
                [FieldViolation("header.size_bytes", f"declared {header.size_bytes} bytes, received {spool.size}")],
                reason="SIZE_MISMATCH",
            )
        if header.sha256 and header.sha256 != sha:
            raise InvalidArgument.of(
                [FieldViolation("header.sha256", f"declared {header.sha256}, the content hashes to {sha}")],
                reason="CHECKSUM_MISMATCH",
            )
        if spool.size == 0:
            raise InvalidArgument.of([FieldViolation("content", "the upload is empty")], reason="EMPTY_ASSET")
        known = None
        if header.kind == asset_pb2.ASSET_KIND_MASK:
            project = self.catalog.get_project(dataset.parent)
            known = [c.class_id for c in project.class_map.entries]
        checked = formats.check(
            header.kind,
            spool.path,
            content_type=header.content_type,
            known_class_ids=known,
            width=header.expected_width,
            height=header.expected_height,
            budget=self.decode_budget,
        )
        name = AssetName(dataset.project, dataset.dataset, sha)
        asset = asset_pb2.Asset(
            name=str(name),
            sha256=sha,
            size_bytes=spool.size,
            content_type=checked.content_type,
            kind=header.kind,
            filename=os.path.basename(header.filename)[:255],
        )
        _set_info(asset, checked.info)
        asset.create_time.GetCurrentTime()
        if header.validate_only:
            return asset
        stored = self._store(name, asset, spool.path, checked.preview)
        return self._with_urls(stored)

    def _store(self, name: AssetName, asset: asset_pb2.Asset, path: Path, preview: bytes | None) -> asset_pb2.Asset:
        existing = self._record(name)
        if existing is not None:
            return existing  # the same bytes, stored before: stored once
        self.store.put_stream(name.blob, _file_chunks(path), asset.content_type)
        if preview is not None:
            self.store.put(name.preview, preview, "image/jpeg")
        body = json_format.MessageToJson(asset).encode()
        with contextlib.suppress(WriteConflict):  # a concurrent upload of the same bytes stored it first
            self.store.put_if(name.record, body, "application/json", etag=None)
        found = self._record(name)
        if found is None:
            raise NotFound(f"{name} vanished while it was stored", reason="ASSET_NOT_FOUND")
        return found

    def _record(self, name: AssetName) -> asset_pb2.Asset | None:
        try:
            raw = self.store.get(name.record)
        except NotFound:
            return None
        return json_format.Parse(raw, asset_pb2.Asset(), ignore_unknown_fields=True)

    def _with_urls(self, asset: asset_pb2.Asset, ttl: timedelta | None = None) -> asset_pb2.Asset:
        name = parse_asset(asset.name)
        asset.url = self.signer.sign("GET", name.blob, ttl or self.url_ttl)[0]
        if asset.kind == asset_pb2.ASSET_KIND_IMAGE:
            asset.preview_url = self.signer.sign("GET", name.preview, ttl or self.url_ttl)[0]
        return asset

    # direct uploads ------------------------------------------------------------------------------------------------

    def create_upload_url(
        self, header: asset_service_pb2.AssetUploadHeader, ttl: timedelta
    ) -> asset_service_pb2.CreateUploadUrlResponse:
        dataset = self.header_dataset(header)
        self.catalog.get_dataset(dataset)
        upload_id = uuid.uuid4().hex
        staging = f"{_dataset_prefix(dataset)}/staging/{upload_id}"
        self.store.put(staging + ".json", json_format.MessageToJson(header).encode(), "application/json")
        url, expire = self.signer.sign("PUT", staging, ttl or self.url_ttl)
        response = asset_service_pb2.CreateUploadUrlResponse(url=url, upload_id=upload_id)
        response.expire_time.FromDatetime(expire)
        return response

    def complete_direct_upload(self, parent: str, upload_id: str) -> asset_pb2.Asset:
        dataset = parse_dataset(parent, "parent")
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id):
            raise InvalidArgument.of([FieldViolation("upload_id", "not an id CreateUploadUrl returned")])
        staging = f"{_dataset_prefix(dataset)}/staging/{upload_id}"
        try:
            header = json_format.Parse(self.store.get(staging + ".json"), asset_service_pb2.AssetUploadHeader())
        except NotFound:
            raise NotFound(f"no direct upload {upload_id} in {dataset}", reason="UPLOAD_NOT_FOUND") from None
        header.validate_only = False
        try:
            with self.spool() as spool:
                try:
                    for chunk in self.store.iter_range(staging):
                        spool.write(chunk)
                except NotFound:
                    raise InvalidArgument.of(
                        [FieldViolation("upload_id", "nothing was uploaded to the URL yet")], reason="NOTHING_UPLOADED"
                    ) from None
                return self.finish(header, spool)
        finally:
            # Checked and stored, or refused: the staged bytes go either way (a refused file is not kept).
            self.store.delete(staging)
            self.store.delete(staging + ".json")

    # reads ---------------------------------------------------------------------------------------------------------

    def get(self, name: AssetName) -> asset_pb2.Asset:
        found = self._record(name)
        if found is None:
            raise NotFound(f"{name} does not exist", reason="ASSET_NOT_FOUND", metadata={"name": str(name)})
        return self._with_urls(found)

    def read(self, name: AssetName, offset: int, length: int) -> Iterator[bytes]:
        if offset < 0 or length < 0:
            raise InvalidArgument.of([FieldViolation("offset" if offset < 0 else "length", "must not be negative")])
        asset = self.get(name)
        if offset > asset.size_bytes:
            raise InvalidArgument.of(
                [FieldViolation("offset", f"is past the end of the {asset.size_bytes}-byte asset")],
                reason="INVALID_RANGE",
            )
        return self.store.iter_range(name.blob, offset, length, CHUNK)

    def list(self, dataset: DatasetName, page_size: int, page_token: str) -> tuple[list[asset_pb2.Asset], str]:
        if page_size < 0:
            raise InvalidArgument.of([FieldViolation("page_size", "must not be negative")])
        self.catalog.get_dataset(dataset)
        page = self.store.list(f"{_dataset_prefix(dataset)}/records/", min(page_size or 100, 1000), page_token)
        out = []
        for obj in page.objects:
            try:
                raw = self.store.get(obj.key)
            except NotFound:
                continue  # deleted since the listing
            out.append(self._with_urls(json_format.Parse(raw, asset_pb2.Asset(), ignore_unknown_fields=True)))
        return out, page.next_page_token

    def delete(self, name: AssetName) -> None:
        if self._record(name) is None:
            raise NotFound(f"{name} does not exist", reason="ASSET_NOT_FOUND", metadata={"name": str(name)})
        # The record goes first: from then on the asset does not exist, whatever happens to the bytes.
        self.store.delete(name.record)
        self.store.delete(name.preview)
        self.store.delete(name.blob)

    def sign(self, name: AssetName, ttl: timedelta) -> tuple[str, datetime]:
        self.get(name)
        return self.signer.sign("GET", name.blob, ttl or self.url_ttl)

    def kinds(self, names: Iterable[AssetName]) -> dict[AssetName, int | None]:
        """The kind of each named asset (None where it does not exist)."""
        out: dict[AssetName, int | None] = {}
        for name in names:
            record = self._record(name)
            out[name] = None if record is None else record.kind
        return out


def _set_info(asset: asset_pb2.Asset, info: formats.Info | None) -> None:
    if isinstance(info, asset_pb2.ImageInfo):
        asset.image.CopyFrom(info)
    elif isinstance(info, asset_pb2.MaskInfo):
        asset.mask.CopyFrom(info)
    elif isinstance(info, asset_pb2.PointCloudInfo):
        asset.point_cloud.CopyFrom(info)
    elif isinstance(info, asset_pb2.AudioInfo):
        asset.audio.CopyFrom(info)
