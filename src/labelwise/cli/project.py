"""``labelwise project``: projects and their image pools in the catalog."""

from __future__ import annotations

from typing import List

import typer

from labelwise.cli.common import fail, friendly_errors, print_json, settings_from

app = typer.Typer(help="Create projects and add images.", no_args_is_help=True)


def parse_classes(values: List[str]) -> list[str]:
    """``--classes a,b --classes c`` -> [a, b, c]."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        fail("--classes needs at least one class name, e.g. --classes cat,dog")
    return names


@app.command("create")
@friendly_errors
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Project name."),
    classes: List[str] = typer.Option(..., "--classes", help="Class names, comma-separated or repeated."),
    task: str = typer.Option("detect", "--task",
                             help="The model task, fixed for the project's life: detect, classify or segment."),
) -> None:
    """Create a project (again with the same classes and task: no change)."""
    from labelwise.runtime import open_catalog

    catalog = open_catalog(settings_from(ctx))
    record = catalog.create_project(name, parse_classes(classes), task_type=task)
    print_json({"project": record.name, "id": record.id, "task": record.task_type.value,
                "classes": list(record.class_names)})


@app.command("add-images")
@friendly_errors
def add_images(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Project name."),
    source: str = typer.Argument(..., help="An image file, a folder, or a glob ('imgs/**/*.jpg')."),
) -> None:
    """Add images to the project's pool; bad files (unreadable, truncated, not an image, more
    than images.max_pixels pixels) are reported and skipped, the good ones added."""
    from labelwise.runtime import open_catalog

    settings = settings_from(ctx)
    catalog = open_catalog(settings)
    report = catalog.add_images(catalog.project(name), source, settings.images.max_pixels)
    for _path, reason in report.failed:  # the reason names the file
        typer.echo(f"skipped: {reason}", err=True)
    print_json({"added": len(report.added), "already_present": len(report.existing),
                "resized": len(report.resized),
                "skipped": [{"path": p, "reason": r} for p, r in report.failed]})


@app.command("list")
@friendly_errors
def list_projects(ctx: typer.Context) -> None:
    """Projects with their image counts by status."""
    from labelwise.runtime import open_catalog

    catalog = open_catalog(settings_from(ctx))
    print_json([{"project": p.name, "task": p.task_type.value, "classes": list(p.class_names),
                 "images": catalog.status_counts(p)}
                for p in catalog.projects()])


@app.command("set-holdout")
@friendly_errors
def set_holdout(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Project name."),
    data_yaml: str = typer.Argument(..., help="YOLO data.yaml of the fixed evaluation set."),
    split: str = typer.Option("test", "--split", help="Which split of it to evaluate on."),
) -> None:
    """Fix the held-out set every round is evaluated on (never part of the pool)."""
    from pathlib import Path

    from labelwise.runtime import open_catalog

    catalog = open_catalog(settings_from(ctx))
    record = catalog.set_holdout(catalog.project(name), Path(data_yaml), split)
    print_json({"project": record.name, "holdout_yaml": str(record.holdout_yaml), "split": record.holdout_split})
