"""Notebook parameters, checked once at the boundary.

Each chapter's ``Params`` dataclass calls these in ``__post_init__``, so the first cell after a
notebook's ``parameters`` cell (``params = chapter.Params(...)``) refuses a bad value with a message
naming the parameter and what it accepts. List parameters may arrive from papermill as strings
(``-p steps '[5, 10]'`` passes the text): a string that reads as a Python list is accepted, and any
other string is refused with the form that works (``-y 'steps: [5, 10]'``).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "as_tuple",
    "as_int",
    "as_float",
    "as_choice",
    "as_bool",
    "as_folder",
    "check_seeds",
]


def _type_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return kind.__name__


def as_tuple(
    value: Any,
    name: str,
    item: type | tuple[type, ...] = str,
    *,
    min_len: int = 1,
    choices: Iterable[Any] | None = None,
) -> tuple[Any, ...]:
    """A list parameter as a tuple of ``item`` values (ints are accepted where floats are asked);
    a string is parsed as a Python list literal, or refused with the papermill form that works."""
    raw = value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("[", "(")):
            try:
                raw = ast.literal_eval(text)
            except (SyntaxError, ValueError) as exc:
                raise ValueError(
                    f"parameter {name}: cannot read {value!r} as a list ({exc})"
                ) from exc
        else:
            raise ValueError(
                f"parameter {name} must be a list, got the string {value!r}; with papermill pass "
                f'lists with -y "{name}: [...]" or a parameters file (-p passes text)'
            )
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise ValueError(f"parameter {name} must be a list, got {type(raw).__name__} {raw!r}")
    out = []
    for i, v in enumerate(raw):
        if item is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if isinstance(v, bool) and item is not bool or not isinstance(v, item):
            raise ValueError(f"parameter {name}[{i}] must be {_type_name(item)}, got {v!r}")
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"parameter {name}[{i}] must be finite, got {v!r}")
        out.append(v)
    if len(out) < min_len:
        raise ValueError(f"parameter {name} needs at least {min_len} value(s), got {list(out)!r}")
    if choices is not None:
        allowed = list(choices)
        bad = [v for v in out if v not in allowed]
        if bad:
            raise ValueError(f"parameter {name}: unknown value {bad[0]!r}; allowed: {allowed}")
    return tuple(out)


def as_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer parameter inside ``[minimum, maximum]``."""
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError(f"parameter {name} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"parameter {name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"parameter {name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"parameter {name} must be <= {maximum}, got {value}")
    return int(value)


def as_float(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """A finite float parameter inside the given bounds (open where asked)."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"parameter {name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"parameter {name} must be a finite number, got {value!r}")
    v = float(value)
    if minimum is not None and (v < minimum or (open_low and v == minimum)):
        raise ValueError(f"parameter {name} must be {'>' if open_low else '>='} {minimum}, got {v}")
    if maximum is not None and (v > maximum or (open_high and v == maximum)):
        raise ValueError(
            f"parameter {name} must be {'<' if open_high else '<='} {maximum}, got {v}"
        )
    return v


def as_choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """One of ``choices``."""
    allowed = list(choices)
    if value not in allowed:
        raise ValueError(f"parameter {name}: unknown value {value!r}; allowed: {allowed}")
    return value


def as_bool(value: Any, name: str) -> bool:
    """A boolean parameter (the strings "true"/"false" accepted, as papermill may pass them)."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise ValueError(f"parameter {name} must be true or false, got {value!r}")
    return value


def as_folder(value: Any, name: str, *, must_exist: bool = True) -> Path:
    """A folder parameter; with ``must_exist`` a missing folder is refused (a notebook never
    writes an empty result for want of its inputs)."""
    if not isinstance(value, str | Path) or not str(value):
        raise ValueError(f"parameter {name} must be a folder path, got {value!r}")
    path = Path(value)
    if must_exist and not path.is_dir():
        raise ValueError(f"parameter {name}: folder {str(path)!r} does not exist")
    return path


def check_seeds(seeds: Any, name: str = "seeds", *, min_len: int = 1) -> tuple[int, ...]:
    """Distinct non-negative integer seeds."""
    out = as_tuple(seeds, name, int, min_len=min_len)
    if len(set(out)) != len(out) or min(out) < 0:
        raise ValueError(f"parameter {name} must be distinct integers >= 0, got {list(out)!r}")
    return out
