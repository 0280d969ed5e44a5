"""The catalog's schema migrations (issue 13, item 7) on real SQLite files.

A new catalog is made by the migrations and its schema is the one ``create_all`` of the models
makes; a catalog created before migrations existed (``create_all``, rows written through the
catalog API, no version table) is adopted with every row; a catalog at an older revision is
upgraded on open. The later revision is test-only (:data:`LATER_REVISION`, written into a copy of
the packaged migrations): it rebuilds ``projects``, the table every other one references, and adds
a table. Processes opening the same catalog at the same instant all succeed, and exactly one of
them upgrades it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Column, MetaData, String, Text, create_engine, inspect, select, text
from sqlalchemy.engine import Engine

from labelwise.catalog import Catalog, CatalogError, migrations
from labelwise.catalog.migrations import (
    BASELINE,
    VERSION_TABLE,
    Upgrade,
    current_revision,
    head_revision,
    schema_differences,
    upgrade_catalog,
)
from labelwise.catalog.models import Base
from labelwise.domain import Detections, ImageScore
from labelwise.serving.auth import create_api_key
from labelwise.serving.outbox import add_flag
from labelwise.rounds.params import RoundParams, RoundSource

SCORED = RoundParams(RoundSource.SCORE_BATCH)  # a score-batch round's params, no selection record

REPO = Path(__file__).resolve().parents[2]
NEWEST_TABLES = ["api_keys", "flag_outbox", "learn_requests", "review_events"]  # added latest
HEAD = head_revision()
"""The newest packaged revision."""
ADDED_AFTER_BASELINE = {"projects": ("task_type",), "predictions": ("segments", "mask_stability"),
                        "labels": ("segments",)}
"""Columns the packaged revisions after the baseline add (a pre-migration catalog lacks them)."""
LATER = f"{int(HEAD) + 1:04d}"
"""The test-only revision after it (:data:`LATER_REVISION`)."""

LATER_REVISION = textwrap.dedent(
    '''
    """Test only: a revision after the head (projects.note by a rebuild, a notes table)."""

    import sqlalchemy as sa
    from alembic import op

    revision = "{later}"
    down_revision = "{head}"
    branch_labels = None
    depends_on = None


    def upgrade():
        with op.batch_alter_table("projects", recreate="always") as batch:
            batch.add_column(sa.Column("note", sa.Text(), nullable=True))
        op.create_table(
            "notes",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("image_row", sa.Integer(), nullable=False),
            sa.Column("text", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.ForeignKeyConstraint(["image_row"], ["images.id"]),
        )


    def downgrade():
        op.drop_table("notes")
        with op.batch_alter_table("projects", recreate="always") as batch:
            batch.drop_column("note")
    '''
).replace("{later}", LATER).replace("{head}", HEAD)


# -- helpers --------------------------------------------------------------------------------
def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def later_migrations(tmp_path: Path) -> Path:
    """A copy of the packaged migrations plus the test-only revision :data:`LATER`."""
    location = tmp_path / f"migrations-with-{LATER}"
    shutil.copytree(migrations._migrations_dir(), location,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / f"{LATER}_test_later.py").write_text(LATER_REVISION)
    return location


def sqlite_schema(engine: Engine) -> list[tuple[str, str, str, str | None]]:
    """Every table and index statement SQLite keeps, the version table's left out."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE tbl_name != :version ORDER BY type, name"), {"version": VERSION_TABLE})
        # Whitespace-insensitive: SQLite keeps a column added by ALTER TABLE on the same line.
        return [(kind, name, table, " ".join(sql.split()) if sql else sql) for kind, name, table, sql in rows]


def all_rows(engine: Engine, skip: dict[str, tuple[str, ...]] | None = None
             ) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every catalog table the database has, in primary-key order: the model's
    columns the table has, less those ``skip`` names per table."""
    with engine.connect() as conn:
        db = inspect(conn)
        out = {}
        for t in Base.metadata.sorted_tables:
            if t.name not in db.get_table_names():
                continue
            have = {c["name"] for c in db.get_columns(t.name)} - set((skip or {}).get(t.name, ()))
            cols = [c for c in t.columns if c.name in have]
            out[t.name] = [tuple(r) for r in conn.execute(select(*cols).order_by(*t.primary_key))]
        return out


def revision_of(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return current_revision(conn)
    finally:
        engine.dispose()


def pre_migration_catalog(path: Path, image_dir: Path, *, without: tuple[str, ...] = ()) -> None:
    """A catalog as Labelwise made it before migrations: ``create_all`` of the models (less the
    tables ``without``), then rows in every area written through the catalog API."""
    engine = create_engine(sqlite_url(path))
    Base.metadata.create_all(engine, tables=[t for t in Base.metadata.sorted_tables
                                             if t.name not in without])
    catalog = Catalog(engine)  # the constructor, not open: nothing may touch the schema here
    project = catalog.create_project("p", ["a", "b", "c"])
    ids = catalog.add_images(project, image_dir).added
    probs = np.full((2, 3), 1 / 3, dtype=np.float32)
    dets = Detections(np.array([[1, 1, 9, 9], [2, 2, 8, 8]], float), np.array([0.9, 0.4]),
                      np.array([0, 1]), probs)
    assert catalog.save_predictions(project, "v1", [(i, dets) for i in ids]) == len(ids)
    assert catalog.save_embeddings(project, "e1", ids, np.eye(len(ids), 4)) == len(ids)
    scores = [ImageScore(i, 0.5, {"lowest_confidence": 0.5}, 1, 0) for i in ids]
    number = catalog.create_round(project, "random", "v1", SCORED, scores, ids[:2])
    catalog.mark_queued(project, {ids[0]: 100, ids[1]: 101}, number, "g")
    catalog.save_labels(project, {ids[0]: np.array([[0, 0.5, 0.5, 0.2, 0.2]])}, "review", number,
                        {ids[0]: 7})
    if "review_events" not in without:
        assert catalog.record_review_event(project, ls_task_id=100, round_number=number,
                                           action="ANNOTATION_CREATED", annotation_id=7,
                                           was_cancelled=False, event_key="e-7")
    if "api_keys" not in without:
        create_api_key(catalog, ["p"], label="old key")
    if "flag_outbox" not in without:
        assert add_flag(catalog, project, ids[5], "v1", "g", 0.3, {"entropy": 0.7})
    catalog.close()
    with engine.begin() as conn:  # the columns later revisions add were not there either
        for table, columns in ADDED_AFTER_BASELINE.items():
            for column in columns:
                conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
    engine.dispose()


# -- a new catalog --------------------------------------------------------------------------
def test_a_new_catalog_is_made_by_the_migrations_with_the_schema_create_all_makes(tmp_path):
    migrated = Catalog.open(sqlite_url(tmp_path / "migrated.db"))
    created = create_engine(sqlite_url(tmp_path / "created.db"))
    Base.metadata.create_all(created)
    try:
        assert sqlite_schema(migrated.engine) == sqlite_schema(created)  # statement for statement
        assert len(sqlite_schema(created)) > len(Base.metadata.tables)  # tables and indexes
        with migrated.engine.connect() as conn:
            assert current_revision(conn) == HEAD
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on after
            assert conn.get_isolation_level() == "SERIALIZABLE"  # not left in autocommit
        with created.connect() as conn:
            assert current_revision(conn) is None
    finally:
        migrated.close()
        created.dispose()


def test_models_and_migrations_agree(tmp_path):
    """Fails when a model changes without a revision: add one with
    ``python -m labelwise.catalog.migrations revision "what changed"`` and review it."""
    catalog = Catalog.open(sqlite_url(tmp_path / "catalog.db"))
    try:
        with catalog.engine.connect() as conn:
            differences = schema_differences(conn)
        assert differences == [], (
            "the models and the migrations disagree (a model change without a revision?): "
            f"{differences}")
    finally:
        catalog.close()


@pytest.mark.parametrize(
    ("drift", "kind"),
    [
        ("DROP INDEX ix_images_status", "add_index"),
        ("CREATE INDEX ix_images_path ON images (path)", "remove_index"),
        ("CREATE TABLE leftovers (id INTEGER PRIMARY KEY)", "remove_table"),
        ("ALTER TABLE labels DROP COLUMN labelled_round", "add_column"),
        ("ALTER TABLE labels ADD COLUMN reviewer TEXT", "remove_column"),
        ("model: images.note", "add_column"),
        ("model: predictions.model_version VARCHAR(64)", "modify_type"),
    ],
    ids=["index-missing", "index-extra", "table-extra", "column-missing", "column-extra",
         "model-column-without-revision", "model-type-without-revision"],
)
def test_the_agreement_check_sees_a_drift(tmp_path, drift, kind):
    """The check above can fail: each drift between a migrated database and the models shows."""
    catalog = Catalog.open(sqlite_url(tmp_path / "catalog.db"))
    metadata: MetaData = Base.metadata
    if drift.startswith("model: "):
        metadata = MetaData()
        for table in Base.metadata.sorted_tables:
            table.to_metadata(metadata)
        if drift.endswith("images.note"):
            metadata.tables["images"].append_column(Column("note", Text, nullable=True))
        else:
            metadata.tables["predictions"].c.model_version.type = String(64)
    else:
        with catalog.engine.begin() as conn:
            conn.exec_driver_sql(drift)
    try:
        with catalog.engine.connect() as conn:
            differences = schema_differences(conn, metadata)
        flat = [d for group in differences for d in (group if isinstance(group, list) else [group])]
        assert [d[0] for d in flat] == [kind], differences
    finally:
        catalog.close()


# -- a catalog created before migrations ----------------------------------------------------
@pytest.mark.parametrize("without", [(), tuple(NEWEST_TABLES)], ids=["all-tables", "newest-tables-missing"])
def test_a_catalog_created_before_migrations_is_adopted_with_every_row(tmp_path, image_dir, without):
    path = tmp_path / "old.db"
    pre_migration_catalog(path, image_dir, without=without)
    old = create_engine(sqlite_url(path))
    rows = all_rows(old)
    old.dispose()
    assert sum(map(len, rows.values())) == (27 if without else 30) and revision_of(sqlite_url(path)) is None
    assert sorted(set(Base.metadata.tables) - set(rows)) == sorted(without)

    catalog = Catalog.open(sqlite_url(path))
    fresh = Catalog.open(sqlite_url(tmp_path / "fresh.db"))
    try:
        assert revision_of(sqlite_url(path)) == head_revision()
        after = all_rows(catalog.engine, skip=ADDED_AFTER_BASELINE)
        assert {t: after[t] for t in rows} == rows  # every row of every table it had
        assert catalog.project("p").task_type.value == "detect"  # what every earlier project was
        assert all(after[t] == [] for t in without)  # the tables it lacked, created
        assert sqlite_schema(catalog.engine) == sqlite_schema(fresh.engine)
        project = catalog.project("p")  # and it works through the API
        assert len(catalog.images(project)) == 6
        assert [r["number"] for r in catalog.rounds(project)] == [0]
        assert len(catalog.predictions(project, "v1")) == 6
    finally:
        catalog.close()
        fresh.close()


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("new", Upgrade(None, HEAD, adopted=False)),
        ("created-before-migrations", Upgrade(None, HEAD, adopted=True)),
        ("foreign-tables-only", Upgrade(None, HEAD, adopted=False)),
        ("at-head", Upgrade(HEAD, HEAD, adopted=False)),
    ],
)
def test_what_opening_finds_and_does(tmp_path, image_dir, state, expected):
    path = tmp_path / "c.db"
    if state == "created-before-migrations":
        pre_migration_catalog(path, image_dir)
    elif state == "at-head":
        Catalog.open(sqlite_url(path)).close()
    elif state == "foreign-tables-only":  # someone else's tables in the same database
        with create_engine(sqlite_url(path)).begin() as conn:
            conn.exec_driver_sql("CREATE TABLE other_app (id INTEGER PRIMARY KEY)")
    engine = create_engine(sqlite_url(path))
    try:
        outcome = upgrade_catalog(engine)
        assert outcome == expected
        assert outcome.changed == (state != "at-head")
        assert upgrade_catalog(engine) == Upgrade(HEAD, HEAD)  # then nothing to do
    finally:
        engine.dispose()


def test_a_catalog_older_than_the_baseline_is_refused_unchanged(tmp_path):
    """A catalog from before ``projects.holdout_*`` existed: stamping it would lie."""
    path = tmp_path / "older.db"
    engine = create_engine(sqlite_url(path))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE projects (id INTEGER NOT NULL PRIMARY KEY, "
                             "name VARCHAR(200) NOT NULL UNIQUE, class_names JSON NOT NULL, "
                             "created_at DATETIME NOT NULL, ls_project_id INTEGER)")
        conn.exec_driver_sql("INSERT INTO projects VALUES (1, 'p', '[\"a\"]', '2024-01-01', NULL)")
    before = sqlite_schema(engine)
    engine.dispose()
    with pytest.raises(CatalogError, match=(
            r"predates schema migrations and is older than their baseline \(revision 0001\): "
            r"table 'projects' lacks holdout_split, holdout_yaml\. Expected every baseline "
            r"column; nothing was changed")):
        Catalog.open(sqlite_url(path))
    engine = create_engine(sqlite_url(path))
    assert sqlite_schema(engine) == before and revision_of(sqlite_url(path)) is None
    engine.dispose()


# -- an older revision ----------------------------------------------------------------------
def test_a_catalog_at_an_older_revision_is_upgraded_on_open(tmp_path, image_dir, monkeypatch):
    path = tmp_path / "c.db"
    catalog = Catalog.open(sqlite_url(path))  # at the head with rows in every area
    project = catalog.create_project("p", ["a", "b"])
    ids = catalog.add_images(project, image_dir).added
    catalog.create_round(project, "random", None, SCORED, [ImageScore(i, 0.5, {}, 0, 0) for i in ids],
                         ids[:2])
    rows = all_rows(catalog.engine)
    catalog.close()

    location = later_migrations(tmp_path)
    monkeypatch.setattr(migrations, "_migrations_dir", lambda: location)
    assert head_revision() == LATER
    catalog = Catalog.open(sqlite_url(path))
    try:
        assert revision_of(sqlite_url(path)) == LATER
        after = all_rows(catalog.engine)  # the models know no projects.note: rows by the ORM
        assert after == rows
        with catalog.engine.connect() as conn:
            notes = conn.exec_driver_sql("SELECT note FROM projects").fetchall()
            assert notes == [(None,)]
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert catalog.project("p").class_names == ("a", "b")
        assert len(catalog.images(catalog.project("p"))) == 6
    finally:
        catalog.close()


@pytest.mark.faults
def test_a_catalog_upgraded_by_a_newer_labelwise_is_refused_unchanged(tmp_path, monkeypatch):
    path = tmp_path / "c.db"
    location = later_migrations(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "_migrations_dir", lambda: location)
        Catalog.open(sqlite_url(path)).close()  # a newer Labelwise: at LATER
    engine = create_engine(sqlite_url(path))
    before = sqlite_schema(engine)
    engine.dispose()
    with pytest.raises(CatalogError, match=(
            rf"is at schema revision '{LATER}', which this Labelwise does not know \(its revisions: "
            rf"{', '.join(f'{i:04d}' for i in range(1, int(LATER)))}\): a newer Labelwise upgraded "
            r"it; expected one of those")):
        Catalog.open(sqlite_url(path))
    engine = create_engine(sqlite_url(path))
    assert sqlite_schema(engine) == before and revision_of(sqlite_url(path)) == LATER
    engine.dispose()


@pytest.mark.faults
def test_a_failing_revision_leaves_the_catalog_as_it_was(tmp_path, image_dir, monkeypatch):
    """The revisions and the version row commit together: a revision that fails half-way
    (here after rebuilding ``projects``) leaves the old schema, its rows and its revision."""
    path = tmp_path / "c.db"
    pre_migration_catalog(path, image_dir)
    Catalog.open(sqlite_url(path)).close()
    engine = create_engine(sqlite_url(path))
    schema, rows = sqlite_schema(engine), all_rows(engine)
    engine.dispose()
    location = later_migrations(tmp_path)
    revision = location / "versions" / f"{LATER}_test_later.py"
    revision.write_text(revision.read_text().replace(
        '    op.create_table(\n        "notes"', '    op.execute("SELECT no_such_function()")\n'
        '    op.create_table(\n        "notes"'))
    monkeypatch.setattr(migrations, "_migrations_dir", lambda: location)
    with pytest.raises(Exception, match="no_such_function"):
        Catalog.open(sqlite_url(path))
    engine = create_engine(sqlite_url(path))
    assert sqlite_schema(engine) == schema and all_rows(engine) == rows
    assert revision_of(sqlite_url(path)) == HEAD
    engine.dispose()


def test_the_baseline_downgrades_to_nothing_and_back(tmp_path):
    from alembic import command

    engine = create_engine(sqlite_url(tmp_path / "c.db"))
    upgrade_catalog(engine)
    schema = sqlite_schema(engine)
    with engine.begin() as conn:
        command.downgrade(migrations.alembic_config(conn), "base")
    assert sqlite_schema(engine) == []
    assert upgrade_catalog(engine).after == HEAD and sqlite_schema(engine) == schema
    engine.dispose()


def test_new_revision_autogenerates_the_next_file(tmp_path):
    location = later_migrations(tmp_path)
    (location / "versions" / f"{LATER}_test_later.py").unlink()
    made = migrations.new_revision("nothing changed", script_location=location)
    assert made == location / "versions" / f"{LATER}_nothing_changed.py"
    body = made.read_text()
    assert f"revision: str = '{LATER}'" in body
    assert f"down_revision: str | Sequence[str] | None = '{HEAD}'" in body
    upgrade = body[body.index("def upgrade() -> None:"):body.index("def downgrade() -> None:")]
    assert [ln.strip() for ln in upgrade.splitlines() if ln.strip() and not ln.strip().startswith("#")] == [
        "def upgrade() -> None:", '"""nothing changed."""', "pass"]  # no change: an empty revision
    assert head_revision(location) == LATER


# -- at the same instant --------------------------------------------------------------------
WORKER = textwrap.dedent(
    """
    import json, logging, os, sys, time
    from pathlib import Path

    from labelwise.catalog import Catalog, migrations

    url, location, flags = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    if location:
        migrations._migrations_dir = lambda: Path(location)
    said = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    logging.getLogger("labelwise.catalog.migrations").addHandler(handler)
    logging.getLogger("labelwise.catalog.migrations").setLevel(logging.INFO)
    (flags / f"ready-{os.getpid()}").touch()
    while not (flags / "go").exists():
        time.sleep(0.001)
    catalog = Catalog.open(url)
    project = catalog.create_project("p", ["a", "b", "c"])
    print(json.dumps({"project": project.id, "upgraded": said}), flush=True)
    """
)


def open_together(tmp_path: Path, url: str, location: Path | None, n: int) -> list[dict[str, Any]]:
    """``n`` processes open ``url`` at the same instant (released together by a flag file)."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    flags = tmp_path / "flags"
    flags.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    procs = [subprocess.Popen([sys.executable, str(script), url, str(location or ""), str(flags)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(n)]
    deadline = time.monotonic() + 120
    while len(list(flags.glob("ready-*"))) < n:
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            for p in procs:
                p.kill()
            pytest.fail(f"a worker was not ready: {dead[0].communicate()[1] if dead else 'timeout'}")
        time.sleep(0.01)
    (flags / "go").touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "Traceback" not in err, f"rc {proc.returncode}: {err}"
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.faults
@pytest.mark.parametrize("state", ["new", "created-before-migrations", "older-revision"])
def test_processes_opening_one_catalog_at_once_all_succeed_and_one_upgrades(tmp_path, image_dir, state):
    path = tmp_path / "state" / "catalog.db"
    path.parent.mkdir()
    location = None
    if state == "created-before-migrations":
        pre_migration_catalog(path, image_dir)
    elif state == "older-revision":
        Catalog.open(sqlite_url(path)).close()
        location = later_migrations(tmp_path)
    results = open_together(tmp_path, sqlite_url(path), location, 3)

    assert len({r["project"] for r in results}) == 1  # one project, created once
    upgraded = [r["upgraded"] for r in results if r["upgraded"]]
    assert len(upgraded) == 1, results  # one process upgraded, the others found it done
    head = LATER if location else HEAD
    assert upgraded[0][0].endswith(f"-> {head}" + (" (adopted: created before migrations)"
                                                    if state == "created-before-migrations" else ""))
    assert revision_of(sqlite_url(path)) == head
    engine = create_engine(sqlite_url(path))
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT COUNT(*) FROM {VERSION_TABLE}")).scalar() == 1
    engine.dispose()
