"""A round's parameters, typed: where the round came from, what its selection applied, and the
notes its later steps add.

A round is stored with one JSON document (``RoundRow.params``); this module is the only code that
knows its keys. :class:`RoundParams` is what is written when the round is created
(:mod:`labelwise.rounds.opening`) and what readers get back (:meth:`RoundParams.from_json`,
tolerant of rounds stored by earlier versions). Later steps add *notes* under the keys of
:class:`RoundNote` only (:func:`check_notes`; the catalog refuses any other key).

Stored layout (flat, so a score batch's ``params`` and MLflow's round params read the same)::

    {"source": "score_batch" | "serving" | "api",   # absent on rounds stored before sources
     "upload_group": str | null,                     # serving and assignment rounds
     "limit": ..., "diversity_weight": ..., ...      # SelectionRecord (score-batch rounds)
     "routing_strategy": ..., "routing_threshold": ... # RoutingRecord (serving rounds)
     "round": int, "owner": {"host", "pid"},         # added by the catalog at creation
     "base_model": ..., "learned": {...}, ...}       # notes (RoundNote), added later
"""

from __future__ import annotations

import enum
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from labelwise.rounds.status import LEARNED_SUMMARY


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


class RoundSource(str, enum.Enum):
    """Who asked for a round."""

    SCORE_BATCH = "score_batch"
    """A strategy's selection over the unlabelled pool (``propose-round``, ``labelwise queue``)."""
    SERVING = "serving"
    """Uncertain inference requests of one upload group (the serving API's outbox owns it)."""
    ASSIGNMENT = "api"
    """Exactly the images a caller named (``POST /v1/assignments/queue``)."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: object) -> "RoundSource":
        """The source stored as ``value``; None (rounds stored before sources were recorded,
        all of them score-batch rounds) is :attr:`SCORE_BATCH`."""
        if value is None:
            return cls.SCORE_BATCH
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"round source must be one of {[s.value for s in cls]}; got {value!r}") from None


class RoundNote(str, enum.Enum):
    """The keys a round's later steps may add to its params (:func:`check_notes`)."""

    BASE_MODEL = "base_model"
    """propose: the model reference the pool was auto-labelled with."""
    AUTO_LABEL_SECONDS = "seconds/auto_label"
    """propose: seconds the auto-label step took."""
    ARTIFACTS = "artifacts"
    """propose: paths of the batch's files (JSON, contact sheet)."""
    CORRECTIONS = "corrections"
    """pull: how much reviewers changed the pre-annotations (:mod:`labelwise.review.corrections`)."""
    LEARNED = LEARNED_SUMMARY
    """learn: the learn summary (:data:`labelwise.rounds.status.LEARNED_SUMMARY`)."""
    SETTLED = "settled"
    """stale-proposal settlement: why a dead process's proposal was closed or resumed."""

    def __str__(self) -> str:
        return self.value


NOTE_KEYS: frozenset[str] = frozenset(n.value for n in RoundNote)


def check_notes(notes: Mapping[str, object]) -> dict[str, object]:
    """``notes`` as a dict when every key is a :class:`RoundNote`; ValueError naming the
    unknown keys and the accepted ones otherwise."""
    unknown = sorted(str(k) for k in notes if str(k) not in NOTE_KEYS)
    if unknown:
        raise ValueError(f"unknown round note(s) {unknown}; expected keys among {sorted(NOTE_KEYS)}")
    return {str(k): v for k, v in notes.items()}


@dataclass(frozen=True)
class SelectionRecord:
    """What a score-batch selection applied and counted (the batch's ``params``).

    Attributes:
        limit: images asked for.
        diversity_weight: the weight the strategy applied (None: it has no uncertainty/diversity
            trade, e.g. random).
        class_balance: whether the strategy capped each predicted class.
        seed: the selection's random seed (None: unseeded).
        candidate_factor: candidates considered per image asked for.
        embedder: the embedder whose vectors diversity used (None: no embeddings used).
        candidates: images that could be picked (scored, unlabelled, not held by another round).
        tied_candidates: candidates sharing their score with another one.
        unlabelled_without_prediction: unlabelled images with no stored prediction (not scored).
        held_back: scored images another open round holds.
        scoring: the scoring rule's parameters (:meth:`labelwise.scoring.ScoringRule.as_params`).
        requested_diversity_weight / requested_class_balance: what the request asked when the
            strategy set that knob itself (None: it applied what was asked).
        closed_stale_rounds / resumed_stale_rounds: stale proposals settled before selecting.
    """

    limit: int
    diversity_weight: float | None
    class_balance: bool
    seed: int | None
    candidate_factor: float
    embedder: str | None
    candidates: int
    tied_candidates: int
    unlabelled_without_prediction: int
    held_back: int
    scoring: Mapping[str, Any] = field(default_factory=dict)
    requested_diversity_weight: float | None = None
    requested_class_balance: bool | None = None
    closed_stale_rounds: tuple[int, ...] = ()
    resumed_stale_rounds: tuple[int, ...] = ()

    @classmethod
    def of_request(cls, *, limit: int, seed: int | None, candidate_factor: float,
                   requested_weight: float, requested_balance: bool, applied_weight: float | None,
                   applied_balance: bool, **counts: Any) -> "SelectionRecord":
        """The record of a request and what its strategy applied: ``requested_*`` is kept only
        where the strategy applied something else."""
        return cls(
            limit=limit, seed=seed, candidate_factor=candidate_factor,
            diversity_weight=applied_weight, class_balance=applied_balance,
            requested_diversity_weight=None if applied_weight == float(requested_weight)
            else float(requested_weight),
            requested_class_balance=None if applied_balance == bool(requested_balance)
            else bool(requested_balance),
            **counts,
        )

    def with_settled(self, closed: Sequence[int], resumed: Sequence[int]) -> "SelectionRecord":
        from dataclasses import replace

        return replace(self, closed_stale_rounds=tuple(closed), resumed_stale_rounds=tuple(resumed))

    def as_json(self, *, settled: bool = True) -> dict[str, object]:
        """The stored keys, in the order the batch shows them (``settled``: include the stale
        rounds settled, which only a recorded round has)."""
        data: dict[str, object] = {
            "limit": self.limit,
            "diversity_weight": self.diversity_weight,
            "seed": self.seed,
            "class_balance": self.class_balance,
        }
        if self.requested_diversity_weight is not None:
            data["requested_diversity_weight"] = self.requested_diversity_weight
        if self.requested_class_balance is not None:
            data["requested_class_balance"] = self.requested_class_balance
        data.update({
            "candidate_factor": self.candidate_factor,
            "embedder": self.embedder,
            "candidates": self.candidates,
            "tied_candidates": self.tied_candidates,
            "unlabelled_without_prediction": self.unlabelled_without_prediction,
            "held_back": self.held_back,
            "scoring": dict(self.scoring),
        })
        if settled:
            data["closed_stale_rounds"] = list(self.closed_stale_rounds)
            data["resumed_stale_rounds"] = list(self.resumed_stale_rounds)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SelectionRecord | None":
        """The record in stored params; None when they hold none (not a score-batch round)."""
        if "limit" not in data:
            return None
        return cls(
            limit=int(data["limit"]),
            diversity_weight=None if data.get("diversity_weight") is None else float(data["diversity_weight"]),
            class_balance=bool(data.get("class_balance", False)),
            seed=None if data.get("seed") is None else int(data["seed"]),
            candidate_factor=float(data.get("candidate_factor", 0.0)),
            embedder=None if data.get("embedder") is None else str(data["embedder"]),
            candidates=int(data.get("candidates", 0)),
            tied_candidates=int(data.get("tied_candidates", 0)),
            unlabelled_without_prediction=int(data.get("unlabelled_without_prediction", 0)),
            held_back=int(data.get("held_back", 0)),
            scoring=dict(data.get("scoring") or {}),
            requested_diversity_weight=(None if data.get("requested_diversity_weight") is None
                                        else float(data["requested_diversity_weight"])),
            requested_class_balance=(None if data.get("requested_class_balance") is None
                                     else bool(data["requested_class_balance"])),
            closed_stale_rounds=tuple(int(n) for n in data.get("closed_stale_rounds") or ()),
            resumed_stale_rounds=tuple(int(n) for n in data.get("resumed_stale_rounds") or ()),
        )


@dataclass(frozen=True)
class RoutingRecord:
    """How a serving round's images were routed: the uncertainty score and the threshold under
    which a request's image joins the upload group (not the held-out evaluation)."""

    strategy: str
    threshold: float

    def as_json(self) -> dict[str, object]:
        return {"routing_strategy": self.strategy, "routing_threshold": self.threshold}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RoutingRecord | None":
        # rounds stored before the rename kept these under evaluation_*
        strategy = data.get("routing_strategy", data.get("evaluation_strategy"))
        threshold = data.get("routing_threshold", data.get("evaluation_threshold"))
        if strategy is None or threshold is None:
            return None
        return cls(str(strategy), float(threshold))


@dataclass(frozen=True)
class RoundParams:
    """A round's parameters (see the module docstring for the stored layout).

    Attributes:
        source: who asked for the round.
        upload_group: the serving or assignment group whose images the round holds.
        selection: what a score-batch selection applied (score-batch rounds only).
        routing: how serving routed its images (serving rounds only).
        number / owner: the round's number and the process that created it (set by the catalog
            at creation; None before).
        notes: what later steps added (keys of :class:`RoundNote`).
    """

    source: RoundSource
    upload_group: str | None = None
    selection: SelectionRecord | None = None
    routing: RoutingRecord | None = None
    number: int | None = None
    owner: RoundOwner | None = None
    notes: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source is RoundSource.SCORE_BATCH and self.upload_group is not None:
            raise ValueError(f"a score-batch round has no upload group; got {self.upload_group!r}")
        if self.source is not RoundSource.SCORE_BATCH and self.selection is not None:
            raise ValueError(f"only a score-batch round has a selection record; got source {self.source}")
        check_notes(self.notes)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"source": self.source.value}
        if self.source is not RoundSource.SCORE_BATCH:
            data["upload_group"] = self.upload_group
        if self.selection is not None:
            data.update(self.selection.as_json())
        if self.routing is not None:
            data.update(self.routing.as_json())
        if self.number is not None:
            data["round"] = self.number
        if self.owner is not None:
            data["owner"] = self.owner.as_params()
        data.update(self.notes)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> "RoundParams":
        """Stored params back as typed ones; unknown keys of earlier versions are dropped."""
        raw = dict(data or {})
        source = RoundSource.parse(raw.get("source"))
        number = raw.get("round")
        group = raw.get("upload_group")
        return cls(
            source=source,
            upload_group=None if source is RoundSource.SCORE_BATCH or group is None else str(group),
            selection=SelectionRecord.from_json(raw) if source is RoundSource.SCORE_BATCH else None,
            routing=RoutingRecord.from_json(raw) if source is RoundSource.SERVING else None,
            number=number if isinstance(number, int) and not isinstance(number, bool) else None,
            owner=RoundOwner.from_params(raw),
            notes={k: v for k, v in raw.items() if k in NOTE_KEYS},
        )
