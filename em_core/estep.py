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
#: (or with this switched off) to the numpy code below (masked products, per-pattern einsums).
USE_FAST_INCOMPLETE = HAVE_NUMBA


# --------------------------------------------------------------------------- complete rows
def _add_kernel_stats(
    kernel, X: FloatArray, params: GMMParams, stats: SufficientStats, **options
) -> None:
    """Run a fused numba kernel (``complete_stats`` for rows without NaN, ``incomplete_stats``
    for rows with missing cells) on a chunk and add its moments to ``stats``."""
    nk, sx, sxx, ll, ent = kernel(
        X, params.log_weights, params.means, params.precisions_chol, params.covariance_type,
        stats.shift, **options,
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
        X, params.log_weights, params.means, params.precisions_chol, params.covariance_type
    )
    return log_resp + lpn[:, None]


# --------------------------------------------------------------------------- diag / spherical
def _log_prob_masked_diag(X0: FloatArray, observed: FloatArray, params: GMMParams) -> FloatArray:
    """Marginal log-densities for diag/spherical: sums over observed axes only (X0 has 0 at NaN)."""
    prec = 1.0 / params.diag_variances
    means = params.means
    log_pc = 0.5 * np.log(prec)
    maha = observed @ (means**2 * prec).T - 2.0 * (X0 @ (means * prec).T) + (X0**2) @ prec.T
    n_obs = observed.sum(axis=1)
    return -0.5 * (n_obs[:, None] * LOG_2PI + maha) + observed @ log_pc.T


def _stats_masked_diag(X0, observed, resp, params: GMMParams, stats: SufficientStats):
    """E[x] = x on observed axes, μ_k on missing ones; E[(x−c)²] adds σ²_k on missing axes."""
    c = stats.shift
    rk = resp.sum(axis=0)
    r_obs = resp.T @ observed  # Σ r over rows where the axis is observed, (K, d)
    r_x = resp.T @ X0
    mu, var = params.means, params.diag_variances
    stats.nk += rk
    # missing axes contribute r·(μ − c) and r·((μ − c)² + σ²)
    r_mis = rk[:, None] - r_obs
    stats.sx += r_x - c * r_obs + r_mis * (mu - c)
    stats.sxx += resp.T @ (X0**2) - 2.0 * c * r_x + c**2 * r_obs + r_mis * ((mu - c) ** 2 + var)


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


def _stats_pattern(diff, cond_cov, mis, resp, params: GMMParams, stats: SufficientStats):
    rk = resp.sum(axis=0)
    stats.nk += rk
    diff = diff + (params.means - stats.shift)  # x̂ − c
    stats.sx += np.einsum("nk,nkd->kd", resp, diff)
    stats.sxx += np.einsum("nk,nkd,nke->kde", resp, diff, diff)
    stats.sxx[:, mis[:, None], mis[None, :]] += rk[:, None, None] * cond_cov


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
            X, params.log_weights, params.means, params.precisions_chol, params.covariance_type
        )
        return log_resp + lpn[:, None]
    if params.covariance_type in ("diag", "spherical"):
        observed = (~missing).astype(np.float64)
        return _log_prob_masked_diag(np.where(missing, 0.0, X), observed, params) + (
            params.log_weights
        )
    out = np.empty((X.shape[0], params.n_components))
    for rows, mis in group_by_pattern(missing):
        if not mis.any():
            out[rows] = _complete_weighted_log_prob(X[rows], params)
        else:
            out[rows] = pattern_terms(X[rows], mis, params)[0] + params.log_weights
    return out


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
    missing = np.isnan(X)
    ct = params.covariance_type
    if not missing.any() and not incomplete_path:
        groups = [(slice(None), None)]
    elif ct in ("diag", "spherical"):
        groups = [(slice(None), "masked")]
    else:
        groups = group_by_pattern(missing)
    for rows, mis in groups:
        Xg = X[rows]
        if mis is None or (not incomplete_path and isinstance(mis, np.ndarray) and not mis.any()):
            _add_kernel_stats(complete_stats, Xg, params, stats)
            continue
        if isinstance(mis, str):
            observed = (~missing).astype(np.float64)
            X0 = np.where(missing, 0.0, Xg)
            wlp = _log_prob_masked_diag(X0, observed, params) + params.log_weights
            lse, resp, ent = _responsibilities(wlp)
            _stats_masked_diag(X0, observed, resp, params, stats)
        else:
            lp, diff, cond_cov, mis_idx = pattern_terms(Xg, mis, params)
            lse, resp, ent = _responsibilities(lp + params.log_weights)
            _stats_pattern(diff, cond_cov, mis_idx, resp, params, stats)
        stats.log_likelihood += float(lse.sum())
        stats.entropy += ent
        stats.n_samples += Xg.shape[0]
    return stats
