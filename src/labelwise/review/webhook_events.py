"""Label Studio webhook events -> durable review events -> "this batch is reviewed" exactly once.

:func:`process_webhook` is what the receiver (``deployments/webhook.py``) runs per request. It is
fast: catalog reads/writes only, no Label Studio call, no training.

* ``ANNOTATION_CREATED`` / ``ANNOTATION_UPDATED`` (payload ``annotation`` + ``task``) and
  ``ANNOTATIONS_CREATED`` (lists of both) record, per annotation, an event with the task, its
  round (the catalog's ``queued_round`` of the task's image) and ``was_cancelled``.
* ``ANNOTATIONS_DELETED`` (payload ``annotations: [{"id"}]``, no task) records a deletion for each
  annotation seen before (its task is looked up in the recorded events).
* Anything else, or a Label Studio project/task Labelwise does not know: ``handled=False`` (the
  receiver still answers 200, so Label Studio does not retry it).

Every id in a payload (project, task, annotation) must be a positive integer of at most 63 bits
(1 to 2**63 - 1, what SQLite's INTEGER holds): anything else is a ValidationError naming the
field and that range (the receiver answers 422), never an overflow in the catalog.

Recording is idempotent: an event's key is (action, task, annotation id, annotation
``updated_at``, ``was_cancelled``), so a retried or replayed webhook is stored once.

A round is complete when every task queued in it has a final answer per the recorded events
(replayed in order: created/updated set an annotation, deleted removes it; a task is answered
while it has any annotation, cancelled or not). Then ``fire`` is the compare-and-set
``queued -> reviewed`` of the round, which writes the round's learn request in the same
transaction (:mod:`labelwise.review.learn_requests`): True for exactly one request per batch,
whatever the retries, duplicates or races (a poller,
:func:`~labelwise.review.status.wait_for_review`, may win instead; its flow learns the round
itself). Events lost while the receiver was down are not replayed: the poller is the reconciler.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from labelwise.catalog import Catalog, ProjectRecord
from labelwise.config import Settings

SINGLE_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")
BULK_CREATED = "ANNOTATIONS_CREATED"
DELETED = "ANNOTATIONS_DELETED"
ANNOTATION_ACTIONS = (*SINGLE_ACTIONS, BULK_CREATED, DELETED)
MAX_ID = 2**63 - 1  # SQLite INTEGER: 64-bit signed
ID_RANGE = f"a positive integer within 63 bits (1 to {MAX_ID})"


def _check_id(value: Any) -> int:
    """A Label Studio id: an int (or an integral float / digit string, as JSON may carry it) in
    [1, MAX_ID]; ValueError naming the accepted range otherwise."""
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or not 1 <= number <= MAX_ID:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        raise ValueError(f"expected {ID_RANGE}; got {shown}")
    return number


LsId = Annotated[int, BeforeValidator(_check_id)]


def _id_fields(payload: dict[str, Any]) -> list[tuple[str, Any]]:
    """(dotted field name, raw value) of every id a Labelwise-relevant payload carries."""
    found: list[tuple[str, Any]] = []

    def ref(name: str, value: Any, bare_int: bool = False) -> None:
        if isinstance(value, dict):
            if "id" in value:
                found.append((f"{name}.id", value["id"]))
        elif bare_int and value is not None:
            found.append((name, value))

    def one_or_many(name: str, value: Any, visit: Any) -> None:
        if isinstance(value, list):
            for k, item in enumerate(value):
                visit(f"{name}[{k}]", item)
        else:
            visit(name, value)

    def annotation(name: str, value: Any) -> None:
        ref(name, value)
        if isinstance(value, dict) and value.get("task") is not None:
            ref(f"{name}.task", value["task"], bare_int=True)

    ref("project", payload.get("project"))
    one_or_many("task", payload.get("task"), ref)
    one_or_many("annotation", payload.get("annotation"), annotation)
    if isinstance(payload.get("annotations"), list):
        one_or_many("annotations", payload["annotations"], ref)
    return found


class _Ref(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: LsId


class AnnotationRef(BaseModel):
    """The fields of a webhook's annotation Labelwise reads (others are kept, unused)."""

    model_config = ConfigDict(extra="allow")

    id: LsId
    task: LsId | _Ref | None = None
    was_cancelled: bool = False
    updated_at: str | None = None

    @property
    def task_id(self) -> int | None:
        return self.task.id if isinstance(self.task, _Ref) else self.task


class WebhookPayload(BaseModel):
    """A Label Studio webhook body.

    ``action`` is required; for annotation actions ``project.id`` is too, plus ``annotation``
    (one, or a list for ``ANNOTATIONS_CREATED``) with a task id in ``task.id`` or
    ``annotation.task``, or ``annotations`` for ``ANNOTATIONS_DELETED``.
    """

    model_config = ConfigDict(extra="allow")

    action: str = Field(min_length=1)
    project: _Ref | None = None
    task: _Ref | list[_Ref] | None = None
    annotation: AnnotationRef | list[AnnotationRef] | None = None
    annotations: list[_Ref] | None = None

    @model_validator(mode="before")
    @classmethod
    def _ids_in_range(cls, data: Any) -> Any:
        """One clear error per bad id, naming its field (``annotation.task: expected ...``),
        before the union types below would report it once per alternative."""
        if isinstance(data, dict):
            for name, value in _id_fields(data):
                try:
                    _check_id(value)
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
        return data

    @model_validator(mode="after")
    def _annotation_fields(self) -> "WebhookPayload":
        if self.action not in ANNOTATION_ACTIONS:
            return self
        if self.project is None:
            raise ValueError(f"{self.action} payload needs project.id; got no project")
        if self.action == DELETED:
            if self.annotations is None:
                raise ValueError(f"{DELETED} payload needs annotations: [{{id}}]; got none")
            return self
        if self.annotation is None:
            raise ValueError(f"{self.action} payload needs an annotation; got none")
        for ann, task_id in self.pairs():
            if task_id is None:
                raise ValueError(
                    f"{self.action} payload: annotation {ann.id} has no task id (expected "
                    "task.id or annotation.task)"
                )
        return self

    def pairs(self) -> list[tuple[AnnotationRef, int | None]]:
        """(annotation, task id) of each annotation in the payload."""
        anns = self.annotation if isinstance(self.annotation, list) else (
            [self.annotation] if self.annotation is not None else [])
        tasks = self.task if isinstance(self.task, list) else ([self.task] if self.task else [])
        by_position = len(tasks) == len(anns)
        out: list[tuple[AnnotationRef, int | None]] = []
        for k, ann in enumerate(anns):
            task_id = ann.task_id
            if task_id is None and by_position:
                task_id = tasks[k].id
            out.append((ann, task_id))
        return out


@dataclass(frozen=True)
class WebhookOutcome:
    """What one webhook call did.

    Attributes:
        action: the payload's action.
        handled: an annotation event of a known project/task was processed.
        project: the catalog project name, when known.
        round_number: the round of the (first) task, when known.
        complete: every task of that round has a final answer per the recorded events.
        fire: this call moved the round ``queued -> reviewed``: start the continuation.
        recorded: new events stored (0 for a duplicate).
        detail: why it was not handled, or a short note.
        fired_rounds: every round this call moved to reviewed (more than one only for a bulk
            event spanning rounds); ``round_number`` is the first of them.
    """

    action: str
    handled: bool
    project: str | None = None
    round_number: int | None = None
    complete: bool = False
    fire: bool = False
    recorded: int = 0
    detail: str = ""
    fired_rounds: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["fired_rounds"] = list(self.fired_rounds)
        return out


def event_key(action: str, task_id: int, annotation_id: int | None, updated_at: str | None,
              was_cancelled: bool) -> str:
    """The idempotency key of one annotation event."""
    return f"{action}|{task_id}|{annotation_id}|{updated_at or '-'}|{int(was_cancelled)}"


def round_complete(catalog: Catalog, project: ProjectRecord, round_number: int) -> bool:
    """Every task queued in the round has a recorded, not deleted, annotation."""
    wanted = {img.ls_task_id for img in catalog.round_images(project, round_number)
              if img.ls_task_id is not None}
    if not wanted:
        return False
    live: dict[int, set[int]] = {}
    for ev in catalog.review_events(project, round_number):
        annotations = live.setdefault(int(ev["ls_task_id"]), set())
        if ev["action"] == DELETED:
            annotations.discard(ev["annotation_id"])
        elif ev["annotation_id"] is not None:
            annotations.add(ev["annotation_id"])
    answered = {task for task, annotations in live.items() if annotations}
    return wanted <= answered


def process_webhook(
    settings: Settings, catalog: Catalog, payload: dict[str, Any]
) -> WebhookOutcome:
    """Validate, record and evaluate one Label Studio webhook (see the module docstring).

    Raises:
        pydantic.ValidationError: a malformed payload (the receiver answers 422).
    """
    del settings  # the decision needs the catalog only; kept for a uniform signature
    event = WebhookPayload.model_validate(payload)
    if event.action not in ANNOTATION_ACTIONS:
        return WebhookOutcome(event.action, False, detail=f"action {event.action} is ignored")
    assert event.project is not None
    project = catalog.project_by_ls_id(event.project.id)
    if project is None:
        return WebhookOutcome(event.action, False,
                              detail=f"no catalog project is linked to Label Studio project "
                                     f"{event.project.id}")
    # (task id, annotation id, updated_at, was_cancelled) per event of this payload.
    items: list[tuple[int, int | None, str | None, bool]] = []
    if event.action == DELETED:
        ids = [a.id for a in event.annotations or []]
        seen = {ev["annotation_id"]: ev["ls_task_id"] for ev in catalog.review_events(
            project, annotation_ids=ids)}
        items = [(int(seen[i]), i, None, False) for i in ids if i in seen]
    else:
        items = [(int(task_id), ann.id, ann.updated_at, ann.was_cancelled)
                 for ann, task_id in event.pairs() if task_id is not None]
    recorded = 0
    rounds: list[int] = []
    for task_id, annotation_id, updated_at, cancelled in items:
        image = catalog.image_by_ls_task(project, task_id)
        if image is None or image.queued_round is None:
            continue
        if image.queued_round not in rounds:
            rounds.append(image.queued_round)
        recorded += int(catalog.record_review_event(
            project, ls_task_id=task_id, round_number=image.queued_round, action=event.action,
            annotation_id=annotation_id, was_cancelled=cancelled,
            event_key=event_key(event.action, task_id, annotation_id, updated_at, cancelled)))
    if not rounds:
        return WebhookOutcome(event.action, False, project.name,
                              detail="no queued Labelwise task in this event")
    complete_rounds = [r for r in rounds if round_complete(catalog, project, r)]
    fired = tuple(r for r in complete_rounds
                  if catalog.mark_reviewed(project, r, request_learn=True))
    number = fired[0] if fired else (complete_rounds[0] if complete_rounds else rounds[0])
    return WebhookOutcome(event.action, True, project.name, number, number in complete_rounds,
                          bool(fired), recorded, "recorded" if recorded else "duplicate", fired)
