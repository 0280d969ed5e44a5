"""Per-deployment configuration of ``labelwise serve``.

Read from the optional ``serving:`` section of the settings (``LABELWISE_SERVING__...`` in the
environment) once :class:`labelwise.config.Settings` has that field; until then build it
explicitly and hand it to :func:`labelwise.serving.create_app`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

EvaluationStrategy = Literal[
    "entropy", "lowest_confidence", "margin_sampling", "weighted_combination"
]
EVALUATION_STRATEGIES: tuple[str, ...] = (
    "entropy",
    "lowest_confidence",
    "margin_sampling",
    "weighted_combination",
)


class ServingSettings(BaseModel):
    """How one deployment serves predictions and flags images for review.

    Scores are on [0, 1], lower = more uncertain (see :mod:`labelwise.scoring`); an image is
    *flagged* when its evaluation score is strictly below ``evaluation_threshold``.
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
    evaluation_strategy: EvaluationStrategy = Field(
        "entropy",
        description="The image score compared with the threshold "
        "(weighted_combination = scoring.weights over the three scores).",
    )
    evaluation_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Flag an image when its score is below this."
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
