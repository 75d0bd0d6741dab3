"""The quality-against-steps chapter on tiny parameters: it runs, judges by the one rule, and its
summary and findings are what the prose and the claims page read."""

from __future__ import annotations

import math

import pytest
import torch

from vrg_analysis.studies import quality_vs_steps as chapter

TINY = dict(
    samplers=["ddim", "dpm_solver_2"],
    baselines=["time_uniform", "logsnr_uniform"],
    steps=[3, 5],
    seeds=[0, 1, 2],
    profile_samples=32,
    n_samples=16,
    reference_steps=6,
    mixture_steps=[3, 5],
    mixture_samples=24,
    n_boot=20,
)


@pytest.fixture(scope="module")
def result() -> chapter.Result:
    torch.set_num_threads(1)
    return chapter.run(chapter.Params(**TINY))


def test_every_comparison_is_judged_once(result: chapter.Result) -> None:
    t = result.table
    assert result.testbeds == ["main", "exact"]  # the guided model has its own chapter
    assert set(t.testbed) == set(result.testbeds)
    assert all(r.config.guidance_scale is None for r in result.comparisons.values())
    assert set(t.verdict) <= {"supported", "inconclusive", "contradicted"}
    # main: 2 samplers x 2 baselines x 2 K on FID and image MSE
    assert len(result.rows("main", "fid")) == 8 and len(result.rows("main", "image_mse")) == 8
    assert set(result.metrics("exact")) == {"frechet", "log_likelihood", "exact_error", "image_mse"}
    # Holm within each testbed x metric table: adjusted >= raw, and a verdict needs p_adj < 0.05
    for _, g in t.groupby(["testbed", "metric"]):
        decided = g[g.verdict != "inconclusive"]
        assert (decided["p (Holm)"] < 0.05).all()


def test_summary_and_findings(result: chapter.Result) -> None:
    s = chapter.summary(result)
    assert s.all_n == s.all_supported + s.all_inconclusive + s.all_contradicted
    assert s.counts["main_set_n"] == 8 and s.ddim_n == 4
    assert s.k_lo == 3 and s.k_hi == 5
    assert s.few_lo <= s.few_estimate <= s.few_hi or math.isclose(s.few_lo, s.few_hi)
    fs = chapter.findings(result)
    assert {f.claim for f in fs} == {"ddim-fid", "other-samplers-fid", "few-steps"}
    assert all(f.chapter == "quality_vs_steps" for f in fs)
    # the scope: each finding names the testbed its comparison ran on and that comparison's size
    p = result.params
    by = {(f.claim, f.model.split(" (")[0]): f for f in fs}
    main = [by[("ddim-fid", p.model)], by[("other-samplers-fid", p.model)]]
    main.append(by[("few-steps", p.model)])
    exact = by[("ddim-fid", p.mixture_testbed)]
    assert len(by) == len(fs) == 4
    assert all(f.model.startswith(f"{p.model} (digits-unet: ") for f in main)
    assert all(f.size.startswith(f"{p.n_samples} samples per arm × 3 seeds") for f in main)
    assert "errors against the exact ODE" in exact.model
    assert exact.size.startswith(f"{p.mixture_samples} samples per arm × 3 seeds, K 3–5")
    assert by[("ddim-fid", p.model)].size.split(", ")[2] == "ddim × 2 baseline(s)"
    assert by[("other-samplers-fid", p.model)].size.split(", ")[2] == "dpm_solver_2 × 2 baseline(s)"
    assert all(f.size.endswith("custom parameters") for f in fs)


def test_figures_and_tables_render(result: chapter.Result) -> None:
    for fig in (
        chapter.figure_values(result),
        chapter.figure_differences(result),
        chapter.figure_exact(result),
    ):
        assert len(fig.axes.flat) >= 2
        assert max(ax.get_subplotspec().colspan.stop for ax in fig.axes.flat) <= 3  # wraps
    html = chapter.table(result).to_html()
    assert "verdict" in html and "background-color" in html


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"steps": "5, 10"}, "must be a list"),
        ({"steps": [0, 5]}, "positive"),
        ({"seeds": [0, 1]}, "at least 3"),
        ({"samplers": ["euler"]}, "unknown value 'euler'"),
        ({"n_boot": 5}, "n_boot must be >= 20"),
        ({"gamma": 1.0}, "gamma must be <"),
        ({"model": "cifar10"}, "parameter model: 'cifar10' is neither a testbed"),
        ({"model": "."}, "parameter data: a checkpoint folder needs the data"),
        ({"mixture_testbed": "nope"}, "parameter mixture_testbed"),
        ({"device": "tpu"}, "parameter device"),
    ],
)
def test_bad_parameters_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chapter.Params(**kw)


def test_list_parameters_given_as_text_are_read() -> None:
    assert chapter.Params(steps="[10, 5]").steps == (5, 10)
