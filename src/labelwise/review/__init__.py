"""Human review in Label Studio: queue a score batch, follow the review, pull the labels back.

Every public function opens its own Label Studio client from ``settings.labelstudio`` (and closes
it) and returns a JSON-able dict; :func:`process_webhook` makes no Label Studio call at all.
Importing this package does no I/O and does not import label-studio-sdk.

* :func:`ensure_ls_project`: the Label Studio project ``labelwise-<project>``, its local-files
  storage on ``<state_dir>/media/<project>`` and its webhook.
* :func:`queue_batch`: a recorded score batch -> tasks with pre-annotations (idempotent).
* :func:`queue_assignments`: exactly the images a caller names -> one new round, queued with
  their stored predictions (the serving API's assignments); :class:`AssignmentError` when refused.
* :func:`review_status` / :func:`wait_for_review`: progress of a round (annotated / skipped /
  pending); the wait moves the round ``queued -> reviewed``.
* :func:`pull_annotations`: answered tasks -> catalog labels + YOLO files; skipped tasks ->
  ``rejected`` (kept out of training and of future queues); reviewer-correction metrics.
* :func:`annotate_simulated`: a simulated annotator answering from ground-truth files.
* :func:`process_webhook`: one Label Studio webhook -> a durable review event, and "batch
  reviewed" exactly once.
"""

from labelwise.review.assignments import (
    AssignmentError,
    AssignmentResult,
    NotAssignable,
    UnknownImages,
    queue_assignments,
)
from labelwise.review.project import ensure_ls_project
from labelwise.review.pull import pull_annotations
from labelwise.review.queue import queue_batch
from labelwise.review.simulate import annotate_simulated
from labelwise.review.status import review_status, wait_for_review
from labelwise.review.webhook_events import WebhookOutcome, WebhookPayload, process_webhook

__all__ = [
    "AssignmentError",
    "AssignmentResult",
    "NotAssignable",
    "UnknownImages",
    "WebhookOutcome",
    "WebhookPayload",
    "annotate_simulated",
    "ensure_ls_project",
    "process_webhook",
    "pull_annotations",
    "queue_assignments",
    "queue_batch",
    "review_status",
    "wait_for_review",
]
