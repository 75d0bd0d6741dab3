"""Does the error measured on training data transfer to the states the sampler visits?

VRG weights each step with the profile ``w(a)`` measured by Algorithm 1 on *training* data, and uses
it as the size of the error the model makes *while sampling* (the design page, "training-set error
may not transfer to the states the sampler visits"). This module compares the per-level MSE of two
:class:`~.samples.ErrorSample` s measured at the same levels: a ``reference`` sample (where the
profile was taken) and an ``other`` sample (where it is used).

Which comparison means what:

- **Exact testbed, model error on data vs along the path** (the fair test of VRG's use of the
  profile). ``reference = errors_on_data(model, train_x, traj.alpha_bar, reference=bed.oracle)``:
  the model's own error ``eps_hat - eps*`` on states ``x_t`` drawn from the training-distribution
  marginal ``p_a``; ``other = errors_along_path(model, bed.oracle, x_T, traj)``: the same error at
  the states a sampler visits. Both exclude the irreducible spread of ``eps`` given ``x_t``, so a
  ratio != 1 means the sampler's states are harder (or easier) for the model than ``p_a``
  (the sampler's own discretisation error and the model's earlier errors move the path off
  ``p_a``).
- **Trained model without ``eps*``, training vs held-out data** (generalisation).
  ``errors_on_data(model, train_x, levels)`` against ``errors_on_data(model, held_out_x, levels)``
  with the true noise as reference: both include the irreducible spread, which is the same on
  both (same distribution), so a ratio > 1 is over-fitting of the training set. This says nothing
  about the sampler's path; it bounds how far the profile is specific to the training samples.
- Do *not* compare a sample against ``eps`` with one against ``eps*``: their ratio is
  ``(spread + model) / model``, not a transfer (see :mod:`.decomposition`). The functions raise
  when one sample's ``reference`` is the true noise and the other's is not
  (``check_reference=False`` to override).

Per level, with ``s_i = ||delta_i||^2 / d`` (one value per sample; its mean is the MSE ``w``):

- test: Welch's two-sample t test of ``E s_other = E s_reference`` (unequal variances; the two
  samples are independent draws);
- effect: the ratio ``R = MSE_other / MSE_reference`` with a 95% interval, by the delta method on
  ``log R``: ``se(log R)^2 = sd_o^2 / (n_o m_o^2) + sd_r^2 / (n_r m_r^2)`` (or a percentile
  bootstrap of ``log R``, ``ci="bootstrap"``, for heavy-tailed errors);
- verdict, with the band ``[1 / (1 + tol), 1 + tol]`` (symmetric in ``log R``): ``violated`` when
  the corrected Welch test rejects and ``R`` is shown outside the band (the minimum-effect test on
  ``log R`` with its standard error, :func:`~.verdicts.beyond_pvalue`, corrected over the family);
  ``holds`` when the interval of ``R`` lies inside the band; else ``inconclusive``, with the number
  of samples the interval would need.

Default tolerance ``0.1``: a 10% error in ``w`` at every level changes CPE by 10%, the same
tolerance the independence audit puts on CPE.

For a class-conditional model, :func:`transfer_by_class` runs the same audit on the rows of each
class label (the paper leaves conditional generation open): one row per (class, level), all
corrected together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from vrg_analysis._checks import frozen_array
from vrg_analysis.assumptions.samples import ErrorSample, check_same_levels
from vrg_analysis.assumptions.verdicts import (
    AuditResult,
    Correction,
    Decide,
    adjust_pvalues,
    beyond_pvalue,
    with_adjusted,
)
from vrg_analysis.evaluation.stats import decide as stats_decide

__all__ = [
    "classes_to_audit",
    "TransferProfile",
    "transfer_profile",
    "transfer_audit",
    "transfer_by_class",
    "MIN_TRANSFER_SAMPLES",
]

FloatArray = NDArray[np.float64]
CIMethod = Literal["delta", "bootstrap"]

#: Fewest samples per level on each side (the delta-method interval needs a usable CLT).
MIN_TRANSFER_SAMPLES = 10


@dataclass(frozen=True, eq=False)
class TransferProfile:
    """Per-level MSE of two error samples and their ratio ``other / reference`` with intervals.

    ``mse_*`` are the profiles ``w`` (mean of ``||delta||^2 / d``), ``sem_*`` their standard
    errors, ``ratio`` = ``mse_other / mse_reference`` with the ``confidence`` interval
    ``[ratio_lo, ratio_hi]``; ``log_se`` is the standard error of ``log ratio`` (delta method; for
    ``ci="bootstrap"``, the bootstrap standard deviation).
    """

    alpha_bar: FloatArray
    mse_reference: FloatArray
    mse_other: FloatArray
    sem_reference: FloatArray
    sem_other: FloatArray
    ratio: FloatArray
    ratio_lo: FloatArray
    ratio_hi: FloatArray
    log_se: FloatArray
    n_reference: int
    n_other: int
    confidence: float
    ci: str
    reference_source: str
    other_source: str
    label: str

    def __post_init__(self) -> None:
        for name in (
            "alpha_bar",
            "mse_reference",
            "mse_other",
            "sem_reference",
            "sem_other",
            "ratio",
            "ratio_lo",
            "ratio_hi",
            "log_se",
        ):
            object.__setattr__(self, name, frozen_array(getattr(self, name)))

    @property
    def num_levels(self) -> int:
        return int(self.alpha_bar.size)


# --------------------------------------------------------------------------- validation
def _check_pair(
    reference_sample: ErrorSample, other: ErrorSample, check_reference: bool = True
) -> None:
    for name, s in (("reference_sample", reference_sample), ("other", other)):
        if not isinstance(s, ErrorSample):
            raise TypeError(f"{name} must be an ErrorSample, got {type(s).__name__}")
    if check_reference and reference_sample.against_noise != other.against_noise:
        raise ValueError(
            f"the samples were measured against different references "
            f"({reference_sample.reference!r} vs {other.reference!r}): their MSE ratio mixes the "
            "irreducible spread into one side only (pass check_reference=False to compare anyway)"
        )
    lr, lo = reference_sample.num_levels, other.num_levels
    if lr != lo:
        raise ValueError(
            f"the samples must have the same levels: reference_sample has {lr}, other has {lo}"
        )
    check_same_levels(
        reference_sample.alpha_bar,
        other.alpha_bar,
        "reference_sample",
        "other",
        prefix="the samples must have the same levels: ",
    )
    if reference_sample.dim != other.dim:
        raise ValueError(
            f"the samples must have the same dimension: reference_sample has d = "
            f"{reference_sample.dim}, other has d = {other.dim}"
        )
    for name, s in (("reference_sample", reference_sample), ("other", other)):
        if s.n < MIN_TRANSFER_SAMPLES:
            raise ValueError(
                f"the transfer audit needs at least {MIN_TRANSFER_SAMPLES} samples per level; "
                f"{name} has n = {s.n}"
            )


def _per_sample(sample: ErrorSample, name: str) -> FloatArray:
    """``s[L, n] = ||delta||^2 / d``; raises on a level whose errors are all zero or constant."""
    s = np.mean(sample.errors**2, axis=2)
    for i in range(sample.num_levels):
        if not s[i].mean() > 0.0:
            raise ValueError(
                f"{name} errors at level {i} ({sample.level_label(i)}) are all zero: "
                "the MSE ratio is undefined"
            )
        if not s[i].std() > 0.0:
            raise ValueError(
                f"{name} errors at level {i} ({sample.level_label(i)}) have a constant squared "
                "norm: the t test is undefined"
            )
    return s


def _check_tolerance(tolerance: float) -> None:
    if not (math.isfinite(tolerance) and tolerance > 0.0):
        raise ValueError(f"tolerance must be a number > 0, got {tolerance!r}")


def _check_interval(confidence: float, ci: str, bootstrap: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if ci not in ("delta", "bootstrap"):
        raise ValueError(f"unknown ci {ci!r}; expected 'delta' or 'bootstrap'")
    if ci == "bootstrap" and (isinstance(bootstrap, bool) or int(bootstrap) < 100):
        raise ValueError(f"bootstrap must be at least 100 resamples, got {bootstrap!r}")


# --------------------------------------------------------------------------- the profile
def _ratio_profile(
    s_ref: FloatArray,
    s_oth: FloatArray,
    *,
    confidence: float,
    ci: str,
    bootstrap: int,
    seed: int,
) -> tuple[FloatArray, ...]:
    n_r, n_o = s_ref.shape[1], s_oth.shape[1]
    m_r, m_o = s_ref.mean(axis=1), s_oth.mean(axis=1)
    sd_r, sd_o = s_ref.std(axis=1, ddof=1), s_oth.std(axis=1, ddof=1)
    ratio = m_o / m_r
    log_r = np.log(ratio)
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    if ci == "delta":
        # delta method: var(log m) = var(m) / m^2, the two means independent
        log_se = np.sqrt(sd_o**2 / (n_o * m_o**2) + sd_r**2 / (n_r * m_r**2))
        lo, hi = np.exp(log_r - z * log_se), np.exp(log_r + z * log_se)
    else:
        rng = np.random.default_rng(seed)
        lo, hi, log_se = np.empty_like(ratio), np.empty_like(ratio), np.empty_like(ratio)
        q = 100.0 * np.array([0.5 - confidence / 2.0, 0.5 + confidence / 2.0])
        for i in range(ratio.size):
            # resample each side independently (chunks keep the index arrays small)
            boot = np.empty(bootstrap)
            for b0 in range(0, bootstrap, 64):
                m = min(64, bootstrap - b0)
                mo = s_oth[i][rng.integers(0, n_o, (m, n_o))].mean(axis=1)
                mr = s_ref[i][rng.integers(0, n_r, (m, n_r))].mean(axis=1)
                boot[b0 : b0 + m] = np.log(mo / mr)
            b_lo, b_hi = np.percentile(boot, q)
            lo[i], hi[i], log_se[i] = math.exp(b_lo), math.exp(b_hi), float(boot.std(ddof=1))
    return m_r, m_o, sd_r / math.sqrt(n_r), sd_o / math.sqrt(n_o), ratio, lo, hi, log_se


def transfer_profile(
    reference_sample: ErrorSample,
    other: ErrorSample,
    *,
    confidence: float = 0.95,
    ci: CIMethod = "delta",
    bootstrap: int = 2000,
    seed: int = 0,
    label: str = "held-out vs training",
    check_reference: bool = True,
) -> TransferProfile:
    """Per-level MSE ratio ``other / reference`` with its ``confidence`` interval (for plots).

    The two samples must have the same levels and dimension and be independent draws (module
    docstring for which pairs to compare). ``ci="delta"`` uses the delta method on the log ratio,
    ``ci="bootstrap"`` a percentile bootstrap (``bootstrap`` resamples, seeded by ``seed``).
    """
    _check_pair(reference_sample, other, check_reference)
    _check_interval(confidence, ci, bootstrap)
    s_ref = _per_sample(reference_sample, "reference_sample")
    s_oth = _per_sample(other, "other")
    m_r, m_o, se_r, se_o, ratio, lo, hi, log_se = _ratio_profile(
        s_ref, s_oth, confidence=confidence, ci=ci, bootstrap=int(bootstrap), seed=seed
    )
    return TransferProfile(
        alpha_bar=reference_sample.alpha_bar,
        mse_reference=m_r,
        mse_other=m_o,
        sem_reference=se_r,
        sem_other=se_o,
        ratio=ratio,
        ratio_lo=lo,
        ratio_hi=hi,
        log_se=log_se,
        n_reference=reference_sample.n,
        n_other=other.n,
        confidence=float(confidence),
        ci=ci,
        reference_source=f"{reference_sample.source} vs {reference_sample.reference}",
        other_source=f"{other.source} vs {other.reference}",
        label=label,
    )


# --------------------------------------------------------------------------- the audit
def _rows(
    reference_sample: ErrorSample,
    other: ErrorSample,
    *,
    tolerance: float,
    confidence: float,
    ci: CIMethod,
    bootstrap: int,
    seed: int,
    label: str,
    scope_prefix: str,
    check_reference: bool,
) -> tuple[list[AuditResult], TransferProfile]:
    prof = transfer_profile(
        reference_sample,
        other,
        confidence=confidence,
        ci=ci,
        bootstrap=bootstrap,
        seed=seed,
        label=label,
        check_reference=check_reference,
    )
    s_ref = np.mean(reference_sample.errors**2, axis=2)
    s_oth = np.mean(other.errors**2, axis=2)
    band = (1.0 / (1.0 + tolerance), 1.0 + tolerance)
    method = (
        f"Welch t on per-sample MSE; ratio {int(round(100 * confidence))}% CI "
        f"({'delta method, log scale' if ci == 'delta' else 'bootstrap'}), "
        f"band [{band[0]:.3g}, {band[1]:.3g}]"
    )
    rows = []
    for i in range(prof.num_levels):
        res = stats.ttest_ind(s_oth[i], s_ref[i], equal_var=False)
        rows.append(
            AuditResult(
                audit="transfer",
                method=method,
                scope=f"{scope_prefix}{label}, {reference_sample.level_label(i)}",
                statistic=float(res.statistic),
                p_value=float(res.pvalue),
                effect_size=float(prof.ratio[i]),
                effect_name="MSE ratio (other / reference)",
                tolerance=1.0 + tolerance,  # ratio effects store their bound: [1/tol, tol]
                verdict="inconclusive",
                n=min(reference_sample.n, other.n),
                alpha_bar=float(reference_sample.alpha_bar[i]),
                null_effect=1.0,
            )
        )
    return rows, prof


def _decider(
    profiles: Sequence[TransferProfile],
    level_of_row: Sequence[tuple[int, int]],
    tolerance: float,
    num_tests: int,
    correction: Correction,
) -> Decide:
    log_band = math.log1p(tolerance)
    lo_band, hi_band = 1.0 / (1.0 + tolerance), 1.0 + tolerance
    # "violated" needs the ratio shown beyond the band: the minimum-effect test on log R
    beyond = adjust_pvalues(
        [
            beyond_pvalue(
                math.log(float(profiles[p_i].ratio[i])),
                float(profiles[p_i].log_se[i]),
                (-log_band, log_band),
            )
            for p_i, i in level_of_row
        ],
        correction,
    )

    def decide(k: int, r: AuditResult, p_adj: float, a: float) -> tuple[str, str]:
        p_i, i = level_of_row[k]
        prof = profiles[p_i]
        ratio, lo, hi = float(prof.ratio[i]), float(prof.ratio_lo[i]), float(prof.ratio_hi[i])
        interval = f"ratio {ratio:.3f} [{lo:.3f}, {hi:.3f}]"
        outside = not lo_band <= ratio <= hi_band
        pb = float(beyond[k])
        verdict = stats_decide(  # "violated": Welch rejects *and* R is shown outside the band
            ratio,
            max(p_adj, pb),
            claim="within",
            alpha=a,
            band=(lo_band, hi_band),
            interval=(lo, hi),
        ).verdict
        if verdict == "contradicted":
            return verdict, (
                f"{interval}: shown outside [{lo_band:.3g}, {hi_band:.3g}] (p_adj = {pb:.2g})"
            )
        if verdict == "supported":
            extra = " (a difference is detected, within tolerance)" if p_adj < a else ""
            return verdict, f"{interval} inside [{lo_band:.3g}, {hi_band:.3g}]{extra}"
        # how many more samples (same factor on both sides): the log-interval shrinks as 1/sqrt(f)
        half = 0.5 * (math.log(hi) - math.log(lo))
        n_now = max(prof.n_reference, prof.n_other)
        gap = abs(math.log(ratio))
        if not outside:
            factor = (half / max(log_band - gap, 1e-12)) ** 2
            return "inconclusive", (
                f"{interval} not inside the band: about {math.ceil(factor * n_now)} samples per "
                f"side needed to show it (now {n_now})"
            )
        # to detect it: z_(alpha / 2m) + z_(power 0.8) standard errors of log R within the gap
        z_need = float(stats.norm.ppf(1.0 - a / (2 * max(num_tests, 1))) + stats.norm.ppf(0.8))
        factor = (z_need * float(prof.log_se[i]) / gap) ** 2
        return "inconclusive", (
            f"{interval} outside the band but not significant after correction: about "
            f"{math.ceil(factor * n_now)} samples per side needed to detect it (now {n_now})"
        )

    return decide


def transfer_audit(
    reference_sample: ErrorSample,
    other: ErrorSample,
    *,
    tolerance: float = 0.1,
    alpha: float = 0.05,
    correction: Correction = "holm",
    label: str = "held-out vs training",
    confidence: float = 0.95,
    ci: CIMethod = "delta",
    bootstrap: int = 2000,
    seed: int = 0,
    check_reference: bool = True,
) -> list[AuditResult]:
    """One row per level: does the MSE of ``other`` match that of ``reference_sample``?

    Welch's t test on the per-sample MSE ``||delta||^2 / d``; effect: the ratio
    ``MSE_other / MSE_reference`` with a ``confidence`` interval; ``tolerance`` defines the band
    ``[1 / (1 + tolerance), 1 + tolerance]`` (module docstring). The levels are one family,
    corrected with ``correction``.
    """
    _check_tolerance(tolerance)
    _check_interval(confidence, ci, bootstrap)
    rows, prof = _rows(
        reference_sample,
        other,
        tolerance=tolerance,
        confidence=confidence,
        ci=ci,
        bootstrap=bootstrap,
        seed=seed,
        label=label,
        scope_prefix="",
        check_reference=check_reference,
    )
    index = [(0, i) for i in range(len(rows))]
    return with_adjusted(
        rows, correction, alpha, _decider([prof], index, tolerance, len(rows), correction)
    )


def _subset(sample: ErrorSample, rows: NDArray[np.intp], what: str) -> ErrorSample:
    return ErrorSample(
        sample.errors[:, rows], sample.alpha_bar, f"{sample.source} ({what})", sample.reference
    )


def _labels(labels: ArrayLike, sample: ErrorSample, name: str) -> NDArray[np.int64]:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.shape[0] != sample.n:
        raise ValueError(
            f"{name} must have one label per sample ({sample.n}), got shape {lab.shape}"
        )
    if lab.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integer class labels, got dtype {lab.dtype}")
    return lab.astype(np.int64)


def classes_to_audit(reference_labels: Sequence[int], other_labels: Sequence[int]) -> list[int]:
    """The class labels with at least :data:`MIN_TRANSFER_SAMPLES` rows on each side, the classes
    :func:`transfer_by_class` can audit (a text-conditional pipeline whose captions are its
    classes often has one row per caption: none, and only the pooled audit runs)."""
    lab_r, lab_o = np.asarray(reference_labels), np.asarray(other_labels)
    both = sorted(set(lab_r.tolist()) & set(lab_o.tolist()))
    return [
        int(c)
        for c in both
        if min(int(np.sum(lab_r == c)), int(np.sum(lab_o == c))) >= MIN_TRANSFER_SAMPLES
    ]


def transfer_by_class(
    reference_sample: ErrorSample,
    other: ErrorSample,
    reference_labels: ArrayLike,
    other_labels: ArrayLike,
    *,
    classes: Sequence[int] | None = None,
    tolerance: float = 0.1,
    alpha: float = 0.05,
    correction: Correction = "holm",
    label: str = "held-out vs training",
    confidence: float = 0.95,
    ci: CIMethod = "delta",
    bootstrap: int = 2000,
    seed: int = 0,
    check_reference: bool = True,
) -> list[AuditResult]:
    """:func:`transfer_audit` on the rows of each class label (a class-conditional model).

    ``reference_labels`` / ``other_labels`` give the class of each row (sample ``i`` of every
    level); ``classes`` defaults to the labels present in both. One row per (class, level),
    ``scope`` naming the class; all rows are one family for ``correction``. Each class needs at
    least :data:`MIN_TRANSFER_SAMPLES` rows on each side.
    """
    _check_pair(reference_sample, other, check_reference)
    _check_tolerance(tolerance)
    _check_interval(confidence, ci, bootstrap)
    lab_r = _labels(reference_labels, reference_sample, "reference_labels")
    lab_o = _labels(other_labels, other, "other_labels")
    if classes is None:
        chosen = sorted(set(lab_r.tolist()) & set(lab_o.tolist()))
        if not chosen:
            raise ValueError("no class label occurs in both reference_labels and other_labels")
    else:
        chosen = [int(c) for c in classes]
    for c in chosen:
        nr, no = int(np.sum(lab_r == c)), int(np.sum(lab_o == c))
        if min(nr, no) < MIN_TRANSFER_SAMPLES:
            raise ValueError(
                f"class {c} has {nr} reference and {no} other samples; the transfer audit needs "
                f"at least {MIN_TRANSFER_SAMPLES} on each side"
            )
    rows: list[AuditResult] = []
    profiles: list[TransferProfile] = []
    index: list[tuple[int, int]] = []
    for j, c in enumerate(chosen):
        ref_c = _subset(reference_sample, np.flatnonzero(lab_r == c), f"class {c}")
        oth_c = _subset(other, np.flatnonzero(lab_o == c), f"class {c}")
        r, prof = _rows(
            ref_c,
            oth_c,
            tolerance=tolerance,
            confidence=confidence,
            ci=ci,
            bootstrap=bootstrap,
            seed=seed + j,
            label=label,
            scope_prefix=f"class {c}: ",
            check_reference=check_reference,
        )
        index += [(j, i) for i in range(len(r))]
        rows += r
        profiles.append(prof)
    return with_adjusted(
        rows, correction, alpha, _decider(profiles, index, tolerance, len(rows), correction)
    )
