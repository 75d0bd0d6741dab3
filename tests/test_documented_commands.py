"""Every command the README and the book show is run or checked, so a documented command cannot
rot (issue 12, item 7).

Commands are collected from ``README.md``, ``book/intro.md`` and the markdown cells of
``notebooks/*.ipynb``: every line of a fenced ``bash`` block (backslash continuations joined,
comments dropped) and every inline code span outside fenced blocks that starts with
``papermill``, ``.venv/bin/papermill``, ``python -m vrg_analysis`` or ``make``; the fenced
``python`` blocks of the README and the introduction (the library examples) too. Each kind is
checked as follows.

* ``python -m vrg_analysis ...`` runs for real, in a fresh folder per source, in the order the
  source shows them (so ``cpe --trajectory tq10.json`` reads what ``baseline --out tq10.json``
  wrote); ``torchrun ... -m vrg_analysis ...`` runs as one process (what the processes compute
  is the same as one process's, bit for bit: ``test_profiling_distributed.py`` runs torchrun).
  Placeholders map to small real stand-ins built here (:meth:`StandIns.tokens`): a tiny
  randomly initialised diffusers ``UNet2DModel`` saved with ``save_pretrained`` (as in
  ``test_models_diffusers.py``) with a matching ``.npz`` data set, an ``ErrorProfile``, and for
  ``$SD_MODEL`` / ``$SD_DATA`` the tiny random Stable-Diffusion-layout pipeline of
  ``tests/tiny_pipeline.py`` with 40 captioned images (also inside ``NAME=$TOKEN`` words).
  Options the CLI has are added where a command as written is too slow for CI or needs hardware:
  ``audit`` gets ``--quick`` and ``--no-notebooks`` (its notebook execution is tested once, in
  ``test_audit.py``), ``train`` gets ``--steps 2``, ``--device cuda`` (and a papermill ``device:
  cuda``) becomes ``cpu`` without CUDA (:func:`_ci_argv`). The cheap commands run in one helper
  interpreter (``runpy`` of ``vrg_analysis.__main__``, exactly what ``python -m`` runs); ``study
  CHAPTER --params gpu`` runs the chapter's CI-sized ``quick`` set at toy sizes (``--set``); every
  ``audit`` is a subprocess of its own, run in a background thread while the other checks go on.
  Audit commands that parse to the same arguments except ``--out`` share one run; the others of the
  group are parsed with the CLI's own parser.
* ``papermill NOTEBOOK OUT ...`` is parsed with papermill's own command-line parser and its rules
  (``-f`` files, then ``-y``, then ``-p`` through ``papermill.cli._resolve_type``, then ``-r``).
  Checked here: the notebook, ``-f`` files, ``--cwd`` and the output folder exist (or a
  ``mkdir -p`` before it in the same source makes them), every parameter name is in the
  notebook's ``parameters`` cell (papermill only warns), no ``-p`` passes a list as text. Then,
  in the helper interpreter, papermill's own ``parameterize_notebook`` injects the values and the
  notebook runs its ``parameters`` cell, the injected cell, and its next cell up to the
  statement that builds the chapter's ``Params`` (which validates every parameter and names a
  bad one), without the chapter's ``run``; relative paths resolve against ``--cwd``.
* ``make TARGET`` must dry-run (``make -n``) in the repository; ``PARAMS=X`` must name a
  parameter set under ``notebooks/params/``.
* setup lines (``mkdir -p``, ``export``, ``python -m venv``, ``source``, ``pip install``) are not
  run (they install from the network); their files, extras, torch pin and variables must exist.
* a fenced ``python`` block runs in the helper interpreter, in a fresh folder.

What cannot run here is named, with its reason: :data:`OUTPUT_STAND_INS` (a page's input written
by an earlier step that is validated, not run) and the official VRG files (a check that needs
them is skipped when they are absent, as the rest of the suite does).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import tomllib
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOURCES = ["README.md", "book/intro.md", *[f"notebooks/{p.name}" for p in NOTEBOOKS]]

#: How many commands (and python blocks) each source shows, by kind. A change of the docs
#: changes this table; a change of the parser that collects nothing fails it.
EXPECTED: dict[str, dict[str, int]] = {
    "README.md": {"make": 9, "setup": 1, "papermill": 4, "cli": 8, "python": 1},
    "book/intro.md": {"cli": 1},
    "notebooks/audit_calibration.ipynb": {"make": 2, "papermill": 1},
    "notebooks/audit_gaussian.ipynb": {"papermill": 1, "cli": 1},
    "notebooks/audit_independence.ipynb": {"papermill": 1},
    "notebooks/beyond_the_paper.ipynb": {"papermill": 1},
    "notebooks/design.ipynb": {"make": 3},
    "notebooks/optimisers.ipynb": {"papermill": 1},
    "notebooks/predicted_vs_measured.ipynb": {"papermill": 1},
    "notebooks/published_profiles.ipynb": {"papermill": 1},
    "notebooks/reproduce.ipynb": {"setup": 6, "papermill": 4, "cli": 5},
    "notebooks/testbed_models.ipynb": {"cli": 1},
    "notebooks/vrg_on_exact_testbed.ipynb": {"papermill": 1},
    "notebooks/when_vrg_helps.ipynb": {"papermill": 1},
}

SPAN_PREFIXES = ("papermill", ".venv/bin/papermill", "python -m vrg_analysis", "make")
BASH_INFO = {"bash", "sh", "shell", "console"}
#: Where a fenced python block is a library example that must run (the notebooks' python blocks
#: are signatures, not programs).
PYTHON_SOURCES = ("README.md", "book/intro.md")


# ================================================================================ collection
@dataclass(frozen=True)
class Command:
    source: str  # "README.md", "notebooks/x.ipynb"
    where: str  # "cell 3, bash block", "line 40, inline"
    text: str  # the command, continuations joined
    kind: str  # cli, papermill, make, setup, python, unknown

    @property
    def id(self) -> str:
        """A short name for pytest."""
        return f"{self.source}: {self.text[:70]}"

    @property
    def key(self) -> str:
        """A unique name, for the helper's results."""
        return f"{self.source} | {self.where} | {self.text}"


def _kind(text: str) -> str:
    words = text.split()
    if not words:
        return "unknown"
    head = words[0]
    if head in ("python", ".venv/bin/python") and words[1:3] == ["-m", "vrg_analysis"]:
        return "cli"
    if head == "torchrun" and "vrg_analysis" in words:  # run as one process (module docstring)
        return "cli"
    if head in ("papermill", ".venv/bin/papermill"):
        return "papermill"
    if head == "make":
        return "make"
    if (
        head in ("mkdir", "export", "source")
        or head.endswith("pip")
        or words[1:3] == ["-m", "venv"]
    ):
        return "setup"
    return "unknown"


def _fenced_blocks(markdown: str) -> tuple[list[tuple[str, str, int]], str]:
    """The fenced blocks of ``markdown`` as (info word, body, first line) and the text outside
    them (fence lines and bodies blanked, so line numbers stay)."""
    blocks: list[tuple[str, str, int]] = []
    outside: list[str] = []
    lines = markdown.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^\s*(`{3,}|~{3,})\s*([^`\s]*)", lines[i])
        if not m:
            outside.append(lines[i])
            i += 1
            continue
        fence, info = m.group(1), m.group(2)
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not re.match(
            rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[j]
        ):
            body.append(lines[j])
            j += 1
        blocks.append((info, "\n".join(body), i + 1))
        outside.extend([""] * (j + 1 - i))
        i = j + 1
    return blocks, "\n".join(outside)


def _bash_commands(body: str) -> list[str]:
    """The commands of a bash block: continuations joined, comments and blank lines dropped."""
    out: list[str] = []
    for line in re.sub(r"\s*\\\n\s*", " ", body).split("\n"):
        words = shlex.split(line.replace("<", "\\<").replace(">", "\\>"), comments=True)
        if words:
            # keep the text as written up to a trailing comment
            out.append(re.sub(r"\s+#(?![^'\"]*['\"]).*$", "", line).strip())
    return out


def collect_markdown(markdown: str, source: str, where: str = "") -> list[Command]:
    """Every command and python block in one markdown text (module docstring)."""
    found: list[Command] = []
    blocks, outside = _fenced_blocks(markdown)
    for info, body, line in blocks:
        at = f"{where}line {line}, {info} block"
        if info in BASH_INFO:
            found.extend(Command(source, at, t, _kind(t)) for t in _bash_commands(body))
        elif info == "python" and source in PYTHON_SOURCES:
            found.append(Command(source, at, body, "python"))
    for m in re.finditer(r"(?<![`\\])(`+)(?!`)(.+?)(?<!`)\1(?!`)", outside, re.S):
        text = " ".join(m.group(2).split())
        if any(text.startswith(p + " ") for p in SPAN_PREFIXES):
            line = outside.count("\n", 0, m.start()) + 1
            found.append(Command(source, f"{where}line {line}, inline", text, _kind(text)))
    return found


def collect(source: str) -> list[Command]:
    path = ROOT / source
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return [
            cmd
            for i, cell in enumerate(cells)
            if cell["cell_type"] == "markdown"
            for cmd in collect_markdown("".join(cell["source"]), source, f"cell {i}, ")
        ]
    return collect_markdown(path.read_text(), source)


COMMANDS: list[Command] = [c for s in SOURCES for c in collect(s)]


def _of_kind(kind: str) -> list[Command]:
    return [c for c in COMMANDS if c.kind == kind]


def _ids(cmds: list[Command]) -> list[str]:
    return [c.id for c in cmds]


# ================================================================================ stand-ins
#: Placeholders replaced in the text of a command before it is split into words.
TEXT_PLACEHOLDERS = {
    # a file the profiling step before it writes; a stand-in ErrorProfile is written there
    "<the training-data profile>": "profile-standin",
}


@dataclass
class StandIns:
    root: Path
    checkpoint: Path  # a diffusers folder: unet/ and scheduler/
    data: Path  # its training data (.npz, uint8 images)
    profile: Path  # an ErrorProfile .npz
    pipeline: Path  # a Stable-Diffusion-layout folder (tests/tiny_pipeline.py)
    captioned: Path  # its captioned images
    workspaces: dict[str, Path] = field(default_factory=dict)

    def workspace(self, source: str) -> Path:
        """``$PWD`` of a source's commands, and where its CLI commands run."""
        if source not in self.workspaces:
            ws = self.root / "ws" / re.sub(r"\W", "_", source)
            ws.mkdir(parents=True, exist_ok=True)
            self.workspaces[source] = ws
        return self.workspaces[source]

    def tokens(self) -> dict[str, str]:
        return {
            "/path/to/ddpm-folder": str(self.checkpoint),
            "./ddpm-folder": str(self.checkpoint),
            "FOLDER": str(self.checkpoint),
            "$MODEL": str(self.checkpoint),
            "/path/to/train.npz": str(self.data),
            "train.npz": str(self.data),
            "DATA": str(self.data),
            "$DATA": str(self.data),
            "profile.npz": str(self.profile),
            "$SD_MODEL": str(self.pipeline),
            "$SD_DATA": str(self.captioned),
            "NAME": "mixture-2d-mlp",  # the recipe `train NAME` retrains (the quickest)
            "DIR": "models",
        }


def _build_stand_ins(root: Path) -> StandIns:
    import numpy as np

    from vrg_analysis.core.profile import ErrorProfile
    from vrg_analysis.core.schedules import NoiseSchedule

    diffusers = pytest.importorskip("diffusers")
    import torch

    torch.manual_seed(0)  # diffusers initialises from the global generator
    unet = diffusers.UNet2DModel(  # 1 x 2 x 2 images: the audits' per-coordinate tests stay cheap
        sample_size=2,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8,),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownBlock2D",),
        up_block_types=("UpBlock2D",),
    ).eval()
    ckpt = root / "ddpm-folder"
    unet.save_pretrained(ckpt / "unet")
    diffusers.DDPMScheduler(num_train_timesteps=1000).save_pretrained(ckpt / "scheduler")
    data = root / "train.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.integers(0, 256, size=(64, 1, 2, 2), dtype=np.uint8))
    a = NoiseSchedule.linear().alphas_cumprod
    profile = root / "profile.npz"
    ErrorProfile(alpha_bar=a, mse=0.01 + 0.5 * (1.0 - a)).save(profile)
    pytest.importorskip("transformers")
    from tiny_pipeline import build_tiny_pipeline, write_captioned_folder

    pipeline = build_tiny_pipeline(root / "sd")
    captioned = root / "captioned"
    captioned.mkdir()
    write_captioned_folder(captioned, 40, ["a cat", "a dog", "a cat, sitting", "a dog, sitting"])
    return StandIns(root, ckpt, data, profile, pipeline, captioned)


def _words(cmd: Command, stand: StandIns) -> list[str]:
    """The command's words with every placeholder replaced by its stand-in."""
    text = cmd.text
    for old, new in TEXT_PLACEHOLDERS.items():
        text = text.replace(old, new)
    text = text.replace("$PWD", str(stand.workspace(cmd.source)))
    tokens = stand.tokens()
    inner = {k: v for k, v in tokens.items() if k.startswith("$")}

    def one(word: str) -> str:
        if word in tokens:
            return tokens[word]
        if "=$" in word:  # --set model=$SD_MODEL
            name, _, value = word.partition("=")
            return f"{name}={inner.get(value, value)}"
        return word

    return [one(w) for w in shlex.split(text, comments=True)]


# ================================================================================ the CLI
def _cli_parser() -> argparse.ArgumentParser:
    from vrg_analysis.cli import _parser

    return _parser()


def _subcommand_options(name: str) -> set[str]:
    ap = _cli_parser()
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices[name]._option_string_actions)


def _ci_argv(argv: list[str]) -> list[str]:
    """A documented command's arguments as CI runs them: only options the CLI has are added or
    changed (the test asserts they exist)."""
    import torch

    out = list(argv)
    if out and out[0] == "audit" and "--quick" not in out:
        out.append("--quick")  # the full sample sizes take minutes per audit
    if out and out[0] == "audit" and "--no-notebooks" not in out:
        # the notebook execution the audit adds is tested once, in test_audit.py
        out.append("--no-notebooks")
    if out and out[0] == "train" and "--steps" not in out:
        out += ["--steps", "2"]  # the recipes train for thousands of steps
    if out and out[0] == "study" and "--params" in out:
        # a GPU set takes GPU-hours: the chapter's CI-sized set, smaller still
        out[out.index("--params") + 1] = "quick"
        for toy in ("n_samples=8", "profile_samples=32", "reference_steps=10", "n_boot=20"):
            out += ["--set", toy]
    if not torch.cuda.is_available():
        out = [
            "cpu" if w == "cuda" and i and out[i - 1] == "--device" else w
            for i, w in enumerate(out)
        ]
    return out


def _cli_args(cmd: Command, stand: StandIns) -> list[str]:
    words = _words(cmd, stand)
    if words[0] == "torchrun":  # one process: the same result by construction
        return _ci_argv(words[words.index("vrg_analysis") + 1 :])
    return _ci_argv(words[3:])  # after `python -m vrg_analysis`


def _parse_cli(args: list[str]) -> argparse.Namespace:
    """The CLI's own parse of ``args``; a usage error becomes a ValueError with argparse's
    message."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            return _cli_parser().parse_args(args)
        except SystemExit:
            raise ValueError(err.getvalue().strip().splitlines()[-1]) from None


def _audit_key(args: list[str]) -> tuple:
    ns = vars(_parse_cli(args))
    return tuple(sorted((k, str(v)) for k, v in ns.items() if k != "out"))


# ================================================================================ papermill
@dataclass
class PapermillCheck:
    notebook: Path
    parameters: dict[str, Any]
    cwd: Path | None  # where the kernel runs: --cwd, else the repository
    errors: list[str]


def _notebook_parameters(nb: Path) -> list[str]:
    cells = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
    cell = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    return [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets]


def _made_folders(source: str, before: Command) -> set[Path]:
    """Folders (relative to the repository) that ``mkdir -p`` lines of ``source`` make before
    ``before``."""
    made: set[Path] = set()
    for c in COMMANDS:
        if c == before:
            break
        if c.source == source and c.text.startswith("mkdir "):
            made |= {Path(w) for w in shlex.split(c.text)[1:] if not w.startswith("-")}
    return made


def check_papermill(cmd: Command, stand: StandIns) -> PapermillCheck:
    """Parse a papermill command as papermill does and check it statically (module docstring)."""
    import papermill.cli as pm_cli
    import yaml
    from papermill.iorw import NoDatesSafeLoader, read_yaml_file

    errors: list[str] = []
    words = _words(cmd, stand)
    made = _made_folders(cmd.source, cmd)

    def exists(path: str, folder: bool) -> bool:
        p = Path(path)
        if not p.is_absolute() and (p in made or any(m in p.parents for m in made)):
            return True
        p = p if p.is_absolute() else ROOT / p
        return p.is_dir() if folder else p.is_file()

    try:
        ctx = pm_cli.papermill.make_context("papermill", words[1:])
    except Exception as exc:  # click's usage errors
        return PapermillCheck(ROOT, {}, None, [f"papermill cannot parse it: {exc}"])
    opts = ctx.params
    nb = Path(opts["notebook_path"])
    nb_abs = nb if nb.is_absolute() else ROOT / nb
    if not nb_abs.is_file():
        errors.append(f"notebook {nb} not found")
    out = Path(opts["output_path"] or "")
    if out.parent != Path(".") and not exists(str(out.parent), folder=True):
        errors.append(
            f"output folder {out.parent} does not exist (papermill refuses it); add `mkdir -p "
            f"{out.parent}` before it"
        )
    if (ROOT / out).resolve() in {p.resolve() for p in NOTEBOOKS}:
        errors.append(f"the output {out} overwrites a source notebook")
    if opts["cwd"] is not None and not exists(opts["cwd"], folder=True):
        errors.append(f"--cwd {opts['cwd']} does not exist")
    # papermill's merge (papermill/cli.py): base64, files, yaml, -p, -r; later ones win
    params: dict[str, Any] = {}
    for b64 in opts["parameters_base64"]:
        import base64

        params.update(yaml.load(base64.b64decode(b64), Loader=NoDatesSafeLoader) or {})
    for f in opts["parameters_file"]:
        if not exists(f, folder=False):
            errors.append(f"parameters file {f} not found")
            continue
        params.update(read_yaml_file(str(ROOT / f)) or {})
    for y in opts["parameters_yaml"]:
        params.update(yaml.load(y, Loader=NoDatesSafeLoader) or {})
    for name, value in opts["parameters"]:
        resolved = pm_cli._resolve_type(value)
        if isinstance(resolved, str) and resolved.strip().startswith(("[", "(", "{")):
            errors.append(
                f"-p {name} {value!r} passes the text {value!r}, not a list (papermill's -p "
                f"never makes one); write -y '{name}: {value}' or use a parameters file"
            )
        params[name] = resolved
    for name, value in opts["parameters_raw"]:
        params[name] = value
    if nb_abs.is_file():
        known = _notebook_parameters(nb_abs)
        for name in params:
            if name not in known:
                errors.append(
                    f"unknown parameter {name!r} for {nb.name} (papermill only warns and the "
                    f"notebook ignores it); its parameters: {', '.join(known)}"
                )
    cwd = None
    if opts["cwd"] is not None:
        c = Path(opts["cwd"])
        cwd = c if c.is_absolute() else ROOT / c
        if not cwd.is_dir():  # made by a `mkdir -p` of the source: a fresh stand-in folder
            cwd = stand.workspace(cmd.source) / "cwd" / c
            cwd.mkdir(parents=True, exist_ok=True)
    return PapermillCheck(nb_abs, params, cwd, errors)


#: Parameters that name the output of an earlier step which this test validates without
#: running: a stand-in folder holding one placeholder .csv replaces them (the Params of these
#: pages check only that a *.csv is there). Keep it small.
OUTPUT_STAND_INS: dict[tuple[str, str], str] = {
    ("claims", "findings_dir"): "written by the quality_vs_steps step before it on the page",
    ("claims", "verdict_dir"): "written by the audit step before it on the page",
}


def _stand_in_outputs(check: PapermillCheck, stand: StandIns) -> dict[str, Any]:
    params = dict(check.parameters)
    for (nb, name), _why in OUTPUT_STAND_INS.items():
        if check.notebook.stem == nb and name in params:
            folder = stand.root / "outputs" / nb / name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "placeholder.csv").write_text("stand-in\n")
            params[name] = str(folder)
    if params.get("device", "cpu") != "cpu":
        import torch

        if not torch.cuda.is_available():  # as for the CLI: a GPU parameter set runs on the CPU
            params["device"] = "cpu"
    for value in params.values():  # profiles an earlier step writes
        if isinstance(value, str) and "profile-standin" in value:
            Path(value).parent.mkdir(parents=True, exist_ok=True)
            Path(value).write_bytes(stand.profile.read_bytes())
    return params


# ================================================================================ the helper
def _validate_in_notebook(notebook: str, parameters: dict[str, Any], cwd: str) -> str | None:
    """Run the notebook's parameters cell, papermill's injected cell and the next cell up to the
    ``Params(...)`` it builds; ``None``, or the error the notebook would show."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = load_notebook_node(notebook)  # as papermill reads it
    if parameters:
        nb = parameterize_notebook(nb, parameters, kernel_name="python3", language="python")
    cells = [c for c in nb.cells if c.cell_type == "code"]
    tag = "injected-parameters" if parameters else "parameters"
    i = next(k for k, c in enumerate(cells) if tag in c.metadata.get("tags", []))
    namespace: dict[str, Any] = {"__name__": "__main__"}
    os.chdir(cwd)
    try:
        for cell in cells[: i + 1]:
            exec(compile(cell.source, notebook, "exec"), namespace)
        for stmt in ast.parse(cells[i + 1].source).body:
            calls = [
                n
                for n in ast.walk(stmt)
                if isinstance(n, ast.Call) and ast.unparse(n.func).endswith("Params")
            ]
            if not calls:
                exec(compile(ast.Module([stmt], []), notebook, "exec"), namespace)
                continue
            for call in calls:  # the Params only, never the chapter's run around it
                eval(compile(ast.Expression(call), notebook, "eval"), namespace)
            return None
        return "no Params(...) in the cell after the parameters"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def _run_module(args: list[str], cwd: str) -> dict[str, Any]:
    """``python -m vrg_analysis ARGS`` in this interpreter (``runpy``, as ``-m`` does)."""
    import runpy

    os.chdir(cwd)
    out, err = io.StringIO(), io.StringIO()
    sys.argv = ["vrg_analysis", *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_module("vrg_analysis", run_name="__main__", alter_sys=True)
            rc = 0
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            rc = 1
            err.write(traceback.format_exc())
    return {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()[-4000:]}


def _run_python(source: str, cwd: str) -> str | None:
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(source, "<documented python block>", "exec"), {"__name__": "__main__"})
    except Exception:
        return traceback.format_exc()[-4000:]
    return None


def _helper(jobs_file: str, results_file: str) -> None:
    """The helper interpreter: run every job of ``jobs_file``, write the results."""
    jobs = json.loads(Path(jobs_file).read_text())
    results: dict[str, Any] = {}
    for job in jobs:
        if job["kind"] == "papermill":
            results[job["id"]] = _validate_in_notebook(
                job["notebook"], job["parameters"], job["cwd"]
            )
        elif job["kind"] == "cli":
            results[job["id"]] = _run_module(job["args"], job["cwd"])
        else:
            results[job["id"]] = _run_python(job["source"], job["cwd"])
    Path(results_file).write_text(json.dumps(results))


def _env() -> dict[str, str]:
    # as the Makefile runs things: one BLAS thread, no hub downloads
    return {**os.environ, "OPENBLAS_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


# ================================================================================ fixtures
class _Audits:
    """The distinct audit commands, each a real subprocess, all started at once (each one
    executes three notebooks, mostly waiting on its kernels)."""

    def __init__(self, runs: list[tuple[tuple, list[str], Path]]) -> None:
        self.results: dict[tuple, dict[str, Any]] = {}
        self.procs: dict[tuple, subprocess.Popen[str]] = {}
        self.threads = {
            key: threading.Thread(target=self._work, args=(key, args, cwd), daemon=True)
            for key, args, cwd in runs
        }
        for t in self.threads.values():
            t.start()

    def _work(self, key: tuple, args: list[str], cwd: Path) -> None:
        proc = self.procs[key] = subprocess.Popen(
            [sys.executable, "-m", "vrg_analysis", *args],
            cwd=cwd,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its notebook kernels share its process group
        )
        out, err = proc.communicate()
        self.results[key] = {"rc": proc.returncode, "stdout": out, "stderr": err[-4000:]}

    def result(self, key: tuple) -> dict[str, Any]:
        self.threads[key].join(timeout=1800)
        return self.results[key]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:  # an audit this fixture started, with its kernels
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def stand(tmp_path_factory: pytest.TempPathFactory) -> StandIns:
    return _build_stand_ins(tmp_path_factory.mktemp("documented"))


@pytest.fixture(scope="module")
def audit_groups(stand: StandIns) -> dict[str, tuple]:
    """Command key -> the key of the audit run it shares (a command the CLI cannot parse runs
    on its own, and its test shows the CLI's message)."""
    groups: dict[str, tuple] = {}
    for c in _of_kind("cli"):
        args = _cli_args(c, stand)
        if args[:1] == ["audit"]:
            try:
                groups[c.key] = _audit_key(args)
            except ValueError:
                groups[c.key] = ("as written", c.key)
    return groups


@pytest.fixture(scope="module")
def audits(stand: StandIns, audit_groups: dict[str, tuple]) -> Iterator[_Audits]:
    runs: list[tuple[tuple, list[str], Path]] = []
    for c in _of_kind("cli"):
        key = audit_groups.get(c.key)
        if key is not None and key not in [r[0] for r in runs]:
            runs.append((key, _cli_args(c, stand), stand.workspace(c.source)))
    running = _Audits(runs)
    yield running
    running.stop()


#: Deliberately broken commands and the message each must fail with.
BROKEN: list[tuple[str, str]] = [
    (
        "papermill notebooks/vrg_on_exact_testbed.ipynb out.ipynb -p steps '[5, 10]'",
        "-p steps '[5, 10]' passes the text '[5, 10]', not a list",
    ),
    (
        "papermill notebooks/vrg_on_exact_testbed.ipynb out.ipynb -p n_sample 2048",
        "unknown parameter 'n_sample' for vrg_on_exact_testbed.ipynb",
    ),
    (
        "papermill notebooks/vrg_on_exact_testbed.ipynb out.ipynb -p steps 10",
        "parameter steps must be a list, got int 10",
    ),
    (
        "papermill notebooks/vrg_on_exact_testbed.ipynb out.ipynb -y 'planted_error: cubic'",
        "planted_error",
    ),
    (
        "papermill notebooks/when_vrg_helps.ipynb results/when.ipynb",
        "output folder results does not exist",
    ),
]


def _broken(text: str) -> Command:
    return Command("(broken)", "test", text, _kind(text))


@pytest.fixture(scope="module")
def helper(stand: StandIns, audit_groups: dict[str, tuple], audits: _Audits) -> dict[str, Any]:
    """One helper interpreter runs every papermill validation, python block and cheap CLI
    command (the audits run meanwhile); returns its results by key."""
    jobs: list[dict[str, Any]] = []
    for c in [*_of_kind("papermill"), *[_broken(t) for t, _ in BROKEN]]:
        check = check_papermill(c, stand)
        if check.notebook.is_file():
            jobs.append(
                {
                    "kind": "papermill",
                    "id": c.key,
                    "notebook": str(check.notebook),
                    "parameters": _stand_in_outputs(check, stand),
                    "cwd": str(check.cwd or ROOT),
                }
            )
    for c in _of_kind("cli"):
        if c.key not in audit_groups:
            jobs.append(
                {
                    "kind": "cli",
                    "id": c.key,
                    "args": _cli_args(c, stand),
                    "cwd": str(stand.workspace(c.source)),
                }
            )
    for c in _of_kind("python"):
        folder = stand.workspace(c.source) / "python"
        folder.mkdir(exist_ok=True)
        jobs.append({"kind": "python", "id": c.key, "source": c.text, "cwd": str(folder)})
    jobs_file, results_file = stand.root / "jobs.json", stand.root / "results.json"
    jobs_file.write_text(json.dumps(jobs))
    proc = subprocess.run(
        [sys.executable, __file__, jobs_file, results_file],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(results_file.read_text())


# ================================================================================ the tests
@pytest.mark.parametrize("source", SOURCES)
def test_the_collector_finds_every_documented_command(source: str) -> None:
    counts: dict[str, int] = {}
    for c in COMMANDS:
        if c.source == source:
            counts[c.kind] = counts.get(c.kind, 0) + 1
    assert counts == EXPECTED.get(source, {}), (
        f"{source}: collected {counts}, expected {EXPECTED.get(source, {})}; after a change of "
        "the docs update EXPECTED (and give every new command a check)"
    )


def test_every_command_is_of_a_kind_this_file_checks() -> None:
    unknown = [f"{c.source} ({c.where}): {c.text}" for c in _of_kind("unknown")]
    assert not unknown, "no check for: " + "; ".join(unknown)


def test_the_collector_reads_continuations_comments_spans_and_skips_other_blocks() -> None:
    md = (
        "Run `make book` or `papermill a.ipynb b.ipynb -p x 1`, not `papermill`.\n\n"
        "```bash\nmkdir -p out   # a comment\npapermill a.ipynb out/b.ipynb \\\n"
        "    -y 'steps: [5, 10]'\n```\n\n```{glue:figure} fig\n`make hidden`\n```\n"
    )
    got = [(c.kind, c.text) for c in collect_markdown(md, "x")]
    assert got == [
        ("setup", "mkdir -p out"),
        ("papermill", "papermill a.ipynb out/b.ipynb -y 'steps: [5, 10]'"),
        ("make", "make book"),
        ("papermill", "papermill a.ipynb b.ipynb -p x 1"),
    ]


@pytest.mark.parametrize("cmd", _of_kind("make"), ids=_ids(_of_kind("make")))
def test_make_command_dry_runs(cmd: Command) -> None:
    words = shlex.split(cmd.text)
    for w in words[1:]:
        if w.startswith("PARAMS="):
            assert (ROOT / "notebooks" / "params" / w.split("=", 1)[1]).is_dir(), w
    proc = subprocess.run(
        ["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"{cmd.source}: `{cmd.text}`: {proc.stderr.strip()}"


@pytest.mark.parametrize("cmd", _of_kind("papermill"), ids=_ids(_of_kind("papermill")))
def test_papermill_command_parses_and_its_values_pass_the_notebooks_params(
    cmd: Command, stand: StandIns, helper: dict[str, Any]
) -> None:
    check = check_papermill(cmd, stand)
    assert not check.errors, f"{cmd.source}: `{cmd.text}`: " + "; ".join(check.errors)
    error = helper[cmd.key]
    if error and "official" in error.lower():
        from vrg_analysis.resources import official_reference_dir

        if official_reference_dir() is None:
            pytest.skip("needs the official VRG files (set VRG_REFERENCE_DIR)")
    assert error is None, f"{cmd.source}: `{cmd.text}`: the notebook refuses it: {error}"


def test_the_output_stand_ins_are_only_for_pages_that_are_shown() -> None:
    shown = {
        (re.search(r"(\w+)\.ipynb", c.text).group(1), n)
        for c in _of_kind("papermill")
        for n in re.findall(r"-p (\w+)", c.text)
    }
    assert set(OUTPUT_STAND_INS) <= shown, "remove stand-ins no documented command needs"


@pytest.mark.parametrize("text,message", BROKEN, ids=[m for _, m in BROKEN])
def test_a_broken_papermill_command_fails_with_a_clear_message(
    text: str, message: str, stand: StandIns, helper: dict[str, Any]
) -> None:
    cmd = _broken(text)
    check = check_papermill(cmd, stand)
    problems = [*check.errors, *([helper[cmd.key]] if helper.get(cmd.key) else [])]
    assert any(message in p for p in problems), problems


def test_a_broken_cli_or_make_command_fails(stand: StandIns) -> None:
    with pytest.raises(ValueError, match="the following arguments are required: --out"):
        _parse_cli(
            _cli_args(_broken("python -m vrg_analysis audit --model FOLDER --data DATA"), stand)
        )
    proc = subprocess.run(
        ["make", "-n", "no-such-target"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "no-such-target" in proc.stderr


@pytest.mark.parametrize("cmd", _of_kind("cli"), ids=_ids(_of_kind("cli")))
def test_cli_command_runs(
    cmd: Command,
    stand: StandIns,
    helper: dict[str, Any],
    audits: _Audits,
    audit_groups: dict[str, tuple],
) -> None:
    args = _cli_args(cmd, stand)
    name = args[0]
    added = {w for w in args if w.startswith("--")} - {
        w for w in _words(cmd, stand) if w.startswith("--")
    }
    assert added <= _subcommand_options(name), f"the test adds options {name} lacks: {added}"
    if cmd.key in audit_groups:
        _parse_cli(args)  # this command's own arguments parse
        result = audits.result(audit_groups[cmd.key])
    else:
        result = helper[cmd.key]
    assert result["rc"] == 0, (
        f"{cmd.source}: `{cmd.text}` (run as {args}) exited {result['rc']}:\n{result['stderr']}"
    )
    if name == "audit":
        assert "verdicts.csv" in result["stdout"], result["stdout"]
        assert "no notebooks (--no-notebooks)" in result["stdout"], result["stdout"]


@pytest.mark.parametrize("cmd", _of_kind("python"), ids=_ids(_of_kind("python")))
def test_python_block_runs(cmd: Command, helper: dict[str, Any]) -> None:
    assert helper[cmd.key] is None, f"{cmd.source} ({cmd.where}):\n{helper[cmd.key]}"


@pytest.mark.parametrize("cmd", _of_kind("setup"), ids=_ids(_of_kind("setup")))
def test_setup_command_refers_to_what_exists(cmd: Command) -> None:
    """Setup lines are not run (they install from the network); what they name must exist."""
    words = shlex.split(cmd.text)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    if words[0] == "mkdir":
        assert words[1] == "-p", "mkdir without -p fails on a second run"
    elif words[0] == "export":
        var = words[1].split("=", 1)[0]
        used = (ROOT / "Makefile").read_text() + "".join(
            p.read_text() for p in (ROOT / "vrg_analysis").rglob("*.py")
        )
        assert var in used, f"{var} is read by nothing"
    elif words[0] == "source":
        assert words[1] == ".venv/bin/activate"  # made by `python -m venv .venv`
    elif words[1:3] == ["-m", "venv"]:
        assert words[3] == ".venv"  # the folder the Makefile and the docs use
    else:  # pip install
        assert words[1] == "install"
        for i, w in enumerate(words):
            if w == "-c":
                assert (ROOT / words[i + 1]).is_file(), f"constraints file {words[i + 1]} missing"
            m = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", w)
            if m:
                assert (ROOT / "pyproject.toml").is_file()
                for extra in filter(None, (m.group(1) or "").split(",")):
                    assert extra in pyproject["optional-dependencies"], f"no extra {extra!r}"
            if w.startswith("torch=="):
                assert w in pyproject["dependencies"], f"{w}: pyproject pins another torch"


if __name__ == "__main__":  # the helper interpreter
    _helper(sys.argv[1], sys.argv[2])
