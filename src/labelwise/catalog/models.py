"""SQLAlchemy tables. Arrays are stored as raw little-endian bytes with their shape alongside."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    class_names: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ls_project_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    holdout_yaml: Mapped[str | None] = mapped_column(Text, nullable=True)
    holdout_split: Mapped[str] = mapped_column(String(20), default="test")
    task_type: Mapped[str] = mapped_column(String(16), default="detect", server_default="detect")


class ImageRow(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("project_id", "image_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    image_id: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="unlabelled", index=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ls_task_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    queued_round: Mapped[int | None] = mapped_column(Integer, nullable=True)
    upload_group: Mapped[str | None] = mapped_column(String(200), nullable=True)


class PredictionRow(Base):
    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("project_id", "image_id", "model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    image_id: Mapped[str] = mapped_column(String(64), index=True)
    model_version: Mapped[str] = mapped_column(String(200), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    n_boxes: Mapped[int] = mapped_column(Integer)
    num_classes: Mapped[int] = mapped_column(Integer)
    xyxy: Mapped[bytes] = mapped_column(LargeBinary)  # float32 (n, 4)
    confidence: Mapped[bytes] = mapped_column(LargeBinary)  # float32 (n,)
    class_id: Mapped[bytes] = mapped_column(LargeBinary)  # int64 (n,)
    probs: Mapped[bytes] = mapped_column(LargeBinary)  # float32 (n, C)
    # A segmentation model's instance outlines, one Ultralytics segment label line per box
    # (labelwise.masks.format_segment_labels, coordinates normalised); None for other tasks.
    segments: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Its instances' mask stabilities, float32 (n,) in the box rows' order; None without masks.
    mask_stability: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class EmbeddingRow(Base):
    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("project_id", "image_id", "embedder"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    image_id: Mapped[str] = mapped_column(String(64), index=True)
    embedder: Mapped[str] = mapped_column(String(200), index=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32 (dim,)


class RoundRow(Base):
    __tablename__ = "rounds"
    __table_args__ = (UniqueConstraint("project_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(32), default="proposed")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ScoreRow(Base):
    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("round_id", "image_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    image_id: Mapped[str] = mapped_column(String(64))
    uncertainty_score: Mapped[float] = mapped_column(Float)
    scores: Mapped[dict] = mapped_column(JSON)
    selected: Mapped[bool] = mapped_column(Boolean, default=False)
    rank: Mapped[int | None] = mapped_column(Integer, nullable=True)


class LabelRow(Base):
    """Ground truth of a labelled image: YOLO rows [cls, cx, cy, w, h] normalised."""

    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("project_id", "image_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    image_id: Mapped[str] = mapped_column(String(64))
    boxes: Mapped[list] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(50))
    ls_annotation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    labelled_round: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # A segmentation label's outlines, one segment label line per box row (same order); None
    # for other tasks.
    segments: Mapped[str | None] = mapped_column(Text, nullable=True)


class ApiKeyRow(Base):
    """An API key of the serving API: only a salted HMAC-SHA256 of its secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)  # public lookup part of the key
    salt: Mapped[str] = mapped_column(String(64))  # hex
    digest: Mapped[str] = mapped_column(String(128))  # hex HMAC-SHA256(salt, secret)
    projects: Mapped[list] = mapped_column(JSON, default=list)  # project names it may use
    all_projects: Mapped[bool] = mapped_column(Boolean, default=False)
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class OutboxColumns:
    """The columns every outbox table has (:mod:`labelwise.catalog.outbox`): a row is
    ``pending`` until delivered, retried with backoff, its last error kept for the status pages."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class FlagOutboxRow(OutboxColumns, Base):
    """An image the serving API flagged, waiting to be (or already) delivered to Label Studio."""

    __tablename__ = "flag_outbox"
    __table_args__ = (UniqueConstraint("project_id", "image_id"),)

    image_id: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(200))
    upload_group: Mapped[str] = mapped_column(String(200))
    routing_score: Mapped[float] = mapped_column("evaluation_score", Float)
    """The routing score that flagged the image (the column keeps its first name, so catalogs
    made before the rename need no migration)."""
    scores: Mapped[dict] = mapped_column(JSON, default=dict)


class LearnRequestRow(OutboxColumns, Base):
    """A reviewed round whose learn run the webhook receiver must start (exactly once): written
    in the same transaction as the round's ``queued -> reviewed``, so a Prefect outage, a crash
    or a restart of the receiver never strands the batch."""

    __tablename__ = "learn_requests"
    __table_args__ = (UniqueConstraint("project_id", "round_number"),)

    round_number: Mapped[int] = mapped_column(Integer)
    run: Mapped[str | None] = mapped_column(String(200), nullable=True)


class ReviewEventRow(Base):
    """A Label Studio annotation event received by the webhook receiver.

    ``event_key`` makes recording idempotent: a webhook retried or replayed is stored once.
    """

    __tablename__ = "review_events"
    __table_args__ = (UniqueConstraint("project_id", "event_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    ls_task_id: Mapped[int] = mapped_column(Integer, index=True)
    round_number: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    action: Mapped[str] = mapped_column(String(40))
    annotation_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    was_cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    event_key: Mapped[str] = mapped_column(String(300))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
