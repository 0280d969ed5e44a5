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


@pytest.mark.parametrize("task", ["detect", "classify", "segment"])
def test_a_projects_task_type_is_stored_and_fixed_at_creation(catalog, task):
    from labelwise.task_types import TaskType

    made = catalog.create_project("p", ["cat", "dog"], task_type=task)
    assert made.task_type is TaskType(task) and catalog.project("p").task_type is TaskType(task)
    assert catalog.create_project("p", ["cat", "dog"], task_type=TaskType(task)) == made
    other = next(t for t in ("detect", "classify") if t != task)
    with pytest.raises(CatalogError, match=rf"project 'p' exists as a '{task}' project; got task type "
                                           rf"'{other}' \(a project's task type is fixed at creation"):
        catalog.create_project("p", ["cat", "dog"], task_type=other)


def test_the_default_task_is_detection_and_unknown_tasks_are_refused(catalog):
    from labelwise.task_types import TaskType

    assert catalog.create_project("p", ["a"]).task_type is TaskType.DETECT
    with pytest.raises(CatalogError, match=r"unknown task type 'pose'; expected one of "
                                           r"\['detect', 'classify', 'segment'\]"):
        catalog.create_project("q", ["a"], task_type="pose")
    assert [p.name for p in catalog.projects()] == ["p"]


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


def test_packed_predictions_stream_the_unlabelled_images_in_chunks(catalog, image_dir):
    from labelwise.catalog.models import PredictionRow

    project = catalog.create_project("p", ["a", "b", "c"])
    catalog.add_images(project, image_dir)
    ids = catalog.image_ids(project)
    assert ids == [img.image_id for img in catalog.images(project)]
    items = [(image_id, _dets(k % 4, seed=k)) for k, image_id in enumerate(ids)]
    catalog.save_predictions(project, "v1", items)
    catalog.save_predictions(project, "v2", items[:1])
    catalog.mark_queued(project, {ids[0]: 7}, round_number=0, group="al")
    chunks = list(catalog.packed_predictions(project, "v1", ImageStatus.UNLABELLED, chunk=2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    packed = [(i, c) for chunk in chunks for i, c in zip(chunk.image_ids, np.split(
        chunk.probs, chunk.offsets[1:-1]), strict=True)]
    assert [i for i, _ in packed] == ids[1:] == catalog.image_ids(project, ImageStatus.UNLABELLED)
    for (image_id, probs), (_, want) in zip(packed, items[1:], strict=True):
        np.testing.assert_array_equal(probs, want.probs)
    with catalog.session() as s, s.begin():  # a corrupt blob: half a probability row
        row = s.query(PredictionRow).filter_by(image_id=ids[3], model_version="v1").one()
        row.probs = row.probs[:-4]
    with pytest.raises(CatalogError, match="stored predictions of model version 'v1' are corrupt"):
        list(catalog.packed_predictions(project, "v1", ImageStatus.UNLABELLED))


def test_mask_stabilities_ride_with_predictions(catalog, image_dir):
    """A segmentation model's per-instance stabilities are stored with its boxes and read back by
    ``predictions`` and ``packed_predictions``; images stored without any (earlier predictions,
    other models) read as None / NaN, and a corrupt blob is named."""
    from labelwise.catalog.models import PredictionRow

    project = catalog.create_project("p", ["a", "b"], task_type="segment")
    ids = catalog.add_images(project, image_dir).added[:3]
    probs = np.array([[0.1, 0.9], [0.7, 0.3]], np.float32)
    seg = Detections(np.array([[1, 1, 5, 5], [2, 3, 5, 6]], np.float32), np.array([0.9, 0.4]),
                     np.array([1, 0]), probs, np.array([0.25, 1.0], np.float32))
    plain = Detections(seg.xyxy[:1], seg.confidence[:1], seg.class_id[:1], probs[:1])
    catalog.save_predictions(project, "v", [(ids[0], seg), (ids[1], plain), (ids[2], Detections.empty(2))])
    back = catalog.predictions(project, "v", ids)
    np.testing.assert_array_equal(back[ids[0]].mask_stability, np.float32([0.25, 1.0]))
    assert back[ids[1]].mask_stability is None
    (packed,) = catalog.packed_predictions(project, "v", ImageStatus.UNLABELLED)
    by_image = dict(zip(packed.image_ids, np.split(packed.mask_stability, packed.offsets[1:-1]), strict=True))
    np.testing.assert_array_equal(by_image[ids[0]], np.float32([0.25, 1.0]))
    assert np.isnan(by_image[ids[1]]).all() and by_image[ids[2]].shape == (0,)
    with catalog.session() as s, s.begin():  # a corrupt blob: one stability for two boxes
        row = s.query(PredictionRow).filter_by(image_id=ids[0], model_version="v").one()
        row.mask_stability = row.mask_stability[:4]
    with pytest.raises(CatalogError, match="stored predictions of model version 'v' are corrupt"):
        list(catalog.packed_predictions(project, "v", ImageStatus.UNLABELLED))


def test_id_lists_longer_than_one_query_holds_are_read_in_chunks(catalog, image_dir, monkeypatch):
    import labelwise.catalog.base as base

    monkeypatch.setattr(base.in_chunks, "__defaults__", (2,))
    project = catalog.create_project("p", ["a"])
    catalog.add_images(project, image_dir)
    ids = catalog.image_ids(project)
    vecs = np.eye(len(ids), 4, dtype=np.float32)
    catalog.save_embeddings(project, "e", ids, vecs)
    catalog.save_predictions(project, "v", [(i, Detections.empty(1)) for i in ids])
    assert sorted(catalog.embeddings(project, "e", ids)) == sorted(ids)
    assert sorted(catalog.predictions(project, "v", ids + ["nope"])) == sorted(ids)
    assert catalog.embedding_dim(project, "e") == 4 and catalog.embedding_dim(project, "x") is None


@pytest.mark.parametrize("shard", [False, True], ids=["whole-project", "shard"])
def test_pending_images_are_what_auto_label_still_has_to_do(catalog, image_dir, shard):
    project = catalog.create_project("p", ["a"])
    catalog.add_images(project, image_dir)
    ids = catalog.image_ids(project)  # 6 images
    catalog.mark_queued(project, {ids[0]: 1}, round_number=0, group="al")  # not predicted again
    catalog.save_predictions(project, "v", [(ids[1], Detections.empty(1)), (ids[0], Detections.empty(1))])
    catalog.save_embeddings(project, "e", [ids[1], ids[2]], np.eye(2, 4))
    wanted = ids[:4] if shard else None
    chunks = list(catalog.pending_images(project, "v", "e", wanted, chunk=2))
    got = {p.record.image_id: (p.needs_prediction, p.needs_embedding) for c in chunks for p in c}
    expected = {ids[0]: (False, True), ids[2]: (True, False), ids[3]: (True, True)}
    if not shard:
        expected |= {ids[4]: (True, True), ids[5]: (True, True)}
    assert got == expected
    assert all(len(c) <= 2 for c in chunks)
    assert [p.record.image_id for c in chunks for p in c] == sorted(expected)
    no_embedder = {p.record.image_id for c in catalog.pending_images(project, "v", None, wanted) for p in c}
    assert no_embedder == {i for i, (pred, _) in expected.items() if pred}
    counts = catalog.pending_counts(project, "v", wanted)
    assert (counts.unlabelled, counts.already_predicted) == ((3, 1) if shard else (5, 1))


def test_pending_images_can_be_stored_page_by_page_while_they_stream(catalog, image_dir):
    """Auto-label stores each page before it reads the next: no image comes twice or is missed,
    and a page that failed (nothing stored for it) is not read again in the same pass."""
    project = catalog.create_project("p", ["a"])
    catalog.add_images(project, image_dir)
    ids = catalog.image_ids(project)  # 6 images
    seen: list[str] = []
    for n, page in enumerate(catalog.pending_images(project, "v", "e", chunk=2)):
        page_ids = [p.record.image_id for p in page]
        seen += page_ids
        if n == 1:
            continue  # this page's images "failed": stored nothing
        catalog.save_predictions(project, "v", [(i, Detections.empty(1)) for i in page_ids])
        catalog.save_embeddings(project, "e", page_ids, np.eye(len(page_ids), 4))
    assert seen == sorted(ids)
    left = [p.record.image_id for c in catalog.pending_images(project, "v", "e") for p in c]
    assert left == sorted(ids)[2:4]
    with pytest.raises(ValueError, match="chunk must be >= 1; got 0"):
        next(catalog.pending_images(project, "v", "e", chunk=0))


def _square(x: float, y: float, side: float):
    from labelwise.masks import Polygon

    return Polygon(np.array([[x, y], [x + side, y], [x + side, y + side], [x, y + side]], np.float32))


def test_instance_outlines_are_stored_with_predictions_and_labels(catalog, image_dir):
    """A segmentation model's outlines ride with its predictions, a segmentation label's with its
    box rows: one outline per row, same classes, read back in pixels of the image."""
    from labelwise.masks import ImageSegments, SegmentInstance

    project = catalog.create_project("p", ["a", "b"], task_type="segment")
    ids = catalog.add_images(project, image_dir).added
    img = catalog.image(project, ids[0])
    segs = ImageSegments(img.width, img.height, (SegmentInstance(1, _square(1, 1, 4)),
                                                  SegmentInstance(0, _square(2, 3, 3))))
    det = Detections(np.array([[1, 1, 5, 5], [2, 3, 5, 6]], np.float32), np.array([0.9, 0.4]),
                     np.array([1, 0]), np.array([[0.1, 0.9], [0.7, 0.3]]))
    plain = Detections.empty(2)
    assert catalog.save_predictions(project, "v", [(ids[0], det), (ids[1], plain)], {ids[0]: segs}) == 2
    back = catalog.prediction_segments(project, "v", ids[:2])
    assert list(back) == [ids[0]]  # the image without outlines is left out
    assert back[ids[0]].class_ids.tolist() == [1, 0]
    for got, want in zip(back[ids[0]].instances, segs.instances):
        np.testing.assert_allclose(got.polygon.points, want.polygon.points, atol=1e-4 * max(img.width, img.height))

    rows = np.array([[1, 0.5, 0.5, 0.2, 0.2], [0, 0.4, 0.4, 0.1, 0.1]])
    catalog.save_labels(project, {ids[0]: rows, ids[1]: rows[:0]}, "review", segments={ids[0]: segs})
    labelled = catalog.label_segments(project)
    assert list(labelled) == [ids[0]] and labelled[ids[0]].class_ids.tolist() == [1, 0]
    catalog.save_labels(project, {ids[0]: rows}, "review")  # a new label without outlines replaces them
    assert catalog.label_segments(project) == {}


def test_outlines_that_do_not_match_the_box_rows_are_refused(catalog, image_dir):
    from labelwise.masks import ImageSegments, SegmentInstance

    project = catalog.create_project("p", ["a", "b"], task_type="segment")
    ids = catalog.add_images(project, image_dir).added
    segs = ImageSegments(16, 16, (SegmentInstance(0, _square(1, 1, 4)),))
    rows = np.array([[1, 0.5, 0.5, 0.2, 0.2]])
    with pytest.raises(CatalogError, match=rf"label of image {ids[0]}: outlines must match the box rows one "
                                           r"to one; expected classes \[1\], got \[0\]"):
        catalog.save_labels(project, {ids[0]: rows}, "review", segments={ids[0]: segs})
    assert catalog.labels(project) == {}  # nothing stored
    det = Detections.empty(2)
    with pytest.raises(CatalogError, match="expected classes \\[\\], got \\[0\\]"):
        catalog.save_predictions(project, "v", [(ids[0], det)], {ids[0]: segs})
    assert catalog.predictions(project, "v") == {}
