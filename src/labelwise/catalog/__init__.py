"""The catalog: projects, images, predictions, embeddings, rounds and labels in one database,
and the serving API's keys and flagged images.

SQLite by default (a file in the state folder), any SQLAlchemy URL (PostgreSQL) for teams. It is
the only repository: code outside this package calls :class:`Catalog`'s operations and never
queries its SQLAlchemy models or opens sessions itself.
"""

from labelwise.catalog.api_keys import ApiKeyRecord
from labelwise.catalog.flags import FlaggedImage
from labelwise.catalog.models import utcnow
from labelwise.catalog.predictions import PendingCounts, PendingImage
from labelwise.catalog.repository import (
    AddReport,
    Catalog,
    CatalogError,
    ImageRecord,
    ProjectNotFound,
    ProjectRecord,
    RoundConflict,
)

__all__ = ["AddReport", "ApiKeyRecord", "Catalog", "CatalogError", "FlaggedImage", "ImageRecord",
           "PendingCounts", "PendingImage", "ProjectNotFound", "ProjectRecord", "RoundConflict", "utcnow"]
