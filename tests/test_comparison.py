"""The paired-comparison engine: pairing by starting noise, verdicts that can go either way,
and clear errors for bad configurations."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.studies.engine import (
    ArmResult,
    ComparisonConfig,
    ComparisonResult,
    judge,
    paired_comparison,
    profiles_for,
    run_comparison,
    setup_testbed,
)
from vrg_analysis.testbeds import make_testbed
from vrg_analysis.vrg.arms import GlobalOptimumArm
from vrg_analysis.vrg.retime import PUBLISHED_VRG, VRGSetting

SETTING = VRGSetting(0.1, 100.0)


def _arm(variant: str, seed: int, feats: np.ndarray, score: np.ndarray) -> ArmResult:
    mean, cov = np.zeros(2), np.eye(2)
    from vrg_analysis.evaluation.metrics import frechet_distance, gaussian_moments

    m, c = gaussian_moments(feats)
    return ArmResult(
        sampler="ddim",
        baseline="time_uniform",
        K=5,
        variant=variant,
        seed=seed,
        nfe=5,
        cpe=1.0 if variant == "baseline" else 0.8,
        alpha_bar=np.linspace(0.1, 0.9, 5),
        set_value=frechet_distance(m, c, mean, cov),
        features=feats,
        per_sample={"image_mse": score},
    )


def _result(shift_vrg: float, score_shift: float, n: int = 300) -> ComparisonResult:
    rng = np.random.default_rng(1)
    arms = []
    for seed in (0, 1, 2):
        base = rng.normal(size=(n, 2))
        score = rng.exponential(size=n)
        noise = 0.05 * rng.normal(size=n)
        arms.append(_arm("baseline", seed, base, score))
        arms.append(_arm(SETTING.label, seed, base + shift_vrg, score + score_shift + noise))
    config = ComparisonConfig(
        testbed="mixture-2d", samplers=("ddim",), steps=(5,), arms=(SETTING,), seeds=(0, 1, 2)
    )
    profile = ErrorProfile(alpha_bar=np.array([0.01, 0.99]), mse=np.array([1.0, 1.0]))
    return ComparisonResult(
        config=config,
        set_metric="frechet",
        arms=tuple(arms),
        profile=profile,
        reference_moments=(np.zeros(2), np.eye(2)),
        model_calls=0,
    )


def test_lower_error_is_supported_and_higher_contradicted() -> None:
    better = paired_comparison(_result(0.0, -0.2), "ddim", "time_uniform", 5, metric="image_mse")
    worse = paired_comparison(_result(0.0, +0.2), "ddim", "time_uniform", 5, metric="image_mse")
    assert better.delta == pytest.approx(-0.2, abs=0.01)
    assert better.ci_high < 0 < worse.ci_low
    assert len(better.seed_deltas) == 3 and all(d < 0 for d in better.seed_deltas)
    judged = judge([better, worse])
    assert [c.verdict for c in judged] == ["supported", "contradicted"]
    assert all(c.p_adjusted >= c.p_value for c in judged)


def test_no_difference_is_inconclusive() -> None:
    same = paired_comparison(_result(0.0, 0.0), "ddim", "time_uniform", 5, metric="image_mse")
    assert same.ci_low < 0 < same.ci_high
    assert judge([same])[0].verdict == "inconclusive"


def test_set_metric_sees_a_shifted_distribution() -> None:
    shifted = paired_comparison(_result(0.5, 0.0), "ddim", "time_uniform", 5)
    assert shifted.metric == "frechet"
    # Frechet distance of N(0.5, I) from N(0, I) is |0.5|^2 * 2 = 0.5 (plus sampling noise)
    assert shifted.delta == pytest.approx(0.5, abs=0.1)
    assert shifted.ci_low > 0
    assert judge([shifted])[0].verdict == "contradicted"
    assert shifted.base_cpe == 1.0 and shifted.vrg_cpe == 0.8


def test_bad_arguments_are_named() -> None:
    r = _result(0.0, 0.0)
    with pytest.raises(ValueError, match="unknown metric"):
        paired_comparison(r, "ddim", "time_uniform", 5, metric="precision")
    with pytest.raises(ValueError, match="was not measured"):
        paired_comparison(r, "ddim", "time_uniform", 5, metric="exact_error")
    with pytest.raises(KeyError):
        paired_comparison(r, "ddim", "time_uniform", 7)
    with pytest.raises(ValueError, match="alpha"):
        judge([], alpha=1.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"samplers": ("euler",)}, "euler"),
        ({"baselines": ("cosine",)}, "unknown baseline"),
        ({"steps": (0,)}, "steps"),
        ({"seeds": (1, 1)}, "seeds"),
        ({"n_samples": 1}, "n_samples"),
        ({"arms": ()}, "at least one"),
        ({"arms": (PUBLISHED_VRG, PUBLISHED_VRG)}, "distinct"),
        ({"predictor": "perfect"}, "predictor"),
        ({"planted_correlation": 1.0}, "planted_correlation"),
        ({"reference_steps": 1}, "reference_steps"),
    ],
)
def test_bad_configurations(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ComparisonConfig(testbed="digits", **kwargs)


@pytest.mark.parametrize("gamma", [-0.1, 1.0, float("nan")])
def test_out_of_range_gamma(gamma: float) -> None:
    with pytest.raises(ValueError, match="gamma"):
        VRGSetting(gamma, 100.0)


@pytest.fixture(scope="module")
def small_run() -> ComparisonResult:
    torch.set_num_threads(1)
    config = ComparisonConfig(
        testbed="mixture-2d",
        samplers=("ddim", "s_pndm", "ddpm"),
        baselines=("time_uniform",),
        steps=(4,),
        seeds=(0, 1),
        n_samples=48,
        arms=(VRGSetting(0.0, 100.0), PUBLISHED_VRG),
        reference_steps=20,
        exact_reference=True,
        profile_stride=50,
        profile_samples=64,
    )
    return run_comparison(config, use_cache=False)


def test_the_profile_cache_is_bypassed_too(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VRG_CACHE_DIR", str(tmp_path))
    config = ComparisonConfig(
        testbed="mixture-2d",
        samplers=("ddim",),
        baselines=("time_uniform",),
        steps=(3,),
        seeds=(0, 1),
        n_samples=8,
        reference_steps=5,
        profile_stride=200,
        profile_samples=16,
    )
    run_comparison(config, use_cache=False)
    assert not list(tmp_path.iterdir())
    run_comparison(config, use_cache=True)
    assert {p.name.split("-")[0] for p in tmp_path.glob("*.pkl")} == {"profile", "comparison"}


def test_gamma_zero_reproduces_the_baseline_sample_for_sample(small_run: ComparisonResult) -> None:
    zero = VRGSetting(0.0, 100.0).label
    for sampler in ("ddim", "s_pndm", "ddpm"):  # ddpm: the per-step noise is shared too
        for seed in (0, 1):
            b = small_run.arm(sampler, "time_uniform", 4, "baseline", seed)
            v = small_run.arm(sampler, "time_uniform", 4, zero, seed)
            np.testing.assert_array_equal(b.features, v.features)
            assert b.nfe == v.nfe
    c = paired_comparison(small_run, "ddim", "time_uniform", 4, zero, metric="image_mse")
    assert c.delta == 0.0 and c.p_value == 1.0
    assert judge([c])[0].verdict == "inconclusive"


def test_arms_cost_the_same_and_seeds_differ(small_run: ComparisonResult) -> None:
    label = PUBLISHED_VRG.label
    b = small_run.arm("s_pndm", "time_uniform", 4, "baseline", 0)
    v = small_run.arm("s_pndm", "time_uniform", 4, label, 0)
    assert b.nfe == v.nfe == 5  # S-PNDM: K + 1 calls on both arms
    assert v.cpe < b.cpe  # VRG lowers its own objective
    assert not np.array_equal(b.alpha_bar, v.alpha_bar)
    # different seeds draw different starting noise
    b1 = small_run.arm("s_pndm", "time_uniform", 4, "baseline", 1)
    assert not np.array_equal(b.features, b1.features)
    # exact metrics were measured; the exact error is not the fine-step deviation
    assert {"log_likelihood", "image_mse", "exact_error"} <= set(b.per_sample)
    assert not np.allclose(b.per_sample["exact_error"], b.per_sample["image_mse"])
    rows = small_run.rows()
    assert len(rows) == 3 * 3 * 2  # samplers x variants x seeds
    assert small_run.model_calls == 2 * (20 + 4 * 3 + 5 * 3 + 4 * 3)


def test_replace_keeps_verdict_fields() -> None:
    c = paired_comparison(_result(0.0, -0.2), "ddim", "time_uniform", 5, metric="image_mse")
    assert replace(c, verdict="supported").verdict == "supported"
    assert c.relative == pytest.approx(c.delta / c.base_value)


def test_checkpoint_folder_runs_end_to_end(tmp_path) -> None:
    pytest.importorskip("diffusers")
    from test_models_diffusers import _save, _tiny_unet

    folder = _save(tmp_path / "tiny", _tiny_unet(), num_train_timesteps=1000)
    rng = np.random.default_rng(0)
    data = tmp_path / "data.npy"
    np.save(data, rng.uniform(-1, 1, size=(40, 1, 8, 8)).astype(np.float32))
    config = ComparisonConfig(
        testbed=str(folder),
        data=str(data),
        samplers=("ddim",),
        baselines=("time_uniform",),
        steps=(3,),
        seeds=(0, 1),
        n_samples=6,
        reference_steps=5,
        profile_stride=100,
        profile_samples=16,
    )
    res = run_comparison(config, use_cache=False)
    assert res.set_metric == "pixel_frechet"
    c = paired_comparison(res, "ddim", "time_uniform", 3, n_boot=50)
    assert np.isfinite(c.delta) and c.ci_low <= c.ci_high
    assert res.arm("ddim", "time_uniform", 3, "baseline", 0).features.shape == (6, 64)


def test_checkpoint_configuration_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="not a folder holding a diffusers checkpoint"):
        ComparisonConfig(testbed="cifar10-ddpm")
    with pytest.raises(ValueError, match="needs data"):
        ComparisonConfig(testbed=str(tmp_path))


def test_reference_frechet_agrees_with_the_library_distance() -> None:
    from vrg_analysis.evaluation.metrics import frechet_distance, gaussian_moments
    from vrg_analysis.studies.engine import FrechetToReference

    rng = np.random.default_rng(3)
    ref = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    x = rng.normal(size=(300, 6)) * 1.5 + 0.3
    moments = gaussian_moments(ref)
    m, c = gaussian_moments(x)
    fast = FrechetToReference(moments)(x)
    assert fast == pytest.approx(frechet_distance(m, c, *moments), rel=1e-9)
    assert FrechetToReference(moments)(ref) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"testbed": "digits", "guidance_scale": 2.0}, "class-conditional"),
        ({"testbed": "digits", "exact_reference": True}, "no exact predictor"),
        ({"testbed": "digits", "predictor": "planted"}, "no exact predictor"),
    ],
)
def test_what_the_testbed_cannot_do_is_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        setup_testbed(ComparisonConfig(**kwargs))


def test_arms_given_as_mappings_and_their_keys() -> None:
    cfg = ComparisonConfig(arms=({"gamma": 0.1, "reg_lambda": 1e4},))
    assert cfg.arms == (VRGSetting(0.1, 1e4),)
    assert cfg.to_dict()["arms"] == [
        {
            "kind": "vrg",
            "gamma": 0.1,
            "reg_lambda": 1e4,
            "keep_start": False,
            "method": "exact",
            "mlp_epochs": 3000,
        }
    ]
    with pytest.raises(TypeError, match="label, retime and to_dict"):
        ComparisonConfig(arms=(3,))


def test_planted_error_decomposes_into_discretisation_and_propagated() -> None:
    torch.set_num_threads(1)
    config = ComparisonConfig(
        testbed="mixture-2d",
        samplers=("ddim",),
        baselines=("time_uniform",),
        steps=(5,),
        seeds=(0, 1),
        n_samples=64,
        arms=(PUBLISHED_VRG, GlobalOptimumArm(start_held=True, grid_size=200)),
        predictor="planted",
        planted_size=0.5,
        reference_steps=0,
        decompose=True,
        spread=True,
        profile_stride=50,
        profile_samples=128,
        profile_per_seed=True,
    )
    res = run_comparison(config, use_cache=False)
    b0 = res.arm("ddim", "time_uniform", 5, "baseline", 0)
    assert "image_mse" not in b0.per_sample  # no fine solve asked for
    per = b0.per_sample
    # the endpoint error splits into discretisation and propagated parts (up to a cross term)
    total, disc, prop = (
        per[k].mean() for k in ("exact_error", "discretisation_error", "propagated_error")
    )
    assert 0 < disc < total and 0 < prop < total
    assert total == pytest.approx(disc + prop, rel=0.5)
    # a planted error adds to the spread: the model-error CPE is positive and below the total
    assert 0 < b0.cpe_model_error < b0.cpe
    # per-seed profiles differ (fresh training rows and draws per seed)
    assert not np.array_equal(res.profiles[0].mse, res.profiles[1].mse)
    assert set(res.spread_profiles) == {0, 1}
    # the same planted-noise stream in every arm: the global optimum with the start held keeps a_K
    g = res.arm("ddim", "time_uniform", 5, config.arms[1].label, 0)
    assert g.alpha_bar[0] == b0.alpha_bar[0] and g.cpe <= b0.cpe
    assert g.optimisation["converged"] and "cpe_reduction" in g.optimisation


def test_a_planted_bias_is_added_to_the_exact_predictor() -> None:
    cfg = ComparisonConfig(
        testbed="mixture-2d",
        samplers=("ddim",),
        baselines=("time_uniform",),
        steps=(3,),
        seeds=(0,),
        n_samples=4,
        predictor="planted",
        planted_error="constant",
        planted_size=0.0,
        planted_bias=0.3,
        reference_steps=0,
        profile_stride=250,
        profile_samples=32,
    )
    profile, spread, model = profiles_for(cfg, use_cache=False)
    bed = make_testbed("mixture-2d")
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.full((5,), 500.0)
    assert torch.allclose(model(x, t) - bed.oracle(x, t), torch.full((5, 2), 0.3, dtype=x.dtype))
    unbiased = profiles_for(replace(cfg, planted_bias=0.0), use_cache=False)[0]
    # the profile carries the bias squared on top of the unbiased error (P2), up to the cross
    # term 2 bias mean(error), which vanishes where the error is small (high noise)
    small = unbiased.mse < 1e-2
    assert small.any()
    np.testing.assert_allclose((profile.mse - unbiased.mse)[small], 0.09, atol=0.01)
    assert spread is None
    with pytest.raises(ValueError, match="planted_bias"):
        replace(cfg, planted_bias=float("nan"))
