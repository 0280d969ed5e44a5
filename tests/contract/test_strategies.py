"""One contract every selection strategy passes (walks the registry).

Besides picking valid indices, every strategy reports the knobs it applied
(``Selection.applied``): equal to the request for the knobs it honours (``Strategy.honours``),
its own value, whatever the request, for the others; and the queue keeps the selector's order
as each item's ``rank`` while it stays sorted by ``uncertainty_score``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from labelwise.catalog import Catalog, CatalogError
from labelwise.config import Settings
from labelwise.domain import Detections, ImageScore, ImageStatus, class_box_counts
from labelwise.scorebatch import ScoreBatchRequest, build_score_batch, scoring_rule, select_queue
from labelwise.scoring import score_image
from labelwise.strategies import (
    CLASS_BALANCE,
    DIVERSITY_WEIGHT,
    KNOBS,
    STRATEGIES,
    AppliedKnobs,
    SelectionRequest,
    choose,
    get_strategy,
    score_value,
    select,
)
from tests.conftest import write_png

N, D = 60, 16


def _scores(rng: np.random.Generator, n: int = N) -> list[ImageScore]:
    out = []
    for i in range(n):
        s = {k: float(v) for k, v in zip(("lowest_confidence", "margin_sampling", "entropy"), rng.random(3))}
        mass = tuple(float(v) for v in rng.random(3) * 2)
        out.append(ImageScore(f"img{i}", float(np.mean(list(s.values()))), s, 1, int(rng.integers(3)), mass))
    return out


def _request(seed: int = 0, limit: int = 7, n: int = N, **kw) -> SelectionRequest:
    rng = np.random.default_rng(1234)
    return SelectionRequest(
        scores=_scores(rng, n),
        limit=limit,
        rng=np.random.default_rng(seed),
        embeddings=rng.normal(size=(n, D)).astype(np.float32),
        labelled_embeddings=rng.normal(size=(5, D)).astype(np.float32),
        **kw,
    )


@pytest.fixture(params=sorted(STRATEGIES))
def strategy(request):
    return STRATEGIES[request.param]


def test_picks_limit_distinct_valid_indices(strategy):
    picked = select(strategy, _request())
    assert picked.dtype == np.int64
    assert len(picked) == 7
    assert len(set(picked.tolist())) == 7
    assert picked.min() >= 0 and picked.max() < N


def test_deterministic_given_the_seed(strategy):
    np.testing.assert_array_equal(select(strategy, _request(seed=3)), select(strategy, _request(seed=3)))


def test_limit_larger_than_pool_returns_everything(strategy):
    picked = select(strategy, _request(limit=50, n=12))
    assert sorted(picked.tolist()) == list(range(12))


def test_empty_pool_returns_nothing(strategy):
    req = SelectionRequest(scores=[], limit=3, rng=np.random.default_rng(0),
                           embeddings=np.zeros((0, D), np.float32))
    assert len(select(strategy, req)) == 0


def test_score_key_is_defined_for_every_image(strategy):
    for s in _scores(np.random.default_rng(0), 5):
        assert 0.0 <= score_value(s, strategy.score_key) <= 1.0


def test_uncertainty_strategies_prefer_uncertain_images(strategy):
    if not strategy.needs_predictions:
        pytest.skip("does not use uncertainty")
    req = _request(limit=10, diversity_weight=0.3)
    values = req.values(strategy.score_key)
    picked = select(strategy, req)
    assert values[picked].mean() < values.mean()


def test_strategies_that_need_embeddings_say_so(strategy):
    req = SelectionRequest(scores=_scores(np.random.default_rng(0)), limit=3, rng=np.random.default_rng(0))
    if strategy.needs_embeddings:
        with pytest.raises(ValueError, match=f"strategy '{strategy.name}' needs image embeddings"):
            select(strategy, req)
    else:
        assert len(select(strategy, req)) == 3


def test_request_validation():
    with pytest.raises(ValueError, match="limit must be >= 1"):
        _request(limit=0)
    with pytest.raises(ValueError, match=r"diversity_weight must lie in \[0, 1\]; got 1.5"):
        _request(diversity_weight=1.5)
    with pytest.raises(ValueError, match="unknown strategy 'nope'; expected one of"):
        get_strategy("nope")


@pytest.mark.parametrize("name", ["diverse_uncertainty", "cold_start"])
def test_embedding_strategies_name_the_missing_input(name):
    req = SelectionRequest(scores=_scores(np.random.default_rng(0), 5), limit=2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs image embeddings"):
        select(name, req)


# -- applied knobs and the selector's order -------------------------------------------------
KNOB_VALUES = {DIVERSITY_WEIGHT: (0.0, 0.3, 1.0), CLASS_BALANCE: (False, True)}
REQUESTS = [(0.0, False), (0.3, True), (0.7, False), (1.0, True)]


@pytest.mark.parametrize(("weight", "balance"), REQUESTS)
def test_applied_knobs_are_reported_and_equal_the_request_where_honoured(strategy, weight, balance):
    applied = choose(strategy, _request(diversity_weight=weight, class_balance=balance)).applied
    assert isinstance(applied, AppliedKnobs)
    assert applied.diversity_weight is None or 0.0 <= applied.diversity_weight <= 1.0
    assert isinstance(applied.class_balance, bool)
    asked = {DIVERSITY_WEIGHT: weight, CLASS_BALANCE: balance}
    for knob in strategy.honours:
        assert applied.value(knob) == asked[knob], knob


def _skewed(req: SelectionRequest) -> SelectionRequest:
    """``req`` with 5 of 6 images predicted as class 0 (class balance then has something to do)."""
    skewed = [replace(s, predicted_class=0 if i % 6 else 1) for i, s in enumerate(req.scores)]
    return replace(req, scores=skewed)


@pytest.mark.parametrize("knob", sorted(KNOBS))
def test_a_knob_is_honoured_with_effect_or_set_by_the_strategy_whatever_the_request(strategy, knob):
    """Honoured: the request changes the picks. Not honoured: neither the picks nor the applied
    value depend on what was requested (the strategy sets its own)."""
    runs = [choose(strategy, _skewed(_request(limit=10, **{knob: value})))
            for value in KNOB_VALUES[knob]]
    picks = {tuple(r.indices.tolist()) for r in runs}
    if knob in strategy.honours:
        assert [r.applied.value(knob) for r in runs] == list(KNOB_VALUES[knob])
        assert len(picks) > 1, f"{strategy.name} honours {knob} but the picks never change"
    else:
        assert len({r.applied.value(knob) for r in runs}) == 1
        assert len(picks) == 1, f"{strategy.name} sets {knob} itself; the request moved the picks"


def test_only_diverse_uncertainty_honours_the_request():
    """The registry's declarations, as the strategies module documents them."""
    honouring = {n: set(s.honours) for n, s in STRATEGIES.items() if s.honours}
    assert honouring == {"diverse_uncertainty": set(KNOBS)}


def _queue(strategy, req: SelectionRequest, seed: int):
    return select_queue(strategy, req.scores, req.limit, np.random.default_rng(seed),
                        diversity_weight=req.diversity_weight,
                        candidate_factor=req.candidate_factor,
                        class_balance=req.class_balance, embeddings=req.embeddings,
                        labelled_embeddings=req.labelled_embeddings,
                        labelled_class_counts=req.labelled_class_counts)


@pytest.mark.parametrize(("limit", "n"), [(7, N), (1, N), (50, 12)])
def test_the_queue_is_sorted_by_score_and_its_ranks_are_the_selectors_order(strategy, limit, n):
    req = _request(seed=3, limit=limit, n=n, diversity_weight=0.3)
    queue = _queue(strategy, req, seed=3)
    selector = choose(strategy, replace(req, rng=np.random.default_rng(3)))
    k = min(limit, n)
    assert list(queue.picks) == selector.indices.tolist()
    assert queue.applied == selector.applied
    assert sorted(queue.ranks) == list(range(1, k + 1))
    assert [queue.picks[r - 1] for r in queue.ranks] == list(queue.order)
    keys = [(score_value(req.scores[i], strategy.score_key), req.scores[i].image_id)
            for i in queue.order]
    assert keys == sorted(keys)


def test_empty_pool_queues_nothing_and_reports_the_knobs(strategy):
    queue = _queue(strategy, SelectionRequest(scores=[], limit=3, rng=np.random.default_rng(0),
                                              embeddings=np.zeros((0, D), np.float32),
                                              diversity_weight=0.4, class_balance=True), seed=0)
    assert (queue.picks, queue.order, queue.ranks) == ((), (), ())
    for knob in strategy.honours:
        assert queue.applied.value(knob) == {DIVERSITY_WEIGHT: 0.4, CLASS_BALANCE: True}[knob]


# -- score-batch records what was applied ---------------------------------------------------
CLASSES = ["a", "b", "c"]
POOL = 14


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory):
    """Project 'p': 14 PNGs with predictions of model 'v1' (1-3 boxes, some under the floor, so
    the model is partly weak) and embeddings from 'emb'."""
    root = tmp_path_factory.mktemp("pool")
    settings = Settings(state_dir=root / "state")
    catalog = Catalog.open(settings.resolved_catalog_url)
    project = catalog.create_project("p", CLASSES)
    paths = [write_png(root / "img" / f"{i:02d}.png", seed=i) for i in range(POOL)]
    ids = catalog.add_images(project, paths).added
    rng = np.random.default_rng(0)
    items = []
    for k, image_id in enumerate(ids):
        n = int(rng.integers(1, 4))
        probs = rng.dirichlet(np.ones(len(CLASSES)), size=n).astype(np.float32)
        conf = np.full(n, 0.9 if k % 3 else 0.05)  # every third image: no box over the floor
        boxes = np.tile([1, 1, 30, 30], (n, 1))
        items.append((image_id, Detections(boxes, conf, probs.argmax(1), probs)))
    catalog.save_predictions(project, "v1", items)
    catalog.save_embeddings(project, "emb", ids, rng.normal(size=(len(ids), 8)))
    yield settings, catalog
    catalog.close()


def _selector_order(settings: Settings, catalog: Catalog, req: ScoreBatchRequest) -> list[str]:
    """The image ids the strategy picks, in its own order, from the inputs score-batch reads."""
    project = catalog.project(req.project)
    images = catalog.images(project, ImageStatus.UNLABELLED)
    ids = [img.image_id for img in images]
    predictions = catalog.predictions(project, "v1")
    scores = [score_image(i, predictions[i], scoring_rule(settings)) for i in ids]
    found = catalog.embeddings(project, "emb", ids)
    picked = select(req.strategy, SelectionRequest(
        scores=scores, limit=req.limit, rng=np.random.default_rng(req.seed),
        embeddings=np.stack([found[i] for i in ids]), diversity_weight=req.diversity_weight,
        candidate_factor=req.candidate_factor, class_balance=req.class_balance,
        labelled_class_counts=class_box_counts(catalog.labels(project).values(), len(CLASSES))))
    return [ids[i] for i in picked]


def test_score_batch_records_the_applied_knobs_and_ranks_the_queue_by_the_selector(pool, strategy):
    settings, catalog = pool
    asked = [ScoreBatchRequest(project="p", strategy=strategy.name, limit=5, diversity_weight=w,
                               class_balance=b, seed=2) for w, b in ((0.3, True), (0.9, False))]
    batches = [build_score_batch(catalog, settings, req, record=False) for req in asked]
    for req, batch in zip(asked, batches):
        params, queue = batch.params, batch.queue
        requested = {DIVERSITY_WEIGHT: req.diversity_weight, CLASS_BALANCE: req.class_balance}
        for knob in KNOBS:
            if knob in strategy.honours:
                assert params[knob] == requested[knob] and f"requested_{knob}" not in params
            elif params[knob] != requested[knob]:
                assert params[f"requested_{knob}"] == requested[knob]
            else:
                assert f"requested_{knob}" not in params
        scores = [item.uncertainty_score for item in queue]
        assert scores == sorted(scores)
        assert sorted(item.rank for item in queue) == list(range(1, len(queue) + 1))
        by_rank = [item.image_id for item in sorted(queue, key=lambda item: item.rank)]
        assert by_rank == _selector_order(settings, catalog, req)
        as_json = batch.as_json()["queue"]
        assert [q["rank"] for q in as_json] == [item.rank for item in queue]  # type: ignore
    for knob in KNOBS - strategy.honours:  # set by the strategy: the same whatever was asked
        assert batches[0].params[knob] == batches[1].params[knob], knob


def test_score_batch_reads_embeddings_only_for_the_candidates_it_considers(tmp_path):
    """A pool where only some images have embeddings: a selection whose candidate pool holds
    embedded images only succeeds; one that considers an image without one names it."""
    settings = Settings(state_dir=tmp_path / "state")
    catalog = Catalog.open(settings.resolved_catalog_url)
    project = catalog.create_project("p", CLASSES)
    paths = [write_png(tmp_path / "img" / f"{i:02d}.png", seed=i) for i in range(10)]
    ids = catalog.add_images(project, paths).added
    probs = np.array([[0.9, 0.05, 0.05]], np.float32)
    # image k is less certain the smaller k: conf above the floor, probs flatter for small k
    items = [(i, Detections([[1, 1, 9, 9]], [0.9], [0], np.array([[0.4 + 0.05 * k, 0.3, 0.3 - 0.05 * k]],
                                                                 np.float32) if k < 6 else probs))
             for k, i in enumerate(ids)]
    catalog.save_predictions(project, "v1", items)
    catalog.save_embeddings(project, "emb", ids[:4], np.eye(4, 8))
    ok = build_score_batch(catalog, settings, ScoreBatchRequest(
        project="p", strategy="diverse_uncertainty", limit=2, diversity_weight=0.5,
        candidate_factor=2), record=False)
    assert {item.image_id for item in ok.queue} <= set(ids[:4])
    with pytest.raises(CatalogError, match=r"for every candidate it considers; 6 of 10 considered "
                                           r"have none .*run auto-label again"):
        build_score_batch(catalog, settings, ScoreBatchRequest(
            project="p", strategy="diverse_uncertainty", limit=5, diversity_weight=0.5,
            candidate_factor=2), record=False)
    catalog.close()
