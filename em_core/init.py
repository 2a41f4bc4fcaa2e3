"""Initial parameters: k-means++ seeding with k-means run to convergence, random rows, mclust's
model-based hierarchical agglomeration, or a warm start.

Distances use the observed cells only: for rows with missing cells the squared distance over the
observed axes is scaled by d / |o| (partial-distance k-means). Seeding and Lloyd iterations run on
a seeded subsample of at most ``max_samples`` rows; the initial mixture then comes from one pass
that assigns every row to its nearest centre (missing cells filled with the centre's values).
"""

import hashlib

import numpy as np

from ._fast_kernels import HAVE_NUMBA, run_variant
from ._kmeans_kernels import lloyd_chunks
from ._typing import FloatArray, InitMethod
from .hierarchical import Agglomeration, agglomerate
from .params import GMMParams
from .suffstats import SufficientStats, maximize

if HAVE_NUMBA:  # pragma: no branch
    from ._kmeans_kernels import lloyd_parallel, lloyd_serial, row_terms, seeding_distances


def _sq_distances(X0: FloatArray, observed: FloatArray, centers: FloatArray) -> FloatArray:
    """Partial squared distances (n, K) over observed axes, rescaled to all d axes."""
    d = X0.shape[1]
    sq = np.einsum("ij,ij->i", X0, X0)[:, None] - 2.0 * (X0 @ centers.T) + observed @ (centers**2).T
    np.maximum(sq, 0.0, out=sq)
    return sq * (d / observed.sum(axis=1))[:, None]


def _fill_center(row: FloatArray, column_means: FloatArray) -> FloatArray:
    return np.where(np.isnan(row), column_means, row)


def kmeans_plus_plus(
    X: FloatArray, n_components: int, rng: np.random.Generator, column_means: FloatArray
) -> FloatArray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, with 2 + log K local trials)."""
    n = X.shape[0]
    observed = (~np.isnan(X)).astype(np.float64)
    X0 = np.nan_to_num(X, nan=0.0)
    n_trials = 2 + int(np.log(n_components))
    centers = np.empty((n_components, X.shape[1]))
    centers[0] = _fill_center(X[rng.integers(n)], column_means)
    closest = _sq_distances(X0, observed, centers[:1])[:, 0]
    if HAVE_NUMBA:
        xx, scale = row_terms(X0, observed)  # once per seeding, not per trial
    for c in range(1, n_components):
        potential = closest.sum()
        if potential <= 0.0:
            candidates = rng.integers(n, size=n_trials)
        else:
            candidates = np.searchsorted(np.cumsum(closest), rng.random(n_trials) * potential)
            candidates = np.minimum(candidates, n - 1)
        cand_centers = np.array([_fill_center(X[i], column_means) for i in candidates])
        if HAVE_NUMBA:
            dist, potentials = seeding_distances(X0, observed, xx, scale, closest, cand_centers)
        else:
            dist = np.minimum(closest[:, None], _sq_distances(X0, observed, cand_centers))
            potentials = dist.sum(axis=0)
        best = int(np.argmin(potentials))
        centers[c] = cand_centers[best]
        closest = np.ascontiguousarray(dist[:, best])
    return centers


#: Lloyd's iterations stop when no centre coordinate moves by more than this.
LLOYD_ATOL = 1e-12


def lloyd(X: FloatArray, centers: FloatArray, n_iter: int) -> FloatArray:
    """At most ``n_iter`` Lloyd iterations on observed cells (partial distances, as
    :func:`kmeans_plus_plus`); an emptied cluster keeps its centre. Compiled
    (``_kmeans_kernels``); :func:`em_core.reference.lloyd` without numba."""
    observed = (~np.isnan(X)).astype(np.float64)
    X0 = np.nan_to_num(X, nan=0.0)
    if HAVE_NUMBA:
        start = np.array(centers, dtype=np.float64)
        nchunks = lloyd_chunks(X.shape[0])
        args = (X0, observed, start, n_iter, LLOYD_ATOL, nchunks)
        return run_variant(lloyd_parallel, lloyd_serial, args, None, nchunks)
    from . import reference

    return reference.lloyd(X, centers, n_iter)


def hard_assignment_stats(X: FloatArray, centers: FloatArray, covariance_type) -> SufficientStats:
    """Sufficient statistics of one chunk with every row assigned to its nearest centre.

    Missing cells take the centre's value, so the first covariances slightly understate the
    spread of incomplete columns (EM corrects it).
    """
    observed = (~np.isnan(X)).astype(np.float64)
    labels = np.argmin(_sq_distances(np.nan_to_num(X, nan=0.0), observed, centers), axis=1)
    return labelled_stats(X, labels, centers, covariance_type)


def labelled_stats(
    X: FloatArray, labels: np.ndarray, centers: FloatArray, covariance_type
) -> SufficientStats:
    """Sufficient statistics of rows with given hard labels, taken around ``centers``."""
    k = centers.shape[0]
    stats = SufficientStats.zeros(covariance_type, centers)
    for j in range(k):
        rows = X[labels == j]
        if rows.shape[0] == 0:
            continue
        diff = np.where(np.isnan(rows), 0.0, rows - centers[j])
        stats.nk[j] += rows.shape[0]
        stats.sx[j] += diff.sum(axis=0)
        if covariance_type in ("full", "tied"):
            stats.sxx[j] += diff.T @ diff
        else:
            stats.sxx[j] += np.sum(diff**2, axis=0)
    stats.n_samples = X.shape[0]
    return stats


def params_from_assignment(
    stats: SufficientStats, reg_covar: float, model: str | None = None, prior=None
) -> GMMParams:
    """Initial mixture of ``model`` (with ``prior``) from summed hard-assignment statistics.

    An empty cluster would have no covariance: it gets unit mass and the pooled scatter.
    """
    empty = stats.nk < 1.0
    if empty.any():
        pooled = stats.sxx.sum(axis=0) / max(stats.nk.sum(), 1.0)
        stats.nk[empty] = 1.0
        stats.sx[empty] = 0.0
        stats.sxx[empty] = pooled
    return maximize(stats, reg_covar, model, prior)


def initial_centers(
    X_sample: FloatArray,
    n_components: int,
    method: InitMethod,
    rng: np.random.Generator,
    column_means: FloatArray,
    n_lloyd: int = 300,
) -> FloatArray:
    """Centres from ``k-means++`` (seeding + Lloyd iterations until the centres stop moving, at
    most ``n_lloyd``) or ``random_from_data`` (distinct rows)."""
    if method == "k-means++":
        centers = kmeans_plus_plus(X_sample, n_components, rng, column_means)
        return lloyd(X_sample, centers, n_lloyd)
    rows = rng.choice(X_sample.shape[0], size=n_components, replace=False)
    return np.array([_fill_center(X_sample[i], column_means) for i in rows])


def labels_center(X: FloatArray, labels: np.ndarray, k: int, column_means: FloatArray):
    """Per-cluster means of the observed cells (the column mean where a cluster has none)."""
    observed = ~np.isnan(X)
    X0 = np.where(observed, X, 0.0)
    onehot = np.zeros((X.shape[0], k))
    onehot[np.arange(X.shape[0]), labels] = 1.0
    sums, counts = onehot.T @ X0, onehot.T @ observed
    return np.divide(sums, counts, out=np.tile(column_means, (k, 1)), where=counts > 0)


#: Agglomerations of recent samples: every K of a sweep is cut from one merge sequence.
_HC_CACHE: dict[str, Agglomeration] = {}
_HC_CACHE_SIZE = 8


def hierarchical_labels(X: FloatArray, n_components: int) -> np.ndarray:
    """Labels of mclust's model-based hierarchical partition of ``X`` (no NaN) into K groups;
    the agglomeration of a sample is cached and serves every K."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    key = hashlib.blake2b(X.tobytes() + repr(X.shape).encode(), digest_size=16).hexdigest()
    if key not in _HC_CACHE:
        if len(_HC_CACHE) >= _HC_CACHE_SIZE:
            _HC_CACHE.pop(next(iter(_HC_CACHE)))
        _HC_CACHE[key] = agglomerate(X, model="VVV", use="SVD")
    return _HC_CACHE[key].labels(n_components)
