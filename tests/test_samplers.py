import numpy as np
import pytest
import torch
from analytic import GaussianOracle

from vrg_analysis import NoiseSchedule, TorchEpsModel, Trajectory, samplers, time_quadratic
from vrg_analysis.samplers import StepRecord


def _endpoint_error(k: int) -> float:
    oracle = GaussianOracle(c=0.5)
    traj = time_quadratic(oracle.schedule, k)
    x_t = torch.randn(256, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = samplers.sample_ddim(oracle, x_t, traj)
    a_t = traj.alpha_bar[0]
    exact = oracle.flow(x_t / np.sqrt(a_t), traj.sigma[0], 0.0)
    return float((out - exact).pow(2).mean().sqrt())


def test_ddim_converges_at_first_order():
    errs = [_endpoint_error(k) for k in (25, 50, 100, 200)]
    slope = np.polyfit(np.log([25, 50, 100, 200]), np.log(errs), 1)[0]
    assert -1.3 < slope < -0.8  # Euler on the probability-flow ODE: order 1
    assert errs[-1] < 1e-2


def test_ddim_callback_records_and_model_calls():
    oracle = GaussianOracle()
    traj = Trajectory([0.01, 0.2, 0.7])
    records: list[StepRecord] = []
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = samplers.sample_ddim(oracle, x, traj, callback=records.append)
    assert oracle.calls == 3 and len(records) == 3
    assert [r.step for r in records] == [0, 1, 2]
    assert [r.alpha_bar for r in records] == pytest.approx([0.01, 0.2, 0.7])
    assert records[-1].alpha_bar_next == 1.0
    # the last step lands exactly on the predicted clean sample
    torch.testing.assert_close(out, records[-1].x0_hat)
    # x0_hat is consistent with x_t = sqrt(a) x0_hat + sqrt(1 - a) eps_hat
    r = records[1]
    torch.testing.assert_close(
        r.x, np.sqrt(r.alpha_bar) * r.x0_hat + np.sqrt(1 - r.alpha_bar) * r.eps_hat
    )
    assert records[1].t == pytest.approx(float(oracle.schedule.t_from_alpha_bar(0.2)), rel=1e-6)


def test_ddim_is_batch_invariant_and_deterministic():
    oracle = GaussianOracle()
    traj = time_quadratic(oracle.schedule, 7)
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    full = samplers.sample_ddim(oracle, x, traj)
    half = torch.cat(
        [samplers.sample_ddim(oracle, x[:3], traj), samplers.sample_ddim(oracle, x[3:], traj)]
    )
    torch.testing.assert_close(full, half, rtol=0, atol=1e-12)
    torch.testing.assert_close(full, samplers.sample_ddim(oracle, x, traj), rtol=0, atol=0)


def test_ddim_matches_diffusers_on_integer_timesteps():
    """diffusers' DDIMScheduler (eta 0, clip_sample off) on its own integer timesteps."""
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDIMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", clip_sample=False, set_alpha_to_one=True
    )
    sched.set_timesteps(10)
    ours = NoiseSchedule(sched.alphas_cumprod.double().numpy())
    oracle = GaussianOracle(schedule=ours)
    steps = sched.timesteps.numpy()
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ref = x.clone()
    for t in steps:
        eps = oracle(ref, torch.full((6,), float(t)))
        ref = sched.step(eps, int(t), ref).prev_sample
    # diffusers ends at alpha_bar(0) ("set_alpha_to_one" makes the final prev level 1.0).
    traj = Trajectory(ours.alpha_bar(steps.astype(float)))
    mine = samplers.sample_ddim(oracle, x, traj)
    # diffusers keeps alphas_cumprod in float32: agreement to float32 precision.
    torch.testing.assert_close(mine, ref.double(), rtol=1e-5, atol=1e-5)


def test_bad_model_outputs_are_named():
    sched = NoiseSchedule.linear()
    traj = Trajectory([0.1, 0.5])
    x = torch.zeros(2, 3)
    wrong = TorchEpsModel(lambda x, t: x[:, :2], sched)
    with pytest.raises(ValueError, match=r"model returned shape \(2, 2\) for input of shape"):
        samplers.sample_ddim(wrong, x, traj)
    nan = TorchEpsModel(lambda x, t: x * float("nan"), sched)
    with pytest.raises(ValueError, match="non-finite value"):
        samplers.sample_ddim(nan, x, traj)
    with pytest.raises(ValueError, match="x_T contains non-finite"):
        samplers.sample_ddim(GaussianOracle(), torch.full((1, 2), float("inf")), traj)


def test_x0_and_v_prediction_adapters_convert_to_eps():
    oracle = GaussianOracle()
    sched = oracle.schedule
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    t = torch.full((5,), 300.0, dtype=torch.float64)
    a = float(sched.alpha_bar(300.0))
    eps = oracle(x, t)
    x0 = (x - np.sqrt(1 - a) * eps) / np.sqrt(a)
    v = np.sqrt(a) * eps - np.sqrt(1 - a) * x0
    as_x0 = TorchEpsModel(lambda x, t: x0, sched, prediction="sample")
    as_v = TorchEpsModel(lambda x, t: v, sched, prediction="v_prediction")
    torch.testing.assert_close(as_x0(x, t), eps)
    torch.testing.assert_close(as_v(x, t), eps)
    with pytest.raises(ValueError, match="unknown prediction type 'score'"):
        TorchEpsModel(lambda x, t: x, sched, prediction="score")
