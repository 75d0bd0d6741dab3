"""Calibration of the audits' verdict *rules* near their tolerances (issue 14, item 5).

:mod:`~vrg_analysis.assumptions.calibration` checks each raw test: its rejection rate under an
exact null and its power against a clear alternative. A verdict is more than a test: it combines
the test, an effect size against a tolerance, that effect's interval or equivalence test, and the
Holm correction over the audit's family (levels x coordinates, or step pairs). This module runs
each audit function end to end on errors planted with a known effect, stated as a multiple
``ratio`` of the audit's tolerance (0: the assumption exact; 0.5 and 0.9: inside; 1.1 and 2:
outside), and counts what the rule says:

- ``zero-mean`` (:func:`~.gaussianity.zero_mean_audit`): every coordinate ``N(d, 1)`` with
  ``d = ratio * margin`` (margin 0.1 sd);
- ``gaussianity`` (:func:`~.gaussianity.normality_audit`, the W1 rows of its four omnibus tests):
  a unit-variance Student t whose population W1 distance to N(0, 1) is ``ratio * 0.05``
  (:func:`student_t_df_for_w1`; ratio 0 is the Gaussian itself). Its excess kurtosis
  ``6 / (df - 4)`` is the planted truth of the kurtosis rows, stated against their own tolerance;
- ``independence`` (:func:`~.independence.independence_audit`): a paired path whose errors are an
  AR(1) chain across steps with correlation ``rho = ratio * 0.1``; the rule is strict (any
  detected dependence keeps "holds" away), so "inconclusive" inside the tolerance is by design;
- ``transfer`` (:func:`~.transfer.transfer_audit`): two error samples at the same levels whose
  MSE ratio is ``1 + ratio * 0.1``.

A right verdict is "supported" inside the tolerance and "contradicted" outside it; the wrong one
is the reverse. Each row reports the three verdict rates over every member of every replicated
family with Wilson 95% intervals (members of one family share its Holm correction, so the
intervals treat them as independent and are somewhat narrow).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import integrate, optimize, special

from vrg_analysis.assumptions.gaussianity import normality_audit, zero_mean_audit
from vrg_analysis.assumptions.independence import independence_audit
from vrg_analysis.assumptions.samples import ErrorSample
from vrg_analysis.assumptions.transfer import transfer_audit
from vrg_analysis.assumptions.verdicts import AuditResult
from vrg_analysis.evaluation.stats import VERDICTS, wilson_interval
from vrg_analysis.params import as_int

__all__ = [
    "RULES",
    "RATIOS",
    "TOLERANCES",
    "RuleSizes",
    "population_w1_student_t",
    "student_t_df_for_w1",
    "student_t_excess_kurtosis",
    "check_ratios",
    "planted_samples",
    "run_rule",
    "calibrate_rules",
]

#: The rules calibrated, in page order.
RULES: tuple[str, ...] = ("zero-mean", "gaussianity", "independence", "transfer")
#: Planted effects as multiples of the tolerance: exact, inside, just inside, just outside, outside.
RATIOS: tuple[float, ...] = (0.0, 0.5, 0.9, 1.1, 2.0)


def _default(audit: Callable[..., object], name: str) -> float:
    """The default of keyword ``name`` of an audit function: the tolerance it judges with."""
    return float(inspect.signature(audit).parameters[name].default)


#: Each rule's tolerance, read from its audit function's default (the effect the ratio
#: multiplies): |mean| in sd, excess W1 to N(0, 1) in sd, |cross-step correlation|, and the MSE
#: ratio band [1 / (1 + tol), 1 + tol].
TOLERANCES: dict[str, float] = {
    "zero-mean": _default(zero_mean_audit, "margin"),
    "gaussianity": _default(normality_audit, "distance_tolerance"),
    "independence": _default(independence_audit, "tolerance"),
    "transfer": _default(transfer_audit, "tolerance"),
}
#: The kurtosis rows' tolerance (excess kurtosis), the audit's default.
KURTOSIS_TOLERANCE = _default(normality_audit, "kurtosis_tolerance")


@dataclass(frozen=True)
class RuleSizes:
    """The sizes one replicated family runs at (the audits' own: quick ``n = 1000`` errors per
    level, 6 levels, 16 coordinates, 400 paths of 10 steps; full 5000, 20, 16, 2000)."""

    n: int = 1000  # errors per level (zero-mean, Gaussianity, transfer: per side)
    levels: int = 6  # levels of the zero-mean, Gaussianity and transfer families
    coordinates: int = 16  # coordinates per level (zero-mean, Gaussianity)
    n_paths: int = 400  # paths of the independence family
    path_steps: int = 10  # steps of a path (step pairs = path_steps - 1)
    path_dim: int = 2  # dimension of a path's error (the 2-D mixture's)
    transfer_dim: int = 16  # dimension of the transfer audit's errors

    def __post_init__(self) -> None:
        for name, low in (
            ("n", 20),
            ("levels", 1),
            ("coordinates", 1),
            ("n_paths", 10),
            ("path_steps", 2),
            ("path_dim", 1),
            ("transfer_dim", 1),
        ):
            value = as_int(getattr(self, name), f"RuleSizes.{name}", minimum=low)
            object.__setattr__(self, name, value)

    def family(self, rule: str) -> int:
        """Members of one family of ``rule`` (the Holm family size)."""
        if rule in ("zero-mean", "gaussianity"):
            return self.levels * self.coordinates
        if rule == "independence":
            return self.path_steps - 1
        if rule == "transfer":
            return self.levels
        raise ValueError(f"unknown rule {rule!r}; expected one of {list(RULES)}")


def population_w1_student_t(df: float) -> float:
    """W1 distance between a unit-variance Student t with ``df`` (> 2) degrees of freedom and
    N(0, 1), in its CDF form ``int |F_t(x / s) - Phi(x)| dx`` (``s = sqrt((df - 2) / df)``; twice
    the half-line by symmetry) by adaptive quadrature (scipy ``quad``; the quantile form gives the
    same to 1e-9 at several times the cost); ``df = inf`` is 0."""
    if math.isinf(df):
        return 0.0
    if not df > 2.0:
        raise ValueError(f"df must be > 2 for a finite variance, got {df!r}")
    scale = math.sqrt((df - 2.0) / df)

    def gap(x: float) -> float:  # the CDFs as scipy.special ufuncs: stats.t.cdf is 70x slower
        return abs(float(special.stdtr(df, x / scale)) - float(special.ndtr(x)))

    return 2.0 * float(integrate.quad(gap, -np.inf, 0.0, limit=400, epsabs=1e-12)[0])


@lru_cache(maxsize=64)
def student_t_df_for_w1(w1: float) -> float:
    """The degrees of freedom whose unit-variance Student t lies at W1 distance ``w1`` from
    N(0, 1) (:func:`population_w1_student_t` is decreasing in ``df``); ``inf`` for ``w1 = 0``."""
    if w1 == 0.0:
        return math.inf
    if not 0.0 < w1 < population_w1_student_t(2.05):
        raise ValueError(f"w1 must lie in [0, {population_w1_student_t(2.05):.3f}), got {w1!r}")
    return float(optimize.brentq(lambda d: population_w1_student_t(d) - w1, 2.05, 1e4, xtol=1e-9))


def student_t_excess_kurtosis(df: float) -> float:
    """Excess kurtosis ``6 / (df - 4)`` of a Student t (``inf`` for ``df <= 4``, 0 for
    ``df = inf``)."""
    if math.isinf(df):
        return 0.0
    return 6.0 / (df - 4.0) if df > 4.0 else math.inf


def check_ratios(
    ratios: Sequence[float], name: str = "ratios", *, correlation: bool = True
) -> tuple[float, ...]:
    """Planted ratios, checked: finite, ``>= 0``, not 1 (on the boundary no verdict is right or
    wrong), and, where the independence rule is planted (``correlation``), small enough that
    its step correlation stays below 1."""
    out = tuple(float(r) for r in ratios)
    bad = [r for r in out if not (math.isfinite(r) and r >= 0.0 and r != 1.0)]
    if not out or bad:
        raise ValueError(f"{name} must be non-empty, finite, >= 0 and not 1, got {list(ratios)!r}")
    if correlation and max(out) * TOLERANCES["independence"] >= 1.0:
        limit = 1.0 / TOLERANCES["independence"]
        raise ValueError(f"{name} must stay below {limit:g} (a correlation < 1), got {list(out)!r}")
    return out


def _levels(k: int) -> np.ndarray:
    return np.linspace(0.05, 0.95, k)


def planted_samples(
    rule: str, ratio: float, sizes: RuleSizes, rng: np.random.Generator
) -> tuple[ErrorSample, ...]:
    """The planted error sample(s) of ``rule`` at ``ratio`` times its tolerance (module
    docstring): one sample, or ``(reference, other)`` for ``transfer``."""
    if not (math.isfinite(ratio) and ratio >= 0.0):
        raise ValueError(f"ratio must be a finite number >= 0, got {ratio!r}")
    tol = TOLERANCES.get(rule)
    if tol is None:
        raise ValueError(f"unknown rule {rule!r}; expected one of {list(RULES)}")
    effect = ratio * tol
    s = sizes
    shape = (s.levels, s.n, s.coordinates)
    if rule == "zero-mean":
        e = rng.standard_normal(shape) + effect
        return (ErrorSample(e, _levels(s.levels), f"planted mean {effect:g} sd", "planted"),)
    if rule == "gaussianity":
        df = student_t_df_for_w1(effect)
        if math.isinf(df):
            e = rng.standard_normal(shape)
        else:
            e = rng.standard_t(df, shape) * math.sqrt((df - 2.0) / df)
        return (ErrorSample(e, _levels(s.levels), f"planted Student t (df {df:.4g})", "planted"),)
    if rule == "independence":
        if effect >= 1.0:
            raise ValueError(f"a step correlation must be < 1, got {effect!r}")
        e = np.empty((s.path_steps, s.n_paths, s.path_dim))
        e[0] = rng.standard_normal((s.n_paths, s.path_dim))
        keep = math.sqrt(1.0 - effect**2)
        for k in range(1, s.path_steps):
            e[k] = effect * e[k - 1] + keep * rng.standard_normal((s.n_paths, s.path_dim))
        alpha_bar = _levels(s.path_steps)
        return (ErrorSample(e, alpha_bar, f"planted AR(1) {effect:g}", "planted", paired=True),)
    levels = _levels(s.levels)
    ref = rng.standard_normal((s.levels, s.n, s.transfer_dim))
    other = rng.standard_normal((s.levels, s.n, s.transfer_dim)) * math.sqrt(1.0 + effect)
    return (
        ErrorSample(ref, levels, "planted reference", "planted"),
        ErrorSample(other, levels, f"planted MSE ratio {1.0 + effect:g}", "planted"),
    )


def run_rule(
    rule: str, samples: Sequence[ErrorSample], *, alpha: float = 0.05, seed: int = 0
) -> list[AuditResult]:
    """The audit function of ``rule`` on the planted sample(s), at its default tolerance and
    settings (every coordinate audited)."""
    if rule == "zero-mean":
        return zero_mean_audit(samples[0], alpha=alpha, max_coordinates=None, seed=seed)
    if rule == "gaussianity":
        return normality_audit(samples[0], alpha=alpha, max_coordinates=None, seed=seed)
    if rule == "independence":
        return independence_audit(samples[0], alpha=alpha, seed=seed)
    if rule == "transfer":
        return transfer_audit(samples[0], samples[1], alpha=alpha, seed=seed)
    raise ValueError(f"unknown rule {rule!r}; expected one of {list(RULES)}")


def _method(rule: str, row: AuditResult) -> str | None:
    """The row group a result belongs to (``None``: not calibrated here)."""
    if rule == "gaussianity":
        if row.effect_name.startswith("excess W1"):
            return row.method.split(" (")[0]
        return "kurtosis" if row.method.startswith("kurtosis") else None
    if rule == "independence":
        if row.audit != "independence":
            return None  # the CPE-consequence row has its own tolerance
        return "distance correlation" if row.method.startswith("distance") else "permutation"
    return row.method.split(" (")[0]


def _truth(rule: str, method: str, ratio: float) -> tuple[float, float, float]:
    """``(true effect, tolerance, true / tolerance)`` of a row group."""
    if rule == "gaussianity" and method == "kurtosis":
        kurt = student_t_excess_kurtosis(student_t_df_for_w1(ratio * TOLERANCES[rule]))
        return kurt, KURTOSIS_TOLERANCE, kurt / KURTOSIS_TOLERANCE
    tol = TOLERANCES[rule]
    return ratio * tol, tol, ratio


def calibrate_rules(
    *,
    rules: Sequence[str] = RULES,
    ratios: Sequence[float] = RATIOS,
    replications: int = 20,
    sizes: RuleSizes | None = None,
    alpha: float = 0.05,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Each rule's verdict rates on planted families (module docstring): one row per rule, row
    group (``method``; Gaussianity's four W1 rows and its kurtosis rows) and planted ratio, with
    the counts and rates of "supported", "contradicted" and "inconclusive", their Wilson 95%
    intervals, the right verdict's name and its rate, and the wrong verdict's rate."""
    sizes = sizes or RuleSizes()
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        raise ValueError(f"unknown rule(s) {unknown}; expected some of {list(RULES)}")
    replications = as_int(replications, "replications", minimum=1)
    ratios = check_ratios(ratios, correlation="independence" in rules)
    records: list[dict[str, object]] = []
    for ri, rule in enumerate(rules):
        for qi, ratio in enumerate(ratios):
            counts: dict[str, dict[str, int]] = {}
            for rep in range(int(replications)):
                rng = np.random.default_rng([seed, ri, qi, rep])
                rows = run_rule(
                    rule, planted_samples(rule, float(ratio), sizes, rng), alpha=alpha, seed=rep
                )
                for row in rows:
                    method = _method(rule, row)
                    if method is not None:
                        c = counts.setdefault(method, dict.fromkeys(VERDICTS, 0))
                        c[row.verdict] += 1
            if progress is not None:
                progress(f"{rule} at {ratio:g} x tolerance")
            for method, c in counts.items():
                total = sum(c.values())
                effect, tol, rel = _truth(rule, method, float(ratio))
                right = "supported" if rel < 1.0 else "contradicted"
                wrong = "contradicted" if rel < 1.0 else "supported"
                rec: dict[str, object] = {
                    "rule": rule,
                    "method": method,
                    "ratio": float(ratio),
                    "true_effect": effect,
                    "tolerance": tol,
                    "true_over_tolerance": rel,
                    "n": sizes.n_paths if rule == "independence" else sizes.n,
                    "family": sizes.family(rule),
                    "replications": int(replications),
                    "verdicts": total,
                    "right": right,
                }
                for v in VERDICTS:
                    iv = wilson_interval(c[v], total)
                    rec[v] = c[v]
                    rec[f"{v}_rate"] = iv.estimate
                    rec[f"{v}_lo"] = iv.low
                    rec[f"{v}_hi"] = iv.high
                rec["right_rate"] = rec[f"{right}_rate"]
                rec["wrong_rate"] = rec[f"{wrong}_rate"]
                records.append(rec)
    return pd.DataFrame.from_records(records)
