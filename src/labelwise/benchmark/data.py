"""Data for a benchmark: the replayed data set, per-round training sets and the warm-start base.

The bundled data is the task's digits set (target domain; :mod:`labelwise.benchmark.tasks`)
written under ``out/data``; the warm-start base model is trained once on a disjoint
source-domain digits set of the same task and cached under ``cache_dir/base-<hash>.pt``, the hash
covering everything that shapes those weights.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from labelwise.benchmark.config import BenchmarkConfig, config_hash, training_values
from labelwise.benchmark.oracle import (
    Oracle,
    SegmentOracle,
    pool_image_paths,
    rare_from_counts,
    read_manifest_info,
)
from labelwise.benchmark.tasks import BenchmarkTask, TrainItem, benchmark_task
from labelwise.domain import class_box_counts

TARGET_SEED = 0
SOURCE_SEED = 1


@dataclass(frozen=True)
class PreparedData:
    """The replayed data set, resolved.

    Attributes:
        pool_paths: pool images sorted by name; every index in the benchmark refers to this order.
        truth_dir: the pool's YOLO ground truth (read only through :class:`Oracle`).
        data_yaml: absolute ``val``/``test`` entries; ``test`` is the fixed evaluation split.
        class_names: from the data yaml, in id order.
        rare_classes: class ids reported as rare.
        cluster_of: pool image stem -> near-duplicate cluster id ({} when unknown).
        pool_class_counts: (C,) boxes per class in the whole pool.
        val_dir, test_dir: absolute image folders of the data yaml's val and test splits.
        sizes: (width, height) of every pool image, in ``pool_paths`` order (pixels).
        task_type: ``detect``, ``classify`` or ``segment`` (how truths are read and trained on).
    """

    pool_paths: tuple[Path, ...]
    truth_dir: Path
    data_yaml: Path
    class_names: tuple[str, ...]
    rare_classes: tuple[int, ...]
    val_dir: Path
    test_dir: Path
    cluster_of: dict[str, int] = field(default_factory=dict)
    pool_class_counts: tuple[int, ...] = ()
    sizes: tuple[tuple[int, int], ...] = ()
    task_type: str = "detect"

    def size_of(self, index: int) -> tuple[int, int]:
        """(width, height) in pixels of pool image ``index``."""
        return self.sizes[index]

    @property
    def task(self) -> BenchmarkTask:
        return benchmark_task(self.task_type)

    def oracle(self) -> Oracle:
        """A fresh oracle over the pool's truth (a :class:`SegmentOracle` for segmentation)."""
        if self.task_type == "segment":
            return SegmentOracle(self.truth_dir, len(self.class_names),
                                 {p.stem: size for p, size in zip(self.pool_paths, self.sizes)})
        return Oracle(self.truth_dir, len(self.class_names))

    def train_item(self, oracle: Oracle, index: int) -> TrainItem:
        """Pool image ``index`` with the truth ``oracle`` reveals (outlines for segmentation)."""
        path = self.pool_paths[index]
        outlines = oracle.outlines(path.stem) if isinstance(oracle, SegmentOracle) else None
        return TrainItem(path, oracle.reveal(path.stem), outlines)


def read_classification_folder(root: Path) -> tuple[tuple[str, ...], Path, Path]:
    """(class names, absolute val folder, absolute test folder) of a classification folder:
    ``root/test/<class>/`` (and ``root/val/<class>/``, else test doubles as val); the class names
    are the manifest's ``class_names`` beside it when there is one, else the test folder's
    class folders in sorted order."""
    root = Path(root).resolve()
    test = root / "test"
    if not test.is_dir():
        raise ValueError(f"{root} must hold a test/<class>/ split for a classification benchmark "
                         f"(the fixed evaluation split); found {sorted(p.name for p in root.iterdir())}")
    val = root / "val" if (root / "val").is_dir() else test
    manifest = root / "manifest.json"
    names = None
    if manifest.is_file():
        names = json.loads(manifest.read_text(encoding="utf-8")).get("class_names")
    if not names:
        names = sorted(p.name for p in test.iterdir() if p.is_dir())
    if not names:
        raise ValueError(f"{test} holds no class folders; expected test/<class>/<image>")
    return tuple(str(n) for n in names), val, test


def read_data_yaml(path: Path) -> tuple[tuple[str, ...], Path, Path]:
    """(class names, absolute val folder, absolute test folder) of an ultralytics data yaml."""
    if Path(path).is_dir():
        return read_classification_folder(Path(path))
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} must be a YAML mapping with names, val and test; got {type(data).__name__}")
    names = data.get("names")
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    if not isinstance(names, list) or not names:
        raise ValueError(f"{path} must define 'names' as a list or {{id: name}} mapping; got {names!r}")
    for key in ("val", "test"):
        if not data.get(key):
            raise ValueError(f"{path} must have a '{key}' entry (the fixed evaluation split is 'test')")
    return tuple(str(n) for n in names), _split_folder(data, path, "val"), _split_folder(data, path, "test")


def _split_folder(data: dict, data_yaml: Path, key: str) -> Path:
    """The absolute folder of split ``key`` of a parsed data yaml (relative to its ``path``,
    else to the yaml's folder)."""
    value = Path(str(data[key]))
    return value if value.is_absolute() else (Path(data.get("path") or Path(data_yaml).parent) / value).resolve()


def target_digits_config(cfg: BenchmarkConfig):  # -> DigitsConfig
    from labelwise.datasets import DigitsConfig

    return DigitsConfig(pool_images=cfg.pool_images, val_images=cfg.val_images,
                        test_images=cfg.test_images, duplicate_cluster_fraction=cfg.duplicate_fraction,
                        seed=TARGET_SEED)


def source_digits_config(cfg: BenchmarkConfig):  # -> DigitsConfig
    from labelwise.datasets import DigitsConfig

    return DigitsConfig(pool_images=cfg.base_pool_images, val_images=cfg.val_images,
                        test_images=0, domain="source", seed=SOURCE_SEED)


def prepare_data(cfg: BenchmarkConfig) -> PreparedData:
    """Resolve ``cfg.data``, generating the task's bundled digits set under ``out/data`` when
    None (:meth:`~labelwise.benchmark.tasks.BenchmarkTask.generate_target`)."""
    task = benchmark_task(cfg.task)
    spec = cfg.data or task.generate_target(cfg, cfg.out / "data" / cfg.data_folder)
    names, val_dir, test_dir = read_data_yaml(spec.data_yaml)
    paths = tuple(pool_image_paths(spec.pool_images))
    sizes = tuple(image_size(p) for p in paths)
    data = PreparedData(paths, Path(spec.truth_labels).resolve(), Path(spec.data_yaml).resolve(), names,
                        (), val_dir, test_dir, sizes=sizes, task_type=task.task_type.value)
    oracle = data.oracle()
    counts = class_box_counts((oracle.reveal(p.stem) for p in paths), len(names))
    clusters, manifest_rare = read_manifest_info(spec.manifest)
    rare = spec.rare_classes if spec.rare_classes is not None else manifest_rare
    if rare is None:
        rare = rare_from_counts(counts)
    return dataclasses.replace(data, rare_classes=tuple(rare), cluster_of=clusters,
                               pool_class_counts=tuple(int(c) for c in counts))


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, read from the file header."""
    from PIL import Image

    with Image.open(path) as im:
        return int(im.width), int(im.height)


def base_recipe(cfg: BenchmarkConfig) -> dict:
    """Everything that shapes the warm-start base weights (hashed into the cache key)."""
    return {
        "model": cfg.model, "imgsz": cfg.imgsz, "epochs": cfg.base_epochs,
        "training": training_values(base_training(cfg)), "seed": 0,
        "source": benchmark_task(cfg.task).source_config(cfg), "format": 2, **cfg.task_identity(),
    }


def base_training(cfg: BenchmarkConfig):  # -> TrainingSettings
    """The product's recipe with a fixed ``base_epochs`` (no image-pass floor): the base sees
    a few hundred source-domain images, not a few dozen."""
    return cfg.job_settings(pseudo=False).training.model_copy(
        update={"epochs": cfg.base_epochs, "min_image_passes": 0})


def _val_folder(data_yaml: Path) -> Path:
    """The absolute ``val`` folder of a data yaml or a classification folder (a source set has
    no test split of its own)."""
    if Path(data_yaml).is_dir():
        return read_classification_folder(Path(data_yaml))[1]
    return _split_folder(yaml.safe_load(Path(data_yaml).read_text(encoding="utf-8")), data_yaml, "val")


def base_weights_path(cfg: BenchmarkConfig) -> Path:
    return cfg.resolved_cache_dir / f"base-{config_hash(base_recipe(cfg))}.pt"


def train_base(cfg: BenchmarkConfig, class_names: tuple[str, ...]) -> str:
    """Train (or reuse) the warm-start base model on the task's source domain; returns the .pt
    path.

    Runs in a worker process. With ``cfg.base_weights`` set, that file is returned unchanged.
    """
    if cfg.base_weights is not None:
        path = Path(cfg.base_weights).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"base weights {path} do not exist; expected a .pt file")
        return str(path)
    target = base_weights_path(cfg)
    if target.is_file():
        return str(target)
    from labelwise.training import train_round

    task = benchmark_task(cfg.task)
    recipe = base_recipe(cfg)
    work = cfg.resolved_cache_dir / f"base-{config_hash(recipe)}"
    src_spec = task.generate_source(cfg, work / "source")
    val_dir = _val_folder(src_spec.data_yaml)
    paths = tuple(pool_image_paths(src_spec.pool_images))
    src = PreparedData(paths, Path(src_spec.truth_labels).resolve(), Path(src_spec.data_yaml).resolve(),
                       class_names, (), val_dir, val_dir, sizes=tuple(image_size(p) for p in paths),
                       task_type=task.task_type.value)
    oracle = src.oracle()
    items = [src.train_item(oracle, i) for i in range(len(paths))]
    data_ref = task.write_train_set(work / "train", items, src)
    model = task.load(cfg.model, cfg.product_settings(), work, class_names, seed=0)
    result = train_round(model, data_ref, base_training(cfg), len(items), work / "runs", "base", seed=0)
    tmp = target.with_suffix(".pt.tmp")
    shutil.copy2(result.weights, tmp)
    tmp.replace(target)
    target.with_suffix(".json").write_text(
        json.dumps({**recipe, "seconds": result.seconds}, indent=1), encoding="utf-8")
    shutil.rmtree(work / "runs", ignore_errors=True)
    return str(target)
