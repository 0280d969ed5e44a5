"""Pure loop rules: when the champion moves, when gains have plateaued."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PromotionDecision:
    """The promotion rule's verdict on a candidate: whether ``champion`` moves, and why.

    Attributes:
        promote: whether the alias moves to the candidate.
        reason: the rule's arithmetic (or ``no champion yet`` / ``already champion``).
        candidate: the candidate's primary metric; champion: the champion's (None: no champion).
    """

    promote: bool
    reason: str
    candidate: float
    champion: float | None

    @property
    def explanation(self) -> str:
        """``promoted because <reason>`` or ``not promoted because <reason>`` (how the registry
        records the decision on the candidate version)."""
        return f"{'promoted' if self.promote else 'not promoted'} because {self.reason}"


def decide_promotion(candidate: float, champion: float | None, tolerance: float,
                     metric: str = "mAP50-95") -> PromotionDecision:
    """Promote unless the candidate's ``metric`` (the project's primary metric: mAP50-95 for
    detection, top1 for classification) drops more than ``tolerance`` below the champion's.

    With no champion yet, the candidate is promoted.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0; got {tolerance}")
    if champion is None:
        return PromotionDecision(True, "no champion yet", candidate, None)
    if candidate >= champion - tolerance:
        return PromotionDecision(
            True, f"{metric} {candidate:.4f} >= champion {champion:.4f} - tolerance {tolerance}",
            candidate, champion)
    return PromotionDecision(
        False, f"{metric} {candidate:.4f} < champion {champion:.4f} - tolerance {tolerance}",
        candidate, champion)


def has_plateaued(history: Sequence[float], epsilon: float, rounds: int) -> bool:
    """True when each of the last ``rounds`` gains of ``history`` (mAP per round) is below epsilon.

    Needs ``rounds + 1`` values; fewer means not enough evidence, so False.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1; got {rounds}")
    if len(history) < rounds + 1:
        return False
    tail = list(history)[-(rounds + 1):]
    return all(b - a < epsilon for a, b in zip(tail, tail[1:]))
