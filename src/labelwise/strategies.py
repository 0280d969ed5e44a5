"""Selection strategies: a name -> (image score, selector) registry.

Each strategy says which score it ranks by (``score_key``; that score becomes the queue's
``uncertainty_score``) and how it selects. One contract test walks :data:`STRATEGIES`, so a new
strategy only needs an entry here to be tested like the others.

The request's knobs (``diversity_weight``, ``class_balance``) are honoured or declared: a
strategy lists the knobs it applies as given in :attr:`Strategy.honours`; for every other knob
it sets its own value. Either way its selector returns a :class:`Selection`: the picks in the
selector's order and the :class:`AppliedKnobs` it actually used, which is what score-batch
records.

Applied-knob rule per strategy:

=====================================================  ==================  ===============
strategy                                               diversity_weight    class_balance
=====================================================  ==================  ===============
``lowest_confidence``, ``margin_sampling``,            0.0 (pure ranking)  False
``entropy``, ``weighted_combination``
``diverse_uncertainty``                                as requested        as requested
``adaptive_diverse``                                   weakness-driven     True
``rare_class_diverse``, ``edit_aware_diverse``         weakness-driven     False
``cold_start``                                         1.0 (diversity)     False
``random``                                             None (no such term) False
=====================================================  ==================  ===============

"weakness-driven" = the share of candidates with no box at or above the confidence floor,
clipped to [0.2, 0.8] (:func:`weakness_weight`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from labelwise.columnar import COMBINED, ScoreTable
from labelwise.domain import ImageScore
from labelwise.selection import (
    Rows,
    diverse_select,
    random_select,
    rank_select,
    rare_class_gain,
    rarity_weights,
)

DIVERSITY_WEIGHT = "diversity_weight"
CLASS_BALANCE = "class_balance"
KNOBS: frozenset[str] = frozenset({DIVERSITY_WEIGHT, CLASS_BALANCE})
"""The request knobs a strategy either honours or sets itself."""
WEAK_WEIGHT_RANGE = (0.2, 0.8)


@dataclass(frozen=True)
class AppliedKnobs:
    """The knob values a selector actually used.

    Attributes:
        diversity_weight: the weight w of the uncertainty/diversity trade (0 = pure uncertainty
            ranking, 1 = pure diversity), or None when the strategy has no such trade (random).
        class_balance: whether each predicted class was capped in the batch.
    """

    diversity_weight: float | None
    class_balance: bool

    def __post_init__(self) -> None:
        w = self.diversity_weight
        if w is not None and not 0.0 <= w <= 1.0:
            raise ValueError(f"applied diversity_weight must lie in [0, 1] or be None; got {w}")
        if not isinstance(self.class_balance, (bool, np.bool_)):
            raise ValueError(f"applied class_balance must be a bool; got {self.class_balance!r}")
        # plain Python values, so that they go into a round's params (JSON) as they are
        object.__setattr__(self, "diversity_weight", None if w is None else float(w))
        object.__setattr__(self, "class_balance", bool(self.class_balance))

    def value(self, knob: str) -> float | bool | None:
        """The applied value of ``knob`` (one of :data:`KNOBS`)."""
        if knob not in KNOBS:
            raise ValueError(f"unknown knob {knob!r}; expected one of {sorted(KNOBS)}")
        return self.diversity_weight if knob == DIVERSITY_WEIGHT else self.class_balance


@dataclass(frozen=True)
class Selection:
    """What a selector returns.

    Attributes:
        indices: (k,) distinct int64 indices into the request's ``scores``, k = min(limit, N),
            in the selector's pick order (first = picked first: for greedy selectors the most
            worth labelling given nothing else is picked).
        applied: the knob values the selector used (see the module docstring's table).
    """

    indices: np.ndarray
    applied: AppliedKnobs


@dataclass(frozen=True)
class SelectionRequest:
    """Everything a strategy may use to pick images.

    Attributes:
        scores: one ImageScore per candidate image, aligned with ``embeddings`` rows.
        limit: how many to pick (>= 1).
        rng: the only source of randomness.
        embeddings: (N, d) image embeddings (or :class:`~labelwise.selection.LazyRows` read
            on demand), or None when none were computed.
        labelled_embeddings: (L, d) embeddings of images already labelled, or None.
        diversity_weight: in [0, 1], used by diversity-aware strategies.
        candidate_factor: diversity strategies consider limit x this most uncertain images.
        class_balance: balance the batch by predicted class.
        labelled_class_counts: (C,) boxes per class in the labelled set, or None when unknown
            (rarity-aware strategies then use the pool's expected boxes per class).
    """

    scores: Sequence[ImageScore]
    limit: int
    rng: np.random.Generator
    embeddings: Rows | None = None
    labelled_embeddings: np.ndarray | None = None
    diversity_weight: float = 0.5
    candidate_factor: int = 10
    class_balance: bool = False
    labelled_class_counts: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"limit must be >= 1; got {self.limit}")
        if not 0.0 <= self.diversity_weight <= 1.0:
            raise ValueError(f"diversity_weight must lie in [0, 1]; got {self.diversity_weight}")
        if self.candidate_factor < 1:
            raise ValueError(f"candidate_factor must be >= 1; got {self.candidate_factor}")
        if self.embeddings is not None and len(self.embeddings) != len(self.scores):
            raise ValueError(
                f"embeddings must have one row per scored image ({len(self.scores)}); "
                f"got {len(self.embeddings)}"
            )

    def requested(self) -> AppliedKnobs:
        """The knob values as requested (what a strategy honouring both applies)."""
        return AppliedKnobs(float(self.diversity_weight), bool(self.class_balance))

    @property
    def table(self) -> ScoreTable:
        """The scores as columns (built once; a :class:`ScoreTable` is used as it is)."""
        cached = self.__dict__.get("_table")
        if cached is None:
            cached = ScoreTable.of(self.scores)
            object.__setattr__(self, "_table", cached)
        return cached

    def values(self, key: str) -> np.ndarray:
        """(N,) the scores under ``key`` (a per-strategy score name or ``combined``)."""
        return self.table.column(key)

    def class_ids(self) -> np.ndarray:
        """(N,) predicted class per image (-1 = none)."""
        return self.table.predicted_class

    def boxes_considered(self) -> np.ndarray:
        """(N,) float64 boxes at or above the confidence floor per image."""
        return self.table.boxes_considered.astype(np.float64)

    def expected_edits(self) -> np.ndarray:
        """(N,) float64 expected reviewer edits per image."""
        return self.table.expected_edits

    def class_mass(self, name: str) -> np.ndarray:
        """(N, C) ``ImageScore.class_mass`` rows; raises when a score lacks one (for ``name``)."""
        try:
            mass = self.table.class_mass
        except ValueError as exc:
            raise ValueError(f"strategy {name!r} needs every image score's class_mass (expected "
                             f"boxes per class, from scoring.score_image); {exc}") from None
        if len(self.scores) == 0:
            return np.zeros((0, 0), np.float64)
        if mass.shape[1] == 0:
            raise ValueError(
                f"strategy {name!r} needs every image score's class_mass (expected boxes per "
                f"class, from scoring.score_image); got lengths [0]"
            )
        return mass


def score_value(score: ImageScore, key: str) -> float:
    """The value of ``key`` for one image: a per-strategy score or the combined score."""
    return float(score.uncertainty_score if key == COMBINED else score.scores[key])


RANKED = AppliedKnobs(diversity_weight=0.0, class_balance=False)
"""What a ranking strategy applies: the k lowest scores (diverse_select at w = 0), no class cap."""


def _rank(key: str) -> Callable[[SelectionRequest], Selection]:
    def select(req: SelectionRequest) -> Selection:
        return Selection(rank_select(req.values(key), req.limit, req.rng), RANKED)

    return select


def _require_embeddings(req: SelectionRequest, name: str) -> Rows:
    if req.embeddings is None:
        raise ValueError(
            f"strategy {name!r} needs image embeddings; got none. Run auto-label with an "
            "embedder (embedder.kind: auto, clip or detector), or choose a ranking strategy."
        )
    return req.embeddings


def _diverse(req: SelectionRequest) -> Selection:
    """Honours both knobs: the requested diversity weight and class balance."""
    picked = diverse_select(
        req.values(COMBINED),
        _require_embeddings(req, "diverse_uncertainty"),
        req.limit,
        req.diversity_weight,
        req.rng,
        labelled_embeddings=req.labelled_embeddings,
        candidate_pool=req.limit * req.candidate_factor,
        class_ids=req.class_ids(),
        class_balance=req.class_balance,
    )
    return Selection(picked, req.requested())


COLD_START_WEIGHT = 1.0
COLD_START = AppliedKnobs(diversity_weight=COLD_START_WEIGHT, class_balance=False)
"""What cold start applies: no model, so no uncertainty to trade and no predicted class."""


def _cold_start(req: SelectionRequest) -> Selection:
    picked = diverse_select(
        np.zeros(len(req.scores)),
        _require_embeddings(req, "cold_start"),
        req.limit,
        COLD_START_WEIGHT,
        req.rng,
        labelled_embeddings=req.labelled_embeddings,
        candidate_pool=req.limit * max(req.candidate_factor, 20),
    )
    return Selection(picked, COLD_START)


def _adaptive(req: SelectionRequest) -> Selection:
    """Diversity while the model is weak, uncertainty x box density as it improves.

    ``weak`` = share of candidate images with no box at or above the confidence floor; the
    diversity weight is ``weak`` clipped to [0.2, 0.8]. The utility ranked is
    ``(1 - combined score) * (1 + ln(1 + boxes considered))``: an image with several uncertain
    boxes teaches more per label than one with a single box. The batch is class-balanced by
    predicted class, so rare classes are not crowded out by the frequent ones. Sets both knobs
    itself (the request's are not used).
    """
    emb = _require_embeddings(req, "adaptive_diverse")
    s = req.values(COMBINED)
    boxes = req.boxes_considered()
    gain = (1.0 - s) * (1.0 + np.log1p(boxes))
    return _diverse_by_gain(req, emb, gain, class_balance=True)


def weakness_weight(scores: Sequence[ImageScore]) -> float:
    """The diversity weight the gain strategies set themselves: the share of the N images with
    no box at or above the confidence floor (``boxes_considered == 0``), clipped to
    :data:`WEAK_WEIGHT_RANGE`; an empty pool counts as fully weak."""
    boxes = ScoreTable.of(scores).boxes_considered
    weak = float(np.mean(boxes == 0)) if boxes.size else 1.0
    low, high = WEAK_WEIGHT_RANGE
    return min(high, max(low, weak))


def _diverse_by_gain(
    req: SelectionRequest, emb: Rows, gain: np.ndarray, class_balance: bool = False
) -> Selection:
    """:func:`diverse_select` on a non-negative (N,) ``gain`` (higher = more worth labelling).

    The gain becomes a score on [0, 1] (``1 - gain / max gain``, lower = picked first); the
    diversity weight follows how weak the model is (:func:`weakness_weight`). Both knobs are
    set here, not taken from the request; the returned ``applied`` says which values were used.
    """
    top = float(gain.max()) if gain.size else 0.0
    ranked = 1.0 - gain / top if top > 0 else np.zeros(len(req.scores))
    weight = weakness_weight(req.table)
    picked = diverse_select(
        np.clip(ranked, 0.0, 1.0),
        emb,
        req.limit,
        weight,
        req.rng,
        labelled_embeddings=req.labelled_embeddings,
        candidate_pool=req.limit * req.candidate_factor,
        class_ids=req.class_ids() if class_balance else None,
        class_balance=class_balance,
    )
    return Selection(picked, AppliedKnobs(weight, class_balance))


def _rare_class(req: SelectionRequest) -> Selection:
    """Uncertain images likely to hold boxes of the classes the labelled set lacks, diversified.

    Utility ``gain = (class_mass @ w) * (2 - combined score)``: the image's expected boxes per
    class weighted by ``w`` = :func:`~labelwise.selection.rarity_weights` of the labelled
    boxes per class (of the pool's expected boxes when none are given), up to doubled by
    uncertainty. mAP averages over classes, so a box of a class with 3 labelled examples is
    worth far more than one more of a class with 60. The ranked gain then goes through
    :func:`~labelwise.selection.diverse_select` with the weakness-driven diversity weight of
    ``adaptive_diverse`` (near-duplicates of one rare-looking image are not all picked), without
    class balance (the rarity weights already favour the classes the labelled set lacks).
    """
    emb = _require_embeddings(req, "rare_class_diverse")
    mass = req.class_mass("rare_class_diverse")
    gain = rare_class_gain(mass, rarity_weights(_labelled_counts(req, mass))) * (2.0 - req.values(COMBINED))
    return _diverse_by_gain(req, emb, gain)


def _labelled_counts(req: SelectionRequest, mass: np.ndarray) -> np.ndarray:
    return rarity_basis(req.labelled_class_counts, mass)


def rarity_basis(counts: np.ndarray | None, mass: np.ndarray) -> np.ndarray:
    """(C,) the box counts rarity is measured on: ``counts`` (labelled boxes per class), or
    the pool's expected boxes (the (N, C) ``mass`` summed over images) when none are labelled."""
    if counts is None or float(np.sum(counts)) <= 0:
        return mass.sum(axis=0)
    if np.asarray(counts).shape != (mass.shape[1],):
        raise ValueError(
            f"labelled_class_counts must be ({mass.shape[1]},) like class_mass; got shape "
            f"{np.asarray(counts).shape}"
        )
    return np.asarray(counts, dtype=np.float64)


def _edit_aware(req: SelectionRequest) -> Selection:
    """``rare_class_diverse``'s gain per expected reviewer edit, diversified the same way.

    ``gain = (class_mass @ w) * (2 - combined score) / (1 + expected_edits)``: the image's
    rarity-weighted expected boxes, up to doubled by uncertainty, divided by the edits its
    pre-annotations are expected to need (``scoring.expected_edits``: sent boxes that are wrong
    plus objects under the floor that must be drawn). Reviewers pay in edits, not in images, so
    an image whose boxes are mostly right but hold a rare, uncertain object comes first. Sets
    both knobs itself, like ``rare_class_diverse``.
    """
    emb = _require_embeddings(req, "edit_aware_diverse")
    mass = req.class_mass("edit_aware_diverse")
    counts = _labelled_counts(req, mass)
    edits = req.expected_edits()
    gain = rare_class_gain(mass, rarity_weights(counts)) * (2.0 - req.values(COMBINED)) / (1.0 + edits)
    return _diverse_by_gain(req, emb, gain)


RANDOM = AppliedKnobs(diversity_weight=None, class_balance=False)
"""What random applies: no uncertainty/diversity trade, no class cap."""


def _random(req: SelectionRequest) -> Selection:
    return Selection(random_select(len(req.scores), req.limit, req.rng), RANDOM)


@dataclass(frozen=True)
class Strategy:
    """A named way to pick images.

    Attributes:
        name: what users type (``--strategy``).
        score_key: the score that becomes ``uncertainty_score`` in the queue.
        needs_predictions: False only for strategies usable before any model exists.
        description: one line for ``--help`` and docs.
        needs_embeddings: True when ``select`` reads ``embeddings`` (callers must supply them).
        weighs_rarity: True when the gain weighs expected boxes by class rarity (the pick
            reason then names the rare class).
        honours: the request knobs (:data:`KNOBS`) the selector applies as requested; for the
            others it sets its own value and reports it in ``Selection.applied``.
    """

    name: str
    score_key: str
    select: Callable[[SelectionRequest], Selection]
    needs_predictions: bool
    description: str
    needs_embeddings: bool = False
    weighs_rarity: bool = False
    honours: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = set(self.honours) - KNOBS
        if unknown:
            raise ValueError(f"strategy {self.name!r} honours unknown knobs {sorted(unknown)}; "
                             f"expected a subset of {sorted(KNOBS)}")


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("lowest_confidence", "lowest_confidence", _rank("lowest_confidence"), True,
                 "rank by the top class probability of the least certain box"),
        Strategy("margin_sampling", "margin_sampling", _rank("margin_sampling"), True,
                 "rank by top-1 minus top-2 class probability"),
        Strategy("entropy", "entropy", _rank("entropy"), True,
                 "rank by one minus normalised class entropy"),
        Strategy("weighted_combination", COMBINED, _rank(COMBINED), True,
                 "rank by the weighted combination of the three scores"),
        Strategy("diverse_uncertainty", COMBINED, _diverse, True,
                 "greedy trade of combined uncertainty against embedding distance to images "
                 "already selected and labelled (diversity_weight, class_balance as requested)",
                 needs_embeddings=True, honours=KNOBS),
        Strategy("adaptive_diverse", COMBINED, _adaptive, True,
                 "diverse_uncertainty whose diversity weight follows how weak the model is "
                 "(share of images with no confident box), ranking uncertainty x box count, "
                 "always class-balanced", needs_embeddings=True),
        Strategy("rare_class_diverse", COMBINED, _rare_class, True,
                 "uncertainty x expected boxes of the classes the labelled set lacks "
                 "(inverse labelled frequency), diversified like adaptive_diverse",
                 needs_embeddings=True, weighs_rarity=True),
        Strategy("edit_aware_diverse", COMBINED, _edit_aware, True,
                 "rare_class_diverse's gain per expected reviewer edit (wrong sent boxes plus "
                 "objects under the floor), diversified", needs_embeddings=True,
                 weighs_rarity=True),
        Strategy("cold_start", COMBINED, _cold_start, False,
                 "diversity only (k-center greedy on embeddings), for when no model exists",
                 needs_embeddings=True),
        Strategy("random", COMBINED, _random, False, "uniform random sample (a baseline)"),
    )
}
# Chosen from the pool preset's tables (docs/benchmarks.md), reviewer edits first: with
# semi-supervised rounds it needs the fewest edits, boxes and images to reach random's final mAP50,
# and it was the only strategy that saved labels in both images and boxes on a private pool.
DEFAULT_STRATEGY = "rare_class_diverse"


def get_strategy(name: str) -> Strategy:
    """Look a strategy up by name; ValueError naming the accepted names otherwise."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r}; expected one of {sorted(STRATEGIES)}"
        ) from None


def choose(strategy: str | Strategy, request: SelectionRequest) -> Selection:
    """Run a strategy: its picks in the selector's order and the knob values it applied.

    Returns:
        ``Selection.indices``: (min(limit, N),) distinct int64 indices into
        ``request.scores``, first pick first; ``Selection.applied``: for the knobs the
        strategy honours, the requested values; for the others, its own. An empty pool applies
        nothing: the honoured knobs as requested, the others None (diversity weight) / False.

    Raises:
        ValueError: the strategy is unknown, lacks an input it needs, or broke the contract
            (wrong count, repeated or out-of-range indices, honoured knob not applied as given).
    """
    strat = get_strategy(strategy) if isinstance(strategy, str) else strategy
    if len(request.scores) == 0:
        empty = request.requested()
        if strat.honours != KNOBS:  # what it would set itself is not defined without images
            empty = AppliedKnobs(
                empty.diversity_weight if DIVERSITY_WEIGHT in strat.honours else None,
                empty.class_balance if CLASS_BALANCE in strat.honours else False)
        return Selection(np.zeros(0, np.int64), empty)
    out = strat.select(request)
    picked = np.asarray(out.indices, dtype=np.int64)
    n, k = len(request.scores), min(request.limit, len(request.scores))
    in_range = k == 0 or (picked.min() >= 0 and picked.max() < n)
    if picked.shape != (k,) or len(np.unique(picked)) != k or not in_range:
        raise ValueError(f"strategy {strat.name!r} must pick {k} distinct indices in [0, {n}); "
                         f"got {picked.tolist()}")
    asked = request.requested()
    for knob in strat.honours:
        if out.applied.value(knob) != asked.value(knob):
            raise ValueError(f"strategy {strat.name!r} honours {knob} but applied "
                             f"{out.applied.value(knob)!r}; requested {asked.value(knob)!r}")
    return Selection(picked, out.applied)


def select(strategy: str | Strategy, request: SelectionRequest) -> np.ndarray:
    """:func:`choose`'s indices only: (min(limit, N),) distinct int64, the selector's order."""
    return choose(strategy, request).indices
