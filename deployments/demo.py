"""`make demo`: the closed loop on the bundled digits with real Label Studio, Prefect and
MLflow and the simulated annotator; ends with a table per round and where to look.

    python -m deployments.demo [--rounds 3] [--pool 300]

Settings come from the environment like everywhere (rounds are semi-supervised by default;
``LABELWISE_TRAINING__PSEUDO_LABELS=false`` turns it off); the table shows pseudo-labels and
reviewer edits.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def reviewer_edits(row: dict) -> int | None:
    """Edits the (simulated) reviewer made in a round: added + removed + relabelled boxes of
    its ``corrections/*`` summary (``pulled["corrections"]``); None when the round has none."""
    corrections = (row.get("pulled") or {}).get("corrections") or {}
    parts = [corrections.get(f"corrections/{k}") for k in ("added", "removed", "relabelled")]
    if any(v is None for v in parts):
        return None
    return sum(int(v) for v in parts if v is not None)


def print_table(rows: list[dict], headline: tuple[str, ...] = ("precision", "recall", "mAP50", "mAP50-95")
                ) -> None:
    """One line per round: labelled (reviewed) images and boxes, pseudo-labelled images and
    boxes (0 unless ``training.pseudo_labels`` is on), reviewer edits, held-out metrics (the
    project's ``headline``: labelwise.evaluation)."""
    short = {"precision": "P", "recall": "R"}
    widths = [max(6, len(short.get(m, m))) for m in headline]
    metrics = " ".join(f"{short.get(m, m):>{w}}" for m, w in zip(headline, widths))
    header = (f"{'round':>5} {'strategy':<20} {'labels(img)':>11} {'boxes':>6} {'pseudo(img)':>11} "
              f"{'pseudo(box)':>11} {'edits':>5} {metrics}  "
              f"{'champion':<11} learnt by")
    print(header)
    print("-" * len(header))
    for r in rows:
        if "skipped" in r:
            print(f"{r['round']:>5} skipped: {r['skipped']}")
            continue
        edits = reviewer_edits(r)
        print(f"{r['round']:>5} {r['strategy']:<20} {r['labelled_images']:>11} {r['labelled_boxes']:>6} "
              f"{r.get('pseudo_images', 0):>11} {r.get('pseudo_boxes', 0):>11} "
              f"{'-' if edits is None else edits:>5} "
              + " ".join(f"{r[m]:{w}.3f}" for m, w in zip(headline, widths)) + "  "
              f"{'moved to v' + str(r['registered_version']) if r['champion_moved'] else 'kept':<11} "
              f"{learnt_by(r)}")


def learnt_by(row: dict) -> str:
    """Who learnt the round: the learn run the webhook started (a deployment run) or the loop."""
    who = str(row.get("learnt_by") or "")
    return "webhook: " + who.split(" (deployment")[0] if "(deployment" in who else "the loop"


def print_next_queue(settings, config_file: str, project: str, limit: int = 8) -> None:  # type: ignore[no-untyped-def]
    """What to label next: the champion predicts the pool, then the score-batch queue."""
    from flows.auto_label_pool import run_auto_label_pool
    from labelwise.learn import resolve_base_model
    from labelwise.runtime import open_catalog
    from labelwise.scorebatch import ScoreBatchRequest, build_score_batch

    base = resolve_base_model(settings, project)
    run_auto_label_pool(config_file, project, base.ref, 256)
    request = ScoreBatchRequest.from_settings(settings, project, limit=limit)
    batch = build_score_batch(open_catalog(settings), settings, request, record=False)
    print(f"\nNext queue ({batch.strategy}, model {batch.model_version}), most uncertain first:")
    print(f"{'image_id':<17} {'score':>6} {'lowest_conf':>11} {'margin':>6} {'entropy':>7}  why")
    for item in batch.queue:
        sc = item.scores
        print(f"{item.image_id:<17} {item.uncertainty_score:6.3f} {sc['lowest_confidence']:11.3f} "
              f"{sc['margin_sampling']:6.3f} {sc['entropy']:7.3f}  {item.reason_text}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool", type=int, default=300)
    parser.add_argument("--task", default="detect", choices=["detect", "classify", "segment"],
                        help="The demo project's task type (make demo TASK=classify|segment).")
    parser.add_argument("--print-project", action="store_true",
                        help="Print the task's demo project name and exit (the services' project).")
    parser.add_argument("--write-config", metavar="PATH", default=None,
                        help="Write the demo's settings to PATH and exit (services read it).")
    parser.add_argument("--config", metavar="PATH", default=None,
                        help="Run with this config (default: the demo settings).")
    args = parser.parse_args(argv)
    if args.print_project:
        from labelwise.demo_project import DEMO_PROJECTS
        from labelwise.task_types import TaskType

        print(DEMO_PROJECTS[TaskType.parse(args.task)])
        return

    from labelwise.config import load_settings, write_settings
    from labelwise.demo_project import demo_settings

    os.environ.setdefault("YOLO_VERBOSE", "False")  # per-epoch progress bars would drown the table
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # so would downloads
    if args.write_config:
        # The Label Studio webhook stays on: each finished batch reaches the receiver `make up`
        # starts, which starts the learn deployment; the loop hands the round to that run.
        os.environ.pop("LABELWISE_CONFIG", None)
        path = write_settings(demo_settings(load_settings(), args.task), Path(args.write_config))
        print(f"demo config: {path}")
        return
    if args.config:
        config_file = Path(args.config)
        settings = load_settings(config_file)
    else:
        settings = demo_settings(load_settings(), args.task)
        config_file = write_settings(settings, settings.state_dir / "demo.yaml")
    run_demo(settings, str(config_file), args.rounds, args.pool, args.task)


def run_demo(settings, config_file: str, rounds: int, pool: int, task: str = "detect") -> None:  # type: ignore[no-untyped-def]
    from flows.closed_loop import closed_loop
    from flows.params import LoopParams
    from labelwise.demo_project import prepare_demo_project

    started = time.perf_counter()
    from labelwise.evaluation import metric_scheme

    demo = prepare_demo_project(settings, pool_images=pool, task=task)
    print(f"demo data: {demo.dataset_root} ({demo.pool_images} pool images); project {demo.name}")
    on = settings.training.pseudo_labels
    if task != "detect":
        print(f"pseudo-labels: off (they are for detection projects; this is a {task!r} project)")
    else:
        print(f"pseudo-labels: {'on' if on else 'off'} (training.pseudo_labels; "
              f"LABELWISE_TRAINING__PSEUDO_LABELS={'false' if on else 'true'} switches them "
              f"{'off' if on else 'on'})")
    webhook = bool(settings.labelstudio.webhook_url.strip())
    print(f"webhook: {settings.labelstudio.webhook_url or 'off'} (a finished batch starts the learn "
          "deployment; the loop hands the round to that run)" if webhook else "webhook: off")
    rows = closed_loop(LoopParams(project=demo.name, config=config_file, rounds=rounds,
                                  annotator="simulated", truth_dir=str(demo.truth_dir),
                                  review_timeout_s=600, campaign=settings.tracking.campaign,
                                  handoff_s=HANDOFF_S if webhook else 0.0))
    print()
    print_table(rows, metric_scheme(task).headline)
    print_next_queue(settings, config_file, demo.name)
    minutes = (time.perf_counter() - started) / 60
    print(f"\n{len(rows)} rounds in {minutes:.1f} min.")
    print_where_to_look(settings, demo.name, rows)


HANDOFF_S = 120.0
"""How long the demo's loop waits for the webhook's learn run to take a reviewed round."""


def print_where_to_look(settings, project: str, rows: list[dict]) -> None:  # type: ignore[no-untyped-def]
    """Where each part of the story is: the review, the runs, the models, the files."""
    from labelwise.learn import tracker_for
    from labelwise.runtime import open_catalog
    from labelwise.tracking import model_name_for

    catalog = open_catalog(settings)
    record = catalog.project(project)
    ls = settings.labelstudio.url
    data = f"{ls}/projects/{record.ls_project_id}/data" if record.ls_project_id else ls
    mlflow_ui = os.environ.get("LW_MLFLOW_URL", "http://127.0.0.1:5000")
    prefect_ui = os.environ.get("PREFECT_API_URL", "http://127.0.0.1:4200/api").removesuffix("/api")
    reports = settings.state_dir / "reports" / project
    last = rows[-1]["round"] if rows else 0
    print("Where to look:")
    print(f"  Label Studio   {data}  tabs 'round <n>' and 'group: active-learning', most uncertain "
          "first; each task shows why it was picked above the image and the round model's "
          "pre-annotations")
    print(f"  Prefect UI     {prefect_ui}/runs  propose-{project}-round-<n> (Artifacts: the queue with "
          f"reasons, the contact sheet) and learn-{project}-round-<n> (Artifacts: metrics before -> "
          f"after, promotion); Deployments -> learn-round/learn lists the runs the webhook started")
    print(f"  MLflow UI      {mlflow_ui}/{tracker_for(settings, project).rounds_view_path()}  "
          f"(one row per round with its metrics; Models -> {model_name_for(project)}: versions with round, "
          "held-out metrics and why promoted)")
    print(f"  Contact sheet  {reports / f'round-{last}-queue.png'}  (the model's answer, score and reason "
          "per image)")
    print(f"  Webhook        {settings.labelstudio.webhook_url or 'off'}  "
          f"(health: {settings.labelstudio.webhook_url.rsplit('/webhooks', 1)[0]}/health)")
    print("  Stop the services with: make down")


if __name__ == "__main__":
    main()
