"""Property-based tests (hypothesis): random valid inputs give finite results that keep the
invariants; random corruptions give the library's own error with a message naming the problem."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vrg_analysis import NoiseSchedule, Trajectory, cumulative_prediction_error
from vrg_analysis.core.profile import ErrorProfile, read_official_profile
from vrg_analysis.core.trajectories import read_official_trajectory
from vrg_analysis.vrg.objective import ratio_bounds
from vrg_analysis.vrg.optimize import optimize_trajectory

SCHED = NoiseSchedule.linear()
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def levels(draw, min_k: int = 1, max_k: int = 30) -> np.ndarray:
    """Strictly increasing alpha_bar values inside (0, 1) (a trajectory in sampling order)."""
    k = draw(st.integers(min_k, max_k))
    timesteps = draw(
        st.lists(st.integers(0, SCHED.num_timesteps - 1), min_size=k, max_size=k, unique=True)
    )
    return np.sort(SCHED.alpha_bar(np.array(timesteps)))  # noisiest first


@st.composite
def profiles(draw) -> ErrorProfile:
    n = draw(st.integers(2, 60))
    ts = np.sort(np.array(draw(st.lists(st.integers(0, 999), min_size=n, max_size=n, unique=True))))
    ts[-1] = 999  # covers every baseline's start
    ts[0] = min(ts[0], 0)
    mse = np.array(draw(st.lists(st.floats(1e-6, 2.0), min_size=ts.size, max_size=ts.size)))
    return ErrorProfile(alpha_bar=SCHED.alpha_bar(ts), mse=mse, timesteps=ts)


# ----------------------------------------------------------------- Trajectory
@FAST
@given(levels())
def test_valid_trajectories_keep_their_invariants(a: np.ndarray) -> None:
    t = Trajectory(a, name="random")
    assert t.K == a.size and np.all(np.diff(t.sigma) < 0) and np.all(t.sigma > 0)
    back = Trajectory.from_dict(t.to_dict())
    np.testing.assert_array_equal(back.alpha_bar, t.alpha_bar)
    np.testing.assert_allclose(t.timesteps(SCHED), np.sort(SCHED.t_from_alpha_bar(a))[::-1])


@FAST
@given(levels(min_k=2), st.integers(0, 10**6), st.sampled_from(["swap", "nan", "zero", "one"]))
def test_corrupt_trajectories_are_refused_by_name(a: np.ndarray, seed: int, how: str) -> None:
    rng = np.random.default_rng(seed)
    b = a.copy()
    i = int(rng.integers(0, b.size - 1))
    if how == "swap":
        b[i], b[i + 1] = b[i + 1], b[i]
        match = "strictly increasing"
    elif how == "nan":
        b[i] = math.nan
        match = "not finite"
    elif how == "zero":
        b[0] = 0.0
        match = "outside the open interval"
    else:
        b[-1] = 1.0
        match = "outside the open interval"
    with pytest.raises(ValueError, match=match):
        Trajectory(b)


# ----------------------------------------------------------------- ErrorProfile and CPE
@FAST
@given(profiles(), levels(max_k=20))
def test_profiles_give_finite_cpe_within_their_bounds(p: ErrorProfile, a: np.ndarray) -> None:
    w = p.w(np.clip(a, *p.alpha_bar_range))
    assert np.all(np.isfinite(w)) and w.min() >= p.mse.min() - 1e-12 and w.max() <= p.mse.max()
    traj = Trajectory(a)
    cpe = cumulative_prediction_error(traj, p, outside="clamp")
    assert math.isfinite(cpe) and cpe >= 0.0
    # CPE is linear in the profile (Eq. 10)
    double = ErrorProfile(alpha_bar=p.alpha_bar, mse=2 * p.mse, timesteps=p.timesteps)
    assert cumulative_prediction_error(traj, double, outside="clamp") == pytest.approx(2 * cpe)


@FAST
@given(profiles())
def test_profiles_round_trip_through_their_files(tmp_path_factory, p: ErrorProfile) -> None:
    d = tmp_path_factory.mktemp("p")
    back = ErrorProfile.load(p.save(d / "p.npz"))
    np.testing.assert_array_equal(back.alpha_bar, p.alpha_bar)
    np.testing.assert_array_equal(back.mse, p.mse)
    text = d / "p.txt"
    text.write_text(
        "".join(
            f"{t:g}\t{a:.6f}\t{m:.8f}\n"
            for t, a, m in zip(p.timesteps[::-1], p.alpha_bar[::-1], p.mse[::-1], strict=True)
        )
    )
    official = read_official_profile(text)
    assert official.alpha_bar.size <= p.alpha_bar.size  # 6-decimal ties merge
    assert np.all(np.isfinite(official.mse))


@FAST
@given(profiles(), st.integers(0, 10**6), st.sampled_from(["token", "columns", "nan", "rise"]))
def test_corrupt_profile_files_name_file_and_line(
    tmp_path_factory, p: ErrorProfile, seed: int, how: str
) -> None:
    rows = [
        [f"{t:g}", f"{a:.6f}", f"{m:.8f}"]
        for t, a, m in zip(p.timesteps[::-1], p.alpha_bar[::-1], p.mse[::-1], strict=True)
    ]
    i = int(np.random.default_rng(seed).integers(0, len(rows)))
    if how == "token":
        rows[i][2] = "abc"
    elif how == "columns":
        rows[i] = rows[i][:2]
    elif how == "nan":
        rows[i][2] = "nan"
    else:  # alpha_bar rising with the timestep
        if len(rows) < 3:
            return
        i = max(i, 1)
        rows[i][1] = "0.999999"
    f = Path(tmp_path_factory.mktemp("c")) / "bad.txt"
    f.write_text("".join("\t".join(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"bad\.txt"):
        read_official_profile(f)


@FAST
@given(st.lists(st.integers(1, 999), min_size=3, max_size=12, unique=True))
def test_trajectory_files_round_trip_with_their_header(tmp_path_factory, timesteps: list) -> None:
    a = SCHED.alpha_bar(np.sort(np.array(timesteps)))  # least noisy first, as the official files
    f = Path(tmp_path_factory.mktemp("t")) / "t.txt"
    f.write_text(f"# steps : {a.size}\n" + "".join(f"{v:.10f}\n" for v in [0.9999, *a]))
    t = read_official_trajectory(f)
    np.testing.assert_allclose(t.alpha_bar_from_clean, a, rtol=0, atol=1e-10)  # 10 decimals


# ----------------------------------------------------------------- the optimiser
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profiles(), st.integers(3, 12), st.floats(0.005, 0.3), st.booleans())
def test_the_optimiser_keeps_its_contract(p: ErrorProfile, k: int, gamma: float, keep: bool):
    traj = Trajectory(SCHED.alpha_bar(np.linspace(999, 0, k + 1)[:-1]))
    res = optimize_trajectory(traj, p, gamma=gamma, keep_start=keep)
    a = res.optimized.alpha_bar
    assert np.all(np.isfinite(a)) and res.optimized.K == traj.K
    _, lo, hi = ratio_bounds(traj, gamma)
    r, _, _ = ratio_bounds(res.optimized, gamma)
    assert np.all(r >= lo - 1e-9) and np.all(r <= hi + 1e-9)  # inside the gamma box
    assert res.objective_final <= res.objective_initial * (1 + 1e-9) + 1e-15
    if keep:
        assert a[0] == pytest.approx(traj.alpha_bar[0], rel=1e-9)
    if not res.moved:
        assert res.cpe_reduction == pytest.approx(0.0, abs=1e-12)
