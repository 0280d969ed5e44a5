"""An instance segmentation project through the same closed loop as detection: real Prefect
harness, real Label Studio (polygons), real MLflow store (box and mask mAP), one round."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from labelwise.config import Settings, write_settings
from labelwise.learn import tracker_for
from labelwise.runtime import open_catalog

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="session")
def tiny_digits_segment(labelstudio):  # type: ignore[no-untyped-def]
    from labelwise.datasets.digits_segment import DigitsSegmentConfig, generate_digits_segment

    _, _, root = labelstudio
    return generate_digits_segment(root / "tiny-digits-segment", DigitsSegmentConfig(
        pool_images=16, val_images=4, test_images=6, canvas_min=64, canvas_max=96, digits_max=3,
        digit_size_min=16, digit_size_max=30))


def test_one_segmentation_round_goes_round_the_loop(
    prefect_harness, make_ls_settings: Callable[..., Settings], tiny_digits_segment,
) -> None:
    from flows.closed_loop import closed_loop
    from flows.params import LoopParams
    from labelwise.masks import read_segment_labels

    data = tiny_digits_segment
    base = make_ls_settings("loop-segment")
    settings = base.model_copy(update={
        "detector": base.detector.model_copy(update={"imgsz": 96, "batch": 8, "conf": 0.001}),
        "training": base.training.model_copy(update={"epochs": 2, "min_image_passes": 0, "batch": 8}),
        "selection": base.selection.model_copy(update={"limit": 6}),
        "labelstudio": base.labelstudio.model_copy(update={"preannotation_conf": 0.0}),
    })
    config = write_settings(settings, settings.state_dir / "labelwise.yaml")
    catalog = open_catalog(settings)
    project = catalog.create_project("digits-seg", [str(d) for d in range(10)], task_type="segment")
    catalog.set_holdout(project, data.data_yaml, "test")
    catalog.add_images(project, data.pool_images)

    rows = closed_loop(LoopParams(project=project.name, config=str(config), rounds=1,
                                  annotator="simulated", truth_dir=str(data.pool_truth),
                                  review_timeout_s=180, poll_s=0.5, campaign="test"))

    [row] = rows
    assert row["round"] == 0 and row["champion_moved"] is True and row["labelled_images"] == 6
    for name in ("precision", "recall", "mAP50", "mAP50-95", "mask_mAP50", "mask_mAP50-95"):
        assert 0.0 <= row[name] <= 1.0, name

    # the reviewers' polygons came back as the label's outlines and their boxes
    record = catalog.project(project.name)
    labels, outlines = catalog.labels(record), catalog.label_segments(record)
    assert len(labels) == 6 and set(outlines) <= set(labels)
    by_id = {img.image_id: img for img in catalog.images(record)}
    for image_id, rows_ in labels.items():
        img = by_id[image_id]
        truth = read_segment_labels(data.pool_truth / f"{img.path.stem}.txt", img.width, img.height)
        assert rows_[:, 0].tolist() == truth.class_ids.tolist()
        if len(truth):
            got = outlines[image_id]
            assert got.class_ids.tolist() == truth.class_ids.tolist()
            ious = [float((a & b).sum() / max(1, (a | b).sum())) for a, b in zip(got.masks(), truth.masks())]
            assert min(ious) > 0.9, ious

    # Label Studio holds a PolygonLabels project
    from labelwise.review.project import open_client

    with open_client(settings) as client:
        ls_project = client.get_project(int(record.ls_project_id or -1))
        assert "<PolygonLabels" in ls_project["label_config"]
        tasks = client.list_tasks(int(ls_project["id"]), fields="all")
    annotated = [a for t in tasks for a in t.get("annotations") or []]
    assert annotated and all(r["type"] == "polygonlabels" for a in annotated for r in a["result"])

    # MLflow: box and mask metrics per round; the champion is judged by mask mAP50-95
    tracker = tracker_for(settings, project.name)
    assert tracker.scheme.primary == "mask_mAP50-95"
    [run] = tracker.round_metrics()
    for name in ("mAP50", "mAP50-95", "mask_mAP50", "mask_mAP50-95", "labelled_images"):
        assert name in run["metrics"], name
    champion = tracker.champion()
    assert champion is not None and np.isclose(champion.metric, row["mask_mAP50-95"])
