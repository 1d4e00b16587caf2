"""Server interceptors, outermost first: request id → Prometheus metrics → error mapping → API-key authentication →
refusal of undecodable requests.

Each interceptor supplies an async context manager that wraps one call; `_wrap` applies it to every kind of RPC
(unary, server-, client- and bidi-streaming) so that interceptors are written once, not four times.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Final, cast

import grpc
from redis import exceptions as redis_exceptions

from shoal.kit import context, grpc_metrics
from shoal.kit.apikeys import ApiKeyVerifier
from shoal.kit.errors import Internal, InvalidArgument, ShoalError, Unauthenticated, Unavailable, Unimplemented
from shoal.kit.status import to_grpc_status

log = logging.getLogger("shoal.kit.rpc")

REQUEST_ID_KEY: Final = "x-request-id"
API_KEY_KEY: Final = "x-api-key"
_REQUEST_ID_RE: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Health checks and reflection (which describes only the public contract) need no key.
OPEN_SERVICES: Final = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)
_CLIENT_ERRORS: Final = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)

Scope = Callable[[grpc.aio.ServicerContext[Any, Any]], AbstractAsyncContextManager[None]]


def is_open(full_method: str) -> bool:
    return full_method.lstrip("/").split("/", 1)[0] in OPEN_SERVICES


def metadata_value(ctx: grpc.aio.ServicerContext[Any, Any], key: str) -> str:
    for k, v in ctx.invocation_metadata() or ():
        if k == key:
            return v if isinstance(v, str) else v.decode()
    return ""


def api_key_of(ctx: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The API key a call carries: `x-api-key` metadata, or `authorization: Bearer …`; empty when it has none."""
    secret = metadata_value(ctx, API_KEY_KEY)
    if not secret:
        bearer = metadata_value(ctx, "authorization")
        if bearer[:7].lower() == "bearer ":
            secret = bearer[7:].strip()
    return secret


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _iterate(result: Any) -> AsyncIterator[Any]:
    """Iterate what a streaming behaviour returned: an async iterator, a sync iterator, or an awaitable (a handler
    that writes through `context.write`)."""
    if hasattr(result, "__aiter__"):
        async for item in result:
            yield item
    elif inspect.isawaitable(result):
        await result
    elif result is not None:
        for item in result:
            yield item


def _wrap(handler: grpc.RpcMethodHandler[Any, Any], scope: Scope) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler with `scope(context)` entered around the whole call."""
    ser, de = handler.response_serializer, handler.request_deserializer
    if handler.unary_unary is not None:
        uu: Callable[..., Any] = handler.unary_unary

        async def unary_unary(request: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async with scope(ctx):
                return await _maybe_await(uu(request, ctx))

        return grpc.unary_unary_rpc_method_handler(unary_unary, request_deserializer=de, response_serializer=ser)
    if handler.unary_stream is not None:
        us: Callable[..., Any] = handler.unary_stream

        async def unary_stream(request: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            async with scope(ctx):
                async for item in _iterate(us(request, ctx)):
                    yield item

        return grpc.unary_stream_rpc_method_handler(unary_stream, request_deserializer=de, response_serializer=ser)
    if handler.stream_unary is not None:
        su: Callable[..., Any] = handler.stream_unary

        async def stream_unary(requests: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async with scope(ctx):
                return await _maybe_await(su(requests, ctx))

        return grpc.stream_unary_rpc_method_handler(stream_unary, request_deserializer=de, response_serializer=ser)
    ss: Callable[..., Any] | None = handler.stream_stream
    assert ss is not None

    async def stream_stream(requests: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        async with scope(ctx):
            async for item in _iterate(ss(requests, ctx)):
                yield item

    return grpc.stream_stream_rpc_method_handler(stream_stream, request_deserializer=de, response_serializer=ser)


if TYPE_CHECKING:
    _InterceptorBase = grpc.aio.ServerInterceptor[Any, Any]
else:  # the run-time class is not generic
    _InterceptorBase = grpc.aio.ServerInterceptor


class _ScopeInterceptor(_InterceptorBase):
    """An interceptor defined by one async context manager per call.

    `scope_factory` runs once per method (the wrapped handler is cached), so per-method work such as metric label
    lookups is done once, not on every call.
    """

    applies_to_open_services = True

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    def scope_factory(self, method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> Scope:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or (not self.applies_to_open_services and is_open(method)):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _wrap(handler, self.scope_factory(method, handler))
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def _reset(var: ContextVar[Any], token: Token[Any]) -> None:
    """Undo a context variable, unless the call ends in another context: a server stream the client abandoned is
    closed by asyncio's generator finaliser, where the call's context is gone anyway."""
    with contextlib.suppress(ValueError):
        var.reset(token)


class _RequestIdScope:
    __slots__ = ("ctx", "method", "tokens")

    def __init__(self, method: str, ctx: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.method = method
        self.ctx = ctx
        self.tokens: tuple[Any, Any] | None = None

    async def __aenter__(self) -> None:
        given = metadata_value(self.ctx, REQUEST_ID_KEY)
        rid = given if _REQUEST_ID_RE.fullmatch(given) else uuid.uuid4().hex
        self.tokens = (context.request_id.set(rid), context.method.set(self.method))
        self.ctx.set_trailing_metadata(((REQUEST_ID_KEY, rid),))

    async def __aexit__(self, *exc: object) -> None:
        if self.tokens is not None:
            _reset(context.request_id, self.tokens[0])
            _reset(context.method, self.tokens[1])


class RequestIdInterceptor(_ScopeInterceptor):
    """Takes the caller's `x-request-id` (or makes one), puts it on every log line and sends it back."""

    def scope_factory(self, method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> Scope:
        return lambda ctx: _RequestIdScope(method, ctx)


class _MethodMetrics:
    """The metric children of one method, looked up once."""

    __slots__ = ("handled", "handling", "kind", "method", "service", "started")

    def __init__(self, method: str, kind: str) -> None:
        self.service, self.method = grpc_metrics.split_method(method)
        self.kind = kind
        self.started = grpc_metrics.STARTED.labels(kind, self.service, self.method)
        self.handling = grpc_metrics.HANDLING_SECONDS.labels(kind, self.service, self.method)
        self.handled = {
            code: grpc_metrics.HANDLED.labels(kind, self.service, self.method, code.name) for code in grpc.StatusCode
        }


class _MetricsScope:
    __slots__ = ("ctx", "metrics", "start")

    def __init__(self, metrics: _MethodMetrics, ctx: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.metrics = metrics
        self.ctx = ctx
        self.start = 0.0

    async def __aenter__(self) -> None:
        self.metrics.started.inc()
        self.start = time.perf_counter()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        elapsed = time.perf_counter() - self.start
        if exc is None:
            code = _code_of(self.ctx, grpc.StatusCode.OK)
        elif isinstance(exc, grpc.aio.AbortError):
            code = _code_of(self.ctx, grpc.StatusCode.UNKNOWN)
        elif isinstance(exc, asyncio.CancelledError):
            code = grpc.StatusCode.CANCELLED
        else:
            code = grpc.StatusCode.UNKNOWN
        self.metrics.handled[code].inc()
        self.metrics.handling.observe(elapsed)
        level = (
            logging.DEBUG if code == grpc.StatusCode.OK else logging.INFO if code in _CLIENT_ERRORS else logging.WARNING
        )
        if log.isEnabledFor(level):
            log.log(level, "rpc finished", extra={"grpc_code": code.name, "duration_ms": round(elapsed * 1000, 3)})


class MetricsInterceptor(_ScopeInterceptor):
    """Request counters and latency with the go-grpc-prometheus names, and one access log line per call."""

    def scope_factory(self, method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> Scope:
        metrics = _MethodMetrics(method, grpc_metrics.rpc_type(handler.request_streaming, handler.response_streaming))
        return lambda ctx: _MetricsScope(metrics, ctx)


def _code_of(ctx: grpc.aio.ServicerContext[Any, Any], default: grpc.StatusCode) -> grpc.StatusCode:
    # At run time the asyncio context answers None before a code is set, and an int or a StatusCode after.
    code: Any = ctx.code()
    if code is None:
        return default
    if isinstance(code, grpc.StatusCode):
        return code
    return next((c for c in grpc.StatusCode if c.value[0] == code), default)


async def _abort(ctx: grpc.aio.ServicerContext[Any, Any], err: ShoalError) -> None:
    rid = context.request_id.get()
    status = to_grpc_status(err, ((REQUEST_ID_KEY, rid),) if rid else ())
    # The asyncio context has abort_with_status at run time; the type stubs lack it.
    await cast(Any, ctx).abort_with_status(status)


class _ErrorScope:
    __slots__ = ("ctx", "method")

    def __init__(self, method: str, ctx: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.method = method
        self.ctx = ctx

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if (
            exc is None
            or isinstance(exc, grpc.aio.AbortError | asyncio.CancelledError)
            or not isinstance(exc, Exception)
        ):
            return
        if isinstance(exc, ShoalError):
            await _abort(self.ctx, exc)
        elif (transient := transient_error(exc)) is not None:
            log.warning("dependency unavailable: %s", transient.message, exc_info=exc)
            await _abort(self.ctx, transient)
        elif isinstance(exc, NotImplementedError):
            # The generated servicer base raises this for every RPC a service does not implement yet.
            missing = Unimplemented(
                f"{self.method} is not implemented yet", reason="NOT_IMPLEMENTED", metadata={"method": self.method}
            )
            await _abort(self.ctx, missing)
        else:
            log.error("unhandled error", exc_info=exc)
            internal = Internal(
                "internal error; the server logged the details under this call's request id", reason="INTERNAL"
            )
            await _abort(self.ctx, internal)


_REDIS_TRANSIENT: Final = (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError)
# Lance reports its object-store transport failures as OSError with the underlying client's words.
_STORE_TRANSIENT_WORDS: Final = ("timed out", "timeout", "connection refused", "error sending request", "connect error")
TRANSIENT_RETRY_SECONDS: Final = 1.0


def transient_error(exc: BaseException) -> ShoalError | None:
    """The UNAVAILABLE error (with a retry delay) for a failure of a dependency that retrying later may cure: Redis
    unreachable, restarting or loading its data, or the object store not answering. None for anything else."""
    if isinstance(exc, _REDIS_TRANSIENT) or (
        isinstance(exc, redis_exceptions.ResponseError) and str(exc).startswith(("LOADING", "READONLY", "MASTERDOWN"))
    ):
        return Unavailable(
            "Redis is unavailable; retry shortly",
            reason="REDIS_UNAVAILABLE",
            retry_delay_seconds=TRANSIENT_RETRY_SECONDS,
        )
    if isinstance(exc, TimeoutError | ConnectionError) or (
        isinstance(exc, OSError) and any(word in str(exc).lower() for word in _STORE_TRANSIENT_WORDS)
    ):
        return Unavailable(
            "the object store did not answer; retry shortly",
            reason="STORE_UNAVAILABLE",
            retry_delay_seconds=TRANSIENT_RETRY_SECONDS,
        )
    return None


class _Undecodable:
    """Stands in for a request message whose bytes did not parse, so the handler can refuse it properly."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as err:  # any parse failure of the caller's bytes is the caller's error
            return _Undecodable(err)

    return deserialize


def _refuse_undecodable(value: Any) -> Any:
    if isinstance(value, _Undecodable):
        raise InvalidArgument(
            "the request bytes are not a valid message of this method's request type",
            reason="UNDECODABLE_REQUEST",
        )
    return value


async def _checked_stream(requests: Any) -> AsyncIterator[Any]:
    async for item in requests:
        yield _refuse_undecodable(item)


class _CheckedRequests:
    """The request stream of a client-streaming call, refusing undecodable messages as they arrive (Shoal's handlers
    iterate their requests; none calls `context.read()`)."""

    def __init__(self, requests: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> None:
        self._requests = requests

    def __aiter__(self) -> AsyncIterator[Any]:
        return _checked_stream(self._requests)


class ErrorInterceptor(_ScopeInterceptor):
    """Maps domain errors to `google.rpc.Status` with details; failures of Redis or the object store become
    UNAVAILABLE with a retry delay; request bytes that do not parse become INVALID_ARGUMENT; other unknown exceptions
    become INTERNAL with a generic message and a logged traceback, never a leaked stack."""

    def scope_factory(self, method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> Scope:
        return lambda ctx: _ErrorScope(method, ctx)


class DecodeInterceptor(_InterceptorBase):
    """Innermost: request bytes that do not parse are refused as INVALID_ARGUMENT inside the error and auth scopes
    (so a caller without a key still hears UNAUTHENTICATED first), instead of grpc's UNKNOWN naming an exception."""

    def __init__(self) -> None:
        # Per method: the handler and its checking wrapper, made once.
        self._checked: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler: grpc.RpcMethodHandler[Any, Any] | None = await continuation(handler_call_details)
        if handler is None:  # an unknown method: grpc answers UNIMPLEMENTED itself
            return cast("grpc.RpcMethodHandler[Any, Any]", handler)
        cached = self._checked.get(handler_call_details.method)
        if cached is None or cached[0] is not handler:
            cached = self._checked[handler_call_details.method] = (handler, _checking(handler))
        return cached[1]


def _checking(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """The handler with a deserializer that never raises and a body that refuses what did not parse."""
    ser, de = handler.response_serializer, _tolerant(handler.request_deserializer)
    wrapped: grpc.RpcMethodHandler[Any, Any]
    if handler.unary_unary is not None:
        uu: Callable[..., Any] = handler.unary_unary

        def unary_unary(request: Any, ctx: Any) -> Any:
            return uu(_refuse_undecodable(request), ctx)

        wrapped = grpc.unary_unary_rpc_method_handler(unary_unary, request_deserializer=de, response_serializer=ser)
    elif handler.unary_stream is not None:
        us: Callable[..., Any] = handler.unary_stream

        def unary_stream(request: Any, ctx: Any) -> Any:
            return us(_refuse_undecodable(request), ctx)

        wrapped = grpc.unary_stream_rpc_method_handler(unary_stream, request_deserializer=de, response_serializer=ser)
    elif handler.stream_unary is not None:
        su: Callable[..., Any] = handler.stream_unary

        def stream_unary(requests: Any, ctx: Any) -> Any:
            return su(_CheckedRequests(requests, ctx), ctx)

        wrapped = grpc.stream_unary_rpc_method_handler(stream_unary, request_deserializer=de, response_serializer=ser)
    else:
        ss: Callable[..., Any] | None = handler.stream_stream
        assert ss is not None

        def stream_stream(requests: Any, ctx: Any) -> Any:
            return ss(_CheckedRequests(requests, ctx), ctx)

        wrapped = grpc.stream_stream_rpc_method_handler(stream_stream, request_deserializer=de, response_serializer=ser)
    return wrapped


class _AuthScope:
    __slots__ = ("ctx", "token", "verifier")

    def __init__(self, verifier: ApiKeyVerifier, ctx: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.verifier = verifier
        self.ctx = ctx
        self.token: Any = None

    async def __aenter__(self) -> None:
        secret = api_key_of(self.ctx)
        if not secret:
            raise Unauthenticated("missing API key: send it as `x-api-key` metadata", reason="API_KEY_MISSING")
        key_id = self.verifier.needs_lookup(secret)
        if key_id is not None and self.verifier.verify_admin(secret) is None:
            await asyncio.to_thread(self.verifier.load, key_id)
        principal = self.verifier.verify_cached(secret)
        if principal is None or (not principal.admin and await self.verifier.revoked(principal.key_id)):
            raise Unauthenticated("invalid, revoked or expired API key", reason="API_KEY_INVALID")
        self.token = context.principal.set(principal)

    async def __aexit__(self, *exc: object) -> None:
        if self.token is not None:
            _reset(context.principal, self.token)


class AuthInterceptor(_ScopeInterceptor):
    """Rejects calls without a valid API key (`x-api-key`, or `authorization: Bearer …`) with UNAUTHENTICATED."""

    applies_to_open_services = False

    def __init__(self, verifier: ApiKeyVerifier) -> None:
        super().__init__()
        self.verifier = verifier

    def scope_factory(self, method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> Scope:
        return lambda ctx: _AuthScope(self.verifier, ctx)


def default_interceptors(verifier: ApiKeyVerifier) -> Sequence[grpc.aio.ServerInterceptor[Any, Any]]:
    """The interceptor chain every Shoal service runs, outermost first."""
    return (
        RequestIdInterceptor(),
        MetricsInterceptor(),
        ErrorInterceptor(),
        AuthInterceptor(verifier),
        DecodeInterceptor(),
    )
