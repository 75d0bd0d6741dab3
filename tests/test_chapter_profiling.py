"""The profiling chapter on tiny parameters: every model a testbed offers is profiled on training
and held-out rows, the two are compared level by level with Holm, and the artifacts round-trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats as sps

from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.evaluation.stats import adjust_pvalues
from vrg_analysis.studies import profiling as chapter

TINY = dict(testbed="mixture-2d", n_samples=24, timestep_stride=100, batch_size=512, target=0.1)


@pytest.fixture(scope="module")
def result() -> chapter.Result:
    torch.set_num_threads(1)
    return chapter.run(chapter.Params(**TINY))


def test_every_model_of_the_testbed_is_profiled_on_both_data_sets(result: chapter.Result) -> None:
    # the mixture offers its trained MLP and the exact eps* (Testbed.oracle): both are profiled
    assert result.models == ("mixture-2d-mlp", chapter.ORACLE_LABEL)
    assert set(result.profiles) == {(m, d) for m in result.models for d in chapter.DATA_SETS}
    ts = result.timesteps
    assert ts[0] == 0 and ts[-1] == 999 and len(ts) == 11  # every 100th and the noisiest
    for prof in result.profiles.values():
        assert np.all(prof.count == 24) and prof.mse_sem is not None
    # eps* is the best predictor there is: its error is below the trained model's at every level
    exact = result.profiles[(chapter.ORACLE_LABEL, "training")].mse
    trained = result.profiles[("mixture-2d-mlp", "training")].mse
    assert np.mean(exact <= trained * 1.2) > 0.8


def test_transfer_table_and_summary(result: chapter.Result) -> None:
    t = result.transfer
    assert list(t.model) == list(result.models)
    assert (t["levels"] == 11).all()
    assert (
        (t["levels that differ (Welch, Holm)"] >= 0) & (t["levels that differ (Welch, Holm)"] <= 11)
    ).all()
    s = chapter.summary(result)
    assert s.transfer_model == "mixture-2d-mlp" and s.transfer_levels == 11
    assert s.n_timesteps == 11 and s.n_samples_used == 24
    assert 0.3 < s.transfer_ratio < 3.0


def _profile(values: np.ndarray) -> ErrorProfile:
    """A profile with the per-level mean, standard error and count of ``values`` [levels, n]."""
    n = values.shape[1]
    return ErrorProfile(
        alpha_bar=np.linspace(0.1, 0.9, values.shape[0]),
        mse=values.mean(axis=1),
        mse_sem=values.std(axis=1, ddof=1) / np.sqrt(n),
        count=np.full(values.shape[0], n, dtype=np.float64),
    )


def test_compare_levels_is_welchs_test_with_holm() -> None:
    rng = np.random.default_rng(0)
    a = rng.gamma(2.0, 0.5, size=(6, 200))
    b = rng.gamma(2.0, 0.5, size=(6, 150))
    b[0] *= 3.0  # one level truly differs
    out = chapter.compare_levels(_profile(a), _profile(b))
    raw = sps.ttest_ind(b, a, axis=1, equal_var=False).pvalue
    np.testing.assert_allclose(out["p_adjusted"], adjust_pvalues(raw, "holm"), rtol=1e-10)
    assert out["levels that differ (Welch, Holm)"] == 1
    np.testing.assert_allclose(out["ratio"], b.mean(1) / a.mean(1))
    same = chapter.compare_levels(_profile(a), _profile(a))
    assert (
        same["levels that differ (Welch, Holm)"] == 0
        and same["median held-out / training MSE"] == 1
    )


def test_compare_levels_refuses_profiles_at_other_levels() -> None:
    a = _profile(np.ones((3, 4)) + np.arange(4))
    b = ErrorProfile(
        alpha_bar=np.array([0.2, 0.5, 0.8]), mse=a.mse, mse_sem=a.mse_sem, count=a.count
    )
    with pytest.raises(ValueError, match="different levels"):
        chapter.compare_levels(a, b)


def test_helpers() -> None:
    x = torch.arange(10.0)[:, None]
    assert torch.equal(chapter.row_subset(x, 20, 0), x)
    sub = chapter.row_subset(x, 4, 3)
    assert sub.shape == (4, 1) and torch.equal(sub, chapter.row_subset(x, 4, 3))
    ts = chapter.profiled_timesteps(NoiseSchedule.linear(), 300)
    np.testing.assert_array_equal(ts, [0, 300, 600, 900, 999])
    assert chapter.artifact_name("digits", "digits-unet", "held-out") == (
        "profile-digits-digits-unet-held-out.npz"
    )


def test_artifacts_round_trip_and_render(result: chapter.Result, tmp_path: Path) -> None:
    paths = chapter.save_profiles(result, tmp_path)
    assert len(paths) == 4 and all(p.is_file() for p in paths)
    back = ErrorProfile.load(paths[0])
    np.testing.assert_array_equal(back.mse, next(iter(result.profiles.values())).mse)
    assert "artifact" in chapter.profiles_table(result).to_html()
    fig = chapter.figure_profiles(result)
    assert len(fig.axes) == 2 and fig.axes[0].get_yscale() == "log"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"testbed": "cifar"}, "parameter testbed: unknown value 'cifar'"),
        ({"model_path": "/no/such/folder"}, "model_path: folder"),
        ({"n_samples": 1}, "n_samples must be >= 2"),
        ({"timestep_stride": 0}, "timestep_stride must be >= 1"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"target": 0.0}, "target"),
        ({"target": 1.0}, "target"),
        ({"target_steps": 1}, "target_steps must be >= 2"),
    ],
)
def test_bad_parameters_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chapter.Params(**kw)


def test_the_precision_section(result: chapter.Result) -> None:
    """CPE of the three baselines to the target: reached, the profiled timesteps only where a
    level is near, fewer calls than fixed-N; the table and figure show what the run measured."""
    ad = result.precision
    assert ad.reached and np.all(ad.relative_half_width <= 0.1)
    assert [t.name for t in ad.trajectories] == list(chapter.PRECISION_BASELINES)
    assert ad.model_calls == int(ad.profile.count.sum()) < ad.fixed_calls
    frame = chapter.precision_frame(result)
    assert len(frame) == ad.grid_timesteps.size
    assert (frame["adaptive draws"] > 0).sum() == ad.profile.alpha_bar.size < len(frame)
    table = chapter.precision_table(result)
    assert list(table.data.trajectory) == list(chapter.PRECISION_BASELINES)
    assert np.allclose(table.data["CPE (adaptive)"], ad.cpe)
    s = chapter.summary(result)
    assert s.precision_calls == ad.model_calls and s.precision_saving == pytest.approx(ad.saving)
    assert s.precision_reached.startswith("reached")
    fig = chapter.figure_precision(result)
    assert fig.axes[0].get_yscale() == "log"


def test_model_path_needs_data(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data_path is empty"):
        chapter.Params(model_path=str(tmp_path))
