"""The independence audit chapter on tiny parameters: it runs, judges by the one rule with Holm per
family, its planted controls come out as planted, it writes the verdict table and figures the audit
command reads, and its estimators give known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vrg_analysis.assumptions.chapters import independence as chapter
from vrg_analysis.assumptions.independence import step_correlation_matrix
from vrg_analysis.assumptions.samples import ErrorSample
from vrg_analysis.assumptions.verdicts import results_from_csv
from vrg_analysis.core.cpe import step_increments
from vrg_analysis.evaluation.stats import VERDICTS

TINY = dict(n_paths=60, num_steps=4, permutations=199, bootstrap=50, control_correlation=0.9)


@pytest.fixture(scope="module")
def result(one_torch_thread) -> chapter.Result:
    return chapter.run(chapter.Params(**TINY))


def _ar1(n: int, levels: int, dim: int, rho: float, seed: int = 0) -> ErrorSample:
    """Errors along ``n`` paths, an AR(1) chain of correlation ``rho`` across the steps."""
    rng = np.random.default_rng(seed)
    e = np.empty((levels, n, dim))
    e[0] = rng.standard_normal((n, dim))
    for k in range(1, levels):
        e[k] = rho * e[k - 1] + np.sqrt(1 - rho**2) * rng.standard_normal((n, dim))
    alpha_bar = np.linspace(0.05, 0.95, levels)  # sampling order: noisiest first
    return ErrorSample(e, alpha_bar, "ar1", "planted", paired=True)


# ===================================================================== the chapter
def test_every_pair_is_judged_by_both_tests_and_the_consequence_row(
    result: chapter.Result,
) -> None:
    pairs = result.pairs
    assert len(pairs) == 2 * (result.trajectory.K - 1)  # permutation + distance correlation
    assert len(result.results) == len(pairs) + 1  # plus the consequence row
    assert {r.verdict for r in result.results} <= set(VERDICTS)
    for prefix in ("permutation", "distance"):
        family = [r for r in pairs if r.method.startswith(prefix)]
        assert len(family) == result.trajectory.K - 1
        assert all(r.correction == "holm" and r.p_adjusted >= r.p_value for r in family)
        assert all(r.p_adjusted < 0.05 for r in family if r.verdict == "contradicted")
    assert result.consequence.verdict in VERDICTS
    assert all("ddim path (time_quadratic, K=4)" in r.source for r in result.results)


def test_controls_come_out_as_planted(result: chapter.Result) -> None:
    neg, pos = result.controls["negative"], result.controls["positive"]
    assert (neg.rho, pos.rho) == (0.0, 0.9)
    assert pos.summary["independence"]["verdict"] == "contradicted"
    assert neg.summary["independence"]["verdict"] != "contradicted"
    assert pos.consecutive["R"].mean() == pytest.approx(0.9, abs=0.1)
    assert abs(neg.consecutive["R"].mean()) < 0.15
    table = chapter.control_counts(result)
    assert list(table["planted R"]) == [0.0, 0.9]
    assert (
        table[["contradicted", "supported", "inconclusive"]].sum(axis=1) == table["pair tests"]
    ).all()


def test_summary_matches_the_rows(result: chapter.Result) -> None:
    s = chapter.summary(result)
    assert s.n_pair_tests == len(result.pairs) and s.K == 4 and s.n_used == 60
    assert s.n_pair_contradicted == sum(r.verdict == "contradicted" for r in result.pairs)
    assert s.cpe_verdict == result.consequence.verdict
    assert s.cpe_ratio_lo <= s.cpe_ratio <= s.cpe_ratio_hi
    assert s.cpe_ratio == pytest.approx(s.cpe_covariance / s.cpe_independent)
    assert f"{s.cpe_ratio_lo:.3f}" in result.consequence.note  # the interval the verdict judged
    assert s.r_min <= s.r_median <= s.r_max
    assert s.control_tests == 2 * 3 and s.pos_contradicted > s.neg_contradicted
    assert "Both controls come out as they must" in s.control_text
    assert "violated" not in s.verdict_text and "mixture-2d" in s.verdict_text


def test_outputs_are_what_the_audit_command_reads(result: chapter.Result, tmp_path: Path) -> None:
    figs = chapter.figures(result)
    assert set(figs) == set(chapter.FIGURES)
    for fig in figs.values():
        assert (
            max(
                ax.get_subplotspec().colspan.stop
                for ax in fig.axes
                if ax.get_label() != "<colorbar>"
            )
            <= 3
        )
    csv, md = chapter.write_outputs(result, tmp_path / "v", tmp_path / "f", figs)
    assert csv.name == "audit_independence.csv" and md.is_file()
    assert len(results_from_csv(csv.read_text())) == len(result.results)
    assert sorted(p.name for p in (tmp_path / "f").glob("*.png")) == [
        "audit_independence_fig_consequence.png",
        "audit_independence_fig_correlation.png",
    ]
    assert "background-color" in chapter.control_table(result).to_html()


# ===================================================================== estimators
def test_the_committed_result_keeps_what_the_page_draws(result: chapter.Result, tmp_path) -> None:
    """A committed full-size run leaves out the raw path errors; the page's numbers and figures
    are the same from what it keeps, and it round-trips through the artifact codec."""
    from vrg_analysis.studies import artifacts

    small = chapter.artifact_result(result)
    assert small.path is None and all(c.sample is None for c in small.controls.values())
    assert result.path is not None  # the run itself keeps them
    assert chapter.summary(small) == chapter.summary(result)
    for name, fig in chapter.figures(small).items():
        full = chapter.figures(result)[name]
        for a, b in zip(fig.axes, full.axes, strict=True):
            assert [list(ln.get_ydata()) for ln in a.lines] == [
                list(ln.get_ydata()) for ln in b.lines
            ]
    path = artifacts.save_artifact(
        chapter, result.params, result, wall_time_s=1.0, params_set="quick", directory=tmp_path
    )
    back = artifacts.read_artifact(path).result()
    assert back.path is None and chapter.summary(back) == chapter.summary(result)


def test_consecutive_correlations_recover_a_planted_chain() -> None:
    s = _ar1(3000, 4, 2, rho=0.5)
    cons = chapter.consecutive_correlations(s, bootstrap=200, seed=0)
    assert list(cons["pair"]) == ["0-1", "1-2", "2-3"]
    assert np.allclose(cons["R"], np.diag(step_correlation_matrix(s), 1))
    assert np.allclose(cons["R"], 0.5, atol=0.05)
    # pooled over d = 2 independent coordinates, sd(R) = (1 - rho^2) / sqrt(n d) = 0.0097
    half = (cons["high"] - cons["low"]) / 2
    assert ((cons["low"] < cons["R"]) & (cons["R"] < cons["high"])).all()
    assert ((0.6 * 1.96 * 0.0097 < half) & (half < 1.4 * 1.96 * 0.0097)).all()
    assert (cons["sigma from"] > cons["sigma to"]).all()  # noisiest first


def test_lag_contributions_known_answers() -> None:
    # identical errors at every step of a path: every lag adds c_k c_l E|z|^2
    rng = np.random.default_rng(0)
    z = rng.standard_normal((500, 3))
    a = np.array([0.1, 0.4, 0.8])
    same = ErrorSample(np.stack([z, z, z]), a, "same", "x", paired=True)
    c = step_increments(a)
    expected = [np.sum(c**2), 2 * (c[0] * c[1] + c[1] * c[2]), 2 * c[0] * c[2]]
    assert np.allclose(chapter.lag_contributions(same), np.array(expected) / expected[0])
    # independent errors: the cross terms vanish
    indep = chapter.lag_contributions(_ar1(20000, 3, 2, rho=0.0))
    assert indep[0] == 1.0 and np.all(np.abs(indep[1:]) < 0.03)


def test_dcor_paths_and_coordinate_subset() -> None:
    assert chapter.dcor_paths(2) == 1000 and chapter.dcor_paths(64) == 500
    assert chapter.dcor_paths(10**7) == 50
    s = _ar1(20, 3, 10, rho=0.0)
    sub = chapter.subset_coordinates(s, 4, seed=0)
    assert sub.dim == 4 and sub.paired and sub.n == 20
    cols = [np.flatnonzero(np.all(s.errors[0] == sub.errors[0][:, [j]], axis=0)) for j in range(4)]
    keep = [int(c[0]) for c in cols]
    assert keep == sorted(keep)
    assert (
        chapter.subset_coordinates(s, 10, seed=0) is s
        and chapter.subset_coordinates(s, None, 0) is s
    )


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"sampler": "euler"}, "unknown value 'euler'"),
        ({"trajectory_name": "cosine"}, "unknown value 'cosine'"),
        ({"num_steps": 1}, "num_steps must be >= 2"),
        ({"control_correlation": 1.0}, "control_correlation must lie in"),
        ({"control_std": 0.0}, "control_std must be > 0"),
        ({"n_paths": 5}, "n_paths must be >= 10"),
    ],
)
def test_bad_parameters_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chapter.Params(**kw)


def test_sizes_default_by_quick() -> None:
    q, f = chapter.Params(), chapter.Params(quick=False)
    assert (q.n_paths, q.permutations, q.bootstrap) == (400, 499, 200)
    assert (f.n_paths, f.permutations, f.bootstrap) == (2000, 999, 1000)
