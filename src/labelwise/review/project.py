"""The Label Studio side of a Labelwise project: one LS project, its storage and its webhook.

A catalog project ``P`` maps to the Label Studio project titled ``labelwise-P`` (created once
with a RectangleLabels config of P's class names, then reused; its id is stored in the catalog),
a local-files storage on ``<state_dir>/media/<P>`` (see :mod:`labelwise.review.media`) and, when
``labelstudio.webhook_url`` is set, a webhook to it carrying the header
``X-Labelwise-Secret: <labelstudio.webhook_secret>``.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from labelwise.catalog import Catalog, ProjectRecord
from labelwise.config import Settings
from labelwise.labelstudio.errors import LabelStudioRequestError
from labelwise.labelstudio.formats import review_format
from labelwise.labelstudio.local_files import check_storage_path
from labelwise.review.media import media_dir

if TYPE_CHECKING:
    from labelwise.labelstudio.client import LabelStudioClient

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Labelwise-Secret"
WEBHOOK_ACTIONS: tuple[str, ...] = (
    "ANNOTATION_CREATED",
    "ANNOTATIONS_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_DELETED",
)
"""Label Studio webhook actions Labelwise listens to (names as in the SDK's ``ActionsEnum``)."""


def ls_title(project: ProjectRecord) -> str:
    """Title of the Label Studio project of ``project``: ``labelwise-<name>``."""
    return f"labelwise-{project.name}"


def open_client(settings: Settings) -> "LabelStudioClient":
    """A client for ``settings.labelstudio`` (close it, or use it as a context manager)."""
    from labelwise.labelstudio.client import LabelStudioClient

    return LabelStudioClient.from_settings(settings.labelstudio)


def project_url(client: "LabelStudioClient", ls_project_id: int, view_id: int | None = None) -> str:
    """The Data Manager URL of a project (of one tab when ``view_id`` is given)."""
    url = f"{client.url}/projects/{ls_project_id}/data"
    return url if view_id is None else f"{url}?tab={view_id}"


def _control_labels(info: dict[str, Any], control_type: str) -> list[str] | None:
    """The labels of the label config's first ``control_type`` control (None: it has none)."""
    parsed = info.get("parsed_label_config") or {}
    for control in parsed.values():
        if isinstance(control, dict) and control.get("type") == control_type:
            return [str(label) for label in control.get("labels") or []]
    return None


def _check_labels(info: dict[str, Any], project: ProjectRecord) -> None:
    control = review_format(project.task_type).control
    labels = _control_labels(info, control)
    names = list(project.class_names)
    if labels is None:
        raise ValueError(
            f"Label Studio project {info.get('id')} ({info.get('title')!r}) has no "
            f"{control} control; expected one with the labels {names} (a "
            f"{project.task_type.value!r} project)"
        )
    if sorted(labels) != sorted(names):
        raise ValueError(
            f"Label Studio project {info.get('id')} ({info.get('title')!r}) has labels "
            f"{sorted(labels)}; expected the classes of project {project.name!r}: {names}"
        )


def _upgrade_label_config(
    client: "LabelStudioClient", info: dict[str, Any], project: ProjectRecord
) -> None:
    """An unchanged label config written by an older Labelwise (no pick-reason header, no
    explicit hotkeys) is replaced by the current one; a config a user edited is left alone."""
    current = str(info.get("label_config") or "")
    fmt = review_format(project.task_type)
    wanted = fmt.label_config(project.class_names)
    older = re.sub(r' hotkey="[^"]*"', "", fmt.label_config(project.class_names, reason_field=None))
    if current.strip() == older.strip() and current.strip() != wanted.strip():
        log.info("Label Studio project %s: label config upgraded (pick reason shown, hotkeys)",
                 info.get("id"))
        client.update_project(int(info["id"]), label_config=wanted)


def _claim(
    client: "LabelStudioClient", catalog: Catalog, project: ProjectRecord, ls_id: int,
    created: bool,
) -> tuple[ProjectRecord, int, bool]:
    """Record ``ls_id`` as the project's Label Studio project unless another process (two
    ``queue`` commands at once) recorded its own first; then the loser deletes the empty project
    it just created and goes on with the winner's, so the project has one Label Studio project."""
    stored = catalog.claim_ls_project(project, project.ls_project_id, ls_id)
    winner = stored.ls_project_id
    if winner is None or winner == ls_id:
        return stored, ls_id, created
    if created:
        log.warning("Label Studio project %s of %r was created at the same time as %s by "
                    "another process; deleting %s and using %s", ls_id, project.name, winner,
                    ls_id, winner)
        client.delete_project(ls_id)
    return stored, int(winner), False


def ensure_in(
    client: "LabelStudioClient", settings: Settings, catalog: Catalog, project: ProjectRecord
) -> tuple[ProjectRecord, dict[str, Any]]:
    """:func:`ensure_ls_project` with an open client; returns the refreshed record too."""
    root = settings.labelstudio_document_root
    folder = media_dir(settings, project)
    check_storage_path(folder, root)  # a ValueError before any request
    ls_id = project.ls_project_id
    info: dict[str, Any] | None = None
    if ls_id is not None:
        try:
            info = client.get_project(ls_id)
        except LabelStudioRequestError as exc:
            if exc.status_code != 404:
                raise
            log.warning("Label Studio project %s of %r is gone; creating it again", ls_id,
                        project.name)
            ls_id = None
    created = False
    if ls_id is None:
        title = ls_title(project)
        existing = client.find_project(title)
        ls_id = existing if existing is not None else client.ensure_project(
            title, review_format(project.task_type).label_config(project.class_names))
        created = existing is None
        project, ls_id, created = _claim(client, catalog, project, ls_id, created)
        info = client.get_project(ls_id)
    assert info is not None
    _check_labels(info, project)
    _upgrade_label_config(client, info, project)
    if project.ls_project_id != ls_id:
        project = catalog.set_ls_project(project, ls_id)
    folder.mkdir(parents=True, exist_ok=True)
    storage_id = client.ensure_local_storage(ls_id, folder, root)
    webhook_id: int | None = None
    ls = settings.labelstudio
    if ls.webhook_url.strip():
        webhook_id = client.ensure_webhook(ls_id, ls.webhook_url.strip(), WEBHOOK_ACTIONS,
                                           {SECRET_HEADER: ls.webhook_secret})
    return project, {
        "project": project.name,
        "ls_project_id": ls_id,
        "title": info.get("title"),
        "created": created,
        "storage_id": storage_id,
        "media_dir": str(folder),
        "webhook_id": webhook_id,
        "url": project_url(client, ls_id),
    }


def ensure_ls_project(settings: Settings, catalog: Catalog, project: str) -> dict[str, Any]:
    """Create (once) or reuse the Label Studio project of ``project`` and wire it up.

    Returns:
        ``{"project", "ls_project_id", "title", "created": bool, "storage_id", "media_dir",
        "webhook_id": int | None, "url"}``.

    Raises:
        ProjectNotFound: unknown catalog project.
        ValueError: the media folder is not a strict subfolder of the Label Studio document
            root, or the existing Label Studio project has other labels than the classes.
        LabelStudioUnavailable, LabelStudioAuthError: server down or key refused.
    """
    record = catalog.project(project)
    with open_client(settings) as client:
        _, info = ensure_in(client, settings, catalog, record)
    return info
