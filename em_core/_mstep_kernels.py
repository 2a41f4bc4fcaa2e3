"""Compiled inner loops of the iterative M-steps: VEI and VEV (volumes and a shared shape),
VEE (volumes and a shared shape-orientation matrix), EVE and VVE (a common orientation).

The same iterations as their numpy references in :mod:`em_core.reference`, written once more in
numba: on small data the M-step runs tens of inner iterations per EM iteration, each a handful of
d×d (or K×d) operations, and the numpy version spends most of its time in per-call overhead.
The numpy versions stay the reference and the fallback without numba (tests compare the two).
Every loop stops when the relative change falls to ``tol`` (as ``models._alternate``).

Volumes and shape (VEI on diagonals, VEV on spectra ``values`` (K, d)):
  A ∝ Σ_k values_k / λ_k with gm(A) = 1;  λ_k = Σ_j values_kj / A_j / vol_den_k.
VEE, with C the shared matrix (det C = 1):
  C ∝ Σ_k W_k / λ_k;  λ_k = tr(W_k C⁻¹) / (n_k d).
Common orientation, with O (rows = axes), W_k the scatter of component k and s_k the shape:

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


@njit(cache=True, nogil=True, error_model="numpy")
def _relative_change(now, prev):
    """max_k |now_k − prev_k| / (1 + |now_k|)."""
    worst = 0.0
    for k in range(now.shape[0]):
        worst = max(worst, abs(now[k] - prev[k]) / (1.0 + abs(now[k])))
    return worst


@njit(cache=True, nogil=True, error_model="numpy")
def _shared_shape(values, lam):
    """A ∝ Σ_k values_k / λ_k, normalised to geometric mean 1."""
    K, d = values.shape
    a = np.zeros(d)
    for k in range(K):
        for j in range(d):
            a[j] += values[k, j] / lam[k]
    log_gm = 0.0
    for j in range(d):
        log_gm += np.log(a[j])
    return a / np.exp(log_gm / d)


@njit(cache=True, nogil=True, error_model="numpy")
def volumes_and_shape_iterations(values, vol_den, lam, tol, max_iter):
    """VEI/VEV: alternate the volumes λ and the shared shape A from ``lam``; returns (λ, A)."""
    K, d = values.shape
    prev = lam.copy()
    for _ in range(max_iter):
        a = _shared_shape(values, lam)
        lam = np.empty(K)
        for k in range(K):
            acc = 0.0
            for j in range(d):
                acc += values[k, j] / a[j]
            lam[k] = acc / vol_den[k]
        if _relative_change(lam, prev) <= tol:
            break
        prev = lam
    return lam, _shared_shape(values, lam)


@njit(cache=True, nogil=True, error_model="numpy")
def _vee_shape(W, lam):
    """C = Σ_k W_k / λ_k scaled to det C = 1."""
    K, d, _ = W.shape
    c = np.zeros((d, d))
    for k in range(K):
        inv_lam = 1.0 / lam[k]
        for i in range(d):
            for j in range(d):
                c[i, j] += W[k, i, j] * inv_lam
    _, logdet = np.linalg.slogdet(c)
    return c / np.exp(logdet / d)


@njit(cache=True, nogil=True, error_model="numpy")
def vee_iterations(W, nk, lam, tol, max_iter):
    """VEE: alternate the volumes λ and the shared matrix C from ``lam``; returns (λ, C)."""
    K, d, _ = W.shape
    prev = lam.copy()
    for _ in range(max_iter):
        c_inv = np.linalg.inv(_vee_shape(W, lam))
        lam = np.empty(K)
        for k in range(K):
            acc = 0.0
            for i in range(d):
                for j in range(d):
                    acc += W[k, i, j] * c_inv[j, i]
            lam[k] = acc / (nk[k] * d)
        if _relative_change(lam, prev) <= tol:
            break
        prev = lam
    return lam, _vee_shape(W, lam)
