"""The benchmark and the product train by ONE recipe: same training-set writer, same
ultralytics arguments for the same settings, and the pool preset runs the product's defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labelwise.benchmark.config import BenchmarkConfig, DataSpec, preset
from labelwise.config import ScoringSettings, SelectionSettings, Settings, TrainingSettings


class _Captured(Exception):
    """Raised by the patched trainer once it has recorded its arguments."""


@pytest.fixture
def capture_train(monkeypatch) -> list[dict[str, Any]]:
    """Every YoloDetector.train call's (data yaml, keyword arguments), instead of training."""
    from labelwise.detector import YoloDetector

    calls: list[dict[str, Any]] = []

    def fake_train(self, data_yaml, out_dir, **kwargs):
        calls.append({"data_yaml": Path(data_yaml), **kwargs})
        raise _Captured

    monkeypatch.setattr(YoloDetector, "train", fake_train)
    return calls


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from labelwise.datasets import DigitsConfig, generate_digits

    return generate_digits(tmp_path_factory.mktemp("digits"), DigitsConfig(pool_images=6, val_images=2, test_images=2))


def _training_set(data_yaml: Path) -> dict[str, tuple[bytes, str]]:
    """image bytes + label text of a written training set, keyed by label file content order."""
    import yaml

    data = yaml.safe_load(data_yaml.read_text())
    images = sorted(Path(data["train"]).iterdir())
    labels = Path(data["train"]).parent / "labels"
    return {p.read_bytes(): (labels / f"{p.stem}.txt").read_text() for p in images}


@pytest.mark.parametrize("recipe", [
    TrainingSettings(start_from="base"),
    TrainingSettings(start_from="base", epochs=3, min_image_passes=50, batch=4, lr0=0.01, optimizer="SGD", seed=5),
])
def test_product_round_and_benchmark_round_train_identically(tmp_path, digits, capture_train, recipe):
    from labelwise.benchmark.data import prepare_data
    from labelwise.benchmark.trajectory import train_and_evaluate
    from labelwise.catalog import Catalog
    from labelwise.learn import retrain

    names = [str(i) for i in range(10)]
    settings = Settings(state_dir=tmp_path / "state", training=recipe)
    catalog = Catalog.open(settings.resolved_catalog_url)
    try:
        project = catalog.create_project("p", names)
        catalog.add_images(project, digits.pool_images)
        project = catalog.set_holdout(project, digits.data_yaml, "test")
        by_name = {r.path.stem: r.image_id for r in catalog.images(project)}
        from labelwise.datasets import read_yolo_labels

        truth = {stem: read_yolo_labels(digits.pool_truth / f"{stem}.txt") for stem in by_name}
        catalog.save_labels(project, {by_name[s]: b for s, b in truth.items()}, source="test")
        with pytest.raises(_Captured):
            retrain(settings, catalog, project, 1, "yolov8n.yaml")
    finally:
        catalog.close()

    cfg = BenchmarkConfig(out=tmp_path / "bench", protocols=("scratch",), seeds=1, rounds=0, initial=6,
                          per_round=1, data=DataSpec(digits.pool_images, digits.pool_truth, digits.data_yaml),
                          epochs=recipe.epochs, min_image_passes=recipe.min_image_passes, batch=recipe.batch,
                          lr0=recipe.lr0, optimizer=recipe.optimizer)
    bench_settings = cfg.product_settings()
    assert bench_settings.training.model_dump() == {**recipe.model_dump(), "seed": 0}
    data = prepare_data(cfg)
    oracle = data.oracle()
    with pytest.raises(_Captured):
        train_and_evaluate(bench_settings, data, "yolov8n.yaml",
                           [data.train_item(oracle, i) for i in range(len(data.pool_paths))],
                           tmp_path / "job", "round-0", seed=recipe.seed)

    product, bench = capture_train
    for call in (product, bench):
        call.pop("name")
    assert _training_set(product.pop("data_yaml")) == _training_set(bench.pop("data_yaml"))
    assert product == bench  # every ultralytics argument of the recipe
    assert product["epochs"] == max(recipe.epochs, -(-recipe.min_image_passes // 6))


def test_pool_preset_measures_the_products_defaults(tmp_path):
    st = preset("pool", tmp_path).product_settings()
    assert st.training == TrainingSettings(start_from="base")  # the one documented difference
    assert st.training.model_copy(update={"start_from": "champion"}) == TrainingSettings()
    assert preset("pool", tmp_path).job_settings(pseudo=False).training == TrainingSettings(start_from="base", pseudo_labels=False)
    assert st.scoring == ScoringSettings()
    assert st.selection == SelectionSettings(limit=20)


def test_start_from_base_always_restarts_from_the_configured_model(tmp_path, monkeypatch):
    from labelwise import learn

    def no_tracker(*_args, **_kwargs):  # start_from base must not even look at the registry
        raise AssertionError("the registry was consulted")

    monkeypatch.setattr(learn, "tracker_for", no_tracker)
    settings = Settings(state_dir=tmp_path, training=TrainingSettings(start_from="base"))
    base = learn.resolve_base_model(settings, "p")
    assert (base.ref, base.source) == (settings.detector.model, "configured")
    assert learn.resolve_base_model(settings, "p", "/some/explicit.pt").source == "explicit"


def test_training_plan_caps_batch_and_floors_epochs():
    from labelwise.training import training_plan

    plan = training_plan(TrainingSettings(epochs=10, min_image_passes=1600, batch=8), 20)
    assert (plan.epochs, plan.batch, plan.overrides["nbs"]) == (80, 8, 8)
    plan = training_plan(TrainingSettings(epochs=10, min_image_passes=1600, batch=8), 5, seed=3)
    assert (plan.epochs, plan.batch, plan.seed, plan.overrides["nbs"]) == (320, 5, 3, 5)
    assert np.isclose(plan.overrides["mosaic"], 0.0)


def test_the_product_defaults_are_the_ones_the_pool_tables_chose():
    from labelwise.strategies import DEFAULT_STRATEGY

    assert SelectionSettings().strategy == DEFAULT_STRATEGY == "rare_class_diverse"
    assert TrainingSettings().pseudo_labels is True
    st = preset("pool", Path("/tmp/x"))
    assert {"random", DEFAULT_STRATEGY} <= set(st.pseudo_strategies)  # the tables measure the default's twin
    assert st.job_settings(pseudo=False).training.pseudo_labels is False  # supervised rows stay supervised
