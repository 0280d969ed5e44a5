"""The base of the catalog's mixins: what they need from :class:`~labelwise.catalog.Catalog`."""

from __future__ import annotations

from sqlalchemy.orm import Session


class CatalogMixin:
    """Declares :meth:`session`, which :class:`~labelwise.catalog.Catalog` provides."""

    def session(self) -> Session:
        """A new ORM session on the catalog's database."""
        raise NotImplementedError  # pragma: no cover - Catalog overrides it
