"""The diffusers adapter on a real (tiny, randomly initialised) UNet2DModel saved to a folder.

Nothing is mocked: the model and scheduler are written with ``save_pretrained`` in the standard
layout (``unet/``, ``scheduler/``) and read back through :func:`load_diffusers_model`.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from vrg_analysis.core.trajectories import time_uniform  # noqa: E402
from vrg_analysis.io import sha256_file  # noqa: E402
from vrg_analysis.models import (  # noqa: E402
    DiffusersEpsModel,
    EpsModel,
    TorchEpsModel,
    load_diffusers_model,
    schedule_from_diffusers_config,
)
from vrg_analysis.samplers import sample_ddim  # noqa: E402


def _tiny_unet() -> diffusers.UNet2DModel:
    torch.manual_seed(0)  # diffusers initialises from the global generator
    return diffusers.UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    ).eval()


def _save(root: Path, unet: diffusers.UNet2DModel, **scheduler_kwargs: object) -> Path:
    unet.save_pretrained(root / "unet")
    diffusers.DDPMScheduler(**scheduler_kwargs).save_pretrained(root / "scheduler")
    return root


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def unet() -> diffusers.UNet2DModel:
    return _tiny_unet()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, unet: diffusers.UNet2DModel) -> Path:
    return _save(tmp_path_factory.mktemp("ddpm") / "tiny-ddpm", unet, num_train_timesteps=1000)


@pytest.fixture(scope="module")
def model(folder: Path) -> DiffusersEpsModel:
    return load_diffusers_model(folder)


def _batch(n: int = 6, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    t = torch.tensor([0.0, 17.5, 250.0, 499.25, 800.0, 999.0])[:n]
    return x, t


# ------------------------------------------------------------------------------ loading
def test_loads_as_eps_model_with_provenance(model: DiffusersEpsModel, folder: Path) -> None:
    assert isinstance(model, EpsModel)
    assert isinstance(model, TorchEpsModel)
    assert model.path == folder
    assert model.name.startswith("tiny-ddpm")
    assert model.prediction == "epsilon"
    assert model.sample_shape == (1, 8, 8)
    assert model.device == torch.device("cpu") and model.dtype == torch.float32
    (weights,) = sorted((folder / "unet").glob("diffusion_pytorch_model*"))
    assert model.weights_files == (weights.name,)
    assert model.weights_sha256 == sha256_file(weights)
    assert not model.unet.training


def test_offline_flag_is_restored(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    load_diffusers_model(folder)
    import os

    assert "HF_HUB_OFFLINE" not in os.environ


def test_schedule_equals_diffusers_alphas_cumprod(model: DiffusersEpsModel) -> None:
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000).alphas_cumprod.double().numpy()
    assert model.schedule.num_timesteps == 1000
    # diffusers forms betas and their cumulative product in float32; we do it in float64
    np.testing.assert_allclose(model.schedule.alphas_cumprod, ref, rtol=2e-5, atol=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
        {"beta_schedule": "squaredcos_cap_v2"},
        {"beta_schedule": "sigmoid"},
        {"beta_schedule": "linear", "num_train_timesteps": 50, "beta_end": 0.2},
        {"trained_betas": np.linspace(1e-3, 0.05, 40).tolist(), "num_train_timesteps": 40},
    ],
)
def test_schedule_matches_diffusers_for_each_beta_schedule(kwargs: dict) -> None:
    sched = diffusers.DDPMScheduler(**kwargs)
    ours = schedule_from_diffusers_config(dict(sched.config))
    ref = sched.alphas_cumprod.double().numpy()
    np.testing.assert_allclose(ours.alphas_cumprod, ref, rtol=2e-5, atol=0)


# ------------------------------------------------------------------------------ calling
def test_output_equals_direct_unet_call(model: DiffusersEpsModel, unet) -> None:
    x, t = _batch()
    with torch.no_grad():
        ref = unet(x, t).sample
    out = model(x, t)
    assert out.dtype == x.dtype and out.device == x.device
    assert out.abs().max() > 0  # a zero-initialised output layer would make this test vacuous
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    # fractional timesteps really reach the embedding: t and t + 0.5 differ
    assert not torch.equal(model(x, t + 0.5), out)


def test_batch_size_chunking_is_exact(folder: Path, model: DiffusersEpsModel) -> None:
    x, t = _batch()
    full = model(x, t)
    for bs in (1, 4):  # 4: a last chunk of 2
        chunked = load_diffusers_model(folder, batch_size=bs)(x, t)
        # equal up to float32 rounding (CPU convolution kernels depend on the batch size)
        torch.testing.assert_close(chunked, full, rtol=1e-5, atol=1e-5)


def test_float64_input_comes_back_float64(model: DiffusersEpsModel) -> None:
    x, t = _batch()
    out = model(x.double(), t.double())
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, model(x, t).double())


def test_runs_inside_ddim(model: DiffusersEpsModel, unet) -> None:
    traj = time_uniform(model.schedule, 5)
    x_T = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))  # noqa: N806
    out = sample_ddim(model, x_T, traj)
    ref = sample_ddim(TorchEpsModel(lambda x, t: unet(x, t).sample, model.schedule), x_T, traj)
    assert out.shape == x_T.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("prediction", ["v_prediction", "sample"])
def test_prediction_type_is_converted_to_eps(tmp_path: Path, unet, prediction: str) -> None:
    folder = _save(tmp_path / "m", unet, prediction_type=prediction)
    m = load_diffusers_model(folder)
    assert m.prediction == prediction
    x, _ = _batch()
    t = torch.tensor([0.0, 10.0, 100.0, 400.0, 700.0, 999.0])  # integer: no interpolation
    a = diffusers.DDPMScheduler().alphas_cumprod[t.long()].reshape(-1, 1, 1, 1)
    with torch.no_grad():
        out = unet(x, t).sample
    if prediction == "v_prediction":  # v = sqrt(a) eps - sqrt(1-a) x0  =>  eps = sqrt(a) v + ...
        ref = a.sqrt() * out + (1 - a).sqrt() * x
    else:  # x = sqrt(a) x0 + sqrt(1-a) eps
        ref = (x - a.sqrt() * out) / (1 - a).sqrt()
    torch.testing.assert_close(m(x, t), ref, rtol=1e-4, atol=1e-4)


def test_root_layout_and_learned_variance(tmp_path: Path) -> None:
    """Model and scheduler config side by side in one folder, weights as ``.bin``, and a
    learned-variance output ``[eps, v]`` of which the first half is the noise."""
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=8, in_channels=1, out_channels=2, block_out_channels=(8, 16),
        layers_per_block=1, norm_num_groups=8,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
    ).eval()  # fmt: skip
    unet.save_pretrained(tmp_path, safe_serialization=False)  # the older .bin format
    diffusers.DDPMScheduler(variance_type="learned_range").save_pretrained(tmp_path)
    m = load_diffusers_model(tmp_path)
    assert m.weights_files == ("diffusion_pytorch_model.bin",)
    x, t = _batch()
    with torch.no_grad():
        ref = unet(x, t).sample[:, :1]
    torch.testing.assert_close(m(x, t), ref, rtol=0, atol=0)


# ------------------------------------------------------------------------------ bad input
def test_fp16_on_cpu_is_refused(folder: Path) -> None:
    with pytest.raises(ValueError, match="only supported on CUDA"):
        load_diffusers_model(folder, dtype=torch.float16)
    with pytest.raises(ValueError, match="only supported on CUDA"):
        load_diffusers_model(folder, dtype="bf16")


def test_cuda_requested_without_cuda(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA requested .* but not available"):
        load_diffusers_model(folder, device="cuda")


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"device": "tpu"}, ValueError, "device"),
        ({"dtype": "int8"}, ValueError, "unknown dtype 'int8'"),
        ({"dtype": 3}, TypeError, "dtype must be"),
        ({"batch_size": 0}, ValueError, "batch_size must be a positive integer or None, got 0"),
        ({"batch_size": 2.5}, ValueError, "got 2.5"),
        ({"subfolder": "nope"}, ValueError, "no diffusers model found"),
    ],
)
def test_bad_options(folder: Path, kwargs: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        load_diffusers_model(folder, **kwargs)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_diffusers_model(tmp_path / "missing")


def test_folder_without_scheduler_config(tmp_path: Path, folder: Path) -> None:
    shutil.copytree(folder / "unet", tmp_path / "unet")
    with pytest.raises(ValueError, match=rf"no scheduler config in diffusers folder '{tmp_path}'"):
        load_diffusers_model(tmp_path)


def test_folder_without_model(tmp_path: Path, folder: Path) -> None:
    shutil.copytree(folder / "scheduler", tmp_path / "scheduler")
    with pytest.raises(ValueError, match=rf"no diffusers model found in folder '{tmp_path}'"):
        load_diffusers_model(tmp_path)


def test_model_config_without_weights(tmp_path: Path, folder: Path) -> None:
    shutil.copytree(folder, tmp_path / "m")
    for w in (tmp_path / "m" / "unet").glob("diffusion_pytorch_model*"):
        w.unlink()
    with pytest.raises(ValueError, match="no model weights"):
        load_diffusers_model(tmp_path / "m")


def _edit_json(path: Path, **changes: object) -> None:
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))


@pytest.mark.parametrize(
    ("file", "changes", "match"),
    [
        ("scheduler", {"beta_schedule": "laplace"}, "unsupported beta_schedule 'laplace'"),
        ("scheduler", {"prediction_type": "flow"}, "unsupported prediction_type 'flow'"),
        ("scheduler", {"rescale_betas_zero_snr": True}, "rescale_betas_zero_snr"),
        ("scheduler", {"num_train_timesteps": 1}, "num_train_timesteps must be"),
        ("unet", {"_class_name": "UNet2DConditionModel"}, "'UNet2DConditionModel' is not"),
    ],
)
def test_bad_configs(tmp_path: Path, folder: Path, file: str, changes: dict, match: str) -> None:
    shutil.copytree(folder, tmp_path / "m")
    name = "scheduler_config.json" if file == "scheduler" else "config.json"
    _edit_json(tmp_path / "m" / file / name, **changes)
    with pytest.raises(ValueError, match=match):
        load_diffusers_model(tmp_path / "m")


def test_scheduler_config_without_betas_is_not_vp() -> None:
    with pytest.raises(ValueError, match="not a DDPM-type"):
        schedule_from_diffusers_config({"_class_name": "ScoreSdeVeScheduler", "sigma_max": 50.0})


def test_wrong_input_shape(model: DiffusersEpsModel) -> None:
    with pytest.raises(ValueError, match=r"expects \[B, 1, H, W\]"):
        model(torch.zeros(2, 3, 8, 8), torch.zeros(2))
    with pytest.raises(ValueError, match="t has shape"):
        model(torch.zeros(2, 1, 8, 8), torch.zeros(3))


def test_scalar_t_broadcasts(model: DiffusersEpsModel) -> None:
    x, _ = _batch(3)
    torch.testing.assert_close(model(x, torch.tensor(5.0)), model(x, torch.full((3,), 5.0)))
    assert math.isfinite(float(model(x, torch.tensor(5.0)).sum()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_half_precision_agrees_with_cpu(folder: Path, model, dtype: torch.dtype) -> None:
    gpu = load_diffusers_model(folder, device="cuda", dtype=dtype, batch_size=4)
    assert next(gpu.unet.parameters()).dtype == dtype
    x, t = _batch()
    out = gpu(x, t)  # x on the CPU in float32: comes back there
    assert out.device == x.device and out.dtype == x.dtype
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    torch.testing.assert_close(out, model(x, t), rtol=tol, atol=tol)


def test_class_conditional_unet_takes_class_labels_through_a_sampler(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cond = diffusers.UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        num_class_embeds=3,
    ).eval()
    loaded = load_diffusers_model(_save(tmp_path / "cond", cond, num_train_timesteps=1000))
    x, t = _batch(3)
    labels = torch.tensor([0, 1, 2])
    with torch.no_grad():
        ref = cond(x, t, class_labels=labels).sample
    torch.testing.assert_close(loaded(x, t, class_labels=labels), ref)
    traj = time_uniform(loaded.schedule, 3)
    a = sample_ddim(loaded, x, traj, model_kwargs={"class_labels": labels})
    b = sample_ddim(loaded, x, traj, model_kwargs={"class_labels": labels.flip(0)})
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match=r"class_labels has shape \(2,\); expected \[3\]"):
        loaded(x, t, class_labels=labels[:2])
    with pytest.raises(ValueError, match="is class-conditional: pass class_labels"):
        loaded(x, t)
