"""Fixtures for the loop: ONE Prefect test harness per session and tiny digits projects
wired to the session's real Label Studio server and a real MLflow sqlite store."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from labelwise.config import Settings, write_settings

TINY = dict(pool_images=24, val_images=6, test_images=10, canvas_min=64, canvas_max=96,
            digit_size_min=14, digit_size_max=30, digits_max=3, cluster_size_max=4)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@dataclass(frozen=True)
class LoopProject:
    name: str
    settings: Settings
    config: str  # the YAML file tasks read
    truth_dir: Path
    data_yaml: Path


@pytest.fixture(scope="session")
def tiny_digits(labelstudio: tuple[str, str, Path]):  # type: ignore[no-untyped-def]
    """One tiny generated data set under the Label Studio document root, shared by the session."""
    from labelwise.datasets.digits import DigitsConfig, generate_digits

    _, _, root = labelstudio
    return generate_digits(root / "tiny-digits", DigitsConfig(seed=3, **TINY))


@pytest.fixture
def make_loop_project(make_ls_settings: Callable[..., Settings], tiny_digits) -> Callable[..., LoopProject]:  # type: ignore[no-untyped-def]
    """A fresh project (own state folder, catalog, MLflow store) on the tiny data; the catalog
    in the state folder's SQLite file, or at ``catalog_url`` (e.g. a PostgreSQL database)."""
    from labelwise.runtime import open_catalog

    def make(name: str, catalog_url: str | None = None, **ls_overrides: object) -> LoopProject:
        base = make_ls_settings(name, **ls_overrides)
        settings = base.model_copy(update={
            "catalog_url": catalog_url,
            "detector": base.detector.model_copy(update={"imgsz": 64, "batch": 16}),
            "training": base.training.model_copy(update={"epochs": 2, "min_image_passes": 0, "batch": 8}),
            "selection": base.selection.model_copy(update={"limit": 6, "diversity_weight": 0.3}),
            "embedder": base.embedder.model_copy(update={"kind": "detector"}),
        })
        config = write_settings(settings, settings.state_dir / "labelwise.yaml")
        catalog = open_catalog(settings)
        project = catalog.create_project(name, list(tiny_digits.class_names))
        catalog.set_holdout(project, tiny_digits.data_yaml, "test")
        catalog.add_images(project, tiny_digits.pool_images)
        catalog.close()
        return LoopProject(name, settings, str(config), tiny_digits.pool_truth, tiny_digits.data_yaml)

    return make
