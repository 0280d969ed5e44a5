"""The pre-annotation threshold by task type: unset = the task's measured default, set = that
value for every task, through the settings file's env overrides too; the benchmark counts
edits against the same threshold."""

from __future__ import annotations

import pytest

from labelwise.config import PREANNOTATION_DEFAULTS, LabelStudioSettings, Settings


@pytest.mark.parametrize(("conf", "task", "expected"), [
    (None, "detect", 0.1),
    (None, "segment", 0.4),
    (None, "classify", 0.0),
    (0.25, "detect", 0.25),
    (0.25, "segment", 0.25),
    (0.0, "segment", 0.0),  # 0 is a value, not "unset"
])
def test_the_floor_is_the_setting_or_the_tasks_default(conf, task, expected):
    assert LabelStudioSettings(preannotation_conf=conf).preannotation_floor(task) == expected


def test_an_unknown_task_is_named():
    expected = r"unknown task type 'boxes'; expected one of \['classify', 'detect', 'segment'\]"
    with pytest.raises(ValueError, match=expected):
        LabelStudioSettings().preannotation_floor("boxes")


def test_an_env_override_sets_it_for_every_task(tmp_path, monkeypatch):
    monkeypatch.setenv("LABELWISE_LABELSTUDIO__PREANNOTATION_CONF", "0.3")
    settings = Settings(state_dir=tmp_path)
    assert {t: settings.labelstudio.preannotation_floor(t) for t in PREANNOTATION_DEFAULTS} == {
        "detect": 0.3, "segment": 0.3, "classify": 0.3}


@pytest.mark.parametrize(("task", "same_as_explicit"), [("detect", 0.1), ("segment", 0.4)])
def test_benchmark_edits_count_against_the_tasks_threshold(tmp_path, task, same_as_explicit):
    """The benchmark's recipe (hashed into every trajectory) holds the threshold the task uses, so
    detection's cached trajectories keep their keys and a segmentation's follow its default."""
    from labelwise.benchmark.config import BenchmarkConfig

    default = BenchmarkConfig(out=tmp_path, task=task, protocols=("warm",))
    explicit = default.replace(preannotation_conf=same_as_explicit)
    assert default.recipe_values()["preannotation_conf"] == same_as_explicit
    assert default.recipe_values() == explicit.recipe_values()
