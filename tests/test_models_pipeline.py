"""Stable-Diffusion-layout pipelines on a real (tiny, randomly initialised) folder.

Nothing is mocked or downloaded: a ``UNet2DConditionModel``, an ``AutoencoderKL``, a
``CLIPTextModel`` and a ``CLIPTokenizer`` (from a hand-written BPE vocabulary) are built here,
written with ``save_pretrained`` in the ``StableDiffusionPipeline`` layout and read back through
:func:`load_diffusers_pipeline`. The reference for sampling is diffusers' own
``StableDiffusionPipeline.__call__`` (``output_type="latent"``) on the same modules.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
diffusers = pytest.importorskip("diffusers")

from diffusers_orders import singlestep_groups  # noqa: E402
from tiny_pipeline import (  # noqa: E402
    SCALING,
    SEQ,
    WIDTH,
    build_tiny_pipeline,  # noqa: E402
    write_captions,
    write_images,
)

from vrg_analysis import Trajectory, samplers  # noqa: E402
from vrg_analysis.models import EpsModel, TorchEpsModel  # noqa: E402
from vrg_analysis.models.latents import (  # noqa: E402
    LatentData,
    decode_latents,
    encode_image_folder,
    encode_images,
    load_latents,
)
from vrg_analysis.models.pipeline import PipelineEpsModel, load_diffusers_pipeline  # noqa: E402
from vrg_analysis.profiling import profile_prediction_error  # noqa: E402

# diffusers' own deprecation notices (numpy-on-tensor calls, scheduler config upgrades)
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]

PROMPTS = ["a cat", "a dog"]
# Agreement with diffusers' pipeline: max |ours - diffusers| over the final latents (|x| ~ 36
# there: a random UNet's "noise" is far from unit variance and guidance amplifies it). Both loops
# run the same float32 UNet on the same inputs (integer timesteps reach the embedding as the same
# float32 values); they differ only in the step coefficients (ours in float64 from the config's
# betas, diffusers' from its float32 alphas_cumprod, 1e-7 relative) and in the order of float32
# operations, so they agree to float32 precision: measured 1.5e-5 (DDIM) and 2.1e-5
# (DPM-Solver++(2M)) at K = 10, i.e. 6e-7 relative. Tolerance 1e-4, 5x-7x above. Another guidance
# scale (3 -> 3.5) or every timestep shifted by one changes the result by 0.17 to 0.23.
TOL = 1e-4


# --------------------------------------------------------------------------- the tiny pipeline
@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("sd"))


@pytest.fixture(scope="module")
def model(folder: Path) -> PipelineEpsModel:
    return load_diffusers_pipeline(folder, guidance_scale=3.0)


def _pipe(model: PipelineEpsModel, scheduler) -> diffusers.StableDiffusionPipeline:
    pipe = diffusers.StableDiffusionPipeline(
        vae=model.vae,
        text_encoder=model.text_encoder,
        tokenizer=model.tokenizer,
        unet=model.unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _scheduler(folder: Path, name: str, **overrides: object):
    config = diffusers.DDIMScheduler.load_config(folder / "scheduler")
    if name == "ddim":  # set_alpha_to_one: the last step ends at the clean sample, as ours
        return diffusers.DDIMScheduler.from_config(config, **overrides)
    # DPM-Solver++(2M) as tests/test_samplers_diffusers.py checks it, final step to sigma = 0;
    # lower_order_final=False: diffusers would otherwise take the second-last step at first
    # order when K < 15, where ours (Lu et al. 2022b, Algorithm 2) stays second order
    return diffusers.DPMSolverMultistepScheduler.from_config(
        config,
        algorithm_type="dpmsolver++",
        solver_order=2,
        lower_order_final=False,
        final_sigmas_type="zero",
        **overrides,
    )


def _x_T(n: int = 2) -> torch.Tensor:  # noqa: N802
    return torch.randn(n, 4, 8, 8, generator=torch.Generator().manual_seed(0))


def _levels(model: PipelineEpsModel, timesteps) -> Trajectory:
    return Trajectory(model.schedule.alpha_bar(np.asarray(timesteps, dtype=np.float64)))


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "copy"))


# --------------------------------------------------------------------------- loading
def test_loads_with_shape_schedule_and_identity(model: PipelineEpsModel, folder: Path) -> None:
    assert isinstance(model, EpsModel)
    assert isinstance(model, TorchEpsModel)
    assert model.sample_shape == (4, 8, 8)
    assert model.prediction == "epsilon"
    assert model.guidance_scale == 3.0
    assert model.vae_scaling_factor == pytest.approx(SCALING)
    assert model.path == folder
    assert model.dtype == torch.float32 and model.device == torch.device("cpu")
    # the schedule is the scheduler's: diffusers forms alphas_cumprod in float32
    theirs = diffusers.DDIMScheduler.from_pretrained(folder / "scheduler").alphas_cumprod
    np.testing.assert_allclose(model.schedule.alphas_cumprod, theirs.double().numpy(), rtol=2e-6)
    assert model.schedule.num_timesteps == 1000

    again = load_diffusers_pipeline(folder, guidance_scale=3.0)
    assert again.identity == model.identity
    other = load_diffusers_pipeline(folder, guidance_scale=5.0)
    assert other.identity != model.identity
    shared = model.with_guidance_scale(5.0)
    assert shared.identity == other.identity
    assert shared.unet is model.unet and shared.guidance_scale == 5.0
    assert model.guidance_scale == 3.0  # unchanged


def test_prompt_embeddings_are_diffusers_own(model: PipelineEpsModel, folder: Path) -> None:
    pipe = _pipe(model, _scheduler(folder, "ddim"))
    cond, uncond = pipe.encode_prompt(PROMPTS, "cpu", 1, True)
    torch.testing.assert_close(model.encode_prompts(PROMPTS), cond, rtol=0, atol=0)
    torch.testing.assert_close(model.encode_prompts(["", ""]), uncond, rtol=0, atol=0)
    assert cond.shape == (2, SEQ, WIDTH)


# --------------------------------------------------------------------------- vs diffusers
@pytest.mark.parametrize("conditioning", ["prompt", "prompt_embeds"])
@pytest.mark.parametrize("sampler", ["ddim", "dpm_solver_pp_2m"])
def test_same_trajectory_as_stable_diffusion_pipeline(
    model: PipelineEpsModel, folder: Path, sampler: str, conditioning: str
) -> None:
    assert sampler in samplers.known_samplers()
    K, w = 10, 3.0  # noqa: N806
    pipe = _pipe(model, _scheduler(folder, sampler))
    if conditioning == "prompt":  # diffusers encodes the prompts and "" itself
        pipe_kw: dict[str, object] = {"prompt": PROMPTS}
        ours_kw: dict[str, object] = {"prompt": PROMPTS}
    else:
        embeds = model.encode_prompts(PROMPTS)
        pipe_kw = {
            "prompt_embeds": embeds,
            "negative_prompt_embeds": model.encode_prompts(["", ""]),
        }
        ours_kw = {"prompt_embeds": embeds}
    ref = pipe(
        **pipe_kw, latents=_x_T(), num_inference_steps=K, guidance_scale=w, output_type="latent"
    ).images
    timesteps = pipe.scheduler.timesteps
    assert len(timesteps) == K
    traj = _levels(model, timesteps)

    result = samplers.sample(sampler, model, _x_T(), traj, model_kwargs=ours_kw)
    assert result.nfe == K
    diff = float((result.x - ref).abs().max())
    assert diff < TOL, f"max |ours - diffusers| = {diff:.3g}"

    # the tolerance separates: another guidance scale, or every timestep off by one, is far out
    spec = samplers.get_sampler(sampler)
    wrong_w = spec(model.with_guidance_scale(3.5), _x_T(), traj, model_kwargs=ours_kw)
    assert float((wrong_w - ref).abs().max()) > 100 * TOL
    shifted = _levels(model, timesteps - 1)
    wrong_t = spec(model, _x_T(), shifted, model_kwargs=ours_kw)
    assert float((wrong_t - ref).abs().max()) > 100 * TOL


@pytest.mark.parametrize("family", ["plms", "dpm_solver_pp_2s", "deis_logrho"])
def test_other_sampler_families_match_the_pipeline(
    model: PipelineEpsModel, folder: Path, family: str
) -> None:
    """PNDM (diffusers' PLMS), singlestep DPM-Solver++(2S) and DEIS (diffusers' log-rho basis),
    each against diffusers' pipeline with that scheduler on the same latents, noise, prompts and
    timesteps (the scheduler cross-checks of tests/test_samplers_diffusers.py, on the pipeline)."""
    config = diffusers.DDIMScheduler.load_config(folder / "scheduler")
    K, w = 10, 3.0  # noqa: N806
    kw = {"prompt": PROMPTS}
    if family == "plms":
        sched = diffusers.PNDMScheduler.from_config(
            config, skip_prk_steps=True, set_alpha_to_one=True
        )
    elif family == "dpm_solver_pp_2s":
        sched = diffusers.DPMSolverSinglestepScheduler.from_config(
            config, solver_order=2, algorithm_type="dpmsolver++", final_sigmas_type="zero"
        )
    else:
        sched = diffusers.DEISMultistepScheduler.from_config(
            config, solver_order=2, lower_order_final=False
        )
    pipe = _pipe(model, sched)
    ref = pipe(
        prompt=PROMPTS,
        latents=_x_T(),
        num_inference_steps=K,
        guidance_scale=w,
        output_type="latent",
    ).images
    if family == "plms":
        traj = _levels(model, pipe.scheduler._timesteps[::-1])  # the grid, without repeats
        result = samplers.sample("plms", model, _x_T(), traj, model_kwargs=kw)
        assert result.nfe == len(pipe.scheduler.timesteps)  # K + 1 model calls in both
        mine = result.x
    elif family == "dpm_solver_pp_2s":
        traj = _levels(model, pipe.scheduler.timesteps)
        mine = samplers.sample_dpm_solver(
            model,
            _x_T(),
            traj,
            orders=singlestep_groups(pipe.scheduler.order_list),
            order=2,
            algorithm="dpmsolver++",
            intermediate="diffusers",
            model_kwargs=kw,
        )
    else:  # diffusers' DEIS stops at alpha_bar(t = 0): our state at that appended level
        traj = _levels(model, [*pipe.scheduler.timesteps.tolist(), 0])
        records: list[samplers.StepRecord] = []
        samplers.sample_deis(
            model, _x_T(), traj, order=2, basis="logrho", callback=records.append, model_kwargs=kw
        )
        mine = records[-1].x
    diff = float((mine - ref).abs().max())
    assert diff < TOL, f"max |ours - diffusers| = {diff:.3g}"


def test_guidance_scale_one_matches_diffusers_conditional_run(
    model: PipelineEpsModel, folder: Path
) -> None:
    """diffusers skips guidance for guidance_scale <= 1; at w = 1 both are the conditional run."""
    pipe = _pipe(model, _scheduler(folder, "ddim"))
    ref = pipe(
        prompt=PROMPTS,
        latents=_x_T(),
        num_inference_steps=6,
        guidance_scale=1.0,
        output_type="latent",
    ).images
    traj = _levels(model, pipe.scheduler.timesteps)
    mine = samplers.sample_ddim(
        model.with_guidance_scale(1.0), _x_T(), traj, model_kwargs={"prompt": PROMPTS}
    )
    assert float((mine - ref).abs().max()) < TOL


def test_guidance_convention_and_chunking(model: PipelineEpsModel) -> None:
    x, t = _x_T(3), torch.tensor([10.0, 417.5, 980.25])
    prompts = ["a cat", "a dog", "a cat"]
    cond = model.with_guidance_scale(1.0)(x, t, prompt=prompts)
    uncond = model.with_guidance_scale(0.0)(x, t)  # w = 0 needs no prompt
    with torch.no_grad():
        e = model.encode_prompts(prompts)
        direct_c = model.unet(x, t, encoder_hidden_states=e).sample
        direct_u = model.unet(x, t, encoder_hidden_states=model.encode_prompts([""] * 3)).sample
    torch.testing.assert_close(cond, direct_c)
    torch.testing.assert_close(uncond, direct_u)
    for w in (0.5, 3.0, 7.5):  # Ho & Salimans 2022, eq. 6 with our w
        guided = model.with_guidance_scale(w)(x, t, prompt=prompts)
        torch.testing.assert_close(guided, uncond + w * (cond - uncond), rtol=1e-5, atol=1e-5)
    chunked = load_diffusers_pipeline(model.path, guidance_scale=3.0, batch_size=2)
    torch.testing.assert_close(chunked(x, t, prompt=prompts), model(x, t, prompt=prompts))
    # float64 states in, float64 out; one prompt for the whole batch
    out = model(x.double(), t, prompt="a cat")
    assert out.dtype == torch.float64 and out.shape == x.shape
    torch.testing.assert_close(out.float(), model(x, t, prompt=["a cat"] * 3))


def test_conditioning_errors(model: PipelineEpsModel) -> None:
    x, t = _x_T(2), torch.tensor([10.0, 20.0])
    with pytest.raises(ValueError, match="prompt= or prompt_embeds="):
        model(x, t)
    with pytest.raises(ValueError, match="3 prompts given for a batch of 2"):
        model(x, t, prompt=["a", "b", "c"])
    with pytest.raises(ValueError, match="not both"):
        model(x, t, prompt="a", prompt_embeds=model.encode_prompts(["a", "a"]))
    with pytest.raises(ValueError, match="one embedding per sample"):
        model(x, t, prompt_embeds=model.encode_prompts(["a"]))
    with pytest.raises(ValueError, match=r"expects latents \[B, 4, h, w\]"):
        model(torch.zeros(2, 3, 8, 8), t, prompt="a")


def test_a_text_encoder_with_projection_gives_its_hidden_states(
    folder: Path, tmp_path: Path
) -> None:
    """CLIPTextModelWithProjection (SD 2.x / SDXL style): the per-token last hidden state is the
    embedding, not the projected pooled vector that its output's first field holds."""
    root = _copy(folder, tmp_path)
    config = transformers.CLIPTextConfig.from_pretrained(root / "text_encoder")
    shutil.rmtree(root / "text_encoder")
    torch.manual_seed(5)
    transformers.CLIPTextModelWithProjection(config).save_pretrained(root / "text_encoder")
    model = load_diffusers_pipeline(root)
    assert type(model.text_encoder).__name__ == "CLIPTextModelWithProjection"
    ids = model.tokenizer(PROMPTS, padding="max_length", max_length=SEQ, return_tensors="pt")
    with torch.no_grad():
        hidden = model.text_encoder(ids.input_ids).last_hidden_state
    torch.testing.assert_close(model.encode_prompts(PROMPTS), hidden, rtol=0, atol=0)
    out = model(_x_T(), torch.tensor([5.0, 500.0]), prompt=PROMPTS)
    assert out.shape == (2, 4, 8, 8) and bool(torch.isfinite(out).all())


# --------------------------------------------------------------------------- v-prediction
def test_v_prediction_is_converted(folder: Path, tmp_path: Path) -> None:
    root = _copy(folder, tmp_path)
    cfg_path = root / "scheduler" / "scheduler_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["prediction_type"] = "v_prediction"
    cfg_path.write_text(json.dumps(cfg))
    model = load_diffusers_pipeline(root, guidance_scale=1.0)
    assert model.prediction == "v_prediction"

    x, t = _x_T(2), torch.tensor([123.5, 777.0])
    with torch.no_grad():
        v = model.unet(x, t, encoder_hidden_states=model.encode_prompts(PROMPTS)).sample
    a = torch.as_tensor(model.schedule.alpha_bar(t.double().numpy()), dtype=torch.float32)
    a = a.reshape(-1, 1, 1, 1)
    expected = a.sqrt() * v + (1 - a).sqrt() * x  # Salimans & Ho 2022: eps from v
    torch.testing.assert_close(model(x, t, prompt=PROMPTS), expected, rtol=1e-5, atol=1e-6)

    # and diffusers' DDIM on the v-prediction pipeline gives our trajectory (guided, w = 3)
    guided = model.with_guidance_scale(3.0)
    pipe = _pipe(guided, diffusers.DDIMScheduler.from_pretrained(root / "scheduler"))
    ref = pipe(
        prompt=PROMPTS,
        latents=_x_T(),
        num_inference_steps=8,
        guidance_scale=3.0,
        output_type="latent",
    ).images
    traj = _levels(guided, pipe.scheduler.timesteps)
    mine = samplers.sample_ddim(guided, _x_T(), traj, model_kwargs={"prompt": PROMPTS})
    assert float((mine - ref).abs().max()) < TOL


# --------------------------------------------------------------------------- prompt cache
def test_each_prompt_is_encoded_once(folder: Path) -> None:
    model = load_diffusers_pipeline(folder, guidance_scale=3.0)
    rows: list[int] = []  # prompts per text-encoder call

    def count(_module, args, kwargs) -> None:
        ids = args[0] if args else kwargs["input_ids"]
        rows.append(int(ids.shape[0]))

    hook = model.text_encoder.register_forward_pre_hook(count, with_kwargs=True)
    try:
        x, t = _x_T(2), torch.tensor([100.0, 200.0])
        model.encode_prompts(["a cat"])
        assert rows == [1]
        model.encode_prompts(["a cat"])
        assert rows == [1]  # cached
        model(x, t, prompt="a cat")  # "" for the unconditional half: once
        assert sum(rows) == 2
        model(x, t, prompt="a cat")
        model(x, t, prompt=["a cat", "a cat"])
        assert sum(rows) == 2
        model(x, t, prompt=["a dog", "a dog"])  # one new prompt, one row
        assert sum(rows) == 3
        model.with_guidance_scale(7.0)(x, t, prompt=["a dog", "a cat"])  # the cache is shared
        assert sum(rows) == 3
    finally:
        hook.remove()


# --------------------------------------------------------------------------- VAE
def test_vae_encode_and_decode(model: PipelineEpsModel) -> None:
    g = torch.Generator().manual_seed(3)
    images = torch.rand(3, 3, 16, 16, generator=g) * 2 - 1
    latents = encode_images(model, images, batch_size=2)
    assert latents.shape == (3, 4, 8, 8)
    with torch.no_grad():
        mean = model.vae.encode(images).latent_dist.mean
    torch.testing.assert_close(latents, mean * SCALING)
    decoded = decode_latents(model, latents)
    assert decoded.shape == images.shape
    assert float(decoded.min()) >= -1.0 and float(decoded.max()) <= 1.0
    with torch.no_grad():
        raw = model.vae.decode(latents / SCALING).sample.clamp(-1, 1)
    torch.testing.assert_close(decoded, raw)
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\]"):
        encode_images(model, images * 2)
    with pytest.raises(ValueError, match="not a multiple"):
        encode_images(model, images[:, :, :15, :15])


class _CountEncode:
    """Counts the VAE's encode calls (the instance attribute shadows the method)."""

    def __init__(self, vae: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = vae.encode

        def encode(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(vae, "encode", encode)


def test_encode_image_folder_is_cached(
    model: PipelineEpsModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    names = write_images(images)
    captions = ["a cat", "a dog", "a cat, sitting"]
    write_captions(images / "captions.csv", list(zip(names, captions, strict=True)))
    cache = tmp_path / "cache"
    counter = _CountEncode(model.vae, monkeypatch)

    data = encode_image_folder(model, images, cache_dir=cache)
    assert isinstance(data, LatentData) and len(data) == 3
    assert counter.calls == 1
    assert data.prompts == captions
    assert data.latents.shape == (3, 4, 8, 8) and data.latents.dtype == torch.float32
    from PIL import Image

    pixels = np.stack([np.asarray(Image.open(images / n)) for n in names]).transpose(0, 3, 1, 2)
    expected = encode_images(model, torch.from_numpy(pixels).float() / 127.5 - 1)
    torch.testing.assert_close(data.latents, expected)
    counter.calls = 0
    assert data.row_kwargs["prompt_embeds"].shape == (3, SEQ, WIDTH)
    torch.testing.assert_close(data.row_kwargs["prompt_embeds"], model.encode_prompts(captions))

    again = encode_image_folder(model, images, cache_dir=cache)
    assert counter.calls == 0  # read back, the VAE did not run
    torch.testing.assert_close(again.latents, data.latents, rtol=0, atol=0)

    write_captions(
        images / "captions.csv", list(zip(names, ["a cat", "a dog", "a dog"], strict=True))
    )
    changed = encode_image_folder(model, images, cache_dir=cache)
    assert counter.calls == 1  # a changed caption encodes again
    assert changed.prompts[2] == "a dog"

    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8), "RGB").save(images / names[0])
    redrawn = encode_image_folder(model, images, cache_dir=cache)
    assert counter.calls == 2  # so does a changed image
    assert not torch.equal(redrawn.latents[0], data.latents[0])
    torch.testing.assert_close(redrawn.latents[1:], data.latents[1:])


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([("img0.png", "a cat"), ("img1.png", "a dog")], r"no caption for 1 image\(s\): img2\.png"),
        (
            [("img0.png", "a cat"), ("img1.png", " "), ("img2.png", "a dog")],
            r"line 3: empty caption for 'img1\.png'",
        ),
        (
            [("img0.png", "a"), ("img1.png", "b"), ("img0.png", "c"), ("img2.png", "d")],
            r"line 4: duplicate caption for 'img0\.png' \(first given on line 2\)",
        ),
        (
            [("img0.png", "a"), ("img1.png", "b"), ("img9.png", "c"), ("img2.png", "d")],
            r"line 4: unknown image file 'img9\.png'",
        ),
    ],
    ids=["missing", "empty", "duplicate", "unknown"],
)
def test_malformed_captions_are_refused(
    model: PipelineEpsModel, tmp_path: Path, rows: list[tuple[str, str]], match: str
) -> None:
    write_images(tmp_path)
    path = write_captions(tmp_path / "labels.csv", rows)
    with pytest.raises(ValueError, match=match) as info:
        encode_image_folder(model, tmp_path, path, cache_dir=tmp_path / "cache")
    assert "labels.csv" in str(info.value)


def test_captions_file_errors(model: PipelineEpsModel, tmp_path: Path) -> None:
    write_images(tmp_path, 1)
    with pytest.raises(ValueError, match=r"captions\.csv' not found"):
        encode_image_folder(model, tmp_path, cache_dir=tmp_path / "cache")
    (tmp_path / "captions.csv").write_text("name,text\nimg0.png,a cat\n")
    with pytest.raises(ValueError, match="line 1: header must be 'file,caption'"):
        encode_image_folder(model, tmp_path, cache_dir=tmp_path / "cache")


def test_load_latents(model: PipelineEpsModel, tmp_path: Path) -> None:
    lat = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    np.savez(tmp_path / "ok.npz", latents=lat.numpy(), prompts=np.array(["a", "b", "c"]))
    torch.save({"latents": lat, "prompts": ["a", "b", "c"]}, tmp_path / "ok.pt")
    for name in ("ok.npz", "ok.pt"):
        data = load_latents(tmp_path / name, model=model)
        torch.testing.assert_close(data.latents, lat)
        assert data.prompts == ["a", "b", "c"]
        assert data.row_kwargs["prompt_embeds"].shape == (3, SEQ, WIDTH)
    with pytest.raises(ValueError, match=r"call \.embedded\(model\)"):
        _ = load_latents(tmp_path / "ok.npz").row_kwargs

    bad_nan = lat.clone()
    bad_nan[0, 0, 0, 0] = float("nan")
    cases = {
        "nan.npz": ({"latents": bad_nan.numpy(), "prompts": np.array(["a", "b", "c"])}, "1 non"),
        "count.npz": ({"latents": lat.numpy(), "prompts": np.array(["a", "b"])}, "2 prompts"),
        "shape.npz": ({"latents": lat[0].numpy(), "prompts": np.array(["a"])}, "expected"),
        "keys.npz": ({"x": lat.numpy()}, "must hold 'latents' and 'prompts'"),
        "empty.npz": ({"latents": lat.numpy(), "prompts": np.array(["a", "", "c"])}, "empty"),
    }
    for name, (arrays, match) in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(ValueError, match=match) as info:
            load_latents(tmp_path / name)
        assert name in str(info.value)
    np.savez(tmp_path / "channels.npz", latents=lat[:, :3].numpy(), prompts=np.array(["a"] * 3))
    with pytest.raises(ValueError, match=r"channels\.npz.*3 channels"):
        load_latents(tmp_path / "channels.npz", model=model)


# --------------------------------------------------------------------------- Algorithm 1
def test_algorithm1_on_latents(model: PipelineEpsModel, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    names = write_images(images, 4)
    write_captions(
        images / "captions.csv", list(zip(names, ["a cat", "a dog", "a cat", "a dog"], strict=True))
    )
    data = encode_image_folder(model, images, cache_dir=tmp_path / "cache")
    conditional = model.with_guidance_scale(1.0)
    profile = profile_prediction_error(
        conditional,
        data.latents,
        timesteps=[50, 400, 900],
        row_kwargs=data.row_kwargs,
        progress=False,
        batch_size=5,
        reservoir_size=0,
    )
    assert profile.mse.shape == (3,)
    assert np.isfinite(profile.mse).all() and (profile.mse > 0).all()
    levels = np.sort(model.schedule.alpha_bar([50, 400, 900]))  # the profile is sorted by level
    np.testing.assert_allclose(np.sort(profile.alpha_bar), levels)
    # checkpoints are keyed by the pipeline's identity (declared, so resumable)
    ck = profile_prediction_error(
        conditional,
        data.latents,
        timesteps=[50, 400, 900],
        row_kwargs=data.row_kwargs,
        progress=False,
        batch_size=5,
        reservoir_size=0,
        checkpoint_path=tmp_path / "ck.npz",
    )
    np.testing.assert_allclose(ck.mse, profile.mse)


# --------------------------------------------------------------------------- bad folders
def test_a_hub_id_is_refused_without_downloading() -> None:
    with pytest.raises(ValueError, match="must be a local folder") as info:
        load_diffusers_pipeline("runwayml/stable-diffusion-v1-5")
    assert "nothing is downloaded" in str(info.value)


@pytest.mark.parametrize(
    ("part", "match"),
    [
        ("vae", "has no vae/ sub-folder"),
        ("tokenizer", "has no tokenizer/ sub-folder"),
        ("scheduler", "has no scheduler/ sub-folder"),
    ],
)
def test_a_missing_part_is_named(folder: Path, tmp_path: Path, part: str, match: str) -> None:
    root = _copy(folder, tmp_path)
    shutil.rmtree(root / part)
    with pytest.raises(ValueError, match=match):
        load_diffusers_pipeline(root)


def test_missing_weights_are_named(folder: Path, tmp_path: Path) -> None:
    root = _copy(folder, tmp_path)
    (root / "text_encoder" / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"no weights in .*text_encoder"):
        load_diffusers_pipeline(root)


def test_a_wrong_class_names_its_config(folder: Path, tmp_path: Path) -> None:
    root = _copy(folder, tmp_path)
    cfg_path = root / "unet" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["_class_name"] = "UNet2DModel"
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"unet[/\\]config\.json.*'UNet2DConditionModel'"):
        load_diffusers_pipeline(root)

    cfg["_class_name"] = "UNet2DConditionModel"
    cfg["cross_attention_dim"] = 32
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="32-wide text embeddings.*hidden_size=16"):
        load_diffusers_pipeline(root)

    index = {"unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "VQModel"]}
    (root / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=r"model_index\.json: vae is 'VQModel'"):
        load_diffusers_pipeline(root)


def test_bad_arguments_are_refused(folder: Path) -> None:
    with pytest.raises(ValueError, match="only supported on CUDA"):
        load_diffusers_pipeline(folder, dtype="fp16")
    with pytest.raises(ValueError, match="only supported on CUDA"):
        load_diffusers_pipeline(folder, dtype=torch.bfloat16)
    for bad in (math.nan, math.inf, -1.0):
        with pytest.raises(ValueError, match="guidance_scale"):
            load_diffusers_pipeline(folder, guidance_scale=bad)
    for bad_batch in (0, -2):
        with pytest.raises(ValueError, match="batch_size"):
            load_diffusers_pipeline(folder, batch_size=bad_batch)
