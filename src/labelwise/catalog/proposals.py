"""Round statuses and the value types of open proposals: who owns a round (:class:`RoundOwner`,
defined with the round's params), when a ``proposed``
round is stale, and the conflict raised when images are already held. Pure values, no database;
:mod:`labelwise.catalog.rounds` applies them (its docstring states the rules).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from labelwise.catalog.records import CatalogError
from labelwise.rounds.params import RoundOwner, RoundSource  # noqa: F401 - re-exported
from labelwise.rounds.status import (  # noqa: F401 - the statuses' one definition, re-exported
    ABANDONED,
    LEARNED,
    LEARNING,
    PROPOSED,
    QUEUED,
    REVIEWED,
)

STALE_PROPOSAL_AGE = timedelta(hours=1)  # a proposal this old is closed whoever owns it
CREATE_ATTEMPTS = 8  # numbers tried by create_round when a writer bypasses the lock row


class RoundConflict(CatalogError):
    """A round cannot take these images: another open round holds some, or they were queued or
    labelled meanwhile. ``held`` maps each such image id to the round holding it (None: not
    held by a round but no longer unlabelled); ``open_rounds`` are the proposals that hold."""

    def __init__(self, message: str, held: Mapping[str, int | None], open_rounds: Sequence[int]):
        super().__init__(message)
        self.held = dict(held)
        self.open_rounds = list(open_rounds)


@dataclass(frozen=True)
class Proposal:
    """A round still ``proposed``, as :meth:`RoundsMixin.proposals` reports it."""

    number: int
    source: RoundSource
    owner: RoundOwner | None
    created_at: datetime
    selected: tuple[str, ...]
    queued: int  # images whose queued_round is this round

    def age(self, now: datetime) -> timedelta:
        return now - self.created_at

    def disposition(self, now: datetime, max_age: timedelta = STALE_PROPOSAL_AGE) -> str:
        """``"resume"``, ``"close"`` or ``"open"`` by the module's stale-proposal rule."""
        if self.queued:
            return "resume"
        if self.source is RoundSource.SERVING:  # the serving outbox owns it
            return "open"
        if self.age(now) > max_age:
            return "close"
        if self.owner is not None and self.owner.alive() is False:
            return "close"
        return "open"

    def describe(self, now: datetime) -> str:
        who = f"by {self.owner}" if self.owner else "by an unknown process"
        return f"round {self.number} (proposed {self.age(now).total_seconds():.0f} s ago {who})"


@dataclass
class SettledRounds:
    """What :meth:`RoundsMixin.settle_stale_rounds` did: round numbers closed and resumed."""

    closed: list[int] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)
