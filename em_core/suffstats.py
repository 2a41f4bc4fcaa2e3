"""Additive sufficient statistics of one E-step and the M-step that maps them to parameters.

A chunk of rows turns into a summary that is small (independent of the number of rows) and
additive, so summaries of chunks — in memory, streamed from Parquet, or computed on workers — are
summed before one M-step. With responsibilities r_ik and, for missing cells, the conditional
moments E[x_i | x_i,obs, k] and Cov[x_i | x_i,obs, k] (zero in observed coordinates)::

    n_k   = Σ_i r_ik
    sx_k  = Σ_i r_ik (E[x_i] - c_k)
    sxx_k = Σ_i r_ik ((E[x_i] - c_k)(E[x_i] - c_k)ᵀ + Cov[x_i])

taken around a per-component shift c_k (the current means), which keeps second moments free of
cancellation. For ``diag`` and ``spherical`` only the diagonal of ``sxx`` is kept.
"""

from dataclasses import dataclass

import numpy as np

from ._typing import CovarianceType, FloatArray
from .linalg import precision_cholesky
from .models import ALIASES, Scatter, covariances_for_model
from .params import GMMParams
from .prior import Prior, PriorTerms

_EPS = 10 * np.finfo(np.float64).eps
#: With a prior, mclust fits one component by its closed forms ``mvnXII``, ``mvnXXI`` and
#: ``mvnXXX`` (spherical, diagonal, ellipsoidal), not by the models' EM steps, whose prior
#: denominators differ at G = 1; these are the models whose M-step is that closed form there.
SINGLE_COMPONENT_MODEL = {
    "EII": "VII", "VII": "VII",
    "EEI": "VVI", "VEI": "VVI", "EVI": "VVI", "VVI": "VVI",
    "EEE": "EEE", "EVE": "VVV", "VEE": "VVV", "VVE": "VVV",
    "EEV": "VVV", "VEV": "VVV", "EVV": "VVV", "VVV": "VVV",
}  # fmt: skip


@dataclass
class SufficientStats:
    """Summary of an E-step over some rows; ``a + b`` merges two summaries with the same shift."""

    covariance_type: CovarianceType
    shift: FloatArray  # (K, d)
    nk: FloatArray  # (K,)
    sx: FloatArray  # (K, d)
    sxx: FloatArray  # (K, d, d) for full/tied, (K, d) for diag/spherical
    log_likelihood: float  # Σ_i log p(x_i,obs)
    entropy: float  # -Σ_i Σ_k r_ik log r_ik
    n_samples: int

    @classmethod
    def zeros(cls, covariance_type: CovarianceType, shift: FloatArray) -> "SufficientStats":
        k, d = shift.shape
        sxx_shape = (k, d, d) if covariance_type in ("full", "tied") else (k, d)
        return cls(
            covariance_type, shift, np.zeros(k), np.zeros((k, d)), np.zeros(sxx_shape), 0.0, 0.0, 0
        )

    def __add__(self, other: "SufficientStats") -> "SufficientStats":
        if self.covariance_type != other.covariance_type or not np.array_equal(
            self.shift, other.shift
        ):
            raise ValueError("cannot merge summaries taken under different parameters")
        return SufficientStats(
            self.covariance_type,
            self.shift,
            self.nk + other.nk,
            self.sx + other.sx,
            self.sxx + other.sxx,
            self.log_likelihood + other.log_likelihood,
            self.entropy + other.entropy,
            self.n_samples + other.n_samples,
        )

    def __iadd__(self, other: "SufficientStats") -> "SufficientStats":
        if self.covariance_type != other.covariance_type:
            raise ValueError("cannot merge summaries of different covariance types")
        self.nk += other.nk
        self.sx += other.sx
        self.sxx += other.sxx
        self.log_likelihood += other.log_likelihood
        self.entropy += other.entropy
        self.n_samples += other.n_samples
        return self


def estimate_covariances(
    stats: SufficientStats, reg_covar: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """M-step moments: (nk, means, covariances) from a summed summary.

    With δ_k = sx_k / n_k: μ_k = c_k + δ_k and the scatter S_k = sxx_k / n_k − δ_k δ_kᵀ;
    full Σ_k = S_k + reg·I; tied Σ = Σ_k n_k S_k / Σ_k n_k + reg·I; diag σ²_k = diag S_k + reg;
    spherical σ²_k = mean_j diag S_k + reg. ``n_k`` gets 10·eps so empty components stay finite.
    """
    nk = stats.nk + _EPS
    delta = stats.sx / nk[:, None]
    means = stats.shift + delta
    ct = stats.covariance_type
    if ct in ("full", "tied"):
        scatter = stats.sxx / nk[:, None, None] - delta[:, :, None] * delta[:, None, :]
        d = means.shape[1]
        if ct == "full":
            cov = scatter
            cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
            cov[:, np.arange(d), np.arange(d)] += reg_covar
        else:
            cov = np.einsum("k,kij->ij", nk, scatter) / nk.sum()
            cov = 0.5 * (cov + cov.T)
            cov[np.arange(d), np.arange(d)] += reg_covar
    else:
        var = stats.sxx / nk[:, None] - delta**2 + reg_covar
        cov = var if ct == "diag" else var.mean(axis=1)
    return nk, means, cov


def scatter_of(stats: SufficientStats) -> Scatter:
    """Masses, weighted means ȳ_k and scatters W_k = sxx_k − n_k δ_k δ_kᵀ (diagonals for diag
    and spherical kernels) of a summed summary."""
    nk = stats.nk + _EPS
    delta = stats.sx / nk[:, None]
    if stats.sxx.ndim == 3:
        W = stats.sxx - nk[:, None, None] * delta[:, :, None] * delta[:, None, :]
        W = 0.5 * (W + np.swapaxes(W, 1, 2))
    else:
        W = stats.sxx - nk[:, None] * delta**2
    return Scatter(nk, stats.shift + delta, W)


def estimate_model(
    stats: SufficientStats,
    reg_covar: float,
    model: str,
    prior: Prior | None = None,
    previous: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """M-step moments (nk, means, covariances) of any of mclust's models, with or without a
    prior; covariances in the kernel's layout with ``reg_covar`` added to their diagonals.
    One component with a prior takes mclust's G = 1 closed form (:data:`SINGLE_COMPONENT_MODEL`):
    every model's structure is the same there, only the prior's denominators differ."""
    if prior is None and ALIASES.get(stats.covariance_type) == model:
        return estimate_covariances(stats, reg_covar)
    if prior is not None and stats.nk.shape[0] == 1:
        model = SINGLE_COMPONENT_MODEL[model]
    s = scatter_of(stats)
    terms = None if prior is None else PriorTerms.of(prior, model, s.nk, s.ybar)
    cov = covariances_for_model(model, s, previous=previous, prior=terms)
    cov = np.array(cov, dtype=np.float64)
    d = s.ybar.shape[1]
    if cov.ndim >= 2 and cov.shape[-1] == cov.shape[-2] == d and stats.covariance_type != "diag":
        cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
        cov[..., np.arange(d), np.arange(d)] += reg_covar
    else:
        cov += reg_covar
    means = s.ybar if terms is None else terms.means
    return s.nk, means, cov


def maximize(
    stats: SufficientStats,
    reg_covar: float,
    model: str | None = None,
    prior: Prior | None = None,
    previous: FloatArray | None = None,
) -> GMMParams:
    """M-step: new parameters from a summed summary (weights ∝ n_k) for ``model`` (default:
    the kernel's own, VVV/EEE/VVI/VII), at the posterior mode when ``prior`` is given.
    ``previous`` covariances warm-start the alternating M-steps (VEI, VEV, VEE, EVE, VVE).

    Raises :class:`em_core.linalg.CholeskyError` when a covariance is not positive definite.
    """
    model = ALIASES[stats.covariance_type] if model is None else model
    nk, means, cov = estimate_model(stats, reg_covar, model, prior, previous)
    weights = nk / nk.sum()
    prec_chol = precision_cholesky(cov, stats.covariance_type)
    return GMMParams(weights, means, prec_chol, stats.covariance_type, exact_covariances=cov)
