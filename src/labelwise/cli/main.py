"""Root of the ``labelwise`` command: global options and the command groups."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from labelwise.cli import bench, benchmark, datasets, learn, pool, project, quality, review
from labelwise.cli import serve as serve_cli

app = typer.Typer(
    name="labelwise",
    help="Label only what your model is unsure about: auto-label, score, select, review, retrain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="YAML config file (default: $LABELWISE_CONFIG or ./labelwise.yaml)."
    ),
) -> None:
    """Labelwise active learning for YOLO detectors."""
    ctx.obj = {"config": config}


app.add_typer(datasets.app, name="datasets")
app.add_typer(project.app, name="project")
app.add_typer(bench.app, name="bench")
pool.register(app)
review.register(app)
quality.register(app)
learn.register(app)
serve_cli.register(app)
benchmark.register(app)


def main() -> None:
    app()
