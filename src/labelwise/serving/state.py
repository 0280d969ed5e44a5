"""Everything one API process holds: settings, catalog, models, guards, outbox worker, jobs.

Built by :func:`build_state` inside the app factory (never at import time). The default model
source resolves the project's model with :func:`labelwise.learn.resolve_base_model` (explicit
ref, else the registry champion, else ``detector.model``) and watches the champion alias.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelwise.catalog import Catalog, ProjectRecord
from labelwise.config import ServingSettings, Settings
from labelwise.serving.auth import KeyCache
from labelwise.serving.delivery import make_deliver
from labelwise.serving.flagging import FlagService, ServingStats
from labelwise.serving.guards import NearDuplicateGuard, RateCaps
from labelwise.serving.holder import ChampionWatcher, ModelHolder, ServingModel
from labelwise.serving.ids import UnsafePathError, safe_child
from labelwise.serving.jobs import AutoLabelJobs
from labelwise.serving.outbox import DeliveryWorker, OutboxItem, flag_times

ModelSource = Callable[
    [ProjectRecord], tuple[Callable[[], ServingModel], Callable[[], str | None] | None]
]
YAML_SUFFIXES = (".yaml", ".yml")


def _warm_up(settings: Settings, model: ServingModel) -> None:
    """One prediction (and embedding) on a blank image, so the first request is not slow."""
    from PIL import Image

    with tempfile.TemporaryDirectory(dir=settings.state_dir) as tmp:
        path = Path(tmp) / "warm-up.png"
        size = settings.detector.imgsz
        Image.new("RGB", (size, size), (127, 127, 127)).save(path)
        model.predict(path)
        model.embed(path)


def default_model_source(settings: Settings, serving: ServingSettings) -> ModelSource:
    """Loader + champion-version probe per project (see the module docstring)."""

    def source(
        project: ProjectRecord,
    ) -> tuple[Callable[[], ServingModel], Callable[[], str | None] | None]:
        from labelwise.learn import resolve_base_model, tracker_for

        trackers: dict[str, Any] = {}

        def load() -> ServingModel:
            from labelwise.runtime import load_embedder, load_model

            base = resolve_base_model(settings, project.name, serving.model)
            detector = load_model(settings, project, base.ref)
            model = ServingModel(
                detector,
                base.ref,
                base.source,
                base.registry_version,
                load_embedder(settings, detector),
                max_batch=settings.detector.batch,
            )
            _warm_up(settings, model)
            return model

        def champion_version() -> str | None:
            if "t" not in trackers:
                trackers["t"] = tracker_for(settings, project.name)
            info = trackers["t"].champion()
            return info.version if info is not None else None

        explicit_file = bool(serving.model) and not str(serving.model).startswith("models:/")
        return load, (None if explicit_file else champion_version)

    return source


def check_model_ref(settings: Settings, ref: str | None) -> str | None:
    """A model ref an API caller may ask for: None (champion or configured), ``models:/...``,
    an ultralytics yaml NAME (``yolov8n.yaml``), or a ``.pt`` inside ``state_dir/models``.

    Arbitrary server paths are refused (a checkpoint is a pickle: loading one runs code).
    """
    if ref is None or ref.startswith("models:/"):
        return ref
    if (
        ref.endswith(YAML_SUFFIXES)
        and "/" not in ref
        and "\\" not in ref
        and not ref.startswith(".")
    ):
        return ref
    if ref.endswith(".pt"):
        try:
            return str(safe_child(settings.models_dir, ref))
        except UnsafePathError:
            pass
    raise ValueError(
        f"model: expected models:/<name>@champion, a model yaml name such as yolov8n.yaml, or a "
        f".pt path relative to {settings.models_dir}; got {ref!r}"
    )


class ModelRegistry:
    """One :class:`ModelHolder` per project, created on first use."""

    def __init__(self, source: ModelSource) -> None:
        self._source = source
        self._holders: dict[str, ModelHolder] = {}
        self._lock = threading.Lock()

    def holder(self, project: ProjectRecord) -> ModelHolder:
        with self._lock:
            if project.name not in self._holders:
                loader, champion = self._source(project)
                self._holders[project.name] = ModelHolder(loader, champion)
            return self._holders[project.name]

    def get(self, project: str) -> ModelHolder | None:
        return self._holders.get(project)

    def holders(self) -> list[ModelHolder]:
        with self._lock:
            return list(self._holders.values())


@dataclass
class ServingState:
    """The app's collaborators (``app.state.serving``)."""

    settings: Settings
    serving: ServingSettings
    catalog: Catalog
    models: ModelRegistry
    caps: RateCaps
    guard: NearDuplicateGuard
    flags: FlagService
    worker: DeliveryWorker
    jobs: AutoLabelJobs
    stats: ServingStats = field(default_factory=ServingStats)
    watcher: ChampionWatcher | None = None
    keys: KeyCache = field(default_factory=KeyCache)
    project_ttl_s: float = 10.0
    _projects: dict[str, tuple[ProjectRecord, float]] = field(default_factory=dict, repr=False)

    def project(self, name: str) -> ProjectRecord:
        """The catalog's project record, cached for ``project_ttl_s`` seconds."""
        now = time.monotonic()
        hit = self._projects.get(name)
        if hit is not None and hit[1] > now:
            return hit[0]
        record = self.catalog.project(name)  # ProjectNotFound is not cached
        self._projects[name] = (record, now + self.project_ttl_s)
        return record

    def default_version(self) -> str | None:
        """Model version of the default project's loaded model (for X-Model-Version)."""
        holder = self.models.get(self.serving.project) if self.serving.project else None
        return holder.current.version if holder is not None and holder.loaded else None

    def seed_rate_caps(self) -> None:
        """Count the last day's flags of every project (caps hold across restarts)."""
        from datetime import timedelta

        from labelwise.catalog.models import utcnow

        since = utcnow() - timedelta(days=1)
        for project in self.catalog.projects():
            self.caps.seed(project.name, flag_times(self.catalog, project, since))


def auto_label_work(
    settings: Settings, catalog: Catalog
) -> Callable[[str, str | None], dict[str, Any]]:
    """What a background auto-label run does: resolve the model, predict and embed the pool."""

    def work(project_name: str, model: str | None) -> dict[str, Any]:
        from labelwise.autolabel import auto_label
        from labelwise.learn import resolve_base_model
        from labelwise.runtime import load_embedder, load_model

        project = catalog.project(project_name)
        base = resolve_base_model(settings, project.name, model)
        detector = load_model(settings, project, base.ref)
        report = auto_label(
            catalog, project, detector, load_embedder(settings, detector), settings.detector.batch,
            write_batch=settings.detector.write_batch,
        )
        return {**report.as_dict(), "model_ref": base.ref, "model_source": base.source}

    return work


def build_state(
    settings: Settings,
    serving: ServingSettings,
    catalog: Catalog,
    model_source: ModelSource | None = None,
    deliver: Callable[[OutboxItem], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> ServingState:
    """Wire the collaborators (starts nothing: see the app's lifespan)."""
    caps = RateCaps(
        serving.rate_per_minute,
        serving.rate_per_hour,
        serving.rate_per_day,
        clock=clock or time.time,
    )
    guard = NearDuplicateGuard(serving.near_duplicate_distance)
    worker = DeliveryWorker(
        catalog,
        deliver or make_deliver(settings, serving, catalog),
        base_s=serving.delivery_retry_base_s,
        max_s=serving.delivery_retry_max_s,
    )
    flags = FlagService(catalog, settings.state_dir, caps, guard, serving.upload_group, worker.wake)
    models = ModelRegistry(model_source or default_model_source(settings, serving))
    jobs = AutoLabelJobs(auto_label_work(settings, catalog))
    return ServingState(settings, serving, catalog, models, caps, guard, flags, worker, jobs)
