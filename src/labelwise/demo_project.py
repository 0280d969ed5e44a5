"""The demo project: the bundled long-tail digits as a pool, a fixed held-out split, and the
settings of a small closed loop that runs in minutes on two CPU cores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labelwise.config import Settings

DEMO_PROJECT = "digits-demo"

# Small on purpose: 2 cores, no GPU. Raise for real data.
DEMO_OVERRIDES: dict[str, dict[str, object]] = {
    "detector": {"model": "yolov8n.yaml", "imgsz": 128, "batch": 32},
    "training": {"epochs": 20, "min_image_passes": 1200, "batch": 8},
    "selection": {"limit": 20, "diversity_weight": 0.3},
    # Rounds the webhook's learn runs learn are logged under the loop's campaign run.
    "tracking": {"campaign": "demo"},
}


@dataclass(frozen=True)
class DemoProject:
    name: str
    dataset_root: Path
    data_yaml: Path
    truth_dir: Path
    pool_images: int


def demo_settings(base: Settings) -> Settings:
    """``base`` with the demo's small detector and training recipe."""
    update = {section: getattr(base, section).model_copy(update=values)
              for section, values in DEMO_OVERRIDES.items()}
    return base.model_copy(update=update)


def prepare_demo_project(
    settings: Settings, name: str = DEMO_PROJECT, pool_images: int = 300, seed: int = 0
) -> DemoProject:
    """Generate the data (once), create the project, fix the held-out split, add the pool.

    The data lives under the state folder, which is Label Studio's local-files root.
    Idempotent: a second call reuses the data and adds nothing twice.
    """
    from labelwise.datasets.digits import DigitsConfig, generate_digits, load_dataset
    from labelwise.runtime import open_catalog

    root = settings.state_dir / "data" / f"digits-{seed}-{pool_images}"
    if (root / "manifest.json").exists():
        ds = load_dataset(root)
    else:
        ds = generate_digits(root, DigitsConfig(pool_images=pool_images, seed=seed))
    catalog = open_catalog(settings)
    project = catalog.create_project(name, list(ds.class_names))
    catalog.set_holdout(project, ds.data_yaml, "test")
    catalog.add_images(project, ds.pool_images)
    return DemoProject(name, ds.root, ds.data_yaml, ds.pool_truth, pool_images)
