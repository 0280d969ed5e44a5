"""Catalog operations. Every write is one transaction: a failure leaves what was stored intact."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, delete, event, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from labelwise.catalog.models import (
    Base,
    EmbeddingRow,
    ImageRow,
    LabelRow,
    PredictionRow,
    ProjectRow,
    ReviewEventRow,
    RoundRow,
    ScoreRow,
)
from labelwise.domain import Detections, ImageScore, ImageStatus
from labelwise.images import ImageReadError, expand_sources, read_image_info


class CatalogError(ValueError):
    """A request the catalog cannot honour; the message says what was expected."""


class ProjectNotFound(CatalogError):
    pass


@dataclass(frozen=True)
class ProjectRecord:
    """A project. ``holdout_yaml``/``holdout_split`` name the fixed evaluation set (a YOLO
    data.yaml and its split), so every round is measured on the same images."""

    id: int
    name: str
    class_names: tuple[str, ...]
    ls_project_id: int | None = None
    holdout_yaml: Path | None = None
    holdout_split: str = "test"


def _project_record(row: ProjectRow) -> ProjectRecord:
    return ProjectRecord(row.id, row.name, tuple(row.class_names), row.ls_project_id,
                         Path(row.holdout_yaml) if row.holdout_yaml else None, row.holdout_split)


@dataclass(frozen=True)
class ImageRecord:
    image_id: str
    path: Path
    width: int
    height: int
    status: ImageStatus
    ls_task_id: int | None = None
    queued_round: int | None = None
    upload_group: str | None = None


@dataclass
class AddReport:
    """What ``add_images`` did: ids added, ids already present, files skipped with the reason."""

    added: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _image_record(row: ImageRow) -> ImageRecord:
    return ImageRecord(
        image_id=row.image_id,
        path=Path(row.path),
        width=row.width,
        height=row.height,
        status=ImageStatus(row.status),
        ls_task_id=row.ls_task_id,
        queued_round=row.queued_round,
        upload_group=row.upload_group,
    )


def _detections(row: PredictionRow) -> Detections:
    n, c = row.n_boxes, row.num_classes
    return Detections(
        xyxy=np.frombuffer(row.xyxy, np.float32).reshape(n, 4),
        confidence=np.frombuffer(row.confidence, np.float32).reshape(n),
        class_id=np.frombuffer(row.class_id, np.int64).reshape(n),
        probs=np.frombuffer(row.probs, np.float32).reshape(n, c),
    )


class Catalog:
    """Repository over one database. Open with :meth:`open`; safe to share across threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str) -> "Catalog":
        """Connect (creating the SQLite file and tables when missing)."""
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
        Base.metadata.create_all(engine)
        return cls(engine)

    def session(self) -> Session:
        return self._session()

    def close(self) -> None:
        self.engine.dispose()

    # Projects ---------------------------------------------------------------------------
    def create_project(self, name: str, class_names: Sequence[str]) -> ProjectRecord:
        """Create a project; the same call again returns it, other classes are refused."""
        names = [str(c).strip() for c in class_names]
        if not name.strip():
            raise CatalogError("project name must not be empty")
        if not names or any(not c for c in names):
            raise CatalogError(f"class names must be non-empty strings; got {list(class_names)}")
        if len(set(names)) != len(names):
            raise CatalogError(f"class names must be unique; got {names}")
        with self.session() as s, s.begin():
            row = s.scalar(select(ProjectRow).where(ProjectRow.name == name))
            if row is not None:
                if list(row.class_names) != names:
                    raise CatalogError(
                        f"project {name!r} exists with classes {row.class_names}; got {names}"
                    )
            else:
                row = ProjectRow(name=name, class_names=names)
                s.add(row)
                s.flush()
            return _project_record(row)

    def project(self, name: str) -> ProjectRecord:
        with self.session() as s:
            row = s.scalar(select(ProjectRow).where(ProjectRow.name == name))
            if row is None:
                known = s.scalars(select(ProjectRow.name).order_by(ProjectRow.name)).all()
                raise ProjectNotFound(
                    f"unknown project {name!r}; known projects: {list(known) or 'none'} "
                    "(create one with `labelwise project create`)"
                )
            return _project_record(row)

    def projects(self) -> list[ProjectRecord]:
        with self.session() as s:
            rows = s.scalars(select(ProjectRow).order_by(ProjectRow.name)).all()
            return [_project_record(r) for r in rows]

    def set_ls_project(self, project: ProjectRecord, ls_project_id: int) -> ProjectRecord:
        with self.session() as s, s.begin():
            s.execute(update(ProjectRow).where(ProjectRow.id == project.id).values(ls_project_id=ls_project_id))
        return self.project(project.name)

    def set_holdout(self, project: ProjectRecord, data_yaml: Path, split: str = "test") -> ProjectRecord:
        """Fix the held-out evaluation set: a YOLO data.yaml and the split to evaluate on."""
        path = Path(data_yaml).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"held-out data yaml {path} does not exist")
        with self.session() as s, s.begin():
            s.execute(update(ProjectRow).where(ProjectRow.id == project.id)
                      .values(holdout_yaml=str(path), holdout_split=split))
        return self.project(project.name)

    # Images -----------------------------------------------------------------------------
    def add_images(self, project: ProjectRecord, source: str | Path | Iterable[Path]) -> AddReport:
        """Add image files; unreadable files are reported and skipped, duplicates ignored.

        ``source`` is a file, folder or glob (see :func:`labelwise.images.expand_sources`) or
        an iterable of paths. Identity is the content hash, so the same picture under two
        names is stored once.
        """
        paths = expand_sources(source) if isinstance(source, (str, Path)) else [Path(p) for p in source]
        report = AddReport()
        infos = []
        for path in paths:
            try:
                infos.append(read_image_info(path))
            except ImageReadError as exc:
                report.failed.append((str(path), str(exc)))
        with self.session() as s, s.begin():
            known = set(
                s.scalars(select(ImageRow.image_id).where(ImageRow.project_id == project.id)).all()
            )
            for info in infos:
                if info.image_id in known:
                    report.existing.append(info.image_id)
                    continue
                known.add(info.image_id)
                s.add(
                    ImageRow(
                        project_id=project.id,
                        image_id=info.image_id,
                        path=str(info.path),
                        width=info.width,
                        height=info.height,
                    )
                )
                report.added.append(info.image_id)
        return report

    def images(
        self,
        project: ProjectRecord,
        status: ImageStatus | Sequence[ImageStatus] | None = None,
        image_ids: Sequence[str] | None = None,
    ) -> list[ImageRecord]:
        """Images of a project (ordered by id), optionally filtered by status or id."""
        with self.session() as s:
            q = select(ImageRow).where(ImageRow.project_id == project.id)
            if status is not None:
                wanted = [status] if isinstance(status, ImageStatus) else list(status)
                q = q.where(ImageRow.status.in_([w.value for w in wanted]))
            if image_ids is not None:
                q = q.where(ImageRow.image_id.in_(list(image_ids)))
            return [_image_record(r) for r in s.scalars(q.order_by(ImageRow.image_id)).all()]

    def image(self, project: ProjectRecord, image_id: str) -> ImageRecord:
        found = self.images(project, image_ids=[image_id])
        if not found:
            raise CatalogError(f"project {project.name!r} has no image {image_id!r}")
        return found[0]

    def require_images(self, project: ProjectRecord, image_ids: Sequence[str]) -> list[ImageRecord]:
        """The records of ``image_ids`` in the given order; CatalogError names unknown ids."""
        records = {r.image_id: r for r in self.images(project, image_ids=image_ids)}
        missing = [i for i in image_ids if i not in records]
        if missing:
            raise CatalogError(f"project {project.name!r} has no image(s) {missing[:10]}")
        return [records[i] for i in image_ids]

    def status_counts(self, project: ProjectRecord) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(
                select(ImageRow.status, func.count())
                .where(ImageRow.project_id == project.id)
                .group_by(ImageRow.status)
            ).all()
        counts = {st.value: 0 for st in ImageStatus}
        counts.update({status: n for status, n in rows})
        return counts

    def set_status(
        self, project: ProjectRecord, image_ids: Sequence[str], status: ImageStatus
    ) -> int:
        with self.session() as s, s.begin():
            result = s.execute(
                update(ImageRow)
                .where(ImageRow.project_id == project.id, ImageRow.image_id.in_(list(image_ids)))
                .values(status=status.value)
            )
            return int(result.rowcount or 0)

    def mark_queued(
        self,
        project: ProjectRecord,
        task_ids: dict[str, int],
        round_number: int | None,
        group: str | None,
    ) -> None:
        """Record Label Studio task ids and mark those images queued, in one transaction."""
        with self.session() as s, s.begin():
            for image_id, task_id in task_ids.items():
                s.execute(
                    update(ImageRow)
                    .where(ImageRow.project_id == project.id, ImageRow.image_id == image_id)
                    .values(
                        status=ImageStatus.QUEUED.value,
                        ls_task_id=task_id,
                        queued_round=round_number,
                        upload_group=group,
                    )
                )

    # Predictions ------------------------------------------------------------------------
    def predicted_ids(self, project: ProjectRecord, model_version: str) -> set[str]:
        with self.session() as s:
            return set(
                s.scalars(
                    select(PredictionRow.image_id).where(
                        PredictionRow.project_id == project.id,
                        PredictionRow.model_version == model_version,
                    )
                ).all()
            )

    def save_predictions(
        self, project: ProjectRecord, model_version: str, items: Sequence[tuple[str, Detections]]
    ) -> int:
        """Store predictions of one model version; already stored (image, version) pairs are kept."""
        if not items:
            return 0
        with self.session() as s, s.begin():
            done = set(
                s.scalars(
                    select(PredictionRow.image_id).where(
                        PredictionRow.project_id == project.id,
                        PredictionRow.model_version == model_version,
                        PredictionRow.image_id.in_([i for i, _ in items]),
                    )
                ).all()
            )
            added = 0
            for image_id, det in items:
                if image_id in done:
                    continue
                done.add(image_id)
                s.add(
                    PredictionRow(
                        project_id=project.id,
                        image_id=image_id,
                        model_version=model_version,
                        n_boxes=len(det),
                        num_classes=det.num_classes,
                        xyxy=det.xyxy.astype("<f4").tobytes(),
                        confidence=det.confidence.astype("<f4").tobytes(),
                        class_id=det.class_id.astype("<i8").tobytes(),
                        probs=det.probs.astype("<f4").tobytes(),
                    )
                )
                added += 1
            return added

    def predictions(
        self, project: ProjectRecord, model_version: str, image_ids: Sequence[str] | None = None
    ) -> dict[str, Detections]:
        with self.session() as s:
            q = select(PredictionRow).where(
                PredictionRow.project_id == project.id, PredictionRow.model_version == model_version
            )
            if image_ids is not None:
                q = q.where(PredictionRow.image_id.in_(list(image_ids)))
            return {row.image_id: _detections(row) for row in s.scalars(q).all()}

    def latest_model_version(self, project: ProjectRecord) -> str | None:
        """The model version whose predictions were stored most recently, if any."""
        with self.session() as s:
            return s.scalar(
                select(PredictionRow.model_version)
                .where(PredictionRow.project_id == project.id)
                .order_by(PredictionRow.id.desc())
                .limit(1)
            )

    # Embeddings -------------------------------------------------------------------------
    def embedded_ids(self, project: ProjectRecord, embedder: str) -> set[str]:
        with self.session() as s:
            return set(
                s.scalars(
                    select(EmbeddingRow.image_id).where(
                        EmbeddingRow.project_id == project.id, EmbeddingRow.embedder == embedder
                    )
                ).all()
            )

    def save_embeddings(
        self, project: ProjectRecord, embedder: str, image_ids: Sequence[str], vectors: np.ndarray
    ) -> int:
        """Store (N, d) float32 vectors for N image ids; existing ones are kept."""
        vecs = np.asarray(vectors, dtype="<f4")
        if vecs.ndim != 2 or vecs.shape[0] != len(image_ids):
            raise CatalogError(
                f"vectors must be ({len(image_ids)}, d) for {len(image_ids)} ids; got {vecs.shape}"
            )
        done = self.embedded_ids(project, embedder)
        with self.session() as s, s.begin():
            added = 0
            for image_id, vec in zip(image_ids, vecs):
                if image_id in done:
                    continue
                done.add(image_id)
                s.add(EmbeddingRow(project_id=project.id, image_id=image_id, embedder=embedder,
                                   dim=int(vec.shape[0]), vector=vec.tobytes()))
                added += 1
            return added

    def embeddings(
        self, project: ProjectRecord, embedder: str, image_ids: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        with self.session() as s:
            q = select(EmbeddingRow).where(
                EmbeddingRow.project_id == project.id, EmbeddingRow.embedder == embedder
            )
            if image_ids is not None:
                q = q.where(EmbeddingRow.image_id.in_(list(image_ids)))
            return {r.image_id: np.frombuffer(r.vector, "<f4").copy() for r in s.scalars(q).all()}

    def latest_embedder(self, project: ProjectRecord) -> str | None:
        with self.session() as s:
            return s.scalar(
                select(EmbeddingRow.embedder)
                .where(EmbeddingRow.project_id == project.id)
                .order_by(EmbeddingRow.id.desc())
                .limit(1)
            )

    # Rounds and scores ------------------------------------------------------------------
    def next_round_number(self, project: ProjectRecord) -> int:
        with self.session() as s:
            current = s.scalar(select(func.max(RoundRow.number)).where(RoundRow.project_id == project.id))
            return 0 if current is None else int(current) + 1

    def record_round(
        self,
        project: ProjectRecord,
        number: int,
        strategy: str,
        model_version: str | None,
        params: dict[str, Any],
        scores: Sequence[ImageScore],
        selected: Sequence[str],
    ) -> int:
        """Store a round's scores and selection (replacing an unqueued proposal of that number)."""
        rank = {image_id: i for i, image_id in enumerate(selected)}
        with self.session() as s, s.begin():
            row = s.scalar(
                select(RoundRow).where(RoundRow.project_id == project.id, RoundRow.number == number)
            )
            if row is None:
                row = RoundRow(project_id=project.id, number=number)
                s.add(row)
            row.strategy, row.model_version, row.params = strategy, model_version, params
            s.flush()
            s.execute(delete(ScoreRow).where(ScoreRow.round_id == row.id))
            for sc in scores:
                s.add(ScoreRow(round_id=row.id, image_id=sc.image_id,
                               uncertainty_score=sc.uncertainty_score, scores=dict(sc.scores),
                               selected=sc.image_id in rank, rank=rank.get(sc.image_id)))
            return row.id

    def round_info(self, project: ProjectRecord, number: int) -> dict[str, Any]:
        with self.session() as s:
            row = s.scalar(
                select(RoundRow).where(RoundRow.project_id == project.id, RoundRow.number == number)
            )
            if row is None:
                raise CatalogError(f"project {project.name!r} has no round {number}")
            selected = s.scalars(
                select(ScoreRow.image_id).where(ScoreRow.round_id == row.id, ScoreRow.selected)
                .order_by(ScoreRow.rank)
            ).all()
            return {"number": row.number, "strategy": row.strategy, "model_version": row.model_version,
                    "params": row.params, "status": row.status, "selected": list(selected)}

    def transition_round(
        self, project: ProjectRecord, number: int, from_status: str | Sequence[str], to_status: str
    ) -> bool:
        """Atomically move a round from ``from_status`` to ``to_status`` (compare-and-set).

        True for exactly one caller when several race (webhook retries, reconciler, UI), so a
        continuation guarded by it runs once per batch.
        """
        allowed = [from_status] if isinstance(from_status, str) else list(from_status)
        with self.session() as s, s.begin():
            result = s.execute(
                update(RoundRow)
                .where(RoundRow.project_id == project.id, RoundRow.number == number,
                       RoundRow.status.in_(allowed))
                .values(status=to_status)
            )
            return (result.rowcount or 0) == 1

    def rounds(self, project: ProjectRecord, status: str | None = None) -> list[dict[str, Any]]:
        """Every round of the project (number, strategy, model_version, status), oldest first."""
        with self.session() as s:
            q = select(RoundRow).where(RoundRow.project_id == project.id)
            if status is not None:
                q = q.where(RoundRow.status == status)
            return [{"number": r.number, "strategy": r.strategy, "model_version": r.model_version,
                     "status": r.status, "params": r.params}
                    for r in s.scalars(q.order_by(RoundRow.number)).all()]

    def update_round_params(self, project: ProjectRecord, number: int, extra: dict[str, Any]) -> dict[str, Any]:
        """Merge ``extra`` into a round's params (figures recorded as the round proceeds)."""
        with self.session() as s, s.begin():
            row = s.scalar(select(RoundRow).where(RoundRow.project_id == project.id, RoundRow.number == number))
            if row is None:
                raise CatalogError(f"project {project.name!r} has no round {number}")
            row.params = {**(row.params or {}), **extra}
            return dict(row.params)

    def set_round_status(self, project: ProjectRecord, number: int, status: str) -> None:
        with self.session() as s, s.begin():
            s.execute(update(RoundRow).where(RoundRow.project_id == project.id, RoundRow.number == number)
                      .values(status=status))

    # Labels -----------------------------------------------------------------------------
    def save_labels(
        self,
        project: ProjectRecord,
        labels: dict[str, np.ndarray],
        source: str,
        round_number: int | None = None,
        annotation_ids: dict[str, int] | None = None,
    ) -> int:
        """Store YOLO labels ((N, 5) [cls, cx, cy, w, h]) and mark the images labelled."""
        with self.session() as s, s.begin():
            for image_id, boxes in labels.items():
                arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
                row = s.scalar(select(LabelRow).where(LabelRow.project_id == project.id,
                                                      LabelRow.image_id == image_id))
                if row is None:
                    row = LabelRow(project_id=project.id, image_id=image_id)
                    s.add(row)
                row.boxes, row.source, row.labelled_round = arr.round(6).tolist(), source, round_number
                row.ls_annotation_id = (annotation_ids or {}).get(image_id)
                s.execute(update(ImageRow).where(ImageRow.project_id == project.id,
                                                 ImageRow.image_id == image_id)
                          .values(status=ImageStatus.LABELLED.value))
            return len(labels)

    def labels(self, project: ProjectRecord) -> dict[str, np.ndarray]:
        with self.session() as s:
            rows = s.scalars(select(LabelRow).where(LabelRow.project_id == project.id)).all()
            return {r.image_id: np.asarray(r.boxes, dtype=np.float64).reshape(-1, 5) for r in rows}

    # Review events (Label Studio webhooks) ------------------------------------------------
    def project_by_ls_id(self, ls_project_id: int) -> ProjectRecord | None:
        """The project linked to a Label Studio project id (see :meth:`set_ls_project`), if any."""
        with self.session() as s:
            row = s.scalar(select(ProjectRow).where(ProjectRow.ls_project_id == ls_project_id)
                           .order_by(ProjectRow.id).limit(1))
            return None if row is None else _project_record(row)

    def image_by_ls_task(self, project: ProjectRecord, ls_task_id: int) -> ImageRecord | None:
        """The image whose Label Studio task is ``ls_task_id``, if any."""
        with self.session() as s:
            row = s.scalar(select(ImageRow).where(ImageRow.project_id == project.id,
                                                  ImageRow.ls_task_id == ls_task_id).limit(1))
            return None if row is None else _image_record(row)

    def round_images(self, project: ProjectRecord, number: int) -> list[ImageRecord]:
        """Images queued in round ``number`` (whatever their status now), ordered by id."""
        with self.session() as s:
            rows = s.scalars(select(ImageRow).where(ImageRow.project_id == project.id,
                                                    ImageRow.queued_round == number)
                             .order_by(ImageRow.image_id)).all()
            return [_image_record(r) for r in rows]

    def record_review_event(
        self,
        project: ProjectRecord,
        *,
        ls_task_id: int,
        round_number: int | None,
        action: str,
        annotation_id: int | None,
        was_cancelled: bool,
        event_key: str,
    ) -> bool:
        """Store one annotation event; False (nothing stored) when ``event_key`` is known."""
        try:
            with self.session() as s, s.begin():
                known = s.scalar(select(ReviewEventRow.id).where(
                    ReviewEventRow.project_id == project.id, ReviewEventRow.event_key == event_key))
                if known is not None:
                    return False
                s.add(ReviewEventRow(project_id=project.id, ls_task_id=ls_task_id,
                                     round_number=round_number, action=action,
                                     annotation_id=annotation_id, was_cancelled=was_cancelled,
                                     event_key=event_key))
            return True
        except IntegrityError:  # the same event recorded concurrently
            return False

    def review_events(
        self,
        project: ProjectRecord,
        round_number: int | None = None,
        annotation_ids: Sequence[int] | None = None,
    ) -> list[dict[str, Any]]:
        """Recorded events, oldest first: ``ls_task_id, round_number, action, annotation_id,
        was_cancelled, at``; optionally only those of a round or of some annotations."""
        with self.session() as s:
            q = select(ReviewEventRow).where(ReviewEventRow.project_id == project.id)
            if round_number is not None:
                q = q.where(ReviewEventRow.round_number == round_number)
            if annotation_ids is not None:
                q = q.where(ReviewEventRow.annotation_id.in_(list(annotation_ids)))
            return [{"ls_task_id": r.ls_task_id, "round_number": r.round_number,
                     "action": r.action, "annotation_id": r.annotation_id,
                     "was_cancelled": r.was_cancelled, "at": r.at}
                    for r in s.scalars(q.order_by(ReviewEventRow.id)).all()]
