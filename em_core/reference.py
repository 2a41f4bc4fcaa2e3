"""numpy references of em_core's compiled kernels.

Each function here computes what a numba kernel computes, written plainly in numpy: the tests
compare the two (bitwise where the summation order is the same, else to ~1e-10), and without
numba (``EM_CORE_DISABLE_NUMBA=1``, or numba not installed) em_core runs these instead.

- complete-data E-step and statistics (:mod:`em_core._fast_kernels`): ``complete_stats``,
  ``complete_log_resp``, same chunks and blocks as the kernel;
- missing-data E-step (:mod:`em_core._fast_incomplete`): ``summarize_incomplete``,
  ``weighted_log_prob_incomplete`` (masked sums for diag/spherical, one conditional Gaussian per
  missingness pattern for full/tied);
- iterative M-steps (:mod:`em_core._mstep_kernels`): ``volumes_and_shape_iterations`` (VEI,
  VEV), ``vee_iterations`` (VEE), ``orientation_iterations`` (EVE, VVE);
- Lloyd's k-means iterations of the k-means++ start (:mod:`em_core._kmeans_kernels`): ``lloyd``;
- the hierarchical start's merge loop (:mod:`em_core._hierarchical_kernels`):
  ``merge_sequence``.
"""

import numpy as np

from ._fast_kernels import DIAGONAL, FULL, TIED, _finish_stats, _stats_buffers, n_chunks
from ._fast_kernels import complete_stats as fast_complete_stats
from ._typing import FloatArray
from .estep import (
    _add_kernel_stats,
    _complete_weighted_log_prob,
    _responsibilities,
    group_by_pattern,
    pattern_terms,
)
from .linalg import LOG_2PI, geometric_mean
from .params import GMMParams
from .suffstats import SufficientStats


# ----------------------------------------------------------------------- complete-data E-step
def _block_log_prob(Xb, const, means, P, Pd, mP, mode):
    nb = Xb.shape[0]
    K = const.shape[0]
    L = np.empty((nb, K))
    if mode == TIED:
        Y0 = Xb @ P[0]
    for k in range(K):
        if mode == FULL:
            y = (Xb - means[k]) @ P[k]
        elif mode == TIED:
            y = Y0 - mP[k]
        else:
            y = (Xb - means[k]) * Pd[k]
        L[:, k] = const[k] - 0.5 * np.einsum("ij,ij->i", y, y)
    return L


def _block_log_resp(L):
    with np.errstate(under="ignore", divide="ignore", invalid="ignore"):
        m = L.max(axis=1, keepdims=True)
        lpn = (m + np.log(np.exp(L - m).sum(axis=1, keepdims=True)))[:, 0]
        log_resp = L - lpn[:, None]
    return lpn, log_resp


def complete_stats(X, layout, shift, block):
    """:func:`em_core._fast_kernels.complete_stats` in blocked numpy (BLAS products), on the
    parameters in the kernel's ``layout``: the same chunks and blocks, so the same summation
    order."""
    const, means, P, Pd, mP, mode, _tri, _order = layout
    n, d = X.shape
    K = const.shape[0]
    nchunks = n_chunks(n, block)
    n_blocks = max(1, -(-n // block))
    bpc = -(-n_blocks // nchunks)
    nk, sx, sxx = _stats_buffers(nchunks, K, d, mode, True)
    ll = np.zeros(nchunks)
    ent = np.zeros(nchunks)
    for c in range(nchunks):
        start = c * bpc * block
        stop = min(n, start + bpc * block)
        for b0 in range(start, stop, block):
            Xb = X[b0 : min(b0 + block, stop)]
            lpn, log_resp = _block_log_resp(_block_log_prob(Xb, const, means, P, Pd, mP, mode))
            with np.errstate(under="ignore"):
                R = np.exp(log_resp)
            ll[c] += lpn.sum()
            with np.errstate(invalid="ignore"):
                ent[c] -= np.where(R > 0.0, R * log_resp, 0.0).sum()
            nk[c] += R.sum(axis=0)
            for k in range(K):
                Z = Xb - shift[k]
                W = Z * R[:, k : k + 1]
                sx[c, k] += W.sum(axis=0)
                if mode == DIAGONAL:
                    sxx[c, k, :, 0] += np.einsum("ij,ij->j", W, Z)
                else:
                    sxx[c, k] += np.triu(W.T @ Z)
    return _finish_stats(nk, sx, sxx, ll, ent, mode)


def complete_log_resp(X, layout, block):
    """:func:`em_core._fast_kernels.complete_log_resp` in blocked numpy."""
    const, means, P, Pd, mP, mode, _tri, _order = layout
    n = X.shape[0]
    K = const.shape[0]
    lpn = np.empty(n)
    lr = np.empty((n, K))
    for b0 in range(0, n, block):
        Xb = X[b0 : b0 + block]
        lpn[b0 : b0 + block], lr[b0 : b0 + block] = _block_log_resp(
            _block_log_prob(Xb, const, means, P, Pd, mP, mode)
        )
    return lpn, lr


# ----------------------------------------------------------------------- missing-data E-step
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


def _stats_pattern(diff, cond_cov, mis, resp, params: GMMParams, stats: SufficientStats):
    rk = resp.sum(axis=0)
    stats.nk += rk
    diff = diff + (params.means - stats.shift)  # x̂ − c
    stats.sx += np.einsum("nk,nkd->kd", resp, diff)
    stats.sxx += np.einsum("nk,nkd,nke->kde", resp, diff, diff)
    stats.sxx[:, mis[:, None], mis[None, :]] += rk[:, None, None] * cond_cov


def weighted_log_prob_incomplete(
    X: FloatArray, missing: np.ndarray, params: GMMParams
) -> FloatArray:
    """:func:`em_core.estep.weighted_log_prob` of a chunk with missing cells (``missing`` its
    NaN mask), in numpy."""
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


def summarize_incomplete(
    X: FloatArray, params: GMMParams, stats: SufficientStats, incomplete_path: bool
) -> SufficientStats:
    """:func:`em_core.estep.summarize` of a chunk that may hold missing cells, in numpy: masked
    sums for diag/spherical, one conditional Gaussian per missingness pattern for full/tied
    (complete rows through the complete-data kernel unless ``incomplete_path``)."""
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
            _add_kernel_stats(fast_complete_stats, Xg, params, stats)
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


# ----------------------------------------------------------------------- iterative M-steps
def _alternate(update, state, scale_of, tol, max_iter):
    """Apply ``update`` until the relative change of ``scale_of(state)`` is below ``tol``."""
    prev = scale_of(state)
    for _ in range(max_iter):
        state = update(state)
        now = scale_of(state)
        if np.max(np.abs(now - prev) / (1.0 + np.abs(now))) <= tol:
            break
        prev = now
    return state


def volumes_and_shape_iterations(
    values: FloatArray, vol_den: FloatArray, lam: FloatArray, tol: float, max_iter: int
) -> tuple[FloatArray, FloatArray]:
    """The volumes-and-shape alternation in numpy: the reference of the compiled
    :func:`em_core._mstep_kernels.volumes_and_shape_iterations`; returns (λ, A)."""

    def shape_for(lam):
        a = np.sum(values / lam[:, None], axis=0)
        return a / geometric_mean(a)

    def step(lam):
        a = shape_for(lam)
        return np.sum(values / a[None, :], axis=1) / vol_den

    lam = _alternate(step, lam, lambda v: v, tol, max_iter)
    return lam, shape_for(lam)


def vee_iterations(
    W: FloatArray, nk: FloatArray, lam: FloatArray, tol: float, max_iter: int
) -> tuple[FloatArray, FloatArray]:
    """The VEE alternation in numpy: the reference of the compiled
    :func:`em_core._mstep_kernels.vee_iterations`; returns (λ, C)."""
    d = W.shape[1]

    def shape_for(lam):
        c = np.einsum("kij,k->ij", W, 1.0 / lam)
        return c / np.exp(np.linalg.slogdet(c)[1] / d)

    def step(lam):
        c_inv = np.linalg.inv(shape_for(lam))
        return np.einsum("kij,ji->k", W, c_inv) / (nk * d)

    lam = _alternate(step, lam, lambda v: v, tol, max_iter)
    return lam, shape_for(lam)


def _common_orientation(
    W: FloatArray, inv_shapes: FloatArray, O: FloatArray, omega: FloatArray
) -> FloatArray:
    """One pair of Browne & McNicholas (2014) MM steps for O (rows = axes, Σ_k ∝ Oᵀ A_k O)
    lowering Σ_k tr(O W_k Oᵀ A_k⁻¹); omega_k = largest eigenvalue of W_k."""
    F = np.einsum("kj,jl,kli->ji", inv_shapes, O, W) - np.einsum(
        "k,kj,jl->jl", omega, inv_shapes, O
    )
    P, _, Qt = np.linalg.svd(F)
    O = (P @ Qt).T
    WO = W @ O
    alpha = inv_shapes.max(axis=1)
    F = np.einsum("kij,kj->ij", WO, inv_shapes) - np.einsum("k,kij->ij", alpha, WO)
    P, _, Qt = np.linalg.svd(F)
    return (P @ Qt).T


def orientation_iterations(
    W: FloatArray,
    nk: FloatArray,
    O: FloatArray,
    omega: FloatArray,
    equal_volume: bool,
    tol: float,
    max_iter: int,
) -> tuple[FloatArray, FloatArray]:
    """The MM loop of the common orientation in numpy: the reference of the compiled
    :func:`em_core._mstep_kernels.orientation_iterations`; returns (O, shapes)."""

    def shapes_for(O):
        diag = np.einsum("ij,kjl,il->ki", O, W, O)  # diag(O W_k Oᵀ)
        if equal_volume:
            return diag / geometric_mean(diag)[:, None]
        return diag / nk[:, None]  # λ_k A_k, unnormalised

    def target(O, shapes):
        return float(np.sum(np.einsum("ij,kjl,il->ki", O, W, O) / shapes))

    shapes = shapes_for(O)
    prev = target(O, shapes)
    for _ in range(max_iter):
        O = _common_orientation(W, 1.0 / shapes, O, omega)
        shapes = shapes_for(O)
        now = target(O, shapes)
        if abs(now - prev) / (1.0 + abs(now)) <= tol:
            break
        prev = now
    return O, shapes


# ----------------------------------------------------------------------- k-means start
def lloyd(X: FloatArray, centers: FloatArray, n_iter: int) -> FloatArray:
    """Lloyd's iterations in numpy: the reference of the compiled
    ``_lloyd_kernel`` of :mod:`em_core._kmeans_kernels` (the same stopping rule, ``LLOYD_ATOL``)."""
    from . import init

    observed = (~np.isnan(X)).astype(np.float64)
    X0 = np.nan_to_num(X, nan=0.0)
    centers = centers.copy()
    for _ in range(n_iter):
        labels = np.argmin(init._sq_distances(X0, observed, centers), axis=1)
        onehot = np.zeros((X.shape[0], centers.shape[0]))
        onehot[np.arange(X.shape[0]), labels] = 1.0
        sums = onehot.T @ X0
        counts = onehot.T @ observed
        new = np.divide(sums, counts, out=centers.copy(), where=counts > 0)
        if np.allclose(new, centers, rtol=0.0, atol=init.LLOYD_ATOL):
            break
        centers = new
    return centers


# ----------------------------------------------------------------------- hierarchical start
class _Groups:
    """Sizes, means and scatters of the current groups, and their VVV / EII terms."""

    def __init__(self, Z: FloatArray, counts: FloatArray, model: str, alpha: float) -> None:
        m, p = Z.shape
        self.p, self.model, self.alpha = p, model, alpha
        self.n = counts.astype(float)
        self.mean = Z.copy()
        self.W = np.zeros((m, p, p)) if model == "VVV" else None
        self.trace = np.zeros(m)
        self.term = self._term(self.n, self.W, self.trace)

    def _term(self, n: FloatArray, W: FloatArray | None, trace: FloatArray) -> FloatArray:
        if self.model == "EII":
            return trace
        inner = (trace + self.alpha) / n
        big = n > self.p
        if np.any(big):
            sign, logdet = np.linalg.slogdet(W[big] / n[big, None, None])
            inner[big] += np.where(sign > 0, np.exp(logdet), 0.0)
        return n * np.log(inner)

    def merge_costs(self, a: int, others: np.ndarray) -> FloatArray:
        """t(C_a ∪ C_b) − t(C_a) − t(C_b) for every b in ``others``."""
        na, nb = self.n[a], self.n[others]
        n = na + nb
        diff = self.mean[others] - self.mean[a]
        f = na * nb / n
        trace = self.trace[a] + self.trace[others] + f * np.einsum("ij,ij->i", diff, diff)
        W = None
        if self.model == "VVV":
            W = self.W[a] + self.W[others] + f[:, None, None] * diff[:, :, None] * diff[:, None, :]
        return self._term(n, W, trace) - self.term[a] - self.term[others]

    def merge(self, a: int, b: int) -> None:
        """Fold group b into group a."""
        na, nb = self.n[a], self.n[b]
        n = na + nb
        diff = self.mean[b] - self.mean[a]
        f = na * nb / n
        if self.W is not None:
            self.W[a] = self.W[a] + self.W[b] + f * np.outer(diff, diff)
        self.trace[a] += self.trace[b] + f * float(diff @ diff)
        self.mean[a] = (na * self.mean[a] + nb * self.mean[b]) / n
        self.n[a] = n
        W = None if self.W is None else self.W[a : a + 1]
        self.term[a] = self._term(self.n[a : a + 1], W, self.trace[a : a + 1])[0]


def merge_sequence(Z: FloatArray, counts: np.ndarray, model: str, alpha: float) -> np.ndarray:
    """(a, b) of each merge in order, b folded into a, over the m distinct rows ``Z`` (numpy;
    the compiled ``_hierarchical_kernels.merge_sequence`` makes the same merges)."""
    m = Z.shape[0]
    groups = _Groups(Z, counts, model, alpha)
    merges = np.empty((max(m - 1, 0), 2), dtype=np.int64)
    alive = np.ones(m, dtype=bool)
    cost = np.full((m, m), np.inf)
    for a in range(m - 1):
        cost[a, a + 1 :] = groups.merge_costs(a, np.arange(a + 1, m))
        cost[a + 1 :, a] = cost[a, a + 1 :]
    best = np.argmin(cost, axis=1) if m > 1 else np.zeros(1, dtype=int)
    for step in range(m - 1):
        rows = np.flatnonzero(alive)
        i = rows[np.argmin(cost[rows, best[rows]])]
        a, b = min(i, best[i]), max(i, best[i])
        groups.merge(a, b)
        merges[step] = a, b
        alive[b] = False
        cost[b, :] = cost[:, b] = np.inf
        others = np.flatnonzero(alive)
        others = others[others != a]
        if others.size:
            cost[a, others] = cost[others, a] = groups.merge_costs(a, others)
        stale = (best[others] == a) | (best[others] == b)
        if stale.any():
            best[others[stale]] = np.argmin(cost[others[stale]], axis=1)
        rest = others[~stale]
        now = cost[rest, best[rest]]
        closer = (cost[rest, a] < now) | ((cost[rest, a] == now) & (a < best[rest]))
        best[rest[closer]] = a
        best[a] = np.argmin(cost[a]) if others.size else a
    return merges
