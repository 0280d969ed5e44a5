"""The round's life cycle: every move the catalog allows, and every other refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelwise.config import Settings
from labelwise.rounds import TRANSITIONS, IllegalTransition, RoundStatus, check_transition
from labelwise.runtime import open_catalog
from tests.conftest import write_png

ALL = list(RoundStatus)
PAIRS = [(a, b) for a in ALL for b in ALL]


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=[f"{a.value}->{b.value}" for a, b in PAIRS])
def test_the_catalog_makes_exactly_the_allowed_moves(tmp_path: Path, src: RoundStatus,
                                                     dst: RoundStatus) -> None:
    catalog = open_catalog(Settings(state_dir=tmp_path / "state"))
    project = catalog.create_project("p", ["a"])
    ids = catalog.add_images(project, [write_png(tmp_path / "i.png", seed=1)]).added
    catalog.record_round(project, 0, "random", None, {}, [], ids)
    path = {RoundStatus.PROPOSED: [], RoundStatus.QUEUED: [RoundStatus.QUEUED],
            RoundStatus.REVIEWED: [RoundStatus.QUEUED, RoundStatus.REVIEWED],
            RoundStatus.LEARNING: [RoundStatus.QUEUED, RoundStatus.LEARNING],
            RoundStatus.LEARNED: [RoundStatus.QUEUED, RoundStatus.LEARNING, RoundStatus.LEARNED],
            RoundStatus.ABANDONED: [RoundStatus.ABANDONED]}[src]
    current = RoundStatus.PROPOSED
    for step in path:
        assert catalog.transition_round(project, 0, current, step)
        current = step
    if dst in TRANSITIONS[src]:
        assert catalog.transition_round(project, 0, src, dst)
        assert not catalog.transition_round(project, 0, src, dst)  # compare-and-set: once
        assert catalog.round_info(project, 0)["status"] == dst
    else:
        with pytest.raises(IllegalTransition, match=f"cannot move from '{src.value}' to '{dst.value}'"):
            catalog.transition_round(project, 0, src, dst)
        assert catalog.round_info(project, 0)["status"] == src  # nothing written
    catalog.close()


@pytest.mark.parametrize(("src", "dst", "match"), [
    (["queued", "bogus"], "learning", "unknown round status 'bogus'"),
    (["learned"], "queued", r"may move to: none \(it is final\)"),
    (["reviewed"], "queued", r"may move to: \['learning'\]"),
])
def test_a_refused_move_names_it_and_what_is_allowed(src, dst, match) -> None:
    with pytest.raises(IllegalTransition, match=match):
        check_transition(src, dst)


def test_every_status_is_reachable_from_proposed_and_final_ones_have_no_way_out() -> None:
    seen, todo = {RoundStatus.PROPOSED}, [RoundStatus.PROPOSED]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(RoundStatus)
    assert {s for s in RoundStatus if not TRANSITIONS[s]} == {RoundStatus.LEARNED, RoundStatus.ABANDONED}
