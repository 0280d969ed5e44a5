"""A small, retrying wrapper around label-studio-sdk 2.x for what Labelwise needs.

Error policy (the SDK's own retries are switched off; this module does them):

* connection errors (refused, reset, connect timeout) and HTTP 5xx are retried with exponential
  backoff, ``retries`` times, ``retry_base_delay_s * 2**attempt`` apart (capped); then
  :class:`LabelStudioUnavailable` names the URL;
* a lost reply (the server disconnecting, a read timeout) is retried only for idempotent calls;
  a state-changing call raises :class:`LabelStudioMaybeApplied` instead, because it may have gone
  through: the task import is keyed and reconciles (:mod:`~labelwise.labelstudio.task_import`),
  the find-or-create calls look again before they create again;
* 401/403 raise :class:`LabelStudioAuthError` at once, any other 4xx
  :class:`LabelStudioRequestError` with the server's body.

Results come back as plain ``dict``s (JSON-ready), ids as ``int``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
from label_studio_sdk import LabelStudio

from labelwise.config import LabelStudioSettings
from labelwise.labelstudio.errors import LabelStudioMaybeApplied, LabelStudioRequestError
from labelwise.labelstudio.local_files import check_storage_path
from labelwise.labelstudio.retry import _CONNECT_ERRORS as _CONNECT_ERRORS  # re-exported
from labelwise.labelstudio.retry import (
    DEFAULT_RETRY_BASE_DELAY_S,
    PAGE_SIZE,
    all_pages,
    call_with_retries,
)
from labelwise.labelstudio.retry import MAX_RETRY_DELAY_S as MAX_RETRY_DELAY_S  # re-exported
from labelwise.labelstudio.task_import import TaskImport, chunks, import_keyed

log = logging.getLogger(__name__)

T = TypeVar("T")

IMPORT_CHUNK_SIZE = 500


def _view_value(data: Mapping[str, Any], key: str) -> Any:
    """A tab setting as compared when ensuring a view (lists for orderings, {} when unset)."""
    value = data.get(key)
    if key == "ordering":
        return list(value or [])
    if key in ("columnsDisplayType", "hiddenColumns"):
        return dict(value or {})
    return value


def _dump(obj: Any) -> dict[str, Any]:
    """An SDK model (or dict) as a plain JSON-ready dict."""
    if isinstance(obj, Mapping):
        return dict(obj)
    return obj.model_dump(mode="json", by_alias=True)


class LabelStudioClient:
    """Labelwise's view of one Label Studio server.

    Args:
        url: server base URL, e.g. ``http://127.0.0.1:8089``.
        api_key: a legacy token (sent as ``Token``) or a personal access token (JWT, ``Bearer``).
        timeout_s: per-request timeout in seconds.
        retries: retries after the first try for connection errors and 5xx.
        retry_base_delay_s: first backoff delay in seconds; doubles each retry (capped at 8 s).
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout_s: float = 30.0,
        retries: int = 4,
        retry_base_delay_s: float = DEFAULT_RETRY_BASE_DELAY_S,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0; got {retries}")
        if not api_key:
            raise ValueError("api_key must be a non-empty Label Studio token; got an empty one")
        self.url = url.rstrip("/")
        self.retries = retries
        self.retry_base_delay_s = retry_base_delay_s
        self._http = httpx.Client(timeout=timeout_s, follow_redirects=True)
        self._ls = LabelStudio(
            base_url=self.url,
            api_key=api_key,
            timeout=timeout_s,
            max_retries=0,
            httpx_client=self._http,
        )

    @classmethod
    def from_settings(
        cls,
        settings: LabelStudioSettings,
        *,
        retry_base_delay_s: float = DEFAULT_RETRY_BASE_DELAY_S,
    ) -> "LabelStudioClient":
        """A client for ``settings.url`` with its key, timeout and retry count."""
        return cls(
            settings.url,
            settings.api_key,
            timeout_s=settings.timeout_s,
            retries=settings.retries,
            retry_base_delay_s=retry_base_delay_s,
        )

    @property
    def sdk(self) -> LabelStudio:
        """The underlying SDK client (no retries, no error mapping): an escape hatch."""
        return self._ls

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "LabelStudioClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelStudioClient(url={self.url!r})"

    # -- error handling ---------------------------------------------------------------------
    def _call(self, action: str, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run one SDK call with retries and error mapping (see the module docstring)."""
        return call_with_retries(
            action,
            fn,
            url=self.url,
            retries=self.retries,
            retry_base_delay_s=self.retry_base_delay_s,
            idempotent=idempotent,
        )

    def _pages(
        self, action: str, fetch: Callable[[int], Any], page_size: int = PAGE_SIZE
    ) -> list[Any]:
        """Every item of a page-numbered SDK list; each page is one retried call.

        ``fetch(page)`` returns the SDK pager of that page (1-based); only its first page
        (``.items``) and ``.response`` are read, so the SDK never fetches pages on its own.
        """
        return all_pages(action, fetch, self._call, page_size)

    def _find_or_create(
        self, action: str, find: Callable[[], int | None], create: Callable[[], Any]
    ) -> int:
        """``find()``, else the id of ``create()``; when the create's reply is lost
        (:class:`LabelStudioMaybeApplied`), look again before creating again, so a lost reply
        never leaves two of a thing."""
        attempt = 0
        while True:
            found = find()
            if found is not None:
                return found
            try:
                return int(self._call(action, create, idempotent=False).id)
            except LabelStudioMaybeApplied as exc:
                if attempt >= self.retries:
                    raise
                log.warning("%s: reply lost (%s); looking before creating again", action, exc)
                attempt += 1

    # -- server ------------------------------------------------------------------------------
    def check(self) -> dict[str, Any]:
        """Fail fast unless the server answers and accepts the key.

        Returns:
            The authenticated user (``id``, ``email``, ...).

        Raises:
            LabelStudioUnavailable: unreachable or failing server (after retries).
            LabelStudioAuthError: the key is refused.
        """
        return _dump(self._call("check", lambda: self._ls.users.whoami()))

    # -- projects ----------------------------------------------------------------------------
    def find_project(self, title: str) -> int | None:
        """Id of the project with exactly this title (the oldest if several), else None."""
        projects = self._pages(
            f"find project {title!r}",
            lambda p: self._ls.projects.list(title=title, page=p, page_size=PAGE_SIZE),
        )
        ids = sorted(int(pr.id) for pr in projects if pr.title == title)
        if len(ids) > 1:
            log.warning("%d projects titled %r; using the oldest, id %d", len(ids), title, ids[0])
        return ids[0] if ids else None

    def ensure_project(self, title: str, label_config: str) -> int:
        """Id of the project titled ``title``, creating it with ``label_config`` if missing.

        An existing project is reused as it is (its label config is not changed).
        """
        project_id = self._find_or_create(
            f"create project {title!r}",
            lambda: self.find_project(title),
            lambda: self._ls.projects.create(title=title, label_config=label_config),
        )
        log.info("Label Studio project %r is id %s", title, project_id)
        return project_id

    def get_project(self, project_id: int) -> dict[str, Any]:
        """The project as a dict (``title``, ``label_config``, ``task_number``, ...)."""
        return _dump(self._call(f"get project {project_id}",
                                lambda: self._ls.projects.get(project_id)))

    def update_project(self, project_id: int, **fields: Any) -> None:
        """PATCH project fields (``model_version``, ``show_collab_predictions``,
        ``label_config``, ...); safe to repeat."""
        self._call(f"update project {project_id} ({', '.join(sorted(fields))})",
                   lambda: self._ls.projects.update(project_id, **fields))

    def set_prelabel_model(self, project_id: int, model_version: str) -> None:
        """Make ``model_version``'s predictions the ones Label Studio prefills tasks with
        (the project's ``model_version``, with predictions shown to annotators)."""
        self.update_project(project_id, model_version=model_version, show_collab_predictions=True)

    def delete_project(self, project_id: int, *, missing_ok: bool = True) -> None:
        """Delete a project and its tasks; a missing one is fine unless ``missing_ok=False``."""
        try:
            self._call(f"delete project {project_id}",
                       lambda: self._ls.projects.delete(project_id))
        except LabelStudioRequestError as exc:
            if not (missing_ok and exc.status_code == 404):
                raise

    # -- storage -----------------------------------------------------------------------------
    def ensure_local_storage(
        self, project_id: int, path: Path, document_root: Path, *, title: str | None = None
    ) -> int:
        """Id of a local-files import storage of the project on ``path``, created if missing.

        The storage is what lets the server serve ``/data/local-files/?d=...`` URLs under
        ``path`` to the project. Tasks are imported by :meth:`import_tasks`, never by syncing it.

        Args:
            path: an existing folder, a strict SUBFOLDER of ``document_root``.
            document_root: the server's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``.

        Raises:
            ValueError: ``path`` is the document root, outside it, or not a folder.
        """
        folder = check_storage_path(path, document_root)
        if not folder.is_dir():
            raise ValueError(f"local storage path {folder} must be an existing folder; it is not")

        def find() -> int | None:
            storages = self._call(
                f"list local storages of project {project_id}",
                lambda: self._ls.import_storage.local.list(project=project_id),
            )
            for storage in storages:
                if storage.path and Path(storage.path).resolve() == folder:
                    return int(storage.id)
            return None

        return self._find_or_create(
            f"create local storage {folder} for project {project_id}",
            find,
            lambda: self._ls.import_storage.local.create(
                project=project_id,
                path=str(folder),
                title=title or f"labelwise:{folder.name}",
                use_blob_urls=True,
                recursive_scan=True,
            ),
        )

    # -- tasks -------------------------------------------------------------------------------
    def import_tasks(
        self, project_id: int, tasks: Sequence[Mapping[str, Any]], *,
        key: str | None = None, chunk_size: int = IMPORT_CHUNK_SIZE,
    ) -> TaskImport:
        """Bulk-import tasks (with inline ``predictions``), one request per ``chunk_size`` tasks.

        Args:
            tasks: dicts with a ``data`` dict (``{"image": url, ...}``) and optionally
                ``predictions``: ``[{"model_version", "score", "result": [...]}]``.
            key: a ``data`` field unique per task (``"image_id"``): the import is then
                exactly-once, reconciled by that key when a reply is lost
                (:mod:`labelwise.labelstudio.task_import`). Without a key a lost reply raises
                :class:`LabelStudioMaybeApplied`, never a blind re-send.

        Returns:
            The new task ids in the order of ``tasks``, and what was reconciled.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
        for i, task in enumerate(tasks):
            if not isinstance(task.get("data"), Mapping):
                raise ValueError(f"tasks[{i}] must have a 'data' dict; got keys {sorted(task)}")
        if key is not None:
            return import_keyed(self, project_id, tasks, key, chunk_size)
        ids: list[int] = []
        for chunk in chunks(list(tasks), chunk_size):
            ids.extend(self.import_chunk(project_id, chunk))
        return TaskImport(ids)

    def import_chunk(self, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> list[int]:
        """One import request; its new task ids. Never re-sent after a lost reply
        (:class:`LabelStudioMaybeApplied`); prefer :meth:`import_tasks` with a ``key``."""
        response = self._call(
            f"import {len(tasks)} tasks into project {project_id}",
            lambda: self._ls.projects.import_tasks(
                # The SDK sends plain dicts as they are; its stub names only ImportApiRequest models.
                project_id, request=[dict(t) for t in tasks], return_task_ids=True,  # type: ignore[misc]
            ),
            idempotent=False,
        )
        got = _dump(response).get("task_ids")
        if got is None or len(got) != len(tasks):
            raise LabelStudioRequestError(
                f"import into project {project_id} at {self.url}: expected {len(tasks)} task "
                f"ids; got {None if got is None else len(got)}",
                status_code=200,
                body=_dump(response),
            )
        return [int(t) for t in got]

    def delete_tasks(self, project_id: int, task_ids: Sequence[int]) -> None:
        """Delete tasks (and anything on them) in one Data Manager action; ids already gone are
        ignored, so a repeat is harmless."""
        if not task_ids:
            return
        selected = {"all": False, "included": [int(t) for t in task_ids]}
        self._call(
            f"delete {len(task_ids)} task(s) of project {project_id}",
            lambda: self._ls.actions.create(id="delete_tasks", project=project_id,
                                            selected_items=selected),  # type: ignore[arg-type]
        )

    def list_tasks(
        self, project_id: int, fields: str = "all", *, view_id: int | None = None,
        page_size: int = PAGE_SIZE,
    ) -> list[dict[str, Any]]:
        """Every task of the project (or of one Data Manager view), all pages.

        Args:
            fields: ``"all"`` (with ``annotations`` and ``predictions``) or ``"task_only"``.
            view_id: restrict to the tasks a view's filters select, in its ordering.
        """
        tasks = self._pages(
            f"list tasks of project {project_id}",
            lambda p: self._ls.tasks.list(
                project=project_id, view=view_id, fields=fields, page=p, page_size=page_size
            ),
            page_size,
        )
        return [_dump(t) for t in tasks]

    def update_task_data(self, task_id: int, data: Mapping[str, Any]) -> None:
        """Replace the ``data`` of one task (e.g. a reused task from an interrupted round)."""
        self._call(f"update data of task {task_id}",
                   lambda: self._ls.tasks.update(str(task_id), data=dict(data)))

    # -- annotations -------------------------------------------------------------------------
    def task_annotations(self, task_id: int) -> list[dict[str, Any]]:
        """The annotations of one task (each with ``result``, ``was_cancelled``, ...)."""
        found = self._call(f"list annotations of task {task_id}",
                           lambda: self._ls.annotations.list(task_id))
        return [_dump(a) for a in found]

    def create_annotation(
        self,
        task_id: int,
        result: Sequence[Mapping[str, Any]],
        was_cancelled: bool = False,
        *,
        ground_truth: bool = False,
        lead_time: float | None = None,
    ) -> dict[str, Any]:
        """Submit an annotation as the key's user (e.g. a simulated annotator).

        Args:
            result: regions as from :func:`~labelwise.labelstudio.boxes.yolo_to_ls_result`.
            lead_time: seconds the annotator spent, if known.

        Returns:
            The created annotation (with its ``id``).
        """
        kwargs: dict[str, Any] = {
            "result": [dict(r) for r in result],
            "was_cancelled": was_cancelled,
            "ground_truth": ground_truth,
        }
        if lead_time is not None:
            kwargs["lead_time"] = lead_time
        created = self._call(
            f"create annotation on task {task_id}",
            lambda: self._ls.annotations.create(task_id, **kwargs),
            idempotent=False,
        )
        return _dump(created)

    # -- Data Manager views ------------------------------------------------------------------
    def list_views(self, project_id: int) -> list[dict[str, Any]]:
        """The Data Manager tabs of the project."""
        views = self._call(f"list views of project {project_id}",
                           lambda: self._ls.views.list(project=project_id))
        return [_dump(v) for v in views]

    def ensure_view(
        self,
        project_id: int,
        title: str,
        field: str,
        value: str | int | float,
        *,
        ordering: Sequence[str] = ("tasks:predictions_score",),
        numbers: Sequence[str] = (),
        hidden: Sequence[str] = (),
    ) -> int:
        """Id of the Data Manager tab ``title`` that shows tasks whose ``data.<field>`` equals
        ``value``; created, or its filter/ordering/column types updated, as needed.

        Args:
            field: a key of the tasks' ``data`` (e.g. ``"group"``).
            ordering: Data Manager ordering, default lowest prediction score first.
            numbers: ``data`` keys shown, filtered and sorted as numbers (Label Studio types
                every task data column as text unless the tab's ``columnsDisplayType`` says
                ``Number``; sorting ``data.<key>`` is numeric only then).
            hidden: task columns the tab hides (``inner_id``, ``annotations_results``,
                ``data.<key>``, ...), in the table and in the labelling view's task list.
        """
        kind = "String" if isinstance(value, str) else "Number"
        data = {
            "title": title,
            "filters": {
                "conjunction": "and",
                "items": [{
                    "filter": f"filter:tasks:data.{field}",
                    "operator": "equal",
                    "type": kind,
                    "value": value,
                }],
            },
            "ordering": list(ordering),
            "columnsDisplayType": {f"tasks:data.{key}": "Number" for key in numbers},
        }
        compared: tuple[str, ...] = ("filters", "ordering", "columnsDisplayType")
        if hidden:
            columns = [f"tasks:{c}" for c in hidden]
            data["hiddenColumns"] = {"explore": columns, "labeling": columns}
            compared += ("hiddenColumns",)

        def find() -> int | None:
            for view in self.list_views(project_id):
                current = view.get("data") or {}
                if current.get("title") != title:
                    continue
                if any(_view_value(current, k) != _view_value(data, k) for k in compared):
                    self._call(
                        f"update view {view['id']} of project {project_id}",
                        functools.partial(self._ls.views.update, str(view["id"]), project=project_id,
                                          data={**current, **data}),
                    )
                return int(view["id"])
            return None

        return self._find_or_create(
            f"create view {title!r} in project {project_id}",
            find,
            lambda: self._ls.views.create(project=project_id, data=data),
        )

    # -- webhooks ----------------------------------------------------------------------------
    def ensure_webhook(
        self,
        project_id: int,
        url: str,
        actions: Sequence[str],
        headers: Mapping[str, str] | None = None,
    ) -> int:
        """Id of the project's webhook to ``url``; created once, then reused (its actions and
        headers brought up to date).

        Args:
            actions: e.g. ``["ANNOTATION_CREATED", "ANNOTATION_UPDATED"]``.
            headers: sent with every call (e.g. a shared secret).
        """
        wanted_headers = dict(headers or {})

        def find() -> int | None:
            hooks = self._call(f"list webhooks of project {project_id}",
                               lambda: self._ls.webhooks.list(project=str(project_id)))
            for hook in hooks:
                if hook.url != url or hook.project is None or int(hook.project) != project_id:
                    continue
                if (sorted(hook.actions or []) != sorted(actions)
                        or dict(hook.headers or {}) != wanted_headers or not hook.is_active
                        or not hook.send_payload):
                    self._call(
                        f"update webhook {hook.id}",
                        functools.partial(
                            self._ls.webhooks.update, int(hook.id), url=url, actions=list(actions),
                            headers=wanted_headers, is_active=True, send_payload=True,
                            send_for_all_actions=False,
                        ),
                    )
                return int(hook.id)
            return None

        return self._find_or_create(
            f"create webhook {url} for project {project_id}",
            find,
            lambda: self._ls.webhooks.create(
                url=url, project=project_id, actions=list(actions), headers=wanted_headers,
                send_payload=True, send_for_all_actions=False, is_active=True,
            ),
        )

    def list_webhooks(self, project_id: int) -> list[dict[str, Any]]:
        """The webhooks of the project."""
        hooks = self._call(f"list webhooks of project {project_id}",
                           lambda: self._ls.webhooks.list(project=str(project_id)))
        return [_dump(h) for h in hooks if h.project is not None and int(h.project) == project_id]
