"""The base of the catalog's mixins: what they need from :class:`~labelwise.catalog.Catalog`,
:func:`rows_updated`, the one way the catalog counts what an UPDATE changed, and
:func:`insert_new`, the one way it bulk-inserts rows that may already be stored."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Update, select
from sqlalchemy.orm import Session


class CatalogMixin:
    """Declares :meth:`session`, which :class:`~labelwise.catalog.Catalog` provides."""

    def session(self) -> Session:
        """A new ORM session on the catalog's database."""
        raise NotImplementedError  # pragma: no cover - Catalog overrides it


IN_CHUNK = 5000
"""Most values one ``IN (...)`` list holds (SQLite caps the variables of one statement)."""
_T = TypeVar("_T")


def in_chunks(values: Sequence[_T], size: int = IN_CHUNK) -> Iterator[list[_T]]:
    """``values`` in lists of at most ``size``: one query each, however many ids a caller
    passes (none: no chunk)."""
    items = list(values)
    for start in range(0, len(items), size):
        yield items[start:start + size]


def rows_updated(session: Session, statement: Update) -> int:
    """Run an UPDATE in ``session`` and return how many rows it changed (0 when the driver does
    not say). Compare-and-set moves test this against 1. An UPDATE gives a CursorResult, which
    has ``rowcount``; ``Session.execute``'s stubs only promise a Result, hence the cast."""
    result = cast(CursorResult[Any], session.execute(statement))
    return int(result.rowcount or 0)


def insert_new(session: Session, model: Any, rows: Sequence[Mapping[str, Any]],
               unique: Sequence[str]) -> int:
    """Insert ``rows`` (column -> value) of the ORM ``model`` in one statement, skipping every
    row whose ``unique`` columns match a stored row (or an earlier row of ``rows``); returns how
    many were inserted.

    ``INSERT ... ON CONFLICT (unique) DO NOTHING RETURNING id`` on SQLite and PostgreSQL: two
    writers of the same rows at once (two auto-label shards, a rerun over a shard still being
    written) both succeed and each row is stored once; a read-then-insert would lose that race
    with a unique-constraint error. Other dialects get a plain insert of the rows not yet stored.
    """
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
        statement = insert(model).on_conflict_do_nothing(index_elements=list(unique)).returning(model.id)
        return len(session.execute(statement, [dict(r) for r in rows]).all())
    from sqlalchemy import tuple_

    keys = [tuple(r[c] for c in unique) for r in rows]
    columns = [getattr(model, c) for c in unique]
    stored = {tuple(k) for k in session.execute(select(*columns).where(tuple_(*columns).in_(keys))).all()}
    fresh: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for key, row in zip(keys, rows):
        if key not in stored:
            fresh.setdefault(key, row)
    for row in fresh.values():
        session.add(model(**row))
    return len(fresh)
