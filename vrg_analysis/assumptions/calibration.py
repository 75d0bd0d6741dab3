"""The audits' own audit: type-I error on planted nulls and power on planted alternatives.

Each replication samples a 2-step DDIM path on the exact 2-D mixture testbed with a
:class:`~vrg_analysis.testbeds.PlantedErrorModel` around the exact predictor ``eps*`` and records
``eps_hat - eps*`` at the visited states (:func:`~.samples.errors_along_path`): by construction
the planted error, i.i.d. zero-mean Gaussian under the null. Every test then runs once per
replication on one coordinate, with the very functions the audits use:

- zero mean: the t test (:func:`~.gaussianity.mean_test`) on ``n`` samples of step 0;
- Gaussianity: K^2, Anderson-Darling, Jarque-Bera, Shapiro-Wilk (subsample), skewness, kurtosis;
- independence: the permutation tests of the correlation and of the distance correlation between
  steps 0 and 1 of ``n_paths`` paths;
- transfer: Welch's t test on the squared errors of two disjoint halves of step 0.

Scenarios (:data:`SCENARIOS`): ``null``; ``bias`` (0.05 sd on every coordinate); ``correlation``
(AR(1) step correlation 0.2); ``student_t`` (Student t with 5 degrees of freedom, unit variance).
Targets: under the null every rejection rate at ``alpha = 0.05`` within [0.03, 0.07]; under each
alternative, the tests aimed at it (:data:`AIMED`) reject with rate >= 0.9 at the documented
sample size (defaults: ``n = 5000``, ``n_paths = 300``). Rates carry Wilson 95% intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy import stats

from vrg_analysis.assumptions.gaussianity import NORMALITY_TESTS, mean_test, omnibus_test
from vrg_analysis.assumptions.independence import (
    distance_correlation_test,
    permutation_correlation_test,
)
from vrg_analysis.assumptions.samples import errors_along_path
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.evaluation.stats import wilson_interval
from vrg_analysis.models.analytic import PlantedErrorModel
from vrg_analysis.testbeds import make_testbed

__all__ = ["SCENARIOS", "AIMED", "TESTS", "CalibrationRow", "CalibrationResult", "calibrate"]

#: Planted error of each scenario, in units of the planted std.
SCENARIOS: dict[str, dict[str, float]] = {
    "null": {},
    "bias": {"bias": 0.05},
    "correlation": {"step_correlation": 0.2},
    "student_t": {"df": 5},
}
#: The tests each alternative is meant to be caught by (power target >= 0.9).
AIMED: dict[str, tuple[str, ...]] = {
    "bias": ("mean",),
    "correlation": ("permutation", "distance_correlation"),
    "student_t": (*NORMALITY_TESTS, "kurtosis"),
}
TESTS: tuple[str, ...] = (
    "mean",
    *NORMALITY_TESTS,
    "skewness",
    "kurtosis",
    "permutation",
    "distance_correlation",
    "transfer",
)
NULL_BAND = (0.03, 0.07)
MIN_POWER = 0.9


@dataclass(frozen=True)
class CalibrationRow:
    """One test under one scenario: how often it rejected at ``alpha``."""

    test: str
    scenario: str
    rejections: int
    replications: int
    rate: float
    ci_low: float
    ci_high: float
    target: str  # "type-I in [0.03, 0.07]", "power >= 0.9" or "" (not aimed at this scenario)
    passed: bool | None  # None when the scenario sets no target for this test
    n: int


@dataclass(frozen=True)
class CalibrationResult:
    rows: tuple[CalibrationRow, ...]
    alpha: float
    n: int
    n_paths: int
    replications: int
    seed: int
    std: float
    levels: tuple[float, float] = field(default=(0.3, 0.6))

    @property
    def all_passed(self) -> bool:
        return all(r.passed for r in self.rows if r.passed is not None)

    def to_records(self) -> list[dict[str, object]]:
        return [asdict(r) for r in self.rows]


def _stream(seed: int, scenario: int, replication: int, use: int) -> int:
    """A seed of its own for every (seed, scenario, replication, use): no two draws share one."""
    return int(np.random.SeedSequence([seed, scenario, replication, use]).generate_state(1)[0])


def _pvalues(
    e0: np.ndarray, e1: np.ndarray, n_paths: int, perms: int, sub: np.ndarray, seed: int
) -> dict[str, float]:
    """One replication: ``e0``/``e1`` are steps 0 and 1, ``[n, d]``."""
    v = e0[:, 0]
    z = (v - v.mean()) / v.std(ddof=1)
    out = {"mean": mean_test(v, 0.1)[1]}
    for name in NORMALITY_TESTS:
        out[name] = omnibus_test(name, z, sub)[1]
    out["skewness"] = float(stats.skewtest(z).pvalue)
    out["kurtosis"] = float(stats.kurtosistest(z).pvalue)
    a, b = e0[:n_paths], e1[:n_paths]
    out["permutation"] = permutation_correlation_test(a, b, permutations=perms, seed=seed)[1]
    out["distance_correlation"] = distance_correlation_test(a, b, permutations=perms, seed=seed)[2]
    sq = np.mean(e0**2, axis=1)
    half = sq.size // 2
    out["transfer"] = float(stats.ttest_ind(sq[:half], sq[half:], equal_var=False).pvalue)
    return out


def calibrate(
    *,
    replications: int = 500,
    n: int = 5000,
    n_paths: int = 300,
    alpha: float = 0.05,
    std: float = 0.1,
    scenarios: Sequence[str] = tuple(SCENARIOS),
    permutations: int = 199,
    shapiro_size: int = 500,
    chunk: int = 100,
    seed: int = 0,
    progress: bool = False,
) -> CalibrationResult:
    """Rejection rates of every test (:data:`TESTS`) under each scenario (module docstring)."""
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; expected {list(SCENARIOS)}")
    if replications < 10 or n < 20 or not 10 <= n_paths <= n:
        raise ValueError(
            f"need replications >= 10, n >= 20 and 10 <= n_paths <= n; got {replications}, "
            f"{n}, {n_paths}"
        )
    bed = make_testbed("mixture-2d")
    traj = Trajectory([0.3, 0.6])
    rng = np.random.default_rng(seed)
    sub = np.sort(rng.choice(n, size=min(shapiro_size, n), replace=False))
    rows: list[CalibrationRow] = []
    for scenario in scenarios:
        s_i = list(SCENARIOS).index(scenario)  # streams depend on the scenario, not the request
        spec = SCENARIOS[scenario]
        counts = dict.fromkeys(TESTS, 0)
        done = 0
        iterator = range(0, replications, chunk)
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, desc=f"calibration: {scenario}")
        for start in iterator:
            m = min(chunk, replications - start)
            model = PlantedErrorModel(
                bed.oracle,
                std=std,
                bias=spec.get("bias", 0.0) * std,
                step_correlation=spec.get("step_correlation", 0.0),
                df=spec.get("df"),
                seed=_stream(seed, s_i, start, 0),
            )
            # m replications of n paths in one batch: rows are i.i.d. across replications
            gen = torch.Generator().manual_seed(_stream(seed, s_i, start, 1))
            x_T = torch.randn((m * n, bed.dim), generator=gen, dtype=torch.float64)  # noqa: N806
            e = errors_along_path(model, bed.oracle, x_T, traj).errors.reshape(2, m, n, bed.dim)
            for r in range(m):
                for test, p in _pvalues(
                    e[0, r], e[1, r], n_paths, permutations, sub, _stream(seed, s_i, start + r, 2)
                ).items():
                    counts[test] += p < alpha
            done += m
        for test in TESTS:
            k = int(counts[test])
            rate = wilson_interval(k, done)
            lo, hi = rate.low, rate.high
            rate = k / done
            if scenario == "null":
                target, passed = (
                    f"type-I in [{NULL_BAND[0]}, {NULL_BAND[1]}]",
                    NULL_BAND[0] <= rate <= NULL_BAND[1],
                )
            elif test in AIMED.get(scenario, ()):
                target, passed = f"power >= {MIN_POWER}", rate >= MIN_POWER
            else:
                target, passed = "", None
            size = (
                n_paths
                if test in ("permutation", "distance_correlation")
                else (min(shapiro_size, n) if test == "shapiro_wilk" else n)
            )
            rows.append(
                CalibrationRow(
                    test,
                    scenario,
                    k,
                    done,
                    rate,
                    lo,
                    hi,
                    target,
                    None if passed is None else bool(passed),
                    size,
                )
            )
    return CalibrationResult(tuple(rows), alpha, n, n_paths, replications, seed, std)
