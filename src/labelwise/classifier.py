"""YOLO classification adapter: load, predict the full softmax, features, train, evaluate.

The classification twin of :class:`labelwise.detector.YoloDetector`, with the same conventions:
only this module (and :mod:`labelwise.ultralytics_env`) knows ultralytics' classification
classes, everything it returns is numpy or a frozen dataclass, and ultralytics and torch are
imported on first use, after :func:`~labelwise.ultralytics_env.prepare_ultralytics`.

Predictions
-----------
A classification of one image is a :class:`~labelwise.domain.Detections` of exactly one row
(:func:`labelwise.task_types.classification_detections`): the whole image ``[0, 0, W, H]`` (W, H
the image's own size), ``probs`` the model's full softmax over the project's classes, ``class_id``
its arg-max and ``confidence`` its top probability. The images go through ultralytics' own
classification preprocessing (``ClassificationPredictor``: shortest side resized to ``imgsz``,
centre crop, RGB in [0, 1]), the very transform its validator applies, so prediction sees what
validation measures.

Features
--------
:meth:`YoloClassifier.features` returns the input of the Classify head's linear layer: the head's
1x1 convolution (1280 channels for the YOLO heads) globally average-pooled, read by a forward hook
on the head's ``pool`` during the prediction pass, then L2-normalised. So
:class:`labelwise.embedder.DetectorFeatureEmbedder` works on a classifier unchanged
(:attr:`~YoloClassifier.feature_layer` is the head's index). On an exported backend (onnx,
openvino) the same vector is the ONNX export's second output, the input of its last ``Gemm`` (the
head's linear layer); OpenVINO reads that ONNX export (:mod:`labelwise.inference_backends`).

Class order
-----------
Ultralytics numbers a classification data set's classes by the sorted names of its folders;
:mod:`labelwise.classify_training` writes folders whose sorted order is the project's, and
:meth:`YoloClassifier.train` hands ultralytics the project's names so checkpoints carry them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labelwise.classify_training import VAL_SPLIT, check_classification_set
from labelwise.domain import Detections
from labelwise.task_types import TaskType, classification_detections
from labelwise.yolo_adapter import YoloAdapter, check_split, l2_rows
from labelwise.yolo_models import CLASSIFIER, TrainResult, train_from

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from labelwise.evaluation import MetricScheme

TASK = TaskType.CLASSIFY.value
"""ultralytics' name of the classification task (``"classify"``)."""
LIGHT_AUGMENTATION: dict[str, Any] = {
    "auto_augment": None, "erasing": 0.0, "scale": 0.0, "fliplr": 0.0,
    "hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0,
}
"""The classification trainer's augmentation in Labelwise's recipe: none of ultralytics'
ImageNet defaults (RandAugment, random erasing 0.4, random resized crops down to half the area,
horizontal flips, HSV jitter). Measured on the bundled digits (660 labelled images, the product's
recipe, 64 px): top-1 0.76 after 25 epochs with this, 0.14 with ultralytics' defaults (see
docs/task-types.md); a few hundred labelled images and a few dozen epochs are too little for a
from-scratch or fine-tuned classifier to learn through those distortions, and a flip changes what
a digit or a letter means. ``train(..., **overrides)`` can still set any of them."""


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassifyEvalResult:
    """Classification metrics of one model on one split, all in [0, 1].

    Attributes:
        split: ``train``, ``val`` or ``test``.
        top1, top5: share of images whose true class is the top prediction / among the top five
            (the top ``C`` when there are fewer than five classes, so then ``top5`` is 1).
        precision, recall: macro means of the per-class values over the classes that have at
            least one image in the split.
        per_class_precision, per_class_recall: class name -> value, only for classes with at least
            one image in the split. Precision of class c: images predicted c that are c, over
            images predicted c (0 when none is predicted c); recall: images of c predicted c, over
            images of c. Both from the top-1 predictions against the folders' classes.
        n_images: images evaluated. seconds: wall time.
    """

    split: str
    top1: float
    top5: float
    precision: float
    recall: float
    per_class_precision: dict[str, float] = field(default_factory=dict)
    per_class_recall: dict[str, float] = field(default_factory=dict)
    n_images: int = 0
    seconds: float = 0.0

    @property
    def scheme(self) -> "MetricScheme":
        """Classification's headline names (precision, recall, top1, top5; primary top1)."""
        from labelwise.evaluation import CLASSIFY_SCHEME

        return CLASSIFY_SCHEME

    def headline(self) -> dict[str, float]:
        """The headline metrics under the names shown everywhere, in the scheme's order."""
        return {"precision": float(self.precision), "recall": float(self.recall),
                "top1": float(self.top1), "top5": float(self.top5)}

    def per_class(self) -> dict[str, float]:
        """``precision/<class>`` and ``recall/<class>`` of every class present in the split."""
        out = {f"precision/{k}": float(v) for k, v in self.per_class_precision.items()}
        out.update({f"recall/{k}": float(v) for k, v in self.per_class_recall.items()})
        return out

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat name -> value mapping (for experiment tracking): ``top1``, ``top5``,
        ``precision``, ``recall``, ``precision/<class>``, ``recall/<class>``, each after
        ``prefix``."""
        out = {
            f"{prefix}top1": self.top1,
            f"{prefix}top5": self.top5,
            f"{prefix}precision": self.precision,
            f"{prefix}recall": self.recall,
        }
        out.update({f"{prefix}precision/{k}": v for k, v in self.per_class_precision.items()})
        out.update({f"{prefix}recall/{k}": v for k, v in self.per_class_recall.items()})
        return out


def per_class_precision_recall(
    predicted: np.ndarray, target: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and support of top-1 predictions.

    Args:
        predicted: (N,) int predicted class ids in ``[0, num_classes)``.
        target: (N,) int true class ids in ``[0, num_classes)``.
        num_classes: C.

    Returns:
        (C,) float64 precision (0 for a class never predicted), (C,) float64 recall (0 for a class
        with no image), (C,) int64 support (images of each class).

    Raises:
        ValueError: shapes that differ or are not 1-D, or ids outside ``[0, num_classes)``.
    """
    pred = np.asarray(predicted)
    true = np.asarray(target)
    if pred.ndim != 1 or pred.shape != true.shape:
        raise ValueError(
            f"predicted and target must be (N,) of one length; got {pred.shape} and {true.shape}"
        )
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1; got {num_classes}")
    pred = pred.astype(np.int64)
    true = true.astype(np.int64)
    for name, ids in (("predicted", pred), ("target", true)):
        if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
            raise ValueError(
                f"{name} class ids must lie in [0, {num_classes}); got {ids.min()}..{ids.max()}"
            )
    confusion = np.zeros((num_classes, num_classes), np.int64)  # [true, predicted]
    np.add.at(confusion, (true, pred), 1)
    hits = np.diag(confusion).astype(np.float64)
    n_predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    precision = np.divide(hits, n_predicted, out=np.zeros(num_classes), where=n_predicted > 0)
    recall = np.divide(hits, support, out=np.zeros(num_classes), where=support > 0)
    return precision, recall, support


# --------------------------------------------------------------------------------------------
# Predictor with the softmax and the pooled head input
# --------------------------------------------------------------------------------------------
@dataclass
class _RawClass:
    """One image's classifier output as numpy."""

    probs: np.ndarray  # (C,) float64 softmax, renormalised to sum 1
    width: int  # original image size in pixels
    height: int
    pooled: np.ndarray  # (D,) float32 pooled head input, not normalised
    speed: dict[str, float] = field(default_factory=dict)  # set by ultralytics' stream loop


@functools.lru_cache(maxsize=1)
def _probs_predictor() -> type:
    """Build the ClassificationPredictor subclass (deferred so ultralytics is imported lazily)."""
    from ultralytics.models.yolo.classify import ClassificationPredictor
    from ultralytics.utils import ops

    class ProbsPredictor(ClassificationPredictor):
        """ultralytics' classification predictor returning :class:`_RawClass` rows: the softmax
        and, from a forward hook on the Classify head's ``pool``, the linear layer's input."""

        _pooled: np.ndarray | None = None
        _hooked: Any = None
        runner: Any = None
        """An exported model's runner (:mod:`labelwise.inference_backends`) in place of torch."""

        def _hook_features(self) -> None:
            if self._hooked is not None:
                return
            # AutoBackend -> ClassificationModel -> Sequential; the last layer is the head.
            head = self.model.model.model[-1]  # type: ignore[attr-defined]

            def keep(_module: Any, _inputs: Any, output: "torch.Tensor") -> None:
                self._pooled = output.detach().float().flatten(1).cpu().numpy().astype(np.float32)

            self._hooked = head.pool.register_forward_hook(keep)

        def inference(self, im: "torch.Tensor", *args: Any, **kwargs: Any) -> Any:
            self._pooled = None  # the warm-up pass (before the first batch) is not ours
            if self.runner is not None:  # an export: the softmax, then the head's input as features
                heads, pooled = self.runner(im)
                self._pooled = pooled
                return heads[0]
            self._hook_features()
            return super().inference(im, *args, **kwargs)

        def postprocess(self, preds: Any, img: "torch.Tensor", orig_imgs: Any) -> list:
            probs_t = preds[0] if isinstance(preds, (list, tuple)) else preds
            probs = probs_t.detach().double().cpu().numpy()
            nc = len(self.model.names)  # type: ignore[attr-defined]
            if probs.ndim != 2 or probs.shape[1] != nc:
                raise RuntimeError(
                    f"classifier output must be (B, C) = (B, {nc}) probabilities; got "
                    f"{tuple(probs.shape)}"
                )
            pooled = self._pooled
            if pooled is None or pooled.shape[0] != probs.shape[0]:
                got = None if pooled is None else pooled.shape
                raise RuntimeError(
                    f"pooled head input must have one row per image: expected "
                    f"{probs.shape[0]}, got {got}"
                )
            if not isinstance(orig_imgs, list):  # a tensor source, as in ClassificationPredictor
                orig_imgs = ops.convert_torch2numpy_batch(orig_imgs)[..., ::-1]
            probs = probs / probs.sum(axis=1, keepdims=True)  # exact sums after float32 softmax
            return [
                _RawClass(
                    probs=probs[b],
                    width=int(orig.shape[1]),
                    height=int(orig.shape[0]),
                    pooled=pooled[b],
                )
                for b, orig in enumerate(orig_imgs)
            ]

    return ProbsPredictor


# --------------------------------------------------------------------------------------------
# Loading helpers
# --------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------
class YoloClassifier(YoloAdapter):
    """An ultralytics YOLO classification model behind a numpy interface.

    Build it with :meth:`~labelwise.yolo_adapter.YoloAdapter.load` (a ``.pt`` of a
    classification model or a ``-cls`` yaml; backend torch, onnx or openvino). The object is not
    thread-safe; use one per worker.
    """

    kind = CLASSIFIER
    features_at = "head_input"  # an export's features: the input of the Classify head's linear layer

    # ---------------------------------------------------------------- properties
    @property
    def feature_layer(self) -> int:
        """Index of the Classify head, whose pooled linear-layer input :meth:`features` returns."""
        return len(self._model.model) - 1

    @property
    def feature_dim(self) -> int:
        """D of :meth:`features`: the input width of the head's linear layer (1280 for YOLO)."""
        return int(self._model.model[-1].linear.in_features)

    # ---------------------------------------------------------------- inference
    def _predict_overrides(self) -> dict[str, Any]:
        s = self.settings
        return {
            "imgsz": s.imgsz,
            "batch": s.batch,
            "device": s.device,
            "mode": "predict",
            "task": TASK,
            "save": False,
            "verbose": False,
            "project": str(self.state_dir / "runs"),
            "name": "predict",
            "exist_ok": True,
        }

    def _get_predictor(self) -> Any:
        if self._predictor is None:
            self._predictor = self._setup(_probs_predictor()(overrides=self._predict_overrides()),
                                          self.feature_layer)
        return self._predictor

    def _raw_iter(
        self, paths: Sequence["Path | np.ndarray"], batch: int | None
    ) -> Iterator[tuple["Path | np.ndarray", _RawClass]]:
        yield from self._batches(self._get_predictor(), paths, batch)

    @staticmethod
    def _to_detections(raw: _RawClass) -> Detections:
        return classification_detections(raw.probs, raw.width, raw.height)

    def predict_iter(
        self, paths: Sequence["Path | np.ndarray"], batch: int | None = None
    ) -> Iterator[tuple["Path | np.ndarray", Detections]]:
        """Stream ``(path, classification)`` in input order, ``batch`` images at a time.

        Args:
            paths: image files, each read with ultralytics' reader (BGR, EXIF orientation
                applied: see :mod:`labelwise.images`), or already decoded (H, W, 3) uint8 BGR
                arrays (used as they are).
            batch: images per forward pass; default ``settings.batch``.

        Yields:
            (path, Detections of one row): box ``[0, 0, W, H]`` of the (oriented) image, probs
            (1, C) the softmax (summing to 1), class_id its arg-max, confidence its maximum.

        Raises:
            FileNotFoundError / ValueError: naming an image that is missing or cannot be decoded
                (raised when its batch is reached).
        """
        for path, raw in self._raw_iter(paths, batch):
            yield path, self._to_detections(raw)

    def predict_with_features(
        self, paths: Sequence["Path | np.ndarray"], batch: int | None = None
    ) -> tuple[list[Detections], np.ndarray]:
        """Classifications and features of every image from ONE forward pass per batch.

        Returns:
            (one-row Detections in input order, (N, D) float32 L2-normalised rows equal to
            :meth:`features` of the same images).
        """
        dets: list[Detections] = []
        rows: list[np.ndarray] = []
        for _, raw in self._raw_iter(paths, batch):
            dets.append(self._to_detections(raw))
            rows.append(raw.pooled)
        return dets, l2_rows(rows, self.feature_dim)

    def features(self, paths: Sequence["Path | np.ndarray"], batch: int | None = None) -> np.ndarray:
        """Pooled head features: (N, D) float32, rows L2-normalised (D = :attr:`feature_dim`).

        The global average pool of the Classify head's convolution on the ``settings.imgsz``
        input: the vector its linear layer maps to the class logits.
        """
        return l2_rows([raw.pooled for _, raw in self._raw_iter(paths, batch)], self.feature_dim)

    # ---------------------------------------------------------------- training
    def train(
        self,
        data_dir: Path,
        out_dir: Path,
        epochs: int,
        batch: int,
        seed: int = 0,
        patience: int = 0,
        imgsz: int | None = None,
        name: str = "train",
        **overrides: Any,
    ) -> TrainResult:
        """Fine-tune a copy of these weights; this object is left unchanged.

        CPU recipe as the detector's: amp off, workers 0, plots off, deterministic, checkpoints
        only at the end unless ``patience`` is set; ultralytics validates on ``val`` at the last
        epoch; :data:`LIGHT_AUGMENTATION` (no RandAugment, erasing, crops, flips or HSV jitter).
        ``overrides`` go to ultralytics unchanged and win (e.g. ``lr0=0.01``,
        ``auto_augment="randaugment"``).

        Args:
            data_dir: a classification layout (:func:`~labelwise.classify_training.
                write_classification_set`) of exactly :attr:`class_names`, with ``val``.
            out_dir: the run goes to ``out_dir/name`` (overwritten if it exists).
            epochs, batch, seed: as in ultralytics. patience: 0 = no early stop.
            imgsz: default ``settings.imgsz``.

        Raises:
            ValueError: epochs or batch < 1, class folders that are not this model's classes.
            FileNotFoundError: no ``data_dir``, ``train/`` or ``val/``.
        """
        from ultralytics.models.yolo.classify import ClassificationTrainer

        data_dir = check_classification_set(data_dir, self.class_names, VAL_SPLIT)
        args = self._training_args(data_dir, out_dir, name, epochs, batch, seed, patience, imgsz,
                                   **{**LIGHT_AUGMENTATION, **overrides})
        trainer = ClassificationTrainer(overrides=args)
        if int(trainer.data["nc"]) != self.num_classes:
            raise ValueError(
                f"{data_dir} has {trainer.data['nc']} classes; expected {self.num_classes} "
                f"({list(self.class_names)})"
            )
        # The class folders sort in project order (classify_training); the names the checkpoint
        # carries are the project's, not the folder names. ClassificationDataset maps folders to
        # these names by name, or (prefixed folders) by their sorted order.
        trainer.data["names"] = dict(enumerate(self.class_names))
        return train_from(trainer, self._model)

    # ---------------------------------------------------------------- evaluation
    def evaluate(
        self,
        data_dir: Path,
        split: str = "test",
        out_dir: Path | None = None,
        batch: int | None = None,
        imgsz: int | None = None,
    ) -> ClassifyEvalResult:
        """Top-1 / top-5 accuracy and per-class precision / recall on one split (ultralytics'
        ``ClassificationValidator``, plots off, on a copy of the model).

        Args:
            data_dir: a classification layout of exactly :attr:`class_names` with ``split``.
            split: ``train``, ``val`` or ``test``.
            out_dir: where ultralytics writes its run folder; default ``state_dir/runs``.
            batch, imgsz: default ``settings.batch`` / ``settings.imgsz``.

        Raises:
            ValueError: an unknown split, class folders that are not this model's classes.
            FileNotFoundError: no ``data_dir``, ``train/`` or ``<split>/`` (ultralytics would
                otherwise fall back to another split silently).
        """
        import torch
        from ultralytics.models.yolo.classify import ClassificationValidator

        data_dir = check_classification_set(data_dir, self.class_names, check_split(split))
        validator, seconds = self._validate(ClassificationValidator, data_dir, split, out_dir, batch, imgsz)
        if not validator.targets:
            raise RuntimeError(f"the validator saw no images in {data_dir / split}")
        predicted = torch.cat(validator.pred)[:, 0].numpy()
        target = torch.cat(validator.targets).numpy()
        precision, recall, support = per_class_precision_recall(
            predicted, target, self.num_classes
        )
        present = np.flatnonzero(support > 0)
        metrics = validator.metrics
        return ClassifyEvalResult(
            split=split,
            top1=float(metrics.top1),
            top5=float(metrics.top5),
            precision=float(precision[present].mean()) if present.size else 0.0,
            recall=float(recall[present].mean()) if present.size else 0.0,
            per_class_precision={self.class_names[c]: float(precision[c]) for c in present},
            per_class_recall={self.class_names[c]: float(recall[c]) for c in present},
            n_images=int(target.shape[0]),
            seconds=seconds,
        )
