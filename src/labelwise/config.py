"""Configuration: one YAML file plus ``LABELWISE_*`` environment overrides.

Nothing is read at import time. Call :func:`load_settings` where a command, task or app starts.

Precedence (highest first): explicit keyword arguments, environment variables
(``LABELWISE_SCORING__CONFIDENCE_FLOOR=0.3``: nested fields joined by ``__``), the YAML file
(``--config``, else ``$LABELWISE_CONFIG``, else ``./labelwise.yaml`` when it exists), defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from labelwise.images import DEFAULT_MAX_PIXELS, PIL_HARD_LIMIT
from labelwise.scoring import SCORE_NAMES, ScoreName

DEFAULT_CONFIG_FILE = "labelwise.yaml"
CONFIG_FILE_KWARG = "_config_file"
"""The keyword argument of :class:`Settings` that names its YAML file (None = no file):
``Settings(_config_file=path, **values)``, what :func:`load_settings` calls."""

RoutingStrategy = Literal[ScoreName, "weighted_combination"]
ROUTING_STRATEGIES: tuple[str, ...] = (*SCORE_NAMES, "weighted_combination")
"""What ``serving.routing_strategy`` may be: one of the scores, or their weighted combination."""


class DetectorSettings(BaseModel):
    """How the YOLO detector is loaded and run."""

    model: str = Field(
        "yolov8n.yaml",
        description="A .pt weights path, an ultralytics model yaml (random init), or "
        "models:/<name>@champion from the MLflow registry.",
    )
    imgsz: int = Field(160, ge=32, description="Inference/training image size in pixels.")
    batch: int = Field(16, ge=1, description="Images per inference batch.")
    write_batch: int = Field(
        256, ge=1,
        description="Images auto-label holds before it stores their predictions and embeddings "
        "(one transaction each); a crash loses at most this many images' work.",
    )
    conf: float = Field(
        0.01, ge=0.0, le=1.0,
        description="Prediction threshold; low so near-threshold candidates are scored.",
    )
    iou: float = Field(0.6, gt=0.0, le=1.0, description="NMS IoU threshold.")
    max_det: int = Field(100, ge=1, description="Most boxes kept per image.")
    device: str = "cpu"
    threads: int = Field(
        0, ge=0, description="torch threads for inference/training; 0 = all cores."
    )
    backend: Literal["torch", "onnx", "openvino"] = Field(
        "torch",
        description="Inference backend of auto-label and serving: torch (the model itself), onnx "
        "(ONNX Runtime) or openvino, on an ultralytics export cached per weights version and imgsz "
        "under <state_dir>/exports. Training and evaluation always use torch.",
    )


class ImageSettings(BaseModel):
    """What a pool image may be (see :mod:`labelwise.images`)."""

    max_pixels: int = Field(
        DEFAULT_MAX_PIXELS,
        ge=1,
        le=PIL_HARD_LIMIT,
        description="Most pixels (width x height) of an image: larger files are skipped and "
        "reported by add-images (a decompression bomb is one more bad file), and "
        "/v1/predict answers 422 above min(this, serving.max_image_pixels). Default: Pillow's "
        f"warning limit ({DEFAULT_MAX_PIXELS}, ~89.5 Mpx); at most {PIL_HARD_LIMIT}, the size "
        "above which Pillow refuses to open an image.",
    )


class EmbedderSettings(BaseModel):
    """Per-image embeddings used for diversity."""

    kind: Literal["auto", "clip", "detector", "pixels", "none"] = Field(
        "auto",
        description="auto = CLIP when clip_weights is set, else pooled detector features side "
        "by side with an 8x8 pixel thumbnail (near-duplicate frames).",
    )
    clip_model: str = "ViT-B-32"
    clip_weights: Path | None = Field(None, description="Local open_clip weights file.")
    clip_random_init: bool = Field(
        False, description="Use an untrained CLIP (tests only); never silently chosen."
    )
    batch: int = Field(32, ge=1)


class ScoringSettings(BaseModel):
    """Box scores → image score."""

    aggregation: Literal["min", "mean", "topk_mean", "sum"] = "min"
    top_k: int = Field(3, ge=1, description="k for topk_mean.")
    confidence_floor: float = Field(
        0.25, ge=0.0, le=1.0,
        description="Only boxes whose confidence reaches this are aggregated.",
    )
    no_box_score: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Score of an image with no box at or above the floor "
        "(0 = most uncertain: the detector found nothing it believes in).",
    )
    blind_band: float = Field(
        0.1, ge=0.0, le=1.0,
        description="Width of the band [no_box_score, no_box_score + blind_band] in which images "
        "with no box at or above the floor are ranked by their faint boxes (more faint evidence "
        "and more confusing faint boxes = lower); 0 = they all tie at no_box_score. "
        "no_box_score + blind_band must be <= 1.",
    )
    weights: dict[str, float] = Field(
        default_factory=lambda: {str(name): 1.0 for name in SCORE_NAMES},
        description="Weights of the combination; normalised to sum to 1.",
    )
    mask_weight: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Segmentation only: share of each instance's score taken by its mask stability "
        "((1 - w) * class score + w * stability; 0 = class scores alone). Boxes without masks "
        "are unaffected.",
    )

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - set(SCORE_NAMES)
        if unknown:
            raise ValueError(
                f"unknown score weight(s) {sorted(unknown)}; expected keys from {list(SCORE_NAMES)}"
            )
        if any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
            raise ValueError(f"weights must be >= 0 with a positive sum; got {value}")
        return value


class SelectionSettings(BaseModel):
    """Which images go to review."""

    strategy: str = Field(
        "rare_class_diverse",
        description="A name from labelwise.strategies.STRATEGIES; the default is chosen from the "
        "pool benchmark (docs/benchmarks.md).",
    )
    limit: int = Field(20, ge=1)
    diversity_weight: float = Field(0.5, ge=0.0, le=1.0)
    candidate_factor: int = Field(
        10, ge=1, description="diverse selection looks at the limit x this most uncertain images"
    )
    class_balance: bool = False
    seed: int = 0


PREANNOTATION_DEFAULTS: dict[str, float] = {"detect": 0.1, "segment": 0.4, "classify": 0.0}
"""Pre-annotation thresholds by task type when ``labelstudio.preannotation_conf`` is unset: boxes
from 0.1 take reviewers fewer edits than drawing by hand; a segmentation model's faint instances
cost more edits than they save, 0.4 fewer (docs/benchmarks.md, segmentation); a classification
sends its top class whatever its probability (the value is not used)."""


class LabelStudioSettings(BaseModel):
    """A Label Studio server: ours (make labelstudio-start) or the user's own."""

    url: str = "http://127.0.0.1:8089"
    api_key: str = "labelwise-dev-token"
    timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(4, ge=0)
    document_root: Path | None = Field(
        None, description="Local-files document root of the server (defaults to state_dir)."
    )
    webhook_url: str = "http://127.0.0.1:8091/webhooks/labelstudio"
    webhook_secret: str = "change-me"
    preannotation_conf: float | None = Field(
        None, ge=0.0, le=1.0,
        description="Boxes (instances) at or above this confidence are sent to reviewers as "
        "pre-annotations (each with its score). None = the project's task type's default "
        "(PREANNOTATION_DEFAULTS: detection 0.1, instance segmentation 0.4; a classification always "
        "sends its top class). Its own threshold, lower than scoring.confidence_floor: a reviewer "
        "corrects a faint box faster than drawing it, while scoring ignores it; a faint polygon is "
        "mostly deleted or relabelled (docs/benchmarks.md).",
    )
    learn_retry_base_s: float = Field(
        1.0, gt=0, description="The webhook receiver's first retry delay when starting a learn "
        "run fails (Prefect down); doubles per try."
    )
    learn_retry_max_s: float = Field(60.0, gt=0, description="Longest such retry delay.")

    def preannotation_floor(self, task_type: str) -> float:
        """The pre-annotation threshold of a project of ``task_type`` (``detect``, ``segment``,
        ``classify``): ``preannotation_conf`` when set, else the task's default."""
        if self.preannotation_conf is not None:
            return self.preannotation_conf
        try:
            return PREANNOTATION_DEFAULTS[str(task_type)]
        except KeyError:
            raise ValueError(f"unknown task type {task_type!r}; expected one of "
                             f"{sorted(PREANNOTATION_DEFAULTS)}") from None


class ConsensusSettings(BaseModel):
    """Reviewer agreement (the ``consensus:`` section): a share of each queued batch is reviewed
    by more than one person (:mod:`labelwise.review.consensus`)."""

    share: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Share of each batch's images that also get a copy per extra reviewer "
        "(0 = off; at least one image when above 0).",
    )
    reviewers: int = Field(2, ge=2, le=5, description="Reviewers per consensus image.")
    floor: float = Field(
        0.6, ge=0.0, le=1.0,
        description="A round whose box F1 between reviewers is below this is flagged in its "
        "summary (agreement_below_floor).",
    )


class TrackingSettings(BaseModel):
    """MLflow."""

    tracking_uri: str | None = Field(None, description="Defaults to sqlite in the state folder.")
    experiment_prefix: str = "labelwise"
    campaign: str = Field(
        "default", description="MLflow campaign (parent run) of the learn runs the webhook "
        "receiver starts; a closed loop of the same campaign holds them under its own run."
    )
    promote_tolerance: float = Field(
        0.0, ge=0.0, description="Champion moves unless mAP50-95 drops by more than this."
    )
    plateau_epsilon: float = Field(0.005, ge=0.0)
    plateau_rounds: int = Field(2, ge=1)


class TrainingSettings(BaseModel):
    """The one training recipe (the learn round and the benchmark both use it; see training.py).

    Epochs per round = max(``epochs``, ceil(``min_image_passes`` / labelled images)): small
    labelled sets get enough image passes to learn, large ones at least ``epochs`` epochs.
    1600 passes: with 320 the benchmark's learning curves were too flat to tell strategies
    apart (random gained +0.04 mAP50 from 16 to 64 images), 1600 lifted them (docs/benchmarks.md).
    """

    epochs: int = Field(10, ge=1, description="Epoch floor per round.")
    min_image_passes: int = Field(
        1600, ge=0, description="Floor of epochs x images so tiny labelled sets still learn."
    )
    start_from: Literal["champion", "base"] = Field(
        "champion",
        description="What a round fine-tunes: the registry champion (rounds build on each "
        "other; falls back to detector.model before the first champion) or always the "
        "configured base detector.model (a round's model then depends only on its labelled "
        "set; the strategy benchmark's setting).",
    )
    batch: int = Field(8, ge=1)
    optimizer: str = Field("AdamW", description="ultralytics optimizer name ('auto' lets it choose).")
    lr0: float = Field(0.002, gt=0, description="Initial learning rate.")
    patience: int = Field(0, ge=0, description="0 = no early stop.")
    seed: int = 0
    pseudo_labels: bool = Field(
        True,
        description="Semi-supervised rounds: also train on the current model's confident boxes "
        "on unlabelled pool images (labelwise.pseudo_labels); never stored as labels. On by "
        "default: in the pool benchmark it halved the reviewer edits to random's final mAP50.",
    )
    pseudo_threshold: float = Field(
        0.5, gt=0.0, le=1.0, description="A predicted box becomes a pseudo-label at or above this."
    )
    pseudo_band_floor: float = Field(
        0.25, ge=0.0, le=1.0,
        description="An image with any box in [pseudo_band_floor, pseudo_threshold) is left out "
        "(an object the model half-sees may be missed).",
    )
    pseudo_cap: float = Field(
        1.0, ge=0.0, description="Most pseudo images per reviewed image (training time <= 1 + cap)."
    )

    @model_validator(mode="after")
    def _check_pseudo_band(self) -> "TrainingSettings":
        if self.pseudo_band_floor > self.pseudo_threshold:
            raise ValueError(
                f"pseudo_band_floor must be <= pseudo_threshold ({self.pseudo_threshold}); "
                f"got {self.pseudo_band_floor}"
            )
        return self

    def pseudo_rule(self):  # -> labelwise.pseudo_labels.PseudoLabelRule
        """The pseudo-label rule of these settings."""
        from labelwise.pseudo_labels import PseudoLabelRule

        return PseudoLabelRule(self.pseudo_threshold, self.pseudo_band_floor, self.pseudo_cap)


class ServingSettings(BaseModel):
    """How one deployment of ``labelwise serve`` serves predictions and flags images for review
    (the ``serving:`` section, ``LABELWISE_SERVING__...`` in the environment; or built explicitly
    and handed to :func:`labelwise.serving.create_app`).

    Scores are on [0, 1], lower = more uncertain (see :mod:`labelwise.scoring`); an image is
    *flagged* when its routing score is strictly below ``routing_threshold``.
    """

    project: str | None = Field(
        None, description="Default project of /v1/predict (its model is loaded at start)."
    )
    model: str | None = Field(
        None,
        description="A .pt path or model yaml; default: the registry champion of the "
        "project, else detector.model. A models:/ ref means the champion.",
    )
    host: str = Field("127.0.0.1", description="Bind address of `labelwise serve`.")
    port: int = Field(8000, ge=1, le=65535)
    routing_strategy: RoutingStrategy = Field(
        "entropy",
        validation_alias=AliasChoices("routing_strategy", "evaluation_strategy"),
        description="The image score compared with the threshold "
        "(weighted_combination = scoring.weights over the three scores). Also read under its "
        "earlier name, evaluation_strategy.",
    )
    routing_threshold: float = Field(
        0.5, ge=0.0, le=1.0,
        validation_alias=AliasChoices("routing_threshold", "evaluation_threshold"),
        description="Flag an image when its score is below this. Also read under its earlier "
        "name, evaluation_threshold.",
    )
    upload_group: str = Field(
        "serving",
        min_length=1,
        max_length=200,
        description="Label Studio group (Data Manager tab) that flagged images go to.",
    )
    rate_per_minute: int | None = Field(
        30, ge=0, description="Most images flagged per project per minute (None = no cap)."
    )
    rate_per_hour: int | None = Field(300, ge=0, description="... per hour (None = no cap).")
    rate_per_day: int | None = Field(2000, ge=0, description="... per day (None = no cap).")
    near_duplicate_distance: float = Field(
        0.01,
        ge=0.0,
        le=2.0,
        description="Suppress a flag when the cosine distance (1 - cos) of the image's embedding "
        "to an image already queued or flagged is below this (0 = off). Embedder-dependent: "
        "a one-pixel change measured ~1e-5 with untrained yolov8n features at 96 px, distinct "
        "digit images 0.009-0.04; calibrate on your own data.",
    )
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="413 above this.")
    max_image_pixels: int = Field(
        40_000_000,
        ge=1,
        description="422 above width x height (checked from the header, before decoding); "
        "the pool's images.max_pixels applies too when it is lower.",
    )
    poll_interval_s: float = Field(
        30.0, ge=0.0, description="Seconds between champion checks (0 = only /v1/admin/reload)."
    )
    delivery_retry_base_s: float = Field(
        1.0, gt=0.0, description="First delay before retrying a failed delivery; doubles."
    )
    delivery_retry_max_s: float = Field(60.0, gt=0.0, description="Longest retry delay.")
    thumbnail_size: int = Field(128, ge=16, le=1024, description="Long side of thumbnails, px.")

    @field_validator("upload_group")
    @classmethod
    def _group_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(f"upload_group must be non-blank; got {value!r}")
        return value.strip()


class Settings(BaseSettings):
    """All of Labelwise's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="LABELWISE_", env_nested_delimiter="__", extra="forbid"
    )

    state_dir: Path = Field(Path(".labelwise"), description="Everything Labelwise writes.")
    catalog_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite in state.")
    images: ImageSettings = Field(default_factory=ImageSettings)
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    selection: SelectionSettings = Field(default_factory=SelectionSettings)
    labelstudio: LabelStudioSettings = Field(default_factory=LabelStudioSettings)
    consensus: ConsensusSettings = Field(default_factory=ConsensusSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)

    @model_validator(mode="after")
    def _absolute_state(self) -> "Settings":
        object.__setattr__(self, "state_dir", self.state_dir.expanduser().resolve())
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then ``LABELWISE_*``, then the YAML file this call names.

        The file comes with the call itself (the keyword argument :data:`CONFIG_FILE_KWARG`, taken
        out of the values before they are validated), never from module state: loads of
        different files on different threads cannot see each other's file.
        """
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        given = init_settings.init_kwargs if isinstance(init_settings, InitSettingsSource) else {}
        if CONFIG_FILE_KWARG in given:
            values = dict(given)
            yaml_file = values.pop(CONFIG_FILE_KWARG)
            sources[0] = InitSettingsSource(settings_cls, init_kwargs=values)
            if yaml_file is not None:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=Path(yaml_file)))
        return tuple(sources)

    # Derived locations -------------------------------------------------------------------
    @property
    def resolved_catalog_url(self) -> str:
        return self.catalog_url or f"sqlite:///{self.state_dir / 'catalog.db'}"

    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking.tracking_uri or f"sqlite:///{self.state_dir / 'mlflow.db'}"

    @property
    def thumbnails_dir(self) -> Path:
        return self.state_dir / "thumbnails"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def models_dir(self) -> Path:
        return self.state_dir / "models"

    @property
    def labels_dir(self) -> Path:
        return self.state_dir / "labels"

    @property
    def labelstudio_document_root(self) -> Path:
        return (self.labelstudio.document_root or self.state_dir).expanduser().resolve()


def find_config_file(explicit: Path | str | None = None) -> Path | None:
    """The config file to read: explicit, else $LABELWISE_CONFIG, else ./labelwise.yaml."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist; expected a YAML file")
        return path
    env = os.environ.get("LABELWISE_CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise FileNotFoundError(f"LABELWISE_CONFIG={env} does not exist; expected a YAML file")
        return path
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build settings from the config file (:func:`find_config_file`), the environment and
    ``overrides``. Safe to call from many threads at once: the file travels with the call."""
    call: dict[str, Any] = {CONFIG_FILE_KWARG: find_config_file(config_file), **overrides}
    return Settings(**call)


def write_settings(settings: Settings, path: Path) -> Path:
    """Write ``settings`` as a YAML config file (what flows hand to their tasks)."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))
    return path
