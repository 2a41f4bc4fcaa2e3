"""Cholesky-based helpers for Gaussian parameters (scikit-learn's parameterisation).

Precisions are stored through triangular factors ``P`` with ``Λ = P Pᵀ`` (for ``full``/``tied``;
1/σ for ``diag``/``spherical``), so a log-density needs no inverse::

    log N(x | μ, Σ) = -½ (d log 2π + ‖(x - μ) P‖²) + Σ_j log P_jj
"""

import numpy as np

from ._typing import CovarianceType, FloatArray

LOG_2PI = float(np.log(2.0 * np.pi))


class CholeskyError(np.linalg.LinAlgError):
    """A covariance matrix is not positive definite (a component has collapsed)."""


def _precision_cholesky_of(cov: FloatArray) -> FloatArray:
    """Upper-triangular P = L⁻ᵀ with Σ = L Lᵀ, for a (..., d, d) stack.

    numpy's batched LAPACK calls, not scipy's: for the small matrices of a mixture, scipy's
    per-call BLAS dispatch can cost milliseconds when BLAS threads compete for the cores.
    """
    try:
        cov_chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError as exc:
        raise CholeskyError("covariance matrix is not positive definite") from exc
    return np.triu(np.swapaxes(np.linalg.inv(cov_chol), -1, -2))


def precision_cholesky(covariances: FloatArray, covariance_type: CovarianceType) -> FloatArray:
    """Cholesky factors of the precision matrices, shaped as ``precisions_cholesky_``.

    ``full``: (K, d, d) triangular; ``tied``: (d, d); ``diag``: (K, d) = 1/σ;
    ``spherical``: (K,) = 1/σ. Raises :class:`CholeskyError` if a covariance is not positive
    definite.
    """
    if covariance_type == "full":
        return _precision_cholesky_of(covariances)
    if covariance_type == "tied":
        return _precision_cholesky_of(covariances)
    if np.any(covariances <= 0.0):
        raise CholeskyError("a variance is not positive")
    return 1.0 / np.sqrt(covariances)


def covariances_from_precision_cholesky(
    precisions_chol: FloatArray, covariance_type: CovarianceType
) -> FloatArray:
    """Inverse of :func:`precision_cholesky`: Σ = (P Pᵀ)⁻¹ = P⁻ᵀ P⁻¹."""
    if covariance_type in ("full", "tied"):
        pc = np.asarray(precisions_chol)
        inv = np.linalg.inv(pc)  # P⁻¹, batched for full
        return np.swapaxes(inv, -1, -2) @ inv
    return 1.0 / np.square(precisions_chol)


def precisions_from_cholesky(precisions_chol: FloatArray, covariance_type: CovarianceType):
    """Precision matrices Λ = P Pᵀ (or 1/σ² for diag and spherical)."""
    if covariance_type in ("full", "tied"):
        return precisions_chol @ np.swapaxes(precisions_chol, -1, -2)
    return np.square(precisions_chol)


def full_precision_cholesky(
    precisions_chol: FloatArray, covariance_type: CovarianceType, n_components: int, n_features: int
) -> FloatArray:
    """Every covariance type's factors as a (K, d, d) stack (diagonal for diag and spherical)."""
    if covariance_type == "full":
        return precisions_chol
    if covariance_type == "tied":
        return np.broadcast_to(precisions_chol, (n_components, n_features, n_features))
    diag = np.broadcast_to(
        np.asarray(precisions_chol).reshape(n_components, -1), (n_components, n_features)
    )
    out = np.zeros((n_components, n_features, n_features))
    idx = np.arange(n_features)
    out[:, idx, idx] = diag
    return out


def log_det_precision_cholesky(
    precisions_chol: FloatArray, covariance_type: CovarianceType, n_features: int
) -> FloatArray:
    """½ log det Λ_k = Σ_j log P_k,jj for each component, shape (K,) (scalar for tied)."""
    if covariance_type == "full":
        return np.sum(np.log(np.diagonal(precisions_chol, axis1=1, axis2=2)), axis=1)
    if covariance_type == "tied":
        return float(np.sum(np.log(np.diag(precisions_chol))))
    if covariance_type == "diag":
        return np.sum(np.log(precisions_chol), axis=1)
    return n_features * np.log(precisions_chol)


def precision_cholesky_from_precisions(
    precisions: FloatArray, covariance_type: CovarianceType
) -> FloatArray:
    """Factor user-supplied precision matrices (warm start, sklearn's ``precisions_init``)."""
    if covariance_type in ("full", "tied"):
        return np.linalg.cholesky(precisions)  # lower factor L, Λ = L Lᵀ (as scikit-learn does)
    return np.sqrt(precisions)


def geometric_mean(values: FloatArray, axis: int = -1) -> FloatArray:
    """Geometric mean along ``axis``, in log space."""
    return np.exp(np.mean(np.log(values), axis=axis))
