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


@pytest.mark.parametrize(("task", "expected"), [("detect", 0.1), ("segment", 0.4)])
def test_the_contact_sheet_draws_what_reviewers_get_for_the_projects_task(
    tmp_path, image_dir, monkeypatch, task, expected,
):
    """The queue's contact sheet draws the pre-annotations at the project's task threshold (the
    same floor the Label Studio queue applies)."""
    import numpy as np

    import labelwise.reports
    from labelwise.catalog import Catalog
    from labelwise.domain import Detections
    from labelwise.scorebatch import write_batch_artifacts

    catalog = Catalog.open(f"sqlite:///{tmp_path / 'catalog.db'}")
    try:
        project = catalog.create_project("p", ["a", "b"], task_type=task)
        image_id = catalog.add_images(project, image_dir).added[0]
        det = Detections(np.array([[1, 1, 5, 5]], np.float32), np.array([0.3]), np.array([0]),
                         np.array([[0.6, 0.4]]))
        catalog.save_predictions(project, "v", [(image_id, det)])
        floors: list[float] = []
        real = labelwise.reports.contact_sheet

        def spy(*args, **kwargs):
            floors.append(kwargs["confidence_floor"])
            return real(*args, **kwargs)

        monkeypatch.setattr(labelwise.reports, "contact_sheet", spy)
        batch = {"project_id": project.name, "model_version": "v", "params": {"round": 0},
                 "queue": [{"image_id": image_id, "uncertainty_score": 0.2, "reason_text": ""}]}
        paths = write_batch_artifacts(Settings(state_dir=tmp_path / "state"), catalog, batch, tmp_path / "out")
        assert floors == [expected] and "contact_sheet" in paths
    finally:
        catalog.close()
