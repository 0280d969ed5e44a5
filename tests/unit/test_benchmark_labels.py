"""Label lines of real data sets: boxes crossing the image edge are clipped, invalid lines skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelwise.benchmark.oracle import MAX_EXAMPLES, LabelReport, Oracle, read_label_file, scan_labels

NUM_CLASSES = 10


def _write(folder: Path, stem: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.txt"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("line", "row", "clipped", "reason"),
    [
        # kept as written
        ("3 0.5 0.5 0.2 0.4", [3, 0.5, 0.5, 0.2, 0.4], False, None),
        ("3.0 0.5 0.5 1.0 1.0", [3, 0.5, 0.5, 1.0, 1.0], False, None),  # the whole image
        # centre jittered past the edge: the part inside is kept
        ("1 1.0039 0.5 0.1 0.2", [1, (0.9539 + 1.0) / 2, 0.5, 1.0 - 0.9539, 0.2], True, None),
        # half outside (left edge), and a corner outside on two sides
        ("2 0.0 0.5 0.2 0.2", [2, 0.05, 0.5, 0.1, 0.2], True, None),
        ("2 0.95 0.02 0.2 0.1", [2, 0.925, 0.035, 0.15, 0.07], True, None),
        # larger than the image
        ("0 0.5 0.5 1.5 0.5", [0, 0.5, 0.5, 1.0, 0.5], True, None),
        # rounding noise past the edge is clipped but not reported
        ("0 0.9 0.5 0.2000004 0.2", [0, 0.9, 0.5, 0.2, 0.2], False, None),
        # skipped
        ("1 0.5 0.5 0.2", None, False, "expected 5 fields 'cls cx cy w h', found 4"),
        ("1 0.5 0.5 0.2 0.2 0.7", None, False, "expected 5 fields 'cls cx cy w h', found 6"),
        ("abc", None, False, "expected 5 fields 'cls cx cy w h', found 1"),
        ("abc 0.5 0.5 0.2 0.2", None, False, "expected 5 numbers 'cls cx cy w h'"),
        ("1 nan 0.5 0.2 0.2", None, False, "expected finite numbers"),
        ("1 0.5 inf 0.2 0.2", None, False, "expected finite numbers"),
        ("10 0.5 0.5 0.2 0.2", None, False, "expected an integer class id in 0..9"),
        ("-1 0.5 0.5 0.2 0.2", None, False, "expected an integer class id in 0..9"),
        ("1.5 0.5 0.5 0.2 0.2", None, False, "expected an integer class id in 0..9"),
        ("1 0.5 0.5 -0.2 0.2", None, False, "expected width and height > 0"),
        ("1 0.5 0.5 0.2 0", None, False, "expected width and height > 0"),
        ("1 1.5 0.5 0.2 0.2", None, False, "expected a box overlapping the image, it lies entirely outside"),
        ("1 0.5 -0.3 0.2 0.2", None, False, "expected a box overlapping the image, it lies entirely outside"),
        ("1 1.1 0.5 0.2 0.2", None, False, "expected a box overlapping the image, it lies entirely outside"),
    ],
)
def test_label_line(tmp_path, line, row, clipped, reason):
    path = _write(tmp_path, "img", f"{line}\n")
    boxes, report = read_label_file(path, NUM_CLASSES)
    assert boxes.dtype == np.float64 and boxes.shape == ((1, 5) if row else (0, 5))
    if row is not None:
        np.testing.assert_allclose(boxes[0], row, atol=1e-6)
        cls, cx, cy, w, h = boxes[0]
        assert 0 <= cx - w / 2 and cx + w / 2 <= 1 and 0 <= cy - h / 2 and cy + h / 2 <= 1
        assert report == LabelReport(1, 1, int(clipped), 0, ())
    else:
        assert report == LabelReport(1, 0, 0, 1, (f"img.txt:1: {reason} (got '{line}')",))


def test_unclipped_rows_are_kept_bit_for_bit(tmp_path):
    path = _write(tmp_path, "img", "4 0.123457 0.654321 0.1 0.3\n")
    boxes, _ = read_label_file(path, NUM_CLASSES)
    assert boxes.tolist() == [[4.0, 0.123457, 0.654321, 0.1, 0.3]]


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file_has_no_boxes(tmp_path, text):
    boxes, report = read_label_file(_write(tmp_path, "img", text), NUM_CLASSES)
    assert boxes.shape == (0, 5) and report == LabelReport(1, 0, 0, 0, ())


def test_oracle_keeps_valid_lines_of_a_file_with_bad_ones(tmp_path):
    truth = tmp_path / "truth"
    _write(truth, "a", "0 0.5 0.5 0.2 0.2\n1 1.0039 0.5 0.1 0.1\nbroken\n\n2 0.3 0.3 0.1 0.1\n")
    oracle = Oracle(truth, NUM_CLASSES)
    boxes = oracle.reveal("a")
    assert boxes[:, 0].tolist() == [0, 1, 2]
    assert oracle.report() == LabelReport(1, 3, 1, 1, ("a.txt:3: expected 5 fields 'cls cx cy w h', found 1 (got 'broken')",))


def test_scan_labels_report_and_log_line(tmp_path):
    truth = tmp_path / "truth"
    _write(truth, "a", "0 0.5 0.5 0.2 0.2\n1 1.0039 0.5 0.1 0.1\n")
    _write(truth, "b", "12 0.5 0.5 0.2 0.2\n")
    _write(truth, "c", "")
    _write(truth, "unused", "bad line\n")  # not a requested stem: not read
    report = scan_labels(Oracle(truth, NUM_CLASSES), ["a", "b", "c", "no-file"])
    assert (report.files, report.boxes, report.clipped, report.skipped) == (3, 2, 1, 1)
    assert report.examples == ("b.txt:1: expected an integer class id in 0..9 (got '12 0.5 0.5 0.2 0.2')",)
    assert report.describe() == (
        "labels: 2 boxes in 3 files; clipped 1 that crossed the image edge, skipped 1 invalid lines "
        "(e.g. b.txt:1: expected an integer class id in 0..9 (got '12 0.5 0.5 0.2 0.2'))"
    )
    clean = scan_labels(Oracle(truth, NUM_CLASSES), ["c"])
    assert clean.describe() == "labels: 0 boxes in 1 files; clipped 0 that crossed the image edge, skipped 0 invalid lines"


def test_report_keeps_at_most_five_examples_and_shortens_long_lines(tmp_path):
    truth = tmp_path / "truth"
    _write(truth, "a", "x\n" * 4)
    _write(truth, "b", "y\n" * 3 + "1 " + "0.5 " * 40 + "\n")
    report = scan_labels(Oracle(truth, NUM_CLASSES), ["a", "b"])
    assert report.skipped == 8 and len(report.examples) == MAX_EXAMPLES
    assert [e.split(":")[0] for e in report.examples] == ["a.txt"] * 4 + ["b.txt"]
    long_report = read_label_file(truth / "b.txt", NUM_CLASSES)[1]
    assert long_report.examples[-1].endswith("...')") and len(long_report.examples[-1]) < 140


def test_undecodable_bytes_are_an_invalid_line(tmp_path):
    path = tmp_path / "img.txt"
    path.write_bytes(b"\xef\xbb\xbf0 0.5 0.5 0.2 0.2\n\xff\xfe 0.5 0.5 0.2 0.2\n")  # BOM, then bad bytes
    boxes, report = read_label_file(path, NUM_CLASSES)
    assert boxes.shape == (1, 5) and report.skipped == 1
