"""CSV schema and config validation of the benchmark."""

from __future__ import annotations

import csv
import math

import pytest

from labelwise.benchmark.config import BenchmarkConfig, default_strategies, preset
from labelwise.benchmark.outputs import CORE_COLUMNS, csv_columns, read_csv, write_csv
from labelwise.strategies import STRATEGIES

NAMES = ("0", "1", "2")


def _row(strategy: str, seed: int, r: int) -> dict:
    return {"protocol": "warm", "strategy": strategy, "seed": seed, "round": r, "labelled_images": 8 * (r + 1),
            "labelled_boxes": 20 * (r + 1), "new_images": 8, "new_boxes": 20, "map50": 0.1 * r,
            "map50_95": 0.05 * r, "precision": 0.5, "recall": 0.4, "rare_boxes": r, "rare_boxes_gained": 1,
            "near_duplicates": 0, "near_duplicates_total": 0, "epochs": 10, "train_seconds": 1.5,
            "eval_seconds": 0.2, "select_seconds": 0.1, "ap50/0": 0.3, "ap50/1": float("nan"),
            "ap50/2": 0.1, "boxes/0": 10, "boxes/1": 5, "boxes/2": 5}


def test_csv_schema_and_round_trip(tmp_path):
    rows = [_row(s, seed, r) for s in ("random", "entropy") for seed in (1, 0) for r in (1, 0)]
    path = write_csv(tmp_path / "results.csv", rows, NAMES, "quick")
    with path.open() as fh:
        header = next(csv.reader(fh))
    assert header == csv_columns(NAMES)
    assert header[: len(CORE_COLUMNS)] == list(CORE_COLUMNS)
    back = read_csv(path)
    assert len(back) == len(rows)
    keys = [(r["strategy"], r["seed"], r["round"]) for r in back]
    assert keys == sorted(keys)  # one row per protocol x strategy x seed x round, ordered
    assert back[0]["preset"] == "quick" and back[0]["protocol"] == "warm"
    assert math.isnan(back[0]["ap50/1"]) and back[0]["ap50/0"] == pytest.approx(0.3)
    assert isinstance(back[0]["labelled_images"], int)


def test_default_strategies_follow_the_registry():
    names = default_strategies()
    assert names[0] == "random" and "cold_start" not in names
    assert set(names) == set(STRATEGIES) - {"cold_start"}  # new strategies are picked up


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"strategies": ("nope",)}, "unknown strategies"), ({"protocols": ("hot",)}, "protocols"),
     ({"seeds": 0}, "seeds"), ({"initial": 300, "pool_images": 100}, "pool_images")],
)
def test_config_refuses_bad_values(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        BenchmarkConfig(out=tmp_path, **changes)


def test_random_is_always_compared_and_presets_apply(tmp_path):
    cfg = BenchmarkConfig(out=tmp_path, strategies=("entropy",))
    assert cfg.strategies == ("random", "entropy")
    quick = preset("quick", tmp_path, seeds=None, rounds=1)
    assert quick.preset == "quick" and quick.rounds == 1 and quick.seeds == 2
    with pytest.raises(ValueError, match="preset must be one of"):
        preset("huge", tmp_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--protocol", "hot"], "--protocol must be one of"),
     (["--pool", "/tmp"], "needs all of --pool, --truth and --data"),
     (["--pool", "/tmp", "--truth", "/tmp", "--data", "/tmp/d.yaml"], "needs --base-weights")],
)
def test_cli_refuses_bad_arguments(args, message):
    import typer
    from typer.testing import CliRunner

    from labelwise.cli.benchmark import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:  # a second command keeps `benchmark` a named sub-command
        """Nothing."""

    result = CliRunner().invoke(app, ["benchmark", *args])
    assert result.exit_code == 2
    assert message in result.output
