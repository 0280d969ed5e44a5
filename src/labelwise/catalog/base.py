"""The base of the catalog's mixins: what they need from :class:`~labelwise.catalog.Catalog`,
and :func:`rows_updated`, the one way the catalog counts what an UPDATE changed."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Update
from sqlalchemy.orm import Session


class CatalogMixin:
    """Declares :meth:`session`, which :class:`~labelwise.catalog.Catalog` provides."""

    def session(self) -> Session:
        """A new ORM session on the catalog's database."""
        raise NotImplementedError  # pragma: no cover - Catalog overrides it


def rows_updated(session: Session, statement: Update) -> int:
    """Run an UPDATE in ``session`` and return how many rows it changed (0 when the driver does
    not say). Compare-and-set moves test this against 1. An UPDATE gives a CursorResult, which
    has ``rowcount``; ``Session.execute``'s stubs only promise a Result, hence the cast."""
    result = cast(CursorResult[Any], session.execute(statement))
    return int(result.rowcount or 0)
