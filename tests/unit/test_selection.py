"""Selectors: ranking, greedy diversity, class balance, the k-center reference."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.selection import diverse_select, kcenter_greedy, min_distance, rank_select, unit_rows


def test_rank_select_takes_the_lowest_in_order():
    s = np.array([0.9, 0.1, 0.5, 0.05, 0.7])
    np.testing.assert_array_equal(rank_select(s, 3, np.random.default_rng(0)), [3, 1, 2])


def test_rank_select_breaks_ties_by_seed_not_position():
    s = np.zeros(100)
    picks = {tuple(rank_select(s, 5, np.random.default_rng(seed))) for seed in range(5)}
    assert len(picks) > 1


@pytest.mark.parametrize("bad", [np.array([0.1, 1.2]), np.array([[0.1]]), np.array([np.nan])])
def test_rank_select_rejects_bad_scores(bad):
    with pytest.raises(ValueError, match="scores must be"):
        rank_select(bad, 1, np.random.default_rng(0))


def _clusters(rng, n_clusters=5, per=20, d=8):
    centres = np.eye(d)[:n_clusters] * 5  # orthogonal directions: clusters are far apart
    emb = np.repeat(centres, per, axis=0) + rng.normal(size=(n_clusters * per, d)) * 0.05
    labels = np.repeat(np.arange(n_clusters), per)
    return emb.astype(np.float32), labels


def test_weight_zero_is_pure_uncertainty():
    rng = np.random.default_rng(0)
    emb, _ = _clusters(rng)
    s = rng.random(100)
    picked = diverse_select(s, emb, 5, 0.0, np.random.default_rng(1))
    np.testing.assert_array_equal(picked, np.argsort(s)[:5])


def test_diversity_spreads_picks_over_clusters():
    rng = np.random.default_rng(0)
    emb, labels = _clusters(rng)
    s = np.full(100, 0.5)
    s[labels == 0] = 0.01  # one cluster of look-alike hard cases
    only_uncertain = diverse_select(s, emb, 5, 0.0, np.random.default_rng(1), candidate_pool=100)
    diverse = diverse_select(s, emb, 5, 0.7, np.random.default_rng(1), candidate_pool=100)
    assert len(set(labels[only_uncertain])) == 1
    assert len(set(labels[diverse])) >= 4


def test_labelled_images_repel_selection():
    rng = np.random.default_rng(0)
    emb, labels = _clusters(rng)
    s = np.full(100, 0.5)
    labelled = emb[labels < 4][:: 7]  # clusters 0-3 already labelled
    picked = diverse_select(s, emb, 3, 1.0, np.random.default_rng(0), labelled_embeddings=labelled, candidate_pool=100)
    assert labels[picked[0]] == 4


def test_class_balance_caps_each_class():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(60, 4)).astype(np.float32)
    cls = np.array([0] * 40 + [1] * 10 + [2] * 10)
    s = np.concatenate([np.full(40, 0.01), np.full(20, 0.4)]) + rng.random(60) * 0.01
    picked = diverse_select(s, emb, 6, 0.0, np.random.default_rng(0), candidate_pool=60, class_ids=cls, class_balance=True)
    counts = np.bincount(cls[picked], minlength=3)
    assert counts.max() <= 2 and counts.sum() == 6


def test_min_distance_matches_brute_force():
    rng = np.random.default_rng(0)
    a = unit_rows(rng.normal(size=(30, 6)))
    b = unit_rows(rng.normal(size=(20000, 6)))  # more than one chunk
    brute = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2).min(axis=1) / 2
    np.testing.assert_allclose(min_distance(a, b), brute, atol=1e-3)


def test_kcenter_picks_distinct_far_points():
    rng = np.random.default_rng(0)
    emb, labels = _clusters(rng)
    picked = kcenter_greedy(emb, 5, np.random.default_rng(0))
    assert len(set(labels[picked])) == 5


def test_diverse_select_validates_shapes():
    with pytest.raises(ValueError, match=r"embeddings must be \(3, d\) to match scores"):
        diverse_select(np.zeros(3), np.zeros((4, 2)), 1, 0.5, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"diversity_weight must lie in \[0, 1\]; got -0.1"):
        diverse_select(np.zeros(3), np.zeros((3, 2)), 1, -0.1, np.random.default_rng(0))


def test_one_outlier_does_not_switch_diversity_off():
    """Regression: the scale came from the farthest candidate, so one outlier image shrank every
    other distance and the batch filled with near-duplicates of the single most uncertain scene
    instead of trading a little uncertainty for a different one. Like pooled detector features,
    the clusters share a dominant common direction, so they are close in angle."""
    rng = np.random.default_rng(0)
    d, per = 12, 20
    centres = 5.0 + 1.5 * np.eye(d)[:6]  # common direction + a cluster-specific offset
    emb = (np.repeat(centres, per, axis=0) + rng.normal(size=(6 * per, d)) * 0.05).astype(np.float32)
    labels = np.repeat(np.arange(6), per)
    emb = np.vstack([emb, -np.ones((1, d), np.float32)])  # the outlier, opposite to everything
    labels = np.append(labels, 99)
    s = np.full(emb.shape[0], 0.5)
    s[labels == 0] = 0.0  # look-alike hardest cases
    s[labels == 1] = 0.05  # nearly as hard, and different
    picked = diverse_select(s, emb, 4, 0.5, np.random.default_rng(0), candidate_pool=emb.shape[0])
    assert set(labels[picked]) == {0, 1}
