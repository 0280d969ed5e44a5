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

import copy
import hashlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labelwise.config import DetectorSettings
from labelwise.domain import Detections
from labelwise.evaluation import DETECT_SCHEME, MetricScheme
from labelwise.inference_backends import attach_runner
from labelwise.ultralytics_env import cpu_training_args, ensure_ultralytics
from labelwise.yolo_inference import RawBoxes, as_bgr, batched, class_vector_predictor, normalise_rows
from labelwise.yolo_models import DETECTOR, TrainResult, load_yolo_model, save_checkpoint, train_from

if TYPE_CHECKING:  # pragma: no cover
    import torch



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
# Helpers
# --------------------------------------------------------------------------------------------
def weights_digest(module: "torch.nn.Module", length: int = 10) -> str:
    """SHA-256 of a module's state dict (key, dtype, shape, bytes of each tensor), hex[:length].

    Same weights give the same digest regardless of train/eval mode or where they came from.
    """
    import torch

    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        if not isinstance(value, torch.Tensor):
            continue
        t = value.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            t = t.float()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:length]


def _data_yaml_names(data_yaml: Path) -> list[str]:
    import yaml

    data = yaml.safe_load(Path(data_yaml).read_text())
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names)]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise ValueError(
        f"{data_yaml} must define 'names' as a list or {{id: name}} mapping; got {names!r}"
    )


# --------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------
class YoloDetector:
    """An ultralytics YOLO detection model behind a numpy interface.

    Build it with :meth:`load`. The object is not thread-safe; use one per worker.
    """

    def __init__(
        self,
        model: Any,
        *,
        ref: str,
        settings: DetectorSettings,
        state_dir: Path,
        class_names: tuple[str, ...],
    ) -> None:
        self._model = model  # ultralytics DetectionModel (fp32, eval mode); never handed out
        self._ref = ref
        self.settings = settings
        self.state_dir = Path(state_dir)
        self.class_names = class_names
        self.version = f"{Path(ref).stem}-{weights_digest(model)}"
        self._predictor: Any = None
        self._feature_predictor: Any = None

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(
        cls,
        ref: str | Path,
        settings: DetectorSettings,
        state_dir: Path,
        class_names: Sequence[str] | None = None,
        seed: int = 0,
    ) -> "YoloDetector":
        """Load weights or build a fresh model.

        Args:
            ref: a local ``.pt`` file, or an ultralytics model yaml name/path (random init, with a
                head for ``len(class_names)`` classes). ``models:/`` registry URIs are resolved by
                the tracking layer into a ``.pt`` path before they get here.
            settings: inference settings (imgsz, batch, conf, iou, max_det, device, threads).
            state_dir: Labelwise's state folder; ultralytics' config goes to
                ``state_dir/ultralytics`` unless this process already set one up.
            class_names: required for a yaml; for a ``.pt`` optional, and then must equal the
                checkpoint's names in order.
            seed: torch seed for a yaml build (same yaml + seed -> same weights -> same version).

        Raises:
            TaskMismatch: the yaml or checkpoint is of another task, naming both tasks.
            ValueError: unsupported ref, missing/duplicate class names, names not matching the
                checkpoint, or an unreadable checkpoint (see
                :func:`labelwise.yolo_models.load_yolo_model`).
            FileNotFoundError: the ``.pt`` (or custom yaml) does not exist.
        """
        state_dir = Path(state_dir)
        ensure_ultralytics(state_dir / "ultralytics", threads=settings.threads)
        model, names, ref_str = load_yolo_model(DETECTOR, ref, class_names, seed)
        return cls(model, ref=ref_str, settings=settings, state_dir=state_dir, class_names=names)

    # ---------------------------------------------------------------- properties
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def ref(self) -> str:
        """What the model was loaded from (a .pt path or a yaml name)."""
        return self._ref

    @property
    def feature_layer(self) -> int:
        """Index of the layer :meth:`features` pools: the last backbone layer (SPPF/C2PSA)."""
        yaml_cfg = getattr(self._model, "yaml", None) or {}
        backbone = yaml_cfg.get("backbone")
        if not backbone:
            raise RuntimeError(f"model from {self._ref} has no yaml backbone; cannot pick a layer")
        return len(backbone) - 1

    def __repr__(self) -> str:
        return f"YoloDetector(version={self.version!r}, classes={len(self.class_names)})"

    # ---------------------------------------------------------------- inference
    def _predict_overrides(self, **extra: Any) -> dict[str, Any]:
        s = self.settings
        return {
            "conf": s.conf,
            "iou": s.iou,
            "imgsz": s.imgsz,
            "max_det": s.max_det,
            "batch": s.batch,
            "device": s.device,
            "mode": "predict",
            "task": "detect",
            "rect": True,
            "nms": True,  # keep the one-to-many head (class vectors) on end-to-end models
            "save": False,
            "verbose": False,
            "project": str(self.state_dir / "runs"),
            "name": "predict",
            "exist_ok": True,
            **extra,
        }

    def _get_predictor(self) -> Any:
        if self._predictor is None:
            predictor = class_vector_predictor()(overrides=self._predict_overrides())
            predictor.setup_model(model=self._model, verbose=False)  # deep-copies and fuses
            predictor.feature_layer = self.feature_layer if self._has_backbone() else None
            if self.backend != "torch":
                attach_runner(predictor, self._model, self.settings, version=self.version,
                              feature_layer=self.feature_layer, cache_root=self.export_root)
            self._predictor = predictor
        return self._predictor

    @property
    def backend(self) -> str:
        """Inference backend of :meth:`predict_iter` (``settings.backend``): torch, onnx, openvino."""
        return self.settings.backend

    @property
    def export_root(self) -> Path:
        """Folder of the cached exports of the onnx / openvino backends."""
        return self.state_dir / "exports"

    def _has_backbone(self) -> bool:
        return bool((getattr(self._model, "yaml", None) or {}).get("backbone"))

    def _get_feature_predictor(self) -> Any:
        if self._feature_predictor is None:
            from ultralytics.models.yolo.detect import DetectionPredictor

            predictor = DetectionPredictor(
                overrides=self._predict_overrides(embed=[self.feature_layer])
            )
            predictor.setup_model(model=self._model, verbose=False)
            self._feature_predictor = predictor
        return self._feature_predictor

    def _to_detections(self, raw: RawBoxes) -> Detections:
        return Detections(
            xyxy=raw.xyxy,
            confidence=raw.confidence,
            class_id=raw.class_id,
            probs=(
                normalise_rows(raw.scores)
                if len(raw.scores)
                else raw.scores.reshape(0, self.num_classes)
            ),
        )

    def predict_iter(
        self, paths: Sequence["Path | np.ndarray"], batch: int | None = None
    ) -> Iterator[tuple["Path | np.ndarray", Detections]]:
        """Stream ``(path, detections)`` in input order, ``batch`` images in memory at a time.

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
        size = batch or self.settings.batch
        if size < 1:
            raise ValueError(f"batch must be >= 1; got {size}")
        predictor = self._get_predictor()
        for chunk in batched(list(paths), size):
            images = [as_bgr(p) for p in chunk]
            results = predictor(source=images, stream=False)
            if len(results) != len(chunk):
                raise RuntimeError(
                    f"expected {len(chunk)} results for the batch; got {len(results)}"
                )
            for path, raw in zip(chunk, results):
                yield path, self._to_detections(raw)

    def read(self, path: Path) -> np.ndarray:
        """(H, W, 3) uint8 BGR pixels of an image file as :meth:`predict_iter` reads it
        (EXIF-oriented; FileNotFoundError / ValueError naming the file)."""
        return as_bgr(path)

    def predict_with_features(
        self, paths: Sequence["Path | np.ndarray"], batch: int | None = None
    ) -> tuple[list[Detections], np.ndarray]:
        """Detections and pooled features of every image from ONE forward pass per batch.

        Returns:
            (detections in input order, (N, D) float32 L2-normalised rows). The rows equal
            :meth:`features` on the same images (same letterbox, same layer, same pooling; a
            forward hook keeps the layer's output while the head runs on), up to float rounding.
        """
        size = batch or self.settings.batch
        if size < 1:
            raise ValueError(f"batch must be >= 1; got {size}")
        predictor = self._get_predictor()
        if predictor.feature_layer is None and predictor.runner is None:
            raise RuntimeError(f"model from {self._ref} has no yaml backbone; cannot pool features")
        dets: list[Detections] = []
        rows: list[np.ndarray] = []
        for chunk in batched(list(paths), size):
            results = predictor(source=[as_bgr(p) for p in chunk], stream=False)
            if len(results) != len(chunk):
                raise RuntimeError(f"expected {len(chunk)} results for the batch; got {len(results)}")
            for raw in results:
                if raw.pooled is None:
                    raise RuntimeError("the forward pass returned no pooled features")
                dets.append(self._to_detections(raw))
                rows.append(raw.pooled)
        if not rows:
            return dets, np.zeros((0, self.feature_dim), np.float32)
        feats = np.stack(rows).astype(np.float32)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        return dets, (feats / np.maximum(norms, 1e-12)).astype(np.float32)

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

    def predict(self, paths: Sequence["Path | np.ndarray"]) -> list[Detections]:
        """Detections of every image (file or BGR array), in input order (see
        :meth:`predict_iter`)."""
        return [det for _, det in self.predict_iter(paths)]

    def features(self, paths: Sequence[Path], batch: int | None = None) -> np.ndarray:
        """Pooled backbone features: (N, D) float32, rows L2-normalised.

        Global average pool of :attr:`feature_layer` (the last backbone layer; D = its channels,
        256 for a yolov8n) on the letterboxed ``settings.imgsz`` input. Cheap: the forward pass
        stops at that layer.
        """
        size = batch or self.settings.batch
        predictor = self._get_feature_predictor()
        rows: list[np.ndarray] = []
        for chunk in batched(list(paths), size):
            images = [as_bgr(p) for p in chunk]
            for emb in predictor(source=images, stream=False):
                rows.append(emb.detach().float().cpu().numpy().reshape(-1))
        if not rows:
            return np.zeros((0, self.feature_dim), np.float32)
        feats = np.stack(rows).astype(np.float32)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        return (feats / np.maximum(norms, 1e-12)).astype(np.float32)

    @property
    def feature_dim(self) -> int:
        """D of :meth:`features` (channels of :attr:`feature_layer`)."""
        layer = self._model.model[self.feature_layer]
        convs = [m for m in layer.modules() if hasattr(m, "out_channels")]
        if not convs:
            raise RuntimeError(f"cannot infer the channel count of layer {self.feature_layer}")
        return int(convs[-1].out_channels)

    # ---------------------------------------------------------------- persistence
    def save(self, path: Path) -> Path:
        """Write an ultralytics-loadable checkpoint (fp32, so a reload keeps :attr:`version`)."""
        return save_checkpoint(self._model, path, self.version, DETECTOR.task)

    # ---------------------------------------------------------------- training
    def _check_data_names(self, data_yaml: Path) -> None:
        names = _data_yaml_names(data_yaml)
        if tuple(names) != self.class_names:
            raise ValueError(
                f"{data_yaml} names must equal the detector's classes in order; expected "
                f"{list(self.class_names)}, got {names}"
            )

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

        if epochs < 1 or batch < 1:
            raise ValueError(f"epochs and batch must be >= 1; got epochs={epochs}, batch={batch}")
        data_yaml = Path(data_yaml).resolve()
        if not data_yaml.is_file():
            raise FileNotFoundError(f"dataset yaml {data_yaml} does not exist")
        self._check_data_names(data_yaml)
        out_dir = Path(out_dir).resolve()
        args = cpu_training_args(self._ref, data_yaml, out_dir, name, epochs=epochs, batch=batch,
                                 imgsz=imgsz or self.settings.imgsz, seed=seed, patience=patience,
                                 device=self.settings.device, nms=True, **overrides)
        trainer = DetectionTrainer(overrides=args)
        return train_from(trainer, self._model)

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

        data_yaml = Path(data_yaml).resolve()
        if not data_yaml.is_file():
            raise FileNotFoundError(f"dataset yaml {data_yaml} does not exist")
        if split not in {"train", "val", "test"}:
            raise ValueError(f"split must be one of train, val, test; got {split!r}")
        self._check_data_names(data_yaml)
        out_dir = Path(out_dir).resolve() if out_dir is not None else self.state_dir / "runs"
        args = {
            "model": self._ref,
            "data": str(data_yaml),
            "split": split,
            "imgsz": imgsz or self.settings.imgsz,
            "batch": batch or self.settings.batch,
            "device": self.settings.device,
            "plots": False,
            "save_json": False,
            "verbose": False,
            "project": str(out_dir),
            "name": f"eval-{split}",
            "exist_ok": True,
            "mode": "val",
            "task": "detect",
            "rect": True,
            "nms": True,
        }
        start = time.perf_counter()
        validator = DetectionValidator(args=args)
        # The validator fuses Conv+BN and freezes the module it is given in place: give it a copy.
        validator(model=copy.deepcopy(self._model))
        seconds = time.perf_counter() - start
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
