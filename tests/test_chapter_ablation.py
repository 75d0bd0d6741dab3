"""The ablation chapter on tiny parameters: the control is exact, every setting is judged once
under Holm, the claim follows the rule, and the estimators give known answers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from vrg_analysis.core.trajectories import time_uniform
from vrg_analysis.studies import ablation as chapter
from vrg_analysis.studies.claims import CLAIM_WORDS
from vrg_analysis.testbeds import make_testbed
from vrg_analysis.vrg.objective import ratio_bounds

TINY = dict(
    baselines=["time_uniform", "logsnr_uniform"],
    num_steps=4,
    gammas=[0.0, 0.1, 0.4],
    reg_lambdas=[1e4, 1e5],
    seeds=[0, 1],
    n_samples=16,
    reference_steps=8,
    profile_samples=32,
    n_boot=20,
)


@pytest.fixture(scope="module")
def result() -> chapter.Result:
    torch.set_num_threads(1)
    return chapter.run(chapter.Params(**TINY))


def test_the_control_reproduces_the_baseline(result: chapter.Result) -> None:
    c = result.control
    assert c.passed and c.mismatches == ()
    assert c.n_arms == 2 * 2 * 2  # baselines x lambdas x seeds
    assert c.max_abs_difference == 0.0
    ctrl = result.table[result.table.control]
    assert len(ctrl) == 4 and (ctrl.dset == 0).all() and (ctrl.dmse == 0).all()
    assert set(ctrl.set_verdict) == {"control"}


def test_the_control_check_sees_a_changed_arm(result: chapter.Result) -> None:
    res = result.comparison
    label = result.params.controls[0]
    arms = tuple(
        dataclasses.replace(a, features=a.features + 1e-9)
        if a.variant == label and a.seed == 1 and a.baseline == "logsnr_uniform"
        else a
        for a in res.arms
    )
    check = chapter.check_control(dataclasses.replace(res, arms=arms), [label], n_boot=20)
    assert not check.passed
    assert any("logsnr_uniform" in m and "seed 1" in m and "samples" in m for m in check.mismatches)


def test_every_setting_is_judged_once_with_holm(result: chapter.Result) -> None:
    t = result.table
    p = result.params
    assert len(t) == len(p.baselines) * len(p.settings)
    act = result.tested
    assert set(act.set_verdict) | set(act.mse_verdict) <= {
        "supported",
        "inconclusive",
        "contradicted",
    }
    assert (act.set_p_holm >= act.dset_p - 1e-12).all()
    for key in ("set", "mse"):
        decided = act[act[f"{key}_verdict"] != "inconclusive"]
        assert (decided[f"{key}_p_holm"] < p.alpha).all()
    s = chapter.summary(result)
    assert s.n_tests == 2 * len(act)
    assert sum(v for k, v in s.counts.items() if k.startswith("fid_")) == len(act)
    assert s.n_control_arms == 8 and s.n_settings == len(p.settings)
    assert {"best_gamma_0", "best_verdict_1"} <= set(s.best)


def test_claim_and_finding(result: chapter.Result) -> None:
    c = result.claim
    assert c.largest_gamma == 0.4 and c.interior_gamma == 0.1
    assert c.verdict in {"supported", "contradicted", "mixed", "inconclusive"}
    f, g = chapter.findings(result)
    assert f.claim == "gamma-ablation" and f.chapter == "ablation" and f.verdict == c.verdict
    sp = result.split
    assert sp is not None and sp.gamma == c.interior_gamma
    assert g.claim == "start-level" and g.verdict == sp.verdict
    assert (g.value, g.ci_low, g.ci_high) == sp.start_held[:3]
    assert f.ci_low <= f.value <= f.ci_high
    # the scope: the testbed the parameters name, its samples x seeds, K and parameter set
    p = result.params
    assert f.model.startswith(f"{p.testbed} (digits-unet: ")
    assert f.size.startswith(f"{p.n_samples} samples per arm × {len(p.seeds)} seeds, K=4")
    assert f.size.endswith("custom parameters")
    assert f.verdict_text == f"{CLAIM_WORDS[f.verdict]} on {p.testbed} at custom size"


def _line(rows: list[tuple[float, float, float, str]]) -> pd.DataFrame:
    """A synthetic lambda line: (gamma, difference, Holm p, verdict on "VRG lowers it")."""
    return pd.DataFrame(
        [
            {
                "baseline": "b",
                "reg_lambda": 1.0,
                "control": g == 0.0,
                "keep_start": False,
                "start_only": False,
                "family": "lambda=1",
                "gamma": g,
                "dset": d,
                "set_p_holm": p,
                "set_verdict": v,
            }
            for g, d, p, v in rows
        ]
    )


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # interior improves, the largest is significantly worse: the paper's claim
        ([(0.1, -1.0, 0.01, "supported"), (0.4, 2.0, 0.01, "contradicted")], "supported"),
        # nothing significant
        ([(0.1, -1.0, 0.3, "inconclusive"), (0.4, 2.0, 0.3, "inconclusive")], "inconclusive"),
        # the largest gamma is significantly *better*, the interior not shown: contradicted
        ([(0.1, -0.1, 0.3, "inconclusive"), (0.4, -2.0, 0.01, "supported")], "contradicted"),
        # one part holds
        ([(0.1, -1.0, 0.01, "supported"), (0.4, 0.5, 0.4, "inconclusive")], "mixed"),
    ],
)
def test_judge_claim_follows_the_rule(rows: list, expected: str) -> None:
    table = _line([(0.0, 0.0, math.nan, "control"), *rows])
    assert chapter.judge_claim(table, "b", 1.0).verdict == expected


def test_box_active_counts_ratios_on_the_edge() -> None:
    traj = time_uniform(make_testbed("mixture-2d").schedule, 6)
    r, lo, hi = ratio_bounds(traj, 0.2)
    assert chapter.box_active(traj.alpha_bar, traj.alpha_bar, 0.2) == 0
    new = r.copy()
    new[2], new[4] = hi[2], lo[4]
    a = np.cumprod(new)[::-1]  # back to sampling order
    assert chapter.box_active(traj.alpha_bar, a, 0.2) == 2
    assert chapter.box_active(traj.alpha_bar, a, 0.0) == 0


def test_figures_and_tables_render(result: chapter.Result) -> None:
    for fig in (chapter.figure_ablation(result), chapter.figure_cpe_vs_change(result)):
        spec = fig.axes[0].get_subplotspec().get_gridspec()
        assert spec.ncols <= 3
        assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    html = chapter.verdict_table(result).to_html()
    assert "VRG lowers FID" in html and "background-color" in html
    assert "best γ" in chapter.lines_table(result).to_html()
    assert "aggregate" in chapter.claim_table(result).to_html()
    assert "start level held" in chapter.shift_table(result).to_html()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"gammas": [0.1, 0.2]}, "must include 0.0"),
        ({"gammas": [0.0, 0.1]}, "at least two values above 0"),
        ({"gammas": "0, 0.1"}, "must be a list"),
        ({"seeds": [0]}, "at least 2"),
        ({"n_boot": 5}, "n_boot must be >= 20"),
        ({"sampler": "euler"}, "unknown value 'euler'"),
        ({"baselines": ["linear"]}, "unknown value 'linear'"),
        ({"alpha": 0.0}, "alpha must be >"),
    ],
)
def test_bad_parameters_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chapter.Params(**kw)


def test_list_parameters_given_as_text_are_read() -> None:
    p = chapter.Params(gammas="[0.4, 0, 0.1]", reg_lambdas="[1e5, 1e4]")
    assert p.gammas == (0.0, 0.1, 0.4) and p.reg_lambdas == (1e4, 1e5)
    assert len(p.settings) == 6 + 2 + 2 + 1 and len(p.controls) == 2  # grid, held, only, published


def test_start_only_arms_split_the_gain(result: chapter.Result) -> None:
    t = result.table
    p = result.params
    only = t[t.start_only]
    assert len(only) == len(p.baselines) * sum(g > 0 for g in p.gammas)
    assert set(only.family) == {chapter.START_ONLY} and not only.keep_start.any()
    assert set(only.start_rule) <= {"replaced", "stretched", "unchanged"}
    for r in only.itertuples():  # the start only arm starts where its VRG arm starts
        vrg = t[
            (t.baseline == r.baseline)
            & (t.gamma == r.gamma)
            & (t.reg_lambda == r.reg_lambda)
            & ~t.keep_start
            & ~t.start_only
        ].iloc[0]
        assert r.a_K_vrg == pytest.approx(vrg.a_K_vrg, rel=1e-12)
        assert r.a_K_base == vrg.a_K_base
    # the only-start arms are tested in the same Holm family
    assert set(only.set_verdict) <= {"supported", "inconclusive", "contradicted"}
    assert chapter.summary(result).n_tests == 2 * int((~t.control).sum())


@pytest.mark.parametrize(
    ("only", "held", "expected"),
    [
        ("inconclusive", "supported", "supported"),
        ("supported", "supported", "mixed"),
        ("supported", "inconclusive", "contradicted"),
        ("inconclusive", "contradicted", "contradicted"),
        ("supported", "contradicted", "contradicted"),
        ("contradicted", "inconclusive", "inconclusive"),
        ("inconclusive", "inconclusive", "inconclusive"),
    ],
)
def test_split_verdict_follows_the_rule(only: str, held: str, expected: str) -> None:
    assert chapter.split_verdict(only, held) == expected


def test_split_verdict_refuses_unknown_words() -> None:
    with pytest.raises(ValueError, match="start_only"):
        chapter.split_verdict("holds", "supported")


def test_the_split_needs_both_arms(result: chapter.Result) -> None:
    t = result.table
    with pytest.raises(ValueError, match="start-only and start-held"):
        chapter.start_split(t[~t.start_only], "time_uniform", 0.1)
