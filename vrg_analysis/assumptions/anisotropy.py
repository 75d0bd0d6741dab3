"""Is the prediction error isotropic, and does it matter for CPE?

VRG describes the error at level ``a`` by one number, the per-dimension MSE ``w(a)``, as if
``delta ~ N(0, w(a) I)``. Here the shape of the error is measured per level from an
:class:`~.samples.ErrorSample`: the eigenvalues ``l_1 >= .. >= l_d`` of its second-moment matrix
``M = E[delta delta^T]`` (``tr M / d = w``; ``center=True`` uses the covariance instead, which
leaves the mean to the zero-mean audit), and

- the **participation ratio** ``(sum l)^2 / sum l^2`` and the **entropy rank** ``exp(H(p))`` with
  ``p = l / sum l`` (Roy & Vetterli 2007): both ``d`` for isotropic errors, 1 for a single
  direction;
- the **top share** ``l_1 / sum l`` and the **anisotropy ratio** ``rho = d l_1 / sum l
  = l_1 / w``: the largest error variance along any direction, in units of ``w`` (1 isotropic,
  ``d`` rank one).

Audit (:func:`anisotropy_audit`), one row per level:

- test: the spatial-sign test of sphericity (Sirkia, Taskinen, Oja & Tyler 2009, J. Nonparametric
  Stat. 21): with ``u_i = delta_i / ||delta_i||`` and ``S = mean u u^T``,
  ``Q = n d (d + 2) / 2 (tr S^2 - 1 / d) ~ chi2((d - 1)(d + 2) / 2)`` under spherical symmetry,
  for any distribution of the norm when the errors are not centred (``center=False``, the
  default: heavy-tailed errors do not make it reject); centring on the sample mean breaks this
  for infinite-variance errors;
- effect: ``rho``. Its plug-in estimate ``d l_1 / tr`` of the sample matrix is biased upwards
  (for isotropic errors, about ``(1 + sqrt(d / n))^2``, the Marchenko-Pastur edge), so the
  effect reported is bootstrap bias-corrected, ``2 rho_hat - mean(rho*)``, with the basic
  (reflected) bootstrap interval ``[2 rho_hat - q_hi, 2 rho_hat - q_lo]`` over samples, both
  clipped at 1 (``rho >= 1`` by definition). Near isotropy (tied eigenvalues) the bootstrap
  under-corrects, so the interval stays above the truth: "supported" needs ``n`` well above ``d``,
  but the bias cannot produce a false "contradicted" (the test is calibrated);
- verdict: ``violated`` when the corrected test rejects and ``rho > tolerance``; ``holds`` when
  the interval's upper end is ``<= tolerance``; else ``inconclusive``.

Default tolerance ``rho <= 1.5``: no direction carries more than 1.5 times the isotropic variance
``w``, i.e. the error's standard deviation along any direction is within ``sqrt(1.5) = 1.22``
times what the isotropic picture says. Meaningful for every ``d`` (in ``d = 2`` it allows
eigenvalues up to 3:1, in high dimension it is strict: images' errors are spatially correlated).

Consequence for CPE (:func:`accumulated_error_anisotropy`). The sampler adds ``c_k delta_k``
(``c_k = sigma_{k+1} - sigma_k`` in sampling order, the last step ending at ``sigma = 0``). With
independent steps the accumulated error's second moment is ``sum_k c_k^2 M_k`` and its
per-dimension variance ``tr(sum_k c_k^2 M_k) / d = sum_k c_k^2 w_k``, which is CPE: a *trace*.
Any anisotropy or rotation of the ``M_k`` that keeps their traces leaves CPE unchanged, so VRG's
objective is blind to it; what it changes is how the accumulated error is spread over directions.
From a paired path sample the observed accumulated error ``sum_k c_k delta_k`` is also measured:
its top share shows whether errors of successive steps line up in the same directions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from vrg_analysis._checks import frozen_array
from vrg_analysis.assumptions.samples import ErrorSample, check_same_levels
from vrg_analysis.assumptions.verdicts import AuditResult, Correction, with_adjusted
from vrg_analysis.core.cpe import step_increments
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.evaluation.stats import decide as stats_decide

__all__ = [
    "participation_ratio",
    "entropy_rank",
    "ErrorSpectrum",
    "error_spectrum",
    "spatial_sign_sphericity_test",
    "anisotropy_audit",
    "AccumulatedAnisotropy",
    "accumulated_error_anisotropy",
    "anisotropy_min_samples",
    "DEFAULT_ANISOTROPY_TOLERANCE",
]

FloatArray = NDArray[np.float64]

#: Largest ``rho = l_max / w`` counted as isotropic (module docstring).
DEFAULT_ANISOTROPY_TOLERANCE = 1.5


# --------------------------------------------------------------------------- spectra
def _eigenvalues(values: NDArray[np.float64]) -> FloatArray:
    lam = np.asarray(values, dtype=np.float64)
    if lam.ndim != 1 or lam.size < 1:
        raise ValueError(f"eigenvalues must be a non-empty 1-D array, got shape {lam.shape}")
    lam = np.clip(lam, 0.0, None)  # round-off negatives of a PSD matrix
    if not lam.sum() > 0.0:
        raise ValueError("all eigenvalues are zero: the errors are constant")
    return lam


def participation_ratio(eigenvalues: NDArray[np.float64]) -> float:
    """``(sum l)^2 / sum l^2``: ``d`` for equal eigenvalues, 1 for a single nonzero one."""
    lam = _eigenvalues(eigenvalues)
    return float(lam.sum() ** 2 / np.sum(lam**2))


def entropy_rank(eigenvalues: NDArray[np.float64]) -> float:
    """``exp(-sum p log p)`` with ``p = l / sum l`` (Roy & Vetterli 2007's effective rank)."""
    lam = _eigenvalues(eigenvalues)
    p = lam / lam.sum()
    p = p[p > 0.0]
    return float(math.exp(-np.sum(p * np.log(p))))


def _moment(e: FloatArray, center: bool) -> FloatArray:
    """``[d, d]`` second-moment (or covariance) matrix of rows ``e [n, d]``."""
    x = e - e.mean(axis=0) if center else e
    return (x.T @ x) / (x.shape[0] - 1 if center else x.shape[0])


@dataclass(frozen=True, eq=False)
class ErrorSpectrum:
    """Eigen-spectrum of the error's second-moment (or covariance) matrix per level.

    ``eigenvalues[L, d]`` descending, ``top_direction[L, d]`` the leading unit eigenvector,
    ``trace[L]`` (``= d w`` for the second moment), ``participation_ratio``, ``entropy_rank``,
    ``top_share = l_1 / trace`` per level.
    """

    alpha_bar: FloatArray
    eigenvalues: FloatArray
    top_direction: FloatArray
    trace: FloatArray
    participation_ratio: FloatArray
    entropy_rank: FloatArray
    top_share: FloatArray
    n: int
    dim: int
    centered: bool
    source: str = ""

    def __post_init__(self) -> None:
        for name in (
            "alpha_bar",
            "eigenvalues",
            "top_direction",
            "trace",
            "participation_ratio",
            "entropy_rank",
            "top_share",
        ):
            object.__setattr__(self, name, frozen_array(getattr(self, name)))

    @property
    def anisotropy_ratio(self) -> FloatArray:
        """``rho = d l_1 / trace = l_1 / w``: 1 isotropic, ``d`` rank one."""
        return self.top_share * self.dim


def _spectrum(m: FloatArray) -> tuple[FloatArray, FloatArray]:
    lam, vec = np.linalg.eigh(0.5 * (m + m.T))
    return np.clip(lam[::-1], 0.0, None), vec[:, ::-1]


def _check_level_nonconstant(sample: ErrorSample, i: int, trace: float) -> None:
    if not trace > 0.0:
        raise ValueError(
            f"errors at level {i} ({sample.level_label(i)}) are constant (zero second moment): "
            "their spectrum is undefined"
        )


def error_spectrum(sample: ErrorSample, *, center: bool = False) -> ErrorSpectrum:
    """Per-level eigen-spectrum and effective ranks of ``E[delta delta^T]`` (``center=True``:
    of the covariance). With ``n < d`` the matrix has rank ``<= n``, so the ranks are capped."""
    if not isinstance(sample, ErrorSample):
        raise TypeError(f"sample must be an ErrorSample, got {type(sample).__name__}")
    L, d = sample.num_levels, sample.dim  # noqa: N806
    eig, top = np.empty((L, d)), np.empty((L, d))
    tr, pr, er = np.empty(L), np.empty(L), np.empty(L)
    for i in range(L):
        lam, vec = _spectrum(_moment(sample.errors[i], center))
        tr[i] = lam.sum()
        _check_level_nonconstant(sample, i, float(tr[i]))
        eig[i], top[i] = lam, vec[:, 0]
        pr[i], er[i] = participation_ratio(lam), entropy_rank(lam)
    return ErrorSpectrum(
        alpha_bar=sample.alpha_bar,
        eigenvalues=eig,
        top_direction=top,
        trace=tr,
        participation_ratio=pr,
        entropy_rank=er,
        top_share=eig[:, 0] / tr,
        n=sample.n,
        dim=d,
        centered=bool(center),
        source=f"{sample.source} vs {sample.reference}",
    )


# --------------------------------------------------------------------------- the test
def spatial_sign_sphericity_test(errors: NDArray[np.float64]) -> tuple[float, float, int]:
    """``(Q, p, df)``: the spatial-sign test of sphericity of rows ``errors [n, d]`` about 0.

    ``u_i = e_i / ||e_i||`` (rows of zero norm dropped), ``S = mean_i u_i u_i^T``,
    ``Q = n d (d + 2) / 2 * (tr S^2 - 1 / d)``, asymptotically ``chi2`` with
    ``(d - 1)(d + 2) / 2`` degrees of freedom under spherical symmetry (Sirkia et al. 2009).
    """
    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 2 or e.shape[1] < 2:
        raise ValueError(f"errors must have shape [n, d >= 2], got {e.shape}")
    norm = np.linalg.norm(e, axis=1)
    keep = norm > 0.0
    n, d = int(keep.sum()), e.shape[1]
    if n < 2:
        raise ValueError(f"need at least 2 nonzero error vectors, got {n}")
    u = e[keep] / norm[keep, None]
    s = (u.T @ u) / n
    q = n * d * (d + 2) / 2.0 * (float(np.sum(s * s)) - 1.0 / d)
    df = (d - 1) * (d + 2) // 2
    return q, float(stats.chi2.sf(q, df)), df


def _rho_boot(
    e: FloatArray, center: bool, bootstrap: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    n, d = e.shape
    out = np.empty(bootstrap)
    for b in range(bootstrap):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        x = e
        if center:
            x = e - (w @ e) / n
        m = (x.T * w) @ x / n
        lam = np.linalg.eigvalsh(0.5 * (m + m.T))
        out[b] = d * lam[-1] / max(lam.sum(), 1e-300)
    return out


def anisotropy_min_samples(dim: int) -> int:
    """Fewest samples per level the audit accepts: ``max(20, 2 d)``."""
    return max(20, 2 * int(dim))


def anisotropy_audit(
    sample: ErrorSample,
    *,
    tolerance: float = DEFAULT_ANISOTROPY_TOLERANCE,
    alpha: float = 0.05,
    correction: Correction = "holm",
    bootstrap: int = 200,
    confidence: float = 0.95,
    center: bool = False,
    seed: int = 0,
) -> list[AuditResult]:
    """Isotropy per level: spatial-sign sphericity test, effect ``rho = l_1 / w`` with a bootstrap
    interval, tolerance ``rho <= tolerance`` (module docstring). Levels corrected together.

    Cost per level: ``bootstrap`` eigendecompositions of a ``d x d`` matrix built from ``n`` rows
    (``O(bootstrap (n d^2 + d^3))``): pool or project image errors to a few hundred dimensions.
    """
    if not isinstance(sample, ErrorSample):
        raise TypeError(f"sample must be an ErrorSample, got {type(sample).__name__}")
    if not (math.isfinite(tolerance) and tolerance > 1.0):
        raise ValueError(f"tolerance must be a number > 1 (rho = 1 isotropic), got {tolerance!r}")
    if sample.dim < 2:
        raise ValueError(f"isotropy needs errors of dimension d >= 2, got d = {sample.dim}")
    need = anisotropy_min_samples(sample.dim)
    if sample.n < need:
        raise ValueError(
            f"the anisotropy audit needs at least {need} samples per level (max(20, 2 d) with "
            f"d = {sample.dim}), got n = {sample.n}"
        )
    if isinstance(bootstrap, bool) or int(bootstrap) < 50:
        raise ValueError(f"bootstrap must be at least 50 resamples, got {bootstrap!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    spec = error_spectrum(sample, center=center)
    rng = np.random.default_rng(seed)
    rows: list[AuditResult] = []
    intervals: list[tuple[float, float, float]] = []
    d, n = sample.dim, sample.n
    q = 100.0 * np.array([0.5 - confidence / 2.0, 0.5 + confidence / 2.0])
    for i in range(sample.num_levels):
        e = sample.errors[i]
        x = e - e.mean(axis=0) if center else e
        stat, p, df = spatial_sign_sphericity_test(x)
        # 1. bootstrap bias correction and basic (reflected) interval, clipped at rho >= 1
        plug_in = float(spec.anisotropy_ratio[i])
        boot = _rho_boot(e, center, int(bootstrap), rng)
        q_lo, q_hi = np.percentile(boot, q)
        rho = max(1.0, 2.0 * plug_in - float(boot.mean()))
        lo, hi = max(1.0, 2.0 * plug_in - q_hi), max(1.0, 2.0 * plug_in - q_lo)
        intervals.append((float(lo), float(hi), plug_in))
        rows.append(
            AuditResult(
                audit="isotropy",
                method=(
                    f"spatial-sign sphericity test (chi2, df {df}); rho bias-corrected, "
                    f"basic bootstrap CI ({int(bootstrap)})"
                ),
                scope=sample.level_label(i),
                statistic=stat,
                p_value=p,
                effect_size=rho,
                effect_name="top-direction variance / w (rho, 1 = isotropic)",
                tolerance=tolerance,
                verdict="inconclusive",
                n=n,
                alpha_bar=float(sample.alpha_bar[i]),
                null_effect=1.0,
            )
        )
    null_rho = (1.0 + math.sqrt(d / n)) ** 2

    def decide(k: int, r: AuditResult, p_adj: float, a: float) -> tuple[str, str]:
        lo, hi, plug_in = intervals[k]
        rho = r.effect_size
        info = (
            f"rho {rho:.3g} [{lo:.3g}, {hi:.3g}] (plug-in {plug_in:.3g}), participation ratio "
            f"{spec.participation_ratio[k]:.3g} of d = {d}"
        )
        verdict = stats_decide(
            rho, p_adj, claim="within", alpha=a, band=(-math.inf, tolerance), interval=(lo, hi)
        ).verdict
        if verdict == "contradicted":
            return verdict, f"{info}: beyond {tolerance:g}"
        if verdict == "supported":
            extra = " (anisotropy detected, within tolerance)" if p_adj < a else ""
            return verdict, f"{info}: inside {tolerance:g}{extra}"
        if rho > tolerance:
            return "inconclusive", (
                f"{info}: beyond {tolerance:g} but not significant (the plug-in rho of "
                f"isotropic errors is about {null_rho:.3g} at n = {n})"
            )
        # the interval's upper half-width shrinks as 1 / sqrt(n)
        n_need = math.ceil(n * ((hi - rho) / max(tolerance - rho, 1e-12)) ** 2)
        return "inconclusive", (
            f"{info}: interval reaches past {tolerance:g}; about {n_need} samples needed "
            f"(the plug-in rho of isotropic errors is about {null_rho:.3g} at n = {n})"
        )

    return with_adjusted(rows, correction, alpha, decide)


# --------------------------------------------------------------------------- consequence
@dataclass(frozen=True, eq=False)
class AccumulatedAnisotropy:
    """Shape of the accumulated error ``sum_k c_k delta_k`` on one path (module docstring).

    ``coefficients`` are ``c_k`` in sampling order; ``step_ratio[K]`` is each step's ``rho``.
    ``cpe_independent = tr(sum_k c_k^2 M_k) / d = sum_k c_k^2 w_k`` (VRG's CPE with the sample's
    own ``w``), ``independent_ratio`` / ``independent_participation`` the shape of
    ``sum_k c_k^2 M_k`` (the accumulated error if the steps were independent). From a paired
    sample also the observed ``cpe_observed = E||sum_k c_k delta_k||^2 / d`` and its
    ``observed_ratio`` / ``observed_participation`` (NaN for an unpaired sample).
    ``cpe_independent`` depends on the ``M_k`` only through their traces: replacing each by
    ``w_k I``, or rotating it, gives the same number, while ``independent_ratio`` changes.
    """

    alpha_bar: FloatArray
    coefficients: FloatArray
    step_ratio: FloatArray
    cpe_independent: float
    independent_ratio: float
    independent_participation: float
    independent_eigenvalues: FloatArray
    cpe_observed: float
    observed_ratio: float
    observed_participation: float
    observed_eigenvalues: FloatArray
    dim: int
    n: int
    paired: bool

    def __post_init__(self) -> None:
        for name in (
            "alpha_bar",
            "coefficients",
            "step_ratio",
            "independent_eigenvalues",
            "observed_eigenvalues",
        ):
            object.__setattr__(self, name, frozen_array(getattr(self, name)))


def accumulated_error_anisotropy(
    sample: ErrorSample, *, trajectory: Trajectory | None = None
) -> AccumulatedAnisotropy:
    """How concentrated the accumulated error ``sum_k c_k delta_k`` is, and CPE's blindness to it.

    ``sample`` holds errors at a trajectory's levels in sampling order (noisiest first, as
    :func:`~.samples.errors_along_path` records them); ``trajectory``, if given, must have the
    same levels. ``c_k = sigma(a_{k+1}) - sigma(a_k)`` with ``sigma = 0`` after the last level.
    Paired samples (row ``i`` one path) also give the observed accumulated error.
    """
    if not isinstance(sample, ErrorSample):
        raise TypeError(f"sample must be an ErrorSample, got {type(sample).__name__}")
    a = sample.alpha_bar
    if trajectory is not None:
        if trajectory.K != a.size:
            raise ValueError(
                f"the trajectory has {trajectory.K} levels but the sample has {a.size}"
            )
        check_same_levels(trajectory.alpha_bar, a, "trajectory", "the sample")
    step = np.flatnonzero(np.diff(a) <= 0.0)
    if step.size:
        k = int(step[0])
        raise ValueError(
            "the sample's levels must be a trajectory in sampling order (strictly increasing "
            f"alpha_bar): alpha_bar[{k}] = {float(a[k])!r} >= alpha_bar[{k + 1}] = "
            f"{float(a[k + 1])!r}"
        )
    d = sample.dim
    c = step_increments(a)
    moments = np.stack([_moment(sample.errors[k], False) for k in range(a.size)])
    traces = np.trace(moments, axis1=1, axis2=2)
    for k, t in enumerate(traces):
        _check_level_nonconstant(sample, k, float(t))
    step_ratio = d * np.linalg.eigvalsh(moments)[:, -1] / traces
    ind = np.einsum("k,kij->ij", c**2, moments)
    lam_ind, _ = _spectrum(ind)
    cpe_ind = float(np.trace(ind) / d)
    if sample.paired:
        acc = np.einsum("k,knd->nd", c, sample.errors)
        lam_obs, _ = _spectrum(_moment(acc, False))
        cpe_obs = float(lam_obs.sum() / d)
        obs_ratio = float(d * lam_obs[0] / lam_obs.sum())
        obs_pr = participation_ratio(lam_obs)
    else:
        lam_obs = np.full(d, np.nan)
        cpe_obs = obs_ratio = obs_pr = math.nan
    return AccumulatedAnisotropy(
        alpha_bar=a,
        coefficients=c,
        step_ratio=step_ratio,
        cpe_independent=cpe_ind,
        independent_ratio=float(d * lam_ind[0] / lam_ind.sum()),
        independent_participation=participation_ratio(lam_ind),
        independent_eigenvalues=lam_ind,
        cpe_observed=cpe_obs,
        observed_ratio=obs_ratio,
        observed_participation=obs_pr,
        observed_eigenvalues=lam_obs,
        dim=d,
        n=sample.n,
        paired=bool(sample.paired),
    )
