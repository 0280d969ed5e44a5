"""Pure conversions between image classification and Label Studio ``choices`` results.

A classifier's answer for one image is a (C,) probability vector; Label Studio pre-annotates the
task with the top class as one ``choices`` item (``value.choices = [name]``, ``score`` = its
probability). A reviewer's completed annotation comes back to a class index BY NAME.

No I/O here; nothing happens at import time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelwise.labelstudio.label_config import label_hotkeys, quoteattr
from labelwise.labelstudio.polygons import check_class_names

CHOICES_TYPE = "choices"


@dataclass(frozen=True)
class TopClass:
    """The model's answer for one image.

    Attributes:
        class_id: index of the most probable class (the first one on a tie).
        score: its probability in [0, 1].
    """

    class_id: int
    score: float


def top_class(probs: Any) -> TopClass:
    """The most probable class of a (C,) probability vector (C >= 1, finite, each in [0, 1]).

    Raises:
        ValueError: a vector that is not 1-D, empty, non-finite or outside [0, 1].
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"probs must be a non-empty (C,) vector; got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"probs must be finite and in [0, 1]; got {p.tolist()}")
    cid = int(np.argmax(p))
    return TopClass(cid, float(p[cid]))


def choice_region(
    label: str,
    *,
    region_id: str,
    score: float | None = None,
    from_name: str = "choice",
    to_name: str = "image",
) -> dict[str, Any]:
    """One ``choices`` result item selecting ``label`` (a class NAME of the project's config).

    ``score`` in [0, 1] is the model's confidence, or None to leave it out.
    """
    if score is not None and not (math.isfinite(score) and 0.0 <= score <= 1.0):
        raise ValueError(f"score must be in [0, 1] or None; got {score!r}")
    region: dict[str, Any] = {
        "id": region_id,
        "type": CHOICES_TYPE,
        "from_name": from_name,
        "to_name": to_name,
        "value": {CHOICES_TYPE: [label]},
    }
    if score is not None:
        region["score"] = float(score)
    return region


def classification_to_ls_result(
    probs: Any,
    class_names: Sequence[str],
    *,
    from_name: str = "choice",
    to_name: str = "image",
) -> list[dict[str, Any]]:
    """A classifier's (C,) probabilities as a one-item pre-annotation: the top class by name with
    its probability as ``score`` (rounded to 6 decimals), region id ``"c0"``.

    Raises:
        ValueError: C differs from the number of class names, or bad probabilities (see
            :func:`top_class`).
    """
    names = list(class_names)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 1 or p.size != len(names):
        raise ValueError(f"expected one probability per class ({len(names)}: {names}); got shape {p.shape}")
    top = top_class(p)
    return [choice_region(names[top.class_id], region_id="c0", score=round(top.score, 6),
                          from_name=from_name, to_name=to_name)]


def class_to_ls_result(
    class_id: int, class_names: Sequence[str], *, from_name: str = "choice", to_name: str = "image"
) -> list[dict[str, Any]]:
    """A known class (e.g. a simulated annotator's answer) as a one-item result without score."""
    names = list(class_names)
    if isinstance(class_id, bool) or not isinstance(class_id, (int, np.integer)) or not 0 <= class_id < len(names):
        raise ValueError(f"class_id must be an integer in [0, {len(names) - 1}] for {names}; got {class_id!r}")
    return [choice_region(names[int(class_id)], region_id="c0", from_name=from_name, to_name=to_name)]


def ls_result_to_class(
    result: Sequence[Mapping[str, Any]],
    class_names: Sequence[str],
    from_name: str | None = None,
) -> int | None:
    """The class index a Label Studio annotation chose, mapped BY NAME.

    Only ``choices`` items are read (and only those of ``from_name`` when given).

    Returns:
        The index into ``class_names`` of the one chosen name, or None when the result holds no
        choice (a config without ``required`` lets a reviewer submit none).

    Raises:
        ValueError: an unknown name (the message lists the known names), more than one chosen
            name (across items or inside one), or a malformed value.
    """
    index = {name: i for i, name in enumerate(class_names)}
    chosen: list[tuple[int, str]] = []
    for k, item in enumerate(result):
        if item.get("type") != CHOICES_TYPE:
            continue
        if from_name is not None and item.get("from_name") != from_name:
            continue
        value = item.get("value") or {}
        names = value.get(CHOICES_TYPE)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(
                f"result[{k}] (id {item.get('id')!r}) value.choices must be a list of names; got {names!r}"
            )
        for name in names:
            if name not in index:
                raise ValueError(
                    f"unknown class name {name!r} in result[{k}] (id {item.get('id')!r}); "
                    f"expected one of {list(class_names)}"
                )
            chosen.append((k, name))
    if not chosen:
        return None
    if len({name for _, name in chosen}) > 1:
        raise ValueError(f"expected exactly one chosen class; got {[name for _, name in chosen]}")
    return index[chosen[0][1]]


def build_choices_label_config(
    class_names: Sequence[str], *, image_name: str = "image", choice_name: str = "choice",
    reason_field: str | None = "reason_text",
) -> str:
    """Choices config (one required single choice per image) for the class names, in order.

    The same interface as the box config (image, optional "why this image" header, hotkeys of
    :func:`~labelwise.labelstudio.label_config.label_hotkeys`), with
    ``<Choices name="choice" toName="image" choice="single" required="true">``.

    Raises:
        ValueError: as :func:`~labelwise.labelstudio.polygons.check_class_names`.
    """
    names = check_class_names(class_names)
    keys = label_hotkeys(names)
    choices = "\n".join(
        f"    <Choice value={quoteattr(name)}" + (f" hotkey={quoteattr(key)}" if key else "") + "/>"
        for name, key in zip(names, keys)
    )
    header = (f'  <Header value={quoteattr("Why this image: $" + reason_field)} size="5"/>\n'
              if reason_field else "")
    return (
        "<View>\n"
        f"{header}"
        f"  <Image name={quoteattr(image_name)} value={quoteattr('$' + image_name)}"
        ' zoom="true"/>\n'
        f"  <Choices name={quoteattr(choice_name)} toName={quoteattr(image_name)}"
        ' choice="single" required="true" showInline="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )
