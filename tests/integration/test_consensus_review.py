"""Consensus reviews against a REAL Label Studio server (issue 14, part 2).

Half of a 10-image batch gets a copy for a second reviewer (once: a re-queue adds none). Reviewer
1 answers from the truth, reviewer 2 (``annotate-simulated --consensus``) drops boxes at a known
rate; ``review-status`` then reports the box F1 and kappa the dropped boxes imply, computed here
by hand from the injected-errors file."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from labelwise.config import ConsensusSettings, Settings, write_settings
from labelwise.datasets.digits import DigitsConfig, generate_digits, read_yolo_labels
from labelwise.review import queue_batch
from labelwise.runtime import open_catalog
from labelwise.scorebatch import ScoreBatchRequest, build_score_batch
from tests.integration.test_second_look import MODEL, truthful

pytestmark = pytest.mark.integration

POOL = 10


def test_two_reviewers_agreement_matches_the_hand_computed_figures(
        make_ls_settings: Callable[..., Settings], tmp_path: Path) -> None:
    from labelwise.cli.main import app

    name = f"consensus-{uuid.uuid4().hex[:6]}"
    settings = make_ls_settings(name).model_copy(update={"consensus": ConsensusSettings(share=0.5)})
    dataset = generate_digits(settings.state_dir / "data", DigitsConfig(
        pool_images=POOL, val_images=1, test_images=0, duplicate_cluster_fraction=0.0, seed=4))
    catalog = open_catalog(settings)
    project = catalog.create_project(name, dataset.class_names)
    catalog.add_images(project, dataset.pool_images)
    images = {img.image_id: img for img in catalog.images(project)}
    truths = {i: read_yolo_labels(dataset.truth_path(img.path)) for i, img in images.items()}
    catalog.save_predictions(project, MODEL, [
        (i, truthful(truths[i], img.width, img.height, len(dataset.class_names))) for i, img in images.items()])
    batch = build_score_batch(catalog, settings, ScoreBatchRequest(
        project=name, strategy="entropy", limit=POOL, diversity_weight=0.0), record=True)
    first = queue_batch(settings, catalog, name, batch, None)["consensus"]
    assert len(first["images"]) == POOL // 2 and first["created"] == POOL // 2
    assert queue_batch(settings, catalog, name, batch, None)["consensus"]["created"] == 0

    config = str(write_settings(settings, tmp_path / "labelwise.yaml"))
    runner = CliRunner()
    base = ["--config", config, "annotate-simulated", "--project", name, "--truth", str(dataset.pool_truth)]
    assert runner.invoke(app, base).exit_code == 0  # reviewer 1: the truth
    injected = tmp_path / "injected.jsonl"
    second = runner.invoke(app, [*base, "--consensus", "--drop-rate", "0.4", "--seed", "2",
                                 "--injected-out", str(injected)])
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["annotated"] == POOL // 2
    status = runner.invoke(app, ["--config", config, "review-status", "--project", name])
    assert status.exit_code == 0, status.output
    got = json.loads(status.stdout)
    assert got["complete"] and got["total"] == POOL  # copies do not count as the round's tasks
    agreement = got["agreement"]

    drops = [json.loads(line) for line in injected.read_text().splitlines()]
    assert drops and {d["kind"] for d in drops} == {"drop"}
    dropped = {i: sum(d["image_id"] == i for d in drops) for i in first["images"]}
    n_a = sum(len(truths[i]) for i in first["images"])
    n_b = n_a - sum(dropped.values())
    assert agreement["images_compared"] == POOL // 2
    assert agreement["box_f1"] == pytest.approx(2 * n_b / (n_a + n_b), abs=1e-9)
    # kappa of (image, class) presence: B lacks a class only where every box of it was dropped
    present_a = np.zeros((POOL // 2, 10), bool)
    present_b = np.zeros((POOL // 2, 10), bool)
    for k, i in enumerate(first["images"]):
        gone = [tuple(d["true_box"]) for d in drops if d["image_id"] == i]
        for row in truths[i]:
            present_a[k, int(row[0])] = True
            if tuple(round(float(v), 6) for v in row[1:]) not in {tuple(round(v, 6) for v in g) for g in gone}:
                present_b[k, int(row[0])] = True
    n = present_a.size
    po = (present_a == present_b).sum() / n
    pe = (present_a.sum() * present_b.sum() + (~present_a).sum() * (~present_b).sum()) / n**2
    assert agreement["kappa"] == pytest.approx((po - pe) / (1 - pe), abs=1e-9)
    assert agreement["merged"]["third_look_boxes"] == sum(dropped.values())

    # the boxes only reviewer 2 left out go back for a third look, once, most disagreement first
    assert runner.invoke(app, ["--config", config, "pull", "--project", name]).exit_code == 0
    third = runner.invoke(app, ["--config", config, "queue", "--project", name, "--third-looks"])
    assert third.exit_code == 0, third.output
    sent = json.loads(third.stdout)
    disagreed = sorted(i for i, n in dropped.items() if n)
    assert sent["round"] == batch.round_number and sorted(sent["images"]) == disagreed
    assert sent["created"] == len(disagreed) and sent["annotated"] == len(disagreed)
    f1_of = {p["image_id"]: p["box_f1"] for p in agreement["per_image"]}
    assert [f1_of[i] for i in sent["images"]] == sorted(f1_of[i] for i in disagreed)
    from labelwise.labelstudio import LabelStudioClient

    with LabelStudioClient.from_settings(settings.labelstudio) as client:
        tasks = {t["data"]["second_look"]: t for t in client.list_tasks(
            int(catalog.project(name).ls_project_id or 0), fields="all")
            if (t.get("data") or {}).get("second_look")}
    for image_id in disagreed:  # the stored label (reviewer 1's) says nothing is missing
        listed = tasks[image_id]["data"]["issues"]
        assert len(listed) == dropped[image_id]
        assert {i["kind"] for i in listed} == {"spurious_box"}
    again = runner.invoke(app, ["--config", config, "queue", "--project", name, "--third-looks"])
    assert again.exit_code == 0 and json.loads(again.stdout)["created"] == 0
    catalog.close()
