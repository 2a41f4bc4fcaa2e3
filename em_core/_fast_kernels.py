"""Fast fused kernels for the complete-data E-step of a Gaussian mixture.

One pass over the rows of ``X`` computes, per row block, the log-densities of every component,
the normalised responsibilities, the log-likelihood, the entropy of the responsibilities and the
sufficient statistics of the M-step. Nothing of size ``n × K × d`` (nor ``n × K``) is ever
materialised: the working memory is ``O(block_size × (K + d))`` per thread.

Model (precisions stored as scikit-learn stores them, ``Λ_k = P_k P_kᵀ``)::

    log N(x | k) = -½ (d log 2π + ‖(x - μ_k) P_k‖²) + Σ_j log (P_k)_jj
    log p_ik     = log w_k + log N(x_i | k)
    lpn_i        = logsumexp_k log p_ik                      (log_prob_norm)
    r_ik         = exp(log p_ik - lpn_i)                     (responsibilities)

    nk_k   = Σ_i r_ik
    sx_k   = Σ_i r_ik (x_i - c_k)
    sxx_k  = Σ_i r_ik (x_i - c_k)(x_i - c_k)ᵀ                (full, tied: (K, d, d))
           = Σ_i r_ik (x_i - c_k)²                           (diag, spherical: (K, d))
    log_likelihood = Σ_i lpn_i
    entropy        = -Σ_i Σ_k r_ik log r_ik                  (0 · log 0 = 0)

with ``c_k = shift[k]``, the centre around which the moments are taken (the caller passes the
current means, so that ``cov_k = sxx_k / nk_k - (sx_k / nk_k)(sx_k / nk_k)ᵀ`` suffers no
cancellation).

Precision factors per covariance type: ``full`` (K, d, d) upper triangular; ``tied`` (d, d) upper
triangular; ``diag`` (K, d) = 1/σ_kj; ``spherical`` (K,) = 1/σ_k. A ``full``/``tied`` factor that is
not upper triangular is accepted too (it is then applied as a dense matrix, at twice the cost).

Technology (chosen by measurement, ``bench/README.md``): a numba ``@njit(parallel=True)``
kernel, ``prange`` over row chunks, no BLAS calls. Inside a block the rows are transposed to a
(d, block) buffer so every inner loop runs over rows (independent lanes: it vectorises without
re-association); only the pure sums of the moments are compiled with ``reassoc``
(``_FASTMATH_REDUCE``). exp and log are the kernels' own vectorisable versions (≤ 2 and ≤ 1 ulp
from libm, tested). Results agree with a plain numpy/scipy reference to ~1e-13 relative.
full/tied moments: a register-tiled weighted Gram of ``[z; 1]`` per (block, component);
diag/spherical moments: about a common centre, four components × two features per tile
(``_Centre``). Rows of 2-D buffers are indexed, never taken as views: a view costs numba an
atomic incref/decref pair.
Components whose upper bound ``log w_k + log det P_k - ½ d log 2π`` lies more than 746 below the
smallest row maximum of a block are skipped for that block: their ``exp`` underflows to exactly 0.0
in any implementation, so the skip is exact. Rows whose responsibility is exactly 0 are skipped in
the moment accumulation. If numba is missing, the blocked numpy implementation of
:mod:`em_core.reference` (same results) is used (``HAVE_NUMBA`` tells which).

The chunking of the rows depends only on ``n`` and the block size (not on the number of threads),
so the result is deterministic for a given block size.
"""

from __future__ import annotations

import math
import os
import threading
import types
from typing import NamedTuple

import numpy as np

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DIAG_BLOCK_SIZE",
    "HAVE_NUMBA",
    "complete_log_resp",
    "complete_stats",
]

try:  # pragma: no cover - exercised by the environment, not by a test
    if os.environ.get("EM_CORE_DISABLE_NUMBA", "") not in ("", "0"):
        raise ImportError("numba disabled by EM_CORE_DISABLE_NUMBA")
    import numba
    from numba import njit, prange

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    numba = None
    HAVE_NUMBA = False

#: Rows per block for full/tied: the block's working set (d + 2K doubles per row) stays in L1/L2;
#: the fastest of 128, 256 and 512 rows.
DEFAULT_BLOCK_SIZE = 128
#: diag/spherical have no d×d work per row, so longer blocks amortise the per-(block, component)
#: loop overhead.
DIAG_BLOCK_SIZE = 256
#: Upper bound on the number of row chunks processed in parallel (one accumulator set each).
_MAX_CHUNKS = 64
#: Fewest row blocks per chunk: each chunk allocates and reduces its own accumulators (diag:
#: 2·K·d·block doubles), which cost more than the rows they summarise in chunks of one block.
_MIN_BLOCKS_PER_CHUNK = 8
#: exp(x) == 0.0 exactly (even as a subnormal) for x < -745.14.
_UNDERFLOW = -746.0
_LOG_2PI = math.log(2.0 * math.pi)
#: Only FMA contraction: no re-association, no finite-math assumptions (-inf is used), no
#: approximate functions.
_FASTMATH = {"contract"}
#: For pure sums of finite products only: lets LLVM vectorise the reduction (summation order).
_FASTMATH_REDUCE = {"contract", "reassoc", "nsz"}
#: The kernels' modes: one precision factor per component (full), one shared (tied), or
#: per-feature factors (diag, and spherical as a diagonal with equal entries).
FULL, TIED, DIAGONAL = 0, 1, 2
_COV_CODES = {"full": FULL, "tied": TIED, "diag": DIAGONAL, "spherical": DIAGONAL}
#: numba options of every kernel. ``error_model="numpy"``: a float division by zero gives inf
#: (as in numpy) instead of raising, so numba emits no zero test per division; with the test,
#: LLVM kept every loop that divides scalar (the per-row 1/s, the factorisations' 1/√·).
_JIT_OPTS = dict(cache=True, nogil=True, fastmath=_FASTMATH, boundscheck=False, error_model="numpy")
_JIT_REDUCE_OPTS = {**_JIT_OPTS, "fastmath": _FASTMATH_REDUCE}

# The workqueue threading layer must not be entered by two threads at once; a second concurrent
# caller (a Dask worker thread, say) runs the serial kernel instead of waiting.
_PARALLEL_LOCK = threading.Lock()
#: the identity row order of ``_write_block_resp`` (rows written where they are)
_NO_PERM = np.zeros(0, dtype=np.int64)


def compiled_variants(func, base):
    """The parallel and the serial compilation of one kernel, named ``<base>_parallel`` and
    ``<base>_serial``: numba's on-disk cache is keyed by the function's qualified name, not by
    its flags, so the two need distinct names or they overwrite each other."""
    variants = []
    for kind in ("parallel", "serial"):
        name = f"{base}_{kind}"
        clone = types.FunctionType(func.__code__, func.__globals__, name, func.__defaults__)
        clone.__qualname__ = name
        variants.append(njit(parallel=kind == "parallel", **_JIT_OPTS)(clone))
    return tuple(variants)


def frozen(*arrays):
    """Read-only views of the kernels' input arrays. numba compiles a writable and a read-only
    array argument separately, and callers pass both (fitted parameters are read-only, fresh
    arrays are not): with every input frozen, each kernel has one signature to compile, cache
    and warm up, whoever calls it."""
    views = []
    for a in arrays:
        view = a.view()
        view.flags.writeable = False
        views.append(view)
    return tuple(views)


# --------------------------------------------------------------------------------------------
# Parameter preparation (shared by both back-ends)
# --------------------------------------------------------------------------------------------
class CompleteLayout(NamedTuple):
    """Parameters in the complete-data kernel's layout, made once per parameter set
    (:func:`complete_layout`; :class:`~em_core.params.GMMParams` keeps it, so once per M-step
    whatever the number of row chunks). Arrays are read-only (see :func:`frozen`)."""

    #: ``log w_k + Σ log diag P_k − ½ d log 2π``, an upper bound of every ``log p_ik`` (K,)
    const: np.ndarray
    means: np.ndarray  #: (K, d)
    P: np.ndarray  #: full/tied: the dense factors (K or 1, d, d); else a dummy
    Pd: np.ndarray  #: diag/spherical: per-feature precision factors 1/σ (K, d); else a dummy
    mP: np.ndarray  #: tied: μ_k P (K, d); else a dummy
    mode: int  #: 0 full, 1 tied, 2 diag/spherical
    tri: bool  #: full/tied: P is upper triangular (else applied as a dense matrix)
    order: np.ndarray  #: the components by decreasing bound


def complete_layout(log_weights, means, precisions_chol, covariance_type) -> CompleteLayout:
    """Check the parameters' shapes and bring them to the kernel's layout."""
    if covariance_type not in _COV_CODES:
        raise ValueError(
            f"covariance_type must be one of {sorted(_COV_CODES)}, got {covariance_type!r}"
        )
    means = np.ascontiguousarray(means, dtype=np.float64)
    if means.ndim != 2:
        raise ValueError(f"means must be 2-D, got shape {means.shape}")
    d = means.shape[1]
    log_weights = np.ascontiguousarray(log_weights, dtype=np.float64).reshape(-1)
    K = log_weights.shape[0]
    if means.shape != (K, d):
        raise ValueError(f"means must have shape {(K, d)}, got {means.shape}")
    pc = np.ascontiguousarray(precisions_chol, dtype=np.float64)
    mode = _COV_CODES[covariance_type]
    dummy3 = np.zeros((1, 1, 1))
    dummy2 = np.zeros((1, 1))
    tri = True
    if covariance_type == "full":
        if pc.shape != (K, d, d):
            raise ValueError(f"precisions_chol must have shape {(K, d, d)}, got {pc.shape}")
        logdet = np.log(np.diagonal(pc, axis1=1, axis2=2)).sum(axis=1)
        P, Pd, mP = pc, dummy2, dummy2
        tri = not np.any(np.tril(pc, -1))
    elif covariance_type == "tied":
        if pc.shape != (d, d):
            raise ValueError(f"precisions_chol must have shape {(d, d)}, got {pc.shape}")
        logdet = np.full(K, np.log(np.diagonal(pc)).sum())
        P, Pd = pc[None], dummy2
        mP = np.ascontiguousarray(means @ pc)
        tri = not np.any(np.tril(pc, -1))
    elif covariance_type == "diag":
        if pc.shape != (K, d):
            raise ValueError(f"precisions_chol must have shape {(K, d)}, got {pc.shape}")
        logdet = np.log(pc).sum(axis=1)
        P, Pd, mP = dummy3, pc, dummy2
    else:  # spherical: a diagonal factor with equal entries
        if pc.shape != (K,):
            raise ValueError(f"precisions_chol must have shape {(K,)}, got {pc.shape}")
        logdet = d * np.log(pc)
        P, Pd, mP = dummy3, np.ascontiguousarray(np.repeat(pc[:, None], d, axis=1)), dummy2
    const = np.ascontiguousarray(log_weights + logdet - 0.5 * d * _LOG_2PI)
    order = np.argsort(-const, kind="stable").astype(np.int64)
    const, means, P, Pd, mP, order = frozen(const, means, P, Pd, mP, order)
    return CompleteLayout(const, means, P, Pd, mP, mode, tri, order)


def _rows(X, d):
    """X as a C-contiguous float64 (n, d) array."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}")
    if X.shape[1] != d:
        raise ValueError(f"X has {X.shape[1]} columns, the parameters {d} features")
    return X


#: Largest |μ_kj − g_j| / σ_kj (or |c_kj − g_j| / σ_kj) for which a diag/spherical component's
#: moments are taken about the common centre g: moving them to c_k afterwards then loses at most
#: ~(1 + 32)² ulp, ≈ 2e-13 relative.
_CENTRE_MAX_SIGMAS = 32.0


class _Centre(NamedTuple):
    """Where the rows are centred when they are transposed: ``x' = x − g``.

    diag/spherical: ``g`` is the median of the component means. Components within
    ``_CENTRE_MAX_SIGMAS`` of it (``near[k]``) take their log-densities from ``x'`` and ``μ' =
    μ − g`` (``mc``), and their moments about ``g`` as plain sums of ``e x'`` and ``e x'²``,
    four components and two features per pass (``_centred_moments``: two FMAs per term instead
    of four operations), moved to ``c_k`` at the end of each chunk (``cshift = c − g``)::

        Σ e (x − c) = S₁ − c' S₀,   Σ e (x − c)² = S₂ − 2 c' S₁ + c'² S₀

    That identity cancels when c' is many σ away, so a component far from ``g`` keeps the direct
    form on uncentred rows (``any_far``). full/tied: ``g = 0`` (``x − 0`` is ``x``, bitwise).
    """

    g: np.ndarray
    near: np.ndarray
    any_far: bool
    mc: np.ndarray
    cshift: np.ndarray


def _centre(const, means, Pd, shift, mode):
    K, d = means.shape
    if mode != DIAGONAL:
        g, near, mc = frozen(np.zeros(d), np.zeros(K, dtype=np.bool_), means)
        return _Centre(g, near, False, mc, mc)
    live = const > -np.inf
    # a median (by a sort: np.median's overhead shows at n = 10⁵): one remote component does
    # not drag the centre away from the others
    m = means[live]
    g = np.sort(m, axis=0)[(m.shape[0] - 1) // 2] if m.shape[0] else np.zeros(d)
    mc = means - g
    cshift = np.asarray(shift, dtype=np.float64) - g
    reach = np.maximum(np.abs(mc), np.abs(cshift)) * Pd
    near = (reach <= _CENTRE_MAX_SIGMAS).all(axis=1) | ~live  # zero weight: -inf anyway
    g, near, mc, cshift = frozen(g, near, mc, cshift)
    return _Centre(g, near, bool(np.any(~near)), mc, cshift)


def n_chunks(n, block, min_blocks_per_chunk=_MIN_BLOCKS_PER_CHUNK):
    """Row chunks of an E-step over ``n`` rows: one per ``min_blocks_per_chunk`` blocks, at
    least 1 and at most ``_MAX_CHUNKS`` (each chunk has its own accumulators)."""
    n_blocks = max(1, -(-n // block))
    return max(1, min(_MAX_CHUNKS, n_blocks // min_blocks_per_chunk))


def _stats_buffers(nchunks, K, d, mode, want_stats):
    """Per-chunk accumulators ``nk``, ``sx``, ``sxx``; diag/spherical keep only the diagonal of
    ``sxx``, as (nchunks, K, d, 1): zeroing and reducing (K, d, d) per chunk cost ≈0.35 ms of a
    ≈10 ms iteration at n = 10⁵, d = 16, K = 10. Dummies when no statistics are wanted."""
    if not want_stats:
        return np.zeros((1, 1)), np.zeros((1, 1, 1)), np.zeros((1, 1, 1, 1))
    return (
        np.zeros((nchunks, K)),
        np.zeros((nchunks, K, d)),
        np.zeros((nchunks, K, d, 1 if mode == DIAGONAL else d)),
    )


def _finish_stats(nk, sx, sxx, ll, ent, mode):
    """Reduce the per-chunk accumulators and symmetrise (the kernels fill the upper triangle)."""
    nk = nk.sum(axis=0)
    sx = sx.sum(axis=0)
    sxx = sxx.sum(axis=0)
    if mode == DIAGONAL:
        sxx = np.ascontiguousarray(sxx[..., 0])
    else:
        iu = np.triu_indices(sxx.shape[1], 1)
        sxx[:, iu[1], iu[0]] = sxx[:, iu[0], iu[1]]
    return nk, sx, sxx, float(ll.sum()), float(ent.sum())


# --------------------------------------------------------------------------------------------
# numba back-end
# --------------------------------------------------------------------------------------------
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # fdlibm's split of log 2: t * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_EXP_MIN = -708.0  # below this the fast exp returns 0.0 instead of a subnormal (< 3.3e-308)
_ROUND_SHIFT = 6755399441055744.0  # 1.5·2⁵²: y = x + this rounds x to an integer, kept in y's bits
_ROUND_SHIFT_BITS = 0x4338000000000000
_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD  # √½: log's reduction puts the mantissa in [√½, √2)
_SMALLEST_NORMAL = 2.2250738585072014e-308
# fdlibm e_log.c: log(1+f) = f − hfsq + s (hfsq + R(s²)), s = f / (2 + f)
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01

if HAVE_NUMBA:

    @njit(**_JIT_OPTS)
    def _exp_diff(A, k, b, V, nb, ibuf, fbuf):  # pragma: no cover - compiled
        """``V[k, :nb] = exp(A[k, :nb] − b[:nb])`` for ``a − b ≤ 709``, vectorisable (no libm call).

        Cody–Waite reduction ``x = t log 2 + f``, ``|f| ≤ ½ log 2``, degree-12 Taylor polynomial
        in Horner form, ``2^t`` assembled from its bits. ``t`` is rounded by adding 1.5·2⁵²,
        which leaves it in the low mantissa bits: no float-to-int conversion, which AVX2 lacks
        and which kept the loop scalar. Measured error ≤ 2 ulp against libm on [-708, 709]
        (2.5·10⁶ random arguments); arguments below -708 (and -inf) give exactly 0.0.
        ``fbuf`` is ``ibuf.view(np.float64)``. Rows of 2-D arrays are indexed, not passed as
        views: every view costs an atomic incref/decref pair (≈10 % of the diag kernel).
        """
        for r in range(nb):
            x = A[k, r] - b[r]
            ok = x >= _EXP_MIN
            x = x if ok else _EXP_MIN
            y = x * _LOG2E + _ROUND_SHIFT
            t = y - _ROUND_SHIFT
            f = (x - t * _LN2_HI) - t * _LN2_LO
            p = 1.0 / 479001600.0
            p = p * f + 1.0 / 39916800.0
            p = p * f + 1.0 / 3628800.0
            p = p * f + 1.0 / 362880.0
            p = p * f + 1.0 / 40320.0
            p = p * f + 1.0 / 5040.0
            p = p * f + 1.0 / 720.0
            p = p * f + 1.0 / 120.0
            p = p * f + 1.0 / 24.0
            p = p * f + 1.0 / 6.0
            p = p * f + 0.5
            p = p * f + 1.0
            p = p * f + 1.0
            fbuf[r] = y if ok else _ROUND_SHIFT - 1023.0  # bits -> biased exponent 0 -> 0.0
            V[k, r] = p
        for r in range(nb):
            ibuf[r] = (ibuf[r] - _ROUND_SHIFT_BITS + 1023) << 52
        for r in range(nb):
            V[k, r] = V[k, r] * fbuf[r]

    @njit(**_JIT_OPTS)
    def _log_vec(v, out, nb, ibuf):  # pragma: no cover - compiled
        """``out[:nb] = log(v[:nb])``, vectorisable (one libm call per row was ≈10 % of the
        diag kernel at d = 16, K = 4).

        ``v = 2^k m`` with ``m ∈ [√½, √2)`` taken from the bits, then fdlibm's polynomial for
        ``log(1 + f)``, ``f = m − 1``, and ``k log 2`` in two parts. ``k`` becomes a float by the
        1.5·2⁵² trick (AVX2 has no int64-to-double conversion). Values that are not positive
        normal numbers (0, subnormals, inf, NaN) go to ``math.log``. Measured error ≤ 1 ulp
        against libm (tested).
        """
        vi = v.view(np.int64)
        outi = out.view(np.int64)
        fbuf = ibuf.view(np.float64)
        for r in range(nb):
            ix = vi[r]
            k = (ix - _SQRT_HALF_BITS) >> 52
            ibuf[r] = ix - (k << 52)
            outi[r] = _ROUND_SHIFT_BITS + k
        for r in range(nb):
            dk = out[r] - _ROUND_SHIFT
            f = fbuf[r] - 1.0
            hfsq = 0.5 * f * f
            s = f / (2.0 + f)
            z = s * s
            w = z * z
            t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
            t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
            out[r] = dk * _LN2_HI - ((hfsq - (s * (hfsq + t1 + t2) + dk * _LN2_LO)) - f)
        for r in range(nb):
            x = v[r]
            if not (_SMALLEST_NORMAL <= x < np.inf):
                out[r] = math.log(x)

    @njit(**_JIT_OPTS)
    def _block_log_prob(
        X, b0, nb, const, means, P, Pd, mP, mode, tri, order, margin,
        Xt, ZtK, Yt, y, maha, L, rowmax, active, ctr, Xu,
    ):  # fmt: skip  # pragma: no cover - compiled
        """Log-probabilities ``L[k, r] = log w_k + log N(x_{b0+r} | k)`` of one block.

        The block's rows are first transposed into ``Xt`` (d, block): every inner loop then runs
        over rows, i.e. over independent lanes, and vectorises without re-association. The rows
        are centred on the way (``Xt = x − g``, see ``_Centre``); ``Xu`` receives them uncentred
        when a diag component is far from ``g``. 'full' leaves ``x − μ_k`` in ``ZtK[k]`` for the
        moments.
        A component whose bound ``const[k]`` lies below ``margin`` plus the smallest row maximum
        found so far is skipped for this block: ``active[k] = False``, ``L[k, :] = -inf``.
        ``rowmax[r]`` receives ``max_k L[k, r]``.
        """
        d = X.shape[1]
        K = const.shape[0]
        g, near, mc = ctr.g, ctr.near, ctr.mc
        for r in range(nb):
            for j in range(d):
                Xt[j, r] = X[b0 + r, j] - g[j]
        if ctr.any_far:
            for r in range(nb):
                for j in range(d):
                    Xu[j, r] = X[b0 + r, j]
        if mode == TIED:  # tied: whiten once, Yt = (X P)ᵀ
            for j in range(d):
                for r in range(nb):
                    Yt[j, r] = 0.0
                ilim = j + 1 if tri else d
                for i in range(ilim):
                    p = P[0, i, j]
                    for r in range(nb):
                        Yt[j, r] += Xt[i, r] * p
        for r in range(nb):
            rowmax[r] = -np.inf
        blockmin = -np.inf
        for kk in range(K):
            k = order[kk]
            ck = const[k]
            if not (ck >= blockmin + margin):  # also catches NaN
                active[k] = False
                for r in range(nb):
                    L[k, r] = -np.inf
                continue
            active[k] = True
            for r in range(nb):
                maha[r] = 0.0
            if mode == FULL:
                for i in range(d):
                    m = means[k, i]
                    for r in range(nb):
                        ZtK[k, i, r] = Xt[i, r] - m
                _add_whitened_squares(ZtK, k, P, tri, nb, y, maha)
            elif mode == TIED:
                for j in range(d):
                    m = mP[k, j]
                    for r in range(nb):
                        t = Yt[j, r] - m
                        maha[r] += t * t
            elif near[k]:
                _add_squares(Xt, mc, k, Pd, k, nb, maha)
            else:  # far from the centre: uncentred rows
                _add_squares(Xu, means, k, Pd, k, nb, maha)
            for r in range(nb):
                v = ck - 0.5 * maha[r]
                L[k, r] = v
                rowmax[r] = v if v > rowmax[r] else rowmax[r]
            blockmin = _min4(rowmax, nb)

    @njit(inline="always", **_JIT_OPTS)
    def _add_whitened_squares(Z, k, P, tri, nb, y, maha):  # pragma: no cover - compiled
        """``maha[r] += ‖P_kᵀ Z[k, :d, r]‖²`` (full/tied whitening of one block): per coordinate j,
        ``y = Σ_i Z[k, i, r] P[k, i, j]`` in order of i, four terms per pass over ``y`` (bitwise
        the same as one at a time, 23–34 % faster). Shared by the complete and missing-data
        kernels; inlined, as a call would count references to its arrays."""
        d = P.shape[1]
        for j in range(d):
            p = P[k, 0, j]
            for r in range(nb):
                y[r] = Z[k, 0, r] * p
            ilim = j + 1 if tri else d
            i = 1
            while i + 4 <= ilim:
                p0, p1, p2, p3 = P[k, i, j], P[k, i + 1, j], P[k, i + 2, j], P[k, i + 3, j]
                for r in range(nb):
                    y[r] = (
                        y[r]
                        + Z[k, i, r] * p0
                        + Z[k, i + 1, r] * p1
                        + Z[k, i + 2, r] * p2
                        + Z[k, i + 3, r] * p3
                    )
                i += 4
            while i < ilim:
                p = P[k, i, j]
                for r in range(nb):
                    y[r] += Z[k, i, r] * p
                i += 1
            for r in range(nb):
                maha[r] += y[r] * y[r]

    @njit(inline="always", **_JIT_OPTS)
    def _add_squares(Z, M, k, S, ks, nb, maha):  # pragma: no cover - compiled
        """``maha[r] += Σ_j ((Z[j, r] − M[k, j]) S[ks, j])²``, in order of j, four features per
        pass over ``maha`` (inlined: a call would cost an incref/decref per array argument)."""
        d = Z.shape[0]
        j = 0
        while j + 4 <= d:
            m0, m1, m2, m3 = M[k, j], M[k, j + 1], M[k, j + 2], M[k, j + 3]
            s0, s1, s2, s3 = S[ks, j], S[ks, j + 1], S[ks, j + 2], S[ks, j + 3]
            for r in range(nb):
                t0 = (Z[j, r] - m0) * s0
                t1 = (Z[j + 1, r] - m1) * s1
                t2 = (Z[j + 2, r] - m2) * s2
                t3 = (Z[j + 3, r] - m3) * s3
                maha[r] = maha[r] + t0 * t0 + t1 * t1 + t2 * t2 + t3 * t3
            j += 4
        while j < d:
            m = M[k, j]
            sj = S[ks, j]
            for r in range(nb):
                t = (Z[j, r] - m) * sj
                maha[r] += t * t
            j += 1

    @njit(**_JIT_OPTS)
    def _min4(v, nb):  # pragma: no cover - compiled
        """``min v[:nb]`` with four interleaved minima (a single chain of compares is serial)."""
        m0 = np.inf
        m1 = np.inf
        m2 = np.inf
        m3 = np.inf
        r = 0
        while r + 4 <= nb:
            m0 = v[r] if v[r] < m0 else m0
            m1 = v[r + 1] if v[r + 1] < m1 else m1
            m2 = v[r + 2] if v[r + 2] < m2 else m2
            m3 = v[r + 3] if v[r + 3] < m3 else m3
            r += 4
        while r < nb:
            m0 = v[r] if v[r] < m0 else m0
            r += 1
        return min(min(m0, m1), min(m2, m3))

    @njit(**_JIT_REDUCE_OPTS)
    def _diag_moments(Xt, Ek, c, nb, sx, sxx):  # pragma: no cover - compiled
        """Add ``Σ_r e_r (x_r − c)`` to ``sx`` and ``Σ_r e_r (x_r − c)²`` to ``sxx[:, 0]``;
        return ``Σ_r e_r``. Only this reduction is compiled with ``reassoc``: LLVM then keeps
        vector partial sums in registers, 2× faster than per-lane accumulators in memory. The
        summation order changes, not the terms (the exp/−inf logic lives elsewhere)."""
        s0 = 0.0
        for r in range(nb):
            s0 += Ek[r]
        for a in range(Xt.shape[0]):
            m = c[a]
            s1 = 0.0
            s2 = 0.0
            for r in range(nb):
                t = Xt[a, r] - m
                w = Ek[r] * t
                s1 += w
                s2 += w * t
            sx[a] += s1
            sxx[a, 0] += s2
        return s0

    @njit(**_JIT_REDUCE_OPTS)
    def _centred_moments(Xc, X2, E, ks, nks, nb, nk, sx, sxx):  # pragma: no cover - compiled
        """Moments about the centre of components ``ks[:nks]``: ``nk[k] += Σ_r e_kr``,
        ``sx[k, a] += Σ_r e_kr x_ar``, ``sxx[k, a, 0] += Σ_r e_kr x_ar²`` (``Xc`` = x − g,
        ``X2`` = Xc²). Tiles of four (then two) components × two features keep their partial
        sums in registers: eight loads per sixteen FMAs (``reassoc`` for these sums only)."""
        i = 0
        while i + 4 <= nks:
            _moments_tile4(Xc, X2, E, ks[i], ks[i + 1], ks[i + 2], ks[i + 3], nb, nk, sx, sxx)
            i += 4
        while i < nks:  # one or two left: a tile of two (the second a repeat when one is left)
            k1 = ks[i + 1] if i + 1 < nks else -1
            _moments_tile2(Xc, X2, E, ks[i], k1, nb, nk, sx, sxx)
            i += 2

    @njit(**_JIT_REDUCE_OPTS)
    def _moments_tile4(Xc, X2, E, k0, k1, k2, k3, nb, nk, sx, sxx):  # pragma: no cover
        d = Xc.shape[0]
        t0 = t1 = t2 = t3 = 0.0
        for r in range(nb):
            t0 += E[k0, r]
            t1 += E[k1, r]
            t2 += E[k2, r]
            t3 += E[k3, r]
        nk[k0] += t0
        nk[k1] += t1
        nk[k2] += t2
        nk[k3] += t3
        for a in range(0, d, 2):
            b = min(a + 1, d - 1)  # odd d: the last feature twice, kept once
            a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = 0.0
            c0 = c1 = c2 = c3 = f0 = f1 = f2 = f3 = 0.0
            for r in range(nb):
                u, v, uu, vv = Xc[a, r], X2[a, r], Xc[b, r], X2[b, r]
                g0, g1, g2, g3 = E[k0, r], E[k1, r], E[k2, r], E[k3, r]
                a0 += g0 * u
                b0 += g0 * v
                c0 += g0 * uu
                f0 += g0 * vv
                a1 += g1 * u
                b1 += g1 * v
                c1 += g1 * uu
                f1 += g1 * vv
                a2 += g2 * u
                b2 += g2 * v
                c2 += g2 * uu
                f2 += g2 * vv
                a3 += g3 * u
                b3 += g3 * v
                c3 += g3 * uu
                f3 += g3 * vv
            sx[k0, a] += a0
            sx[k1, a] += a1
            sx[k2, a] += a2
            sx[k3, a] += a3
            sxx[k0, a, 0] += b0
            sxx[k1, a, 0] += b1
            sxx[k2, a, 0] += b2
            sxx[k3, a, 0] += b3
            if b != a:
                sx[k0, b] += c0
                sx[k1, b] += c1
                sx[k2, b] += c2
                sx[k3, b] += c3
                sxx[k0, b, 0] += f0
                sxx[k1, b, 0] += f1
                sxx[k2, b, 0] += f2
                sxx[k3, b, 0] += f3

    @njit(**_JIT_REDUCE_OPTS)
    def _moments_tile2(Xc, X2, E, k0, k1, nb, nk, sx, sxx):  # pragma: no cover - compiled
        """As ``_moments_tile4`` for two components; ``k1 = -1``: only ``k0`` is kept."""
        d = Xc.shape[0]
        keep1 = k1 >= 0
        k1 = k1 if keep1 else k0
        t0 = t1 = 0.0
        for r in range(nb):
            t0 += E[k0, r]
            t1 += E[k1, r]
        nk[k0] += t0
        for a in range(0, d, 2):
            b = min(a + 1, d - 1)
            a0 = a1 = b0 = b1 = c0 = c1 = f0 = f1 = 0.0
            for r in range(nb):
                u, v, uu, vv = Xc[a, r], X2[a, r], Xc[b, r], X2[b, r]
                g0, g1 = E[k0, r], E[k1, r]
                a0 += g0 * u
                b0 += g0 * v
                c0 += g0 * uu
                f0 += g0 * vv
                a1 += g1 * u
                b1 += g1 * v
                c1 += g1 * uu
                f1 += g1 * vv
            sx[k0, a] += a0
            sxx[k0, a, 0] += b0
            if b != a:
                sx[k0, b] += c0
                sxx[k0, b, 0] += f0
            if keep1:
                sx[k1, a] += a1
                sxx[k1, a, 0] += b1
                if b != a:
                    sx[k1, b] += c1
                    sxx[k1, b, 0] += f1
        if keep1:
            nk[k1] += t1

    @njit(**_JIT_REDUCE_OPTS)
    def _add_weighted_gram(Ek, Zt, Wt, nb, S):  # pragma: no cover - compiled
        """``S[a, b] += Σ_{r<nb} e_r z_ar z_br`` for ``a ≤ b`` (upper triangle; a few entries
        below it are touched too and must be ignored).

        ``Zt`` is (d+1, block) with last row 1, so ``S[a, d]`` gets ``Σ e z_a`` and ``S[d, d]``
        gets ``Σ e``. ``Wt = e·Zt`` is formed once, then 4×2 register tiles keep eight vector
        partial sums in registers (six loads per eight FMAs). Compiled with ``reassoc`` for those
        reductions only: 1.7× faster than one ``dgemm`` per block and component (d = 16), which
        also computed the lower triangle.
        """
        d1 = Zt.shape[0]
        for a in range(d1):
            for r in range(nb):
                Wt[a, r] = Ek[r] * Zt[a, r]
        a = 0
        while a + 4 <= d1:  # (2-D indexing, not row views: a view costs an atomic incref/decref)
            b = a
            while b + 2 <= d1:
                s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = 0.0
                for r in range(nb):
                    x0 = Zt[b, r]
                    x1 = Zt[b + 1, r]
                    w0 = Wt[a, r]
                    w1 = Wt[a + 1, r]
                    w2 = Wt[a + 2, r]
                    w3 = Wt[a + 3, r]
                    s00 += w0 * x0
                    s01 += w0 * x1
                    s10 += w1 * x0
                    s11 += w1 * x1
                    s20 += w2 * x0
                    s21 += w2 * x1
                    s30 += w3 * x0
                    s31 += w3 * x1
                S[a, b] += s00
                S[a, b + 1] += s01
                S[a + 1, b] += s10
                S[a + 1, b + 1] += s11
                S[a + 2, b] += s20
                S[a + 2, b + 1] += s21
                S[a + 3, b] += s30
                S[a + 3, b + 1] += s31
                b += 2
            if b < d1:
                s00 = s10 = s20 = s30 = 0.0
                for r in range(nb):
                    x0 = Zt[b, r]
                    s00 += Wt[a, r] * x0
                    s10 += Wt[a + 1, r] * x0
                    s20 += Wt[a + 2, r] * x0
                    s30 += Wt[a + 3, r] * x0
                S[a, b] += s00
                S[a + 1, b] += s10
                S[a + 2, b] += s20
                S[a + 3, b] += s30
            a += 4
        while a < d1:
            for b in range(a, d1):
                s00 = 0.0
                for r in range(nb):
                    s00 += Wt[a, r] * Zt[b, r]
                S[a, b] += s00
            a += 1

    @njit(**_JIT_OPTS)
    def _scatter_gram(S, sxx, sx):  # pragma: no cover - compiled
        """Move an augmented Gram matrix (see ``_add_weighted_gram``) into the upper triangle of
        ``sxx``, into ``sx``, and return its ``Σ e``."""
        d = sxx.shape[0]
        for a in range(d):
            for b in range(a, d):
                sxx[a, b] += S[a, b]
            sx[a] += S[a, d]
        return S[d, d]

    @njit(**_JIT_OPTS)
    def _sum4(v, nb):  # pragma: no cover - compiled
        """``Σ v[:nb]`` with four interleaved partial sums (breaks the add latency chain)."""
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        r = 0
        while r + 4 <= nb:
            a0 += v[r]
            a1 += v[r + 1]
            a2 += v[r + 2]
            a3 += v[r + 3]
            r += 4
        while r < nb:
            a0 += v[r]
            r += 1
        return (a0 + a1) + (a2 + a3)

    @njit(**_JIT_OPTS)
    def _block_scratch(K, block):  # pragma: no cover - compiled
        """Per-chunk buffers of ``_block_log_prob``/``_normalise_block``, shared by every kernel:
        ``(rowmax, ls, acc, ibuf, L, E)``."""
        return (
            np.empty(block),
            np.empty(block),
            np.empty(block),
            np.empty(block, dtype=np.int64),
            np.empty((K, block)),
            np.empty((K, block)),
        )

    @njit(**_JIT_OPTS)
    def _normalise_block(nb, active, L, E, rowmax, ls, acc, ibuf):  # pragma: no cover
        """Responsibilities of one block into ``E`` (zero in padding columns ``r ≥ nb``).

        ``e_k = exp(L_k - max)``, ``s = Σ_k e_k``, ``lpn = max + log s``, ``r_k = e_k / s``,
        ``log r_k = L_k - max - log s``. Returns ``(Σ_r lpn_r, -Σ_r Σ_k r_k log r_k)``.
        Scaling and entropy share one pass per component.
        """
        K = L.shape[0]
        block = E.shape[1]
        fbuf = ibuf.view(np.float64)  # scratch once the exps are done
        for r in range(nb):
            acc[r] = 0.0
        for k in range(K):
            if active[k]:
                _exp_diff(L, k, rowmax, E, nb, ibuf, fbuf)
                for r in range(nb):
                    acc[r] += E[k, r]
            else:
                for r in range(nb):
                    E[k, r] = 0.0
            for r in range(nb, block):
                E[k, r] = 0.0
        _log_vec(acc, ls, nb, ibuf)
        for r in range(nb):
            acc[r] = 1.0 / acc[r]
            fbuf[r] = rowmax[r] + ls[r]
        ll = _sum4(fbuf, nb)
        for r in range(nb):
            fbuf[r] = 0.0
        for k in range(K):
            if active[k]:
                for r in range(nb):
                    rk = E[k, r] * acc[r]
                    E[k, r] = rk
                    t = rk * (L[k, r] - rowmax[r] - ls[r])
                    fbuf[r] -= t if rk > 0.0 else 0.0
        return ll, _sum4(fbuf, nb)

    @njit(inline="always", **_JIT_OPTS)
    def _write_block_resp(b0, nb, perm, ident, rowmax, ls, L, lpn_o, lr_o):  # pragma: no cover
        """The block's ``log p(x_i)`` and ``log r_ik`` at the rows' places in the input order."""
        for r in range(nb):
            lpn = rowmax[r] + ls[r]
            dst = b0 + r if ident else perm[b0 + r]
            lpn_o[dst] = lpn
            for k in range(L.shape[0]):
                lr_o[dst, k] = L[k, r] - lpn

    @njit(**_JIT_OPTS)
    def _estep_chunk(
        c, X, const, means, P, Pd, mP, shift, same_shift, mode, tri, order, block, bpc, margin,
        want_stats, nk_o, sx_o, sxx_o, want_resp, lpn_o, lr_o, ctr,
    ):  # fmt: skip  # pragma: no cover - compiled
        """Rows of chunk ``c`` of :func:`_estep_kernel`: returns its (log-likelihood, entropy)
        and adds its moments to ``nk_o[c]``, ``sx_o[c]``, ``sxx_o[c]``. A function of its own,
        not the parallel loop's body: numba's parfor passes then see a one-line body, and both
        variants share this one compilation."""
        n, d = X.shape
        K = const.shape[0]
        ld = block + 8  # row stride off a multiple of 4 KiB: no cache-set conflicts
        # only the buffers a covariance type uses are full size (filling unused ones shows)
        Xt = np.zeros((d, ld))  # zero: padding columns must stay finite
        d1 = d + 1 if mode != DIAGONAL else 1
        l1 = ld if mode != DIAGONAL else 1
        Zt = np.ones((d1, l1))  # row d stays 1: its products give sx and nk
        ZtK = np.ones((K if mode == FULL else 1, d1, l1))  # full: x − μ_k per component
        Wt = np.empty((d1, l1))
        gk = K if (want_stats and mode != DIAGONAL) else 1
        S = np.zeros((gk, d + 1, d + 1))  # full/tied: augmented Gram per component
        Yt = np.empty((d, ld) if mode == TIED else (1, 1))
        y = np.empty(block)
        maha = np.empty(block)
        rowmax, ls, acc, ibuf, L, E = _block_scratch(K, block)
        active = np.zeros(K, dtype=np.bool_)
        Xu = np.zeros((d, ld) if ctr.any_far else (1, 1))  # uncentred rows, far components
        X2 = np.zeros((d, ld) if mode == DIAGONAL else (1, 1))  # (x − g)², centred moments
        ks = np.empty(K, dtype=np.int64)
        ll = 0.0
        ent = 0.0
        start = c * bpc * block
        stop = min(n, start + bpc * block)
        for b0 in range(start, stop, block):
            nb = min(block, stop - b0)
            _block_log_prob(
                X, b0, nb, const, means, P, Pd, mP, mode, tri, order, margin,
                Xt, ZtK, Yt, y, maha, L, rowmax, active, ctr, Xu,
            )  # fmt: skip
            if nb < block:
                for j in range(d):
                    for r in range(nb, block):
                        Xt[j, r] = 0.0
            bll, bent = _normalise_block(nb, active, L, E, rowmax, ls, acc, ibuf)
            ll += bll
            ent += bent
            if want_resp:
                _write_block_resp(b0, nb, _NO_PERM, True, rowmax, ls, L, lpn_o, lr_o)
            if not want_stats:
                continue
            if mode == DIAGONAL:
                nks = 0
                for k in range(K):
                    if active[k] and ctr.near[k]:
                        ks[nks] = k
                        nks += 1
                if nks > 0:
                    for a in range(d):
                        for r in range(nb):
                            X2[a, r] = Xt[a, r] * Xt[a, r]
                    _centred_moments(Xt, X2, E, ks, nks, nb, nk_o[c], sx_o[c], sxx_o[c])
            for k in range(K):
                if not active[k] or (mode == DIAGONAL and ctr.near[k]):
                    continue
                Ek = E[k]
                if mode == DIAGONAL:  # far from the centre: about c_k directly
                    # (A dgemv per block and component was 1.7x slower on one thread and
                    # serialised two threads in OpenBLAS.)
                    nk_o[c, k] += _diag_moments(Xu, Ek, shift[k], nb, sx_o[c, k], sxx_o[c, k])
                elif mode == FULL and same_shift:
                    _add_weighted_gram(Ek, ZtK[k], Wt, nb, S[k])
                else:
                    for a in range(d):
                        m = shift[k, a]
                        for r in range(nb):
                            Zt[a, r] = Xt[a, r] - m
                    _add_weighted_gram(Ek, Zt, Wt, nb, S[k])
        if want_stats and mode != DIAGONAL:
            for k in range(K):
                nk_o[c, k] += _scatter_gram(S[k], sxx_o[c, k], sx_o[c, k])
        if want_stats and mode == DIAGONAL:  # about g → about c_k (see _Centre)
            for k in range(K):
                if ctr.near[k]:
                    s0 = nk_o[c, k]
                    for a in range(d):
                        cs = ctr.cshift[k, a]
                        s1 = sx_o[c, k, a]
                        sx_o[c, k, a] = s1 - cs * s0
                        sxx_o[c, k, a, 0] += cs * (cs * s0 - 2.0 * s1)
        return ll, ent

    def _estep_kernel(
        X, const, means, P, Pd, mP, shift, same_shift, mode, tri, order, block, nchunks, margin,
        want_stats, nk_o, sx_o, sxx_o, want_resp, lpn_o, lr_o, ctr,
    ):  # fmt: skip  # pragma: no cover - compiled
        """E-step over row chunks (one kernel for both entry points, to compile once).

        ``same_shift``: ``shift == means``, so 'full' reuses ``x − μ_k`` from the log-densities.
        ``ctr``: the centre of the rows (``_Centre``).

        ``want_stats``: accumulate per-chunk ``nk_o``, ``sx_o``, ``sxx_o`` (upper triangle);
        ``want_resp``: write ``lpn_o[i]`` and ``lr_o[i, k] = log r_ik``. Returns the per-chunk
        log-likelihoods and entropies.
        """
        n = X.shape[0]
        n_blocks = (n + block - 1) // block
        bpc = (n_blocks + nchunks - 1) // nchunks  # blocks per chunk
        ll_o = np.zeros(nchunks)
        ent_o = np.zeros(nchunks)
        for c in prange(nchunks):
            ll_o[c], ent_o[c] = _estep_chunk(
                c, X, const, means, P, Pd, mP, shift, same_shift, mode, tri, order, block, bpc,
                margin, want_stats, nk_o, sx_o, sxx_o, want_resp, lpn_o, lr_o, ctr,
            )  # fmt: skip
        return ll_o, ent_o

    _estep_parallel, _estep_serial = compiled_variants(_estep_kernel, "_estep")


def run_variant(parallel_kernel, serial_kernel, args, parallel, nchunks):
    """Call the parallel variant of a kernel or the serial one, with the same ``args``.

    ``parallel=None`` (the default) takes the parallel one when there is more than one row
    chunk and more than one numba thread: a single chunk has nothing to share, and waking the
    thread pool costs more than a small E-step (≈0.6 ms against 0.2 ms at 178 rows). Both
    variants run the same code on the same chunks, so the choice never changes a result. A
    second thread arriving while the parallel one runs takes the serial one (see
    ``_PARALLEL_LOCK``)."""
    if parallel is None:
        parallel = nchunks > 1 and numba.get_num_threads() > 1
    if parallel and _PARALLEL_LOCK.acquire(blocking=False):
        try:
            return parallel_kernel(*args)
        finally:
            _PARALLEL_LOCK.release()
    return serial_kernel(*args)


def _run_estep(X, layout, shift, block, parallel, margin, want_stats, want_resp):
    const, means, P, Pd, mP, mode, tri, order = layout
    n, d = X.shape
    K = const.shape[0]
    nchunks = n_chunks(n, block)
    nk, sx, sxx = _stats_buffers(nchunks, K, d, mode, want_stats)
    if want_resp:
        lpn, lr = np.empty(n), np.empty((n, K))
    else:
        lpn, lr = np.zeros(1), np.zeros((1, 1))
    same_shift = bool(np.array_equal(shift, means))
    # frozen again: a layout that came through pickle (a Dask worker's) holds writable arrays
    X, shift, const, means, P, Pd, mP, order = frozen(X, shift, const, means, P, Pd, mP, order)
    ctr = _centre(const, means, Pd, shift, mode)
    args = (X, const, means, P, Pd, mP, shift, same_shift, mode, tri, order, block, nchunks,
            margin, want_stats, nk, sx, sxx, want_resp, lpn, lr, ctr)  # fmt: skip
    ll, ent = run_variant(_estep_parallel, _estep_serial, args, parallel, nchunks)
    return nk, sx, sxx, ll, ent, lpn, lr


def _complete_stats_numba(X, layout, shift, block, parallel):
    nk, sx, sxx, ll, ent, _, _ = _run_estep(
        X, layout, shift, block, parallel, _UNDERFLOW, True, False
    )
    return _finish_stats(nk, sx, sxx, ll, ent, layout.mode)


def _complete_log_resp_numba(X, layout, block, parallel):
    # No skipping (margin -inf): every log r_ik stays finite, as in the reference.
    out = _run_estep(X, layout, layout.means, block, parallel, -np.inf, False, True)
    return out[5], out[6]


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------
def _block_size(block_size, covariance_type):
    if block_size is None:
        return DIAG_BLOCK_SIZE if covariance_type in ("diag", "spherical") else DEFAULT_BLOCK_SIZE
    if int(block_size) < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    return int(block_size)


def _check_backend(backend):
    if backend not in ("auto", "numba", "numpy"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'numpy', got {backend!r}")
    if backend == "numba" and not HAVE_NUMBA:
        raise ImportError("backend='numba' requested but numba is not available")
    return (
        "numba" if backend == "auto" and HAVE_NUMBA else backend if backend != "auto" else "numpy"
    )


def complete_stats(
    X,
    log_weights,
    means,
    precisions_chol,
    covariance_type,
    shift,
    *,
    block_size=None,
    parallel=None,
    backend="auto",
    layout=None,
):
    """Fused E-step and sufficient statistics over the rows of complete data.

    Does no validation beyond shapes: ``X`` must be finite (no NaN: rows with missing cells
    belong to the incomplete-data E-step).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    log_weights : array-like of shape (n_components,)
        ``log w_k``; ``-inf`` marks a component with zero weight (skipped).
    means : array-like of shape (n_components, n_features)
    precisions_chol : array-like
        Cholesky factors of the precisions as scikit-learn stores them ('full' (K, d, d) upper
        triangular, 'tied' (d, d), 'diag' (K, d), 'spherical' (K,)).
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    shift : array-like of shape (n_components, n_features)
        Centres ``c_k`` of the first and second moments.
    block_size : int, optional
        Rows per block (default ``DEFAULT_BLOCK_SIZE``, ``DIAG_BLOCK_SIZE`` for diag and
        spherical). Changes only the summation order.
    parallel : bool, optional
        Run the numba kernel on all numba threads (default: when ``n > block_size`` and numba
        has more than one thread).
    backend : {'auto', 'numba', 'numpy'}
    layout : CompleteLayout, optional
        The parameters already in the kernel's layout (:func:`complete_layout`, made once per
        parameter set); the parameter arguments are then not read.

    Returns
    -------
    nk : ndarray of shape (n_components,)
        ``Σ_i r_ik``.
    sx : ndarray of shape (n_components, n_features)
        ``Σ_i r_ik (x_i - c_k)``.
    sxx : ndarray
        ``Σ_i r_ik (x_i - c_k)(x_i - c_k)ᵀ``, shape (K, d, d) for 'full' and 'tied'; its
        diagonal ``Σ_i r_ik (x_i - c_k)²``, shape (K, d), for 'diag' and 'spherical'.
    log_likelihood : float
        ``Σ_i logsumexp_k (log w_k + log N(x_i | k))``.
    entropy : float
        ``-Σ_i Σ_k r_ik log r_ik`` (``0 · log 0 = 0``).
    """
    block = _block_size(block_size, covariance_type)
    if layout is None:
        layout = complete_layout(log_weights, means, precisions_chol, covariance_type)
    X = _rows(X, layout.means.shape[1])
    shift = np.ascontiguousarray(shift, dtype=np.float64)
    if shift.shape != layout.means.shape:
        raise ValueError(f"shift must have shape {layout.means.shape}, got {shift.shape}")
    if _check_backend(backend) == "numba":
        return _complete_stats_numba(X, layout, shift, block, parallel)
    from .reference import complete_stats as reference_stats

    return reference_stats(X, layout, shift, block)


def complete_log_resp(
    X,
    log_weights,
    means,
    precisions_chol,
    covariance_type,
    *,
    block_size=None,
    parallel=None,
    backend="auto",
    layout=None,
):
    """Per-row normaliser and log-responsibilities of complete data.

    Parameters are as in :func:`complete_stats`.

    Returns
    -------
    log_prob_norm : ndarray of shape (n_samples,)
        ``lpn_i = logsumexp_k (log w_k + log N(x_i | k))``.
    log_resp : ndarray of shape (n_samples, n_components)
        ``log r_ik = log w_k + log N(x_i | k) - lpn_i`` (``-inf`` for zero-weight or
        negligible components).
    """
    block = _block_size(block_size, covariance_type)
    if layout is None:
        layout = complete_layout(log_weights, means, precisions_chol, covariance_type)
    X = _rows(X, layout.means.shape[1])
    if _check_backend(backend) == "numba":
        return _complete_log_resp_numba(X, layout, block, parallel)
    from .reference import complete_log_resp as reference_log_resp

    return reference_log_resp(X, layout, block)
