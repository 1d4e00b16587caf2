from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from shoal.kit.apikeys import KEY_PREFIX, ApiKeyVerifier, issue_key, revoke_key
from shoal.kit.errors import InvalidArgument
from shoal.kit.objectstore import LocalObjectStore

ADMIN = "admin-key-0123456789abcdef"


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path)


def test_issued_key_verifies_with_its_scope(store: LocalObjectStore) -> None:
    record, secret = issue_key(store, "ci", ["projects/beta", "projects/alpha"], "WRITER")
    principal = ApiKeyVerifier(store, ADMIN).verify(secret)
    assert principal is not None
    assert principal.projects == frozenset({"projects/alpha", "projects/beta"})
    assert principal.role == "WRITER"
    assert principal.may_access("projects/alpha")
    assert not principal.may_access("projects/gamma")
    assert not principal.admin
    assert record.key_prefix == secret[:14]


def test_only_the_hash_is_stored(store: LocalObjectStore) -> None:
    record, secret = issue_key(store, "ci", ["projects/alpha"], "READER")
    stored = store.get(KEY_PREFIX + record.key_id + ".json")
    assert secret.encode() not in stored
    assert secret.split("_", 2)[2].encode() not in stored  # the random part (it may itself hold "_")
    assert record.secret_sha256.encode() in stored


def test_admin_key_is_admin_everywhere(store: LocalObjectStore) -> None:
    principal = ApiKeyVerifier(store, ADMIN).verify(ADMIN)
    assert principal is not None
    assert principal.admin
    assert principal.may_access("projects/anything")


@pytest.mark.parametrize("secret", ["", "x", ADMIN + "x", "shoal_0123456789abcdef_" + "A" * 43])
def test_wrong_secrets_are_refused(store: LocalObjectStore, secret: str) -> None:
    assert ApiKeyVerifier(store, ADMIN).verify(secret) is None


def test_tampered_secret_with_a_real_key_id_is_refused(store: LocalObjectStore) -> None:
    _, secret = issue_key(store, "ci", ["projects/alpha"], "READER")
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert ApiKeyVerifier(store, ADMIN).verify(tampered) is None


def test_expired_and_revoked_keys_are_refused(store: LocalObjectStore) -> None:
    _, expired = issue_key(
        store, "old", ["projects/alpha"], "READER", expire_time=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert ApiKeyVerifier(store, ADMIN).verify(expired) is None
    record, secret = issue_key(store, "ci", ["projects/alpha"], "READER")
    verifier = ApiKeyVerifier(store, ADMIN, cache_seconds=0)
    assert verifier.verify(secret) is not None
    revoke_key(store, record.key_id)
    assert verifier.verify(secret) is None


def test_cache_avoids_a_store_read_per_call(store: LocalObjectStore) -> None:
    _, secret = issue_key(store, "ci", ["projects/alpha"], "READER")
    verifier = ApiKeyVerifier(store, ADMIN, cache_seconds=60)
    assert verifier.needs_lookup(secret) is not None
    verifier.verify(secret)
    assert verifier.needs_lookup(secret) is None
    assert verifier.verify_cached(secret) is not None


def test_issue_validates_every_field(store: LocalObjectStore) -> None:
    with pytest.raises(InvalidArgument) as info:
        issue_key(store, "bad", ["project/alpha", "projects/Bad_Name"], "OWNER")
    fields = {v.field for v in info.value.violations}
    assert fields == {"api_key.projects[0]", "api_key.projects[1]", "api_key.role"}
    with pytest.raises(InvalidArgument) as info:
        issue_key(store, "none", [], "READER")
    assert [v.field for v in info.value.violations] == ["api_key.projects"]
