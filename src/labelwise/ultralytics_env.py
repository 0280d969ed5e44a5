"""Process-wide setup for ultralytics and open_clip: offline, quiet, project-local, all cores.

Ultralytics reads its environment once, when it is first imported: ``YOLO_CONFIG_DIR`` fixes
where ``settings.json`` lives (otherwise ``~/.config/Ultralytics``), ``YOLO_OFFLINE`` skips the
network probe and ``YOLO_AUTOINSTALL`` lets it pip-install missing packages. It also sets
``OMP_NUM_THREADS=1`` when unset and, whenever it selects a CPU device, calls
``torch.set_num_threads(ultralytics.utils.torch_utils.NUM_THREADS)`` = ``min(8, cpu_count - 1)``:
one thread on a 2-core machine. :func:`prepare_ultralytics` therefore has to run before the first
``import ultralytics`` and patches that module global afterwards. It also undoes ultralytics'
process-wide ``PIL.Image.open`` patch (see :func:`_restore_pil_open`).

Nothing happens at import time of this module.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

# Ultralytics integrations that log to external services; all are switched off.
_INTEGRATION_SETTINGS = ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")
_FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")

_prepared: dict[str, Path | int | None] = {"config_dir": None, "threads": None}


def set_offline_env() -> None:
    """Set the environment switches that keep ultralytics and Hugging Face off the network.

    ``YOLO_OFFLINE=1`` and ``YOLO_AUTOINSTALL=0`` (read when ultralytics is imported) and
    ``HF_HUB_OFFLINE=1`` (read when huggingface_hub, which open_clip imports, is imported).
    Existing values are overwritten: Labelwise only ever loads local weight files.
    """
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ["HF_HUB_OFFLINE"] = "1"


def set_thread_env(threads: int) -> None:
    """OpenMP environment for torch; effective only if torch is not imported yet.

    ``OMP_NUM_THREADS`` (ultralytics forces 1 when unset) defaults to ``threads``.
    ``OMP_WAIT_POLICY`` defaults to ``PASSIVE``: with the default busy-wait, 2 torch threads on a
    2-core machine where another process (Label Studio, a server) holds one core took 7-9 s to
    predict 64 images at 128 px instead of 0.5 s; on an idle machine passive costs ~0.2 s of 0.3 s.
    Set either variable yourself to override.
    """
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def resolve_threads(threads: int = 0) -> int:
    """Torch threads to use: ``threads`` when positive, else every core (``os.cpu_count()``)."""
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0 = all cores); got {threads}")
    return threads if threads > 0 else max(1, os.cpu_count() or 1)


def current_config_dir() -> Path | None:
    """The ``YOLO_CONFIG_DIR`` that :func:`prepare_ultralytics` set up in this process, if any."""
    value = _prepared["config_dir"]
    return value if isinstance(value, Path) else None


def _matplotlib_font() -> Path | None:
    """matplotlib's bundled DejaVuSans.ttf, found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        candidate = Path(root) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if candidate.is_file():
            return candidate
    return None


def _install_fonts(ultralytics_dir: Path) -> None:
    """Put Arial.ttf / Arial.Unicode.ttf where ``check_font`` looks before it downloads."""
    source = _matplotlib_font()
    if source is None:
        return  # plots may then try the network; Labelwise runs with plots=False anyway
    ultralytics_dir.mkdir(parents=True, exist_ok=True)
    for name in _FONT_NAMES:
        target = ultralytics_dir / name
        if not target.exists():
            shutil.copyfile(source, target)


def _restore_pil_open() -> None:
    """Undo ultralytics' process-wide ``PIL.Image.open`` patch when it cannot work.

    Importing ultralytics replaces ``PIL.Image.open`` with a wrapper that, on the first file
    Pillow cannot identify, tries to install/import ``pi_heif`` for HEIC support. Without
    pi-heif (and with auto-install off) every unreadable file then raises
    ``ModuleNotFoundError: pi_heif`` instead of ``PIL.UnidentifiedImageError``, in all code of
    the process. The original function is put back unless pi-heif is installed.
    """
    if importlib.util.find_spec("pi_heif") is not None:
        return
    from PIL import Image
    from ultralytics.utils import patches

    original = getattr(patches, "_image_open", None)
    if original is not None and Image.open is not original:
        Image.open = original


def _apply_threads(threads: int) -> None:
    import torch
    import ultralytics.utils.torch_utils as torch_utils

    torch_utils.NUM_THREADS = threads  # read by select_device() at every predictor/trainer setup
    torch.set_num_threads(threads)


def _log_to_stderr(logger: logging.Logger) -> None:
    """ultralytics logs to stdout; commands print their JSON results there, so move it."""
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is sys.stdout:
            handler.setStream(sys.stderr)


def prepare_ultralytics(config_dir: Path, threads: int = 0) -> None:
    """Make ultralytics offline, project-local and multi-threaded; call before importing it.

    Idempotent: a second call with the same ``config_dir`` only re-applies the thread count.

    Args:
        config_dir: becomes ``YOLO_CONFIG_DIR`` (normally ``<state_dir>/ultralytics``); ultralytics
            keeps ``Ultralytics/settings.json`` and the fonts below it, and its default runs,
            weights and datasets folders are pointed inside it too.
        threads: torch intra-op threads; 0 = every core.

    Raises:
        RuntimeError: ultralytics was already imported with a different config dir (its settings
            file location cannot change after import).
    """
    config_dir = Path(config_dir).expanduser().resolve()
    n_threads = resolve_threads(threads)
    ultralytics_dir = config_dir / "Ultralytics"

    if _prepared["config_dir"] == config_dir:
        _apply_threads(n_threads)
        _prepared["threads"] = n_threads
        return

    if "ultralytics" in sys.modules:
        from ultralytics.utils import USER_CONFIG_DIR

        actual = Path(USER_CONFIG_DIR).resolve()
        if actual != ultralytics_dir:
            raise RuntimeError(
                f"ultralytics was imported before prepare_ultralytics() with its config dir at "
                f"{actual}; expected {ultralytics_dir}. Call prepare_ultralytics({config_dir}) "
                f"before anything imports ultralytics (one config dir per process)."
            )

    set_offline_env()
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    set_thread_env(n_threads)
    _install_fonts(ultralytics_dir)

    with contextlib.redirect_stdout(sys.stderr):  # its first-run settings banner
        from ultralytics.utils import LOGGER, SETTINGS
    _log_to_stderr(LOGGER)

    wanted: dict[str, object] = {key: False for key in _INTEGRATION_SETTINGS}
    wanted.update(
        sync=False,
        runs_dir=str(config_dir / "runs"),
        weights_dir=str(config_dir / "weights"),
        datasets_dir=str(config_dir / "datasets"),
    )
    if any(SETTINGS.get(k) != v for k, v in wanted.items()):
        SETTINGS.update(wanted)

    _restore_pil_open()
    _apply_threads(n_threads)
    _prepared["config_dir"] = config_dir
    _prepared["threads"] = n_threads


def ensure_ultralytics(default_config_dir: Path, threads: int = 0) -> Path:
    """Prepare ultralytics unless this process already did; return the config dir in use.

    Adapters call this: the first :func:`prepare_ultralytics` of a process wins (its settings
    file location cannot change after import), later callers with another state folder reuse it
    and only get their thread count applied.

    Raises:
        RuntimeError: ultralytics was imported without :func:`prepare_ultralytics` and with a
            different config dir.
    """
    current = current_config_dir()
    if current is not None:
        prepare_ultralytics(current, threads=threads)
        return current
    prepare_ultralytics(default_config_dir, threads=threads)
    return Path(default_config_dir).expanduser().resolve()


def cpu_training_args(
    ref: str, data: Path, out_dir: Path, name: str, *, epochs: int, batch: int, imgsz: int,
    seed: int, patience: int, device: str, **extra: Any,
) -> dict[str, Any]:
    """Ultralytics trainer overrides of Labelwise's CPU recipe, for every task's trainer.

    amp off, workers 0 (no dataloader processes on 2 cores), plots off, deterministic,
    validation only at the last epoch (ultralytics always validates then), and checkpoints only
    at the last epoch (ultralytics writes last.pt and best.pt then: saving every epoch cost 0.33 s
    of a 0.45 s epoch on 16 images at 96 px). An early stop ends before the last epoch, so with
    ``patience`` every epoch is saved. ``extra`` (the task's own keys, the recipe's overrides)
    goes last and wins.
    """
    return {
        "model": ref,
        "data": str(data),
        "epochs": epochs,
        "batch": batch,
        "imgsz": imgsz,
        "seed": seed,
        "patience": patience,
        "deterministic": True,
        "device": device,
        "amp": False,
        "workers": 0,
        "plots": False,
        "val": False,
        "save": patience > 0,
        "project": str(out_dir),
        "name": name,
        "exist_ok": True,
        "verbose": False,
        **extra,
    }
