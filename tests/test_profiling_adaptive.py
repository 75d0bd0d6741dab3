"""Adaptive Algorithm 1 (vrg_analysis.profiling.adaptive): the CPE functional, the interval,
Neyman's allocation against a numerical optimiser, the moment merge against numpy, coverage of a
known truth, agreement with fixed serial Algorithm 1 on the exact mixture, resuming, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import optimize, stats

from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import Trajectory, baseline
from vrg_analysis.models.protocol import TorchEpsModel
from vrg_analysis.profiling import adaptive, profile_prediction_error
from vrg_analysis.testbeds import make_testbed

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SCHEDULE = NoiseSchedule.linear(1000)
GRID = np.asarray(adaptive.DEFAULT_GRID, dtype=np.float64)


def _trajectories(schedule: NoiseSchedule = SCHEDULE, k: int = 10) -> list[Trajectory]:
    return [baseline(n, schedule, k) for n in ("time_quadratic", "logsnr_uniform")]


def _planted(std: float = 0.5, seed: int = 0) -> TorchEpsModel:
    """On data ``x_0 = 0``, ``x_t = sqrt(1 - a) eps`` gives ``eps`` back exactly; adding
    ``std sqrt(a) z`` makes the error ``std sqrt(a) z``: ``w(a) = std^2 a``, known exactly."""
    gen = torch.Generator().manual_seed(seed)

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = torch.as_tensor(SCHEDULE.alpha_bar(t.numpy()), dtype=x.dtype).reshape(-1, 1)
        z = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        return x / (1.0 - a).sqrt() + std * a.sqrt() * z

    return TorchEpsModel(fn, SCHEDULE, identity=f"planted-{std}-{seed}")


# ===================================================================== the pieces
def test_cpe_weights_give_the_cpe_of_the_interpolated_profile() -> None:
    a = SCHEDULE.alpha_bar(GRID)
    order = np.argsort(a)
    w = np.random.default_rng(0).uniform(0.01, 1.0, a.size)
    prof = ErrorProfile(alpha_bar=a[order], mse=w[order])
    for traj in [*_trajectories(), *_trajectories(k=25)]:
        beta = adaptive.cpe_weights(traj, prof.alpha_bar)
        assert beta @ prof.mse == pytest.approx(cumulative_prediction_error(traj, prof), rel=1e-12)
        assert np.all(beta >= 0.0) and np.count_nonzero(beta) <= 2 * traj.K
    # a level on a grid point puts its whole weight there
    on_grid = Trajectory(prof.alpha_bar[[3, 50, 90]])
    beta = adaptive.cpe_weights(on_grid, prof.alpha_bar)
    assert np.count_nonzero(beta) == 3
    with pytest.raises(ValueError, match="level 0 .* outside the profiled range"):
        adaptive.cpe_weights(Trajectory([0.2, 0.9999999]), prof.alpha_bar)


def test_neyman_allocation_is_the_optimum_a_solver_finds() -> None:
    rng = np.random.default_rng(1)
    beta, sd = rng.uniform(0.0, 2.0, 6), rng.uniform(0.1, 3.0, 6)
    v = 0.01
    n = adaptive.neyman_allocation(beta, sd, v)
    assert np.sum(beta**2 * sd**2 / n) == pytest.approx(v, rel=1e-10)
    res = optimize.minimize(
        lambda m: m.sum(),
        x0=np.full(6, n.sum() / 6 * 2),
        constraints=[{"type": "ineq", "fun": lambda m: v - np.sum(beta**2 * sd**2 / m)}],
        bounds=[(1e-6, None)] * 6,
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 500},
    )
    assert res.success and res.fun == pytest.approx(n.sum(), rel=1e-4)
    assert np.allclose(res.x, n, rtol=1e-2)
    # fixed-N needs the same n everywhere: never fewer calls in total
    fixed = adaptive.fixed_n_for_precision(beta, sd, 0.01, 1.0)
    assert fixed * beta.size >= n.sum() * (0.01 / stats.norm.ppf(0.975)) ** 2 / v - 1
    with pytest.raises(ValueError, match="variance"):
        adaptive.neyman_allocation(beta, sd, 0.0)


def test_merge_moments_matches_numpy_on_the_pooled_sample() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.gamma(2.0, size=37), rng.gamma(3.0, size=5)
    n, mean, var = adaptive.merge_moments(
        a.size, a.mean(), a.var(ddof=1), b.size, b.mean(), b.var(ddof=1)
    )
    both = np.concatenate([a, b])
    assert (
        n == both.size
        and mean == pytest.approx(both.mean())
        and var == pytest.approx(both.var(ddof=1))
    )
    n0, m0, v0 = adaptive.merge_moments(0, 0.0, 0.0, a.size, a.mean(), a.var(ddof=1))
    assert (n0, m0, v0) == (a.size, pytest.approx(a.mean()), pytest.approx(a.var(ddof=1)))


def test_stratum_moments_are_algorithm_1s_at_one_timestep() -> None:
    """The same draws as Algorithm 1 at one level give the same w (Algorithm 1 profiles two
    levels here, in batches of one level's rows: its rows and noise at the first level are the
    stratum's one chunk)."""
    bed = make_testbed("mixture-2d")
    x0 = bed.train_x[: adaptive.CHUNK]
    parts = adaptive.stratum_moments(
        bed.model, x0, 500.0, generators=[torch.Generator().manual_seed(3)]
    )
    n, mean, var = adaptive.merge_chunks(parts)
    prof = profile_prediction_error(
        bed.model,
        x0,
        [500, 600],
        generator=torch.Generator().manual_seed(3),
        progress=False,
        batch_size=adaptive.CHUNK,
    )
    i = int(np.flatnonzero(prof.timesteps == 500)[0])
    assert n == adaptive.CHUNK and mean == pytest.approx(float(prof.mse[i]), rel=1e-6)
    assert math.sqrt(var / n) == pytest.approx(float(prof.mse_sem[i]), rel=1e-6)


def test_chunks_are_the_same_whoever_computes_them() -> None:
    """A stratum of 700 rows is 3 chunks: computed all at once or one chunk at a time (as shards
    would), the chunks' moments are bitwise the same and merge to the same bits."""
    bed = make_testbed("mixture-2d")
    x0 = bed.train_x[:700]
    gens = lambda: [adaptive.chunk_generator(0, 5, 1, c) for c in range(3)]  # noqa: E731
    whole = adaptive.stratum_moments(bed.oracle, x0, 300.0, generators=gens())
    assert sorted(whole) == [0, 1, 2] and [whole[c][0] for c in range(3)] == [256, 256, 188]
    pieces = {}
    for c in (2, 0, 1):
        pieces.update(
            adaptive.stratum_moments(bed.oracle, x0, 300.0, generators=gens(), chunks=[c])
        )
    assert pieces == whole
    assert adaptive.merge_chunks(pieces) == adaptive.merge_chunks(whole)
    with pytest.raises(ValueError, match="chunks must lie in 0..2"):
        adaptive.stratum_moments(bed.oracle, x0, 300.0, generators=gens(), chunks=[3])


def test_the_model_gets_its_batches_on_the_device_asked_for() -> None:
    """The rows and noise stay on the CPU; every tensor the model sees is on ``device`` (the one
    device here is the CPU: the call is checked, and the numbers are the default's)."""
    seen: set[str] = set()

    def fn(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen.update(str(v.device) for v in (x, t, y))
        return torch.zeros_like(x)

    model = TorchEpsModel(fn, SCHEDULE, identity="zeros")
    x0, y = torch.randn(300, 3), torch.arange(300)
    a = adaptive.stratum_moments(model, x0, 500.0, row_kwargs={"y": y}, device="cpu")
    assert a == adaptive.stratum_moments(model, x0, 500.0, row_kwargs={"y": y})
    assert seen == {"cpu"}
    prof = adaptive.profile_fixed(model, x0, 4, timesteps=[0, 999], row_kwargs={"y": y})
    assert prof.metadata["device"] == "cpu"


# ===================================================================== the run
def test_the_interval_covers_a_known_truth() -> None:
    """``w(a) = std^2 a`` exactly: over 40 seeds the 95% intervals at a 5% target cover the true
    CPE at least 34 times (P(<= 33 of 40) < 0.5% at the nominal 95%), and every run says it
    reached the target with far fewer calls than fixed-N."""
    trajs = _trajectories()
    data = torch.zeros(64, 4)
    a = SCHEDULE.alpha_bar(GRID)
    truth = [adaptive.cpe_weights(t, np.sort(a)) @ (0.25 * np.sort(a)) for t in trajs]
    covered = 0
    for seed in range(40):
        res = adaptive.profile_to_precision(
            _planted(seed=seed), data, trajs, target=0.05, seed=seed, pilot=16
        )
        assert res.reached and np.all(res.relative_half_width <= 0.05)
        covered += all(
            abs(c - t) <= h for c, t, h in zip(res.cpe, truth, res.half_width, strict=True)
        )
        assert res.fixed_calls > 2 * res.model_calls
    assert stats.binom.cdf(33, 40, 0.95) < 0.005
    assert covered >= 34, covered


def test_agrees_with_fixed_serial_algorithm_1_on_the_exact_mixture() -> None:
    """On the exact 2-D mixture: adaptive (5% target) and fixed Algorithm 1 on the same grid,
    and the truth of the exact predictor (the Rao-Blackwellised spread), agree within the
    stated precision."""
    bed = make_testbed("mixture-2d")
    trajs = _trajectories(bed.schedule)
    res = adaptive.profile_to_precision(bed.oracle, bed.train_x, trajs, target=0.05, seed=1)
    assert res.reached
    # the truth: eps*'s own MSE is the irreducible spread, known to Monte-Carlo precision
    spread = bed.mixture.optimal_eps_variance(
        res.profile.alpha_bar, 40_000, torch.Generator().manual_seed(5)
    )
    truth_prof = ErrorProfile(alpha_bar=res.profile.alpha_bar, mse=spread.mse)
    fixed = profile_prediction_error(
        bed.oracle,
        bed.train_x[:4000],
        np.array(res.profile.timesteps),  # a writable copy for torch
        generator=torch.Generator().manual_seed(7),
        progress=False,
        dim_stats=False,
        reservoir_size=0,
    )
    for t, c, h in zip(trajs, res.cpe, res.half_width, strict=True):
        beta = adaptive.cpe_weights(t, res.profile.alpha_bar)
        true_cpe = cumulative_prediction_error(t, truth_prof)
        true_se = math.sqrt(float(np.sum(beta**2 * spread.sem**2)))
        assert abs(c - true_cpe) <= h + 3 * true_se, (c, true_cpe, h)
        fixed_cpe = cumulative_prediction_error(t, fixed)
        fixed_hw = adaptive.stratified_half_width(beta, fixed.mse_sem * math.sqrt(4000), 4000)
        assert abs(c - fixed_cpe) <= h + 1.5 * fixed_hw, (c, fixed_cpe)


def test_an_interrupted_run_resumes_to_the_same_result(tmp_path) -> None:
    bed = make_testbed("mixture-2d")
    trajs = _trajectories(bed.schedule)[:1]
    kw = dict(target=0.005, seed=2, pilot=8, checkpoint_dir=tmp_path / "ck")
    first = adaptive.profile_to_precision(bed.oracle, bed.train_x, trajs, **kw)
    files = sorted((tmp_path / "ck").glob("*.json"))
    assert len(files) > 1 and len(first.rounds) > 1
    for f in files[len(files) // 2 :]:  # as if it stopped half-way
        f.unlink()
    again = adaptive.profile_to_precision(bed.oracle, bed.train_x, trajs, **kw)
    assert np.array_equal(again.cpe, first.cpe) and again.model_calls == first.model_calls
    uninterrupted = adaptive.profile_to_precision(
        bed.oracle, bed.train_x, trajs, seed=2, target=0.005, pilot=8
    )
    assert np.array_equal(uninterrupted.cpe, first.cpe)
    with pytest.raises(ValueError, match="other arguments"):
        adaptive.profile_to_precision(bed.oracle, bed.train_x, trajs, **{**kw, "target": 0.004})


def test_a_budget_stops_the_run_and_says_so() -> None:
    res = adaptive.profile_to_precision(
        _planted(), torch.zeros(64, 4), _trajectories(), target=0.001, max_calls=20_000, pilot=16
    )
    assert not res.reached and res.model_calls <= 20_000
    assert res.rounds[0].total == 16 * res.profile.alpha_bar.size


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"target": 0.0}, "target"),
        ({"target": 1.5}, "target"),
        ({"confidence": 1.0}, "confidence"),
        ({"pilot": 1}, "pilot"),
        ({"growth": 0.5}, "growth"),
        ({"timesteps": [10, 10, 20]}, "duplicates"),
        ({"timesteps": [500, 999]}, "outside the profiled range"),
        ({"max_calls": 10}, "below the pilot"),
        ({"batch_size": 1000}, "batch_size must be an integer in 1..256"),
        ({"device": "nonsense"}, "invalid device"),
        ({"device": "cuda:99"}, "CUDA"),  # no CUDA here, or fewer than 100 GPUs
    ],
)
def test_bad_arguments_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        adaptive.profile_to_precision(_planted(), torch.zeros(8, 4), _trajectories(), **kw)


def test_a_model_without_identity_cannot_checkpoint(tmp_path) -> None:
    model = TorchEpsModel(lambda x, t: x, SCHEDULE)
    with pytest.raises(ValueError, match="declares no identity"):
        adaptive.profile_to_precision(
            model, torch.zeros(8, 4), _trajectories(), checkpoint_dir=tmp_path
        )


def test_launched_processes_reads_torchruns_world_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert adaptive.launched_processes() == 1
    for raw, n in (("", 1), ("1", 1), ("4", 4)):
        monkeypatch.setenv("WORLD_SIZE", raw)
        assert adaptive.launched_processes() == n
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer, got 'two'"):
        adaptive.launched_processes()
