"""One contract every selection strategy passes (walks the registry)."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.domain import ImageScore
from labelwise.strategies import STRATEGIES, SelectionRequest, get_strategy, score_value, select

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
