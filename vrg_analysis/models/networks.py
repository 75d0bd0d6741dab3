"""Small noise-prediction networks for the trained testbeds (float32, CPU-sized).

* :class:`MixtureMLP`: ``eps_theta(x_t, t)`` for ``d``-dimensional Gaussian-mixture data, an MLP
  on ``[x_t, emb(t)]`` with SiLU activations.
* :class:`DigitsUNet`: a small UNet for ``1 x 8 x 8`` images (resolutions 8 -> 4 -> 2, residual
  blocks with GroupNorm and SiLU, DDPM-style time embedding), optionally class-conditional with an
  embedding of ``num_classes + 1`` entries; the last entry is the "no label" token used for
  classifier-free guidance (Ho & Salimans 2022).

Both take the training timestep ``t`` as a float tensor ``[B]`` (fractional allowed, the design page
notation) through the sinusoidal embedding of Vaswani et al. (2017) as used by DDPM
(Ho et al. 2020). Inputs of another dtype (e.g. float64 from the exact testbed) are cast to the
parameters' dtype and the output is cast back, so a loaded network is directly an ``EpsModel``
once it carries a ``schedule`` attribute (:func:`vrg_analysis.training.load_trained` sets it).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812 - the usual alias

__all__ = [
    "timestep_embedding",
    "MixtureMLP",
    "DigitsUNet",
    "ImageUNet",
    "ARCHITECTURES",
    "build_network",
]


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding ``[cos(t f_k), sin(t f_k)]``, ``f_k = max_period^(-k / (dim/2))``.

    ``t`` is a float tensor ``[B]`` of (possibly fractional) training timesteps; returns
    ``[B, dim]`` float32. ``dim`` must be even.
    """
    if dim % 2:
        raise ValueError(f"embedding dim must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t.reshape(-1, 1).to(torch.float32) * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _check_inputs(x: Tensor, t: Tensor, shape: tuple[int, ...], name: str) -> Tensor:
    if not isinstance(x, Tensor) or not isinstance(t, Tensor):
        raise TypeError(
            f"{name} expects tensors x and t, got {type(x).__name__}, {type(t).__name__}"
        )
    if tuple(x.shape[1:]) != shape:
        raise ValueError(
            f"{name} expects x of shape [B, {', '.join(map(str, shape))}], got {tuple(x.shape)}"
        )
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    t = t.reshape(-1)
    if t.shape[0] != x.shape[0]:
        raise ValueError(
            f"{name}: t must have one timestep per sample ({x.shape[0]}), "
            f"got shape {tuple(t.shape)}"
        )
    return t


class MixtureMLP(nn.Module):
    """``eps_theta(x_t, t) = MLP([x_t, emb(t)])`` for ``dim``-dimensional data.

    ``depth`` hidden layers of width ``hidden``, SiLU; the time embedding (``emb_dim``
    sinusoids) passes through a two-layer MLP before being concatenated with ``x_t``.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, emb_dim: int = 64) -> None:
        super().__init__()
        if dim < 1 or hidden < 1 or depth < 1 or emb_dim < 2:
            raise ValueError(
                f"invalid MixtureMLP sizes: dim={dim}, hidden={hidden}, depth={depth}, "
                f"emb_dim={emb_dim}"
            )
        self.dim, self.emb_dim = int(dim), int(emb_dim)
        self.time_mlp = nn.Sequential(
            nn.Linear(emb_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden)
        )
        layers: list[nn.Module] = [nn.Linear(dim + hidden, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        layers.append(nn.Linear(hidden, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        t = _check_inputs(x, t, (self.dim,), "MixtureMLP")
        dtype = self.net[0].weight.dtype
        temb = self.time_mlp(timestep_embedding(t, self.emb_dim).to(dtype))
        out = self.net(torch.cat([x.to(dtype), temb], dim=-1))
        return out.to(x.dtype)


class _ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, plus the projected time(+class) embedding, twice; residual."""

    def __init__(self, c_in: int, c_out: int, emb: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb, c_out)
        self.norm2 = nn.GroupNorm(min(groups, c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class DigitsUNet(nn.Module):
    """A small UNet for ``[B, 1, 8, 8]`` images: 8x8 (``ch``) -> 4x4 (``2 ch``) -> 2x2 (``2 ch``).

    With ``num_classes > 0`` it is class-conditional: ``forward(x, t, y)`` with integer labels
    ``y [B]`` in ``0 .. num_classes``; label ``num_classes`` (also what ``y=None`` means) is the
    "no label" token learned through label dropout, giving ``eps_theta(x_t, t, null)`` for
    classifier-free guidance.
    """

    def __init__(
        self, ch: int = 32, emb_dim: int = 128, num_classes: int = 0, groups: int = 8
    ) -> None:
        super().__init__()
        if ch < 1 or emb_dim < 2 or num_classes < 0:
            raise ValueError(
                f"invalid DigitsUNet sizes: ch={ch}, emb_dim={emb_dim}, num_classes={num_classes}"
            )
        self.ch, self.emb_dim, self.num_classes = int(ch), int(emb_dim), int(num_classes)
        self.time_mlp = nn.Sequential(
            nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.label_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes > 0 else None
        c1, c2 = ch, 2 * ch
        self.conv_in = nn.Conv2d(1, c1, 3, padding=1)
        self.down1 = _ResBlock(c1, c1, emb_dim, groups)  # 8x8
        self.pool1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)  # -> 4x4
        self.down2 = _ResBlock(c1, c2, emb_dim, groups)  # 4x4
        self.pool2 = nn.Conv2d(c2, c2, 3, stride=2, padding=1)  # -> 2x2
        self.mid = _ResBlock(c2, c2, emb_dim, groups)  # 2x2
        self.up2 = _ResBlock(c2 + c2, c2, emb_dim, groups)  # 4x4, skip from down2
        self.up1 = _ResBlock(c2 + c1, c1, emb_dim, groups)  # 8x8, skip from down1
        self.norm_out = nn.GroupNorm(min(groups, c1), c1)
        self.conv_out = nn.Conv2d(c1, 1, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        t = _check_inputs(x, t, (1, 8, 8), "DigitsUNet")
        dtype = self.conv_in.weight.dtype
        emb = self.time_mlp(timestep_embedding(t, self.ch).to(dtype))
        labels = _labels(y, x, self.num_classes, "DigitsUNet")
        if labels is not None:
            emb = emb + self.label_emb(labels)
        h0 = self.conv_in(x.to(dtype))
        h1 = self.down1(h0, emb)
        h2 = self.down2(self.pool1(h1), emb)
        h = self.mid(self.pool2(h2), emb)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.up2(torch.cat([h, h2], dim=1), emb)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.up1(torch.cat([h, h1], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h))).to(x.dtype)


def _labels(y: Tensor | None, x: Tensor, num_classes: int, name: str) -> Tensor | None:
    """Integer labels ``[B]`` in ``0 .. num_classes`` (``num_classes`` = "no label"), or ``None``
    for an unconditional network; ``y=None`` on a conditional network means "no label"."""
    if num_classes == 0:
        if y is not None:
            raise ValueError(f"this {name} is unconditional (num_classes=0) but labels were given")
        return None
    if y is None:
        return torch.full((x.shape[0],), num_classes, dtype=torch.long, device=x.device)
    y = torch.as_tensor(y, device=x.device)
    if y.ndim == 0:
        y = y.expand(x.shape[0])
    if y.shape != (x.shape[0],) or y.dtype.is_floating_point:
        raise ValueError(
            f"labels y must be integers of shape [{x.shape[0]}], got {tuple(y.shape)} {y.dtype}"
        )
    if bool(((y < 0) | (y > num_classes)).any()):
        raise ValueError(
            f"labels must lie in 0..{num_classes} ({num_classes} = no label), "
            f"got {sorted(set(y.tolist()))}"
        )
    return y.long()


class _Attention(nn.Module):
    """Single-head self-attention over the pixels of a feature map (DDPM's attention block)."""

    def __init__(self, c: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(min(groups, c), c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        a = F.scaled_dot_product_attention(
            q.transpose(1, 2)[:, None], k.transpose(1, 2)[:, None], v.transpose(1, 2)[:, None]
        )[:, 0]
        return x + self.proj(a.transpose(1, 2).reshape(b, c, h, w))


class ImageUNet(nn.Module):
    """A DDPM-style UNet for ``[B, in_channels, S, S]`` images (``S`` divisible by
    ``2^(len(ch_mult) - 1)``; 28 -> 14 -> 7 with the default three levels).

    Level ``i`` has ``ch * ch_mult[i]`` channels and ``num_res_blocks`` residual blocks on the way
    down, ``num_res_blocks + 1`` on the way up (each fed a skip connection, as in DDPM's UNet of Ho
    et al. 2020); self-attention after the residual blocks of the levels in ``attn_levels`` and in
    the middle. Time (and, with ``num_classes > 0``, class) embeddings enter every residual block.
    Label ``num_classes`` is the "no label" token for classifier-free guidance (as
    :class:`DigitsUNet`).
    """

    def __init__(
        self,
        image_size: int = 28,
        in_channels: int = 1,
        ch: int = 32,
        ch_mult: tuple[int, ...] | list[int] = (1, 2, 2),
        num_res_blocks: int = 1,
        attn_levels: tuple[int, ...] | list[int] = (2,),
        emb_dim: int = 128,
        num_classes: int = 0,
        groups: int = 8,
    ) -> None:
        super().__init__()
        mult = tuple(int(m) for m in ch_mult)
        levels = len(mult)
        if (
            image_size < 1
            or in_channels < 1
            or ch < 1
            or levels < 1
            or min(mult) < 1
            or num_res_blocks < 1
            or emb_dim < 2
            or num_classes < 0
            or image_size % (2 ** (levels - 1))
            or any(not 0 <= a < levels for a in attn_levels)
        ):
            raise ValueError(
                f"invalid ImageUNet sizes: image_size={image_size}, in_channels={in_channels}, "
                f"ch={ch}, ch_mult={mult}, num_res_blocks={num_res_blocks}, "
                f"attn_levels={tuple(attn_levels)}, emb_dim={emb_dim}, num_classes={num_classes}"
            )
        self.image_size, self.in_channels, self.ch = int(image_size), int(in_channels), int(ch)
        self.ch_mult, self.num_res_blocks = mult, int(num_res_blocks)
        self.attn_levels = tuple(int(a) for a in attn_levels)
        self.emb_dim, self.num_classes = int(emb_dim), int(num_classes)
        self.time_mlp = nn.Sequential(
            nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.label_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes > 0 else None
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        chans = [ch * m for m in mult]
        skips = [ch]
        c = ch
        self.down = nn.ModuleList()
        for i, co in enumerate(chans):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(_ResBlock(c, co, emb_dim, groups))
                c = co
                if i in self.attn_levels:
                    blocks.append(_Attention(c, groups))
                skips.append(c)
            if i < levels - 1:
                blocks.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
            self.down.append(blocks)
        self.mid = nn.ModuleList(
            [
                _ResBlock(c, c, emb_dim, groups),
                _Attention(c, groups),
                _ResBlock(c, c, emb_dim, groups),
            ]
        )
        self.up = nn.ModuleList()
        for i in reversed(range(levels)):
            co = chans[i]
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(_ResBlock(c + skips.pop(), co, emb_dim, groups))
                c = co
                if i in self.attn_levels:
                    blocks.append(_Attention(c, groups))
            if i > 0:
                blocks.append(
                    nn.Sequential(nn.Upsample(scale_factor=2.0), nn.Conv2d(c, c, 3, padding=1))
                )
            self.up.append(blocks)
        self.norm_out = nn.GroupNorm(min(groups, c), c)
        self.conv_out = nn.Conv2d(c, in_channels, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        s = self.image_size
        t = _check_inputs(x, t, (self.in_channels, s, s), "ImageUNet")
        dtype = self.conv_in.weight.dtype
        emb = self.time_mlp(timestep_embedding(t, self.ch).to(dtype))
        labels = _labels(y, x, self.num_classes, "ImageUNet")
        if labels is not None:
            emb = emb + self.label_emb(labels)
        h = self.conv_in(x.to(dtype))
        hs = [h]
        for blocks in self.down:
            for block in blocks:
                h = block(h, emb) if isinstance(block, _ResBlock) else block(h)
                if not isinstance(block, _Attention):
                    hs.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, emb)), emb)
        for blocks in self.up:
            for block in blocks:
                if isinstance(block, _ResBlock):
                    h = block(torch.cat([h, hs.pop()], dim=1), emb)
                else:
                    h = block(h)
        return self.conv_out(F.silu(self.norm_out(h))).to(x.dtype)


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "MixtureMLP": MixtureMLP,
    "DigitsUNet": DigitsUNet,
    "ImageUNet": ImageUNet,
}


def build_network(architecture: str, kwargs: dict[str, Any]) -> nn.Module:
    """A fresh network of class ``architecture`` (a key of :data:`ARCHITECTURES`)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](**kwargs)
