"""``labelwise datasets``: the bundled data."""

from __future__ import annotations

from pathlib import Path

import typer

from labelwise.cli.common import friendly_errors, print_json

app = typer.Typer(help="Generate the bundled data sets.", no_args_is_help=True)


@app.command("digits")
@friendly_errors
def digits(
    out: Path = typer.Argument(..., help="Folder to write the data set into."),
    images: int = typer.Option(400, "--images", min=1, help="Pool images (unlabelled split)."),
    val_images: int = typer.Option(80, "--val-images", min=1),
    test_images: int = typer.Option(120, "--test-images", min=1),
    seed: int = typer.Option(0, "--seed"),
    domain: str = typer.Option("target", "--domain", help="target, or source (disjoint digits)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing data set."),
) -> None:
    """Long-tailed handwritten-digit detection data (YOLO format) from scikit-learn's digits."""
    from labelwise.datasets.digits import DigitsConfig, generate_digits

    config = DigitsConfig(pool_images=images, val_images=val_images, test_images=test_images,
                          seed=seed, domain=domain)  # type: ignore[arg-type]
    ds = generate_digits(out, config, overwrite=overwrite)
    print_json({
        "root": str(ds.root), "data_yaml": str(ds.data_yaml), "pool_images": str(ds.pool_images),
        "pool_truth": str(ds.pool_truth), "classes": list(ds.class_names),
    })
