"""Building or loading an ultralytics model of one task: the one loading path of the detector,
classifier and segmenter adapters.

A reference is a local ``.pt`` checkpoint or an ultralytics model yaml (a stock name such as
``yolov8n-seg.yaml`` or a path); registry and remote URIs are resolved to a local file by the
tracking layer before they get here. A yaml builds a fresh model with random weights, seeded (same
yaml + seed -> same weights -> same version), with one output per project class. A model whose
task is not the adapter's is refused with :class:`~labelwise.task_types.TaskMismatch` naming both.
Nothing is imported from ultralytics or torch until a model is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelwise.task_types import TaskType, check_model_task

YAML_SUFFIXES = (".yaml", ".yml")
WEIGHTS_SUFFIX = ".pt"
ACCEPTED_REFS = (
    "a local .pt weights file (e.g. runs/train/weights/best.pt) or an ultralytics model yaml "
    "(e.g. yolov8n.yaml, yolov8n-cls.yaml, yolov8n-seg.yaml, or a path to a custom model .yaml; "
    "random init)"
)

_MODEL_CLASS = {TaskType.DETECT: "DetectionModel", TaskType.CLASSIFY: "ClassificationModel",
                TaskType.SEGMENT: "SegmentationModel"}
_HEAD_CLASS = {TaskType.DETECT: "Detect", TaskType.CLASSIFY: "Classify", TaskType.SEGMENT: "Segment"}


@dataclass(frozen=True)
class ModelKind:
    """Which ultralytics model an adapter loads.

    Attributes:
        task: the model task (``detect``, ``classify``, ``segment``).
        noun: how messages name the model (``detector``, ``classifier``, ``segmentation model``).
        outputs: what one class is to the model, for the class-names message
            (``one per head output``, ``one per softmax column``).
    """

    task: TaskType
    noun: str
    outputs: str

    @property
    def example_yaml(self) -> str:
        from labelwise.task_types import model_yaml_name

        return model_yaml_name(self.task)


DETECTOR = ModelKind(TaskType.DETECT, "detector", "one per head output")
CLASSIFIER = ModelKind(TaskType.CLASSIFY, "classifier", "one per softmax column")
SEGMENTER = ModelKind(TaskType.SEGMENT, "segmentation model", "one per class score")


def check_class_names(class_names: Sequence[str]) -> tuple[str, ...]:
    """``class_names`` as a tuple of strings; a ValueError when one is empty or repeated."""
    names = tuple(str(n) for n in class_names)
    if len(set(names)) != len(names) or any(not n.strip() for n in names):
        raise ValueError(f"class_names must be unique and non-empty; got {list(names)}")
    return names


def model_task(model: Any) -> str | None:
    """The task of a loaded ultralytics model: from its yaml's head when it has one, else its
    ``task`` attribute (ultralytics' checkpoint loader sets it)."""
    from ultralytics.nn.tasks import guess_model_task

    yaml_cfg = getattr(model, "yaml", None)
    if isinstance(yaml_cfg, dict) and yaml_cfg.get("head"):
        return str(guess_model_task(yaml_cfg))
    task = getattr(model, "task", None)
    return None if task is None else str(task)


def require_head(kind: ModelKind, model: Any, ref: str) -> None:
    """Refuse a model that is not ``kind``'s ultralytics model class with its YOLO head last."""
    import ultralytics.nn.modules.head as heads
    import ultralytics.nn.tasks as tasks

    model_class = getattr(tasks, _MODEL_CLASS[kind.task])
    head_class = getattr(heads, _HEAD_CLASS[kind.task])
    layers = getattr(model, "model", None)
    head = layers[-1] if isinstance(model, model_class) and layers is not None else None
    if not isinstance(head, head_class):
        raise ValueError(
            f"{ref} holds a {type(model).__name__} whose last layer is "
            f"{type(head).__name__ if head is not None else 'missing'}; expected an ultralytics "
            f"{_MODEL_CLASS[kind.task]} with a YOLO {_HEAD_CLASS[kind.task]} head"
        )


def build_from_yaml(kind: ModelKind, cfg: str, names: tuple[str, ...], seed: int) -> Any:
    """A fresh ``kind`` model from ``cfg`` with ``len(names)`` classes, weights seeded by
    ``seed``, fp32, eval mode."""
    import torch
    import ultralytics.nn.tasks as tasks
    from ultralytics.utils import DEFAULT_CFG_DICT

    try:
        cfg_dict = tasks.yaml_model_load(cfg)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"model yaml {cfg} not found; expected an ultralytics {kind.noun} name such as "
            f"{kind.example_yaml} or an existing .yaml path ({exc})"
        ) from exc
    check_model_task(kind.task, tasks.guess_model_task(cfg_dict), cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = getattr(tasks, _MODEL_CLASS[kind.task])(cfg_dict, nc=len(names), verbose=False)
    model.names = dict(enumerate(names))
    model.args = {**DEFAULT_CFG_DICT, "model": cfg, "task": kind.task.value}
    model.task = kind.task.value
    require_head(kind, model, cfg)
    return model.float().eval()


def load_weights(kind: ModelKind, path: Path) -> Any:
    """The ``kind`` model of the checkpoint ``path``, fp32, eval mode."""
    from ultralytics.nn.tasks import load_checkpoint

    try:
        model, _ = load_checkpoint(str(path))
    except Exception as exc:  # corrupt file, foreign pickle, ...
        raise ValueError(f"cannot load {kind.noun} weights {path}: {exc}") from exc
    check_model_task(kind.task, model_task(model), str(path))
    require_head(kind, model, str(path))
    return model.float().eval()


def load_yolo_model(kind: ModelKind, ref: str | Path, class_names: Sequence[str] | None,
                    seed: int) -> tuple[Any, tuple[str, ...], str]:
    """Build (yaml) or load (.pt) a ``kind`` model.

    Args:
        ref: a local ``.pt`` or a model yaml (see the module docstring).
        class_names: required for a yaml; for a ``.pt`` optional, and then must equal the
            checkpoint's names in order.
        seed: torch seed of a yaml build.

    Returns:
        (the ultralytics model, its class names, the reference as stored: a .pt's resolved path).

    Raises:
        TaskMismatch: a yaml or checkpoint of another task, naming both tasks.
        ValueError: an unsupported or remote reference, missing/duplicate class names, names not
            matching the checkpoint, an unreadable checkpoint or one without the task's head.
        FileNotFoundError: the ``.pt`` (or a custom yaml) does not exist.
    """
    ref_str = str(ref).strip()
    lowered = ref_str.lower()
    if lowered.startswith("models:/") or "://" in lowered:
        raise ValueError(f"unsupported {kind.noun} reference {ref_str!r}: registry/remote URIs must be "
                         f"resolved to a local file first; expected {ACCEPTED_REFS}")
    if lowered.endswith(YAML_SUFFIXES):
        if not class_names:
            raise ValueError(f"building {ref_str} from yaml needs class_names ({kind.outputs}); got "
                             f"{class_names!r}")
        names = check_class_names(class_names)
        return build_from_yaml(kind, ref_str, names, seed), names, ref_str
    if lowered.endswith(WEIGHTS_SUFFIX):
        path = Path(ref_str).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{kind.noun} weights {path} do not exist; expected a .pt file")
        model = load_weights(kind, path)
        names = tuple(str(model.names[i]) for i in sorted(model.names))
        if class_names is not None and tuple(class_names) != names:
            raise ValueError(f"class_names must match the checkpoint {path} in order; expected "
                             f"{list(names)}, got {list(class_names)}")
        return model, names, str(path)
    raise ValueError(f"unsupported {kind.noun} reference {ref_str!r}; expected {ACCEPTED_REFS}")


@dataclass(frozen=True)
class TrainResult:
    """A finished training run.

    Attributes:
        weights: best.pt (last.pt when no best was written) of the run; load it with the
            adapter's ``load``.
        seconds: wall time of the run.
        epochs: epochs actually trained (fewer than asked when early stopping fired).
        run_dir: the ultralytics run folder (args.yaml, weights/, results.csv).
    """

    weights: Path
    seconds: float
    epochs: int
    run_dir: Path


def train_from(trainer: Any, model: Any) -> TrainResult:
    """Run an ultralytics ``trainer`` starting from ``model``'s weights (a yaml reference would
    otherwise be rebuilt with new random weights); the run's best (else last) checkpoint.

    Raises:
        RuntimeError: the run wrote no checkpoint.
    """
    import copy
    import time

    start = time.perf_counter()
    trainer.model = trainer.get_model(cfg=copy.deepcopy(model.yaml), weights=model, verbose=False)
    trainer.train()
    seconds = time.perf_counter() - start
    weights = trainer.best if trainer.best.exists() else trainer.last
    if not weights.exists():
        raise RuntimeError(f"training in {trainer.save_dir} finished without a checkpoint")
    return TrainResult(Path(weights), seconds, int(trainer.epoch) + 1, Path(trainer.save_dir))


def save_checkpoint(model: Any, path: Path, version: str, task: TaskType) -> Path:
    """Write ``model`` as an ultralytics-loadable checkpoint at ``path`` (fp32, so a reload keeps
    the weights digest of ``version``; ``YOLO(path)`` loads it as a ``task`` model), atomically.

    Raises:
        ValueError: ``path`` does not end in ``.pt``.
    """
    import copy
    from datetime import datetime

    import torch
    from ultralytics import __version__ as ul_version

    path = Path(path)
    if path.suffix != WEIGHTS_SUFFIX:
        raise ValueError(f"checkpoint path must end in {WEIGHTS_SUFFIX}; got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    copied = copy.deepcopy(model).float()
    ckpt = {
        "model": copied,
        "date": datetime.now().isoformat(),
        "version": ul_version,
        "labelwise_version": version,
        "train_args": {**(getattr(copied, "args", None) or {}), "task": task.value},
    }
    tmp = path.with_suffix(".pt.tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)
    return path
