"""Catalog operations on active-learning rounds: their scores and selection, status and params
(the labels that come back: :mod:`labelwise.catalog.labels`).

Round statuses: ``proposed -> queued -> reviewed -> learning -> learned``, and
``proposed -> abandoned`` for a proposal whose batch never reached Label Studio (see
:mod:`labelwise.rounds`). Every status change is a compare-and-set (:meth:`transition_round`).

Creating rounds while others do (issue 12, item 2)
--------------------------------------------------
:meth:`RoundsMixin.create_round` allocates the next number and stores the round in ONE
transaction that starts by taking the project's lock row (a no-op ``UPDATE`` of the project:
SQLite's write lock, a row lock in PostgreSQL), so two processes or threads never read the same
"next number"; a unique-constraint race with a writer that bypasses the lock (``record_round``
with an explicit number) is retried with the next number. Each round stores its ``owner``
(``{"host", "pid"}``) in its params.

Rule, one open proposal per image: an image selected in a round that is still ``proposed`` is
*held* by that round. It is no candidate for another score-batch (:meth:`held_images`), and
``create_round`` refuses, inside its transaction, a selection that contains a held image or an
image that is no longer unlabelled (:class:`RoundConflict`, which names the round); score-batch
then selects again without them. So two rounds at once each get their own number and disjoint
images, and when nothing is left to select the second one is refused in one line naming the
open round. Serving rounds (source ``serving``, :mod:`labelwise.rounds.opening`) select nothing,
so they hold nothing.

Stale proposals (issue 12, item 7): a ``queue`` that was killed or failed leaves its round
``proposed``. Before it selects, a recording score-batch settles them
(:meth:`settle_stale_rounds`), by this rule:

* a proposed round with images queued in it (killed between marking its images queued and
  moving the round) is *resumed*: ``proposed -> queued``, as the batch is in Label Studio;
* a proposed round with no queued image is *closed* (``proposed -> abandoned``, its images are
  released) when its owner is gone: created on this host by a process that no longer exists, or
  older than ``max_age`` (default :data:`STALE_PROPOSAL_AGE`, for owners on other hosts, reused
  pids and rounds recorded without an owner);
* a younger proposal whose owner is alive (or unknown on another host) stays open: it may be a
  queue in progress right now; serving rounds (the outbox owns them) are never closed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from labelwise.catalog.base import CatalogMixin, rows_updated
from labelwise.catalog.models import ImageRow, LearnRequestRow, ProjectRow, RoundRow, ScoreRow
from labelwise.catalog.proposals import (
    ABANDONED,
    CREATE_ATTEMPTS,
    PROPOSED,
    QUEUED,
    REVIEWED,
    STALE_PROPOSAL_AGE,
    Proposal,
    RoundConflict,
    RoundOwner,
    SettledRounds,
)
from labelwise.catalog.records import CatalogError, ProjectRecord
from labelwise.columnar import ScoreTable
from labelwise.domain import ImageScore, ImageStatus
from labelwise.rounds.params import RoundParams, check_notes
from labelwise.rounds.status import check_transition


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes: they were stored in UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _next_number(s: Session, project: ProjectRecord) -> int:
    """One more than the project's highest round number (0 for the first round)."""
    current = s.scalar(select(func.max(RoundRow.number)).where(RoundRow.project_id == project.id))
    return 0 if current is None else int(current) + 1


def _refuse_held(s: Session, project: ProjectRecord, picked: list[str]) -> None:
    """RoundConflict when some of ``picked`` are held by a proposed round or not unlabelled
    (read inside the caller's locked transaction)."""
    held: dict[str, int | None] = {}
    reasons: dict[str, str] = {}
    for start in range(0, len(picked), 500):
        chunk = picked[start:start + 500]
        for image_id, number in s.execute(
            select(ScoreRow.image_id, RoundRow.number)
            .join(RoundRow, ScoreRow.round_id == RoundRow.id)
            .where(RoundRow.project_id == project.id, RoundRow.status == PROPOSED,
                   ScoreRow.selected, ScoreRow.image_id.in_(chunk))
        ).all():
            held[image_id] = int(number)
            reasons[image_id] = f"{image_id} (selected in proposed round {number})"
        for image_id, status, queued_round in s.execute(
            select(ImageRow.image_id, ImageRow.status, ImageRow.queued_round)
            .where(ImageRow.project_id == project.id, ImageRow.image_id.in_(chunk),
                   ImageRow.status != ImageStatus.UNLABELLED.value)
        ).all():
            held.setdefault(image_id, None)
            reasons.setdefault(image_id, f"{image_id} ({status}, round {queued_round})")
    if not held:
        return
    rounds = sorted({n for n in held.values() if n is not None})
    listed = [reasons[i] for i in picked if i in reasons]
    shown = ", ".join(listed[:5]) + (f", ... ({len(listed) - 5} more)" if len(listed) > 5 else "")
    raise RoundConflict(
        f"project {project.name!r}: {len(held)} of the {len(picked)} selected image(s) cannot "
        f"join a new round: {shown}; expected unlabelled images that no open round holds",
        held, rounds,
    )


class RoundsMixin(CatalogMixin):
    """Rounds, scores and labels of :class:`~labelwise.catalog.Catalog`."""

    def next_round_number(self, project: ProjectRecord) -> int:
        """The number the next round would get now: a peek, not a reservation (another writer
        may take it first). Create rounds with :meth:`create_round`, which allocates atomically."""
        with self.session() as s:
            current = s.scalar(select(func.max(RoundRow.number)).where(RoundRow.project_id == project.id))
            return 0 if current is None else int(current) + 1

    def create_round(
        self,
        project: ProjectRecord,
        strategy: str,
        model_version: str | None,
        params: RoundParams,
        scores: Sequence[ImageScore],
        selected: Sequence[str],
        *,
        exclusive: bool = True,
        owner: RoundOwner | None = None,
    ) -> int:
        """Allocate the next round number and store a ``proposed`` round, in one transaction.

        Safe with other processes and threads doing the same (see the module docstring): each
        call gets its own number. ``params`` are stored with the number and ``owner`` (default:
        this process) set; ``selected`` (queue order) are the round's images, ``scores`` every
        candidate's. Rounds are opened through :mod:`labelwise.rounds.opening`.

        Args:
            exclusive: refuse images another proposed round holds, or that are no longer
                unlabelled (checked under the lock, so two concurrent rounds never share one).

        Returns:
            The round's number.

        Raises:
            RoundConflict: ``exclusive`` and some selected images are held or taken; nothing
                is stored.
            CatalogError: repeated ids, an unknown project, or no free number after
                :data:`CREATE_ATTEMPTS` unique-constraint races.
        """
        picked = list(selected)
        rank = {image_id: i for i, image_id in enumerate(picked)}
        if len(rank) != len(picked):
            raise CatalogError(f"selected must list each image once; got {len(picked)} ids, "
                               f"{len(rank)} distinct")
        distinct = len(set(_image_ids(scores)))
        if distinct != len(scores):
            raise CatalogError(f"scores must hold one entry per image; got {len(scores)} entries "
                               f"for {distinct} images")
        who = owner or RoundOwner.current()
        last: IntegrityError | None = None
        for attempt in range(CREATE_ATTEMPTS):
            try:
                with self.session() as s, s.begin():
                    # The project's lock row: the first statement, so the transaction holds the
                    # write lock (SQLite) / the row lock (PostgreSQL) before it reads anything.
                    locked = rows_updated(s, update(ProjectRow).where(ProjectRow.id == project.id)
                                          .values(name=ProjectRow.name))
                    if locked != 1:
                        raise CatalogError(f"project {project.name!r} (id {project.id}) is not "
                                           "in the catalog; expected an existing project")
                    if exclusive and picked:
                        _refuse_held(s, project, picked)
                    number = _next_number(s, project)
                    stored = replace(params, number=number, owner=who).as_json()
                    row = RoundRow(project_id=project.id, number=number, strategy=strategy,
                                   model_version=model_version, params=stored, status=PROPOSED)
                    s.add(row)
                    s.flush()
                    if len(scores):
                        s.execute(insert(ScoreRow), _score_rows(row.id, scores, rank))
                return number
            except IntegrityError as exc:  # a writer that bypassed the lock took the number
                last = exc
                time.sleep(0.005 * (attempt + 1))
        raise CatalogError(
            f"could not allocate a round number for project {project.name!r}: "
            f"{CREATE_ATTEMPTS} attempts each lost a unique-constraint race "
            f"(last: {getattr(last, 'orig', last)}); expected one to succeed"
        )

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
        """Store a round's scores and selection under a GIVEN number (replacing an unqueued
        proposal of that number). New rounds: :meth:`create_round`, which allocates the number."""
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
            if len(scores):
                s.execute(insert(ScoreRow), _score_rows(row.id, scores, rank))
            return row.id

    def proposals(self, project: ProjectRecord) -> list[Proposal]:
        """The project's rounds still ``proposed``, oldest first, with their owner, selected
        images and how many images were queued in each."""
        with self.session() as s:
            rows = s.scalars(select(RoundRow).where(RoundRow.project_id == project.id,
                                                    RoundRow.status == PROPOSED)
                             .order_by(RoundRow.number)).all()
            if not rows:
                return []
            picked: dict[int, list[str]] = {r.id: [] for r in rows}
            for round_id, image_id in s.execute(
                select(ScoreRow.round_id, ScoreRow.image_id)
                .where(ScoreRow.round_id.in_(list(picked)), ScoreRow.selected)
                .order_by(ScoreRow.round_id, ScoreRow.rank)
            ).all():
                picked[round_id].append(image_id)
            queued: dict[int | None, int] = {number: count for number, count in s.execute(
                select(ImageRow.queued_round, func.count())
                .where(ImageRow.project_id == project.id,
                       ImageRow.queued_round.in_([r.number for r in rows]))
                .group_by(ImageRow.queued_round)
            ).all()}
            return [Proposal(number=r.number, source=RoundParams.from_json(r.params).source,
                             owner=RoundOwner.from_params(r.params), created_at=_utc(r.created_at),
                             selected=tuple(picked[r.id]), queued=int(queued.get(r.number, 0)))
                    for r in rows]

    def held_images(
        self, project: ProjectRecord, *, max_age: timedelta = STALE_PROPOSAL_AGE,
        now: datetime | None = None,
    ) -> dict[str, int]:
        """``{image_id: round}`` of images selected in proposals that are still open (not stale
        by the module's rule): no candidates for another round."""
        when = now or _now()
        return {image_id: p.number for p in self.proposals(project)
                if p.disposition(when, max_age) == "open" for image_id in p.selected}

    def settle_stale_rounds(
        self, project: ProjectRecord, *, max_age: timedelta = STALE_PROPOSAL_AGE,
        now: datetime | None = None,
    ) -> SettledRounds:
        """Resume or close stale proposals by the module's rule, each through the
        compare-and-set :meth:`transition_round` (so concurrent callers settle a round once).

        A resumed round moves ``proposed -> queued``, a closed one ``proposed -> abandoned``;
        either gets a ``settled`` note in its params saying why. Returns the numbers this call
        moved (rounds another caller settled first are not reported).
        """
        when = now or _now()
        done = SettledRounds()
        for p in self.proposals(project):
            verdict = p.disposition(when, max_age)
            if verdict == "resume" and self.transition_round(project, p.number, PROPOSED, QUEUED):
                done.resumed.append(p.number)
                why = (f"resumed: {p.queued} image(s) were queued in it but the round was left "
                       f"proposed ({p.describe(when)})")
            elif verdict == "close" and self.transition_round(project, p.number, PROPOSED, ABANDONED):
                done.closed.append(p.number)
                gone = p.age(when) <= max_age
                cause = f"its owner {p.owner} is gone" if gone else f"it is older than {max_age}"
                why = f"closed: none of its images was queued and {cause} ({p.describe(when)})"
            else:
                continue
            self.update_round_params(project, p.number, {"settled": why})
        return done

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

        Raises:
            IllegalTransition: a move :data:`labelwise.rounds.status.TRANSITIONS` does not allow
                (from any of ``from_status``), before anything is written.
        """
        allowed = [from_status] if isinstance(from_status, str) else list(from_status)
        check_transition(allowed, to_status)  # IllegalTransition names the move and what is allowed
        allowed = [str(a) for a in allowed]
        with self.session() as s, s.begin():
            return rows_updated(s, update(RoundRow)
                                .where(RoundRow.project_id == project.id, RoundRow.number == number,
                                       RoundRow.status.in_(allowed))
                                .values(status=str(to_status))) == 1

    def mark_reviewed(self, project: ProjectRecord, number: int, *, request_learn: bool) -> bool:
        """Move a round ``queued -> reviewed`` (compare-and-set, True for exactly one caller);
        with ``request_learn``, write its learn request (:mod:`labelwise.review.learn_requests`)
        in the same transaction, so the move and the request exist together or not at all."""
        with self.session() as s, s.begin():
            moved = rows_updated(s, update(RoundRow)
                                 .where(RoundRow.project_id == project.id, RoundRow.number == number,
                                        RoundRow.status == QUEUED)
                                 .values(status=REVIEWED)) == 1
            if moved and request_learn:
                exists = s.scalar(select(LearnRequestRow.id).where(
                    LearnRequestRow.project_id == project.id,
                    LearnRequestRow.round_number == number))
                if exists is None:
                    s.add(LearnRequestRow(project_id=project.id, round_number=number))
            return moved

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
        """Merge ``extra`` into a round's params: notes recorded as the round proceeds, under the
        keys of :class:`~labelwise.rounds.params.RoundNote` only (ValueError naming any other)."""
        extra = check_notes(extra)
        with self.session() as s, s.begin():
            row = s.scalar(select(RoundRow).where(RoundRow.project_id == project.id, RoundRow.number == number))
            if row is None:
                raise CatalogError(f"project {project.name!r} has no round {number}")
            row.params = {**(row.params or {}), **extra}
            return dict(row.params)


def _image_ids(scores: Sequence[ImageScore]) -> Sequence[str]:
    return scores.image_ids if isinstance(scores, ScoreTable) else [sc.image_id for sc in scores]


def _score_rows(
    round_id: int, scores: Sequence[ImageScore], rank: dict[str, int]
) -> list[dict[str, Any]]:
    """The score rows of one round: every candidate in ``scores`` (a :class:`ScoreTable` is
    read by column, without an ImageScore per row), ``rank`` = the selected ones' places in the
    selector's order."""
    rows = (scores.rows() if isinstance(scores, ScoreTable)
            else ((sc.image_id, float(sc.uncertainty_score), dict(sc.scores)) for sc in scores))
    return [{"round_id": round_id, "image_id": image_id, "uncertainty_score": combined,
             "scores": by_name, "selected": image_id in rank, "rank": rank.get(image_id)}
            for image_id, combined, by_name in rows]
