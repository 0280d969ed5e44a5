"""Schema migrations of the catalog (Alembic), applied by :meth:`Catalog.open`.

The revisions live in ``versions/`` next to this file and ship inside the package; Alembic is
configured here, in code, so no ``alembic.ini`` is needed at run time. The revision a catalog is
at is the one row of the table :data:`VERSION_TABLE` (not Alembic's default ``alembic_version``:
a team may keep the catalog in the same PostgreSQL database as MLflow or Prefect, which version
their own schemas in ``alembic_version``).

What opening does (:func:`upgrade_catalog`):

- **at the newest revision** (the head): nothing; one read, no lock.
- **a new, empty database**: the migrations create every table, then the version row is written.
- **a catalog created before migrations existed** (tables, no version table): adopted. The
  baseline revision (:data:`BASELINE`, the schema of those catalogs) creates only the tables it
  lacks, as ``create_all`` did on every open before, and refuses, changing nothing, if a table
  lacks a column of the baseline schema. Then the later revisions run.
- **an older revision**: the later revisions run.
- **a revision this code does not know** (a newer Labelwise upgraded it): a
  :class:`~labelwise.catalog.records.CatalogError`, nothing changed.

Several processes may open the same catalog at once: the upgrade runs under a lock held for its
whole transaction (SQLite: ``BEGIN IMMEDIATE``, the database's one write lock; PostgreSQL: a
transaction-level advisory lock), and whoever gets it second finds the schema at the head.
Dialects with neither are retried when a table another process created first gets in the way.

A change to :mod:`labelwise.catalog.models` needs a revision:
``python -m labelwise.catalog.migrations revision "what changed"`` autogenerates it against a
catalog at the head (review it by hand); ``tests/unit/test_catalog_migrations.py`` fails while
models and migrations disagree (:func:`schema_differences`).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData, create_engine, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from labelwise.catalog.records import CatalogError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = [
    "BASELINE",
    "VERSION_TABLE",
    "Upgrade",
    "alembic_config",
    "current_revision",
    "head_revision",
    "new_revision",
    "schema_differences",
    "upgrade_catalog",
]

VERSION_TABLE = "labelwise_alembic_version"
"""The table holding the catalog's schema revision (one row)."""

BASELINE = "0001"
"""The first revision: the schema of catalogs created before migrations existed."""

_PG_LOCK_KEY = 0x4C57_4341  # "LWCA": the advisory lock PostgreSQL upgrades hold

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upgrade:
    """What :func:`upgrade_catalog` found and left: revisions before and after (``None``: no
    version table), and whether the catalog predated migrations and was adopted."""

    before: str | None
    after: str
    adopted: bool = False

    @property
    def changed(self) -> bool:
        """True when the schema or its version row was written."""
        return self.before != self.after


def _migrations_dir() -> Path:
    return Path(__file__).resolve().parent


def alembic_config(connection: Connection | None = None,
                   script_location: Path | None = None) -> Config:
    """Alembic's configuration, built in code: the packaged revisions (or ``script_location``,
    a folder with ``env.py`` and ``versions/``), and the connection ``env.py`` migrates."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location or _migrations_dir()))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def _script(script_location: Path | None = None) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(script_location=script_location))


def head_revision(script_location: Path | None = None) -> str:
    """The newest revision; exactly one must exist (two heads are a developer's merge to do)."""
    heads = _script(script_location).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the catalog's migrations must have exactly one head; found {heads}: "
                           "merge them (`alembic merge`) into one revision")
    return heads[0]


def current_revision(connection: Connection) -> str | None:
    """The revision the catalog on ``connection`` is at; ``None`` when it has no version table."""
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def schema_differences(connection: Connection, metadata: MetaData | None = None) -> list[Any]:
    """Alembic's ``compare_metadata`` of the database on ``connection`` against the models
    (or ``metadata``): empty when they agree (the version table is not a difference)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from labelwise.catalog.models import Base

    context = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE, "compare_type": True,
                          "compare_server_default": True})
    return list(compare_metadata(context, Base.metadata if metadata is None else metadata))


def _describe(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _check_known(revision: str | None, script: ScriptDirectory, where: str) -> None:
    """Refuse a revision that is not in ``script`` (the catalog was upgraded by a newer version)."""
    if revision is None:
        return
    known = [r.revision for r in script.walk_revisions()]
    if revision not in known:
        raise CatalogError(
            f"the catalog at {where} is at schema revision {revision!r}, which this Labelwise "
            f"does not know (its revisions: {', '.join(reversed(known))}): a newer Labelwise "
            "upgraded it; expected one of those. Install the newer Labelwise, or open a copy of "
            "the catalog made before that upgrade")


def _baseline_columns(script_location: Path | None) -> dict[str, set[str]]:
    """Each table's columns in the baseline schema, read from an in-memory SQLite database
    migrated to :data:`BASELINE` (so no copy of that schema is kept by hand)."""
    from alembic import command

    memory = create_engine("sqlite://")
    try:
        with memory.begin() as conn:
            command.upgrade(alembic_config(conn, script_location), BASELINE)
            inspector = inspect(conn)
            return {t: {c["name"] for c in inspector.get_columns(t)}
                    for t in inspector.get_table_names() if t != VERSION_TABLE}
    finally:
        memory.dispose()


def _check_adoptable(conn: Connection, where: str, script_location: Path | None) -> bool:
    """True when ``conn`` holds a catalog created before migrations (baseline tables, no version
    table); raises when one of its tables lacks a baseline column (stamping it would lie)."""
    baseline = _baseline_columns(script_location)
    inspector = inspect(conn)
    present = set(inspector.get_table_names()) & set(baseline)
    if not present:
        return False
    lacking = {t: sorted(baseline[t] - {c["name"] for c in inspector.get_columns(t)})
               for t in sorted(present)}
    lacking = {t: cols for t, cols in lacking.items() if cols}
    if lacking:
        listed = "; ".join(f"table {t!r} lacks {', '.join(cols)}" for t, cols in lacking.items())
        raise CatalogError(
            f"the catalog at {where} predates schema migrations and is older than their "
            f"baseline (revision {BASELINE}): {listed}. Expected every baseline column; nothing "
            "was changed. Add the columns by hand or start a new catalog")
    return True


@contextmanager
def _schema_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the catalog's schema lock until it commits."""
    if engine.dialect.name == "sqlite":
        # The driver's own transaction handling starts no transaction before DDL: take the
        # write lock by hand (it waits up to the busy timeout for other writers). Foreign keys
        # are off while the schema changes, the SQLite way (they cannot be switched inside a
        # transaction): a revision may rebuild a referenced table; the check runs before COMMIT.
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield conn
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise CatalogError(f"a catalog migration broke foreign keys: {broken[:5]} "
                                           "(table, rowid, parent, key); expected none, rolled back")
                except BaseException:
                    conn.exec_driver_sql("ROLLBACK")
                    raise
                conn.exec_driver_sql("COMMIT")
            finally:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
    else:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            yield conn


def _is_race(exc: DBAPIError) -> bool:
    message = str(exc.orig).lower()
    return any(s in message for s in ("already exists", "duplicate key", "database is locked"))


def upgrade_catalog(engine: Engine, *, script_location: Path | None = None,
                    attempts: int = 5) -> Upgrade:
    """Bring the catalog on ``engine`` to the newest revision (see the module docstring).

    ``script_location`` replaces the packaged revisions (a folder with ``env.py`` and
    ``versions/``; tests use it). A lost race (a table created by another process on a dialect
    without a lock, or a lock not granted within the busy timeout) is retried ``attempts`` times.
    """
    script = _script(script_location)
    head = head_revision(script_location)
    where = _describe(engine)
    with engine.connect() as conn:
        before = current_revision(conn)
    _check_known(before, script, where)
    if before == head:
        return Upgrade(before, head)
    for attempt in range(1, attempts + 1):
        try:
            with _schema_lock(engine) as conn:
                return _upgrade_locked(conn, script, head, where, script_location)
        except DBAPIError as exc:
            if attempt == attempts or not _is_race(exc):
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _upgrade_locked(conn: Connection, script: ScriptDirectory, head: str, where: str,
                    script_location: Path | None) -> Upgrade:
    from alembic import command

    before = current_revision(conn)  # again: another process may have upgraded meanwhile
    _check_known(before, script, where)
    if before == head:
        return Upgrade(before, head)
    adopted = before is None and _check_adoptable(conn, where, script_location)
    command.upgrade(alembic_config(conn, script_location), "head")
    after = current_revision(conn)
    if after != head:  # pragma: no cover - Alembic upgrades to the head or raises
        raise CatalogError(f"the catalog at {where} is at revision {after!r} after upgrading; "
                           f"expected the head {head!r}")
    log.info("catalog %s: schema %s -> %s%s", where, before or "unversioned", after,
             " (adopted: created before migrations)" if adopted else "")
    return Upgrade(before, after, adopted)


def new_revision(message: str, *, script_location: Path | None = None) -> Path:
    """Autogenerate the next revision from the models' difference to a catalog at the head;
    returns its file (review it by hand: Alembic misses renames and some type changes)."""
    from alembic import command

    location = script_location or _migrations_dir()
    script = _script(location)
    number = len(list(script.walk_revisions())) + 1
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'head.db'}")
        try:
            upgrade_catalog(engine, script_location=location)
            with engine.begin() as conn:
                made = command.revision(alembic_config(conn, location), message,
                                        autogenerate=True, rev_id=f"{number:04d}")
        finally:
            engine.dispose()
    if made is None or isinstance(made, list):  # pragma: no cover - one revision per call
        raise RuntimeError(f"expected one new revision; Alembic returned {made!r}")
    return Path(made.path)
