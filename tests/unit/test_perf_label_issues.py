"""The label-issue benchmark's figures: ranking, precision/recall, summaries (pure; no training)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labelwise.perf.label_issues import (
    ANY,
    LabelIssueBenchConfig,
    config_from,
    fold_jobs,
    image_scores,
    injected_images,
    mean_std,
    rank_figures,
    seed_figures,
    summarise,
    text_table,
)
from labelwise.quality.label_issues import CLASS_SWAP, MISSING_BOX, SPURIOUS_BOX, LabelIssue
from labelwise.review.simulate import InjectedError, LabelNoise


def issue(image_id: str, kind: str, score: float) -> LabelIssue:
    return LabelIssue(image_id, kind, 0, (0.0, 0.0, 1.0, 1.0), score, "")


def error(image_id: str, kind: str) -> InjectedError:
    return InjectedError(image_id, kind, 0, (0.5, 0.5, 0.1, 0.1))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("scores", "positive", "fraction", "flagged", "precision", "recall", "base_rate"),
    [
        ([0.9, 0.8, 0.1, 0.0], [1, 0, 1, 0], 0.25, 1, 1.0, 0.5, 0.5),
        ([0.9, 0.8, 0.1, 0.0], [1, 0, 1, 0], 0.5, 2, 0.5, 0.5, 0.5),
        ([0.9, 0.8, 0.7, 0.0], [1, 1, 1, 0], 0.75, 3, 1.0, 1.0, 0.75),
        ([0.0, 0.0, 0.0, 0.9], [0, 0, 0, 1], 0.1, 1, 1.0, 1.0, 0.25),  # ceil(0.4) = 1
        ([0.5] * 10, [0] * 10, 0.2, 2, 0.0, math.nan, 0.0),  # nothing injected: recall n/a
        ([0.3, 0.2], [0, 1], 1.0, 2, 0.5, 1.0, 0.5),
    ],
)
def test_rank_figures_table(scores, positive, fraction, flagged, precision, recall, base_rate):
    got = rank_figures(np.array(scores), np.array(positive, dtype=bool), fraction,
                       np.random.default_rng(0))
    assert (got.flagged, got.precision, got.base_rate) == (flagged, precision, base_rate)
    if base_rate:
        assert got.max_recall == min(1.0, flagged / (base_rate * len(scores)))
    assert (math.isnan(got.recall) and math.isnan(recall)) or got.recall == recall


def test_ties_are_ordered_by_the_generator_not_by_position():
    scores, positive = np.zeros(100), np.zeros(100, dtype=bool)
    positive[:10] = True  # a position-ordered tie break would always flag these ten first
    hits = [rank_figures(scores, positive, 0.1, np.random.default_rng(s)).precision for s in range(20)]
    assert np.mean(hits) < 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scores": np.zeros(3), "positive": np.zeros(2, bool), "fraction": 0.1}, "same|\\(N,\\)"),
        ({"scores": np.zeros(0), "positive": np.zeros(0, bool), "fraction": 0.1}, "N >= 1"),
        ({"scores": np.zeros(3), "positive": np.zeros(3, bool), "fraction": 0.0}, "fraction"),
        ({"scores": np.zeros(3), "positive": np.zeros(3, bool), "fraction": 1.5}, "fraction"),
    ],
)
def test_rank_figures_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rank_figures(rng=np.random.default_rng(0), **kwargs)


def test_image_scores_take_the_highest_score_of_the_kind():
    ids = ["a", "b", "c"]
    issues = [issue("a", MISSING_BOX, 0.4), issue("a", MISSING_BOX, 0.7), issue("a", CLASS_SWAP, 0.9),
              issue("b", SPURIOUS_BOX, 0.6), issue("zzz", MISSING_BOX, 1.0)]
    assert image_scores(issues, ids, MISSING_BOX).tolist() == [0.7, 0.0, 0.0]
    assert image_scores(issues, ids, ANY).tolist() == [0.9, 0.6, 0.0]
    errors = [error("a", "drop"), error("c", "add")]
    assert injected_images(errors, ids, "drop").tolist() == [True, False, False]
    assert injected_images(errors, ids, ANY).tolist() == [True, False, True]


def test_seed_figures_and_summary_on_a_crafted_case():
    ids = [f"i{n:02d}" for n in range(20)]
    errors = [error("i00", "drop"), error("i01", "drop"), error("i02", "add"), error("i03", "swap"),
              error("i04", "shift")]
    issues = [issue("i00", MISSING_BOX, 0.95), issue("i01", MISSING_BOX, 0.2),  # i01 ranked low
              issue("i09", MISSING_BOX, 0.9),  # a false alarm
              issue("i02", SPURIOUS_BOX, 0.99), issue("i03", CLASS_SWAP, 0.8),
              issue("i04", SPURIOUS_BOX, 0.7), issue("i04", MISSING_BOX, 0.6)]  # a shift read as two
    figs = seed_figures(0, ids, issues, errors, (0.05, 0.10))
    drop5, drop10 = figs.figures[(MISSING_BOX, 0.05)], figs.figures[(MISSING_BOX, 0.10)]
    assert (drop5.flagged, drop5.precision, drop5.recall, drop5.base_rate) == (1, 1.0, 0.5, 0.1)
    assert (drop10.precision, drop10.recall) == (0.5, 0.5)  # i00 and the false alarm i09
    assert figs.figures[(SPURIOUS_BOX, 0.05)].precision == 1.0
    assert figs.figures[(CLASS_SWAP, 0.10)].recall == 1.0
    assert not image_scores(issues, ids, "bad_localisation").any()  # the shift is never one...
    assert figs.recall_any_kind[("shift", 0.10)] == 0.0  # i04's 0.7 ranks below i02, i00 (top 2)
    assert figs.injected == {"drop": 2, "add": 1, "swap": 1, "shift": 1, ANY: 5}
    any10 = figs.figures[(ANY, 0.10)]
    assert (any10.flagged, any10.precision, any10.recall) == (2, 1.0, 0.4)

    rows = summarise([figs, seed_figures(1, ids, issues, errors, (0.05, 0.10))], (0.05, 0.10))
    assert [(r.kind, r.fraction) for r in rows][:2] == [(MISSING_BOX, 0.05), (MISSING_BOX, 0.10)]
    row = rows[1]
    assert row.precision == (0.5, 0.0) and row.lift == (5.0, 0.0)
    assert row.as_dict()["recall"] == {"mean": 0.5, "std": 0.0}
    table = text_table(rows)
    assert "| missing_box (drop) | top 10 % | 50 ± 0 % | 50 ± 0 % (100 %) | 10 ± 0 % | 5.0 ± 0.0x" in table
    assert rows[0].max_recall == (0.5, 0.0)  # one flagged image of two injected


@pytest.mark.parametrize(
    ("values", "expected"),
    [([0.2, 0.4], (0.3, math.sqrt(0.02))), ([0.5], (0.5, 0.0)), ([math.nan, 0.5], (0.5, 0.0))],
)
def test_mean_std(values, expected):
    assert mean_std(values) == pytest.approx(expected)
    assert all(math.isnan(v) for v in mean_std([math.nan]))


def test_folds_partition_the_pool_and_never_grade_a_training_image():
    rows = [np.full((1, 5), i, dtype=np.float64) for i in range(11)]
    jobs = fold_jobs(0, rows, 3, np.random.default_rng(0))
    held = [i for job in jobs for i, _ in job.held_out]
    assert sorted(held) == list(range(11)) and len(jobs) == 3
    for job in jobs:
        train = {i for i, _ in job.train}
        assert not train & {i for i, _ in job.held_out} and len(train) + len(job.held_out) == 11
        assert all(r[0, 0] == i for i, r in job.train + job.held_out)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"folds": 1}, "folds must be >= 2"),
        ({"seeds": 0}, "must be >= 1"),
        ({"fractions": (0.0,)}, "fractions"),
        ({"noise": LabelNoise()}, "at least one positive rate"),
        ({"pool_images": 3}, "pool_images must be >= 2 x folds"),
    ],
)
def test_config_rejects(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        LabelIssueBenchConfig(out=tmp_path, **overrides)


def test_config_from_cli_values(tmp_path):
    cfg = config_from({"seeds": 2, "drop": 0.2, "add": None, "epochs": None}, tmp_path)
    assert cfg.seeds == 2 and cfg.noise == LabelNoise(drop=0.2, add=0.05, shift=0.05, swap=0.05)
    bench = cfg.benchmark_config()
    assert bench.pool_images == cfg.pool_images and bench.imgsz == cfg.imgsz
    assert bench.job_settings(pseudo=False).training.start_from == "base"
