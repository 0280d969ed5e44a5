"""Alembic's environment for the catalog. Alembic runs this file; Labelwise never imports it.

:mod:`labelwise.catalog.migrations` calls Alembic with an open connection in
``config.attributes["connection"]`` (inside its schema lock's transaction, so the migrations and
the new version row commit together), so there is no ``alembic.ini`` and no URL here. Offline
(SQL script) mode is not supported.
"""

from __future__ import annotations

from alembic import context

from labelwise.catalog.migrations import VERSION_TABLE
from labelwise.catalog.models import Base


def run_migrations_online() -> None:
    """Run the pending migrations on the connection the caller passed."""
    connection = context.config.attributes.get("connection")
    if context.is_offline_mode() or connection is None:
        raise RuntimeError(
            "the catalog's migrations run on a connection passed by labelwise.catalog.migrations "
            "(Catalog.open, or `python -m labelwise.catalog.migrations revision`); got "
            + ("offline mode" if context.is_offline_mode() else "no connection"))
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,  # SQLite cannot ALTER most things: batch mode rebuilds the table
        compare_type=True,
    )
    with context.begin_transaction():  # a no-op inside the caller's transaction
        context.run_migrations()


run_migrations_online()
