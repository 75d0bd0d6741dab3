"""Sample-quality metrics: the Frechet distance and exact metrics for the Gaussian-mixture testbed.

Frechet distance between ``N(mu1, S1)`` and ``N(mu2, S2)`` (Dowson & Landau 1982; FID, Heusel et
al. 2017)::

    FD = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2})                 (F1)

``tr (S1^{1/2} S2 S1^{1/2})^{1/2}`` equals pytorch-fid's ``tr sqrtm(S1 S2)`` (the two matrices are
similar), but the symmetric form is computed with two symmetric eigendecompositions in float64,
needs no complex arithmetic and accepts singular (positive semi-definite) covariances.

On the exact testbed (:class:`~vrg_analysis.testbeds.GaussianMixture`) the data density is known,
so :func:`mixture_sample_quality` reports the samples' mean exact log-likelihood against that of
true data, the Frechet distance to the exact moments and the mode proportions against the weights.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

from vrg_analysis._checks import frozen_array
from vrg_analysis.models.analytic import GaussianMixture

__all__ = [
    "frechet_distance",
    "frechet_distance_from_samples",
    "gaussian_moments",
    "MixtureReference",
    "mixture_reference",
    "SampleQuality",
    "mixture_sample_quality",
    "sliced_wasserstein",
    "ModeCoverage",
    "mode_coverage",
]

log = logging.getLogger(__name__)
FloatArray = NDArray[np.float64]

# Relative size of a negative eigenvalue still treated as round-off of a PSD matrix.
_PSD_TOL = 1e-8


def _to_numpy(x: Tensor | ArrayLike, name: str) -> FloatArray:
    if isinstance(x, Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__}") from exc


def _check_finite(arr: FloatArray, name: str) -> None:
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        idx = tuple(int(i) for i in bad[0])
        raise ValueError(f"{name}{list(idx)} = {float(arr[idx])!r} is not finite")


def _psd_sqrt_eig(cov: FloatArray, name: str) -> tuple[FloatArray, FloatArray]:
    """Eigenvalues (clipped at 0) and eigenvectors of a symmetric PSD matrix, validated."""
    scale = max(float(np.abs(cov).max()), np.finfo(np.float64).tiny)
    asym = float(np.abs(cov - cov.T).max())
    if asym > 1e-6 * scale:
        raise ValueError(f"{name} is not symmetric: max |S - S^T| = {asym:.3g} (scale {scale:.3g})")
    vals, vecs = np.linalg.eigh(0.5 * (cov + cov.T))
    if vals[0] < -_PSD_TOL * max(float(vals[-1]), scale):
        raise ValueError(
            f"{name} is not positive semi-definite: smallest eigenvalue {float(vals[0])!r}"
        )
    return np.clip(vals, 0.0, None), vecs


def frechet_distance(
    mu1: Tensor | ArrayLike,
    cov1: Tensor | ArrayLike,
    mu2: Tensor | ArrayLike,
    cov2: Tensor | ArrayLike,
) -> float:
    """Frechet (2-Wasserstein squared) distance between two Gaussians (F1), in float64.

    Covariances must be symmetric positive semi-definite; eigenvalues that round-off made slightly
    negative are clipped to zero, and so is the result (it is ``>= 0`` in exact arithmetic).
    """
    m1, m2 = _to_numpy(mu1, "mu1"), _to_numpy(mu2, "mu2")
    s1, s2 = _to_numpy(cov1, "cov1"), _to_numpy(cov2, "cov2")
    if m1.ndim != 1:
        raise ValueError(f"mu1 must be a 1-D vector, got shape {m1.shape}")
    d = m1.size
    if m2.shape != (d,):
        raise ValueError(f"mu2 has shape {m2.shape}, expected ({d},) like mu1")
    for name, s in (("cov1", s1), ("cov2", s2)):
        if s.shape != (d, d):
            raise ValueError(f"{name} has shape {s.shape}, expected ({d}, {d})")
    for name, arr in (("mu1", m1), ("mu2", m2), ("cov1", s1), ("cov2", s2)):
        _check_finite(arr, name)
    # 1. S1^{1/2} = V diag(sqrt(l)) V^T from the symmetric eigendecomposition of S1
    vals1, vecs1 = _psd_sqrt_eig(s1, "cov1")
    sqrt1 = (vecs1 * np.sqrt(vals1)) @ vecs1.T
    # 2. M = S1^{1/2} S2 S1^{1/2} is symmetric PSD; tr M^{1/2} = sum of sqrt of its eigenvalues
    vals2, _ = _psd_sqrt_eig(s2, "cov2")
    s2_sym = 0.5 * (s2 + s2.T)
    mid = sqrt1 @ s2_sym @ sqrt1
    mid_vals = np.linalg.eigvalsh(0.5 * (mid + mid.T))
    tr_sqrt = float(np.sqrt(np.clip(mid_vals, 0.0, None)).sum())
    # 3. (F1)
    diff = m1 - m2
    value = float(diff @ diff) + float(vals1.sum()) + float(vals2.sum()) - 2.0 * tr_sqrt
    return max(value, 0.0)


def gaussian_moments(x: Tensor | ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Sample mean ``[d]`` and unbiased sample covariance ``[d, d]`` of rows ``x`` ``[n, d]``.

    As pytorch-fid's ``calculate_activation_statistics`` (``np.cov(rowvar=False)``), in float64.
    """
    arr = _to_numpy(x, "x")
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise ValueError(f"x must have shape [n >= 2, d], got {arr.shape}")
    _check_finite(arr, "x")
    mean = arr.mean(axis=0)
    centred = arr - mean
    cov = centred.T @ centred / (arr.shape[0] - 1)
    return mean, 0.5 * (cov + cov.T)


def frechet_distance_from_samples(x: Tensor | ArrayLike, y: Tensor | ArrayLike) -> float:
    """(F1) between the Gaussian moments of two sample sets ``x`` [n, d] and ``y`` [m, d]."""
    mx, sx = gaussian_moments(x)
    my, sy = gaussian_moments(y)
    if mx.shape != my.shape:
        raise ValueError(f"x has dimension {mx.size} but y has dimension {my.size}")
    return frechet_distance(mx, sx, my, sy)


# ===================================================================== exact testbed
@dataclass(frozen=True, eq=False)
class MixtureReference:
    """What true data of a mixture scores, estimated once from ``n`` true samples.

    ``log_likelihood`` estimates ``E_p[log p]`` (minus the differential entropy), with its
    standard error; ``mode_fractions`` are the fractions of true samples whose most responsible
    component is ``i``. They differ from the weights where modes overlap (a true sample of one
    component can sit nearer another), so sample counts are tested against these, not the weights.
    """

    n: int
    log_likelihood: float
    log_likelihood_sem: float
    mode_fractions: FloatArray

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode_fractions", frozen_array(self.mode_fractions))


def mixture_reference(
    mixture: GaussianMixture, n: int = 200_000, generator: torch.Generator | None = None
) -> MixtureReference:
    """Score ``n`` true samples of ``mixture`` drawn with ``generator`` (default: seeded with 0)."""
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    if isinstance(n, bool) or int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    x, _ = mixture.sample(int(n), gen)
    lp = mixture.log_prob(x).numpy()
    return MixtureReference(
        n=int(n),
        log_likelihood=float(lp.mean()),
        log_likelihood_sem=float(lp.std(ddof=1) / math.sqrt(lp.size)),
        mode_fractions=_hard_mode_counts(x, mixture) / lp.size,
    )


def _hard_mode_counts(x: Tensor, mixture: GaussianMixture) -> FloatArray:
    labels = mixture.responsibilities(x).argmax(dim=1).numpy()
    return np.bincount(labels, minlength=mixture.num_modes).astype(np.float64)


@dataclass(frozen=True, eq=False)
class SampleQuality:
    """Exact quality of ``n`` samples from a Gaussian-mixture testbed.

    * ``log_likelihood``: mean exact ``log p(x)`` over the samples, standard error
      ``log_likelihood_sem``; ``reference_log_likelihood``: ``E_p[log p]`` of true data, standard
      error ``reference_log_likelihood_sem``;
      ``log_likelihood_gap = log_likelihood - reference_log_likelihood``, negative for samples in
      low-density regions (blur, spill between modes), positive for samples collapsed onto the
      modes; ``gap_z``: the gap in units of its combined standard error.
    * ``frechet``: (F1) between the samples' moments and the mixture's exact moments.
    * ``mode_fractions``: fraction of samples whose most responsible component is ``i``;
      ``mode_weights``: the true weights ``pi_i``; ``mode_tv``: total variation
      ``0.5 sum_i |fraction_i - pi_i|``; ``reference_mode_fractions``: the same fractions for true
      data (:class:`MixtureReference`); ``mode_chi2_pvalue``: Pearson's chi-square test of the
      mode counts against ``reference_mode_fractions``.
    """

    n: int
    log_likelihood: float
    log_likelihood_sem: float
    reference_log_likelihood: float
    reference_log_likelihood_sem: float
    log_likelihood_gap: float
    gap_z: float
    frechet: float
    mode_fractions: FloatArray
    mode_weights: FloatArray
    reference_mode_fractions: FloatArray
    mode_tv: float
    mode_chi2_pvalue: float

    def __post_init__(self) -> None:
        for name in ("mode_fractions", "mode_weights", "reference_mode_fractions"):
            object.__setattr__(self, name, frozen_array(getattr(self, name)))

    def summary(self) -> dict[str, float]:
        """The scalar fields, for tables and ``glue``."""
        return {
            "n": float(self.n),
            "log_likelihood": self.log_likelihood,
            "log_likelihood_sem": self.log_likelihood_sem,
            "reference_log_likelihood": self.reference_log_likelihood,
            "log_likelihood_gap": self.log_likelihood_gap,
            "gap_z": self.gap_z,
            "frechet": self.frechet,
            "mode_tv": self.mode_tv,
            "mode_chi2_pvalue": self.mode_chi2_pvalue,
        }


def mixture_sample_quality(
    samples: Tensor | ArrayLike,
    mixture: GaussianMixture,
    *,
    reference: MixtureReference | None = None,
    n_reference: int = 200_000,
    generator: torch.Generator | None = None,
) -> SampleQuality:
    """Exact sample-quality metrics of ``samples`` ``[n, d]`` against ``mixture``.

    ``reference`` (what true data scores) is computed by :func:`mixture_reference` from
    ``n_reference`` true samples drawn with ``generator`` unless passed in; pass it when scoring
    several sample sets against one mixture.
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    x = torch.tensor(_to_numpy(samples, "samples"))  # a copy: inputs may be read-only
    if x.ndim != 2 or x.shape[1] != mixture.dim or x.shape[0] < 2:
        raise ValueError(f"samples must have shape [n >= 2, d={mixture.dim}], got {tuple(x.shape)}")
    _check_finite(x.numpy(), "samples")
    n = int(x.shape[0])
    ref = reference if reference is not None else mixture_reference(mixture, n_reference, generator)
    if ref.mode_fractions.shape != (mixture.num_modes,):
        raise ValueError(
            f"reference has {ref.mode_fractions.size} modes, the mixture {mixture.num_modes}"
        )
    # 1. mean exact log-likelihood of the samples, its standard error, the gap to true data
    lp = mixture.log_prob(x).numpy()
    ll, ll_sem = float(lp.mean()), float(lp.std(ddof=1) / math.sqrt(n))
    gap = ll - ref.log_likelihood
    combined = math.hypot(ll_sem, ref.log_likelihood_sem)
    gap_z = gap / combined if combined > 0 else (math.copysign(math.inf, gap) if gap else 0.0)
    # 2. Frechet distance to the exact moments (F1)
    mean, cov = gaussian_moments(x)
    fd = frechet_distance(mean, cov, mixture.mean(), mixture.covariance())
    # 3. mode proportions: most responsible component, against weights and true data
    counts = _hard_mode_counts(x, mixture)
    fractions = counts / n
    tv = 0.5 * float(np.abs(fractions - mixture.weights).sum())
    pvalue = _chi2_pvalue(counts, ref.mode_fractions)
    log.debug("sample quality: n=%d gap=%.4g (z=%.2f) tv=%.4g fd=%.4g", n, gap, gap_z, tv, fd)
    return SampleQuality(
        n=n,
        log_likelihood=ll,
        log_likelihood_sem=ll_sem,
        reference_log_likelihood=ref.log_likelihood,
        reference_log_likelihood_sem=ref.log_likelihood_sem,
        log_likelihood_gap=gap,
        gap_z=gap_z,
        frechet=fd,
        mode_fractions=fractions,
        mode_weights=mixture.weights,
        reference_mode_fractions=ref.mode_fractions,
        mode_tv=tv,
        mode_chi2_pvalue=pvalue,
    )


def _chi2_pvalue(counts: FloatArray, expected_fractions: FloatArray) -> float:
    """Pearson's chi-square goodness of fit; modes with zero expected fraction are dropped
    (and a sample falling in one makes the p-value 0)."""
    from scipy.stats import chi2

    n = counts.sum()
    keep = expected_fractions > 0
    if np.any(counts[~keep] > 0):
        return 0.0
    if keep.sum() < 2:
        return 1.0
    expected = expected_fractions[keep] / expected_fractions[keep].sum() * n
    stat = float(((counts[keep] - expected) ** 2 / expected).sum())
    return float(chi2.sf(stat, int(keep.sum()) - 1))


# ===================================================================== sliced Wasserstein, coverage
def _w2_squared_1d(a: FloatArray, b: FloatArray) -> float:
    """Exact squared 2-Wasserstein distance between two 1-D empirical distributions.

    ``W2^2 = int_0^1 (F^{-1}(u) - G^{-1}(u))^2 du`` with both quantile functions piecewise
    constant: equal sizes pair the sorted values; otherwise the integral runs over the merged
    breakpoints ``i / n`` and ``j / m``.
    """
    a, b = np.sort(a), np.sort(b)
    n, m = a.size, b.size
    if n == m:
        return float(np.mean((a - b) ** 2))
    cuts = np.union1d(np.arange(1, n + 1) / n, np.arange(1, m + 1) / m)
    widths = np.diff(np.concatenate([[0.0], cuts]))
    mids = cuts - 0.5 * widths
    ia = np.minimum((mids * n).astype(np.int64), n - 1)
    ib = np.minimum((mids * m).astype(np.int64), m - 1)
    return float(np.sum(widths * (a[ia] - b[ib]) ** 2))


def sliced_wasserstein(
    x: Tensor | ArrayLike,
    y: Tensor | ArrayLike,
    n_projections: int = 256,
    generator: np.random.Generator | torch.Generator | None = None,
) -> float:
    """Sliced 2-Wasserstein distance between the empirical distributions of ``x`` [n, d] and
    ``y`` [m, d]::

        SW_2(x, y) = ( E_theta W_2^2(theta^T x, theta^T y) )^{1/2},  theta ~ Unif(S^{d-1})   (S1)

    estimated with ``n_projections`` directions drawn from ``generator`` (a numpy or torch
    generator; default ``np.random.default_rng(0)``). Each 1-D distance is exact (sorted
    projections; unequal sizes integrate the quantile functions). For ``y = x + c`` the value is
    ``|c| (E (theta^T u)^2)^{1/2} = |c| / sqrt(d)`` in expectation, ``u = c / |c|``.
    """
    xa, ya = _to_numpy(x, "x"), _to_numpy(y, "y")
    for name, arr in (("x", xa), ("y", ya)):
        if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ValueError(f"{name} must have shape [n >= 1, d >= 1], got {arr.shape}")
        _check_finite(arr, name)
    if xa.shape[1] != ya.shape[1]:
        raise ValueError(f"x has dimension {xa.shape[1]} but y has dimension {ya.shape[1]}")
    if isinstance(n_projections, bool) or int(n_projections) != n_projections or n_projections < 1:
        raise ValueError(f"n_projections must be a positive integer, got {n_projections!r}")
    d = xa.shape[1]
    # 1. directions uniform on the sphere: normalised standard normal vectors
    if isinstance(generator, torch.Generator):
        g = torch.randn(int(n_projections), d, generator=generator, dtype=torch.float64).numpy()
    elif generator is None or isinstance(generator, np.random.Generator):
        rng = generator if generator is not None else np.random.default_rng(0)
        g = rng.standard_normal((int(n_projections), d))
    else:
        raise TypeError(f"generator must be a numpy or torch Generator, got {type(generator)}")
    theta = g / np.linalg.norm(g, axis=1, keepdims=True)
    # 2. project, exact 1-D W2^2 per direction, average, square root (S1)
    px, py = xa @ theta.T, ya @ theta.T
    if px.shape[0] == py.shape[0]:
        w2 = np.mean((np.sort(px, axis=0) - np.sort(py, axis=0)) ** 2, axis=0)
    else:
        w2 = np.array([_w2_squared_1d(px[:, k], py[:, k]) for k in range(theta.shape[0])])
    return float(np.sqrt(np.mean(w2)))


@dataclass(frozen=True, eq=False)
class ModeCoverage:
    """Per-mode coverage of samples from a Gaussian mixture.

    A mode ``i`` is *covered* when the fraction of samples whose most responsible component is
    ``i`` reaches ``threshold * pi_i`` (``relative=True``) or ``threshold`` (``relative=False``).
    ``coverage`` is the fraction of covered modes (1 when every mode is present).
    """

    coverage: float
    covered: NDArray[np.bool_]
    mode_fractions: FloatArray
    required_fractions: FloatArray
    threshold: float
    relative: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode_fractions", frozen_array(self.mode_fractions))
        object.__setattr__(self, "required_fractions", frozen_array(self.required_fractions))
        object.__setattr__(self, "covered", frozen_array(self.covered, dtype=bool))


def mode_coverage(
    samples: Tensor | ArrayLike,
    mixture: GaussianMixture,
    threshold: float = 0.1,
    relative: bool = True,
) -> ModeCoverage:
    """Fraction of the mixture's modes that receive at least a threshold share of ``samples``.

    Each sample is assigned to its most responsible component (as in
    :func:`mixture_sample_quality`). With ``relative=True`` (default) mode ``i`` needs a share
    ``>= threshold * pi_i`` (default: a tenth of its weight), so light modes are not held to the
    bar of heavy ones; with ``relative=False`` it needs ``>= threshold``.
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    if not isinstance(threshold, int | float) or not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold!r}")
    x = torch.tensor(_to_numpy(samples, "samples"))
    if x.ndim != 2 or x.shape[1] != mixture.dim or x.shape[0] < 1:
        raise ValueError(f"samples must have shape [n >= 1, d={mixture.dim}], got {tuple(x.shape)}")
    _check_finite(x.numpy(), "samples")
    fractions = _hard_mode_counts(x, mixture) / x.shape[0]
    required = float(threshold) * (mixture.weights if relative else np.ones(mixture.num_modes))
    covered = fractions >= required
    return ModeCoverage(
        coverage=float(covered.mean()),
        covered=covered,
        mode_fractions=fractions,
        required_fractions=required,
        threshold=float(threshold),
        relative=bool(relative),
    )
