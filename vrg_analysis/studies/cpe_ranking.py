"""Does CPE rank trajectories? (issue 14, item 9.) VRG's premise is that a trajectory with a lower
cumulative prediction error (Eq. 10) gives better samples; if so, CPE ranks trajectories as the
measured quality does. Two measures, on any table of arms (one row per trajectory: its CPE and
its measured metric):

* **Spearman's rho** over every arm (across baselines and K), with a paired bootstrap interval
  (``scipy.stats.bootstrap``, arms resampled with their CPE and metric together);
* the **within-K concordance**: over every pair of arms at the same K, how often the lower CPE
  has the lower metric (:func:`rank_concordance`), with the exact binomial test of one half.
  Across K both CPE and any error fall together as the steps grow, which makes rho large
  whether or not CPE orders trajectories that cost the same; the within-K count is the fair test.

The book's verdict on "CPE ranks trajectories as the metric does" is the concordance's
(:func:`rank_verdict`): supported when significantly more than half of the untied pairs agree,
contradicted when significantly fewer, inconclusive otherwise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from vrg_analysis.report import styled

__all__ = [
    "SpearmanInterval",
    "spearman_interval",
    "rank_concordance",
    "rank_verdict",
    "ranking_table",
    "ranking_text",
    "ranking_view",
]


@dataclass(frozen=True)
class SpearmanInterval:
    """Spearman's rho of ``n`` pairs, its two-sided p-value (``scipy.stats.spearmanr``) and a
    paired bootstrap interval at ``confidence``."""

    rho: float
    low: float
    high: float
    p: float
    n: int
    confidence: float


def spearman_interval(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1999,
    seed: int = 0,
) -> SpearmanInterval:
    """Spearman's rho of ``x`` and ``y`` (``scipy.stats.spearmanr``) with a percentile interval
    from ``scipy.stats.bootstrap`` (``paired=True``: the pairs are resampled together). Where a
    resample has no rho (all its values tied, which needs very few distinct pairs) the interval
    is NaN, never a silently narrower one. Fewer than 4 pairs, or non-finite values, are
    refused."""
    xa = np.asarray(x, dtype=np.float64).reshape(-1)
    ya = np.asarray(y, dtype=np.float64).reshape(-1)
    if xa.shape != ya.shape:
        raise ValueError(f"spearman_interval: x and y differ in length ({xa.size}, {ya.size})")
    if xa.size < 4:
        raise ValueError(f"spearman_interval: at least 4 pairs, got {xa.size}")
    if not (np.isfinite(xa).all() and np.isfinite(ya).all()):
        raise ValueError("spearman_interval: x and y must be finite")
    res = stats.spearmanr(xa, ya)

    def rho(a: np.ndarray, b: np.ndarray) -> float:
        return float(stats.spearmanr(a, b).statistic)

    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant resample: rho is NaN, and so the interval
        boot = stats.bootstrap(
            (xa, ya),
            rho,
            paired=True,
            vectorized=False,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    ci = boot.confidence_interval
    return SpearmanInterval(
        float(res.statistic), float(ci.low), float(ci.high), float(res.pvalue), int(xa.size),
        confidence,
    )  # fmt: skip


def rank_concordance(
    frame: pd.DataFrame, *, x: str = "CPE", y: str, by: str = "K"
) -> tuple[int, int, int, float]:
    """Does ``x`` (CPE) rank the rows as ``y`` (a measured metric, lower better) does? Over every
    pair of rows with the same ``by`` (K): ``(concordant, discordant, tied, p)``, concordant when
    the lower ``x`` has the lower ``y``; ``p`` the two-sided exact binomial test
    (``scipy.stats.binomtest``) of a concordance of one half among the untied pairs (NaN when
    every pair is tied).

    Why the pairs are counted here: the comparison is stratified (pairs only within one K, pooled
    over K), which ``scipy.stats.kendalltau`` does not do and whose counts it does not return;
    within one K, ``(concordant - discordant) / pairs`` is Kendall's tau-a (tested against
    scipy)."""
    for name in (x, y):
        if not np.isfinite(frame[name].to_numpy(dtype=np.float64)).all():
            raise ValueError(f"rank_concordance: column {name!r} has a value that is not finite")
    conc = disc = ties = 0
    for _, part in frame.groupby(by):
        a, b = part[x].to_numpy(dtype=np.float64), part[y].to_numpy(dtype=np.float64)
        for i in range(a.size):
            for j in range(i + 1, a.size):
                da, db = a[i] - a[j], b[i] - b[j]
                if da == 0.0 or db == 0.0:
                    ties += 1
                elif (da > 0) == (db > 0):
                    conc += 1
                else:
                    disc += 1
    untied = conc + disc
    p = float(stats.binomtest(conc, untied, 0.5).pvalue) if untied else math.nan
    return conc, disc, ties, p


def rank_verdict(concordant: int, discordant: int, p: float, alpha: float = 0.05) -> str:
    """The book's verdict on "a lower CPE means a lower metric": supported when the concordant
    pairs are significantly more than half (:func:`rank_concordance`'s binomial test),
    contradicted when significantly fewer, else inconclusive."""
    if math.isfinite(p) and p < alpha:
        return "supported" if concordant > discordant else "contradicted"
    return "inconclusive"


def ranking_table(
    arms: pd.DataFrame,
    metrics: Sequence[str],
    *,
    group: str = "role",
    n_resamples: int = 1999,
    seed: int = 0,
) -> pd.DataFrame:
    """Per ``group`` (a testbed) and metric of ``metrics`` present there: the arms counted,
    Spearman's rho of CPE (column ``cpe``) and the metric with its 95% bootstrap interval, the
    within-K concordant, discordant and tied pairs, the binomial p and the verdict
    (:func:`rank_verdict`)."""
    rows = []
    for name, part in arms.groupby(group, sort=False):
        for metric in metrics:
            if metric not in part or not part[metric].notna().all():
                continue
            iv = spearman_interval(part.cpe, part[metric], n_resamples=n_resamples, seed=seed)
            conc, disc, ties, p = rank_concordance(part, x="cpe", y=metric)
            rows.append(
                {
                    group: name,
                    "metric": metric,
                    "arms": iv.n,
                    "Spearman rho": iv.rho,
                    "rho low": iv.low,
                    "rho high": iv.high,
                    "concordant": conc,
                    "discordant": disc,
                    "tied": ties,
                    "p (binomial)": p,
                    "verdict": rank_verdict(conc, disc, p),
                }
            )
    return pd.DataFrame(rows)


def ranking_text(table: pd.DataFrame, *, group: str = "role") -> str:
    """The table (:func:`ranking_table`) in words, one clause per testbed and metric: rho with
    its interval over the arms, and the within-K pairs with the verdict."""
    parts = []
    for _, r in table.iterrows():
        parts.append(
            f"{r[group]}, {r.metric}: rho {r['Spearman rho']:+.2f} [{r['rho low']:+.2f}, "
            f"{r['rho high']:+.2f}] over {r.arms} arms; within K, {r.concordant} pairs "
            f"concordant and {r.discordant} discordant (binomial p = {r['p (binomial)']:.2g}): "
            f"{r.verdict}"
        )
    return "; ".join(parts) if parts else "no arms to rank"


def ranking_view(table: pd.DataFrame) -> Any:
    """The table as the page shows it (verdicts as badges)."""
    return styled(
        table,
        formats={
            "Spearman rho": "{:+.2f}",
            "rho low": "{:+.2f}",
            "rho high": "{:+.2f}",
            "p (binomial)": "{:.2g}",
        },
        caption="Does CPE rank trajectories? Spearman's rho over every arm (95% paired "
        "bootstrap interval) and the pairs of arms at the same K",
    )
