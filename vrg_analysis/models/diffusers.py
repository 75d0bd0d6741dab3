"""diffusers checkpoints in a local folder as :class:`~vrg_analysis.models.protocol.EpsModel`.

A folder with a ``UNet2DModel`` (``unet/`` or at the top) and a DDPM-type scheduler config is
loaded offline (``HF_HUB_OFFLINE=1``); its schedule becomes a
:class:`~vrg_analysis.core.schedules.NoiseSchedule` (:func:`schedule_from_diffusers_config`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.io import read_json_object, sha256_file
from vrg_analysis.models.protocol import Prediction, TorchEpsModel, resolve_device

__all__ = [
    "DiffusersEpsModel",
    "DIFFUSERS_BETA_SCHEDULES",
    "load_diffusers_model",
    "schedule_from_diffusers_config",
]

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- diffusers folders
#: ``beta_schedule`` values of a diffusers scheduler config that
#: :func:`schedule_from_diffusers_config` turns into a :class:`NoiseSchedule`.
DIFFUSERS_BETA_SCHEDULES: tuple[str, ...] = (
    "linear",
    "scaled_linear",
    "squaredcos_cap_v2",
    "sigmoid",
)
_SCHEDULER_CONFIG = "scheduler_config.json"
_MODEL_CONFIG = "config.json"
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_HALF_DTYPES = (torch.float16, torch.bfloat16)
_DTYPE_NAMES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float64": torch.float64,
    "fp64": torch.float64,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def schedule_from_diffusers_config(
    config: Mapping[str, Any], source: str = "scheduler config"
) -> NoiseSchedule:
    """The :class:`NoiseSchedule` a diffusers (DDPM-type) scheduler config describes.

    ``trained_betas`` wins when present; otherwise ``beta_schedule`` with ``beta_start``,
    ``beta_end`` and ``num_train_timesteps`` gives the betas as diffusers builds them:
    ``linear`` (DDPM, Ho et al. 2020, sec. 4), ``scaled_linear`` (linear in ``sqrt(beta)``),
    ``squaredcos_cap_v2`` (Nichol & Dhariwal 2021, eq. 17, betas capped at 0.999) and ``sigmoid``.
    ``alpha_bar[n] = prod_{i<=n} (1 - beta_i)`` (DDPM eq. 4) is then formed in float64, where
    diffusers uses float32 (they agree to float32 precision). ``source`` names the config in errors.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"{source}: expected a mapping, got {type(config).__name__}")
    if config.get("rescale_betas_zero_snr"):
        raise ValueError(
            f"{source}: rescale_betas_zero_snr=True gives alpha_bar = 0 (infinite noise level) "
            "at the last timestep, which a VP NoiseSchedule cannot represent"
        )
    trained = config.get("trained_betas")
    if trained is not None:
        try:
            return NoiseSchedule.from_betas(np.asarray(trained, dtype=np.float64), "trained_betas")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: invalid trained_betas: {exc}") from exc
    if "beta_schedule" not in config:
        raise ValueError(
            f"{source}: neither 'beta_schedule' nor 'trained_betas' is set, so this is not a "
            f"DDPM-type (variance-preserving) scheduler config (class "
            f"{config.get('_class_name', 'unknown')!r})"
        )
    kind = config["beta_schedule"]
    n = config.get("num_train_timesteps", 1000)
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"{source}: num_train_timesteps must be an integer >= 2, got {n!r}")
    beta_start = config.get("beta_start", 1e-4)
    beta_end = config.get("beta_end", 0.02)
    for key, value in (("beta_start", beta_start), ("beta_end", beta_end)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise ValueError(f"{source}: {key} must be a number in (0, 1), got {value!r}")
    b0, b1 = float(beta_start), float(beta_end)
    if kind == "linear":
        return NoiseSchedule.linear(n, b0, b1)
    if kind == "scaled_linear":
        return NoiseSchedule.scaled_linear(n, b0, b1)
    if kind == "squaredcos_cap_v2":
        return NoiseSchedule.cosine(n)  # diffusers' betas_for_alpha_bar: s = 0.008, cap 0.999
    if kind == "sigmoid":
        sig = 1.0 / (1.0 + np.exp(-np.linspace(-6.0, 6.0, n, dtype=np.float64)))
        return NoiseSchedule.from_betas(sig * (b1 - b0) + b0, "sigmoid")
    raise ValueError(
        f"{source}: unsupported beta_schedule {kind!r}; supported: {DIFFUSERS_BETA_SCHEDULES} "
        "(or 'trained_betas')"
    )


def _resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        if dtype.lower() not in _DTYPE_NAMES:
            raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(_DTYPE_NAMES)}")
        resolved = _DTYPE_NAMES[dtype.lower()]
    elif isinstance(dtype, torch.dtype):
        resolved = dtype
    else:
        raise TypeError(f"dtype must be a torch.dtype, a str or None, got {type(dtype).__name__}")
    if resolved not in (torch.float32, torch.float64, *_HALF_DTYPES):
        raise ValueError(f"unsupported dtype {resolved}; expected a floating-point dtype")
    if resolved in _HALF_DTYPES and device.type != "cuda":
        raise ValueError(
            f"dtype {resolved} is only supported on CUDA (got device {str(device)!r}): "
            "half-precision convolutions on the CPU are slow or unsupported; "
            "use dtype=torch.float32 there"
        )
    return resolved


@contextmanager
def _hf_offline() -> Iterator[None]:
    """``HF_HUB_OFFLINE=1`` for the duration of the block (restored afterwards)."""
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = None
    old_const = None
    try:
        import huggingface_hub.constants as constants  # read at import; patch for this call

        old_const = getattr(constants, "HF_HUB_OFFLINE", None)
        constants.HF_HUB_OFFLINE = True
    except ImportError:  # pragma: no cover - diffusers depends on huggingface_hub
        constants = None
    try:
        yield
    finally:
        if constants is not None:
            constants.HF_HUB_OFFLINE = old_const
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old


def _find_unet_dir(root: Path, subfolder: str | None) -> Path:
    candidates = [root / subfolder] if subfolder is not None else [root / "unet", root]
    for c in candidates:
        if (c / _MODEL_CONFIG).is_file():
            return c
    looked = " or ".join(str(c / _MODEL_CONFIG) for c in candidates)
    raise ValueError(f"no diffusers model found in folder {str(root)!r}: looked for {looked}")


def _find_scheduler_config(root: Path) -> Path:
    candidates = [root / "scheduler" / _SCHEDULER_CONFIG, root / _SCHEDULER_CONFIG]
    for c in candidates:
        if c.is_file():
            return c
    raise ValueError(
        f"no scheduler config in diffusers folder {str(root)!r}: looked for "
        f"{' and '.join(str(c) for c in candidates)}; the noise schedule cannot be known without it"
    )


def _weight_files(unet_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in unet_dir.iterdir()
        if p.is_file()
        and p.name.startswith("diffusion_pytorch_model")
        and p.name.endswith(_WEIGHT_SUFFIXES)
    )


class DiffusersEpsModel(TorchEpsModel):
    """A diffusers ``UNet2DModel`` loaded from a local folder, as an :class:`EpsModel`.

    Build it with :func:`load_diffusers_model`. Calling it moves ``x`` to the model's device and
    dtype, evaluates ``unet(x, t).sample`` in chunks of ``batch_size``, and returns the result in
    ``x``'s dtype on ``x``'s device; x0- and v-prediction outputs are converted to noise by
    :class:`TorchEpsModel` (in ``x``'s dtype). Fractional timesteps reach the sinusoidal timestep
    embedding as floats (DDPM's positional embedding is defined for real ``t``).

    Attributes: ``unet``, ``schedule``, ``prediction``, ``name``, ``path`` (the folder),
    ``device``, ``dtype``, ``batch_size``, ``sample_shape`` ``(C, H, W)``, ``weights_files`` and
    ``weights_sha256`` (sha256 of the single weights file, or of the ``"name sha256"`` lines of
    several, for provenance).
    """

    def __init__(
        self,
        unet: torch.nn.Module,
        schedule: NoiseSchedule,
        prediction: Prediction = "epsilon",
        *,
        name: str,
        path: Path,
        device: torch.device,
        dtype: torch.dtype,
        batch_size: int | None,
        weights_files: tuple[str, ...],
        weights_sha256: str,
        learned_variance: bool = False,
    ) -> None:
        super().__init__(self._forward, schedule, prediction, name)
        self.unet = unet
        self.path = path
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self.weights_files = weights_files
        self.weights_sha256 = weights_sha256
        self.learned_variance = learned_variance
        cfg = unet.config
        self.in_channels = int(cfg.in_channels)
        size = cfg.sample_size
        hw = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
        self.sample_shape: tuple[int, int, int] = (self.in_channels, *hw)
        self._integer_t = getattr(cfg, "time_embedding_type", "positional") == "learned"
        self.class_conditional = bool(
            getattr(cfg, "num_class_embeds", None) is not None
            or getattr(cfg, "class_embed_type", None)
        )

    def _forward(self, x: Tensor, t: Tensor, class_labels: Tensor | None = None) -> Tensor:
        """The UNet's output for ``x`` at timesteps ``t`` (``class_labels`` for a class-conditional
        UNet, passed through as diffusers' ``class_labels``)."""
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x has shape {tuple(x.shape)}; {self.name} expects [B, {self.in_channels}, H, W]"
            )
        t = torch.as_tensor(t)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t has shape {tuple(t.shape)}; expected [] or [{x.shape[0]}]")
        if self._integer_t:
            if t.is_floating_point() and not torch.equal(t, t.round()):
                raise ValueError(
                    f"{self.name} uses a learned timestep embedding, which takes integer "
                    f"timesteps only; got t = {t.reshape(-1)[0].item()!r}"
                )
            t_dev = t.round().long().to(self.device)
        else:
            # sinusoidal embedding of real t; float32 keeps the fractional part (fp16 would not)
            t_dev = t.to(device=self.device, dtype=torch.float32)
        x_dev = x.to(device=self.device, dtype=self.dtype)
        if class_labels is None and self.class_conditional:
            raise ValueError(
                f"{self.name} is class-conditional: pass class_labels (a sampler forwards "
                "model_kwargs={'class_labels': labels})"
            )
        if class_labels is not None:
            class_labels = torch.as_tensor(class_labels).to(self.device)
            if class_labels.shape[:1] != x.shape[:1]:
                raise ValueError(
                    f"class_labels has shape {tuple(class_labels.shape)}; expected [{x.shape[0]}]"
                )
        step = x.shape[0] if self.batch_size is None else self.batch_size
        outs: list[Tensor] = []
        with torch.no_grad():
            for i in range(0, x.shape[0], max(step, 1)):
                labels = None if class_labels is None else class_labels[i : i + step]
                out = self.unet(
                    x_dev[i : i + step], t_dev[i : i + step], class_labels=labels
                ).sample
                if self.learned_variance:
                    out = out[:, : self.in_channels]  # [eps, variance] as diffusers' pipelines
                outs.append(out.to(device=x.device, dtype=x.dtype))
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def __repr__(self) -> str:
        return (
            f"DiffusersEpsModel(name={self.name!r}, path={str(self.path)!r}, "
            f"prediction={self.prediction!r}, device={str(self.device)!r}, dtype={self.dtype})"
        )


def load_diffusers_model(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    batch_size: int | None = None,
    subfolder: str | None = None,
) -> DiffusersEpsModel:
    """Load a diffusers ``UNet2DModel`` and its scheduler config from a local folder, offline.

    The folder is a ``save_pretrained`` layout: the model in ``unet/`` (or ``subfolder``, or the
    folder itself) and the scheduler config in ``scheduler/scheduler_config.json`` (or
    ``scheduler_config.json`` beside the model). The scheduler config becomes the
    :class:`NoiseSchedule` (:func:`schedule_from_diffusers_config`) and its ``prediction_type``
    (``epsilon`` / ``sample`` / ``v_prediction``) says how the output is converted to noise.

    Nothing is downloaded: ``HF_HUB_OFFLINE=1`` is set during the call and diffusers gets
    ``local_files_only=True``. ``dtype`` float16 / bfloat16 is accepted only on CUDA; ``device``
    ``"cuda"`` without an available GPU is a ``ValueError``. ``batch_size`` bounds how many samples
    go through the UNet at once (``None``: the whole batch).
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"diffusers model folder {str(root)!r} does not exist or is not a folder")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    if subfolder is not None and not isinstance(subfolder, str):
        raise TypeError(f"subfolder must be a str or None, got {type(subfolder).__name__}")
    dev = resolve_device(device)
    dt = _resolve_dtype(dtype, dev)

    unet_dir = _find_unet_dir(root, subfolder)
    model_cfg = read_json_object(unet_dir / _MODEL_CONFIG, "model config")
    cls_name = model_cfg.get("_class_name")
    if cls_name != "UNet2DModel":
        raise ValueError(
            f"{unet_dir / _MODEL_CONFIG}: model class {cls_name!r} is not supported; "
            "expected 'UNet2DModel' (unconditional DDPM-type UNet)"
        )
    if model_cfg.get("time_embedding_type", "positional") == "fourier":
        raise ValueError(
            f"{unet_dir}: Fourier time embedding means a score-SDE (VE, sigma-conditioned) model, "
            "not a DDPM noise predictor"
        )
    weights = _weight_files(unet_dir)
    if not weights:
        raise ValueError(
            f"no model weights in {str(unet_dir)!r}: expected diffusion_pytorch_model*.safetensors "
            "or *.bin"
        )

    sched_path = _find_scheduler_config(root)
    sched_cfg = read_json_object(sched_path, "scheduler config")
    schedule = schedule_from_diffusers_config(sched_cfg, source=str(sched_path))
    prediction = sched_cfg.get("prediction_type", "epsilon")
    if prediction not in ("epsilon", "sample", "v_prediction"):
        raise ValueError(
            f"{sched_path}: unsupported prediction_type {prediction!r}; "
            "expected 'epsilon', 'sample' or 'v_prediction'"
        )
    in_ch, out_ch = int(model_cfg.get("in_channels", 3)), int(model_cfg.get("out_channels", 3))
    learned_variance = out_ch == 2 * in_ch and sched_cfg.get("variance_type") in (
        "learned",
        "learned_range",
    )
    if out_ch != in_ch and not learned_variance:
        raise ValueError(
            f"{unet_dir}: out_channels={out_ch} differs from in_channels={in_ch}, and the "
            "scheduler does not declare a learned variance; cannot read a noise prediction from it"
        )

    try:
        from diffusers import UNet2DModel
    except ImportError as exc:  # pragma: no cover - diffusers is a test extra
        raise ImportError("load_diffusers_model needs diffusers: pip install diffusers") from exc
    with _hf_offline():
        try:
            unet = UNet2DModel.from_pretrained(
                str(unet_dir), local_files_only=True, torch_dtype=dt, low_cpu_mem_usage=False
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise ValueError(f"cannot load UNet2DModel from {str(unet_dir)!r}: {exc}") from exc
    unet = unet.to(device=dev).eval()  # dtype set by torch_dtype (keeps fp32-only modules)
    unet.requires_grad_(False)

    if len(weights) == 1:
        digest = sha256_file(weights[0])
    else:
        lines = "".join(f"{p.name} {sha256_file(p)}\n" for p in weights)
        digest = hashlib.sha256(lines.encode()).hexdigest()
    model = DiffusersEpsModel(
        unet,
        schedule,
        prediction,
        name=root.resolve().name if unet_dir == root else f"{root.resolve().name}/{unet_dir.name}",
        path=root,
        device=dev,
        dtype=dt,
        batch_size=batch_size,
        weights_files=tuple(p.name for p in weights),
        weights_sha256=digest,
        learned_variance=learned_variance,
    )
    logger.info(
        "loaded %s from %s (%s, %s, prediction=%s, schedule=%s, N=%d)",
        type(unet).__name__,
        unet_dir,
        dev,
        dt,
        prediction,
        schedule.name,
        schedule.num_timesteps,
    )
    return model
