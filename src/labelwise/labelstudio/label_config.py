"""The Label Studio labelling interface (XML) of a Labelwise project."""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape


def quoteattr(value: str) -> str:
    """``value`` as a double-quoted XML attribute (``& < > "`` and ``'`` escaped)."""
    return '"' + escape(value, {'"': "&quot;", "'": "&apos;"}) + '"'

# Distinct colours for the first classes; later ones cycle.
_PALETTE = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
    "#fabed4", "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3", "#808000", "#000075",
)


def label_hotkeys(class_names: Sequence[str]) -> list[str | None]:
    """Explicit label hotkeys: each name itself when every name is one digit or every name is
    one letter (unique ignoring case), else None for all (Label Studio then numbers the labels
    1, 2, ... in order, which for digit classes puts class "0" on key 1)."""
    names = list(class_names)
    single = all(len(n) == 1 for n in names) and len({n.lower() for n in names}) == len(names)
    if single and (all(n.isdigit() for n in names) or all(n.isalpha() for n in names)):
        return [n.lower() for n in names]
    return [None] * len(names)


def build_label_config(
    class_names: Sequence[str], *, image_name: str = "image", label_name: str = "label",
    reason_field: str | None = "reason_text",
) -> str:
    """RectangleLabels config for the class names, in their given order.

    ``<Image name="image" value="$image"/>`` shows the task's ``data.image`` URL and
    ``<RectangleLabels name="label" toName="image">`` holds one ``<Label>`` per class. Names are
    escaped as XML attribute values (``&``, ``<``, ``>``, quotes), so any printable name works.
    With ``reason_field`` a header above the image shows the task's ``data.<reason_field>``
    (why Labelwise picked the image). Hotkeys follow :func:`label_hotkeys`.

    Raises:
        ValueError: no names, an empty/blank or duplicate name, or a name with control characters
            (XML would silently turn a newline into a space).
    """
    names = list(class_names)
    if not names:
        raise ValueError("class_names must hold at least one name; got none")
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"class_names[{i}] must be a non-blank string; got {name!r}")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
            raise ValueError(f"class_names[{i}] must not contain control characters; got {name!r}")
        if name in seen:
            raise ValueError(f"class_names must be unique; {name!r} appears twice in {names}")
        seen.add(name)
    keys = label_hotkeys(names)
    labels = "\n".join(
        f"    <Label value={quoteattr(name)} background={quoteattr(_PALETTE[i % len(_PALETTE)])}"
        + (f" hotkey={quoteattr(key)}" if key else "") + "/>"
        for i, (name, key) in enumerate(zip(names, keys))
    )
    header = (f'  <Header value={quoteattr("Why this image: $" + reason_field)} size="5"/>\n'
              if reason_field else "")
    return (
        "<View>\n"
        f"{header}"
        f"  <Image name={quoteattr(image_name)} value={quoteattr('$' + image_name)}"
        ' zoom="true"/>\n'
        f"  <RectangleLabels name={quoteattr(label_name)} toName={quoteattr(image_name)}>\n"
        f"{labels}\n"
        "  </RectangleLabels>\n"
        "</View>\n"
    )
