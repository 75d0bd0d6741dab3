"""Bias sensitivity: what a biased noise predictor does to VRG (the Gaussianity audit's last part).

The zero-mean audit (:mod:`vrg_analysis.assumptions.chapters.gaussian`) says whether an error has
a mean; this study asks what a mean does to VRG. On the exact 2-D mixture two planted models share
one error stream (:class:`~vrg_analysis.models.analytic.PlantedErrorModel`):

* the **control**: ``eps_hat = eps* + std(a) z``, with ``std(a)^2`` = ``bias_relative_std`` times
  the irreducible spread Algorithm 1 measures on ``eps*`` (a profile shaped like a trained model's);
* the **biased** model: the same plus a constant ``bias_size`` on every coordinate, so Algorithm 1
  measures ``w(a) = spread(a) + std(a)^2 + bias^2`` ((P2) of the planted model).

1. The zero-mean audit of both (errors against the true noise, the audit's levels and sample size;
   :func:`~vrg_analysis.assumptions.gaussianity.zero_mean_audit`, Holm over levels x coordinates).
2. VRG under each model's own profile against its baseline, through the paired comparison engine
   (:func:`~vrg_analysis.studies.engine.run_comparison`, ``predictor="planted"``; the biased model
   is the engine's planted error added to ``eps* + bias``): DDIM from the same ``x_T``, the same
   planted-noise stream and the same number of model calls per seed. Measures, each judged on the
   claim "VRG improves it" (paired bootstrap over samples within seeds, Holm over the step counts of
   each model and metric, :func:`~vrg_analysis.studies.engine.compare_all`): the error against the
   exact probability-flow ODE from the run's own start level (``exact_error``), the exact
   log-likelihood, and the Frechet distance to the exact moments. Beside them the CPE reduction
   VRG predicts under its profile (Eq. 10) and how far it moves the start level.

``run(params) -> Result``; :func:`summary` and :func:`vrg_list_markdown` give the prose's numbers,
:func:`figures` the two figures, :func:`table` the judged comparisons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure
from numpy.typing import NDArray

from vrg_analysis.assumptions.chapters.gaussian import audit_levels, sigma_list
from vrg_analysis.assumptions.gaussianity import zero_mean_audit
from vrg_analysis.assumptions.samples import errors_on_data
from vrg_analysis.assumptions.verdicts import AuditResult
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import sigma_from_alpha_bar
from vrg_analysis.core.trajectories import BASELINES
from vrg_analysis.models.analytic import PlantedErrorModel
from vrg_analysis.params import as_bool, as_float, as_int, as_tuple, check_seeds
from vrg_analysis.report import PAGE_WIDTH, styled
from vrg_analysis.studies.engine import (
    METRIC_DIRECTION,
    ComparisonConfig,
    ComparisonResult,
    RelativeStd,
    compare_all,
    run_comparison,
)
from vrg_analysis.testbeds import MixtureTestbed, make_testbed
from vrg_analysis.threads import limit_threads
from vrg_analysis.vrg.retime import VRGSetting

__all__ = [
    "TESTBED",
    "MODELS",
    "METRICS",
    "FIGURES",
    "Params",
    "Result",
    "Summary",
    "planted_models",
    "run",
    "wide_table",
    "table",
    "tally",
    "vrg_list_markdown",
    "figure_audit",
    "figure_vrg",
    "figures",
    "summary",
]

#: The study always runs on this exact testbed, whatever model the audit chapter audits.
TESTBED = "mixture-2d"
MODELS: tuple[str, ...] = ("control", "biased")
#: The measures judged, with their names in the tables.
METRICS: dict[str, str] = {
    "exact_error": "endpoint error",
    "log_likelihood": "log-likelihood",
    "frechet": "Fréchet distance",
}
#: The study's figures, by glue name (PNG: ``audit_gaussian_<name>.png``).
FIGURES: tuple[str, ...] = ("fig_bias_audit", "fig_bias_vrg")
#: Default sizes (quick, full) when a size parameter is None.
_SIZES: dict[str, tuple[Any, Any]] = {
    "n_samples": (1000, 5000),
    "num_levels": (6, 20),
    "bias_steps": ((5, 10), (5, 10, 20)),
    "bias_seeds": (2, 5),
    "bias_n_samples": (1024, 4096),
}
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Params:
    """The study's parameters (the audit notebook's bias parameters; CI-sized defaults).

    ``n_samples``, ``num_levels``, ``max_coordinates`` and ``margin`` size the zero-mean audit as
    in the Gaussianity chapter. ``bias_size``: the planted bias on every coordinate (noise units);
    ``bias_relative_std``: the planted noise variance in units of the irreducible spread;
    ``bias_baseline``, ``bias_steps``: the trajectory VRG re-times and its step counts;
    ``bias_seeds``: independent ``x_T`` draws and planted-noise streams (seeds ``seed + 10``, ...);
    ``bias_n_samples``: samples per seed; ``gamma``, ``reg_lambda``: VRG's setting; ``n_boot``:
    paired bootstrap resamples. Sizes left None default by ``quick``: audit 1000 errors at 6 levels,
    K in (5, 10), 2 seeds of 1024 samples quick; 5000 at 20 levels, K in (5, 10, 20), 5 seeds of
    4096 full. Algorithm 1 profiles 512 training rows at every 10th timestep quick, 4096 at every
    timestep full.
    """

    quick: bool = True
    seed: int = 0
    n_samples: int | None = None
    num_levels: int | None = None
    max_coordinates: int | None = 16
    margin: float = 0.1
    bias_size: float = 0.02
    bias_relative_std: float = 0.25
    bias_baseline: str = "time_quadratic"
    bias_steps: tuple[int, ...] | None = None
    bias_seeds: int | None = None
    bias_n_samples: int | None = None
    gamma: float = 0.01
    reg_lambda: float = 100.0
    n_boot: int = 200

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "quick", as_bool(self.quick, "quick"))
        s(self, "seed", as_int(self.seed, "seed", minimum=0))
        for name, (quick, full) in _SIZES.items():
            if getattr(self, name) is None:
                s(self, name, quick if self.quick else full)
        s(self, "n_samples", as_int(self.n_samples, "n_samples", minimum=20))
        s(self, "num_levels", as_int(self.num_levels, "num_levels", minimum=1))
        if self.max_coordinates is not None:
            s(self, "max_coordinates", as_int(self.max_coordinates, "max_coordinates", minimum=1))
        s(self, "margin", as_float(self.margin, "margin", minimum=0.0, open_low=True))
        s(self, "bias_size", as_float(self.bias_size, "bias_size"))
        s(
            self,
            "bias_relative_std",
            as_float(self.bias_relative_std, "bias_relative_std", minimum=0.0),
        )
        if self.bias_baseline not in BASELINES:
            raise ValueError(
                f"parameter bias_baseline: unknown value {self.bias_baseline!r}; allowed: "
                f"{sorted(BASELINES)}"
            )
        steps = tuple(sorted(set(as_tuple(self.bias_steps, "bias_steps", int))))
        if min(steps) < 2:
            raise ValueError(f"parameter bias_steps must be integers >= 2, got {list(steps)}")
        s(self, "bias_steps", steps)
        s(self, "bias_seeds", as_int(self.bias_seeds, "bias_seeds", minimum=1))
        s(self, "bias_n_samples", as_int(self.bias_n_samples, "bias_n_samples", minimum=4))
        s(self, "gamma", as_float(self.gamma, "gamma", minimum=0.0, maximum=1.0, open_high=True))
        s(self, "reg_lambda", as_float(self.reg_lambda, "reg_lambda", minimum=0.0))
        s(self, "n_boot", as_int(self.n_boot, "n_boot", minimum=20))

    @property
    def seeds(self) -> tuple[int, ...]:
        """The engine's seeds (``x_T`` and planted-noise stream of each): ``seed + 10``, ..."""
        return check_seeds([self.seed + 10 + s for s in range(int(self.bias_seeds or 1))])

    @property
    def vrg(self) -> VRGSetting:
        return VRGSetting(self.gamma, self.reg_lambda)

    def config(self) -> ComparisonConfig:
        """The paired comparison of the control planted model (the biased one adds
        ``planted_bias``)."""
        return ComparisonConfig(
            testbed=TESTBED,
            samplers=("ddim",),
            baselines=(self.bias_baseline,),
            steps=tuple(self.bias_steps or ()),
            seeds=self.seeds,
            n_samples=int(self.bias_n_samples or 0),
            arms=(self.vrg,),
            predictor="planted",
            planted_error="relative",
            planted_size=self.bias_relative_std,
            reference_steps=0,
            exact_reference=True,
            spread=True,
            profile_stride=10 if self.quick else 1,
            profile_samples=512 if self.quick else 4096,
        )


def planted_models(
    bed: MixtureTestbed, spread: ErrorProfile, params: Params
) -> dict[str, PlantedErrorModel]:
    """The two planted models as the engine builds them (``std(a)^2 = bias_relative_std x
    spread(a)``, the spread clamped outside its profiled range), for the zero-mean audit."""
    std = RelativeStd(spread, params.bias_relative_std)
    return {
        "control": PlantedErrorModel(bed.oracle, std=std, seed=params.seed),
        "biased": PlantedErrorModel(bed.oracle, std=std, bias=params.bias_size, seed=params.seed),
    }


@dataclass(frozen=True, eq=False)
class Result:
    """The two comparisons, the profiles they used, the zero-mean audits and the judged table (one
    row per model, metric and K)."""

    params: Params
    comparisons: dict[str, ComparisonResult]
    spread: ErrorProfile
    audits: dict[str, list[AuditResult]]
    table: pd.DataFrame = field(repr=False)

    @property
    def profiles(self) -> dict[str, ErrorProfile]:
        return {name: res.profile for name, res in self.comparisons.items()}

    def rows(self, model: str, metric: str | None = None) -> pd.DataFrame:
        t = self.table[self.table.model == model]
        return t if metric is None else t[t.metric == metric]


def _judged(
    name: str, res: ComparisonResult, alpha_bar_min: float, n_boot: int
) -> list[dict[str, Any]]:
    label = res.config.arm_labels[0]
    rows = []
    for metric in METRICS:
        for c in compare_all(res, metric, n_boot=n_boot):  # Holm over the K of one model x metric
            arm = res.arm(c.sampler, c.baseline, c.K, label, res.config.seeds[0])
            info = arm.optimisation
            start = float(arm.alpha_bar[0])
            rows.append(
                {
                    "model": name,
                    "metric": metric,
                    "K": c.K,
                    "CPE reduction predicted %": 100 * float(info.get("cpe_reduction", math.nan)),
                    "start level moved %": 100 * float(info.get("start_shift", math.nan)),
                    "converged": bool(info.get("converged", True)),
                    "start level held at the schedule's end": bool(
                        info.get("moved", False) and math.isclose(start, alpha_bar_min)
                    ),
                    "baseline value": c.base_value,
                    "VRG value": c.vrg_value,
                    "difference": c.delta,
                    "ci_low": c.ci_low,
                    "ci_high": c.ci_high,
                    "p (Holm)": c.p_adjusted,
                    "verdict": c.verdict,
                    "seeds improved": sum(METRIC_DIRECTION[metric] * d > 0 for d in c.seed_deltas),
                    "seeds": len(c.seed_deltas),
                }
            )
    return rows


def run(params: Params, *, progress: bool = False) -> Result:
    """The zero-mean audits of both planted models and VRG's comparison on each (docstring)."""
    with limit_threads(1):
        bed = make_testbed(TESTBED)
        assert isinstance(bed, MixtureTestbed)
        cfg = params.config()
        comps = {
            "control": run_comparison(cfg, progress=progress),
            "biased": run_comparison(
                replace(cfg, planted_bias=params.bias_size), progress=progress
            ),
        }
        spread = comps["control"].spread_profiles[cfg.seeds[0]]
        # 1. the zero-mean audit of both planted models, errors against the true noise
        x_audit, _ = bed.mixture.sample(
            int(params.n_samples or 0), torch.Generator().manual_seed(params.seed + 5)
        )
        levels = audit_levels(bed.schedule, int(params.num_levels or 1))
        audits = {}
        for name, m in planted_models(bed, spread, params).items():
            m.reset(params.seed)
            s = errors_on_data(
                m,
                x_audit,
                levels,
                generator=torch.Generator().manual_seed(params.seed + 6),
                source=f"{TESTBED} planted {name}",
            )
            audits[name] = zero_mean_audit(
                s, margin=params.margin, max_coordinates=params.max_coordinates, seed=params.seed
            )
    rows = [
        r
        for name, res in comps.items()
        for r in _judged(name, res, bed.schedule.alpha_bar_min, params.n_boot)
    ]
    return Result(params, comps, spread, audits, pd.DataFrame(rows))


# ===================================================================== tables and prose
def _interval_text(v: float, lo: float, hi: float, fmt: str) -> str:
    return f"{v:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def wide_table(result: Result) -> pd.DataFrame:
    """One row per model and K with the three judged measures side by side (the endpoint error
    relative to the baseline's, in %)."""
    out = []
    for (model, k), g in result.table.groupby(["model", "K"], sort=False):
        by = {r["metric"]: r for r in g.to_dict("records")}
        e, ll, fr = by["exact_error"], by["log_likelihood"], by["frechet"]
        scale = 100.0 / e["baseline value"]
        out.append(
            {
                "model": model,
                "K": int(k),
                "CPE reduction predicted %": e["CPE reduction predicted %"],
                "start level moved %": e["start level moved %"],
                "endpoint error change % [95% CI]": _interval_text(
                    e["difference"] * scale, e["ci_low"] * scale, e["ci_high"] * scale, "+.1f"
                ),
                "endpoint error": e["verdict"],
                "log-likelihood change, nats [95% CI]": _interval_text(
                    ll["difference"], ll["ci_low"], ll["ci_high"], "+.3f"
                ),
                "log-likelihood": ll["verdict"],
                "Fréchet baseline": fr["baseline value"],
                "Fréchet VRG": fr["VRG value"],
                "Fréchet distance": fr["verdict"],
                "Fréchet lower with VRG (seeds)": f"{fr['seeds improved']} of {fr['seeds']}",
            }
        )
    return pd.DataFrame(out)


def table(result: Result) -> Any:
    """:func:`wide_table` styled, each measure's verdict (claim: VRG improves it) as a badge."""
    return styled(
        wide_table(result),
        formats={
            "CPE reduction predicted %": "{:.1f}",
            "start level moved %": "{:.0f}",
            "Fréchet baseline": "{:.4f}",
            "Fréchet VRG": "{:.4f}",
        },
        verdict_columns=("endpoint error", "log-likelihood", "Fréchet distance"),
        caption=(
            f"{TESTBED}, planted models, DDIM on {result.params.bias_baseline}: VRG against the "
            f"baseline, {len(result.params.seeds)} seeds x {result.params.bias_n_samples} samples "
            "(verdicts on 'VRG improves it', Holm over K per model and measure)"
        ),
    )


def tally(result: Result, model: str) -> str:
    """The verdicts on the endpoint error and the log-likelihood at every K, counted."""
    g = result.rows(model)
    v = list(g[g.metric.isin(["exact_error", "log_likelihood"])].verdict)
    return (
        f"supported in {v.count('supported')}, contradicted in {v.count('contradicted')} and "
        f"inconclusive in {v.count('inconclusive')} of {len(v)} comparisons (the claim: VRG "
        "improves the endpoint error, or the log-likelihood, at one K)"
    )


def vrg_list_markdown(result: Result) -> str:
    """One Markdown bullet per model and K: every measure with its interval and verdict."""
    lines = []
    for model in ("biased", "control"):
        for k in result.params.bias_steps or ():
            g = result.rows(model)
            by = {r["metric"]: r for r in g[g.K == k].to_dict("records")}
            e, ll, fr = by["exact_error"], by["log_likelihood"], by["frechet"]
            pct = 100.0 / e["baseline value"]
            lines.append(
                f"* {model} model, $K$ = {k}: endpoint error {e['difference'] * pct:+.1f}% "
                f"[{e['ci_low'] * pct:+.1f}, {e['ci_high'] * pct:+.1f}] (**{e['verdict']}**); "
                f"mean log-likelihood {ll['difference']:+.3f} [{ll['ci_low']:+.3f}, "
                f"{ll['ci_high']:+.3f}] nats (**{ll['verdict']}**); Fréchet distance to the exact "
                f"moments {fr['baseline value']:.3g} (baseline) and {fr['VRG value']:.3g} (VRG), "
                f"difference [{fr['ci_low']:+.3g}, {fr['ci_high']:+.3g}] (**{fr['verdict']}**), "
                f"lower with VRG in {fr['seeds improved']} of {fr['seeds']} seeds"
            )
    return "\n".join(lines)


# ===================================================================== figures
def _colours() -> dict[str, Any]:
    return dict(zip(MODELS, sns.color_palette("colorblind", len(MODELS)), strict=True))


def figure_audit(result: Result) -> Figure:
    """Left: Algorithm 1's profiles of both planted models, the irreducible spread and the bias
    squared; right: the zero-mean audit's standardized means (crosses: contradicted)."""
    colours, bias = _colours(), result.params.bias_size
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 0.42 * PAGE_WIDTH))
    ax = axes[0]
    for name, p in result.profiles.items():
        sigma = sigma_from_alpha_bar(p.alpha_bar)
        ax.plot(sigma, p.mse, color=colours[name], label=f"{name}: profiled $w$")
    sp = result.spread
    ax.plot(sigma_from_alpha_bar(sp.alpha_bar), sp.mse, "k:", label="irreducible spread (ε*)")
    ax.axhline(bias**2, color=colours["biased"], ls="--", lw=1, label="bias²")
    ax.set(xscale="log", yscale="log", xlabel="noise level σ", ylabel="MSE per dimension")
    ax.set_title("Algorithm 1 on the planted models")
    ax.legend(fontsize=7)
    ax = axes[1]
    margin = result.params.margin
    ax.axhspan(-margin, margin, color="0.85", lw=0)
    for k, (name, res) in enumerate(result.audits.items()):
        sg = sigma_from_alpha_bar([r.alpha_bar for r in res]) * (1.08**k)
        d = np.array([r.effect_size for r in res])
        bad = np.array([r.verdict == "contradicted" for r in res])
        ax.scatter(sg[~bad], d[~bad], s=14, color=colours[name], alpha=0.6, label=name)
        ax.scatter(
            sg[bad], d[bad], s=40, color=colours[name], marker="x", label=f"{name}: contradicted"
        )
    ax.set(xscale="log", xlabel="noise level σ", ylabel="standardized mean (sd)")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_title("zero-mean audit, errors vs the true noise")
    ax.legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def figure_vrg(result: Result) -> Figure:
    """VRG − baseline per planted model and K with the 95% paired bootstrap intervals: the
    endpoint error and the Fréchet distance (% of the baseline's) and the mean log-likelihood."""
    colours, t = _colours(), result.table
    panels = [
        ("exact_error", "VRG − baseline (% of baseline)", "endpoint error (lower is better)"),
        ("log_likelihood", "VRG − baseline (nats)", "log-likelihood (higher is better)"),
        ("frechet", "VRG − baseline (% of baseline)", "Fréchet distance (lower is better)"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(PAGE_WIDTH, 0.38 * PAGE_WIDTH))
    steps = list(result.params.bias_steps or ())
    for ax, (metric, ylabel, title) in zip(axes, panels, strict=True):
        for k, name in enumerate(MODELS):
            g = t[(t.model == name) & (t.metric == metric)].sort_values("K")
            scale = 100.0 / g["baseline value"].to_numpy() if metric != "log_likelihood" else 1.0
            y = g["difference"].to_numpy() * scale
            lo, hi = g["ci_low"].to_numpy() * scale, g["ci_high"].to_numpy() * scale
            x = g["K"].to_numpy() * (1.04 ** (2 * k - 1))
            yerr = np.clip(np.vstack([y - lo, hi - y]), 0.0, None)
            ax.errorbar(x, y, yerr=yerr, fmt="o", capsize=3, color=colours[name], label=name)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set(xscale="log", xlabel="K (model calls)", ylabel=ylabel)
        ax.set_title(title, fontsize=8.5)
        ax.set_xticks(steps, [str(s) for s in steps])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    axes[0].legend(fontsize=7.5)
    fig.tight_layout()
    plt.close(fig)
    return fig


def figures(result: Result) -> dict[str, Figure]:
    """The study's figures by glue name (:data:`FIGURES`)."""
    return {"fig_bias_audit": figure_audit(result), "fig_bias_vrg": figure_vrg(result)}


# ===================================================================== the prose's numbers
@dataclass(frozen=True)
class Summary:
    """Every number and phrase the study's prose cites (glued by field name); ``audit`` glues its
    keys ``bias_zm_{contradicted,tests,where}_{control,biased}``, ``tallies`` its keys
    ``vrg_tally_{control,biased}``."""

    bias_size: float
    bias_rel_std: float
    bias_baseline: str
    gamma: float
    reg_lambda: float
    bias_seeds: int
    bias_n: int
    bias_cpe_reduction: float
    bias_start_moved: float
    control_cpe_reduction: float
    control_start_moved: float
    clip_note: str
    audit: dict[str, Any] = field(default_factory=dict)
    tallies: dict[str, str] = field(default_factory=dict)


def summary(result: Result) -> Summary:
    p = result.params
    audit: dict[str, Any] = {}
    for name, res in result.audits.items():
        bad = [r for r in res if r.verdict == "contradicted"]
        audit[f"bias_zm_contradicted_{name}"] = len(bad)
        audit[f"bias_zm_tests_{name}"] = len(res)
        where = sigma_list(sigma_from_alpha_bar([r.alpha_bar for r in bad])) if bad else ""
        audit[f"bias_zm_where_{name}"] = f"at σ = {where}" if bad else "at no level"
    e = result.table[result.table.metric == "exact_error"]
    held = int(e["start level held at the schedule's end"].sum())

    def med(model: str, col: str) -> float:
        return float(e.loc[e.model == model, col].median())

    return Summary(
        bias_size=p.bias_size,
        bias_rel_std=p.bias_relative_std,
        bias_baseline=p.bias_baseline,
        gamma=p.gamma,
        reg_lambda=p.reg_lambda,
        bias_seeds=len(p.seeds),
        bias_n=int(p.bias_n_samples or 0),
        bias_cpe_reduction=med("biased", "CPE reduction predicted %"),
        bias_start_moved=med("biased", "start level moved %"),
        control_cpe_reduction=med("control", "CPE reduction predicted %"),
        control_start_moved=med("control", "start level moved %"),
        clip_note=(
            ""
            if held == 0
            else f"In {held} run(s) VRG's penalised optimum moved the start level past the "
            "schedule's noisiest level, where no model is defined; the optimiser's bound then held "
            "it there."
        ),
        audit=audit,
        tallies={f"vrg_tally_{m}": tally(result, m) for m in MODELS},
    )
