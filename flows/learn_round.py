"""learn_round: pull annotations -> retrain -> evaluate -> track -> promote (once per batch).

Logs one line per step and leaves the round's page as the artifact ``learn-<project>``
(:mod:`tasks.artifacts`); a run started without ``round_number`` renames itself
``learn-<project>-round-<n>`` once it has found the round.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.naming import current_run_name, name_after_round, run_name
from flows.params import LearnParams
from labelwise.rounds import LEARNED_SUMMARY
from labelwise.round_story import evaluate_line, model_line, promote_line, retrain_line, track_line
from tasks.artifacts import champion_before, publish_learn
from tasks.learn import evaluate, plateau, promote, retrain, track_round
from tasks.model import resolve_model
from tasks.review import pull_annotations
from tasks.rounds import move_round, record_round_figures, round_info

OPEN = ["queued", "reviewed"]


@flow(name="learn-round", flow_run_name=run_name("learn"))
def learn_round(params: LearnParams) -> dict:
    cfg, project = params.config, params.project
    log = get_run_logger()
    info = round_info(cfg, project, params.round_number)
    number = info["number"]
    if params.round_number is None:
        name_after_round("learn", project, number)
    if not move_round(cfg, project, number, OPEN, "learning"):
        return {"round": number, "skipped": f"round is {info['status']}, not one of {OPEN}"}
    try:
        pulled = pull_annotations(cfg, project, number)
        base = resolve_model(cfg, project)
        log.info(model_line(base))
        before = champion_before(cfg, project)
        retrained = retrain(cfg, project, number, base["ref"])
        log.info(retrain_line(retrained))
        evaluation = evaluate(cfg, project, retrained["weights"])
        log.info(evaluate_line(evaluation))
        figures = {k: v for k, v in info["params"].items() if k.startswith("seconds/")}
        tracked = track_round(
            cfg, project, number, params.campaign,
            {"strategy": info["strategy"], **{k: v for k, v in info["params"].items() if not k.startswith(("seconds/", "artifacts"))}},
            retrained, evaluation, {**figures, **pulled.get("corrections", {})},
            info["params"].get("artifacts", {}),
        )
        log.info(track_line(tracked, number))
        promoted = promote(cfg, project, tracked["registered_version"], evaluation["map50_95"])
        log.info(promote_line(promoted, before))
        summary = {"round": number, "labelled_images": retrained["labelled_images"],
                   "labelled_boxes": retrained["labelled_boxes"], "pseudo_images": retrained.get("pseudo_images", 0),
                   "pseudo_boxes": retrained.get("pseudo_boxes", 0), "precision": evaluation["precision"],
                   "recall": evaluation["recall"], "mAP50": evaluation["map50"], "mAP50-95": evaluation["map50_95"],
                   "champion_moved": promoted["moved"], "registered_version": tracked["registered_version"],
                   "run_id": tracked["run_id"], "plateau": plateau(cfg, project), "pulled": pulled,
                   "learnt_by": current_run_name()}
        # Kept with the round, so a loop that handed the round to this run reads what it learnt.
        record_round_figures(cfg, project, number, {LEARNED_SUMMARY: summary})
    except BaseException:
        move_round(cfg, project, number, ["learning"], "reviewed")
        raise
    move_round(cfg, project, number, ["learning"], "learned")
    publish_learn(cfg, project, number, evaluation, retrained, promoted, tracked, pulled, before)
    return summary
