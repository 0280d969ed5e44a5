"""``labelwise benchmark`` and ``labelwise benchmark base`` through Typer's runner (no training:
the library calls are monkeypatched)."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from labelwise.cli import app
from labelwise.cli.benchmark import parse_rare_classes, register

runner = CliRunner()
EXPECTED = "--rare-classes expects distinct non-negative integer class ids separated by commas, e.g. 2,5,8"


@pytest.fixture
def custom(tmp_path) -> list[str]:
    """--pool/--truth/--data of a (never read) custom data set, scratch protocol only."""
    for name in ("pool", "truth"):
        (tmp_path / name).mkdir()
    (tmp_path / "data.yaml").write_text("names: [a, b]\n")
    return ["--pool", str(tmp_path / "pool"), "--truth", str(tmp_path / "truth"),
            "--data", str(tmp_path / "data.yaml"), "--protocol", "scratch"]


@pytest.fixture
def calls(monkeypatch) -> dict[str, list]:
    """Fake prepare_base and run_benchmark that record the config they get."""
    import labelwise.benchmark.runner as runner_mod

    seen: dict[str, list] = {"base": [], "run": []}

    def fake_base(cfg, log=print) -> str:
        seen["base"].append(cfg)
        log("training the base")
        return str(cfg.out / "cache" / "base-abc.pt")

    def fake_run(cfg, log=print):
        seen["run"].append(cfg)
        md = cfg.out / "summary.md"
        md.parent.mkdir(parents=True, exist_ok=True)
        md.write_text("# the summary\n")
        return _Result(md)

    monkeypatch.setattr(runner_mod, "prepare_base", fake_base, raising=False)
    monkeypatch.setattr(runner_mod, "run_benchmark", fake_run)
    return seen


@dataclass(frozen=True)
class _Result:
    summary_md: Path
    failed: dict[str, str] = field(default_factory=dict)


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    ("value", "problem"),
    [("2,x", "'x' is not an integer"), ("2,,5", "an empty item"), ("", "an empty item"),
     ("2,5,2", "2 repeated"), ("-1,3", "-1 is negative"), ("1.5", "'1.5' is not an integer")],
)
def test_bad_rare_classes_is_one_line_naming_expected_and_given(env, custom, calls, value, problem):
    result = invoke("benchmark", *custom, "--rare-classes", value)
    assert result.exit_code == 2
    assert result.stderr == f"error: {EXPECTED}; got {value!r} ({problem})\n"
    assert calls == {"base": [], "run": []}


def test_parse_rare_classes():
    assert parse_rare_classes("2, 5,8") == (2, 5, 8)
    assert parse_rare_classes("0") == (0,)
    assert parse_rare_classes(None) is None


@pytest.mark.parametrize(
    ("args", "given"),
    [(["--manifest", "m.json"], "--manifest"), (["--rare-classes", "1,2"], "--rare-classes"),
     (["--manifest", "m.json", "--rare-classes", "1"], "--manifest and --rare-classes")],
)
def test_manifest_and_rare_classes_need_custom_data(env, calls, args, given):
    result = invoke("benchmark", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {given} only apply to custom data, which needs --pool, --truth and --data;")
    assert calls == {"base": [], "run": []}


def test_missing_manifest_file_is_refused(env, custom, calls, tmp_path):
    result = invoke("benchmark", *custom, "--manifest", str(tmp_path / "nope.json"))
    assert result.exit_code == 2 and "--manifest must be an existing manifest.json file; got" in result.stderr


def test_base_trains_the_base_from_the_options_given_before_it(env, calls, tmp_path):
    result = invoke("benchmark", "--preset", "quick", "--seeds", "1", "--base-epochs", "3",
                    "--out", str(tmp_path / "out"), "base")
    assert result.exit_code == 0, result.output
    (cfg,) = calls["base"]
    assert (cfg.preset, cfg.seeds, cfg.base_epochs, cfg.out) == ("quick", 1, 3, (tmp_path / "out").resolve())
    assert result.stdout == f"{cfg.out / 'cache' / 'base-abc.pt'}\n"  # only the path on stdout
    assert "training the base" in result.stderr
    assert calls["run"] == []


def test_base_with_custom_data_manifest_and_rare_classes(env, calls, custom, tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text("{}")
    result = invoke("benchmark", *custom, "--manifest", str(manifest), "--rare-classes", "2,5,8", "base")
    assert result.exit_code == 0, result.output
    (cfg,) = calls["base"]
    assert cfg.data.manifest == manifest and cfg.data.rare_classes == (2, 5, 8)
    assert cfg.data.pool_images == tmp_path / "pool"
    assert cfg.out == (env / "benchmark" / "full").resolve()  # the default output folder


def test_without_sub_command_the_benchmark_runs_as_before(env, calls):
    result = invoke("benchmark", "--preset", "full", "--protocol", "warm")
    assert result.exit_code == 0, result.output
    (cfg,) = calls["run"]
    assert cfg.preset == "full" and cfg.protocols == ("warm",)
    assert result.stdout == "# the summary\n\n" and calls["base"] == []


def test_pool_preset_and_unknown_preset(env, calls):
    assert invoke("benchmark", "--preset", "pool", "base").exit_code == 0
    assert calls["base"][0].preset == "pool"
    result = invoke("benchmark", "--preset", "huge", "base")
    assert result.exit_code == 2 and "preset must be one of" in result.stderr


def test_sigterm_during_the_run_exits_143_with_one_line(env, monkeypatch):
    import labelwise.benchmark.runner as runner_mod
    from labelwise.benchmark.shutdown import BenchmarkInterrupted

    def stopped(cfg, log=print):
        raise BenchmarkInterrupted(signal.SIGTERM)

    monkeypatch.setattr(runner_mod, "run_benchmark", stopped)
    result = invoke("benchmark", "--preset", "quick")
    assert result.exit_code == 128 + signal.SIGTERM
    assert result.stderr == "error: benchmark stopped by SIGTERM; the worker processes were stopped\n"


def test_help_texts(env, calls):
    group = invoke("benchmark", "--help")
    assert group.exit_code == 0 and "quick, full, pool," in group.output and "base" in group.output
    assert "--task" in group.output
    assert "--manifest" in group.output and "--rare-classes" in group.output
    sub = invoke("benchmark", "base", "--help")
    assert sub.exit_code == 0 and "warm-start base detector" in sub.output
    assert calls == {"base": [], "run": []}


def test_register_on_another_app_keeps_benchmark_a_group(env, calls):
    other = typer.Typer()
    register(other)

    @other.command("noop")
    def noop() -> None:
        """Nothing."""

    result = runner.invoke(other, ["benchmark", "--protocol", "hot"])
    assert result.exit_code == 2 and "--protocol must be one of" in result.output
    assert runner.invoke(other, ["benchmark", "--preset", "quick", "base"]).exit_code == 0
    assert len(calls["base"]) == 1


@pytest.mark.parametrize(("args", "task", "model", "folder"), [
    (["--preset", "full"], "detect", "yolov8n.yaml", "full"),
    (["--preset", "segment"], "segment", "yolov8n-seg.yaml", "segment"),
    (["--preset", "classify"], "classify", "yolov8n-cls.yaml", "classify"),
    (["--preset", "quick", "--task", "Segment"], "segment", "yolov8n-seg.yaml", "quick-segment"),
])
def test_task_comes_from_the_preset_or_the_task_option(env, calls, args, task, model, folder):
    result = invoke("benchmark", *args, "--protocol", "warm")
    assert result.exit_code == 0, result.output
    (cfg,) = calls["run"]
    assert (cfg.task, cfg.model, cfg.out.name) == (task, model, folder)
    assert cfg.pseudo_strategies == () or task == "detect"


def test_unknown_task_is_one_line_naming_the_task_types(env, calls):
    result = invoke("benchmark", "--task", "boxes")
    assert result.exit_code == 2
    assert result.stderr == ("error: --task: unknown task type 'boxes'; expected one of "
                             "['detect', 'classify', 'segment']\n")
    assert calls == {"base": [], "run": []}


@pytest.mark.parametrize(("args", "weight", "code"), [
    (["--mask-weight", "0.5"], 0.5, 0),
    ([], None, 0),
    (["--mask-weight", "1.5"], None, 2),  # out of [0, 1]: Typer's range check, nothing run
])
def test_the_mask_weight_reaches_the_segmentation_scoring(env, calls, args, weight, code):
    result = invoke("benchmark", "--preset", "segment", "--protocol", "warm", *args)
    assert result.exit_code == code, result.output
    if code:
        assert "--mask-weight" in result.output and calls["run"] == []
        return
    (cfg,) = calls["run"]
    assert cfg.mask_weight == weight
    assert cfg.product_settings().scoring.mask_weight == (weight or 0.0)
