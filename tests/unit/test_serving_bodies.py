"""Bodies of fields as JSON or form, and the project inferred from the key or the image ids.

The real app under uvicorn on 127.0.0.1 (real HTTP through ``requests``, the client a user
would write), a real SQLite catalog with three projects:

* ``alpha``: images A1, A2 and S; ``beta``: images B1 and S (the same bytes, so the same id);
  ``gamma``: empty.
* keys: ``alpha`` only, ``alpha`` + ``beta``, all projects.

Auto-label runs record what they were asked and return at once (no model is loaded); an
assignment of images without stored predictions stops at the 409 that names the project it
was resolved to, before Label Studio, so every outcome here shows which project was used.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from labelwise.perf.serving import serve_in_thread
from labelwise.config import Settings
from labelwise.images import content_id
from labelwise.runtime import open_catalog
from labelwise.serving import ServingSettings, create_app
from labelwise.serving.auth import create_api_key
from labelwise.serving.bodies import ACCEPTED_TYPES
from labelwise.serving.jobs import AutoLabelJobs
from tests.conftest import write_png

AUTO, ASSIGN = "/v1/labeling/auto", "/v1/assignments/queue"
UNKNOWN_ID = "0123456789abcdef"


@dataclass
class Served:
    base: str
    keys: dict[str, dict[str, str]]  # "alpha", "alpha+beta", "all" -> Authorization headers
    ids: dict[str, str]  # "A1", "A2", "B1", "S" -> image id
    runs: list[tuple[str, str | None]]  # (project, model) of every auto-label run started
    jobs: AutoLabelJobs

    def post(self, path: str, who: str, headers: dict[str, str] | None = None,
             **kwargs: Any) -> requests.Response:
        """POST with ``who``'s key (plus ``headers``)."""
        sent = {**self.keys[who], **(headers or {})}
        response = requests.post(f"{self.base}{path}", headers=sent, timeout=30, **kwargs)
        self.jobs.join(timeout_s=10)  # a finished run frees the project for the next request
        return response


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("bodies")
    cfg = Settings(state_dir=root / "state")
    catalog = open_catalog(cfg)
    alpha = catalog.create_project("alpha", ["a", "b"])
    beta = catalog.create_project("beta", ["a", "b"])
    catalog.create_project("gamma", ["a", "b"])
    files = {name: write_png(root / "pool" / f"{name}.png", seed=i)
             for i, name in enumerate(["A1", "A2", "B1", "S"])}
    catalog.add_images(alpha, [files["A1"], files["A2"], files["S"]])
    catalog.add_images(beta, [files["B1"], files["S"]])
    ids = {name: content_id(path.read_bytes()) for name, path in files.items()}
    keys = {
        "alpha": create_api_key(catalog, ["alpha"])[0],
        "alpha+beta": create_api_key(catalog, ["alpha", "beta"])[0],
        "all": create_api_key(catalog, [], all_projects=True)[0],
    }
    runs: list[tuple[str, str | None]] = []

    def work(project: str, model: str | None) -> dict[str, Any]:
        runs.append((project, model))
        return {"predicted": 0}

    app = create_app(cfg, ServingSettings(poll_interval_s=0), catalog=catalog,
                     deliver=lambda item: None, preload=False)
    jobs = AutoLabelJobs(work)
    app.state.serving.jobs = jobs
    with serve_in_thread(app) as base:
        yield Served(base, {w: {"Authorization": f"Bearer {k}"} for w, k in keys.items()}, ids,
                     runs, jobs)
    catalog.close()


def multipart(fields: dict[str, Any]) -> dict[str, Any]:
    """``requests`` keyword arguments sending ``fields`` as multipart/form-data text parts."""
    parts = [(name, (None, str(v)))
             for name, value in fields.items()
             for v in (value if isinstance(value, list) else [value])]
    return {"files": parts}


ENCODINGS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "json": lambda fields: {"json": fields},
    "urlencoded": lambda fields: {"data": fields},
    "multipart": multipart,
}


# ------------------------------------------------------------------------------- encodings
# fmt: off
STARTS = [  # fields, key, project the run is for, tasks of the run
    ({"project_id": "alpha", "tasks": "detect"}, "alpha", "alpha", ["detect"]),
    ({"tasks": "detect"}, "alpha", "alpha", ["detect"]),
    ({"tasks": ["detect", "detect"]}, "alpha", "alpha", ["detect"]),
    ({"project_id": "beta", "model": "yolov8n.yaml"}, "all", "beta", ["detect"]),
    ({}, "alpha", "alpha", ["detect"]),
]
# fmt: on


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize(("fields", "who", "project", "tasks"), STARTS)
def test_auto_label_starts_from_any_accepted_encoding(served, encoding, fields, who, project,
                                                      tasks):
    before = len(served.runs)
    response = served.post(AUTO, who, **ENCODINGS[encoding](fields))
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["project_id"], body["tasks"], body["model"]) == (
        project, tasks, fields.get("model"))
    assert served.runs[before:] == [(project, fields.get("model"))]
    status = requests.get(f"{served.base}{AUTO}/{body['run_id']}", headers=served.keys[who],
                          timeout=30).json()
    assert status["status"] == "completed" and status["tasks"] == tasks


def test_an_empty_body_without_content_type_is_no_fields(served):
    response = served.post(AUTO, "alpha")
    assert response.status_code == 202, response.text
    assert response.json()["project_id"] == "alpha"


# fmt: off
BAD_CONTENT = [  # id, path, requests kwargs, status, text in the detail
    ("text-plain", AUTO, {"data": b"project_id=alpha", "headers": {"Content-Type": "text/plain"}},
     415, "text/plain"),
    ("xml", ASSIGN, {"data": b"<ids/>", "headers": {"Content-Type": "application/xml"}},
     415, "application/xml"),
    ("no-content-type", ASSIGN, {"data": b'{"image_ids": ["0123456789abcdef"]}'},
     415, "none (a body without a Content-Type)"),
    ("empty-text-plain", AUTO, {"data": b"", "headers": {"Content-Type": "text/plain"}},
     415, "text/plain"),
    ("multipart-file-part", AUTO, {"files": {"project_id": ("p.txt", b"alpha", "text/plain")}},
     400, "(a file part; only POST /v1/predict takes a file); expected text fields only"),
    ("multipart-no-boundary", AUTO,
     {"data": b"x", "headers": {"Content-Type": "multipart/form-data"}}, 400, "boundary"),
    ("json-not-utf8", AUTO, {"data": b'{"a": "\xff"}',
                             "headers": {"Content-Type": "application/json"}}, 400, "UTF-8"),
]
# fmt: on


@pytest.mark.parametrize(("path", "kwargs", "status", "text"), [c[1:] for c in BAD_CONTENT],
                         ids=[c[0] for c in BAD_CONTENT])
def test_bodies_that_are_not_fields_are_refused(served, path, kwargs, status, text):
    before = len(served.runs)
    response = served.post(path, "alpha", **kwargs)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert text in detail, detail
    if status == 415:
        assert all(kind in detail for kind in ACCEPTED_TYPES), detail
    assert served.runs[before:] == []


def test_json_with_a_structured_suffix_and_charset_is_json(served):
    body = json.dumps({"tasks": "detect"}).encode()
    for kind in ("application/json; charset=utf-8", "application/vnd.labelwise+json"):
        response = served.post(AUTO, "alpha", data=body, headers={"Content-Type": kind})
        assert response.status_code == 202, (kind, response.text)


def test_malformed_json_is_fastapis_own_422(served):
    response = served.post(AUTO, "alpha", data=b'{"tasks": ',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert (error["type"], error["loc"][0], error["msg"]) == (
        "json_invalid", "body", "JSON decode error")


# ------------------------------------------------------------------------------- same errors
# fmt: off
INVALID = [  # id, path, fields, key, status, where the error is (loc or text of the detail)
    ("unknown-task", AUTO, {"project_id": "alpha", "tasks": "segment"}, "alpha", 422,
     ["body", "tasks", 0]),
    ("one-unknown-task-of-two", AUTO, {"tasks": ["detect", "track"]}, "alpha", 422,
     ["body", "tasks", 1]),
    ("empty-project", AUTO, {"project_id": ""}, "alpha", 422, ["body", "project_id"]),
    ("two-projects", AUTO, {"project_id": ["alpha", "beta"]}, "all", 422, ["body", "project_id"]),
    ("foreign-model", AUTO, {"model": "/etc/evil.pt"}, "alpha", 422, "model:"),
    ("unknown-project", AUTO, {"project_id": "nope"}, "all", 404, "project_id: unknown project"),
    ("no-access", AUTO, {"project_id": "beta"}, "alpha", 403, "no access to project 'beta'"),
    ("assign-malformed-id", ASSIGN, {"image_ids": ["../../x"]}, "alpha", 422,
     ["body", "image_ids", 0]),
    ("assign-no-ids", ASSIGN, {"project_id": "alpha"}, "alpha", 422, ["body", "image_ids"]),
    ("assign-empty-group", ASSIGN, {"image_ids": [UNKNOWN_ID], "group": ""}, "alpha", 422,
     ["body", "group"]),
    ("assign-unknown-id", ASSIGN, {"image_ids": [UNKNOWN_ID]}, "alpha", 404,
     f"image_ids: project 'alpha' has no image(s) ['{UNKNOWN_ID}']"),
]
# fmt: on


@pytest.mark.parametrize(("path", "fields", "who", "status", "where"), [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])
def test_every_encoding_gets_the_same_error(served, path, fields, who, status, where):
    answers = {name: served.post(path, who, **encode(fields))
               for name, encode in ENCODINGS.items()}
    for name, response in answers.items():
        assert response.status_code == status, (name, response.text)
    details = {name: r.json()["detail"] for name, r in answers.items()}
    assert details["urlencoded"] == details["json"] == details["multipart"], details
    detail = details["json"]
    if isinstance(where, list):
        assert where in [e["loc"] for e in detail], detail
    else:
        assert isinstance(detail, str) and where in detail, detail


def test_an_unknown_task_names_the_accepted_ones(served):
    response = served.post(AUTO, "alpha", data={"tasks": "segment"})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["input"] == "segment" and "'detect'" in error["msg"], error


# ------------------------------------------------------------------------------- inference
# fmt: off
ASSIGNED = [  # id, key, project_id sent (None: left out), image ids, status, text in the detail
    ("one-project-key", "alpha", None, ["A1"], 409, "in project 'alpha'"),
    ("one-project-key-foreign-id", "alpha", None, ["B1"], 404, "project 'alpha' has no image"),
    ("all-key-ids-of-alpha", "all", None, ["A1", "A2"], 409, "in project 'alpha'"),
    ("all-key-ids-of-beta", "all", None, ["B1"], 409, "in project 'beta'"),
    ("all-key-id-in-two-projects", "all", None, ["S"], 422,
     "every image id is in each of projects ['alpha', 'beta']; candidates: ['alpha', 'beta']"),
    ("all-key-ids-of-two-projects", "all", None, ["A1", "B1"], 422,
     "belong to several projects"),
    ("all-key-unknown-id", "all", None, [UNKNOWN_ID], 404,
     "image_ids: no project API key"),
    ("all-key-one-known-one-unknown", "all", None, ["A1", UNKNOWN_ID], 404,
     f"project 'alpha' has no image(s) ['{UNKNOWN_ID}']"),
    ("two-project-key-ids-of-beta", "alpha+beta", None, ["B1", "S"], 409, "in project 'beta'"),
    ("two-project-key-ids-of-two", "alpha+beta", None, ["A2", "B1"], 422,
     "candidates: ['alpha', 'beta']"),
    ("explicit-project-wins", "all", "beta", ["S"], 409, "in project 'beta'"),
    ("explicit-foreign-project", "alpha", "beta", ["B1"], 403, "no access to project 'beta'"),
]
# fmt: on


@pytest.mark.parametrize("encoding", ["json", "urlencoded"])
@pytest.mark.parametrize(("who", "project_id", "images", "status", "text"),
                         [c[1:] for c in ASSIGNED], ids=[c[0] for c in ASSIGNED])
def test_assignments_infer_the_project(served, encoding, who, project_id, images, status, text):
    fields: dict[str, Any] = {"image_ids": [served.ids.get(i, i) for i in images]}
    if project_id is not None:
        fields["project_id"] = project_id
    response = served.post(ASSIGN, who, **ENCODINGS[encoding](fields))
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert text in detail, detail
    field = "image_ids" if status in (404, 409) else "project_id"
    assert detail.startswith(f"{field}: "), detail


# fmt: off
STARTED = [  # id, key, project_id sent, status, project of the run / text in the detail
    ("one-project-key", "alpha", None, 202, "alpha"),
    ("all-key", "all", None, 422,
     "may use every project, so the project cannot be inferred; "
     "candidates: ['alpha', 'beta', 'gamma']"),
    ("two-project-key", "alpha+beta", None, 422,
     "may use projects ['alpha', 'beta'], so the project cannot be inferred; "
     "candidates: ['alpha', 'beta']"),
    ("all-key-explicit", "all", "gamma", 202, "gamma"),
]
# fmt: on


@pytest.mark.parametrize(("who", "project_id", "status", "expected"),
                         [c[1:] for c in STARTED], ids=[c[0] for c in STARTED])
def test_auto_label_infers_the_project_from_the_key(served, who, project_id, status, expected):
    before = len(served.runs)
    fields = {"tasks": "detect"} | ({"project_id": project_id} if project_id else {})
    response = served.post(AUTO, who, data=fields)
    assert response.status_code == status, response.text
    if status == 202:
        assert response.json()["project_id"] == expected
        assert served.runs[before:] == [(expected, None)]
    else:
        assert response.json()["detail"] == f"project_id: expected a project name: API key " \
            f"{served.keys[who]['Authorization'].split('_')[1]} {expected}"
        assert served.runs[before:] == []


# ------------------------------------------------------------------------------- schema
@pytest.mark.parametrize(("path", "required", "lists"),
                         [(AUTO, False, ["tasks"]), (ASSIGN, True, ["image_ids"])])
def test_openapi_documents_every_body_form(served, path, required, lists):
    schema = requests.get(f"{served.base}/openapi.json", timeout=30).json()
    operation = schema["paths"][path]["post"]
    body = operation["requestBody"]
    assert body["required"] is required
    assert sorted(body["content"]) == sorted(ACCEPTED_TYPES)
    schemas = [c["schema"] for c in body["content"].values()]
    assert all(s == schemas[0] for s in schemas)
    assert "project_id" in schemas[0]["properties"]
    assert "project_id" not in schemas[0].get("required", [])
    form = body["content"]["application/x-www-form-urlencoded"]
    assert sorted(form["encoding"]) == lists
    assert {"400", "415", "422"} <= set(operation["responses"])
    if path == AUTO:
        tasks = schemas[0]["properties"]["tasks"]["anyOf"]
        assert tasks[0] == {"type": "string", "enum": ["detect"]}
        assert tasks[1]["items"] == tasks[0]

