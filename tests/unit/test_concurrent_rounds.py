"""Two rounds at once and stale proposals (issue 12, items 2 and 7), with the faults injected.

Real processes (``subprocess``, started together through a file flag) and real threads run the
library's recording score-batch against one SQLite catalog file; two processes write the same
thumbnails at once; a process that recorded a round is killed with SIGKILL. Predictions are
stored with ``Catalog.save_predictions``, so no model runs; the strategies are ``random`` and
``lowest_confidence``, so no embeddings are needed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from labelwise.catalog import Catalog, CatalogError, ProjectRecord, RoundConflict
from labelwise.catalog import rounds as catalog_rounds
from labelwise.catalog.proposals import (
    ABANDONED,
    PROPOSED,
    QUEUED,
    STALE_PROPOSAL_AGE,
    RoundOwner,
)
from labelwise.config import Settings
from labelwise.domain import Detections, ImageScore
from labelwise.images import ThumbnailWriteError, make_thumbnail
from labelwise.scorebatch import ScoreBatchRequest, build_score_batch
from labelwise.rounds.opening import assignment_round, serving_round
from tests.conftest import BACKENDS, backend_catalog, write_png
from labelwise.rounds.params import RoundParams, RoundSource

SCORED = RoundParams(RoundSource.SCORE_BATCH)  # a score-batch round's params, no selection record

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["a", "b", "c"]


# -- fixtures and helpers ------------------------------------------------------------------
@pytest.fixture(params=BACKENDS)
def catalog_url(request: pytest.FixtureRequest) -> str | None:
    """None (the state folder's SQLite file) or a fresh database on a real PostgreSQL server."""
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture(params=BACKENDS)
def catalog(request, tmp_path):
    """The catalog tests of this module on SQLite and on a real PostgreSQL server."""
    yield from backend_catalog(request, tmp_path)


def scored_pool(tmp_path: Path, images: int, size: int = 64, catalog_url: str | None = None,
                ) -> tuple[Settings, Catalog, ProjectRecord, list[str]]:
    """Project 'p' with ``images`` PNGs and predictions of model 'v1'; state in tmp_path/state,
    the catalog at ``catalog_url`` (default: SQLite in the state folder)."""
    settings = Settings(state_dir=tmp_path / "state", catalog_url=catalog_url)
    catalog = Catalog.open(settings.resolved_catalog_url)
    project = catalog.create_project("p", CLASSES)
    paths = [write_png(tmp_path / "pool" / f"{i:03d}.png", seed=i, size=size) for i in range(images)]
    ids = catalog.add_images(project, paths).added
    rng = np.random.default_rng(0)
    items = []
    for image_id in ids:
        n = int(rng.integers(1, 4))
        probs = rng.dirichlet(np.ones(len(CLASSES)), size=n).astype(np.float32)
        items.append((image_id, Detections(np.tile([1, 1, 30, 30], (n, 1)), np.full(n, 0.9),
                                           probs.argmax(1), probs)))
    assert catalog.save_predictions(project, "v1", items) == images
    return settings, catalog, project, ids


def request(strategy: str, limit: int) -> ScoreBatchRequest:
    return ScoreBatchRequest(project="p", strategy=strategy, limit=limit, diversity_weight=0.0)


def selected_by_round(catalog: Catalog, project: ProjectRecord) -> dict[int, list[str]]:
    return {r["number"]: catalog.round_info(project, r["number"])["selected"]
            for r in catalog.rounds(project)}


def assert_no_image_in_two_rounds(catalog: Catalog, project: ProjectRecord) -> None:
    """No image is selected in two rounds that are not abandoned (those hold nothing)."""
    seen: dict[str, int] = {}
    live = {r["number"] for r in catalog.rounds(project) if r["status"] != ABANDONED}
    for number, ids in selected_by_round(catalog, project).items():
        if number not in live:
            continue
        for image_id in ids:
            assert image_id not in seen, f"{image_id} is selected in rounds {seen[image_id]} and {number}"
            seen[image_id] = number


# A worker process: waits for the go flag, then runs one library call and prints one JSON line.
WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path

    from labelwise.catalog import Catalog, CatalogError
    from labelwise.config import Settings
    from labelwise.images import make_thumbnail
    from labelwise.scorebatch import ScoreBatchRequest, build_score_batch

    job, state, flags, arg = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:]
    settings = Settings(state_dir=state)
    if job == "score-batch":
        catalog = Catalog.open(settings.resolved_catalog_url)
    (flags / f"ready-{os.getpid()}").touch()
    while not (flags / "go").exists():
        time.sleep(0.001)
    if job == "open":  # first commands on a fresh state folder, at the same instant
        catalog = Catalog.open(settings.resolved_catalog_url)
        project = catalog.create_project("p", ["a", "b", "c"])
        print(json.dumps({"project": project.id}), flush=True)
    elif job == "score-batch":
        strategy, limit, after = arg[0], int(arg[1]), arg[2]
        req = ScoreBatchRequest(project="p", strategy=strategy, limit=limit, diversity_weight=0.0)
        try:
            batch = build_score_batch(catalog, settings, req, record=True)
        except CatalogError as exc:  # the one refusal allowed: printed, not raised
            print(json.dumps({"refused": str(exc), "type": type(exc).__name__}), flush=True)
            sys.exit(0)
        print(json.dumps({"round": batch.params["round"],
                          "images": [q.image_id for q in batch.queue]}), flush=True)
        if after == "hang":  # a queue to Label Studio that never returns: the test kills us
            time.sleep(120)
        elif after == "fail":  # a queue that failed (Label Studio down)
            sys.exit(1)
    elif job == "thumbnails":
        out, size, paths = Path(arg[0]), int(arg[1]), arg[2:]
        for path in paths:
            make_thumbnail(Path(path), out, Path(path).stem, size)
        print(json.dumps({"made": len(paths)}), flush=True)
    """
)


def start_together(tmp_path: Path, argvs: list[list[str]], timeout: float = 120,
                   catalog_url: str | None = None) -> list[subprocess.Popen]:
    """Start one worker per argv, wait until each is ready, then release them all at once; with
    ``catalog_url`` the workers' catalog is there (``LABELWISE_CATALOG_URL``)."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    flags = tmp_path / f"flags-{time.monotonic_ns()}"
    flags.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    env.pop("LABELWISE_CATALOG_URL", None)
    if catalog_url is not None:
        env["LABELWISE_CATALOG_URL"] = catalog_url
    procs = [subprocess.Popen([sys.executable, str(script), argv[0], argv[1], str(flags), *argv[2:]],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                              cwd=tmp_path)
             for argv in argvs]
    deadline = time.monotonic() + timeout
    while len(list(flags.glob("ready-*"))) < len(procs):
        crashed = [p for p in procs if p.poll() is not None]
        if crashed:
            out, err = crashed[0].communicate()
            pytest.fail(f"a worker exited before the start flag (rc {crashed[0].returncode}): {err}")
        if time.monotonic() > deadline:
            for p in procs:
                p.kill()
            pytest.fail(f"workers not ready within {timeout} s")
        time.sleep(0.01)
    (flags / "go").touch()
    return procs


def finish(proc: subprocess.Popen, timeout: float = 120) -> dict[str, Any]:
    """The worker's JSON line; fails the test on a non-zero exit or any traceback."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0 and "Traceback" not in err, f"rc {proc.returncode}: {err}"
    (line,) = [ln for ln in out.splitlines() if ln.strip()]
    return json.loads(line)


# -- two processes, one project -------------------------------------------------------------
@pytest.mark.parametrize(
    ("strategy", "pool", "limit"),
    [("random", 12, 4), ("lowest_confidence", 12, 4), ("random", 4, 4), ("lowest_confidence", 4, 4)],
    ids=["random-room-for-two", "lowest-confidence-room-for-two", "random-room-for-one",
         "lowest-confidence-room-for-one"],
)
def test_two_processes_record_rounds_at_once(tmp_path, strategy, pool, limit, catalog_url):
    settings, catalog, project, ids = scored_pool(tmp_path, pool, catalog_url=catalog_url)
    state = str(settings.state_dir)
    procs = start_together(tmp_path, [["score-batch", state, strategy, str(limit), "exit"]] * 2,
                           catalog_url=catalog_url)
    results = [finish(p) for p in procs]

    made = [r for r in results if "round" in r]
    refused = [r for r in results if "refused" in r]
    assert sorted(r["round"] for r in made) == list(range(len(made)))  # distinct numbers
    picked = [i for r in made for i in r["images"]]
    assert len(picked) == len(set(picked)) and set(picked) <= set(ids)  # no image twice
    if pool >= 2 * limit:  # room for both: one round each, disjoint, both full
        assert len(made) == 2 and not refused
        assert all(len(r["images"]) == limit for r in made)
    else:  # room for one: one full round, one clear one-line refusal naming it
        assert len(made) == 1 and len(refused) == 1
        (ok,), (no,) = made, refused
        assert len(ok["images"]) == limit
        assert no["type"] == "RoundConflict" and "\n" not in no["refused"]
        assert f"selected in open round {ok['round']} (proposed" in no["refused"]
    stored = selected_by_round(catalog, project)
    assert stored == {r["round"]: r["images"] for r in made}
    assert {r["status"] for r in catalog.rounds(project)} == {PROPOSED}
    assert_no_image_in_two_rounds(catalog, project)
    catalog.close()


# -- eight threads --------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["random", "lowest_confidence"])
def test_eight_threads_each_get_their_own_round_and_images(tmp_path, strategy, catalog_url):
    settings, catalog, project, ids = scored_pool(tmp_path, 40, catalog_url=catalog_url)
    start = threading.Barrier(8)
    results: list[Any] = [None] * 8

    def work(k: int) -> None:
        start.wait()
        try:
            batch = build_score_batch(catalog, settings, request(strategy, 5), record=True)
            results[k] = (batch.params["round"], [q.image_id for q in batch.queue])
        except BaseException as exc:  # noqa: BLE001 - reported below, with its type
            results[k] = exc

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    failures = [r for r in results if not isinstance(r, tuple)]
    assert not failures, failures
    assert sorted(n for n, _ in results) == list(range(8))
    picked = [i for _, images in results for i in images]
    assert all(len(images) == 5 for _, images in results)
    assert sorted(picked) == sorted(ids)  # 8 x 5 = the whole pool, each image once
    assert_no_image_in_two_rounds(catalog, project)
    # Every thread made thumbnails of the images it considered, several of the same at once.
    for image_id in ids:
        with Image.open(settings.thumbnails_dir / f"{image_id}_128.jpg") as im:
            assert im.format == "JPEG"
    assert not list(settings.thumbnails_dir.glob(".*.tmp"))
    catalog.close()


@pytest.mark.parametrize("exclusive", [True, False])
def test_eight_threads_hammering_create_round_get_distinct_numbers(catalog, exclusive):
    project = catalog.create_project("p", CLASSES)
    start = threading.Barrier(8)
    numbers: list[int] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def work() -> None:
        start.wait()
        for _ in range(5):
            try:
                n = catalog.create_round(project, "random", None, SCORED, [], [], exclusive=exclusive)
            except BaseException as exc:  # noqa: BLE001 - collected: none is allowed
                with guard:
                    errors.append(exc)
                continue
            with guard:
                numbers.append(n)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert sorted(numbers) == list(range(40))
    assert [r["number"] for r in catalog.rounds(project)] == list(range(40))
    assert all(r["params"]["round"] == r["number"] for r in catalog.rounds(project))


def test_a_lost_unique_constraint_race_is_retried_with_the_next_number(catalog, monkeypatch):
    """A writer that bypasses the lock row (``record_round`` with an explicit number, as it can
    on PostgreSQL) took the number create_round computed: it retries, no IntegrityError."""
    project = catalog.create_project("p", CLASSES)
    catalog.record_round(project, 0, "random", None, {}, [], [])
    real = catalog_rounds._next_number
    calls: list[int] = []

    def first_one_stale(s: Any, project_: ProjectRecord) -> int:
        calls.append(1)
        return 0 if len(calls) == 1 else real(s, project_)  # 0 is taken: a lost race

    monkeypatch.setattr(catalog_rounds, "_next_number", first_one_stale)
    assert catalog.create_round(project, "random", None, SCORED, [], []) == 1
    assert len(calls) == 2
    assert [r["number"] for r in catalog.rounds(project)] == [0, 1]


def test_processes_opening_a_new_catalog_at_once_all_succeed(tmp_path, catalog_url):
    state = tmp_path / "fresh-state"
    procs = start_together(tmp_path, [["open", str(state)]] * 3, catalog_url=catalog_url)
    results = [finish(p) for p in procs]
    assert len({r["project"] for r in results}) == 1  # one project, created once
    catalog = Catalog.open(catalog_url or f"sqlite:///{state / 'catalog.db'}")
    assert [p.name for p in catalog.projects()] == ["p"]
    catalog.close()


# -- thumbnails -----------------------------------------------------------------------------
def test_two_processes_writing_the_same_thumbnails_both_succeed(tmp_path):
    paths = [write_png(tmp_path / "pool" / f"img{i:02d}.png", seed=i, size=384) for i in range(30)]
    out = tmp_path / "thumbs"
    job = ["thumbnails", str(tmp_path / "unused-state"), str(out), "96", *map(str, paths)]
    procs = start_together(tmp_path, [job, job])
    assert [finish(p) for p in procs] == [{"made": 30}, {"made": 30}]
    for path in paths:
        thumb = out / f"{path.stem}_96.jpg"
        with Image.open(thumb) as im:
            assert im.format == "JPEG" and max(im.size) == 96
            im.load()  # the whole file decodes: never a half-written or foreign file
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}_96.jpg" for p in paths)


@pytest.mark.parametrize("fault", ["thumbnail-path-is-a-folder", "thumbnail-folder-is-a-file"])
def test_a_thumbnail_that_cannot_be_written_names_the_thumbnail(tmp_path, fault):
    pool_image = write_png(tmp_path / "pool" / "img.png", seed=1)
    out_dir = tmp_path / "thumbs"
    if fault == "thumbnail-path-is-a-folder":
        (out_dir / "abc_64.jpg").mkdir(parents=True)
    else:
        out_dir.write_bytes(b"not a folder")
    with pytest.raises(ThumbnailWriteError) as caught:
        make_thumbnail(pool_image, out_dir, "abc", 64)
    message = str(caught.value)
    assert message.startswith(f"{out_dir / 'abc_64.jpg'}: cannot write the thumbnail of {pool_image}")
    assert "expected a writable folder" in message
    if out_dir.is_dir():
        assert [p.name for p in out_dir.iterdir()] == ["abc_64.jpg"]  # no temporary file left


def test_the_cli_reports_an_unwritable_thumbnail_in_one_line(tmp_path, env):
    from labelwise.cli import app

    settings, catalog, project, ids = scored_pool(tmp_path, 3)
    for image_id in ids:
        (settings.thumbnails_dir / f"{image_id}_128.jpg").mkdir(parents=True)
    catalog.close()
    result = CliRunner().invoke(app, ["score-batch", "--project", "p", "--strategy", "random",
                                      "--limit", "2"], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: {settings.thumbnails_dir}") and "cannot write the thumbnail" in line


# -- stale proposals (item 7) ---------------------------------------------------------------
@pytest.mark.parametrize("fault", ["killed", "failed"])
def test_a_killed_or_failed_queue_leaves_a_round_the_next_score_batch_closes(tmp_path, fault):
    settings, catalog, project, ids = scored_pool(tmp_path, 8)
    state = str(settings.state_dir)
    after = "hang" if fault == "killed" else "fail"
    (proc,) = start_together(tmp_path, [["score-batch", state, "lowest_confidence", "3", after]])
    line = proc.stdout.readline()  # the round is recorded; the "queue" is under way
    left = json.loads(line)
    if fault == "killed":
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == (-signal.SIGKILL if fault == "killed" else 1)
    assert catalog.rounds(project)[0]["status"] == PROPOSED  # what the fault leaves behind
    # Its owner is gone: a preview no longer holds its images back.
    assert build_score_batch(catalog, settings, request("lowest_confidence", 3),
                             record=False).params["held_back"] == 0

    batch = build_score_batch(catalog, settings, request("lowest_confidence", 3), record=True)
    assert batch.params["closed_stale_rounds"] == [left["round"]]
    assert batch.params["resumed_stale_rounds"] == []
    assert batch.params["round"] == left["round"] + 1
    assert [q.image_id for q in batch.queue] == left["images"]  # released, so selected again
    closed = catalog.round_info(project, left["round"])
    assert closed["status"] == ABANDONED
    assert closed["params"]["settled"].startswith("closed: none of its images was queued and its owner")
    stored = catalog.round_info(project, batch.params["round"])["params"]
    assert stored["closed_stale_rounds"] == [left["round"]]
    assert_no_image_in_two_rounds(catalog, project)  # abandoned rounds hold nothing
    catalog.close()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


OLD = STALE_PROPOSAL_AGE + timedelta(minutes=1)


@pytest.mark.parametrize(
    ("owner", "kind", "age", "expected"),
    [
        ("this-process", "score-batch", timedelta(0), "open"),
        ("dead-process", "score-batch", timedelta(0), "closed"),
        ("other-host", "score-batch", timedelta(0), "open"),
        ("other-host", "score-batch", OLD, "closed"),
        ("this-process", "score-batch", OLD, "closed"),
        ("none", "recorded-by-number", timedelta(0), "open"),
        ("none", "recorded-by-number", OLD, "closed"),
        ("this-process", "serving", OLD, "open"),
        ("this-process", "queued-but-left-proposed", timedelta(0), "resumed"),
    ],
    ids=lambda v: str(v) if not isinstance(v, timedelta) else ("old" if v else "young"),
)
def test_the_stale_proposal_rule(tmp_path, owner, kind, age, expected):
    from datetime import datetime, timezone

    _, catalog, project, ids = scored_pool(tmp_path, 6)
    who = {"this-process": RoundOwner.current(), "dead-process": RoundOwner(socket.gethostname(), _dead_pid()),
           "other-host": RoundOwner("another-host.invalid", os.getpid()), "none": None}[owner]
    picked = ids[:2]
    scores = [ImageScore(i, 0.5, {"lowest_confidence": 0.5}, 1, 0) for i in ids]
    if kind == "recorded-by-number":
        catalog.record_round(project, 0, "random", None, {}, scores, picked)
        number = 0
    elif kind == "serving":
        number = catalog.create_round(project, "serving", None, RoundParams(RoundSource.SERVING, upload_group="g"), [], [],
                                      owner=who)
        picked = []
    else:
        number = catalog.create_round(project, "random", None, SCORED, scores, picked, owner=who)
        if kind == "queued-but-left-proposed":  # killed between mark_queued and the transition
            catalog.mark_queued(project, {i: 100 + k for k, i in enumerate(picked)}, number, "g")
    when = datetime.now(timezone.utc) + age

    held = catalog.held_images(project, now=when)
    assert held == ({i: number for i in picked} if expected == "open" else {})
    settled = catalog.settle_stale_rounds(project, now=when)
    assert (settled.closed, settled.resumed) == (
        [number] if expected == "closed" else [], [number] if expected == "resumed" else [])
    info = catalog.round_info(project, number)
    assert info["status"] == {"open": PROPOSED, "closed": ABANDONED, "resumed": QUEUED}[expected]
    if expected == "open":
        assert "settled" not in info["params"]
    else:
        assert info["params"]["settled"].startswith(f"{expected}: ")
    again = catalog.settle_stale_rounds(project, now=when)  # compare-and-set: settled once
    assert (again.closed, again.resumed) == ([], [])
    catalog.close()


def test_score_batch_reports_what_it_closed_and_resumed_and_skips_held_images(tmp_path):
    settings, catalog, project, ids = scored_pool(tmp_path, 12)
    scores = [ImageScore(i, 0.5, {"lowest_confidence": 0.5}, 1, 0) for i in ids]
    dead = RoundOwner(socket.gethostname(), _dead_pid())
    r0 = catalog.create_round(project, "random", None, SCORED, scores, ids[0:3], owner=dead)
    r1 = catalog.create_round(project, "random", None, SCORED, scores, ids[3:6])
    catalog.mark_queued(project, {i: 10 + k for k, i in enumerate(ids[3:6])}, r1, None)
    r2 = catalog.create_round(project, "random", None, SCORED, scores, ids[6:9])  # live: ours

    preview = build_score_batch(catalog, settings, request("random", 12), record=False)
    assert preview.params["held_back"] == 3 and "closed_stale_rounds" not in preview.params
    assert {q.image_id for q in preview.queue} == set(ids[0:3]) | set(ids[9:12])
    batch = build_score_batch(catalog, settings, request("random", 12), record=True)
    assert (batch.params["closed_stale_rounds"], batch.params["resumed_stale_rounds"]) == ([r0], [r1])
    assert batch.params["round"] == 3 and batch.params["held_back"] == 3
    assert {q.image_id for q in batch.queue} == set(ids[0:3]) | set(ids[9:12])
    statuses = {r["number"]: r["status"] for r in catalog.rounds(project)}
    assert statuses == {r0: ABANDONED, r1: QUEUED, r2: PROPOSED, 3: PROPOSED}
    assert_no_image_in_two_rounds(catalog, project)
    # Everything left is held by the open rounds 2 and 3: the next one is refused in one line.
    with pytest.raises(RoundConflict, match=r"^project 'p': no image left to select for a new "
                       r"round: all 9 unlabelled image\(s\) with predictions are selected in "
                       r"open round 2 \(proposed \d+ s ago by pid \d+ on .+\), round 3 ") as caught:
        build_score_batch(catalog, settings, request("random", 2), record=True)
    assert "\n" not in str(caught.value) and caught.value.open_rounds == [2, 3]
    assert [r["number"] for r in catalog.rounds(project)] == [0, 1, 2, 3]  # nothing recorded
    catalog.close()


def test_the_queue_command_says_what_it_settled_and_refuses_in_one_line(tmp_path, env, monkeypatch):
    import labelwise.review
    from labelwise.cli import app

    settings, catalog, project, ids = scored_pool(tmp_path, 4)
    scores = [ImageScore(i, 0.5, {"lowest_confidence": 0.5}, 1, 0) for i in ids]
    dead = RoundOwner(socket.gethostname(), _dead_pid())
    catalog.create_round(project, "random", None, SCORED, scores, ids[:2], owner=dead)
    sent: list[dict[str, Any]] = []

    def fake_queue(settings_, catalog_, name, batch, group):  # Label Studio is not needed here
        sent.append(batch.as_json())  # the CLI hands over the typed ScoreBatch
        return {"round": batch.round_number, "created": len(batch.queue)}

    monkeypatch.setattr(labelwise.review, "queue_batch", fake_queue)
    runner = CliRunner()
    args = ["queue", "--project", "p", "--strategy", "lowest_confidence", "--limit", "4"]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out == {"round": 1, "created": 4, "closed_stale_rounds": [0], "resumed_stale_rounds": []}
    # Round 1 was "sent" but (fake queue) never marked queued, and its owner (us) lives on.
    again = runner.invoke(app, args, catch_exceptions=False)
    assert again.exit_code == 2
    (line,) = again.output.strip().splitlines()
    assert line.startswith("error: project 'p': no image left to select") and "open round 1 " in line
    assert len(sent) == 1
    catalog.close()


# -- the serving API's rounds -----------------------------------------------------------------
def test_an_assignment_cannot_take_images_an_open_round_holds(tmp_path):
    _, catalog, project, ids = scored_pool(tmp_path, 4)
    scores = [ImageScore(i, 0.5, {"lowest_confidence": 0.5}, 1, 0) for i in ids]
    held = catalog.create_round(project, "random", None, SCORED, scores, ids[:2])
    with pytest.raises(RoundConflict, match=rf"1 of the 2 selected image\(s\) cannot join a new "
                       rf"round: {ids[1]} \(selected in proposed round {held}\); expected"):
        assignment_round(catalog, project, "v1", [scores[1], scores[2]], "manual")
    assert [r["number"] for r in catalog.rounds(project)] == [held]
    number = assignment_round(catalog, project, "v1", [scores[2], scores[3]], "manual")
    assert catalog.round_info(project, number)["selected"] == [ids[2], ids[3]]
    # A serving round selects nothing, so it holds nothing and never conflicts.
    group_round = serving_round(catalog, project, "flagged", "v1")
    assert catalog.round_info(project, group_round)["params"]["round"] == group_round
    assert serving_round(catalog, project, "flagged", "v1") == group_round
    catalog.close()


def test_create_round_refuses_images_no_longer_unlabelled(catalog, image_dir):
    project = catalog.create_project("p", CLASSES)
    ids = catalog.add_images(project, image_dir).added
    catalog.mark_queued(project, {ids[0]: 5}, 7, "g")
    with pytest.raises(RoundConflict, match=rf"{ids[0]} \(queued, round 7\)") as caught:
        catalog.create_round(project, "random", None, SCORED, [], ids[:2])
    assert caught.value.held == {ids[0]: None}
    with pytest.raises(CatalogError, match="selected must list each image once; got 2 ids, 1 distinct"):
        catalog.create_round(project, "random", None, SCORED, [], [ids[1], ids[1]])
    assert catalog.rounds(project) == []


def test_an_abandoned_round_is_never_queued(tmp_path, monkeypatch):
    from labelwise.review import queue as review_queue

    settings, catalog, project, ids = scored_pool(tmp_path, 4)
    batch = build_score_batch(catalog, settings, request("random", 2), record=True)
    number = batch.params["round"]
    assert catalog.transition_round(project, number, PROPOSED, ABANDONED)

    def no_label_studio(*_args, **_kwargs):
        raise AssertionError("Label Studio was contacted for an abandoned round")

    monkeypatch.setattr(review_queue, "open_client", no_label_studio)
    with pytest.raises(ValueError, match=rf"round {number} of project 'p' is 'abandoned'; only a 'proposed'"):
        review_queue.queue_batch(settings, catalog, "p", batch.as_json(), None)
    assert all(r.status.value == "unlabelled" for r in catalog.images(project))
    catalog.close()


# -- two auto-label shards writing at once ---------------------------------------------------
@pytest.mark.parametrize("what", ["predictions", "embeddings"])
def test_two_writers_of_the_same_outputs_at_once_store_each_once(catalog, image_dir, what):
    """Two shards (a rerun over a shard another worker is still writing) save the same images'
    outputs at the same instant: no unique-constraint error, each (image, version) stored once,
    and the two reports add up to the images."""
    project = catalog.create_project("p", CLASSES)
    ids = catalog.add_images(project, image_dir).added
    rng = np.random.default_rng(0)
    items = [(i, Detections(np.array([[1.0, 1, 9, 9]]), np.array([0.8]), np.array([1]),
                            rng.dirichlet(np.ones(3), size=1))) for i in ids]
    vectors = rng.normal(size=(len(ids), 8)).astype(np.float32)
    start = threading.Barrier(2)
    results: list[Any] = []
    guard = threading.Lock()

    def write(version: str) -> None:
        start.wait()
        try:
            n = (catalog.save_predictions(project, version, items) if what == "predictions"
                 else catalog.save_embeddings(project, version, ids, vectors))
        except BaseException as exc:  # noqa: BLE001 - collected: none is allowed
            n = exc
        with guard:
            results.append(n)

    for k in range(5):  # a few rounds of the race, each on a fresh version
        results.clear()
        threads = [threading.Thread(target=write, args=(f"v{k}",)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert all(isinstance(r, int) for r in results), results
        assert sum(results) == len(ids)
        stored = (catalog.predictions(project, f"v{k}") if what == "predictions"
                  else catalog.embeddings(project, f"v{k}"))
        assert sorted(stored) == sorted(ids)
