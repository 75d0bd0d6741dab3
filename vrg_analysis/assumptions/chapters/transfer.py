"""Audit chapter: does the training error transfer to sampling, and what does VRG weight?

VRG weights step ``k`` of a trajectory by ``w(a_k)``, the noise-prediction MSE that Algorithm 1
profiles on **training data**, and reads its objective

    CPE = sum_k (sigma_k - sigma_{k-1})^2 w(a_k)                         (the paper's Eq. 10)

as the variance of the error the model makes **while sampling**: a DDIM step in ``x / sqrt(a)``
coordinates carries a prediction error ``delta_k`` to the clean sample as
``(sigma_{k-1} - sigma_k) delta_k``, and with independent steps of per-dimension variance ``w``
the variances add (:mod:`vrg_analysis.core.cpe`); ``x_t = sqrt(a) x_0 + sqrt(1 - a) eps`` (DDPM
eq. 4) on data. This chapter tests three things that reading
needs, on one model (:func:`vrg_analysis.testbeds.resolve_testbed`) at the levels of one
trajectory:

1. **Transfer** (:func:`~vrg_analysis.assumptions.transfer.transfer_audit`): the per-level MSE
   ratio of two error samples with its delta-method interval on ``log R`` and Welch's t test,
   Holm-corrected over the levels; the claim "the MSE ratio lies in ``[1 / (1 + tol), 1 + tol]``"
   judged by the book's rule (``decide(claim="within")``). Two comparisons: held-out against
   training data (both against the true noise: over-fitting), and the DDIM path against training
   data (the model's own error against the reference: the sampler's states). On a target without
   an analytic ``eps*`` a control (held-out against training data, against the same reference)
   marks the levels where the reference itself is unreliable; the path verdicts there are
   inconclusive (:func:`qualify`). A class-conditional model is also audited per class.
   What the ratio does to CPE: :func:`cpe_ratio`, the ratio of the CPE each profile implies, with
   a delta-method interval (:func:`ratio_interval`).
2. **What w is made of** (:func:`~vrg_analysis.assumptions.decomposition.decompose_profile`,
   (D1)): ``||eps_hat - eps||^2 = ||eps - eps*||^2 + ||eps_hat - eps*||^2 + cross``, and the
   shares of CPE from the irreducible spread and the model's own error
   (:func:`~vrg_analysis.assumptions.decomposition.cpe_shares`); exact targets only.
3. **Anisotropy** (:func:`~vrg_analysis.assumptions.anisotropy.anisotropy_audit`): the top
   eigenvalue of ``E[delta delta^T]`` in units of ``w`` per level, the spatial-sign sphericity
   test, and the spectrum of the accumulated error ``sum_k c_k delta_k`` that CPE (a trace)
   cannot see.

``run(params) -> Result`` computes everything; :func:`summary` gives every number the prose cites,
:func:`figures` the three figures, :func:`verdict_table` / :func:`class_table` the tables, and
:func:`write_outputs` the verdict table (``<verdict_dir>/audit_transfer.csv`` + ``.md``, for the
scorecard and ``python -m vrg_analysis audit``) and the figures as PNG.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from vrg_analysis.assumptions.anisotropy import (
    DEFAULT_ANISOTROPY_TOLERANCE,
    AccumulatedAnisotropy,
    ErrorSpectrum,
    accumulated_error_anisotropy,
    anisotropy_audit,
    error_spectrum,
)
from vrg_analysis.assumptions.chapters import cached_audit
from vrg_analysis.assumptions.decomposition import (
    CPEShares,
    ProfileDecomposition,
    cpe_shares,
    decompose_profile,
)
from vrg_analysis.assumptions.samples import ErrorSample, errors_along_path, errors_on_data
from vrg_analysis.assumptions.transfer import (
    TransferProfile,
    classes_to_audit,
    transfer_audit,
    transfer_by_class,
    transfer_profile,
)
from vrg_analysis.assumptions.verdicts import (
    VERDICTS,
    AuditResult,
    summarize,
    with_source,
    write_results,
)
from vrg_analysis.core.cpe import step_coefficients
from vrg_analysis.core.trajectories import BASELINES, Trajectory, baseline
from vrg_analysis.evaluation.stats import Interval
from vrg_analysis.params import as_bool, as_int
from vrg_analysis.report import PAGE_WIDTH, save_figures, styled, verdict_css
from vrg_analysis.testbeds import check_model, resolve_testbed
from vrg_analysis.threads import limit_threads

__all__ = [
    "CHAPTER",
    "FIGURES",
    "TOLERANCE",
    "Params",
    "CPERatio",
    "Collected",
    "Result",
    "Summary",
    "normal_bounds",
    "normal_interval",
    "ratio_interval",
    "cpe_of",
    "cpe_ratio",
    "compact_errors",
    "reduce_dim",
    "qualify",
    "describe",
    "samples_needed",
    "collect",
    "run",
    "artifact_result",
    "figure_transfer",
    "figure_decomposition",
    "figure_anisotropy",
    "figures",
    "verdict_table",
    "level_table",
    "class_table",
    "summary",
    "write_outputs",
]

CHAPTER = "audit_transfer"
#: The chapter's figures, by glue name (also the PNG names, ``audit_transfer_<name>.png``).
FIGURES: tuple[str, ...] = ("fig_transfer", "fig_decomposition", "fig_anisotropy")
#: Transfer tolerance: the band ``[1 / 1.1, 1.1]`` on the MSE ratio (a 10% error in ``w`` at every
#: level changes CPE by 10%; the library's default).
TOLERANCE = 0.1
TRUE_NOISE = "eps (the true noise)"
#: Default sizes (quick, full) when a size parameter is None.
_SIZES: dict[str, tuple[int, int]] = {
    "n_samples": (1000, 20000),
    "n_paths": (500, 5000),
    "n_decompose": (4000, 20000),
    "bootstrap": (100, 200),
}
FloatArray = NDArray[np.float64]


# ===================================================================== parameters


@dataclass(frozen=True)
class Params:
    """The chapter's parameters (the notebook's ``parameters`` cell; CI-sized defaults).

    ``n_samples`` (data rows per level and side, capped by the split), ``n_paths`` (DDIM paths),
    ``n_decompose`` (draws per level of the decomposition) and ``bootstrap`` (isotropy resamples)
    default by ``quick``: 1000 / 500 / 4000 / 100 quick, 20000 / 5000 / 20000 / 200 full; they
    are resolved to integers on construction. ``max_isotropy_dim``: image errors with more
    dimensions are pooled to at most this many, and to at most ``n_paths / 2`` (the isotropy
    audit's least sample size) (:func:`reduce_dim`).
    """

    model: str = "mixture-2d"
    data: str | None = None
    device: str = "cpu"
    quick: bool = True
    seed: int = 0
    trajectory_name: str = "time_quadratic"
    num_steps: int = 10
    n_samples: int | None = None
    n_paths: int | None = None
    n_decompose: int | None = None
    bootstrap: int | None = None
    max_isotropy_dim: int = 256

    def __post_init__(self) -> None:
        s = object.__setattr__
        if self.data is not None and not isinstance(self.data, str):
            raise ValueError(f"parameter data must be a path or None, got {self.data!r}")
        check_model(self.model, self.data, self.device)
        s(self, "data", self.data or None)
        s(self, "quick", as_bool(self.quick, "quick"))
        s(self, "seed", as_int(self.seed, "seed", minimum=0))
        if self.trajectory_name not in BASELINES:
            raise ValueError(
                f"parameter trajectory_name: unknown value {self.trajectory_name!r}; allowed: "
                f"{sorted(BASELINES)}"
            )
        s(self, "num_steps", as_int(self.num_steps, "num_steps", minimum=2))
        for name, (quick, full) in _SIZES.items():
            value = getattr(self, name)
            value = (quick if self.quick else full) if value is None else value
            least = {"n_samples": 20, "n_paths": 20, "n_decompose": 2, "bootstrap": 50}[name]
            s(self, name, as_int(value, name, minimum=least))
        s(self, "max_isotropy_dim", as_int(self.max_isotropy_dim, "max_isotropy_dim", minimum=2))

    @property
    def mode(self) -> str:
        return "quick (CI-sized)" if self.quick else "full"


# ===================================================================== estimators
def normal_bounds(
    estimate: ArrayLike, se: ArrayLike, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """``(estimate - z se, estimate + z se)`` elementwise, ``z = Phi^-1((1 + confidence) / 2)``:
    the normal interval of means over many independent draws with known standard errors."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    m, e = np.asarray(estimate, dtype=np.float64), np.asarray(se, dtype=np.float64)
    if np.any(e < 0.0):
        raise ValueError("standard errors must be >= 0")
    return m - z * e, m + z * e


def normal_interval(estimate: float, se: float, confidence: float = 0.95) -> Interval:
    """:func:`normal_bounds` of one estimate, as an :class:`~vrg_analysis.evaluation.stats.
    Interval`."""
    lo, hi = normal_bounds(estimate, se, confidence)
    return Interval(float(estimate), float(lo), float(hi), confidence, "normal")


def ratio_interval(ratio: float, log_se: float, confidence: float = 0.95) -> Interval:
    """Interval of a ratio from the standard error of its logarithm (delta method on the log
    scale): ``ratio * exp(+- z log_se)``, ``z = Phi^-1((1 + confidence) / 2)``."""
    if not ratio > 0.0:
        raise ValueError(f"ratio must be > 0, got {ratio!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    return Interval(
        float(ratio),
        float(ratio * math.exp(-z * log_se)),
        float(ratio * math.exp(z * log_se)),
        confidence,
        "delta method (log scale)",
    )


def cpe_of(sample: ErrorSample, weights: FloatArray) -> tuple[float, float]:
    """CPE a sample's profile implies, ``sum_k c_k^2 w_k`` (``weights = c_k^2`` in the sample's
    level order), and its standard error: per row, ``sum_k c_k^2 ||delta_k||^2 / d``, whose mean
    is the CPE; the per-row sum keeps the correlation between the levels of one row (a path)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (sample.num_levels,):
        raise ValueError(f"weights need one value per level ({sample.num_levels}), got {w.shape}")
    v = w @ np.mean(sample.errors**2, axis=2)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))


@dataclass(frozen=True)
class CPERatio:
    """The CPE of a reference and an other profile on one trajectory, and their ratio with its
    interval (:func:`cpe_ratio`)."""

    reference: float
    reference_se: float
    other: float
    other_se: float
    ratio: Interval


def cpe_ratio(
    reference: ErrorSample, other: ErrorSample, weights: FloatArray, confidence: float = 0.95
) -> CPERatio:
    """``CPE(other) / CPE(reference)`` with a delta-method interval on the log ratio
    (``se(log R)^2 = (se_r / m_r)^2 + (se_o / m_o)^2``, the two samples independent)."""
    m_r, se_r = cpe_of(reference, weights)
    m_o, se_o = cpe_of(other, weights)
    log_se = math.hypot(se_r / m_r, se_o / m_o)
    return CPERatio(m_r, se_r, m_o, se_o, ratio_interval(m_o / m_r, log_se, confidence))


def compact_errors(errors: FloatArray) -> FloatArray:
    """``[L, n, d] -> [L, n, 1]`` with the same squared norm per row: the transfer audit and CPE
    read only the per-sample MSE ``||delta||^2 / d``, which this keeps exactly."""
    return np.sqrt(np.mean(np.asarray(errors) ** 2, axis=2, keepdims=True))


def reduce_dim(
    errors: FloatArray, sample_shape: Sequence[int], max_dim: int, seed: int = 0
) -> FloatArray:
    """Errors ``[L, n, d]`` for the isotropy audit in at most ``max_dim`` dimensions: unchanged if
    ``d <= max_dim``; image errors (``sample_shape = (c, h, w)``) summed over ``f x f`` pixel blocks
    and divided by ``f`` (an isotropic error stays isotropic with the same variance ``w`` per
    coordinate); other vectors projected on a seeded orthonormal basis (the same property)."""
    e = np.asarray(errors)
    L, n, d = e.shape  # noqa: N806
    if d <= max_dim:
        return e
    shape = tuple(int(s) for s in sample_shape)
    if len(shape) == 3:
        c, h, w = shape
        f = 2
        while c * (h // f) * (w // f) > max_dim and 2 * f <= min(h, w):
            f *= 2
        if c * (h // f) * (w // f) <= max_dim:
            x = torch.from_numpy(np.ascontiguousarray(e).reshape(L * n, c, h, w))
            return (F.avg_pool2d(x, f) * f).reshape(L, n, -1).numpy()
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, max_dim, generator=g, dtype=torch.float64))
    return e @ q.numpy()


def _level_of(row: AuditResult, levels: FloatArray) -> int:
    return int(np.flatnonzero(np.isclose(levels, row.alpha_bar, rtol=1e-9, atol=0.0))[0])


def qualify(
    rows: Sequence[AuditResult],
    levels: FloatArray,
    unreliable: NDArray[np.bool_],
    control_ratio: FloatArray | None,
) -> list[AuditResult]:
    """Verdicts at levels where the reference is unreliable (``unreliable[i]``: the held-out
    control contradicts transfer at ``levels[i]``) become inconclusive, with the reason and the
    audit's own verdict in the note: the gap may be the reference's own error, not the sampler's.
    Rows of several classes may share a level."""
    flags = np.asarray(unreliable, dtype=bool)
    if flags.shape != np.shape(levels):
        raise ValueError(f"{flags.size} reliability flags for {np.size(levels)} levels")
    if flags.any() and control_ratio is None:
        raise ValueError("unreliable levels need the control's ratios for the note")
    out = []
    for r in rows:
        i = _level_of(r, levels)
        if flags[i] and control_ratio is not None:
            note = (
                f"reference unreliable at this level: the held-out control ratio is "
                f"{control_ratio[i]:.3g} (contradicted), so the gap may be the reference's own "
                f"error (the audit alone said {r.verdict}: {r.note})"
            )
            r = replace(r, verdict="inconclusive", note=note)
        out.append(r)
    return out


def _counts(rows: Sequence[AuditResult]) -> dict[str, int]:
    return {v: sum(r.verdict == v for r in rows) for v in VERDICTS}


def describe(
    rows: Sequence[AuditResult],
    profile: TransferProfile,
    sigma: FloatArray,
    skip: NDArray[np.bool_] | None = None,
) -> str:
    """One plain sentence: at how many levels transfer is supported / contradicted /
    inconclusive, where it is contradicted, and the ratio furthest from 1 (among the levels not
    in ``skip``) with its interval."""
    levels = profile.alpha_bar
    k = levels.size
    c = _counts(rows)
    keep = [i for i in range(k) if skip is None or not skip[i]] or list(range(k))
    worst = max(keep, key=lambda i: abs(math.log(profile.ratio[i])))
    where = " where the reference is reliable" if skip is not None and skip.any() else ""
    hits = [_level_of(r, levels) for r in rows if r.verdict == "contradicted"]
    if hits:
        at = ", ".join(f"{sigma[i]:.3g} (ratio {profile.ratio[i]:.3g})" for i in hits)
        contra = f"contradicted at {c['contradicted']}: sigma {at};"
    else:
        contra = "contradicted at none,"
    return (
        f"supported at {c['supported']} of {k} levels, {contra} and inconclusive at "
        f"{c['inconclusive']}; the ratio furthest from 1{where} is {profile.ratio[worst]:.3g} "
        f"[{profile.ratio_lo[worst]:.3g}, {profile.ratio_hi[worst]:.3g}] at sigma = "
        f"{sigma[worst]:.3g}"
    )


_NEEDED = re.compile(r"about (\d+) samples per side needed to show it")


def samples_needed(rows: Sequence[AuditResult]) -> list[int]:
    """The rows per side an inconclusive transfer row would need to show its ratio inside the
    band (from the audit's note), one per such row."""
    return [int(m.group(1)) for r in rows if (m := _NEEDED.search(r.note))]


# ===================================================================== collection
@dataclass(frozen=True, eq=False)
class Collected:
    """The error samples the audits read (one model, one trajectory's levels)."""

    train_vs_eps: ErrorSample
    held_vs_eps: ErrorSample
    train_vs_ref: ErrorSample
    held_vs_ref: ErrorSample
    path_vs_ref: ErrorSample
    path_iso: ErrorSample
    train_iso: ErrorSample
    y_train: torch.Tensor | None
    y_held: torch.Tensor | None
    y_path: torch.Tensor | None


def _chunks(n: int, levels: int, dim: int) -> list[NDArray[np.intp]]:
    """Row chunks holding about 64 MiB of float64 errors each (images stay within memory)."""
    per = max(64, (1 << 26) // (levels * dim * 8))
    return np.array_split(np.arange(n), max(1, math.ceil(n / per)))


def _subset(
    x: torch.Tensor, y: torch.Tensor | None, n: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` rows of ``(x, y)`` in a seeded random order (all rows if there are fewer)."""
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], (y[idx] if y is not None else None)


def collect(bed: Any, traj: Trajectory, params: Params) -> Collected:
    """Errors on training and held-out rows (against the true noise and against the reference) and
    along ``params.n_paths`` DDIM paths from ``x_T ~ N(0, I)`` (against the reference), at the
    levels of ``traj``. Model and reference see the same draws ``(x_0, eps)`` on data (same
    seed), so ``(eps_hat - eps) - (eps* - eps) = eps_hat - eps*`` costs no second model pass.
    Every draw has its own seed: ``1_000_003 seed + 10_007 stream + chunk``."""
    seed, levels = params.seed, traj.alpha_bar
    ref = bed.reference()
    cond = bed.conditional
    shape = bed.sample_shape
    d = int(np.prod(shape))
    # the isotropy audit needs n >= 2 d paths: pool to at most n_paths / 2 dimensions
    iso_dim = max(2, min(params.max_isotropy_dim, params.n_paths // 2))

    def on_data(x: torch.Tensor, y: torch.Tensor | None, stream: int) -> list[FloatArray]:
        vs_eps, vs_ref, vs_ref_iso = [], [], []
        for j, rows in enumerate(_chunks(x.shape[0], traj.K, d)):
            kw = {"y": y[rows]} if y is not None else None
            draw = 1_000_003 * seed + 10_007 * stream + j
            e_model = errors_on_data(
                bed.model,
                x[rows],
                levels,
                generator=torch.Generator().manual_seed(draw),
                model_kwargs=kw,
            ).errors
            e_ref = errors_on_data(
                ref.model,
                x[rows],
                levels,
                generator=torch.Generator().manual_seed(draw),
                model_kwargs=kw,
            ).errors
            own = e_model - e_ref
            vs_eps.append(compact_errors(e_model))
            vs_ref.append(compact_errors(own))
            vs_ref_iso.append(reduce_dim(own, shape, iso_dim, seed))
        return [np.concatenate(p, axis=1) for p in (vs_eps, vs_ref, vs_ref_iso)]

    x_tr, y_tr = _subset(bed.train_x, bed.train_y if cond else None, params.n_samples, seed + 1)
    x_ho, y_ho = _subset(
        bed.held_out_x, bed.held_out_y if cond else None, params.n_samples, seed + 2
    )
    tr_eps, tr_ref, tr_iso = on_data(x_tr, y_tr, 1)
    ho_eps, ho_ref, _ = on_data(x_ho, y_ho, 2)
    # DDIM paths from x_T ~ N(0, I), labels cycling through the classes
    n = params.n_paths
    g = torch.Generator().manual_seed(1_000_003 * seed + 10_007 * 3)
    x_T = torch.randn((n, *shape), generator=g)  # noqa: N806 - the paper's symbol
    y_path = torch.arange(n) % bed.num_classes if cond else None
    rms, iso = [], []
    for rows in _chunks(n, traj.K, d):
        kw = {"y": y_path[rows]} if y_path is not None else None
        e = errors_along_path(
            bed.model, ref.model, x_T[rows], traj, model_kwargs=kw, reference_name=ref.name
        ).errors
        rms.append(compact_errors(e))
        iso.append(reduce_dim(e, shape, iso_dim, seed))
    path_rms, path_iso = np.concatenate(rms, axis=1), np.concatenate(iso, axis=1)
    return Collected(
        train_vs_eps=ErrorSample(tr_eps, levels, "training data", TRUE_NOISE, against_noise=True),
        held_vs_eps=ErrorSample(ho_eps, levels, "held-out data", TRUE_NOISE, against_noise=True),
        train_vs_ref=ErrorSample(tr_ref, levels, "training data", ref.name),
        held_vs_ref=ErrorSample(ho_ref, levels, "held-out data", ref.name),
        path_vs_ref=ErrorSample(path_rms, levels, "ddim path", ref.name, paired=True),
        path_iso=ErrorSample(path_iso, levels, "ddim path", ref.name, paired=True),
        train_iso=ErrorSample(tr_iso, levels, "training data", ref.name),
        y_train=y_tr,
        y_held=y_ho,
        y_path=y_path,
    )


# ===================================================================== the run
@dataclass(frozen=True, eq=False)
class Result:
    """Everything the chapter shows: the samples, the audits' rows (supported / contradicted /
    inconclusive, Holm over each family), the profiles, the decomposition and the spectra, and
    the sizes the prose cites (rows, paths, the isotropy audit's dimension, rows per class). A
    committed result keeps everything but the error samples (``samples`` is ``None``,
    :func:`artifact_result`); the page reads the rest."""

    params: Params
    name: str  # the model under audit, e.g. "mixture-2d (mixture-2d-mlp)"
    reference_name: str
    exact: bool
    conditional: bool
    num_classes: int
    dim: int
    traj: Trajectory
    weights: FloatArray  # c_k^2 = (sigma_k - sigma_{k-1})^2, in sampling order
    samples: Collected | None = field(repr=False)  # None in a committed result
    n_train: int  # training rows per level
    n_held: int  # held-out rows per level
    n_paths: int  # DDIM paths
    dim_iso: int  # the isotropy audit's dimension (reduce_dim)
    class_rows_held: NDArray[np.int64] | None  # held-out rows per class (conditional models)
    class_rows_path: NDArray[np.int64] | None  # paths per class
    rows_held: list[AuditResult]  # held-out vs training, vs eps
    rows_path: list[AuditResult]  # DDIM path vs training, vs the reference (qualified)
    rows_control: list[AuditResult]  # held-out vs training, vs the reference (inexact only)
    rows_class_held: list[AuditResult]
    rows_class_path: list[AuditResult]
    rows_iso: list[AuditResult]
    prof_held: TransferProfile
    prof_path: TransferProfile
    prof_control: TransferProfile | None
    unreliable: NDArray[np.bool_]
    cpe_held: CPERatio
    cpe_path: CPERatio
    cpe_control: CPERatio | None
    decomposition: ProfileDecomposition | None
    shares: CPEShares | None
    spec_path: ErrorSpectrum
    spec_data: ErrorSpectrum
    accumulated: AccumulatedAnisotropy
    seconds_collect: float
    seconds: float

    @property
    def levels(self) -> FloatArray:
        return self.traj.alpha_bar

    @property
    def sigma(self) -> FloatArray:
        return self.traj.sigma

    @property
    def K(self) -> int:  # noqa: N802 - the paper's symbol
        return self.traj.K

    @property
    def traj_label(self) -> str:
        return f"{self.K}-step {self.traj.name}"

    @property
    def ref_short(self) -> str:
        if self.conditional:
            return "class-conditional empirical eps*"
        if self.exact:
            return "exact eps*"
        return "empirical eps* of the training rows"

    def sources(self) -> list[tuple[str, str, list[AuditResult]]]:
        """``(source, claim, rows)`` of each verdict family: each comparison (which data,
        against which reference) is its own source, so the scorecard keeps them apart."""
        who, tl, ref = self.name, self.traj_label, self.ref_short
        band = f"within ±{100 * TOLERANCE:.0f}%"
        out = [
            (
                f"{who}: held-out vs training data, vs eps (true noise)",
                f"held-out MSE = training MSE ({band})",
                self.rows_held,
            ),
            (
                f"{who}: {tl} DDIM path vs training data, vs {ref}",
                f"path MSE = training MSE ({band})",
                self.rows_path,
            ),
            (
                f"{who}: per class, held-out vs training data, vs eps (true noise)",
                f"per class: held-out MSE = training MSE ({band})",
                self.rows_class_held,
            ),
            (
                f"{who}: per class, {tl} DDIM path vs training data, vs {ref}",
                f"per class: path MSE = training MSE ({band})",
                self.rows_class_path,
            ),
            (
                f"{who}: {tl} DDIM path, vs {ref}",
                f"the path error is isotropic (rho <= {DEFAULT_ANISOTROPY_TOLERANCE:g})",
                self.rows_iso,
            ),
        ]
        return [s for s in out if s[2]]

    @property
    def verdicts(self) -> list[AuditResult]:
        """Every verdict row, with its source."""
        return [r for src, _, rows in self.sources() for r in with_source(rows, src)]


def _class_rows(y: torch.Tensor | None, bed: Any) -> NDArray[np.int64] | None:
    """Rows per class of a conditional sample (``None`` without labels)."""
    if y is None or not bed.conditional:
        return None
    return np.bincount(y.numpy(), minlength=int(bed.num_classes)).astype(np.int64)


def artifact_result(result: Result) -> Result:
    """What a committed full-size run keeps (:mod:`vrg_analysis.studies.artifacts`): everything
    but the error samples (on the 28x28 model the isotropy samples alone are 20,000 rows x 10
    levels x 256 coordinates, about 400 MB), which the page does not draw: its figures, tables and
    numbers come from the verdict rows, the profiles, the spectra and the sizes the result
    records."""
    return replace(result, samples=None)


def run(params: Params) -> Result:
    """Collect the errors and run every audit of the chapter, cached by the parameters and
    the audited model's identity (:mod:`vrg_analysis.cache`): the notebook and
    ``python -m vrg_analysis audit`` share one computation.
    """
    return cached_audit(CHAPTER, params, _compute)


def _compute(params: Params) -> Result:
    """Collect the errors and run every audit of the chapter (module docstring)."""
    t0 = time.perf_counter()
    with limit_threads(1 if params.device == "cpu" and params.quick else None):
        bed = resolve_testbed(
            params.model, data=params.data, device=params.device, seed=params.seed
        )
        ref = bed.reference()
        traj = baseline(params.trajectory_name, bed.schedule, params.num_steps)
        weights = step_coefficients(traj)[::-1]  # (sigma_k - sigma_{k-1})^2, in sampling order
        s = collect(bed, traj, params)
        t_collect = time.perf_counter() - t0
        K = traj.K  # noqa: N806
        tol = TOLERANCE
        rows_held = transfer_audit(
            s.train_vs_eps, s.held_vs_eps, tolerance=tol, label="held-out vs training"
        )
        prof_held = transfer_profile(s.train_vs_eps, s.held_vs_eps, label="held-out vs training")
        rows_path = transfer_audit(
            s.train_vs_ref, s.path_vs_ref, tolerance=tol, label="path vs training"
        )
        prof_path = transfer_profile(s.train_vs_ref, s.path_vs_ref, label="path vs training")
        if ref.exact:
            rows_ctrl: list[AuditResult] = []
            prof_ctrl = None
            unreliable = np.zeros(K, dtype=bool)
            cpe_ctrl = None
        else:
            rows_ctrl = transfer_audit(
                s.train_vs_ref, s.held_vs_ref, tolerance=tol, label="control"
            )
            prof_ctrl = transfer_profile(s.train_vs_ref, s.held_vs_ref, label="control")
            unreliable = np.array([r.verdict == "contradicted" for r in rows_ctrl])
            cpe_ctrl = cpe_ratio(s.train_vs_ref, s.held_vs_ref, weights)
        ctrl_ratio = prof_ctrl.ratio if prof_ctrl is not None else None
        rows_path = qualify(rows_path, traj.alpha_bar, unreliable, ctrl_ratio)
        rows_ca: list[AuditResult] = []
        rows_cb: list[AuditResult] = []
        # per class where a class has the rows for it (the pooled rows above cover every class)
        held_classes = classes_to_audit(s.y_train, s.y_held) if bed.conditional else []
        path_classes = classes_to_audit(s.y_train, s.y_path) if bed.conditional else []
        if held_classes:
            rows_ca = transfer_by_class(
                s.train_vs_eps,
                s.held_vs_eps,
                s.y_train,
                s.y_held,
                classes=held_classes,
                tolerance=tol,
                label="held-out vs training",
            )
        if path_classes:
            rows_cb = transfer_by_class(
                s.train_vs_ref,
                s.path_vs_ref,
                s.y_train,
                s.y_path,
                classes=path_classes,
                tolerance=tol,
                label="path vs training",
            )
            rows_cb = qualify(rows_cb, traj.alpha_bar, unreliable, ctrl_ratio)
        dec = shares = None
        if ref.exact and bed.mixture is not None:
            dec = decompose_profile(
                bed.model,
                bed.mixture,
                traj.alpha_bar,
                n=params.n_decompose,
                generator=torch.Generator().manual_seed(1_000_003 * params.seed + 4),
            )
            shares = cpe_shares(dec, traj)
        rows_iso = anisotropy_audit(
            s.path_iso,
            tolerance=DEFAULT_ANISOTROPY_TOLERANCE,
            bootstrap=params.bootstrap,
            seed=params.seed,
        )
        rows_iso = qualify(rows_iso, traj.alpha_bar, unreliable, ctrl_ratio)
        result = Result(
            params=params,
            name=bed.name if bed.model_name == bed.name else f"{bed.name} ({bed.model_name})",
            reference_name=ref.name,
            exact=bool(ref.exact),
            conditional=bool(bed.conditional),
            num_classes=int(bed.num_classes),
            dim=int(np.prod(bed.sample_shape)),
            traj=traj,
            weights=weights,
            samples=s,
            n_train=s.train_vs_eps.n,
            n_held=s.held_vs_eps.n,
            n_paths=s.path_vs_ref.n,
            dim_iso=s.path_iso.dim,
            class_rows_held=_class_rows(s.y_held, bed),
            class_rows_path=_class_rows(s.y_path, bed),
            rows_held=rows_held,
            rows_path=rows_path,
            rows_control=rows_ctrl,
            rows_class_held=rows_ca,
            rows_class_path=rows_cb,
            rows_iso=rows_iso,
            prof_held=prof_held,
            prof_path=prof_path,
            prof_control=prof_ctrl,
            unreliable=unreliable,
            cpe_held=cpe_ratio(s.train_vs_eps, s.held_vs_eps, weights),
            cpe_path=cpe_ratio(s.train_vs_ref, s.path_vs_ref, weights),
            cpe_control=cpe_ctrl,
            decomposition=dec,
            shares=shares,
            spec_path=error_spectrum(s.path_iso),
            spec_data=error_spectrum(s.train_iso),
            accumulated=accumulated_error_anisotropy(s.path_iso, trajectory=traj),
            seconds_collect=t_collect,
            seconds=time.perf_counter() - t0,
        )
    return result


# ===================================================================== figures
_SERIES = sns.color_palette("colorblind", 8).as_hex()
_HELD, _PATH, _CONTROL = _SERIES[0], _SERIES[3], _SERIES[7]
_SPREAD, _MODEL = _SERIES[1], _SERIES[2]


def _log_axis_plain(ax: Any) -> None:
    """Plain numbers (1, 2, 5 per decade) on a logarithmic y axis."""
    ax.yaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def figure_transfer(result: Result) -> Figure:
    """Left: the MSE ratio (other / training) per level with its 95% interval (delta method on the
    log ratio) against the tolerance band. Right: the ratio of the CPE each profile implies on
    the trajectory, with its interval (labels: the two CPE values, other / training)."""
    r = result
    band = (1.0 / (1.0 + TOLERANCE), 1.0 + TOLERANCE)
    fig, (ax0, ax1) = plt.subplots(
        1, 2, figsize=(PAGE_WIDTH, 3.6), gridspec_kw={"width_ratios": [3, 2]}
    )
    ax0.axhspan(*band, color="0.88", lw=0, label=f"tolerance band (±{100 * TOLERANCE:.0f}%)")
    ax0.axhline(1.0, color="k", lw=0.8)
    series = [
        (r.prof_held, "o", _HELD, 0.93, "held-out / training (vs eps)"),
        (r.prof_path, "s", _PATH, 1.0, f"DDIM path / training (vs {r.ref_short})"),
    ]
    if r.prof_control is not None:
        series.append(
            (
                r.prof_control,
                "^",
                _CONTROL,
                1.07,
                f"control: held-out / training (vs {r.ref_short})",
            )
        )
    for prof, marker, c, shift, label in series:
        ax0.errorbar(
            r.sigma * shift,
            prof.ratio,
            yerr=[prof.ratio - prof.ratio_lo, prof.ratio_hi - prof.ratio],
            fmt=marker,
            color=c,
            ms=4,
            capsize=2.5,
            lw=1,
            label=label,
        )
    if r.unreliable.any():
        ax0.scatter(
            r.sigma[r.unreliable],
            r.prof_path.ratio[r.unreliable],
            s=110,
            facecolors="none",
            edgecolors="k",
            lw=1,
            label="reference unreliable (control contradicted)",
        )
    ax0.set(
        xscale="log",
        yscale="log",
        xlabel=r"noise level $\sigma$ of the trajectory's levels",
        ylabel="MSE ratio (other / training), 95% CI",
        title="Transfer of the profiled error",
    )
    _log_axis_plain(ax0)
    ax0.legend(fontsize=7, loc="best")
    comparisons = [
        ("held-out /\ntraining (vs eps)", r.cpe_held, _HELD, "o"),
        ("DDIM path /\ntraining (own error)", r.cpe_path, _PATH, "s"),
    ]
    if r.cpe_control is not None:
        comparisons.append(
            ("control: held-out\n/ training (own error)", r.cpe_control, _CONTROL, "^")
        )
    ax1.axhspan(*band, color="0.88", lw=0)
    ax1.axhline(1.0, color="k", lw=0.8)
    for j, (_, c, col, marker) in enumerate(comparisons):
        iv = c.ratio
        ax1.errorbar(
            j,
            iv.estimate,
            yerr=[[iv.estimate - iv.low], [iv.high - iv.estimate]],
            fmt=marker,
            color=col,
            ms=6,
            capsize=4,
        )
        ax1.annotate(
            f"{c.other:.3g} / {c.reference:.3g}",
            (j, iv.high),
            xytext=(0, 5),
            textcoords="offset points",
            ha="center",
            fontsize=7,
        )
    ax1.set_xticks(range(len(comparisons)), [c[0] for c in comparisons], fontsize=7)
    ax1.set_xlim(-0.6, len(comparisons) - 0.4)
    ax1.set_yscale("log")
    lo_all = min(band[0], *(c.ratio.low for _, c, _, _ in comparisons))
    hi_all = max(band[1], *(c.ratio.high for _, c, _, _ in comparisons))
    ax1.set_ylim(lo_all / 1.3, hi_all * 1.5)
    _log_axis_plain(ax1)
    ax1.set(ylabel="CPE ratio (other / training), 95% CI", title="Change of the predicted CPE")
    fig.tight_layout()
    return fig


def figure_decomposition(result: Result) -> Figure:
    """Left: the profiled MSE at the trajectory's levels (training data, 95% interval) and, on an
    exact target, its split into irreducible spread and the model's own error (shaded: 95%
    intervals). Right: each step's term of CPE, noisiest step first (log scale)."""
    r = result
    sigma, k = r.sigma, r.K
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 3.4))
    w = r.prof_held.mse_reference
    lo, hi = normal_bounds(w, r.prof_held.sem_reference)
    ax0.errorbar(
        sigma,
        w,
        yerr=[w - lo, hi - w],
        fmt="o-",
        color="k",
        ms=3.5,
        capsize=2.5,
        label=r"profiled $w$ (training data, vs $\epsilon$)",
    )
    step = np.arange(1, k + 1)
    if r.decomposition is not None and r.shares is not None:
        dec = r.decomposition
        for part, c, label in (
            ("spread", _SPREAD, "irreducible spread"),
            ("model_error", _MODEL, "model's own error"),
        ):
            m = np.asarray(getattr(dec, part))
            lo, hi = normal_bounds(m, np.asarray(getattr(dec, f"{part}_se")))
            ax0.fill_between(sigma, lo, hi, color=c, alpha=0.25, lw=0)
            ax0.plot(sigma, m, "-", color=c, label=f"{label} (decomposition)")
        ax1.bar(step - 0.2, r.shares.spread_terms[::-1], 0.4, color=_SPREAD, label="spread")
        ax1.bar(
            step + 0.2, r.shares.model_terms[::-1], 0.4, color=_MODEL, label="model's own error"
        )
    else:
        ax1.bar(step, r.weights * w, 0.6, color="k", alpha=0.7, label=r"$c_k^2\,w$ (total)")
    ax1.legend(fontsize=7)
    ax0.set(
        xscale="log",
        yscale="log",
        xlabel=r"noise level $\sigma$",
        ylabel="MSE per dimension",
        title="The profile at the trajectory's levels",
    )
    ax0.legend(fontsize=7)
    ax1.set_xticks(step, [f"{j}\n{s:.2g}" for j, s in zip(step, sigma, strict=True)], fontsize=6)
    ax1.set(
        yscale="log",
        xlabel=r"step (1 = noisiest) and its $\sigma$",
        ylabel=r"CPE term $(\sigma_k - \sigma_{k-1})^2 \times$ part",
        title=f"Where CPE comes from ({r.traj_label})",
    )
    fig.tight_layout()
    return fig


def figure_anisotropy(result: Result) -> Figure:
    """Left: eigenvalues of the path error's second moment per level in units of ``w`` (colour:
    sigma). Middle: effective number of directions per level, along the path and on training
    data. Right: the spectrum of the accumulated error at the clean sample in units of its mean
    eigenvalue, if the steps were independent and as observed on the paths."""
    r = result
    sigma, d_iso = r.sigma, r.dim_iso
    spec_path, spec_data, acc = r.spec_path, r.spec_data, r.accumulated
    iso_tol = DEFAULT_ANISOTROPY_TOLERANCE
    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(PAGE_WIDTH * 1.3, 3.4))
    cmap = plt.get_cmap("viridis")
    norm = LogNorm(vmin=float(sigma.min()), vmax=float(sigma.max()))
    idx = np.arange(1, d_iso + 1)
    for i in range(r.K):
        ax0.plot(
            idx,
            d_iso * spec_path.eigenvalues[i] / spec_path.trace[i],
            "-",
            marker=".",
            color=cmap(norm(sigma[i])),
            lw=1,
        )
    ax0.axhline(1.0, color="k", ls=":", lw=1, label="isotropic")
    ax0.axhline(
        iso_tol, color=_PATH, ls="--", lw=1, label=f"tolerance on the top one ({iso_tol:g})"
    )
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax0, label=r"$\sigma$")
    ax0.set(
        yscale="log",
        xlabel="eigenvalue index",
        ylabel=r"$\lambda_i / w$",
        title="Path error spectrum per level",
    )
    ax0.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax0.legend(fontsize=7)
    for spec, c, label in ((spec_path, _PATH, "DDIM path"), (spec_data, _HELD, "training data")):
        ax1.plot(sigma, spec.participation_ratio, "o-", color=c, ms=3.5, label=f"{label}: PR")
        ax1.plot(sigma, spec.entropy_rank, "s--", color=c, ms=3, label=f"{label}: entropy rank")
    ax1.axhline(d_iso, color="k", ls=":", lw=1, label=f"d = {d_iso} (isotropic)")
    ax1.set(
        xscale="log",
        xlabel=r"noise level $\sigma$",
        ylabel="effective number of directions",
        title="Effective rank of the own error",
    )
    ax1.set_ylim(0, d_iso * 1.08)
    ax1.legend(fontsize=6.5)
    for lam, c, label in (
        (acc.independent_eigenvalues, _SERIES[4], r"$\sum_k c_k^2 M_k$ (independent)"),
        (acc.observed_eigenvalues, _PATH, r"$\sum_k c_k\delta_k$ (observed)"),
    ):
        ax2.plot(idx, d_iso * lam / lam.sum(), "o-", color=c, ms=3, label=label)
    ax2.axhline(1.0, color="k", ls=":", lw=1, label="isotropic (what CPE assumes)")
    ax2.set(
        yscale="log",
        xlabel="eigenvalue index",
        ylabel=r"$\lambda_i$ / mean eigenvalue",
        title="Accumulated error at the clean sample",
    )
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (ax0, ax2):
        _log_axis_plain(ax)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


def figures(result: Result) -> dict[str, Figure]:
    """The chapter's figures by glue name (:data:`FIGURES`)."""
    return {
        "fig_transfer": figure_transfer(result),
        "fig_decomposition": figure_decomposition(result),
        "fig_anisotropy": figure_anisotropy(result),
    }


# ===================================================================== tables
def verdict_table(result: Result) -> Any:
    """One row per verdict family (source): the claim judged, the overall verdict (contradicted
    if any level contradicts it, supported if all support it), the counts and the effect furthest
    beyond its tolerance."""
    rows = []
    for source, claim, family in result.sources():
        for s in summarize(family).values():
            rows.append(
                {
                    "source": source,
                    "claim": claim,
                    "verdict": s["verdict"],
                    "tests": s["tests"],
                    **{v: s[v] for v in VERDICTS},
                    "largest effect": s["largest_effect"],
                    "at": s["at"],
                }
            )
    return styled(
        pd.DataFrame(rows),
        formats={"largest effect": "{:.3g}"},
        caption=f"Verdicts on {result.name} (Holm over the levels of each family)",
    )


def level_table(result: Result) -> Any:
    """Per level: the MSE ratio with its 95% interval and the verdict, held-out vs training and
    DDIM path vs training (and the control on an inexact target)."""
    r = result
    out = pd.DataFrame({"sigma": r.sigma, "alpha_bar": r.levels})
    families = [("held-out", r.prof_held, r.rows_held), ("path", r.prof_path, r.rows_path)]
    if r.prof_control is not None:
        families.append(("control", r.prof_control, r.rows_control))
    verdicts = []
    for name, prof, rows in families:
        out[f"{name} ratio [95% CI]"] = [
            f"{m:.3g} [{lo:.3g}, {hi:.3g}]"
            for m, lo, hi in zip(prof.ratio, prof.ratio_lo, prof.ratio_hi, strict=True)
        ]
        out[f"{name} p (Holm)"] = [row.p_adjusted for row in rows]
        out[f"{name} verdict"] = [row.verdict for row in rows]
        verdicts.append(f"{name} verdict")
    return styled(
        out,
        formats={
            "sigma": "{:.3g}",
            "alpha_bar": "{:.4g}",
            **{c: "{:.2g}" for c in out if "p (" in c},
        },
        verdict_columns=verdicts,
        caption=(
            f"Transfer per level on {r.name}, {r.traj_label} levels; claim: the MSE ratio lies in "
            f"[{1 / (1 + TOLERANCE):.3f}, {1 + TOLERANCE:.2f}]"
        ),
    )


_LETTER = {"S": "supported", "C": "contradicted", "I": "inconclusive"}


def _letter_css(cell: Any) -> str:
    return verdict_css(_LETTER.get(str(cell)[-1:], ""))


def class_table(result: Result, which: str = "held") -> Any | None:
    """Per class (rows) and level (columns, noisiest first): the MSE ratio and its verdict
    (S supported, C contradicted, I inconclusive); ``which`` is ``"held"`` (held-out / training,
    vs eps) or ``"path"`` (path / training, vs the reference; ``*`` marks a level where the
    reference is unreliable). ``None`` for an unconditional model."""
    if which not in ("held", "path"):
        raise ValueError(f"which must be 'held' or 'path', got {which!r}")
    rows = result.rows_class_held if which == "held" else result.rows_class_path
    if not rows:
        return None
    sigma = result.sigma
    t = pd.DataFrame(
        {
            "class": [int(r.scope.split(":")[0].split()[1]) for r in rows],
            "sigma": [float(sigma[_level_of(r, result.levels)]) for r in rows],
            "cell": [f"{r.effect_size:.2f} {r.verdict[0].upper()}" for r in rows],
        }
    )
    table = t.pivot(index="class", columns="sigma", values="cell")[sorted(set(sigma), reverse=True)]
    marked = {
        s: which == "path" and bool(result.unreliable[int(np.argmin(np.abs(sigma - s)))])
        for s in table.columns
    }
    table.columns = [f"{s:.3g}" + ("*" if marked[s] else "") for s in table.columns]
    table.columns.name = "sigma"
    title = (
        "held-out / training MSE ratio (vs eps)"
        if which == "held"
        else f"path / training MSE ratio (vs {result.ref_short})"
    )
    caption = f"{result.name}, per class: {title}; S supported, C contradicted, I inconclusive"
    if any(marked.values()):
        caption += "; * reference unreliable at this level"
    return (
        table.style.set_caption(caption)
        .map(_letter_css)
        .set_table_styles(
            [
                {
                    "selector": "td, th",
                    "props": "padding: 0.05em 0.3em; white-space: nowrap; font-size: 0.85em",
                }
            ]
        )
    )


# ===================================================================== prose
@dataclass(frozen=True)
class Summary:
    """Every number and phrase the chapter's prose cites (glued under the field names)."""

    target_name: str
    traj_label: str
    n_tr: int
    n_ho: int
    n_paths: int
    dim: int
    tol_pct: float
    band_lo: float
    band_hi: float
    iso_tol: float
    run_setup: str
    reference_text: str
    text_a: str
    text_b: str
    text_ctrl: str
    cpe: Mapping[str, float]  # cpe_a_* (held-out), cpe_b_* (path): ref, other, ratio, lo, hi
    top_share: float
    n_contra_b: int
    contra_share: float
    top_sigma: float
    top_ratio_b: float
    top_ratio_a: float
    class_text: str
    spread_share: float
    model_share: float
    decomp_text: str
    iso_supported: int
    iso_contradicted: int
    iso_inconclusive: int
    K: int  # noqa: N815 - the paper's symbol
    iso_worst_rho: float
    iso_worst_sigma: float
    pr_min: float
    pr_max: float
    d_iso: int
    acc_top_ind: float
    acc_top_obs: float
    acc_rho_ind: float
    acc_rho_obs: float
    acc_pr_ind: float
    acc_pr_obs: float
    acc_iso_share: float
    pool_text: str
    n_verdicts: int
    seconds: float


def _reference_text(r: Result) -> str:
    if r.exact:
        return (
            "This target is exact: eps* is the analytic optimal predictor of its Gaussian "
            "mixture, so the error against it is the model's own error, with no irreducible "
            "spread and no approximation in the reference."
        )
    return (
        "This target has no analytic eps*. The reference is the optimal predictor of the "
        "empirical training distribution (the minimiser of the training loss), "
        + ("per class label, " if r.conditional else "")
        + "the best available but flawed: at low noise it snaps to the nearest training point, "
        "so on any state not made from a training point (held-out data, sampler states) its own "
        "distance from the truth is counted as model error. A control measures that: the same "
        "comparison on held-out real data, which the model never saw either. At levels where "
        "the control contradicts transfer, the reference, not the sampler, can explain the gap, "
        "and those path verdicts are set to inconclusive."
    )


def _counts_text(rows: Sequence[AuditResult]) -> str:
    c = _counts(rows)
    return ", ".join(f"{c[v]} {v}" for v in VERDICTS)


def _class_text(r: Result) -> str:
    if not r.conditional:
        return (
            "This target is not class-conditional, so there is no per-class audit; run the "
            "notebook with model = digits-cond for one."
        )
    n_ho_class, n_path_class = r.class_rows_held, r.class_rows_path
    if n_ho_class is None or n_path_class is None:
        raise ValueError("a conditional result needs its rows per class (class_rows_held/path)")

    def span(v: NDArray[np.int64]) -> str:
        return f"{v.min()}" if v.min() == v.max() else f"{v.min()} to {v.max()}"

    text = (
        f"Per class ({r.num_classes} classes x {r.K} levels, all corrected together): "
        f"held-out vs training {_counts_text(r.rows_class_held)}; path vs training "
        f"{_counts_text(r.rows_class_path)}. The sample per class is small: {span(n_ho_class)} "
        f"held-out rows and {span(n_path_class)} paths per class, against "
        f"{r.n_held} and {r.n_paths} pooled."
    )
    need = samples_needed(r.rows_class_held)
    if need:
        text += (
            f" Showing a per-class ratio inside ±{100 * TOLERANCE:.0f}% would take about "
            f"{int(np.median(need))} rows per side (median over the inconclusive cells), "
            f"{np.median(need) / n_ho_class.mean():.0f} times the held-out rows a class has "
            "here: a per-class profile, the natural input of a per-class VRG, cannot be checked "
            "on a data set of this size."
        )
    return text


def _decomp_text(r: Result) -> str:
    if r.shares is None or r.decomposition is None:
        return (
            "This split needs an analytic eps* (the exact predictor of a Gaussian-mixture "
            "testbed), which this target does not have: against an empirical optimal predictor "
            "the 'spread' collapses to 0 at low noise (it memorises the training points) and the "
            "split would be an artefact of the training set. Only the total profile and its CPE "
            "terms are shown; run the notebook with model = mixture-2d or mixture-8d for the "
            "decomposition."
        )
    sh, dec = r.shares, r.decomposition
    spread_terms, model_terms = sh.spread_terms[::-1], sh.model_terms[::-1]
    model_top = float(model_terms[0] / sh.cpe_model)
    spread_top = float(spread_terms[0] / sh.cpe_spread)
    total = normal_interval(sh.cpe_total, sh.cpe_total_se)
    model = normal_interval(sh.cpe_model, sh.cpe_model_se)
    rest_spread = float(spread_terms[1:].sum() / (spread_terms[1:] + model_terms[1:]).sum())
    return (
        f"On this trajectory, CPE = {sh.cpe_total:.4g} (± {total.half_width:.2g}, 95%) splits "
        f"into {100 * sh.spread_share:.1f}% irreducible spread ({sh.cpe_spread:.4g}) and "
        f"{100 * sh.model_share:.1f}% the model's own error ({sh.cpe_model:.4g} ± "
        f"{model.half_width:.2g}); the cross term is {100 * sh.cross_share:.2f}% (it should be 0; "
        f"|z| up to {np.max(np.abs(dec.cross_z)):.2g} over the levels). The noisiest step "
        f"carries {100 * model_top:.1f}% of the model-error CPE and {100 * spread_top:.1f}% of the "
        f"spread CPE. So {100 * sh.spread_share:.0f}% of what VRG's objective weights is error no "
        "model can remove and a deterministic sampler does not carry. The model-error part is "
        f"{100 * model_top:.0f}% the first step, whose weight (sigma_K - sigma_(K-1))^2 is set "
        f"almost entirely by the start level; of the CPE of the other {r.K - 1} steps, which a "
        f"trajectory optimiser re-times, {100 * rest_spread:.0f}% is spread."
    )


def summary(result: Result) -> Summary:
    """The numbers and phrases of the chapter's prose."""
    r = result
    sigma, k = r.sigma, r.K
    terms = r.weights * r.prof_held.mse_reference  # the training CPE's terms (vs eps)
    contra_b = np.array([row.verdict == "contradicted" for row in r.rows_path])
    if r.exact:
        text_ctrl = "Not needed here: the reference is exact."
    else:
        assert r.prof_control is not None
        text_ctrl = (
            "The control (held-out vs training data, against the same reference) is "
            + describe(r.rows_control, r.prof_control, sigma)
            + f". It marks {int(r.unreliable.sum())} of {k} levels where the reference is "
            "unreliable; the path verdicts there are inconclusive."
        )
    cpe: dict[str, float] = {}
    for key, c in (("cpe_a", r.cpe_held), ("cpe_b", r.cpe_path)):
        cpe.update(
            {
                f"{key}_ref": c.reference,
                f"{key}_other": c.other,
                f"{key}_ratio": c.ratio.estimate,
                f"{key}_lo": c.ratio.low,
                f"{key}_hi": c.ratio.high,
            }
        )
    iso = _counts(r.rows_iso)
    worst = max(range(k), key=lambda i: r.rows_iso[i].effect_size)
    acc, d_iso = r.accumulated, r.dim_iso
    shares = r.shares
    if d_iso < r.dim:
        pool_text = (
            f"Here d = {r.dim} is too large for d x d matrices and the bootstrap, so the errors "
            f"are reduced to {d_iso} dimensions first (block sums over pixels divided by the "
            "block size, or a random orthonormal projection; an isotropic error stays isotropic "
            "with the same w per coordinate, so the test keeps its meaning)."
        )
    else:
        pool_text = f"The errors are used in full (d = {r.dim})."
    p = r.params
    return Summary(
        target_name=r.name,
        traj_label=r.traj_label,
        n_tr=r.n_train,
        n_ho=r.n_held,
        n_paths=r.n_paths,
        dim=r.dim,
        tol_pct=100 * TOLERANCE,
        band_lo=1 / (1 + TOLERANCE),
        band_hi=1 + TOLERANCE,
        iso_tol=DEFAULT_ANISOTROPY_TOLERANCE,
        run_setup=(
            f"model {r.name}, d = {r.dim}, {p.mode} sizes: {r.n_train} training and "
            f"{r.n_held} held-out rows per level, {r.n_paths} DDIM paths, seed "
            f"{p.seed}; the model's own error is measured against the {r.ref_short}"
        ),
        reference_text=_reference_text(r),
        text_a=describe(r.rows_held, r.prof_held, sigma),
        text_b=describe(r.rows_path, r.prof_path, sigma, skip=r.unreliable),
        text_ctrl=text_ctrl,
        cpe=cpe,
        top_share=100 * float(terms[0] / terms.sum()),
        n_contra_b=int(contra_b.sum()),
        contra_share=100 * float(terms[contra_b].sum() / terms.sum()),
        top_sigma=float(sigma[0]),
        top_ratio_b=float(r.prof_path.ratio[0]),
        top_ratio_a=float(r.prof_held.ratio[0]),
        class_text=_class_text(r),
        spread_share=100 * shares.spread_share if shares is not None else math.nan,
        model_share=100 * shares.model_share if shares is not None else math.nan,
        decomp_text=_decomp_text(r),
        iso_supported=iso["supported"],
        iso_contradicted=iso["contradicted"],
        iso_inconclusive=iso["inconclusive"],
        K=k,
        iso_worst_rho=r.rows_iso[worst].effect_size,
        iso_worst_sigma=float(sigma[worst]),
        pr_min=float(r.spec_path.participation_ratio.min()),
        pr_max=float(r.spec_path.participation_ratio.max()),
        d_iso=d_iso,
        acc_top_ind=100 * float(acc.independent_eigenvalues[0] / acc.independent_eigenvalues.sum()),
        acc_top_obs=100 * float(acc.observed_eigenvalues[0] / acc.observed_eigenvalues.sum()),
        acc_rho_ind=acc.independent_ratio,
        acc_rho_obs=acc.observed_ratio,
        acc_pr_ind=acc.independent_participation,
        acc_pr_obs=acc.observed_participation,
        acc_iso_share=100 / d_iso,
        pool_text=pool_text,
        n_verdicts=len(r.verdicts),
        seconds=r.seconds,
    )


# ===================================================================== outputs
def write_outputs(
    result: Result,
    verdict_dir: str | Path,
    figure_dir: str | Path | None = None,
    figs: Mapping[str, Figure] | None = None,
) -> tuple[Path, Path]:
    """Write the verdict table ``<verdict_dir>/audit_transfer.csv`` and ``.md`` (every row with
    its source; :func:`~vrg_analysis.assumptions.verdicts.write_results`) and, when
    ``figure_dir`` is given, each figure as ``<figure_dir>/audit_transfer_<name>.png`` (``figs``:
    figures already drawn, else drawn here). Returns the table's paths."""
    paths = write_results(result.verdicts, verdict_dir, CHAPTER)
    if figure_dir:
        drawn = dict(figs) if figs is not None else figures(result)
        save_figures(drawn, figure_dir, CHAPTER)
        if figs is None:
            for fig in drawn.values():
                plt.close(fig)
    return paths
