"""The console's ASGI app: the web app's files, and its Connect calls forwarded to the five services over gRPC.

    GET  /healthz                         alive
    GET  /readyz                          the web app is built and the versioning service answers its health check
    POST /shoal.v1.<Service>/<Method>     a Connect call (see shoal.console.connect)
    GET  /assets/…                        the bundle (content-hashed names: cached for a year)
    GET  anything else                    index.html: every view is a URL the app routes itself

The API key travels in the `Authorization` header of each call, never in a URL; nothing here logs headers or
bodies, only the method, the outcome and the time taken.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shoal.console import connect
from shoal.kit.settings import DEFAULT_GRPC_PORTS, SERVICES

log = logging.getLogger("shoal.console")

DEFAULT_PORT: Final = 8080
_REPO_DIST: Final = Path(__file__).resolve().parents[3] / "console" / "dist"
_PACKAGED_DIST: Final = Path(__file__).resolve().parent / "static"
# Previews and originals load from the asset service's HTTP endpoint or the object store: any origin, images only.
# 'unsafe-eval': regl, under the WebGL scatter, compiles its draw commands with Function().
_CSP: Final = (
    "default-src 'self'; img-src 'self' data: blob: http: https:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-eval'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class ConsoleSettings:
    """Where the console listens, where each service is, and where the built web app lies."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    addresses: dict[str, str] = field(
        default_factory=lambda: {s: f"127.0.0.1:{p}" for s, p in DEFAULT_GRPC_PORTS.items()}
    )
    static_dir: Path = _REPO_DIST
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConsoleSettings:
        """SHOAL_HOST, SHOAL_CONSOLE_PORT, SHOAL_<SERVICE>_ADDRESS, SHOAL_CONSOLE_STATIC_DIR, SHOAL_LOG_LEVEL."""
        env = os.environ if environ is None else environ
        default = cls()
        addresses = {s: env.get(f"SHOAL_{s.upper()}_ADDRESS", "") or default.addresses[s] for s in SERVICES}
        static = env.get("SHOAL_CONSOLE_STATIC_DIR", "")
        return cls(
            host=env.get("SHOAL_HOST", default.host),
            port=int(env.get("SHOAL_CONSOLE_PORT", "") or DEFAULT_PORT),
            addresses=addresses,
            static_dir=Path(static) if static else (_PACKAGED_DIST if _PACKAGED_DIST.is_dir() else _REPO_DIST),
            log_level=env.get("SHOAL_LOG_LEVEL", "INFO"),
        )


class Gateway:
    """One gRPC channel per service, and the contract's methods by Connect path."""

    def __init__(self, addresses: Mapping[str, str]) -> None:
        self.addresses = dict(addresses)
        self.methods = connect.methods()
        self.channels: dict[str, grpc.aio.Channel] = {}

    def channel(self, service: str) -> grpc.aio.Channel:
        if service not in self.channels:
            self.channels[service] = grpc.aio.insecure_channel(
                self.addresses[service], options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
            )
        return self.channels[service]

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close(grace=None)
        self.channels.clear()

    async def call(self, request: Request) -> Response:
        method = self.methods.get(request.url.path)
        started = time.perf_counter()
        outcome = "ok"
        try:
            if method is None:
                raise connect.ConnectError("unimplemented", 404, f"no method {request.url.path}")
            if method.client_streaming:
                raise connect.ConnectError(
                    "unimplemented", 501, f"{method.path} takes a client stream, which browsers cannot send"
                )
            if method.server_streaming:
                try:
                    return await self._stream(method, request)
                except connect.ConnectError as err:
                    # A stream's errors travel in its end message, with status 200, as Connect's streams carry them.
                    outcome = err.code
                    return Response(
                        connect.end_stream(err),
                        media_type=_stream_type(request),
                        headers={"Cache-Control": "no-store"},
                    )
            return await self._unary(method, request)
        except connect.ConnectError as err:
            outcome = err.code
            return _error_response(err)
        except Exception:
            outcome = "internal"
            log.exception("console call failed", extra={"method": request.url.path})
            return _error_response(connect.ConnectError("internal", 500, "the console failed to forward the call"))
        finally:
            log.info(
                "console call",
                extra={
                    "method": request.url.path,
                    "code": outcome,
                    "ms": round(1000 * (time.perf_counter() - started), 1),
                },
            )

    def _call(self, method: connect.Method, body: bytes, *, binary: bool) -> tuple[Any, Any]:
        """The gRPC callable of `method` and the request to give it: binary messages travel on as the bytes they
        came as (and so do the answers); JSON is parsed into the request message."""
        channel = self.channel(method.service)
        make = channel.unary_stream if method.server_streaming else channel.unary_unary
        if binary:
            return make(method.path, request_serializer=_raw, response_deserializer=_raw), connect.check_binary(
                method, body
            )
        stub = make(method.path, request_serializer=_serialize, response_deserializer=method.response.FromString)
        return stub, connect.parse_json(method, body)

    async def _unary(self, method: connect.Method, request: Request) -> Response:
        content_type = _content_type(request)
        if content_type not in {"application/proto", "application/json"}:
            raise connect.ConnectError(
                "unimplemented", 415, "send the request as application/json or application/proto"
            )
        binary = content_type == "application/proto"
        stub, message = self._call(method, await _body(request), binary=binary)
        try:
            response = await stub(
                message, timeout=connect.timeout_of(request.headers), metadata=connect.metadata_of(request.headers)
            )
        except grpc.aio.AioRpcError as err:
            raise connect.ConnectError.of_rpc(err) from None
        if binary:
            return Response(response, media_type="application/proto", headers={"Cache-Control": "no-store"})
        return JSONResponse(connect.to_json(response), headers={"Cache-Control": "no-store"})

    async def _stream(self, method: connect.Method, request: Request) -> Response:
        content_type = _content_type(request)
        if content_type not in {"application/connect+proto", "application/connect+json"}:
            raise connect.ConnectError(
                "unimplemented", 415, "send a stream request as application/connect+json or application/connect+proto"
            )
        binary = content_type == "application/connect+proto"
        stub, message = self._call(method, connect.unenvelope(await _body(request)), binary=binary)
        call = stub(message, timeout=connect.timeout_of(request.headers), metadata=connect.metadata_of(request.headers))
        return StreamingResponse(
            connect.stream(call, binary), media_type=content_type, headers={"Cache-Control": "no-store"}
        )

    async def ready(self) -> bool:
        stub = health_pb2_grpc.HealthStub(self.channel("versioning"))
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


MAX_REQUEST_BYTES: Final = 8 << 20


async def _body(request: Request) -> bytes:
    """The request body, refused past MAX_REQUEST_BYTES (the console's calls are small; uploads go elsewhere)."""
    size = request.headers.get("content-length", "")
    if size.isascii() and size.isdigit() and int(size) > MAX_REQUEST_BYTES:
        raise connect.ConnectError("resource_exhausted", 429, f"requests are at most {MAX_REQUEST_BYTES} bytes")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_REQUEST_BYTES:
            raise connect.ConnectError("resource_exhausted", 429, f"requests are at most {MAX_REQUEST_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _content_type(request: Request) -> str:
    return str(request.headers.get("content-type", "")).split(";")[0].strip()


def _stream_type(request: Request) -> str:
    kind = _content_type(request)
    return kind if kind in {"application/connect+json", "application/connect+proto"} else "application/connect+json"


def _raw(data: Any) -> bytes:
    return bytes(data)


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())


def _error_response(err: connect.ConnectError) -> Response:
    return JSONResponse(err.body(), status_code=err.status, headers={"Cache-Control": "no-store"})


def build_app(settings: ConsoleSettings) -> Starlette:
    """The console's ASGI app for `settings`."""
    gateway = Gateway(settings.addresses)
    static = settings.static_dir.resolve()
    index = static / "index.html"

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        if not index.is_file():
            return PlainTextResponse(f"the web app is not built ({index} is missing): run `make console`", 503)
        if not await gateway.ready():
            return PlainTextResponse("the versioning service does not answer", 503)
        return PlainTextResponse("ready")

    async def page(request: Request) -> Response:
        path = request.url.path
        if path.startswith("/assets/"):
            try:
                target = (static / path.lstrip("/")).resolve()
            except (OSError, ValueError):
                return PlainTextResponse("not found", 404)
            if not target.is_relative_to(static) or not target.is_file():
                return PlainTextResponse("not found", 404)
            return FileResponse(target, headers={"Cache-Control": "public, max-age=31536000, immutable"})
        if not index.is_file():
            return PlainTextResponse(f"the web app is not built ({index} is missing): run `make console`", 503)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await gateway.close()

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/shoal.v1.{service}/{method}", gateway.call, methods=["POST"]),
            Route("/{path:path}", page, methods=["GET", "HEAD"]),
        ],
        middleware=[Middleware(SecurityHeaders)],
        lifespan=lifespan,
    )


class SecurityHeaders:
    """Adds the console's security headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(_SECURITY_HEADERS)
            await send(message)

        await self.app(scope, receive, with_headers)
