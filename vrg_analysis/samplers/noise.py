"""Per-sample seeding: sample ``i`` is the same whatever the batch it is drawn in.

A single ``torch.Generator`` fills a batch in one draw, so sample ``i``'s noise depends on the batch
size and on its position. Here sample ``i`` of a run seeded ``seed`` owns two generators seeded from
``(seed, i, stream)`` through numpy's ``SeedSequence`` (independent streams, no overlap): one
draws its starting noise ``x_T`` (:func:`initial_noise`), the other, for stochastic samplers, its
noise at every step (:func:`sample_generators`). Splitting a batch,
or drawing samples 100..199 alone with ``start=100``, reproduces the same samples bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "NoiseSource",
    "INITIAL_STREAM",
    "STEP_STREAM",
    "sample_generators",
    "initial_noise",
    "draw_noise",
]

#: What a sampler's ``generator`` argument takes: one generator for the whole batch (fast, but the
#: draws depend on the batch), one per sample (batch-invariant, see :func:`sample_generators`), or
#: ``None`` (torch's global generator).
NoiseSource = torch.Generator | Sequence[torch.Generator] | None


def _check_seed(seed: int, start: int, n: int) -> None:
    for label, value, low in (("seed", seed, 0), ("start", start, 0), ("n", n, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{label} must be an integer >= {low}, got {value!r}")


#: The stream of a sample's starting noise and that of its per-step noise: independent.
INITIAL_STREAM, STEP_STREAM = 0, 1


def sample_generators(
    seed: int,
    n: int,
    *,
    start: int = 0,
    stream: int = STEP_STREAM,
    device: str | torch.device = "cpu",
) -> list[torch.Generator]:
    """One ``torch.Generator`` per sample ``start .. start + n - 1``, each seeded from
    ``SeedSequence([seed, i, stream])``: by default the per-step noise stream, independent of the
    starting noise :func:`initial_noise` draws for the same ``seed``."""
    _check_seed(seed, start, n)
    gens = []
    for i in range(start, start + n):
        state = np.random.SeedSequence([int(seed), i, int(stream)]).generate_state(
            2, dtype=np.uint32
        )
        g = torch.Generator(device=device)
        g.manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)  # 63 bits, a valid torch seed
        gens.append(g)
    return gens


def draw_noise(
    shape: Sequence[int],
    generator: NoiseSource,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Standard normal noise of ``shape`` (batch first) from ``generator`` (see
    :data:`NoiseSource`); with one generator per sample, row ``i`` comes from generator ``i``."""
    shape = tuple(int(s) for s in shape)
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, dtype=dtype, device=device)
    gens = list(generator)
    if not gens or not all(isinstance(g, torch.Generator) for g in gens):
        raise TypeError("generator must be a torch.Generator, a sequence of them, or None")
    if len(gens) != shape[0]:
        raise ValueError(f"{len(gens)} generators given for a batch of {shape[0]} samples")
    return torch.stack(
        [torch.randn(shape[1:], generator=g, dtype=dtype, device=g.device).to(device) for g in gens]
    )


def initial_noise(
    shape: Sequence[int],
    seed: int,
    *,
    start: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Starting noise ``x_T ~ N(0, I)`` for samples ``start .. start + shape[0] - 1`` of the run
    seeded ``seed``: sample ``i`` is the same whatever the batch it is drawn in."""
    shape = tuple(int(s) for s in shape)
    if not shape:
        raise ValueError("shape needs a batch dimension")
    gens = sample_generators(seed, shape[0], start=start, stream=INITIAL_STREAM)
    return draw_noise(shape, gens, dtype=dtype, device=device)
