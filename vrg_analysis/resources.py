"""Where the toolkit's shipped files live: trained checkpoints, reference statistics, committed
results, benchmark figures and the notebooks.

In a source checkout (and an editable install) they are the repository's ``data/`` and
``notebooks/`` folders beside the package. A wheel (``pip install .``) installs copies as data
files under ``<prefix>/share/vrg-analysis/`` (``pyproject.toml``, ``[tool.setuptools.data-files]``),
so an installed package finds them from any working folder. ``$VRG_DATA_ROOT`` overrides both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = [
    "bundle_root",
    "data_dir",
    "models_dir",
    "reference_dir",
    "results_dir",
    "notebooks_dir",
    "benchmark_results_dir",
    "official_reference_dir",
]

_PACKAGE = Path(__file__).resolve().parent


def bundle_root() -> Path:
    """The folder holding ``data/`` and ``notebooks/``: ``$VRG_DATA_ROOT``, else the source
    checkout the package sits in, else the installed data files."""
    env = os.environ.get("VRG_DATA_ROOT")
    if env:
        return Path(env)
    checkout = _PACKAGE.parent
    if (checkout / "data" / "models").is_dir():
        return checkout
    for prefix in (sys.prefix, sys.base_prefix):
        installed = Path(prefix) / "share" / "vrg-analysis"
        if (installed / "data").is_dir():
            return installed
    return checkout


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


def benchmark_results_dir() -> Path:
    """The measured benchmark figures (``benchmarks/results/*.json``) that the performance and
    reproduction chapters read."""
    return bundle_root() / "benchmarks" / "results"


def official_reference_dir() -> Path | None:
    """The official VRG implementation's published files (profiles, trajectories), which are
    under a non-commercial licence and never shipped: ``$VRG_REFERENCE_DIR``, else
    ``../shared/reference/vrg-official`` beside the checkout; ``None`` when neither holds
    ``MSE_vs_alpha_bar_cifar10.txt``."""
    candidates = [
        os.environ.get("VRG_REFERENCE_DIR", ""),
        str(_PACKAGE.parent.parent / "shared" / "reference" / "vrg-official"),
    ]
    for c in candidates:
        if c and (Path(c) / "MSE_vs_alpha_bar_cifar10.txt").is_file():
            return Path(c)
    return None
