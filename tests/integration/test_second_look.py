"""Label issues and the second look, against a REAL Label Studio server (issue 14).

A noisy simulated review (``annotate-simulated`` with drop, swap and shift rates, the injected
errors written to a file) -> ``pull`` -> ``label-issues`` ranks exactly the images that got an
injected error first -> ``queue --issues N`` gives each one second-look task holding its current
labels (a rerun creates none) -> a simulated reviewer fixes them in Label Studio -> ``pull``
stores the fixed labels (and a second pull changes nothing).

The "model" that grades the labels is the round's stored predictions: the ground truth, confident
and sure of its class (a stand-in for a well-trained detector, so the finder's rule, not a tiny
model's accuracy, is what is tested; ``labelwise bench label-issues`` measures it with trained
models). No YOLO model runs here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from labelwise.catalog import Catalog
from labelwise.config import Settings, write_settings
from labelwise.datasets.digits import DigitsConfig, generate_digits, read_yolo_labels
from labelwise.domain import Detections
from labelwise.labelstudio import LabelStudioClient, yolo_to_ls_result, yolo_to_xyxy
from labelwise.review import queue_batch
from labelwise.review.second_look import LOOK_FIELD, LOOK_VALUE, SECOND_LOOK_KEY, SECOND_LOOK_TAB
from labelwise.runtime import open_catalog
from labelwise.scorebatch import ScoreBatchRequest, build_score_batch

pytestmark = pytest.mark.integration

MODEL = "truth-v1"
POOL = 20
SECOND_LOOKS = 4


def truthful(truth: np.ndarray, width: int, height: int, num_classes: int) -> Detections:
    """The truth as predictions: conf 0.9, p(true class) 0.9, the rest spread evenly."""
    xyxy = yolo_to_xyxy(truth[:, 1:], width, height) if len(truth) else np.zeros((0, 4))
    cls = truth[:, 0].astype(np.int64)
    probs = np.full((len(cls), num_classes), 0.1 / (num_classes - 1))
    probs[np.arange(len(cls)), cls] = 0.9
    return Detections(xyxy, np.full(len(cls), 0.9), cls, probs)


@pytest.fixture
def noisy_review(make_ls_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """One round of 20 digits images queued in Label Studio, answered by the simulated annotator
    with drop/swap/shift noise through the CLI, and pulled."""
    name = f"issues-{uuid.uuid4().hex[:6]}"
    settings = make_ls_settings(name)
    dataset = generate_digits(settings.state_dir / "data", DigitsConfig(
        pool_images=POOL, val_images=1, test_images=0, duplicate_cluster_fraction=0.0, seed=11))
    catalog: Catalog = open_catalog(settings)
    project = catalog.create_project(name, dataset.class_names)
    catalog.add_images(project, dataset.pool_images)
    truths = {img.image_id: read_yolo_labels(dataset.truth_path(img.path))
              for img in catalog.images(project)}
    catalog.save_predictions(project, MODEL, [
        (img.image_id, truthful(truths[img.image_id], img.width, img.height, len(dataset.class_names)))
        for img in catalog.images(project)])
    request = ScoreBatchRequest(project=name, strategy="entropy", limit=POOL, diversity_weight=0.0)
    batch = build_score_batch(catalog, settings, request, record=True)
    queue_batch(settings, catalog, name, batch, None)

    config = str(write_settings(settings, tmp_path / "labelwise.yaml"))
    runner = CliRunner()
    injected_path = tmp_path / "injected.jsonl"
    answered = runner.invoke(cli_app(), [
        "--config", config, "annotate-simulated", "--project", name,
        "--truth", str(dataset.pool_truth), "--drop-rate", "0.15", "--swap-rate", "0.15",
        "--shift-rate", "0.1", "--seed", "3", "--injected-out", str(injected_path)])
    assert answered.exit_code == 0, answered.output
    simulated = json.loads(answered.stdout)
    assert simulated["annotated"] == POOL
    injected = [json.loads(line) for line in injected_path.read_text().splitlines()]
    assert sum(simulated["injected"].values()) == len(injected) > 0
    pulled = runner.invoke(cli_app(), ["--config", config, "pull", "--project", name])
    assert pulled.exit_code == 0, pulled.output
    assert json.loads(pulled.stdout)["labelled"] == POOL
    yield {"name": name, "settings": settings, "catalog": catalog, "config": config,
           "truths": truths, "injected": injected, "runner": runner}
    catalog.close()


def cli_app() -> Any:
    from labelwise.cli.main import app

    return app


def invoke(review: dict[str, Any], *args: str) -> dict[str, Any]:
    result = review["runner"].invoke(cli_app(), ["--config", review["config"], *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def second_look_tasks(settings: Settings, ls_id: int) -> list[dict[str, Any]]:
    with LabelStudioClient.from_settings(settings.labelstudio) as client:
        return [t for t in client.list_tasks(ls_id, fields="all")
                if SECOND_LOOK_KEY in (t.get("data") or {})]


def test_injected_errors_top_label_issues_and_get_one_second_look_each(noisy_review):
    review = noisy_review
    catalog, settings, name = review["catalog"], review["settings"], review["name"]
    project = catalog.project(name)
    noisy = {image_id for image_id, rows in catalog.labels(project).items()
             if not np.array_equal(rows, review["truths"][image_id].round(6))}
    assert noisy == {e["image_id"] for e in review["injected"]}  # the file names every change

    report = invoke(review, "label-issues", "--project", name, "--json")
    assert report["images_checked"] == POOL and report["model_versions"] == {"0": MODEL}
    flagged = [i["image_id"] for i in report["issues"]]
    assert set(flagged) == noisy  # truthful predictions: every noisy image, no clean one
    # A box both swapped and shifted overlaps nothing any more: it reads as a shifted one.
    shifted = {(e["image_id"], tuple(e["true_box"])) for e in review["injected"] if e["kind"] == "shift"}
    kinds = {(e["image_id"], "shift" if (e["image_id"], tuple(e["true_box"] or ())) in shifted else e["kind"])
             for e in review["injected"]}
    for image_id, kind in kinds:  # each injected kind shows up as what the rule calls it
        found = {i["kind"] for i in report["issues"] if i["image_id"] == image_id}
        expected = {"drop": {"missing_box"}, "swap": {"class_swap"},
                    "shift": {"spurious_box", "missing_box", "bad_localisation"}}[kind]
        assert found & expected, (image_id, kind, found)
    assert all("thumbnail" in i and Path(i["thumbnail"]).is_file() for i in report["issues"])

    sent = invoke(review, "queue", "--project", name, "--issues", str(SECOND_LOOKS))
    ranked = list(dict.fromkeys(flagged))[:SECOND_LOOKS]  # images in order of their top issue
    assert sent["images"] == ranked
    assert (sent["created"], sent["reused"], sent["annotated"]) == (SECOND_LOOKS, 0, SECOND_LOOKS)
    ls_id = int(sent["ls_project_id"])
    tasks = second_look_tasks(settings, ls_id)
    assert sorted(t["data"][SECOND_LOOK_KEY] for t in tasks) == sorted(ranked)
    labels = catalog.labels(project)
    images = {img.image_id: img for img in catalog.images(project)}
    for task in tasks:
        image_id = task["data"][SECOND_LOOK_KEY]
        assert task["data"][LOOK_FIELD] == LOOK_VALUE and "Second look" in task["data"]["reason_text"]
        (annotation,) = task["annotations"]  # the current labels, to fix
        img = images[image_id]
        assert len(annotation["result"]) == len(yolo_to_ls_result(labels[image_id], project.class_names,
                                                                  img.width, img.height))
    with LabelStudioClient.from_settings(settings.labelstudio) as client:
        views = [v for v in client.list_views(ls_id) if (v.get("data") or {}).get("title") == SECOND_LOOK_TAB]
    assert [v["id"] for v in views] == [sent["view_id"]]

    again = invoke(review, "queue", "--project", name, "--issues", str(SECOND_LOOKS))
    assert (again["created"], again["reused"], again["annotated"]) == (0, SECOND_LOOKS, 0)
    assert again["task_ids"] == sent["task_ids"]
    assert len(second_look_tasks(settings, ls_id)) == SECOND_LOOKS

    # A reviewer fixes each second look (a new annotation: the truth) -> pull stores the fixes.
    with LabelStudioClient.from_settings(settings.labelstudio) as client:
        for image_id, task_id in sent["task_ids"].items():
            img = images[image_id]
            client.create_annotation(task_id, yolo_to_ls_result(review["truths"][image_id],
                                                                project.class_names, img.width, img.height))
    pulled = invoke(review, "pull", "--project", name)["second_look"]
    assert (pulled["checked"], pulled["updated"], pulled["unchanged"]) == (SECOND_LOOKS, SECOND_LOOKS, 0)
    assert pulled["updated_ids"] == sorted(ranked)
    fixed = catalog.labels(project)
    for image_id in ranked:
        np.testing.assert_allclose(fixed[image_id], review["truths"][image_id], atol=1e-4)
    assert invoke(review, "pull", "--project", name)["second_look"]["updated"] == 0
    after = invoke(review, "label-issues", "--project", name, "--json")
    assert not set(ranked) & {i["image_id"] for i in after["issues"]}  # fixed: no issue left
