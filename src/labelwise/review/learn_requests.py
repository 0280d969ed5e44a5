"""Learn requests: the durable "start the learn run of this reviewed round" of the webhook path.

When a webhook completes a batch, :meth:`~labelwise.catalog.Catalog.mark_reviewed` moves the round
``queued -> reviewed`` and writes its learn request in the same transaction. The webhook receiver
delivers requests with an :class:`~labelwise.outbox_worker.OutboxWorker`: it calls its hook
(``deployments.continuation.start_learn_run``, which creates the Prefect run with the idempotency
key ``labelwise-learn-<project>-round-<n>``) and retries with backoff while Prefect is down, so a
batch reviewed during an outage is learnt when Prefect is back, exactly once (a request delivered
twice gets the same run back from Prefect, and learn_round's compare-and-set trains a round once).
"""

from __future__ import annotations

from dataclasses import dataclass

from labelwise.catalog import Catalog
from labelwise.catalog.models import LearnRequestRow
from labelwise.catalog.outbox import Outbox


@dataclass(frozen=True)
class LearnRequest:
    """One reviewed round waiting for its learn run."""

    id: int
    project: str
    round_number: int
    attempts: int = 0


def _item(row: LearnRequestRow, project: str) -> LearnRequest:
    return LearnRequest(row.id, project, row.round_number, row.attempts)


def learn_requests(catalog: Catalog) -> Outbox[LearnRequest]:
    """The ``learn_requests`` table's rows as :class:`LearnRequest`."""
    return Outbox(catalog, LearnRequestRow, _item,
                  lambda r: f"learn request {r.project} round {r.round_number}")
