"""The audit chapters: each audit notebook's computation, tables, figures and prose numbers.

One module per audit notebook (``gaussian``, ``independence``, ``transfer``, ``calibration``), with
``Params``, ``run(params) -> Result``, the rendering of that result and the verdict table it writes
for the scorecard; the notebooks and ``python -m vrg_analysis audit`` call them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from vrg_analysis.cache import cached
from vrg_analysis.testbeds import resolve_testbed

__all__ = ["cached_audit"]

R = TypeVar("R")


def cached_audit(chapter: str, params: Any, compute: Callable[[Any], R]) -> R:
    """``compute(params)``, cached (:mod:`vrg_analysis.cache`) under the chapter's name, its
    parameters and the audited model's identity (the testbed fingerprint: weights, data, device),
    so that the notebook and ``python -m vrg_analysis audit`` share one computation.

    ``params`` needs the fields ``model``, ``data``, ``device`` and ``seed``.
    """
    bed = resolve_testbed(params.model, data=params.data, device=params.device, seed=params.seed)
    return cached(
        f"audit-{chapter}", {"params": params, "testbed": bed.fingerprint}, lambda: compute(params)
    )
