"""Data for a benchmark: the replayed data set, per-round training sets and the warm-start base.

The bundled data is the long-tail digits set (target domain) written under ``out/data``; the
warm-start base detector is trained once on a disjoint source-domain digits set and cached under
``cache_dir/base-<hash>.pt``, the hash covering everything that shapes those weights.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from labelwise.benchmark.config import BenchmarkConfig, DataSpec, config_hash, training_values
from labelwise.benchmark.oracle import (
    Oracle,
    pool_image_paths,
    rare_from_counts,
    read_manifest_info,
)
from labelwise.domain import class_box_counts
from labelwise.training import LabelledImage, write_training_set

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

    def size_of(self, index: int) -> tuple[int, int]:
        """(width, height) in pixels of pool image ``index``."""
        return self.sizes[index]

    def oracle(self) -> Oracle:
        return Oracle(self.truth_dir, len(self.class_names))


def read_data_yaml(path: Path) -> tuple[tuple[str, ...], Path, Path]:
    """(class names, absolute val folder, absolute test folder) of an ultralytics data yaml."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} must be a YAML mapping with names, val and test; got {type(data).__name__}")
    names = data.get("names")
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    if not isinstance(names, list) or not names:
        raise ValueError(f"{path} must define 'names' as a list or {{id: name}} mapping; got {names!r}")
    base = Path(data.get("path") or Path(path).parent)
    folders = {}
    for key in ("val", "test"):
        if not data.get(key):
            raise ValueError(f"{path} must have a '{key}' entry (the fixed evaluation split is 'test')")
        value = Path(str(data[key]))
        folders[key] = value if value.is_absolute() else (base / value).resolve()
    return tuple(str(n) for n in names), folders["val"], folders["test"]


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
    """Resolve ``cfg.data``, generating the bundled digits set under ``out/data`` when None."""
    spec = cfg.data
    if spec is None:
        from labelwise.datasets import generate_digits

        ds = generate_digits(cfg.out / "data" / "target", target_digits_config(cfg))
        spec = DataSpec(ds.pool_images, ds.pool_truth, ds.data_yaml, ds.manifest)
    names, val_dir, test_dir = read_data_yaml(spec.data_yaml)
    paths = tuple(pool_image_paths(spec.pool_images))
    oracle = Oracle(spec.truth_labels, len(names))
    counts = class_box_counts((oracle.reveal(p.stem) for p in paths), len(names))
    clusters, manifest_rare = read_manifest_info(spec.manifest)
    rare = spec.rare_classes if spec.rare_classes is not None else manifest_rare
    if rare is None:
        rare = rare_from_counts(counts)
    return PreparedData(paths, Path(spec.truth_labels).resolve(), Path(spec.data_yaml).resolve(), names,
                        tuple(rare), val_dir, test_dir, clusters, tuple(int(c) for c in counts),
                        tuple(image_size(p) for p in paths))


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, read from the file header."""
    from PIL import Image

    with Image.open(path) as im:
        return int(im.width), int(im.height)


def write_train_set(
    folder: Path,
    items: Sequence[tuple[Path, np.ndarray]],
    class_names: Sequence[str],
    val_dir: Path,
    test_dir: Path | None = None,
) -> Path:
    """(image, (N, 5) labels) pairs as a YOLO training set through the product's own writer
    (:func:`labelwise.training.write_training_set`); returns its data.yaml."""
    labelled = [LabelledImage(Path(path).stem, Path(path), boxes) for path, boxes in items]
    return write_training_set(folder, labelled, class_names, Path(val_dir).resolve(),
                              Path(test_dir).resolve() if test_dir is not None else None).data_yaml


def base_recipe(cfg: BenchmarkConfig) -> dict:
    """Everything that shapes the warm-start base weights (hashed into the cache key)."""
    return {
        "model": cfg.model, "imgsz": cfg.imgsz, "epochs": cfg.base_epochs,
        "training": training_values(base_training(cfg)), "seed": 0,
        "source": source_digits_config(cfg).to_dict(), "format": 2,
    }


def base_training(cfg: BenchmarkConfig):  # -> TrainingSettings
    """The product's recipe with a fixed ``base_epochs`` (no image-pass floor): the base sees
    a few hundred source-domain images, not a few dozen."""
    return cfg.job_settings(pseudo=False).training.model_copy(
        update={"epochs": cfg.base_epochs, "min_image_passes": 0})


def base_weights_path(cfg: BenchmarkConfig) -> Path:
    return cfg.resolved_cache_dir / f"base-{config_hash(base_recipe(cfg))}.pt"


def train_base(cfg: BenchmarkConfig, class_names: tuple[str, ...]) -> str:
    """Train (or reuse) the warm-start base detector on the source domain; returns the .pt path.

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
    from labelwise.datasets import generate_digits
    from labelwise.detector import YoloDetector
    from labelwise.training import train_round

    recipe = base_recipe(cfg)
    work = cfg.resolved_cache_dir / f"base-{config_hash(recipe)}"
    src = generate_digits(work / "source", source_digits_config(cfg), overwrite=True)
    oracle = Oracle(src.pool_truth, len(class_names))
    items = [(p, oracle.reveal(p.stem)) for p in src.image_paths("pool")]
    data_yaml = write_train_set(work / "train", items, class_names, src.val_images)
    settings = cfg.product_settings().detector
    det = YoloDetector.load(cfg.model, settings, work, class_names=class_names, seed=0)
    result = train_round(det, data_yaml, base_training(cfg), len(items), work / "runs", "base", seed=0)
    tmp = target.with_suffix(".pt.tmp")
    shutil.copy2(result.weights, tmp)
    tmp.replace(target)
    target.with_suffix(".json").write_text(
        json.dumps({**recipe, "seconds": result.seconds}, indent=1), encoding="utf-8")
    shutil.rmtree(work / "runs", ignore_errors=True)
    return str(target)
