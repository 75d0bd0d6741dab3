"""The "How this toolkit is built" page: the layers, and the method's reference values recomputed.

The page states the formulas the code implements and checks them against the published reference
values: with the official CIFAR-10 profile (``MSE_vs_alpha_bar_cifar10.txt``) and the 10-step
order-1 DPM-Solver time-quadratic trajectory, CPE (Eq. 10) is 0.501388, and the official optimiser's
trajectory has CPE 0.423855. :func:`reference_values` recomputes both with the library when the
official files are present (they are never shipped:
:func:`~vrg_analysis.resources.official_reference_dir`); without them the page says so, and a
folder given that lacks them is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.profile import read_official_profile
from vrg_analysis.core.trajectories import read_official_trajectory
from vrg_analysis.layers import LAYERS, import_graph, package_modules
from vrg_analysis.resources import official_reference_dir

__all__ = [
    "Params",
    "run",
    "FILES",
    "PUBLISHED_CPE",
    "PUBLISHED_CPE_OPTIMISED",
    "ReferenceValues",
    "reference_values",
    "Summary",
    "summary",
]

#: The published reference values (the official files' own README and the paper's code).
PUBLISHED_CPE = 0.501388
PUBLISHED_CPE_OPTIMISED = 0.423855
#: The official files the page reads, relative to the reference folder.
FILES: tuple[str, ...] = (
    "MSE_vs_alpha_bar_cifar10.txt",
    "trajectories/dpm_alphaBar_1-010-time_quadratic.txt",
    "optimized_dpm_alphaBar_1-010-time_quadratic.txt",
)


@dataclass(frozen=True)
class Params:
    """The page's one parameter: the folder of the official VRG files (empty: the default places,
    :func:`~vrg_analysis.resources.official_reference_dir`, and the page says when they are not
    there). A folder given that lacks one of :data:`FILES` is refused."""

    reference_dir: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.reference_dir, str | Path):
            raise ValueError(
                f"parameter reference_dir must be a folder, got {self.reference_dir!r}"
            )
        if str(self.reference_dir):
            folder = Path(self.reference_dir)
            missing = [f for f in FILES if not (folder / f).is_file()]
            if missing:
                raise ValueError(
                    f"parameter reference_dir: {str(folder)!r} lacks the official file(s) {missing}"
                )


@dataclass(frozen=True)
class ReferenceValues:
    """CPE of the official baseline and optimised trajectories, recomputed (NaN without files)."""

    available: bool
    cpe_baseline: float
    cpe_optimised: float
    folder: str


def reference_values(folder: str | Path | None = None) -> ReferenceValues:
    """Recompute the published CPE values (Eq. 10) from the official files in ``folder`` (default:
    :func:`~vrg_analysis.resources.official_reference_dir`); NaN and ``available=False`` when
    the default places hold none."""
    where = Path(folder) if folder else official_reference_dir()
    if where is None:
        return ReferenceValues(False, math.nan, math.nan, "")
    profile = read_official_profile(where / FILES[0])
    base = read_official_trajectory(where / FILES[1])
    opt = read_official_trajectory(where / FILES[2])
    return ReferenceValues(
        True,
        cumulative_prediction_error(base, profile),
        cumulative_prediction_error(opt, profile),
        str(where),
    )


def run(params: Params) -> ReferenceValues:
    """The page's computation: the reference values from ``params.reference_dir``."""
    return reference_values(params.reference_dir or None)


@dataclass(frozen=True)
class Summary:
    """The numbers the page cites."""

    n_modules: int
    n_components: int
    n_layers: int
    n_imports: int
    reference_available: str
    cpe_baseline: float
    cpe_optimised: float
    published_cpe: float
    published_cpe_optimised: float


def summary(values: ReferenceValues) -> Summary:
    graph = import_graph()
    return Summary(
        n_modules=len(package_modules()),
        n_components=len([c for c in LAYERS if c not in ("__init__", "__main__")]),
        n_layers=len(set(LAYERS.values())),
        n_imports=len({(i.importer, i.imported) for i in graph}),
        reference_available="found" if values.available else "not found on this machine",
        cpe_baseline=values.cpe_baseline,
        cpe_optimised=values.cpe_optimised,
        published_cpe=PUBLISHED_CPE,
        published_cpe_optimised=PUBLISHED_CPE_OPTIMISED,
    )
