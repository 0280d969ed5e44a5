"""Schemathesis over the published OpenAPI schema, in-process (ASGI): no input gives a 5xx.

The app serves a real yaml-built YOLO (random weights, imgsz 96); Label Studio is never reached
(the delivery worker is not started: flagged images stay in the outbox). Bounded: a handful of
examples per operation, well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str]]:
    root = tmp_path_factory.mktemp("schema")
    cfg = Settings(state_dir=root / "state",
                   detector=DetectorSettings(model="yolov8n.yaml", imgsz=96, batch=4),
                   embedder=EmbedderSettings(kind="detector"))
    catalog = open_catalog(cfg)
    project = catalog.create_project("digits", CLASSES)
    catalog.add_images(project, [write_png(root / "pool" / f"{i}.png", seed=i) for i in range(2)])
    key, _ = create_api_key(catalog, ["digits"])
    serving = ServingSettings(project="digits", model="yolov8n.yaml", evaluation_threshold=1.0,
                              poll_interval_s=0,
                              max_upload_bytes=64 * 1024)
    app = create_app(cfg, serving, catalog=catalog, deliver=lambda item: None)
    with TestClient(app):  # runs the lifespan: model loaded, worker started (deliver is a no-op)
        yield app, key
    catalog.close()


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_input_gives_a_server_error(served, mode):
    """Every operation, schema-valid (positive) and schema-violating (negative) inputs."""
    app, key = served
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    failures: list[str] = []
    seen: dict[str, set[int]] = {}
    for result in api.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=generation))
        @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        def check(case) -> None:
            if mode == "positive":  # reach past the access check: name the served project
                for part in (case.query, case.body, case.path_parameters):
                    if isinstance(part, dict):
                        part.update({k: "digits" for k in ("project_id", "project") if k in part})
            response = case.call(headers={"Authorization": f"Bearer {key}"})
            seen.setdefault(operation.label, set()).add(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{operation.label}: {response.status_code} {response.text[:300]}")

        try:
            check()
        except Unsatisfiable:  # nothing to violate (an operation without inputs)
            assert mode == "negative", operation.label
    assert not failures, "\n".join(failures)
    assert len(seen) >= (10 if mode == "positive" else 8), seen
    print({label: sorted(codes) for label, codes in seen.items()})


def test_schema_lists_every_endpoint(served):
    app, _ = served
    paths = set(app.openapi()["paths"])
    assert {"/v1/predict", "/v1/label/score-batch", "/v1/thumbnails/{image_id}", "/v1/labeling/auto",
            "/v1/labeling/auto/{run_id}", "/v1/assignments/queue", "/v1/rounds", "/v1/admin/reload",
            "/v1/serving/stats", "/healthz"} <= paths
    assert app.openapi()["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
