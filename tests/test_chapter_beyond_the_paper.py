"""The beyond-the-paper chapter on tiny parameters: its arms report their budgets through the
engine, every method is judged against VRG as published in one Holm family, and the estimators
behave on cases with a known answer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vrg_analysis.core.schedules import NoiseSchedule, alpha_bar_from_lambda
from vrg_analysis.core.trajectories import Trajectory, baseline
from vrg_analysis.studies import beyond_the_paper as chapter
from vrg_analysis.studies.engine import ArmResult, ComparisonConfig, ComparisonResult

TINY = dict(
    steps=[3, 5],
    seeds=[0, 1],
    n_train=64,
    profile_stride=50,
    n_probe=8,
    n_validation=8,
    n_test=32,
    gammas=[0.0, 0.01, 0.1],
    reference_steps=20,
    grid_size=80,
    polish_iterations=2,
)
VERDICTS = {"supported", "inconclusive", "contradicted"}


@pytest.fixture(scope="module")
def result() -> chapter.Result:
    torch.set_num_threads(1)
    return chapter.run(chapter.Params(**TINY))


def test_budgets_are_reported_by_the_arms(result: chapter.Result) -> None:
    p = result.params
    for b in p.baselines:
        for k in p.steps:
            disc = result.info("disc", b, k)
            # n_probe paths of K calls plus one per measured step (at most K)
            assert p.n_probe * k < disc["model_calls"] <= 2 * p.n_probe * k
            auto, orc = result.info("auto_gamma", b, k), result.info("oracle_gamma", b, k)
            cands = len(p.gamma_grid) * k * p.n_validation
            assert auto["model_calls"] == p.n_validation * p.reference_steps + cands
            assert orc["model_calls"] == cands  # the exact references cost no model call
            assert auto["chosen_gamma"] in p.gamma_grid
            assert result.info("vrg", b, k).get("model_calls", 0) == 0
    s = result.summary_table
    assert (s[s.method.isin(["baseline", "vrg"])].calls == 0).all()


def test_one_holm_family_against_vrg(result: chapter.Result) -> None:
    j = result.judged
    p = result.params
    assert len(j) == len(p.baselines) * len(p.steps) * len(chapter.JUDGED) * 2
    assert set(j.verdict) <= VERDICTS
    assert (j[j.verdict != "inconclusive"]["p (Holm)"] < 0.05).all()
    assert (j["p (Holm)"] >= j.p - 1e-15).all()
    # a method whose trajectory is VRG's own gives no difference at all
    for _, r in j.iterrows():
        same = np.array_equal(
            result.trajectory(r.method, r.baseline, r.K).alpha_bar
            if r.method != "baseline"
            else baseline(r.baseline, NoiseSchedule.linear(), r.K).alpha_bar,
            result.trajectory("vrg", r.baseline, r.K).alpha_bar,
        )
        if same:
            assert r.difference == 0.0 and r.verdict == "inconclusive"


def test_tallies_add_up(result: chapter.Result) -> None:
    s = chapter.summary(result)
    n = len(result.params.baselines) * len(result.params.steps)
    assert s.n_rows == n
    for m in chapter.JUDGED:
        t = s.tallies
        assert t[f"n_supported_{m}"] + t[f"n_inconclusive_{m}"] + t[f"n_contradicted_{m}"] == n
        assert t[f"q_supported_{m}"] + t[f"q_inconclusive_{m}"] + t[f"q_contradicted_{m}"] == n
    assert 0.0 <= s.agree_pct <= 100.0
    assert s.findings_text.count("\n* ") == 3 and s.degeneracy_text
    assert s.calls_a.count("(K=") == len(result.params.steps)


def test_the_local_error_check(result: chapter.Result) -> None:
    c = result.check
    assert c.k == result.params.k_mid
    assert set(c.trajectories) == set(result.params.baselines)
    # Richardson on eps*: within a factor 3 of the truth on the median step
    assert math.exp(np.median(c.self_factors)) < 3.0
    assert all(v > 0 for v in c.d_ratio.values())
    assert c.psi_min_inv > 1e3  # psi at the linear schedule's start is ~ 1 / (1 + sigma^2)


def test_degeneracy_rule() -> None:
    sched = NoiseSchedule.linear()
    base = baseline("time_uniform", sched, 10)
    assert not chapter.is_degenerate(base, base)
    # the same K levels, the least noisy one 20 times as noisy as the baseline's: degenerate
    lam = np.linspace(base.lambda_[0], base.lambda_[-1] - math.log(20.0), base.K)
    crowded = Trajectory(alpha_bar_from_lambda(lam))
    assert crowded.sigma[-1] == pytest.approx(20 * base.sigma[-1])
    assert chapter.is_degenerate(crowded, base)


def _arm(variant: str, seed: int, ll: np.ndarray) -> ArmResult:
    return ArmResult(
        sampler="ddim",
        baseline="time_uniform",
        K=3,
        variant=variant,
        seed=seed,
        nfe=3,
        cpe=1.0,
        alpha_bar=np.array([0.1, 0.5, 0.9]),
        set_value=0.0,
        features=np.zeros((ll.size, 2)),
        per_sample={"log_likelihood": ll},
    )


def test_abs_gap_has_the_known_answer() -> None:
    rng = np.random.default_rng(0)
    ref = -1.0
    arms = []
    for s in (0, 1):
        noise = rng.normal(0, 0.01, 50)
        arms += [_arm("a", s, -3.0 + noise), _arm("b", s, -1.5 + noise)]  # gaps -2 and -0.5
    res = ComparisonResult(
        config=ComparisonConfig(testbed="mixture-2d", seeds=(0, 1), samplers=("ddim",)),
        set_metric="frechet",
        arms=tuple(arms),
        profile=None,  # type: ignore[arg-type]
        reference_moments=(np.zeros(2), np.eye(2)),
        model_calls=0,
    )
    est, lo, hi, p = chapter.abs_gap_comparison(res, "time_uniform", 3, "b", "a", ref, n_boot=200)
    assert est == pytest.approx(0.5 - 2.0, abs=1e-12)
    assert lo <= est <= hi and p < 1e-6
    same = chapter.abs_gap_comparison(res, "time_uniform", 3, "a", "a", ref, n_boot=50)
    assert same[0] == 0.0 and same[3] == 1.0


def test_figures_and_tables_render(result: chapter.Result) -> None:
    for fig in (
        chapter.figure_local_error(result),
        chapter.figure_trajectories(result),
        chapter.figure_endpoint(result),
        chapter.figure_gamma(result),
    ):
        cols = max(ax.get_subplotspec().colspan.stop for ax in fig.axes)
        assert cols <= 3
    html = chapter.table_comparison(result).to_html()
    assert "|gap| verdict" in html and "background-color" in html
    assert "chosen gamma" in chapter.table_selection(result).to_html()
    assert "J-prop" in chapter.table_trajectories(result).to_html()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"steps": "5, 10"}, "must be a list"),
        ({"steps": [1, 5]}, ">= 2"),
        ({"seeds": [0]}, "at least 2"),
        ({"baselines": ["euler"]}, "unknown value 'euler'"),
        ({"gammas": [0.0, 1.0]}, r"\[0, 1\)"),
        ({"grid_size": 10}, "grid_size must be >= 21"),
        ({"ode_tolerance": 0.0}, "ode_tolerance must be >"),
    ],
)
def test_bad_parameters_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chapter.Params(**kw)


def test_gamma_grid_always_holds_the_baseline_and_the_published_value() -> None:
    p = chapter.Params(gammas=[0.3, 0.1], gamma_published=0.02)
    assert p.gamma_grid == (0.0, 0.02, 0.1, 0.3)
    assert p.k_mid == 10


def test_the_full_parameter_file_is_valid() -> None:
    path = Path(__file__).resolve().parents[1] / "notebooks/params/full/beyond_the_paper.yaml"
    p = chapter.Params(**yaml.safe_load(path.read_text()))
    assert max(p.gamma_grid) == 0.4 and len(p.seeds) == 10
