"""``labelwise serve`` (the model as an HTTP API with active learning) and ``labelwise api-key``."""

from __future__ import annotations

from typing import Optional

import typer

from labelwise.cli.common import friendly_errors, print_json, settings_from

api_key_app = typer.Typer(
    help="API keys of the serving API (stored hashed in the catalog).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and the ``api-key`` group to the root command."""
    app.command("serve")(serve)
    app.add_typer(api_key_app, name="api-key")


@friendly_errors
def serve(
    ctx: typer.Context,
    project: Optional[str] = typer.Option(
        None, "--project", "-p", help="Default project of /v1/predict (its model loads at start)."
    ),
    model: Optional[str] = typer.Option(
        None,
        "--model",
        "-m",
        help="A .pt path or model yaml (default: the registry champion, "
        "else detector.model). A fixed file is not hot-reloaded from the registry.",
    ),
    host: Optional[str] = typer.Option(None, "--host", help="Bind address (default 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", min=1, max=65535, help="Default 8000."),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", min=0.0, max=1.0, help="Flag images scoring below this."
    ),
    strategy: Optional[str] = typer.Option(
        None,
        "--strategy",
        help="entropy, lowest_confidence, margin_sampling or " "weighted_combination.",
    ),
    group: Optional[str] = typer.Option(None, "--group", help="Label Studio upload group."),
    poll: Optional[float] = typer.Option(
        None, "--poll", min=0.0, help="Seconds between champion checks (0 = off)."
    ),
) -> None:
    """Serve predictions over HTTP; uncertain images are queued to Label Studio."""
    import uvicorn

    from labelwise.serving.app import create_app, serving_settings

    settings = settings_from(ctx)
    base = serving_settings(settings)
    overrides = {
        "project": project,
        "model": model,
        "host": host,
        "port": port,
        "routing_threshold": threshold,
        "routing_strategy": strategy,
        "upload_group": group,
        "poll_interval_s": poll,
    }
    serving = base.model_validate(
        {**base.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    )
    if serving.project is not None:
        from labelwise.runtime import open_catalog

        catalog = open_catalog(settings)
        try:
            catalog.project(serving.project)  # unknown project: exit 2 before binding
        finally:
            catalog.close()
    app = create_app(settings, serving)
    typer.echo(
        f"serving {serving.project or '(no default project)'} on "
        f"http://{serving.host}:{serving.port} (docs at /docs)",
        err=True,
    )
    uvicorn.run(app, host=serving.host, port=serving.port, log_level="info")


@api_key_app.command("create")
@friendly_errors
def create_key(
    ctx: typer.Context,
    project: list[str] = typer.Option(
        [], "--project", "-p", help="Project the key may use (repeat)."
    ),
    all_projects: bool = typer.Option(False, "--all", help="Every project, and admin endpoints."),
    label: Optional[str] = typer.Option(None, "--label", help="A note (who holds the key)."),
) -> None:
    """Create an API key and print it ONCE (only a salted hash is stored)."""
    from labelwise.runtime import open_catalog
    from labelwise.serving.auth import create_api_key

    catalog = open_catalog(settings_from(ctx))
    try:
        key, record = create_api_key(catalog, project, all_projects, label)
    finally:
        catalog.close()
    print_json(
        {
            "api_key": key,
            "key_id": record.key_id,
            "projects": list(record.projects),
            "all_projects": record.all_projects,
            "note": "store the key now: it cannot be shown again",
        }
    )


@api_key_app.command("revoke")
@friendly_errors
def revoke_key(
    ctx: typer.Context,
    key_id: str = typer.Argument(..., help="The key's public id (the 12 hex after 'lw_')."),
) -> None:
    """Revoke a key by its public id."""
    from labelwise.runtime import open_catalog
    from labelwise.serving.auth import revoke_api_key

    catalog = open_catalog(settings_from(ctx))
    try:
        done = revoke_api_key(catalog, key_id)
    finally:
        catalog.close()
    if not done:
        raise ValueError(f"key_id: no active API key {key_id!r}")
    print_json({"revoked": key_id})
