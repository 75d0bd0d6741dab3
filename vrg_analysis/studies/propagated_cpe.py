"""Is the order-1 CPE the right objective for higher-order samplers?

VRG minimises CPE (Eq. 10), the error DDIM accumulates, and is then used with every sampler. A
higher-order sampler calls the model at other levels and reuses each output with its own
weights, so its accumulated error is the *propagated* CPE (:mod:`vrg_analysis.samplers.
propagation`, PCPE; equal to CPE for DDIM). For each sampler, baseline and K this chapter compares
three trajectories under the sampler's own PCPE, on the testbed model's profile (Algorithm 1):

* the baseline;
* VRG (optimised for CPE, :func:`~vrg_analysis.vrg.retime.vrg_retime`);
* VRG-S, the same objective with the sampler's PCPE in place of CPE, in the same gamma box and
  with the same penalty (:func:`~vrg_analysis.vrg.propagated.retime_propagated`, a local optimum
  from the baseline; where VRG's own trajectory scores lower, that is taken as the reachable
  value).

**Efficiency** = (PCPE_base - PCPE_VRG) / (PCPE_base - PCPE_VRG-S): the share of the reduction
in the sampler's own accumulated error that is reachable in the box and that VRG's order-1
objective captures. PCPE is exact given the profile (no sampling), so the verdict is a
comparison with a stated threshold, not a test: per configuration, "order-1 CPE is the right
objective" is *supported* when the efficiency is at least ``threshold`` (0.9) and *contradicted*
below it (*inconclusive* when no reduction is reachable); per sampler,
:func:`~vrg_analysis.evaluation.stats.aggregate` over its configurations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.trajectories import BASELINES, baseline
from vrg_analysis.evaluation.stats import aggregate
from vrg_analysis.params import as_float, as_int, as_tuple
from vrg_analysis.report import PAGE_WIDTH, colour, styled
from vrg_analysis.samplers import SAMPLERS
from vrg_analysis.samplers.propagation import error_gains
from vrg_analysis.studies.profiling import algorithm1, profiled_timesteps, row_subset
from vrg_analysis.testbeds import make_testbed
from vrg_analysis.vrg.propagated import retime_propagated
from vrg_analysis.vrg.retime import VRGSetting, vrg_retime

__all__ = [
    "CHAPTER",
    "Params",
    "Result",
    "Summary",
    "run",
    "efficiency_verdict",
    "figure_efficiency",
    "configurations_table",
    "samplers_table",
    "summary",
]

CHAPTER = "propagated_cpe"


@dataclass(frozen=True)
class Params:
    """The chapter's parameters (the notebook's ``parameters`` cell; CI-sized defaults)."""

    testbed: str = "digits"
    samplers: tuple[str, ...] = ("ddim", "dpm_solver_2", "s_pndm", "deis_tab2")
    baselines: tuple[str, ...] = ("time_uniform",)
    steps: tuple[int, ...] = (5, 10)
    gamma: float = 0.1
    reg_lambda: float = 1e4
    profile_samples: int = 256
    profile_stride: int = 10
    threshold: float = 0.9
    seed: int = 0

    def __post_init__(self) -> None:
        s = object.__setattr__
        samplers = as_tuple(self.samplers, "samplers", str, choices=tuple(SAMPLERS))
        stochastic = [n for n in samplers if SAMPLERS[n].stochastic]
        if stochastic:
            raise ValueError(f"parameter samplers: {stochastic} are stochastic (no fixed gains)")
        s(self, "samplers", samplers)
        s(self, "baselines", as_tuple(self.baselines, "baselines", str, choices=BASELINES))
        steps = as_tuple(self.steps, "steps", int)
        if not steps or min(steps) < 2:
            raise ValueError(f"parameter steps needs K >= 2, got {list(steps)!r}")
        s(self, "steps", tuple(sorted(set(steps))))
        s(
            self,
            "gamma",
            as_float(self.gamma, "gamma", minimum=0.0, maximum=1.0, open_low=True, open_high=True),
        )
        s(self, "reg_lambda", as_float(self.reg_lambda, "reg_lambda", minimum=0.0))
        s(self, "profile_samples", as_int(self.profile_samples, "profile_samples", minimum=2))
        s(self, "profile_stride", as_int(self.profile_stride, "profile_stride", minimum=1))
        s(
            self,
            "threshold",
            as_float(self.threshold, "threshold", minimum=0.0, maximum=1.0, open_low=True),
        )
        s(self, "seed", as_int(self.seed, "seed", minimum=0))

    @property
    def setting(self) -> VRGSetting:
        return VRGSetting(self.gamma, self.reg_lambda)


def efficiency_verdict(efficiency: float, reachable: float, threshold: float) -> str:
    """A configuration's verdict on "order-1 CPE is the right objective" (module docstring):
    inconclusive when no PCPE reduction is reachable (``reachable`` <= 0), else supported when
    the efficiency reaches ``threshold`` and contradicted below it."""
    if not reachable > 0.0 or not np.isfinite(efficiency):
        return "inconclusive"
    return "supported" if efficiency >= threshold else "contradicted"


@dataclass(frozen=True, eq=False)
class Result:
    """One row per sampler, baseline and K (``table``), one per sampler (``samplers``)."""

    params: Params
    model_name: str
    table: pd.DataFrame = field(repr=False)
    samplers: pd.DataFrame = field(repr=False)
    seconds: float


def run(params: Params) -> Result:
    """Profile the model, then score every sampler's baseline, VRG and VRG-S trajectories."""
    p = params
    t0 = time.perf_counter()
    bed = make_testbed(p.testbed)
    profile = algorithm1(
        bed.model,
        row_subset(bed.train_x, p.profile_samples, seed=p.seed),
        profiled_timesteps(bed.schedule, p.profile_stride),
        fingerprint=bed.fingerprint,
        model_name=bed.model_name,
        data_name=f"{p.profile_samples} training rows",
        seed=p.seed,
        dim_stats=False,
    )
    rows = []
    for b in p.baselines:
        for k in p.steps:
            base = baseline(b, bed.schedule, k)
            vrg, _ = vrg_retime(base, profile, bed.schedule, p.setting)
            cpe_base = cumulative_prediction_error(base, profile, outside="clamp")
            cpe_vrg = cumulative_prediction_error(vrg, profile, outside="clamp")
            for name in p.samplers:
                if k < SAMPLERS[name].min_levels:
                    continue
                best, info = retime_propagated(base, profile, bed.schedule, name, p.setting)
                pc_base = error_gains(name, base, bed.schedule).propagated_cpe(profile)
                pc_vrg = error_gains(name, vrg, bed.schedule).propagated_cpe(profile)
                pc_best = min(info["pcpe"], pc_vrg)  # the local optimum, or VRG's if lower
                reach = pc_base - pc_best
                eff = (pc_base - pc_vrg) / reach if reach > 0 else float("nan")
                rows.append(
                    {
                        "sampler": name,
                        "order": SAMPLERS[name].order,
                        "baseline": b,
                        "K": k,
                        "cpe_base": cpe_base,
                        "cpe_vrg": cpe_vrg,
                        "pcpe_base": pc_base,
                        "pcpe_vrg": pc_vrg,
                        "pcpe_best": pc_best,
                        "pcpe_ratio": pc_base / cpe_base,
                        "gain_cpe": 1.0 - cpe_vrg / cpe_base,
                        "gain_vrg": 1.0 - pc_vrg / pc_base,
                        "gain_best": 1.0 - pc_best / pc_base,
                        "efficiency": eff,
                        "converged": info["converged"],
                        "verdict": efficiency_verdict(eff, reach / pc_base, p.threshold),
                    }
                )
    table = pd.DataFrame(rows)
    per = []
    for name, sub in table.groupby("sampler", sort=False):
        per.append(
            {
                "sampler": name,
                "order": int(sub.order.iloc[0]),
                "pcpe_ratio": float(sub.pcpe_ratio.median()),
                "efficiency_min": float(sub.efficiency.min()),
                "efficiency_median": float(sub.efficiency.median()),
                "verdict": aggregate(sub.verdict),
            }
        )
    return Result(
        params=p,
        model_name=bed.model_name,
        table=table,
        samplers=pd.DataFrame(per),
        seconds=time.perf_counter() - t0,
    )


# ===================================================================== rendering
def figure_efficiency(result: Result) -> Any:
    """Left: the efficiency of VRG's order-1 objective under each sampler's own propagation,
    against K (one colour per sampler, one marker per baseline; dashed: the threshold). Right:
    the sampler's propagated CPE of the baseline relative to its order-1 CPE."""
    p = result.params
    t = result.table
    markers = dict(zip(p.baselines, ["o", "s", "D", "^", "v"], strict=False))
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 3.0))
    for (name, b), sub in t.groupby(["sampler", "baseline"], sort=False):
        sub = sub.sort_values("K")
        style = dict(color=colour(str(name)), marker=markers[b], ms=4, lw=1.1)
        axes[0].plot(sub.K, sub.efficiency, **style)
        axes[1].plot(sub.K, sub.pcpe_ratio, **style)
    for name in p.samplers:
        axes[0].plot([], [], color=colour(name), lw=1.5, label=name)
    for b in p.baselines:
        axes[1].plot([], [], color="0.4", marker=markers[b], ls="none", label=b)
    axes[0].axhline(p.threshold, color="k", ls="--", lw=0.9)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("steps K")
    axes[0].set_ylabel("efficiency of VRG's objective")
    axes[0].legend(fontsize=7, frameon=False)
    axes[1].axhline(1.0, color="k", lw=0.8)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("steps K")
    axes[1].set_ylabel("PCPE / CPE of the baseline")
    axes[1].legend(fontsize=7, frameon=False)
    for ax in axes:
        ax.set_xticks(list(p.steps), [str(k) for k in p.steps])
        ax.minorticks_off()
    fig.tight_layout()
    plt.close(fig)
    return fig


def configurations_table(result: Result) -> Any:
    """Every sampler, baseline and K: the predicted gains and the verdict."""
    t = result.table
    show = pd.DataFrame(
        {
            "sampler": t.sampler,
            "order": t.order,
            "baseline": t.baseline,
            "K": t.K,
            "CPE gain of VRG (%)": 100 * t.gain_cpe,
            "PCPE gain of VRG (%)": 100 * t.gain_vrg,
            "PCPE gain of VRG-S (%)": 100 * t.gain_best,
            "efficiency": t.efficiency,
            "order-1 CPE is right": t.verdict,
        }
    )
    return styled(
        show,
        formats={
            "CPE gain of VRG (%)": "{:.1f}",
            "PCPE gain of VRG (%)": "{:.1f}",
            "PCPE gain of VRG-S (%)": "{:.1f}",
            "efficiency": "{:.2f}",
        },
        verdict_columns=("order-1 CPE is right",),
        caption=(
            f"Gains in each sampler's own accumulated error (PCPE) of VRG (optimised for order-1 "
            f"CPE) and of VRG-S (optimised for PCPE), gamma = {result.params.gamma:g}, lambda = "
            f"{result.params.reg_lambda:g}; threshold {result.params.threshold:g}"
        ),
    )


def samplers_table(result: Result) -> Any:
    """One row per sampler: its order, how much more error it accumulates than order-1 CPE
    says, VRG's efficiency and the verdict."""
    s = result.samplers
    show = pd.DataFrame(
        {
            "sampler": s.sampler,
            "order": s.order,
            "PCPE / CPE (median)": s.pcpe_ratio,
            "efficiency (lowest)": s.efficiency_min,
            "efficiency (median)": s.efficiency_median,
            "order-1 CPE is right": s.verdict,
        }
    )
    return styled(
        show,
        formats={
            "PCPE / CPE (median)": "{:.2f}",
            "efficiency (lowest)": "{:.2f}",
            "efficiency (median)": "{:.2f}",
        },
        verdict_columns=("order-1 CPE is right",),
        caption="Per sampler, over its baselines and K",
    )


# ===================================================================== the prose's numbers
@dataclass(frozen=True)
class Summary:
    """Every number and phrase the chapter's prose cites (glued by field name)."""

    testbed: str
    model_name: str
    n_configs: int
    gamma: float
    reg_lambda: float
    threshold: float
    per_sampler: str
    worst: str
    seconds: float


def summary(result: Result) -> Summary:
    p = result.params
    s = result.samplers
    words = {
        "supported": "right",
        "contradicted": "not right",
        "mixed": "right in some configurations",
        "inconclusive": "not settled",
    }
    per = "; ".join(
        f"{r.sampler} (order {r.order}): {words[r.verdict]}, efficiency {r.efficiency_min:.2f} "
        f"to {r.efficiency_median:.2f} (lowest, median), PCPE {r.pcpe_ratio:.2f}× CPE"
        for r in s.itertuples()
    )
    t = result.table.dropna(subset=["efficiency"])
    w = t.loc[t.efficiency.idxmin()]
    worst = (
        f"{w.sampler} on {w.baseline}, K = {w.K}: VRG cuts its accumulated error by "
        f"{100 * w.gain_vrg:.1f}% where {100 * w.gain_best:.1f}% is reachable (efficiency "
        f"{w.efficiency:.2f})"
    )
    return Summary(
        testbed=p.testbed,
        model_name=result.model_name,
        n_configs=int(len(result.table)),
        gamma=p.gamma,
        reg_lambda=p.reg_lambda,
        threshold=p.threshold,
        per_sampler=per,
        worst=worst,
        seconds=float(result.seconds),
    )
