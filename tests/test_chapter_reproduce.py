"""The reproduce page's costs from small synthetic GPU benchmark files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vrg_analysis.studies import reproduce as chapter


def _write(folder: Path) -> Path:
    folder.mkdir()
    (folder / "profiling_gpu.json").write_text(
        json.dumps({"machine": {"gpu": "Test GPU"}, "library": {"pairs_per_s": 2048.0}})
    )
    (folder / "study_gpu.json").write_text(
        json.dumps(
            {
                "machine": {"gpu": "Test GPU"},
                "sampler_cost": {
                    "batch": 500,
                    "parameters": 35_000_000,
                    "ddim": {"library_s_per_call": 0.10, "ratio": 1.01},
                    "s_pndm": {"library_s_per_call": 0.12, "ratio": 1.03},
                },
                "projection": {"model_calls": 1000, "projected_hours": 2.5, "n_samples": 200},
            }
        )
    )
    return folder


def test_costs_are_computed_from_the_benchmarks(tmp_path: Path) -> None:
    c = chapter.run(chapter.Params(results_dir=str(_write(tmp_path / "r"))))
    assert c.gpu == "Test GPU"
    # 1000 timesteps x 2048 images at 2048 pairs/s: 1000 s
    assert c.profile_minutes == pytest.approx(1000 / 60)
    assert c.ms_per_call == pytest.approx(110.0)  # mean over the sampler families
    assert c.overhead_pct == pytest.approx(3.0)  # the largest ratio, minus one
    assert c.params_m == pytest.approx(35.0) and c.batch == 500
    assert (c.calls, c.hours, c.n_per_seed) == (1000, 2.5, 200)


def test_missing_benchmarks_give_nan(tmp_path: Path) -> None:
    c = chapter.run(chapter.Params(results_dir=str(tmp_path)))
    assert c.gpu == "no GPU measured"
    assert all(math.isnan(v) for v in (c.pairs_per_s, c.profile_minutes, c.ms_per_call, c.hours))


def test_the_committed_results_give_the_published_costs() -> None:
    folder = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    if not (folder / "study_gpu.json").is_file():
        pytest.skip("no committed GPU benchmark results")
    c = chapter.run(chapter.Params(results_dir=str(folder)))
    assert c.profile_minutes > 0 and c.ms_per_call > 0 and c.overhead_pct >= 0


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="results_dir"):
        chapter.Params(results_dir=str(tmp_path / "nope"))
