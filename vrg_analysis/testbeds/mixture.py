"""The exact testbeds: Gaussian-mixture data, the exact predictor ``eps*`` and a trained MLP.

For data ``x_0 ~ sum_i pi_i N(mu_i, S_i)`` every quantity VRG depends on is available in closed
form (:mod:`vrg_analysis.models.analytic`). A :class:`MixtureTestbed` bundles the mixture, its
exact predictor (:attr:`MixtureTestbed.oracle`), the MLP trained on a fixed, seeded sample of it
(:attr:`MixtureTestbed.model`; ``data/models/<name>-mlp``), and exact scorers: the Frechet distance
to the exact moments, the exact log-likelihood, and the exact probability-flow ODE endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.io import sha256_array
from vrg_analysis.models.analytic import GaussianMixture, OptimalEpsModel, reference_ode_endpoint
from vrg_analysis.models.checkpoints import MODELS_DIR, load_trained
from vrg_analysis.testbeds.base import Reference, Scoring, Testbed

__all__ = ["MixtureSplit", "mixture_split", "MixtureTestbed", "MIXTURES", "check_same_schedule"]

#: The exact ODE's tolerance for the per-sample error against the exact endpoint.
ODE_TOLERANCE = 1e-6


def _ring(seed: int) -> tuple[GaussianMixture, str]:
    del seed  # the ring is deterministic
    return GaussianMixture.ring_2d(), "8 isotropic modes (std 0.1) on a unit circle, for pictures"


def _random_8d(seed: int) -> tuple[GaussianMixture, str]:
    return (
        GaussianMixture.random(8, 8, seed),
        f"8 anisotropic modes in 8 dimensions (GaussianMixture.random seed {seed})",
    )


#: name -> (mixture factory of a seed, the shipped MLP's name, the seed it was trained on)
MIXTURES: dict[str, tuple[Callable[[int], tuple[GaussianMixture, str]], str, int]] = {
    "mixture-2d": (_ring, "mixture-2d-mlp", 0),
    "mixture-8d": (_random_8d, "mixture-8d-mlp", 0),
}


@dataclass(frozen=True, eq=False)
class MixtureSplit:
    """Fixed training and held-out samples of a mixture testbed (float32 ``[n, d]``)."""

    train_x: Tensor
    held_out_x: Tensor
    seed: int
    sha256: str


def mixture_split(
    testbed: str = "mixture-2d", seed: int = 0, n_train: int = 20_000, n_held_out: int = 5_000
) -> MixtureSplit:
    """The samples a mixture MLP is trained on (and a disjoint held-out draw), given ``seed``."""
    if testbed not in MIXTURES:
        raise ValueError(f"unknown mixture testbed {testbed!r}; known: {sorted(MIXTURES)}")
    mixture, _ = MIXTURES[testbed][0](0)
    gen = torch.Generator().manual_seed(int(seed))
    x, _ = mixture.sample(int(n_train) + int(n_held_out), gen)
    x = x.to(torch.float32)
    digest = sha256_array(x.numpy())
    return MixtureSplit(x[:n_train].clone(), x[n_train:].clone(), int(seed), digest)


def check_same_schedule(trained: NoiseSchedule, wanted: NoiseSchedule, name: str) -> None:
    """Refuse a model trained on another schedule than the one asked for."""
    a, b = trained.alphas_cumprod, wanted.alphas_cumprod
    if a.shape != b.shape or not np.allclose(a, b, rtol=1e-12, atol=0.0):
        raise ValueError(
            f"model {name!r} was trained on schedule {trained!r}, not the requested {wanted!r}"
        )


@dataclass(eq=False)
class MixtureTestbed(Testbed):
    """A named exact testbed: the data distribution, its schedule, ``eps*`` and the trained MLP.

    ``model`` (the trained MLP) exists only for the mixture a checkpoint was trained on (seed 0 of
    ``mixture-8d``); ``oracle`` exists always.
    """

    name: str
    description: str
    schedule: NoiseSchedule
    distribution: GaussianMixture
    trained_model_name: str | None = None
    models_dir: str | Path | None = None
    device: str = "cpu"
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def mixture(self) -> GaussianMixture:
        return self.distribution

    @property
    def dim(self) -> int:
        return self.distribution.dim

    @property
    def oracle(self) -> OptimalEpsModel:
        if "oracle" not in self._cache:
            self._cache["oracle"] = OptimalEpsModel(self.distribution, self.schedule)
        return self._cache["oracle"]

    @property
    def model_name(self) -> str:
        if self.trained_model_name is None:
            raise ValueError(f"testbed {self.name!r} (this seed) ships no trained model")
        return self.trained_model_name

    def _network(self) -> Any:
        if "net" not in self._cache:
            net = load_trained(self.model_name, self.models_dir or MODELS_DIR)
            check_same_schedule(net.schedule, self.schedule, self.model_name)
            self._cache["net"] = net
        return self._cache["net"]

    @property
    def model(self) -> Any:
        """The trained MLP (hash-checked on first access), on :attr:`device`."""
        return self._on_device(self._network())

    def _split(self) -> MixtureSplit:
        if "split" not in self._cache:
            data = self._network().card.get("data", {}) if self.trained_model_name else {}
            self._cache["split"] = mixture_split(
                self.name,
                int(data.get("sample_seed", 0)),
                int(data.get("n_train", 20_000)),
                int(data.get("n_held_out", 5_000)),
            )
            digest = data.get("samples_sha256")
            if digest is not None and digest != self._cache["split"].sha256:
                raise ValueError(
                    f"model {self.trained_model_name!r} was trained on samples with sha256 "
                    f"{digest}, but mixture_split gives {self._cache['split'].sha256}"
                )
        return self._cache["split"]

    @property
    def train_x(self) -> Tensor:
        """The fixed training samples ``[n, d]`` (float32) the trained model saw (seeded)."""
        return self._split().train_x

    @property
    def held_out_x(self) -> Tensor:
        """Held-out samples from the same seeded draw, disjoint from :attr:`train_x`."""
        return self._split().held_out_x

    def reference(self) -> Reference:
        return Reference(self.oracle, "eps* (exact predictor of the mixture)", exact=True)

    def scoring(self) -> Scoring:
        mixture = self.distribution
        return Scoring(
            set_metric="frechet",
            set_features=lambda x: x.detach().double().cpu().numpy(),
            reference_moments=(mixture.mean(), mixture.covariance()),
            per_sample={"log_likelihood": lambda x: mixture.log_prob(x.double()).numpy()},
            exact_endpoint=lambda x_t, a: reference_ode_endpoint(
                mixture, x_t.double(), a, rtol=ODE_TOLERANCE, atol=ODE_TOLERANCE
            ),
            fingerprint={"mixture": mixture.to_dict(), "ode_tolerance": ODE_TOLERANCE},
        )

    @property
    def fingerprint(self) -> dict[str, Any]:
        fp: dict[str, Any] = {"testbed": self.name, "mixture": self.distribution.to_dict()}
        if self.trained_model_name is not None:
            fp["model_sha256"] = self._network().card.get("sha256")
        return fp


def make_mixture_testbed(
    name: str,
    *,
    schedule: NoiseSchedule | None = None,
    seed: int = 0,
    models_dir: str | Path | None = None,
    device: str = "cpu",
) -> MixtureTestbed:
    """The mixture testbed ``name`` (``seed`` picks the random mixture where there is one)."""
    factory, model_name, trained_seed = MIXTURES[name]
    mixture, description = factory(seed)
    trained = model_name if seed == trained_seed or name == "mixture-2d" else None
    return MixtureTestbed(
        name=name,
        description=description,
        schedule=schedule or NoiseSchedule.linear(),
        distribution=mixture,
        trained_model_name=trained,
        models_dir=models_dir,
        device=device,
    )
