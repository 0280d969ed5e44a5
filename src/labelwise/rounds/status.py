"""The round's statuses and the moves between them: the one definition (pure, no database).

    proposed ──▶ queued ──▶ reviewed ──▶ learning ──▶ learned
        │           │                        │
        │           └──────▶ learning        └──▶ reviewed   (a failed learn gives it back)
        ├──▶ abandoned   (the batch never reached Label Studio: a failed API assignment, or a
        │                 killed/failed queue settled by the next recording score-batch)
        └──▶ queued      (a proposal whose images were queued: resumed)

``queued -> learning``: a learn run may start on a round whose review is complete before anyone
marked it reviewed (the learn deployment started by hand). The catalog enforces these moves
(``Catalog.transition_round`` raises :class:`IllegalTransition` for any other) and makes each one
a compare-and-set, so of several callers racing for one move exactly one wins.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class RoundStatus(str, enum.Enum):
    """Where a round is in its life cycle (stored as its value)."""

    PROPOSED = "proposed"
    QUEUED = "queued"
    REVIEWED = "reviewed"
    LEARNING = "learning"
    LEARNED = "learned"
    ABANDONED = "abandoned"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:  # messages quote it like the plain string it is stored as
        return repr(self.value)


PROPOSED, QUEUED, REVIEWED = RoundStatus.PROPOSED, RoundStatus.QUEUED, RoundStatus.REVIEWED
LEARNING, LEARNED, ABANDONED = RoundStatus.LEARNING, RoundStatus.LEARNED, RoundStatus.ABANDONED

TRANSITIONS: dict[RoundStatus, frozenset[RoundStatus]] = {
    PROPOSED: frozenset({QUEUED, ABANDONED}),
    QUEUED: frozenset({REVIEWED, LEARNING}),
    REVIEWED: frozenset({LEARNING}),
    LEARNING: frozenset({LEARNED, REVIEWED}),
    LEARNED: frozenset(),
    ABANDONED: frozenset(),
}
"""Allowed moves: ``TRANSITIONS[from]`` is the set of statuses a round may move to."""

OPEN_STATUSES = (QUEUED, REVIEWED)
"""A round in one of these is waiting to be learned (a learn run may claim it)."""

LEARNED_SUMMARY = "learned"
"""Key of the round params holding the summary the learn run that learnt it recorded."""


class IllegalTransition(ValueError):
    """A status move the life cycle does not allow; names the move and what is allowed."""


def parse_status(value: str | RoundStatus) -> RoundStatus:
    """``value`` as a RoundStatus; IllegalTransition naming the statuses otherwise."""
    try:
        return RoundStatus(value)
    except ValueError:
        raise IllegalTransition(
            f"unknown round status {value!r}; expected one of {[s.value for s in RoundStatus]}"
        ) from None


def check_transition(from_status: Iterable[str | RoundStatus], to_status: str | RoundStatus) -> None:
    """Raise :class:`IllegalTransition` unless a round may move from every one of
    ``from_status`` to ``to_status``."""
    to = parse_status(to_status)
    for raw in from_status:
        src = parse_status(raw)
        if to not in TRANSITIONS[src]:
            allowed = sorted(s.value for s in TRANSITIONS[src]) or "none (it is final)"
            raise IllegalTransition(
                f"a round cannot move from {src.value!r} to {to.value!r}; from {src.value!r} it "
                f"may move to: {allowed}"
            )
