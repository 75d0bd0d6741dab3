"""The latent side of a Stable-Diffusion-layout pipeline: the VAE and latent training data.

A :class:`~vrg_analysis.models.pipeline.PipelineEpsModel` predicts noise in the VAE's latent space.
Algorithm 1 and the audits need clean latents ``z_0`` and, per row, the prompt embedding the model
is conditioned on: :func:`encode_images` / :func:`decode_latents` map images to latents and back
with the pipeline's scaling factor, :func:`encode_image_folder` encodes a captioned image folder
once and caches it, :func:`load_latents` reads precomputed latents, and :class:`LatentData` hands
them to :func:`~vrg_analysis.profiling.profile_prediction_error` (``row_kwargs``).
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vrg_analysis.cache import cache_dir as default_cache_dir
from vrg_analysis.cache import cache_enabled
from vrg_analysis.io import IMAGE_SUFFIXES, atomic_open, sha256_file
from vrg_analysis.models.pipeline import PipelineEpsModel
from vrg_analysis.models.protocol import identity_of

__all__ = [
    "LatentData",
    "encode_images",
    "decode_latents",
    "encode_image_folder",
    "load_latents",
]

logger = logging.getLogger(__name__)

#: Version of the latent-cache format (part of the cache key).
_LATENT_CACHE_FORMAT = "vrg-latents-v1"
_CAPTIONS_FILE = "captions.csv"
_CAPTIONS_HEADER = ("file", "caption")


# --------------------------------------------------------------------------- VAE
def _vae_batches(model: PipelineEpsModel, batch_size: int | None, n: int) -> int:
    step = batch_size if batch_size is not None else (model.batch_size or n)
    return max(int(step), 1)


def encode_images(
    model: PipelineEpsModel, images: Tensor, *, batch_size: int | None = None
) -> Tensor:
    """Latents of ``images`` (``[B, 3, H, W]`` in ``[-1, 1]``): ``mode(q(z | x)) * s``.

    The VAE's posterior mean (``latent_dist.mode()``: deterministic, where diffusers' training
    scripts draw ``latent_dist.sample()``) times the VAE's ``scaling_factor`` ``s`` (Rombach et al.
    2022, sec. 4.3.2 and appendix G: unit-variance latents), as ``StableDiffusionPipeline``
    expects. ``H`` and ``W`` must be multiples of the VAE's downsampling factor. Returned in
    ``images``' dtype (float32 for integer input) on ``images``' device; ``batch_size`` (default:
    the model's) bounds each VAE call.
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    channels = int(model.vae.config.in_channels)
    if images.ndim != 4 or images.shape[1] != channels or images.shape[0] < 1:
        raise ValueError(f"images has shape {tuple(images.shape)}; expected [B, {channels}, H, W]")
    f = model.vae_scale_factor
    if images.shape[2] % f or images.shape[3] % f:
        raise ValueError(
            f"image size {tuple(images.shape[2:])} is not a multiple of the VAE's "
            f"downsampling factor {f}"
        )
    if not bool(torch.isfinite(images).all()):
        raise ValueError("images contain non-finite values")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1.0 - 1e-4 or hi > 1.0 + 1e-4:
        raise ValueError(
            f"images must lie in [-1, 1], got min {lo:.4g} and max {hi:.4g} "
            "(map 8-bit pixels with p / 127.5 - 1)"
        )
    out_dtype = images.dtype if images.is_floating_point() else torch.float32
    vae_dtype = next(model.vae.parameters()).dtype
    step = _vae_batches(model, batch_size, images.shape[0])
    outs: list[Tensor] = []
    with torch.no_grad():
        for i in range(0, images.shape[0], step):
            chunk = images[i : i + step].to(device=model.device, dtype=vae_dtype)
            z = model.vae.encode(chunk).latent_dist.mode() * model.vae_scaling_factor
            outs.append(z.to(device=images.device, dtype=out_dtype))
    return torch.cat(outs) if len(outs) > 1 else outs[0]


def decode_latents(
    model: PipelineEpsModel, latents: Tensor, *, batch_size: int | None = None
) -> Tensor:
    """Images ``[B, 3, H, W]`` in ``[-1, 1]`` of ``latents``: ``vae.decode(latents / s).sample``
    clamped to ``[-1, 1]`` (as diffusers' image post-processing clamps), ``s`` the VAE's
    ``scaling_factor``; in ``latents``' dtype on ``latents``' device, ``batch_size`` per call."""
    if not isinstance(latents, Tensor):
        raise TypeError(f"latents must be a torch.Tensor, got {type(latents).__name__}")
    c = model.sample_shape[0]
    if latents.ndim != 4 or latents.shape[1] != c or latents.shape[0] < 1:
        raise ValueError(f"latents has shape {tuple(latents.shape)}; expected [B, {c}, h, w]")
    if not bool(torch.isfinite(latents).all()):
        raise ValueError("latents contain non-finite values")
    vae_dtype = next(model.vae.parameters()).dtype
    step = _vae_batches(model, batch_size, latents.shape[0])
    outs: list[Tensor] = []
    with torch.no_grad():
        for i in range(0, latents.shape[0], step):
            z = latents[i : i + step].to(device=model.device, dtype=vae_dtype)
            img = model.vae.decode(z / model.vae_scaling_factor).sample.clamp(-1.0, 1.0)
            outs.append(img.to(device=latents.device, dtype=latents.dtype))
    return torch.cat(outs) if len(outs) > 1 else outs[0]


# --------------------------------------------------------------------------- latent data
@dataclass(frozen=True, eq=False)
class LatentData:
    """Latent training data for Algorithm 1: ``latents`` ``[n, C, h, w]`` (float32, CPU), one
    caption per row in ``prompts`` and, once embedded, ``prompt_embeds`` ``[n, seq, dim]``.

    ``profile_prediction_error(model, data.latents, ts, row_kwargs=data.row_kwargs)`` profiles
    the model's prediction with each row's own caption (at the model's guidance scale: use
    ``model.with_guidance_scale(1.0)`` for the conditional predictor). The embeddings take
    ``4 n seq dim`` bytes (236 kB a row for Stable Diffusion 1.x's 77 x 768).
    """

    latents: Tensor
    prompts: list[str]
    prompt_embeds: Tensor | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.latents, Tensor) or self.latents.ndim != 4:
            raise ValueError("latents must be a [n, C, h, w] tensor")
        if len(self.prompts) != self.latents.shape[0]:
            raise ValueError(
                f"{len(self.prompts)} prompts for {self.latents.shape[0]} latents; one per row"
            )
        if self.prompt_embeds is not None and (
            self.prompt_embeds.ndim != 3 or self.prompt_embeds.shape[0] != self.latents.shape[0]
        ):
            raise ValueError(
                f"prompt_embeds has shape {tuple(self.prompt_embeds.shape)}; expected "
                f"[{self.latents.shape[0]}, seq, dim]"
            )

    def __len__(self) -> int:
        return int(self.latents.shape[0])

    @property
    def row_kwargs(self) -> dict[str, Tensor]:
        """``{"prompt_embeds": [n, seq, dim]}``: Algorithm 1's per-row conditioning."""
        if self.prompt_embeds is None:
            raise ValueError(
                "these latents carry no prompt embeddings; call .embedded(model) first "
                "(or load them with load_latents(path, model=model))"
            )
        return {"prompt_embeds": self.prompt_embeds}

    def embedded(self, model: PipelineEpsModel) -> LatentData:
        """The same data with ``prompt_embeds`` from ``model``'s text encoder (float32, CPU)."""
        if self.latents.shape[1] != model.sample_shape[0]:
            raise ValueError(
                f"latents have {self.latents.shape[1]} channels; {model.name} has "
                f"{model.sample_shape[0]}"
            )
        embeds = model.encode_prompts(self.prompts).to(device="cpu", dtype=torch.float32)
        return LatentData(self.latents, list(self.prompts), embeds, self.source)


def _read_captions(path: Path, names: Sequence[str]) -> dict[str, str]:
    """``{file: caption}`` from a ``file,caption`` CSV; every image exactly once, no empties."""
    if not path.is_file():
        raise ValueError(
            f"captions file {str(path)!r} not found; expected a CSV with header 'file,caption' "
            "and one row per image"
        )
    known = set(names)
    captions: dict[str, str] = {}
    first_line: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip().lower() for h in header) != _CAPTIONS_HEADER:
            raise ValueError(f"{path}, line 1: header must be 'file,caption', got {header!r}")
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue  # blank line
            if len(row) != 2:
                raise ValueError(
                    f"{path}, line {line}: expected 2 fields (file,caption), got {len(row)}; "
                    "quote a caption that contains a comma"
                )
            name, caption = row[0].strip(), row[1].strip()
            if name not in known:
                raise ValueError(f"{path}, line {line}: unknown image file {name!r}")
            if name in captions:
                raise ValueError(
                    f"{path}, line {line}: duplicate caption for {name!r} "
                    f"(first given on line {first_line[name]})"
                )
            if not caption:
                raise ValueError(f"{path}, line {line}: empty caption for {name!r}")
            captions[name] = caption
            first_line[name] = line
    missing = [n for n in names if n not in captions]
    if missing:
        raise ValueError(
            f"{path}: no caption for {len(missing)} image(s): {', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''}"
        )
    return captions


def _read_rgb_images(files: Sequence[Path]) -> Tensor:
    from PIL import Image, UnidentifiedImageError

    arrays: list[np.ndarray] = []
    for p in files:
        try:
            with Image.open(p) as im:
                im.load()
                if im.mode not in ("RGB", "L", "P"):
                    raise ValueError(
                        f"image {str(p)!r} has mode {im.mode!r}; expected RGB (or grayscale / "
                        "palette, converted to RGB)"
                    )
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)
        except (OSError, UnidentifiedImageError) as exc:
            raise ValueError(f"cannot read image {str(p)!r}: {exc}") from exc
        if arrays and arr.shape != arrays[0].shape:
            raise ValueError(
                f"image {str(p)!r} is {arr.shape[2]}x{arr.shape[1]}, but {str(files[0])!r} is "
                f"{arrays[0].shape[2]}x{arrays[0].shape[1]}; all images must have the same size"
            )
        arrays.append(arr)
    pixels = torch.from_numpy(np.stack(arrays)).to(torch.float32)
    return pixels / 127.5 - 1.0  # [0, 255] -> [-1, 1]


def encode_image_folder(
    model: PipelineEpsModel,
    folder: str | os.PathLike[str],
    captions: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    embed: bool = True,
) -> LatentData:
    """The captioned images of ``folder`` as :class:`LatentData` (latents and, with ``embed``,
    the prompt embeddings; without, the captions alone, for a model that embeds them per call).

    Images: the folder's PNG / JPEG files (sorted by name), RGB (grayscale and palette images are
    converted), all the same size, mapped from ``[0, 255]`` onto ``[-1, 1]`` and encoded by
    :func:`encode_images` (posterior mean times the scaling factor). Captions: a CSV with header
    ``file,caption`` (default ``<folder>/captions.csv``), exactly one non-empty caption per image;
    a missing or duplicate entry, an unknown file or an empty caption is a ``ValueError`` naming
    the captions file and line.

    The latents are stored (atomically) in ``cache_dir`` (default: the toolkit's artifact cache
    folder, ``$VRG_CACHE_DIR``, unless ``$VRG_CACHE=off``) under a key made of the VAE's weights
    sha256 and dtype, every image file's name and sha256 and the captions file's sha256: a rerun
    reads them back without running the VAE, and a changed image or caption encodes again.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"image folder {str(root)!r} does not exist or is not a folder")
    files = sorted(
        p
        for p in root.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise ValueError(
            f"no images in folder {str(root)!r} (looked for {', '.join(IMAGE_SUFFIXES)} files)"
        )
    cap_path = Path(captions) if captions is not None else root / _CAPTIONS_FILE
    by_name = _read_captions(cap_path, [p.name for p in files])
    prompts = [by_name[p.name] for p in files]

    vae_dtype = next(model.vae.parameters()).dtype
    record = {
        "format": _LATENT_CACHE_FORMAT,
        "vae_sha256": model.weights_sha256["vae"],
        "vae_dtype": str(vae_dtype),
        "scaling_factor": model.vae_scaling_factor,
        "images": [[p.name, sha256_file(p)] for p in files],
        "captions_sha256": sha256_file(cap_path),
    }
    key = identity_of(record)
    if cache_dir is not None:
        store: Path | None = Path(cache_dir)
    else:
        store = default_cache_dir() / "latents" if cache_enabled() else None
    entry = None if store is None else store / f"latents-{key[:24]}.npz"

    data: LatentData | None = None
    if entry is not None and entry.is_file():
        try:
            data = _read_latent_file(entry, expected_key=key)
            logger.info("latents of %s read from the cache %s", root, entry)
        except ValueError as exc:
            logger.warning("cache entry %s is unusable (%s); encoding again", entry, exc)
            data = None
    if data is None or data.prompts != prompts:
        latents = encode_images(model, _read_rgb_images(files)).to(torch.float32).cpu()
        data = LatentData(latents, prompts, source=str(root))
        if entry is not None:
            try:
                with atomic_open(entry, "wb") as fh:
                    np.savez(
                        fh,
                        latents=latents.numpy(),
                        prompts=np.array(prompts, dtype=np.str_),
                        key=np.array(key),
                    )
            except OSError as exc:  # the latents are computed: hand them back regardless
                logger.warning("cannot store latents in %s (%s); not cached", entry, exc)
    out = LatentData(data.latents, prompts, source=str(root))
    return out.embedded(model) if embed else out


def _read_latent_file(path: Path, expected_key: str | None = None) -> LatentData:
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".pt"):
        raise ValueError(f"{str(path)!r}: unsupported latents file; expected .npz or .pt")
    content: Any
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                content = {k: npz[k] for k in npz.files}
        else:
            content = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise ValueError(f"cannot read latents file {str(path)!r}: {exc}") from exc
    if not isinstance(content, Mapping) or "latents" not in content or "prompts" not in content:
        keys = sorted(content) if isinstance(content, Mapping) else type(content).__name__
        raise ValueError(f"{str(path)!r} must hold 'latents' and 'prompts', got {keys}")
    if expected_key is not None and str(content.get("key", "")) != expected_key:
        raise ValueError(f"{str(path)!r} was written for another key")
    raw = content["latents"]
    arr = raw.detach().cpu().numpy() if isinstance(raw, Tensor) else np.asarray(raw)
    if arr.dtype.kind != "f":
        raise ValueError(f"{str(path)!r}: latents must be floating point, got dtype {arr.dtype}")
    if arr.ndim != 4 or arr.shape[0] < 1:
        raise ValueError(f"{str(path)!r}: latents have shape {arr.shape}; expected [n, C, h, w]")
    if not np.isfinite(arr).all():
        raise ValueError(
            f"{str(path)!r}: latents contain {int((~np.isfinite(arr)).sum())} non-finite values"
        )
    raw_prompts = content["prompts"]
    if isinstance(raw_prompts, np.ndarray):
        if raw_prompts.ndim != 1 or raw_prompts.dtype.kind != "U":
            raise ValueError(f"{str(path)!r}: prompts must be a 1-D array of strings")
        prompts = [str(p) for p in raw_prompts]
    elif isinstance(raw_prompts, list | tuple) and all(isinstance(p, str) for p in raw_prompts):
        prompts = list(raw_prompts)
    else:
        raise ValueError(f"{str(path)!r}: prompts must be a list of strings")
    if len(prompts) != arr.shape[0]:
        raise ValueError(
            f"{str(path)!r}: {len(prompts)} prompts for {arr.shape[0]} latents; one per row"
        )
    empty = [i for i, p in enumerate(prompts) if not p.strip()]
    if empty:
        raise ValueError(f"{str(path)!r}: empty prompt in row(s) {empty[:5]}")
    latents = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    return LatentData(latents, prompts, source=str(path))


def load_latents(
    path: str | os.PathLike[str], *, model: PipelineEpsModel | None = None
) -> LatentData:
    """Precomputed latents from an ``.npz`` or ``.pt`` file holding ``latents`` (``[n, C, h, w]``,
    finite floats, already multiplied by the VAE's scaling factor) and ``prompts`` (``n``
    non-empty strings); anything else is a ``ValueError`` naming the file. With ``model``, the
    channels are checked against it and the prompts embedded (:meth:`LatentData.embedded`)."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"latents file {str(p)!r} does not exist")
    data = _read_latent_file(p)
    if model is None:
        return data
    try:
        return data.embedded(model)
    except ValueError as exc:
        raise ValueError(f"{str(p)!r}: {exc}") from exc
