"""The round: its life cycle (:mod:`.status`), typed params (:mod:`.params`), the one place
rounds are opened (:mod:`.opening`), finding and waiting for rounds (:mod:`.lifecycle`) and the
two use cases, propose (:mod:`.proposing`) and learn (:mod:`.learning`), run step by step
(:mod:`.steps`).

The status names are importable from here at once; the use cases load on first use, so the
catalog can import :mod:`labelwise.rounds.status` without importing itself back.
"""

from __future__ import annotations

from typing import Any

from labelwise.rounds.status import (
    ABANDONED,
    LEARNED,
    LEARNED_SUMMARY,
    LEARNING,
    OPEN_STATUSES,
    PROPOSED,
    QUEUED,
    REVIEWED,
    TRANSITIONS,
    IllegalTransition,
    RoundStatus,
    check_transition,
    parse_status,
)

_LAZY = {
    "find_round": "labelwise.rounds.lifecycle",
    "wait_for_learned": "labelwise.rounds.lifecycle",
    "learn_round": "labelwise.rounds.learning",
    "LearnOutcome": "labelwise.rounds.learning",
    "propose_round": "labelwise.rounds.proposing",
    "ProposeRequest": "labelwise.rounds.proposing",
    "ProposeOutcome": "labelwise.rounds.proposing",
    "StepRunner": "labelwise.rounds.steps",
    "run_directly": "labelwise.rounds.steps",
}

__all__ = [
    "ABANDONED", "LEARNED", "LEARNED_SUMMARY", "LEARNING", "OPEN_STATUSES", "PROPOSED", "QUEUED",
    "REVIEWED", "TRANSITIONS", "IllegalTransition", "RoundStatus", "check_transition",
    "parse_status", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'labelwise.rounds' has no attribute {name!r}")
