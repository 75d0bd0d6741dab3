"""A text-conditional pipeline through the toolkit's paths (issue 16): the testbed, its guided
model against the pipeline's own classifier-free guidance, Algorithm 1 with each row's caption and
the guidance chapter as a stand-in study, on the tiny random pipeline of ``tests/tiny_pipeline.py``
with 40 captioned 16 x 16 images. The "Reproduce on your model" page's recipe for a pipeline
(``profile``, ``audit`` and ``study`` commands) runs on the same stand-in in
``tests/test_documented_commands.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("diffusers")

from tiny_pipeline import build_tiny_pipeline, write_captioned_folder  # noqa: E402

from vrg_analysis.models.guidance import GuidedEpsModel  # noqa: E402
from vrg_analysis.models.latents import encode_image_folder  # noqa: E402
from vrg_analysis.models.pipeline import CaptionedEpsModel, is_pipeline_folder  # noqa: E402
from vrg_analysis.profiling import profile_prediction_error  # noqa: E402
from vrg_analysis.studies import guidance, reproduce  # noqa: E402
from vrg_analysis.testbeds import PipelineTestbed, check_model, resolve_testbed  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]

CAPTIONS = ["a cat", "a dog", "a cat, sitting", "a dog, sitting"]
N_IMAGES = 40


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("sd"))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("captioned")
    write_captioned_folder(root, N_IMAGES, CAPTIONS)
    return root


@pytest.fixture(scope="module")
def bed(folder: Path, images: Path) -> PipelineTestbed:
    out = resolve_testbed(str(folder), data=str(images))
    assert isinstance(out, PipelineTestbed)
    return out


def test_a_pipeline_folder_is_a_testbed_with_captions_as_labels(
    bed: PipelineTestbed, folder: Path, images: Path
) -> None:
    assert is_pipeline_folder(folder)
    assert bed.num_classes == len(CAPTIONS) and bed.conditional
    assert bed.captions == tuple(CAPTIONS)  # first-seen order
    assert bed.train_x.shape == (30, 4, 8, 8) and bed.held_out_x.shape == (10, 4, 8, 8)
    assert bed.sample_shape == (4, 8, 8)
    assert torch.equal(
        torch.sort(torch.cat([bed.train_y, bed.held_out_y])).values,
        torch.sort(torch.arange(N_IMAGES) % len(CAPTIONS)).values,
    )
    # each row keeps its own caption: find every row's image among the folder's encodings
    encoded = encode_image_folder(bed.pipeline, images, embed=False)
    for x, y in ((bed.train_x, bed.train_y), (bed.held_out_x, bed.held_out_y)):
        for row, label in zip(x, y, strict=True):
            (match,) = [i for i, z in enumerate(encoded.latents) if torch.equal(z, row)]
            assert bed.captions[int(label)] == encoded.prompts[match]
    fp = bed.fingerprint
    assert fp["dtype"] == "torch.float32" and set(fp["pipeline"]) >= {"unet", "vae"}
    # the scorer decodes latents to images: 3 channels pooled to 8 x 8
    scoring = bed.scoring()
    assert scoring.set_features(bed.held_out_x).shape == (10, 3 * 8 * 8)
    assert scoring.reference_moments[0].shape == (192,)


def test_guided_captions_are_the_pipelines_own_guidance(bed: PipelineTestbed) -> None:
    """GuidedEpsModel over the captions = PipelineEpsModel's classifier-free guidance (one UNet
    batch of empty and caption prompts, diffusers' computation)."""
    x = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([10.0, 250.5, 600.0, 990.0])
    labels = torch.tensor([0, 1, 2, 3])
    w = 3.0
    guided = bed.guided(0, w)
    assert isinstance(guided, GuidedEpsModel) and isinstance(bed.model, CaptionedEpsModel)
    ours = guided(x, t, labels)
    theirs = bed.pipeline.with_guidance_scale(w)(x, t, prompt=[CAPTIONS[i] for i in labels])
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    # without a label: the empty prompt, the unconditional model
    torch.testing.assert_close(bed.model(x, t), bed.pipeline.with_guidance_scale(0.0)(x, t))
    assert float((ours - bed.model(x, t)).abs().max()) > 1e-3
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.4"):
        bed.model(x, t, torch.tensor([0, 1, 2, 5]))


def test_algorithm_1_profiles_each_row_with_its_caption(bed: PipelineTestbed) -> None:
    model = bed.guided(0, 2.0)
    ts = np.array([50, 400, 900])
    kw = {"label": bed.train_y}
    prof = profile_prediction_error(model, bed.train_x, ts, progress=False, row_kwargs=kw)
    again = profile_prediction_error(model, bed.train_x, ts, progress=False, row_kwargs=kw)
    assert np.all(np.isfinite(prof.mse)) and np.all(prof.mse > 0)
    np.testing.assert_array_equal(prof.mse, again.mse)
    # another caption per row is another profile: the label reaches the model
    other = profile_prediction_error(
        model, bed.train_x, ts, progress=False, row_kwargs={"label": (bed.train_y + 1) % 4}
    )
    assert not np.allclose(other.mse, prof.mse)


def test_guidance_chapter_runs_on_the_pipeline(
    folder: Path, images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stand-in study: the guidance chapter (VRG against two baselines with DDIM and
    DPM-Solver++(2M), 3 seeds, paired) on the tiny pipeline, every UNet evaluation counted and
    compared with the count the "Reproduce on your model" page gives for the GPU set."""
    import diffusers

    monkeypatch.setenv("VRG_CACHE", "off")  # every evaluation made here, none read back
    counted = {"images": 0}
    forward = diffusers.UNet2DConditionModel.forward

    def counting(self, sample, *args, **kwargs):
        counted["images"] += int(sample.shape[0])
        return forward(self, sample, *args, **kwargs)

    monkeypatch.setattr(diffusers.UNet2DConditionModel, "forward", counting)
    params = guidance.Params(
        model=str(folder),
        data=str(images),
        guidance_scales=(2.0,),
        samplers=("ddim", "dpm_solver_pp_2m"),
        baselines=("time_uniform", "logsnr_uniform"),
        steps=(4, 6),
        profile_samples=8,
        n_samples=6,
        reference_steps=8,
        n_boot=20,
    )
    result = guidance.run(params)
    table = result.table
    assert set(table.sampler) == {"ddim", "dpm_solver_pp_2m"} and set(table.K) == {4, 6}
    assert len(result.comparisons) == 1
    comp = next(iter(result.comparisons.values()))
    assert comp.set_metric == "pixel_frechet"
    assert set(table.metric) >= {"pixel_frechet"}
    assert np.isfinite(table[["difference", "ci_low", "ci_high"]].to_numpy(dtype=float)).all()
    # 8 rows x 101 timesteps, 3 x 6 x 8 reference, 3 x 6 x 2 arms x 2 x 2 x (4 + 6); x 2 guided
    (config,) = params.configs().values()
    expected = reproduce.unet_evaluations(config, 1000, train_rows=30)
    assert expected == {"profile": 1616, "reference": 288, "sampling": 2880, "total": 4784}
    assert counted["images"] == expected["total"]


def test_bad_pipeline_parameters_are_named(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"parameter data: a pipeline folder needs its captioned"):
        check_model(str(folder), str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"notes.txt.*unsupported latents file"):
        bad = tmp_path / "notes.txt"
        bad.write_text("x")
        resolve_testbed(str(folder), data=str(bad))
    with pytest.raises(ValueError, match=r"parameter model: guidance needs"):
        guidance.Params(model=str(tmp_path))
