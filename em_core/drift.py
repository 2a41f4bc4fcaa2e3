"""Comparing two segmentations of the same customers: transitions, agreement, stability.

Pure functions on label and probability arrays, used by the nightly run to decide whether a new
model may replace the current one.
"""

import numpy as np
from scipy.special import comb

from ._typing import ArrayLike, FloatArray


def transition_matrix(
    labels_from: ArrayLike, labels_to: ArrayLike, n_from: int, n_to: int
) -> np.ndarray:
    """Counts T[j, k] of customers in segment j before and k after (hard labels).

    Rows sum to the size of each old segment, columns to each new one, the total to n.
    """
    a = np.asarray(labels_from, dtype=np.int64)
    b = np.asarray(labels_to, dtype=np.int64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("labels_from and labels_to must be 1-D arrays of the same length")
    if a.size and (a.min() < 0 or a.max() >= n_from or b.min() < 0 or b.max() >= n_to):
        raise ValueError("labels outside [0, n_from) or [0, n_to)")
    out = np.zeros((n_from, n_to), dtype=np.int64)
    np.add.at(out, (a, b), 1)
    return out


def expected_transitions(proba_from: ArrayLike, proba_to: ArrayLike) -> FloatArray:
    """Soft transition matrix E[T] = Σ_i p_before(i, ·)ᵀ p_after(i, ·).

    Each customer spreads one unit of mass over (old, new) pairs by the product of the two
    posteriors, so rows sum to the old segments' expected sizes and the total to n.
    """
    p = np.asarray(proba_from, dtype=np.float64)
    q = np.asarray(proba_to, dtype=np.float64)
    if p.ndim != 2 or q.ndim != 2 or p.shape[0] != q.shape[0]:
        raise ValueError("posteriors must be (n, K_before) and (n, K_after) with the same n")
    return p.T @ q


def adjusted_rand_index(labels_a: ArrayLike, labels_b: ArrayLike) -> float:
    """Hubert & Arabie's adjusted Rand index: 1 for identical partitions, ≈0 for random ones."""
    a = np.asarray(labels_a)
    b = np.asarray(labels_b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("label arrays must be 1-D and of the same length")
    n = a.size
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = transition_matrix(ai, bi, ai.max() + 1 if n else 0, bi.max() + 1 if n else 0)
    sum_cells = comb(table, 2).sum()
    sum_rows = comb(table.sum(axis=1), 2).sum()
    sum_cols = comb(table.sum(axis=0), 2).sum()
    total = comb(n, 2)
    if total == 0:
        return 1.0
    expected = sum_rows * sum_cols / total
    maximum = 0.5 * (sum_rows + sum_cols)
    if maximum == expected:  # both partitions trivial (one cluster, or all singletons)
        return 1.0
    return float((sum_cells - expected) / (maximum - expected))


def population_stability_index(
    reference: ArrayLike, current: ArrayLike, n_bins: int = 10, eps: float = 1e-4
) -> float:
    """PSI = Σ_b (c_b − r_b) log(c_b / r_b) over bins cut at the reference's quantiles.

    Missing values (NaN) form their own bin, so a change in missingness counts as drift.
    Shares are floored at ``eps`` so an empty bin stays finite. Rule of thumb: < 0.1 stable,
    0.1–0.25 moderate shift, > 0.25 major shift.
    """
    ref = np.asarray(reference, dtype=np.float64).ravel()
    cur = np.asarray(current, dtype=np.float64).ravel()
    if ref.size == 0 or cur.size == 0:
        raise ValueError("population_stability_index needs non-empty samples")
    ref_obs = ref[~np.isnan(ref)]
    if ref_obs.size:
        edges = np.unique(np.quantile(ref_obs, np.linspace(0, 1, n_bins + 1)[1:-1]))
    else:
        edges = np.array([])

    def shares(x: FloatArray) -> FloatArray:
        missing = np.isnan(x)
        counts = np.bincount(
            np.searchsorted(edges, x[~missing], side="right"), minlength=edges.size + 1
        )
        counts = np.append(counts, missing.sum())
        return np.maximum(counts / x.size, eps)

    r, c = shares(ref), shares(cur)
    return float(np.sum((c - r) * np.log(c / r)))
