"""The asset service's HTTP endpoint for signed URLs on a local-directory store (S3 serves its own presigned URLs).

`GET /blobs/{key}?expires=…&signature=…` streams an object (with `Range: bytes=a-b`); `PUT` of the same form stores
a direct upload into its staging key. Signatures are HMAC-SHA256 over method, key and expiry (see UrlSigner); an
expired or forged URL gets 403, and nothing but staging keys can be written.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

from shoal.asset.assets import CHUNK, UrlSigner
from shoal.kit.errors import NotFound
from shoal.kit.objectstore import ObjectStore

log = logging.getLogger("shoal.asset.http")

_RANGE: Final = re.compile(r"^bytes=(\d+)-(\d*)$")
_STAGING: Final = re.compile(r"^assets/[a-z][a-z0-9-]*/[a-z][a-z0-9-]*/staging/[0-9a-f]{32}$")


class BlobServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, store: ObjectStore, signer: UrlSigner, max_bytes: int) -> None:
        self.store, self.signer, self.max_bytes = store, signer, max_bytes
        super().__init__((host, port), _Handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="shoal-asset-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: BlobServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug(format, *args)

    def _authorised(self, method: str) -> str | None:
        parsed = urllib.parse.urlsplit(self.path)
        if not parsed.path.startswith("/blobs/"):
            self._fail(HTTPStatus.NOT_FOUND, "not found")
            return None
        key = urllib.parse.unquote(parsed.path.removeprefix("/blobs/"))
        query = urllib.parse.parse_qs(parsed.query)
        expires = query.get("expires", [""])[0]
        signature = query.get("signature", [""])[0]
        if not self.server.signer.verify(method, key, expires, signature):
            self._fail(HTTPStatus.FORBIDDEN, "the URL is expired or its signature does not match")
            return None
        return key

    def _fail(self, status: HTTPStatus, message: str) -> None:
        body = (message + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        key = self._authorised("GET")
        if key is None:
            return
        try:
            info = self.server.store.stat(key)
        except NotFound:
            self._fail(HTTPStatus.NOT_FOUND, "no such object")
            return
        start, length, status = 0, info.size, HTTPStatus.OK
        wanted = self.headers.get("Range")
        if wanted:
            found = _RANGE.match(wanted.strip())
            end = int(found.group(2)) if found and found.group(2) else info.size - 1
            if not found or int(found.group(1)) >= info.size or end < int(found.group(1)):
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{info.size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = int(found.group(1))
            length = min(end, info.size - 1) - start + 1
            status = HTTPStatus.PARTIAL_CONTENT
        self.send_response(status)
        self.send_header("Content-Type", info.content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{info.etag}"')
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{start + length - 1}/{info.size}")
        self.end_headers()
        for chunk in self.server.store.iter_range(key, start, length, CHUNK):
            self.wfile.write(chunk)

    def do_PUT(self) -> None:
        key = self._authorised("PUT")
        if key is None:
            return
        if not _STAGING.match(key):
            self._fail(HTTPStatus.FORBIDDEN, "only direct-upload URLs accept PUT")
            return
        try:
            size = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._fail(HTTPStatus.LENGTH_REQUIRED, "send Content-Length")
            return
        if size > self.server.max_bytes:
            self._fail(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"larger than the {self.server.max_bytes:,}-byte limit")
            return

        def body() -> Iterator[bytes]:
            left = size
            while left > 0:
                chunk = self.rfile.read(min(CHUNK, left))
                if not chunk:
                    raise ConnectionError("the client stopped sending")
                left -= len(chunk)
                yield chunk

        try:
            info = self.server.store.put_stream(key, body())
        except ConnectionError:
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("ETag", f'"{info.etag}"')
        self.send_header("Content-Length", "0")
        self.end_headers()
