"""learn_round: pull annotations -> retrain -> evaluate -> track -> promote (once per batch)."""

from __future__ import annotations

from prefect import flow

from flows.naming import run_name
from flows.params import LearnParams
from tasks.learn import evaluate, plateau, promote, retrain, track_round
from tasks.model import resolve_model
from tasks.review import pull_annotations
from tasks.rounds import move_round, round_info

OPEN = ["queued", "reviewed"]


@flow(name="learn-round", flow_run_name=run_name("learn"))
def learn_round(params: LearnParams) -> dict:
    cfg, project = params.config, params.project
    info = round_info(cfg, project, params.round_number)
    number = info["number"]
    if not move_round(cfg, project, number, OPEN, "learning"):
        return {"round": number, "skipped": f"round is {info['status']}, not one of {OPEN}"}
    try:
        pulled = pull_annotations(cfg, project, number)
        base = resolve_model(cfg, project)
        retrained = retrain(cfg, project, number, base["ref"])
        evaluation = evaluate(cfg, project, retrained["weights"])
        figures = {k: v for k, v in info["params"].items() if k.startswith("seconds/")}
        tracked = track_round(
            cfg, project, number, params.campaign,
            {"strategy": info["strategy"], **{k: v for k, v in info["params"].items() if not k.startswith(("seconds/", "artifacts"))}},
            retrained, evaluation, {**figures, **pulled.get("corrections", {})},
            info["params"].get("artifacts", {}),
        )
        promoted = promote(cfg, project, tracked["registered_version"], evaluation["map50_95"])
    except BaseException:
        move_round(cfg, project, number, ["learning"], "reviewed")
        raise
    move_round(cfg, project, number, ["learning"], "learned")
    return {"round": number, "labelled_images": retrained["labelled_images"],
            "labelled_boxes": retrained["labelled_boxes"], "pseudo_images": retrained.get("pseudo_images", 0),
            "pseudo_boxes": retrained.get("pseudo_boxes", 0), "precision": evaluation["precision"],
            "recall": evaluation["recall"], "mAP50": evaluation["map50"], "mAP50-95": evaluation["map50_95"],
            "champion_moved": promoted["moved"], "registered_version": tracked["registered_version"],
            "run_id": tracked["run_id"], "plateau": plateau(cfg, project), "pulled": pulled}
