"""Statistical audits of the assumptions VRG rests on, each returning frozen
:class:`AuditResult` rows with a verdict against a stated tolerance.

Modules: :mod:`.samples` (the error samples audited), :mod:`.verdicts` (results, multiple
testing, tables), :mod:`.gaussianity` (zero mean, normality), :mod:`.independence` (across the
steps of one path), :mod:`.transfer` (training error
as a proxy for the error along the sampler's path), :mod:`.decomposition` (profiled MSE = spread +
model error, and their shares of CPE), :mod:`.anisotropy` (shape of the error, and CPE's
blindness to it).
"""

from __future__ import annotations

from vrg_analysis.assumptions.anisotropy import (
    AccumulatedAnisotropy,
    ErrorSpectrum,
    accumulated_error_anisotropy,
    anisotropy_audit,
    entropy_rank,
    error_spectrum,
    participation_ratio,
    spatial_sign_sphericity_test,
)
from vrg_analysis.assumptions.decomposition import (
    CPEShares,
    ProfileDecomposition,
    cpe_shares,
    decompose_profile,
)
from vrg_analysis.assumptions.gaussianity import normality_audit, zero_mean_audit
from vrg_analysis.assumptions.independence import independence_audit
from vrg_analysis.assumptions.samples import ErrorSample, errors_along_path, errors_on_data
from vrg_analysis.assumptions.transfer import (
    TransferProfile,
    transfer_audit,
    transfer_by_class,
    transfer_profile,
)
from vrg_analysis.assumptions.verdicts import (
    AuditResult,
    adjust_pvalues,
    results_from_csv,
    results_to_csv,
    results_to_markdown,
    summarize,
    write_results,
)

__all__ = [
    "AccumulatedAnisotropy",
    "AuditResult",
    "CPEShares",
    "ErrorSample",
    "ErrorSpectrum",
    "ProfileDecomposition",
    "TransferProfile",
    "accumulated_error_anisotropy",
    "adjust_pvalues",
    "anisotropy_audit",
    "cpe_shares",
    "decompose_profile",
    "entropy_rank",
    "error_spectrum",
    "errors_along_path",
    "errors_on_data",
    "independence_audit",
    "normality_audit",
    "participation_ratio",
    "results_from_csv",
    "results_to_csv",
    "results_to_markdown",
    "spatial_sign_sphericity_test",
    "summarize",
    "transfer_audit",
    "transfer_by_class",
    "transfer_profile",
    "write_results",
    "zero_mean_audit",
]
