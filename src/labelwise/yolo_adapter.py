"""What the three YOLO adapters share: loading, identity, batching, checkpoints, the data checks
and the argument sets of ultralytics' trainers and validators.

:class:`labelwise.detector.YoloDetector`, :class:`labelwise.segmenter.YoloSegmenter` and
:class:`labelwise.classifier.YoloClassifier` derive from :class:`YoloAdapter` and add what is
their own: the predictor (class vectors, masks, the softmax), the features, training and the
metrics. ultralytics and torch are imported on first use only.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from labelwise.classify_training import SPLITS
from labelwise.config import DetectorSettings
from labelwise.inference_backends import FeatureSite, attach_runner, check_backend
from labelwise.ultralytics_env import cpu_training_args, ensure_ultralytics
from labelwise.yolo_inference import RawBoxes, as_bgr, batched, normalise_rows
from labelwise.yolo_models import ModelKind, load_yolo_model, save_checkpoint

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from labelwise.domain import Detections


A = TypeVar("A", bound="YoloAdapter")


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


def data_yaml_names(data_yaml: Path) -> list[str]:
    """The class names a data set yaml defines (a list, or an ``{id: name}`` mapping in id
    order); a ValueError naming the file otherwise."""
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


def check_split(split: str) -> str:
    """``split`` if it is one of :data:`SPLITS`; a ValueError naming them otherwise."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    return split


def l2_rows(rows: Sequence[np.ndarray], dim: int) -> np.ndarray:
    """(N, D) float32 of ``rows`` stacked, each divided by its L2 norm (a zero row stays zero);
    (0, ``dim``) without rows."""
    if not rows:
        return np.zeros((0, dim), np.float32)
    feats = np.stack(rows).astype(np.float32)
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    return (feats / np.maximum(norms, 1e-12)).astype(np.float32)


class YoloAdapter:
    """An ultralytics YOLO model of one task behind a numpy interface.

    Build one with :meth:`load`. Not thread-safe; use one per worker.

    Attributes:
        kind: the model kind of the subclass (task, how messages name it).
        version: ``<ref stem>-<weights digest>``; same weights from the same stem, same version.
        class_names: the classes, in the order of the class-vector (softmax) columns.
        settings: inference settings.
        state_dir: Labelwise's state folder (ultralytics' config and runs below it).
    """

    kind: ClassVar[ModelKind]
    features_at: ClassVar[FeatureSite] = "layer"
    """Where an export's feature output is read (:data:`~labelwise.inference_backends.FeatureSite`)."""

    def __init__(
        self,
        model: Any,
        *,
        ref: str,
        settings: DetectorSettings,
        state_dir: Path,
        class_names: tuple[str, ...],
    ) -> None:
        self._model = model  # the ultralytics model (fp32, eval mode); never handed out
        self._ref = ref
        self.settings = settings
        self.state_dir = Path(state_dir)
        self.class_names = class_names
        self.version = f"{Path(ref).stem}-{weights_digest(model)}"
        self._predictor: Any = None

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(
        cls: type[A],
        ref: str | Path,
        settings: DetectorSettings,
        state_dir: Path,
        class_names: Sequence[str] | None = None,
        seed: int = 0,
    ) -> A:
        """Load weights or build a fresh model of the adapter's task.

        Args:
            ref: a local ``.pt`` file, or an ultralytics model yaml name/path of the task (random
                init, a head for ``len(class_names)`` classes). ``models:/`` registry URIs are
                resolved by the tracking layer into a ``.pt`` path before they get here.
            settings: inference settings; ``backend`` torch, onnx or openvino (an export of the
                model, cached under ``state_dir/exports``: :mod:`labelwise.inference_backends`).
            state_dir: Labelwise's state folder; ultralytics' config goes to
                ``state_dir/ultralytics`` unless this process already set one up.
            class_names: required for a yaml; for a ``.pt`` optional, and then must equal the
                checkpoint's names in order.
            seed: torch seed for a yaml build (same yaml + seed -> same weights -> same version).

        Raises:
            TaskMismatch: the yaml or checkpoint is of another task, naming both tasks.
            ValueError: unsupported ref or backend, missing/duplicate class names, names not
                matching the checkpoint, or an unreadable checkpoint (see
                :func:`labelwise.yolo_models.load_yolo_model`).
            FileNotFoundError: the ``.pt`` (or custom yaml) does not exist.
        """
        check_backend(settings.backend)
        state_dir = Path(state_dir)
        ensure_ultralytics(state_dir / "ultralytics", threads=settings.threads)
        model, names, ref_str = load_yolo_model(cls.kind, ref, class_names, seed)
        return cls(model, ref=ref_str, settings=settings, state_dir=state_dir, class_names=names)

    # ---------------------------------------------------------------- identity
    @property
    def task(self) -> str:
        """The model task: ``detect``, ``segment`` or ``classify``."""
        return self.kind.task.value

    @property
    def num_classes(self) -> int:
        """C: the class-vector length."""
        return len(self.class_names)

    @property
    def ref(self) -> str:
        """What the model was loaded from (a .pt path or a yaml name)."""
        return self._ref

    @property
    def backend(self) -> str:
        """Inference backend of the predictions (``settings.backend``): torch, onnx, openvino."""
        return self.settings.backend

    @property
    def export_root(self) -> Path:
        """Folder of the cached exports of the onnx / openvino backends."""
        return self.state_dir / "exports"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(version={self.version!r}, classes={len(self.class_names)})"

    # ---------------------------------------------------------------- inference
    def _setup(self, predictor: Any, feature_layer: int | None = None) -> Any:
        """``predictor`` with this model (deep-copied and fused by ultralytics) and, on an
        exported backend, the runner of the export whose last output is ``feature_layer``'s."""
        predictor.setup_model(model=self._model, verbose=False)
        if self.backend != "torch":
            if feature_layer is None:
                raise RuntimeError(f"the {self.backend} backend needs a feature layer to export")
            attach_runner(predictor, self._model, self.settings, version=self.version,
                          feature_layer=feature_layer, cache_root=self.export_root, features_at=self.features_at)
        return predictor

    def _batches(
        self, predictor: Any, paths: Sequence["Path | np.ndarray"], batch: int | None
    ) -> Iterator[tuple["Path | np.ndarray", Any]]:
        """``(path, result)`` of ``predictor`` over ``paths`` in input order, ``batch`` images
        (default ``settings.batch``) per forward pass; images read by :func:`as_bgr`."""
        size = batch or self.settings.batch
        if size < 1:
            raise ValueError(f"batch must be >= 1; got {size}")
        for chunk in batched(list(paths), size):
            results = predictor(source=[as_bgr(p) for p in chunk], stream=False)
            if len(results) != len(chunk):
                raise RuntimeError(f"expected {len(chunk)} results for the batch; got {len(results)}")
            yield from zip(chunk, results)

    def predict_iter(
        self, paths: Sequence["Path | np.ndarray"], batch: int | None = None
    ) -> Iterator[tuple["Path | np.ndarray", "Detections"]]:  # pragma: no cover - each adapter's own
        raise NotImplementedError

    def predict(self, paths: Sequence["Path | np.ndarray"]) -> list["Detections"]:
        """The :meth:`predict_iter` output of every image (file or BGR array), in input order."""
        return [det for _, det in self.predict_iter(paths)]

    def read(self, path: Path) -> np.ndarray:
        """(H, W, 3) uint8 BGR pixels of an image file as the predictions read it
        (EXIF-oriented; FileNotFoundError / ValueError naming the file)."""
        return as_bgr(path)

    # ---------------------------------------------------------------- persistence
    def save(self, path: Path) -> Path:
        """Write an ultralytics-loadable checkpoint (fp32, so a reload keeps the weights digest
        of :attr:`version`; the stem part is the file's). ``YOLO(path)`` loads it as a model of
        this task."""
        return save_checkpoint(self._model, path, self.version, self.kind.task)

    # ---------------------------------------------------------------- training and evaluation
    def _checked_data_yaml(self, data_yaml: Path) -> Path:
        """``data_yaml`` resolved, after checking it exists and names :attr:`class_names` in order."""
        data_yaml = Path(data_yaml).resolve()
        if not data_yaml.is_file():
            raise FileNotFoundError(f"dataset yaml {data_yaml} does not exist")
        names = data_yaml_names(data_yaml)
        if tuple(names) != self.class_names:
            raise ValueError(
                f"{data_yaml} names must equal the {self.kind.noun}'s classes in order; expected "
                f"{list(self.class_names)}, got {names}"
            )
        return data_yaml

    def _training_args(
        self, data: Path, out_dir: Path, name: str, epochs: int, batch: int, seed: int, patience: int,
        imgsz: int | None, **overrides: Any,
    ) -> dict[str, Any]:
        """The CPU recipe of :func:`~labelwise.ultralytics_env.cpu_training_args` for this model
        (``overrides`` win); a ValueError for epochs or batch < 1."""
        if epochs < 1 or batch < 1:
            raise ValueError(f"epochs and batch must be >= 1; got epochs={epochs}, batch={batch}")
        return cpu_training_args(self._ref, data, Path(out_dir).resolve(), name, epochs=epochs, batch=batch,
                                 imgsz=imgsz or self.settings.imgsz, seed=seed, patience=patience,
                                 device=self.settings.device, task=self.task, **overrides)

    def _validate(
        self, validator_class: Any, data: Path, split: str, out_dir: Path | None, batch: int | None,
        imgsz: int | None, **extra: Any,
    ) -> tuple[Any, float]:
        """Run ultralytics' ``validator_class`` on a copy of the model (the validator fuses and
        freezes the module it is given) over ``split`` of ``data``, plots off, the run folder under
        ``out_dir`` (default ``state_dir/runs``). Returns (the validator, wall seconds)."""
        out = Path(out_dir).resolve() if out_dir is not None else self.state_dir / "runs"
        args = {
            "model": self._ref, "data": str(data), "split": check_split(split),
            "imgsz": imgsz or self.settings.imgsz, "batch": batch or self.settings.batch,
            "device": self.settings.device, "workers": 0, "plots": False, "save_json": False,
            "verbose": False, "project": str(out), "name": f"eval-{split}", "exist_ok": True,
            "mode": "val", "task": self.task, **extra,
        }
        start = time.perf_counter()
        validator = validator_class(args=args)
        validator(model=copy.deepcopy(self._model))
        return validator, time.perf_counter() - start


def backbone_layers(model: Any) -> int:
    """How many layers a YOLO model's yaml backbone has (0 without one)."""
    return len((getattr(model, "yaml", None) or {}).get("backbone") or ())


def backbone_feature_layer(model: Any, ref: str) -> int:
    """Index of a YOLO model's last backbone layer (SPPF/C2PSA), whose pooled output is the
    detector's and the segmenter's feature vector; a RuntimeError for a model without a yaml
    backbone."""
    layers = backbone_layers(model)
    if not layers:
        raise RuntimeError(f"model from {ref} has no yaml backbone; cannot pick a layer")
    return layers - 1


class BoxAdapter(YoloAdapter):
    """A model whose predictions are boxes with class vectors (detection, segmentation): the
    box-prediction settings, the backbone features and their second-pass route."""

    predict_extra: ClassVar[dict[str, Any]] = {}
    """Predictor overrides of the subclass's own (e.g. ``retina_masks``)."""
    _feature_predictor: Any = None  # the embed predictor of :meth:`features`, built on first use

    def _to_detections(self, raw: RawBoxes) -> "Detections":
        """Kept boxes -> :class:`~labelwise.domain.Detections`: each class-score row normalised
        to sum 1 (see :mod:`labelwise.detector`)."""
        from labelwise.domain import Detections

        return Detections(
            xyxy=raw.xyxy, confidence=raw.confidence, class_id=raw.class_id,
            probs=normalise_rows(raw.scores) if len(raw.scores) else raw.scores.reshape(0, self.num_classes),
        )

    @property
    def feature_layer(self) -> int:
        """Index of the layer :meth:`features` pools: the last backbone layer (SPPF/C2PSA)."""
        return backbone_feature_layer(self._model, self._ref)

    def _has_backbone(self) -> bool:
        return backbone_layers(self._model) > 0

    def _predict_overrides(self, **extra: Any) -> dict[str, Any]:
        s = self.settings
        return {
            "conf": s.conf, "iou": s.iou, "imgsz": s.imgsz, "max_det": s.max_det, "batch": s.batch,
            "device": s.device, "mode": "predict", "task": self.task, "rect": True,
            "nms": True,  # keep the one-to-many head (class vectors) on end-to-end models
            "save": False, "verbose": False, "project": str(self.state_dir / "runs"), "name": "predict",
            "exist_ok": True, **self.predict_extra, **extra,
        }

    def _embed_predictor_class(self) -> Any:  # pragma: no cover - each adapter's own
        raise NotImplementedError

    def features(self, paths: Sequence["Path | np.ndarray"], batch: int | None = None) -> np.ndarray:
        """Pooled backbone features: (N, D) float32, rows L2-normalised (D = :attr:`feature_dim`).

        Global average pool of :attr:`feature_layer` on the letterboxed ``settings.imgsz`` input;
        the forward pass stops at that layer (ultralytics' ``embed``), on torch whatever the
        backend.
        """
        if self._feature_predictor is None:
            predictor = self._embed_predictor_class()(overrides=self._predict_overrides(embed=[self.feature_layer]))
            predictor.setup_model(model=self._model, verbose=False)
            self._feature_predictor = predictor
        rows = [emb.detach().float().cpu().numpy().reshape(-1)
                for _, emb in self._batches(self._feature_predictor, paths, batch)]
        return l2_rows(rows, self.feature_dim)

    @property
    def feature_dim(self) -> int:  # pragma: no cover - each adapter's own
        raise NotImplementedError
