"""Semi-supervised rounds: the pseudo-label rule (pure) and a learn round that trains on reviewed
plus pseudo-labelled images without ever storing a pseudo-label as a label."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from labelwise.config import DetectorSettings, Settings, TrainingSettings
from labelwise.detector import EvalResult
from labelwise.domain import Detections, ImageStatus
from labelwise.pseudo_labels import PseudoLabelRule, PseudoLabelSet, pseudo_label_image, select_pseudo_labels

NUM_CLASSES = 3
SIZE = (100, 80)  # (width, height) in pixels of every synthetic image


def dets(*boxes: tuple[float, float, float, float, float, int], num_classes: int = NUM_CLASSES) -> Detections:
    """Detections from ``(x1, y1, x2, y2, confidence, class)`` tuples (pixels), one-hot probs."""
    if not boxes:
        return Detections.empty(num_classes)
    arr = np.asarray(boxes, dtype=np.float64)
    cls = arr[:, 5].astype(np.int64)
    return Detections(arr[:, :4], arr[:, 4], cls, np.eye(num_classes)[cls])


def box(conf: float, cls: int = 0, x: float = 10.0) -> tuple[float, float, float, float, float, int]:
    return (x, 10.0, x + 20.0, 40.0, conf, cls)


# ------------------------------------------------------------------------------------------
# The rule, one image at a time
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "boxes", "rule", "kept_conf", "why"), [
    ("confident image kept", [box(0.9), box(0.8, 1, 50)], PseudoLabelRule(), [0.9, 0.8], None),
    ("box at the threshold kept", [box(0.5)], PseudoLabelRule(), [0.5], None),
    ("faint box below the band ignored", [box(0.9), box(0.1, 2, 50)], PseudoLabelRule(), [0.9], None),
    ("box in the uncertain band drops the image", [box(0.9), box(0.3, 1, 50)], PseudoLabelRule(), None, "uncertain"),
    ("box at the band floor is uncertain", [box(0.9), box(0.25, 1, 50)], PseudoLabelRule(), None, "uncertain"),
    ("only a band box", [box(0.4)], PseudoLabelRule(), None, "uncertain"),
    ("only faint boxes = empty", [box(0.1), box(0.2, 1, 50)], PseudoLabelRule(), None, "empty"),
    ("no boxes = empty", [], PseudoLabelRule(), None, "empty"),
    ("band_floor == threshold disables the band", [box(0.9), box(0.3, 1, 50)],
     PseudoLabelRule(threshold=0.5, band_floor=0.5), [0.9], None),
    ("higher threshold", [box(0.7)], PseudoLabelRule(threshold=0.8, band_floor=0.6), None, "uncertain"),
])
def test_rule_per_image(case, boxes, rule, kept_conf, why):
    d = dets(*boxes)
    kept = pseudo_label_image(d, rule)
    chosen = select_pseudo_labels({"a": d}, {"a": SIZE}, (), 10, rule)
    if kept_conf is None:
        assert kept is None, case
        assert chosen.images == 0
        assert (chosen.dropped_uncertain, chosen.dropped_empty) == ((1, 0) if why == "uncertain" else (0, 1)), case
    else:
        assert kept is not None and np.allclose(kept.confidence, kept_conf), case
        assert chosen.images == 1 and chosen.boxes == len(kept_conf), case
        assert chosen.labels[0].boxes.shape == (len(kept_conf), 5)
        assert chosen.labels[0].confidence == pytest.approx(min(kept_conf), abs=1e-6)
    assert chosen.candidates == 1 and chosen.capped == 0


def test_excluded_images_are_never_pseudo_labelled():
    predictions = {i: dets(box(0.95)) for i in ("labelled", "queued", "free")}
    chosen = select_pseudo_labels(predictions, dict.fromkeys(predictions, SIZE), {"labelled", "queued"}, 10,
                                  PseudoLabelRule())
    assert [p.image_id for p in chosen.labels] == ["free"]
    assert chosen.candidates == 1  # excluded images are not even candidates


# ------------------------------------------------------------------------------------------
# The cap: floor(cap x reviewed) images, most confident first (least confident kept box),
# ties by image id
# ------------------------------------------------------------------------------------------
CONFIDENCES = {"a": 0.6, "b": 0.99, "c": 0.8, "d": 0.8, "e": 0.7}


@pytest.mark.parametrize(("cap", "reviewed", "expected", "capped"), [
    (1.0, 2, ["b", "c"], 3),
    (1.0, 3, ["b", "c", "d"], 2),          # c and d tie at 0.8: by id
    (0.5, 3, ["b"], 4),                    # floor(1.5) = 1
    (2.0, 2, ["b", "c", "d", "e"], 1),
    (10.0, 5, ["b", "c", "d", "e", "a"], 0),
    (0.0, 5, [], 5),                       # cap 0 gives none
    (1.0, 0, [], 5),                       # nothing reviewed, nothing pseudo-labelled
])
def test_cap_keeps_the_most_confident_first(cap, reviewed, expected, capped):
    predictions = {i: dets(box(c), box(0.99, 1, 50)) for i, c in CONFIDENCES.items()}
    chosen = select_pseudo_labels(predictions, dict.fromkeys(predictions, SIZE), (), reviewed,
                                  PseudoLabelRule(cap=cap))
    assert [p.image_id for p in chosen.labels] == expected
    assert (chosen.images, chosen.capped, chosen.candidates) == (len(expected), capped, 5)
    assert chosen.boxes == 2 * len(expected)
    metrics = chosen.as_metrics()
    assert metrics["pseudo/images"] == len(expected) and metrics["pseudo/capped"] == capped


@pytest.mark.parametrize(("xyxy", "size", "row"), [
    # inside: plain normalisation, (cls, cx, cy, w, h)
    ((10, 20, 30, 60), (100, 80), (2, 0.2, 0.5, 0.2, 0.5)),
    # crossing the left and bottom edges: clipped to [0, 100] x [0, 80] first
    ((-10, 40, 30, 100), (100, 80), (2, 0.15, 0.75, 0.3, 0.5)),
    # larger than the image on every side: the whole image
    ((-5, -5, 70, 50), (64, 48), (2, 0.5, 0.5, 1.0, 1.0)),
])
def test_boxes_become_normalised_yolo_rows_clipped_to_the_image(xyxy, size, row):
    d = dets((*xyxy, 0.9, 2))
    chosen = select_pseudo_labels({"a": d}, {"a": size}, (), 1, PseudoLabelRule())
    rows = chosen.labels[0].boxes
    assert rows.shape == (1, 5)
    assert np.allclose(rows[0], row)
    assert ((rows[:, 1:] >= 0) & (rows[:, 1:] <= 1)).all()


@pytest.mark.parametrize(("make", "message"), [
    (lambda: PseudoLabelRule(threshold=0.0), r"threshold must lie in \(0, 1\]; got 0.0"),
    (lambda: PseudoLabelRule(threshold=1.5), r"threshold must lie in \(0, 1\]; got 1.5"),
    (lambda: PseudoLabelRule(band_floor=-0.1), r"band_floor must lie in \[0, threshold 0.5\]; got -0.1"),
    (lambda: PseudoLabelRule(threshold=0.5, band_floor=0.6), r"band_floor must lie in \[0, threshold 0.5\]; got 0.6"),
    (lambda: PseudoLabelRule(cap=-1.0), r"cap must be >= 0 images per reviewed image; got -1.0"),
    (lambda: PseudoLabelRule(cap=float("nan")), r"cap must be >= 0 .*; got nan"),
    (lambda: select_pseudo_labels({}, {}, (), -1, PseudoLabelRule()), r"reviewed_images must be >= 0; got -1"),
    (lambda: select_pseudo_labels({"a": dets(box(0.9))}, {}, (), 1, PseudoLabelRule()),
     r"sizes lacks image 'a'; expected \(width, height\)"),
])
def test_validation_errors_say_expected_and_got(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ------------------------------------------------------------------------------------------
# Settings
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("values", "message"), [
    ({"pseudo_threshold": 0.5, "pseudo_band_floor": 0.6}, r"pseudo_band_floor must be <= pseudo_threshold \(0.5\); got 0.6"),
    ({"pseudo_threshold": 0.0}, "pseudo_threshold"),
    ({"pseudo_threshold": 1.2}, "pseudo_threshold"),
    ({"pseudo_band_floor": -0.1}, "pseudo_band_floor"),
    ({"pseudo_cap": -1}, "pseudo_cap"),
])
def test_training_settings_refuse_bad_pseudo_rules(values, message):
    with pytest.raises(ValidationError, match=message):
        TrainingSettings(**values)


def test_pseudo_labels_are_on_by_default_and_the_rule_follows_the_settings(monkeypatch):
    from labelwise.config import load_settings
    from labelwise.demo_project import demo_settings

    assert TrainingSettings().pseudo_labels is True  # chosen from the pool benchmark's tables
    monkeypatch.delenv("LABELWISE_CONFIG", raising=False)
    monkeypatch.delenv("LABELWISE_TRAINING__PSEUDO_LABELS", raising=False)
    assert demo_settings(load_settings()).training.pseudo_labels is True
    monkeypatch.setenv("LABELWISE_TRAINING__PSEUDO_LABELS", "false")
    assert demo_settings(load_settings()).training.pseudo_labels is False  # the demo takes the override
    monkeypatch.setenv("LABELWISE_TRAINING__PSEUDO_LABELS", "true")
    monkeypatch.setenv("LABELWISE_TRAINING__PSEUDO_CAP", "0.5")
    demo = demo_settings(load_settings())
    assert demo.training.pseudo_labels is True
    assert demo.training.pseudo_rule() == PseudoLabelRule(threshold=0.5, band_floor=0.25, cap=0.5)
    rule = TrainingSettings(pseudo_threshold=0.7, pseudo_band_floor=0.3, pseudo_cap=2).pseudo_rule()
    assert rule == PseudoLabelRule(0.7, 0.3, 2.0)
    assert rule.as_params() == {"pseudo/threshold": 0.7, "pseudo/band_floor": 0.3, "pseudo/cap": 2.0}


# ------------------------------------------------------------------------------------------
# A learn round with pseudo-labels, in a real sqlite catalog
# ------------------------------------------------------------------------------------------
CLASS_NAMES = [str(i) for i in range(10)]
MODEL_VERSION = "digits-v1-0123456789"


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from labelwise.datasets import DigitsConfig, generate_digits

    return generate_digits(tmp_path_factory.mktemp("digits"),
                           DigitsConfig(pool_images=10, val_images=2, test_images=2, canvas_min=64,
                                        canvas_max=80, digit_size_max=32))


@pytest.fixture
def capture_train(monkeypatch) -> list[dict[str, Any]]:
    """Every YoloDetector.train call's data yaml and keyword arguments; instead of training it
    saves the untouched model as the run's best.pt, so the round finishes."""
    from labelwise.detector import TrainResult, YoloDetector

    calls: list[dict[str, Any]] = []

    def fake_train(self, data_yaml, out_dir, name="train", **kwargs):
        calls.append({"data_yaml": Path(data_yaml), **kwargs})
        run_dir = Path(out_dir) / name
        return TrainResult(self.save(run_dir / "weights" / "best.pt"), 0.0, kwargs["epochs"], run_dir)

    monkeypatch.setattr(YoloDetector, "train", fake_train)
    return calls


def _truth(digits, stem: str) -> np.ndarray:
    from labelwise.datasets import read_yolo_labels

    return read_yolo_labels(digits.pool_truth / f"{stem}.txt")


def _truth_detections(digits, record, conf: float, extra_conf: float | None = None) -> Detections:
    """The image's true boxes as the model's predictions (pixel xyxy) at ``conf``, plus one more
    box at ``extra_conf`` when given."""
    from labelwise.labelstudio.boxes import yolo_to_xyxy

    rows = _truth(digits, record.path.stem)
    xyxy = yolo_to_xyxy(rows[:, 1:], record.width, record.height)
    cls = rows[:, 0].astype(np.int64)
    confidence = np.full(len(rows), conf)
    if extra_conf is not None:
        xyxy = np.vstack([xyxy, [[1.0, 1.0, 9.0, 9.0]]])
        cls = np.append(cls, 0)
        confidence = np.append(confidence, extra_conf)
    return Detections(xyxy, confidence, cls, np.eye(len(CLASS_NAMES))[cls])


def _project(settings: Settings, digits, roles: dict[int, str], predict: bool = True):
    """A digits project in the settings' sqlite catalog. ``roles``: pool index (sorted by file
    name) -> labelled | queued | rejected | confident | uncertain | empty | none; labelled
    images get their true labels, every role but ``none`` a stored prediction (labelled,
    queued and rejected ones confident, so only the exclusion keeps them out) unless
    ``predict`` is False."""
    from labelwise.catalog import Catalog

    catalog = Catalog.open(settings.resolved_catalog_url)
    project = catalog.create_project("p", CLASS_NAMES)
    catalog.add_images(project, digits.pool_images)
    project = catalog.set_holdout(project, digits.data_yaml, "test")
    records = sorted(catalog.images(project), key=lambda r: r.path.name)
    by_role: dict[str, list] = {}
    for index, role in roles.items():
        by_role.setdefault(role, []).append(records[index])
    catalog.save_labels(project, {r.image_id: _truth(digits, r.path.stem) for r in by_role.get("labelled", [])},
                        source="test")
    catalog.set_status(project, [r.image_id for r in by_role.get("queued", [])], ImageStatus.QUEUED)
    catalog.set_status(project, [r.image_id for r in by_role.get("rejected", [])], ImageStatus.REJECTED)
    conf = {"labelled": (0.95, None), "queued": (0.95, None), "rejected": (0.95, None),
            "confident": (0.9, None), "uncertain": (0.9, 0.3), "empty": (0.1, None)}
    items = [(r.image_id, _truth_detections(digits, r, *conf[role]))
             for role, recs in by_role.items() if role in conf for r in recs]
    if predict:
        catalog.save_predictions(project, MODEL_VERSION, items)
    return catalog, project, by_role


def _written(data_yaml: Path) -> dict[str, np.ndarray]:
    """image stem -> (N, 5) label rows of a written training set."""
    import yaml

    data = yaml.safe_load(data_yaml.read_text())
    labels = Path(data["train"]).parent / "labels"
    out = {}
    for image in sorted(Path(data["train"]).iterdir()):
        text = (labels / f"{image.stem}.txt").read_text().split()
        out[image.stem] = np.asarray(text, dtype=np.float64).reshape(-1, 5)
    return out


ROLES = {0: "labelled", 1: "labelled", 2: "labelled", 3: "labelled", 4: "queued", 5: "rejected",
         6: "confident", 7: "confident", 8: "uncertain", 9: "empty"}


def _settings(tmp_path: Path, **training: Any) -> Settings:
    recipe = {"epochs": 1, "min_image_passes": 12, "batch": 4, **training}
    return Settings(state_dir=tmp_path / "state", detector=DetectorSettings(imgsz=32),
                    training=TrainingSettings(**recipe))


@pytest.mark.parametrize(("training", "predictions", "pseudo_ids", "reason"), [
    ({"pseudo_labels": True}, True, ["confident"], None),
    ({"pseudo_labels": True, "pseudo_cap": 0.25}, True, ["confident"], None),  # cap: 1 of 2
    ({"pseudo_labels": True}, False, [], "no predictions stored"),
    ({"pseudo_labels": False}, True, [], None),
])
def test_learn_round_trains_on_reviewed_plus_pseudo_labels(tmp_path, digits, capture_train, training,
                                                           predictions, pseudo_ids, reason):
    from labelwise.labelstudio.boxes import detections_to_yolo
    from labelwise.learn import retrain

    settings = _settings(tmp_path, **training)
    catalog, project, by_role = _project(settings, digits, ROLES, predict=predictions)
    try:
        result = retrain(settings, catalog, project, 1, "yolov8n.yaml")
        stored_labels = catalog.labels(project)
        counts = catalog.status_counts(project)
        stored = catalog.predictions(project, MODEL_VERSION)
    finally:
        catalog.close()

    (call,) = capture_train
    written = _written(call["data_yaml"])
    reviewed = {r.image_id: _truth(digits, r.path.stem) for r in by_role["labelled"]}
    expected_pseudo = [r for role in pseudo_ids for r in by_role[role]]
    if training.get("pseudo_cap") == 0.25:  # floor(0.25 x 4) = 1: the more confident, ties by id
        expected_pseudo = sorted(expected_pseudo, key=lambda r: r.image_id)[:1]
    assert set(written) == set(reviewed) | {r.image_id for r in expected_pseudo}
    for image_id, rows in reviewed.items():  # reviewed labels, not the (confident) predictions
        assert np.allclose(written[image_id], rows, atol=1e-5)
    for r in expected_pseudo:
        assert np.allclose(written[r.image_id], detections_to_yolo(stored[r.image_id].above(0.5), r.width, r.height),
                           atol=1e-5)

    # no pseudo-label became a label; no image changed status
    assert set(stored_labels) == set(reviewed)
    assert counts == {"unlabelled": 4, "queued": 1, "rejected": 1, "labelled": 4}

    # epochs follow the reviewed images: ceil(12 passes / 4 reviewed) = 3, whatever the pseudo count
    assert call["epochs"] == 3 and call["batch"] == 4
    pseudo_boxes = sum(len(written[r.image_id]) for r in expected_pseudo)
    assert result.labelled_images == 4
    assert result.labelled_boxes == sum(len(v) for v in reviewed.values())
    assert sum(result.class_box_counts.values()) == result.labelled_boxes
    assert (result.pseudo_labels, result.pseudo_images, result.pseudo_boxes) == (
        training["pseudo_labels"], len(expected_pseudo), pseudo_boxes)
    assert result.pseudo["pseudo/images"] == len(expected_pseudo)
    assert result.pseudo["pseudo/boxes"] == pseudo_boxes
    assert result.pseudo["pseudo/threshold"] == 0.5 and result.pseudo["pseudo/cap"] == training.get("pseudo_cap", 1.0)
    if training["pseudo_labels"] and predictions:
        assert result.pseudo["pseudo/candidates"] == 4  # the unlabelled ones with predictions
        assert result.pseudo["pseudo/dropped_uncertain"] == 1 and result.pseudo["pseudo/dropped_empty"] == 1
        assert result.pseudo["pseudo/capped"] == 2 - len(expected_pseudo)
        assert result.pseudo_model_version == MODEL_VERSION
        sheet = Path(result.pseudo_sheet)
        assert sheet == settings.state_dir / "reports" / "p" / "round-1-pseudo.png"
        assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert result.pseudo_sheet is None
    if reason:
        assert reason in result.pseudo_reason
    elif not training["pseudo_labels"]:
        assert result.pseudo_reason is None and result.pseudo_model_version is None
    json.dumps(result.as_dict())  # crosses the task boundary as a plain dict


class FakeTracker:
    """What track_round hands MLflow, in memory."""

    from labelwise.evaluation import DETECT_SCHEME as scheme  # the project's metric names

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.metrics: dict[str, float] = {}
        self.artifacts: dict[str, str] = {}

    def ensure_campaign(self, name, params):
        return "parent"

    def start_round(self, parent, number, params):
        self.params.update(params)
        return "child"

    def log_metrics(self, run_id, metrics, step):
        if run_id == "child":
            self.metrics.update(metrics)

    def log_artifact(self, run_id, path, artifact_path=None):
        self.artifacts[artifact_path] = str(path)

    def round_metrics(self):
        return [{"metrics": {"labelled_images": 4.0, "mAP50-95": 0.2}, "status": "FINISHED"}]

    def register_weights(self, run_id, weights):
        return "1"

    def end_run(self, run_id, status="FINISHED"):
        pass


EVALUATION = EvalResult("test", precision=0.5, recall=0.4, map50=0.3, map50_95=0.2, seconds=1.0)


@pytest.mark.parametrize("pseudo_labels", [True, False])
def test_every_round_records_the_pseudo_rule_and_counts(tmp_path, digits, capture_train, monkeypatch, pseudo_labels):
    from labelwise import learn

    settings = _settings(tmp_path, pseudo_labels=pseudo_labels)
    catalog, project, _ = _project(settings, digits, ROLES)
    try:
        retrained = learn.retrain(settings, catalog, project, 1, "yolov8n.yaml").as_dict()
    finally:
        catalog.close()
    tracker = FakeTracker()
    monkeypatch.setattr(learn, "tracker_for", lambda *_a, **_k: tracker)
    stored = learn.RetrainResult.from_dict(json.loads(json.dumps(retrained)))  # as a summary reads back
    learn.track_round(settings, project, 1, "c", {"strategy": "random"}, stored, EVALUATION)

    assert tracker.params["pseudo_labels"] == ("on" if pseudo_labels else "off")
    assert (tracker.params["pseudo/threshold"], tracker.params["pseudo/band_floor"],
            tracker.params["pseudo/cap"]) == (0.5, 0.25, 1.0)
    for key in ("pseudo/threshold", "pseudo/band_floor", "pseudo/cap"):
        assert key not in tracker.metrics  # the rule is a param, not a metric
    expected = {"pseudo/images": 2, "pseudo/boxes": retrained["pseudo_boxes"], "pseudo/candidates": 4,
                "pseudo/dropped_uncertain": 1, "pseudo/dropped_empty": 1, "pseudo/capped": 0}
    if not pseudo_labels:
        expected = dict.fromkeys(expected, 0)
    assert {k: v for k, v in tracker.metrics.items() if k.startswith("pseudo/")} == expected
    assert tracker.metrics["labelled_images"] == 4
    if pseudo_labels:
        assert tracker.params["pseudo/model_version"] == MODEL_VERSION
        assert tracker.artifacts["pseudo"] == retrained["pseudo_sheet"]
    else:
        assert "pseudo/model_version" not in tracker.params and "pseudo" not in tracker.artifacts


def test_a_retrained_dict_from_before_pseudo_labels_still_tracks():
    from labelwise.learn import RetrainResult, pseudo_tracking

    old = {"weights": "w.pt", "model_version": "v", "base_model": "b", "seconds": 1.0, "epochs": 1,
           "labelled_images": 4, "labelled_boxes": 9, "class_box_counts": {}}
    assert pseudo_tracking(RetrainResult.from_dict(old)) == ({"pseudo_labels": "off"}, {})


@pytest.mark.parametrize("data, message", [
    ({"weights": "w.pt"}, r"missing \['base_model', 'epochs', 'labelled_boxes', 'labelled_images', "
                          r"'model_version', 'seconds'\], unknown \[\]"),
    ({"weights": "w.pt", "model_version": "v", "base_model": "b", "seconds": 1.0, "epochs": 1,
      "labelled_images": 4, "labelled_boxes": 9, "mAP": 0.3}, r"missing \[\], unknown \['mAP'\]"),
], ids=["missing", "unknown"])
def test_a_retrained_dict_that_is_not_one_says_what_is_wrong(data, message):
    from labelwise.learn import RetrainResult

    with pytest.raises(ValueError, match=message):
        RetrainResult.from_dict(data)


def test_extra_images_may_not_repeat_a_reviewed_image(tmp_path, digits):
    from labelwise.training import LabelledImage, build_training_set

    settings = _settings(tmp_path)
    catalog, project, by_role = _project(settings, digits, ROLES)
    try:
        reviewed = by_role["labelled"][0]
        clash = LabelledImage(reviewed.image_id, reviewed.path, np.zeros((0, 5)))
        with pytest.raises(ValueError, match=rf"expected unique names outside the 4 reviewed ids, got \['{reviewed.image_id}'\]"):
            build_training_set(catalog, project, tmp_path / "ts", extra=[clash])
        free = by_role["confident"][0]
        twice = [LabelledImage(free.image_id, free.path, np.zeros((0, 5)))] * 2
        with pytest.raises(ValueError, match=free.image_id):
            build_training_set(catalog, project, tmp_path / "ts", extra=twice)
    finally:
        catalog.close()


@pytest.mark.slow
def test_a_real_tiny_semi_supervised_round(tmp_path, digits):
    """4 reviewed + 2 pseudo images, imgsz 32, one epoch, through learn.retrain."""
    from labelwise.learn import retrain

    settings = _settings(tmp_path, pseudo_labels=True, min_image_passes=0, batch=2)
    roles = {0: "labelled", 1: "labelled", 2: "labelled", 3: "labelled", 6: "confident", 7: "confident"}
    catalog, project, _ = _project(settings, digits, roles)
    try:
        result = retrain(settings, catalog, project, 1, "yolov8n.yaml")
        assert set(catalog.labels(project)) == {r.image_id for r in catalog.images(project, ImageStatus.LABELLED)}
        assert len(catalog.labels(project)) == 4
    finally:
        catalog.close()
    assert result.epochs == 1
    assert (result.labelled_images, result.pseudo_images) == (4, 2)
    assert result.pseudo_boxes > 0 and Path(result.weights).is_file()
