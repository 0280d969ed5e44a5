"""Round statuses and the value types of open proposals: who owns a round, when a ``proposed``
round is stale, and the conflict raised when images are already held. Pure values, no database;
:mod:`labelwise.catalog.rounds` applies them (its docstring states the rules).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from labelwise.catalog.records import CatalogError
from labelwise.rounds.status import (  # noqa: F401 - the statuses' one definition, re-exported
    ABANDONED,
    LEARNED,
    LEARNING,
    PROPOSED,
    QUEUED,
    REVIEWED,
)

SERVING_SOURCE = "serving"  # params.source of the serving API's rounds (their outbox owns them)
STALE_PROPOSAL_AGE = timedelta(hours=1)  # a proposal this old is closed whoever owns it
CREATE_ATTEMPTS = 8  # numbers tried by create_round when a writer bypasses the lock row


class RoundConflict(CatalogError):
    """A round cannot take these images: another open round holds some, or they were queued or
    labelled meanwhile. ``held`` maps each such image id to the round holding it (None: not
    held by a round but no longer unlabelled); ``open_rounds`` are the proposals that hold."""

    def __init__(self, message: str, held: dict[str, int | None], open_rounds: Sequence[int]):
        super().__init__(message)
        self.held = dict(held)
        self.open_rounds = list(open_rounds)


@dataclass(frozen=True)
class RoundOwner:
    """The process that created a round: host name and pid (stored as ``params["owner"]``)."""

    host: str
    pid: int

    @classmethod
    def current(cls) -> "RoundOwner":
        return cls(socket.gethostname(), os.getpid())

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> "RoundOwner | None":
        raw = (params or {}).get("owner")
        if not isinstance(raw, dict):
            return None
        host, pid = raw.get("host"), raw.get("pid")
        if not isinstance(host, str) or isinstance(pid, bool) or not isinstance(pid, int):
            return None
        return cls(host, pid)

    def as_params(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid}

    def alive(self) -> bool | None:
        """True/False for an owner on this host (does the pid exist?); None on another host."""
        if self.host != socket.gethostname():
            return None
        if self.pid == os.getpid():
            return True
        if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by another user
            return True
        except OSError:
            return None
        return True

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


@dataclass(frozen=True)
class Proposal:
    """A round still ``proposed``, as :meth:`RoundsMixin.proposals` reports it."""

    number: int
    source: str | None
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
        if self.source == SERVING_SOURCE:
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
