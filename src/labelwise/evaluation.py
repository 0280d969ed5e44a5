"""What a held-out evaluation reports, per task type, under the names shown everywhere.

Each task type has a :class:`MetricScheme`: its headline metrics (logged on every round run and
the campaign run, shown in the ``Rounds`` view, the round summary and the story lines) and its
primary metric (the one promotion compares and the plateau rule follows):

* ``detect``: precision, recall, mAP50, mAP50-95; primary mAP50-95.
* ``classify``: precision, recall (macro over the classes present), top1, top5; primary top1.
* ``segment``: box precision, recall, mAP50, mAP50-95, then mask_mAP50, mask_mAP50-95; primary
  mask_mAP50-95.

An evaluation result (:class:`~labelwise.detector.EvalResult`,
:class:`~labelwise.classifier.ClassifyEvalResult`, :class:`~labelwise.segmenter.SegmentEvalResult`)
satisfies :class:`Evaluation`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from labelwise.task_types import TaskType


@dataclass(frozen=True)
class MetricScheme:
    """The headline metric names of one task type, and which of them is primary."""

    task_type: TaskType
    headline: tuple[str, ...]
    primary: str

    def __post_init__(self) -> None:
        if self.primary not in self.headline:
            raise ValueError(f"primary metric {self.primary!r} must be one of {self.headline}")


DETECT_SCHEME = MetricScheme(TaskType.DETECT, ("precision", "recall", "mAP50", "mAP50-95"), "mAP50-95")
CLASSIFY_SCHEME = MetricScheme(TaskType.CLASSIFY, ("precision", "recall", "top1", "top5"), "top1")
SEGMENT_SCHEME = MetricScheme(
    TaskType.SEGMENT,
    ("precision", "recall", "mAP50", "mAP50-95", "mask_mAP50", "mask_mAP50-95"),
    "mask_mAP50-95",
)
_SCHEMES = {s.task_type: s for s in (DETECT_SCHEME, CLASSIFY_SCHEME, SEGMENT_SCHEME)}


def metric_scheme(task_type: TaskType | str) -> MetricScheme:
    """The scheme of ``task_type``.

    Raises:
        ValueError: a task type with no evaluation yet (named, with those that have one).
    """
    task = TaskType.parse(task_type)
    try:
        return _SCHEMES[task]
    except KeyError:
        raise ValueError(f"no held-out evaluation for {task.value!r} projects yet; evaluated: "
                         f"{[t.value for t in _SCHEMES]}") from None


class Evaluation(Protocol):
    """One model's metrics on one held-out split (all metric values in [0, 1])."""

    @property
    def split(self) -> str:
        """The held-out split evaluated (``test``, ``val`` ...)."""
        ...

    @property
    def n_images(self) -> int:
        """Images evaluated."""
        ...

    @property
    def seconds(self) -> float:
        """Wall time of the evaluation."""
        ...

    @property
    def scheme(self) -> MetricScheme:
        """Which headline names and primary metric this result reports."""
        ...

    def headline(self) -> dict[str, float]:
        """The scheme's headline metrics, in its order."""
        ...

    def per_class(self) -> dict[str, float]:
        """Per-class figures as ``<metric>/<class name>`` (e.g. ``AP50/cat``, ``recall/cat``)."""
        ...


def evaluation_record(evaluation: Evaluation) -> dict[str, Any]:
    """The evaluation as a plain dict (its dataclass fields) plus ``headline``: the scheme's
    headline metrics under their shown names, which the round story prints."""
    return {**asdict(evaluation), "headline": evaluation.headline()}  # type: ignore[call-overload]


def primary_value(evaluation: Evaluation) -> float:
    """The value of the evaluation's primary metric."""
    return evaluation.headline()[evaluation.scheme.primary]
