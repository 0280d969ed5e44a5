"""API keys: creation, salted hashing, constant-time verification and per-project access.

A key looks like ``lw_<key_id>_<secret>``: ``key_id`` (12 hex characters) is a public lookup
handle, ``secret`` 32 random bytes (URL-safe base64). The catalog stores ``key_id``, a random
16-byte salt and ``HMAC-SHA256(salt, secret)`` (:mod:`labelwise.catalog.api_keys`: add, look up,
revoke); the secret itself is shown once, at creation.
Verification recomputes the HMAC and compares with :func:`hmac.compare_digest` (also against a
dummy digest when the ``key_id`` is unknown, so both paths cost the same).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from labelwise.catalog import Catalog, CatalogError

KEY_PREFIX = "lw"
_KEY = re.compile(r"^lw_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_DUMMY_SALT = bytes(16)


@dataclass(frozen=True)
class ApiKey:
    """A verified key: what it may touch.

    Attributes:
        key_id: the public 12-hex handle (safe to log).
        projects: project names the key may use (ignored when ``all_projects``).
        all_projects: access to every project, present and future, and to admin endpoints.
    """

    key_id: str
    projects: tuple[str, ...]
    all_projects: bool = False
    label: str | None = None

    def can_access(self, project: str) -> bool:
        return self.all_projects or project in self.projects


def hash_secret(secret: str, salt: bytes) -> str:
    """Hex HMAC-SHA256 of ``secret`` keyed by ``salt`` (16 bytes)."""
    if len(salt) != 16:
        raise ValueError(f"salt must be 16 bytes; got {len(salt)}")
    return hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest()


def parse_key(key: str) -> tuple[str, str] | None:
    """(key_id, secret) of a well-formed key, else None."""
    match = _KEY.fullmatch(key.strip()) if isinstance(key, str) else None
    return (match.group(1), match.group(2)) if match else None


def new_key() -> tuple[str, str, str]:
    """A fresh (full key, key_id, secret)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"{KEY_PREFIX}_{key_id}_{secret}", key_id, secret


def create_api_key(
    catalog: Catalog,
    projects: Sequence[str] = (),
    all_projects: bool = False,
    label: str | None = None,
) -> tuple[str, ApiKey]:
    """Store a new key (:meth:`Catalog.add_api_key`); returns (the full key, shown only now,
    and its record).

    Raises:
        CatalogError: no project and not ``all_projects``.
        ProjectNotFound: an unknown project name (the message lists the known ones).
    """
    names = list(dict.fromkeys(str(p) for p in projects))
    if not names and not all_projects:
        raise CatalogError("an API key needs at least one --project or --all; got neither")
    key, key_id, secret = new_key()
    salt = secrets.token_bytes(16)
    stored = catalog.add_api_key(key_id, salt, hash_secret(secret, salt), names, all_projects,
                                 label)
    return key, ApiKey(stored.key_id, stored.projects, stored.all_projects, stored.label)


def verify_api_key(catalog: Catalog, key: str | None) -> ApiKey | None:
    """The key's record when ``key`` is a valid, unrevoked key; None otherwise."""
    parsed = parse_key(key) if key else None
    key_id, secret = parsed if parsed else ("", "")
    stored = catalog.api_key(key_id) if parsed else None
    salt = stored.salt if stored is not None else _DUMMY_SALT
    expected = stored.digest if stored is not None else hash_secret("", _DUMMY_SALT)
    matches = hmac.compare_digest(hash_secret(secret, salt), expected)
    if stored is None or not parsed or not matches or stored.revoked:
        return None
    return ApiKey(stored.key_id, stored.projects, stored.all_projects, stored.label)


def revoke_api_key(catalog: Catalog, key_id: str) -> bool:
    """Revoke by public ``key_id`` (:meth:`Catalog.revoke_api_key`); True when a key was
    revoked, False when there is no active key with that id."""
    return catalog.revoke_api_key(key_id)


class KeyCache:
    """Verified keys for ``ttl_s`` seconds, so a request costs no database round trip.

    Entries are keyed by the SHA-256 of the presented key (the key itself is not kept). A
    revoked key stops working within ``ttl_s``. Invalid keys are not cached.
    """

    def __init__(
        self, ttl_s: float = 10.0, clock: Callable[[], float] | None = None, max_entries: int = 1024
    ) -> None:
        import time

        self.ttl_s = ttl_s
        self.clock = clock or time.monotonic
        self.max_entries = max_entries
        self._entries: dict[bytes, tuple[ApiKey, float]] = {}

    def verify(self, catalog: Catalog, key: str | None) -> ApiKey | None:
        if not key:
            return verify_api_key(catalog, key)
        digest = hashlib.sha256(key.strip().encode()).digest()
        now = self.clock()
        hit = self._entries.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        found = verify_api_key(catalog, key)
        if found is not None and self.ttl_s > 0:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[digest] = (found, now + self.ttl_s)
        return found
