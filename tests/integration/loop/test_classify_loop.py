"""A classification project through the same closed loop as detection: real Prefect harness,
real Label Studio (choices), real MLflow store (top1/top5), one round."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from labelwise.config import Settings, write_settings
from labelwise.learn import tracker_for
from labelwise.runtime import open_catalog

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="session")
def tiny_digits_classify(labelstudio):  # type: ignore[no-untyped-def]
    from labelwise.datasets.digits_classify import generate_digits_classify

    _, _, root = labelstudio
    return generate_digits_classify(root / "tiny-digits-classify", per_class_pool=3, per_class_test=2,
                                    imgsz=32)


def test_one_classification_round_goes_round_the_loop(
    prefect_harness, make_ls_settings: Callable[..., Settings], tiny_digits_classify,
) -> None:
    from flows.closed_loop import closed_loop
    from flows.params import LoopParams

    data = tiny_digits_classify
    base = make_ls_settings("loop-classify")
    settings = base.model_copy(update={
        "detector": base.detector.model_copy(update={"imgsz": 32, "batch": 16}),
        "training": base.training.model_copy(update={"epochs": 2, "min_image_passes": 0, "batch": 8}),
        "selection": base.selection.model_copy(update={"limit": 6}),
    })
    config = write_settings(settings, settings.state_dir / "labelwise.yaml")
    catalog = open_catalog(settings)
    project = catalog.create_project("digits-cls", list(data.class_names), task_type="classify")
    catalog.set_holdout(project, data.root, "test")
    catalog.add_images(project, data.pool_dir)

    rows = closed_loop(LoopParams(project=project.name, config=str(config), rounds=1,
                                  annotator="simulated", truth_dir=str(data.pool_labels_dir),
                                  review_timeout_s=120, poll_s=0.5, campaign="test"))

    [row] = rows
    assert row["round"] == 0 and row["champion_moved"] is True
    assert row["labelled_images"] == 6 and row["labelled_boxes"] == 6  # one class per image
    for name in ("precision", "recall", "top1", "top5"):
        assert 0.0 <= row[name] <= 1.0, name
    assert row["top1"] <= row["top5"] and "mAP50-95" not in row

    # the reviewers' answers came back as one class per image, the truth's
    labels = catalog.labels(project)
    truth = data.pool_truth()
    by_id = {img.image_id: img for img in catalog.images(project)}
    assert len(labels) == 6
    for image_id, rows_ in labels.items():
        assert rows_.tolist() == [[truth[by_id[image_id].path.name], 0.5, 0.5, 1.0, 1.0]]

    # Label Studio shows choices, pre-annotated with the model's top class
    from labelwise.review.project import open_client

    with open_client(settings) as client:
        ls_project = client.get_project(int(catalog.project(project.name).ls_project_id or -1))
        assert '<Choices name="choice" toName="image" choice="single" required="true"' in ls_project["label_config"]
        tasks = client.list_tasks(int(ls_project["id"]), fields="all")
    predicted = [p for t in tasks for p in t.get("predictions") or []]
    assert len(predicted) == 6 and all(p["result"][0]["type"] == "choices" for p in predicted)

    # MLflow: the round run carries the classification metrics; the champion is judged by top1
    tracker = tracker_for(settings, project.name)
    assert tracker.scheme.primary == "top1"
    [run] = tracker.round_metrics()
    for name in ("precision", "recall", "top1", "top5", "labelled_images"):
        assert name in run["metrics"], name
    assert any(k.startswith("recall/") for k in run["metrics"])
    champion = tracker.champion()
    assert champion is not None and champion.metric == pytest.approx(row["top1"])
