"""Where the toolkit's shipped files live: trained checkpoints, reference statistics, committed
results and the notebooks.

In a source checkout (and an editable install) they are the repository's ``data/`` and
``notebooks/`` folders. A wheel carries copies inside the package (``vrg_analysis/_bundled``,
written by ``setup.py``'s build step), so ``pip install .`` into any environment finds them too.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["bundle_root", "data_dir", "models_dir", "reference_dir", "results_dir", "notebooks_dir"]

_PACKAGE = Path(__file__).resolve().parent


def bundle_root() -> Path:
    """The folder holding ``data/`` and ``notebooks/``: the package's bundled copy when present,
    else the source checkout's root."""
    bundled = _PACKAGE / "_bundled"
    return bundled if (bundled / "data").is_dir() else _PACKAGE.parent


def data_dir() -> Path:
    return bundle_root() / "data"


def models_dir() -> Path:
    """Trained checkpoints with their JSON cards (``data/models``)."""
    return data_dir() / "models"


def reference_dir() -> Path:
    """Reference feature statistics of the image data sets (``data/reference``)."""
    return data_dir() / "reference"


def results_dir() -> Path:
    """Committed full-size study results (``data/results``)."""
    return data_dir() / "results"


def notebooks_dir() -> Path:
    """The parameterised notebooks (``notebooks/``)."""
    return bundle_root() / "notebooks"
