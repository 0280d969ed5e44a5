"""Oracle, rare-class and near-duplicate counting, job planning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelwise.benchmark.oracle import (
    LabelReport,
    Oracle,
    near_duplicates,
    rare_boxes,
    rare_from_counts,
)
from labelwise.domain import class_box_counts
from labelwise.benchmark.plan import initial_set, plan_jobs, round_rng


def _truth(tmp_path: Path) -> Path:
    folder = tmp_path / "truth"
    folder.mkdir()
    (folder / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n2 0.3 0.3 0.1 0.1\n")
    (folder / "b.txt").write_text("")
    (folder / "bad.txt").write_text("7 0.5 0.5 0.2 0.2\n")
    return folder


def test_oracle_reveals_labels_and_remembers(tmp_path):
    oracle = Oracle(_truth(tmp_path), num_classes=3)
    a = oracle.reveal("a")
    assert a.shape == (2, 5) and a[:, 0].tolist() == [0, 2]
    assert oracle.reveal("b").shape == (0, 5)
    assert oracle.reveal("missing").shape == (0, 5)  # no label file = no objects
    assert oracle.calls == 3


def test_oracle_skips_unknown_class_and_refuses_missing_folder(tmp_path):
    oracle = Oracle(_truth(tmp_path), num_classes=3)
    assert oracle.reveal("bad").shape == (0, 5)  # class 7 of 3: the line is skipped, not fatal
    report = oracle.report()
    assert (report.files, report.boxes, report.skipped) == (1, 0, 1)
    assert report.examples == ("bad.txt:1: expected an integer class id in 0..2 (got '7 0.5 0.5 0.2 0.2')",)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Oracle(tmp_path / "nope", num_classes=3)


def test_oracle_report_counts_each_file_once(tmp_path):
    oracle = Oracle(_truth(tmp_path), num_classes=3)
    for stem in ("a", "a", "b", "missing"):
        oracle.reveal(stem)
    assert oracle.report() == LabelReport(files=2, boxes=2, clipped=0, skipped=0, examples=())


def _boxes(*classes: int) -> np.ndarray:
    return np.asarray([[c, 0.5, 0.5, 0.1, 0.1] for c in classes], dtype=np.float64).reshape(-1, 5)


@pytest.mark.parametrize(
    ("labels", "rare", "expected"),
    [([_boxes(0, 2, 2), _boxes(5)], (2, 5), 3), ([_boxes(0, 1)], (2,), 0), ([_boxes()], (2,), 0), ([], (2,), 0)],
)
def test_rare_boxes(labels, rare, expected):
    assert rare_boxes(labels, rare) == expected


def test_class_box_counts_and_rare_from_counts():
    counts = class_box_counts([_boxes(0, 0, 1), _boxes(0, 2)], 4)
    assert counts.tolist() == [3, 1, 1, 0]
    assert rare_from_counts(np.array([50, 40, 4, 6]), share=0.05) == (2,)
    assert rare_from_counts(np.zeros(3)) == ()


CLUSTERS = {"a1": 1, "a2": 1, "a3": 1, "b1": 2, "c1": 3, "c2": 3}


@pytest.mark.parametrize(
    ("picks", "labelled", "expected"),
    [
        (["a1", "b1", "c1"], [], 0),  # distinct clusters
        (["a1", "a2", "a3"], [], 2),  # three of one cluster: two near-duplicates
        (["a2", "b1"], ["a1"], 1),  # shares a cluster with a labelled image
        (["x", "y", "c1"], ["c2"], 1),  # unknown images are their own cluster
        ([], ["a1"], 0),
    ],
)
def test_near_duplicates(picks, labelled, expected):
    assert near_duplicates(picks, labelled, CLUSTERS) == expected


def test_initial_set_is_seeded_sorted_and_distinct():
    a, b = initial_set(100, 10, 0), initial_set(100, 10, 0)
    assert a == b and list(a) == sorted(set(a)) and len(a) == 10
    assert initial_set(100, 10, 1) != a
    with pytest.raises(ValueError, match="initial set size"):
        initial_set(5, 6, 0)


def test_jobs_share_the_initial_set_per_seed(tmp_path):
    jobs = plan_jobs(("scratch", "warm"), ("random", "entropy", "diverse_uncertainty"), (0, 1), 50, 8,
                     {"scratch": "yolov8n.yaml", "warm": "/base.pt"}, tmp_path)
    assert len(jobs) == 2 * 3 * 2
    assert [j.seed for j in jobs[:6]] == [0] * 6  # seed-major
    for seed in (0, 1):
        initials = {j.initial for j in jobs if j.seed == seed}
        assert len(initials) == 1
    assert jobs[0].initial != jobs[-1].initial
    assert len({j.job_dir for j in jobs}) == len(jobs)
    assert {j.start_ref for j in jobs if j.protocol == "warm"} == {"/base.pt"}
    with pytest.raises(ValueError, match="start_refs lacks"):
        plan_jobs(("warm",), ("random",), (0,), 50, 8, {"scratch": "y"}, tmp_path)


def test_round_rng_is_shared_across_strategies():
    assert round_rng(3, 2).random() == round_rng(3, 2).random()
    assert round_rng(3, 2).random() != round_rng(3, 1).random()
