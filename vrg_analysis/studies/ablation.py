"""The ablation chapter: where in the (gamma, lambda) plane VRG helps and where it hurts.

VRG re-times a sampler's K noise levels to minimise the cumulative prediction error (Eq. 10),
``CPE = sum_k (sigma_k - sigma_{k-1})^2 w(alpha_bar_k)``, plus the penalty
``lambda (alpha_bar_K - alpha_bar_K^orig)^2`` on moving the starting level (together the objective
(VRG) of :mod:`vrg_analysis.vrg.objective`). Each per-step ratio
``r_k = alpha_bar_k / alpha_bar_{k-1}`` may move by at most ``min(gamma, r_k, 1 - r_k)`` (the
gamma box): the learning portion ``gamma`` is all that keeps the optimiser from trading prediction
error for discretisation error, which CPE does not see. The paper's ablation (DDIM, CIFAR-10,
K = 10, lambda = 1e4) found the best gamma between 0.15 and 0.3, and too large a gamma worse than
the baseline.

:func:`run` sweeps a grid of gammas for every lambda, each gamma > 0 once more with the start
level held exactly (``keep_start``), and the official defaults ("VRG as published"), through the
paired comparison engine (:mod:`vrg_analysis.studies.engine`): every arm from the same starting
noise and at the same number of model calls as its baseline. It measures the testbed's set metric
(FID on digits), the endpoint deviation from a fine DDIM solve from the same ``x_T`` (the paper's
"image MSE") and the CPE the profile predicts; every difference VRG - baseline has a paired
bootstrap interval, and the verdicts on "VRG improves the metric" are judged as one family with
Holm's correction (:func:`~vrg_analysis.studies.engine.judge`), the gamma = 0 controls excluded.

* **The control** (:func:`check_control`): gamma = 0 is an empty box, so its arm must be the
  baseline bit for bit (levels, features, per-sample scores, CPE; differences and intervals 0).
* **Box-active ratios** (:func:`box_active`): how many of a trajectory's ratios sit on the edge of
  their gamma box; where none does, the penalty (or the held start), not gamma, decides the
  optimum.
* **Does the predicted CPE reduction track the measured change?** Spearman's rank correlation
  (:func:`~vrg_analysis.evaluation.stats.rank_correlation`) of the CPE reduction against the
  measured differences, over all settings with gamma > 0 and over the start-held ones alone.
* **Start level or re-timing?** (:func:`start_split`) Each gamma > 0 of the first lambda also
  runs as the *start only* arm (:class:`~vrg_analysis.vrg.start_level.StartOnlyArm`: the baseline
  with VRG's start level and nothing else), beside the start-held arm (the re-timing alone), so
  the gain of VRG at the claim's gamma splits into its two parts, judged on the claim
  "start-level" (:func:`split_verdict`).
* **The claim "gamma-ablation"** (:func:`judge_claim`), from the judged family by the book's rule
  and :func:`~vrg_analysis.evaluation.stats.aggregate`, on the first lambda line of the first
  baseline. Two parts, each a verdict of :func:`~vrg_analysis.evaluation.stats.decide` with the
  family's Holm-adjusted p-value:

  1. "a moderate gamma lowers the set metric": the verdict on "VRG lowers it" of the interior gamma
     (``0 < gamma < max``) with the lowest difference;
  2. "too large a gamma is worse than the baseline": the claim "VRG *raises* the set metric" at
     the largest gamma (:func:`~vrg_analysis.evaluation.stats.decide` with ``better_sign=+1``, so
     a significant rise supports it and a significant fall contradicts it).

  ``aggregate([part 1, part 2])``: supported when both are, inconclusive when both are,
  contradicted when neither is supported and one is contradicted, mixed otherwise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from numpy.typing import ArrayLike, NDArray

from vrg_analysis.core.trajectories import BASELINES, Trajectory
from vrg_analysis.evaluation.stats import (
    Correlation,
    Verdict,
    aggregate,
    decide,
    rank_correlation,
)
from vrg_analysis.params import as_bool, as_float, as_int, as_tuple, check_seeds
from vrg_analysis.report import colour, panel_size, styled
from vrg_analysis.samplers import SAMPLERS
from vrg_analysis.studies.claims import Finding, describe_testbed, size_text
from vrg_analysis.studies.engine import (
    METRIC_DIRECTION,
    ComparisonConfig,
    ComparisonResult,
    PairedComparison,
    judge,
    paired_comparison,
    run_comparison,
)
from vrg_analysis.vrg.objective import ratio_bounds
from vrg_analysis.vrg.retime import PUBLISHED_VRG, VRGSetting
from vrg_analysis.vrg.start_level import StartOnlyArm

__all__ = [
    "Params",
    "Result",
    "Summary",
    "ControlCheck",
    "ClaimJudgement",
    "StartSplit",
    "run",
    "split_verdict",
    "start_split",
    "check_control",
    "box_active",
    "judge_claim",
    "lambda_line",
    "figure_ablation",
    "figure_cpe_vs_change",
    "shift_table",
    "verdict_table",
    "lines_table",
    "claim_table",
    "summary",
    "findings",
]

CHAPTER = "ablation"
FloatArray = NDArray[np.float64]
SET_NAMES: dict[str, str] = {
    "fid": "FID",
    "frechet": "Fréchet distance",
    "pixel_frechet": "pixel Fréchet distance",
}
HELD = "start held"
START_ONLY = "start only"
PUBLISHED = "published"
Setting = VRGSetting | StartOnlyArm


@dataclass(frozen=True)
class Params:
    """The chapter's parameters (the notebook's ``parameters`` cell; CI-sized defaults)."""

    testbed: str = "digits"
    sampler: str = "ddim"
    baselines: tuple[str, ...] = ("time_uniform",)
    num_steps: int = 10
    gammas: tuple[float, ...] = (0.0, 0.1, 0.2, 0.4)
    reg_lambdas: tuple[float, ...] = (1e4, 1e5)
    include_published: bool = True
    include_start_held: bool = True
    include_start_only: bool = True
    seeds: tuple[int, ...] = (0, 1)
    n_samples: int = 128
    reference_steps: int = 100
    profile_samples: int = 256
    n_boot: int = 200
    alpha: float = 0.05
    device: str = "cpu"

    def __post_init__(self) -> None:
        s = object.__setattr__
        if self.sampler not in SAMPLERS:
            raise ValueError(
                f"parameter sampler: unknown value {self.sampler!r}; allowed: {list(SAMPLERS)}"
            )
        s(self, "baselines", as_tuple(self.baselines, "baselines", str, choices=BASELINES))
        if len(set(self.baselines)) != len(self.baselines):
            raise ValueError(f"parameter baselines has repeats: {list(self.baselines)!r}")
        s(self, "num_steps", as_int(self.num_steps, "num_steps", minimum=2))
        gammas = as_tuple(self.gammas, "gammas", float)
        if any(not 0.0 <= g < 1.0 for g in gammas):
            raise ValueError(f"parameter gammas must lie in [0, 1), got {list(gammas)!r}")
        if 0.0 not in gammas:
            raise ValueError(
                "parameter gammas must include 0.0: the control arm that reproduces the baseline"
            )
        if len({g for g in gammas if g > 0}) < 2:
            raise ValueError(f"parameter gammas needs at least two values above 0, got {gammas!r}")
        s(self, "gammas", tuple(sorted(set(gammas))))
        lams = as_tuple(self.reg_lambdas, "reg_lambdas", float)
        if min(lams) < 0:
            raise ValueError(f"parameter reg_lambdas must be >= 0, got {list(lams)!r}")
        s(self, "reg_lambdas", tuple(sorted(set(lams))))
        s(self, "include_published", as_bool(self.include_published, "include_published"))
        s(self, "include_start_held", as_bool(self.include_start_held, "include_start_held"))
        s(self, "include_start_only", as_bool(self.include_start_only, "include_start_only"))
        s(self, "seeds", check_seeds(self.seeds, min_len=2))
        s(self, "n_samples", as_int(self.n_samples, "n_samples", minimum=2))
        s(self, "reference_steps", as_int(self.reference_steps, "reference_steps", minimum=2))
        s(self, "profile_samples", as_int(self.profile_samples, "profile_samples", minimum=2))
        s(self, "n_boot", as_int(self.n_boot, "n_boot", minimum=20))
        s(
            self,
            "alpha",
            as_float(self.alpha, "alpha", minimum=0.0, maximum=1.0, open_low=True, open_high=True),
        )

    @property
    def grid(self) -> dict[tuple[float, float], VRGSetting]:
        """The (gamma, lambda) grid with the paper's penalty."""
        return {(g, lam): VRGSetting(g, lam) for lam in self.reg_lambdas for g in self.gammas}

    @property
    def held(self) -> dict[float, VRGSetting]:
        """Every gamma > 0 with the start level held (lambda unused; the first one recorded)."""
        if not self.include_start_held:
            return {}
        lam = self.reg_lambdas[0]
        return {g: VRGSetting(g, lam, keep_start=True) for g in self.gammas if g > 0}

    @property
    def start_only(self) -> dict[float, StartOnlyArm]:
        """Every gamma > 0 of the first lambda as the baseline with only VRG's start level."""
        if not self.include_start_only:
            return {}
        lam = self.reg_lambdas[0]
        return {g: StartOnlyArm(VRGSetting(g, lam)) for g in self.gammas if g > 0}

    @property
    def settings(self) -> list[Setting]:
        """Every arm of the chapter: the grid, the start-held and start-only lines and the
        published setting."""
        out: list[Setting] = [*self.grid.values(), *self.held.values(), *self.start_only.values()]
        if self.include_published and PUBLISHED_VRG not in out:
            out.append(PUBLISHED_VRG)
        return out

    @property
    def controls(self) -> list[str]:
        """The labels of the gamma = 0 control arms."""
        return [s.label for s in self.settings if s.gamma == 0.0]

    def config(self) -> ComparisonConfig:
        return ComparisonConfig(
            testbed=self.testbed,
            samplers=(self.sampler,),
            baselines=self.baselines,
            steps=(self.num_steps,),
            seeds=self.seeds,
            n_samples=self.n_samples,
            arms=tuple(self.settings),
            reference_steps=self.reference_steps,
            profile_samples=self.profile_samples,
            device=self.device,
        )

    def family(self, s: Setting) -> str:
        """The line a setting belongs to in the figures and tables."""
        if isinstance(s, StartOnlyArm):
            return START_ONLY
        if s.keep_start:
            return HELD
        if s == PUBLISHED_VRG and (s.gamma, s.reg_lambda) not in self.grid:
            return PUBLISHED
        return f"lambda={s.reg_lambda:g}"


# ===================================================================== estimators
@dataclass(frozen=True)
class ControlCheck:
    """The gamma = 0 control against its baseline: ``n_arms`` arms checked (baselines x lambdas x
    seeds), the largest absolute paired difference or interval end over every metric
    (``max_abs_difference``, 0 when the pairing is exact) and what differed (empty: passed)."""

    n_arms: int
    max_abs_difference: float
    mismatches: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.n_arms > 0 and not self.mismatches


def check_control(
    comparison: ComparisonResult, controls: Sequence[str], *, n_boot: int = 200
) -> ControlCheck:
    """Whether every control arm (``controls``: labels of gamma = 0 settings) is its baseline bit
    for bit on every seed: the same levels, features, per-sample scores, set value and CPE, and a
    paired difference of exactly 0 with the interval [0, 0] on the set metric and every per-sample
    metric."""
    mismatches: list[str] = []
    n_arms = 0
    worst = 0.0
    metrics = [comparison.set_metric, *comparison.arms[0].per_sample]
    for sampler, b, k in comparison.configurations():
        for label in controls:
            for seed in comparison.config.seeds:
                base = comparison.arm(sampler, b, k, "baseline", seed)
                arm = comparison.arm(sampler, b, k, label, seed)
                n_arms += 1
                where = f"{b}, K={k}, {label}, seed {seed}"
                if not np.array_equal(arm.alpha_bar, base.alpha_bar):
                    mismatches.append(f"{where}: levels differ")
                if not np.array_equal(arm.features, base.features):
                    mismatches.append(f"{where}: samples differ")
                for m, v in base.per_sample.items():
                    if not np.array_equal(arm.per_sample[m], v):
                        mismatches.append(f"{where}: {m} differs")
                if arm.set_value != base.set_value or arm.cpe != base.cpe:
                    mismatches.append(f"{where}: set value or CPE differs")
            for m in metrics:
                c = paired_comparison(comparison, sampler, b, k, label, m, n_boot=n_boot)
                size = max(abs(c.delta), abs(c.ci_low), abs(c.ci_high))
                worst = max(worst, size)
                if size != 0.0:
                    mismatches.append(f"{b}, K={k}, {label}: paired {m} difference {size:g}")
    return ControlCheck(n_arms=n_arms, max_abs_difference=worst, mismatches=tuple(mismatches))


def box_active(
    base_alpha_bar: ArrayLike, vrg_alpha_bar: ArrayLike, gamma: float, *, rtol: float = 1e-6
) -> int:
    """How many ratios ``r_k = a_k / a_{k-1}`` of the re-timed trajectory (levels in sampling
    order, noisiest first) sit on an edge of their box around the baseline's ratios (the gamma box,
    :func:`~vrg_analysis.vrg.objective.ratio_bounds`), within ``rtol`` of the box's width.
    0 for ``gamma = 0``."""
    if gamma == 0.0:
        return 0
    base = Trajectory(np.asarray(base_alpha_bar, dtype=np.float64))
    a = np.asarray(vrg_alpha_bar, dtype=np.float64)[::-1]  # clean end first
    if a.shape != base.alpha_bar.shape:
        raise ValueError(f"trajectories differ in length: {a.size} and {base.K}")
    _, lo, hi = ratio_bounds(base, gamma)
    r = np.concatenate([a[:1], a[1:] / a[:-1]])
    tol = rtol * np.maximum(hi - lo, 1e-300)
    return int(np.sum((np.abs(r - lo) <= tol) | (np.abs(r - hi) <= tol)))


@dataclass(frozen=True)
class ClaimJudgement:
    """The claim "gamma-ablation" on one lambda line (see the module docstring): the interior
    gamma with the lowest difference and its verdict on "VRG lowers the set metric", the largest
    gamma and the verdict on "VRG raises it", and their aggregate."""

    baseline: str
    reg_lambda: float
    interior_gamma: float
    interior_verdict: Verdict
    largest_gamma: float
    largest_verdict: Verdict
    verdict: str


def lambda_line(table: pd.DataFrame, reg_lambda: float) -> pd.DataFrame:
    """The rows of one lambda line with gamma > 0 (no control, no start held or start only, no
    published)."""
    keep = (
        (table.reg_lambda == reg_lambda)
        & ~table.control
        & ~table.keep_start
        & ~table.start_only
        & (table.family != PUBLISHED)
    )
    return table[keep].sort_values("gamma")


def judge_claim(table: pd.DataFrame, baseline_name: str, reg_lambda: float) -> ClaimJudgement:
    """The claim "gamma-ablation" judged on one baseline's lambda line of the chapter's table
    (columns ``dset``, ``set_p_holm`` and ``set_verdict``, Holm over the chapter's family)."""
    line = lambda_line(table[table.baseline == baseline_name], reg_lambda)
    g_max = float(line.gamma.max())
    interior = line[line.gamma < g_max]
    if interior.empty or len(line) < 2:
        raise ValueError("the claim needs at least two gammas above 0 on the line")
    best = interior.loc[interior.dset.idxmin()]
    top = line[line.gamma == g_max].iloc[0]
    part1: Verdict = best.set_verdict
    part2 = decide(
        float(top.dset), float(top.set_p_holm), claim="better", better_sign=+1
    ).verdict  # "VRG raises the metric at the largest gamma"
    return ClaimJudgement(
        baseline=baseline_name,
        reg_lambda=float(reg_lambda),
        interior_gamma=float(best.gamma),
        interior_verdict=part1,
        largest_gamma=g_max,
        largest_verdict=part2,
        verdict=aggregate([part1, part2]),
    )


@dataclass(frozen=True)
class StartSplit:
    """VRG's change of the set metric at one gamma split into its two parts: the start-only arm
    (the baseline with VRG's start level) and the start-held arm (VRG's re-timing with the
    baseline's start), each a paired difference against the baseline with its 95% interval and
    verdict on "the arm lowers the set metric" (Holm over the chapter's table)."""

    baseline: str
    gamma: float
    reg_lambda: float
    vrg: tuple[float, float, float, str]
    start_only: tuple[float, float, float, str]
    start_held: tuple[float, float, float, str]
    start_rule: str
    verdict: str


def split_verdict(start_only: str, start_held: str) -> str:
    """The claim "start-level" (VRG's gain comes from re-timing, not from the start level) from
    the verdicts on "the arm lowers the set metric" of the start-only and start-held arms:

    - ``"supported"``: the re-timing alone lowers it and the start level alone does not;
    - ``"contradicted"``: the start level alone lowers it and the re-timing alone does not, or
      the re-timing alone is significantly worse while the start level alone is not better;
    - ``"mixed"``: both lower it;
    - ``"inconclusive"``: neither is shown either way.
    """
    for name, v in (("start_only", start_only), ("start_held", start_held)):
        if v not in VERDICT_WORDS:
            raise ValueError(f"{name} must be one of {VERDICT_WORDS}, got {v!r}")
    if start_held == "supported":
        return "mixed" if start_only == "supported" else "supported"
    if start_only == "supported" or start_held == "contradicted":
        return "contradicted"
    return "inconclusive"


VERDICT_WORDS: tuple[str, ...] = ("supported", "contradicted", "inconclusive")


def start_split(table: pd.DataFrame, baseline_name: str, gamma: float) -> StartSplit:
    """The split (:class:`StartSplit`) of VRG's change at ``gamma`` on the first lambda line of
    ``baseline_name``, from the chapter's judged table (rows of the start-only and start-held
    arms at the same gamma required)."""
    rows = table[(table.baseline == baseline_name) & (table.gamma == gamma) & ~table.control]
    line = rows[~rows.keep_start & ~rows.start_only & (rows.family != PUBLISHED)]
    only, held = rows[rows.start_only], rows[rows.keep_start]
    if line.empty or only.empty or held.empty:
        raise ValueError(
            f"the split at gamma = {gamma:g} on {baseline_name!r} needs the VRG, start-only and "
            "start-held arms there (include_start_only and include_start_held)"
        )
    vrg = line.sort_values("reg_lambda").iloc[0]
    o, h = only.iloc[0], held.iloc[0]

    def part(r: Any) -> tuple[float, float, float, str]:
        return (float(r.dset), float(r.dset_lo), float(r.dset_hi), str(r.set_verdict))

    return StartSplit(
        baseline=baseline_name,
        gamma=float(gamma),
        reg_lambda=float(vrg.reg_lambda),
        vrg=part(vrg),
        start_only=part(o),
        start_held=part(h),
        start_rule=str(o.start_rule),
        verdict=split_verdict(str(o.set_verdict), str(h.set_verdict)),
    )


# ===================================================================== the run
@dataclass(frozen=True, eq=False)
class Result:
    """The comparison, its judged table (one row per baseline and setting) and the analyses."""

    params: Params
    comparison: ComparisonResult
    table: pd.DataFrame = field(repr=False)
    control: ControlCheck
    rho_set: Correlation
    rho_mse: Correlation
    rho_held: Correlation
    claim: ClaimJudgement
    run_seconds: float
    split: StartSplit | None = None

    @property
    def set_metric(self) -> str:
        return self.comparison.set_metric

    @property
    def head(self) -> pd.DataFrame:
        """The rows of the headline (first) baseline."""
        return self.table[self.table.baseline == self.params.baselines[0]]

    @property
    def tested(self) -> pd.DataFrame:
        """The rows with gamma > 0 (the controls are not tested)."""
        return self.table[~self.table.control]


def _row(
    p: Params,
    res: ComparisonResult,
    b: str,
    s: Setting,
    set_c: PairedComparison,
    mse_c: PairedComparison,
) -> dict[str, Any]:
    k = p.num_steps
    base_arm = res.arm(p.sampler, b, k, "baseline", p.seeds[0])
    arm = res.arm(p.sampler, b, k, s.label, p.seeds[0])
    opt = arm.optimisation
    return {
        "baseline": b,
        "setting": s.label,
        "family": p.family(s),
        "gamma": s.gamma,
        "reg_lambda": s.reg_lambda,
        "keep_start": s.keep_start,
        "start_only": isinstance(s, StartOnlyArm),
        "start_rule": str(opt.get("start_rule", "")),
        "control": s.gamma == 0.0,
        "set_base": set_c.base_value,
        "set_vrg": set_c.vrg_value,
        "dset": set_c.delta,
        "dset_lo": set_c.ci_low,
        "dset_hi": set_c.ci_high,
        "dset_p": set_c.p_value,
        "set_seeds_worse": int(
            sum(METRIC_DIRECTION[set_c.metric] * d < 0 for d in set_c.seed_deltas)
        ),
        "mse_base": mse_c.base_value,
        "dmse": mse_c.delta,
        "dmse_lo": mse_c.ci_low,
        "dmse_hi": mse_c.ci_high,
        "dmse_p": mse_c.p_value,
        "mse_seeds_worse": int(sum(d > 0 for d in mse_c.seed_deltas)),
        "cpe_base": set_c.base_cpe,
        "cpe_vrg": set_c.vrg_cpe,
        "cpe_change_pct": 100 * (set_c.vrg_cpe / set_c.base_cpe - 1),
        "cpe_reduction_pct": 100 * float(opt["cpe_reduction"]),
        "start_shift_pct": 100 * float(opt["start_shift"]),
        "a_K_base": float(base_arm.alpha_bar[0]),
        "a_K_vrg": float(arm.alpha_bar[0]),
        "converged": bool(opt["converged"]),
        "moved": bool(opt["moved"]),
        "box_active": (
            0
            if isinstance(s, StartOnlyArm)
            else box_active(base_arm.alpha_bar, arm.alpha_bar, s.gamma)
        ),
        "nfe": set_c.nfe,
    }


def run(params: Params, *, progress: bool = False) -> Result:
    """Run the sweep, check the control, judge every setting (one Holm family over both metrics,
    controls excluded) and the claim."""
    p = params
    if p.device.startswith("cuda"):
        torch.backends.cudnn.deterministic = True  # the gamma = 0 control is checked bit for bit
    t0 = time.perf_counter()
    res = run_comparison(p.config(), progress=progress)
    seconds = time.perf_counter() - t0
    set_metric = res.set_metric
    rows, tested = [], []
    for b in p.baselines:
        for s in p.settings:
            c_set = paired_comparison(
                res, p.sampler, b, p.num_steps, s.label, set_metric, n_boot=p.n_boot
            )
            c_mse = paired_comparison(
                res, p.sampler, b, p.num_steps, s.label, "image_mse", n_boot=p.n_boot
            )
            rows.append(_row(p, res, b, s, c_set, c_mse))
            if s.gamma > 0:
                tested += [c_set, c_mse]
    table = pd.DataFrame(rows)
    judged = {(c.baseline, c.variant, c.metric): c for c in judge(tested, alpha=p.alpha)}
    for key, metric in (("set", set_metric), ("mse", "image_mse")):
        cs = [judged.get((r.baseline, r.setting, metric)) for r in table.itertuples()]
        table[f"{key}_verdict"] = [c.verdict if c is not None else "control" for c in cs]
        table[f"{key}_p_holm"] = [c.p_adjusted if c is not None else math.nan for c in cs]
    act = table[~table.control & ~table.start_only]  # VRG's own settings
    held = act[act.keep_start]
    claim = judge_claim(table, p.baselines[0], p.reg_lambdas[0])
    split = (
        start_split(table, p.baselines[0], claim.interior_gamma)
        if p.include_start_only and p.include_start_held
        else None
    )
    return Result(
        params=p,
        comparison=res,
        table=table,
        control=check_control(res, p.controls, n_boot=p.n_boot),
        rho_set=rank_correlation(act.cpe_reduction_pct, act.dset),
        rho_mse=rank_correlation(act.cpe_reduction_pct, act.dmse),
        rho_held=(
            rank_correlation(held.cpe_reduction_pct, held.dset)
            if len(held) >= 5
            else Correlation(math.nan, math.nan, len(held))
        ),
        claim=claim,
        run_seconds=seconds,
        split=split,
    )


# ===================================================================== rendering
def _plain_family(fam: str) -> str:
    if fam.startswith("lambda="):
        return f"λ = {fam.split('=')[1]}"
    if fam == HELD:
        return "start level held"
    if fam == START_ONLY:
        return "baseline, VRG's start only"
    return f"published (γ = {PUBLISHED_VRG.gamma:g}, λ = {PUBLISHED_VRG.reg_lambda:g})"


def _styles(result: Result) -> dict[str, tuple[str, str, str]]:
    """(colour, marker, line style) of every line, in legend order."""
    lams = result.params.reg_lambdas
    extra = sns.color_palette("colorblind", 10).as_hex()[3:]
    out = {f"lambda={lams[0]:g}": (colour("vrg"), "o", "-")}
    for i, lam in enumerate(lams[1:]):
        out[f"lambda={lam:g}"] = (extra[i % len(extra)], "s", "--")
    out[HELD] = (colour("vrg start held"), "D", ":")
    out[START_ONLY] = (sns.color_palette("colorblind", 10).as_hex()[7], "v", "-.")
    out[PUBLISHED] = (colour("vrg (paper's settings)"), "*", "none")
    return out


def _set_name(result: Result) -> str:
    return SET_NAMES.get(result.set_metric, result.set_metric)


def _lines(tb: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One frame per line, sorted by gamma; the start-held line starts at the gamma = 0 control."""
    out = {}
    for fam, sub in tb[~tb.control].groupby("family", sort=False):
        sub = sub.sort_values("gamma")
        if fam != PUBLISHED:
            zero = tb[tb.control & (tb.family == fam)]
            if zero.empty:
                zero = tb[tb.control].iloc[:1]
            sub = pd.concat([zero, sub])
        out[str(fam)] = sub
    return out


def _legend(fig: Any, handles_from: Any, reserve: float = 0.6) -> None:
    """The figure's legend above its panels, in ``reserve`` inches of room made for it."""
    handles, labels = handles_from.get_legend_handles_labels()
    fig.tight_layout()
    height = fig.get_size_inches()[1]
    fig.subplots_adjust(top=1.0 - reserve / height)
    fig.legend(
        handles,
        labels,
        loc="upper center",
        ncol=min(len(labels), 4),
        frameon=False,
        bbox_to_anchor=(0.5, 1.0),
    )


def figure_ablation(result: Result) -> Any:
    """VRG - baseline against gamma, one line per lambda (the start-held line dotted, the
    published setting a star), one row per baseline: the set metric, the predicted CPE change
    and the endpoint deviation, with 95% paired bootstrap intervals."""
    set_name = _set_name(result)
    panels = [
        ("dset", "dset_lo", "dset_hi", f"Δ{set_name} (VRG − baseline)"),
        ("cpe_change_pct", None, None, "predicted CPE change (%)"),
        ("dmse", "dmse_lo", "dmse_hi", "Δ endpoint MSE (per dim.)"),
    ]
    styles = _styles(result)
    baselines = result.params.baselines
    step = 0.015 * max(result.params.gammas)
    lines = [fam for fam in styles if fam != PUBLISHED]
    offsets = {fam: step * (i - (len(lines) - 1) / 2) for i, fam in enumerate(lines)}
    height, aspect = panel_size(3)
    fig, axes = plt.subplots(
        len(baselines),
        3,
        figsize=(3 * height * aspect, height * len(baselines) + 0.6),
        squeeze=False,
    )
    for r, b in enumerate(baselines):
        tb = result.table[result.table.baseline == b]
        for c, (y, lo, hi, label) in enumerate(panels):
            ax = axes[r, c]
            ax.axhline(0.0, color="k", lw=0.8)
            for fam, sub in _lines(tb).items():
                col, marker, ls = styles[fam]
                x = sub.gamma + offsets.get(fam, 0.0)  # sideways, so lines do not hide each other
                err = None
                if lo is not None and hi is not None:
                    err = np.clip(np.vstack([sub[y] - sub[lo], sub[hi] - sub[y]]), 0.0, None)
                ax.errorbar(
                    x,
                    sub[y],
                    yerr=err,
                    color=col,
                    marker=marker,
                    ls=ls,
                    ms=10 if fam == PUBLISHED else 4.5,
                    capsize=2,
                    lw=1.2,
                    label=_plain_family(fam),
                )
            ax.set_xlabel("learning portion γ")
            ax.set_ylabel(label)
            ax.set_title(f"{b}, K = {result.params.num_steps}", fontsize=9)
    _legend(fig, axes[0, 0])
    plt.close(fig)
    return fig


def figure_cpe_vs_change(result: Result) -> Any:
    """The measured change (set metric, endpoint deviation) against the CPE reduction VRG
    predicts, one point per setting with gamma > 0 and baseline, with 95% paired intervals."""
    set_name = _set_name(result)
    styles = _styles(result)
    act = result.tested
    height, aspect = panel_size(2)
    fig, axes = plt.subplots(1, 2, figsize=(2 * height * aspect, height + 0.6))
    for ax, (y, lo, hi, label) in zip(
        axes,
        [
            ("dset", "dset_lo", "dset_hi", f"Δ{set_name} (VRG − baseline)"),
            ("dmse", "dmse_lo", "dmse_hi", "Δ endpoint MSE (per dim.)"),
        ],
        strict=True,
    ):
        for fam, sub in act.groupby("family", sort=False):
            col, marker, _ = styles[str(fam)]
            ax.errorbar(
                sub.cpe_reduction_pct,
                sub[y],
                yerr=np.clip(np.vstack([sub[y] - sub[lo], sub[hi] - sub[y]]), 0.0, None),
                color=col,
                marker=marker,
                ls="none",
                ms=10 if fam == PUBLISHED else 4.5,
                capsize=2,
                label=_plain_family(str(fam)),
            )
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xlabel("predicted CPE reduction (%)")
        ax.set_ylabel(label)
    _legend(fig, axes[0])
    plt.close(fig)
    return fig


def shift_table(result: Result) -> Any:
    """How far the start level moved (VRG / baseline - 1, %) per gamma and line, first baseline."""
    head = result.head
    grid_rows = head[head.family != PUBLISHED]
    shift = grid_rows.pivot_table(index="gamma", columns="family", values="start_shift_pct")
    for fam in (HELD, START_ONLY):
        if fam in shift:
            shift.loc[0.0, fam] = 0.0  # the gamma = 0 control
    shift.columns = [_plain_family(c) for c in shift.columns]
    shift.index.name = "γ"
    return shift.style.format("{:+,.1f}").set_caption(
        f"Relative move of the starting level a_K (VRG / baseline − 1, %), "
        f"{result.params.baselines[0]}"
    )


def verdict_table(result: Result) -> Any:
    """Every setting against the baseline: the start move, the CPE change, the set metric's and
    the endpoint deviation's differences with intervals and verdicts (Holm over the table)."""
    t = result.table
    n = len(result.params.seeds)
    set_name = _set_name(result)
    show = pd.DataFrame(
        {
            "baseline": t.baseline,
            "setting": t.setting,
            "a_K moved (%)": t.start_shift_pct,
            "CPE change (%)": t.cpe_change_pct,
            f"Δ{set_name}": t.dset,
            f"Δ{set_name} 95% CI": [
                f"[{lo:+.3f}, {hi:+.3f}]" for lo, hi in zip(t.dset_lo, t.dset_hi, strict=True)
            ],
            "seeds worse": [f"{w}/{n}" for w in t.set_seeds_worse],
            "p (Holm)": t.set_p_holm,
            f"VRG lowers {set_name}": t.set_verdict,
            "Δ endpoint MSE": t.dmse,
            "Δ MSE 95% CI": [
                f"[{lo:+.2e}, {hi:+.2e}]" for lo, hi in zip(t.dmse_lo, t.dmse_hi, strict=True)
            ],
            "VRG lowers endpoint MSE": t.mse_verdict,
            "solver converged": t.converged.map({True: "yes", False: "no"}),
        }
    )
    return styled(
        show,
        formats={
            "a_K moved (%)": "{:+.3g}",
            "CPE change (%)": "{:+.3g}",
            f"Δ{set_name}": "{:+.3f}",
            "p (Holm)": "{:.2g}",
            "Δ endpoint MSE": "{:+.2e}",
        },
        verdict_columns=(f"VRG lowers {set_name}", "VRG lowers endpoint MSE"),
        caption=(
            f"Every VRG setting against the baseline (DDIM, K = {result.params.num_steps}); "
            "verdicts Holm-corrected over the table, gamma = 0 controls not tested"
        ),
    )


def _lines_frame(result: Result) -> pd.DataFrame:
    rows = []
    for (b, fam), sub in result.tested.groupby(["baseline", "family"], sort=False):
        if fam == PUBLISHED:
            continue
        bst = sub.loc[sub.dset.idxmin()]
        top = sub[sub.gamma == sub.gamma.max()].iloc[0]
        rows.append(
            {
                "baseline": b,
                "line": _plain_family(str(fam)),
                "best γ": bst.gamma,
                "Δ at best": f"{bst.dset:+.3f} [{bst.dset_lo:+.3f}, {bst.dset_hi:+.3f}]",
                "verdict at best": bst.set_verdict,
                "largest γ": top.gamma,
                "Δ at largest": f"{top.dset:+.3f} [{top.dset_lo:+.3f}, {top.dset_hi:+.3f}]",
                "verdict at largest": top.set_verdict,
                "supported / inconclusive / contradicted": "/".join(
                    str(int((sub.set_verdict == v).sum()))
                    for v in ("supported", "inconclusive", "contradicted")
                ),
            }
        )
    return pd.DataFrame(rows)


def lines_table(result: Result) -> Any:
    """One row per baseline and line: the best and the largest gamma, with their differences and
    verdicts on "VRG lowers the set metric", and the line's verdict counts."""
    return styled(
        _lines_frame(result),
        formats={"best γ": "{:g}", "largest γ": "{:g}"},
        verdict_columns=("verdict at best", "verdict at largest"),
        caption=f"Per line: VRG against the baseline on {_set_name(result)} (Holm over the table)",
    )


def claim_table(result: Result) -> Any:
    """The claim "gamma-ablation": its two parts and their aggregate."""
    c = result.claim
    set_name = _set_name(result)
    frame = pd.DataFrame(
        [
            {
                "part": f"a moderate γ lowers {set_name}",
                "judged at": f"γ = {c.interior_gamma:g} (best interior)",
                "verdict": c.interior_verdict,
            },
            {
                "part": f"too large a γ raises {set_name}",
                "judged at": f"γ = {c.largest_gamma:g} (largest)",
                "verdict": c.largest_verdict,
            },
            {"part": "the claim (aggregate)", "judged at": "both parts", "verdict": c.verdict},
        ]
    )
    return styled(
        frame,
        caption=f"The paper's gamma ablation on {c.baseline}, λ = {c.reg_lambda:g}",
    )


# ===================================================================== the prose's numbers
@dataclass(frozen=True)
class Summary:
    """Every number and phrase the chapter's prose cites (glued by field name)."""

    model_label: str
    set_name: str
    n_seeds: int
    n_samples: int
    n_pooled: int
    num_steps: int
    reference_steps: int
    nfe: int
    n_settings: int
    model_calls: int
    run_wall: float
    headline_baseline: str
    baseline_list: str
    a_K_base: float
    control_max_abs: float
    n_control_arms: int
    pub_shift: float
    pub_cpe_red: float
    lam_first: float
    lam_last: float
    shift_max_last: float
    shift_max_first: float
    shift_min_first: float
    a_K_max_first: float
    start_verdict: str
    start_summary: str
    n_converged: int
    n_rows: int
    n_moved: int
    n_nonctrl: int
    box_note: str
    held_effect: str
    n_tests: int
    alpha: float
    fid_base_head: float
    best_per_lambda: str
    held_text: str
    gamma_max: float
    too_large_word: str
    too_large_detail: str
    gap_to_best_max: float
    n_lines: int
    n_lines_large_worse: int
    large_worse_lines: str
    loss_text: str
    claim_verdict: str
    claim_interior_gamma: float
    claim_interior_verdict: str
    claim_largest_verdict: str
    pub_dfid: float
    pub_lo: float
    pub_hi: float
    pub_verdict: str
    rho_fid: float
    p_fid: float
    rho_mse: float
    p_mse: float
    n_rho: int
    rel_fid: str
    rel_mse: str
    held_summary: str
    held_rho_text: str
    split_text: str
    split_verdict: str
    counts: dict[str, int] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=dict)


def _counts(table: pd.DataFrame, column: str) -> dict[str, int]:
    return {
        v: int((table[column] == v).sum()) for v in ("supported", "inconclusive", "contradicted")
    }


def _worse_text(result: Result, key: str, col: str, fmt: str) -> str:
    t = result.table
    lost = t[t[f"{key}_verdict"] == "contradicted"]
    if lost.empty:
        return "no setting in which it is significantly worse (Holm)"
    groups = "; ".join(
        f"{b} / {_plain_family(str(fam))}: γ = " + ", ".join(f"{g:g}" for g in sub.gamma)
        for (b, fam), sub in lost.groupby(["baseline", "family"], sort=False)
    )
    w = lost.loc[lost[col].idxmax()]
    n_worse = w[f"{key}_seeds_worse"]
    return (
        f"{len(lost)} setting{'s' if len(lost) != 1 else ''} in which it is significantly "
        f"worse (Holm; {groups}); the largest "
        f"difference is {w.setting} on {w.baseline}, {fmt.format(w[col])} "
        f"[{fmt.format(w[col + '_lo'])}, {fmt.format(w[col + '_hi'])}], worse on "
        f"{n_worse}/{len(result.params.seeds)} seeds"
    )


def _split_text(sp: StartSplit | None, set_name: str) -> str:
    if sp is None:
        return (
            "The split into start level and re-timing was not run (include_start_only and "
            "include_start_held)."
        )

    def part(x: tuple[float, float, float, str]) -> str:
        return f"{x[0]:+.3f} [{x[1]:+.3f}, {x[2]:+.3f}] ({x[3]})"

    rule = (
        " (VRG's start lay past the baseline's next level, so the start-only arm is the baseline "
        "stretched in log-SNR to start there)"
        if sp.start_rule == "stretched"
        else ""
    )
    return (
        f"At γ = {sp.gamma:g}, λ = {sp.reg_lambda:g} on {sp.baseline}, VRG changes {set_name} by "
        f"{part(sp.vrg)}; the baseline with only VRG's start level{rule} by {part(sp.start_only)}; "
        f"VRG's re-timing with the baseline's start level by {part(sp.start_held)} "
        f'(verdicts on "the arm lowers {set_name}", Holm over the table). On the claim that the '
        f"gain comes from the re-timing, not the start level: {sp.verdict}."
    )


def summary(result: Result) -> Summary:
    p = result.params
    t = result.table
    head = result.head
    act = result.tested
    set_name = _set_name(result)
    lam0, lam1 = p.reg_lambdas[0], p.reg_lambdas[-1]
    first, last = lambda_line(head, lam0), lambda_line(head, lam1)
    moved = head[~head.control & ~head.keep_start]
    big_shift = float(moved.start_shift_pct.abs().max())
    box = head[~head.control & ~head.start_only & (head.family != PUBLISHED)]
    binding = box[box.box_active > 0]
    if len(binding) == len(box):
        box_note = (
            "In every setting above some ratio sits on the edge of its box, so the box limits the "
            "optimum throughout the grid."
        )
    else:
        box_note = (
            "Where no ratio sits on the edge of its box the optimum is interior: the penalty (or "
            "the held start), not γ, decides it, and a larger γ leaves the optimum where it is (up "
            "to the local solver's choice among near-equal minima). At the headline baseline this "
            f"happens in {len(box) - len(binding)} of {len(box)} settings; the largest γ at which "
            "the box still binds somewhere is "
            + (f"{binding.gamma.max():g}." if len(binding) else "none (it never binds).")
        )
    counts = {f"fid_{v}": n for v, n in _counts(act, "set_verdict").items()}
    counts.update({f"mse_{v}": n for v, n in _counts(act, "mse_verdict").items()})
    best: dict[str, Any] = {}
    phrases = []
    for i, lam in enumerate(p.reg_lambdas):
        line = lambda_line(head, lam)
        b = line.loc[line.dset.idxmin()]
        best.update(
            {
                f"best_gamma_{i}": float(b.gamma),
                f"best_dfid_{i}": float(b.dset),
                f"best_lo_{i}": float(b.dset_lo),
                f"best_hi_{i}": float(b.dset_hi),
                f"best_verdict_{i}": str(b.set_verdict),
            }
        )
        phrases.append(
            f"with λ = {lam:g}, γ = {b.gamma:g} (Δ{set_name} {b.dset:+.3f}, 95% CI "
            f"[{b.dset_lo:+.3f}, {b.dset_hi:+.3f}], {b.set_verdict})"
        )
    if p.include_start_held:
        hs = head[head.keep_start]
        hb = hs.loc[hs.dset.idxmin()]
        held_text = (
            f"With the start level held, the best γ is {hb.gamma:g} (Δ{set_name} {hb.dset:+.3f}, "
            f"95% CI [{hb.dset_lo:+.3f}, {hb.dset_hi:+.3f}], {hb.set_verdict}; CPE change "
            f"{hb.cpe_change_pct:+.3g}%)."
        )
    else:
        held_text = "The start-held variant was not run (include_start_held = False)."
    g_max = max(p.gammas)
    big = head[
        (head.gamma == g_max) & ~head.keep_start & ~head.start_only & (head.family != PUBLISHED)
    ]
    big_worse = big[big.set_verdict == "contradicted"]
    if len(big_worse):
        too_large_detail = (
            "it is significantly worse than the baseline (Holm) for λ = "
            + ", ".join(f"{v:g}" for v in big_worse.reg_lambda)
            + "."
        )
    else:
        too_large_detail = (
            "at no λ is it significantly worse than the baseline (Holm): its "
            f"Δ{set_name} is "
            + "; ".join(
                f"{r.dset:+.3f} [{r.dset_lo:+.3f}, {r.dset_hi:+.3f}] for λ = {r.reg_lambda:g} "
                f"({r.set_verdict})"
                for r in big.itertuples()
            )
            + "."
        )
    gaps = [
        float(line[line.gamma == g_max].dset.iloc[0] - line.dset.min())
        for line in (lambda_line(head, lam) for lam in p.reg_lambdas)
    ]
    lines = _lines_frame(result)
    large_lost = lines[lines["verdict at largest"] == "contradicted"]
    loss_text = (
        f"On {set_name}, VRG has "
        + _worse_text(result, "set", "dset", "{:+.3f}")
        + ". On the endpoint deviation it has "
        + _worse_text(result, "mse", "dmse", "{:+.2e}")
        + "."
        + f" Point estimates of Δ{set_name} are above 0 (VRG worse) in "
        f"{int((act.dset > 0).sum())} of {len(act)} settings with γ > 0."
    )
    pen = act[~act.keep_start & ~act.start_only & (act.family != PUBLISHED)]
    cp = _counts(pen, "set_verdict")
    pen_text = (
        f"With the paper's penalty VRG is better on {set_name} (supported) in {cp['supported']}, "
        f"inconclusive in {cp['inconclusive']} and worse (contradicted) in {cp['contradicted']} "
        f"of {len(pen)} settings"
    )
    if p.include_start_held:
        hr = act[act.keep_start]
        ch = _counts(hr, "set_verdict")
        held_summary = (
            f"{pen_text}; with the start level held (the re-timing alone) better in "
            f"{ch['supported']}, inconclusive in {ch['inconclusive']} and worse in "
            f"{ch['contradicted']} of {len(hr)}."
        )
    else:
        held_summary = f"{pen_text} (the start-held variant was not run)."
    rh = result.rho_held
    if math.isfinite(rh.rho):
        held_rho_text = (
            f"Within the {rh.n} start-held settings alone, where only the re-timing differs, a "
            f"larger predicted CPE reduction {rh.relation(p.alpha, set_name)} "
            f"(Spearman ρ = {rh.rho:.2f}, p = {rh.p:.2g})."
        )
    else:
        held_rho_text = "The start-held settings are too few for a correlation of their own."
    pub: Any = None
    if p.include_published:
        pub = head[head.setting == PUBLISHED_VRG.label].iloc[0]
    nan = math.nan
    return Summary(
        model_label=p.testbed,
        set_name=set_name,
        n_seeds=len(p.seeds),
        n_samples=p.n_samples,
        n_pooled=p.n_samples * len(p.seeds),
        num_steps=p.num_steps,
        reference_steps=p.reference_steps,
        nfe=int(t.nfe.iloc[0]),
        n_settings=len(p.settings),
        model_calls=int(result.comparison.model_calls),
        run_wall=float(result.run_seconds),
        headline_baseline=p.baselines[0],
        baseline_list=", ".join(p.baselines),
        a_K_base=float(head.a_K_base.iloc[0]),
        control_max_abs=result.control.max_abs_difference,
        n_control_arms=result.control.n_arms,
        pub_shift=float(pub.start_shift_pct) if pub is not None else nan,
        pub_cpe_red=float(pub.cpe_reduction_pct) if pub is not None else nan,
        lam_first=lam0,
        lam_last=lam1,
        shift_max_last=float(last.start_shift_pct.max()),
        shift_max_first=float(first.start_shift_pct.max()),
        shift_min_first=float(first.start_shift_pct.min()),
        a_K_max_first=float(first.a_K_vrg.max()),
        start_verdict=(
            "So on this model the paper's penalty does not keep the starting noise level: much of "
            "what VRG changes below is where sampling starts."
            if big_shift > 10
            else "So the penalty keeps the starting level within 10% in every setting."
        ),
        start_summary=(
            "With the paper's penalty, VRG's re-timing is in large part a move of the starting "
            f"level (by up to {big_shift:,.0f}% here): the penalty on the raw alpha_bar scale does "
            "not hold it; the start-held line shows what is left when it is held."
            if big_shift > 10
            else f"The paper's penalty kept the starting level within {big_shift:.3g}% here."
        ),
        n_converged=int(t.converged.sum()),
        n_rows=int(len(t)),
        n_moved=int(act.moved.sum()),
        n_nonctrl=int(len(act)),
        box_note=box_note,
        held_effect=(
            "The start-held line removes that effect."
            if p.include_start_held
            else "(The start-held line was not run: include_start_held = False.)"
        ),
        n_tests=2 * int(len(act)),
        alpha=p.alpha,
        fid_base_head=float(head.set_base.iloc[0]),
        best_per_lambda="; ".join(phrases),
        held_text=held_text,
        gamma_max=float(g_max),
        too_large_word="is worse" if len(big_worse) else "is not shown to be worse",
        too_large_detail=too_large_detail,
        gap_to_best_max=float(max(gaps)),
        n_lines=int(len(lines)),
        n_lines_large_worse=int(len(large_lost)),
        large_worse_lines=(
            "namely " + "; ".join(f"{r.baseline}, {r.line}" for r in large_lost.itertuples())
            if len(large_lost)
            else "none of them"
        ),
        loss_text=loss_text,
        claim_verdict=result.claim.verdict,
        claim_interior_gamma=result.claim.interior_gamma,
        claim_interior_verdict=result.claim.interior_verdict,
        claim_largest_verdict=result.claim.largest_verdict,
        pub_dfid=float(pub.dset) if pub is not None else nan,
        pub_lo=float(pub.dset_lo) if pub is not None else nan,
        pub_hi=float(pub.dset_hi) if pub is not None else nan,
        pub_verdict=str(pub.set_verdict) if pub is not None else "not run",
        rho_fid=result.rho_set.rho,
        p_fid=result.rho_set.p,
        rho_mse=result.rho_mse.rho,
        p_mse=result.rho_mse.p,
        n_rho=result.rho_set.n,
        rel_fid=result.rho_set.relation(p.alpha, set_name),
        rel_mse=result.rho_mse.relation(p.alpha, "deviation"),
        held_summary=held_summary,
        held_rho_text=held_rho_text,
        split_text=_split_text(result.split, set_name),
        split_verdict=result.split.verdict if result.split is not None else "not run",
        counts=counts,
        best=best,
    )


def findings(result: Result) -> list[Finding]:
    """The chapter's findings: the claim "gamma-ablation" (see :func:`judge_claim`) and, when
    both counterfactual arms ran, the claim "start-level" (:func:`start_split`)."""
    p = result.params
    c = result.claim
    line = lambda_line(result.head, p.reg_lambdas[0])
    best = line.loc[line.dset.idxmin()]
    top = line[line.gamma == c.largest_gamma].iloc[0]
    set_name = _set_name(result)
    out = [
        Finding(
            claim="gamma-ablation",
            chapter=CHAPTER,
            finding=(
                f"{p.testbed}, DDIM {c.baseline} K={p.num_steps}, lambda={c.reg_lambda:g}: best "
                f"gamma {best.gamma:g} ({set_name} {best.set_base:.4g} -> {best.set_vrg:.4g}, "
                f"{best.set_verdict} on 'VRG lowers {set_name}'); best interior gamma "
                f"{c.interior_gamma:g}: {c.interior_verdict}; gamma {c.largest_gamma:g} "
                f"({top.dset:+.3f}): {c.largest_verdict} on 'too large a gamma is worse' "
                "(Holm over the chapter's table)"
            ),
            value=float(best.dset),
            ci_low=float(best.dset_lo),
            ci_high=float(best.dset_hi),
            verdict=c.verdict,  # type: ignore[arg-type]
            seeds=", ".join(str(s) for s in p.seeds),
            model=describe_testbed(p.testbed),
            size=size_text(
                p,
                CHAPTER,
                samples=p.n_samples,
                seeds=p.seeds,
                steps=[p.num_steps],
                detail=(
                    f"{p.sampler}, {len(p.baselines)} baseline(s) × {len(p.gammas)} gammas × "
                    f"{len(p.reg_lambdas)} lambdas"
                ),
            ),
        )
    ]
    sp = result.split
    if sp is None:
        return out
    out.append(
        Finding(
            claim="start-level",
            chapter=CHAPTER,
            finding=(
                f"{p.testbed}, DDIM {sp.baseline} K={p.num_steps}, gamma={sp.gamma:g}, "
                f"lambda={sp.reg_lambda:g}: {set_name} change VRG {sp.vrg[0]:+.3f} ({sp.vrg[3]}), "
                f"baseline with VRG's start only {sp.start_only[0]:+.3f} ({sp.start_only[3]}), "
                f"VRG with the start held {sp.start_held[0]:+.3f} ({sp.start_held[3]}) "
                "(Holm over the chapter's table)"
            ),
            value=sp.start_held[0],
            ci_low=sp.start_held[1],
            ci_high=sp.start_held[2],
            verdict=sp.verdict,  # type: ignore[arg-type]
            seeds=", ".join(str(s) for s in p.seeds),
            model=describe_testbed(p.testbed),
            size=size_text(
                p,
                CHAPTER,
                samples=p.n_samples,
                seeds=p.seeds,
                steps=[p.num_steps],
                detail=f"{p.sampler}, {sp.baseline}, start-only and start-held arms",
            ),
        )
    )
    return out
