"""The model-based agglomeration's merge loop compiled (numba): the same greedy merges as the
numpy reference :func:`em_core.reference.merge_sequence`, without its
per-merge allocations of (m, d, d) scatter stacks.

A group C with n points, scatter W and trace t contributes (VVV, mclust's regularised form)
t(C) = n · log([n > p] · det(W / n) + (t + α) / n), or t(C) = t (EII, Ward's criterion); a merge
of a and b costs t(C_a ∪ C_b) − t(C_a) − t(C_b), with
W_ab = W_a + W_b + f (ȳ_a − ȳ_b)(ȳ_a − ȳ_b)ᵀ, f = n_a n_b / (n_a + n_b).
"""

from __future__ import annotations

import numpy as np

from em_core._fast_kernels import HAVE_NUMBA

if HAVE_NUMBA:
    from numba import njit
else:  # pragma: no cover

    def njit(*args, **kwargs):
        return lambda f: f


@njit(cache=True, nogil=True, error_model="numpy")
def _det(S):
    """det(S) by Gaussian elimination with partial pivoting; S (p, p) is overwritten."""
    p = S.shape[0]
    det = 1.0
    for j in range(p):
        pivot = j
        for i in range(j + 1, p):
            if abs(S[i, j]) > abs(S[pivot, j]):
                pivot = i
        if S[pivot, j] == 0.0:
            return 0.0
        if pivot != j:
            det = -det
            for c in range(p):
                S[j, c], S[pivot, c] = S[pivot, c], S[j, c]
        det *= S[j, j]
        for i in range(j + 1, p):
            factor = S[i, j] / S[j, j]
            for c in range(j + 1, p):
                S[i, c] -= factor * S[j, c]
    return det


@njit(cache=True, nogil=True, error_model="numpy")
def _term(n, S, trace, alpha, vvv):
    """t(C) of a group with n points, scatter S (overwritten) and trace ``trace``."""
    if not vvv:
        return trace
    p = S.shape[0]
    inner = (trace + alpha) / n
    if n > p:
        for i in range(p):
            for j in range(p):
                S[i, j] /= n
        det = _det(S)
        if det > 0.0:
            inner += det
    return n * np.log(inner)


@njit(cache=True, nogil=True, error_model="numpy")
def _merged(a, b, n, mean, W, vvv, S):
    """n_a + n_b and f ‖ȳ_a − ȳ_b‖² of the union of groups a and b; its scatter is left in S
    when ``vvv``."""
    p = mean.shape[1]
    na, nb = n[a], n[b]
    f = na * nb / (na + nb)
    sq = 0.0
    for i in range(p):
        di = mean[b, i] - mean[a, i]
        sq += di * di
        if vvv:
            for j in range(p):
                S[i, j] = W[a, i, j] + W[b, i, j] + f * di * (mean[b, j] - mean[a, j])
    return na + nb, f * sq


@njit(cache=True, nogil=True, error_model="numpy")
def _cost(a, b, n, mean, W, trace, term, alpha, vvv, S):
    nab, spread = _merged(a, b, n, mean, W, vvv, S)
    return _term(nab, S, trace[a] + trace[b] + spread, alpha, vvv) - term[a] - term[b]


@njit(cache=True, nogil=True, error_model="numpy")
def _argmin_row(cost, r, alive):
    """The first column of row r with the least cost among live groups (0 if none is finite)."""
    best, low = 0, np.inf
    for c in range(cost.shape[1]):
        if alive[c] and cost[r, c] < low:
            best, low = c, cost[r, c]
    return best


@njit(cache=True, nogil=True, error_model="numpy")
def merge_sequence(Z, counts, alpha, vvv):
    """(a, b) of each merge in order, b folded into a, over the m distinct rows ``Z`` with
    multiplicities ``counts``; ties go to the lowest index, as ``np.argmin``. Costs are kept in
    a symmetric matrix read by rows; a dead group's column is skipped, never rewritten."""
    m, p = Z.shape
    n = counts.astype(np.float64)
    mean = Z.copy()
    W = np.zeros((m if vvv else 1, p, p))
    trace = np.zeros(m)
    S = np.zeros((p, p))
    term = np.zeros(m)
    for i in range(m):
        S.fill(0.0)  # every group starts with W = 0
        term[i] = _term(n[i], S, 0.0, alpha, vvv)
    cost = np.full((m, m), np.inf)
    for a in range(m - 1):
        for b in range(a + 1, m):
            cost[a, b] = _cost(a, b, n, mean, W, trace, term, alpha, vvv, S)
    for a in range(m - 1):
        for b in range(a + 1, m):
            cost[b, a] = cost[a, b]
    alive = np.ones(m, dtype=np.bool_)
    best = np.zeros(m, dtype=np.int64)
    low = np.full(m, np.inf)  # low[r] = cost[r, best[r]]
    for r in range(m):
        best[r] = _argmin_row(cost, r, alive)
        low[r] = cost[r, best[r]]
    merges = np.empty((max(m - 1, 0), 2), dtype=np.int64)
    for step in range(m - 1):
        i = -1
        for r in range(m):
            if alive[r] and (i < 0 or low[r] < low[i]):
                i = r
        a, b = min(i, best[i]), max(i, best[i])
        nab, spread = _merged(a, b, n, mean, W, vvv, S)
        for c in range(p):
            mean[a, c] = (n[a] * mean[a, c] + n[b] * mean[b, c]) / nab
        n[a], trace[a] = nab, trace[a] + (trace[b] + spread)
        if vvv:  # element by element: a slice assignment compiles its shape-error message
            for r in range(p):
                for c in range(p):
                    W[a, r, c] = S[r, c]
        term[a] = _term(nab, S, trace[a], alpha, vvv)
        merges[step, 0], merges[step, 1] = a, b
        alive[b] = False
        cost[a, b] = np.inf
        for c in range(m):
            if alive[c] and c != a:
                cost[a, c] = _cost(a, c, n, mean, W, trace, term, alpha, vvv, S)
                cost[c, a] = cost[a, c]
        for c in range(m):
            if not alive[c] or c == a:
                continue
            if best[c] == a or best[c] == b:
                best[c] = _argmin_row(cost, c, alive)
                low[c] = cost[c, best[c]]
            elif cost[a, c] < low[c] or (cost[a, c] == low[c] and a < best[c]):
                best[c], low[c] = a, cost[a, c]
        best[a] = _argmin_row(cost, a, alive)
        low[a] = cost[a, best[a]]
    return merges
