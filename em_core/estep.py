"""E-step kernels: log-densities, responsibilities and sufficient statistics for a chunk of rows.

Missing cells (NaN) are latent. For a row with observed coordinates o and missing m, under
component k with mean μ and precision Λ = P Pᵀ (Ghahramani & Jordan 1994)::

    x_m | x_o, k  ~  N(μ_m − Λ_mm⁻¹ Λ_mo (x_o − μ_o),  Λ_mm⁻¹)
    log N(x_o | μ_o, Σ_oo) = −½|o| log 2π + ½ log det Λ − ½ log det Λ_mm − ½ ‖(x̂ − μ) P‖²

where x̂ is x with its missing cells set to the conditional mean: filling the missing cells that
way minimises the full quadratic form, which then equals the marginal Mahalanobis distance of x_o,
and log det Σ_oo = log det Σ + log det Λ_mm (Schur complement). Only Λ_mm (|m| × |m|, small) is
factorised, once per missingness pattern and component, and the per-row work is the same
``(x̂ − μ) P`` product as for complete rows. ``diag`` and ``spherical`` need no factorisation at
all: missing axes simply drop out of the sums, which is done with masked matrix products.
"""

import numpy as np

from ._fast_incomplete import HAVE_NUMBA, incomplete_log_resp, incomplete_stats
from ._fast_kernels import complete_log_resp, complete_stats
from ._typing import FloatArray
from .linalg import LOG_2PI
from .params import GMMParams
from .suffstats import SufficientStats


def logsumexp_rows(a: FloatArray) -> FloatArray:
    """log Σ_k exp(a_ik) per row, stable for large negative entries."""
    amax = np.max(a, axis=1, keepdims=True)
    amax[~np.isfinite(amax)] = 0.0
    with np.errstate(under="ignore", divide="ignore"):
        out = np.log(np.sum(np.exp(a - amax), axis=1))
    return out + amax[:, 0]


#: Rows with missing cells go to the fused numba kernels of ``_fast_incomplete``; without numba
#: (or with this switched off) to :mod:`em_core.reference` (masked products, per-pattern einsums).
USE_FAST_INCOMPLETE = HAVE_NUMBA


# --------------------------------------------------------------------------- complete rows
def _add_kernel_stats(
    kernel, X: FloatArray, params: GMMParams, stats: SufficientStats, **options
) -> None:
    """Run a fused numba kernel (``complete_stats`` for rows without NaN, ``incomplete_stats``
    for rows with missing cells) on a chunk and add its moments to ``stats``; the parameters'
    kernel layout is made once per parameter set (``params.complete_layout``, …), not per
    chunk."""
    layout = params.incomplete_layout if kernel is incomplete_stats else params.complete_layout
    nk, sx, sxx, ll, ent = kernel(
        X, params.log_weights, params.means, params.precisions_chol, params.covariance_type,
        stats.shift, layout=layout, **options,
    )  # fmt: skip
    stats.nk += nk
    stats.sx += sx
    stats.sxx += sxx
    stats.log_likelihood += ll
    stats.entropy += ent
    stats.n_samples += X.shape[0]


def _may_have_nan(X: FloatArray) -> bool:
    """False only if ``X`` has no NaN. One ``ddot`` of X with itself (NaN propagates through
    every product and sum) is 3x faster than ``np.isnan(X).any()``, which allocates an (n, d)
    mask; a True (NaN, or ±inf cancelling) sends the chunk on to the exact mask."""
    if not X.flags.c_contiguous or X.dtype != np.float64:
        return True
    flat = X.reshape(-1)
    return bool(np.isnan(np.dot(flat, flat)))


def _complete_weighted_log_prob(X: FloatArray, params: GMMParams) -> FloatArray:
    lpn, log_resp = complete_log_resp(
        X, params.log_weights, params.means, params.precisions_chol, params.covariance_type,
        layout=params.complete_layout,
    )  # fmt: skip
    return log_resp + lpn[:, None]


# --------------------------------------------------------------------------- full / tied patterns
def _pattern_factors(params: GMMParams, missing: np.ndarray):
    """Per-pattern factors, cached on ``params``: (obs idx, miss idx, A, C, ½ log det Λ_mm).

    A_k = Λ_k,mm⁻¹ Λ_k,mo (|m| × |o|), C_k = Λ_k,mm⁻¹ (conditional covariance of x_m).
    """
    key = missing.tobytes()
    cache = params._cache.setdefault("patterns", {})
    hit = cache.get(key)
    if hit is not None:
        return hit
    mis = np.flatnonzero(missing)
    obs = np.flatnonzero(~missing)
    lam = params.full_precisions
    lam_mm = lam[:, mis[:, None], mis[None, :]]
    lam_mo = lam[:, mis[:, None], obs[None, :]]
    chol = np.linalg.cholesky(lam_mm)
    cond_cov = np.linalg.inv(lam_mm)
    cond_cov = 0.5 * (cond_cov + np.swapaxes(cond_cov, 1, 2))
    a = cond_cov @ lam_mo
    half_logdet_mm = np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
    cache[key] = out = (obs, mis, a, cond_cov, half_logdet_mm)
    return out


def pattern_terms(Xg: FloatArray, missing: np.ndarray, params: GMMParams):
    """For rows sharing one missingness pattern (at least one missing cell).

    Returns ``(log_prob (n, K), diff (n, K, d), cond_cov (K, |m|, |m|), mis)`` where
    ``diff[i, k] = x̂_ik − μ_k`` with the conditional mean in the missing coordinates. Works for
    every covariance type (diag and spherical through their diagonal factors).
    """
    obs, mis, a, cond_cov, half_logdet_mm = _pattern_factors(params, missing)
    means = params.means
    delta_o = Xg[:, None, obs] - means[None, :, obs]  # (n, K, |o|)
    diff = np.empty((Xg.shape[0], params.n_components, params.n_features))
    diff[:, :, obs] = delta_o
    diff[:, :, mis] = -np.einsum("nko,kmo->nkm", delta_o, a)
    y = np.einsum("nkd,kde->nke", diff, params.full_precisions_chol)
    maha = np.einsum("nke,nke->nk", y, y)
    log_prob = -0.5 * (obs.size * LOG_2PI + maha) + (params.log_det_half - half_logdet_mm)
    return log_prob, diff, cond_cov, mis


# --------------------------------------------------------------------------- pattern grouping
def pattern_keys(missing: np.ndarray) -> np.ndarray:
    """One sortable key per row identifying its missingness pattern."""
    d = missing.shape[1]
    if d <= 62:
        return missing.astype(np.int64) @ (np.int64(1) << np.arange(d, dtype=np.int64))
    packed = np.packbits(missing, axis=1)
    return np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1]))).ravel()


def group_by_pattern(missing: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(row indices, missing mask of the pattern)] for the rows of a chunk."""
    keys = pattern_keys(missing)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    cuts = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    groups = np.split(order, cuts)
    return [(rows, missing[rows[0]]) for rows in groups]


# --------------------------------------------------------------------------- public chunk kernels
def _responsibilities(weighted_log_prob: FloatArray):
    lse = logsumexp_rows(weighted_log_prob)
    log_resp = weighted_log_prob - lse[:, None]
    with np.errstate(under="ignore"):
        resp = np.exp(log_resp)
    entropy = -float(np.sum(resp * np.where(resp > 0, log_resp, 0.0)))
    return lse, resp, entropy


def weighted_log_prob(X: FloatArray, params: GMMParams) -> FloatArray:
    """log w_k + log p(x_i,obs | k) for any chunk (NaN = missing), shape (n, K)."""
    missing = np.isnan(X)
    if not missing.any():
        return _complete_weighted_log_prob(X, params)
    if USE_FAST_INCOMPLETE:
        lpn, log_resp = incomplete_log_resp(
            X, params.log_weights, params.means, params.precisions_chol, params.covariance_type,
            layout=params.incomplete_layout,
        )  # fmt: skip
        return log_resp + lpn[:, None]
    from .reference import weighted_log_prob_incomplete

    return weighted_log_prob_incomplete(X, missing, params)


def summarize(
    X: FloatArray,
    params: GMMParams,
    stats: SufficientStats | None = None,
    *,
    incomplete_path: bool = False,
    known_complete: bool = False,
    known_incomplete: bool = False,
    pattern_sorted: bool = False,
) -> SufficientStats:
    """E-step over one chunk of rows: add its sufficient statistics to ``stats`` (or new ones).

    The statistics are taken around the current means (``stats.shift = params.means``).
    ``incomplete_path=True`` sends complete rows through the missing-data kernels too (they must
    agree with the complete-data ones; the tests use it). ``known_complete=True`` (the source
    checked once that it holds no NaN) skips the per-chunk NaN scan, ≈10 % of an iteration, and
    so does ``known_incomplete=True`` (the source checked once that every chunk holds a NaN);
    ``pattern_sorted=True`` (the chunk's rows come grouped by missingness pattern, in ascending
    :func:`pattern_keys` order, so complete rows first) skips the missing-data kernel's own
    ordering check, and the chunk is complete exactly when its last row is.
    """
    if stats is None:
        stats = SufficientStats.zeros(params.covariance_type, params.means)
    if pattern_sorted:
        complete = X.shape[0] == 0 or not np.isnan(X[-1]).any()
    elif known_incomplete:
        complete = False
    else:
        complete = known_complete or not _may_have_nan(X)
    if not incomplete_path and complete:
        _add_kernel_stats(complete_stats, X, params, stats)
        return stats
    if USE_FAST_INCOMPLETE:  # handles complete rows too: no (n, d) mask needed
        _add_kernel_stats(incomplete_stats, X, params, stats, presorted=pattern_sorted)
        return stats
    from .reference import summarize_incomplete

    return summarize_incomplete(X, params, stats, incomplete_path)
