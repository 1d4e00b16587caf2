"""AssetService servicer: proto ⇄ domain (see assets.py). Every RPC checks the caller's key against the asset's
project, so a key for one project can neither read nor list another's."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

from google.protobuf import empty_pb2

from shoal.asset.assets import Assets, UrlSigner
from shoal.asset.formats import DecodeBudget
from shoal.asset.http import BlobServer
from shoal.kit import auth
from shoal.kit.bootstrap import Runtime
from shoal.kit.errors import FieldViolation, InvalidArgument
from shoal.kit.names import parse_dataset
from shoal.kit.objectstore import LocalObjectStore
from shoal.kit.server import Service
from shoal.storage.assetnames import parse_asset
from shoal.v1 import asset_pb2, asset_service_pb2, asset_service_pb2_grpc

Ctx = Any


def signing_secret(url_signing_key: str, admin_api_key: str) -> bytes:
    """The URL-signing secret: given, or derived from the admin key (so every replica signs alike)."""
    if url_signing_key:
        return url_signing_key.encode()
    return hashlib.sha256(b"shoal-url-signing\n" + admin_api_key.encode()).digest()


def _ttl(duration: object, default: timedelta) -> timedelta:
    seconds = getattr(duration, "seconds", 0) + getattr(duration, "nanos", 0) / 1e9
    if seconds < 0:
        raise InvalidArgument.of([FieldViolation("ttl", "must not be negative")])
    return timedelta(seconds=seconds) if seconds else default


class AssetServicer(asset_service_pb2_grpc.AssetServiceServicer):
    """Blobs in the object store, their validation and signed URLs."""

    def __init__(self, assets: Assets) -> None:
        self.assets = assets

    async def UploadAsset(
        self, request_iterator: AsyncIterator[asset_service_pb2.UploadAssetRequest], context: Ctx
    ) -> asset_pb2.Asset:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("kind") != "header":
            raise InvalidArgument.of([FieldViolation("header", "the first message must be the header")])
        header = first.header
        dataset = self.assets.header_dataset(header)
        auth.require(str(dataset.parent), "WRITER")
        spool = self.assets.spool()
        try:
            async for message in request_iterator:
                if message.WhichOneof("kind") != "chunk":
                    raise InvalidArgument.of([FieldViolation("header", "only the first message may be a header")])
                await asyncio.to_thread(spool.write, message.chunk)
            return await asyncio.to_thread(self.assets.finish, header, spool)
        finally:
            spool.discard()

    async def CreateUploadUrl(
        self, request: asset_service_pb2.CreateUploadUrlRequest, context: Ctx
    ) -> asset_service_pb2.CreateUploadUrlResponse:
        dataset = self.assets.header_dataset(request.header)
        auth.require(str(dataset.parent), "WRITER")
        return await asyncio.to_thread(
            self.assets.create_upload_url, request.header, _ttl(request.ttl, self.assets.url_ttl)
        )

    async def CompleteDirectUpload(
        self, request: asset_service_pb2.CompleteDirectUploadRequest, context: Ctx
    ) -> asset_pb2.Asset:
        dataset = parse_dataset(request.parent, "parent")
        auth.require(str(dataset.parent), "WRITER")
        return await asyncio.to_thread(self.assets.complete_direct_upload, request.parent, request.upload_id)

    async def GetAsset(self, request: asset_service_pb2.GetAssetRequest, context: Ctx) -> asset_pb2.Asset:
        name = parse_asset(request.name)
        auth.require(f"projects/{name.project}")
        return await asyncio.to_thread(self.assets.get, name)

    async def ReadAsset(
        self, request: asset_service_pb2.ReadAssetRequest, context: Ctx
    ) -> AsyncIterator[asset_service_pb2.ReadAssetResponse]:
        name = parse_asset(request.name)
        auth.require(f"projects/{name.project}")
        chunks = await asyncio.to_thread(self.assets.read, name, request.offset, request.length)
        while True:
            chunk = await asyncio.to_thread(next, chunks, None)
            if chunk is None:
                return
            yield asset_service_pb2.ReadAssetResponse(chunk=chunk)

    async def ListAssets(
        self, request: asset_service_pb2.ListAssetsRequest, context: Ctx
    ) -> asset_service_pb2.ListAssetsResponse:
        dataset = parse_dataset(request.parent, "parent")
        auth.require(str(dataset.parent))
        found, token = await asyncio.to_thread(self.assets.list, dataset, request.page_size, request.page_token)
        return asset_service_pb2.ListAssetsResponse(assets=found, next_page_token=token)

    async def DeleteAsset(self, request: asset_service_pb2.DeleteAssetRequest, context: Ctx) -> empty_pb2.Empty:
        name = parse_asset(request.name)
        auth.require(f"projects/{name.project}", "WRITER")
        await asyncio.to_thread(self.assets.delete, name)
        return empty_pb2.Empty()

    async def SignAssetUrl(
        self, request: asset_service_pb2.SignAssetUrlRequest, context: Ctx
    ) -> asset_service_pb2.SignAssetUrlResponse:
        name = parse_asset(request.name)
        auth.require(f"projects/{name.project}")
        url, expire = await asyncio.to_thread(self.assets.sign, name, _ttl(request.ttl, self.assets.url_ttl))
        response = asset_service_pb2.SignAssetUrlResponse(url=url)
        response.expire_time.FromDatetime(expire)
        return response


def build(runtime: Runtime) -> Sequence[Service]:
    settings = runtime.settings
    secret = signing_secret(settings.url_signing_key, settings.admin_api_key)
    http: BlobServer | None = None
    public_url = settings.asset_public_url
    signer = UrlSigner(runtime.store, secret, public_url)
    if isinstance(runtime.store, LocalObjectStore):
        # A local directory has no URLs of its own: serve signed ones here.
        http = BlobServer(settings.host, settings.asset_http_port, runtime.store, signer, settings.asset_max_bytes)
        signer.public_url = (public_url or f"http://{settings.host}:{http.port}").rstrip("/")
        server = http

        async def serve_http(stop: asyncio.Event) -> None:
            server.start()
            try:
                await stop.wait()
            finally:
                await asyncio.to_thread(server.stop)

        runtime.background.append(serve_http)
    assets = Assets(
        runtime.store,
        signer,
        max_bytes=settings.asset_max_bytes,
        url_ttl=timedelta(seconds=settings.asset_url_ttl_seconds),
        spool_dir=settings.asset_spool_dir or None,
        decode_budget=DecodeBudget(settings.asset_decode_budget_bytes),
    )
    return [
        Service(
            AssetServicer(assets),
            asset_service_pb2_grpc.add_AssetServiceServicer_to_server,
            "shoal.v1.AssetService",
        )
    ]
