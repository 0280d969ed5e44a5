"""API keys: salted HMAC storage, constant-time verification, per-project access."""

from __future__ import annotations

import hmac

import pytest
from sqlalchemy import select

from labelwise.catalog import CatalogError, ProjectNotFound
from labelwise.catalog.models import ApiKeyRow
from labelwise.serving.auth import (
    create_api_key,
    hash_secret,
    new_key,
    parse_key,
    revoke_api_key,
    verify_api_key,
)


@pytest.fixture
def projects(catalog):
    for name in ("alpha", "beta"):
        catalog.create_project(name, ["a", "b"])
    return catalog


def test_only_a_salted_hash_is_stored(projects):
    key, record = create_api_key(projects, ["alpha"])
    key2, _ = create_api_key(projects, ["alpha"])
    key_id, secret = parse_key(key)
    with projects.session() as s:
        rows = s.scalars(select(ApiKeyRow)).all()
    assert len(rows) == 2 and key != key2
    row = next(r for r in rows if r.key_id == key_id)
    assert secret not in (row.digest, row.salt) and key not in row.digest
    assert row.digest == hash_secret(secret, bytes.fromhex(row.salt))
    assert rows[0].salt != rows[1].salt  # per-key salt
    assert record.key_id == key_id and record.projects == ("alpha",)


def _tamper(key: str) -> str:
    last = key[-1]
    return key[:-1] + ("A" if last != "A" else "B")


@pytest.mark.parametrize(
    ("make", "valid"),
    [
        (lambda k: k, True),
        (lambda k: f"  {k} ", True),  # surrounding blanks are tolerated
        (_tamper, False),  # wrong secret, right key id
        (lambda k: "lw_000000000000_" + k.split("_", 2)[2], False),  # unknown key id
        (lambda k: k[:-1], False),  # too short
        (lambda k: k.replace("lw_", "xx_"), False),
        (lambda k: "", False),
        (lambda k: None, False),
        (lambda k: "Bearer " + k, False),
    ],
    ids=[
        "exact",
        "blanks",
        "wrong-secret",
        "unknown-id",
        "short",
        "prefix",
        "empty",
        "none",
        "scheme",
    ],
)
def test_verify(projects, make, valid):
    key, _ = create_api_key(projects, ["alpha"])
    assert (verify_api_key(projects, make(key)) is not None) is valid


def test_comparison_is_constant_time(projects, monkeypatch):
    key, _ = create_api_key(projects, ["alpha"])
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("labelwise.serving.auth.hmac.compare_digest", spy)
    assert verify_api_key(projects, key) is not None
    assert verify_api_key(projects, _tamper(key)) is None
    assert (
        verify_api_key(projects, "lw_000000000000_" + "x" * 43) is None
    )  # unknown id: compared too
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("projects_arg", "all_projects", "access"),
    [
        (["alpha"], False, {"alpha": True, "beta": False, "gamma": False}),
        (["alpha", "beta"], False, {"alpha": True, "beta": True, "gamma": False}),
        ([], True, {"alpha": True, "beta": True, "gamma": True}),
    ],
)
def test_project_access(projects, projects_arg, all_projects, access):
    key, _ = create_api_key(projects, projects_arg, all_projects)
    record = verify_api_key(projects, key)
    assert {name: record.can_access(name) for name in access} == access


def test_create_refuses_bad_scopes(projects):
    with pytest.raises(CatalogError, match="at least one --project or --all"):
        create_api_key(projects, [])
    with pytest.raises(ProjectNotFound, match="unknown project 'nope'"):
        create_api_key(projects, ["nope"])


def test_revoked_keys_stop_working(projects):
    key, record = create_api_key(projects, ["alpha"])
    assert revoke_api_key(projects, record.key_id) is True
    assert verify_api_key(projects, key) is None
    assert revoke_api_key(projects, record.key_id) is False


def test_new_keys_parse():
    key, key_id, secret = new_key()
    assert parse_key(key) == (key_id, secret)
    with pytest.raises(ValueError, match="salt must be 16 bytes; got 3"):
        hash_secret("x", b"abc")


def test_key_cache_skips_the_database_until_the_ttl(projects):
    from labelwise.serving.auth import KeyCache

    key, record = create_api_key(projects, ["alpha"])
    now = [100.0]
    cache = KeyCache(ttl_s=10, clock=lambda: now[0])
    assert cache.verify(projects, key).key_id == record.key_id
    revoke_api_key(projects, record.key_id)
    assert cache.verify(projects, key) is not None  # cached: revocation lands within the TTL
    now[0] += 10.5
    assert cache.verify(projects, key) is None
    assert cache.verify(projects, _tamper(key)) is None and cache.verify(projects, None) is None
