"""The object store behind one interface: MinIO/S3 through the `minio` client, or a local directory.

The object store is Shoal's single source of truth (claim-check batches, versioned tables, the catalog, assets).
Adapters are synchronous, like the `minio` client; async callers run them with `asyncio.to_thread`.
"""

from __future__ import annotations

import abc
import base64
import binascii
import fcntl
import hashlib
import io
import mimetypes
import os
import re
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Final, Self, cast

import urllib3
import urllib3.connectionpool
from minio import Minio
from minio.error import S3Error

from shoal.kit.errors import Aborted, InvalidArgument, NotFound, Unavailable
from shoal.kit.settings import StoreSettings

DEFAULT_CHUNK: Final = 1024 * 1024
# S3 needs parts of at least 5 MiB; 16 MiB keeps the part count low for large point clouds and batch objects.
MULTIPART_PART_SIZE: Final = 16 * 1024 * 1024
MAX_PAGE_SIZE: Final = 1000
# How long calls fail at once after the store stopped answering, before one is let through to try it again.
COOLDOWN_SECONDS: Final = 3.0
_KEY_RE: Final = re.compile(r"^[A-Za-z0-9!\-_.*'()=+,@~/]+$")
_TMP_DIR: Final = ".shoal-tmp"


class ObjectNotFound(NotFound):
    """No object under that key."""


class WriteConflict(Aborted):
    """A conditional write lost: the object exists (create-only) or changed since it was read (etag mismatch)."""


@dataclass(frozen=True)
class ObjectInfo:
    """What `stat` tells about an object."""

    key: str
    size: int
    etag: str
    last_modified: datetime
    content_type: str


@dataclass(frozen=True)
class ObjectPage:
    """One page of a listing; `next_page_token` is empty on the last page."""

    objects: list[ObjectInfo]
    next_page_token: str


def check_key(key: str) -> str:
    """Keys are built by services, never taken from clients; this guards against a bug building a bad one."""
    parts = key.split("/")
    if not key or not _KEY_RE.fullmatch(key) or key.startswith("/") or any(p in {"", ".", ".."} for p in parts):
        raise InvalidArgument(f"invalid object key {key!r}", reason="INVALID_OBJECT_KEY")
    if parts[0] == _TMP_DIR:
        raise InvalidArgument(f"object key {key!r} uses a reserved prefix", reason="INVALID_OBJECT_KEY")
    return key


def _encode_token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode() if key else ""


def _decode_token(token: str) -> str:
    if not token:
        return ""
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument("page_token is not a token this server issued", reason="INVALID_PAGE_TOKEN") from None


def _clamp_page_size(page_size: int) -> int:
    if page_size < 0:
        raise InvalidArgument("page_size must not be negative", reason="INVALID_PAGE_SIZE")
    return MAX_PAGE_SIZE if page_size == 0 else min(page_size, MAX_PAGE_SIZE)


def _guess_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


class ObjectStore(abc.ABC):
    """Blob storage with the operations every Shoal service needs."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes, content_type: str = "") -> ObjectInfo:
        """Store `data` under `key`, replacing what was there; readers see the old or the new object, never a mix."""

    @abc.abstractmethod
    def put_if(self, key: str, data: bytes, content_type: str = "", *, etag: str | None) -> ObjectInfo:
        """Store `data` only if the object is unchanged: `etag=None` means it must not exist yet (create-only),
        otherwise its current etag must equal `etag`. Raises WriteConflict when another writer got there first."""

    @abc.abstractmethod
    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str = "") -> ObjectInfo:
        """Store a stream of any size without holding it in memory (multipart on S3)."""

    @abc.abstractmethod
    def iter_range(
        self, key: str, offset: int = 0, length: int = 0, chunk_size: int = DEFAULT_CHUNK
    ) -> Iterator[bytes]:
        """Yield the bytes of `key` from `offset`, `length` bytes (0: to the end), in chunks."""

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Facts about `key`; raises ObjectNotFound."""

    @abc.abstractmethod
    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        """The whole object and its etag, from one read: the etag is that of the bytes returned, for a later
        `put_if` (a stat and a get apart could pair one writer's etag with another's bytes, and cost two requests)."""

    @abc.abstractmethod
    def list(self, prefix: str = "", page_size: int = 0, page_token: str = "") -> ObjectPage:
        """Objects whose keys start with `prefix`, in key order, paged."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key`; removing a missing key is not an error."""

    @abc.abstractmethod
    def presign_get(self, key: str, expires: timedelta) -> str:
        """A URL that reads `key` without credentials until it expires."""

    @abc.abstractmethod
    def presign_put(self, key: str, expires: timedelta) -> str:
        """A URL that writes `key` with HTTP PUT until it expires."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise Unavailable when the store cannot be reached."""

    def get(self, key: str) -> bytes:
        """The whole object."""
        return b"".join(self.iter_range(key))

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """`length` bytes from `offset` (fewer at the end of the object)."""
        if length <= 0:
            raise InvalidArgument("length must be positive", reason="INVALID_RANGE")
        return b"".join(self.iter_range(key, offset, length))

    def get_or_none(self, key: str) -> bytes | None:
        """The whole object, or None when there is none under `key`."""
        try:
            return self.get(key)
        except ObjectNotFound:
            return None

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def iter_all(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under `prefix`, following pages."""
        token = ""
        while True:
            page = self.list(prefix, MAX_PAGE_SIZE, token)
            yield from page.objects
            if not page.next_page_token:
                return
            token = page.next_page_token


class LocalObjectStore(ObjectStore):
    """A directory as object store: the embedded default. Writes go to a temporary file and are renamed into place,
    so a crash never leaves a half-written object behind."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / _TMP_DIR).mkdir(exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _info(self, key: str, path: Path, etag: str | None = None) -> ObjectInfo:
        st = path.stat()
        if etag is None:
            etag = self._etag_of(path)
        return ObjectInfo(key, st.st_size, etag, datetime.fromtimestamp(st.st_mtime, UTC), _guess_type(key))

    @staticmethod
    def _etag_of(path: Path) -> str:
        digest = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(DEFAULT_CHUNK), b""):
                digest.update(chunk)
        return digest.hexdigest()

    def put(self, key: str, data: bytes, content_type: str = "") -> ObjectInfo:
        return self.put_stream(key, [data], content_type)

    def put_if(self, key: str, data: bytes, content_type: str = "", *, etag: str | None) -> ObjectInfo:
        path = self._path(key)
        if etag is None:
            return self._create_only(key, path, data)
        # One lock file for the store serialises conditional updates across processes on this machine.
        with (self.root / _TMP_DIR / ".conditional.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current = self._etag_of(path) if path.is_file() else None
                if current != etag:
                    found = "exists" if current is not None else "does not exist"
                    raise WriteConflict(
                        f"object {key!r} changed or {found}; re-read and retry",
                        reason="WRITE_CONFLICT",
                        metadata={"key": key},
                    )
                return self.put_stream(key, [data], content_type)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _create_only(self, key: str, path: Path, data: bytes) -> ObjectInfo:
        """Write to a temporary file, then hard-link it into place: the link fails if the name exists, atomically,
        with no lock (the rename of a plain put would replace it)."""
        fd, tmp = tempfile.mkstemp(dir=self.root / _TMP_DIR)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise WriteConflict(
                    f"object {key!r} exists; re-read and retry", reason="WRITE_CONFLICT", metadata={"key": key}
                ) from None
        finally:
            Path(tmp).unlink(missing_ok=True)
        return self._info(key, path, hashlib.md5(data, usedforsecurity=False).hexdigest())

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str = "") -> ObjectInfo:
        path = self._path(key)
        digest = hashlib.md5(usedforsecurity=False)
        fd, tmp = tempfile.mkstemp(dir=self.root / _TMP_DIR)
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    digest.update(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self._info(key, path, digest.hexdigest())

    def iter_range(
        self, key: str, offset: int = 0, length: int = 0, chunk_size: int = DEFAULT_CHUNK
    ) -> Iterator[bytes]:
        if offset < 0 or length < 0:
            raise InvalidArgument("offset and length must not be negative", reason="INVALID_RANGE")
        path = self._path(key)
        try:
            fh = path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key!r}", reason="OBJECT_NOT_FOUND", metadata={"key": key}) from None
        return self._read(fh, offset, length, chunk_size)

    @staticmethod
    def _read(fh: io.BufferedReader, offset: int, length: int, chunk_size: int) -> Iterator[bytes]:
        with fh:
            fh.seek(offset)
            remaining = length if length else -1
            while remaining != 0:
                want = chunk_size if remaining < 0 else min(chunk_size, remaining)
                chunk = fh.read(want)
                if not chunk:
                    return
                if remaining > 0:
                    remaining -= len(chunk)
                yield chunk

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        try:
            data = self._path(key).read_bytes()  # objects are replaced by rename: one open reads one version
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key!r}", reason="OBJECT_NOT_FOUND", metadata={"key": key}) from None
        return data, hashlib.md5(data, usedforsecurity=False).hexdigest()

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(f"no object {key!r}", reason="OBJECT_NOT_FOUND", metadata={"key": key})
        return self._info(key, path)

    def list(self, prefix: str = "", page_size: int = 0, page_token: str = "") -> ObjectPage:
        limit = _clamp_page_size(page_size)
        start_after = _decode_token(page_token)
        keys: list[str] = []
        # Walk only the folder the prefix names (its part up to the last "/"), not the whole store.
        folder = prefix.rpartition("/")[0]
        top = self.root / folder if folder and ".." not in folder.split("/") else self.root
        for dirpath, dirnames, filenames in os.walk(top):
            rel_dir = os.path.relpath(dirpath, self.root)
            if rel_dir == ".":
                dirnames[:] = [d for d in dirnames if d != _TMP_DIR]
                rel_dir = ""
            for name in filenames:
                key = f"{rel_dir}/{name}" if rel_dir else name
                key = key.replace(os.sep, "/")
                if key.startswith(prefix) and key > start_after:
                    keys.append(key)
        keys.sort()
        infos: list[ObjectInfo] = []
        for key in keys:
            if len(infos) == limit:
                break
            try:
                infos.append(self._info(key, self.root / key))
            except FileNotFoundError:
                continue  # deleted since the walk saw it
        more = len(infos) == limit and keys[-1] > infos[-1].key
        return ObjectPage(infos, _encode_token(infos[-1].key) if more else "")

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Prune empty parent folders so listings and disk stay tidy; stop at the first non-empty one.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def presign_get(self, key: str, expires: timedelta) -> str:
        # A local directory has no signing; the file URL is only useful on this machine.
        return self._path(key).as_uri()

    def presign_put(self, key: str, expires: timedelta) -> str:
        return self._path(key).as_uri()

    def check(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise Unavailable(f"object store directory {self.root} is not writable", reason="STORE_UNAVAILABLE")


class S3ObjectStore(ObjectStore):
    """MinIO or any S3-compatible server, through the `minio` client."""

    def __init__(
        self,
        endpoint: str,
        *,
        access_key: str,
        secret_key: str,
        bucket: str,
        prefix: str = "",
        region: str = "us-east-1",
        secure: bool = True,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        public_endpoint: str = "",
        cooldown_seconds: float = COOLDOWN_SECONDS,
    ) -> None:
        parsed = _endpoint(endpoint, secure)
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        # Bounded retries and timeouts: an unreachable store must fail fast as UNAVAILABLE, not hang a call. A reset
        # connection is retried; a read that timed out is not (the store is hung, not flaky): the breaker takes over.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(connect_timeout, read_timeout), read=read_timeout),
            retries=_NoTimeoutRetry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
            maxsize=16,
        )
        self.breaker = Breaker(cooldown_seconds)
        self.client = Minio(
            parsed.netloc,
            access_key=access_key,
            secret_key=secret_key,
            region=region,
            secure=parsed.scheme == "https",
            http_client=http,
        )
        # Presigned URLs are for clients, who may reach the store by another name than the services do (an
        # ingress in front of an in-cluster MinIO). Presigning is local computation: with the region given, this
        # client never makes a request.
        self.signer = self.client
        if public_endpoint:
            public = _endpoint(public_endpoint, secure)
            self.signer = Minio(
                public.netloc,
                access_key=access_key,
                secret_key=secret_key,
                region=region,
                secure=public.scheme == "https",
            )

    def _k(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _unprefixed(self, key: str) -> str:
        return key[len(self.prefix) :]

    def ensure_bucket(self) -> None:
        """Create the bucket when missing."""
        with self._errors(""):
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)

    def _errors(self, key: str, *, probe: bool = False) -> _S3Errors:
        if not probe:
            self.breaker.admit(self.bucket)
        return _S3Errors(key, self.bucket, self.breaker)

    def put(self, key: str, data: bytes, content_type: str = "") -> ObjectInfo:
        with self._errors(key):
            self.client.put_object(
                self.bucket, self._k(key), io.BytesIO(data), len(data), content_type=content_type or _guess_type(key)
            )
        return self.stat(key)

    def put_if(self, key: str, data: bytes, content_type: str = "", *, etag: str | None) -> ObjectInfo:
        headers: dict[str, str | list[str] | tuple[str]] = {"Content-Type": content_type or _guess_type(key)}
        headers |= {"If-None-Match": "*"} if etag is None else {"If-Match": f'"{etag}"'}
        try:
            with self._errors(key):
                # S3 conditional writes; the public put_object cannot send these headers (it treats unknown headers
                # as user metadata), so this uses the client's PutObject call that takes headers as given.
                self.client._put_object(self.bucket, self._k(key), data, headers=headers)
        except ObjectNotFound:
            # If-Match on a missing object: it was deleted since it was read.
            raise WriteConflict(
                f"object {key!r} does not exist", reason="WRITE_CONFLICT", metadata={"key": key}
            ) from None
        return self.stat(key)

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str = "") -> ObjectInfo:
        with self._errors(key):
            self.client.put_object(
                self.bucket,
                self._k(key),
                cast(BinaryIO, _ChunkReader(chunks)),
                length=-1,
                part_size=MULTIPART_PART_SIZE,
                content_type=content_type or _guess_type(key),
            )
        return self.stat(key)

    def iter_range(
        self, key: str, offset: int = 0, length: int = 0, chunk_size: int = DEFAULT_CHUNK
    ) -> Iterator[bytes]:
        if offset < 0 or length < 0:
            raise InvalidArgument("offset and length must not be negative", reason="INVALID_RANGE")
        with self._errors(key):
            if offset > 0 and offset >= self.stat(key).size:
                return iter(())
            response = self.client.get_object(self.bucket, self._k(key), offset=offset, length=length)
        return self._stream(response, key, chunk_size)

    def _stream(self, response: urllib3.BaseHTTPResponse, key: str, chunk_size: int) -> Iterator[bytes]:
        try:
            with self._errors(key):
                yield from response.stream(chunk_size)
        finally:
            response.close()
            response.release_conn()

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        with self._errors(key):
            response = self.client.get_object(self.bucket, self._k(key))
            try:
                return response.read(), (response.headers.get("ETag") or "").strip('"')
            finally:
                response.close()
                response.release_conn()

    def stat(self, key: str) -> ObjectInfo:
        with self._errors(key):
            obj = self.client.stat_object(self.bucket, self._k(key))
        return ObjectInfo(
            key,
            int(obj.size or 0),
            (obj.etag or "").strip('"'),
            obj.last_modified or datetime.now(UTC),
            obj.content_type or "application/octet-stream",
        )

    def list(self, prefix: str = "", page_size: int = 0, page_token: str = "") -> ObjectPage:
        limit = _clamp_page_size(page_size)
        start_after = _decode_token(page_token)
        infos: list[ObjectInfo] = []
        more = False
        with self._errors(prefix):
            listing = self.client.list_objects(
                self.bucket,
                prefix=self.prefix + prefix,
                recursive=True,
                start_after=self.prefix + start_after if start_after else None,
            )
            for obj in listing:
                if len(infos) == limit:
                    more = True
                    break
                name = obj.object_name or ""
                infos.append(
                    ObjectInfo(
                        self._unprefixed(name),
                        int(obj.size or 0),
                        (obj.etag or "").strip('"'),
                        obj.last_modified or datetime.now(UTC),
                        _guess_type(name),
                    )
                )
        return ObjectPage(infos, _encode_token(infos[-1].key) if more else "")

    def delete(self, key: str) -> None:
        with self._errors(key):
            self.client.remove_object(self.bucket, self._k(key))

    def presign_get(self, key: str, expires: timedelta) -> str:
        with self._errors(key):
            return self.signer.presigned_get_object(self.bucket, self._k(key), expires=expires)

    def presign_put(self, key: str, expires: timedelta) -> str:
        with self._errors(key):
            return self.signer.presigned_put_object(self.bucket, self._k(key), expires=expires)

    def check(self) -> None:
        # The readiness probe passes the breaker: it is how a store that came back is noticed.
        with self._errors("", probe=True):
            if not self.client.bucket_exists(self.bucket):
                raise Unavailable(f"bucket {self.bucket!r} does not exist", reason="STORE_UNAVAILABLE")


class _NoTimeoutRetry(urllib3.Retry):
    """urllib3's retries, except that a read timeout is final."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: urllib3.BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: urllib3.connectionpool.ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if isinstance(error, urllib3.exceptions.ReadTimeoutError):
            raise urllib3.exceptions.MaxRetryError(cast(Any, _pool), url or "", error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)


class Breaker:
    """Fails calls at once while the store is known to be unreachable.

    A transport failure (refused, reset past retries, or no answer within the read timeout) opens the breaker for
    `cooldown_seconds`: calls made meanwhile raise UNAVAILABLE with a retry delay instead of each waiting out its own
    timeout, so a hung store pushes back on callers within one timeout. After the cooldown one call at a time tries
    the store (the others still fail at once); any answer, the readiness probe's included, closes the breaker.
    """

    def __init__(self, cooldown_seconds: float) -> None:
        self.cooldown_seconds = cooldown_seconds
        self._tripped = False
        self._open_until = 0.0
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._tripped

    def admit(self, bucket: str) -> None:
        if not self._tripped:
            return
        with self._lock:
            remaining = self._open_until - time.monotonic()
            if remaining <= 0:
                # This call is the trial; the others wait out another cooldown unless it succeeds first.
                self._open_until = time.monotonic() + self.cooldown_seconds
                return
        raise Unavailable(
            "object store unreachable; retry shortly",
            reason="STORE_UNAVAILABLE",
            metadata={"bucket": bucket},
            retry_delay_seconds=max(remaining, 0.5),
        )

    def trip(self) -> None:
        with self._lock:
            self._tripped = True
            self._open_until = time.monotonic() + self.cooldown_seconds

    def reset(self) -> None:
        with self._lock:
            self._tripped = False
            self._open_until = 0.0


class _S3Errors:
    """Maps client and transport errors to domain errors, and keeps the breaker informed."""

    def __init__(self, key: str, bucket: str, breaker: Breaker | None = None) -> None:
        self.key = key
        self.bucket = bucket
        self.breaker = breaker

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        # The store answered (even an error answer): it is reachable.
        if (exc is None or isinstance(exc, S3Error)) and self.breaker is not None and self.breaker.is_open:
            self.breaker.reset()
        if exc is None:
            return
        if isinstance(exc, S3Error) and exc.code in {"PreconditionFailed", "ConditionalRequestConflict"}:
            raise WriteConflict(
                f"object {self.key!r} changed or exists; re-read and retry",
                reason="WRITE_CONFLICT",
                metadata={"key": self.key},
            ) from exc
        if isinstance(exc, S3Error) and exc.code in {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}:
            raise ObjectNotFound(
                f"no object {self.key!r}", reason="OBJECT_NOT_FOUND", metadata={"key": self.key}
            ) from exc
        if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
            answered = isinstance(exc, urllib3.exceptions.MaxRetryError) and isinstance(
                exc.reason, urllib3.exceptions.ResponseError
            )  # the store answered, with 5xx each time: busy, not gone
            if self.breaker is not None and not answered:
                self.breaker.trip()
            raise Unavailable(
                f"object store unreachable: {type(exc).__name__}",
                reason="STORE_UNAVAILABLE",
                metadata={"bucket": self.bucket},
                retry_delay_seconds=1.0,
            ) from exc


class _ChunkReader(io.RawIOBase):
    """A file-like view of an iterable of byte chunks, so `put_object` can stream it without buffering it all."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            out = self._buffer + b"".join(self._chunks)
            self._buffer = b""
            return out
        pieces = [self._buffer]
        have = len(self._buffer)
        while have < size:
            nxt = next(self._chunks, None)
            if nxt is None:
                break
            pieces.append(nxt)
            have += len(nxt)
        joined = b"".join(pieces)
        out, self._buffer = joined[:size], joined[size:]
        return out


def _endpoint(endpoint: str, secure: bool) -> urllib.parse.SplitResult:
    """`host:port` or a URL; without a scheme, `secure` picks https or http."""
    return urllib.parse.urlsplit(endpoint if "://" in endpoint else f"{'https' if secure else 'http'}://{endpoint}")


def open_store(settings: StoreSettings) -> ObjectStore:
    """The adapter named by `settings.url`: `file:///path` or `s3://bucket[/prefix]`."""
    parsed = urllib.parse.urlsplit(settings.url)
    if parsed.scheme == "file":
        # file:///abs/path, or file://./rel/path relative to the working directory.
        raw = urllib.parse.unquote(parsed.path)
        path = "." + raw if parsed.netloc == "." else raw
        return LocalObjectStore(path)
    if parsed.scheme == "s3":
        store = S3ObjectStore(
            settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            bucket=parsed.netloc,
            prefix=parsed.path,
            region=settings.s3_region,
            secure=settings.s3_secure,
            public_endpoint=settings.s3_public_endpoint,
            read_timeout=settings.s3_timeout_seconds,
        )
        store.ensure_bucket()
        return store
    raise InvalidArgument(f"unsupported object store URL {settings.url!r}", reason="INVALID_STORE_URL")
