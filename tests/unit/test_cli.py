"""CLI through Typer's runner, on a real catalog, with stored predictions (no model needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from labelwise.catalog import Catalog
from labelwise.cli import app
from labelwise.domain import Detections
from labelwise.reasons import REASON_CODES
from labelwise.strategies import STRATEGIES
from tests.conftest import solid_png, write_png

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def demo_project(state, tmp_path, images: int):
    """Project 'demo' (classes a, b, c) with ``images`` PNGs added through the CLI; its catalog."""
    for i in range(images):
        write_png(tmp_path / "pool" / f"{i:02d}.png", seed=i)
    assert invoke("project", "create", "demo", "--classes", "a,b,c").exit_code == 0
    assert invoke("project", "add-images", "demo", str(tmp_path / "pool")).exit_code == 0
    catalog = Catalog.open(f"sqlite:///{state / 'catalog.db'}")
    return catalog, catalog.project("demo")


@pytest.fixture
def scored_project(env, tmp_path):
    """A project with 12 images, predictions from model 'v1' and embeddings."""
    catalog, project = demo_project(env, tmp_path, 12)
    rng = np.random.default_rng(0)
    items = []
    for img in catalog.images(project):
        n = int(rng.integers(1, 4))
        probs = rng.dirichlet(np.ones(3), size=n).astype(np.float32)
        items.append((img.image_id, Detections(np.tile([1, 1, 30, 30], (n, 1)), np.full(n, 0.9), probs.argmax(1), probs)))
    catalog.save_predictions(project, "v1", items)
    ids = [i for i, _ in items]
    catalog.save_embeddings(project, "emb", ids, rng.normal(size=(len(ids), 8)))
    catalog.close()
    return ids


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_score_batch_prints_a_sorted_queue(scored_project, strategy):
    result = invoke("score-batch", "--project", "demo", "--strategy", strategy, "--limit", "5", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["project_id"] == "demo" and data["strategy"] == strategy and data["model_version"] == "v1"
    queue = data["queue"]
    assert len(queue) == 5
    scores = [q["uncertainty_score"] for q in queue]
    assert scores == sorted(scores)
    for q in queue:
        assert set(q) == {"image_id", "uncertainty_score", "scores", "thumbnail", "reason", "reason_text",
                          "rank"}
        assert q["reason"] in REASON_CODES and q["reason_text"], q
        assert (q["reason"] == "random") == (strategy == "random")
        assert set(q["scores"]) == {"lowest_confidence", "margin_sampling", "entropy"}
        assert 0 <= q["uncertainty_score"] <= 1
        with open(q["thumbnail"], "rb") as fh:
            assert fh.read(2) == b"\xff\xd8"  # a JPEG


def test_rare_class_diverse_reads_labelled_class_counts_from_the_catalog(env, tmp_path):
    """Labelled boxes are mostly class a: the queue goes to the images whose predictions hold
    class c; once c is the common labelled class, away from them."""
    catalog, project = demo_project(env, tmp_path, 16)
    ids = sorted(img.image_id for img in catalog.images(project))
    rng = np.random.default_rng(0)
    items = []
    for k, image_id in enumerate(ids):
        cls = 2 if k < 3 else int(rng.integers(2))  # images 0-2 predicted as class c
        probs = np.full((1, 3), 0.05, np.float32)
        probs[0, cls] = 0.9
        items.append((image_id, Detections(np.array([[1, 1, 30, 30]]), np.array([0.8]), np.array([cls]), probs)))
    catalog.save_predictions(project, "v1", items)
    catalog.save_embeddings(project, "emb", ids, rng.normal(size=(len(ids), 8)))
    box = [0.5, 0.5, 0.2, 0.2]
    catalog.save_labels(project, {ids[-1]: np.array([[0, *box]] * 9 + [[1, *box]] * 9)}, "test")
    catalog.close()

    def queue() -> set[str]:
        result = invoke("score-batch", "--project", "demo", "--strategy", "rare_class_diverse",
                        "--limit", "3", "--json")
        assert result.exit_code == 0, result.output
        return {q["image_id"] for q in json.loads(result.output)["queue"]}

    assert queue() == set(ids[:3])
    catalog = Catalog.open(f"sqlite:///{env / 'catalog.db'}")
    catalog.save_labels(catalog.project("demo"), {ids[-1]: np.array([[2, *box]] * 30)}, "test")
    catalog.close()
    assert not queue() & set(ids[:3])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--project", "nope"], "unknown project 'nope'; known projects: ['demo']"),
        (["--project", "demo", "--strategy", "best"], "unknown strategy 'best'; expected one of"),
        (["--project", "demo", "--limit", "0"], "limit must be an integer >= 1; got 0"),
        (["--project", "demo", "--diversity-weight", "1.5"], "diversity_weight must lie in [0, 1]; got 1.5"),
    ],
)
def test_score_batch_bad_input(scored_project, args, message):
    result = runner.invoke(app, ["score-batch", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_score_batch_without_predictions_says_what_to_run(env, tmp_path):
    write_png(tmp_path / "p" / "a.png", seed=1)
    invoke("project", "create", "empty", "--classes", "x")
    invoke("project", "add-images", "empty", str(tmp_path / "p"))
    result = runner.invoke(app, ["score-batch", "--project", "empty"])
    assert result.exit_code == 2
    assert "has no predictions yet; run `labelwise auto-label" in result.output


def test_add_images_reports_broken_files_and_keeps_going(env, tmp_path):
    write_png(tmp_path / "imgs" / "ok.png", seed=3)
    (tmp_path / "imgs" / "bad.png").write_bytes(b"\x89PNG broken")
    invoke("project", "create", "p", "--classes", "x")
    result = runner.invoke(app, ["project", "add-images", "p", str(tmp_path / "imgs")])
    assert result.exit_code == 0
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["added"] == 1 and len(summary["skipped"]) == 1
    assert "bad.png" in summary["skipped"][0]["path"]


# id, the bad file's maker (folder -> path), LABELWISE_IMAGES__MAX_PIXELS or None, reason part
ADD_IMAGES_FAULTS = [
    ("decompression-bomb", lambda d: solid_png(d / "bomb.png", 30000, 30000), None,
     "a decompression bomb to Pillow"),
    ("over-the-configured-cap", lambda d: solid_png(d / "wide.png", 200, 100), "10000",
     "200x100 = 20000 pixels; expected at most 10000 pixels (images.max_pixels)"),
]


@pytest.mark.parametrize(
    ("make", "cap", "reason"),
    [c[1:] for c in ADD_IMAGES_FAULTS],
    ids=[c[0] for c in ADD_IMAGES_FAULTS],
)
def test_add_images_skips_an_image_over_the_pixel_cap(
    env, tmp_path, monkeypatch, make, cap, reason
):
    """The cap is the settings' images.max_pixels; the skipped file and why are printed."""
    if cap is not None:
        monkeypatch.setenv("LABELWISE_IMAGES__MAX_PIXELS", cap)
    for i in range(2):
        write_png(tmp_path / "imgs" / f"ok_{i}.png", seed=i)  # 64 x 64
    bad = make(tmp_path / "imgs")
    invoke("project", "create", "p", "--classes", "x")
    result = runner.invoke(app, ["project", "add-images", "p", str(tmp_path / "imgs")])
    assert result.exit_code == 0, f"expected exit 0 with the bad file skipped; got {result.output}"
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["added"] == 2, f"expected both good files added; got {summary}"
    assert [s["path"] for s in summary["skipped"]] == [str(bad)], summary
    assert reason in summary["skipped"][0]["reason"], summary
    assert f"skipped: {bad}: " in result.output and reason in result.output, result.output


def test_project_create_needs_classes(env):
    result = runner.invoke(app, ["project", "create", "p", "--classes", " , "])
    assert result.exit_code == 2
    assert "--classes needs at least one class name" in result.output


@pytest.mark.slow
def test_auto_label_prints_only_json_on_stdout(tmp_path):
    """ultralytics logs (first-run settings banner, 'Overriding model.yaml nc=...') go to stderr,
    so `labelwise auto-label | jq` works. A fresh process: the banner appears only on first use."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    for i in range(3):
        write_png(tmp_path / "pool" / f"{i}.png", seed=i)
    exe = str(Path(sys.executable).parent / "labelwise")
    env = {**os.environ, "LABELWISE_STATE_DIR": str(tmp_path / "state")}
    env.pop("LABELWISE_CONFIG", None)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([exe, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)

    assert run("project", "create", "p", "--classes", "a,b").returncode == 0
    assert run("project", "add-images", "p", str(tmp_path / "pool")).returncode == 0
    result = run("auto-label", "--project", "p", "--model", "yolov8n.yaml", "--no-progress")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["predicted"] == 3
    assert "nc=80" in result.stderr or "Ultralytics" in result.stderr


@pytest.mark.parametrize(("task", "model", "expected_model"), [
    ("classify", "yolov8n.yaml", "'detect'"),
    ("detect", "yolov8n-cls.yaml", "'classify'"),
])
def test_a_model_of_another_task_is_refused_naming_both(env, tmp_path, task, model, expected_model):
    for i in range(2):
        write_png(tmp_path / "pool" / f"{i}.png", seed=i)
    assert invoke("project", "create", "p", "--classes", "a,b", "--task", task).exit_code == 0
    assert invoke("project", "add-images", "p", str(tmp_path / "pool")).exit_code == 0
    result = runner.invoke(app, ["auto-label", "--project", "p", "--model", model, "--no-progress"])
    assert result.exit_code != 0
    assert (f"project 'p' is a '{task}' project but model {model} is a {expected_model} model; "
            f"expected a '{task}' model") in result.output
    assert Catalog.open(f"sqlite:///{env / 'catalog.db'}").predictions(
        Catalog.open(f"sqlite:///{env / 'catalog.db'}").project("p"), "any") == {}


def test_the_configured_stock_model_follows_the_projects_task(env):
    from labelwise.config import Settings
    from labelwise.runtime import project_model_ref
    from labelwise.task_types import TaskType

    assert invoke("project", "create", "c", "--classes", "a,b", "--task", "classify").exit_code == 0
    listed = json.loads(invoke("project", "list").output)
    assert [(p["project"], p["task"]) for p in listed] == [("c", "classify")]
    catalog = Catalog.open(f"sqlite:///{env / 'catalog.db'}")
    project = catalog.project("c")
    assert project_model_ref(Settings(), project) == "yolov8n-cls.yaml"
    assert project_model_ref(Settings(), project, "yolov8n.yaml") == "yolov8n.yaml"  # as given
    assert project_model_ref(Settings(detector={"model": "/m/x.pt"}), project) == "/m/x.pt"
    assert project.task_type is TaskType.CLASSIFY
