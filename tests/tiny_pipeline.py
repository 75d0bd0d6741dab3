"""A tiny random Stable-Diffusion-layout pipeline and captioned images, built offline for tests.

A few-channel ``UNet2DConditionModel``, a tiny ``AutoencoderKL``, a one-layer CLIP text model and a
CLIP BPE tokenizer over lowercase letters, saved with ``save_pretrained`` in the layout
``StableDiffusionPipeline.save_pretrained`` writes; Stable Diffusion's ``scaled_linear`` DDIM
scheduler config. Latents are ``4 x 8 x 8`` for ``16 x 16`` RGB images.
"""

from __future__ import annotations

import csv
import json
import string
from pathlib import Path

import numpy as np
import torch

SEQ = 12  # the tokenizer's model_max_length (CLIP's is 77)
WIDTH = 16  # text hidden size = the UNet's cross_attention_dim
SCALING = 0.3  # not diffusers' default 0.18215, so a test sees it is read from the config


def _tokenizer(tmp: Path):  # noqa: ANN202 - transformers is imported lazily
    import transformers

    """A CLIP BPE tokenizer over lowercase letters, with merges for "cat" and "dog"."""
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for c in string.ascii_lowercase:
            vocab[c + suffix] = len(vocab)
    merges = ["c a", "ca t</w>", "d o", "do g</w>"]
    for m in merges:
        vocab[m.replace(" ", "")] = len(vocab)
    (tmp / "vocab.json").write_text(json.dumps(vocab))
    (tmp / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return transformers.CLIPTokenizer(
        str(tmp / "vocab.json"), str(tmp / "merges.txt"), model_max_length=SEQ
    )


def build_tiny_pipeline(parent: Path) -> Path:
    """The tiny pipeline, saved in ``parent/tiny-sd`` (its tokenizer's source files are written
    to ``parent/tokenizer-src`` first); returns the pipeline folder."""
    import diffusers
    import transformers

    root, raw = parent / "tiny-sd", parent / "tokenizer-src"
    raw.mkdir(parents=True)
    tok = _tokenizer(raw)
    tok.save_pretrained(root / "tokenizer")
    torch.manual_seed(0)  # diffusers and transformers initialise from the global generator
    text_config = transformers.CLIPTextConfig(
        vocab_size=len(tok),
        hidden_size=WIDTH,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=SEQ,
        projection_dim=WIDTH,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    transformers.CLIPTextModel(text_config).save_pretrained(root / "text_encoder")
    torch.manual_seed(1)
    diffusers.UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        cross_attention_dim=WIDTH,
        attention_head_dim=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    ).save_pretrained(root / "unet")
    torch.manual_seed(2)
    diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=16,
        scaling_factor=SCALING,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    ).save_pretrained(root / "vae")
    # Stable Diffusion's schedule; steps_offset=1 and clip_sample=False as the pipeline wants
    # them (it would rewrite other values with a deprecation warning)
    diffusers.DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=True,
        steps_offset=1,
    ).save_pretrained(root / "scheduler")
    return root


def write_images(folder: Path, n: int = 3) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        name = f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "RGB").save(
            folder / name
        )
        names.append(name)
    return names


def write_captions(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "caption"])
        writer.writerows(rows)
    return path


def write_captioned_folder(folder: Path, n: int, captions: list[str]) -> list[tuple[str, str]]:
    """``n`` random images in ``folder`` with a ``captions.csv`` cycling through ``captions``;
    returns its rows ``(file, caption)``."""
    names = write_images(folder, n)
    rows = [(name, captions[i % len(captions)]) for i, name in enumerate(names)]
    write_captions(folder / "captions.csv", rows)
    return rows
