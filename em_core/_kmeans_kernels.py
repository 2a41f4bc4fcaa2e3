"""Lloyd's k-means iterations compiled (numba): the start of every k-means++ restart.

The same iterations as :func:`em_core.reference.lloyd` (partial distances over the observed
cells, rescaled to all d axes; an emptied cluster keeps its centre; stop when no centre moves by
more than ``atol``), without its per-iteration (n, K) temporaries: one pass over the rows per
iteration finds each row's nearest centre and adds it to that centre's sums. The distance is
the same expansion as the reference's, ``‖x_o‖² − 2 x_o·c + Σ_o c² ≥ 0`` times d / |o|; only the
order of the floating-point sums differs (BLAS against a loop), so a row exactly between two
centres may go to the other one.
"""

from __future__ import annotations

import numpy as np

from em_core._fast_kernels import HAVE_NUMBA

if HAVE_NUMBA:
    from numba import njit
else:  # pragma: no cover - the numpy reference runs instead

    def njit(*args, **kwargs):
        return lambda f: f


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def lloyd_iterations(X0, observed, centers, n_iter, atol):  # pragma: no cover - compiled
    """Up to ``n_iter`` Lloyd iterations from ``centers`` (K, d) on ``X0`` (missing cells 0)
    with the 0/1 mask ``observed``; returns the final centres."""
    n, d = X0.shape
    K = centers.shape[0]
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
    centers = centers.copy()
    c2 = np.empty((K, d))
    sums = np.empty((K, d))
    counts = np.empty((K, d))
    for _ in range(n_iter):
        for k in range(K):
            for j in range(d):
                c2[k, j] = centers[k, j] * centers[k, j]
        sums[:] = 0.0
        counts[:] = 0.0
        for i in range(n):
            best = np.inf
            label = 0
            for k in range(K):
                dot = 0.0
                oc = 0.0
                for j in range(d):
                    dot += X0[i, j] * centers[k, j]
                    oc += observed[i, j] * c2[k, j]
                sq = max(xx[i] - 2.0 * dot + oc, 0.0) * scale[i]
                if sq < best:
                    best = sq
                    label = k
            for j in range(d):
                sums[label, j] += X0[i, j]
                counts[label, j] += observed[i, j]
        moved = False
        for k in range(K):
            for j in range(d):
                new = sums[k, j] / counts[k, j] if counts[k, j] > 0.0 else centers[k, j]
                if abs(new - centers[k, j]) > atol:
                    moved = True
                sums[k, j] = new
        if not moved:
            break
        centers[:] = sums
    return centers
