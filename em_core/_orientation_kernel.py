"""Compiled inner loop of the common-orientation M-step (EVE, VVE).

The same MM iterations as :func:`em_core.models._common_orientation_fit` (Browne & McNicholas
2014), written once more in numba: on small data the M-step runs tens of inner iterations per EM
iteration, each a handful of d×d products and two d×d SVDs, and the numpy version spends most of
its time in per-call overhead. The numpy version stays the reference (tests compare the two).

With O (rows = axes), W_k the scatter of component k and s_k the shape vector:

- shapes: s_k = diag(O W_k Oᵀ) / n_k (VVE) or / its geometric mean (EVE);
- target: Σ_k Σ_i diag(O W_k Oᵀ)_i / s_ki;
- MM step: F = Σ_k diag(1/s_k) O W_k − diag(Σ_k ω_k / s_k) O, O ← polar(F)ᵀ; then
  F = Σ_k W_k O diag(1/s_k) − Σ_k max(1/s_k) W_k O, O ← polar(F)ᵀ (ω_k: largest eigenvalue of W_k).
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
def _quadratic_diagonals(W, O):
    """diag(O W_k Oᵀ) for every k: (K, d)."""
    K, d, _ = W.shape
    out = np.zeros((K, d))
    for k in range(K):
        for i in range(d):
            acc = 0.0
            for j in range(d):
                row = 0.0
                for l in range(d):
                    row += W[k, j, l] * O[i, l]
                acc += O[i, j] * row
            out[k, i] = acc
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _shapes(diag, nk, equal_volume):
    K, d = diag.shape
    out = np.empty((K, d))
    for k in range(K):
        if equal_volume:
            g = 0.0
            for i in range(d):
                g += np.log(diag[k, i])
            scale = np.exp(g / d)
        else:
            scale = nk[k]
        for i in range(d):
            out[k, i] = diag[k, i] / scale
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _polar_t(F):
    """(P Qᵀ)ᵀ of F = P S Qᵀ: the orthogonal factor, transposed."""
    P, _, Qt = np.linalg.svd(F)
    return (P @ Qt).T.copy()


@njit(cache=True, nogil=True, error_model="numpy")
def _mm_step(W, inv, O, omega):
    K, d, _ = W.shape
    F = np.zeros((d, d))
    for k in range(K):
        OW = O @ W[k]
        for j in range(d):
            for i in range(d):
                F[j, i] += inv[k, j] * (OW[j, i] - omega[k] * O[j, i])
    O = _polar_t(F)
    F = np.zeros((d, d))
    for k in range(K):
        WO = W[k] @ O
        alpha = inv[k].max()
        for i in range(d):
            for j in range(d):
                F[i, j] += WO[i, j] * (inv[k, j] - alpha)
    return _polar_t(F)


@njit(cache=True, nogil=True, error_model="numpy")
def orientation_iterations(W, nk, O, omega, equal_volume, tol, max_iter):
    """The MM loop from orientation ``O``; returns (O, shapes) at convergence."""
    diag = _quadratic_diagonals(W, O)
    shapes = _shapes(diag, nk, equal_volume)
    prev = (diag / shapes).sum()
    for _ in range(max_iter):
        O = _mm_step(W, 1.0 / shapes, O, omega)
        diag = _quadratic_diagonals(W, O)
        shapes = _shapes(diag, nk, equal_volume)
        now = (diag / shapes).sum()
        if abs(now - prev) / (1.0 + abs(now)) <= tol:
            break
        prev = now
    return O, shapes
