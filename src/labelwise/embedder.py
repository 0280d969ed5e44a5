"""Per-image embeddings for diversity: CLIP (open_clip, local weights) or detector features.

Every embedder returns ``(N, dim)`` float32 rows with unit L2 norm and has a ``name`` that
identifies model *and* weights, so stored vectors of different embedders never mix.

No CLIP weights ship with any package and nothing is downloaded: :class:`ClipEmbedder` loads a
user's local open_clip weights file (``embedder.clip_weights``). Random initialisation exists for
tests and must be asked for explicitly (``clip_random_init``); it is never a silent fallback.
torch and open_clip are imported on first use, after the offline switches are set.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from labelwise.config import EmbedderSettings
from labelwise.images import oriented
from labelwise.ultralytics_env import resolve_threads, set_offline_env, set_thread_env


class FeatureModel(Protocol):
    """A model whose pooled features make an embedding: :class:`~labelwise.detector.YoloDetector`
    (last backbone layer) or :class:`~labelwise.classifier.YoloClassifier` (the pooled input of
    its classification head)."""

    @property
    def version(self) -> str: ...

    @property
    def feature_layer(self) -> int: ...

    @property
    def feature_dim(self) -> int: ...

    def features(self, paths: Sequence[Path], batch: int | None = None) -> np.ndarray:
        """(N, feature_dim) float32 unit rows."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Maps image files to unit vectors.

    Attributes:
        name: stable id of model and weights (e.g. ``clip-ViT-B-32-1a2b3c4d5e``).
        dim: length D of every vector.
    """

    name: str
    dim: int

    def embed(self, paths: Sequence[Path]) -> np.ndarray:
        """(N, dim) float32, each row L2-normalised, in the order of ``paths``."""
        ...


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, D) float32 with unit rows (all-zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected (N, D) vectors; got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class ClipEmbedder:
    """open_clip image tower on local weights.

    Args:
        model_name: an open_clip architecture (``open_clip.list_models()``), e.g. ``ViT-B-32``.
        weights: local weights file for that architecture (``.pt``/``.bin`` state dict or
            ``.safetensors``; a ``{"state_dict": ...}`` checkpoint works too).
        random_init: with ``weights`` None, build untrained weights from ``seed`` (tests only);
            ignored when ``weights`` is given.
        batch: images per forward pass.
        seed: torch seed for ``random_init``.
        threads: torch threads; 0 = all cores.

    Raises:
        ValueError: no weights and no ``random_init``; unknown architecture; weights that do not
            fit the architecture.
        FileNotFoundError: ``weights`` does not exist.
    """

    def __init__(
        self,
        model_name: str,
        weights: Path | None,
        random_init: bool = False,
        batch: int = 32,
        seed: int = 0,
        threads: int = 0,
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch must be >= 1; got {batch}")
        if weights is None and not random_init:
            raise ValueError(
                f"CLIP model {model_name!r} needs local weights: set embedder.clip_weights to an "
                f"open_clip weights file for {model_name} (nothing is downloaded), or use "
                f"embedder.kind=detector for pooled detector features"
            )
        if weights is not None:
            weights = Path(weights).expanduser().resolve()
            if not weights.is_file():
                raise FileNotFoundError(
                    f"CLIP weights {weights} do not exist; expected a local file"
                )
        self.model_name = model_name
        self.weights = weights
        self.batch = batch
        self.seed = seed
        n_threads = resolve_threads(threads)
        set_offline_env()  # HF_HUB_OFFLINE before open_clip imports huggingface_hub
        set_thread_env(n_threads)

        import torch

        from labelwise.detector import weights_digest

        torch.set_num_threads(n_threads)
        self._model, self._preprocess = self._create(model_name, weights, seed)
        tag = weights_digest(self._model)
        self.name = (
            f"clip-{model_name}-{tag}" if weights is not None else f"clip-{model_name}-random-{tag}"
        )
        self.dim = self._output_dim()

    @staticmethod
    def _create(model_name: str, weights: Path | None, seed: int) -> tuple[Any, Any]:
        import open_clip
        import torch

        if open_clip.get_model_config(model_name) is None:
            raise ValueError(
                f"unknown open_clip architecture {model_name!r}; expected one of "
                f"open_clip.list_models() (e.g. ViT-B-32, ViT-S-32, RN50)"
            )
        try:
            if weights is None:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    model, _, preprocess = open_clip.create_model_and_transforms(
                        model_name, pretrained=None
                    )
            else:
                model, _, preprocess = open_clip.create_model_and_transforms(
                    model_name, pretrained=str(weights)
                )
        except (RuntimeError, KeyError, ValueError, AssertionError) as exc:
            raise ValueError(
                f"cannot load CLIP weights {weights} into {model_name}: {exc}; expected an "
                f"open_clip state dict for that architecture"
            ) from exc
        return model.eval(), preprocess

    def _output_dim(self) -> int:
        import open_clip

        cfg = open_clip.get_model_config(self.model_name) or {}
        if "embed_dim" in cfg:
            return int(cfg["embed_dim"])
        return int(self._model.visual.output_dim)

    def _load(self, path: Path) -> Any:
        from PIL import Image, UnidentifiedImageError

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"image {path} does not exist; expected a readable image file")
        try:
            with Image.open(path) as im:  # EXIF orientation applied, as every reader does
                return self._preprocess(oriented(im).convert("RGB"))
        except (UnidentifiedImageError, OSError, ImportError) as exc:
            # ImportError: ultralytics' PIL.Image.open patch looks for pi_heif on unknown files
            raise ValueError(
                f"cannot decode image {path}; expected a readable image ({exc})"
            ) from exc

    def embed(self, paths: Sequence[Path]) -> np.ndarray:
        """(N, dim) float32 unit rows: ``encode_image`` after the model's own preprocessing."""
        import torch

        paths = list(paths)
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(paths), self.batch):
                chunk = paths[start : start + self.batch]
                pixels = torch.stack([self._load(p) for p in chunk])
                out.append(self._model.encode_image(pixels).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalise(np.concatenate(out))

    def __repr__(self) -> str:
        return f"ClipEmbedder(name={self.name!r}, dim={self.dim})"


class DetectorFeatureEmbedder:
    """Pooled backbone features of a :class:`~labelwise.detector.YoloDetector` (free fallback).

    The name carries the detector version and layer: retrained weights give new vectors.
    """

    def __init__(self, detector: FeatureModel, batch: int | None = None) -> None:
        self.detector = detector
        self.batch = batch
        self.name = f"detector-{detector.version}-L{detector.feature_layer}"
        self.dim = detector.feature_dim

    def embed(self, paths: Sequence[Path]) -> np.ndarray:
        """(N, dim) float32 unit rows (see :meth:`YoloDetector.features`)."""
        return self.detector.features(paths, batch=self.batch)

    def shares_pass_with(self, detector: object) -> bool:
        """True for this embedder's own detector: its prediction pass yields these vectors."""
        return detector is self.detector

    def embed_pooled(
        self, paths: Sequence[Path], pooled: np.ndarray, pixels: Sequence[np.ndarray] | None = None
    ) -> np.ndarray:
        """(N, dim) float32 unit rows from the pooled features of the prediction pass
        (:meth:`YoloDetector.predict_with_features`, equal to :meth:`embed` of ``paths``);
        ``pixels`` (the decoded images) are not needed."""
        pooled = np.asarray(pooled, np.float32)
        if pooled.shape != (len(paths), self.dim):
            raise ValueError(f"pooled features must be ({len(paths)}, {self.dim}); got {pooled.shape}")
        return l2_normalise(pooled)

    def __repr__(self) -> str:
        return f"DetectorFeatureEmbedder(name={self.name!r}, dim={self.dim})"


class PixelEmbedder:
    """A tiny grey thumbnail as a vector: ``size`` x ``size`` pixels, mean-centred, unit length.

    It knows nothing of objects, but frames of the same scene (small shifts, brightness and
    noise jitter) land close together and different scenes far apart. Measured on the bundled
    digits pool at size 8: near-duplicate pairs median 0.10 (90th percentile 0.16) against
    different scenes 1st percentile 0.51, where pooled detector features overlapped.
    """

    def __init__(self, size: int = 8) -> None:
        if size < 2:
            raise ValueError(f"size must be >= 2; got {size}")
        self.size = size
        self.name = f"pixels-{size}"
        self.dim = size * size

    def embed(self, paths: Sequence[Path]) -> np.ndarray:
        """(N, size * size) float32 unit rows (a flat image gives a zero row)."""
        rows = np.zeros((len(paths), self.dim), np.float32)
        for i, path in enumerate(paths):
            with Image.open(path) as img:  # EXIF orientation applied, as every reader does
                rows[i] = self._thumbnail(oriented(img))
        return self._finish(rows)

    def embed_pixels(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """As :meth:`embed`, from already decoded (H, W, 3) uint8 BGR images (oriented, as the
        detector's reader returns them): the same grey conversion and resize, so a lossless file
        (PNG) gives the very rows of :meth:`embed`; a JPEG may differ by the two decoders' rounding."""
        rows = np.zeros((len(images), self.dim), np.float32)
        for i, bgr in enumerate(images):
            if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
                raise ValueError(f"expected (H, W, 3) uint8 BGR images; got shape {bgr.shape} {bgr.dtype}")
            rows[i] = self._thumbnail(Image.fromarray(np.ascontiguousarray(bgr[..., ::-1]), "RGB"))
        return self._finish(rows)

    def _thumbnail(self, img: Image.Image) -> np.ndarray:
        grey = img.convert("L").resize((self.size, self.size), Image.Resampling.BILINEAR)
        return np.asarray(grey, np.float32).ravel()

    @staticmethod
    def _finish(rows: np.ndarray) -> np.ndarray:
        rows -= rows.mean(axis=1, keepdims=True)
        return l2_normalise(rows)

    def __repr__(self) -> str:
        return f"PixelEmbedder(size={self.size})"


class ConcatEmbedder:
    """Several embedders side by side, each part unit length, the whole renormalised.

    Squared distances add up part by part, so the combination keeps what each part separates
    (detector semantics and near-duplicate frames).
    """

    def __init__(self, parts: Sequence[Embedder]) -> None:
        if len(parts) < 2:
            raise ValueError(f"ConcatEmbedder needs at least two parts; got {len(parts)}")
        self.parts = list(parts)
        self.name = "+".join(part.name for part in self.parts)
        self.dim = sum(part.dim for part in self.parts)

    def embed(self, paths: Sequence[Path]) -> np.ndarray:
        """(N, sum of the parts' dims) float32 unit rows."""
        return l2_normalise(np.hstack([l2_normalise(part.embed(paths)) for part in self.parts]))

    def shares_pass_with(self, detector: object) -> bool:
        """True when a part's vectors come from ``detector``'s prediction pass."""
        return any(_shares(part, detector) for part in self.parts)

    def embed_pooled(
        self, paths: Sequence[Path], pooled: np.ndarray, pixels: Sequence[np.ndarray] | None = None
    ) -> np.ndarray:
        """As :meth:`embed`, the parts that share the detector's pass using ``pooled`` (N, D), a
        pixel part using ``pixels`` (the (H, W, 3) uint8 BGR images the detector decoded) when
        given, so no part decodes the files again."""
        rows = []
        for part in self.parts:
            if isinstance(part, DetectorFeatureEmbedder):
                rows.append(part.embed_pooled(paths, pooled))
            elif isinstance(part, PixelEmbedder) and pixels is not None:
                rows.append(part.embed_pixels(pixels))
            else:
                rows.append(part.embed(paths))
        return l2_normalise(np.hstack([l2_normalise(r) for r in rows]))

    def __repr__(self) -> str:
        return f"ConcatEmbedder(name={self.name!r}, dim={self.dim})"


def _shares(part: object, detector: object) -> bool:
    return isinstance(part, DetectorFeatureEmbedder) and part.shares_pass_with(detector)


def build_embedder(
    settings: EmbedderSettings, detector: FeatureModel | None, threads: int = 0
) -> Embedder | None:
    """The embedder ``settings.kind`` asks for.

    - ``none``: None.
    - ``clip``: :class:`ClipEmbedder` (needs ``clip_weights``, or ``clip_random_init`` in tests).
    - ``detector``: :class:`DetectorFeatureEmbedder` of ``detector``.
    - ``pixels``: :class:`PixelEmbedder`.
    - ``auto``: CLIP when ``clip_weights`` is set; else pooled detector features side by side
      with an 8x8 pixel thumbnail (the features alone barely tell near-duplicate frames from
      other scenes); else (no detector) the pixel thumbnail. ``clip_random_init`` alone never
      selects CLIP in ``auto``.

    Raises:
        ValueError: ``detector`` kind without a detector; CLIP without weights (see ClipEmbedder).
    """
    kind = settings.kind
    if kind == "none":
        return None
    if kind == "clip" or (kind == "auto" and settings.clip_weights is not None):
        return ClipEmbedder(
            settings.clip_model,
            settings.clip_weights,
            random_init=settings.clip_random_init,
            batch=settings.batch,
            threads=threads,
        )
    if kind == "pixels":
        return PixelEmbedder()
    if kind == "detector":
        if detector is None:
            raise ValueError("embedder.kind=detector needs a detector; got None")
        return DetectorFeatureEmbedder(detector, batch=settings.batch)
    if kind == "auto":
        if detector is None:
            return PixelEmbedder()
        return ConcatEmbedder([DetectorFeatureEmbedder(detector, batch=settings.batch), PixelEmbedder()])
    raise ValueError(
        f"embedder.kind must be one of auto, clip, detector, pixels, none; got {kind!r}"
    )
