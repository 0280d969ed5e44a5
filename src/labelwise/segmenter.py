"""YOLO instance-segmentation adapter: load, predict boxes with class vectors and masks, features,
train, evaluate.

The segmentation twin of :class:`labelwise.detector.YoloDetector`, with the same conventions:
only this module (and :mod:`labelwise.ultralytics_env`) knows ultralytics' segmentation classes,
everything it returns is numpy or a frozen dataclass, and ultralytics and torch are imported on
first use, after :func:`~labelwise.ultralytics_env.prepare_ultralytics`.

Class vectors
-------------
The Segment head's raw inference output is ``(B, 4 + C + M, anchors)`` (decoded xywh boxes in
letterboxed pixels, C per-class sigmoid scores, M = 32 mask coefficients) plus the prototypes
``(B, M, h/4, w/4)``. The predictor runs ultralytics' NMS exactly as its
``SegmentationPredictor`` does (``nc=C``, so the rows after ``4 + C`` travel with each box as its
mask coefficients) with ``return_idxs=True``, and reads each kept box's class-score row at its
anchor index, as the detector does (:func:`labelwise.yolo_inference.class_vector_predictor` is
the base class: same forward-hook features, same confidence check).
:attr:`Detections.confidence` is that row's max (ultralytics' ``boxes.conf``),
:attr:`Detections.probs` the row divided by its sum.

Masks
-----
ultralytics' default (``retina_masks=False``) route: :func:`ultralytics.utils.ops.process_mask`
with ``upsample=True`` turns the kept boxes' coefficients into binary masks at the letterboxed
input size, cropped to the boxes; a box whose mask is empty there is dropped (as
``YOLO.predict`` drops it); then :func:`ultralytics.utils.ops.scale_masks` removes the letterbox
padding and resizes the masks to the original image (bilinear on the 0/1 mask, kept where >= 0.5).
So the boxes, their count and their masks are those of ``YOLO(model).predict(image)`` at the same
``conf``, ``iou``, ``imgsz`` and ``max_det``, with ``Results.masks`` taken to the original size
by the same ``scale_masks`` (for the same batches: ultralytics letterboxes a batch whose images
share one shape to the smallest stride-32 rectangle, any other batch to an ``imgsz`` square, as
for the detector). ``YOLO.predict(retina_masks=True)`` upsamples the prototypes straight to the
image instead (``process_mask_native``), and filters empty masks there: masks that differ at
their edges (mask IoU 0.90-0.94 measured at ``imgsz`` 96 on ~120 px images), rarely another
instance count.

Mask stability
--------------
From the same upsampled mask logits (before the threshold at 0) each kept instance gets a
stability in [0, 1] (:func:`labelwise.segment_inference.mask_stability`, the stability score of
Kirillov et al., "Segment Anything", 2023): inside its box, the pixels whose logit exceeds ``+offset`` over those whose
logit exceeds ``-offset`` (the mask's IoU with itself at two thresholds, sigmoid 0.27 and 0.73
for ``offset`` 1). An outline the model is sure of scores near 1; a soft, wavering one lower.
It travels with the boxes as :attr:`Detections.mask_stability` and enters image scores through
``scoring.mask_weight`` (:mod:`labelwise.scoring`).

An original-size mask stack costs ``N * H * W`` bytes: :meth:`YoloSegmenter.predict`
and :meth:`~YoloSegmenter.predict_with_features` never build it, and
:meth:`~YoloSegmenter.predict_segments_iter` streams it image by image.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labelwise.domain import Detections
from labelwise.evaluation import SEGMENT_SCHEME, MetricScheme
from labelwise.masks import ImageSegments, segments_from_masks
from labelwise.segment_inference import RawSegments, masks_to_image, segment_predictor
from labelwise.task_types import TaskType
from labelwise.yolo_adapter import BoxAdapter, l2_rows
from labelwise.yolo_inference import RawBoxes
from labelwise.yolo_models import SEGMENTER, TrainResult, train_from

if TYPE_CHECKING:  # pragma: no cover
    pass

TASK = TaskType.SEGMENT.value
"""ultralytics' name of the instance-segmentation task (``"segment"``)."""
DEFAULT_EPSILON_PX = 1.0
"""Douglas-Peucker tolerance (pixels) of :meth:`SegmentPrediction.polygons` by default."""
DEFAULT_MIN_AREA_PX = 4.0
"""Smallest polygon (square pixels) :meth:`SegmentPrediction.polygons` keeps by default."""


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SegmentPrediction:
    """The instances one segmentation model found in one image.

    Attributes:
        detections: N boxes in original-image pixels, each with its full class distribution
            (see the module docstring).
        masks: (N, H, W) bool, a read-only view: instance i's mask at the original image size H x W
            (cropped to its box, never empty). The order is that of ``detections``.
    """

    detections: Detections
    masks: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.detections, Detections):
            raise TypeError(f"detections must be Detections; got {type(self.detections).__name__}")
        masks = np.asarray(self.masks)
        if masks.ndim != 3 or masks.dtype != np.bool_:
            raise ValueError(f"masks must be an (N, H, W) bool array; got shape {masks.shape} dtype {masks.dtype}")
        if masks.shape[0] != len(self.detections):
            raise ValueError(
                f"expected one mask per detection ({len(self.detections)}); got {masks.shape[0]} masks"
            )
        if masks.shape[1] < 1 or masks.shape[2] < 1:
            raise ValueError(f"masks must be at least 1 x 1 pixels; got shape {masks.shape}")
        view = masks.view()
        view.setflags(write=False)
        object.__setattr__(self, "masks", view)

    def __len__(self) -> int:
        return len(self.detections)

    @property
    def height(self) -> int:
        """H: the original image's height in pixels."""
        return int(self.masks.shape[1])

    @property
    def width(self) -> int:
        """W: the original image's width in pixels."""
        return int(self.masks.shape[2])

    @property
    def mask_area(self) -> np.ndarray:
        """(N,) int64 pixels of each mask."""
        return self.masks.reshape(len(self), -1).sum(axis=1).astype(np.int64)

    def polygons_with_index(
        self, epsilon_px: float = DEFAULT_EPSILON_PX, min_area_px: float = DEFAULT_MIN_AREA_PX
    ) -> tuple[ImageSegments, np.ndarray]:
        """Simplified polygons of the masks and which detection each came from.

        Each mask becomes its largest outer contour (holes filled, see :mod:`labelwise.masks`),
        simplified with Douglas-Peucker so no boundary pixel centre is further than
        ``epsilon_px`` from it; a mask whose polygon encloses less than ``min_area_px`` square
        pixels (or keeps fewer than 3 vertices) gives none.

        Returns:
            (segments in pixels of the original image, with each instance's ``class_id``;
            (K,) int64 index into :attr:`detections` of each instance, in order).
        """
        return segments_from_masks(
            self.masks, self.detections.class_id.tolist(),
            simplify_tolerance_px=epsilon_px, min_area_px=min_area_px,
        )

    def polygons(
        self, epsilon_px: float = DEFAULT_EPSILON_PX, min_area_px: float = DEFAULT_MIN_AREA_PX
    ) -> ImageSegments:
        """The instances as simplified polygons (see :meth:`polygons_with_index`)."""
        return self.polygons_with_index(epsilon_px, min_area_px)[0]


@dataclass(frozen=True)
class SegmentEvalResult:
    """Box and mask metrics of one segmentation model on one split, all in [0, 1].

    Attributes:
        split: ``train``, ``val`` or ``test``.
        precision, recall, map50, map50_95: the BOX metrics (ultralytics ``metrics.box``: mean
            over classes of P and R at the F1-optimal confidence, mAP at IoU 0.5 and averaged
            over 0.5:0.95). The headline ``precision`` / ``recall`` are these box values.
        mask_precision, mask_recall, mask_map50, mask_map50_95: the same from mask IoU
            (ultralytics ``metrics.seg``).
        per_class_ap50: class name -> box AP50; per_class_mask_ap50, per_class_mask_ap50_95:
            class name -> mask AP. Only classes with at least one instance in the split.
        n_images: images evaluated; n_instances: ground-truth instances in them.
        seconds: wall time.
    """

    split: str
    precision: float
    recall: float
    map50: float
    map50_95: float
    mask_precision: float
    mask_recall: float
    mask_map50: float
    mask_map50_95: float
    per_class_ap50: dict[str, float] = field(default_factory=dict)
    per_class_mask_ap50: dict[str, float] = field(default_factory=dict)
    per_class_mask_ap50_95: dict[str, float] = field(default_factory=dict)
    n_images: int = 0
    n_instances: int = 0
    seconds: float = 0.0

    @property
    def scheme(self) -> MetricScheme:
        """Segmentation's headline names (box precision, recall, mAP50, mAP50-95, then
        mask_mAP50, mask_mAP50-95; primary mask_mAP50-95)."""
        return SEGMENT_SCHEME

    def headline(self) -> dict[str, float]:
        """The headline metrics under the names shown everywhere, in the scheme's order;
        ``precision`` and ``recall`` are the box values."""
        return {
            "precision": float(self.precision),
            "recall": float(self.recall),
            "mAP50": float(self.map50),
            "mAP50-95": float(self.map50_95),
            "mask_mAP50": float(self.mask_map50),
            "mask_mAP50-95": float(self.mask_map50_95),
        }

    def per_class(self) -> dict[str, float]:
        """``mask_AP50/<class>`` of every class present in the split."""
        return {f"mask_AP50/{k}": float(v) for k, v in self.per_class_mask_ap50.items()}

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat name -> value mapping (for experiment tracking): ``precision``, ``recall``,
        ``map50``, ``map50_95`` (box), ``mask_precision``, ``mask_recall``, ``mask_map50``,
        ``mask_map50_95``, ``ap50/<class>``, ``mask_ap50/<class>``, ``mask_ap50_95/<class>``,
        each after ``prefix``."""
        out = {
            f"{prefix}precision": self.precision,
            f"{prefix}recall": self.recall,
            f"{prefix}map50": self.map50,
            f"{prefix}map50_95": self.map50_95,
            f"{prefix}mask_precision": self.mask_precision,
            f"{prefix}mask_recall": self.mask_recall,
            f"{prefix}mask_map50": self.mask_map50,
            f"{prefix}mask_map50_95": self.mask_map50_95,
        }
        out.update({f"{prefix}ap50/{k}": v for k, v in self.per_class_ap50.items()})
        out.update({f"{prefix}mask_ap50/{k}": v for k, v in self.per_class_mask_ap50.items()})
        out.update({f"{prefix}mask_ap50_95/{k}": v for k, v in self.per_class_mask_ap50_95.items()})
        return out


# --------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------
class YoloSegmenter(BoxAdapter):
    """An ultralytics YOLO instance-segmentation model behind a numpy interface.

    Build it with :meth:`~labelwise.yolo_adapter.YoloAdapter.load` (a ``.pt`` of a segmentation
    model or a ``-seg`` yaml; a model of another task is a
    :class:`~labelwise.task_types.TaskMismatch` naming both). The object is not thread-safe;
    use one per worker.
    """

    kind = SEGMENTER
    predict_extra = {"retina_masks": False}

    _feature_dim: int | None = None  # measured on first use (:attr:`feature_dim`)

    # ---------------------------------------------------------------- properties
    @property
    def feature_dim(self) -> int:
        """D of :meth:`features`: the channels :attr:`feature_layer` outputs (256 for yolov8n-seg
        and yolo11n-seg), measured once by running the backbone up to that layer on a blank
        64 x 64 input (the layer's last convolution is not always its output: C2PSA)."""
        if self._feature_dim is None:
            import torch

            with torch.inference_mode():
                pooled = self._model.predict(torch.zeros(1, 3, 64, 64), embed=[self.feature_layer])
            self._feature_dim = int(pooled[0].numel())
        return self._feature_dim

    @property
    def mask_dim(self) -> int:
        """M: mask coefficients per box (prototype channels; 32 for the YOLO heads)."""
        return int(self._model.model[-1].nm)

    # ---------------------------------------------------------------- inference
    def _get_predictor(self) -> Any:
        if self._predictor is None:
            predictor = segment_predictor()(overrides=self._predict_overrides())
            predictor.feature_layer = self.feature_layer
            self._predictor = self._setup(predictor, self.feature_layer)
        return self._predictor

    def _embed_predictor_class(self) -> Any:
        from ultralytics.models.yolo.segment import SegmentationPredictor

        return SegmentationPredictor

    def _raw_iter(
        self, paths: Sequence["Path | np.ndarray"], batch: int | None, keep_masks: bool
    ) -> Iterator[tuple["Path | np.ndarray", RawSegments]]:
        predictor = self._get_predictor()
        predictor.keep_masks = keep_masks
        yield from self._batches(predictor, paths, batch)

    def _to_detections(self, raw: RawBoxes) -> Detections:
        """The boxes as the detector makes them, with each mask's stability."""
        boxes = super()._to_detections(raw)
        if not isinstance(raw, RawSegments):  # pragma: no cover - the segment predictor's rows
            raise TypeError(f"expected the segment predictor's rows; got {type(raw).__name__}")
        return Detections(boxes.xyxy, boxes.confidence, boxes.class_id, boxes.probs,
                          np.clip(raw.stability, 0.0, 1.0))

    def predict_segments_iter(
        self, paths: Sequence["Path | np.ndarray"], batch: int | None = None
    ) -> Iterator[tuple["Path | np.ndarray", SegmentPrediction]]:
        """Stream ``(path, instances)`` in input order, ``batch`` images per forward pass.

        Args:
            paths: image files, each read with ultralytics' reader (BGR, EXIF orientation
                applied: see :mod:`labelwise.images`), or already decoded (H, W, 3) uint8 BGR
                arrays (used as they are).
            batch: images per forward pass; default ``settings.batch``.

        Yields:
            (path, SegmentPrediction): boxes in pixels of the (oriented) image with their class
            vectors, and (N, H, W) bool masks at that image's size (see the module docstring).

        Raises:
            FileNotFoundError / ValueError: naming an image that is missing or cannot be decoded
                (raised when its batch is reached).
        """
        for path, raw in self._raw_iter(paths, batch, keep_masks=True):
            if raw.input_masks is None:  # pragma: no cover - keep_masks=True above
                raise RuntimeError("the predictor returned no masks")
            height, width = raw.image_hw
            yield path, SegmentPrediction(self._to_detections(raw), masks_to_image(raw.input_masks, height, width))

    def predict_segments(
        self, paths: Sequence["Path | np.ndarray"], batch: int | None = None
    ) -> list[SegmentPrediction]:
        """The instances of every image (file or BGR array), in input order (see
        :meth:`predict_segments_iter`; all masks are held: ``sum(N * H * W)`` bytes)."""
        return [pred for _, pred in self.predict_segments_iter(paths, batch)]

    def predict_iter(
        self, paths: Sequence["Path | np.ndarray"], batch: int | None = None
    ) -> Iterator[tuple["Path | np.ndarray", Detections]]:
        """Stream ``(path, detections)``: the boxes of :meth:`predict_segments_iter` (same boxes,
        same order, same class vectors) without building the original-size masks."""
        for path, raw in self._raw_iter(paths, batch, keep_masks=False):
            yield path, self._to_detections(raw)

    def predict_with_features(
        self, paths: Sequence["Path | np.ndarray"], batch: int | None = None
    ) -> tuple[list[Detections], np.ndarray]:
        """Boxes and pooled features of every image from ONE forward pass per batch.

        Returns:
            (detections in input order as :meth:`predict`, (N, D) float32 L2-normalised rows
            equal to :meth:`features` of the same images up to float rounding).
        """
        dets: list[Detections] = []
        rows: list[np.ndarray] = []
        for _, raw in self._raw_iter(paths, batch, keep_masks=False):
            if raw.pooled is None:
                raise RuntimeError("the forward pass returned no pooled features")
            dets.append(self._to_detections(raw))
            rows.append(raw.pooled)
        return dets, l2_rows(rows, self.feature_dim)

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
        """Fine-tune a copy of these weights with ultralytics' SegmentationTrainer; this object is
        left unchanged.

        The CPU recipe of :func:`~labelwise.ultralytics_env.cpu_training_args` (amp off, workers
        0, plots off, deterministic, checkpoints only at the end unless ``patience`` is set);
        ultralytics validates on ``val`` at the last epoch. ``overrides`` go to ultralytics
        unchanged (e.g. ``mosaic=0.0``, ``warmup_epochs=1``, ``overlap_mask=False``).

        Args:
            data_yaml: ultralytics dataset yaml with absolute paths and segment labels (polygons,
                ``cls x1 y1 x2 y2 ...``); its ``names`` must equal :attr:`class_names` in order.
            out_dir: the run goes to ``out_dir/name`` (overwritten if it exists).
            epochs, batch, seed: as in ultralytics. patience: 0 = no early stop.
            imgsz: default ``settings.imgsz``.

        Raises:
            ValueError: epochs or batch < 1, names that are not this model's classes.
            FileNotFoundError: no ``data_yaml``.
        """
        from ultralytics.models.yolo.segment import SegmentationTrainer

        args = self._training_args(self._checked_data_yaml(data_yaml), out_dir, name, epochs, batch, seed,
                                   patience, imgsz, nms=True, **overrides)
        return train_from(SegmentationTrainer(overrides=args), self._model)

    # ---------------------------------------------------------------- evaluation
    def evaluate(
        self,
        data_yaml: Path,
        split: str = "test",
        out_dir: Path | None = None,
        batch: int | None = None,
        imgsz: int | None = None,
    ) -> SegmentEvalResult:
        """Box and mask metrics on one split of a dataset yaml (ultralytics'
        SegmentationValidator, plots off, on a copy of the model).

        Args:
            data_yaml: dataset yaml with absolute paths, segment labels and ``names`` equal to
                :attr:`class_names`.
            split: ``train``, ``val`` or ``test``.
            out_dir: where ultralytics writes its run folder; default ``state_dir/runs``.
            batch, imgsz: default ``settings.batch`` / ``settings.imgsz``.

        Raises:
            ValueError: an unknown split, names that are not this model's classes.
            FileNotFoundError: no ``data_yaml``.
        """
        from ultralytics.models.yolo.segment import SegmentationValidator

        validator, seconds = self._validate(SegmentationValidator, self._checked_data_yaml(data_yaml), split,
                                            out_dir, batch, imgsz, rect=True, nms=True)
        metrics = validator.metrics
        box, seg = metrics.box, metrics.seg
        ap50: dict[str, float] = {}
        for i, cls_idx in enumerate(np.asarray(box.ap_class_index, dtype=int).tolist()):
            ap50[self.class_names[cls_idx]] = float(box.class_result(i)[2])
        mask_ap50: dict[str, float] = {}
        mask_ap50_95: dict[str, float] = {}
        for i, cls_idx in enumerate(np.asarray(seg.ap_class_index, dtype=int).tolist()):
            _, _, a50, a = seg.class_result(i)
            mask_ap50[self.class_names[cls_idx]] = float(a50)
            mask_ap50_95[self.class_names[cls_idx]] = float(a)
        nt = metrics.nt_per_class
        return SegmentEvalResult(
            split=split,
            precision=float(box.mp),
            recall=float(box.mr),
            map50=float(box.map50),
            map50_95=float(box.map),
            mask_precision=float(seg.mp),
            mask_recall=float(seg.mr),
            mask_map50=float(seg.map50),
            mask_map50_95=float(seg.map),
            per_class_ap50=ap50,
            per_class_mask_ap50=mask_ap50,
            per_class_mask_ap50_95=mask_ap50_95,
            n_images=int(validator.seen or 0),
            n_instances=int(np.sum(nt)) if nt is not None else 0,
            seconds=seconds,
        )
