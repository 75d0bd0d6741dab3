"""Shipped checkpoints: a network rebuilt from its JSON card and hash-checked weights.

Each trained checkpoint is ``<name>.pt`` (a ``state_dict``) beside ``<name>.json``, its card:
architecture, training recipe, seed, data hash, wall time, losses and the sha256 of the ``.pt``
(written by :mod:`vrg_analysis.training`). :func:`load_trained` rebuilds the network named by the
card, loads it with ``torch.load(weights_only=True)`` and refuses a file whose sha256 differs from
the card.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.io import load_verified_state_dict
from vrg_analysis.models.networks import build_network
from vrg_analysis.resources import models_dir

__all__ = [
    "CARD_FORMAT",
    "MODELS_DIR",
    "MissingCheckpointError",
    "load_card",
    "load_trained",
    "shipped_checkpoints",
]

#: The shipped checkpoints (``data/models``; see :mod:`vrg_analysis.resources`).
MODELS_DIR = models_dir()
CARD_FORMAT = 1


class MissingCheckpointError(FileNotFoundError, ValueError):
    """No card of that name in the folder: a missing file, and a bad name (either handler
    catches it)."""


def shipped_checkpoints(dir: str | Path = MODELS_DIR) -> list[str]:  # noqa: A002
    """Names of the checkpoints (cards with weights) in ``dir``."""
    folder = Path(dir)
    return sorted(p.stem for p in folder.glob("*.json") if (folder / f"{p.stem}.pt").is_file())


def load_card(name: str, dir: str | Path = MODELS_DIR) -> dict[str, Any]:  # noqa: A002
    """The JSON card of checkpoint ``name`` in ``dir``."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"a checkpoint name must be a plain name, got {name!r}")
    card_path = Path(dir) / f"{name}.json"
    if not card_path.is_file():
        raise MissingCheckpointError(
            f"no checkpoint {name!r} in {dir} (available: {shipped_checkpoints(dir)}); train it "
            f"with `python -m vrg_analysis train {name} --out-dir {dir}`"
        )
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{card_path} is not valid JSON: {exc}") from exc
    if not isinstance(card, dict):
        raise ValueError(f"{card_path}: a model card is a JSON object, got {type(card).__name__}")
    for key in ("architecture", "sha256", "schedule"):
        if key not in card:
            raise ValueError(f"{card_path} lacks the field {key!r}")
    arch = card["architecture"]
    if (
        not isinstance(arch, dict)
        or not isinstance(arch.get("class"), str)
        or not isinstance(arch.get("kwargs", {}), dict)
    ):
        raise ValueError(
            f"{card_path}: 'architecture' must be an object with a 'class' name and a 'kwargs' "
            f"object, got {arch!r}"
        )
    sha = card["sha256"]
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        raise ValueError(f"{card_path}: 'sha256' must be 64 hex digits, got {sha!r}")
    try:
        NoiseSchedule.from_dict(card["schedule"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{card_path}: 'schedule' is not a schedule ({exc!r})") from exc
    return card


def load_trained(name: str, dir: str | Path = MODELS_DIR) -> nn.Module:  # noqa: A002
    """The trained network ``name`` from ``dir`` (eval mode, float32, CPU).

    The card gives the architecture; the ``.pt`` is read with ``torch.load(weights_only=True)``
    after its sha256 is checked against the card (the bytes hashed are the bytes loaded). The module
    gets ``schedule`` (its :class:`NoiseSchedule`) and ``card`` attributes, so it is itself an
    :class:`~vrg_analysis.models.EpsModel` (a conditional UNet called as ``model(x, t)`` predicts
    with the "no label" token).
    """
    card = load_card(name, dir)
    weights = Path(dir) / f"{name}.pt"
    if not weights.is_file():
        raise FileNotFoundError(
            f"no weights file {weights} (card found); recreate it with "
            f"`python -m vrg_analysis train {name} --out-dir {dir}`"
        )
    # 1. integrity: the bytes loaded are the ones the card describes
    state = load_verified_state_dict(weights, card["sha256"])
    # 2. the architecture named by the card
    arch = card["architecture"]
    try:
        model = build_network(arch["class"], dict(arch.get("kwargs", {})))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{Path(dir) / (name + '.json')}: architecture {arch!r}: {exc}") from exc
    # 3. shapes: every tensor present and of the architecture's shape
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{weights} does not fit {arch['class']}({arch.get('kwargs', {})}): "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, shape mismatches {wrong[:5]}"
        )
    model.load_state_dict(state)
    model.eval()
    model.schedule = NoiseSchedule.from_dict(card["schedule"])  # type: ignore[assignment]
    model.card = card  # type: ignore[assignment]
    return model
