"""Catalog operations. Every write is one transaction: a failure leaves what was stored intact.

The operations live in one mixin per area (projects, images, predictions, rounds, review
events); the records and errors in :mod:`labelwise.catalog.records`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from labelwise.catalog.api_keys import ApiKeysMixin
from labelwise.catalog.flags import FlagsMixin
from labelwise.catalog.images import ImagesMixin
from labelwise.catalog.labels import LabelsMixin
from labelwise.catalog.migrations import upgrade_catalog
from labelwise.catalog.predictions import PredictionsMixin
from labelwise.catalog.projects import ProjectsMixin
from labelwise.catalog.proposals import RoundConflict
from labelwise.catalog.records import (
    AddReport,
    CatalogError,
    ImageRecord,
    ProjectNotFound,
    ProjectRecord,
)
from labelwise.catalog.records import _detections as _detections
from labelwise.catalog.records import _image_record as _image_record
from labelwise.catalog.records import _project_record as _project_record
from labelwise.catalog.review_events import ReviewEventsMixin
from labelwise.catalog.rounds import RoundsMixin

__all__ = [
    "AddReport",
    "Catalog",
    "CatalogError",
    "ImageRecord",
    "ProjectNotFound",
    "ProjectRecord",
    "RoundConflict",
]


class Catalog(ProjectsMixin, ImagesMixin, PredictionsMixin, RoundsMixin, LabelsMixin, ReviewEventsMixin,
              ApiKeysMixin, FlagsMixin):
    """Repository over one database. Open with :meth:`open`; safe to share across threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str) -> "Catalog":
        """Connect, creating the SQLite file when missing, and bring the schema to the newest
        migration (:mod:`labelwise.catalog.migrations`: a new catalog is created by the
        migrations, one created before migrations existed is adopted with its rows, an older
        revision is upgraded; a revision newer than this code is refused with a
        :class:`CatalogError`).

        SQLite files get WAL journaling (readers never block the one writer), foreign keys and
        a 30 s busy timeout (a writer waits for another's transaction instead of failing).
        Several processes may open a catalog at the same instant: the upgrade runs under a lock
        and whoever comes second finds the schema up to date.
        """
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()
        else:
            engine = create_engine(url, pool_pre_ping=True)
        try:
            upgrade_catalog(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def session(self) -> Session:
        return self._session()

    def close(self) -> None:
        self.engine.dispose()
