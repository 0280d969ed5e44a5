"""YOLO label files of the digits data set: writing (``cls cx cy w h`` lines, normalised,
:data:`LABEL_DECIMALS` decimals) and strict reading.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

LABEL_DECIMALS = 6


def _format_labels(boxes: np.ndarray, classes: np.ndarray, width: int, height: int) -> str:
    lines = []
    for (x0, y0, x1, y1), cls in zip(boxes.tolist(), classes.tolist()):
        cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
        bw, bh = (x1 - x0) / width, (y1 - y0) / height
        lines.append(f"{cls} {cx:.{LABEL_DECIMALS}f} {cy:.{LABEL_DECIMALS}f} "
                     f"{bw:.{LABEL_DECIMALS}f} {bh:.{LABEL_DECIMALS}f}")
    return "".join(line + "\n" for line in lines)


def read_yolo_labels(path: Path | str) -> np.ndarray:
    """Read one YOLO label file: (N, 5) float64 rows ``[cls, cx, cy, w, h]``, normalised.

    An empty (or blank-lines-only) file gives a (0, 5) array. Each line must hold exactly five
    numbers: a non-negative integer class id, then cx, cy, w, h in [0, 1] with w, h > 0.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: naming the file, the 1-based line number, what was expected and the line.
    """
    path = Path(path)
    rows: list[list[float]] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        where = f"{path}:{number}"
        parts = line.split()
        if len(parts) != 5:
            raise ValueError(
                f"{where}: expected 5 fields 'cls cx cy w h'; got {len(parts)} in {line!r}"
            )
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"{where}: expected 5 numbers 'cls cx cy w h'; got {line!r}") from None
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{where}: expected finite numbers; got {line!r}")
        cls = values[0]
        if cls < 0 or cls != int(cls):
            raise ValueError(f"{where}: expected a non-negative integer class id; got {parts[0]!r}")
        if any(not 0.0 <= v <= 1.0 for v in values[1:]):
            raise ValueError(f"{where}: expected cx, cy, w, h normalised to [0, 1]; got {line!r}")
        if values[3] <= 0 or values[4] <= 0:
            raise ValueError(f"{where}: expected box width and height > 0; got {line!r}")
        rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)
