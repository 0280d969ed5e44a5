"""``labelwise serve`` and ``labelwise api-key`` through Typer's runner on a real catalog."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from labelwise.catalog import Catalog
from labelwise.cli import project as project_cli
from labelwise.cli.main import root
from labelwise.cli.serve import register
from labelwise.serving.auth import verify_api_key

runner = CliRunner()


def make_cli() -> typer.Typer:
    cli = typer.Typer(pretty_exceptions_enable=False)
    cli.callback()(root)
    cli.add_typer(project_cli.app, name="project")
    register(cli)
    return cli


@pytest.fixture
def env(tmp_path, monkeypatch):
    state = tmp_path / "state"
    monkeypatch.setenv("LABELWISE_STATE_DIR", str(state))
    monkeypatch.delenv("LABELWISE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    cli = make_cli()
    assert runner.invoke(cli, ["project", "create", "demo", "--classes", "a,b"]).exit_code == 0
    return cli, state


def catalog_of(state) -> Catalog:
    return Catalog.open(f"sqlite:///{state / 'catalog.db'}")


@pytest.mark.parametrize(
    ("args", "projects", "all_projects"),
    [
        (["--project", "demo"], ["demo"], False),
        (["--all"], [], True),
        (["--project", "demo", "--project", "demo"], ["demo"], False),
    ],
)
def test_api_key_create_prints_the_key_once(env, args, projects, all_projects):
    cli, state = env
    result = runner.invoke(cli, ["api-key", "create", *args])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["projects"], out["all_projects"]) == (projects, all_projects)
    catalog = catalog_of(state)
    try:
        assert verify_api_key(catalog, out["api_key"]).key_id == out["key_id"]
    finally:
        catalog.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "needs at least one --project or --all"),
        (["--project", "nope"], "unknown project 'nope'"),
    ],
)
def test_api_key_create_refuses(env, args, message):
    cli, _ = env
    result = runner.invoke(cli, ["api-key", "create", *args])
    assert result.exit_code == 2 and message in result.output


def test_api_key_revoke(env):
    cli, state = env
    out = json.loads(runner.invoke(cli, ["api-key", "create", "--project", "demo"]).stdout)
    assert runner.invoke(cli, ["api-key", "revoke", out["key_id"]]).exit_code == 0
    again = runner.invoke(cli, ["api-key", "revoke", out["key_id"]])
    assert again.exit_code == 2 and "no active API key" in again.output
    catalog = catalog_of(state)
    try:
        assert verify_api_key(catalog, out["api_key"]) is None
    finally:
        catalog.close()


def test_serve_refuses_an_unknown_project(env):
    cli, _ = env
    result = runner.invoke(cli, ["serve", "--project", "nope"])
    assert result.exit_code == 2 and "unknown project 'nope'" in result.output


def test_serve_binds_localhost_with_the_options(env, monkeypatch):
    cli, _ = env
    seen = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: seen.update(app=app, **kw))
    result = runner.invoke(
        cli,
        [
            "serve",
            "--project",
            "demo",
            "--port",
            "8123",
            "--threshold",
            "0.3",
            "--strategy",
            "margin_sampling",
            "--group",
            "cam-2",
            "--poll",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 8123)
    serving = seen["app"].state.serving.serving
    assert (
        serving.project,
        serving.routing_threshold,
        serving.routing_strategy,
        serving.upload_group,
        serving.poll_interval_s,
    ) == ("demo", 0.3, "margin_sampling", "cam-2", 0)
    seen["app"].state.serving.catalog.close()
    bad = runner.invoke(cli, ["serve", "--strategy", "best"])
    assert bad.exit_code == 2 and "routing_strategy" in bad.output
