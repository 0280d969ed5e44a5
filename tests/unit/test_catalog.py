"""The catalog on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelwise.catalog import Catalog, CatalogError, ProjectNotFound
from labelwise.domain import Detections, ImageScore, ImageStatus
from tests.conftest import BACKENDS, backend_catalog, write_png


@pytest.fixture(params=BACKENDS)
def catalog(request, tmp_path):
    """Each test of this suite on SQLite and on a real PostgreSQL server."""
    yield from backend_catalog(request, tmp_path)


def test_create_project_is_idempotent_and_guards_classes(catalog):
    a = catalog.create_project("p", ["cat", "dog"])
    assert catalog.create_project("p", ["cat", "dog"]) == a
    with pytest.raises(CatalogError, match=r"exists with classes \['cat', 'dog'\]; got \['dog'\]"):
        catalog.create_project("p", ["dog"])


@pytest.mark.parametrize(
    ("classes", "message"),
    [([], "class names must be non-empty"), (["a", "a"], "must be unique"), (["a", " "], "non-empty")],
)
def test_bad_class_names(catalog, classes, message):
    with pytest.raises(CatalogError, match=message):
        catalog.create_project("p", classes)


def test_unknown_project_names_the_known_ones(catalog):
    catalog.create_project("alpha", ["a"])
    with pytest.raises(ProjectNotFound, match=r"unknown project 'beta'; known projects: \['alpha'\]"):
        catalog.project("beta")


def test_add_images_dedups_by_content_and_skips_broken_files(catalog, image_dir):
    project = catalog.create_project("p", ["a"])
    (image_dir / "broken.png").write_bytes(b"not an image")
    truncated = image_dir / "truncated.png"
    truncated.write_bytes((image_dir / "img_0.png").read_bytes()[:200])
    (image_dir / "copy_of_0.png").write_bytes((image_dir / "img_0.png").read_bytes())
    report = catalog.add_images(project, image_dir)
    assert len(report.added) == 6
    assert len(report.existing) == 1  # the copy
    assert sorted(Path(p).name for p, _ in report.failed) == ["broken.png", "truncated.png"]
    again = catalog.add_images(project, str(image_dir / "*.png"))
    assert again.added == [] and len(again.existing) == 7
    assert catalog.status_counts(project)["unlabelled"] == 6


def test_add_images_missing_source(catalog, tmp_path):
    project = catalog.create_project("p", ["a"])
    with pytest.raises(FileNotFoundError, match="neither an image file, a folder nor a glob"):
        catalog.add_images(project, tmp_path / "nowhere")


def test_catalog_survives_reopen(tmp_path, image_dir):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    cat = Catalog.open(url)
    cat.add_images(cat.create_project("p", ["a"]), image_dir)
    cat.close()
    again = Catalog.open(url)
    assert len(again.images(again.project("p"))) == 6


def _dets(n: int, c: int = 3, seed: int = 0) -> Detections:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(c), size=n).astype(np.float32)
    return Detections(rng.random((n, 4)) * 50, rng.random(n), probs.argmax(1), probs)


def test_predictions_round_trip_and_are_not_duplicated(catalog, image_dir):
    project = catalog.create_project("p", ["a", "b", "c"])
    catalog.add_images(project, image_dir)
    ids = [img.image_id for img in catalog.images(project)]
    items = [(ids[0], _dets(4)), (ids[1], Detections.empty(3))]
    assert catalog.save_predictions(project, "v1", items) == 2
    assert catalog.save_predictions(project, "v1", items) == 0
    stored = catalog.predictions(project, "v1")
    np.testing.assert_array_equal(stored[ids[0]].probs, items[0][1].probs)
    np.testing.assert_array_equal(stored[ids[0]].xyxy, items[0][1].xyxy)
    assert len(stored[ids[1]]) == 0
    assert catalog.latest_model_version(project) == "v1"
    assert catalog.predicted_ids(project, "v1") == {ids[0], ids[1]}


def test_embeddings_round_trip(catalog, image_dir):
    project = catalog.create_project("p", ["a"])
    catalog.add_images(project, image_dir)
    ids = [img.image_id for img in catalog.images(project)]
    vecs = np.random.default_rng(0).normal(size=(len(ids), 8)).astype(np.float32)
    assert catalog.save_embeddings(project, "e", ids, vecs) == len(ids)
    assert catalog.save_embeddings(project, "e", ids, vecs) == 0
    got = catalog.embeddings(project, "e")
    np.testing.assert_array_equal(np.stack([got[i] for i in ids]), vecs)
    with pytest.raises(CatalogError, match=r"vectors must be \(2, d\) for 2 ids"):
        catalog.save_embeddings(project, "e", ids[:2], vecs)


def test_queue_and_label_state(catalog, image_dir):
    project = catalog.create_project("p", ["a"])
    catalog.add_images(project, image_dir)
    ids = [img.image_id for img in catalog.images(project)]
    catalog.mark_queued(project, {ids[0]: 11, ids[1]: 12}, round_number=0, group="al")
    queued = catalog.images(project, ImageStatus.QUEUED)
    assert {(q.image_id, q.ls_task_id, q.upload_group) for q in queued} == {(ids[0], 11, "al"), (ids[1], 12, "al")}
    catalog.save_labels(project, {ids[0]: np.array([[0, 0.5, 0.5, 0.2, 0.2]])}, source="test", round_number=0)
    assert catalog.status_counts(project) == {"unlabelled": 4, "queued": 1, "labelled": 1, "rejected": 0}
    np.testing.assert_allclose(catalog.labels(project)[ids[0]], [[0, 0.5, 0.5, 0.2, 0.2]])


def test_rounds_record_scores_and_selection(catalog, image_dir):
    project = catalog.create_project("p", ["a"])
    catalog.add_images(project, image_dir)
    ids = [img.image_id for img in catalog.images(project)]
    scores = [ImageScore(i, 0.1 * k, {"lowest_confidence": 0.1 * k}, 1) for k, i in enumerate(ids)]
    assert catalog.next_round_number(project) == 0
    catalog.record_round(project, 0, "entropy", "v1", {"limit": 2}, scores, [ids[1], ids[0]])
    info = catalog.round_info(project, 0)
    assert info["selected"] == [ids[1], ids[0]] and info["strategy"] == "entropy"
    assert catalog.next_round_number(project) == 1


def test_require_images_names_unknown_ids(catalog, image_dir):
    project = catalog.create_project("p", ["a"])
    catalog.add_images(project, image_dir)
    with pytest.raises(CatalogError, match=r"has no image\(s\) \['nope'\]"):
        catalog.require_images(project, ["nope"])


def test_failed_write_keeps_what_was_stored(catalog, image_dir, tmp_path):
    project = catalog.create_project("p", ["a"])
    catalog.add_images(project, image_dir)
    ids = [img.image_id for img in catalog.images(project)]
    catalog.save_predictions(project, "v1", [(ids[0], _dets(2, 1))])
    with pytest.raises(Exception):
        catalog.save_predictions(project, "v1", [(ids[1], _dets(2, 1)), (ids[2], "not detections")])  # type: ignore[list-item]
    assert catalog.predicted_ids(project, "v1") == {ids[0]}
    write_png(tmp_path / "new.png", seed=99)
    assert len(catalog.add_images(project, tmp_path / "new.png").added) == 1
