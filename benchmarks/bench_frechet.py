"""Frechet distance at FID size: the library's ``frechet_distance`` against the sqrtm formula.

Peer: pytorch-fid's ``calculate_frechet_distance`` formula, ``tr sqrtm(S1 S2)`` with
``scipy.linalg.sqrtm`` (pytorch-fid itself cannot be installed here, STACK.md), on the same
moments. Ours: two symmetric eigendecompositions and one symmetric eigenvalue solve, float64
(``vrg_analysis.metrics``, formula F1).

Cases, each at ``d = 2048`` (Inception pool features) with covariances estimated from random
samples of Gaussians with decaying spectra in random orientations:

* ``full_rank``  ``--n`` samples (default 5000 > d), so both covariances are positive definite;
* ``rank_deficient``  ``--n-small`` samples (default 1000 < d): singular covariances, as with an
  FID on fewer samples than features; sqrtm of a singular product is ill-conditioned.

Interleaved repeats (``_common.time_interleaved``), medians; goals (issue 3): ours takes
``<= 0.5x`` sqrtm's time and agrees to ``1e-6`` relative. Writes
``benchmarks/results/frechet.json``.

    .venv/bin/python benchmarks/bench_frechet.py            # ~5 min on one thread
    .venv/bin/python benchmarks/bench_frechet.py --d 256    # smoke run -> frechet_smoke.json
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

from _common import machine_info, set_threads, time_interleaved, write_result

GOAL_RATIO = 0.5
GOAL_REL = 1e-6


def _covariance(rng, n: int, d: int, decay: float):
    import numpy as np

    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    x = (rng.standard_normal((n, d)) * np.geomspace(1.0, decay, d)) @ q.T
    x -= x.mean(axis=0)
    cov = x.T @ x / (n - 1)
    return 0.5 * (cov + cov.T)


def fd_sqrtm(mu1, s1, mu2, s2) -> tuple[float, float]:
    """pytorch-fid's formula; returns the value and the largest imaginary part of sqrtm."""
    import numpy as np
    from scipy.linalg import sqrtm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular products warn; the value is what we compare
        covmean = sqrtm(s1 @ s2)
    imag = float(np.abs(np.imag(covmean)).max()) if np.iscomplexobj(covmean) else 0.0
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(np.real(covmean)))
    return value, imag


def run_case(name: str, n: int, d: int, repeat: int, seed: int) -> dict[str, Any]:
    import numpy as np

    from vrg_analysis.evaluation.metrics import frechet_distance

    rng = np.random.default_rng(seed)
    s1 = _covariance(rng, n, d, 1e-2)
    s2 = _covariance(rng, n, d, 1e-3)
    mu1, mu2 = 0.1 * rng.standard_normal(d), np.zeros(d)
    ours = frechet_distance(mu1, s1, mu2, s2)
    peer, imag = fd_sqrtm(mu1, s1, mu2, s2)
    timings = time_interleaved(
        {
            "ours": lambda: frechet_distance(mu1, s1, mu2, s2),
            "sqrtm": lambda: fd_sqrtm(mu1, s1, mu2, s2),
        },
        repeat=repeat,
        warmup=1,
    )
    ratio = timings["ours"].median_s / timings["sqrtm"].median_s
    rel = abs(ours - peer) / abs(peer)
    result = {
        "case": name,
        "d": d,
        "n_samples": n,
        "seed": seed,
        "value_ours": ours,
        "value_sqrtm": peer,
        "relative_difference": rel,
        "sqrtm_max_imag": imag,
        "time_ratio_ours_over_sqrtm": ratio,
        "goal_time_ratio": GOAL_RATIO,
        "goal_relative_difference": GOAL_REL,
        "meets_time_goal": ratio <= GOAL_RATIO,
        "meets_value_goal": rel <= GOAL_REL,
        "timings": {k: v.to_dict() for k, v in timings.items()},
    }
    print(
        f"{name}: d={d} n={n} ours {timings['ours'].median_s:.3f} s, sqrtm "
        f"{timings['sqrtm'].median_s:.3f} s, ratio {ratio:.3f}; values {ours:.10g} vs "
        f"{peer:.10g} (rel {rel:.2e}, max |imag sqrtm| {imag:.2e})"
    )
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--d", type=int, default=2048)
    p.add_argument("--n", type=int, default=5000, help="samples per covariance, full-rank case")
    p.add_argument("--n-small", type=int, default=1000, help="samples, rank-deficient case")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results-dir", default=None)
    p.add_argument("--name", default=None)
    args = p.parse_args()
    threads = set_threads(args.threads, reexec=True)
    cases = [run_case("full_rank", args.n, args.d, args.repeat, args.seed)]
    if args.n_small and args.n_small < args.d:
        cases.append(run_case("rank_deficient", args.n_small, args.d, args.repeat, args.seed + 1))
    name = args.name or ("frechet" if args.d == 2048 else "frechet_smoke")
    payload = {
        "description": "vrg_analysis.metrics.frechet_distance (symmetric eigendecompositions) "
        "against pytorch-fid's formula tr sqrtm(S1 S2) with scipy.linalg.sqrtm, same moments",
        "config": {**vars(args), "threads": threads},
        "cases": cases,
        "machine": machine_info(),
    }
    path = write_result(name, payload, args.results_dir)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
