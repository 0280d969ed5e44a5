"""Typed round params (labelwise.rounds.params): round trips, rounds stored by earlier versions,
notes limited to RoundNote keys, and the one opening place for every source."""

from __future__ import annotations

from typing import Any

import pytest

from labelwise.catalog import Catalog, CatalogError
from labelwise.rounds.opening import assignment_round, open_selection_round, serving_round
from labelwise.rounds.params import (
    RoundNote,
    RoundOwner,
    RoundParams,
    RoundSource,
    RoutingRecord,
    SelectionRecord,
    check_notes,
)

SELECTION = SelectionRecord(limit=4, diversity_weight=0.3, class_balance=True, seed=7, candidate_factor=5.0,
                            embedder="detector", candidates=20, tied_candidates=2,
                            unlabelled_without_prediction=1, held_back=3, scoring={"floor": 0.25},
                            requested_diversity_weight=0.5, closed_stale_rounds=(1,))


@pytest.mark.parametrize("params", [
    RoundParams(RoundSource.SCORE_BATCH),
    RoundParams(RoundSource.SCORE_BATCH, selection=SELECTION, number=3, owner=RoundOwner("h", 12),
                notes={"learned": {"round": 3}, "base_model": "m.pt"}),
    RoundParams(RoundSource.SERVING, upload_group="flagged", routing=RoutingRecord("entropy", 0.4), number=5),
    RoundParams(RoundSource.ASSIGNMENT, upload_group=None),
    RoundParams(RoundSource.ASSIGNMENT, upload_group="manual", notes={"corrections": {"images": 2}}),
], ids=["bare", "score-batch", "serving", "assignment-no-group", "assignment"])
def test_params_survive_their_stored_json(params: RoundParams) -> None:
    assert RoundParams.from_json(params.as_json()) == params


@pytest.mark.parametrize("stored, source, group, selection_limit, routing", [
    ({"limit": 6, "diversity_weight": 0.3, "round": 0}, RoundSource.SCORE_BATCH, None, 6, None),  # no source key
    ({}, RoundSource.SCORE_BATCH, None, None, None),
    ({"source": "serving", "upload_group": "g", "evaluation_strategy": "entropy",
      "evaluation_threshold": 0.2}, RoundSource.SERVING, "g", None, RoutingRecord("entropy", 0.2)),
    ({"source": "api", "upload_group": "manual"}, RoundSource.ASSIGNMENT, "manual", None, None),
], ids=["score-batch-before-sources", "empty", "serving-evaluation-names", "assignment"])
def test_rounds_stored_by_earlier_versions_read_typed(stored: dict[str, Any], source: RoundSource,
                                                      group: str | None, selection_limit: int | None,
                                                      routing: RoutingRecord | None) -> None:
    params = RoundParams.from_json(stored)
    assert params.source is source and params.upload_group == group and params.routing == routing
    assert (params.selection.limit if params.selection else None) == selection_limit


def test_selection_keeps_requested_values_only_where_the_strategy_set_its_own() -> None:
    same = SelectionRecord.of_request(limit=2, seed=None, candidate_factor=5.0, requested_weight=0.3,
                                      requested_balance=False, applied_weight=0.3, applied_balance=False,
                                      embedder=None, candidates=4, tied_candidates=0,
                                      unlabelled_without_prediction=0, held_back=0)
    own = SelectionRecord.of_request(limit=2, seed=None, candidate_factor=5.0, requested_weight=0.3,
                                     requested_balance=False, applied_weight=1.0, applied_balance=True,
                                     embedder=None, candidates=4, tied_candidates=0,
                                     unlabelled_without_prediction=0, held_back=0)
    assert "requested_diversity_weight" not in same.as_json() and "requested_class_balance" not in same.as_json()
    assert own.as_json()["requested_diversity_weight"] == 0.3 and own.as_json()["requested_class_balance"] is False
    assert own.as_json()["diversity_weight"] == 1.0 and own.as_json()["class_balance"] is True
    assert "closed_stale_rounds" not in own.as_json(settled=False)


@pytest.mark.parametrize("bad, match", [
    (lambda: RoundParams(RoundSource.SCORE_BATCH, upload_group="g"), "score-batch round has no upload group"),
    (lambda: RoundParams(RoundSource.SERVING, selection=SELECTION), "only a score-batch round has a selection"),
    (lambda: RoundParams(RoundSource.SERVING, notes={"figures": 1}), r"unknown round note\(s\) \['figures'\]"),
    (lambda: RoundSource.parse("cron"), r"one of \['score_batch', 'serving', 'api'\]; got 'cron'"),
    (lambda: check_notes({"learned": {}, "extra": 1}), r"\['extra'\]; expected keys among"),
])
def test_bad_params_say_what_was_expected(bad: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        bad()


def _catalog(tmp_path) -> tuple[Catalog, Any, list[str]]:  # type: ignore[no-untyped-def]
    from PIL import Image

    catalog = Catalog.open(f"sqlite:///{tmp_path / 'c.db'}")
    project = catalog.create_project("p", ["a", "b"])
    paths = []
    for k in range(4):
        path = tmp_path / f"im{k}.png"
        Image.new("RGB", (16, 16), (k * 40, 0, 0)).save(path)
        paths.append(path)
    catalog.add_images(project, paths)
    return catalog, project, [img.image_id for img in catalog.images(project)]


def test_every_source_opens_through_one_place_and_reads_back_typed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from labelwise.domain import ImageScore

    catalog, project, ids = _catalog(tmp_path)
    scores = [ImageScore(i, 0.5, {"entropy": 0.5}, 1, 0) for i in ids]
    picked = open_selection_round(catalog, project, "entropy", "v1", SELECTION, scores, ids[:2])
    served = serving_round(catalog, project, "flagged", "v1", RoutingRecord("entropy", 0.4))
    assert serving_round(catalog, project, "flagged", "v1") == served  # the group's open round
    assigned = assignment_round(catalog, project, "v1", scores[2:], "manual")
    rounds = {r["number"]: RoundParams.from_json(r["params"]) for r in catalog.rounds(project)}
    assert [rounds[n].source for n in (picked, served, assigned)] == [
        RoundSource.SCORE_BATCH, RoundSource.SERVING, RoundSource.ASSIGNMENT]
    assert rounds[picked].selection == SELECTION and rounds[picked].number == picked
    assert rounds[served].routing == RoutingRecord("entropy", 0.4) and rounds[served].upload_group == "flagged"
    assert rounds[assigned].upload_group == "manual" and rounds[assigned].owner == RoundOwner.current()
    assert sorted(catalog.round_info(project, assigned)["selected"]) == sorted(ids[2:])

    catalog.update_round_params(project, picked, {RoundNote.BASE_MODEL.value: "m.pt"})
    assert RoundParams.from_json(catalog.round_info(project, picked)["params"]).notes == {"base_model": "m.pt"}
    with pytest.raises(ValueError, match=r"unknown round note\(s\) \['whatever'\]"):
        catalog.update_round_params(project, picked, {"whatever": 1})
    with pytest.raises(CatalogError):  # images already held by the score-batch round
        assignment_round(catalog, project, "v1", scores[:1], "manual")
    catalog.close()
