"""Catalog operations. Every write is one transaction: a failure leaves what was stored intact.

The operations live in one mixin per area (projects, images, predictions, rounds, review
events); the records and errors in :mod:`labelwise.catalog.records`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from labelwise.catalog.api_keys import ApiKeysMixin
from labelwise.catalog.flags import FlagsMixin
from labelwise.catalog.images import ImagesMixin
from labelwise.catalog.labels import LabelsMixin
from labelwise.catalog.models import Base
from labelwise.catalog.predictions import PredictionsMixin
from labelwise.catalog.projects import ProjectsMixin
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
from labelwise.catalog.proposals import RoundConflict
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
        """Connect (creating the SQLite file and tables when missing).

        SQLite files get WAL journaling (readers never block the one writer), foreign keys and
        a 30 s busy timeout (a writer waits for another's transaction instead of failing).
        Several processes may open a new catalog at the same instant: creating the tables is
        retried when another process created one first.
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
        _create_tables(engine)
        return cls(engine)

    def session(self) -> Session:
        return self._session()

    def close(self) -> None:
        self.engine.dispose()


def _create_tables(engine: Engine, attempts: int = 5) -> None:
    """``create_all``, retried when another process created a table between its check and its
    ``CREATE`` (two first commands at once): the retry finds the table and skips it."""
    for attempt in range(1, attempts + 1):
        try:
            Base.metadata.create_all(engine)
            return
        except DBAPIError as exc:
            text = str(exc.orig).lower()
            if attempt == attempts or not ("already exists" in text or "duplicate key" in text):
                raise
            time.sleep(0.05 * attempt)
