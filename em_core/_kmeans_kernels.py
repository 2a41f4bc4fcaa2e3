"""Lloyd's k-means iterations and k-means++'s local trials compiled (numba): the start of every
k-means++ restart.

The same iterations as :func:`em_core.reference.lloyd` (partial distances over the observed
cells, rescaled to all d axes; an emptied cluster keeps its centre; stop when no centre moves by
more than ``atol``), without its per-iteration (n, K) temporaries: one pass over the rows per
iteration finds each row's nearest centre and adds it to that centre's sums. The distance is
the same expansion as the reference's, ``‖x_o‖² − 2 x_o·c + Σ_o c² ≥ 0`` times d / |o|; only the
order of the floating-point sums differs (BLAS against a loop), so a row exactly between two
centres may go to the other one.

The rows are cut into ``lloyd_chunks(n)`` chunks that depend only on n; each chunk keeps its own
sums, added up in chunk order, so the result does not depend on the number of threads
(``run_variant`` runs the parallel variant from two chunks and two threads).
"""

from __future__ import annotations

import numpy as np

from em_core._fast_kernels import _JIT_OPTS, HAVE_NUMBA, compiled_variants

if HAVE_NUMBA:
    from numba import njit, prange
else:  # pragma: no cover - the numpy reference runs instead

    def njit(*args, **kwargs):
        return lambda f: f

    prange = range

#: Rows per chunk of an iteration's assignment pass (at most ``_MAX_CHUNKS`` chunks).
_CHUNK_ROWS = 8192
_MAX_CHUNKS = 64


def lloyd_chunks(n: int) -> int:
    """Row chunks of a Lloyd iteration over ``n`` rows: one per ``_CHUNK_ROWS``, at least 1."""
    return max(1, min(_MAX_CHUNKS, n // _CHUNK_ROWS))


@njit(**_JIT_OPTS)
def row_terms(X0, observed):  # pragma: no cover - compiled
    """‖x_o‖² and d / |o| of every row."""
    n, d = X0.shape
    xx = np.empty(n)
    scale = np.empty(n)
    for i in range(n):
        s = 0.0
        o = 0.0
        for j in range(d):
            s += X0[i, j] * X0[i, j]
            o += observed[i, j]
        xx[i] = s
        scale[i] = d / o
    return xx, scale


@njit(inline="always", **_JIT_OPTS)
def _partial_distance(X0, observed, xx, scale, i, C, C2, k):  # pragma: no cover - compiled
    """(‖x_o‖² − 2 x_o·c_k + Σ_o c_k², floored at 0) · d / |o| for row i (``C2`` = C²)."""
    dot = 0.0
    oc = 0.0
    for j in range(X0.shape[1]):
        dot += X0[i, j] * C[k, j]
        oc += observed[i, j] * C2[k, j]
    return max(xx[i] - 2.0 * dot + oc, 0.0) * scale[i]


@njit(**_JIT_OPTS)
def _assign_rows(
    X0, observed, xx, scale, centers, c2, start, stop, sums, counts
):  # pragma: no cover - compiled
    """Rows ``start … stop`` to their nearest centre (the first on ties), each added to that
    centre's ``sums`` (observed cells) and ``counts`` (observed-cell counts)."""
    d = X0.shape[1]
    K = centers.shape[0]
    for i in range(start, stop):
        best = np.inf
        label = 0
        for k in range(K):
            sq = _partial_distance(X0, observed, xx, scale, i, centers, c2, k)
            if sq < best:
                best = sq
                label = k
        for j in range(d):
            sums[label, j] += X0[i, j]
            counts[label, j] += observed[i, j]


@njit(**_JIT_OPTS)
def _move_centers(centers, sums, counts, atol):  # pragma: no cover - compiled
    """The chunks' sums added up in chunk order; every centre with rows moves to their mean.
    Returns whether a coordinate moved by more than ``atol`` (if none did, ``centers`` is left
    as it was, as the reference returns the centres before the last update)."""
    n_chunks, K, d = sums.shape
    new = np.empty((K, d))
    moved = False
    for k in range(K):
        for j in range(d):
            s = 0.0
            m = 0.0
            for c in range(n_chunks):
                s += sums[c, k, j]
                m += counts[c, k, j]
            new[k, j] = s / m if m > 0.0 else centers[k, j]
            moved = moved or abs(new[k, j] - centers[k, j]) > atol
    if moved:
        centers[:] = new
    return moved


def _lloyd_kernel(X0, observed, centers, n_iter, atol, nchunks):  # pragma: no cover - compiled
    """Up to ``n_iter`` Lloyd iterations from ``centers`` (K, d) on ``X0`` (missing cells 0)
    with the 0/1 mask ``observed``, the rows in ``nchunks`` chunks; returns the final centres."""
    n, d = X0.shape
    K = centers.shape[0]
    xx, scale = row_terms(X0, observed)
    centers = centers.copy()
    c2 = np.empty((K, d))
    sums = np.empty((nchunks, K, d))
    counts = np.empty((nchunks, K, d))
    rows = (n + nchunks - 1) // nchunks
    for _ in range(n_iter):
        for k in range(K):
            for j in range(d):
                c2[k, j] = centers[k, j] * centers[k, j]
        sums[:] = 0.0
        counts[:] = 0.0
        for c in prange(nchunks):
            _assign_rows(
                X0, observed, xx, scale, centers, c2, c * rows, min(n, (c + 1) * rows),
                sums[c], counts[c],
            )  # fmt: skip
        if not _move_centers(centers, sums, counts, atol):
            break
    return centers


if HAVE_NUMBA:  # pragma: no branch
    lloyd_parallel, lloyd_serial = compiled_variants(_lloyd_kernel, "_lloyd")


@njit(**_JIT_OPTS)
def seeding_distances(X0, observed, xx, scale, closest, candidates):  # pragma: no cover
    """k-means++ local trials: for each candidate centre t, ``min(closest_i, D(x_i, c_t))``
    for every row (D the partial distance of :func:`_partial_distance`; ``xx``, ``scale`` from
    :func:`row_terms`), and its sum over the rows; returns (the (n, T) distances, the T sums)."""
    n = X0.shape[0]
    T = candidates.shape[0]
    c2 = candidates * candidates
    dist = np.empty((n, T))
    sums = np.zeros(T)
    for i in range(n):
        for t in range(T):
            v = min(closest[i], _partial_distance(X0, observed, xx, scale, i, candidates, c2, t))
            dist[i, t] = v
            sums[t] += v
    return dist, sums
