"""Catalog operations on projects: create, look up, link to Label Studio, fix the holdout set."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from labelwise.catalog.base import CatalogMixin
from labelwise.catalog.models import ProjectRow
from labelwise.catalog.records import (
    CatalogError,
    ProjectNotFound,
    ProjectRecord,
    _project_record,
)
from labelwise.task_types import TaskType


class ProjectsMixin(CatalogMixin):
    """Projects of :class:`~labelwise.catalog.Catalog`."""

    def create_project(self, name: str, class_names: Sequence[str],
                       task_type: TaskType | str = TaskType.DETECT) -> ProjectRecord:
        """Create a project; the same call again returns it, other classes or another task type
        are refused (also when two processes create it at the same instant). The task type is
        fixed here for the project's life (:mod:`labelwise.task_types`)."""
        try:
            task = TaskType.parse(task_type)
        except ValueError as exc:
            raise CatalogError(str(exc)) from None
        names = [str(c).strip() for c in class_names]
        if not name.strip():
            raise CatalogError("project name must not be empty")
        if not names or any(not c for c in names):
            raise CatalogError(f"class names must be non-empty strings; got {list(class_names)}")
        if len(set(names)) != len(names):
            raise CatalogError(f"class names must be unique; got {names}")
        for attempt in range(2):
            try:
                with self.session() as s, s.begin():
                    row = s.scalar(select(ProjectRow).where(ProjectRow.name == name))
                    if row is not None:
                        if list(row.class_names) != names:
                            raise CatalogError(
                                f"project {name!r} exists with classes {row.class_names}; "
                                f"got {names}"
                            )
                        if row.task_type != task.value:
                            raise CatalogError(
                                f"project {name!r} exists as a {row.task_type!r} project; got "
                                f"task type {task.value!r} (a project's task type is fixed at "
                                "creation: create a new project for another task)"
                            )
                    else:
                        row = ProjectRow(name=name, class_names=names, task_type=task.value)
                        s.add(row)
                        s.flush()
                    return _project_record(row)
            except IntegrityError:  # created by another process at the same instant: read it
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def project(self, name: str) -> ProjectRecord:
        with self.session() as s:
            row = s.scalar(select(ProjectRow).where(ProjectRow.name == name))
            if row is None:
                known = s.scalars(select(ProjectRow.name).order_by(ProjectRow.name)).all()
                raise ProjectNotFound(
                    f"unknown project {name!r}; known projects: {list(known) or 'none'} "
                    "(create one with `labelwise project create`)"
                )
            return _project_record(row)

    def projects(self) -> list[ProjectRecord]:
        with self.session() as s:
            rows = s.scalars(select(ProjectRow).order_by(ProjectRow.name)).all()
            return [_project_record(r) for r in rows]

    def set_ls_project(self, project: ProjectRecord, ls_project_id: int) -> ProjectRecord:
        with self.session() as s, s.begin():
            s.execute(update(ProjectRow).where(ProjectRow.id == project.id).values(ls_project_id=ls_project_id))
        return self.project(project.name)

    def claim_ls_project(
        self, project: ProjectRecord, expected: int | None, ls_project_id: int
    ) -> ProjectRecord:
        """Record ``ls_project_id`` only if the project still maps to ``expected`` (None: no
        Label Studio project yet), a compare-and-set; returns the project as stored, so when two
        processes created a Label Studio project at once, both go on with the one that won."""
        with self.session() as s, s.begin():
            current = ProjectRow.ls_project_id
            s.execute(update(ProjectRow)
                      .where(ProjectRow.id == project.id,
                             current.is_(None) if expected is None else current == expected)
                      .values(ls_project_id=ls_project_id))
        return self.project(project.name)

    def set_holdout(self, project: ProjectRecord, data_yaml: Path, split: str = "test") -> ProjectRecord:
        """Fix the held-out evaluation set and the split to evaluate on: a YOLO data.yaml (a
        detection project) or a classification folder holding ``<split>/<class>/<image>``."""
        path = Path(data_yaml).expanduser().resolve()
        if project.task_type is TaskType.CLASSIFY:
            if not (path / split).is_dir():
                raise FileNotFoundError(
                    f"held-out classification folder {path / split} does not exist; expected "
                    f"{path}/{split}/<class>/<image> for the classes {list(project.class_names)}")
        elif not path.is_file():
            raise FileNotFoundError(f"held-out data yaml {path} does not exist")
        with self.session() as s, s.begin():
            s.execute(update(ProjectRow).where(ProjectRow.id == project.id)
                      .values(holdout_yaml=str(path), holdout_split=split))
        return self.project(project.name)
