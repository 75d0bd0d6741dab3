"""Audit chapter: are the audits' tests calibrated?

Every verdict of the assumption audits rests on a test. This chapter runs each test where the
truth is known (:func:`vrg_analysis.assumptions.calibration.calibrate`): on the exact 2-D mixture
a planted model returns ``eps* + e`` with an error ``e`` we choose, a 2-step DDIM path records
``eps_hat - eps*`` (exactly the planted error) at the states it visits, and every test runs once
per replication on one coordinate. Under the null (i.i.d. zero-mean Gaussian) a test's rejection
rate at level ``alpha`` should lie in :data:`~vrg_analysis.assumptions.calibration.NULL_BAND`;
under each alternative the tests aimed at it should reach a power of at least
:data:`~vrg_analysis.assumptions.calibration.MIN_POWER`. Every rate carries a Wilson interval over
the replications (:func:`vrg_analysis.evaluation.stats.wilson_interval`).

Two reference computations for the prose: how finely a run of ``R`` replications resolves a rate
(:func:`resolution`: the binomial probability that a test whose true rate is exactly ``alpha``
lands outside the band, and the Wilson half-width at ``alpha``), and the power of the two-sided
test of a mean against a bias of ``b`` standard deviations at ``n`` samples in the normal
approximation (:func:`mean_test_power`: ``Phi(b sqrt(n) - z) + Phi(-b sqrt(n) - z)``,
``z = Phi^-1(1 - alpha / 2)``).

``run(params) -> Result``; :func:`summary` (every number the prose cites), :func:`figure`,
:func:`scenario_table`, :func:`rates_table`; :func:`write_calibration` writes the rows as
``<verdict_dir>/../calibration.csv``, which the scorecard reads.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure
from scipy import stats

from vrg_analysis.assumptions import calibration as cal
from vrg_analysis.evaluation.stats import wilson_interval
from vrg_analysis.io import atomic_write_text
from vrg_analysis.params import as_int
from vrg_analysis.report import PAGE_WIDTH, VERDICT_COLOURS

__all__ = [
    "CHAPTER",
    "Params",
    "Result",
    "Resolution",
    "Summary",
    "resolution",
    "mean_test_power",
    "documented_sizes",
    "run",
    "calibration_path",
    "write_calibration",
    "scenario_table",
    "rates_table",
    "figure",
    "summary",
    "SHORT_NAMES",
]

CHAPTER = "audit_calibration"
#: Short test names for the figure's axes.
SHORT_NAMES: dict[str, str] = {
    "mean": "mean (t)",
    "dagostino_k2": "K$^2$",
    "anderson_darling": "Anderson-Darling",
    "jarque_bera": "Jarque-Bera",
    "shapiro_wilk": "Shapiro-Wilk",
    "skewness": "skewness",
    "kurtosis": "kurtosis",
    "permutation": "permutation",
    "distance_correlation": "distance corr.",
    "transfer": "transfer (Welch)",
}
#: What each scenario plants (library constants, in units of the planted sd).
_PLANTED: dict[str, str] = {
    "bias": "mean {bias:g} sd on every coordinate",
    "step_correlation": "AR(1) correlation {step_correlation:g} between the two steps",
    "df": "Student t with {df:g} degrees of freedom, unit variance",
}
_MET, _MISSED = VERDICT_COLOURS["supported"], VERDICT_COLOURS["contradicted"]


@dataclass(frozen=True)
class Params:
    """The chapter's parameters (the notebook's ``parameters`` cell; CI-sized defaults: 150
    replications, where the documented check, :func:`documented_sizes`, asks for 500)."""

    replications: int = 150
    n: int = 5000
    n_paths: int = 300
    alpha: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "replications", as_int(self.replications, "replications", minimum=10))
        s(self, "n", as_int(self.n, "n", minimum=20))
        s(self, "n_paths", as_int(self.n_paths, "n_paths", minimum=10))
        if self.n_paths > self.n:
            raise ValueError(f"parameter n_paths must be <= n = {self.n}, got {self.n_paths}")
        s(self, "seed", as_int(self.seed, "seed", minimum=0))
        a = self.alpha
        if isinstance(a, bool) or not isinstance(a, int | float) or not 0.0 < float(a) < 0.5:
            raise ValueError(f"parameter alpha must be a number in (0, 0.5), got {a!r}")
        s(self, "alpha", float(a))


# ===================================================================== reference computations
@dataclass(frozen=True)
class Resolution:
    """How finely ``replications`` resolve a rejection rate at ``alpha`` (:func:`resolution`)."""

    replications: int
    alpha: float
    null_half_width: float  # Wilson 95% half-width around a rate of exactly alpha
    band_half_width: float
    p_outside: float  # P(a test with true rate alpha lands outside the band)
    expected_outside: float  # of len(TESTS) calibrated tests, by chance alone


def resolution(
    replications: int,
    alpha: float,
    band: tuple[float, float] = cal.NULL_BAND,
    n_tests: int = len(cal.TESTS),
) -> Resolution:
    """The binomial resolution of a run: a calibrated test rejects ``Binomial(replications,
    alpha)`` times; the probability that its rate falls outside ``band``, the expected number of
    ``n_tests`` such tests outside it, and the Wilson half-width at ``round(alpha R) / R``."""
    r = int(replications)
    k = np.arange(r + 1)
    inside = (k / r >= band[0]) & (k / r <= band[1])
    p_out = float(stats.binom.pmf(k[~inside], r, alpha).sum())
    iv = wilson_interval(int(round(alpha * r)), r)
    return Resolution(
        replications=r,
        alpha=float(alpha),
        null_half_width=iv.half_width,
        band_half_width=(band[1] - band[0]) / 2.0,
        p_outside=p_out,
        expected_outside=n_tests * p_out,
    )


def mean_test_power(bias_sd: float, n: int, alpha: float) -> float:
    """Power of the two-sided test of a zero mean against a mean of ``bias_sd`` standard
    deviations with ``n`` samples (normal approximation)."""
    z = float(stats.norm.ppf(1.0 - alpha / 2.0))
    shift = bias_sd * math.sqrt(n)
    return float(stats.norm.sf(z - shift) + stats.norm.cdf(-z - shift))


def documented_sizes() -> dict[str, int]:
    """The sizes the targets are stated at: the defaults of
    :func:`~vrg_analysis.assumptions.calibration.calibrate`."""
    sig = inspect.signature(cal.calibrate).parameters
    keys = ("replications", "n", "n_paths", "shapiro_size")
    return {k: int(sig[k].default) for k in keys}


# ===================================================================== the run
@dataclass(frozen=True, eq=False)
class Result:
    """The calibration rows (one per test and scenario) as a table, ordered by scenario and
    test, and how long the run took."""

    params: Params
    calibration: cal.CalibrationResult = field(repr=False)
    table: pd.DataFrame = field(repr=False)
    seconds: float

    @property
    def null(self) -> pd.DataFrame:
        """The rows under the null, in test order."""
        t = self.table
        return t[t.scenario == "null"].sort_values("test").reset_index(drop=True)

    @property
    def aimed(self) -> pd.DataFrame:
        """The (test, alternative) pairs with a power target."""
        t = self.table
        out = t[t.target.str.startswith("power")].sort_values(["scenario", "test"])
        return out.reset_index(drop=True)


def run(params: Params, *, progress: bool = False) -> Result:
    """Every test under every scenario, ``params.replications`` times."""
    t0 = time.perf_counter()
    res = cal.calibrate(
        replications=params.replications,
        n=params.n,
        n_paths=params.n_paths,
        alpha=params.alpha,
        seed=params.seed,
        progress=progress,
    )
    df = pd.DataFrame(res.to_records())
    df["test"] = pd.Categorical(df["test"], categories=cal.TESTS, ordered=True)
    df["scenario"] = pd.Categorical(df["scenario"], categories=list(cal.SCENARIOS), ordered=True)
    return Result(params, res, df, time.perf_counter() - t0)


def calibration_path(verdict_dir: str | Path) -> Path:
    """Where the calibration rows go: ``calibration.csv`` beside the verdict folder."""
    return Path(verdict_dir).parent / "calibration.csv"


def write_calibration(result: Result, verdict_dir: str | Path) -> Path:
    """Write the rows (with ``alpha``, ``seed``, ``n_paths``) to :func:`calibration_path`
    atomically, for the scorecard; returns the path."""
    path = calibration_path(verdict_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    p = result.params
    out = result.table.astype({"test": str, "scenario": str}).assign(
        alpha=p.alpha, seed=p.seed, n_paths=p.n_paths
    )
    atomic_write_text(path, out.to_csv(index=False))
    return path


# ===================================================================== tables and figure
def scenario_table() -> Any:
    """What each scenario plants, the tests aimed at it and its target."""
    rows = []
    for name, spec in cal.SCENARIOS.items():
        what = "; ".join(_PLANTED[k].format(**spec) for k in spec) or "i.i.d. zero-mean Gaussian"
        aimed = cal.AIMED.get(name, ())
        rows.append(
            {
                "scenario": name,
                "planted error": what,
                "tests aimed at it": ", ".join(aimed) if aimed else "(none: every test)",
                "target": (
                    f"rejection rate in [{cal.NULL_BAND[0]:g}, {cal.NULL_BAND[1]:g}]"
                    if name == "null"
                    else f"power >= {cal.MIN_POWER:g}"
                ),
            }
        )
    return (
        pd.DataFrame(rows)
        .style.hide(axis="index")
        .set_table_styles(
            [{"selector": "td, th", "props": "padding: 0.2em 0.7em; text-align: left;"}]
        )
    )


def _cell_css(passed: Any) -> str:
    if passed is None or (isinstance(passed, float) and math.isnan(passed)):
        return "color: #888888"
    c = _MET if bool(passed) else _MISSED
    return f"background-color: {c}; color: white" + ("" if bool(passed) else "; font-weight: bold")


def rates_table(result: Result) -> Any:
    """Every test (rows) under every scenario (columns): the rejection rate and its Wilson 95%
    interval; green: target met, red: missed, grey: no target (a test not aimed at that
    alternative). ``n``: the sample each test sees per replication."""
    df = result.table
    cells = [
        f"{r.rate:.3f}<br><small>[{r.ci_low:.3f}, {r.ci_high:.3f}]</small>" for r in df.itertuples()
    ]
    wide = df.assign(cell=cells).pivot(index="test", columns="scenario", values="cell")
    status = df.pivot(index="test", columns="scenario", values="passed")
    wide.insert(0, "n", result.null.set_index("test")["n"])
    wide.columns = [str(c) for c in wide.columns]
    wide.index = wide.index.astype(str)
    wide.index.name = "test"
    css = pd.DataFrame("", index=wide.index, columns=wide.columns)
    for c in status.columns:
        css[str(c)] = [_cell_css(v) for v in status[c]]
    return wide.style.apply(lambda _: css, axis=None).set_caption(
        f"Rejection rates at alpha = {result.params.alpha:g} over "
        f"{result.params.replications} replications [Wilson 95% interval]"
    )


def figure(result: Result) -> Figure:
    """Left: every test's rejection rate under the null with its Wilson 95% interval, against
    the target band. Right: the power of each test against the alternative it is aimed at, with
    the target line. Green: the rate meets its target; red: it does not."""
    null, aimed, p = result.null, result.aimed, result.params
    fig, (ax0, ax1) = plt.subplots(
        1,
        2,
        figsize=(PAGE_WIDTH, 3.8),
        gridspec_kw={"width_ratios": [len(null), max(len(aimed), 1)]},
    )
    ax0.axhspan(*cal.NULL_BAND, color=_MET, alpha=0.15, lw=0, label="target band")
    ax0.axhline(p.alpha, color="k", ls=":", lw=1, label=rf"$\alpha$ = {p.alpha:g}")
    for frame, ax, marker in ((null, ax0, "o"), (aimed, ax1, "s")):
        for i, r in frame.iterrows():
            ax.errorbar(
                i,
                r.rate,
                # clipped: at a rate of 0 or 1 the interval's end can miss it by a rounding
                yerr=[[max(r.rate - r.ci_low, 0.0)], [max(r.ci_high - r.rate, 0.0)]],
                fmt=marker,
                color=_MET if bool(r.passed) else _MISSED,
                capsize=3,
                ms=4.5,
            )
    ax0.set_xticks(
        range(len(null)),
        [SHORT_NAMES.get(t, t) for t in null.test],
        rotation=40,
        ha="right",
        rotation_mode="anchor",
        fontsize=7.5,
    )
    ax0.set(
        ylabel="rejection rate (fraction of replications)",
        title=f"Type-I error under the null ({p.replications} repl.)",
    )
    ax0.set_ylim(0, max(0.15, float(null.ci_high.max()) * 1.1))
    ax0.legend(loc="upper right", fontsize=7)
    ax1.axhline(cal.MIN_POWER, color="k", ls="--", lw=1, label=f"target {cal.MIN_POWER:g}")
    ax1.set_xticks(
        range(len(aimed)),
        [f"{SHORT_NAMES.get(t, t)} [{s}]" for t, s in zip(aimed.test, aimed.scenario, strict=True)],
        rotation=40,
        ha="right",
        rotation_mode="anchor",
        fontsize=7.5,
    )
    ax1.set(
        ylabel="rejection rate (power)",
        title="Power of the aimed tests [alternative]",
    )
    low = float(aimed.ci_low.min()) if len(aimed) else 0.75
    ax1.set_ylim(min(0.75, low - 0.03), 1.01)
    ax1.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return fig


# ===================================================================== prose
@dataclass(frozen=True)
class Summary:
    """Every number and phrase the chapter's prose cites (glued under the field names)."""

    alpha: float
    band_lo: float
    band_hi: float
    min_power: float
    doc_n: int
    doc_n_paths: int
    doc_replications: int
    shapiro_size: int
    full_replications: int
    replications: int
    n_used: int
    n_paths_used: int
    seed_used: int
    null_half_width: float
    band_half_width: float
    p_outside: float  # percent
    expected_outside: float
    n_tests: int
    run_note: str
    n_null_pass: int
    n_null_fail: int
    null_fail_list: str
    n_null_fail_covers: int
    n_aimed: int
    n_aimed_pass: int
    aimed_fail_list: str
    weakest_name: str
    weakest_rate: float
    weakest_lo: float
    weakest_hi: float
    n_targets: int
    n_met: int
    n_missed: int
    bias_sd: float
    mean_power_theory: float
    mean_power: float
    skew_t_rate: float  # percent
    tail_df: float
    seconds: float


def _listing(rows: pd.DataFrame) -> str:
    if rows.empty:
        return "none"
    return "; ".join(
        f"{r.test} under {r.scenario} ({r.rate:.3f}, interval {r.ci_low:.3f} to {r.ci_high:.3f})"
        for r in rows.itertuples()
    )


def _full_replications(full_params: str | Path | None, default: int) -> int:
    if full_params is None or not Path(full_params).is_file():
        return default
    values = yaml.safe_load(Path(full_params).read_text()) or {}
    return int(values.get("replications", default))


def summary(result: Result, full_params: str | Path | None = None) -> Summary:
    """The numbers and phrases of the chapter's prose; ``full_params`` is the full parameter
    set's YAML file (its ``replications`` is the real check's size)."""
    p, df = result.params, result.table
    doc = documented_sizes()
    res = resolution(p.replications, p.alpha)
    null, aimed = result.null, result.aimed
    null_ok = null.passed.astype(bool)
    null_fail = null[~null_ok]
    covers = null_fail[(null_fail.ci_low <= p.alpha) & (p.alpha <= null_fail.ci_high)]
    aimed_ok = aimed.passed.astype(bool)
    weakest = aimed.loc[aimed.rate.idxmin()]
    n_targets = int(df.passed.notna().sum())
    n_met = int(df.passed.dropna().astype(bool).sum())
    bias = float(cal.SCENARIOS["bias"]["bias"])
    bias_mean = df[(df.scenario == "bias") & (df.test == "mean")].iloc[0]
    skew_t = df[(df.scenario == "student_t") & (df.test == "skewness")].iloc[0]
    return Summary(
        alpha=p.alpha,
        band_lo=cal.NULL_BAND[0],
        band_hi=cal.NULL_BAND[1],
        min_power=cal.MIN_POWER,
        doc_n=doc["n"],
        doc_n_paths=doc["n_paths"],
        doc_replications=doc["replications"],
        shapiro_size=min(doc["shapiro_size"], p.n),
        full_replications=_full_replications(full_params, doc["replications"]),
        replications=p.replications,
        n_used=p.n,
        n_paths_used=p.n_paths,
        seed_used=p.seed,
        null_half_width=res.null_half_width,
        band_half_width=res.band_half_width,
        p_outside=100 * res.p_outside,
        expected_outside=res.expected_outside,
        n_tests=len(cal.TESTS),
        run_note=(
            "This is a quick run: a miss here is a prompt to look at the full run, not a verdict "
            "on the test."
            if p.replications < doc["replications"]
            else "This run has the replications the check asks for."
        ),
        n_null_pass=int(null_ok.sum()),
        n_null_fail=len(null_fail),
        null_fail_list=_listing(null_fail),
        n_null_fail_covers=len(covers),
        n_aimed=len(aimed),
        n_aimed_pass=int(aimed_ok.sum()),
        aimed_fail_list=_listing(aimed[~aimed_ok]),
        weakest_name=f"{weakest.test} under {weakest.scenario}",
        weakest_rate=float(weakest.rate),
        weakest_lo=float(weakest.ci_low),
        weakest_hi=float(weakest.ci_high),
        n_targets=n_targets,
        n_met=n_met,
        n_missed=n_targets - n_met,
        bias_sd=bias,
        mean_power_theory=mean_test_power(bias, p.n, p.alpha),
        mean_power=float(bias_mean.rate),
        skew_t_rate=100 * float(skew_t.rate),
        tail_df=float(cal.SCENARIOS["student_t"]["df"]),
        seconds=result.seconds,
    )
