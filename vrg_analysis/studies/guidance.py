"""Study: VRG on a class-conditional model sampled with classifier-free guidance.

The paper shows VRG on Stable Diffusion, a conditional model sampled with classifier-free
guidance. The stand-in here is the project's class-conditional UNet (label dropout in training),
guided at one or more scales ``w``: the guided predictor ``eps_u + w (eps_c - eps_u)``
(:mod:`vrg_analysis.models.guidance`; two model calls a step) is what samples, so Algorithm 1
profiles *it*, each training image with its own label, and VRG re-times the trajectory for that
profile. Each scale is one paired comparison of the engine (:mod:`vrg_analysis.studies.engine`):
the same guided model, labels (cycling through the classes, the same in every arm), starting
noise and number of model calls in both arms, several seeds, paired bootstrap intervals and the
book's verdict rule with Holm's correction over each scale-and-metric table
(:mod:`vrg_analysis.studies.comparison_tables`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from vrg_analysis.core.trajectories import BASELINES
from vrg_analysis.evaluation.stats import aggregate
from vrg_analysis.models.pipeline import is_pipeline_folder
from vrg_analysis.params import as_float, as_int, as_tuple, check_seeds
from vrg_analysis.samplers import SAMPLERS
from vrg_analysis.studies.claims import Finding, describe_testbed, size_text
from vrg_analysis.studies.comparison_tables import (
    FAMILY,
    METRIC_NAMES,
    comparison_metrics,
    difference_grid,
    judged_rows,
    judged_table,
    verdict_counts,
)
from vrg_analysis.studies.engine import ComparisonConfig, ComparisonResult, run_comparison
from vrg_analysis.testbeds import check_model
from vrg_analysis.vrg.retime import VRGSetting

__all__ = [
    "CONDITIONAL_TESTBEDS",
    "Params",
    "Result",
    "Summary",
    "run",
    "scale_role",
    "figure_differences",
    "table",
    "counts_table",
    "summary",
    "findings",
]

CHAPTER = "guidance"
#: The class-conditional testbeds (trained with label dropout, so the unconditional prediction
#: that guidance needs exists): the 8x8 digits UNet (the CI model) and the 28x28 Fashion-MNIST one.
CONDITIONAL_TESTBEDS: tuple[str, ...] = ("digits-cond", "fashion-cond")


def scale_role(w: float) -> str:
    """The comparison name of guidance scale ``w``: ``"w = 1.5"``."""
    return f"w = {w:g}"


@dataclass(frozen=True)
class Params:
    """The chapter's parameters (the notebook's ``parameters`` cell; CI-sized defaults).

    ``model``: a class-conditional testbed (:data:`CONDITIONAL_TESTBEDS`) or a text-conditional
    pipeline folder (Stable Diffusion layout) with ``data``, its captioned images or latents
    (:mod:`vrg_analysis.testbeds.pipeline`: the captions are the labels).
    ``guidance_scales``: one comparison per scale (``w = 1``: the conditional model unguided).
    ``n_samples``: guided samples per seed and arm. ``reference_steps``: the fine guided DDIM
    solve the endpoint deviation is measured against."""

    model: str = "digits-cond"
    data: str = ""
    guidance_scales: tuple[float, ...] = (2.0,)
    samplers: tuple[str, ...] = ("ddim",)
    baselines: tuple[str, ...] = ("logsnr_uniform", "time_uniform")
    steps: tuple[int, ...] = (5, 10)
    seeds: tuple[int, ...] = (0, 1, 2)
    profile_samples: int = 256
    n_samples: int = 64
    reference_steps: int = 50
    gamma: float = 0.01
    reg_lambda: float = 100.0
    n_boot: int = 200
    device: str = "cpu"

    def __post_init__(self) -> None:
        s = object.__setattr__
        pipeline = isinstance(self.model, str) and is_pipeline_folder(self.model)
        if self.model not in CONDITIONAL_TESTBEDS and not pipeline:
            raise ValueError(
                f"parameter model: guidance needs a class-conditional testbed "
                f"({', '.join(CONDITIONAL_TESTBEDS)}) or a text-conditional pipeline folder, "
                f"got {self.model!r}"
            )
        check_model(self.model, self.data if pipeline else None, self.device)
        s(self, "samplers", as_tuple(self.samplers, "samplers", str, choices=SAMPLERS))
        s(self, "baselines", as_tuple(self.baselines, "baselines", str, choices=BASELINES))
        s(self, "steps", tuple(sorted(set(as_tuple(self.steps, "steps", int)))))
        if min(self.steps) < 1:
            raise ValueError("parameter steps must be positive integers")
        s(self, "seeds", check_seeds(self.seeds, min_len=3))
        for name, least in (
            ("profile_samples", 2),
            ("n_samples", 2),
            ("reference_steps", 2),
            ("n_boot", 20),
        ):
            s(self, name, as_int(getattr(self, name), name, minimum=least))
        scales = as_tuple(self.guidance_scales, "guidance_scales", float)
        scales = tuple(as_float(w, "guidance_scales", minimum=0.0) for w in scales)
        if not scales or len(set(scales)) != len(scales):
            raise ValueError(
                f"parameter guidance_scales: one or more distinct scales, got {list(scales)!r}"
            )
        s(self, "guidance_scales", scales)
        s(self, "gamma", as_float(self.gamma, "gamma", minimum=0.0, maximum=1.0, open_high=True))
        s(self, "reg_lambda", as_float(self.reg_lambda, "reg_lambda", minimum=0.0))

    @property
    def vrg(self) -> VRGSetting:
        return VRGSetting(self.gamma, self.reg_lambda)

    def configs(self) -> dict[str, ComparisonConfig]:
        """One comparison per guidance scale (:func:`scale_role`), in the order given."""
        return {
            scale_role(w): ComparisonConfig(
                testbed=self.model,
                data=self.data or None,
                guidance_scale=w,
                samplers=self.samplers,
                baselines=self.baselines,
                steps=self.steps,
                seeds=self.seeds,
                n_samples=self.n_samples,
                arms=(self.vrg,),
                reference_steps=self.reference_steps,
                profile_samples=self.profile_samples,
                device=self.device,
            )
            for w in self.guidance_scales
        }


@dataclass(frozen=True, eq=False)
class Result:
    """The chapter's comparisons (one per guidance scale) and their judged table (one row per
    scale, metric, sampler, baseline and K; Holm over each scale-and-metric table)."""

    params: Params
    comparisons: dict[str, ComparisonResult]
    table: pd.DataFrame = field(repr=False)

    @property
    def scales(self) -> list[str]:
        """The comparisons' names, one per guidance scale."""
        return list(self.comparisons)

    @property
    def set_metric(self) -> str:
        return self.comparisons[self.scales[0]].set_metric

    def rows(self, scale: str, metric: str | None = None) -> pd.DataFrame:
        t = self.table
        return t[(t.testbed == scale) & (t.metric == (metric or self.set_metric))]

    @property
    def model_calls(self) -> int:
        return sum(r.model_calls for r in self.comparisons.values())


def run(params: Params, *, progress: bool = False) -> Result:
    """Run one paired comparison per guidance scale and judge each."""
    comps = {name: run_comparison(cfg, progress=progress) for name, cfg in params.configs().items()}
    rows: list[dict] = []
    for name, res in comps.items():
        rows += judged_rows(name, res, params.n_boot)
    return Result(params=params, comparisons=comps, table=pd.DataFrame(rows))


# ===================================================================== rendering
def figure_differences(result: Result, metric: str | None = None) -> Any:
    """VRG − baseline with its 95% paired bootstrap interval against K, one row per guidance
    scale and one panel per sampler, one colour per baseline."""
    metric = metric or result.set_metric
    frames = [result.rows(tb, metric).assign(guidance=tb) for tb in result.scales]
    return difference_grid(
        pd.concat(frames, ignore_index=True),
        metric,
        row="guidance",
        titles="{row_name}, {col_name}",
    )


def table(result: Result, metric: str | None = None) -> Any:
    """Every scale's judged comparisons on one metric, verdicts as badges."""
    metric = metric or result.set_metric
    sub = result.table[result.table.metric == metric].copy()
    sub["guidance"] = sub.testbed
    sub["sampler"] = sub.sampler.map(lambda s: FAMILY.get(s, s))
    caption = (
        f"{result.params.model} with classifier-free guidance: {METRIC_NAMES[metric]}, VRG "
        "against the baseline"
    )
    return judged_table(sub, caption, lead=("guidance",))


def counts_table(result: Result) -> pd.DataFrame:
    """Verdict counts per guidance scale and metric."""
    out = {}
    for tb in result.scales:
        for m in comparison_metrics(result.comparisons[tb]):
            rows = result.rows(tb, m)
            out[f"{tb}: {METRIC_NAMES[m]}"] = {**verdict_counts(rows), "comparisons": len(rows)}
    return pd.DataFrame.from_dict(out, orient="index")


# ===================================================================== the prose's numbers
@dataclass(frozen=True)
class Summary:
    """Every number the chapter's prose cites (glued by field name)."""

    model_name: str
    set_metric_name: str
    guidance_scales: str
    n_seeds: int
    n_samples: int
    gamma: float
    reg_lambda: float
    reference_steps: int
    total_calls: int
    set_text: str
    image_mse_text: str
    set_supported: int
    set_inconclusive: int
    set_contradicted: int
    set_n: int
    best: str
    best_rel: float
    best_lo: float
    best_hi: float
    worst: str
    worst_rel: float
    worst_lo: float
    worst_hi: float
    cpe_down_pct: float


def _per_scale_text(result: Result, metric: str) -> str:
    """One clause per guidance scale: how often VRG was better, inconclusive and worse."""
    parts = []
    for tb in result.scales:
        rows = result.rows(tb, metric)
        n = verdict_counts(rows)
        parts.append(
            f"at {tb} VRG is better in {n['supported']}, inconclusive in {n['inconclusive']} "
            f"and worse in {n['contradicted']} of {len(rows)}"
        )
    return "; ".join(parts)


def _where(row: pd.Series) -> str:
    return f"{row.testbed}, {FAMILY.get(row.sampler, row.sampler)}, {row.baseline}, K = {row.K}"


def summary(result: Result) -> Summary:
    p = result.params
    d = result.table[result.table.metric == result.set_metric]
    best, worst = d.loc[d.relative.idxmin()], d.loc[d.relative.idxmax()]
    n = verdict_counts(d)
    has_mse = "image_mse" in set(result.table.metric)
    return Summary(
        model_name=p.model,
        set_metric_name=METRIC_NAMES[result.set_metric],
        guidance_scales=" and ".join(f"{w:g}" for w in p.guidance_scales),
        n_seeds=len(p.seeds),
        n_samples=p.n_samples,
        gamma=p.gamma,
        reg_lambda=p.reg_lambda,
        reference_steps=p.reference_steps,
        total_calls=result.model_calls,
        set_text=_per_scale_text(result, result.set_metric),
        image_mse_text=_per_scale_text(result, "image_mse") if has_mse else "not measured",
        set_supported=n["supported"],
        set_inconclusive=n["inconclusive"],
        set_contradicted=n["contradicted"],
        set_n=int(len(d)),
        best=_where(best),
        best_rel=float(100 * best.relative),
        best_lo=float(best.ci_low),
        best_hi=float(best.ci_high),
        worst=_where(worst),
        worst_rel=float(100 * worst.relative),
        worst_lo=float(worst.ci_low),
        worst_hi=float(worst.ci_high),
        cpe_down_pct=100.0 * float((d["CPE VRG"] < d["CPE baseline"]).mean()),
    )


def findings(result: Result) -> list[Finding]:
    """The chapter's findings for the claims page: one "guidance" finding per scale, judged over
    every sampler, baseline and K at that scale (the headline value: DDIM on the logSNR-uniform
    baseline at K = 10, or at the smallest K run when 10 was not)."""
    p = result.params
    seeds = ", ".join(str(s) for s in p.seeds)
    k_head = 10 if 10 in p.steps else p.steps[0]
    out = []
    for tb, w in zip(result.scales, p.guidance_scales, strict=True):
        sub = result.rows(tb)
        pick = sub
        for column, value in (("K", k_head), ("baseline", "logsnr_uniform"), ("sampler", "ddim")):
            if (pick[column] == value).any():
                pick = pick[pick[column] == value]
        row = pick.iloc[0]
        n = verdict_counts(sub)
        samplers = list(dict.fromkeys(sub.sampler))
        out.append(
            Finding(
                claim="guidance",
                chapter=CHAPTER,
                finding=(
                    f"guided {p.model} (w = {w:g}): VRG better in {n['supported']}, no clear "
                    f"difference in {n['inconclusive']}, worse in {n['contradicted']} of "
                    f"{len(sub)} ({METRIC_NAMES[result.set_metric]}, Holm); at {row.sampler} "
                    f"{row.baseline} K={row.K}: {row['baseline value']:.4g} -> "
                    f"{row['VRG value']:.4g}"
                ),
                value=float(row.difference),
                ci_low=float(row.ci_low),
                ci_high=float(row.ci_high),
                verdict=aggregate(sub.verdict),
                seeds=seeds,
                model=describe_testbed(p.model, note=f"classifier-free guidance, w = {w:g}"),
                size=size_text(
                    p,
                    CHAPTER,
                    samples=p.n_samples,
                    seeds=p.seeds,
                    steps=sub.K,
                    detail=f"{'/'.join(samplers)} × {sub.baseline.nunique()} baseline(s)",
                ),
            )
        )
    return out
