"""The HTTP contract in-process (ASGI, TestClient) on a real yaml-built YOLO (random weights,
imgsz 96): auth 401/403, every bad input a 4xx naming its field, ids never leaving the image
store, and a schemathesis run over the published OpenAPI schema asserting no 5xx and that every
status answered is documented for its operation (bounded: a few examples per operation and
mode). Label Studio is never reached (delivery is a no-op here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from labelwise.config import DetectorSettings, EmbedderSettings, Settings
from labelwise.runtime import open_catalog
from labelwise.serving import ServingSettings, create_app
from labelwise.serving.auth import create_api_key
from tests.conftest import write_png

CLASSES = ["0", "1", "2"]
MAX_UPLOAD = 64 * 1024


@dataclass
class Served:
    app: Any
    client: TestClient
    key: str  # project "digits"
    other_key: str  # project "other" only
    all_key: str  # --all
    pool_ids: list[str]
    image: bytes  # a real PNG, not in the pool

    def truncated(self) -> bytes:
        return self.image[:-300]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("schema")
    cfg = Settings(
        state_dir=root / "state",
        detector=DetectorSettings(model="yolov8n.yaml", imgsz=96, batch=4),
        embedder=EmbedderSettings(kind="detector"),
    )
    catalog = open_catalog(cfg)
    project = catalog.create_project("digits", CLASSES)
    catalog.create_project("other", CLASSES)
    pool_ids = catalog.add_images(
        project, [write_png(root / "pool" / f"{i}.png", seed=i) for i in range(2)]
    ).added
    key, _ = create_api_key(catalog, ["digits"])
    other_key, _ = create_api_key(catalog, ["other"])
    all_key, _ = create_api_key(catalog, [], all_projects=True)
    serving = ServingSettings(
        project="digits",
        model="yolov8n.yaml",
        routing_threshold=1.0,
        poll_interval_s=0,
        max_upload_bytes=MAX_UPLOAD,
    )
    app = create_app(cfg, serving, catalog=catalog, deliver=lambda item: None)
    with TestClient(
        app
    ) as client:  # runs the lifespan: model loaded, worker started (no-op delivery)
        warm = client.get(
            "/v1/rounds",
            params={"project_id": "digits"},  # creates the MLflow store once
            headers={"Authorization": f"Bearer {key}"},
        )
        assert warm.status_code == 200, warm.text
        yield Served(
            app,
            client,
            key,
            other_key,
            all_key,
            pool_ids,
            write_png(root / "field" / "x.png", seed=99).read_bytes(),
        )
    catalog.close()


@pytest.mark.faults
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_input_gives_a_server_error(served, mode):
    """Every operation, schema-valid (positive) and schema-violating (negative) inputs."""
    app, key = served.app, served.key
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    failures: list[str] = []
    undocumented: set[str] = set()
    seen: dict[str, set[int]] = {}
    paths = app.openapi()["paths"]
    for result in api.get_all_operations():
        operation = result.ok()
        documented = set(paths[operation.path][operation.method.lower()]["responses"])

        @given(case=operation.as_strategy(generation_mode=generation))
        @settings(
            max_examples=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case) -> None:
            if mode == "positive":  # reach past the access check: name the served project
                for part in (case.query, case.body, case.path_parameters):
                    if isinstance(part, dict):
                        part.update({k: "digits" for k in ("project_id", "project") if k in part})
            response = case.call(headers={"Authorization": f"Bearer {key}"}, timeout=120)
            seen.setdefault(operation.label, set()).add(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{operation.label}: {response.status_code} {response.text[:300]}")
            if str(response.status_code) not in documented and "default" not in documented:
                undocumented.add(f"{operation.label}: {response.status_code} (documented: "
                                 f"{sorted(documented)}) {response.text[:120]}")

        try:
            check()
        except Unsatisfiable:  # nothing to violate (an operation without inputs)
            assert mode == "negative", operation.label
    assert not failures, "\n".join(failures)
    assert not undocumented, "responses missing from /openapi.json:\n" + "\n".join(
        sorted(undocumented))
    assert len(seen) >= (10 if mode == "positive" else 8), seen
    print({label: sorted(codes) for label, codes in seen.items()})


def test_schema_lists_every_endpoint(served):
    app = served.app
    paths = set(app.openapi()["paths"])
    assert {
        "/v1/predict",
        "/v1/label/score-batch",
        "/v1/thumbnails/{image_id}",
        "/v1/labeling/auto",
        "/v1/labeling/auto/{run_id}",
        "/v1/assignments/queue",
        "/v1/rounds",
        "/v1/admin/reload",
        "/v1/serving/stats",
        "/healthz",
    } <= paths
    assert app.openapi()["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"


# ------------------------------------------------------------------------------- auth
@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/v1/predict", {"files": {"file": ("x.png", b"x", "image/png")}}),
        ("GET", "/v1/label/score-batch?project_id=digits", {}),
        ("GET", "/v1/rounds?project_id=digits", {}),
        ("GET", "/v1/serving/stats?project_id=digits", {}),
        ("POST", "/v1/admin/reload?project_id=digits", {}),
        (
            "POST",
            "/v1/assignments/queue",
            {"json": {"project_id": "digits", "image_ids": ["0" * 16]}},
        ),
        ("POST", "/v1/labeling/auto", {"json": {"project_id": "digits"}}),
    ],
)
@pytest.mark.parametrize(
    ("auth", "status"),
    [
        (None, 401),
        ("Bearer lw_000000000000_" + "x" * 43, 401),
        ("Basic dXNlcjpwYXNz", 401),
        ("other", 403),
    ],
    ids=["none", "unknown-key", "basic", "other-project"],
)
def test_auth(served, method, path, kwargs, auth, status):
    headers = (
        {}
        if auth is None
        else {"Authorization": f"Bearer {served.other_key}" if auth == "other" else auth}
    )
    response = served.client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"


# ------------------------------------------------------------------------------- bad inputs
def _file(make: Callable[[Served], bytes]) -> Callable[[Served], dict[str, Any]]:
    return lambda d: {"files": {"file": ("x.png", make(d), "image/png")}}


def _json(make: Callable[[Served], dict[str, Any]]) -> Callable[[Served], dict[str, Any]]:
    return lambda d: {"json": make(d)}


NO_BODY: Callable[[Served], dict[str, Any]] = lambda d: {}  # noqa: E731
SB, TH, AUTO, ASSIGN = (
    "/v1/label/score-batch?project_id=digits",
    "/v1/thumbnails/",
    "/v1/labeling/auto",
    "/v1/assignments/queue",
)
# fmt: off
BAD_INPUTS = [  # id, method, path, body, key ("key": project key, "all": --all key), status, field
    ("predict-not-an-image", "POST", "/v1/predict", _file(lambda d: b"%PDF-1.4 no image"),
     "key", 422, "file"),
    ("predict-truncated", "POST", "/v1/predict", _file(lambda d: d.truncated()),
     "key", 422, "file"),
    ("predict-too-large", "POST", "/v1/predict", _file(lambda d: b"\0" * (2 * MAX_UPLOAD)),
     "key", 413, "file"),
    ("predict-just-over-cap", "POST", "/v1/predict", _file(lambda d: b"\0" * (MAX_UPLOAD + 9)),
     "key", 413, "file"),
    ("predict-no-file", "POST", "/v1/predict", lambda d: {"data": {"project": "digits"}},
     "key", 422, "file"),
    ("predict-unknown-project", "POST", "/v1/predict?project=nope", _file(lambda d: d.image),
     "all", 404, "project"),
    ("score-unknown-project", "GET", SB.replace("digits", "nope"), NO_BODY,
     "all", 404, "project_id"),
    ("score-unknown-strategy", "GET", SB + "&strategy=best", NO_BODY, "key", 422, "strategy"),
    ("score-limit-zero", "GET", SB + "&limit=0", NO_BODY, "key", 422, "limit"),
    ("score-limit-huge", "GET", SB + "&limit=100000", NO_BODY, "key", 422, "limit"),
    ("score-limit-text", "GET", SB + "&limit=ten", NO_BODY, "key", 422, "limit"),
    ("score-weight-high", "GET", SB + "&diversity_weight=1.5", NO_BODY,
     "key", 422, "diversity_weight"),
    ("score-weight-negative", "GET", SB + "&diversity_weight=-0.1", NO_BODY,
     "key", 422, "diversity_weight"),
    ("score-no-project", "GET", "/v1/label/score-batch", NO_BODY, "key", 422, "project_id"),
    ("thumb-malformed-id", "GET", TH + "etc-passwd?project_id=digits", NO_BODY,
     "key", 422, "image_id"),
    ("thumb-uppercase-id", "GET", TH + "0123456789ABCDEF?project_id=digits", NO_BODY,
     "key", 422, "image_id"),
    ("thumb-unknown-id", "GET", TH + "0123456789abcdef?project_id=digits", NO_BODY,
     "key", 404, "image_id"),
    ("assign-unknown-ids", "POST", ASSIGN,
     _json(lambda d: {"project_id": "digits", "image_ids": ["0123456789abcdef"]}),
     "key", 404, "image_ids"),
    ("assign-malformed-id", "POST", ASSIGN,
     _json(lambda d: {"project_id": "digits", "image_ids": ["../../x"]}),
     "key", 422, "image_ids"),
    ("assign-empty", "POST", ASSIGN, _json(lambda d: {"project_id": "digits", "image_ids": []}),
     "key", 422, "image_ids"),
    ("assign-unknown-project", "POST", ASSIGN,
     _json(lambda d: {"project_id": "nope", "image_ids": d.pool_ids[:1]}),
     "all", 404, "project_id"),
    ("auto-foreign-model-path", "POST", AUTO,
     _json(lambda d: {"project_id": "digits", "model": "/etc/evil.pt"}), "key", 422, "model"),
    ("auto-model-escape", "POST", AUTO,
     _json(lambda d: {"project_id": "digits", "model": "../../evil.pt"}), "key", 422, "model"),
    ("auto-unknown-project", "POST", AUTO, _json(lambda d: {"project_id": "nope"}),
     "all", 404, "project_id"),
    ("auto-status-unknown", "GET", AUTO + "/" + "a" * 32, NO_BODY, "key", 404, "run_id"),
    ("auto-status-malformed", "GET", AUTO + "/xyz", NO_BODY, "key", 422, "run_id"),
    ("rounds-unknown-project", "GET", "/v1/rounds?project_id=nope", NO_BODY,
     "all", 404, "project_id"),
    ("predict-two-files", "POST", "/v1/predict",
     lambda d: {"files": [("file", ("a.png", d.image, "image/png")),
                          ("file", ("b.png", d.image, "image/png"))]}, "key", 422, "file"),
    ("reload-project-key", "POST", "/v1/admin/reload?project_id=digits", NO_BODY,
     "key", 403, "needs an all-projects API key"),
    ("stats-project-key", "GET", "/v1/serving/stats?project_id=digits", NO_BODY,
     "key", 403, "needs an all-projects API key"),
]
# fmt: on


@pytest.mark.parametrize(
    ("method", "path", "build", "who", "status", "field"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
@pytest.mark.faults
def test_bad_inputs_are_4xx_naming_the_field(served, method, path, build, who, status, field):
    key = served.all_key if who == "all" else served.key
    response = served.client.request(
        method, path, headers={"Authorization": f"Bearer {key}"}, **build(served)
    )
    assert response.status_code == status, response.text
    assert field in response.text, response.text


@pytest.mark.parametrize(
    "path",
    [
        "/v1/thumbnails/..%2F..%2F..%2Fetc%2Fpasswd",
        "/v1/thumbnails/%2e%2e",
        "/v1/thumbnails/..%5c..%5cwin.ini",
    ],
)
@pytest.mark.faults
def test_ids_never_reach_paths_outside_the_store(served, path):
    response = served.client.get(
        path, params={"project_id": "digits"}, headers={"Authorization": f"Bearer {served.key}"}
    )
    assert response.status_code in (404, 422), response.text
    assert "root:" not in response.text and response.headers["content-type"] == "application/json"
