"""The catalog: projects, images, predictions, embeddings, rounds and labels in one database.

SQLite by default (a file in the state folder), any SQLAlchemy URL (PostgreSQL) for teams.
"""

from labelwise.catalog.repository import (
    AddReport,
    Catalog,
    CatalogError,
    ImageRecord,
    ProjectNotFound,
    ProjectRecord,
    RoundConflict,
)

__all__ = ["AddReport", "Catalog", "CatalogError", "ImageRecord", "ProjectNotFound", "ProjectRecord",
           "RoundConflict"]
