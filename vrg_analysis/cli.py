"""Command line: thin wrappers over the library (``vrg-analysis`` or ``python -m vrg_analysis``).

    vrg-analysis baseline time_quadratic 10 --out traj.json
    vrg-analysis cpe --profile MSE_vs_alpha_bar_cifar10.txt --trajectory traj.json
    vrg-analysis optimize --profile P --trajectory T [--gamma 0.01] [--reg-lambda 100]
                          [--method exact|mlp_sgd] [--keep-start] --out vrg.json
    vrg-analysis train digits-unet [--out-dir data/models] [--steps N]
    vrg-analysis audit --model mixture-2d|digits|FOLDER [--data D] [--device cuda] --out DIR
                       [--quick]

Profiles are read from ``.npz`` (:meth:`ErrorProfile.save`) or the official text format;
trajectories from JSON (:meth:`Trajectory.save`) or the official text format.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from vrg_analysis.audit import format_summary, run_audit
from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.profile import ErrorProfile, read_official_profile
from vrg_analysis.core.schedules import SCHEDULE_NAMES, NoiseSchedule
from vrg_analysis.core.trajectories import BASELINES, Trajectory, baseline, read_official_trajectory
from vrg_analysis.io import atomic_write_text
from vrg_analysis.models.checkpoints import MODELS_DIR
from vrg_analysis.training import RECIPES, train
from vrg_analysis.vrg.optimize import METHODS, optimize_trajectory

__all__ = ["main", "load_profile", "load_trajectory"]


def load_profile(
    path: str | Path, second_column: str = "alpha_bar", schedule: NoiseSchedule | None = None
) -> ErrorProfile:
    """An ``.npz`` profile or an official ``ts alpha_bar MSE`` text file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"profile file not found: {p}")
    if p.suffix == ".npz":
        return ErrorProfile.load(p)
    return read_official_profile(p, second_column, schedule)  # type: ignore[arg-type]


def load_trajectory(path: str | Path) -> Trajectory:
    """A JSON trajectory or an official alpha_bar text file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"trajectory file not found: {p}")
    return Trajectory.load(p) if p.suffix == ".json" else read_official_trajectory(p)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vrg-analysis", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)

    b = sub.add_parser("baseline", help="write a baseline trajectory as JSON")
    b.add_argument("name", choices=sorted(BASELINES))
    b.add_argument("steps", type=int)
    b.add_argument("--schedule", default="linear", choices=SCHEDULE_NAMES)
    b.add_argument("--out", type=Path)

    c = sub.add_parser("cpe", help="cumulative prediction error of a trajectory")
    o = sub.add_parser("optimize", help="VRG-optimise a trajectory")
    for p in (c, o):
        p.add_argument("--profile", required=True)
        p.add_argument("--trajectory", required=True)
        p.add_argument(
            "--second-column",
            choices=("alpha_bar", "one_minus_beta"),
            default="alpha_bar",
            help="what an official text profile's second column holds (Bedroom: one_minus_beta)",
        )
        p.add_argument(
            "--schedule",
            choices=SCHEDULE_NAMES,
            help="the model's schedule: reads a one_minus_beta profile and, for optimize, caps "
            "the least noisy level at alpha_bar(0)",
        )
    o.add_argument("--gamma", type=float, default=0.01)
    o.add_argument("--reg-lambda", type=float, default=100.0)
    o.add_argument("--method", choices=METHODS, default="exact")
    o.add_argument("--keep-start", action="store_true")
    o.add_argument("--out", type=Path, help="write the full result as JSON")

    tr = sub.add_parser(
        "train",
        help="train a shipped testbed model (deterministic: same seed and steps give the same "
        "sha256 on the same machine and torch build)",
    )
    tr.add_argument("name", help=f"one of {sorted(RECIPES)}")
    tr.add_argument("--out-dir", type=Path, default=MODELS_DIR)
    tr.add_argument("--steps", type=int, help="override the recipe's number of steps")
    tr.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    tr.add_argument("--progress", action="store_true", help="show a progress bar")
    tr.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing checkpoint of that name in --out-dir (refused otherwise, so a "
        "shipped, hash-pinned model is never replaced by accident); without it, train into "
        "another --out-dir and compare the printed sha256 with the shipped card's",
    )
    au = sub.add_parser(
        "audit",
        help="run the three assumption-audit notebooks on a model and write the executed "
        "notebooks, the verdict table (CSV and Markdown) and the figures into --out",
    )
    au.add_argument(
        "--model",
        required=True,
        help="a testbed (mixture-2d, mixture-8d, digits, digits-cond) "
        "or a folder with a diffusers checkpoint (unet/ and scheduler/)",
    )
    au.add_argument(
        "--data",
        help="the model's training data (.npz, .npy or an image folder); "
        "needed for a checkpoint folder",
    )
    au.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    au.add_argument("--out", required=True, type=Path, help="output folder")
    au.add_argument("--quick", action="store_true", help="small sample sizes: a first look")
    au.add_argument("--seed", type=int, default=0)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "baseline":
            traj = baseline(args.name, NoiseSchedule.from_name(args.schedule), args.steps)
            text = traj.to_json()
            if args.out:
                traj.save(args.out)
            print(text)
        elif args.command == "cpe":
            schedule = NoiseSchedule.from_name(args.schedule) if args.schedule else None
            profile = load_profile(args.profile, args.second_column, schedule)
            cpe = cumulative_prediction_error(load_trajectory(args.trajectory), profile)
            print(f"{cpe:.6f}")
        elif args.command == "audit":
            run = run_audit(
                args.model,
                args.out,
                data=args.data,
                device=args.device,
                quick=args.quick,
                seed=args.seed,
            )
            print(format_summary(run.verdicts))
            print(
                f"wrote {run.csv}, {run.markdown} and {len(run.notebooks)} notebooks in "
                f"{run.out_dir}"
            )
        elif args.command == "train":
            target = Path(args.out_dir) / f"{args.name}.pt"
            if target.exists() and not args.force:
                raise ValueError(
                    f"{target} exists (a shipped or earlier checkpoint); pass --force to replace "
                    "it, or --out-dir DIR to reproduce it elsewhere and compare sha256"
                )
            r = train(
                args.name,
                args.out_dir,
                steps=args.steps,
                num_threads=args.threads,
                progress=args.progress,
            )
            print(
                f"{r.name}: {r.steps} steps in {r.wall_time_s:.1f}s, final loss "
                f"{r.final_loss:.5f}, held-out loss {r.held_out_loss:.5f}\n"
                f"wrote {r.weights_path} (sha256 {r.sha256}) and {r.card_path}"
            )
        else:
            schedule = NoiseSchedule.from_name(args.schedule) if args.schedule else None
            profile = load_profile(args.profile, args.second_column, schedule)
            traj = load_trajectory(args.trajectory)
            res = optimize_trajectory(
                traj,
                profile,
                gamma=args.gamma,
                reg_lambda=args.reg_lambda,
                method=args.method,
                keep_start=args.keep_start,
                alpha_bar_max=None if schedule is None else schedule.alpha_bar_max,
                alpha_bar_min=(
                    None
                    if schedule is None or args.keep_start or args.method != "exact"
                    else min(schedule.alpha_bar_min, float(traj.alpha_bar[0]))
                ),
            )
            if args.out:
                atomic_write_text(args.out, json.dumps(res.to_dict(), indent=2) + "\n")
            print(
                f"CPE {res.cpe_initial:.6f} -> {res.cpe_final:.6f} "
                f"(start level moved {100 * res.start_level_shift:+.1f}%, "
                f"converged={res.converged}, {res.wall_time_s:.3f}s)"
            )
    except (ValueError, TypeError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
