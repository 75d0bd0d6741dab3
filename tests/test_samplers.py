import math

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


# --------------------------------------------------------------------------- registry and options
def test_unknown_sampler_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown sampler 'dpm_solver_4'; known samplers: ddim"):
        samplers.get_sampler("dpm_solver_4")
    with pytest.raises(ValueError, match="unknown sampler"):
        samplers.sample("Euler", GaussianOracle(), torch.zeros(1, 2), Trajectory([0.5]))


def test_registered_options_cannot_be_overridden_silently():
    with pytest.raises(TypeError, match=r"sampler 'dpm_solver_2' fixes \['order'\]"):
        samplers.get_sampler("dpm_solver_2")(
            GaussianOracle(), torch.zeros(1, 2), Trajectory([0.1, 0.5, 0.9]), order=3
        )


@pytest.mark.parametrize(
    ("fn", "options", "message"),
    [
        (samplers.sample_dpm_solver, {"order": 4}, r"unknown DPM-Solver order 4; expected one of"),
        (samplers.sample_dpm_solver_multistep, {"order": 3}, r"unknown multistep order 3"),
        (samplers.sample_deis, {"order": 4}, r"unknown DEIS order 4"),
        (samplers.sample_deis, {"basis": "sigma"}, r"unknown DEIS basis 'sigma'"),
        (samplers.sample_pndm, {"order": 5}, r"unknown PNDM order 5"),
        (samplers.sample_pndm, {"warmup": "rk2"}, r"unknown warmup 'rk2'"),
        (samplers.sample_dpm_solver, {"algorithm": "dpmsolver+"}, r"unknown algorithm"),
        (samplers.sample_dpm_solver, {"solver_type": "euler"}, r"unknown solver_type"),
        (samplers.sample_ddim, {"eta": 1.5}, r"eta must lie in \[0, 1\], got 1.5"),
        (samplers.sample_ddim, {"eta": -0.1}, r"eta must lie in \[0, 1\]"),
        (
            samplers.sample_dpm_solver,
            {"orders": [2, 2, 1]},
            r"cover 5 levels, the trajectory has 6",
        ),
        (samplers.sample_dpm_solver, {"orders": [3, 3]}, r"must be first order; orders end with 3"),
        (samplers.sample_dpm_solver, {"orders": [4, 1, 1]}, r"orders must each be one of"),
    ],
)
def test_unsupported_options_are_named(fn, options, message):
    traj = time_quadratic(NoiseSchedule.linear(), 6)
    with pytest.raises(ValueError, match=message):
        fn(GaussianOracle(), torch.zeros(2, 2, dtype=torch.float64), traj, **options)


def test_trajectory_and_x_T_types_are_checked():
    oracle = GaussianOracle()
    with pytest.raises(TypeError, match="trajectory must be a Trajectory, got list"):
        samplers.sample_ddim(oracle, torch.zeros(1, 2), [0.1, 0.5])
    with pytest.raises(TypeError, match="x_T must be a torch.Tensor, got ndarray"):
        samplers.sample_ddim(oracle, np.zeros((1, 2)), Trajectory([0.5]))
    with pytest.raises(TypeError, match="floating-point tensor, got torch.int64"):
        samplers.sample_ddim(oracle, torch.zeros(1, 2, dtype=torch.long), Trajectory([0.5]))
    with pytest.raises(ValueError, match="outside this schedule's range"):
        samplers.sample_ddim(oracle, torch.zeros(1, 2), Trajectory([1e-9, 0.5]))


def test_singlestep_groups_end_first_order_and_keep_full_order():
    for k in range(1, 40):
        for order in (1, 2, 3):
            groups = samplers.singlestep_groups(k, order)
            assert sum(groups) == k and groups[-1] == 1 and max(groups) <= order
            if order == 3 and k >= 4:
                # no first-order step before the last: one would cost the third order
                assert 1 not in groups[:-1]
    assert samplers.singlestep_groups(10, 3) == [3, 3, 3, 1]
    assert samplers.singlestep_groups(11, 3) == [3, 3, 2, 2, 1]
    assert samplers.singlestep_groups(12, 2) == [2, 2, 2, 2, 2, 1, 1]


# --------------------------------------------------------------------------- per-sample seeding
def test_initial_noise_is_the_same_sample_whatever_the_batch():
    full = samplers.initial_noise((10, 3), seed=42)
    torch.testing.assert_close(full[4:7], samplers.initial_noise((3, 3), seed=42, start=4))
    assert not torch.equal(full, samplers.initial_noise((10, 3), seed=43))
    # samples are independent streams, not shifted copies of one another
    assert len({v for r in full for v in r.tolist()}) == 30
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        samplers.initial_noise((2, 3), seed=-1)


def test_stochastic_ddim_is_batch_invariant_with_per_sample_generators():
    oracle = GaussianOracle()
    traj = time_quadratic(oracle.schedule, 9)
    x = samplers.initial_noise((6, 4), seed=1, dtype=torch.float64)
    gens = samplers.sample_generators(5, 6)
    full = samplers.sample_ddim(oracle, x, traj, eta=0.5, generator=gens)
    first = samplers.sample_ddim(
        oracle, x[:2], traj, eta=0.5, generator=samplers.sample_generators(5, 2)
    )
    rest = samplers.sample_ddim(
        oracle, x[2:], traj, eta=0.5, generator=samplers.sample_generators(5, 4, start=2)
    )
    torch.testing.assert_close(full, torch.cat([first, rest]), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="3 generators given for a batch of 6 samples"):
        samplers.sample_ddim(oracle, x, traj, eta=0.5, generator=samplers.sample_generators(5, 3))


def test_stochastic_ddim_adds_noise_of_the_stated_size():
    """A model predicting eps_hat = 0 from x = sqrt(a) x0: the step lands at sqrt(a') x0 + s z,
    so the spread of x' around sqrt(a') x0 over many samples measures the s actually applied
    (DDIM eq. 16; eta = 1: the DDPM posterior variance (1 - a') / (1 - a) (1 - a / a'))."""
    sched = NoiseSchedule.linear()
    zero = TorchEpsModel(lambda x, t: torch.zeros_like(x), sched)
    a, a_next = float(sched.alpha_bar(600.0)), float(sched.alpha_bar(300.0))
    x0 = torch.full((40000, 1), 0.5, dtype=torch.float64)
    x = math.sqrt(a) * x0
    traj = Trajectory([a, a_next])
    for eta in (0.0, 0.5, 1.0):
        records: list[StepRecord] = []
        samplers.sample_ddim(
            zero,
            x,
            traj,
            eta=eta,
            generator=torch.Generator().manual_seed(1),
            callback=records.append,
        )
        x_next = records[1].x  # the state after the first (stochastic) step
        spread = float((x_next - math.sqrt(a_next) * x0).std())
        expected = eta * math.sqrt((1 - a_next) / (1 - a) * (1 - a / a_next))
        assert spread == pytest.approx(expected, rel=0.02, abs=1e-12)
    assert samplers.ddim_noise_std(a, 1.0, 1.0) == 0.0


# --------------------------------------------------------------------------- conditioning
def test_class_labels_pass_through_as_the_guided_model_does():
    from vrg_analysis.models.checkpoints import load_trained
    from vrg_analysis.models.guidance import GuidedEpsModel

    net = load_trained("digits-unet-cond")
    labels = torch.tensor([0, 3, 7])
    x = samplers.initial_noise((3, 1, 8, 8), seed=0)
    traj = time_quadratic(net.schedule, 4)
    via_kwargs = samplers.sample_dpm_solver_pp_2m(net, x, traj, model_kwargs={"y": labels})
    via_wrapper = samplers.sample_dpm_solver_pp_2m(GuidedEpsModel(net, labels, 1.0), x, traj)
    torch.testing.assert_close(via_kwargs, via_wrapper)
    unconditional = samplers.sample_dpm_solver_pp_2m(net, x, traj)
    assert not torch.allclose(via_kwargs, unconditional)
    guided = samplers.sample_dpm_solver_pp_2m(GuidedEpsModel(net, labels, 3.0), x, traj)
    assert not torch.allclose(guided, via_wrapper)


def test_dpm_solver_3_follows_algorithm_2_of_the_paper():
    """One third-order group by hand, Lu et al. 2022a, Algorithm 2 (noise prediction):
    u1 = (al1/al0) x - s1 (e^{r1 h} - 1) e0
    u2 = (al2/al0) x - s2 (e^{r2 h} - 1) e0 - s2 (r2/r1) ((e^{r2 h} - 1)/(r2 h) - 1) (e1 - e0)
    x3 = (al3/al0) x - s3 (e^h - 1) e0 - (s3/r2) ((e^h - 1)/h - 1) (e2 - e0)."""
    oracle = GaussianOracle(c=0.7)
    levels = [0.05, 0.12, 0.3, 0.55]
    traj = Trajectory(levels)
    x = samplers.initial_noise((5, 2), 0, dtype=torch.float64)
    records: list[StepRecord] = []
    samplers.sample_dpm_solver(oracle, x, traj, order=3, orders=[3, 1], callback=records.append)
    al = [np.sqrt(a) for a in levels]
    sg = [np.sqrt(1 - a) for a in levels]
    lam = [np.log(al[i] / sg[i]) for i in range(4)]
    h = lam[3] - lam[0]
    r1, r2 = (lam[1] - lam[0]) / h, (lam[2] - lam[0]) / h

    def eps(z, a):
        return oracle(z, torch.full((5,), float(oracle.schedule.t_from_alpha_bar(a))))

    e0 = eps(x, levels[0])
    u1 = al[1] / al[0] * x - sg[1] * np.expm1(r1 * h) * e0
    e1 = eps(u1, levels[1])
    u2 = (
        al[2] / al[0] * x
        - sg[2] * np.expm1(r2 * h) * e0
        - sg[2] * (r2 / r1) * (np.expm1(r2 * h) / (r2 * h) - 1) * (e1 - e0)
    )
    e2 = eps(u2, levels[2])
    x3 = (
        al[3] / al[0] * x
        - sg[3] * np.expm1(h) * e0
        - sg[3] / r2 * (np.expm1(h) / h - 1) * (e2 - e0)
    )
    torch.testing.assert_close(records[1].x, u1)
    torch.testing.assert_close(records[2].x, u2)
    torch.testing.assert_close(records[3].x, x3)
    diffusers_form = []
    samplers.sample_dpm_solver(
        oracle,
        x,
        traj,
        order=3,
        orders=[3, 1],
        intermediate="diffusers",
        callback=diffusers_form.append,
    )
    assert not torch.allclose(diffusers_form[2].x, u2)  # the two forms differ at u2


def test_step_noise_is_independent_of_the_starting_noise():
    x_T = samplers.initial_noise((4, 3), 0)
    z0 = samplers.draw_noise((4, 3), samplers.sample_generators(0, 4))
    assert not torch.equal(x_T, z0)
    assert abs(float(torch.corrcoef(torch.stack([x_T.flatten(), z0.flatten()]))[0, 1])) < 0.9
