"""The catalog's operations for the serving API (one repository): API keys, flagged images, and
the assignment use case that records and queues a round through the catalog."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labelwise.catalog import ApiKeyRecord, Catalog, CatalogError, FlaggedImage, ProjectNotFound
from labelwise.config import Settings
from labelwise.domain import Detections, ImageScore, ImageStatus
from labelwise.labelstudio.errors import LabelStudioRequestError, LabelStudioUnavailable
from labelwise.review import NotAssignable, UnknownImages, queue_assignments
from labelwise.rounds import ABANDONED, PROPOSED
from labelwise.serving.auth import create_api_key, parse_key, revoke_api_key, verify_api_key
from tests.conftest import BACKENDS, backend_catalog, write_png
from labelwise.rounds.params import RoundParams, RoundSource

SCORED = RoundParams(RoundSource.SCORE_BATCH)  # a score-batch round's params, no selection record

SALT, DIGEST = bytes(range(16)), "ab" * 32


@pytest.fixture(params=BACKENDS)
def catalog(request, tmp_path):
    """Each test of this suite on SQLite and on a real PostgreSQL server."""
    yield from backend_catalog(request, tmp_path)


@pytest.fixture
def projects(catalog: Catalog) -> Catalog:
    for name in ("alpha", "beta"):
        catalog.create_project(name, ["a", "b"])
    return catalog


# -- API keys ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("projects_arg", "all_projects", "label", "stored_projects"),
    [
        (["alpha"], False, None, ("alpha",)),
        (["beta", "alpha", "beta"], False, "ci", ("beta", "alpha")),  # duplicates dropped, order kept
        ([], True, "admin", ()),
    ],
    ids=["one-project", "two-projects", "all-projects"],
)
def test_a_key_is_stored_and_looked_up(projects, projects_arg, all_projects, label,
                                       stored_projects):
    before = datetime.now(UTC)
    added = projects.add_api_key("0123456789ab", SALT, DIGEST, projects_arg, all_projects, label)
    found = projects.api_key("0123456789ab")
    assert found == added
    assert isinstance(found, ApiKeyRecord)
    assert (found.key_id, found.salt, found.digest) == ("0123456789ab", SALT, DIGEST)
    assert (found.projects, found.all_projects, found.label) == (stored_projects, all_projects,
                                                                 label)
    assert found.created_at.tzinfo is not None and found.created_at >= before
    assert found.revoked_at is None and not found.revoked
    assert projects.api_key("ffffffffffff") is None


@pytest.mark.parametrize(
    ("key_id", "salt", "digest", "projects_arg", "all_projects", "error", "match"),
    [
        ("", SALT, DIGEST, ["alpha"], False, CatalogError, "needs a key_id, a salt and a digest"),
        ("0123456789ab", b"", DIGEST, ["alpha"], False, CatalogError, "0 salt bytes"),
        ("0123456789ab", SALT, "", ["alpha"], False, CatalogError, "a digest of 0 characters"),
        ("0123456789ab", SALT, DIGEST, [], False, CatalogError,
         "at least one project or all_projects=True; got neither"),
        ("0123456789ab", SALT, DIGEST, ["alpha", "nope"], False, ProjectNotFound,
         r"unknown project 'nope'; known projects: \['alpha', 'beta'\]"),
    ],
    ids=["no-key-id", "no-salt", "no-digest", "no-scope", "unknown-project"],
)
def test_a_refused_key_stores_nothing(projects, key_id, salt, digest, projects_arg, all_projects,
                                      error, match):
    with pytest.raises(error, match=match):
        projects.add_api_key(key_id, salt, digest, projects_arg, all_projects)
    assert projects.api_key(key_id) is None


def test_a_key_id_is_stored_once(projects):
    first = projects.add_api_key("0123456789ab", SALT, DIGEST, ["alpha"])
    with pytest.raises(CatalogError, match="key_id '0123456789ab' is already stored; expected a "
                                           "new key_id"):
        projects.add_api_key("0123456789ab", bytes(16), "cd" * 32, ["beta"])
    assert projects.api_key("0123456789ab") == first


@pytest.mark.parametrize(
    ("revoke", "expected"),
    [
        (["0123456789ab"], [True]),
        (["0123456789ab", "0123456789ab"], [True, False]),  # a second revocation changes nothing
        (["ffffffffffff"], [False]),  # unknown id
    ],
    ids=["once", "twice", "unknown"],
)
def test_revoke(projects, revoke, expected):
    projects.add_api_key("0123456789ab", SALT, DIGEST, ["alpha"])
    before = datetime.now(UTC)
    assert [projects.revoke_api_key(key_id) for key_id in revoke] == expected
    found = projects.api_key("0123456789ab")
    assert found is not None and found.revoked is any(expected)
    if any(expected):
        assert found.revoked_at is not None and found.revoked_at >= before


def test_a_revoked_key_is_not_usable(projects):
    key, record = create_api_key(projects, ["alpha"])  # serving's rules over the catalog
    other, _ = create_api_key(projects, ["beta"])
    stored = projects.api_key(record.key_id)
    assert stored is not None and parse_key(key) is not None and parse_key(key)[0] == stored.key_id
    assert stored.digest not in key  # only the salted digest is stored
    assert verify_api_key(projects, key) == record
    assert revoke_api_key(projects, record.key_id) is True
    assert verify_api_key(projects, key) is None
    assert verify_api_key(projects, other) is not None  # other keys are untouched


# -- flagged images ---------------------------------------------------------------------------
FLAGS = [  # image id, model version, group, score, scores, stored
    ("aaaaaaaaaaaaaaaa", "v1", "g1", 0.1, {"entropy": 0.1}, True),
    ("bbbbbbbbbbbbbbbb", "v1", "g2", 0.2, {}, True),
    ("aaaaaaaaaaaaaaaa", "v2", "g3", 0.9, {"entropy": 0.9}, False),  # flagged before: kept as is
]


def test_flags_are_added_once_and_listed(projects):
    alpha, beta = projects.project("alpha"), projects.project("beta")
    got = [projects.add_flag(alpha, i, v, g, s, sc) for i, v, g, s, sc, _ in FLAGS]
    assert got == [stored for *_, stored in FLAGS]
    assert projects.flagged_image_ids(alpha) == ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"]
    assert projects.flagged_image_ids(beta) == []
    assert projects.has_flag(alpha, "aaaaaaaaaaaaaaaa") is True
    assert projects.has_flag(alpha, "cccccccccccccccc") is False
    assert projects.has_flag(beta, "aaaaaaaaaaaaaaaa") is False
    # The same image flagged in another project is another flag.
    assert projects.add_flag(beta, "aaaaaaaaaaaaaaaa", "v1", "g1", 0.3, {}) is True
    assert projects.flagged_image_ids(beta) == ["aaaaaaaaaaaaaaaa"]
    due = projects.flag_outbox().due(datetime.now(UTC) + timedelta(seconds=1))
    first = next(d for d in due if d.project == "alpha" and d.image_id == "aaaaaaaaaaaaaaaa")
    assert isinstance(first, FlaggedImage)
    assert (first.model_version, first.group, first.routing_score, first.scores,
            first.attempts) == ("v1", "g1", 0.1, {"entropy": 0.1}, 0)
    assert projects.flag_outbox().counts(alpha)["pending"] == 2


@pytest.mark.parametrize(
    ("image_id", "group", "match"),
    [("", "g", "image_id=''"), ("aaaaaaaaaaaaaaaa", "", "group=''")],
    ids=["no-image", "no-group"],
)
def test_a_refused_flag_stores_nothing(projects, image_id, group, match):
    alpha = projects.project("alpha")
    with pytest.raises(CatalogError, match=f"a flag needs an image_id and an upload group; .*{match}"):
        projects.add_flag(alpha, image_id, "v1", group, 0.1, {})
    assert projects.flagged_image_ids(alpha) == []


def test_flags_since(projects):
    alpha, beta = projects.project("alpha"), projects.project("beta")
    start = datetime.now(UTC) - timedelta(milliseconds=1)
    projects.add_flag(alpha, "aaaaaaaaaaaaaaaa", "v1", "g", 0.1, {})
    time.sleep(0.02)
    middle = datetime.now(UTC)
    time.sleep(0.02)
    projects.add_flag(alpha, "bbbbbbbbbbbbbbbb", "v1", "g", 0.1, {})
    projects.add_flag(beta, "cccccccccccccccc", "v1", "g", 0.1, {})
    cases = [(start, 2), (middle, 1), (datetime.now(UTC) + timedelta(seconds=5), 0)]
    for since, count in cases:
        found = projects.flags_since(alpha, since)
        assert len(found) == count, since
        assert all(t.tzinfo is not None and t >= since for t in found)
        assert found == sorted(found)
    with pytest.raises(CatalogError, match="since must be timezone-aware"):
        projects.flags_since(alpha, datetime.now())


# -- the assignment use case ------------------------------------------------------------------
def _pool(tmp_path: Path, n: int = 3) -> tuple[Settings, Catalog, Any, list[str]]:
    settings = Settings(state_dir=tmp_path / "state")
    catalog = Catalog.open(settings.resolved_catalog_url)
    project = catalog.create_project("p", ["a", "b"])
    ids = catalog.add_images(project, [write_png(tmp_path / f"{i}.png", seed=i)
                                       for i in range(n)]).added
    rng = np.random.default_rng(0)
    items = []
    for image_id in ids:
        probs = rng.dirichlet(np.ones(2), size=2).astype(np.float32)
        items.append((image_id, Detections(np.tile([1, 1, 30, 30], (2, 1)),
                                           rng.uniform(0.2, 0.9, 2), probs.argmax(1), probs)))
    catalog.save_predictions(project, "v1", items[:-1])  # the last image has no prediction
    return settings, catalog, project, ids


def test_assignments_record_a_round_and_queue_it(tmp_path):
    settings, catalog, project, ids = _pool(tmp_path)
    sent: list[tuple[dict[str, Any], str | None]] = []

    def fake_queue(settings_, catalog_, name, typed, group):
        batch = typed.as_json()  # the typed ScoreBatch, checked as the JSON Label Studio gets
        sent.append((batch, group))
        return {"round": typed.round_number, "created": len(typed.queue)}

    done = queue_assignments(settings, catalog, project, [ids[1], ids[0], ids[1]], "manual",
                             thumbnail_size=32, queue=fake_queue)
    ((batch, group),) = sent
    assert group == "manual" and batch["strategy"] == "manual" and batch["model_version"] == "v1"
    assert sorted(done.image_ids) == sorted(ids[:2])  # duplicates dropped
    scores = [item["uncertainty_score"] for item in batch["queue"]]
    assert scores == sorted(scores) and list(done.image_ids) == [i["image_id"] for i in batch["queue"]]
    assert (done.project, done.group, done.model_version) == ("p", "manual", "v1")
    assert done.queued == {"round": done.round_number, "created": 2}
    info = catalog.round_info(project, done.round_number)
    assert info["status"] == PROPOSED and sorted(info["selected"]) == sorted(ids[:2])
    catalog.close()


@pytest.mark.parametrize(
    ("case", "error", "match"),
    [
        ("unknown", UnknownImages, r"has no image\(s\) \['ffffffffffffffff'\]"),
        ("no-prediction", NotAssignable, "no stored prediction of model 'v1' .* run auto-label"),
        ("not-unlabelled", NotAssignable, r"expected unlabelled images; got \['.{16} \(queued\)'\]"),
        ("held", NotAssignable, "cannot join a new round"),
    ],
)
def test_assignments_refused_record_nothing(tmp_path, case, error, match):
    settings, catalog, project, ids = _pool(tmp_path)
    chosen = {"unknown": [ids[0], "ffffffffffffffff"], "no-prediction": [ids[0], ids[2]],
              "not-unlabelled": [ids[0]], "held": [ids[1]]}[case]
    if case == "not-unlabelled":
        catalog.mark_queued(project, {ids[0]: 5}, 7, "g")
    if case == "held":
        held = [ImageScore(ids[1], 0.5, {"lowest_confidence": 0.5}, 1, 0)]
        catalog.create_round(project, "random", None, SCORED, held, [ids[1]])
    rounds_before = catalog.rounds(project)

    def never(*_: Any) -> dict[str, Any]:
        raise AssertionError("nothing may be queued")

    with pytest.raises(error, match=match):
        queue_assignments(settings, catalog, project, chosen, None, thumbnail_size=32,
                          queue=never)
    assert catalog.rounds(project) == rounds_before
    catalog.close()


@pytest.mark.parametrize(
    ("failure", "raised"),
    [
        (LabelStudioUnavailable("connection refused"), LabelStudioUnavailable),
        (LabelStudioRequestError("bad task", 400), LabelStudioRequestError),
        (ValueError("batch refused"), NotAssignable),
    ],
    ids=["unavailable", "rejected", "refused"],
)
def test_a_failed_queue_abandons_its_round(tmp_path, failure, raised):
    settings, catalog, project, ids = _pool(tmp_path)

    def failing(*_: Any) -> dict[str, Any]:
        raise failure

    with pytest.raises(raised):
        queue_assignments(settings, catalog, project, ids[:2], None, thumbnail_size=32,
                          queue=failing)
    (recorded,) = catalog.rounds(project)
    assert recorded["status"] == ABANDONED
    assert all(catalog.image(project, i).status is ImageStatus.UNLABELLED for i in ids)
    catalog.close()
