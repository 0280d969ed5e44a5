"""Instance outlines: ``predictions.segments`` and ``labels.segments`` (segmentation projects).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

Both columns hold the text of an Ultralytics segment label file (one line per box row, in the
same order, coordinates normalised; :func:`labelwise.masks.format_segment_labels`). They are NULL
for detection and classification rows, so existing rows need nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable outline columns."""
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("segments", sa.Text(), nullable=True))
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("segments", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop the outline columns."""
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_column("segments")
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.drop_column("segments")
