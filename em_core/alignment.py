"""Label alignment between two fitted mixtures, for segment ids that stay stable across refits."""

import numpy as np

from ._typing import ArrayLike, FloatArray


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


def segment_distances(
    gm, segments: list[int], reference=None, reference_segments: list[int] | None = None
) -> tuple[FloatArray, FloatArray]:
    """Bhattacharyya distances between the segments of two fitted mixtures, each segment (a
    group of components, ``segments[k]`` = 0..S−1) summarised by its moment-matched Gaussian
    (:func:`em_core.merging.segment_moments`). Returns the (S_gm, S_reference) distances (no
    columns without a reference) and the means of ``gm``'s segments."""
    from .merging import segment_moments

    _, means, covs = segment_moments(gm.weights_, gm.means_, _full_covariances(gm), segments)
    if reference is None:
        return np.empty((means.shape[0], 0)), means
    _, ref_means, ref_covs = segment_moments(
        reference.weights_, reference.means_, _full_covariances(reference), reference_segments
    )
    out = np.empty((means.shape[0], ref_means.shape[0]))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = bhattacharyya(means[i], covs[i], ref_means[j], ref_covs[j])
    return out, means


def align_labels(gm, reference) -> np.ndarray:
    """Permutation mapping ``gm``'s components onto ``reference``'s.

    ``perm[i]`` is the reference component matched to component i of ``gm``, by the Hungarian
    assignment minimising the total Bhattacharyya distance; with more components in ``gm`` than
    in ``reference``, the unmatched ones get −1. ``gm.predict(X)`` relabelled as
    ``perm[gm.predict(X)]`` then speaks the reference's ids.
    """
    from scipy.optimize import linear_sum_assignment  # on first use: slow to import

    cost = component_distances(gm, reference)
    rows, cols = linear_sum_assignment(cost)
    perm = np.full(cost.shape[0], -1, dtype=np.int64)
    perm[rows] = cols
    return perm


def match_segments(proba_new: ArrayLike, proba_old: ArrayLike) -> tuple[np.ndarray, FloatArray]:
    """Match tonight's segments to the champion's by where their customers come from.

    ``proba_new`` (n, S_new) and ``proba_old`` (n, S_old) are the segment posteriors of the same
    n customers under tonight's and the champion's model (each a mixture of any number of
    components, so no distance between single Gaussians applies). The expected transitions
    T = P_newᵀ P_old (:func:`em_core.drift.expected_transitions`) count how many of new segment
    i's customers the champion put in segment j. i continues j when the match is a **mutual
    majority**: more than half of i's mass comes from j and more than half of j's mass goes to
    i. Such pairs are one-to-one by construction; a split, a merge or a new group of customers
    leaves the segments involved unmatched (new ids, retired ids) instead of guessing.

    Returns ``match`` (S_new,), the champion segment of each new one or −1, and ``T``.
    """
    p = np.asarray(proba_new, dtype=np.float64)
    q = np.asarray(proba_old, dtype=np.float64)
    if p.ndim != 2 or q.ndim != 2 or p.shape[0] != q.shape[0]:
        raise ValueError("posteriors must be (n, S_new) and (n, S_old) with the same n")
    transitions = p.T @ q
    from_share = transitions / np.maximum(transitions.sum(axis=1, keepdims=True), 1e-300)
    to_share = transitions / np.maximum(transitions.sum(axis=0, keepdims=True), 1e-300)
    match = np.full(p.shape[1], -1, dtype=np.int64)
    for i, j in zip(*np.nonzero((from_share > 0.5) & (to_share > 0.5)), strict=True):
        match[i] = j
    return match, transitions
