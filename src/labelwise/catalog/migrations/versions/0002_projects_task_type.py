"""projects.task_type: what kind of model a project trains (detect, classify, segment).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

Every project created before task types existed is a detection project, so the column gets the
server default ``detect`` and existing rows read back as detection projects.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``projects.task_type`` (existing projects: ``detect``)."""
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("task_type", sa.String(length=16), server_default="detect",
                                      nullable=False))


def downgrade() -> None:
    """Drop ``projects.task_type``."""
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("task_type")
