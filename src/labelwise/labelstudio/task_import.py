"""Exactly-once task import: a bulk import keyed by a ``data`` field, reconciled after a lost reply.

Label Studio's import endpoint is not idempotent: when the connection drops after the server
saved the tasks, the client cannot tell whether they exist, and a blind retry imports them twice
(annotators then see every image twice). A keyed import never retries blindly:

1. each chunk is sent once (connection errors before sending are retried as usual);
2. when its reply is lost (:class:`~labelwise.labelstudio.errors.LabelStudioMaybeApplied`), the
   project's tasks are listed and matched by ``data[key]``; only the tasks still missing are sent
   again (with backoff, up to the client's ``retries``);
3. after any lost reply, a last listing looks for keys that ended up with more than one task (the
   server committed a "lost" import only after the listing looked) and deletes the newer, still
   unannotated copies, so exactly one task per key remains.

The outcome, :class:`TaskImport`, says how many replies were lost and what was reconciled, so the
command that imported can report it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from labelwise.labelstudio.errors import LabelStudioMaybeApplied
from labelwise.labelstudio.retry import MAX_RETRY_DELAY_S

if TYPE_CHECKING:
    from labelwise.labelstudio.client import LabelStudioClient

log = logging.getLogger("labelwise.labelstudio.client")

T = TypeVar("T")


@dataclass(frozen=True)
class TaskImport:
    """What one (keyed) import did.

    Attributes:
        task_ids: the task id of each imported task, in the order of the tasks given.
        lost_replies: import requests whose reply was lost after they were sent.
        found_after_lost_reply: tasks a lost-reply request had created, found by key and not
            sent again.
        duplicates_removed: extra copies (a lost-reply request committed after the listing
            looked, then the re-send) that were deleted, keeping the oldest task per key.
    """

    task_ids: list[int]
    lost_replies: int = 0
    found_after_lost_reply: int = 0
    duplicates_removed: int = 0

    @property
    def reconciled(self) -> bool:
        """True when a reply was lost and the import was reconciled against the project."""
        return self.lost_replies > 0

    def note(self) -> str | None:
        """One line for the command's output, or None when every reply arrived."""
        if not self.reconciled:
            return None
        return (
            f"reconciled {self.lost_replies} import(s) whose reply was lost: "
            f"{self.found_after_lost_reply} task(s) had been created and were not sent again, "
            f"{self.duplicates_removed} duplicate(s) removed; one task per image"
        )

    def as_json(self) -> dict[str, int]:
        return {
            "lost_replies": self.lost_replies,
            "found_after_lost_reply": self.found_after_lost_reply,
            "duplicates_removed": self.duplicates_removed,
        }


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def task_keys(tasks: Sequence[Mapping[str, Any]], key: str) -> list[str]:
    """``str(task["data"][key])`` of every task; ValueError when one is missing or repeated."""
    keys: list[str] = []
    seen: set[str] = set()
    for i, task in enumerate(tasks):
        data = task.get("data")
        if not isinstance(data, Mapping) or data.get(key) is None:
            raise ValueError(f"tasks[{i}]['data'] must hold the import key {key!r}; it does not")
        value = str(data[key])
        if value in seen:
            raise ValueError(f"tasks[{i}]: import key {key}={value!r} appears twice; expected "
                             "one task per key")
        seen.add(value)
        keys.append(value)
    return keys


def tasks_by_key(client: "LabelStudioClient", project_id: int, key: str,
                 ) -> dict[str, list[dict[str, Any]]]:
    """``{str(data[key]): [task, ...]}`` of the project's tasks, oldest (lowest id) first."""
    found: dict[str, list[dict[str, Any]]] = {}
    for task in sorted(client.list_tasks(project_id, fields="task_only"),
                       key=lambda t: int(t["id"])):
        value = (task.get("data") or {}).get(key)
        if value is not None:
            found.setdefault(str(value), []).append(task)
    return found


def has_answers(task: Mapping[str, Any]) -> bool:
    """Whether a Label Studio task holds annotations (submitted or skipped) a reviewer made."""
    return bool(task.get("total_annotations") or task.get("cancelled_annotations"))


def import_keyed(
    client: "LabelStudioClient",
    project_id: int,
    tasks: Sequence[Mapping[str, Any]],
    key: str,
    chunk_size: int,
) -> TaskImport:
    """Import ``tasks`` so that each ``data[key]`` has exactly one task afterwards (see the
    module docstring).

    Raises:
        ValueError: a task lacks ``data[key]`` or two tasks share it.
        LabelStudioMaybeApplied: replies were still lost after ``client.retries`` re-sends; the
            message says how far it got, and running the command again reconciles the rest.
    """
    keys = task_keys(tasks, key)
    ids: dict[str, int] = {}
    lost = found = 0
    for chunk in chunks(list(zip(keys, tasks, strict=True)), chunk_size):
        pending = list(chunk)
        attempt = 0
        while pending:
            try:
                got = client.import_chunk(project_id, [t for _, t in pending])
            except LabelStudioMaybeApplied as exc:
                lost += 1
                if attempt >= client.retries:
                    raise LabelStudioMaybeApplied(
                        f"import into project {project_id} at {client.url}: {lost} repl(ies) lost "
                        f"and {len(pending)} task(s) still unconfirmed after {attempt + 1} "
                        f"attempt(s) ({exc}); run the command again: it imports only the tasks "
                        f"whose {key!r} is not in the project yet"
                    ) from exc
                delay = min(client.retry_base_delay_s * 2**attempt, MAX_RETRY_DELAY_S)
                log.warning("import into project %s: reply lost (%s); listing the project's "
                            "tasks by %r in %.2fs", project_id, exc, key, delay)
                time.sleep(delay)
                present = tasks_by_key(client, project_id, key)
                for k, _ in pending:
                    if k in present:
                        ids[k] = int(present[k][0]["id"])
                        found += 1
                pending = [(k, t) for k, t in pending if k not in present]
                attempt += 1
                continue
            ids.update(zip([k for k, _ in pending], got, strict=True))
            pending = []
    removed = _remove_duplicates(client, project_id, key, ids) if lost else 0
    return TaskImport([ids[k] for k in keys], lost, found, removed)


def _remove_duplicates(client: "LabelStudioClient", project_id: int, key: str,
                       ids: dict[str, int]) -> int:
    """Delete the newer unannotated copies of any key in ``ids`` that has several tasks; point
    ``ids`` at the oldest. Returns how many tasks were deleted."""
    extra: list[int] = []
    for k, copies in tasks_by_key(client, project_id, key).items():
        if k not in ids or len(copies) < 2:
            continue
        ids[k] = int(copies[0]["id"])
        extra.extend(int(t["id"]) for t in copies[1:] if not has_answers(t))
    if extra:
        log.warning("import into project %s: deleting %d duplicate task(s) a lost reply left "
                    "behind: %s", project_id, len(extra), extra)
        client.delete_tasks(project_id, extra)
    return len(extra)
