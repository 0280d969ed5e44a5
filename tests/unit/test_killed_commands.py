"""kill -9 in the middle of a command: the next run picks up where it stopped, nothing stored is
lost or duplicated (issue 12's fault suite; the queue's cases against a real Label Studio are in
tests/integration/test_queue_faults.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from labelwise.catalog import Catalog
from labelwise.catalog.models import PredictionRow
from tests.conftest import write_png
from tests.faults import cli_env, run_cli, run_killed_at

pytestmark = [pytest.mark.faults, pytest.mark.slow]

IMAGES = 8
BATCH = 2


@pytest.mark.parametrize(("task", "model", "killed_at_batch"), [
    ("detect", "yolov8n.yaml", 1), ("detect", "yolov8n.yaml", 3), ("segment", "yolov8n-seg.yaml", 2)])
def test_auto_label_killed_mid_run_resumes_with_nothing_lost_or_twice(
        tmp_path: Path, task: str, model: str, killed_at_batch: int) -> None:
    for i in range(IMAGES):
        write_png(tmp_path / "pool" / f"{i}.png", seed=i)
    env = cli_env({"LABELWISE_STATE_DIR": str(tmp_path / "state")})
    for args in (["project", "create", "p", "--classes", "a,b", "--task", task],
                 ["project", "add-images", "p", str(tmp_path / "pool")]):
        assert run_cli(args, env=env, cwd=tmp_path).returncode == 0
    label = ["auto-label", "--project", "p", "--model", model, "--batch", str(BATCH),
             "--write-batch", str(BATCH), "--no-progress"]
    # SIGKILL as the batch `killed_at_batch` is about to be stored: the batches before it are.
    run_killed_at("labelwise.catalog:Catalog.save_predictions", killed_at_batch, label, env=env,
                  cwd=tmp_path)
    done_before = (killed_at_batch - 1) * BATCH

    catalog = Catalog.open(f"sqlite:///{tmp_path / 'state' / 'catalog.db'}")
    try:
        project = catalog.project("p")
        with catalog.session() as s:
            stored = s.scalar(select(func.count()).select_from(PredictionRow))
        assert stored == done_before
        again = run_cli(label, env=env, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        report = json.loads(again.stdout)
        assert (report["already_predicted"], report["predicted"]) == (
            done_before, IMAGES - done_before)
        with catalog.session() as s:
            rows = s.execute(select(PredictionRow.image_id, func.count())
                             .group_by(PredictionRow.image_id)).all()
        assert len(rows) == IMAGES and {n for _, n in rows} == {1}
        assert catalog.predicted_ids(project, report["model_version"]) == {
            img.image_id for img in catalog.images(project)}
        if task == "segment":  # every stored prediction kept one outline per box, none lost
            ids = sorted(catalog.predicted_ids(project, report["model_version"]))
            dets = catalog.predictions(project, report["model_version"], ids)
            outlines = catalog.prediction_segments(project, report["model_version"], ids)
            assert set(outlines) == set(dets) == set(ids)  # an empty outline list for no box
            assert all(len(outlines[i]) == len(d) for i, d in dets.items())
    finally:
        catalog.close()
