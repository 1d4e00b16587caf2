"""Calls from one service of the suite to another, through the other's gRPC contract (services never import each
other's modules).

A call carries the API key of the caller being served, so the service called checks that caller's rights on the
resource itself, as it checks any client's; and the caller's request id, so both services log the same one. It has a
deadline: a service that is down, or does not answer in time, fails the call as UNAVAILABLE (reason
`<SERVICE>_UNAVAILABLE`, with a retry delay), never holds it. Any other error of the service called comes back as the
domain error it is (code, reason, metadata, field violations), so the caller answers its own client with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import grpc

from shoal.kit import context
from shoal.kit.errors import Code, ShoalError, Unavailable, error_type
from shoal.kit.interceptors import API_KEY_KEY, REQUEST_ID_KEY, api_key_of
from shoal.kit.status import unpack

log = logging.getLogger("shoal.kit.peers")

RETRY_SECONDS: Final = 1.0
# Codes that say the service called was not reached, or did not answer: the call may be retried as it is.
_UNREACHED: Final = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")


@dataclass(frozen=True)
class Credentials:
    """What a call to another service carries on behalf of the caller being served."""

    api_key: str
    request_id: str = ""

    @classmethod
    def of_call(cls, ctx: grpc.aio.ServicerContext[Any, Any]) -> Credentials:
        """The credentials of the call being served (read while it is served: work it starts may outlive it)."""
        return cls(api_key_of(ctx), context.request_id.get())

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        out = ((API_KEY_KEY, self.api_key),)
        return (*out, (REQUEST_ID_KEY, self.request_id)) if self.request_id else out


class Peer:
    """Another service of the suite at `address` (`host:port`). Its channel opens on first use, in the event loop
    that uses it."""

    def __init__(self, service: str, address: str, *, timeout_seconds: float, max_message_bytes: int) -> None:
        self.service = service
        self.address = address
        self.timeout_seconds = timeout_seconds
        self.options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        self._channel: grpc.aio.Channel | None = None

    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.address, options=self.options)
        return self._channel

    async def call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[RequestT, ResponseT],
        request: RequestT,
        credentials: Credentials,
    ) -> ResponseT:
        """`method` of a stub on `channel`, called for the caller whose `credentials` these are."""
        try:
            return await method(request, metadata=credentials.metadata, timeout=self.timeout_seconds)
        except grpc.aio.AioRpcError as err:
            raise self._error(err) from None

    def _error(self, err: grpc.aio.AioRpcError) -> ShoalError:
        details = unpack(err)
        if details.code in _UNREACHED and not details.reason:
            log.warning("the %s service at %s did not answer: %s", self.service, self.address, details.message)
            return Unavailable(
                f"the {self.service} service cannot be reached or did not answer within {self.timeout_seconds:g} s; "
                "retry shortly",
                reason=f"{self.service.upper()}_UNAVAILABLE",
                metadata={"service": self.service},
                retry_delay_seconds=RETRY_SECONDS,
            )
        code = details.domain_code or Code.INTERNAL
        if code is Code.INTERNAL:
            log.error("the %s service failed: %s %s", self.service, details.code.name, details.message)
        return error_type(code)(
            details.message,
            reason=details.reason or code.value,
            metadata=details.metadata,
            violations=tuple(details.violations),
            retry_delay_seconds=details.retry_delay_seconds,
        )

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None
