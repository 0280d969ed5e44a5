"""The demo project: the bundled long-tail digits as a pool, a fixed held-out split, and the
settings of a small closed loop that runs in minutes on two CPU cores. With ``task=classify``
the same digits as a classification set (:mod:`labelwise.datasets.digits_classify`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labelwise.config import Settings
from labelwise.task_types import TaskType

DEMO_PROJECT = "digits-demo"
DEMO_PROJECTS = {TaskType.DETECT: DEMO_PROJECT, TaskType.CLASSIFY: "digits-classify-demo",
                 TaskType.SEGMENT: "digits-segment-demo"}
"""The demo's project per task type."""

# Small on purpose: 2 cores, no GPU. Raise for real data.
DEMO_OVERRIDES: dict[str, dict[str, object]] = {
    "detector": {"model": "yolov8n.yaml", "imgsz": 128, "batch": 32},
    "training": {"epochs": 20, "min_image_passes": 1200, "batch": 8},
    "selection": {"limit": 20, "diversity_weight": 0.3},
    # Rounds the webhook's learn runs learn are logged under the loop's campaign run.
    "tracking": {"campaign": "demo"},
}
SEGMENT_OVERRIDES: dict[str, dict[str, object]] = {
    # yolov8n.yaml follows the project's task (yolov8n-seg.yaml); masks need more pixels than boxes.
    "detector": {"imgsz": 160, "batch": 16},
}
CLASSIFY_IMGSZ = 64
"""Side of the demo's classification images (pixels): at 32 px yolov8n-cls learns the digits
far more slowly (top-1 0.43 vs 0.76 after 25-40 epochs on 660 images, docs/task-types.md)."""
CLASSIFY_OVERRIDES: dict[str, dict[str, object]] = {
    # yolov8n.yaml follows the project's task (yolov8n-cls.yaml); the digits are 64 px images.
    "detector": {"imgsz": CLASSIFY_IMGSZ},
    "training": {"epochs": 20, "min_image_passes": 2000, "batch": 16},
}


@dataclass(frozen=True)
class DemoProject:
    name: str
    dataset_root: Path
    data_yaml: Path
    truth_dir: Path
    pool_images: int


def demo_settings(base: Settings, task: TaskType | str = TaskType.DETECT) -> Settings:
    """``base`` with the demo's small model and training recipe for ``task``."""
    overrides = {k: dict(v) for k, v in DEMO_OVERRIDES.items()}
    extra = {TaskType.CLASSIFY: CLASSIFY_OVERRIDES, TaskType.SEGMENT: SEGMENT_OVERRIDES}.get(TaskType.parse(task), {})
    for section, values in extra.items():
        overrides.setdefault(section, {}).update(values)
    update = {section: getattr(base, section).model_copy(update=values)
              for section, values in overrides.items()}
    return base.model_copy(update=update)


def prepare_demo_project(
    settings: Settings, name: str | None = None, pool_images: int = 300, seed: int = 0,
    task: TaskType | str = TaskType.DETECT,
) -> DemoProject:
    """Generate the data (once), create the project, fix the held-out split, add the pool.

    The data lives under the state folder, which is Label Studio's local-files root.
    Idempotent: a second call reuses the data and adds nothing twice. ``name`` defaults to the
    task's demo project (:data:`DEMO_PROJECTS`); a classification demo's pool holds
    ``pool_images`` rounded to whole tens (the same count per digit).
    """
    from labelwise.datasets.digits import DigitsConfig, generate_digits, load_dataset
    from labelwise.runtime import open_catalog

    task = TaskType.parse(task)
    name = name or DEMO_PROJECTS[task]
    if task is TaskType.CLASSIFY:
        return _prepare_classify(settings, name, pool_images, seed)
    if task is TaskType.SEGMENT:
        return _prepare_segment(settings, name, pool_images, seed)

    root = settings.state_dir / "data" / f"digits-{seed}-{pool_images}"
    if (root / "manifest.json").exists():
        ds = load_dataset(root)
    else:
        ds = generate_digits(root, DigitsConfig(pool_images=pool_images, seed=seed))
    catalog = open_catalog(settings)
    project = catalog.create_project(name, list(ds.class_names))
    catalog.set_holdout(project, ds.data_yaml, "test")
    catalog.add_images(project, ds.pool_images)
    return DemoProject(name, ds.root, ds.data_yaml, ds.pool_truth, pool_images)


def _prepare_classify(settings: Settings, name: str, pool_images: int, seed: int) -> DemoProject:
    from labelwise.datasets.digits_classify import generate_digits_classify
    from labelwise.runtime import open_catalog

    per_class = max(1, pool_images // 10)
    root = settings.state_dir / "data" / f"digits-classify-{seed}-{per_class * 10}-{CLASSIFY_IMGSZ}px"
    ds = generate_digits_classify(root, per_class_pool=per_class, per_class_test=10, seed=seed,
                                  imgsz=CLASSIFY_IMGSZ)
    catalog = open_catalog(settings)
    project = catalog.create_project(name, list(ds.class_names), task_type=TaskType.CLASSIFY)
    catalog.set_holdout(project, ds.root, "test")
    catalog.add_images(project, ds.pool_dir)
    return DemoProject(name, ds.root, ds.root, ds.pool_labels_dir, per_class * 10)


def _prepare_segment(settings: Settings, name: str, pool_images: int, seed: int) -> DemoProject:
    from labelwise.datasets.digits_segment import DigitsSegmentConfig, generate_digits_segment
    from labelwise.runtime import open_catalog

    root = settings.state_dir / "data" / f"digits-segment-{seed}-{pool_images}"
    ds = generate_digits_segment(root, DigitsSegmentConfig(pool_images=pool_images, seed=seed))
    catalog = open_catalog(settings)
    project = catalog.create_project(name, list(ds.class_names), task_type=TaskType.SEGMENT)
    catalog.set_holdout(project, ds.data_yaml, "test")
    catalog.add_images(project, ds.pool_images)
    return DemoProject(name, ds.root, ds.data_yaml, ds.pool_truth, pool_images)
