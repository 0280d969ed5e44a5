"""YOLO detector adapter: load, predict with full class distributions, features, train, evaluate.

Only this module (and :mod:`labelwise.ultralytics_env`) knows ultralytics. Everything it returns
is numpy or a plain frozen dataclass (:class:`~labelwise.domain.Detections`, :class:`TrainResult`,
:class:`EvalResult`). ultralytics and torch are imported on first use, after
:func:`~labelwise.ultralytics_env.prepare_ultralytics` has made them offline and project-local.

Class probabilities
-------------------
``ultralytics`` keeps only (xyxy, conf, cls) per box. The Detect head's raw inference output is
``(B, 4 + nc, anchors)``: decoded xywh boxes, then one independent sigmoid score per class. A
:class:`DetectionPredictor` subclass runs the same NMS with ``return_idxs=True`` and reads each
kept box's class-score row at its anchor index. :attr:`Detections.confidence` is that row's max
(exactly ultralytics' ``boxes.conf``); :attr:`Detections.probs` is the row divided by its sum, so
that it is a distribution over the project's classes (a row of all zeros becomes uniform).
End-to-end (NMS-free) heads such as YOLO26 output ``(B, 300, 6)`` with no class vector; for those
the one-to-many branch, which every such checkpoint keeps, is selected (``nms=True``) and decoded
with classic NMS, for prediction and evaluation alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.domain import Detections
from labelwise.evaluation import DETECT_SCHEME, MetricScheme
from labelwise.yolo_adapter import BoxAdapter, data_yaml_names, l2_rows, weights_digest
from labelwise.yolo_inference import as_bgr, class_vector_predictor
from labelwise.yolo_models import DETECTOR, TrainResult, train_from

__all__ = ["EvalResult", "YoloDetector", "data_yaml_names", "weights_digest"]


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalResult:
    """Box metrics of one detector on one split, all in [0, 1].

    Attributes:
        precision, recall: mean over classes at the F1-optimal confidence (ultralytics
            ``mp``/``mr``).
        map50, map50_95: mean AP at IoU 0.5 and averaged over IoU 0.5:0.95.
        per_class_ap50, per_class_ap50_95: class name -> AP, only for classes that have at least
            one ground-truth box in the split (a class absent from the split has no AP).
        n_images: images evaluated; n_boxes: ground-truth boxes in them.
        seconds: wall time.
    """

    split: str
    precision: float
    recall: float
    map50: float
    map50_95: float
    per_class_ap50: dict[str, float] = field(default_factory=dict)
    per_class_ap50_95: dict[str, float] = field(default_factory=dict)
    n_images: int = 0
    n_boxes: int = 0
    seconds: float = 0.0

    @property
    def scheme(self) -> MetricScheme:
        """Detection's headline names (precision, recall, mAP50, mAP50-95; primary mAP50-95)."""
        return DETECT_SCHEME

    def headline(self) -> dict[str, float]:
        """The headline metrics under the names shown everywhere."""
        return {"precision": float(self.precision), "recall": float(self.recall),
                "mAP50": float(self.map50), "mAP50-95": float(self.map50_95)}

    def per_class(self) -> dict[str, float]:
        """``AP50/<class>`` of every class present in the split."""
        return {f"AP50/{k}": float(v) for k, v in self.per_class_ap50.items()}

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat name -> value mapping (for experiment tracking)."""
        out = {
            f"{prefix}precision": self.precision,
            f"{prefix}recall": self.recall,
            f"{prefix}map50": self.map50,
            f"{prefix}map50_95": self.map50_95,
        }
        out.update({f"{prefix}ap50/{k}": v for k, v in self.per_class_ap50.items()})
        out.update({f"{prefix}ap50_95/{k}": v for k, v in self.per_class_ap50_95.items()})
        return out


# --------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------
class YoloDetector(BoxAdapter):
    """An ultralytics YOLO detection model behind a numpy interface.

    Build it with :meth:`~labelwise.yolo_adapter.YoloAdapter.load`. The object is not
    thread-safe; use one per worker.
    """

    kind = DETECTOR

    # ---------------------------------------------------------------- inference
    def _get_predictor(self) -> Any:
        if self._predictor is None:
            predictor = class_vector_predictor()(overrides=self._predict_overrides())
            predictor.feature_layer = self.feature_layer if self._has_backbone() else None
            self._predictor = self._setup(predictor, predictor.feature_layer)
        return self._predictor

    def _embed_predictor_class(self) -> Any:
        from ultralytics.models.yolo.detect import DetectionPredictor

        return DetectionPredictor

    def predict_iter(
        self, paths: Sequence["Path | np.ndarray"], batch: int | None = None
    ) -> Iterator[tuple["Path | np.ndarray", Detections]]:
        """Stream ``(path, detections)`` in input order, ``batch`` images per forward pass.

        Args:
            paths: image files, each read with ultralytics' reader (BGR, EXIF orientation
                applied: see :mod:`labelwise.images`), or already decoded (H, W, 3) uint8 BGR
                arrays (used as they are).
            batch: images per forward pass; default ``settings.batch``.

        Yields:
            (path, Detections) with xyxy in pixels of the (oriented) image, confidence = raw max
            class score, probs = class-score row normalised to sum 1 (see module docstring).

        Raises:
            FileNotFoundError / ValueError: naming an image that is missing or cannot be decoded
                (raised when its batch is reached).
        """
        for path, raw in self._batches(self._get_predictor(), paths, batch):
            yield path, self._to_detections(raw)

    def predict_with_features(
        self, paths: Sequence["Path | np.ndarray"], batch: int | None = None
    ) -> tuple[list[Detections], np.ndarray]:
        """Detections and pooled features of every image from ONE forward pass per batch.

        Returns:
            (detections in input order, (N, D) float32 L2-normalised rows). The rows equal
            :meth:`features` on the same images (same letterbox, same layer, same pooling; a
            forward hook keeps the layer's output while the head runs on), up to float rounding.
        """
        predictor = self._get_predictor()
        if predictor.feature_layer is None and predictor.runner is None:
            raise RuntimeError(f"model from {self._ref} has no yaml backbone; cannot pool features")
        dets: list[Detections] = []
        rows: list[np.ndarray] = []
        for _, raw in self._batches(predictor, paths, batch):
            if raw.pooled is None:
                raise RuntimeError("the forward pass returned no pooled features")
            dets.append(self._to_detections(raw))
            rows.append(raw.pooled)
        return dets, l2_rows(rows, self.feature_dim)

    def raw_outputs(self, images: Sequence["Path | np.ndarray"]) -> tuple[np.ndarray, np.ndarray]:
        """The forward pass of ONE batch, before NMS (to compare backends on the same input).

        Returns:
            (raw Detect head output (B, 4 + C, anchors) float32: xywh in letterboxed pixels, then
            per-class sigmoid scores; pooled ``feature_layer`` output (B, D) float32, not
            normalised), from :attr:`backend` on the predictor's own letterboxed batch.
        """
        import torch

        predictor = self._get_predictor()
        pixels = [as_bgr(p) for p in images]
        predictor(source=pixels, stream=False)  # sets the source-dependent state (imgsz, batch)
        with torch.inference_mode():
            im = predictor.preprocess(pixels)
            out = predictor.inference(im)
        raw = out[0] if isinstance(out, (list, tuple)) else out
        pooled = predictor._pooled
        if pooled is None:
            raise RuntimeError("the forward pass returned no pooled features")
        return raw.detach().float().cpu().numpy(), np.asarray(pooled, np.float32)

    @property
    def feature_dim(self) -> int:
        """D of :meth:`features` (channels of :attr:`feature_layer`)."""
        layer = self._model.model[self.feature_layer]
        convs = [m for m in layer.modules() if hasattr(m, "out_channels")]
        if not convs:
            raise RuntimeError(f"cannot infer the channel count of layer {self.feature_layer}")
        return int(convs[-1].out_channels)

    # ---------------------------------------------------------------- training
    def train(
        self,
        data_yaml: Path,
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

        CPU recipe: amp off, workers 0, plots off, deterministic, validation only at the last
        epoch (ultralytics always validates then, so the yaml needs a ``val`` split).
        ``overrides`` go to ultralytics unchanged (e.g. ``mosaic=0.0``, ``warmup_epochs=1``,
        ``lr0=0.01``, ``val=True``).

        Args:
            data_yaml: ultralytics dataset yaml with absolute paths; its ``names`` must equal
                :attr:`class_names` in order.
            out_dir: the run goes to ``out_dir/name`` (overwritten if it exists).
            epochs, batch, seed: as in ultralytics. patience: 0 = no early stop.
            imgsz: default ``settings.imgsz``.
        """
        from ultralytics.models.yolo.detect import DetectionTrainer

        args = self._training_args(self._checked_data_yaml(data_yaml), out_dir, name, epochs, batch, seed,
                                   patience, imgsz, nms=True, **overrides)
        return train_from(DetectionTrainer(overrides=args), self._model)

    # ---------------------------------------------------------------- evaluation
    def evaluate(
        self,
        data_yaml: Path,
        split: str = "test",
        out_dir: Path | None = None,
        batch: int | None = None,
        imgsz: int | None = None,
    ) -> EvalResult:
        """Box metrics on one split of a dataset yaml (ultralytics' validator, plots off).

        Args:
            data_yaml: dataset yaml with absolute paths and ``names`` equal to :attr:`class_names`.
            split: ``train``, ``val`` or ``test``.
            out_dir: where ultralytics writes its run folder; default ``state_dir/runs``.
        """
        from ultralytics.models.yolo.detect import DetectionValidator

        validator, seconds = self._validate(DetectionValidator, self._checked_data_yaml(data_yaml), split,
                                            out_dir, batch, imgsz, rect=True, nms=True)
        metrics = validator.metrics
        box = metrics.box
        ap50: dict[str, float] = {}
        ap50_95: dict[str, float] = {}
        for i, cls_idx in enumerate(np.asarray(box.ap_class_index, dtype=int).tolist()):
            _, _, a50, a = box.class_result(i)
            name = self.class_names[cls_idx]
            ap50[name] = float(a50)
            ap50_95[name] = float(a)
        nt = metrics.nt_per_class
        return EvalResult(
            split=split,
            precision=float(box.mp),
            recall=float(box.mr),
            map50=float(box.map50),
            map50_95=float(box.map),
            per_class_ap50=ap50,
            per_class_ap50_95=ap50_95,
            n_images=int(validator.seen or 0),  # None only before a run
            n_boxes=int(np.sum(nt)) if nt is not None else 0,
            seconds=seconds,
        )
