"""The sampler chapter on tiny parameters: its estimators on known answers, the one verdict rule
on the order claim, and the rendering the notebook shows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps

from vrg_analysis.core.schedules import NoiseSchedule, lambda_from_alpha_bar
from vrg_analysis.evaluation.stats import VERDICTS
from vrg_analysis.studies import samplers as chapter

TINY = dict(
    n_samples=8,
    convergence_steps=[4, 7, 13],
    table_levels=4,
    nfe_budgets=[6, 12],
    diffusers_steps=[10],
)


@pytest.fixture(scope="module")
def result() -> chapter.Result:
    torch.set_num_threads(1)
    return chapter.run(chapter.Params(**TINY))


# ----------------------------------------------------------------- estimators on known answers
def test_order_fit_recovers_an_exact_power_law() -> None:
    k = np.array([5, 9, 17, 33])
    fit = chapter.order_fit(k, 3.0 * (k - 1.0) ** -2.0, nominal=2)
    assert fit.order.estimate == pytest.approx(2.0, abs=1e-12)
    assert fit.order.half_width == pytest.approx(0.0, abs=1e-9)
    assert fit.n == 4


def test_order_fit_interval_is_the_t_interval_of_the_slope() -> None:
    rng = np.random.default_rng(0)
    k = np.array([5, 9, 17, 33, 65])
    err = (k - 1.0) ** -1.5 * np.exp(rng.normal(0, 0.05, k.size))
    fit = chapter.order_fit(k, err, nominal=1.5)
    ref = sps.linregress(np.log(k - 1.0), np.log(err))
    half = sps.t.ppf(0.975, k.size - 2) * ref.stderr
    assert fit.order.estimate == pytest.approx(-ref.slope)
    assert fit.order.low == pytest.approx(-ref.slope - half)
    assert fit.order.high == pytest.approx(-ref.slope + half)
    t = (-ref.slope - 1.5) / ref.stderr
    assert fit.p_nominal == pytest.approx(2 * sps.t.sf(abs(t), k.size - 2))
    # the interval covers the true order in most of many noisy draws (95% nominal)
    covered = 0
    for _ in range(400):
        e = (k - 1.0) ** -1.5 * np.exp(rng.normal(0, 0.05, k.size))
        covered += chapter.order_fit(k, e, nominal=1.5).order.contains(1.5)
    assert 0.9 < covered / 400 <= 1.0


def test_order_fit_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match=">= 3"):
        chapter.order_fit([5, 9], [0.1, 0.01], nominal=1)
    with pytest.raises(ValueError, match="positive"):
        chapter.order_fit([5, 9, 17], [0.1, 0.0, 0.01], nominal=1)


def test_last_doubling_and_rms_error() -> None:
    assert chapter.last_doubling([5, 9, 17], [1.0, 0.25, 0.0625]) == pytest.approx(2.0)
    x = torch.zeros(4, 2, dtype=torch.float64)
    ref = torch.tensor([[3.0, 4.0]] * 4, dtype=torch.float64)
    assert chapter.rms_error(x, ref) == pytest.approx(5.0)


def test_fixed_grid_ends_and_spacing() -> None:
    sched = NoiseSchedule.linear()
    lam = chapter.fixed_grid(sched, "lambda-uniform", 0.05, 0.9, 5)
    assert lam.alpha_bar[0] == pytest.approx(0.05) and lam.alpha_bar[-1] == pytest.approx(0.9)
    assert np.ptp(np.diff(lambda_from_alpha_bar(lam.alpha_bar))) < 1e-9
    t = chapter.fixed_grid(sched, "time-uniform", 0.05, 0.9, 5)
    assert np.ptp(np.diff(sched.t_from_alpha_bar(t.alpha_bar))) < 1e-6
    with pytest.raises(ValueError, match="unknown grid"):
        chapter.fixed_grid(sched, "karras", 0.05, 0.9, 5)


def test_judge_orders_applies_the_rule_with_holm() -> None:
    k = np.array([5, 9, 17, 33])
    rows = []
    wobble = np.array([1.0, -1.0, 1.0, -1.0])  # residuals of a zig-zag: a wide interval
    for grid in chapter.GRIDS:
        for name, p in (("ddim", 1.0), ("f_pndm", 2.0), ("deis_tab2", 2.0)):
            noise = 0.3 if name == "deis_tab2" else 1e-3
            err = (k - 1.0) ** -p * np.exp(noise * wobble)
            pairs = zip(k, err, strict=True)
            rows += [{"grid": grid, "sampler": name, "K": kk, "error": e} for kk, e in pairs]
    t = chapter.judge_orders(pd.DataFrame(rows))
    assert len(t) == 6 and set(t.verdict) <= set(VERDICTS)
    assert (t["p (Holm)"] >= t["p"] - 1e-15).all()
    by = t.set_index(["sampler", "grid"]).verdict
    assert (by.loc["ddim"] == "supported").all()  # order 1, nominal 1, tight interval
    assert (by.loc["f_pndm"] == "contradicted").all()  # order 2, nominal 4
    assert (by.loc["deis_tab2"] == "inconclusive").all()  # noisy: interval wider than the band


def test_order_groups_and_known_causes() -> None:
    assert chapter.order_groups([1, 2, 3, 1, 2, 1]) == [3, 2, 1]
    row = {"diffusers": "DPMSolverMultistep, 2", "ours": "dpm_solver_pp_2m", "step ratio": 100}
    assert chapter.known_cause(pd.Series(row)) == "multistep"
    row = {"diffusers": "PNDM, PRK + PLMS", "ours": "f_pndm", "step ratio": 33}
    assert chapter.known_cause(pd.Series(row)) == "pndm_half_step"
    row = {"diffusers": "PNDM, PRK + PLMS", "ours": "f_pndm", "step ratio": 50}
    assert chapter.known_cause(pd.Series(row)) == "unexplained"


# ----------------------------------------------------------------- the chapter on tiny parameters
def test_checks_and_counts(result: chapter.Result) -> None:
    assert all(result.nfe_agree.values()) and len(result.nfe_agree) == len(result.registry)
    assert result.seed_same and result.ddpm_diff == 0.0
    n_det = int((result.registry.stochastic == "").sum())
    assert len(result.convergence) == len(chapter.GRIDS) * 3 * n_det
    assert len(result.orders) == len(chapter.GRIDS) * n_det
    # the DDIM twins are DDIM
    c = result.convergence.set_index(["sampler", "grid", "K"]).error
    assert np.allclose(c.loc["dpm_solver_1"], c.loc["ddim"], rtol=1e-9)
    # equal model calls: F-PNDM (K = B - 9) is skipped at a budget of 6
    end = result.endpoint
    assert "f_pndm" not in set(end[end.NFE == 6].sampler)
    assert (end.groupby("sampler").K.max() <= 12).all()
    assert 0 < result.final_step_err < 1 and result.last_level == pytest.approx(0.9999)


def test_summary_partitions_the_samplers(result: chapter.Result) -> None:
    s = chapter.summary(result)
    names = [
        n
        for text in (s.order_supported, s.order_contradicted_names, s.order_inconclusive_names)
        if text != "none"
        for n in text.split(", ")
    ]
    assert sorted(names) == sorted(set(result.orders.sampler))
    assert s.nfe_agree == s.n_samplers == len(result.registry)
    assert s.seed_check == "the same" and s.ddpm_batch_check == "are identical bit for bit"
    assert s.families["deis3_lambda_verdict"] in VERDICTS
    assert "within 0.25 of the nominal 3" in s.families["dpm3_verdict"]
    assert s.floor_ratio_lo <= s.floor_ratio_hi
    if result.diffusers is not None:
        assert len(result.diffusers) == 9  # nine pairs at one number of steps
        # float64 removes the rounding: the DDIM pair agrees to rounding
        ddim = result.diffusers[result.diffusers.ours == "ddim"]
        assert (ddim["max |diff|, float64"] < chapter.ROUNDING).all()
        assert s.xcheck_summary.startswith("Over 9 runs")
    assert math.isfinite(s.mode_std)


def test_figures_and_tables_render(result: chapter.Result) -> None:
    for grid in (chapter.figure_convergence(result), chapter.figure_endpoint(result)):
        assert grid.axes.shape[1] <= 3
        assert all(ax.get_xscale() == "log" for ax in grid.axes.flat)
        assert "RMS error" in grid.axes.flat[0].get_ylabel()
    assert chapter.figure_convergence(result).axes.shape == (2, 3)
    html = chapter.order_table(result).to_html()
    assert "verdict" in html and "background-color" in html
    for table in (chapter.registry_table, chapter.endpoint_table, chapter.diffusers_table):
        assert "<table" in table(result).to_html()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"testbed": "nope"}, "unknown value 'nope'"),
        ({"n_samples": 4}, "n_samples must be >= 8"),
        ({"alpha_bar_start": 0.9, "alpha_bar_end": 0.5}, "must be below"),
        ({"convergence_steps": [10, 19]}, "at least 3"),
        ({"convergence_steps": "10, 19, 37"}, "must be a list"),
        ({"nfe_budgets": [2, 10]}, "nfe_budgets must be >= 4"),
        ({"endpoint_baseline": "uniform"}, "unknown value 'uniform'"),
    ],
)
def test_bad_parameters_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chapter.Params(**kw)


def test_a_testbed_without_an_exact_predictor_is_refused() -> None:
    with pytest.raises(ValueError, match="no exact predictor"):
        chapter.run(chapter.Params(testbed="digits", **TINY))


def test_list_parameters_given_as_text_are_read() -> None:
    assert chapter.Params(convergence_steps="[19, 10, 37]").convergence_steps == (10, 19, 37)
