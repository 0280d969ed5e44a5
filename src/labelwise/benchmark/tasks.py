"""What the benchmark does differently per task type: data, training sets, metrics, truth.

The trajectory (:mod:`labelwise.benchmark.trajectory`) is one loop for every task type; a
:class:`BenchmarkTask` supplies the few steps that differ, each through the product's own code:

* ``detect``: the long-tail digits set (:func:`labelwise.datasets.generate_digits`), YOLO box
  labels (:func:`labelwise.training.write_training_set`), the curve follows box mAP50.
* ``segment``: the digits segmentation set (:func:`labelwise.datasets.generate_digits_segment`),
  segment labels (polygons) through the same writer, the curve follows **mask** mAP50.
* ``classify``: the digits classification set
  (:func:`labelwise.datasets.digits_classify.generate_digits_classify`), ultralytics' class
  folders (:func:`labelwise.classify_training.write_classification_set`), the curve follows
  top-1 accuracy.

The models are the product's adapters (:func:`labelwise.runtime.model_adapter`), the metrics
their evaluation results. Every truth the oracle reveals is (N, 5) YOLO rows ``[cls, cx, cy, w, h]``
(a classification label is one whole-image row, :func:`labelwise.task_types.classification_label`);
a segmentation truth also has its instance outlines (:class:`~labelwise.benchmark.oracle.SegmentOracle`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labelwise.task_types import TaskType, label_class, model_yaml_name

if TYPE_CHECKING:  # pragma: no cover
    from labelwise.benchmark.config import BenchmarkConfig, DataSpec
    from labelwise.benchmark.data import PreparedData
    from labelwise.config import Settings


@dataclass(frozen=True)
class CurveMetric:
    """The test metric a learning curve follows, and the one reported beside it.

    Attributes:
        column: the row column of the curve (``map50``, ``mask_map50``, ``top1``), in [0, 1].
        secondary: the stricter companion column (``map50_95``, ``mask_map50_95``, ``top5``).
        label: how tables and plots name ``column`` (``mAP50``, ``mask mAP50``, ``top-1``).
        secondary_label: how they name ``secondary``.
    """

    column: str
    secondary: str
    label: str
    secondary_label: str


BOX_CURVE = CurveMetric("map50", "map50_95", "mAP50", "mAP50-95")
MASK_CURVE = CurveMetric("mask_map50", "mask_map50_95", "mask mAP50", "mask mAP50-95")
TOP1_CURVE = CurveMetric("top1", "top5", "top-1", "top-5")
METRIC_COLUMNS = ("map50", "map50_95", "mask_map50", "mask_map50_95", "top1", "top5", "precision", "recall")
"""Every metric column a row may carry (a task leaves the others out)."""


@dataclass(frozen=True)
class TrainItem:
    """One training image: its file, its (N, 5) truth rows and (segmentation) their outlines."""

    path: Path
    rows: np.ndarray
    outlines: Any = None  # labelwise.masks.ImageSegments for a segmentation truth


class BenchmarkTask:
    """The steps of a benchmark that depend on the task type (detection here; subclasses for
    the others). Stateless: one instance per task type."""

    task_type: TaskType = TaskType.DETECT
    curve: CurveMetric = BOX_CURVE
    per_class_prefix: str = "ap50"
    """The per-class column family of the rows: ``ap50/<class>`` (box AP50 per class)."""

    @property
    def default_model(self) -> str:
        """The stock yaml a benchmark of this task builds models from."""
        return model_yaml_name(self.task_type)

    def preannotation_floor(self, settings: "Settings") -> float:
        """Boxes at or above this are sent to reviewers (the product's threshold for the task)."""
        return settings.labelstudio.preannotation_floor(self.task_type.value)

    # ---------------------------------------------------------------- data
    def generate_target(self, cfg: "BenchmarkConfig", root: Path) -> "DataSpec":
        """Write the bundled target-domain set under ``root``; its :class:`DataSpec`."""
        from labelwise.benchmark.config import DataSpec
        from labelwise.benchmark.data import target_digits_config
        from labelwise.datasets import generate_digits

        ds = generate_digits(root, target_digits_config(cfg))
        return DataSpec(ds.pool_images, ds.pool_truth, ds.data_yaml, ds.manifest)

    def generate_source(self, cfg: "BenchmarkConfig", root: Path) -> "DataSpec":
        """Write the source-domain set the warm-start base is trained on (its val split is the
        base's validation split)."""
        from labelwise.benchmark.config import DataSpec
        from labelwise.benchmark.data import source_digits_config
        from labelwise.datasets import generate_digits

        ds = generate_digits(root, source_digits_config(cfg), overwrite=True)
        return DataSpec(ds.pool_images, ds.pool_truth, ds.data_yaml, ds.manifest)

    def source_config(self, cfg: "BenchmarkConfig") -> dict[str, Any]:
        """What shapes the source set (hashed into the base's cache key)."""
        from labelwise.benchmark.data import source_digits_config

        return source_digits_config(cfg).to_dict()

    # ---------------------------------------------------------------- training
    def write_train_set(self, folder: Path, items: Sequence[TrainItem], data: "PreparedData") -> Path:
        """The labelled images as a training set in ``folder`` (replaced) through the product's
        writer; returns what the model's ``train``/``evaluate`` take (a data yaml here)."""
        from labelwise.training import LabelledImage, write_training_set

        labelled = [LabelledImage(Path(i.path).stem, Path(i.path), i.rows, i.outlines) for i in items]
        return write_training_set(folder, labelled, data.class_names, Path(data.val_dir).resolve(),
                                  Path(data.test_dir).resolve()).data_yaml

    def load(self, ref: str, settings: "Settings", work: Path, class_names: Sequence[str], seed: int = 0) -> Any:
        """The product's adapter of this task loaded from ``ref`` (.pt or yaml)."""
        from labelwise.runtime import model_adapter

        return model_adapter(self.task_type).load(ref, settings.detector, work, class_names=class_names,
                                                  seed=seed)

    def metrics(self, evaluation: Any, class_names: Sequence[str]) -> dict[str, float]:
        """The row's metric columns and ``<per_class_prefix>/<class>`` columns of an evaluation."""
        return {"map50": evaluation.map50, "map50_95": evaluation.map50_95,
                "precision": evaluation.precision, "recall": evaluation.recall,
                **{f"ap50/{n}": float(evaluation.per_class_ap50.get(n, float("nan"))) for n in class_names}}


class SegmentTask(BenchmarkTask):
    """Instance segmentation: polygons in, box and mask mAP out; the curve follows mask mAP50."""

    task_type = TaskType.SEGMENT
    curve = MASK_CURVE
    per_class_prefix = "mask_ap50"

    def _config(self, cfg: "BenchmarkConfig", domain: str):  # -> DigitsSegmentConfig
        from labelwise.datasets.digits_segment import DigitsSegmentConfig

        target = domain == "target"
        return DigitsSegmentConfig(
            pool_images=cfg.pool_images if target else cfg.base_pool_images, val_images=cfg.val_images,
            test_images=cfg.test_images if target else 0,
            duplicate_cluster_fraction=cfg.duplicate_fraction if target else 0.0,
            seed=0 if target else 1, domain=domain)  # type: ignore[arg-type]

    def generate_target(self, cfg: "BenchmarkConfig", root: Path) -> "DataSpec":
        from labelwise.benchmark.config import DataSpec
        from labelwise.datasets.digits_segment import generate_digits_segment

        ds = generate_digits_segment(root, self._config(cfg, "target"), overwrite=True)
        return DataSpec(ds.pool_images, ds.pool_truth, ds.data_yaml, ds.manifest)

    def generate_source(self, cfg: "BenchmarkConfig", root: Path) -> "DataSpec":
        from labelwise.benchmark.config import DataSpec
        from labelwise.datasets.digits_segment import generate_digits_segment

        ds = generate_digits_segment(root, self._config(cfg, "source"), overwrite=True)
        return DataSpec(ds.pool_images, ds.pool_truth, ds.data_yaml, ds.manifest)

    def source_config(self, cfg: "BenchmarkConfig") -> dict[str, Any]:
        return self._config(cfg, "source").to_dict()

    def metrics(self, evaluation: Any, class_names: Sequence[str]) -> dict[str, float]:
        return {**super().metrics(evaluation, class_names),
                "mask_map50": evaluation.mask_map50, "mask_map50_95": evaluation.mask_map50_95,
                **{f"mask_ap50/{n}": float(evaluation.per_class_mask_ap50.get(n, float("nan")))
                   for n in class_names}}


class ClassifyTask(BenchmarkTask):
    """Image classification: one class per image, top-1 / top-5 out; the curve follows top-1.

    A reviewer edit is a changed class (the product always pre-annotates the top class, so a
    wrong one is one relabel and a right one none). The data set's ``data_yaml`` is a
    classification folder whose ``val/`` and ``test/`` hold one folder per class.
    """

    task_type = TaskType.CLASSIFY
    curve = TOP1_CURVE
    per_class_prefix = "recall"

    def preannotation_floor(self, settings: "Settings") -> float:
        return 0.0  # a classifier always answers: its top class is the pre-annotation

    def _generate(self, cfg: "BenchmarkConfig", root: Path, domain: str) -> "DataSpec":
        from labelwise.benchmark.config import DataSpec
        from labelwise.datasets.digits_classify import generate_digits_classify

        per_class_pool, per_class_test, imgsz, seed = self._sizes(cfg, domain)
        ds = generate_digits_classify(root, per_class_pool, per_class_test, seed, imgsz,
                                      domain=domain, overwrite=True)  # type: ignore[arg-type]
        return DataSpec(ds.pool_dir, ds.pool_labels_dir, ds.root, ds.manifest)

    @staticmethod
    def _sizes(cfg: "BenchmarkConfig", domain: str) -> tuple[int, int, int, int]:
        """(per-class pool, per-class test, image side, seed) of the ``domain``'s set: the
        config's image counts over the ten digits. The source set's own test images are its
        base's validation split."""
        if domain == "target":
            return max(1, cfg.pool_images // 10), max(1, cfg.test_images // 10), cfg.imgsz, 0
        return max(1, cfg.base_pool_images // 10), max(1, cfg.val_images // 10), cfg.imgsz, 1

    def generate_target(self, cfg: "BenchmarkConfig", root: Path) -> "DataSpec":
        return self._generate(cfg, root, "target")

    def generate_source(self, cfg: "BenchmarkConfig", root: Path) -> "DataSpec":
        return self._generate(cfg, root, "source")

    def source_config(self, cfg: "BenchmarkConfig") -> dict[str, Any]:
        return dict(zip(("per_class_pool", "per_class_test", "imgsz", "seed"), self._sizes(cfg, "source")),
                    domain="source")

    def write_train_set(self, folder: Path, items: Sequence[TrainItem], data: "PreparedData") -> Path:
        from labelwise.classify_training import classification_items, write_classification_set

        train = [(Path(i.path), label_class(i.rows)) for i in items]
        val = classification_items(data.val_dir.parent, data.class_names, data.val_dir.name)
        test = classification_items(data.test_dir.parent, data.class_names, data.test_dir.name)
        return write_classification_set(folder, train, val, data.class_names, test=test)

    def metrics(self, evaluation: Any, class_names: Sequence[str]) -> dict[str, float]:
        return {"top1": evaluation.top1, "top5": evaluation.top5, "precision": evaluation.precision,
                "recall": evaluation.recall,
                **{f"recall/{n}": float(evaluation.per_class_recall.get(n, float("nan"))) for n in class_names}}


_TASKS: dict[TaskType, BenchmarkTask] = {
    TaskType.DETECT: BenchmarkTask(), TaskType.SEGMENT: SegmentTask(), TaskType.CLASSIFY: ClassifyTask(),
}


def benchmark_task(task_type: "TaskType | str") -> BenchmarkTask:
    """The benchmark steps of ``task_type`` (a ValueError names the accepted task types)."""
    return _TASKS[TaskType.parse(task_type)]
