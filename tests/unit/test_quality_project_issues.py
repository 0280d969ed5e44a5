"""Project label issues on a real SQLite catalog: each image graded by the model that proposed its
round, issues ranked, images without such a prediction skipped and counted; the CLI prints them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from labelwise.catalog import Catalog
from labelwise.cli import app
from labelwise.domain import Detections, ImageScore
from labelwise.quality.label_issues import CLASS_SWAP, MISSING_BOX, IssueRule
from labelwise.quality.project_issues import (
    SKIP_NO_MODEL,
    SKIP_NO_PREDICTION,
    SKIP_NO_ROUND,
    project_label_issues,
)
from labelwise.rounds.params import RoundParams, RoundSource
from tests.conftest import write_png

runner = CliRunner()
SIZE = 64  # test images are SIZE x SIZE pixels
BOX_A = (8.0, 8.0, 24.0, 24.0)  # xyxy pixels
BOX_B = (36.0, 36.0, 60.0, 56.0)


def _yolo(cls: int, box: tuple[float, float, float, float]) -> list[float]:
    x1, y1, x2, y2 = box
    return [cls, (x1 + x2) / 2 / SIZE, (y1 + y2) / 2 / SIZE, (x2 - x1) / SIZE, (y2 - y1) / SIZE]


def _det(*boxes: tuple[tuple[float, float, float, float], float, list[float]]) -> Detections:
    probs = np.array([p for _, _, p in boxes], dtype=np.float32).reshape(-1, 3)
    return Detections(np.array([b for b, _, _ in boxes], dtype=np.float32).reshape(-1, 4),
                      np.array([c for _, c, _ in boxes], dtype=np.float32),
                      probs.argmax(1) if len(probs) else np.zeros(0, dtype=np.int64), probs)


def _round(catalog: Catalog, project, model_version: str | None, ids: list[str]) -> int:
    scores = [ImageScore(i, 0.5, {}, 0, 0) for i in ids]
    return catalog.create_round(project, "random", model_version, RoundParams(RoundSource.SCORE_BATCH),
                                scores, ids)


@pytest.fixture
def labelled(env, tmp_path):
    """Project 'demo' (classes a, b, c), 8 images; returns (catalog, project, ids by role)."""
    for i in range(8):
        write_png(tmp_path / "pool" / f"{i:02d}.png", seed=i, size=SIZE)
    assert runner.invoke(app, ["project", "create", "demo", "--classes", "a,b,c"]).exit_code == 0
    assert runner.invoke(app, ["project", "add-images", "demo", str(tmp_path / "pool")]).exit_code == 0
    catalog = Catalog.open(f"sqlite:///{env / 'catalog.db'}")
    project = catalog.project("demo")
    ids = [r.image_id for r in catalog.images(project)]
    role = dict(zip(["clean", "missing", "swap", "clean2", "cold", "seed", "nopred", "empty"], ids))
    sure_a, sure_b = [0.9, 0.05, 0.05], [0.02, 0.97, 0.01]
    catalog.save_predictions(project, "v1", [
        (role["clean"], _det((BOX_A, 0.9, sure_a))),
        (role["missing"], _det((BOX_A, 0.9, sure_a), (BOX_B, 0.99, sure_b))),
        (role["swap"], _det((BOX_A, 0.97, sure_b))),
        (role["clean2"], _det((BOX_A, 0.8, sure_a), (BOX_B, 0.85, sure_b))),
        (role["cold"], _det((BOX_B, 0.99, sure_b))),
        (role["seed"], _det((BOX_B, 0.99, sure_b))),
        (role["empty"], _det()),
    ])
    # A later model (trained on these labels) sees a phantom box on the clean image: never used.
    catalog.save_predictions(project, "v2", [(role["clean"], _det((BOX_A, 0.9, sure_a), (BOX_B, 0.99, sure_b)))])
    r1 = _round(catalog, project, "v1", [role[k] for k in ("clean", "missing", "swap", "clean2", "nopred", "empty")])
    r2 = _round(catalog, project, None, [role["cold"]])
    labels = {
        role["clean"]: np.array([_yolo(0, BOX_A)]),
        role["missing"]: np.array([_yolo(0, BOX_A)]),  # the class-b object at BOX_B is not labelled
        role["swap"]: np.array([_yolo(0, BOX_A)]),  # labelled a, the model is sure it is b
        role["clean2"]: np.array([_yolo(0, BOX_A), _yolo(1, BOX_B)]),
        role["nopred"]: np.array([_yolo(0, BOX_A)]),
        role["empty"]: np.zeros((0, 5)),
    }
    catalog.save_labels(project, labels, "labelstudio", round_number=r1)
    catalog.save_labels(project, {role["cold"]: np.zeros((0, 5))}, "labelstudio", round_number=r2)
    catalog.save_labels(project, {role["seed"]: np.zeros((0, 5))}, "seed")
    yield catalog, project, role, (r1, r2)
    catalog.close()


def test_injected_errors_are_found_and_ranked_first(labelled):
    catalog, project, role, (r1, _) = labelled
    report = project_label_issues(catalog, project)
    kinds = [(i.image_id, i.kind) for i in report.issues]
    assert kinds[:2] == [(role["missing"], MISSING_BOX), (role["swap"], CLASS_SWAP)]
    missing, swap = report.issues[:2]
    assert missing.class_id == 1 and missing.box == pytest.approx(BOX_B) and missing.score == pytest.approx(0.99)
    assert swap.class_id == 0 and swap.box == pytest.approx(BOX_A, abs=1e-3)
    assert swap.score == pytest.approx(0.97 - 0.02, abs=1e-5)
    assert [i.score for i in report.issues] == sorted((i.score for i in report.issues), reverse=True)
    flagged = {i.image_id for i in report.issues}
    assert role["clean"] not in flagged and role["clean2"] not in flagged and role["empty"] not in flagged
    assert report.total_issues == len(report.issues) == 2
    assert report.model_versions == {r1: "v1"}
    assert set(report.images_checked) == {role[k] for k in ("clean", "missing", "swap", "clean2", "empty")}


def test_images_without_a_grading_prediction_are_skipped_and_counted(labelled):
    catalog, project, role, (r1, r2) = labelled
    report = project_label_issues(catalog, project)
    skipped = {s.image_id: (s.reason, s.round_number) for s in report.skipped}
    assert skipped == {role["nopred"]: (SKIP_NO_PREDICTION, r1), role["cold"]: (SKIP_NO_MODEL, r2),
                       role["seed"]: (SKIP_NO_ROUND, None)}
    counts = report.skipped_counts()
    assert (counts[SKIP_NO_PREDICTION], counts[SKIP_NO_MODEL], counts[SKIP_NO_ROUND]) == (1, 1, 1)


def test_limit_round_and_rule_narrow_the_report(labelled):
    catalog, project, role, (r1, r2) = labelled
    top = project_label_issues(catalog, project, limit=1)
    assert [i.kind for i in top.issues] == [MISSING_BOX] and top.total_issues == 2
    only_r2 = project_label_issues(catalog, project, round_number=r2)
    assert only_r2.issues == () and only_r2.images_checked == () and len(only_r2.skipped) == 1
    strict = project_label_issues(catalog, project, rule=IssueRule(min_conf=0.995, swap_margin=1.0, spurious_prob=0.0))
    assert strict.issues == ()
    with pytest.raises(ValueError, match="limit"):
        project_label_issues(catalog, project, limit=0)


def test_cli_prints_a_table_and_json(labelled):
    _, _, role, (r1, _) = labelled
    table = runner.invoke(app, ["label-issues", "--project", "demo"], catch_exceptions=False)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split()[:4] == ["image_id", "kind", "class", "box"]
    assert role["missing"][:20] in lines[2] and MISSING_BOX in lines[2] and " b " in lines[2]
    assert "(36.0, 36.0, 60.0, 56.0)" in lines[2] and "0.990" in lines[2]
    assert role["swap"][:20] in lines[3] and CLASS_SWAP in lines[3] and " a " in lines[3]
    assert "3 skipped" in lines[-1] and f"round {r1}: v1" in lines[-1]

    out = runner.invoke(app, ["label-issues", "--project", "demo", "--limit", "1", "--json"],
                        catch_exceptions=False)
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["project"] == "demo" and data["total_issues"] == 2 and len(data["issues"]) == 1
    first = data["issues"][0]
    assert (first["image_id"], first["kind"], first["class_name"]) == (role["missing"], MISSING_BOX, "b")
    assert first["box"] == pytest.approx(list(BOX_B)) and first["score"] == pytest.approx(0.99)
    assert data["images_checked"] == 5 and data["images_skipped"] == 3
    assert data["skipped_by_reason"][SKIP_NO_PREDICTION] == 1
    assert data["model_versions"] == {str(r1): "v1"}
    # counted over every issue, not only the one --limit kept; each image's thumbnail made
    assert data["issues_by_kind"] == {MISSING_BOX: 1, "spurious_box": 0, CLASS_SWAP: 1,
                                      "bad_localisation": 0}
    assert first["thumbnail"].endswith(f"{role['missing']}_128.jpg")
    from PIL import Image

    with Image.open(first["thumbnail"]) as thumb:
        assert max(thumb.size) <= 128


def test_contact_sheet_and_second_look_order_follow_the_ranked_issues(labelled, tmp_path):
    from labelwise.quality.project_issues import issues_contact_sheet
    from labelwise.review.second_look import issue_text, same_labels, second_look_images

    catalog, project, role, _ = labelled
    report = project_label_issues(catalog, project)
    sheet = issues_contact_sheet(catalog, project, report.issues, tmp_path / "sheet.png")
    assert sheet is not None and sheet.is_file()
    assert issues_contact_sheet(catalog, project, (), tmp_path / "none.png") is None
    for image_id in {i.image_id for i in report.issues}:  # every file gone: nothing to draw
        record = catalog.require_images(project, [image_id])[0]
        record.path.rename(record.path.with_suffix(".gone"))
    assert issues_contact_sheet(catalog, project, report.issues, tmp_path / "gone.png") is None
    looks = second_look_images(list(reversed(report.issues)), 5)  # order of the input: no matter
    assert [(look.image_id, look.rank) for look in looks] == [(role["missing"], 1), (role["swap"], 2)]
    assert issue_text(looks[0], project.class_names).startswith("Second look, please check: missing box (b, score 0.99)")
    with pytest.raises(ValueError, match="limit must be >= 1 image; got 0"):
        second_look_images(report.issues, 0)
    rows = np.array([[0, 0.5, 0.5, 0.2, 0.2]])
    assert same_labels(rows, rows + 5e-5) and not same_labels(rows, rows + 1e-3)
    assert not same_labels(rows, np.zeros((0, 5)))


def test_cli_unknown_project_exits_2(env):
    result = runner.invoke(app, ["label-issues", "--project", "nope"])
    assert result.exit_code == 2 and "unknown project" in result.output
