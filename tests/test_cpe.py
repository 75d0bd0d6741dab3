import numpy as np
import pytest
from official_excerpt import (
    CIFAR10_PROFILE_ROWS,
    CPE_BASELINE,
    CPE_OPTIMIZED,
    OPTIMIZED_TIME_QUADRATIC_10,
    TIME_QUADRATIC_10,
)

from vrg_analysis import (
    ErrorProfile,
    NoiseSchedule,
    Trajectory,
    cpe_terms,
    cumulative_prediction_error,
    read_official_profile,
    read_official_trajectory,
)
from vrg_analysis.core.schedules import sigma_from_alpha_bar

ROWS = np.asarray(CIFAR10_PROFILE_ROWS)
EXCERPT = ErrorProfile(alpha_bar=ROWS[:, 1], mse=ROWS[:, 2], timesteps=ROWS[:, 0])
BASE = Trajectory.from_clean_order(TIME_QUADRATIC_10[1:])
OPT = Trajectory.from_clean_order(OPTIMIZED_TIME_QUADRATIC_10)


def test_reference_values_from_embedded_rows():
    assert cumulative_prediction_error(BASE, EXCERPT) == pytest.approx(CPE_BASELINE, abs=1e-6)
    assert cumulative_prediction_error(OPT, EXCERPT) == pytest.approx(CPE_OPTIMIZED, abs=1e-6)


def test_reference_values_from_official_files(official_dir):
    profile = read_official_profile(official_dir / "MSE_vs_alpha_bar_cifar10.txt")
    base = read_official_trajectory(
        official_dir / "trajectories" / "dpm_alphaBar_1-010-time_quadratic.txt"
    )
    opt = read_official_trajectory(official_dir / "optimized_dpm_alphaBar_1-010-time_quadratic.txt")
    np.testing.assert_allclose(base.alpha_bar, BASE.alpha_bar)
    np.testing.assert_allclose(opt.alpha_bar, OPT.alpha_bar)
    assert cumulative_prediction_error(base, profile) == pytest.approx(CPE_BASELINE, abs=1e-6)
    assert cumulative_prediction_error(opt, profile) == pytest.approx(CPE_OPTIMIZED, abs=1e-6)


def test_formula_by_hand():
    """CPE = sum_k (sigma_k - sigma_{k-1})^2 w(a_k), a_0 = 1, for a constant profile w = c."""
    prof = ErrorProfile(alpha_bar=[1e-4, 0.9999], mse=[0.3, 0.3])
    tr = Trajectory([0.01, 0.5, 0.9])
    s = sigma_from_alpha_bar([0.9, 0.5, 0.01])
    expected = 0.3 * (s[0] ** 2 + (s[1] - s[0]) ** 2 + (s[2] - s[1]) ** 2)
    assert cumulative_prediction_error(tr, prof) == pytest.approx(expected, rel=1e-14)
    assert cpe_terms(tr, prof).shape == (3,)


def test_interpolation_is_linear_in_alpha_bar():
    prof = ErrorProfile(alpha_bar=[0.1, 0.5], mse=[1.0, 3.0])
    assert prof.w(0.2) == pytest.approx(1.5)
    assert prof.w([0.05], outside="clamp")[0] == pytest.approx(1.0)
    assert prof.w([0.05], outside="linear")[0] == pytest.approx(0.75)


def test_profile_must_cover_the_trajectory():
    prof = ErrorProfile(alpha_bar=[0.1, 0.5], mse=[1.0, 3.0])
    with pytest.raises(ValueError, match=r"does not cover alpha_bar\[0\] = 0.05"):
        cumulative_prediction_error(Trajectory([0.05, 0.3]), prof)


def test_profile_validation_and_round_trip(tmp_path):
    with pytest.raises(ValueError, match=r"profile mse\[1\] = nan is not finite"):
        ErrorProfile(alpha_bar=[0.1, 0.5], mse=[1.0, np.nan])
    with pytest.raises(ValueError, match=r"profile mse\[0\] = -1.0 is negative"):
        ErrorProfile(alpha_bar=[0.1, 0.5], mse=[-1.0, 1.0])
    with pytest.raises(ValueError, match="has the level 0.1 twice"):
        ErrorProfile(alpha_bar=[0.1, 0.1], mse=[1.0, 1.0])
    with pytest.raises(ValueError, match="mse has 3 values but alpha_bar has 2"):
        ErrorProfile(alpha_bar=[0.1, 0.5], mse=[1.0, 1.0, 1.0])
    prof = ErrorProfile(
        alpha_bar=[0.5, 0.1], mse=[3.0, 1.0], count=[10, 20], metadata={"model": "m", "seed": 3}
    )
    np.testing.assert_array_equal(prof.alpha_bar, [0.1, 0.5])  # sorted, stats follow
    np.testing.assert_array_equal(prof.count, [20, 10])
    path = prof.save(tmp_path / "p.npz")
    again = ErrorProfile.load(path)
    np.testing.assert_array_equal(again.mse, prof.mse)
    assert again.metadata == {"model": "m", "seed": 3}
    assert again.variance is None
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]  # no temporary file left
    assert path.stat().st_mode & 0o044  # readable by others, not mkstemp's 0600


def test_failed_save_leaves_previous_file_intact(tmp_path, monkeypatch):
    prof = ErrorProfile(alpha_bar=[0.1, 0.5], mse=[1.0, 3.0])
    path = prof.save(tmp_path / "p.npz")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        ErrorProfile(alpha_bar=[0.2, 0.6], mse=[1.0, 2.0]).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]


def test_official_profile_reader_errors(tmp_path):
    p = tmp_path / "MSE.txt"
    p.write_text("# header\n   1\t0.999900\t0.55\n   2\t0.999780\n")
    with pytest.raises(ValueError, match=r"MSE.txt:3: expected 3 columns, found 2"):
        read_official_profile(p)
    p.write_text("   1\t0.999900\t0.55\n   2\t0.99978o\t0.4\n")
    with pytest.raises(ValueError, match=r"MSE.txt:2: not a number"):
        read_official_profile(p)
    p.write_text("   1\t0.999900\tnan\n   2\t0.999780\t0.4\n")
    with pytest.raises(ValueError, match=r"MSE.txt:1: non-finite value"):
        read_official_profile(p)
    p.write_text("# only a header\n")
    with pytest.raises(ValueError, match="no data rows"):
        read_official_profile(p)
    p.write_text("# h\n   2\t0.9999\t0.55\n   1\t0.9998\t0.4\n")
    with pytest.raises(ValueError, match=r"MSE.txt:3: timesteps must increase, ts 1 follows 2"):
        read_official_profile(p)


def test_one_minus_beta_column_with_gaps(tmp_path):
    """The Bedroom layout: 1 - beta_t at ts 0..2 and then every 10th, plus the safeguard row."""
    sched = NoiseSchedule.linear()
    a = sched.alphas_cumprod
    one_minus_beta = np.concatenate([a[:1], a[1:] / a[:-1]])
    ts = [0, 1, 2, 10, 20, 990]
    lines = [f"{t}\t{one_minus_beta[t]:.6f}\t{0.5 / (t + 1):.8f}\n" for t in ts]
    p = tmp_path / "bedroom.txt"
    p.write_text("# 1 - beta\n" + "".join(lines) + "1001\t0.000000\t0.00000000\n")
    prof = read_official_profile(p, second_column="one_minus_beta", schedule=sched)
    np.testing.assert_allclose(prof.alpha_bar[1:], a[ts][::-1])  # not the product of the rows
    assert prof.alpha_bar[0] == 0.0  # the safeguard row
    with pytest.raises(ValueError, match="needs the schedule the model was trained on"):
        read_official_profile(p, second_column="one_minus_beta")
    with pytest.raises(
        ValueError, match=r"bedroom.txt:2: 1 - beta = 0.9999 at ts 0 does not match"
    ):
        read_official_profile(p, second_column="one_minus_beta", schedule=NoiseSchedule.cosine())


def test_official_bedroom_file(official_dir):
    sched = NoiseSchedule.linear()
    prof = read_official_profile(
        official_dir / "MSE_vs_alpha_bar_bedroom.txt",
        second_column="one_minus_beta",
        schedule=sched,
    )
    assert prof.alpha_bar[1] == pytest.approx(float(sched.alpha_bar(990)), rel=1e-12)
    assert prof.alpha_bar[-1] == pytest.approx(float(sched.alpha_bar(0)), rel=1e-12)


def test_w_rejects_nan_in_every_mode():
    prof = ErrorProfile(alpha_bar=[0.1, 0.5], mse=[1.0, 3.0])
    for outside in ("error", "clamp", "linear"):
        with pytest.raises(ValueError, match=r"alpha_bar\[1\] = nan is not finite"):
            prof.w([0.2, np.nan], outside=outside)
