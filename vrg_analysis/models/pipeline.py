"""Stable-Diffusion-layout diffusers pipelines (latent, text-conditional) as an ``EpsModel``.

A local folder in the layout ``StableDiffusionPipeline.save_pretrained`` writes (``unet/`` a
``UNet2DConditionModel``, ``vae/`` an ``AutoencoderKL``, ``text_encoder/`` a CLIP text model,
``tokenizer/`` a ``CLIPTokenizer``, ``scheduler/scheduler_config.json``; ``model_index.json``
optional) is loaded offline by :func:`load_diffusers_pipeline` into a :class:`PipelineEpsModel`:
a noise predictor in the VAE's latent space, conditioned on a prompt and guided by
classifier-free guidance. Sampling goes through the toolkit's own samplers
(:mod:`vrg_analysis.samplers`), which pass the prompt through ``model_kwargs``; Algorithm 1
(:func:`~vrg_analysis.profiling.profile_prediction_error`) takes the latents of a captioned image
folder and per-row prompt embeddings through ``row_kwargs``
(:mod:`vrg_analysis.models.latents`: the VAE's encode/decode and the latent training data).

Nothing is downloaded: the folder must exist, ``HF_HUB_OFFLINE=1`` is set while loading and every
part is read with ``local_files_only=True``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.io import read_json_object, sha256_file
from vrg_analysis.models.diffusers import (
    _SCHEDULER_CONFIG,
    _hf_offline,
    _resolve_dtype,
    _weight_files,
    schedule_from_diffusers_config,
)
from vrg_analysis.models.protocol import Prediction, TorchEpsModel, identity_of, resolve_device

__all__ = ["PipelineEpsModel", "CaptionedEpsModel", "is_pipeline_folder", "load_diffusers_pipeline"]

logger = logging.getLogger(__name__)

_CONFIG = "config.json"
_TOKENIZER_CONFIG = "tokenizer_config.json"
_MODEL_INDEX = "model_index.json"
_UNET_CLASSES = ("UNet2DConditionModel",)
_VAE_CLASSES = ("AutoencoderKL",)
_TEXT_CLASSES = ("CLIPTextModel", "CLIPTextModelWithProjection")
_TOKENIZER_CLASSES = ("CLIPTokenizer", "CLIPTokenizerFast")
_EXPECTED_CLASSES: dict[str, tuple[str, ...]] = {
    "unet": _UNET_CLASSES,
    "vae": _VAE_CLASSES,
    "text_encoder": _TEXT_CLASSES,
    "tokenizer": _TOKENIZER_CLASSES,
}


# --------------------------------------------------------------------------- small helpers
def _digest_of_files(files: Sequence[Path]) -> str:
    """sha256 of one file, or of the ``"name sha256"`` lines of several (as the UNet loader)."""
    if len(files) == 1:
        return sha256_file(files[0])
    lines = "".join(f"{p.name} {sha256_file(p)}\n" for p in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def _transformers_weight_files(folder: Path) -> list[Path]:
    """``model*.safetensors`` / ``pytorch_model*.bin`` (shards included, index files not)."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and (
            (p.name.startswith("model") and p.name.endswith(".safetensors"))
            or (p.name.startswith("pytorch_model") and p.name.endswith(".bin"))
        )
    )


def _check_guidance_scale(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"guidance_scale must be a number, got {type(value).__name__}")
    w = float(value)
    if not math.isfinite(w) or w < 0.0:
        raise ValueError(f"guidance_scale must be a finite number >= 0, got {value!r}")
    return w


def _check_batch_size(value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {value!r}")
    return value


def _class_of(cfg: Mapping[str, Any], key: str) -> str | None:
    value = cfg.get(key)
    if key == "architectures":
        return value[0] if isinstance(value, list) and len(value) == 1 else None
    return value if isinstance(value, str) else None


def _check_part_class(cfg_path: Path, cfg: Mapping[str, Any], key: str, part: str) -> str:
    expected = _EXPECTED_CLASSES[part]
    found = _class_of(cfg, key)
    if found is None and part == "text_encoder" and cfg.get("model_type") == "clip_text_model":
        found = "CLIPTextModel"  # a config written without "architectures"
    if found is None and part == "tokenizer":
        found = "CLIPTokenizer"  # tokenizer_config.json may omit tokenizer_class
    if found not in expected:
        raise ValueError(
            f"{cfg_path}: {part} class {cfg.get(key)!r} is not supported; expected "
            f"{' or '.join(repr(c) for c in expected)} (a StableDiffusionPipeline layout)"
        )
    return found


def _int_pair(size: Any, where: str) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        return int(size), int(size)
    if isinstance(size, list | tuple) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ValueError(f"{where}: sample_size must be an integer or a pair, got {size!r}")


def _single_dim(value: Any, where: str) -> int:
    if isinstance(value, list | tuple):
        if len(set(value)) != 1:
            raise ValueError(f"{where}: per-block cross_attention_dim {value!r} is not supported")
        value = value[0]
    return int(value)


# --------------------------------------------------------------------------- the model
class PipelineEpsModel(TorchEpsModel):
    """A Stable-Diffusion-layout pipeline as a text-conditional noise predictor in latent space.

    Build it with :func:`load_diffusers_pipeline`. ``model(x, t, prompt=...)`` or
    ``model(x, t, prompt_embeds=...)`` returns the guided noise prediction for latents ``x``
    (``[B, C, h, w]``) at fractional timesteps ``t`` (``[B]`` or a scalar). Conditioning arrives
    through the samplers' ``model_kwargs`` or Algorithm 1's ``row_kwargs``: ``prompt`` is one
    string for the whole batch or a list of one string per sample; ``prompt_embeds`` is a
    ``[B, seq, dim]`` tensor, one embedding per sample (what :meth:`encode_prompts` returns).

    Classifier-free guidance (Ho & Salimans 2022, eq. 6, their ``1 + w`` written as our ``w``, as
    in :class:`~vrg_analysis.models.guidance.GuidedEpsModel` and diffusers):
    ``out = out_u + w (out_c - out_u)``, ``out_u`` the UNet's output with the empty prompt ``""``
    (its embedding computed once), ``out_c`` with the prompt. ``w == 0`` runs the unconditional
    half only (no prompt needed), ``w == 1`` the conditional half only, any other ``w`` both halves
    in one UNet batch ``[x_u; x_c]`` as diffusers' ``StableDiffusionPipeline`` does. Guidance is
    applied to the raw UNet output and then converted to noise by :class:`TorchEpsModel`
    (v-prediction: ``eps = sqrt(a) v + sqrt(1 - a) x``, Salimans & Ho 2022; x0-prediction:
    ``eps = (x - sqrt(a) x0) / sqrt(1 - a)``); both conversions are affine with weights summing to
    one, so guiding before or after converting is the same. diffusers' pipeline skips guidance for
    ``guidance_scale <= 1`` and then samples conditionally: it agrees with this model for
    ``w > 1`` and ``w == 1`` only; for ``0 <= w < 1`` this model interpolates (``w = 0``
    unconditional) where diffusers would ignore ``w``.

    Prompt embeddings are the text encoder's last hidden state of the prompt tokenised as
    diffusers does (padded to ``tokenizer.model_max_length``, truncated); each distinct prompt runs
    through the text encoder once and is kept (up to :attr:`PROMPT_CACHE_SIZE` prompts, least
    recently used dropped first). ``batch_size`` bounds the UNet batch (``None``: one call;
    with guidance the batch is ``2 B``). Timesteps reach the UNet as float32: its sinusoidal
    embedding is defined for real ``t``.

    Attributes: ``unet``, ``vae``, ``text_encoder``, ``tokenizer``, ``schedule``, ``prediction``,
    ``guidance_scale``, ``sample_shape`` (latent ``(C, h, w)`` from the UNet config), ``path``,
    ``name``, ``device``, ``dtype``, ``batch_size``, ``vae_scaling_factor``, ``vae_scale_factor``
    (pixels per latent cell), ``embed_dim``, ``weights_sha256`` (per part: ``unet``,
    ``text_encoder``, ``tokenizer``, ``vae``) and :attr:`identity`.
    """

    #: How many distinct prompt embeddings are kept.
    PROMPT_CACHE_SIZE = 1024

    def __init__(
        self,
        *,
        unet: torch.nn.Module,
        vae: torch.nn.Module,
        text_encoder: torch.nn.Module,
        tokenizer: Any,
        schedule: NoiseSchedule,
        prediction: Prediction,
        guidance_scale: float,
        name: str,
        path: Path,
        device: torch.device,
        dtype: torch.dtype,
        batch_size: int | None,
        weights_sha256: Mapping[str, str],
        prompt_cache: OrderedDict[tuple[str, int], Tensor] | None = None,
    ) -> None:
        super().__init__(self._forward, schedule, prediction, name)
        self.unet = unet
        self.vae = vae
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.guidance_scale = _check_guidance_scale(guidance_scale)
        self.path = path
        self.device = device
        self.dtype = dtype
        self.batch_size = _check_batch_size(batch_size)
        self.weights_sha256 = dict(weights_sha256)
        cfg = unet.config
        self.in_channels = int(cfg.in_channels)
        self.sample_shape: tuple[int, int, int] = (
            self.in_channels,
            *_int_pair(cfg.sample_size, "unet config"),
        )
        self.embed_dim = int(text_encoder.config.hidden_size)
        self.vae_scaling_factor = float(vae.config.scaling_factor)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.max_length = int(tokenizer.model_max_length)
        self._use_attention_mask = bool(getattr(text_encoder.config, "use_attention_mask", False))
        self._prompt_cache: OrderedDict[tuple[str, int], Tensor] = (
            OrderedDict() if prompt_cache is None else prompt_cache
        )

    # ------------------------------------------------------------------ identity
    @property
    def identity(self) -> str:
        """sha256 over the UNet's, text encoder's and tokenizer's file digests, the guidance
        scale, the prediction type and the schedule: everything the noise prediction depends on
        (the VAE is not: it keys the latents, :func:`encode_image_folder`)."""
        return identity_of(
            "PipelineEpsModel",
            self.weights_sha256["unet"],
            self.weights_sha256["text_encoder"],
            self.weights_sha256["tokenizer"],
            self.guidance_scale,
            self.prediction,
            self.schedule.to_dict(),
            str(self.dtype),
        )

    def with_guidance_scale(self, guidance_scale: float) -> PipelineEpsModel:
        """The same pipeline at another guidance scale (modules and prompt cache shared)."""
        return PipelineEpsModel(
            unet=self.unet,
            vae=self.vae,
            text_encoder=self.text_encoder,
            tokenizer=self.tokenizer,
            schedule=self.schedule,
            prediction=self.prediction,
            guidance_scale=guidance_scale,
            name=self.name,
            path=self.path,
            device=self.device,
            dtype=self.dtype,
            batch_size=self.batch_size,
            weights_sha256=self.weights_sha256,
            prompt_cache=self._prompt_cache,
        )

    # ------------------------------------------------------------------ prompts
    def encode_prompts(self, prompts: str | Sequence[str], max_length: int | None = None) -> Tensor:
        """``[len(prompts), seq, dim]`` prompt embeddings on the model's device and dtype.

        Each prompt is tokenised as diffusers' ``encode_prompt`` does (``padding="max_length"``,
        ``max_length`` the tokenizer's ``model_max_length`` unless given, truncated, an attention
        mask only when the text encoder's config asks for one) and embedded as the text encoder's
        last hidden state. Only prompts not yet cached go through the text encoder, once each
        (in one batch).
        """
        items = [prompts] if isinstance(prompts, str) else list(prompts)
        if not items:
            raise ValueError("encode_prompts needs at least one prompt")
        for i, p in enumerate(items):
            if not isinstance(p, str):
                raise TypeError(f"prompts[{i}] must be a str, got {type(p).__name__}")
        length = self.max_length if max_length is None else int(max_length)
        cache = self._prompt_cache
        new = list(dict.fromkeys(p for p in items if (p, length) not in cache))
        if new:
            tokens = self.tokenizer(
                new,
                padding="max_length",
                max_length=length,
                truncation=True,
                return_tensors="pt",
            )
            mask = tokens.attention_mask.to(self.device) if self._use_attention_mask else None
            with torch.no_grad():
                out = self.text_encoder(tokens.input_ids.to(self.device), attention_mask=mask)
            hidden = out.last_hidden_state.to(self.dtype)
            for p, h in zip(new, hidden, strict=True):
                cache[(p, length)] = h.clone()  # not a view: an evicted entry frees its memory
        rows = []
        for p in items:
            cache.move_to_end((p, length))
            rows.append(cache[(p, length)])
        while len(cache) > max(self.PROMPT_CACHE_SIZE, len(set(items))):
            cache.popitem(last=False)
        return torch.stack(rows)

    def _conditional_embeds(
        self, batch: int, prompt: str | Sequence[str] | None, prompt_embeds: Tensor | None
    ) -> Tensor:
        if prompt is not None and prompt_embeds is not None:
            raise ValueError("pass either prompt or prompt_embeds, not both")
        if prompt is None and prompt_embeds is None:
            raise ValueError(
                f"{self.name} is text-conditional (guidance_scale={self.guidance_scale}): pass "
                "prompt= or prompt_embeds= (samplers: model_kwargs={'prompt': ...}; Algorithm 1: "
                "row_kwargs=LatentData.row_kwargs)"
            )
        if prompt is not None:
            if isinstance(prompt, str):
                return self.encode_prompts([prompt]).expand(batch, -1, -1)
            if not isinstance(prompt, list | tuple):
                raise TypeError(
                    f"prompt must be a str or a list of str, got {type(prompt).__name__}"
                )
            if len(prompt) != batch:
                raise ValueError(f"{len(prompt)} prompts given for a batch of {batch} samples")
            return self.encode_prompts(prompt)
        if not isinstance(prompt_embeds, Tensor):
            raise TypeError(f"prompt_embeds must be a Tensor, got {type(prompt_embeds).__name__}")
        if prompt_embeds.ndim != 3 or prompt_embeds.shape[0] != batch:
            raise ValueError(
                f"prompt_embeds has shape {tuple(prompt_embeds.shape)}; expected "
                f"[{batch}, seq, {self.embed_dim}] (one embedding per sample)"
            )
        if prompt_embeds.shape[2] != self.embed_dim:
            raise ValueError(
                f"prompt_embeds has width {prompt_embeds.shape[2]}; the text encoder and UNet "
                f"use {self.embed_dim}"
            )
        if not bool(torch.isfinite(prompt_embeds).all()):
            raise ValueError("prompt_embeds contains non-finite values")
        return prompt_embeds.to(device=self.device, dtype=self.dtype)

    # ------------------------------------------------------------------ the forward pass
    def __call__(
        self,
        x: Tensor,
        t: Tensor,
        *,
        prompt: str | Sequence[str] | None = None,
        prompt_embeds: Tensor | None = None,
    ) -> Tensor:
        """The guided noise prediction (classifier-free guidance, Ho & Salimans 2022, eq. 6)."""
        t = torch.as_tensor(t)
        if t.ndim == 0 and isinstance(x, Tensor):  # one timestep for the whole batch
            t = t.expand(x.shape[0])
        return super().__call__(x, t, prompt=prompt, prompt_embeds=prompt_embeds)

    def _forward(
        self,
        x: Tensor,
        t: Tensor,
        prompt: str | Sequence[str] | None = None,
        prompt_embeds: Tensor | None = None,
    ) -> Tensor:
        """The guided raw UNet output (noise, v or x0 as the scheduler config says)."""
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x has shape {tuple(x.shape)}; {self.name} expects latents "
                f"[B, {self.in_channels}, h, w]"
            )
        b = x.shape[0]
        t = torch.as_tensor(t)
        if t.ndim == 0:
            t = t.expand(b)
        if t.shape != (b,):
            raise ValueError(f"t has shape {tuple(t.shape)}; expected [] or [{b}]")
        w = self.guidance_scale
        x_dev = x.to(device=self.device, dtype=self.dtype)
        t_dev = t.to(device=self.device, dtype=torch.float32)
        if w == 0.0:  # unconditional: a prompt is not needed (nor encoded)
            length = prompt_embeds.shape[1] if isinstance(prompt_embeds, Tensor) else None
            out = self._unet(x_dev, t_dev, self._uncond(b, length))
        elif w == 1.0:
            out = self._unet(x_dev, t_dev, self._conditional_embeds(b, prompt, prompt_embeds))
        else:
            cond = self._conditional_embeds(b, prompt, prompt_embeds)
            uncond = self._uncond(b, cond.shape[1])
            both = self._unet(
                torch.cat([x_dev, x_dev]), torch.cat([t_dev, t_dev]), torch.cat([uncond, cond])
            )
            out_u, out_c = both[:b], both[b:]
            out = out_u + w * (out_c - out_u)  # Ho & Salimans 2022, eq. 6 (diffusers' order)
        return out.to(device=x.device, dtype=x.dtype)

    def _uncond(self, batch: int, length: int | None) -> Tensor:
        """The empty prompt's embedding, padded to ``length`` tokens as diffusers pads it."""
        return self.encode_prompts([""], max_length=length).expand(batch, -1, -1)

    def _unet(self, x: Tensor, t: Tensor, embeds: Tensor) -> Tensor:
        step = x.shape[0] if self.batch_size is None else self.batch_size
        outs: list[Tensor] = []
        with torch.no_grad():
            for i in range(0, x.shape[0], step):
                outs.append(
                    self.unet(
                        x[i : i + step],
                        t[i : i + step],
                        encoder_hidden_states=embeds[i : i + step],
                        return_dict=False,
                    )[0]
                )
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def __repr__(self) -> str:
        return (
            f"PipelineEpsModel(name={self.name!r}, path={str(self.path)!r}, "
            f"prediction={self.prediction!r}, guidance_scale={self.guidance_scale}, "
            f"device={str(self.device)!r}, dtype={self.dtype})"
        )


class CaptionedEpsModel:
    """A pipeline's *conditional* noise predictor with its prompts given as caption indices,
    so that a text-conditional pipeline has the class-conditional interface of the toolkit.

    ``model(x, t, label)`` predicts with the prompt ``captions[label]`` per sample (``label``
    ``[B]`` integers or one integer; also ``y=``, a class-conditional network's keyword), and
    with the empty prompt for ``label == num_classes`` or no label (the "no label" token of a
    class-conditional network). Classifier-free
    guidance is then :class:`~vrg_analysis.models.guidance.GuidedEpsModel` over this model: one
    UNet batch ``[x; x]`` with ``[empty; caption]`` prompts and ``out_u + w (out_c - out_u)``
    (Ho & Salimans 2022, eq. 6), what diffusers' ``StableDiffusionPipeline`` computes. Each
    distinct caption runs through the text encoder once (the pipeline's prompt cache).
    """

    def __init__(self, pipeline: PipelineEpsModel, captions: Sequence[str]) -> None:
        items = list(captions)
        if not items:
            raise ValueError("CaptionedEpsModel needs at least one caption")
        for i, c in enumerate(items):
            if not isinstance(c, str) or not c.strip():
                raise ValueError(f"captions[{i}] must be a non-empty string, got {c!r}")
        self.pipeline = pipeline.with_guidance_scale(1.0)  # the conditional half alone
        self.captions: tuple[str, ...] = tuple(items)
        self.num_classes = len(items)
        self.schedule = pipeline.schedule
        self.sample_shape = pipeline.sample_shape
        self.name = pipeline.name

    def __call__(
        self,
        x: Tensor,
        t: Tensor,
        y: Tensor | int | None = None,
        *,
        label: Tensor | int | None = None,
    ) -> Tensor:
        """The conditional prediction with caption ``y`` (a class-conditional network's name for
        the label; ``label=`` as :class:`~vrg_analysis.models.guidance.GuidedEpsModel` names it)."""
        if y is not None and label is not None:
            raise ValueError("pass the caption index as y or as label, not both")
        label = y if label is None else label
        b = x.shape[0]
        if label is None:
            y = torch.full((b,), self.num_classes, dtype=torch.long)
        else:
            y = torch.as_tensor(label).long().reshape(-1).cpu()
            if y.numel() == 1 and b != 1:
                y = y.expand(b)
            if y.shape[0] != b:
                raise ValueError(f"{y.shape[0]} labels given for a batch of {b} samples")
        if bool(((y < 0) | (y > self.num_classes)).any()):
            raise ValueError(
                f"labels must lie in 0..{self.num_classes} ({self.num_classes}: the empty prompt)"
            )
        prompts = [self.captions[i] if i < self.num_classes else "" for i in y.tolist()]
        embeds = self.pipeline.encode_prompts(prompts)
        return self.pipeline(x, t, prompt_embeds=embeds)

    @property
    def identity(self) -> str:
        """The conditional pipeline's identity and the captions."""
        return identity_of("CaptionedEpsModel", self.pipeline.identity, list(self.captions))

    def __repr__(self) -> str:
        return f"CaptionedEpsModel({self.name!r}, {self.num_classes} captions)"


def is_pipeline_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder in the Stable-Diffusion pipeline layout (a ``text_encoder/``
    or a ``model_index.json``), which :func:`load_diffusers_pipeline` loads, rather than a
    ``UNet2DModel`` checkpoint folder."""
    root = Path(path)
    return root.is_dir() and ((root / "text_encoder").is_dir() or (root / _MODEL_INDEX).is_file())


# --------------------------------------------------------------------------- loading
def _part_dir(root: Path, part: str, config_name: str) -> Path:
    folder = root / part
    if not folder.is_dir():
        raise ValueError(
            f"pipeline folder {str(root)!r} has no {part}/ sub-folder; a StableDiffusionPipeline "
            "layout needs unet/, vae/, text_encoder/, tokenizer/ and scheduler/"
        )
    if not (folder / config_name).is_file():
        raise ValueError(f"pipeline part {part}/ has no {config_name}: {folder / config_name}")
    return folder


def _check_model_index(root: Path) -> None:
    path = root / _MODEL_INDEX
    if not path.is_file():
        return
    index = read_json_object(path, "pipeline index")
    for part, expected in _EXPECTED_CLASSES.items():
        entry = index.get(part)
        if entry is None:
            continue
        name = entry[1] if isinstance(entry, list) and len(entry) == 2 else entry
        if name not in expected:
            raise ValueError(
                f"{path}: {part} is {name!r}; expected {' or '.join(repr(c) for c in expected)}"
            )


def load_diffusers_pipeline(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    batch_size: int | None = None,
    guidance_scale: float = 7.5,
) -> PipelineEpsModel:
    """Load a local Stable-Diffusion-layout folder as a :class:`PipelineEpsModel`, offline.

    Parts: ``unet/`` (``UNet2DConditionModel``), ``vae/`` (``AutoencoderKL``), ``text_encoder/``
    (``CLIPTextModel`` or ``CLIPTextModelWithProjection``), ``tokenizer/`` (``CLIPTokenizer``) and
    ``scheduler/scheduler_config.json``; ``model_index.json`` is optional (checked when present).
    The scheduler config gives the :class:`NoiseSchedule` (DDPM eq. 4 on its betas, ``linear``,
    ``scaled_linear``, ... via :func:`schedule_from_diffusers_config`) and ``prediction_type``
    (``epsilon`` / ``v_prediction`` / ``sample``, converted to noise by :class:`TorchEpsModel`);
    the scheduler class itself is not used: sampling goes through :mod:`vrg_analysis.samplers`.

    ``path`` must be an existing local folder: a hub id is refused and nothing is downloaded
    (``HF_HUB_OFFLINE=1`` while loading, ``local_files_only=True``). A missing part, a part whose
    config names another class, a UNet that needs more conditioning than a prompt (class labels,
    SDXL's added time ids, an inpainting mask) or whose cross-attention width differs from the text
    encoder's is a ``ValueError`` naming the file. ``dtype`` float16 / bfloat16 only on CUDA (a
    VAE whose config sets ``force_upcast`` then stays in float32, as diffusers keeps it);
    ``guidance_scale`` must be finite and ``>= 0``; ``batch_size`` bounds the UNet batch.
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    root = Path(path)
    if not root.is_dir():
        raise ValueError(
            f"pipeline path {str(path)!r} is not an existing local folder; it must be a local "
            "folder in the StableDiffusionPipeline layout (unet/, vae/, text_encoder/, "
            "tokenizer/, scheduler/): nothing is downloaded, so hub ids are not accepted"
        )
    batch_size = _check_batch_size(batch_size)
    w = _check_guidance_scale(guidance_scale)
    dev = resolve_device(device)
    dt = _resolve_dtype(dtype, dev)

    # ---- configs and files, checked before anything is loaded
    _check_model_index(root)
    unet_dir = _part_dir(root, "unet", _CONFIG)
    vae_dir = _part_dir(root, "vae", _CONFIG)
    text_dir = _part_dir(root, "text_encoder", _CONFIG)
    tok_dir = _part_dir(root, "tokenizer", _TOKENIZER_CONFIG)
    sched_path = _part_dir(root, "scheduler", _SCHEDULER_CONFIG) / _SCHEDULER_CONFIG

    unet_cfg_path = unet_dir / _CONFIG
    unet_cfg = read_json_object(unet_cfg_path, "UNet config")
    _check_part_class(unet_cfg_path, unet_cfg, "_class_name", "unet")
    vae_cfg_path = vae_dir / _CONFIG
    vae_cfg = read_json_object(vae_cfg_path, "VAE config")
    _check_part_class(vae_cfg_path, vae_cfg, "_class_name", "vae")
    text_cfg_path = text_dir / _CONFIG
    text_cfg = read_json_object(text_cfg_path, "text encoder config")
    text_cls = _check_part_class(text_cfg_path, text_cfg, "architectures", "text_encoder")
    tok_cfg_path = tok_dir / _TOKENIZER_CONFIG
    tok_cfg = read_json_object(tok_cfg_path, "tokenizer config")
    _check_part_class(tok_cfg_path, tok_cfg, "tokenizer_class", "tokenizer")

    for key, what in (
        ("class_embed_type", "class embeddings"),
        ("num_class_embeds", "class labels"),
        ("addition_embed_type", "added conditioning (SDXL text_time / image embeddings)"),
        ("time_cond_proj_dim", "a guidance-scale embedding (LCM)"),
    ):
        if unet_cfg.get(key) is not None:
            raise ValueError(
                f"{unet_cfg_path}: {key}={unet_cfg[key]!r}: this UNet needs {what}, which a "
                "StableDiffusionPipeline-layout prompt-only model does not provide"
            )
    in_ch = int(unet_cfg.get("in_channels", 4))
    out_ch = int(unet_cfg.get("out_channels", 4))
    latent_ch = int(vae_cfg.get("latent_channels", 4))
    if in_ch != out_ch or in_ch != latent_ch:
        raise ValueError(
            f"{unet_cfg_path}: in_channels={in_ch}, out_channels={out_ch} with the VAE's "
            f"latent_channels={latent_ch} ({vae_cfg_path}); a latent noise predictor needs all "
            "three equal (inpainting / depth UNets take extra input channels)"
        )
    if vae_cfg.get("shift_factor") not in (None, 0, 0.0):
        raise ValueError(
            f"{vae_cfg_path}: shift_factor={vae_cfg['shift_factor']!r} is not used by "
            "StableDiffusionPipeline; this VAE belongs to another pipeline family"
        )
    if unet_cfg.get("encoder_hid_dim") is not None:
        cond_dim = int(unet_cfg["encoder_hid_dim"])
    else:
        cond_dim = _single_dim(unet_cfg.get("cross_attention_dim", 1280), str(unet_cfg_path))
    text_dim = int(text_cfg.get("hidden_size", -1))
    if cond_dim != text_dim:
        raise ValueError(
            f"{unet_cfg_path}: the UNet attends to {cond_dim}-wide text embeddings, but "
            f"{text_cfg_path} has hidden_size={text_dim}"
        )

    unet_weights = _weight_files(unet_dir)
    vae_weights = _weight_files(vae_dir)
    text_weights = _transformers_weight_files(text_dir)
    for folder, files, pattern in (
        (unet_dir, unet_weights, "diffusion_pytorch_model*.safetensors or *.bin"),
        (vae_dir, vae_weights, "diffusion_pytorch_model*.safetensors or *.bin"),
        (text_dir, text_weights, "model*.safetensors or pytorch_model*.bin"),
    ):
        if not files:
            raise ValueError(f"no weights in {str(folder)!r}: expected {pattern}")
    tok_files = sorted(p for p in tok_dir.iterdir() if p.is_file())

    sched_cfg = read_json_object(sched_path, "scheduler config")
    schedule = schedule_from_diffusers_config(sched_cfg, source=str(sched_path))
    prediction = sched_cfg.get("prediction_type", "epsilon")
    if prediction not in ("epsilon", "sample", "v_prediction"):
        raise ValueError(
            f"{sched_path}: unsupported prediction_type {prediction!r}; "
            "expected 'epsilon', 'sample' or 'v_prediction'"
        )

    # ---- the modules
    try:
        import transformers
        from diffusers import AutoencoderKL, UNet2DConditionModel
    except ImportError as exc:  # pragma: no cover - diffusers / transformers are test extras
        raise ImportError(
            "load_diffusers_pipeline needs diffusers and transformers: "
            "pip install diffusers transformers"
        ) from exc
    vae_dt = (
        torch.float32
        if dt in (torch.float16, torch.bfloat16) and vae_cfg.get("force_upcast", False)
        else dt
    )
    with _hf_offline():
        loaded: dict[str, Any] = {}
        for part, folder, load in (
            (
                "unet",
                unet_dir,
                lambda d: UNet2DConditionModel.from_pretrained(
                    d, local_files_only=True, torch_dtype=dt, low_cpu_mem_usage=False
                ),
            ),
            (
                "vae",
                vae_dir,
                lambda d: AutoencoderKL.from_pretrained(
                    d, local_files_only=True, torch_dtype=vae_dt, low_cpu_mem_usage=False
                ),
            ),
            (
                "text_encoder",
                text_dir,
                lambda d: getattr(transformers, text_cls).from_pretrained(
                    d, local_files_only=True, dtype=dt
                ),
            ),
            (
                "tokenizer",
                tok_dir,
                lambda d: transformers.CLIPTokenizer.from_pretrained(d, local_files_only=True),
            ),
        ):
            try:
                loaded[part] = load(str(folder))
            except (OSError, ValueError, RuntimeError, TypeError) as exc:
                raise ValueError(f"cannot load the {part} from {str(folder)!r}: {exc}") from exc
    modules = {}
    for part in ("unet", "vae", "text_encoder"):
        mod = loaded[part].to(device=dev).eval()
        mod.requires_grad_(False)
        modules[part] = mod

    model = PipelineEpsModel(
        unet=modules["unet"],
        vae=modules["vae"],
        text_encoder=modules["text_encoder"],
        tokenizer=loaded["tokenizer"],
        schedule=schedule,
        prediction=prediction,
        guidance_scale=w,
        name=root.resolve().name,
        path=root,
        device=dev,
        dtype=dt,
        batch_size=batch_size,
        weights_sha256={
            "unet": _digest_of_files(unet_weights),
            "vae": _digest_of_files(vae_weights),
            "text_encoder": _digest_of_files(text_weights),
            "tokenizer": _digest_of_files(tok_files),
        },
    )
    logger.info(
        "loaded pipeline %s (%s, %s, prediction=%s, schedule=%s, guidance_scale=%g)",
        root,
        dev,
        dt,
        prediction,
        schedule.name,
        w,
    )
    return model
