"""Build adapters from settings: the one place commands, tasks and the API get them from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from labelwise.catalog import Catalog
from labelwise.config import Settings
from labelwise.task_types import TaskMismatch, TaskType, check_model_task, model_yaml_name

if TYPE_CHECKING:  # heavy imports only when used
    from labelwise.catalog import ProjectRecord
    from labelwise.classifier import YoloClassifier
    from labelwise.detector import YoloDetector
    from labelwise.embedder import Embedder, FeatureModel
    from labelwise.segmenter import YoloSegmenter


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


def configured_model_ref(settings: Settings, task_type: TaskType) -> str:
    """``settings.detector.model`` for a project of ``task_type``: a stock yaml name of the
    detection family (``yolov8n.yaml``) becomes the task's variant (``yolov8n-cls.yaml`` for a
    classification project), so one configuration serves projects of every task. Anything else
    (a .pt, a yaml path, a task-suffixed name) is used as configured."""
    ref = settings.detector.model
    stem = ref[: -len(".yaml")] if ref.endswith(".yaml") and "/" not in ref else None
    if stem is None or task_type is TaskType.DETECT or stem.endswith(("-cls", "-seg")):
        return ref
    return model_yaml_name(task_type, stem)


def project_model_ref(settings: Settings, project: "ProjectRecord", model: str | None = None) -> str:
    """The model a command uses for ``project``: ``model`` when given (as given), else the
    configured one for the project's task (:func:`configured_model_ref`)."""
    return model or configured_model_ref(settings, project.task_type)


def load_model(settings: Settings, project: "ProjectRecord", model: str | None = None
               ) -> "YoloDetector | YoloClassifier | YoloSegmenter":
    """The model of ``project``'s task named by ``model`` (default :func:`project_model_ref`),
    with the project's class names.

    Raises:
        TaskMismatch: the model's task is not the project's (the message names the project and
            both tasks).
    """
    ref = project_model_ref(settings, project, model)
    try:
        if project.task_type is TaskType.DETECT:
            return load_detector(settings, project.class_names, ref)
        prepare_ml(settings)
        return model_adapter(project.task_type).load(ref, settings.detector, settings.state_dir,
                                                     class_names=project.class_names,
                                                     seed=settings.training.seed)
    except TaskMismatch as exc:
        check_model_task(project.task_type, exc.actual, exc.model_ref, project.name)
        raise


def model_adapter(task_type: TaskType | str
                  ) -> "type[YoloDetector] | type[YoloClassifier] | type[YoloSegmenter]":
    """The adapter class that loads, predicts, trains and evaluates models of ``task_type``
    (each has ``load(ref, detector settings, state_dir, class_names=, seed=)``)."""
    task = TaskType.parse(task_type)
    if task is TaskType.DETECT:
        from labelwise.detector import YoloDetector

        return YoloDetector
    if task is TaskType.CLASSIFY:
        from labelwise.classifier import YoloClassifier

        return YoloClassifier
    from labelwise.segmenter import YoloSegmenter

    return YoloSegmenter


def load_embedder(settings: Settings, detector: "FeatureModel | None") -> "Embedder | None":
    prepare_ml(settings)
    from labelwise.embedder import build_embedder

    return build_embedder(settings.embedder, detector)
