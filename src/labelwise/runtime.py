"""Build adapters from settings: the one place commands, tasks and the API get them from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from labelwise.catalog import Catalog
from labelwise.config import Settings

if TYPE_CHECKING:  # heavy imports only when used
    from labelwise.detector import YoloDetector
    from labelwise.embedder import Embedder


def open_catalog(settings: Settings) -> Catalog:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return Catalog.open(settings.resolved_catalog_url)


def prepare_ml(settings: Settings) -> None:
    """Offline switches and threads for ultralytics/open_clip (before they are imported)."""
    from labelwise.ultralytics_env import ensure_ultralytics

    ensure_ultralytics(settings.state_dir / "ultralytics", settings.detector.threads)


def load_detector(
    settings: Settings, class_names: Sequence[str], model: str | None = None
) -> "YoloDetector":
    """The detector named by ``model`` (default: settings.detector.model)."""
    prepare_ml(settings)
    from labelwise.detector import YoloDetector

    return YoloDetector.load(
        model or settings.detector.model,
        settings.detector,
        settings.state_dir,
        class_names=class_names,
        seed=settings.training.seed,
    )


def load_embedder(settings: Settings, detector: "YoloDetector | None") -> "Embedder | None":
    prepare_ml(settings)
    from labelwise.embedder import build_embedder

    return build_embedder(settings.embedder, detector)
