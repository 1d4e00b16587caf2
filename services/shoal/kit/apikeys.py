"""API keys: issued with a secret shown once, stored hashed in the catalog of the object store, verified per call.

A secret looks like `shoal_<key id>_<random>`. The key id locates the record without a scan; only the SHA-256 of the
whole secret is stored. The secrets are 256-bit random tokens, so a fast hash is the right tool (a slow password hash
would only add latency to every call); comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shoal.kit.context import Principal
from shoal.kit.errors import Aborted, FieldViolation, InvalidArgument
from shoal.kit.objectstore import ObjectNotFound, ObjectStore, WriteConflict

KEY_PREFIX: Final = "catalog/api_keys/"
ROLES: Final = ("READER", "WRITER", "ADMIN")
ADMIN_KEY_ID: Final = "admin"
_SECRET_RE: Final = re.compile(r"^shoal_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$")
_KEY_ID_RE: Final = re.compile(r"^[0-9a-f]{16}$")
_PROJECT_RE: Final = re.compile(r"^projects/[a-z][a-z0-9-]{0,62}$")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKeyRecord:
    """What the catalog keeps of a key: never the secret."""

    key_id: str
    display_name: str
    projects: tuple[str, ...]
    role: str
    secret_sha256: str
    key_prefix: str
    create_time: str
    expire_time: str = ""

    def expired(self, now: datetime | None = None) -> bool:
        if not self.expire_time:
            return False
        return datetime.fromisoformat(self.expire_time) <= (now or datetime.now(UTC))

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ApiKeyRecord:
        raw = json.loads(data)
        raw["projects"] = tuple(raw.get("projects", ()))
        return cls(**raw)


def issue_key(
    store: ObjectStore,
    display_name: str,
    projects: Iterable[str],
    role: str,
    expire_time: datetime | None = None,
) -> tuple[ApiKeyRecord, str]:
    """Create a key; returns its record and the secret (the only time the secret exists outside the caller)."""
    scoped = tuple(sorted(set(projects)))
    violations = [
        FieldViolation(f"api_key.projects[{i}]", f"{p!r} is not a project name (projects/{{project}})")
        for i, p in enumerate(scoped)
        if not _PROJECT_RE.fullmatch(p)
    ]
    if role not in ROLES:
        violations.append(FieldViolation("api_key.role", f"must be one of {', '.join(ROLES)}"))
    if not scoped:
        violations.append(FieldViolation("api_key.projects", "name at least one project"))
    if violations:
        raise InvalidArgument.of(violations)
    key_id = secrets.token_hex(8)
    secret = f"shoal_{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKeyRecord(
        key_id=key_id,
        display_name=display_name,
        projects=scoped,
        role=role,
        secret_sha256=_digest(secret),
        key_prefix=secret[:14],
        create_time=datetime.now(UTC).isoformat(),
        expire_time=expire_time.isoformat() if expire_time else "",
    )
    store.put(KEY_PREFIX + key_id + ".json", record.to_json(), "application/json")
    return record, secret


def revoke_key(store: ObjectStore, key_id: str) -> None:
    """Remove a key's record; verifiers stop accepting it within their cache time (and at once where they consult the
    revocation marker, see `revoked_marker`)."""
    store.delete(KEY_PREFIX + key_id + ".json")


def drop_project(store: ObjectStore, key_id: str, project: str) -> bool:
    """Take `project` off a key's scope: the key is revoked when it named nothing else (True), else rewritten under
    its etag, so a concurrent revocation or change is never undone. Blocking."""
    key = KEY_PREFIX + key_id + ".json"
    for _ in range(20):
        try:
            body, etag = store.get_with_etag(key)
            record = ApiKeyRecord.from_json(body)
        except ObjectNotFound:
            return True  # revoked meanwhile
        rest = tuple(p for p in record.projects if p != project)
        if not rest:
            revoke_key(store, key_id)
            return True
        if rest == record.projects:
            return False
        try:
            store.put_if(key, replace(record, projects=rest).to_json(), "application/json", etag=etag)
        except WriteConflict:
            continue
        return False
    raise Aborted(f"API key {key_id} kept changing; retry", reason="WRITE_CONFLICT")


# How long a revocation is announced in Redis: longer than any service caches a key's record.
REVOCATION_MARKER_SECONDS: Final = 24 * 3600


def revoked_marker(key_id: str) -> str:
    """The Redis key that tells every service a key was revoked, so none accepts it from its cache meanwhile."""
    return f"shoal:apikey:revoked:{key_id}"


def get_key(store: ObjectStore, key_id: str) -> ApiKeyRecord | None:
    """A key's record, or None."""
    if not _KEY_ID_RE.fullmatch(key_id):
        return None
    try:
        return ApiKeyRecord.from_json(store.get(KEY_PREFIX + key_id + ".json"))
    except ObjectNotFound:
        return None


def list_keys(store: ObjectStore) -> list[ApiKeyRecord]:
    """Every key's record, oldest first."""
    raw = (store.get_or_none(info.key) for info in store.iter_all(KEY_PREFIX) if info.key.endswith(".json"))
    records = [ApiKeyRecord.from_json(data) for data in raw if data is not None]  # None: revoked meanwhile
    return sorted(records, key=lambda r: (r.create_time, r.key_id))


@dataclass
class ApiKeyVerifier:
    """Checks presented secrets: the admin key from the environment, else the hashed records in the catalog."""

    store: ObjectStore | None
    admin_key: str
    cache_seconds: float = 30.0
    # Where revocations are announced (the suite's Redis): a revoked key is refused by the next call on any
    # service, not only once the cached record expires.
    redis: Redis | None = None
    _cache: dict[str, tuple[float, ApiKeyRecord | None]] = field(default_factory=dict)

    async def revoked(self, key_id: str) -> bool:
        """True when `key_id` was revoked since its record was cached. Without Redis (or while it is down) the
        cache time bounds how long a revoked key still works."""
        if self.redis is None:
            return False
        try:
            return bool(await self.redis.exists(revoked_marker(key_id)))
        except (RedisError, OSError):
            return False

    def __post_init__(self) -> None:
        self._admin_digest = _digest(self.admin_key)

    def verify_admin(self, secret: str) -> Principal | None:
        if hmac.compare_digest(_digest(secret), self._admin_digest):
            return Principal(key_id=ADMIN_KEY_ID, role="ADMIN", admin=True)
        return None

    def needs_lookup(self, secret: str) -> str | None:
        """The key id to load, when the secret is well-formed and its record is not cached."""
        match = _SECRET_RE.fullmatch(secret)
        if match is None:
            return None
        cached = self._cache.get(match.group(1))
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            return None
        return match.group(1)

    def load(self, key_id: str) -> None:
        """Fetch a record into the cache (blocking: call it off the event loop)."""
        record: ApiKeyRecord | None
        if self.store is None:
            record = None
        else:
            try:
                record = ApiKeyRecord.from_json(self.store.get(KEY_PREFIX + key_id + ".json"))
            except ObjectNotFound:
                record = None
        self._cache[key_id] = (time.monotonic(), record)

    def verify_cached(self, secret: str) -> Principal | None:
        """The principal of a secret whose record is cached, or None."""
        admin = self.verify_admin(secret)
        if admin is not None:
            return admin
        match = _SECRET_RE.fullmatch(secret)
        if match is None:
            return None
        cached = self._cache.get(match.group(1))
        record = cached[1] if cached else None
        if record is None or record.expired() or not hmac.compare_digest(_digest(secret), record.secret_sha256):
            return None
        return Principal(
            key_id=record.key_id,
            role=record.role,
            projects=frozenset(record.projects),
            admin=False,
            expire_time=record.expire_time,
        )

    def verify(self, secret: str) -> Principal | None:
        """Blocking verification, for code that is not on the event loop."""
        key_id = self.needs_lookup(secret)
        if key_id is not None and self.verify_admin(secret) is None:
            self.load(key_id)
        return self.verify_cached(secret)
