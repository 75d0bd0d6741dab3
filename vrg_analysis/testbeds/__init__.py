"""Testbeds: every model the toolkit studies, named by a string, behind one interface.

:func:`resolve_testbed` turns the ``model`` parameter of every notebook, study and command into a
:class:`Testbed`: a mixture testbed (``mixture-2d``, ``mixture-8d``: exact ``eps*`` and a trained
MLP), an image testbed (``digits``, ``digits-cond``: a shipped UNet and its data), a diffusers
checkpoint folder with its data set (:mod:`.checkpoint`), or a Stable-Diffusion-layout pipeline
folder with captioned images or latents (:mod:`.pipeline`).
"""

from __future__ import annotations

from pathlib import Path

from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.models.pipeline import is_pipeline_folder
from vrg_analysis.models.protocol import resolve_device
from vrg_analysis.testbeds.base import SET_METRICS, OnDevice, Reference, Scoring, Testbed
from vrg_analysis.testbeds.checkpoint import (
    CheckpointTestbed,
    make_checkpoint_testbed,
    pixel_features,
)
from vrg_analysis.testbeds.images import DATASETS, IMAGE_TESTBEDS, ImageTestbed, make_image_testbed
from vrg_analysis.testbeds.mixture import (
    MIXTURES,
    MixtureSplit,
    MixtureTestbed,
    check_same_schedule,
    make_mixture_testbed,
    mixture_split,
)
from vrg_analysis.testbeds.pipeline import PipelineTestbed, make_pipeline_testbed

__all__ = [
    "Testbed",
    "Reference",
    "Scoring",
    "OnDevice",
    "SET_METRICS",
    "MixtureTestbed",
    "ImageTestbed",
    "CheckpointTestbed",
    "PipelineTestbed",
    "MixtureSplit",
    "mixture_split",
    "pixel_features",
    "check_same_schedule",
    "MIXTURES",
    "IMAGE_TESTBEDS",
    "DATASETS",
    "known_testbeds",
    "check_model",
    "make_testbed",
    "resolve_testbed",
]


def known_testbeds() -> list[str]:
    """Every name :func:`make_testbed` accepts."""
    return sorted([*MIXTURES, *IMAGE_TESTBEDS])


def check_model(
    model: object,
    data: object = None,
    device: object = "cpu",
    *,
    names: tuple[str, str, str] = ("model", "data", "device"),
) -> None:
    """Refuse, before any work and naming the parameter, a ``model`` that is neither a testbed nor
    an existing folder, a folder without its ``data`` (an existing file or folder), and an
    unknown or unavailable ``device`` (the checks :func:`resolve_testbed` makes, for a chapter's
    parameters)."""
    m, d, dev = names
    if not isinstance(model, str) or not model:
        raise ValueError(f"parameter {m} must be a testbed name or a folder, got {model!r}")
    if model not in known_testbeds():
        if not Path(model).is_dir():
            raise ValueError(
                f"parameter {m}: {model!r} is neither a testbed ({', '.join(known_testbeds())}) "
                "nor a folder holding a diffusers checkpoint"
            )
        if not isinstance(data, str | Path) or not str(data) or not Path(data).exists():
            what = (
                "a pipeline folder needs its captioned data (an image folder with captions.csv "
                "or a latents file)"
                if is_pipeline_folder(model)
                else "a checkpoint folder needs the data it was trained on (an existing .npz, "
                ".npy or image folder)"
            )
            raise ValueError(f"parameter {d}: {what}, got {data!r}")
    try:
        resolve_device(str(device))
    except ValueError as exc:
        raise ValueError(f"parameter {dev}: {exc}") from exc


def make_testbed(
    name: str,
    *,
    schedule: NoiseSchedule | None = None,
    seed: int = 0,
    models_dir: str | Path | None = None,
    device: str = "cpu",
) -> Testbed:
    """A testbed by name, one of :func:`known_testbeds`.

    ``schedule`` defaults to ``NoiseSchedule.linear()`` for the mixtures and must match a trained
    model's otherwise; ``seed`` picks the random mixture where the testbed has one; ``models_dir``
    overrides where trained checkpoints are read (default the shipped ``data/models``); the
    trained model runs on ``device``.
    """
    if name in MIXTURES:
        return make_mixture_testbed(
            name, schedule=schedule, seed=seed, models_dir=models_dir, device=device
        )
    if name in IMAGE_TESTBEDS:
        return make_image_testbed(name, schedule=schedule, models_dir=models_dir, device=device)
    raise ValueError(f"unknown testbed {name!r}; known testbeds: {known_testbeds()}")


def resolve_testbed(
    model: str,
    *,
    data: str | None = None,
    device: str = "cpu",
    seed: int = 0,
    held_out_fraction: float = 0.25,
) -> Testbed:
    """The testbed a ``model`` parameter names: a testbed name, a diffusers checkpoint folder
    with ``data``, the data set it was trained on, or a pipeline folder (Stable Diffusion layout)
    with ``data``, captioned images or latents (split ``held_out_fraction`` held out, seeded)."""
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a testbed name or a folder, got {model!r}")
    resolve_device(device)  # an unknown or unavailable device is refused before any work
    if model in known_testbeds():
        return make_testbed(model, device=device)
    if not Path(model).is_dir():
        raise ValueError(
            f"unknown model {model!r}: not a testbed ({', '.join(known_testbeds())}) and not a "
            "folder holding a diffusers checkpoint"
        )
    make = make_pipeline_testbed if is_pipeline_folder(model) else make_checkpoint_testbed
    return make(model, data, device=device, seed=seed, held_out_fraction=held_out_fraction)
