"""Label-quality commands: ``label-issues``."""

from __future__ import annotations

from typing import Optional

import typer

from labelwise.cli.common import friendly_errors, print_json, project_option, settings_from


def register(app: typer.Typer) -> None:
    app.command("label-issues")(label_issues)


@friendly_errors
def label_issues(
    ctx: typer.Context,
    project: str = project_option(),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="Show the top N issues."),
    round_number: Optional[int] = typer.Option(
        None, "--round", "-r", help="Only images labelled in this round (default: all rounds)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    thumbnails: bool = typer.Option(
        True, "--thumbnails/--no-thumbnails", help="Make (and list) each image's thumbnail."
    ),
) -> None:
    """List probable label errors, most suspicious first.

    Each labelled image is graded by the model that proposed the round it was labelled in (never
    one that trained on it); images without such a prediction are skipped and counted. Boxes are
    x1, y1, x2, y2 pixels.
    """
    from labelwise.quality.project_issues import issue_thumbnails, project_label_issues
    from labelwise.runtime import open_catalog

    settings = settings_from(ctx)
    catalog = open_catalog(settings)
    record = catalog.project(project)
    report = project_label_issues(catalog, record, round_number=round_number, limit=limit)
    thumbs = (issue_thumbnails(catalog, record, report.issues, settings.thumbnails_dir)
              if thumbnails else None)
    if as_json:
        print_json(report.as_dict(record.class_names, thumbs))
        return
    names = record.class_names
    header = (f"{'image_id':<20} {'kind':<17} {'class':<12} {'box (x1, y1, x2, y2)':<30} {'score':>6}"
              + ("  thumbnail" if thumbs is not None else ""))
    typer.echo(header)
    typer.echo("-" * len(header))
    for issue in report.issues:
        cls = names[issue.class_id] if 0 <= issue.class_id < len(names) else str(issue.class_id)
        box = "(" + ", ".join(f"{v:.1f}" for v in issue.box) + ")"
        thumb = f"  {thumbs.get(issue.image_id, '')}" if thumbs is not None else ""
        typer.echo(f"{issue.image_id[:20]:<20} {issue.kind:<17} {cls[:12]:<12} {box:<30} "
                   f"{issue.score:>6.3f}{thumb}")
    skipped = ", ".join(f"{k} {v}" for k, v in report.skipped_counts().items() if v) or "none"
    versions = ", ".join(f"round {k}: {v}" for k, v in report.model_versions.items()) or "none"
    typer.echo(f"{len(report.issues)} of {report.total_issues} issues; {len(report.images_checked)} "
               f"images checked; {len(report.skipped)} skipped ({skipped}); graded by {versions}")
