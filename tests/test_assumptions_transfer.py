"""Transfer audit: does the MSE measured on one set of states hold on another?

Planted cases with a known answer: the same planted model on two independent draws (ratio 1:
holds at large n), a model whose error is 30% larger on one side (violated), too few samples
(inconclusive, with a sample-size note), and per-class rows for a conditional model.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from vrg_analysis.assumptions import (
    ErrorSample,
    TransferProfile,
    transfer_audit,
    transfer_by_class,
    transfer_profile,
)
from vrg_analysis.assumptions.samples import errors_on_data
from vrg_analysis.assumptions.transfer import MIN_TRANSFER_SAMPLES, classes_to_audit
from vrg_analysis.models.analytic import PlantedErrorModel
from vrg_analysis.testbeds import make_testbed

LEVELS = np.array([0.05, 0.4, 0.9])


def _gauss(n: int, d: int, std: float | list[float], seed: int, levels=LEVELS) -> ErrorSample:
    rng = np.random.default_rng(seed)
    s = np.broadcast_to(np.asarray(std, dtype=float), (len(levels),))
    e = rng.standard_normal((len(levels), n, d)) * s[:, None, None]
    return ErrorSample(e, levels, f"synthetic seed {seed}", "eps* (exact predictor)")


# tiny batched float64 work: thread overhead dominates on a shared CPU
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bed(one_torch_thread):
    return make_testbed("mixture-8d")


def _planted_errors(bed, std: float, n: int, seed: int) -> ErrorSample:
    """The planted model's own error (reference = eps*) on fresh training-distribution states."""
    model = PlantedErrorModel(bed.oracle, std=std, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    x0, _ = bed.mixture.sample(n, gen)
    return errors_on_data(
        model, x0, LEVELS, reference=bed.oracle, generator=gen, source=f"draw {seed}"
    )


@pytest.fixture(scope="module")
def draw1(bed) -> ErrorSample:
    return _planted_errors(bed, 0.3, 4000, seed=1)


def test_same_planted_model_on_two_draws_holds(bed, draw1):
    a = draw1
    b = _planted_errors(bed, 0.3, 4000, seed=2)
    # the planted error is the whole error against eps*: MSE = std^2 (P2)
    np.testing.assert_allclose(a.mse(), 0.09, rtol=0.03)
    rows = transfer_audit(a, b, label="draw 2 vs draw 1")
    assert [r.verdict for r in rows] == ["supported"] * 3
    for r in rows:
        assert r.audit == "transfer" and r.correction == "holm"
        assert abs(r.effect_size - 1.0) < 0.03
        assert r.p_adjusted >= r.p_value
        assert "draw 2 vs draw 1" in r.scope and "alpha_bar=" in r.scope


def test_thirty_percent_larger_error_is_violated(bed, draw1):
    a = draw1
    b = _planted_errors(bed, 0.3 * math.sqrt(1.3), 4000, seed=2)
    rows = transfer_audit(a, b)
    assert [r.verdict for r in rows] == ["contradicted"] * 3
    prof = transfer_profile(a, b)
    np.testing.assert_allclose(prof.ratio, 1.3, rtol=0.04)
    assert np.all(np.abs(np.log(prof.ratio / 1.3)) < 4 * prof.log_se)
    assert np.all(prof.ratio_lo > 1.1)  # the interval excludes the tolerance band
    # and the other way round: the ratio is symmetric in log scale
    back = transfer_audit(b, a)
    assert [r.verdict for r in back] == ["contradicted"] * 3
    np.testing.assert_allclose([r.effect_size for r in back], 1 / prof.ratio, rtol=1e-12)


def test_small_samples_are_inconclusive_with_a_sample_size_note():
    a, b = _gauss(30, 2, 1.0, 0), _gauss(30, 2, 1.0, 1)
    rows = transfer_audit(a, b)
    assert all(r.verdict == "inconclusive" for r in rows)
    for r in rows:
        assert "samples per side needed" in r.note
        need = int(r.note.split("about ")[1].split(" samples")[0])
        assert need > 30
        if "not inside the band" in r.note:
            # chi2_2 / 2 has cv = 1: a 10% band needs at least 2 (1.96 / log 1.1)^2 = 846 per side
            assert need > 846


def test_profile_matches_direct_computation_and_bootstrap():
    a = _gauss(2000, 3, [0.5, 1.0, 2.0], 0)
    b = _gauss(1500, 3, [0.6, 1.0, 1.5], 1)
    prof = transfer_profile(a, b)
    assert isinstance(prof, TransferProfile)
    np.testing.assert_allclose(prof.mse_reference, a.mse(), rtol=1e-12)
    np.testing.assert_allclose(prof.mse_other, b.mse(), rtol=1e-12)
    np.testing.assert_allclose(prof.ratio, b.mse() / a.mse(), rtol=1e-12)
    s = np.mean(a.errors**2, axis=2)
    np.testing.assert_allclose(prof.sem_reference, s.std(axis=1, ddof=1) / np.sqrt(2000))
    assert np.all(prof.ratio_lo < prof.ratio) and np.all(prof.ratio < prof.ratio_hi)
    # an independent method for the same interval: the percentile bootstrap of log R
    boot = transfer_profile(a, b, ci="bootstrap", bootstrap=1000, seed=3)
    np.testing.assert_allclose(boot.ratio, prof.ratio)
    np.testing.assert_allclose(
        np.log(boot.ratio_hi / boot.ratio_lo), np.log(prof.ratio_hi / prof.ratio_lo), rtol=0.15
    )
    np.testing.assert_allclose(boot.log_se, prof.log_se, rtol=0.15)
    with pytest.raises(dataclasses.FrozenInstanceError):
        prof.label = "x"  # type: ignore[misc]
    with pytest.raises(ValueError):
        prof.ratio[0] = 2.0


def test_mismatched_levels_dimension_and_sizes_are_rejected():
    a = _gauss(50, 2, 1.0, 0)
    shifted = _gauss(50, 2, 1.0, 1, levels=np.array([0.05, 0.41, 0.9]))
    with pytest.raises(ValueError, match=r"alpha_bar\[1\] = 0.4 but other alpha_bar\[1\] = 0.41"):
        transfer_audit(a, shifted)
    fewer = _gauss(50, 2, 1.0, 1, levels=np.array([0.05, 0.4]))
    with pytest.raises(ValueError, match="reference_sample has 3, other has 2"):
        transfer_audit(a, fewer)
    with pytest.raises(ValueError, match="same dimension"):
        transfer_audit(a, _gauss(50, 3, 1.0, 1))
    with pytest.raises(ValueError, match="at least 10 samples per level; other has n = 5"):
        transfer_audit(a, _gauss(5, 2, 1.0, 1))
    zero = ErrorSample(np.zeros((3, 50, 2)), LEVELS, "zero", a.reference)
    with pytest.raises(ValueError, match="all zero"):
        transfer_audit(zero, a)
    with pytest.raises(ValueError, match="tolerance"):
        transfer_audit(a, a, tolerance=0.0)
    with pytest.raises(ValueError, match="unknown ci"):
        transfer_profile(a, a, ci="jackknife")  # type: ignore[arg-type]
    # against eps on one side and eps* on the other, the ratio is (spread + model) / model
    vs_eps = ErrorSample(a.errors, LEVELS, "data", "eps (the true noise)", against_noise=True)
    with pytest.raises(ValueError, match="different references"):
        transfer_audit(a, vs_eps)
    assert len(transfer_audit(a, vs_eps, check_reference=False)) == 3
    # two names of an eps* predictor are the same kind of reference
    vs_emp = ErrorSample(a.errors, LEVELS, "path", "eps* of the training split (empirical)")
    assert len(transfer_audit(a, vs_emp)) == 3
    with pytest.raises(TypeError, match="ErrorSample"):
        transfer_audit(a.errors, a)  # type: ignore[arg-type]


def test_by_class_flags_only_the_class_that_moved():
    n = 8000
    rng = np.random.default_rng(0)
    lab_r = rng.integers(0, 2, n)
    lab_o = rng.integers(0, 2, n)
    ref = _gauss(n, 4, 1.0, 1)
    oth_e = np.array(_gauss(n, 4, 1.0, 2).errors)
    oth_e[:, lab_o == 1] *= math.sqrt(1.4)  # class 1 has a 40% larger MSE on the other side
    oth = ErrorSample(oth_e, LEVELS, "other", ref.reference)
    rows = transfer_by_class(ref, oth, lab_r, torch.as_tensor(lab_o), label="path vs data")
    assert len(rows) == 2 * len(LEVELS)
    by = {c: [r for r in rows if r.scope.startswith(f"class {c}:")] for c in (0, 1)}
    assert [r.verdict for r in by[0]] == ["supported"] * 3
    assert [r.verdict for r in by[1]] == ["contradicted"] * 3
    assert all(abs(r.effect_size - 1.4) < 0.1 for r in by[1])
    # one family: Holm over all 6 rows
    assert all(r.p_adjusted >= r.p_value for r in rows)
    only = transfer_by_class(ref, oth, lab_r, lab_o, classes=[1])
    assert len(only) == 3 and all(r.scope.startswith("class 1:") for r in only)


def test_by_class_validation():
    ref, oth = _gauss(40, 2, 1.0, 0), _gauss(40, 2, 1.0, 1)
    labels = np.r_[np.zeros(35, int), np.ones(5, int)]
    with pytest.raises(ValueError, match="class 1 has 5 reference and 5 other samples"):
        transfer_by_class(ref, oth, labels, labels)
    with pytest.raises(ValueError, match="one label per sample"):
        transfer_by_class(ref, oth, labels[:-1], labels)
    with pytest.raises(ValueError, match="integer class labels"):
        transfer_by_class(ref, oth, labels.astype(float), labels)
    with pytest.raises(ValueError, match="no class label occurs in both"):
        transfer_by_class(ref, oth, np.zeros(40, int), np.ones(40, int))


def test_classes_to_audit_keeps_the_classes_with_enough_rows_on_both_sides() -> None:
    n = MIN_TRANSFER_SAMPLES
    ref = [0] * n + [1] * n + [2] * (n - 1) + [3] * n
    other = [0] * n + [1] * (n - 1) + [2] * n + [4] * n
    assert classes_to_audit(ref, other) == [0]
    # one row per caption (a text-to-image data set): no class can be audited on its own
    assert classes_to_audit(list(range(50)), list(range(50))) == []
