"""Study 1, sample quality against steps: VRG against its baseline on every sampler family.

The paper's main evidence is FID against steps for DDIM on three baseline trajectories, and for
PNDM and DEIS at few steps. This chapter repeats the comparison on the project's models with the
paired comparison engine (:mod:`vrg_analysis.studies.engine`): the same model, starting noise and
number of model calls in both arms, VRG as published (fixed before any run), several seeds, paired
bootstrap intervals and the book's verdict rule with Holm's correction over each testbed-and-metric
table. Two testbeds: the image model (domain FID, and the deviation from a fine solve) and the exact
2-D mixture (exact log-likelihood, Frechet distance to the exact moments, error against the exact
probability-flow ODE). The guided class-conditional model has its own chapter
(:mod:`vrg_analysis.studies.guidance`).

The claim that the gain is largest at few steps is judged on the difference of DDIM's relative
gains at the fewest and the most steps, with a paired bootstrap interval over seeds and samples
(:func:`gain_difference`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vrg_analysis.core.trajectories import BASELINES
from vrg_analysis.evaluation.stats import (
    Interval,
    aggregate,
    bootstrap_pvalue,
    decide,
    paired_bootstrap,
    percentile_interval,
)
from vrg_analysis.params import as_float, as_int, as_tuple, check_seeds
from vrg_analysis.report import draw_intervals, interval_grid
from vrg_analysis.samplers import SAMPLERS
from vrg_analysis.studies.claims import Finding, describe_testbed, size_text
from vrg_analysis.studies.comparison_tables import (
    FAMILY,
    METRIC_NAMES,
    VERDICT_ORDER,
    comparison_metrics,
    difference_grid,
    judged_rows,
    judged_table,
    verdict_counts,
)
from vrg_analysis.studies.engine import (
    ComparisonConfig,
    ComparisonResult,
    FrechetToReference,
    run_comparison,
)
from vrg_analysis.testbeds import SET_METRICS, check_model, known_testbeds
from vrg_analysis.vrg.retime import VRGSetting

__all__ = [
    "Params",
    "Result",
    "Summary",
    "run",
    "gain_difference",
    "figure_values",
    "figure_differences",
    "figure_exact",
    "table",
    "counts_table",
    "summary",
    "findings",
    "METRIC_NAMES",
    "TESTBEDS",
]

CHAPTER = "quality_vs_steps"
#: The chapter's comparisons by role (:meth:`Params.configs`): the image model and the exact
#: mixture.
TESTBEDS: tuple[str, ...] = ("main", "exact")
#: Panel titles of the exact-testbed figure.
SHORT_METRIC_NAMES: dict[str, str] = {
    "frechet": "Fréchet to exact (lower better)",
    "log_likelihood": "log-likelihood (higher better)",
    "exact_error": "error vs exact ODE (lower better)",
}
#: The sample-quality metrics of the chapter's overall tally.
QUALITY_METRICS: tuple[str, ...] = (*SET_METRICS, "log_likelihood", "exact_error")


@dataclass(frozen=True)
class Params:
    """The chapter's parameters (the notebook's ``parameters`` cell; CI-sized defaults)."""

    model: str = "digits"
    data: str = ""
    samplers: tuple[str, ...] = ("ddim", "dpm_solver_2", "s_pndm", "deis_tab2")
    baselines: tuple[str, ...] = ("logsnr_uniform", "time_uniform", "time_quadratic")
    steps: tuple[int, ...] = (5, 10)
    seeds: tuple[int, ...] = (0, 1, 2)
    profile_samples: int = 256
    n_samples: int = 100
    reference_steps: int = 50
    gamma: float = 0.01
    reg_lambda: float = 100.0
    mixture_testbed: str = "mixture-2d"
    mixture_steps: tuple[int, ...] = (5, 10, 20)
    mixture_samples: int = 256
    n_boot: int = 200
    device: str = "cpu"

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "samplers", as_tuple(self.samplers, "samplers", str, choices=SAMPLERS))
        s(self, "baselines", as_tuple(self.baselines, "baselines", str, choices=BASELINES))
        for name in ("steps", "mixture_steps"):
            s(self, name, tuple(sorted(set(as_tuple(getattr(self, name), name, int)))))
            if min(getattr(self, name)) < 1:
                raise ValueError(f"parameter {name} must be positive integers")
        s(self, "seeds", check_seeds(self.seeds, min_len=3))
        for name, least in (
            ("profile_samples", 2),
            ("n_samples", 2),
            ("mixture_samples", 2),
            ("reference_steps", 2),
            ("n_boot", 20),
        ):
            s(self, name, as_int(getattr(self, name), name, minimum=least))
        s(self, "gamma", as_float(self.gamma, "gamma", minimum=0.0, maximum=1.0, open_high=True))
        s(self, "reg_lambda", as_float(self.reg_lambda, "reg_lambda", minimum=0.0))
        check_model(self.model, self.data, self.device)
        # the exact comparison takes a testbed (a folder there has no data parameter)
        check_model(
            self.mixture_testbed,
            None,
            self.device,
            names=("mixture_testbed", "mixture_testbed", "device"),
        )

    @property
    def vrg(self) -> VRGSetting:
        return VRGSetting(self.gamma, self.reg_lambda)

    def configs(self) -> dict[str, ComparisonConfig]:
        """The comparisons the chapter runs: ``main`` (the image model) and ``exact``."""
        common: dict[str, Any] = {
            "seeds": self.seeds,
            "arms": (self.vrg,),
            "reference_steps": self.reference_steps,
            "profile_samples": self.profile_samples,
            "device": self.device,
        }
        return {
            "main": ComparisonConfig(
                testbed=self.model,
                data=self.data or None,
                samplers=self.samplers,
                baselines=self.baselines,
                steps=self.steps,
                n_samples=self.n_samples,
                **common,
            ),
            "exact": ComparisonConfig(
                testbed=self.mixture_testbed,
                samplers=self.samplers,
                baselines=self.baselines,
                steps=self.mixture_steps,
                n_samples=self.mixture_samples,
                exact_reference=True,
                **common,
            ),
        }


@dataclass(frozen=True, eq=False)
class Result:
    """The chapter's comparisons and their judged table (one row per testbed, metric, sampler,
    baseline and K; Holm over each testbed-and-metric table)."""

    params: Params
    comparisons: dict[str, ComparisonResult]
    table: pd.DataFrame = field(repr=False)
    few_steps: Interval
    few_steps_p: float
    few_steps_k: tuple[int, int]

    def metrics(self, testbed: str) -> list[str]:
        return comparison_metrics(self.comparisons[testbed])

    def rows(self, testbed: str, metric: str) -> pd.DataFrame:
        t = self.table
        return t[(t.testbed == testbed) & (t.metric == metric)]

    @property
    def testbeds(self) -> list[str]:
        """The comparisons' names, in order (``main``, ``exact``)."""
        return list(self.comparisons)

    @property
    def model_calls(self) -> int:
        return sum(r.model_calls for r in self.comparisons.values())


def gain_difference(
    result: ComparisonResult,
    sampler: str,
    k_low: int,
    k_high: int,
    *,
    n_boot: int = 200,
    seed: int = 0,
) -> tuple[Interval, float]:
    """The relative gain of VRG at ``k_low`` steps minus at ``k_high`` (mean over baselines; gain =
    ``-(VRG - baseline) / baseline`` on the set metric, positive when VRG is better), with a paired
    bootstrap interval (recentred percentiles, :func:`~vrg_analysis.evaluation.stats.
    percentile_interval`): every arm resampled at the same sample indices within each seed, so
    the pairing by starting noise holds across arms and step counts. Returns the interval and the
    two-sided bootstrap p-value of "no difference"."""
    cfg = result.config
    variant = cfg.arm_labels[0]
    frechet = FrechetToReference(result.reference_moments)
    baselines = [b for b in cfg.baselines if (sampler, b, k_low) in result.configurations()]
    feats = {
        (b, k, v): np.concatenate([result.arm(sampler, b, k, v, s).features for s in cfg.seeds])
        for b in baselines
        for k in (k_low, k_high)
        for v in ("baseline", variant)
    }
    sizes = [
        result.arm(sampler, baselines[0], k_low, "baseline", s).features.shape[0] for s in cfg.seeds
    ]

    def contrast(idx: np.ndarray | slice) -> float:
        gains = {}
        for k in (k_low, k_high):
            rel = []
            for b in baselines:
                base = frechet(feats[(b, k, "baseline")][idx])
                rel.append(-(frechet(feats[(b, k, variant)][idx]) - base) / base)
            gains[k] = float(np.mean(rel))
        return gains[k_low] - gains[k_high]

    estimate = contrast(slice(None))
    boot = paired_bootstrap(contrast, sizes, n_boot, np.random.default_rng(seed))
    # a resample's Frechet distance is biased upwards (repeated rows): recentred percentiles
    return percentile_interval(boot, estimate, recentre=True), bootstrap_pvalue(estimate, boot)


def run(params: Params, *, progress: bool = False) -> Result:
    """Run the chapter's two comparisons and judge them."""
    comps = {name: run_comparison(cfg, progress=progress) for name, cfg in params.configs().items()}
    rows: list[dict] = []
    for name, res in comps.items():
        rows += judged_rows(name, res, params.n_boot)
    main = comps["main"]
    ks = sorted({k for s, _, k in main.configurations() if s == "ddim"})
    if "ddim" in params.samplers and len(ks) >= 2:
        few, p = gain_difference(main, "ddim", ks[0], ks[-1], n_boot=params.n_boot)
    else:
        few, p = Interval(math.nan, math.nan, math.nan, 0.95, "bootstrap"), math.nan
    return Result(
        params=params,
        comparisons=comps,
        table=pd.DataFrame(rows),
        few_steps=few,
        few_steps_p=p,
        few_steps_k=(ks[0], ks[-1]) if ks else (0, 0),
    )


# ===================================================================== rendering
def _label(result: Result, testbed: str) -> str:
    p = result.params
    if testbed == "main":
        return p.model if p.model in known_testbeds() else "your checkpoint"
    return p.mixture_testbed


def figure_values(result: Result, testbed: str = "main", metric: str | None = None) -> Any:
    """The metric of the baseline (circles, solid) and of VRG (squares, dashed) against K, one
    panel per sampler, one colour per baseline."""
    metric = metric or result.comparisons[testbed].set_metric
    rows = result.rows(testbed, metric)
    long = pd.concat(
        [
            rows.assign(arm="baseline", value=rows["baseline value"]),
            rows.assign(arm="VRG", value=rows["VRG value"]),
        ]
    )
    long["sampler"] = long.sampler.map(lambda s: FAMILY.get(s, s))
    grid = interval_grid(
        long[long.arm == "baseline"],
        x="K",
        y="value",
        col="sampler",
        hue="baseline",
        xlabel="K (levels)",
        ylabel=f"{METRIC_NAMES[metric]}",
        log_y=True,
    )
    for ax, (_, sub) in zip(
        grid.axes.flat, long[long.arm == "VRG"].groupby("sampler", sort=False), strict=False
    ):
        draw_intervals(
            ax,
            sub,
            x="K",
            y="value",
            low=None,
            high=None,
            hue="baseline",
            marker="s",
            linestyle="--",
        )
    grid.figure.suptitle("solid: baseline, dashed: VRG", y=1.02, fontsize=9)
    return grid


def figure_differences(result: Result, testbed: str = "main", metric: str | None = None) -> Any:
    """VRG − baseline with its 95% paired bootstrap interval against K, one panel per sampler,
    one colour per baseline (below zero is better for a lower-is-better metric)."""
    metric = metric or result.comparisons[testbed].set_metric
    return difference_grid(result.rows(testbed, metric), metric)


def figure_exact(result: Result) -> Any:
    """On the exact mixture: VRG's relative change (%) of each exact metric, with its interval,
    one row per sampler and one column per metric, one colour per baseline."""
    t = result.table[result.table.testbed == "exact"].copy()
    scale = 100.0 / t["baseline value"].abs()
    t["change %"] = t["difference"] * scale
    t["lo %"] = t["ci_low"] * scale
    t["hi %"] = t["ci_high"] * scale
    t["sampler"] = t.sampler.map(lambda s: FAMILY.get(s, s))
    t = t[t.metric.isin(list(SHORT_METRIC_NAMES))]
    t["metric"] = t.metric.map(SHORT_METRIC_NAMES)
    return interval_grid(
        t,
        x="K",
        y="change %",
        low="lo %",
        high="hi %",
        col="metric",
        row="sampler",
        hue="baseline",
        xlabel="K (levels)",
        ylabel="VRG − baseline (%)",
        zero_line=True,
        log_x=True,
    )


def table(result: Result, testbed: str = "main", metric: str | None = None) -> Any:
    """The judged comparisons of one testbed and metric, verdicts as badges."""
    metric = metric or result.comparisons[testbed].set_metric
    caption = f"{_label(result, testbed)}: {METRIC_NAMES[metric]}, VRG against the baseline"
    return judged_table(result.rows(testbed, metric), caption)


def _counts(result: Result) -> pd.DataFrame:
    return (
        result.table.groupby(["testbed", "metric"], sort=False)["verdict"]
        .value_counts()
        .unstack(fill_value=0)
        .reindex(columns=list(VERDICT_ORDER), fill_value=0)
    )


def counts_table(result: Result) -> Any:
    """Verdict counts per testbed and metric."""
    c = _counts(result)
    c.index = [f"{_label(result, tb)}: {METRIC_NAMES[m]}" for tb, m in c.index]
    c["comparisons"] = c.sum(axis=1)
    return c.style.background_gradient(subset=["supported"], cmap="Greens").background_gradient(
        subset=["contradicted"], cmap="Reds"
    )


# ===================================================================== the prose's numbers
@dataclass(frozen=True)
class Summary:
    """Every number the chapter's prose cites (glued by field name)."""

    model_label: str
    set_metric_name: str
    n_seeds: int
    n_samples: int
    mixture_samples: int
    gamma: float
    reg_lambda: float
    reference_steps: int
    total_calls: int
    n_configs: int
    main_best: str
    main_best_rel: float
    main_best_lo: float
    main_best_hi: float
    main_worst: str
    main_worst_rel: float
    main_worst_lo: float
    main_worst_hi: float
    ddim_supported: int
    ddim_contradicted: int
    ddim_n: int
    cpe_down_pct: float
    metric_down_given_cpe_down_pct: float
    exact_median_rel: float
    all_supported: int
    all_inconclusive: int
    all_contradicted: int
    all_n: int
    few_verdict: str
    few_estimate: float
    few_lo: float
    few_hi: float
    k_lo: int
    k_hi: int
    counts: dict[str, int] = field(default_factory=dict)


def _where(row: pd.Series) -> str:
    return f"{FAMILY.get(row.sampler, row.sampler)}, {row.baseline}, K = {row.K}"


def few_steps_verdict(result: Result) -> str:
    """The book's rule on "VRG's relative gain is larger at the fewest steps than at the most"."""
    iv = result.few_steps
    return decide(
        iv.estimate, result.few_steps_p, claim="better", better_sign=+1, interval=(iv.low, iv.high)
    ).verdict


def summary(result: Result) -> Summary:
    p = result.params
    main = result.comparisons["main"]
    d = result.rows("main", main.set_metric)
    best, worst = d.loc[d.relative.idxmin()], d.loc[d.relative.idxmax()]
    ddim = d[d.sampler == "ddim"]
    cpe_down = d[d["CPE VRG"] < d["CPE baseline"]]
    counts: dict[str, int] = {}
    c = _counts(result)
    for tb in result.testbeds:
        for m in result.metrics(tb):
            key = "set" if m == result.comparisons[tb].set_metric else m
            for v in VERDICT_ORDER:
                counts[f"{tb}_{key}_{v}"] = int(c.loc[(tb, m), v]) if (tb, m) in c.index else 0
            counts[f"{tb}_{key}_n"] = int(len(result.rows(tb, m)))
    quality = result.table[result.table.metric.isin(QUALITY_METRICS)]
    ex = result.rows("exact", "exact_error")
    iv = result.few_steps
    return Summary(
        model_label=_label(result, "main"),
        set_metric_name=METRIC_NAMES[main.set_metric],
        n_seeds=len(p.seeds),
        n_samples=p.n_samples,
        mixture_samples=p.mixture_samples,
        gamma=p.gamma,
        reg_lambda=p.reg_lambda,
        reference_steps=p.reference_steps,
        total_calls=result.model_calls,
        n_configs=int(len(result.table)),
        main_best=_where(best),
        main_best_rel=float(100 * best.relative),
        main_best_lo=float(best.ci_low),
        main_best_hi=float(best.ci_high),
        main_worst=_where(worst),
        main_worst_rel=float(100 * worst.relative),
        main_worst_lo=float(worst.ci_low),
        main_worst_hi=float(worst.ci_high),
        ddim_supported=int((ddim.verdict == "supported").sum()),
        ddim_contradicted=int((ddim.verdict == "contradicted").sum()),
        ddim_n=int(len(ddim)),
        cpe_down_pct=100.0 * len(cpe_down) / len(d),
        metric_down_given_cpe_down_pct=(
            100.0 * float((cpe_down.difference < 0).mean()) if len(cpe_down) else math.nan
        ),
        exact_median_rel=100 * float(ex.relative.median()) if len(ex) else math.nan,
        all_supported=int((quality.verdict == "supported").sum()),
        all_inconclusive=int((quality.verdict == "inconclusive").sum()),
        all_contradicted=int((quality.verdict == "contradicted").sum()),
        all_n=int(len(quality)),
        few_verdict=few_steps_verdict(result),
        few_estimate=100 * iv.estimate,
        few_lo=100 * iv.low,
        few_hi=100 * iv.high,
        k_lo=result.few_steps_k[0],
        k_hi=result.few_steps_k[1],
        counts=counts,
    )


def _scope(result: Result, testbed: str, rows: pd.DataFrame) -> tuple[str, str]:
    """A finding's ``model`` and ``size``: the testbed of one of the chapter's comparisons
    (``"main"`` or ``"exact"``; :meth:`Params.configs`), its samples and seeds, and the samplers,
    baselines and K of the judged ``rows`` the finding sums up."""
    p = result.params
    cfg = p.configs()[testbed]
    note = {"main": "", "exact": "errors against the exact ODE"}[testbed]
    samplers = list(dict.fromkeys(rows.sampler))
    size = size_text(
        p,
        CHAPTER,
        samples=cfg.n_samples,
        seeds=cfg.seeds,
        steps=rows.K,
        detail=f"{'/'.join(samplers)} × {rows.baseline.nunique()} baseline(s)",
    )
    return describe_testbed(cfg.testbed, cfg.data, note=note), size


def findings(result: Result) -> list[Finding]:
    """The chapter's findings for the claims page."""
    p = result.params
    seeds = ", ".join(str(s) for s in p.seeds)
    k_head = 10 if 10 in p.steps else p.steps[0]

    def finding(
        claim: str,
        testbed: str,
        metric: str,
        samplers: list[str],
        text: str,
        k: int,
        baseline_name: str,
    ) -> Finding | None:
        sub = result.rows(testbed, metric)
        sub = sub[sub.sampler.isin(samplers)]
        if sub.empty:
            return None
        pick = sub
        if (pick.K == k).any():
            pick = pick[pick.K == k]
        if (pick.baseline == baseline_name).any():
            pick = pick[pick.baseline == baseline_name]
        row = pick.iloc[0]
        model, size = _scope(result, testbed, sub)
        n = verdict_counts(sub)
        return Finding(
            claim=claim,
            chapter=CHAPTER,
            finding=(
                f"{text}: VRG better in {n['supported']}, no clear difference in "
                f"{n['inconclusive']}, worse in {n['contradicted']} of {len(sub)} "
                f"({METRIC_NAMES[metric]}, Holm); at {row.sampler} {row.baseline} K={row.K}: "
                f"{row['baseline value']:.4g} -> {row['VRG value']:.4g}"
            ),
            value=float(row.difference),
            ci_low=float(row.ci_low),
            ci_high=float(row.ci_high),
            verdict=aggregate(sub.verdict),
            seeds=seeds,
            model=model,
            size=size,
        )

    label = _label(result, "main")
    main_metric = result.comparisons["main"].set_metric
    out = [
        finding(
            "ddim-fid", "main", main_metric, ["ddim"], f"{label}, DDIM", k_head, "logsnr_uniform"
        ),
        finding(
            "ddim-fid",
            "exact",
            "exact_error",
            ["ddim"],
            f"{p.mixture_testbed} MLP, DDIM",
            k_head,
            "logsnr_uniform",
        ),
        finding(
            "other-samplers-fid",
            "main",
            main_metric,
            [s for s in p.samplers if s != "ddim"],
            f"{label}, DPM-Solver/PNDM/DEIS",
            min(p.steps),
            "logsnr_uniform",
        ),
    ]
    iv = result.few_steps
    if math.isfinite(iv.estimate):
        k_lo, k_hi = result.few_steps_k
        ddim = result.rows("main", main_metric)
        model, size = _scope(
            result, "main", ddim[(ddim.sampler == "ddim") & ddim.K.isin([k_lo, k_hi])]
        )
        out.append(
            Finding(
                claim="few-steps",
                chapter=CHAPTER,
                finding=(
                    f"{label}, DDIM: relative {METRIC_NAMES[main_metric]} gain at K={k_lo} minus "
                    f"at K={k_hi}, mean over baselines (positive: the gain is larger at few "
                    "steps); paired bootstrap over seeds and samples"
                ),
                value=100 * iv.estimate,
                ci_low=100 * iv.low,
                ci_high=100 * iv.high,
                verdict=few_steps_verdict(result),
                seeds=seeds,
                model=model,
                size=size,
            )
        )
    return [f for f in out if f is not None]
