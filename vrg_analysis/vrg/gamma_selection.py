"""Choosing VRG's learning portion gamma from a small validation budget (open question 3).

The paper fixes ``gamma`` by hand (official default 0.01; its ablation favours 0.15 to 0.3). Here
every candidate ``gamma`` gives a VRG trajectory (:func:`~vrg_analysis.optimize.optimize_trajectory`
with the same profile, penalty and bounds), and each is scored on a validation set of starting
noises by a criterion that needs nothing but the model::

    score(gamma) = mean_i || x_K^{gamma}(x_T^i) - x_ref(x_T^i) ||^2 / d                  (G1)

with ``x_ref`` a fine-step solve of the same model from the same ``x_T`` (by default 200 steps
uniform in ``lambda_`` from the trajectory's start level, with the sampler being tuned, DDIM by
default: the paper's "image MSE"). The
smallest score wins; a tie (within ``rtol``) goes to the smaller ``gamma``, the smaller change
to the baseline. ``gamma = 0`` stands for the baseline itself.

What (G1) can and cannot see: for a deterministic model the fine solve has the same model error
as the candidate, so (G1) measures the candidate's discretisation error of *the model's* flow,
not the model error VRG's objective is about. Pass ``references`` to score against anything
else (on the exact testbed: the exact ODE endpoints, an oracle no real model has).

:class:`GammaSelectedArm` is the rule as an arm of the paired comparison engine: it selects on
the engine's validation noise (independent of every evaluation seed) and reports its budget.

Budget: ``model_calls`` counts single-sample network evaluations spent on validation,
``n_val * (nfe(reference_steps) + sum of the candidates' nfe(K))`` with the sampler's model
calls per trajectory ``nfe`` (K for DDIM; the profile, which VRG as published needs too, is not
counted).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from vrg_analysis._checks import frozen_array
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import alpha_bar_from_lambda, lambda_from_alpha_bar
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.models import EpsModel
from vrg_analysis.models.analytic import GaussianMixture, reference_ode_endpoint
from vrg_analysis.samplers import get_sampler
from vrg_analysis.vrg.arms import ArmContext, arm_summary
from vrg_analysis.vrg.retime import VRGSetting, vrg_retime

__all__ = [
    "DEFAULT_GAMMAS",
    "GammaSelection",
    "fine_reference_trajectory",
    "fine_reference",
    "endpoint_deviation",
    "vrg_candidates",
    "select_gamma",
    "GammaSelectedArm",
]

log = logging.getLogger(__name__)
FloatArray = NDArray[np.float64]

#: Candidates: the baseline (0), the official default (0.01) and the paper's ablation range.
DEFAULT_GAMMAS: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)


@dataclass(frozen=True, eq=False)
class GammaSelection:
    """Every candidate's validation score (G1), the chosen ``gamma`` and the budget spent."""

    gammas: FloatArray
    scores: FloatArray  # mean of (G1) per candidate
    score_sems: FloatArray  # its standard error over the validation samples
    trajectories: tuple[Trajectory, ...]
    chosen_index: int
    n_validation: int
    reference_calls: int
    candidate_calls: int
    criterion: str
    wall_time_s: float
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def chosen_gamma(self) -> float:
        return float(self.gammas[self.chosen_index])

    @property
    def trajectory(self) -> Trajectory:
        """The chosen candidate's trajectory."""
        return self.trajectories[self.chosen_index]

    @property
    def model_calls(self) -> int:
        """Single-sample model evaluations spent on validation (reference and candidates)."""
        return self.reference_calls + self.candidate_calls

    def rows(self) -> list[dict[str, Any]]:
        """One record per candidate, for a table."""
        return [
            {
                "gamma": float(g),
                "score": float(s),
                "score_sem": float(e),
                "chosen": i == self.chosen_index,
                "alpha_bar_T": float(t.alpha_bar[0]),
                "alpha_bar_1": float(t.alpha_bar[-1]),
            }
            for i, (g, s, e, t) in enumerate(
                zip(self.gammas, self.scores, self.score_sems, self.trajectories, strict=True)
            )
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "gammas": self.gammas.tolist(),
            "scores": self.scores.tolist(),
            "score_sems": self.score_sems.tolist(),
            "trajectories": [t.to_dict() for t in self.trajectories],
            "chosen_gamma": self.chosen_gamma,
            "n_validation": self.n_validation,
            "reference_calls": self.reference_calls,
            "candidate_calls": self.candidate_calls,
            "model_calls": self.model_calls,
            "criterion": self.criterion,
            "wall_time_s": self.wall_time_s,
            "config": dict(self.config),
        }


def _check_gammas(gammas: Sequence[float]) -> FloatArray:
    try:
        g = np.asarray(list(gammas), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"gammas must be a sequence of numbers, got {gammas!r}") from exc
    if g.size < 1:
        raise ValueError("gammas needs at least one candidate")
    for i, v in enumerate(g):
        if not (math.isfinite(v) and 0.0 <= v < 1.0):
            raise ValueError(f"gammas[{i}] = {float(v)!r} must lie in [0, 1) (0: the baseline)")
    if np.unique(g).size != g.size:
        raise ValueError(f"gammas contain duplicates: {g.tolist()!r}")
    return np.sort(g)


def fine_reference_trajectory(
    start_alpha_bar: float, end_alpha_bar: float, steps: int = 200
) -> Trajectory:
    """``steps`` levels uniform in ``lambda_`` from ``start_alpha_bar`` (noisiest) to
    ``end_alpha_bar`` (least noisy, e.g. the schedule's ``alpha_bar_max``), both included."""
    if isinstance(steps, bool) or int(steps) != steps or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    if not 0.0 < start_alpha_bar < end_alpha_bar < 1.0:
        raise ValueError(
            f"need 0 < start_alpha_bar < end_alpha_bar < 1, got {start_alpha_bar!r}, "
            f"{end_alpha_bar!r}"
        )
    lam = np.linspace(
        float(lambda_from_alpha_bar(start_alpha_bar)),
        float(lambda_from_alpha_bar(end_alpha_bar)),
        int(steps),
    )
    a = alpha_bar_from_lambda(lam)
    a[0], a[-1] = start_alpha_bar, end_alpha_bar
    return Trajectory(a, name=f"fine_logsnr({int(steps)})")


def fine_reference(
    model: EpsModel,
    x_T: Tensor,  # noqa: N803 - the paper's symbol
    start_alpha_bar: float,
    *,
    steps: int = 200,
    sampler: str = "ddim",
) -> Tensor:
    """The fine-step solve of ``model`` from ``x_T`` at ``start_alpha_bar`` (G1's ``x_ref``)."""
    traj = fine_reference_trajectory(start_alpha_bar, float(model.schedule.alpha_bar_max), steps)
    return get_sampler(sampler)(model, x_T, traj)


def endpoint_deviation(x: Tensor, reference: Tensor) -> FloatArray:
    """Per-sample ``||x - reference||^2 / d`` (float64 numpy)."""
    if x.shape != reference.shape:
        raise ValueError(
            f"samples {tuple(x.shape)} and references {tuple(reference.shape)} differ in shape"
        )
    diff = (x.to(torch.float64) - reference.to(torch.float64)).reshape(x.shape[0], -1)
    return diff.pow(2).mean(dim=1).cpu().numpy()


def vrg_candidates(
    trajectory: Trajectory,
    profile: ErrorProfile,
    gammas: Sequence[float] = DEFAULT_GAMMAS,
    *,
    reg_lambda: float = 100.0,
    keep_start: bool = False,
    alpha_bar_max: float | None = None,
    alpha_bar_min: float | None = None,
) -> tuple[Trajectory, ...]:
    """VRG's trajectory for each ``gamma`` (sorted), everything else as published;
    ``gamma = 0`` is ``trajectory`` itself. Compute once, score on many validation sets."""
    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"trajectory must be a Trajectory, got {type(trajectory).__name__}")
    out: list[Trajectory] = []
    for gamma in _check_gammas(gammas):
        traj, _ = vrg_retime(
            trajectory,
            profile,
            None,
            VRGSetting(float(gamma), reg_lambda, keep_start),
            alpha_bar_max=alpha_bar_max,
            alpha_bar_min=alpha_bar_min,
        )
        out.append(trajectory if gamma == 0.0 else traj.renamed(f"vrg(gamma={gamma:g})"))
    return tuple(out)


def select_gamma(
    trajectory: Trajectory,
    profile: ErrorProfile,
    model: EpsModel,
    x_val: Tensor,
    *,
    gammas: Sequence[float] = DEFAULT_GAMMAS,
    reg_lambda: float = 100.0,
    keep_start: bool = False,
    alpha_bar_max: float | None = None,
    alpha_bar_min: float | None = None,
    references: Tensor | None = None,
    reference_steps: int = 200,
    sampler: str = "ddim",
    rtol: float = 1e-9,
    before_run: Callable[[], None] | None = None,
    candidates: Sequence[Trajectory] | None = None,
) -> GammaSelection:
    """Choose ``gamma`` by (G1) on the validation noises ``x_val`` (``[n_val, ...]``).

    1. for each candidate, VRG with that ``gamma`` and everything else as published
       (:func:`vrg_candidates`; or the given ``candidates``, one per sorted ``gamma``);
    2. ``references``: by default :func:`fine_reference` of ``model`` from ``x_val`` at the
       trajectory's start level (``reference_steps`` calls per sample), else the given tensor
       (no calls counted);
    3. every candidate samples from ``x_val`` with ``sampler`` (``before_run`` is called before
       each run, e.g. to reset a stochastic model's noise stream); score = mean (G1);
    4. the smallest score wins; scores within ``rtol`` (relative) of it tie and the smallest
       ``gamma`` among them is chosen.
    """
    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"trajectory must be a Trajectory, got {type(trajectory).__name__}")
    if not isinstance(x_val, Tensor) or x_val.ndim < 2 or x_val.shape[0] < 2:
        raise ValueError("x_val must be a tensor of at least 2 validation noises [n_val, ...]")
    if not (math.isfinite(rtol) and rtol >= 0):
        raise ValueError(f"rtol must be a finite number >= 0, got {rtol!r}")
    g = _check_gammas(gammas)
    spec = get_sampler(sampler)
    start = time.perf_counter()
    n = int(x_val.shape[0])
    # 1. the candidates
    if candidates is None:
        trajs = list(
            vrg_candidates(
                trajectory,
                profile,
                g,
                reg_lambda=reg_lambda,
                keep_start=keep_start,
                alpha_bar_max=alpha_bar_max,
                alpha_bar_min=alpha_bar_min,
            )
        )
    else:
        trajs = list(candidates)
        if len(trajs) != g.size or not all(isinstance(t, Trajectory) for t in trajs):
            raise ValueError(
                f"candidates must be {g.size} Trajectory objects, one per sorted gamma "
                "(from vrg_candidates)"
            )
    # 2. the references
    if references is None:
        if before_run is not None:
            before_run()
        ref = fine_reference(
            model, x_val, float(trajectory.alpha_bar[0]), steps=reference_steps, sampler=sampler
        )
        reference_calls = n * spec.nfe(reference_steps)
        criterion = f"endpoint deviation from a {reference_steps}-step {sampler} solve"
    else:
        if tuple(references.shape) != tuple(x_val.shape):
            raise ValueError(
                f"references {tuple(references.shape)} must match x_val {tuple(x_val.shape)}"
            )
        ref, reference_calls, criterion = references, 0, "endpoint deviation from given references"
    # 3. score every candidate on the same noises
    scores, sems, calls = [], [], 0
    for traj in trajs:
        if before_run is not None:
            before_run()
        dev = endpoint_deviation(spec(model, x_val, traj), ref)
        scores.append(float(dev.mean()))
        sems.append(float(dev.std(ddof=1) / math.sqrt(n)))
        calls += n * spec.nfe(traj.K)
    s = np.asarray(scores)
    if not np.all(np.isfinite(s)):
        raise ValueError(f"a candidate's validation score is not finite: {s.tolist()!r}")
    # 4. argmin, ties to the smaller gamma (g is sorted)
    best = float(s.min())
    chosen = int(np.flatnonzero(s <= best + rtol * abs(best))[0])
    wall = time.perf_counter() - start
    log.info("gamma selection: chose %g (scores %s) with %d calls", g[chosen], s, calls)
    return GammaSelection(
        gammas=frozen_array(g),
        scores=frozen_array(s),
        score_sems=frozen_array(sems),
        trajectories=tuple(trajs),
        chosen_index=chosen,
        n_validation=n,
        reference_calls=int(reference_calls),
        candidate_calls=int(calls),
        criterion=criterion,
        wall_time_s=wall,
        config={
            "reg_lambda": float(reg_lambda),
            "keep_start": bool(keep_start),
            "alpha_bar_max": alpha_bar_max,
            "alpha_bar_min": alpha_bar_min,
            "reference_steps": int(reference_steps),
            "sampler": sampler,
            "rtol": float(rtol),
        },
    )


# --------------------------------------------------------------------------- as an arm
# VRG's candidates depend only on the trajectory, the profile and the settings: an arm scored
# against the fine solve and its oracle twin share them within a process.
_CANDIDATE_MEMO: dict[str, tuple[Trajectory, ...]] = {}
_MEMO_SIZE = 256


def _memo_key(trajectory: Trajectory, profile: ErrorProfile, *settings: Any) -> str:
    h = hashlib.sha256()
    for arr in (trajectory.alpha_bar, profile.alpha_bar, profile.mse):
        h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    h.update(repr(settings).encode())
    return h.hexdigest()


def _shared_candidates(
    trajectory: Trajectory,
    profile: ErrorProfile,
    gammas: Sequence[float],
    reg_lambda: float,
    alpha_bar_max: float | None,
    alpha_bar_min: float | None,
) -> tuple[tuple[Trajectory, ...], float]:
    """The candidates and the seconds spent making them (0 when another arm made them)."""
    key = _memo_key(trajectory, profile, tuple(gammas), reg_lambda, alpha_bar_max, alpha_bar_min)
    if key in _CANDIDATE_MEMO:
        return _CANDIDATE_MEMO[key], 0.0
    start = time.perf_counter()
    if len(_CANDIDATE_MEMO) >= _MEMO_SIZE:
        _CANDIDATE_MEMO.clear()
    _CANDIDATE_MEMO[key] = vrg_candidates(
        trajectory,
        profile,
        gammas,
        reg_lambda=reg_lambda,
        alpha_bar_max=alpha_bar_max,
        alpha_bar_min=alpha_bar_min,
    )
    return _CANDIDATE_MEMO[key], time.perf_counter() - start


@dataclass(frozen=True)
class GammaSelectedArm:
    """VRG with ``gamma`` chosen by (G1) on a validation budget, as an
    :class:`~vrg_analysis.vrg.arms.Arm` of the paired comparison engine.

    ``retime`` draws ``n_validation`` noises from ``context.validation_noise`` (independent of
    every evaluation seed), makes VRG's trajectory for every candidate ``gamma`` (everything else
    as published: ``reg_lambda``, the paper's penalty, the schedule's bounds, as
    :class:`~vrg_analysis.vrg.retime.VRGSetting` re-times) and keeps the one of smallest score
    (:func:`select_gamma`). The score's reference is a ``reference_steps``-level DDIM solve of the
    same model from the same noise (what any user can compute), or, with ``exact`` (a Gaussian
    mixture: the oracle no real model allows), the exact probability-flow ODE endpoint at the
    baseline's start level, solved to ``tolerance``.

    ``info["model_calls"]`` is the validation budget (the fine solves and every candidate's run;
    the oracle's exact references cost no model call); ``info["chosen_gamma"]`` the choice and
    ``info["details"]`` every candidate's score.
    """

    gammas: tuple[float, ...] = DEFAULT_GAMMAS
    reg_lambda: float = 100.0
    n_validation: int = 64
    reference_steps: int = 200
    exact: GaussianMixture | None = field(default=None, repr=False)
    tolerance: float = 1e-6

    def __post_init__(self) -> None:
        object.__setattr__(self, "gammas", tuple(float(g) for g in _check_gammas(self.gammas)))
        if not (math.isfinite(self.reg_lambda) and self.reg_lambda >= 0.0):
            raise ValueError(f"reg_lambda must be a finite number >= 0, got {self.reg_lambda!r}")
        for name, least in (("n_validation", 2), ("reference_steps", 2)):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {v!r}")
        if not (math.isfinite(self.tolerance) and self.tolerance > 0.0):
            raise ValueError(f"tolerance must be a positive number, got {self.tolerance!r}")
        if self.exact is not None and not isinstance(self.exact, GaussianMixture):
            raise TypeError(f"exact must be a GaussianMixture, got {type(self.exact).__name__}")

    @property
    def label(self) -> str:
        if self.exact is not None:
            return "gamma chosen against the exact ODE (oracle)"
        return f"gamma chosen on validation ({self.reference_steps}-step reference)"

    def retime(
        self, trajectory: Trajectory, context: ArmContext
    ) -> tuple[Trajectory, dict[str, Any]]:
        model = context.model
        if model is None or context.validation_noise is None:
            raise ValueError(
                "choosing gamma samples the model: the context needs model and validation_noise"
            )
        if context.model_kwargs:
            raise ValueError("gamma selection does not pass conditioning (model_kwargs) yet")
        sched = context.schedule
        hi = None if sched is None else float(sched.alpha_bar_max)
        lo = None if sched is None else float(sched.alpha_bar_min)
        profile = context.profile
        cands, made_s = _shared_candidates(
            trajectory, profile, self.gammas, self.reg_lambda, hi, lo
        )
        x_val = context.validation_noise(int(self.n_validation))
        reset = getattr(model, "reset", None)
        before = (lambda: reset(0)) if callable(reset) else None
        refs = None
        if self.exact is not None:
            refs = reference_ode_endpoint(
                self.exact,
                x_val.to(torch.float64),
                float(trajectory.alpha_bar[0]),
                rtol=self.tolerance,
                atol=self.tolerance,
            )
        sel = select_gamma(
            trajectory,
            context.profile,
            model,
            x_val,
            gammas=self.gammas,
            reg_lambda=self.reg_lambda,
            alpha_bar_max=hi,
            alpha_bar_min=lo,
            references=refs,
            reference_steps=int(self.reference_steps),
            before_run=before,
            candidates=cands,
        )
        traj = sel.trajectory.renamed(f"{trajectory.name}+gamma({sel.chosen_gamma:g})")
        details = {
            "gammas": sel.gammas.tolist(),
            "scores": sel.scores.tolist(),
            "score_sems": sel.score_sems.tolist(),
            "criterion": sel.criterion,
            "reference_calls": sel.reference_calls,
            "candidate_calls": sel.candidate_calls,
            "candidates_wall_s": made_s,
        }
        info = arm_summary(
            trajectory,
            traj,
            context.profile,
            converged=True,
            model_calls=int(sel.model_calls),
            chosen_gamma=sel.chosen_gamma,
            wall_time_s=float(sel.wall_time_s),
            details=details,
        )
        return traj, info

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "gamma_selected",
            "gammas": list(self.gammas),
            "reg_lambda": float(self.reg_lambda),
            "n_validation": int(self.n_validation),
            "reference_steps": int(self.reference_steps),
            "exact": None if self.exact is None else self.exact.to_dict(),
            "tolerance": float(self.tolerance),
        }
