"""Command line: thin wrappers over the library (``vrg-analysis`` or ``python -m vrg_analysis``).

    vrg-analysis baseline time_quadratic 10 --out traj.json
    vrg-analysis cpe --profile MSE_vs_alpha_bar_cifar10.txt --trajectory traj.json
    vrg-analysis optimize --profile P --trajectory T [--gamma 0.01] [--reg-lambda 100]
                          [--method exact|mlp_sgd] [--keep-start] --out vrg.json
    vrg-analysis train digits-unet [--out-dir DIR] [--steps N] [--device auto|cpu|cuda]
    vrg-analysis study CHAPTER [--params full] [--out-dir DIR]
    vrg-analysis audit --model mixture-2d|digits|FOLDER [--data D] [--device cuda] --out DIR
                       [--quick]
    vrg-analysis profile --model digits|FOLDER [--data D] (--target 0.01 | --draws N) --out P.npz
    torchrun --nproc-per-node 2 -m vrg_analysis profile ...   (the same, shared by 2 processes)

Profiles are read from ``.npz`` (:meth:`ErrorProfile.save`) or the official text format;
trajectories from JSON (:meth:`Trajectory.save`) or the official text format. Every place a
command writes to is checked before the work starts; an error is one line on stderr with exit
status 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from vrg_analysis.audit import format_summary, run_audit
from vrg_analysis.cache import cache_enabled
from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.profile import ErrorProfile, read_official_profile
from vrg_analysis.core.schedules import SCHEDULE_NAMES, NoiseSchedule
from vrg_analysis.core.trajectories import BASELINES, Trajectory, baseline, read_official_trajectory
from vrg_analysis.io import atomic_write_text
from vrg_analysis.models.checkpoints import MODELS_DIR
from vrg_analysis.profiling import adaptive
from vrg_analysis.resources import official_reference_dir, reference_dir
from vrg_analysis.studies import grid, official_cifar10
from vrg_analysis.studies.artifacts import params_from_set, run_study
from vrg_analysis.testbeds import resolve_testbed
from vrg_analysis.training import CLASSIFIERS, RECIPES, train, train_classifier
from vrg_analysis.vrg.optimize import METHODS, optimize_trajectory

__all__ = [
    "main",
    "load_profile",
    "load_trajectory",
    "check_output_file",
    "check_output_dir",
    "CommandError",
]


REFERENCE_DIR = reference_dir()


class CommandError(ValueError):
    """A bad argument or an unusable path: reported as one line, exit status 2."""


def load_profile(
    path: str | Path, second_column: str = "alpha_bar", schedule: NoiseSchedule | None = None
) -> ErrorProfile:
    """An ``.npz`` profile or an official ``ts alpha_bar MSE`` text file."""
    p = Path(path)
    if not p.is_file():
        raise CommandError(f"profile file not found: {p}")
    if p.suffix == ".npz":
        return ErrorProfile.load(p)
    return read_official_profile(p, second_column, schedule)  # type: ignore[arg-type]


def load_trajectory(path: str | Path, first_is_t0: bool | None = None) -> Trajectory:
    """A JSON trajectory or an official alpha_bar text file (``first_is_t0``: whether a bare
    file's first value is a DPM-Solver timestep-0 entry; ``None``: from its header)."""
    p = Path(path)
    if not p.is_file():
        raise CommandError(f"trajectory file not found: {p}")
    if p.suffix == ".json":
        return Trajectory.load(p)
    return read_official_trajectory(p, first_is_t0=first_is_t0)


def _writable_dir(folder: Path, what: str) -> None:
    """``folder`` exists (or can be created) and a file can be created in it."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise CommandError(f"{what}: {existing} is a file, so {folder} cannot be a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CommandError(f"{what}: no permission to write in {existing}")
    if existing == folder:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise CommandError(f"{what}: cannot write in {folder} ({exc.strerror})") from exc


def check_output_file(path: str | Path, what: str = "--out") -> Path:
    """Refuse, before any work, an output file that cannot be written: a path that is a folder,
    or whose folder cannot be created or written to."""
    p = Path(path)
    if p.is_dir():
        raise CommandError(f"{what}: {p} is a folder; give a file name (e.g. {p / 'result.json'})")
    _writable_dir(p.parent if str(p.parent) else Path("."), what)
    return p


def check_output_dir(path: str | Path, what: str = "--out") -> Path:
    """Refuse, before any work, an output folder that cannot be created or written to."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CommandError(f"{what}: {p} is a file, not a folder")
    _writable_dir(p, what)
    return p


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v} is negative; give an integer >= 0")
    return v


def _pos_int(text: str) -> int:
    v = _nonneg_int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be >= 1")
    return v


def _unit_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"{v} must lie in (0, 1)")
    return v


def _nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (v >= 0.0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"{v} must be a finite number >= 0")
    return v


def _profile_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        required=True,
        metavar="FILE",
        help="the error profile w(alpha_bar): an .npz written by ErrorProfile.save or the official "
        "text format 'ts alpha_bar MSE' (e.g. MSE_vs_alpha_bar_cifar10.txt)",
    )
    p.add_argument(
        "--trajectory",
        required=True,
        metavar="FILE",
        help="the trajectory: a JSON file written by `baseline --out` or Trajectory.save, or an "
        "official alpha_bar text file (e.g. dpm_alphaBar_1-010-time_quadratic.txt)",
    )
    p.add_argument(
        "--second-column",
        choices=("alpha_bar", "one_minus_beta"),
        default="alpha_bar",
        help="what an official text profile's second column holds (default: alpha_bar; the "
        "LSUN-Bedroom file holds 1 - beta_t: one_minus_beta, with --schedule)",
    )
    p.add_argument(
        "--schedule",
        choices=SCHEDULE_NAMES,
        help="the model's noise schedule (1000 steps); needed to read a one_minus_beta profile, "
        "and for optimize it keeps every level a timestep of the schedule (default: none)",
    )
    t0 = p.add_mutually_exclusive_group()
    t0.add_argument(
        "--first-is-t0",
        dest="first_is_t0",
        action="store_const",
        const=True,
        help="a bare trajectory file's first value is a DPM-Solver timestep-0 entry, not a step "
        "(default: read it from the file's '# steps : K' header; a file without one is refused)",
    )
    t0.add_argument(
        "--all-steps",
        dest="first_is_t0",
        action="store_const",
        const=False,
        help="every value of a bare trajectory file is a step",
    )


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="vrg-analysis",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `vrg-analysis COMMAND --help` for each command's options and an example.",
    )
    ap.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    b = sub.add_parser(
        "baseline",
        help="write a baseline trajectory as JSON",
        description="A baseline trajectory of K levels (noisiest first) as JSON on stdout.",
        epilog="example: vrg-analysis baseline time_quadratic 10 --out tq10.json",
        formatter_class=fmt,
    )
    b.add_argument(
        "name", choices=sorted(BASELINES), help="the baseline: how the levels are spaced"
    )
    b.add_argument("steps", type=_pos_int, help="K, the number of levels (sampling steps), >= 1")
    b.add_argument(
        "--schedule",
        default="linear",
        choices=SCHEDULE_NAMES,
        help="noise schedule (default linear)",
    )
    b.add_argument("--out", type=Path, metavar="FILE", help="also write the JSON to FILE")

    c = sub.add_parser(
        "cpe",
        help="cumulative prediction error of a trajectory",
        description="CPE = sum_k (sigma_k - sigma_{k-1})^2 w(alpha_bar_k) (the paper's Eq. 10), "
        "printed with 6 decimals.",
        epilog="example: vrg-analysis cpe --profile MSE_vs_alpha_bar_cifar10.txt "
        "--trajectory dpm_alphaBar_1-010-time_quadratic.txt\n"
        "  prints 0.501387 (0.50138750; the official files report 0.501388)",
        formatter_class=fmt,
    )
    _profile_options(c)

    o = sub.add_parser(
        "optimize",
        help="VRG-optimise a trajectory",
        description="Minimise CPE + reg_lambda (a_K - a_K_orig)^2 with every per-step ratio inside "
        "its gamma box; prints CPE before and after, the start level's move and convergence.",
        epilog="example: vrg-analysis optimize --profile MSE_vs_alpha_bar_cifar10.txt "
        "--trajectory tq10.json --schedule linear --keep-start --out vrg.json",
        formatter_class=fmt,
    )
    _profile_options(o)
    o.add_argument(
        "--gamma",
        type=_unit_float,
        default=0.01,
        help="learning portion: how far each ratio may move, in (0, 1) (default 0.01, the paper's)",
    )
    o.add_argument(
        "--reg-lambda",
        type=_nonneg_float,
        default=100.0,
        help="weight of the start-level penalty, >= 0 (default 100, the official code's)",
    )
    o.add_argument(
        "--method",
        choices=METHODS,
        default="exact",
        help="exact: the bounded solver (seconds); mlp_sgd: the paper's MLP + 3000 SGD steps "
        "(minutes) (default exact)",
    )
    o.add_argument(
        "--keep-start",
        action="store_true",
        help="hold the noisiest level exactly instead of the penalty (exact method only)",
    )
    o.add_argument(
        "--out", type=Path, metavar="FILE", help="write the full result (both trajectories) as JSON"
    )

    tr = sub.add_parser(
        "train",
        help="train a shipped model (deterministic: same recipe, seed and threads give the same "
        "sha256 on the same machine and torch build)",
        description="Train a recipe and write <name>.pt with its card <name>.json.",
        epilog="example: vrg-analysis train digits-unet --out-dir /tmp/models --steps 100",
        formatter_class=fmt,
    )
    tr.add_argument(
        "name",
        help=f"the recipe, one of {', '.join(sorted(RECIPES))}; or a domain classifier behind the "
        f"domain FID, one of {', '.join(sorted(CLASSIFIERS))} (it also writes the data set's "
        "held-out reference statistics and FID floors)",
    )
    tr.add_argument(
        "--out-dir",
        type=Path,
        default=MODELS_DIR,
        metavar="DIR",
        help=f"where to write the checkpoint and card (default the shipped {MODELS_DIR})",
    )
    tr.add_argument(
        "--steps", type=_pos_int, help="override the recipe's number of optimiser steps"
    )
    tr.add_argument("--threads", type=_pos_int, default=1, help="torch CPU threads (default 1)")
    tr.add_argument(
        "--device",
        default="cpu",
        help="cpu, cuda, cuda:N, or auto (CUDA with the recipe's GPU variant when available) "
        "(default cpu)",
    )
    tr.add_argument(
        "--resume-every",
        type=_pos_int,
        metavar="N",
        help="write a resumable training state every N steps (a killed run continues from it)",
    )
    tr.add_argument(
        "--reference-dir",
        type=Path,
        metavar="DIR",
        help="for a classifier: where to write the reference statistics (default the shipped "
        f"{REFERENCE_DIR} when --out-dir is the shipped models folder, else --out-dir)",
    )
    tr.add_argument("--progress", action="store_true", help="show a progress bar")
    tr.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing checkpoint of that name in --out-dir (refused otherwise, so a "
        "shipped, hash-pinned model is never replaced by accident); without it, train into "
        "another --out-dir and compare the printed sha256 with the shipped card's",
    )

    st = sub.add_parser(
        "study",
        help="run a chapter at a named parameter set and commit its result to data/results",
        description="Run a chapter (e.g. model_quality, quality_vs_steps) with a parameter set "
        "(notebooks/params/<set>/<chapter>.yaml; 'quick' is the chapter's defaults), time it and "
        "write a versioned result (parameters, code version, input hashes, machine, wall time) "
        "into data/results/<chapter>/, which the book shows when it matches and is current.",
        epilog="example: vrg-analysis study model_quality --params full",
        formatter_class=fmt,
    )
    st.add_argument("chapter", help="the chapter's name (its notebook's, or model_quality)")
    st.add_argument(
        "--params",
        default="full",
        metavar="SET",
        help="the parameter set: quick, full, gpu, or another folder of notebooks/params "
        "(default full)",
    )
    st.add_argument(
        "--out-dir",
        type=Path,
        metavar="DIR",
        help="where to write the result (default the committed data/results)",
    )
    st.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one parameter of the set (VALUE is read as YAML: --set n=2000, "
        "--set 'steps=[5, 10]'); repeatable. The result is keyed by the final parameters",
    )
    st.add_argument("--progress", action="store_true", help="show progress where the chapter can")
    st.add_argument(
        "--split",
        default="seeds,samplers",
        metavar="FIELDS",
        help="under torchrun: the fields of the chapter's comparisons split across the processes "
        f"(comma-separated, of {','.join(grid.SPLITS)}; default seeds,samplers). Run alone, the "
        "chapter runs in this process",
    )

    of = sub.add_parser(
        "official-files",
        help="say where the official VRG files are (or that they are missing)",
        description="Print the folder of the official VRG files (non-commercial licence, never "
        "shipped: $VRG_REFERENCE_DIR or ../shared/reference/vrg-official). Without them: with "
        "--notice NOTEBOOK, replace that notebook by a page saying so and exit 0; else exit 1.",
        epilog="example: vrg-analysis official-files "
        "--notice book/notebooks/official_cifar10.ipynb",
        formatter_class=fmt,
    )
    of.add_argument(
        "--notice",
        type=Path,
        metavar="NOTEBOOK",
        help="the official CIFAR-10 chapter's copy in the book, replaced by a notice page when "
        "the files are missing",
    )

    au = sub.add_parser(
        "audit",
        help="audit VRG's assumptions on a model; write the verdicts, figures and notebooks",
        description="Run the assumption audits (zero mean and Gaussianity, step independence, "
        "transfer and anisotropy) on a model and write into --out the executed notebooks, one "
        "verdict table per audit (verdicts/*.csv), the combined verdicts.csv and verdicts.md, "
        "and the figures.",
        epilog="examples:\n  vrg-analysis audit --model mixture-2d --out audit/ --quick\n"
        "  vrg-analysis audit --model digits --out audit/ --quick --no-notebooks\n"
        "  vrg-analysis audit --model ./ddpm-folder --data train.npz --device cuda --out audit/",
        formatter_class=fmt,
    )
    au.add_argument(
        "--model",
        required=True,
        help="a testbed (mixture-2d, mixture-8d, digits, digits-cond), a folder holding a "
        "diffusers checkpoint (unet/ and scheduler/) or a Stable-Diffusion-layout pipeline folder "
        "(unet/, vae/, text_encoder/, tokenizer/, scheduler/)",
    )
    au.add_argument(
        "--data",
        help="the model's training data (.npz, .npy or an image folder; for a pipeline, images "
        "with captions.csv or a latents file); needed for a folder",
    )
    au.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    au.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    au.add_argument("--quick", action="store_true", help="small sample sizes: a first look")
    au.add_argument(
        "--no-notebooks",
        action="store_true",
        help="write the verdict tables and figures only, without executing the audit notebooks "
        "(faster; the notebooks show the same results with their explanations)",
    )
    au.add_argument(
        "--seed", type=_nonneg_int, default=0, help="seed of every random draw, >= 0 (default 0)"
    )
    pr = sub.add_parser(
        "profile",
        help="Algorithm 1 on a model: to a stated CPE precision or n draws per timestep, alone "
        "or shared by the processes of torchrun",
        description="Profile a model's prediction error (Algorithm 1) on its training data and "
        "write the profile (.npz) and a report (.json beside it). --target: the CPE of the "
        "trajectories to that relative half-width (95%), with as few model calls as Neyman's "
        "allocation needs; --draws: that many draws at every timestep. Under torchrun (gloo on "
        "CPUs, NCCL on GPUs) the draws are shared out and the result is the same as one "
        "process's.",
        epilog="examples:\n  vrg-analysis profile --model digits --target 0.01 --out p.npz\n"
        "  torchrun --nproc-per-node 2 -m vrg_analysis profile --model digits --draws 512 "
        "--out p.npz\n  torchrun --nproc-per-node 8 -m vrg_analysis profile --model ./ddpm "
        "--data train.npz --device cuda --target 0.01 --checkpoint-dir ck/ --out p.npz",
        formatter_class=fmt,
    )
    pr.add_argument(
        "--model",
        required=True,
        help="a testbed, a diffusers checkpoint folder or a Stable-Diffusion-layout pipeline "
        "folder",
    )
    pr.add_argument(
        "--data",
        help="the model's training data (a pipeline: captioned images or latents); for a folder",
    )
    pr.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    pr.add_argument(
        "--guidance-scale",
        type=float,
        help="profile the classifier-free-guided model at this scale, each row with its own "
        "label or caption (a conditional model; default: the conditional model unguided)",
    )
    mode = pr.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--target", type=_unit_float, help="relative half-width (95%%) of each trajectory's CPE"
    )
    mode.add_argument(  # not --n: torchrun would take that for an abbreviation of its own
        "--draws", type=_pos_int, help="draws at every timestep (fixed-N Algorithm 1)"
    )
    pr.add_argument(
        "--trajectories",
        default="time_quadratic,logsnr_uniform,time_uniform",
        help="baselines whose CPE --target is about, comma-separated",
    )
    pr.add_argument("--steps", type=_pos_int, default=10, help="K of those trajectories")
    pr.add_argument(
        "--timesteps",
        help="the profile grid, START:STOP:STEP or a comma list (default every 10th and 999)",
    )
    pr.add_argument("--checkpoint-dir", type=Path, help="keep finished draws here to resume")
    pr.add_argument("--out", required=True, type=Path, help="the profile (.npz)")
    pr.add_argument(
        "--seed", type=_nonneg_int, default=0, help="seed of every random draw, >= 0 (default 0)"
    )
    return ap


def _timesteps(text: str | None) -> list[float] | None:
    """``--timesteps``: ``START:STOP:STEP`` or a comma list (``None``: the default grid)."""
    if not text:
        return None
    try:
        if ":" in text:
            start, stop, step = (int(v) for v in text.split(":"))
            return [float(t) for t in range(start, stop, step)]
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise CommandError(
            f"--timesteps {text!r}: expected START:STOP:STEP or a comma list"
        ) from None


def _study_across_processes(args: argparse.Namespace, params: object, out_dir: Path | None) -> None:
    """The ``study`` command under torchrun: every process runs its share of the chapter's
    comparisons (:func:`~vrg_analysis.studies.grid.run_grid`), then process 0 runs the chapter,
    which finds them in the library cache, and saves the artifact with the whole wall time."""
    if not cache_enabled():
        raise CommandError(
            "a study across processes hands its comparisons to the chapter through the library "
            "cache, which VRG_CACHE turns off: unset it"
        )
    try:
        by = grid.check_split(f.strip() for f in args.split.split(",") if f.strip())
    except ValueError as err:
        raise CommandError(f"--split {args.split!r}: {err}") from err
    try:
        configs = grid.chapter_configs(params)
    except TypeError as err:
        raise CommandError(f"{args.chapter}: {err}") from err
    start = time.perf_counter()
    rank, world, device = adaptive.distributed_from_env(configs[0].device)
    ok = False
    try:
        for cfg in configs:
            grid.run_grid(cfg, by=by, device=device, progress=args.progress and rank == 0)
        ok = True
    finally:
        adaptive.leave_distributed(ok=ok)
    if rank == 0:
        path = run_study(
            args.chapter,
            params,
            args.params,
            out_dir,
            progress=args.progress,
            prior_wall_s=time.perf_counter() - start,
        )
        print(f"wrote {path} ({len(configs)} comparison(s) on {world} processes)")


def _profile(args: argparse.Namespace) -> None:
    """The ``profile`` command: resolve the model, join torchrun's group, profile, write."""
    out = check_output_file(args.out)
    names = [t.strip() for t in args.trajectories.split(",") if t.strip()]
    unknown = [t for t in names if t not in BASELINES]
    if unknown:
        raise CommandError(f"--trajectories: unknown {unknown}; known: {sorted(BASELINES)}")
    if args.draws is not None and args.draws < 2:
        raise CommandError(f"--draws {args.draws}: give at least 2 (a variance needs two)")
    rank, world, device = adaptive.distributed_from_env(args.device)
    ok = False
    try:
        bed = resolve_testbed(args.model, data=args.data, device=device, seed=args.seed)
        model, row_kwargs = bed.model, {"y": bed.train_y} if bed.conditional else None
        if args.guidance_scale is not None:
            if not bed.conditional:
                raise CommandError(f"--guidance-scale: {bed.name} is not a conditional model")
            model, row_kwargs = bed.guided(0, args.guidance_scale), {"label": bed.train_y}
        common = dict(
            timesteps=_timesteps(args.timesteps),
            row_kwargs=row_kwargs,
            seed=args.seed,
            checkpoint_dir=args.checkpoint_dir,
            model_name=bed.model_name,
            data_name=f"{bed.name}:training",
            device=device,
        )
        report: dict[str, object] = {"model": bed.model_name, "processes": world}
        if args.target is not None:
            trajs = [baseline(t, bed.schedule, args.steps) for t in names]
            res = adaptive.profile_to_precision(
                model, bed.train_x, trajs, target=args.target, **common
            )
            prof = res.profile
            report.update(
                target=res.target,
                reached=res.reached,
                model_calls=res.model_calls,
                fixed_n_calls=res.fixed_calls,
                cpe={
                    t.name: [float(c), float(h)]
                    for t, c, h in zip(trajs, res.cpe, res.half_width, strict=True)
                },
            )
            line = (
                f"CPE to +-{100 * res.target:g}%: {'reached' if res.reached else 'NOT reached'} "
                f"with {res.model_calls:,} model calls (fixed-N: {res.fixed_calls:,}); the "
                f"profile holds the {prof.alpha_bar.size} timesteps these trajectories need "
                "(use --draws for a profile of the whole grid)"
            )
        else:
            prof = adaptive.profile_fixed(model, bed.train_x, args.draws, **common)
            report.update(draws=args.draws, model_calls=int(prof.count.sum()))
            line = f"{args.draws} draws at each of {prof.alpha_bar.size} timesteps"
        if rank == 0:
            prof.save(out)
            atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
            print(f"{line} on {world} process(es); wrote {out} and {out.with_suffix('.json')}")
        ok = True
    finally:
        adaptive.leave_distributed(ok=ok)


def _overrides(items: Sequence[str]) -> dict[str, object]:
    """``--set NAME=VALUE`` options as a mapping (each VALUE read as YAML)."""
    out: dict[str, object] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise CommandError(f"--set {item!r}: expected NAME=VALUE, e.g. --set n=2000")
        try:
            out[name.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CommandError(f"--set {item!r}: the value is not YAML ({exc})") from exc
    return out


def _run(args: argparse.Namespace) -> None:
    if args.command == "baseline":
        out = check_output_file(args.out) if args.out else None
        traj = baseline(args.name, NoiseSchedule.from_name(args.schedule), args.steps)
        if out is not None:
            traj.save(out)
        print(traj.to_json())
    elif args.command == "cpe":
        schedule = NoiseSchedule.from_name(args.schedule) if args.schedule else None
        profile = load_profile(args.profile, args.second_column, schedule)
        traj = load_trajectory(args.trajectory, args.first_is_t0)
        print(f"{cumulative_prediction_error(traj, profile):.6f}")
    elif args.command == "optimize":
        out = check_output_file(args.out) if args.out else None
        if args.keep_start and args.method != "exact":
            raise CommandError("--keep-start needs --method exact")
        schedule = NoiseSchedule.from_name(args.schedule) if args.schedule else None
        profile = load_profile(args.profile, args.second_column, schedule)
        traj = load_trajectory(args.trajectory, args.first_is_t0)
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
        if out is not None:
            atomic_write_text(out, json.dumps(res.to_dict(), indent=2) + "\n")
        print(
            f"CPE {res.cpe_initial:.6f} -> {res.cpe_final:.6f} "
            f"(start level moved {100 * res.start_level_shift:+.1f}%, "
            f"converged={res.converged}, {res.wall_time_s:.3f}s)"
        )
    elif args.command == "train":
        out_dir = check_output_dir(args.out_dir, "--out-dir")
        target = out_dir / f"{args.name}.pt"
        if target.exists() and not args.force:
            raise CommandError(
                f"{target} exists (a shipped or earlier checkpoint); pass --force to replace "
                "it, or --out-dir DIR to reproduce it elsewhere and compare sha256"
            )
        if args.name in CLASSIFIERS:
            ref_dir = args.reference_dir
            if ref_dir is None:
                shipped = out_dir.resolve() == Path(MODELS_DIR).resolve()
                ref_dir = REFERENCE_DIR if shipped else out_dir
            ref_dir = check_output_dir(ref_dir, "--reference-dir")
            card, stats = train_classifier(
                args.name,
                out_dir,
                ref_dir,
                steps=args.steps,
                threads=args.threads,
                progress=args.progress,
            )
            print(
                f"{args.name}: held-out accuracy {card['held_out_accuracy']:.4f} after "
                f"{card['config']['steps']} steps in {card['wall_time_s']:.1f}s; FID floor "
                f"{stats.floor:.4f} at n = {stats.n}\n"
                f"wrote {out_dir / card['weights_file']} (sha256 {card['sha256']}) and the "
                f"reference statistics in {ref_dir}"
            )
            return
        r = train(
            args.name,
            out_dir,
            steps=args.steps,
            num_threads=args.threads,
            progress=args.progress,
            device=None if args.device == "auto" else args.device,
            resume_every=args.resume_every,
        )
        print(
            f"{r.name}: {r.steps} steps in {r.wall_time_s:.1f}s, final loss "
            f"{r.final_loss:.5f}, held-out loss {r.held_out_loss:.5f}\n"
            f"wrote {r.weights_path} (sha256 {r.sha256}) and {r.card_path}"
        )
    elif args.command == "study":
        out_dir = check_output_dir(args.out_dir, "--out-dir") if args.out_dir else None
        params = params_from_set(args.chapter, args.params, _overrides(args.set))
        if adaptive.launched_processes() > 1:
            _study_across_processes(args, params, out_dir)
        else:
            path = run_study(args.chapter, params, args.params, out_dir, progress=args.progress)
            print(f"wrote {path}")
    elif args.command == "official-files":
        folder = official_reference_dir()
        if folder is not None:
            print(folder)
        elif args.notice is None:
            raise FileNotFoundError(
                "the official VRG files are not here: set VRG_REFERENCE_DIR to a folder with "
                "MSE_vs_alpha_bar_cifar10.txt (or place it in ../shared/reference/vrg-official)"
            )
        else:
            official_cifar10.write_notice_page(args.notice)
            print(
                "the official VRG files are not here (set VRG_REFERENCE_DIR): "
                f"{args.notice} is a notice page, the chapter is not run",
                file=sys.stderr,
            )
    elif args.command == "profile":
        _profile(args)
    else:  # audit
        out = check_output_dir(args.out)
        run = run_audit(
            args.model,
            out,
            data=args.data,
            device=args.device,
            quick=args.quick,
            seed=args.seed,
            execute_notebooks=not args.no_notebooks,
        )
        print(format_summary(run.verdicts))
        notebooks = (
            f"{len(run.notebooks)} notebooks" if run.notebooks else "no notebooks (--no-notebooks)"
        )
        print(f"wrote {run.csv}, {run.markdown} and {notebooks} in {run.out_dir}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; returns the exit status (0 ok, 2 a bad argument or input, 1 a failure)."""
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except (ValueError, TypeError, FileNotFoundError, PermissionError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback, unless --debug
        if args.debug:
            raise
        print(
            f"error: {type(exc).__name__}: {exc} (rerun with --debug for details)", file=sys.stderr
        )
        return 1
    return 0
