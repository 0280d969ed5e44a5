"""``load_settings`` is safe to call from many threads at once (issue 13, item 4).

Mapped auto-label tasks run on Prefect's thread pool and each loads the flow's config file, so
two loads of different files (or of a file and of no file) overlap. Each must get its own file's
values: not the other thread's, not the defaults. The precedence table checks that the per-call
sources keep the documented order: keyword arguments > ``LABELWISE_*`` > the YAML file > defaults.
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from labelwise.config import Settings, load_settings

THREADS = 8
ITERATIONS = 60
DEFAULT_LIMIT = Settings.model_fields["selection"].default_factory().limit  # type: ignore[misc]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ``LABELWISE_*`` variable and no ``./labelwise.yaml``: only the files the test names."""
    for key in list(os.environ):
        if key.startswith("LABELWISE_"):
            monkeypatch.delenv(key)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


@pytest.fixture
def fast_switching():
    """Switch threads every microsecond (Python's default is every 5 ms): the loads interleave
    inside one another instead of running one after the other."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


FILE_SEED = 7  # every test file also sets selection.seed (default 0): merged, not replaced


def config_file(folder: Path, name: str, limit: int) -> Path:
    path = folder / f"{name}.yaml"
    body = {"state_dir": str(folder / name), "selection": {"limit": limit, "seed": FILE_SEED}}
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.mark.parametrize("loads", [
    # (file name or None = no file, the selection.limit that load must see)
    [("a", 11), ("b", 22)],                 # two flows' config files at once
    [("a", 11), (None, DEFAULT_LIMIT)],     # a file and the defaults at once
    [("a", 11), ("b", 22), ("c", 33), (None, DEFAULT_LIMIT)],
])
def test_concurrent_loads_each_get_their_own_file(
    clean_env: Path, fast_switching: None, loads: list[tuple[str | None, int]]
) -> None:
    paths = {name: config_file(clean_env, name, limit) for name, limit in loads if name is not None}
    states = {name: (clean_env / name if name else Path(".labelwise")).resolve()
              for name, _ in loads}
    jobs = [loads[i % len(loads)] for i in range(THREADS)]
    barrier = threading.Barrier(THREADS)

    def load(job: tuple[str | None, int]) -> list[str]:
        name, limit = job
        path = paths[name] if name is not None else None
        wrong = []
        for i in range(ITERATIONS):
            barrier.wait()  # every thread starts its load at the same instant
            got = load_settings(path)
            if got.selection.limit != limit or got.state_dir != states[name]:
                wrong.append(f"iteration {i}: {name or 'no file'} got limit "
                             f"{got.selection.limit}, state_dir {got.state_dir}")
        return wrong

    with ThreadPoolExecutor(THREADS) as pool:
        wrong = [w for found in pool.map(load, jobs) for w in found]
    total = THREADS * ITERATIONS
    assert wrong == [], f"{len(wrong)} of {total} loads got another's values: {wrong[:5]}"


@pytest.mark.parametrize("yaml_limit, env_limit, kwarg_limit, expected", [
    (None, None, None, DEFAULT_LIMIT),  # defaults
    (11, None, None, 11),               # the file over the defaults
    (11, "22", None, 22),               # the environment over the file
    (11, "22", 33, 33),                 # keyword arguments over everything
    (None, "22", None, 22),             # the environment without a file
    (None, None, 33, 33),               # keyword arguments without a file
])
def test_precedence_kwargs_env_file_defaults(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch,
    yaml_limit: int | None, env_limit: str | None, kwarg_limit: int | None, expected: int,
) -> None:
    path = config_file(clean_env, "a", yaml_limit) if yaml_limit is not None else None
    if env_limit is not None:
        monkeypatch.setenv("LABELWISE_SELECTION__LIMIT", env_limit)
    overrides = {"selection": {"limit": kwarg_limit}} if kwarg_limit is not None else {}
    got = load_settings(path, **overrides)
    assert got.selection.limit == expected
    # A section is merged across sources: the file's other selection field survives.
    assert got.selection.seed == (FILE_SEED if path is not None else 0)


def test_the_file_is_found_per_call_from_the_environment(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABELWISE_CONFIG", str(config_file(clean_env, "a", 11)))
    assert load_settings().selection.limit == 11
    monkeypatch.delenv("LABELWISE_CONFIG")
    assert load_settings().selection.limit == DEFAULT_LIMIT  # nothing of the last load is left


def test_settings_name_their_file_explicitly(clean_env: Path) -> None:
    from labelwise.config import CONFIG_FILE_KWARG

    path = config_file(clean_env, "a", 11)
    assert Settings(**{CONFIG_FILE_KWARG: path}).selection.limit == 11
    assert Settings(**{CONFIG_FILE_KWARG: None}).selection.limit == DEFAULT_LIMIT
    assert Settings().selection.limit == DEFAULT_LIMIT  # no file unless one is named


@pytest.mark.parametrize("source, name", [
    (source, name) for source in ("file", "env", "kwargs")
    for name in ("routing", "evaluation")  # serving's knobs and their earlier names
])
def test_serving_routing_knobs_read_under_both_names(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, source: str, name: str
) -> None:
    values = {f"{name}_strategy": "margin_sampling", f"{name}_threshold": 0.25}
    path = None
    overrides: dict = {}
    if source == "file":
        path = clean_env / "serving.yaml"
        path.write_text(yaml.safe_dump({"state_dir": str(clean_env / "s"), "serving": values}))
    elif source == "env":
        for key, value in values.items():
            monkeypatch.setenv(f"LABELWISE_SERVING__{key.upper()}", str(value))
    else:
        overrides = {"serving": values}
    serving = load_settings(path, **overrides).serving
    assert (serving.routing_strategy, serving.routing_threshold) == ("margin_sampling", 0.25)
    assert "evaluation_threshold" not in serving.model_dump()  # written back under the new name
