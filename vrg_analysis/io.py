"""Artifacts on disk: atomic writers, provenance metadata, and the official VRG file formats.

Every writer writes to a temporary file in the destination folder and renames it into place, so an
interrupted run never leaves a half-written file (DESIGN.md, conventions).
"""

from __future__ import annotations

import hashlib
import os
import platform
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "atomic_write_text",
    "atomic_open",
    "sha256_file",
    "sha256_array",
    "provenance",
    "read_official_columns",
    "read_official_trajectory_values",
]


@contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide, not thread-safe


def atomic_write_text(path: Path, text: str) -> Path:
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_array(arr: NDArray) -> str:
    a = np.ascontiguousarray(arr)
    h = hashlib.sha256()
    h.update(str(a.dtype).encode())
    h.update(str(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def provenance() -> dict[str, str]:
    """Package and interpreter versions recorded in every artifact."""
    from . import __version__

    info = {
        "vrg_analysis": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return info


def _data_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped text) of every non-empty, non-comment line."""
    with open(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.strip()
            if line and not line.startswith("#"):
                yield lineno, line


def _header_field(path: Path, key: str) -> str | None:
    """Value of a ``# key : value`` header line of an official file, if present."""
    with open(path) as fh:
        for raw in fh:
            if not raw.strip():
                continue
            if not raw.startswith("#"):
                break
            body = raw[1:].strip()
            if ":" in body:
                k, v = body.split(":", 1)
                if k.strip() == key:
                    return v.strip()
    return None


def read_official_columns(
    path: str | Path, ncols: int
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Rows of whitespace-separated numbers (comments ``#`` skipped) as an ``(n, ncols)`` array,
    with the 1-based line number of each row (for error messages)."""
    path = Path(path)
    rows: list[list[float]] = []
    linenos: list[int] = []
    for lineno, line in _data_lines(path):
        parts = line.split()
        if len(parts) != ncols:
            raise ValueError(
                f"{path}:{lineno}: expected {ncols} columns, found {len(parts)}: {line!r}"
            )
        try:
            values = [float(p) for p in parts]
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: not a number in {line!r}") from exc
        if not all(np.isfinite(values)):
            raise ValueError(f"{path}:{lineno}: non-finite value in {line!r}")
        rows.append(values)
        linenos.append(lineno)
    if not rows:
        raise ValueError(f"{path}: no data rows found (empty or truncated file)")
    return np.asarray(rows, dtype=np.float64), np.asarray(linenos, dtype=np.int64)


def read_official_trajectory_values(
    path: str | Path,
) -> tuple[NDArray[np.float64], bool, NDArray[np.int64]]:
    """alpha_bar values of an official trajectory file, least noisy first, as written.

    Two layouts exist: the DPM-Solver files (one value a line, the first belonging to timestep 0)
    and the optimiser's output (``alpha_bar : ts: ...`` lines, every value a step). Returns the
    values and whether the first one is the timestep-0 entry. When the header states ``steps``,
    the count is checked, so a truncated file is reported as such.
    """
    path = Path(path)
    values: list[float] = []
    linenos: list[int] = []
    detailed: bool | None = None
    for lineno, line in _data_lines(path):
        is_detailed = ":" in line
        if detailed is None:
            detailed = is_detailed
        elif detailed != is_detailed:
            raise ValueError(f"{path}:{lineno}: mixes the two trajectory layouts: {line!r}")
        token = line.split(":", 1)[0].strip() if is_detailed else line
        try:
            v = float(token)
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: not an alpha_bar value: {line!r}") from exc
        values.append(v)
        linenos.append(lineno)
    if not values:
        raise ValueError(f"{path}: no alpha_bar values found (empty or truncated file)")
    has_t0 = not detailed
    steps = _header_field(path, "steps")
    if steps is not None:
        try:
            expected = int(steps) + (1 if has_t0 else 0)
        except ValueError as exc:
            raise ValueError(f"{path}: header 'steps' is not an integer: {steps!r}") from exc
        if len(values) != expected:
            raise ValueError(
                f"{path}: header says {steps} steps, so {expected} values, but found {len(values)}"
                " (truncated or malformed file)"
            )
    return np.asarray(values, dtype=np.float64), has_t0, np.asarray(linenos, dtype=np.int64)
