"""Independence of the prediction errors across the steps of one sampling path.

VRG adds the per-step variances, ``CPE = sum_k c_k^2 w(a_k)`` with ``c_k = sigma_{k-1} - sigma_k``
(the design page), which is the variance of the accumulated error ``sum_k c_k delta_k`` only when
the ``delta_k`` of one path are uncorrelated. Here the errors are recorded at the states a sampler
actually visits (:func:`~.samples.errors_along_path`), ``errors[k, i]`` = step ``k`` of path ``i``.

- Cross-step correlation: ``R_kl = tr E[d_k d_l^T] / sqrt(tr E[d_k d_k^T] tr E[d_l d_l^T])`` on
  errors centred per step and coordinate (pooled over coordinates).
- Tests, per consecutive pair of steps: a permutation test of ``R = 0`` (paths of step ``l``
  shuffled against step ``k``; exact under independence of paths) and a permutation test of the
  bias-corrected distance correlation (Szekely & Rizzo 2013, JMVA 117), which also sees nonlinear
  dependence. Effect size: ``R``; tolerance ``|R| <= 0.1``; "supported" when the
  percentile-bootstrap interval of ``R`` over paths lies inside the tolerance (and, strictly, no
  dependence is detected); "contradicted" when a dependence is detected *and* ``|R|`` is shown
  beyond the tolerance (:func:`~.verdicts.beyond_pvalue`, the bootstrap standard error, corrected
  over the step pairs).
- Consequence: the variance of the accumulated error with the measured cross-step second moments,
  ``sum_kl c_k c_l tr E[d_k d_l^T] / d``, against the independent formula ``sum_k c_k^2 w_k``; the
  ratio with a bootstrap interval over paths. Tolerance: a ratio within ``1 +- 0.1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from vrg_analysis._checks import frozen_array
from vrg_analysis.assumptions.samples import ErrorSample
from vrg_analysis.assumptions.verdicts import (
    AuditResult,
    Correction,
    adjust_pvalues,
    beyond_pvalue,
    with_adjusted,
)
from vrg_analysis.core.cpe import step_increments
from vrg_analysis.evaluation.stats import decide

__all__ = [
    "step_correlation_matrix",
    "permutation_correlation_test",
    "correlation_interval",
    "distance_correlation_test",
    "CovarianceCPE",
    "cpe_with_step_covariance",
    "independence_audit",
    "permutations_for_family",
]


def _paired(sample: ErrorSample) -> None:
    if not sample.paired:
        raise ValueError(
            "the independence audit needs errors recorded along sampling paths (paired=True, "
            "row i the same path at every step): use errors_along_path"
        )
    if sample.num_levels < 2:
        raise ValueError(f"need at least 2 steps per path, got {sample.num_levels}")


def step_correlation_matrix(sample: ErrorSample) -> np.ndarray:
    """``R[K, K]``: pooled cross-step correlation of the centred errors (module docstring)."""
    e = sample.errors - sample.errors.mean(axis=1, keepdims=True)
    flat = e.reshape(sample.num_levels, -1)
    gram = flat @ flat.T
    norm = np.sqrt(np.diag(gram))
    if np.any(norm == 0.0):
        k = int(np.flatnonzero(norm == 0.0)[0])
        raise ValueError(f"errors at step {k} are constant: their correlation is undefined")
    return gram / np.outer(norm, norm)


def permutation_correlation_test(
    a: np.ndarray, b: np.ndarray, *, permutations: int = 999, seed: int = 0
) -> tuple[float, float]:
    """``(R, p)``: pooled correlation of paired rows ``a[n, d]``, ``b[n, d]`` and its two-sided
    permutation p-value ``(1 + #{|R_perm| >= |R|}) / (1 + permutations)``."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    scale = math.sqrt(float((a * a).sum() * (b * b).sum()))
    if scale == 0.0:
        raise ValueError("constant errors: the correlation is undefined")
    r = float((a * b).sum()) / scale
    rng = np.random.default_rng(seed)
    n = a.shape[0]
    gram = a.reshape(n, -1) @ b.reshape(n, -1).T  # [n, n]: <a_i, b_j>, d-free memory
    rows = np.arange(n)
    hits = 0
    for start in range(0, permutations, 256):
        m = min(256, permutations - start)
        idx = np.argsort(rng.random((m, n)), axis=1)  # m permutations of the paths
        r_perm = gram[rows, idx].sum(axis=1) / scale  # sum_i <a_i, b_pi(i)>
        hits += int(np.sum(np.abs(r_perm) >= abs(r) - 1e-12))
    return r, (1.0 + hits) / (1.0 + permutations)


def correlation_interval(
    a: np.ndarray, b: np.ndarray, *, bootstrap: int = 500, seed: int = 0
) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the pooled correlation ``R`` of paired rows, paths
    resampled with replacement (pooling over coordinates makes ``R`` far more precise than one
    coordinate's ``1 / sqrt(n)``, by an amount that depends on how correlated they are)."""
    n = a.shape[0]
    a2, b2 = a.reshape(n, -1), b.reshape(n, -1)
    rng = np.random.default_rng(seed)
    rs = np.empty(bootstrap)
    for i in range(bootstrap):
        rows = rng.integers(0, n, n)
        x, y = a2[rows] - a2[rows].mean(0), b2[rows] - b2[rows].mean(0)
        rs[i] = float((x * y).sum()) / math.sqrt(float((x * x).sum() * (y * y).sum()))
    lo, hi = np.percentile(rs, [2.5, 97.5])
    return float(lo), float(hi)


def _u_centered(x: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import cdist

    flat = x.reshape(x.shape[0], -1)
    d = cdist(flat, flat)  # [n, n], without an [n, n, d] intermediate
    n = d.shape[0]
    row = d.sum(1) / (n - 2)
    total = d.sum() / ((n - 1) * (n - 2))
    u = d - row[:, None] - row[None, :] + total
    np.fill_diagonal(u, 0.0)
    return u


def distance_correlation_test(
    a: np.ndarray, b: np.ndarray, *, permutations: int | None = 499, seed: int = 0
) -> tuple[float, float, float]:
    """``(R*, T, p)``: bias-corrected distance correlation ``R*`` of paired rows (Szekely & Rizzo
    2013) and ``T = sqrt(v - 1) R* / sqrt(1 - R*^2)``, ``v = n (n - 3) / 2``.

    ``p`` is one-sided. By default it comes from a permutation test (rows of ``b`` shuffled
    against ``a``; exact under independence): the ``t(v - 1)`` reference distribution of the
    paper is derived for high dimension, and on 2-D errors it rejected 7.9% of the time at 0.05
    (1000 planted nulls, calibration chapter). ``permutations=None`` gives that t-test p-value.
    """
    n = a.shape[0]
    if n < 4:
        raise ValueError(f"distance correlation needs at least 4 paths, got {n}")
    ua, ub = _u_centered(np.asarray(a, float)), _u_centered(np.asarray(b, float))
    scale = n * (n - 3)
    xy, xx, yy = (ua * ub).sum() / scale, (ua * ua).sum() / scale, (ub * ub).sum() / scale
    if xx <= 0.0 or yy <= 0.0:
        raise ValueError("constant errors: the distance correlation is undefined")
    r = float(xy / math.sqrt(xx * yy))
    v = n * (n - 3) / 2.0
    t = math.sqrt(v - 1.0) * r / math.sqrt(max(1.0 - r * r, 1e-300))
    if permutations is None:
        return r, t, float(stats.t.sf(t, v - 1.0))
    # permuting b's rows permutes U-centred ub's rows and columns alike (xx, yy unchanged);
    # float32 for the n^2 products, observed and permuted statistics computed the same way
    rng = np.random.default_rng(seed)
    a32, b32 = ua.astype(np.float32), ub.astype(np.float32)
    observed = float(np.vdot(a32, b32))
    hits = 0
    for _ in range(int(permutations)):
        perm = rng.permutation(n)
        hits += float(np.vdot(a32, b32.take(perm, 0).take(perm, 1))) >= observed
    return r, t, (1.0 + hits) / (1.0 + int(permutations))


@dataclass(frozen=True)
class CovarianceCPE:
    """The accumulated-error variance with and without the measured cross-step terms."""

    independent: float  # sum_k c_k^2 w_k  (VRG's CPE with the path's own w_k)
    with_covariance: float  # sum_kl c_k c_l tr E[d_k d_l^T] / d
    ratio: float
    ratio_ci: tuple[float, float]  # bootstrap 95% over paths
    coefficients: np.ndarray  # c_k in sampling order

    def __post_init__(self) -> None:
        object.__setattr__(self, "coefficients", frozen_array(self.coefficients))


def cpe_with_step_covariance(
    sample: ErrorSample, *, bootstrap: int = 500, seed: int = 0
) -> CovarianceCPE:
    """CPE from the path errors' second moments, with and without cross-step terms.

    ``c_k = sigma(a_{k+1}) - sigma(a_k)`` in sampling order (the last step ends at ``sigma = 0``):
    the y-space DDIM update ``y_next = y + c_k eps_hat`` carries the error ``c_k delta_k``. These
    are DDIM's (and VRG's CPE's) coefficients: for a higher-order sampler's path the accumulated
    error combines the errors with that sampler's own weights, which this does not model.
    """
    _paired(sample)
    c = step_increments(sample.alpha_bar)  # negative: sigma decreases along the path
    e = sample.errors  # raw second moments, as the MSE profile w

    def both(rows: np.ndarray) -> tuple[float, float]:
        acc = np.einsum("k,knd->nd", c, e[:, rows])
        indep = float(np.sum(c**2 * np.mean(e[:, rows] ** 2, axis=(1, 2))))
        return indep, float(np.mean(acc**2))

    indep, cov = both(np.arange(sample.n))
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(bootstrap):
        indep_b, cov_b = both(rng.integers(0, sample.n, sample.n))
        ratios.append(cov_b / indep_b)
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return CovarianceCPE(indep, cov, cov / indep, (float(lo), float(hi)), c)


def permutations_for_family(permutations: int, family_size: int, alpha: float = 0.05) -> int:
    """The number of permutations a test family of ``family_size`` tests needs, at least
    ``permutations``: enough that the smallest attainable p-value, ``1 / (B + 1)``, is at most half
    of Holm's (and Bonferroni's) first threshold ``alpha / m``, so a clear dependence can still be
    called a violation after the correction. (With 499 permutations the smallest p is 0.002 =
    0.05 / 25: a path with more than 25 step pairs could never be judged violated.)"""
    if family_size < 1 or not 0.0 < alpha < 1.0:
        raise ValueError(f"need family_size >= 1 and 0 < alpha < 1, got {family_size}, {alpha}")
    return max(int(permutations), math.ceil(2.0 * family_size / alpha) - 1)


def independence_audit(
    sample: ErrorSample,
    *,
    tolerance: float = 0.1,
    cpe_tolerance: float = 0.1,
    permutations: int = 999,
    alpha: float = 0.05,
    correction: Correction = "holm",
    seed: int = 0,
    max_paths_dcor: int = 1000,
    bootstrap: int = 500,
) -> list[AuditResult]:
    """Per consecutive step pair: permutation test and distance-correlation test of independence
    (effect: pooled correlation ``R``, tolerance ``|R| <= tolerance``); plus one row for the
    consequence on CPE (effect: ratio - 1, tolerance ``cpe_tolerance``). Each family of step
    pairs runs at least ``permutations`` permutations, more where the family is large
    (:func:`permutations_for_family`), so that the corrected test can reach "violated"."""
    _paired(sample)
    permutations = permutations_for_family(permutations, sample.num_levels - 1, alpha)
    if sample.n < 10:
        raise ValueError(f"the independence audit needs at least 10 paths, got {sample.n}")
    perm_rows, dcor_rows = [], []
    intervals: list[tuple[float, float]] = []
    rng = np.random.default_rng(seed)
    for k in range(sample.num_levels - 1):
        a, b = sample.errors[k], sample.errors[k + 1]
        scope = f"steps {k}-{k + 1} ({sample.level_label(k)} -> {sample.alpha_bar[k + 1]:.4g})"
        r, p = permutation_correlation_test(a, b, permutations=permutations, seed=seed + k)
        intervals.append(correlation_interval(a, b, bootstrap=bootstrap, seed=seed + k))
        common = {
            "audit": "independence",
            "scope": scope,
            "n": sample.n,
            "alpha_bar": float(sample.alpha_bar[k]),
            "verdict": "inconclusive",
            "effect_name": "cross-step correlation R",
            "tolerance": tolerance,
        }
        perm_rows.append(
            AuditResult(
                method=f"permutation test of R ({permutations} perms)",
                statistic=r,
                p_value=p,
                effect_size=r,
                **common,
            )
        )
        rows = np.arange(sample.n)
        if sample.n > max_paths_dcor:
            rows = np.sort(rng.choice(sample.n, size=max_paths_dcor, replace=False))
        rd, t, pd = distance_correlation_test(
            a[rows], b[rows], permutations=permutations, seed=seed + k
        )
        dcor_rows.append(
            AuditResult(
                method=f"distance correlation permutation test (n={rows.size})",
                statistic=t,
                p_value=pd,
                effect_size=r,
                **{**common, "note": f"bias-corrected dCor {rd:.3g}"},
            )
        )

    # "violated" needs |R| shown beyond the tolerance: the minimum-effect test with the standard
    # error read off the bootstrap interval (half-width / z_0.975), corrected over the step pairs
    z = float(stats.norm.ppf(0.975))
    beyond = adjust_pvalues(
        [
            beyond_pvalue(r.effect_size, (hi - lo) / (2.0 * z), (-tolerance, tolerance))
            for r, (lo, hi) in zip(perm_rows, intervals, strict=True)
        ],
        correction,
    )

    def rule(i: int, res: AuditResult, p_adj: float, a: float) -> tuple[str, str]:
        lo, hi = intervals[i]
        # strict: "independent" is contradicted in spirit by any detected dependence
        verdict = decide(
            res.effect_size,
            p_adj,
            claim="within",
            alpha=a,
            band=(-tolerance, tolerance),
            interval=(lo, hi),
            strict=True,
        ).verdict
        if verdict == "contradicted" and not float(beyond[i]) < a:
            return "inconclusive", (
                f"dependence detected (p_adj {p_adj:.2g}), R = {res.effect_size:+.3g} "
                f"[{lo:+.3g}, {hi:+.3g}] not shown beyond +-{tolerance:g} "
                f"(p_adj {float(beyond[i]):.2g})"
            )
        inside = -tolerance <= lo and hi <= tolerance
        extra = f"; {res.note}" if res.note else ""
        if verdict == "contradicted":
            return verdict, (
                f"R = {res.effect_size:+.3g} [{lo:+.3g}, {hi:+.3g}], beyond +-{tolerance:g}"
            )
        if verdict == "supported":
            return verdict, (
                f"95% interval of R [{lo:+.3g}, {hi:+.3g}] inside +-{tolerance:g}{extra}"
            )
        if inside:  # dependent, but not (linearly) correlated: not independent
            return verdict, (
                f"a dependence is detected (p_adj {p_adj:.2g}) while R [{lo:+.3g}, {hi:+.3g}] "
                f"is inside +-{tolerance:g}: the variances still add (no correlation), but the "
                f"errors are not independent{extra}"
            )
        return verdict, (
            "dependence detected, within tolerance but not shown"
            if p_adj < a
            else f"too few paths to show |R| < {tolerance:g}"
        )

    out = with_adjusted(perm_rows, correction, alpha, rule)
    out += with_adjusted(dcor_rows, correction, alpha, rule)
    cc = cpe_with_step_covariance(sample, bootstrap=bootstrap, seed=seed)
    lo, hi = cc.ratio_ci
    verdict = decide(
        cc.ratio,
        math.nan,
        claim="within",
        band=(1.0 - cpe_tolerance, 1.0 + cpe_tolerance),
        interval=(lo, hi),
    ).verdict
    note = {
        "contradicted": "the cross-step terms change CPE beyond tolerance",
        "supported": "the cross-step terms change CPE by less than the tolerance",
        "inconclusive": "the bootstrap interval straddles the tolerance",
    }[verdict]
    out.append(
        AuditResult(
            audit="independence (consequence)",
            method="CPE with measured cross-step moments",
            scope=f"{sample.num_levels}-step path",
            statistic=cc.ratio,
            p_value=math.nan,
            effect_size=cc.ratio - 1.0,
            effect_name="CPE ratio - 1",
            tolerance=cpe_tolerance,
            verdict=verdict,
            n=sample.n,
            note=f"{note}; ratio {cc.ratio:.3f} [{lo:.3f}, {hi:.3f}]",
        )
    )
    return out
