"""Label alignment between two fitted mixtures, for segment ids that stay stable across refits."""

import numpy as np
from scipy.optimize import linear_sum_assignment

from ._typing import FloatArray


def _full_covariances(gm) -> FloatArray:
    p = gm._check_fitted()
    cov = np.linalg.inv(p.full_precisions)
    return 0.5 * (cov + np.swapaxes(cov, 1, 2))


def bhattacharyya(mean1, cov1, mean2, cov2) -> float:
    """Bhattacharyya distance between N(μ1, Σ1) and N(μ2, Σ2), with Σ = (Σ1 + Σ2)/2::

    D_B = ⅛ (μ1 − μ2)ᵀ Σ⁻¹ (μ1 − μ2) + ½ log(det Σ / √(det Σ1 det Σ2))
    """
    cov = 0.5 * (cov1 + cov2)
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, mean1 - mean2)
    logdet = 2.0 * np.sum(np.log(np.diag(chol)))
    logdet1 = np.linalg.slogdet(cov1)[1]
    logdet2 = np.linalg.slogdet(cov2)[1]
    return float(0.125 * z @ z + 0.5 * (logdet - 0.5 * (logdet1 + logdet2)))


def component_distances(gm, reference) -> FloatArray:
    """Bhattacharyya distances between every component of ``gm`` and of ``reference``,
    shape (K_gm, K_reference). Both models must have the same number of features."""
    if gm.means_.shape[1] != reference.means_.shape[1]:
        raise ValueError(
            f"models have different numbers of features: {gm.means_.shape[1]} and "
            f"{reference.means_.shape[1]}"
        )
    cov_a, cov_b = _full_covariances(gm), _full_covariances(reference)
    out = np.empty((gm.means_.shape[0], reference.means_.shape[0]))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = bhattacharyya(gm.means_[i], cov_a[i], reference.means_[j], cov_b[j])
    return out


def align_labels(gm, reference) -> np.ndarray:
    """Permutation mapping ``gm``'s components onto ``reference``'s.

    ``perm[i]`` is the reference component matched to component i of ``gm``, by the Hungarian
    assignment minimising the total Bhattacharyya distance; with more components in ``gm`` than
    in ``reference``, the unmatched ones get −1. ``gm.predict(X)`` relabelled as
    ``perm[gm.predict(X)]`` then speaks the reference's ids.
    """
    cost = component_distances(gm, reference)
    rows, cols = linear_sum_assignment(cost)
    perm = np.full(cost.shape[0], -1, dtype=np.int64)
    perm[rows] = cols
    return perm
