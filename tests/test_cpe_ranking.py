"""Does CPE rank trajectories: Spearman's rho with a paired bootstrap interval, and the within-K
concordance with its binomial test, on cases with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vrg_analysis.studies import cpe_ranking


def test_spearman_interval_on_known_cases() -> None:
    x = np.arange(20.0)
    same = cpe_ranking.spearman_interval(x, x**2 + 1)
    assert same.rho == 1.0 and same.n == 20
    assert same.low == pytest.approx(1.0) and same.high == pytest.approx(1.0)
    flipped = cpe_ranking.spearman_interval(x, -x)
    assert flipped.rho == -1.0 and flipped.high == pytest.approx(-1.0)
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=300), rng.normal(size=300)
    free = cpe_ranking.spearman_interval(a, b, n_resamples=999)
    assert free.low < 0.0 < free.high  # independent: the interval covers 0
    assert math.isclose(free.rho, stats.spearmanr(a, b).statistic)
    assert math.isclose(free.p, stats.spearmanr(a, b).pvalue)
    # about as wide as the normal approximation of rho's sampling spread, 1.96 / sqrt(n)
    assert 0.6 < (free.high - free.low) / (2 * 1.96 / math.sqrt(300)) < 1.4
    again = cpe_ranking.spearman_interval(a, b, n_resamples=999)
    assert (again.low, again.high) == (free.low, free.high)  # seeded


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [([1, 2, 3], [1, 2, 3], "at least 4"), ([1, 2, 3, 4], [1, 2, 3], "differ in length"),
     ([1, 2, 3, math.nan], [1, 2, 3, 4], "finite")],
)  # fmt: skip
def test_spearman_interval_refuses_bad_input(x, y, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cpe_ranking.spearman_interval(x, y)


def test_concordance_counts_pairs_within_k_only() -> None:
    # across K both fall together; within each K the CPE order is the reverse of the metric's
    frame = pd.DataFrame(
        {"K": [5, 5, 5, 10, 10, 10], "cpe": [3.0, 2.0, 1.0, 0.3, 0.2, 0.1],
         "fid": [10.0, 11.0, 12.0, 4.0, 5.0, 6.0]}
    )  # fmt: skip
    conc, disc, ties, p = cpe_ranking.rank_concordance(frame, x="cpe", y="fid")
    assert (conc, disc, ties) == (0, 6, 0)
    assert math.isclose(p, stats.binomtest(0, 6, 0.5).pvalue)
    overall = cpe_ranking.spearman_interval(frame.cpe, frame.fid)
    assert overall.rho > 0.5  # the K effect alone makes rho look good
    assert cpe_ranking.rank_verdict(conc, disc, 0.01) == "contradicted"
    assert cpe_ranking.rank_verdict(6, 0, 0.01) == "supported"
    assert cpe_ranking.rank_verdict(4, 2, 0.3) == "inconclusive"
    assert cpe_ranking.rank_verdict(0, 0, math.nan) == "inconclusive"
    with pytest.raises(ValueError, match="column 'fid'"):
        cpe_ranking.rank_concordance(
            frame.assign(fid=[1.0, math.nan, 2, 3, 4, 5]), x="cpe", y="fid"
        )


def test_the_table_has_a_row_per_testbed_and_metric() -> None:
    rng = np.random.default_rng(0)
    ks = np.repeat([5, 10, 20], 6)
    cpe = rng.uniform(0.1, 1.0, ks.size) / ks
    arms = pd.DataFrame(
        {"role": ["image"] * 18, "K": ks, "cpe": cpe, "fid": 100 * cpe + rng.normal(0, 0.01, 18),
         "image_mse": rng.uniform(size=18)}
    )  # fmt: skip
    table = cpe_ranking.ranking_table(arms, ["fid", "image_mse", "exact_error"], n_resamples=199)
    assert list(table.metric) == ["fid", "image_mse"]  # no exact error on an image testbed
    fid = table.iloc[0]
    assert fid.arms == 18 and fid.concordant + fid.discordant + fid.tied == 3 * 15
    assert fid.verdict == "supported" and fid["rho low"] > 0.8


def test_the_table_in_words_and_on_the_page() -> None:
    frame = pd.DataFrame(
        {"role": ["image"] * 6, "K": [5, 5, 5, 10, 10, 10], "cpe": [3.0, 2.0, 1.0, 0.3, 0.2, 0.1],
         "fid": [10.0, 11.0, 12.0, 4.0, 5.0, 6.0]}
    )  # fmt: skip
    table = cpe_ranking.ranking_table(frame, ["fid"], n_resamples=199)
    text = cpe_ranking.ranking_text(table)
    assert text.startswith("image, fid: rho ")
    assert "within K, 0 pairs concordant and 6 discordant" in text and text.endswith("contradicted")
    assert "badge" not in text and "Spearman" in cpe_ranking.ranking_view(table).to_html()
    assert cpe_ranking.ranking_text(table.iloc[0:0]) == "no arms to rank"
