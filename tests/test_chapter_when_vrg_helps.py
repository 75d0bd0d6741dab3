"""The "When does VRG help?" chapter on tiny parameters: one engine run per (scale, correlation),
intervals over seeds, Holm over every table of verdicts, and a summary that adds up."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from vrg_analysis.studies import when_vrg_helps as chapter

TINY = dict(
    scales=[0.0, 0.8],
    steps=[3, 5],
    seeds=[0, 1, 2],
    n_train=64,
    profile_stride=50,
    n_samples=32,
    step_correlations=[0.0, 0.6],
    correlation_scale=0.8,
)
VERDICTS = {"supported", "inconclusive", "contradicted"}


@pytest.fixture(scope="module")
def result() -> chapter.Result:
    torch.set_num_threads(1)
    return chapter.run(chapter.Params(**TINY))


def test_one_engine_run_per_setting(result: chapter.Result) -> None:
    # scales 0 and 0.8 uncorrelated, and 0.6 at scale 0.8 (0.0 at 0.8 is met once)
    assert set(result.comparisons) == {(0.0, 0.0), (0.8, 0.0), (0.8, 0.6)}
    for (scale, rho), res in result.comparisons.items():
        cfg = res.config
        assert cfg.planted_size == scale and cfg.planted_correlation == rho
        assert cfg.seeds == (0, 1, 2) and cfg.profile_per_seed and cfg.decompose
    # one row per scale, seed, baseline, K and arm
    assert len(result.runs) == 2 * 3 * 1 * 2 * 2
    assert set(result.runs.variant) == {"vrg", "vrg_keep_start"}


def test_per_seed_rows_are_relative_changes(result: chapter.Result) -> None:
    r = result.runs
    np.testing.assert_allclose(r.benefit, 100 * (r.endpoint / r.endpoint_base - 1))
    np.testing.assert_allclose(r.ratio, r.prop_base / r.disc_base)
    zero = r[r.scale == 0.0]
    assert (zero.prop_base == 0).all() and zero.prop_change.isna().all()  # no planted error
    # the discretisation error does not depend on the planted error
    a = r[r.scale == 0.0].set_index(["seed", "K", "variant"]).disc_base
    b = r[r.scale == 0.8].set_index(["seed", "K", "variant"]).disc_base
    assert (a > 0).all()
    np.testing.assert_allclose(b.reindex(a.index), a)


def test_tables_are_judged_over_seeds_with_holm(result: chapter.Result) -> None:
    t = result.table
    assert len(t) == 2 * 1 * 2 * 2  # arms x baselines x K x scales
    assert (t.n_seeds == 3).all()
    for prefix in ("", "frechet_", "llgap_"):
        assert set(t[f"{prefix}verdict"]) <= VERDICTS
        decided = t[t[f"{prefix}verdict"] != "inconclusive"]
        assert (decided[f"{prefix}p_adj"] < 0.05).all()
    assert (t.p_adj >= t.benefit_p - 1e-15).all()
    ok = t.benefit_lo.notna()
    assert (t.benefit_lo[ok] <= t.benefit[ok]).all() and (t.benefit[ok] <= t.benefit_hi[ok]).all()
    assert set(result.corr.verdict) <= VERDICTS
    first = result.corr[result.corr.rho == 0.0]
    np.testing.assert_allclose(first.prop_growth, 1.0)


def test_summary_counts_add_up(result: chapter.Result) -> None:
    s = chapter.summary(result)
    c = s.counts
    for tag, n in (("all", s.n_all), ("low", s.n_low), ("high", s.n_high), ("corr", s.n_corr)):
        assert sum(c[f"n_{v}_{tag}"] for v in VERDICTS) == n
    assert s.n_low + s.n_high == s.n_all == s.n_configs == 4
    assert sum(c[f"q_fr_{v}"] for v in VERDICTS) == s.n_all
    assert s.n_runs == 2 * 3 * 2 and 0 <= s.n_up <= s.n_runs
    assert 0 <= s.all_converged <= 100 and s.k_min == 3 and s.k_max == 5
    assert s.scale_top == 0.8 and s.rho_top == 0.6 and s.corr_scale == 0.8
    assert math.isfinite(s.benefit_zero_median) and s.ratio_min > 0
    text = chapter.findings_text(result)
    assert text.startswith("* ") and "Holding the start level fixed" in text
    assert not re.search(r"\b(wins?|ties?|loss(es)?)\b", text)


def test_figures_wrap_and_tables_render(result: chapter.Result) -> None:
    for make in (
        chapter.figure_benefit,
        chapter.figure_parts,
        chapter.figure_last_level,
        chapter.figure_correlation,
    ):
        fig = make(result)
        assert fig.axes
        assert max(ax.get_subplotspec().colspan.stop for ax in fig.axes) <= 3
    for make in (
        chapter.ratio_table,
        chapter.benefit_table,
        chapter.quality_table,
        chapter.correlation_table,
    ):
        assert "<table" in make(result).to_html()
    assert "background-color" in chapter.benefit_table(result).to_html()
    counts = chapter.counts_table(result)
    assert list(counts.columns) == ["supported", "inconclusive", "contradicted"]
    assert counts.to_numpy().sum() == len(result.table)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"seeds": [0]}, "at least 2"),
        ({"seeds": [0, 0]}, "distinct"),
        ({"scales": [-0.1]}, "scales must be >= 0"),
        ({"steps": [0, 5]}, "positive"),
        ({"step_correlations": []}, "at least 1"),
        ({"step_correlations": [0.0, 1.0]}, "in \\(-1, 1\\)"),
        ({"baselines": ["uniform"]}, "unknown value 'uniform'"),
        ({"scales": "0.1, 0.2"}, "must be a list"),
    ],
)
def test_bad_parameters_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chapter.Params(**kw)


def test_list_parameters_given_as_text_are_read() -> None:
    p = chapter.Params(scales="[0.8, 0]", step_correlations="[0.0, 0.3]")
    assert p.scales == (0.0, 0.8) and p.step_correlations == (0.0, 0.3)
