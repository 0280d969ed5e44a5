"""What a round did, told in words: one log line per step and one markdown page per run.

Pure rendering (plain dicts in, strings out), so a Prefect task, the CLI or a notebook tells a
round the same way. The inputs are what the steps already return: ``ScoreBatch.as_json()``,
:meth:`AutoLabelReport.as_dict`, ``queue_batch``'s reply, ``pull_annotations``'s reply,
:meth:`RetrainResult.as_dict`, the evaluation dict, ``track_round`` and ``promote``'s replies.
Missing keys render as "n/a" rather than failing: the story must never break a round.

The one function here that reads anything is :func:`champion_before` (the champion's held-out
metrics in MLflow before a learn round promotes, the "before" column of :func:`learn_markdown`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from labelwise.config import Settings

TOP_ITEMS = 20
"""Queue items listed in the propose page (the queue JSON holds all)."""
SCORE_DECIMALS = 6
"""Scores are compared for ties at the precision the queue JSON stores them."""
METRICS: tuple[tuple[str, str, str], ...] = (
    # (label, key in the evaluation dict, key in MLflow metrics)
    ("precision", "precision", "precision"),
    ("recall", "recall", "recall"),
    ("mAP50", "map50", "mAP50"),
    ("mAP50-95", "map50_95", "mAP50-95"),
)
NA = "n/a"
_SHORT = {"precision": "P", "recall": "R"}


def _headline(evaluation: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(shown name, value) of an evaluation record's headline metrics
    (:func:`labelwise.evaluation.evaluation_record`: any task type); a record without one (an
    older detection summary) gives the detection metrics of :data:`METRICS`."""
    headline = evaluation.get("headline")
    if isinstance(headline, Mapping):
        return list(headline.items())
    return [(label, evaluation.get(key)) for label, key, _ in METRICS]


# Keys -----------------------------------------------------------------------------------------

def slug(text: str) -> str:
    """``text`` as an artifact key part: lowercase letters, digits and single dashes.

    >>> slug("Digits_Demo v2")
    'digits-demo-v2'
    """
    out = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return out or "project"


def artifact_key(kind: str, project: str) -> str:
    """The Prefect artifact key of one kind of page for a project, e.g. ``queue-digits-demo``.

    One key per project and kind: each round adds a version, so the Artifacts page shows the
    newest round and its history lists the others.
    """
    return f"{slug(kind)}-{slug(project)}"


# Ties -----------------------------------------------------------------------------------------

def tied_count(scores: Iterable[float], decimals: int = SCORE_DECIMALS) -> int:
    """How many scores equal (at ``decimals``) at least one other score.

    >>> tied_count([0.1, 0.1, 0.2, 0.3, 0.3, 0.3])
    5
    """
    counts = Counter(round(float(s), decimals) for s in scores)
    return sum(n for n in counts.values() if n > 1)


def queue_items(batch: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(batch.get("queue") or [])


def batch_params(batch: Mapping[str, Any]) -> Mapping[str, Any]:
    return batch.get("params") or {}


def _applied(params: Mapping[str, Any], knob: str) -> str:
    """A selection knob as applied, with the request when the strategy set its own value."""
    applied = params.get(knob, NA)
    requested = params.get(f"requested_{knob}")
    return f"{applied} (requested {requested}; the strategy sets its own)" if requested is not None \
        else str(applied)


def queue_ties(batch: Mapping[str, Any]) -> int:
    """Queue items sharing their ``uncertainty_score`` with another queue item."""
    return tied_count(float(item["uncertainty_score"]) for item in queue_items(batch))


def candidate_ties(batch: Mapping[str, Any]) -> int | None:
    """Candidates sharing their score with another candidate, when the batch reports it
    (``params.tied_candidates``); None when it does not (only the queue can be counted)."""
    value = batch_params(batch).get("tied_candidates")
    return None if value is None else int(value)


# Log lines ------------------------------------------------------------------------------------

def _num(value: Any, fmt: str = ".3f") -> str:
    if value is None:
        return NA
    try:
        return format(float(value), fmt)
    except (TypeError, ValueError):
        return str(value)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def model_line(base: Mapping[str, Any]) -> str:
    """``model: champion v3 (/…/digits-v3.pt)`` or ``model: configured yolov8n.yaml``."""
    version = base.get("registry_version")
    return (f"model: {base.get('source', NA)}" + (f" v{version}" if version else "")
            + f" {base.get('ref', NA)}")


def shard_line(report: Mapping[str, Any], shard_index: int) -> str:
    """One auto-label shard: ``auto-label shard 0: 24 images (24 predicted, ...) in 1.2 s``."""
    failed = len(report.get("failed") or [])
    return (f"auto-label shard {shard_index}: {_int(report.get('considered'))} images "
            f"({_int(report.get('predicted'))} predicted, {_int(report.get('already_predicted'))} "
            f"already done, {_int(report.get('embedded'))} embedded, {failed} failed) in "
            f"{_num(report.get('seconds'), '.1f')} s, model {report.get('model_version', NA)}")


def auto_label_line(reports: Sequence[Mapping[str, Any]]) -> str:
    """Every shard together: ``auto-label: 60 images in 12.3 s (3 shards; ...)``."""
    total = sum(_int(r.get("considered")) for r in reports)
    predicted = sum(_int(r.get("predicted")) for r in reports)
    embedded = sum(_int(r.get("embedded")) for r in reports)
    failed = sum(len(r.get("failed") or []) for r in reports)
    seconds = sum(float(r.get("seconds") or 0.0) for r in reports)
    shards = len(reports)
    return (f"auto-label: {total} images in {seconds:.1f} s ({shards} shard{'s' * (shards != 1)}; "
            f"{predicted} predicted, {total - predicted - failed} already done, "
            f"{embedded} embedded, {failed} failed)")


def score_batch_line(batch: Mapping[str, Any]) -> str:
    """``score-batch: round 2, 20 of 140 candidates, strategy rare_class_diverse, 3 tied``."""
    params = batch_params(batch)
    queue = queue_items(batch)
    tied = candidate_ties(batch)
    ties = (f"{queue_ties(batch)} tied in the queue" if tied is None
            else f"{queue_ties(batch)} tied in the queue, {tied} among candidates")
    held = _int(params.get("held_back"))
    return (f"score-batch: round {params.get('round', NA)}, {len(queue)} of "
            f"{params.get('candidates', NA)} candidates, strategy {batch.get('strategy', NA)}, "
            f"{ties}" + (f", {held} held back by open rounds" if held else ""))


def queue_line(queued: Mapping[str, Any]) -> str:
    """``queue: 20 tasks created in Label Studio project 7 (0 reused, 0 refreshed)``."""
    return (f"queue: {_int(queued.get('created'))} tasks created in Label Studio project "
            f"{queued.get('ls_project_id', NA)} ({_int(queued.get('reused'))} reused, "
            f"{_int(queued.get('refreshed'))} refreshed), round {queued.get('round', NA)}"
            + (f": {queued['url']}" if queued.get("url") else ""))


def batch_files_line(files: Mapping[str, str]) -> str:
    """``batch files: queue /…/round-2-queue.json, contact sheet /…/round-2-queue.png``."""
    return ("batch files: queue " + str(files.get("queue", NA))
            + ", contact sheet " + str(files.get("contact_sheet", "none (empty queue)")))


def corrections_text(corrections: Mapping[str, Any]) -> str:
    """Reviewer edits of ``corrections/*`` figures, or a note that there are none."""
    c = {k.removeprefix("corrections/"): v for k, v in corrections.items()}
    if not c.get("images"):
        return "no reviewed image to compare with its pre-annotations"
    edits = sum(_int(c.get(k)) for k in ("added", "removed", "relabelled"))
    iou = c.get("mean_iou_kept")
    return (f"{edits} edits on {_int(c.get('images'))} images ({_int(c.get('added'))} added, "
            f"{_int(c.get('removed'))} removed, {_int(c.get('relabelled'))} relabelled); "
            f"{_int(c.get('kept'))} of {_int(c.get('boxes_predicted'))} sent boxes kept"
            + (f" (mean IoU {float(iou):.2f})" if iou is not None else ""))


def pull_line(pulled: Mapping[str, Any]) -> str:
    """``pull: round 2: 20 labelled, 0 rejected, 0 pending; 5 edits on 20 images (...)``."""
    invalid = len(pulled.get("invalid") or [])
    return (f"pull: round {pulled.get('round', NA)}: {_int(pulled.get('labelled'))} labelled, "
            f"{_int(pulled.get('rejected'))} rejected, {_int(pulled.get('pending'))} pending"
            + (f", {invalid} invalid" if invalid else "")
            + f"; {corrections_text(pulled.get('corrections') or {})}")


def label_issues_line(found: Mapping[str, Any], round_number: int) -> str:
    """``label issues: round 2: 5 suspected (missing_box 2, class_swap 3) in 12 images checked,
    0 skipped; contact sheet <path>``."""
    kinds = ", ".join(f"{k} {v}" for k, v in (found.get("by_kind") or {}).items() if v) or "none"
    sheet = f"; contact sheet {found['contact_sheet']}" if found.get("contact_sheet") else ""
    return (f"label issues: round {round_number}: {_int(found.get('total'))} suspected ({kinds}) in "
            f"{_int(found.get('images_checked'))} images checked, "
            f"{_int(found.get('images_skipped'))} skipped{sheet}")


def retrain_line(retrained: Mapping[str, Any]) -> str:
    """``retrain: 40 labelled images + 12 pseudo, 9 epochs in 30.1 s from <base>``."""
    pseudo = (f"{_int(retrained.get('pseudo_images'))} pseudo ({_int(retrained.get('pseudo_boxes'))} boxes)"
              if retrained.get("pseudo_labels") else "no pseudo (pseudo-labels off)")
    reason = retrained.get("pseudo_reason")
    return (f"retrain: {_int(retrained.get('labelled_images'))} labelled images "
            f"({_int(retrained.get('labelled_boxes'))} boxes) + {pseudo}, "
            f"{_int(retrained.get('epochs'))} epochs in {_num(retrained.get('seconds'), '.1f')} s "
            f"from {retrained.get('base_model', NA)}" + (f"; {reason}" if reason else ""))


def evaluate_line(evaluation: Mapping[str, Any]) -> str:
    """``evaluate: mAP50 0.410, mAP50-95 0.200, P 0.500, R 0.400 on 10 held-out images (12
    boxes)`` (a classifier: ``top1 0.900, top5 1.000, P …, R … on 10 held-out images``)."""
    pairs = _headline(evaluation)
    ordered = [p for p in pairs if p[0] not in _SHORT] + [p for p in pairs if p[0] in _SHORT]
    figures = ", ".join(f"{_SHORT.get(name, name)} {_num(value)}" for name, value in ordered)
    boxes = f" ({_int(evaluation.get('n_boxes'))} boxes)" if "n_boxes" in evaluation else ""
    return f"evaluate: {figures} on {_int(evaluation.get('n_images'))} held-out images{boxes}"


def track_line(tracked: Mapping[str, Any], round_number: int) -> str:
    """``track: round 2 in MLflow run <id>, registered as version 3``."""
    return (f"track: round {round_number} in MLflow run {tracked.get('run_id', NA)}, registered "
            f"as version {tracked.get('registered_version', NA)}")


def champion_text(promoted: Mapping[str, Any], before: Mapping[str, Any] | None) -> str:
    """Whether the champion moved, and why (the promotion rule's reason)."""
    version = promoted.get("version", NA)
    reason = promoted.get("reason") or "no reason given"
    if promoted.get("moved"):
        return f"champion moved to v{version} ({reason})"
    if promoted.get("promote") and reason == "already champion":
        return f"champion already v{version}"
    held = f"v{before['version']}" if before and before.get("version") else "the champion"
    return f"champion stays {held}: v{version} not promoted ({reason})"


def promote_line(promoted: Mapping[str, Any], before: Mapping[str, Any] | None = None) -> str:
    """``promote: champion moved to v3 (mAP50-95 0.4100 >= champion ...)``."""
    return f"promote: {champion_text(promoted, before)}"


# Markdown -------------------------------------------------------------------------------------

def _cell(value: Any) -> str:
    """One markdown table cell: pipes escaped, on one line."""
    return str(value).replace("|", "\\|").replace("\n", " ").strip() or " "


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], right: Sequence[int] = ()) -> list[str]:
    """A markdown table; columns listed in ``right`` are right-aligned (numbers)."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def queue_markdown(
    batch: Mapping[str, Any],
    files: Mapping[str, str] | None = None,
    queued: Mapping[str, Any] | None = None,
    top: int = TOP_ITEMS,
) -> str:
    """The propose run's page: strategy, parameters, ties, the top items and where things are.

    Args:
        batch: ``ScoreBatch.as_json()`` of a recorded batch (``params.round`` set).
        files: ``write_batch_artifacts``' reply (``queue`` JSON, ``contact_sheet`` PNG paths).
        queued: ``queue_batch``'s reply (Label Studio project, tasks created, the tab's url).
        top: queue items listed (the JSON holds every one).
    """
    params = batch_params(batch)
    scoring = params.get("scoring") or {}
    queue = queue_items(batch)
    project = batch.get("project_id", NA)
    number = params.get("round", NA)
    lines = [f"# Round {number} queue of {project}", "",
             f"**{len(queue)}** images queued of **{params.get('candidates', NA)}** candidates by "
             f"strategy **{batch.get('strategy', NA)}** (predictions of model "
             f"`{batch.get('model_version') or 'none'}`).", ""]
    rows = [
        ("strategy", batch.get("strategy", NA)),
        ("limit", params.get("limit", NA)),
        ("diversity weight (applied)", _applied(params, "diversity_weight")),
        ("seed", params.get("seed", NA)),
        ("scoring floor (confidence)", scoring.get("confidence_floor", NA)),
        ("aggregation", scoring.get("aggregation", NA)),
        ("class balance (applied)", _applied(params, "class_balance")),
        ("candidates", params.get("candidates", NA)),
        ("held back by open rounds", params.get("held_back", 0)),
        ("unlabelled without prediction", params.get("unlabelled_without_prediction", 0)),
    ]
    lines += _table(("parameter", "value"), rows) + [""]
    tied = candidate_ties(batch)
    lines.append(
        f"**Ties:** {queue_ties(batch)} of {len(queue)} queued images share their uncertainty "
        "score with another queued image; "
        + (f"{tied} of {params.get('candidates', NA)} candidates share theirs with another candidate."
           if tied is not None else "over all candidates: not reported by score-batch."))
    lines.append("")
    shown = queue[: max(top, 0)]
    title = (f"## Queue, most uncertain first ({len(shown)} of {len(queue)}; the rest in the "
             "queue JSON)" if len(shown) < len(queue) else "## Queue, most uncertain first")
    lines += [title, ""]
    if shown:
        lines += _table(("#", "image id", "uncertainty score", "why picked"),
                        ((i, f"`{item.get('image_id', NA)}`",
                          _num(item.get("uncertainty_score"), ".6f"), item.get("reason_text", ""))
                         for i, item in enumerate(shown, 1)), right=(0, 2)) + [""]
    else:
        lines += ["The queue is empty.", ""]
    lines += ["## Where", ""]
    files = files or {}
    lines.append(f"- queue JSON: `{files.get('queue', NA)}`")
    lines.append(f"- contact sheet: `{files['contact_sheet']}`" if files.get("contact_sheet")
                 else "- contact sheet: none (empty queue)")
    if queued:
        tab = f" — [open the tab]({queued['url']})" if queued.get("url") else ""
        lines.append(f"- Label Studio: project {queued.get('ls_project_id', NA)}, "
                     f"{_int(queued.get('created'))} tasks created, {_int(queued.get('reused'))} "
                     f"reused, {_int(queued.get('refreshed'))} refreshed{tab}")
    return "\n".join(lines) + "\n"


def mlflow_run_url(ui_url: str | None, run_id: str | None) -> str | None:
    """The MLflow UI page of a run (``<ui>/#/runs/<id>`` redirects to it), when the UI is
    served over http(s); None otherwise (a sqlite or file store has no page of its own)."""
    if not ui_url or not run_id or not ui_url.startswith(("http://", "https://")):
        return None
    return f"{ui_url.rstrip('/')}/#/runs/{run_id}"


def _change(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return NA
    return f"{after - before:+.3f}"


def learn_markdown(
    round_number: int,
    project: str,
    evaluation: Mapping[str, Any],
    retrained: Mapping[str, Any],
    promoted: Mapping[str, Any],
    tracked: Mapping[str, Any],
    pulled: Mapping[str, Any] | None = None,
    before: Mapping[str, Any] | None = None,
    mlflow_url: str | None = None,
) -> str:
    """The learn run's page: metrics before -> after, the champion, labels, corrections, MLflow.

    Args:
        evaluation: the new model's held-out evaluation record
            (:func:`labelwise.evaluation.evaluation_record`: its ``headline`` metrics).
        retrained: :meth:`RetrainResult.as_dict`.
        promoted: ``promote``'s reply (``version``, ``moved``, ``promote``, ``reason``).
        tracked: ``track_round``'s reply (``run_id``, ``registered_version``).
        pulled: ``pull_annotations``' reply (counts and ``corrections``).
        before: :func:`champion_before` taken before this round promoted; None = first round.
        mlflow_url: the MLflow UI's base url, when there is one (see :func:`mlflow_run_url`).
    """
    version = tracked.get("registered_version", promoted.get("version", NA))
    lines = [f"# Round {round_number} learned: {project}", ""]
    if before:
        head = f"before (champion v{before.get('version', NA)}, round {before.get('round', NA)})"
    else:
        head = "before (first round)"
    metrics = (before or {}).get("metrics") or {}
    rows = []
    for label, after in _headline(evaluation):
        prior = metrics.get(label)
        rows.append((label, _num(prior) if before else "–", _num(after),
                     _change(None if prior is None else float(prior),
                             None if after is None else float(after))))
    lines += _table(("held-out metric", head, f"after (v{version})", "change"), rows, right=(1, 2, 3))
    lines += ["", f"**Promotion:** {champion_text(promoted, before)}.", ""]
    pseudo = (f"{_int(retrained.get('pseudo_images'))} pseudo-labelled images "
              f"({_int(retrained.get('pseudo_boxes'))} boxes)"
              if retrained.get("pseudo_labels") else "no pseudo-labels (training.pseudo_labels off)")
    reason = retrained.get("pseudo_reason")
    lines.append(f"**Labels used:** {_int(retrained.get('labelled_images'))} labelled images "
                 f"({_int(retrained.get('labelled_boxes'))} boxes) + {pseudo}"
                 + (f" — {reason}" if reason else "") + f"; {_int(retrained.get('epochs'))} epochs "
                 f"in {_num(retrained.get('seconds'), '.1f')} s from `{retrained.get('base_model', NA)}`.")
    lines.append("")
    if pulled is not None:
        lines.append(f"**Reviewer corrections:** {corrections_text(pulled.get('corrections') or {})}; "
                     f"pulled {_int(pulled.get('labelled'))} labelled, {_int(pulled.get('rejected'))} "
                     f"rejected (skipped), {_int(pulled.get('pending'))} still pending.")
        lines.append("")
    run_id = tracked.get("run_id")
    url = mlflow_run_url(mlflow_url, run_id)
    lines.append(f"**MLflow:** run `{run_id or NA}`" + (f" — [open]({url})" if url else "")
                 + f", registered model version {version}.")
    return "\n".join(lines) + "\n"


# The one reader ---------------------------------------------------------------------------------

def champion_before(settings: Settings, project: str) -> dict[str, Any] | None:
    """The current champion's version, MLflow run, round and held-out metrics (``precision``,
    ``recall``, ``mAP50``, ``mAP50-95``), read before a learn round promotes; None when the
    project has no champion yet (its first round)."""
    from labelwise.learn import tracker_for

    tracker = tracker_for(settings, project)
    info = tracker.champion()
    if info is None:
        return None
    run = next((r for r in tracker.round_metrics() if r["run_id"] == info.run_id), None)
    metrics = {key: float(run["metrics"][key]) for key in tracker.scheme.headline
               if run is not None and key in run["metrics"]}
    return {"version": info.version, "run_id": info.run_id,
            "round": run["round"] if run is not None else None, "metrics": metrics}
