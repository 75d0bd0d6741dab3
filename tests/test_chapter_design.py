"""The design page: reference values recomputed from the official files, and layer counts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from vrg_analysis.layers import package_modules
from vrg_analysis.studies import design


def test_the_published_cpe_values_are_recomputed(official_dir: Path) -> None:
    values = design.run(design.Params(reference_dir=str(official_dir)))
    assert values.available
    assert values.cpe_baseline == pytest.approx(design.PUBLISHED_CPE, abs=1e-6)
    assert values.cpe_optimised == pytest.approx(design.PUBLISHED_CPE_OPTIMISED, abs=1e-6)


def test_without_the_files_the_page_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(design, "official_reference_dir", lambda: None)
    values = design.run(design.Params())
    assert not values.available and math.isnan(values.cpe_baseline)
    assert design.summary(values).reference_available == "not found on this machine"


def test_a_folder_without_the_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / design.FILES[0]).write_text("0 0.99 0.1\n")
    with pytest.raises(ValueError, match="reference_dir.*lacks the official file"):
        design.Params(reference_dir=str(tmp_path))


def test_the_summary_counts_the_package() -> None:
    s = design.summary(design.ReferenceValues(False, math.nan, math.nan, ""))
    assert s.n_modules == len(package_modules()) and 1 < s.n_layers <= s.n_components
    assert s.n_imports > s.n_modules  # most modules import more than one other
