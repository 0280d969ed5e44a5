"""Inference plumbing of the YOLO adapter: image reading and the class-vector predictor.

Images are read EXIF-oriented, like every reader in Labelwise (see :mod:`labelwise.images`):
boxes are in the oriented image's pixels.

``ultralytics`` keeps only (xyxy, conf, cls) per box. :func:`class_vector_predictor` builds a
``DetectionPredictor`` subclass that runs the same NMS with ``return_idxs=True`` and reads each
kept box's full class-score row at its anchor index (see :mod:`labelwise.detector`).

The same forward pass also yields each image's pooled backbone features (the embedding of
``embedder.kind=detector``): a forward hook on the ``feature_layer`` module keeps that layer's
output and the predictor global-average-pools it, exactly what ultralytics' ``embed=[layer]``
computes in :meth:`labelwise.detector.YoloDetector.features`, without a second decode and a
second backbone run. An exported model (ONNX Runtime, OpenVINO: :mod:`labelwise.inference_backends`)
is plugged in as a :class:`RawRunner` that replaces the torch forward pass on the very same
letterboxed batch and returns the same two things.
ultralytics is imported on first use only.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

CONF_CHECK_ATOL = 1e-5  # class-score row max vs NMS confidence


def normalise_rows(scores: np.ndarray) -> np.ndarray:
    """(N, C) non-negative scores -> (N, C) float32 rows summing to 1 (all-zero rows -> uniform)."""
    scores = np.clip(scores.astype(np.float64), 0.0, None)
    sums = scores.sum(axis=1, keepdims=True)
    n_classes = scores.shape[1]
    safe = np.where(sums > 0, sums, 1.0)
    probs = np.where(sums > 0, scores / safe, 1.0 / n_classes)
    return probs.astype(np.float32)


def read_bgr(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 BGR pixels of an image file, as ultralytics would read them.

    EXIF orientation is applied: ultralytics' ``imread`` is OpenCV's ``imdecode`` with
    ``IMREAD_COLOR``, which honours the tag (JPEG, PNG, WEBP, TIFF), so the pixels are the
    oriented image whose size the catalog records (the rule of :mod:`labelwise.images`).
    """
    from ultralytics.utils.patches import imread

    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist; expected a readable image file")
    image = imread(str(path))
    if image is None:
        raise ValueError(f"cannot decode image {path}; expected a readable image (jpg, png, ...)")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image


def as_bgr(source: "Path | str | np.ndarray") -> np.ndarray:
    """(H, W, 3) uint8 BGR pixels of an image file, or ``source`` itself when it is already such
    an array (e.g. an upload decoded once by the serving API).

    Raises:
        ValueError: an array of another shape or dtype; FileNotFoundError / ValueError for files
            (see :func:`read_bgr`).
    """
    if isinstance(source, np.ndarray):
        if source.ndim != 3 or source.shape[2] != 3 or source.dtype != np.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 BGR array; got shape {source.shape} {source.dtype}"
            )
        return source
    return read_bgr(Path(source))


def batched(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield [p if isinstance(p, np.ndarray) else Path(p) for p in items[start : start + size]]


# --------------------------------------------------------------------------------------------
# Predictor with class vectors
# --------------------------------------------------------------------------------------------
@dataclass
class RawBoxes:
    """One image's kept boxes as numpy, before conversion to :class:`Detections`."""

    xyxy: np.ndarray  # (N, 4) float32, original-image pixels
    confidence: np.ndarray  # (N,) float32, raw max class score
    class_id: np.ndarray  # (N,) int64
    scores: np.ndarray  # (N, C) float32, raw per-class sigmoid scores
    pooled: np.ndarray | None = None  # (D,) float32 pooled feature_layer output, not normalised
    speed: dict[str, float] = field(default_factory=dict)  # set by ultralytics' stream loop


class RawRunner(Protocol):
    """A forward pass that replaces the torch model's on the predictor's letterboxed batch.

    Called with the preprocessed batch (B, 3, H, W) float32 in [0, 1], RGB; returns the head
    outputs as float32 tensors (the raw Detect head output (B, 4 + nc, anchors); a Segment
    head's (B, 4 + nc + nm, anchors) and its prototypes (B, nm, h, w)) and the pooled
    ``feature_layer`` output (B, D) float32 (global average pool, not normalised).
    """

    def __call__(self, im: "torch.Tensor") -> tuple[tuple["torch.Tensor", ...], np.ndarray]: ...


def pool_features(x: "torch.Tensor") -> np.ndarray:
    """(B, D, h, w) feature map -> (B, D) float32 global average pool (ultralytics' ``embed``)."""
    import torch

    pooled = torch.nn.functional.adaptive_avg_pool2d(x.detach().float(), (1, 1)).flatten(1)
    return pooled.cpu().numpy().astype(np.float32)


def nms_with_indices(raw: "torch.Tensor", args: Any, nc: int) -> tuple[list[Any], list[Any]]:
    """Ultralytics' NMS over a raw one-to-many head output (B, 4 + nc [+ extra], anchors) under
    the predictor's ``args`` (conf, iou, agnostic_nms, max_det), returning per image the kept rows
    and the anchor index of each, so callers read the kept boxes' full class rows (and, for a
    segmentation head, mask coefficients) from ``raw``."""
    from ultralytics.utils import nms

    return nms.non_max_suppression(raw, args.conf, args.iou, None, args.agnostic_nms,
                                   max_det=args.max_det, nc=nc, end2end=False, return_idxs=True)


def kept_class_rows(raw: "torch.Tensor", b: int, idx: "torch.Tensor", nc: int, det: "torch.Tensor") -> "torch.Tensor":
    """(N, nc) float sigmoid class scores of image ``b``'s kept boxes: the raw head output's class
    rows at the anchors NMS kept (``idx``), after checking their maxima are NMS's confidences
    (``det[:, 4]``; a RuntimeError names an index mix-up)."""
    idx = idx.reshape(-1).long()
    rows = raw[b, 4 : 4 + nc, idx].T.float()
    if det.shape[0] and not np.allclose(rows.max(1).values.cpu().numpy(), det[:, 4].cpu().numpy(),
                                        atol=CONF_CHECK_ATOL):
        raise RuntimeError("class-score rows do not match NMS confidences (index mix-up)")
    return rows


@functools.lru_cache(maxsize=1)
def class_vector_predictor() -> type:
    """Build the DetectionPredictor subclass (deferred so ultralytics is imported lazily)."""
    from ultralytics.models.yolo.detect import DetectionPredictor
    from ultralytics.utils import ops

    class ClassVectorPredictor(DetectionPredictor):
        """NMS as ultralytics does it, plus the kept boxes' full class-score rows.

        Attributes set by the adapter after ``setup_model``:
            feature_layer: index of the layer whose pooled output goes with each image
                (:attr:`RawBoxes.pooled`); None = no features.
            runner: a :class:`RawRunner` (exported model) used instead of the torch forward.
        """

        feature_layer: int | None = None
        runner: RawRunner | None = None
        _pooled: np.ndarray | None = None
        _hooked: Any = None

        def _hook_features(self) -> None:
            """Register (once) a forward hook keeping the pooled output of ``feature_layer``."""
            if self.feature_layer is None or self._hooked is not None:
                return
            layers = self.model.model.model  # type: ignore[attr-defined]  # AutoBackend -> DetectionModel -> Sequential

            def keep(_module: Any, _inputs: Any, output: "torch.Tensor") -> None:
                self._pooled = pool_features(output)

            self._hooked = layers[self.feature_layer].register_forward_hook(keep)

        def inference(self, im: "torch.Tensor", *args: Any, **kwargs: Any) -> Any:
            self._pooled = None
            if self.runner is not None:
                heads, pooled = self.runner(im)
                self._pooled = pooled
                return heads[0] if len(heads) == 1 else list(heads)  # [raw, protos] as an export's
            self._hook_features()
            return super().inference(im, *args, **kwargs)

        def _kept(
            self, raw: "torch.Tensor", nc: int, extra: int, orig_imgs: Any, what: str, hint: str
        ) -> tuple[list, list, list, np.ndarray | None]:
            """NMS of a raw head output (B, 4 + nc + extra, anchors) with the kept anchors'
            indices, the source images as a list of BGR arrays and the batch's pooled features
            (None without a feature layer); a RuntimeError naming ``what`` for any other shape."""
            if raw.ndim != 3 or raw.shape[1] != 4 + nc + extra:
                raise RuntimeError(f"{what} = (B, {4 + nc + extra}, A) to read class vectors; got "
                                   f"{tuple(raw.shape)}. {hint}")
            kept, indices = nms_with_indices(raw, self.args, nc)
            if not isinstance(orig_imgs, list):  # a tensor source, as in DetectionPredictor
                orig_imgs = ops.convert_torch2numpy_batch(orig_imgs)[..., ::-1]
            pooled = self._pooled if self.feature_layer is not None or self.runner is not None else None
            if pooled is not None and pooled.shape[0] != raw.shape[0]:
                raise RuntimeError(
                    f"pooled features must have one row per image: expected {raw.shape[0]}, got "
                    f"{pooled.shape[0]}"
                )
            return kept, indices, orig_imgs, pooled

        def postprocess(
            self, preds: Any, img: "torch.Tensor", orig_imgs: Any, **kwargs: Any
        ) -> list:
            raw = preds[0] if isinstance(preds, (list, tuple)) else preds
            nc = len(self.model.names)  # type: ignore[attr-defined]  # ultralytics declares model = None until setup
            kept, indices, orig_imgs, pooled = self._kept(
                raw, nc, 0, orig_imgs, "detector head output must be (B, 4 + nc, anchors)",
                "End-to-end heads without a one-to-many branch (output (B, 300, 6)) carry no class "
                "distribution.")
            out = []
            for b, (det, idx) in enumerate(zip(kept, indices)):
                rows = kept_class_rows(raw, b, idx, nc, det)
                height, width = int(img.shape[2]), int(img.shape[3])
                boxes = ops.scale_boxes((height, width), det[:, :4].clone(), orig_imgs[b].shape)
                xyxy = boxes if isinstance(boxes, np.ndarray) else boxes.cpu().numpy()  # tensor in, tensor out
                out.append(
                    RawBoxes(
                        xyxy=xyxy.astype(np.float32),
                        confidence=det[:, 4].cpu().numpy().astype(np.float32),
                        class_id=det[:, 5].cpu().numpy().astype(np.int64),
                        scores=rows.cpu().numpy().astype(np.float32),
                        pooled=None if pooled is None else pooled[b],
                    )
                )
            return out

    return ClassVectorPredictor
