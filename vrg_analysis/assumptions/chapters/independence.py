"""Audit chapter: are the errors of successive sampling steps independent?

VRG's objective adds one variance per step,

    CPE = sum_k c_k^2 w(a_k),   c_k = sigma_{k-1} - sigma_k                 (Eq. 10, (CPE))

which is the variance of the accumulated error ``sum_k c_k delta_k`` of the DDIM update (in
``y = x / sqrt(alpha_bar)``, ``y_{k-1} = y_k + c_k eps_hat``) only if the errors ``delta_k`` made
along one sampling path are uncorrelated. This chapter samples many paths of a baseline trajectory
from independent ``x_T`` on one model (:func:`vrg_analysis.testbeds.resolve_testbed`), records at
every visited state the error against the testbed's best reference predictor
(:func:`~vrg_analysis.assumptions.samples.errors_along_path`) and runs
:func:`~vrg_analysis.assumptions.independence.independence_audit`: per consecutive pair of steps a
permutation test of the pooled correlation ``R`` and a distance-correlation test, each family
Holm-corrected and judged by the book's rule on the claim "the errors of consecutive steps are
independent (``|R|`` within the tolerance)" (strict: a detected dependence is never "supported");
plus the consequence row, the accumulated-error variance with the measured cross-step moments
``sum_kl c_k c_l E[delta_k . delta_l] / d`` over VRG's independent formula
(:func:`~vrg_analysis.assumptions.independence.cpe_with_step_covariance`).

Two planted controls on the exact 2-D mixture check the audit itself: ``eps* + s sqrt(a) z_k``
with ``z_k`` an AR(1) chain across model calls of correlation 0 (the audit must not flag it) and
``control_correlation`` (it must).

Beside the verdicts: the consecutive-step correlations with the audit's own bootstrap intervals
(:func:`consecutive_correlations`) and the accumulated-error variance split by lag
(:func:`lag_contributions`).

``run(params) -> Result`` computes everything; :func:`summary` gives every number the prose cites,
:func:`figures` the two figures, :func:`control_table` the controls, and :func:`write_outputs` the
verdict table (``<verdict_dir>/audit_independence.csv`` + ``.md``, for the scorecard and
``python -m vrg_analysis audit``) and the figures as PNG.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure
from numpy.typing import NDArray

from vrg_analysis.assumptions.chapters import cached_audit
from vrg_analysis.assumptions.independence import (
    CovarianceCPE,
    correlation_interval,
    cpe_with_step_covariance,
    independence_audit,
    step_correlation_matrix,
)
from vrg_analysis.assumptions.samples import ErrorSample, errors_along_path
from vrg_analysis.assumptions.verdicts import (
    AuditResult,
    summarize,
    with_source,
    write_results,
)
from vrg_analysis.core.cpe import step_increments
from vrg_analysis.core.schedules import sigma_from_alpha_bar
from vrg_analysis.core.trajectories import BASELINES, Trajectory, baseline
from vrg_analysis.models.analytic import PlantedErrorModel
from vrg_analysis.params import as_bool, as_float, as_int
from vrg_analysis.report import PAGE_WIDTH, save_figures, styled
from vrg_analysis.samplers import SAMPLERS, get_sampler, initial_noise, sample_generators
from vrg_analysis.testbeds import check_model, make_testbed, resolve_testbed
from vrg_analysis.threads import limit_threads

__all__ = [
    "CHAPTER",
    "FIGURES",
    "CONTROL_TESTBED",
    "Params",
    "Control",
    "Result",
    "Summary",
    "dcor_paths",
    "subset_coordinates",
    "consecutive_correlations",
    "lag_contributions",
    "run_control",
    "run",
    "control_counts",
    "control_table",
    "figure_correlation",
    "figure_consequence",
    "figures",
    "write_outputs",
    "summary",
    "artifact_result",
]

CHAPTER = "audit_independence"
#: The chapter's figures, by glue name (also the PNG names, ``audit_independence_<name>.png``).
FIGURES: tuple[str, ...] = ("fig_correlation", "fig_consequence")
#: The planted controls always run on this exact testbed, whatever model is audited.
CONTROL_TESTBED = "mixture-2d"
#: Default sizes (quick, full) when a size parameter is None.
_SIZES: dict[str, tuple[int, int]] = {
    "n_paths": (400, 2000),
    "permutations": (499, 999),
    "bootstrap": (200, 1000),
}
FloatArray = NDArray[np.float64]


# ===================================================================== parameters


@dataclass(frozen=True)
class Params:
    """The chapter's parameters (the notebook's ``parameters`` cell; CI-sized defaults).

    ``n_paths`` (sampling paths, each from its own ``x_T``), ``permutations`` (permutation-test
    resamples) and ``bootstrap`` (bootstrap resamples of the correlation intervals) default by
    ``quick``: 400 / 499 / 200 quick, 2000 / 999 / 1000 full; they are resolved to integers on
    construction. ``max_coordinates``: image errors keep a seeded random subset of this many
    coordinates (the tests' work arrays; None: all). ``control_correlation``: the planted
    step-to-step correlation of the positive control; ``control_std``: its error sd near the data,
    scaled by ``sqrt(alpha_bar)``.
    """

    model: str = "mixture-2d"
    data: str | None = None
    device: str = "cpu"
    quick: bool = True
    seed: int = 0
    n_paths: int | None = None
    sampler: str = "ddim"
    trajectory_name: str = "time_quadratic"
    num_steps: int = 10
    max_coordinates: int | None = 128
    permutations: int | None = None
    bootstrap: int | None = None
    control_correlation: float = 0.2
    control_std: float = 0.5

    def __post_init__(self) -> None:
        s = object.__setattr__
        if self.data is not None and not isinstance(self.data, str):
            raise ValueError(f"parameter data must be a path or None, got {self.data!r}")
        check_model(self.model, self.data, self.device)
        s(self, "data", self.data or None)
        s(self, "quick", as_bool(self.quick, "quick"))
        s(self, "seed", as_int(self.seed, "seed", minimum=0))
        if self.sampler not in SAMPLERS:
            raise ValueError(
                f"parameter sampler: unknown value {self.sampler!r}; allowed: {sorted(SAMPLERS)}"
            )
        if self.trajectory_name not in BASELINES:
            raise ValueError(
                f"parameter trajectory_name: unknown value {self.trajectory_name!r}; allowed: "
                f"{sorted(BASELINES)}"
            )
        s(self, "num_steps", as_int(self.num_steps, "num_steps", minimum=2))
        if self.max_coordinates is not None:
            s(self, "max_coordinates", as_int(self.max_coordinates, "max_coordinates", minimum=1))
        for name, (quick, full) in _SIZES.items():
            value = getattr(self, name)
            value = (quick if self.quick else full) if value is None else value
            s(
                self,
                name,
                as_int(value, name, minimum={"n_paths": 10, "permutations": 19}.get(name, 20)),
            )
        rho = as_float(self.control_correlation, "control_correlation")
        if not -1.0 < rho < 1.0:
            raise ValueError(f"parameter control_correlation must lie in (-1, 1), got {rho}")
        s(self, "control_correlation", rho)
        std = as_float(self.control_std, "control_std")
        if not std > 0.0:
            raise ValueError(f"parameter control_std must be > 0, got {std}")
        s(self, "control_std", std)


# ===================================================================== estimators
def dcor_paths(dim: int) -> int:
    """Paths the distance-correlation test uses for ``dim``-dimensional errors: its ``[n, n]``
    distance matrices of ``dim``-vectors cost ``n^2 dim``, kept near ``1.6e7`` (50 to 1000)."""
    return int(min(1000, max(50, math.sqrt(1.6e7 / max(int(dim), 1)))))


def subset_coordinates(sample: ErrorSample, max_coordinates: int | None, seed: int) -> ErrorSample:
    """The sample restricted to a seeded random subset of ``max_coordinates`` coordinates (sorted;
    the sample itself when it has no more): keeps the permutation test's ``[256, n, d]`` and the
    distance correlation's ``[n, n]`` work small for images."""
    d = sample.dim
    if max_coordinates is None or d <= max_coordinates:
        return sample
    keep = np.sort(np.random.default_rng(seed).choice(d, int(max_coordinates), replace=False))
    return ErrorSample(
        sample.errors[:, :, keep],
        sample.alpha_bar,
        sample.source,
        sample.reference,
        paired=sample.paired,
        against_noise=sample.against_noise,
    )


def consecutive_correlations(sample: ErrorSample, *, bootstrap: int, seed: int) -> pd.DataFrame:
    """One row per consecutive pair of steps ``(k, k+1)`` (step 0 the noisiest): the pooled
    correlation ``R`` (:func:`~vrg_analysis.assumptions.independence.step_correlation_matrix`)
    and the 95% percentile-bootstrap interval over paths that the audit judges
    (:func:`~vrg_analysis.assumptions.independence.correlation_interval` with the audit's seed
    ``seed + k``)."""
    r = step_correlation_matrix(sample)
    sigma = sigma_from_alpha_bar(sample.alpha_bar)
    rows = []
    for k in range(sample.num_levels - 1):
        lo, hi = correlation_interval(
            sample.errors[k], sample.errors[k + 1], bootstrap=bootstrap, seed=seed + k
        )
        rows.append(
            {
                "pair": f"{k}-{k + 1}",
                "k": k,
                "sigma from": float(sigma[k]),
                "sigma to": float(sigma[k + 1]),
                "R": float(r[k, k + 1]),
                "low": lo,
                "high": hi,
            }
        )
    return pd.DataFrame(rows)


def lag_contributions(sample: ErrorSample) -> FloatArray:
    """The accumulated-error variance ``sum_kl c_k c_l E[delta_k . delta_l] / d`` split by lag
    ``|k - l|`` (``c_k`` the DDIM increments of ``sigma`` in sampling order), in units of the
    independent formula (lag 0, VRG's CPE with the path's own second moments). Entry ``g`` sums
    both ``k - l = g`` and ``l - k = g``."""
    c = step_increments(sample.alpha_bar)
    m2 = np.einsum("kid,lid->kl", sample.errors, sample.errors) / (sample.n * sample.dim)
    contrib = np.outer(c, c) * m2
    lag = np.abs(np.subtract.outer(np.arange(c.size), np.arange(c.size)))
    sums = np.array([contrib[lag == g].sum() for g in range(c.size)])
    return sums / sums[0]


# ===================================================================== the computation
@dataclass(frozen=True, eq=False)
class Control:
    """One planted control: its error sample along DDIM paths, its audit rows, its consecutive
    correlations and its CPE consequence."""

    role: str  # "negative" (independent errors) or "positive" (planted correlation)
    rho: float
    sample: ErrorSample | None  # None in a committed result (artifact_result)
    results: list[AuditResult]
    consecutive: pd.DataFrame = field(repr=False)
    cpe: CovarianceCPE = field(repr=False)

    @property
    def summary(self) -> dict[str, dict[str, object]]:
        return summarize(self.results)

    def count(self, what: str) -> int:
        """A count of the pair tests (``"tests"`` or a verdict)."""
        return int(str(self.summary["independence"][what]))


def run_control(role: str, rho: float, params: Params) -> Control:
    """The planted control: ``eps* + control_std sqrt(a) z_k`` on :data:`CONTROL_TESTBED`, ``z_k``
    an AR(1) chain of correlation ``rho`` across model calls, DDIM on the chapter's trajectory
    (one model call per step, so the planted correlation is the step-to-step one), errors against
    ``eps*`` (exactly the planted ones), audited as the target."""
    bed = make_testbed(CONTROL_TESTBED)
    std = params.control_std
    planted = PlantedErrorModel(
        bed.oracle, std=lambda a: std * np.sqrt(a), step_correlation=rho, seed=params.seed
    )
    planted.reset(params.seed)
    x_t = initial_noise((int(params.n_paths or 0), *bed.sample_shape), params.seed + 7)
    traj = baseline(params.trajectory_name, bed.schedule, params.num_steps)
    s = errors_along_path(planted, bed.oracle, x_t, traj, reference_name="eps* (exact predictor)")
    results = independence_audit(
        s,
        permutations=int(params.permutations or 0),
        seed=params.seed,
        bootstrap=int(params.bootstrap or 0),
    )
    source = f"{CONTROL_TESTBED} planted control (R = {rho:g}), ddim path, vs eps*"
    return Control(
        role=role,
        rho=rho,
        sample=s,
        results=with_source(results, source),
        consecutive=consecutive_correlations(
            s, bootstrap=int(params.bootstrap or 0), seed=params.seed
        ),
        cpe=cpe_with_step_covariance(
            s, bootstrap=int(params.bootstrap or 0), seed=params.seed
        ),  # the consequence row's own interval
    )


@dataclass(frozen=True, eq=False)
class Result:
    """Everything the chapter shows: the target's path errors and verdict rows, the correlations,
    the CPE consequence and its split by lag, and the two controls. A committed result keeps
    everything but the raw path errors (``path`` and each control's ``sample`` are ``None``,
    :func:`artifact_result`); the page reads the rest."""

    params: Params
    target_name: str
    reference_name: str
    exact: bool
    trajectory: Trajectory
    path: ErrorSample | None
    dim_used: int
    dim_full: int
    results: list[AuditResult]
    correlation: FloatArray = field(repr=False)
    consecutive: pd.DataFrame = field(repr=False)
    cpe: CovarianceCPE = field(repr=False)
    lags: FloatArray = field(repr=False)
    controls: dict[str, Control] = field(repr=False)

    @property
    def pairs(self) -> list[AuditResult]:
        """The consecutive-pair rows (permutation and distance-correlation tests)."""
        return [r for r in self.results if r.audit == "independence"]

    @property
    def consequence(self) -> AuditResult:
        return next(r for r in self.results if r.audit == "independence (consequence)")

    @property
    def tolerance(self) -> float:
        return self.pairs[0].tolerance


def artifact_result(result: Result) -> Result:
    """What a committed full-size run keeps (:mod:`vrg_analysis.studies.artifacts`): everything
    but the raw errors along the paths (the target's and each control's: 2,000 paths x 10 steps x
    128 coordinates are 20 MB each), which the page does not draw: its figures and numbers come
    from the correlations, the consecutive pairs, the CPE consequence, the lags and the rows."""
    controls = {k: dataclasses.replace(c, sample=None) for k, c in result.controls.items()}
    return dataclasses.replace(result, path=None, controls=controls)


def run(params: Params) -> Result:
    """Sample the paths, audit them and run the controls, cached by the parameters and
    the audited model's identity (:mod:`vrg_analysis.cache`): the notebook and
    ``python -m vrg_analysis audit`` share one computation.
    """
    return cached_audit(CHAPTER, params, _compute)


def _compute(params: Params) -> Result:
    """Sample the paths, audit them and run the controls (module docstring)."""
    bed = resolve_testbed(params.model, data=params.data, device=params.device, seed=params.seed)
    ref = bed.reference()
    traj = baseline(params.trajectory_name, bed.schedule, params.num_steps)
    n = int(params.n_paths or 0)
    name = bed.name if bed.name == bed.model_name else f"{bed.name} ({bed.model_name})"
    with limit_threads(1 if ref.exact and params.device == "cpu" else None):
        x_t = initial_noise((n, *bed.sample_shape), params.seed)
        stochastic = get_sampler(params.sampler).stochastic
        gens = sample_generators(params.seed + 1, n) if stochastic else None
        # labels 0, 1, .. cycled over the paths, each against its class's reference
        kwargs = {"y": torch.arange(n) % bed.num_classes} if bed.conditional else None
        full = errors_along_path(
            bed.model,
            ref.model,
            x_t,
            traj,
            sampler=params.sampler,
            generator=gens,
            model_kwargs=kwargs,
            reference_name=ref.name,
        )
    path = subset_coordinates(full, params.max_coordinates, params.seed)
    source = f"{name}, {params.sampler} path ({params.trajectory_name}, K={traj.K}), vs {ref.name}"
    results = independence_audit(
        path,
        permutations=int(params.permutations or 0),
        seed=params.seed,
        max_paths_dcor=dcor_paths(path.dim),
        bootstrap=int(params.bootstrap or 0),
    )
    with limit_threads(1 if params.device == "cpu" else None):
        controls = {
            role: run_control(role, rho, params)
            for role, rho in (("negative", 0.0), ("positive", params.control_correlation))
        }
    return Result(
        params=params,
        target_name=name,
        reference_name=ref.name,
        exact=ref.exact,
        trajectory=traj,
        path=path,
        dim_used=path.dim,
        dim_full=full.dim,
        results=with_source(results, source),
        correlation=step_correlation_matrix(path),
        consecutive=consecutive_correlations(
            path, bootstrap=int(params.bootstrap or 0), seed=params.seed
        ),
        cpe=cpe_with_step_covariance(
            path, bootstrap=int(params.bootstrap or 0), seed=params.seed
        ),  # the consequence row's interval
        lags=lag_contributions(path),
        controls=controls,
    )


# ===================================================================== tables
def control_counts(result: Result) -> pd.DataFrame:
    """One row per control: the pair-test verdicts on "independent", the overall verdict
    (conjunction over the pairs), the mean measured consecutive R and the CPE consequence."""
    rows = []
    for c in result.controls.values():
        pairs, cons = c.summary["independence"], c.summary["independence (consequence)"]
        rows.append(
            {
                "control": c.role,
                "planted R": c.rho,
                "pair tests": pairs["tests"],
                "contradicted": pairs["contradicted"],
                "supported": pairs["supported"],
                "inconclusive": pairs["inconclusive"],
                "verdict": pairs["verdict"],
                "mean measured R": float(c.consecutive["R"].mean()),
                "CPE ratio": c.cpe.ratio,
                "CPE ratio CI": f"[{c.cpe.ratio_ci[0]:.3f}, {c.cpe.ratio_ci[1]:.3f}]",
                "CPE verdict": cons["verdict"],
            }
        )
    return pd.DataFrame(rows)


def control_table(result: Result) -> Any:
    """:func:`control_counts` styled (verdicts as badges)."""
    p = result.params
    return styled(
        control_counts(result),
        formats={"planted R": "{:g}", "mean measured R": "{:+.3f}", "CPE ratio": "{:.3f}"},
        verdict_columns=("verdict", "CPE verdict"),
        caption=(
            f"Planted controls on {CONTROL_TESTBED}: {p.n_paths} DDIM paths of "
            f"{p.trajectory_name}, K = {result.trajectory.K}; the claim 'consecutive errors are "
            f"independent (|R| within {result.tolerance:g})' per pair test, Holm-corrected"
        ),
    )


# ===================================================================== figures
def figure_correlation(result: Result) -> Figure:
    """Left: the cross-step correlation matrix ``R`` (step 0 the noisiest); right: the
    consecutive pairs with the audit's 95% bootstrap intervals, the tolerance in grey."""
    k = result.trajectory.K
    cons = result.consecutive
    fig, axes = plt.subplots(
        1,
        2,
        figsize=(PAGE_WIDTH, 0.45 * PAGE_WIDTH),
        gridspec_kw={"width_ratios": [1, 1.25]},
    )
    sns.heatmap(
        result.correlation,
        vmin=-1,
        vmax=1,
        cmap="RdBu_r",
        annot=k <= 12,
        fmt=".2f",
        annot_kws={"fontsize": 5},
        square=True,
        cbar_kws={"shrink": 0.8, "label": "R"},
        ax=axes[0],
    )
    axes[0].set(xlabel="step l", ylabel="step k", title="cross-step correlation R")
    ax = axes[1]
    tol = result.tolerance
    ax.axhspan(-tol, tol, color="0.85", lw=0, label=f"tolerance |R| ≤ {tol:g}")
    x = cons["k"].to_numpy() + 0.5
    y = cons["R"].to_numpy()
    yerr = np.clip(np.vstack([y - cons["low"], cons["high"] - y]), 0.0, None)
    ax.errorbar(x, y, yerr=yerr, fmt="o-", capsize=3, label=result.target_name)
    ax.set(
        xlabel="consecutive steps (k, k+1), noisiest first",
        ylabel="R between steps k and k+1",
        title="consecutive steps (95% bootstrap intervals)",
    )
    ax.set_xticks(x, list(cons["pair"]), fontsize=7)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def figure_consequence(result: Result) -> Figure:
    """Left: the accumulated-error variance by lag in units of VRG's formula (lag 0); right: the
    full variance over VRG's formula with its 95% bootstrap interval, for the target and the two
    controls, the tolerance in grey."""
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 0.4 * PAGE_WIDTH))
    ax = axes[0]
    lags = result.lags
    palette = sns.color_palette("colorblind", 4)
    ax.bar(
        np.arange(lags.size),
        lags,
        color=[palette[0]] + [palette[3] if v > 0 else palette[2] for v in lags[1:]],
    )
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set(
        xlabel="lag |k − l| (steps)",
        ylabel="share of the independent formula",
        title="accumulated-error variance by lag",
    )
    ax = axes[1]
    tol = result.consequence.tolerance
    ax.axhspan(1 - tol, 1 + tol, color="0.85", lw=0)
    entries = [(result.target_name, result.cpe)] + [
        (f"{c.role} control,\nplanted R = {c.rho:g}", c.cpe) for c in result.controls.values()
    ]
    for i, (_, c) in enumerate(entries):
        lo, hi = c.ratio_ci
        ax.errorbar(
            i,
            c.ratio,
            yerr=[[max(c.ratio - lo, 0.0)], [max(hi - c.ratio, 0.0)]],
            fmt="o",
            capsize=4,
            color=palette[i],
        )
    ax.set_xticks(range(len(entries)), [e[0].replace(" (", "\n(") for e in entries], fontsize=7)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(ylabel="full variance / VRG's CPE", title="consequence for CPE")
    fig.tight_layout()
    plt.close(fig)
    return fig


def figures(result: Result) -> dict[str, Figure]:
    """The chapter's figures by glue name (:data:`FIGURES`)."""
    return {
        "fig_correlation": figure_correlation(result),
        "fig_consequence": figure_consequence(result),
    }


def write_outputs(
    result: Result,
    verdict_dir: str | Path,
    figure_dir: str | Path | None = None,
    figs: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write the verdict table ``<verdict_dir>/audit_independence.csv`` (+ ``.md``; the target's
    rows) and, with a ``figure_dir``, the figures (``figs``, default :func:`figures`) as
    ``audit_independence_<name>.png``; returns the table's paths."""
    paths = write_results(result.results, verdict_dir, CHAPTER)
    if figure_dir:
        save_figures(figs if figs is not None else figures(result), figure_dir, CHAPTER)
    return paths


# ===================================================================== the prose's numbers
@dataclass(frozen=True)
class Summary:
    """Every number and phrase the chapter's prose cites (glued by field name)."""

    target_name: str
    reference_name: str
    reference_note: str
    sampler: str
    trajectory_name: str
    K: int  # noqa: N815 - the paper's symbol
    n_used: int
    dim_used: int
    dim_full: int
    csv_name: str
    r_min: float
    r_max: float
    r_median: float
    r_worst_pair: str
    r_worst_sigma: str
    tolerance_r: float
    n_pair_tests: int
    n_pair_contradicted: int
    n_pair_supported: int
    verdict_text: str
    cpe_tol: float
    cpe_independent: float
    cpe_covariance: float
    cpe_ratio: float
    cpe_ratio_lo: float
    cpe_ratio_hi: float
    cpe_verdict: str
    cpe_text: str
    lag1_share: float
    control_std: float
    control_rho: float
    control_tests: int
    neg_contradicted: int
    pos_contradicted: int
    neg_r: float
    pos_r: float
    control_text: str


def _verdict_text(result: Result) -> str:
    p, pairs, tol = result.params, result.pairs, result.tolerance
    bad = sum(r.verdict == "contradicted" for r in pairs)
    ok = sum(r.verdict == "supported" for r in pairs)
    scope = (
        f"On {result.target_name}, {p.sampler} on {p.trajectory_name} with K = "
        f"{result.trajectory.K} and {p.n_paths} paths, the claim that the errors of consecutive "
        f"steps are independent (|R| within {tol:g})"
    )
    if bad:
        return (
            f"{scope} is contradicted by {bad} of {len(pairs)} pair tests (dependence significant "
            f"and |R| beyond {tol:g})"
        )
    if ok == len(pairs):
        return f"{scope} is supported by every pair test (|R| shown within {tol:g})"
    return (
        f"{scope} is not settled: no pair test contradicts it, {ok} of {len(pairs)} show |R| "
        f"within {tol:g}, the rest are inconclusive"
    )


def _control_text(result: Result) -> str:
    neg = result.controls["negative"].summary["independence"]["verdict"]
    pos = result.controls["positive"].summary["independence"]["verdict"]
    neg_ok, pos_ok = neg != "contradicted", pos == "contradicted"
    if neg_ok and pos_ok:
        return (
            "Both controls come out as they must: the audit flags the planted correlation and not "
            "the independent error"
        )
    wrong = [
        *([] if neg_ok else ["the independent error is flagged"]),
        *([] if pos_ok else ["the planted correlation is missed"]),
    ]
    return f"A control comes out wrong ({' and '.join(wrong)}): read the verdicts above with that"


def summary(result: Result) -> Summary:
    p, cons, cc = result.params, result.consecutive, result.cpe
    worst = cons.loc[cons["R"].abs().idxmax()]
    change = 100 * (cc.ratio - 1.0)
    neg, pos = result.controls["negative"], result.controls["positive"]
    return Summary(
        target_name=result.target_name,
        reference_name=result.reference_name,
        reference_note=(
            "The reference is exact, so the recorded error is the model's own."
            if result.exact
            else "No exact predictor exists here. The optimal predictor of the training data is "
            "the best available reference, with one known limit: near the data it reproduces "
            "training points, which a model that generalises does not, so there the recorded "
            "error includes generalisation."
        ),
        sampler=p.sampler,
        trajectory_name=p.trajectory_name,
        K=result.trajectory.K,
        n_used=int(p.n_paths or 0),
        dim_used=result.dim_used,
        dim_full=result.dim_full,
        csv_name=f"{CHAPTER}.csv",
        r_min=float(cons["R"].min()),
        r_max=float(cons["R"].max()),
        r_median=float(cons["R"].median()),
        r_worst_pair=str(worst["pair"]),
        r_worst_sigma=f"{worst['sigma from']:.3g} to {worst['sigma to']:.3g}",
        tolerance_r=result.tolerance,
        n_pair_tests=len(result.pairs),
        n_pair_contradicted=sum(r.verdict == "contradicted" for r in result.pairs),
        n_pair_supported=sum(r.verdict == "supported" for r in result.pairs),
        verdict_text=_verdict_text(result),
        cpe_tol=result.consequence.tolerance,
        cpe_independent=cc.independent,
        cpe_covariance=cc.with_covariance,
        cpe_ratio=cc.ratio,
        cpe_ratio_lo=cc.ratio_ci[0],
        cpe_ratio_hi=cc.ratio_ci[1],
        cpe_verdict=result.consequence.verdict,
        cpe_text=(
            f"VRG's formula {'underestimates' if change > 0 else 'overestimates'} the variance of "
            f"the accumulated error by {abs(change):.0f}% on this path"
        ),
        lag1_share=float(result.lags[1]) if result.lags.size > 1 else 0.0,
        control_std=p.control_std,
        control_rho=p.control_correlation,
        control_tests=neg.count("tests"),
        neg_contradicted=neg.count("contradicted"),
        pos_contradicted=pos.count("contradicted"),
        neg_r=float(neg.consecutive["R"].mean()),
        pos_r=float(pos.consecutive["R"].mean()),
        control_text=_control_text(result),
    )
