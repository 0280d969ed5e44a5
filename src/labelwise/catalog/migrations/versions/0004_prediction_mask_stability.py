"""Mask stability: ``predictions.mask_stability`` (segmentation projects).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

Little-endian float32 (n_boxes,): each instance's mask stability in [0, 1]
(:func:`labelwise.segment_inference.mask_stability`), in the order of the box rows. NULL for detection
and classification predictions and for segmentation predictions stored before this revision
(scored by their class vectors alone), so existing rows need nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable stability column."""
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mask_stability", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    """Drop the stability column."""
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_column("mask_stability")
