"""The transfer, decomposition and anisotropy audit chapter on tiny parameters: it runs on an exact
and on a class-conditional target, judges by the one rule, writes its verdict table and figures,
and its estimators give known answers on planted cases."""

from __future__ import annotations

import math
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy import stats

from vrg_analysis.assumptions.chapters import transfer as chapter
from vrg_analysis.assumptions.samples import ErrorSample
from vrg_analysis.assumptions.transfer import transfer_audit, transfer_profile
from vrg_analysis.assumptions.verdicts import VERDICTS, results_from_csv

TINY = dict(
    num_steps=4,
    n_samples=200,
    n_paths=100,
    n_decompose=200,
    bootstrap=50,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def exact(one_torch_thread) -> chapter.Result:
    return chapter.run(chapter.Params(model="mixture-2d", **TINY))


@pytest.fixture(scope="module")
def conditional(one_torch_thread) -> chapter.Result:
    # 200 paths: 20 per class; 300 held-out rows: about 30 per class (>= 10 each side)
    return chapter.run(
        chapter.Params(model="digits-cond", **{**TINY, "n_samples": 300, "n_paths": 200})
    )


# ===================================================================== the run
def test_exact_target_runs_every_audit(exact: chapter.Result) -> None:
    r = exact
    assert r.exact and not r.conditional and r.K == 4 and r.dim == r.dim_iso == 2
    assert len(r.rows_held) == len(r.rows_path) == len(r.rows_iso) == 4
    assert not r.rows_control and r.prof_control is None and not r.unreliable.any()
    assert not r.rows_class_held and chapter.class_table(r) is None
    every = r.rows_held + r.rows_path + r.rows_iso
    assert {x.verdict for x in every} <= set(VERDICTS)
    for rows in (r.rows_held, r.rows_path, r.rows_iso):  # Holm over each family's levels
        assert all(x.correction == "holm" and x.p_adjusted >= x.p_value - 1e-15 for x in rows)
        assert all(x.p_adjusted < 0.05 for x in rows if x.verdict == "contradicted")
    # the decomposition (D1) on the trajectory: the shares add up to 1
    sh = r.shares
    assert sh is not None and r.decomposition is not None
    assert sh.spread_share + sh.model_share + sh.cross_share == pytest.approx(1.0)
    # the chapter's profile is the transfer audit's own
    assert np.allclose(r.prof_held.ratio, [x.effect_size for x in r.rows_held])


def test_summary_counts_and_intervals(exact: chapter.Result) -> None:
    s = chapter.summary(exact)
    assert s.iso_supported + s.iso_contradicted + s.iso_inconclusive == s.K == 4
    assert s.n_contra_b == sum(x.verdict == "contradicted" for x in exact.rows_path)
    assert s.n_tr == s.n_ho == 200 and s.n_paths == 100 and s.d_iso == 2
    for key in ("cpe_a", "cpe_b"):
        c = s.cpe
        assert c[f"{key}_lo"] < c[f"{key}_ratio"] < c[f"{key}_hi"]
        assert c[f"{key}_ratio"] == pytest.approx(c[f"{key}_other"] / c[f"{key}_ref"])
    assert 0.0 < s.top_share <= 100.0 and 0.0 <= s.contra_share <= 100.0
    assert s.spread_share + s.model_share == pytest.approx(100.0, abs=5.0)
    assert "supported at" in s.text_a and "the reference is exact" in s.text_ctrl
    assert "not class-conditional" in s.class_text and "splits into" in s.decomp_text
    assert s.acc_iso_share == 50.0 and s.pool_text.startswith("The errors are used in full")
    assert s.n_verdicts == len(exact.verdicts) == 12
    for text in (s.text_a, s.text_b, s.run_setup):
        assert "holds" not in text and "violated" not in text  # the one vocabulary


def test_outputs_written(exact: chapter.Result, tmp_path) -> None:
    figs = chapter.figures(exact)
    assert set(figs) == set(chapter.FIGURES)
    for fig in figs.values():  # at most 3 panels a row (plus a colour bar)
        panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        assert 2 <= len(panels) <= 3
    csv_path, md_path = chapter.write_outputs(exact, tmp_path / "v", tmp_path / "f", figs)
    assert csv_path.name == "audit_transfer.csv" and md_path.is_file()
    rows = results_from_csv(csv_path.read_text())
    assert len(rows) == 12 and all(x.source.startswith(exact.name) for x in rows)
    assert sorted(p.name for p in (tmp_path / "f").glob("*.png")) == sorted(
        f"audit_transfer_{n}.png" for n in chapter.FIGURES
    )
    html = chapter.verdict_table(exact).to_html()
    assert "claim" in html and "background-color" in html
    assert "verdict" in chapter.level_table(exact).to_html()


def test_conditional_target_has_control_and_per_class_rows(conditional: chapter.Result) -> None:
    r = conditional
    assert not r.exact and r.conditional and r.num_classes == 10 and r.dim == 64
    assert len(r.rows_control) == 4 and r.prof_control is not None and r.cpe_control is not None
    assert len(r.rows_class_held) == len(r.rows_class_path) == 10 * 4
    assert r.decomposition is None and r.shares is None
    # at a level where the control contradicts transfer, no path verdict is decided
    for i in np.flatnonzero(r.unreliable):
        assert r.rows_path[i].verdict == "inconclusive"
        assert "reference unreliable" in r.rows_path[i].note
    assert np.array_equal(r.unreliable, [x.verdict == "contradicted" for x in r.rows_control])
    s = chapter.summary(r)
    assert "Per class (10 classes x 4 levels" in s.class_text
    assert "control" in s.text_ctrl and math.isnan(s.spread_share)
    table = chapter.class_table(r, "path")
    assert table is not None and table.data.shape == (10, 4)
    assert len(r.sources()) == 5 and s.n_verdicts == 4 * 3 + 2 * 40


@pytest.mark.parametrize("which", ["exact", "conditional"])
def test_the_committed_result_keeps_what_the_page_draws(which, request, tmp_path) -> None:
    """A committed full-size run leaves out the error samples (hundreds of MB on the 28x28
    model): the page's numbers, tables and figures are the same from what it keeps (the per-class
    sizes included), and it round-trips through the artifact codec."""
    from vrg_analysis.studies import artifacts

    result: chapter.Result = request.getfixturevalue(which)
    small = chapter.artifact_result(result)
    assert small.samples is None and result.samples is not None
    assert (small.n_train, small.n_held, small.n_paths) == (
        result.samples.train_vs_eps.n,
        result.samples.held_vs_eps.n,
        result.samples.path_vs_ref.n,
    )
    assert small.dim_iso == result.samples.path_iso.dim
    if result.conditional:
        assert result.samples.y_held is not None and small.class_rows_held is not None
        assert (
            small.class_rows_held.tolist()
            == np.bincount(result.samples.y_held.numpy(), minlength=10).tolist()
        )
        assert small.class_rows_path is not None and small.class_rows_path.sum() == small.n_paths
    else:
        assert small.class_rows_held is None and small.class_rows_path is None
    assert chapter.summary(small) == chapter.summary(result)
    assert chapter.level_table(small).data.equals(chapter.level_table(result).data)
    if result.conditional:
        assert chapter.class_table(small).data.equals(chapter.class_table(result).data)
    for name, fig in chapter.figures(small).items():
        full = chapter.figures(result)[name]
        for a, b in zip(fig.axes, full.axes, strict=True):
            assert [np.asarray(ln.get_ydata()).tolist() for ln in a.lines] == [
                np.asarray(ln.get_ydata()).tolist() for ln in b.lines
            ]
    path = artifacts.save_artifact(
        chapter, result.params, result, wall_time_s=1.0, params_set="quick", directory=tmp_path
    )
    back = artifacts.read_artifact(path).result()
    assert back.samples is None and chapter.summary(back) == chapter.summary(result)
    assert [r.verdict for r in back.verdicts] == [r.verdict for r in result.verdicts]
    assert artifacts.read_artifact(path).reduced_by
    plt.close("all")


# ===================================================================== estimators
def test_intervals_match_the_normal_quantile() -> None:
    z = stats.norm.ppf(0.975)
    iv = chapter.ratio_interval(2.0, 0.1)
    assert iv.low == pytest.approx(2.0 * math.exp(-z * 0.1))
    assert iv.high == pytest.approx(2.0 * math.exp(z * 0.1))
    assert iv.low * iv.high == pytest.approx(4.0)  # symmetric on the log scale
    narrow = chapter.ratio_interval(2.0, 0.1, confidence=0.8)
    assert iv.low < narrow.low < narrow.high < iv.high
    lo, hi = chapter.normal_bounds([1.0, 2.0], [0.5, 0.0], confidence=0.9)
    assert lo == pytest.approx([1.0 - 0.5 * stats.norm.ppf(0.95), 2.0])
    assert hi == pytest.approx([1.0 + 0.5 * stats.norm.ppf(0.95), 2.0])
    assert chapter.normal_interval(1.0, 0.5).half_width == pytest.approx(0.5 * z)
    with pytest.raises(ValueError, match="ratio must be > 0"):
        chapter.ratio_interval(0.0, 0.1)
    with pytest.raises(ValueError, match="confidence"):
        chapter.normal_bounds(1.0, 1.0, confidence=1.0)


def test_cpe_of_and_its_ratio_on_known_cases() -> None:
    levels = np.array([0.2, 0.8])
    # every row has |delta|^2 / d = 4 at level 0 and 1 at level 1: CPE = 1 * 4 + 2 * 1 = 6
    e = np.stack([np.full((5, 3), 2.0), np.full((5, 3), 1.0)])
    m, se = chapter.cpe_of(ErrorSample(e, levels, "a", "ref"), np.array([1.0, 2.0]))
    assert m == pytest.approx(6.0) and se == pytest.approx(0.0)
    with pytest.raises(ValueError, match="one value per level"):
        chapter.cpe_of(ErrorSample(e, levels, "a", "ref"), np.ones(3))
    # Gaussian errors with variance 1 and 2: the CPE ratio is 2, and its 95% interval covers it
    rng = np.random.default_rng(0)
    weights = np.array([0.5, 1.5])
    hits = 0
    for _ in range(200):
        ref = ErrorSample(rng.standard_normal((2, 200, 2)), levels, "a", "ref")
        oth = ErrorSample(math.sqrt(2.0) * rng.standard_normal((2, 300, 2)), levels, "b", "ref")
        c = chapter.cpe_ratio(ref, oth, weights)
        hits += c.ratio.contains(2.0)
    assert 0.90 <= hits / 200 <= 0.99


def test_compact_and_reduce_keep_what_the_audits_read() -> None:
    rng = np.random.default_rng(1)
    e = rng.standard_normal((3, 50, 64))
    c = chapter.compact_errors(e)
    assert c.shape == (3, 50, 1)
    assert np.allclose(np.mean(c**2, axis=2), np.mean(e**2, axis=2))
    assert chapter.reduce_dim(e, (64,), max_dim=64) is e
    # isotropic errors stay isotropic with the same variance per coordinate
    big = rng.standard_normal((1, 4000, 64))
    pooled = chapter.reduce_dim(big, (1, 8, 8), max_dim=16)  # 2 x 2 blocks: 16 dimensions
    assert pooled.shape == (1, 4000, 16)
    assert np.var(pooled, axis=1).mean() == pytest.approx(1.0, abs=0.05)
    projected = chapter.reduce_dim(big, (64,), max_dim=10, seed=3)
    assert projected.shape == (1, 4000, 10)
    assert np.var(projected, axis=1).mean() == pytest.approx(1.0, abs=0.05)


def _rows(ratios: list[float], n: int = 400, seed: int = 0):
    levels = np.linspace(0.1, 0.9, len(ratios))
    rng = np.random.default_rng(seed)
    ref = ErrorSample(rng.standard_normal((len(levels), n, 2)), levels, "a", "eps*")
    scale = np.sqrt(np.asarray(ratios))[:, None, None]
    oth = ErrorSample(scale * rng.standard_normal((len(levels), n, 2)), levels, "b", "eps*")
    return levels, transfer_audit(ref, oth), transfer_profile(ref, oth)


def test_qualify_turns_unreliable_levels_inconclusive() -> None:
    levels, rows, prof = _rows([1.0, 3.0, 3.0])
    assert [r.verdict for r in rows][1:] == ["contradicted", "contradicted"]
    flags = np.array([False, True, False])
    out = chapter.qualify(rows, levels, flags, prof.ratio)
    assert [r.verdict for r in out] == [rows[0].verdict, "inconclusive", "contradicted"]
    assert "reference unreliable" in out[1].note and "contradicted" in out[1].note
    with pytest.raises(ValueError, match="reliability flags"):
        chapter.qualify(rows, levels, flags[:2], prof.ratio)
    with pytest.raises(ValueError, match="control's ratios"):
        chapter.qualify(rows, levels, flags, None)


def test_describe_and_samples_needed() -> None:
    levels, rows, prof = _rows([1.0, 3.0, 1.02], n=60)
    sigma = np.sqrt((1 - levels) / levels)
    text = chapter.describe(rows, prof, sigma)
    c = {v: sum(r.verdict == v for r in rows) for v in VERDICTS}
    assert text.startswith(f"supported at {c['supported']} of 3 levels")
    assert f"sigma {sigma[1]:.3g} (ratio {prof.ratio[1]:.3g})" in text
    skipped = chapter.describe(rows, prof, sigma, skip=np.array([False, True, False]))
    assert "where the reference is reliable" in skipped
    planted = [replace(rows[0], note="ratio 1.0: about 1234 samples per side needed to show it")]
    assert chapter.samples_needed(planted + [rows[1]]) == [1234]


# ===================================================================== parameters
@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"trajectory_name": "cosine"}, "unknown value 'cosine'"),
        ({"num_steps": 1}, "num_steps must be >= 2"),
        ({"quick": "maybe"}, "quick must be true or false"),
        ({"n_samples": 5}, "n_samples must be >= 20"),
        ({"bootstrap": 10}, "bootstrap must be >= 50"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"model": ""}, "model must be"),
    ],
)
def test_bad_parameters_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chapter.Params(**kw)


def test_sizes_follow_quick() -> None:
    quick, full = chapter.Params(), chapter.Params(quick="false")
    assert (quick.n_samples, quick.n_paths, quick.n_decompose, quick.bootstrap) == (
        1000,
        500,
        4000,
        100,
    )
    assert (full.n_samples, full.n_paths, full.n_decompose, full.bootstrap) == (
        20000,
        5000,
        20000,
        200,
    )
    assert chapter.Params(n_paths="300", data="").n_paths == 300
    assert chapter.Params(data="").data is None
