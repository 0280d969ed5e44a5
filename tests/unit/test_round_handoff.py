"""The closed loop hands a round to the learn run the webhook started (wait_for_learned)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from labelwise.catalog import CatalogError
from labelwise.config import Settings
from labelwise.rounds import LEARNED, LEARNING, LEARNED_SUMMARY, QUEUED, REVIEWED, wait_for_learned
from labelwise.runtime import open_catalog
from tests.conftest import write_png


@pytest.fixture
def round_at(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A project with round 0, moved through the given statuses; (settings, catalog, project)."""
    settings = Settings(state_dir=tmp_path / "state")
    catalog = open_catalog(settings)
    project = catalog.create_project("p", ["a"])
    ids = catalog.add_images(project, [write_png(tmp_path / "i.png", seed=1)]).added
    catalog.record_round(project, 0, "random", None, {}, [], ids)

    def move(*statuses: str):  # type: ignore[no-untyped-def]
        current = catalog.round_info(project, 0)["status"]
        for status in statuses:
            assert catalog.transition_round(project, 0, [current], status)
            current = status
        return settings, catalog, project

    yield move
    catalog.close()


def test_a_learned_round_gives_the_summary_its_run_recorded(round_at) -> None:
    settings, catalog, project = round_at(QUEUED, REVIEWED, LEARNING)
    catalog.update_round_params(project, 0, {LEARNED_SUMMARY: {"round": 0, "mAP50": 0.5,
                                                               "learnt_by": "learn-p-round-0"}})
    catalog.transition_round(project, 0, [LEARNING], LEARNED)
    assert wait_for_learned(settings, "p", 0, 5, 0.01, 5) == {
        "round": 0, "mAP50": 0.5, "learnt_by": "learn-p-round-0"}


def test_a_round_no_run_takes_is_left_to_the_caller(round_at) -> None:
    settings, _, _ = round_at(QUEUED, REVIEWED)
    began = time.monotonic()
    assert wait_for_learned(settings, "p", 0, 30, 0.02, 0.3) is None
    assert 0.3 <= time.monotonic() - began < 5


def test_the_caller_waits_while_another_run_learns(round_at) -> None:
    settings, catalog, project = round_at(QUEUED, REVIEWED, LEARNING)

    def finish() -> None:
        time.sleep(0.4)
        catalog.update_round_params(project, 0, {LEARNED_SUMMARY: {"round": 0, "learnt_by": "x"}})
        catalog.transition_round(project, 0, [LEARNING], LEARNED)

    threading.Thread(target=finish).start()
    assert wait_for_learned(settings, "p", 0, 30, 0.02, 0.0) == {"round": 0, "learnt_by": "x"}


@pytest.mark.parametrize(("statuses", "error", "match"), [
    ((QUEUED, REVIEWED, LEARNING), TimeoutError, "still 'learning' after 0.2 s"),
    ((QUEUED,), CatalogError, "is 'queued'; expected 'reviewed' or 'learning'"),
])
def test_what_cannot_be_waited_for_says_why(round_at, statuses, error, match) -> None:
    settings, _, _ = round_at(*statuses)
    with pytest.raises(error, match=match):
        wait_for_learned(settings, "p", 0, 0.2, 0.02, 0.0)
