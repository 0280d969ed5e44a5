"""What `make demo` configures: the services it starts read this file."""

from __future__ import annotations

import pytest

import subprocess
import sys
from pathlib import Path

import yaml

from deployments.demo import learnt_by

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_config_registers_the_webhook_the_receiver_serves(tmp_path: Path) -> None:
    """Issue 17, item 7: the demo's Label Studio project gets a webhook to the receiver `make up`
    starts (port 8091), with the secret the receiver checks, and its learn runs log under the
    loop's campaign."""
    path = tmp_path / "demo.yaml"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LABELWISE_STATE_DIR": str(tmp_path / "s")}
    done = subprocess.run([sys.executable, "-m", "deployments.demo", "--write-config", str(path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    written = yaml.safe_load(path.read_text())
    assert written["labelstudio"]["webhook_url"] == "http://127.0.0.1:8091/webhooks/labelstudio"
    assert written["labelstudio"]["webhook_secret"]
    assert written["tracking"]["campaign"] == "demo"


def test_the_table_says_who_learnt_each_round() -> None:
    assert learnt_by({"learnt_by": "learn-digits-demo-round-2 (deployment learn)"}) == \
        "webhook: learn-digits-demo-round-2"
    assert learnt_by({"learnt_by": "learn-digits-demo-round-2"}) == "the loop"
    assert learnt_by({}) == "the loop"


@pytest.mark.parametrize(("task", "project"), [
    ("detect", "digits-demo"), ("classify", "digits-classify-demo"), ("segment", "digits-segment-demo")])
def test_the_services_get_the_tasks_demo_project(task, project, capsys):
    """`make demo TASK=...` hands this name to the services (the reconcile cron's project)."""
    from deployments.demo import main

    main(["--task", task, "--print-project"])
    assert capsys.readouterr().out.strip() == project
