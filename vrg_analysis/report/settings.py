"""The "Settings of this run" block: a chapter's parameters as a collapsed table on its page.

Every chapter notebook has one cell tagged ``parameters`` (papermill's and nbmake's entry point),
which the page does not show as code; the page shows instead, under its introduction, a collapsed
block listing the parameters the run actually used (after papermill's injected values and the
``Params`` checks, which resolve defaults such as ``quick``-dependent sizes).
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from IPython.display import HTML

__all__ = ["settings_html", "settings_block", "setting_text", "collapsed"]

#: The longest a value is shown before it is cut (a long list of timesteps, a path).
MAX_VALUE_CHARS = 120
#: The project folder (the one that holds the ``vrg_analysis`` package): a path inside it is
#: shown relative to it, so a page never shows where the book was built.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _shown_path(text: str) -> str:
    """An absolute path inside the project or the working folder, relative to it (``.`` for the
    folder itself); anything else unchanged."""
    path = Path(text)
    if not path.is_absolute():
        return text
    for root in (PROJECT_ROOT, Path.cwd().resolve()):
        try:
            return path.resolve().relative_to(root).as_posix()
        except ValueError:
            continue
    return text


def setting_text(value: Any) -> str:
    """A parameter's value as the page shows it: lists and tuples as ``[a, b]``, ``None`` as
    ``default``, floats in their shortest exact form, an absolute path inside the project or the
    working folder relative to it, long values cut with an ellipsis."""
    if value is None:
        text = "default"
    elif isinstance(value, bool):
        text = str(value)
    elif isinstance(value, float):
        text = repr(value) if math.isfinite(value) else str(value)
    elif isinstance(value, tuple | list):
        text = "[" + ", ".join(setting_text(v) for v in value) + "]"
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        text = type(value).__name__
    elif isinstance(value, Path | str):
        text = _shown_path(str(value))
    else:
        text = str(value)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 1] + "…"
    return text


def _fields(params: Any) -> list[tuple[str, Any]]:
    if isinstance(params, Mapping):
        return [(str(k), v) for k, v in params.items()]
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        return [(f.name, getattr(params, f.name)) for f in dataclasses.fields(params)]
    raise TypeError(
        f"settings: a Params dataclass or a mapping of names to values, got {type(params).__name__}"
    )


def settings_html(
    *params: Any, title: str = "Settings of this run", labels: Sequence[str] | None = None
) -> str:
    """The parameters (``Params`` dataclasses, or mappings for a page without one) as a
    collapsed HTML block: a ``<details>`` element titled ``title`` holding one table row per
    parameter, grouped under each object's ``labels`` entry (default: its class name) when there
    are several. An object equal to an earlier one is shown once (a page whose committed run is
    its own build's run)."""
    if not params:
        raise ValueError("settings: give at least one Params object or mapping")
    if labels is not None and len(labels) != len(params):
        raise ValueError(f"settings: {len(labels)} labels for {len(params)} parameter sets")
    kept: list[tuple[int, Any]] = []
    for i, obj in enumerate(params):
        if not any(obj == other for _, other in kept):
            kept.append((i, obj))
    parts = [
        f'<details class="vrg-settings"><summary>{html.escape(title)}</summary>',
        '<table class="vrg-settings-table"><tbody>',
    ]
    for i, obj in kept:
        if len(kept) > 1:
            if labels is not None:
                label = labels[i]
            else:
                name = type(obj).__name__ if not isinstance(obj, Mapping) else "settings"
                module = getattr(type(obj), "__module__", "")
                label = (
                    f"{module.rsplit('.', 1)[-1]}.{name}" if module and name == "Params" else name
                )
            parts.append(f'<tr><th colspan="2">{html.escape(label)}</th></tr>')
        for key, value in _fields(obj):
            parts.append(
                f"<tr><td><code>{html.escape(key)}</code></td>"
                f"<td>{html.escape(setting_text(value))}</td></tr>"
            )
    parts.append("</tbody></table></details>")
    return "".join(parts)


def settings_block(
    *params: Any, title: str = "Settings of this run", labels: Sequence[str] | None = None
) -> HTML:
    """:func:`settings_html` as a displayable object (the last line of a notebook cell shows
    it)."""
    return HTML(settings_html(*params, title=title, labels=labels))


def collapsed(body_html: str, title: str) -> HTML:
    """``body_html`` (a table, a list) in a collapsed ``<details>`` block titled ``title``: detail
    a reader opens on demand, below the short version the page leads with."""
    if not title.strip():
        raise ValueError("collapsed: a block needs a title")
    return HTML(
        f'<details class="vrg-details"><summary>{html.escape(title)}</summary>{body_html}</details>'
    )
