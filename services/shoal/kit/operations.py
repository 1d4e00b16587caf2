"""Long-running operations (metrics, embedding): a record in Redis per operation, a runner that keeps it fresh while
the work runs, and the OperationsService servicer that reads them.

Operations live in the shared Redis, so any replica answers for any operation. They are pointers to work whose
results are stored in the object store (evaluations, selections): losing Redis loses the progress of running work,
never a result, and asking again finds the stored result. A runner refreshes its operation every few seconds; an
operation that has not been refreshed for `STALE_AFTER` seconds lost its process and reads as failed (ABORTED), so
callers retry instead of waiting for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from redis.asyncio import Redis

from shoal.kit import auth
from shoal.kit.errors import (
    Code,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ShoalError,
    error_type,
)
from shoal.kit.paging import not_issued, offset_of, offset_token, payload_of, payload_token
from shoal.kit.paging import page_size as page_size_of
from shoal.kit.server import Service
from shoal.v1 import operation_pb2, operation_pb2_grpc

log = logging.getLogger("shoal.kit.operations")

PREFIX: Final = "shoal:op:"
INDEX: Final = "shoal:ops"
# The project each operation belongs to, and each project's own index: operations are the project's like its data.
OWNER_PREFIX: Final = PREFIX + "owner:"
PROJECT_INDEX_PREFIX: Final = INDEX + ":"
KEEP_SECONDS: Final = 7 * 24 * 3600
HEARTBEAT_SECONDS: Final = 5.0
STALE_AFTER: Final = 60.0

#: gRPC status numbers of the domain error codes, for OperationError.code.
GRPC_CODES: Final = {
    Code.INVALID_ARGUMENT: 3,
    Code.NOT_FOUND: 5,
    Code.ALREADY_EXISTS: 6,
    Code.PERMISSION_DENIED: 7,
    Code.RESOURCE_EXHAUSTED: 8,
    Code.FAILED_PRECONDITION: 9,
    Code.ABORTED: 10,
    Code.UNIMPLEMENTED: 12,
    Code.INTERNAL: 13,
    Code.UNAVAILABLE: 14,
    Code.UNAUTHENTICATED: 16,
}
CANCELLED: Final = 1


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


def _pack(message: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message)
    return out


class OperationCancelledError(ShoalError):
    """The operation was cancelled by its caller."""

    code = Code.ABORTED


@dataclass
class Progress:
    """Reports progress of one running operation. Once the caller cancelled it, `check()` raises
    OperationCancelledError, and so does reporting progress (the runner's heartbeat notices the cancellation), so work
    running in a thread stops at its next report."""

    store: OperationStore
    name: str
    latest: operation_pb2.OperationProgress
    cancelled: bool = False

    def __call__(self, stage: str, completed: int = 0, total: int = 0, unit: str = "") -> None:
        if self.cancelled:
            raise OperationCancelledError(f"{self.name} was cancelled", reason="CANCELLED")
        self.latest = operation_pb2.OperationProgress(stage=stage, completed=completed, total=total, unit=unit)

    async def check(self) -> None:
        if await self.store.cancel_requested(self.name):
            raise OperationCancelledError(f"{self.name} was cancelled", reason="CANCELLED")


class OperationStore:
    """Operation records in Redis."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    @staticmethod
    def _key(name: str) -> str:
        return PREFIX + name

    async def create(
        self, metadata: Message | None = None, key: str = "", *, project: str, dataset: str = ""
    ) -> tuple[operation_pb2.Operation, bool]:
        """A new running operation of `project` (`projects/{project}`) and, when given, of `dataset` (its
        resource name: deleting the dataset forgets its operations); with `key`, the running operation already
        started for that key if any (the bool says whether this call created it). Keys are scoped to the project."""
        name = f"operations/{uuid.uuid4().hex}"
        key = f"{project}:{key}" if key else ""
        if key:
            claimed = await self.redis.set(f"{PREFIX}key:{key}", name, nx=True, ex=int(STALE_AFTER))
            if not claimed:
                existing = await self.redis.get(f"{PREFIX}key:{key}")
                if existing:
                    found = await self.find(existing.decode() if isinstance(existing, bytes) else str(existing))
                    if found is not None and not found.done and not self._stale(found):
                        return found, False
                await self.redis.set(f"{PREFIX}key:{key}", name, ex=int(STALE_AFTER))
        op = operation_pb2.Operation(name=name, create_time=_now(), update_time=_now())
        if metadata is not None:
            op.metadata.CopyFrom(_pack(metadata))
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(OWNER_PREFIX + name, project.encode(), ex=KEEP_SECONDS)
            pipe.set(self._key(name), op.SerializeToString(), ex=KEEP_SECONDS)
            pipe.zadd(INDEX, {name: now})
            pipe.zadd(PROJECT_INDEX_PREFIX + project, {name: now})
            for scope in _scopes(dataset):
                pipe.zadd(PROJECT_INDEX_PREFIX + scope, {name: now})
            await pipe.execute()
        return op, True

    async def owner(self, name: str) -> str | None:
        """The project an operation belongs to; None when unknown (expired, or made before operations had owners)."""
        raw = await self.redis.get(OWNER_PREFIX + name)
        return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)

    async def forget(self, scope: str) -> int:
        """Remove every operation record of a deleted project, dataset or inference set (its resource name); work
        still running for it is cancelled. Returns how many operations were forgotten."""
        index = PROJECT_INDEX_PREFIX + scope
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in await self.redis.zrange(index, 0, -1)]
        ancestors = [PROJECT_INDEX_PREFIX + s for s in _scopes(scope) if s != scope]
        ancestors.append(PROJECT_INDEX_PREFIX + "/".join(scope.split("/")[:2]))
        found = [_parsed(raw) for raw in await self.redis.mget([self._key(n) for n in names])] if names else []
        async with self.redis.pipeline(transaction=False) as pipe:
            for name, op in zip(names, found, strict=True):
                pipe.delete(self._key(name), OWNER_PREFIX + name)
                if op is not None and not op.done:
                    # Its runner notices at its next heartbeat and stops; then the marker expires.
                    pipe.set(f"{PREFIX}cancel:{name}", b"1", ex=int(2 * STALE_AFTER))
                else:
                    pipe.delete(f"{PREFIX}cancel:{name}")
                pipe.zrem(INDEX, name)
                for ancestor in ancestors:
                    if ancestor != index:
                        pipe.zrem(ancestor, name)
            pipe.delete(index)
            await pipe.execute()
        patterns = [f"{PROJECT_INDEX_PREFIX}{scope}/*"]
        if scope.count("/") == 1:  # a project: the claims of its running operations go too
            patterns.append(f"{PREFIX}key:{scope}:*")
        for pattern in patterns:
            async for raw in self.redis.scan_iter(match=pattern, count=1000):
                await self.redis.delete(raw)
        return len(names)

    async def _save(self, op: operation_pb2.Operation, *, existing: bool = False) -> None:
        """Store the operation; with `existing`, only over a record that is still there (an operation whose
        resource was deleted is not brought back by its runner finishing)."""
        await self.redis.set(self._key(op.name), op.SerializeToString(), ex=KEEP_SECONDS, xx=existing)

    async def find(self, name: str) -> operation_pb2.Operation | None:
        return _parsed(await self.redis.get(self._key(name)))

    @staticmethod
    def _stale(op: operation_pb2.Operation) -> bool:
        return not op.done and time.time() - op.update_time.ToDatetime().timestamp() > STALE_AFTER

    async def get(self, name: str) -> operation_pb2.Operation:
        if not name.startswith("operations/"):
            raise InvalidArgument.of([FieldViolation("name", "must look like operations/{id}")], reason="INVALID_NAME")
        op = await self.find(name)
        if op is None:
            raise NotFound(f"{name} does not exist (or expired)", reason="OPERATION_NOT_FOUND", metadata={"name": name})
        if self._stale(op):
            op.done = True
            op.error.CopyFrom(
                operation_pb2.OperationError(
                    code=GRPC_CODES[Code.ABORTED],
                    message="the process running this operation stopped; ask again to restart it",
                    reason="OPERATION_ABANDONED",
                )
            )
        return op

    async def touch(self, name: str, progress: operation_pb2.OperationProgress | None) -> None:
        op = await self.find(name)
        if op is None or op.done:
            return
        op.update_time.CopyFrom(_now())
        if progress is not None:
            op.metadata.CopyFrom(_pack(progress))
        await self._save(op)

    async def _closing(self, name: str) -> tuple[operation_pb2.Operation, bool]:
        """The operation to mark done, and whether its record exists (a record Redis lost is written afresh while
        its owner is known; a deleted one is not brought back)."""
        found = await self.find(name)
        fresh = found is None and await self.owner(name) is not None
        op = found or operation_pb2.Operation(name=name, create_time=_now())
        op.done = True
        op.update_time.CopyFrom(_now())
        return op, not fresh

    async def finish(self, name: str, response: Message) -> operation_pb2.Operation:
        op, existing = await self._closing(name)
        op.response.CopyFrom(_pack(response))
        await self._save(op, existing=existing)
        return op

    async def fail(self, name: str, err: BaseException) -> operation_pb2.Operation:
        op, existing = await self._closing(name)
        if isinstance(err, OperationCancelledError):
            op.error.CopyFrom(operation_pb2.OperationError(code=CANCELLED, message=err.message, reason="CANCELLED"))
        elif isinstance(err, ShoalError):
            op.error.CopyFrom(
                operation_pb2.OperationError(code=GRPC_CODES.get(err.code, 13), message=str(err), reason=err.reason)
            )
        else:
            op.error.CopyFrom(operation_pb2.OperationError(code=13, message="internal error", reason="INTERNAL"))
        await self._save(op, existing=existing)
        return op

    async def wait(self, name: str, poll_seconds: float = 0.2) -> operation_pb2.Operation:
        """The operation once done (finished, failed, or abandoned by its process). Cancelling the waiting task
        (the caller's deadline) stops the wait only, never the operation."""
        while True:
            op = await self.get(name)
            if op.done:
                return op
            await asyncio.sleep(poll_seconds)

    async def cancel(self, name: str) -> operation_pb2.Operation:
        op = await self.get(name)
        if not op.done:
            await self.redis.set(f"{PREFIX}cancel:{name}", b"1", ex=KEEP_SECONDS)
        return op

    async def cancel_requested(self, name: str) -> bool:
        return bool(await self.redis.exists(f"{PREFIX}cancel:{name}"))

    async def list(
        self, done: bool | None, page_size: int, page_token: str, *, project: str | None = None
    ) -> tuple[list[operation_pb2.Operation], str]:
        """Operations newest first: every project's, or only `project`'s."""
        index = INDEX if project is None else PROJECT_INDEX_PREFIX + project
        size = page_size_of(page_size)
        start = offset_of(page_token)
        out: list[operation_pb2.Operation] = []
        position = start
        while len(out) < size:
            names = await self.redis.zrevrange(index, position, position + size - 1)
            if not names:
                return out, ""
            for raw in names:
                position += 1
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
                op = await self.find(name)
                if op is None:
                    await self.redis.zrem(index, name)
                    position -= 1
                    continue
                if self._stale(op):
                    op = await self.get(name)
                if done is None or op.done == done:
                    out.append(op)
                if len(out) == size:
                    break
        more = await self.redis.zcard(index) > position
        return out, offset_token(position) if more else ""

    async def run(
        self,
        op: operation_pb2.Operation,
        work: Callable[[Progress], Awaitable[Message]],
        key: str = "",
    ) -> None:
        """Run `work`, refreshing the operation (and the claim on `key`) until it finishes, then record its response
        or error."""
        progress = Progress(self, op.name, operation_pb2.OperationProgress(stage="queued"))

        async def beat() -> None:
            while True:
                await asyncio.sleep(HEARTBEAT_SECONDS)
                with contextlib.suppress(Exception):
                    await self.touch(op.name, progress.latest)
                    if key:
                        await self.redis.expire(f"{PREFIX}key:{key}", int(STALE_AFTER))
                    if await self.cancel_requested(op.name):
                        progress.cancelled = True

        if key:
            key = f"{await self.owner(op.name)}:{key}"
        beating = asyncio.create_task(beat())
        try:
            response = await work(progress)
        except BaseException as err:
            if not isinstance(err, ShoalError):
                log.exception("operation %s failed", op.name)
            await self.fail(op.name, err)
            if isinstance(err, asyncio.CancelledError):
                raise
        else:
            await self.finish(op.name, response)
        finally:
            beating.cancel()
            if key:
                with contextlib.suppress(Exception):
                    await self.redis.delete(f"{PREFIX}key:{key}")


def _scopes(resource: str) -> list[str]:
    """The resource names from a dataset down to `resource` (`projects/p/datasets/d[/inferenceSets/i]`) under which
    an operation is indexed, so deleting any of them forgets it."""
    parts = resource.split("/") if resource else []
    return ["/".join(parts[:n]) for n in range(4, len(parts) + 1, 2)]


def error_of(op: operation_pb2.Operation) -> ShoalError:
    """A failed operation's error as the domain error that carries its code, reason and message."""
    by_number = {number: code for code, number in GRPC_CODES.items()} | {CANCELLED: Code.ABORTED}
    code = by_number.get(op.error.code, Code.INTERNAL)
    return error_type(code)(op.error.message, reason=op.error.reason or "UNKNOWN", metadata={"operation": op.name})


class OperationsServicer(operation_pb2_grpc.OperationsServiceServicer):
    """Get, list and cancel long-running operations — each caller only its own projects'. An operation of a project
    the caller may not read is NOT_FOUND, exactly as one that does not exist, so names reveal nothing."""

    def __init__(self, store: OperationStore) -> None:
        self.store = store

    async def _authorize(self, name: str, role: str) -> None:
        who = auth.current()
        if who.admin:
            return
        owner = await self.store.owner(name) if name.startswith("operations/") else None
        if owner is None or not who.may_access(owner):
            raise NotFound(f"{name} does not exist (or expired)", reason="OPERATION_NOT_FOUND", metadata={"name": name})
        auth.require(owner, role, who)

    async def GetOperation(self, request: operation_pb2.GetOperationRequest, context: Any) -> operation_pb2.Operation:
        await self._authorize(request.name, "READER")
        return await self.store.get(request.name)

    async def ListOperations(
        self, request: operation_pb2.ListOperationsRequest, context: Any
    ) -> operation_pb2.ListOperationsResponse:
        filters = {"": None, "done=true": True, "done=false": False}
        text = request.filter.replace(" ", "").lower()
        if text not in filters:
            raise InvalidArgument.of(
                [FieldViolation("filter", "supported filters: empty, done=true, done=false")], reason="INVALID_FILTER"
            )
        who = auth.current()
        if who.admin:
            ops, token = await self.store.list(filters[text], request.page_size, request.page_token)
        else:
            ops, token = await self._list_projects(sorted(who.projects), filters[text], request)
        return operation_pb2.ListOperationsResponse(operations=ops, next_page_token=token)

    async def _list_projects(
        self, projects: list[str], done: bool | None, request: operation_pb2.ListOperationsRequest
    ) -> tuple[list[operation_pb2.Operation], str]:
        """The operations of the caller's projects, one project after another (the token says which project and
        where in it)."""
        if not projects:
            return [], ""
        where = payload_of(request.page_token)
        first, inner = where.get("project", 0), where.get("inner", "")
        if not (isinstance(first, int) and 0 <= first < len(projects) and isinstance(inner, str)):
            raise not_issued()
        size = page_size_of(request.page_size)
        out: list[operation_pb2.Operation] = []
        for i in range(first, len(projects)):
            ops, token = await self.store.list(done, size - len(out), inner if i == first else "", project=projects[i])
            out.extend(ops)
            if token:
                return out, payload_token({"project": i, "inner": token})
            if len(out) >= size:
                return out, payload_token({"project": i + 1, "inner": ""}) if i + 1 < len(projects) else ""
        return out, ""

    async def CancelOperation(
        self, request: operation_pb2.CancelOperationRequest, context: Any
    ) -> operation_pb2.Operation:
        await self._authorize(request.name, "WRITER")
        return await self.store.cancel(request.name)


def operations_service(redis: Redis) -> Service:
    return Service(
        OperationsServicer(OperationStore(redis)),
        operation_pb2_grpc.add_OperationsServiceServicer_to_server,
        "shoal.v1.OperationsService",
    )


def _parsed(raw: bytes | str | None) -> operation_pb2.Operation | None:
    """An operation record as Redis holds it."""
    if raw is None:
        return None
    return operation_pb2.Operation.FromString(raw if isinstance(raw, bytes) else raw.encode())
