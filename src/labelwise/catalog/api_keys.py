"""Catalog operations on the serving API's keys: store one, look one up by its public id, revoke.

The catalog stores what :mod:`labelwise.serving.auth` hands it (the public ``key_id``, the salt
and the salted digest of the secret) and never sees a secret; how keys are made, hashed and
verified stays in serving.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from labelwise.catalog.base import CatalogMixin, rows_updated
from labelwise.catalog.models import ApiKeyRow, ProjectRow, utcnow
from labelwise.catalog.records import CatalogError, ProjectNotFound


@dataclass(frozen=True)
class ApiKeyRecord:
    """A stored API key (no secret: only its salt and salted digest).

    Attributes:
        key_id: the public handle (the part between ``lw_`` and the secret).
        salt: the per-key random salt.
        digest: hex digest of the secret keyed by ``salt``.
        projects: project names the key may use (ignored when ``all_projects``).
        all_projects: access to every project, present and future.
        label: a note (who holds the key).
        created_at: when it was stored (UTC).
        revoked_at: when it was revoked (UTC); None while it is usable.
    """

    key_id: str
    salt: bytes
    digest: str
    projects: tuple[str, ...]
    all_projects: bool
    label: str | None
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def _api_key_record(row: ApiKeyRow) -> ApiKeyRecord:
    from labelwise.catalog.outbox import aware  # not at the top: it imports the Catalog

    return ApiKeyRecord(
        key_id=row.key_id,
        salt=bytes.fromhex(row.salt),
        digest=row.digest,
        projects=tuple(row.projects or ()),
        all_projects=bool(row.all_projects),
        label=row.label,
        created_at=aware(row.created_at),
        revoked_at=None if row.revoked_at is None else aware(row.revoked_at),
    )


class ApiKeysMixin(CatalogMixin):
    """API keys of :class:`~labelwise.catalog.Catalog`."""

    def add_api_key(
        self,
        key_id: str,
        salt: bytes,
        digest: str,
        projects: Sequence[str] = (),
        all_projects: bool = False,
        label: str | None = None,
    ) -> ApiKeyRecord:
        """Store a new key in one transaction; nothing is stored when it is refused.

        Raises:
            CatalogError: an empty ``key_id``, ``salt`` or ``digest``; no project while not
                ``all_projects``; or a ``key_id`` already stored.
            ProjectNotFound: a project name the catalog does not hold (the message lists the
                known ones).
        """
        names = list(dict.fromkeys(str(p) for p in projects))
        if not key_id or not salt or not digest:
            raise CatalogError(
                f"an API key needs a key_id, a salt and a digest; got key_id={key_id!r}, "
                f"{len(salt)} salt bytes, a digest of {len(digest)} characters"
            )
        if not names and not all_projects:
            raise CatalogError(
                "an API key needs at least one project or all_projects=True; got neither"
            )
        try:
            with self.session() as s, s.begin():
                known = set(s.scalars(select(ProjectRow.name)).all())
                unknown = [n for n in names if n not in known]
                if unknown:
                    raise ProjectNotFound(
                        f"unknown project {unknown[0]!r}; known projects: "
                        f"{sorted(known) or 'none'} (create one with `labelwise project create`)"
                    )
                row = ApiKeyRow(
                    key_id=key_id,
                    salt=salt.hex(),
                    digest=digest,
                    projects=names,
                    all_projects=all_projects,
                    label=label,
                    created_at=utcnow(),
                )
                s.add(row)
                s.flush()
                return _api_key_record(row)
        except IntegrityError:
            raise CatalogError(
                f"an API key with key_id {key_id!r} is already stored; expected a new key_id"
            ) from None

    def api_key(self, key_id: str) -> ApiKeyRecord | None:
        """The key stored under ``key_id``, revoked or not; None when there is none."""
        with self.session() as s:
            row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id))
            return None if row is None else _api_key_record(row)

    def revoke_api_key(self, key_id: str) -> bool:
        """Revoke the key stored under ``key_id`` (compare-and-set); True when this call revoked
        it, False when there is no such key or it was revoked before."""
        with self.session() as s, s.begin():
            return rows_updated(s, update(ApiKeyRow)
                                .where(ApiKeyRow.key_id == key_id, ApiKeyRow.revoked_at.is_(None))
                                .values(revoked_at=utcnow())) == 1
