"""Fast fused kernels for the incomplete-data E-step (rows with NaN cells).

Same contract as :mod:`em_core._fast_kernels` (``complete_stats`` / ``complete_log_resp``), for
rows in which any cell may be NaN (missing). For a row with observed coordinates o and missing m,
under component k with mean μ and precision Λ = P Pᵀ::

    A      = Λ_mm⁻¹ Λ_mo                   (|m| × |o|, per pattern and component)
    diff_o = x_o − μ_o,   diff_m = −A diff_o (x̂ − μ with the conditional mean filled in)
    log N(x_o | k) = −½|o| log 2π + Σ log diag P − ½ log det Λ_mm − ½ ‖diff P‖²
    E[x | x_o, k] − c = diff + μ − c,      Cov[x_m | x_o, k] = C = Λ_mm⁻¹

and the statistics are ``nk += r``, ``sx += r (x̂ − c)``, ``sxx += r (x̂ − c)(x̂ − c)ᵀ`` plus
``(Σ_i r_ik) C_k`` in the (m, m) block, added once per run of rows sharing a pattern.

``full`` / ``tied``: the rows are visited in missingness-pattern order (``perm``; empty for the
identity when the chunk is already sorted, as :class:`em_core.sources.ArraySource` delivers it).
Each row block (at most ``block`` rows) is cut into runs of one pattern. When a run starts a new
pattern its factors are computed inside the kernel for all components at once (vectorised over K):
Cholesky of Λ_mm, ``A`` by triangular solves, ``C``, ½ log det Λ_mm. They are kept while the pattern
lasts, so a pattern is factorised once per parallel chunk (not per row) and there is no Python loop
over patterns (at d = 16 with 20% MCAR, 10⁶ rows hold ~30 000 patterns). Per run the kernel fills
the transposed (d, rows) buffers ``D[k] = x̂ − μ_k``; the whole block is then whitened with the
triangle of P_k, normalised, and its moments are the register-tiled weighted Gram of ``[z; 1]`` (z =
x̂ − c) per component, exactly as in the complete kernel (``_add_weighted_gram``; no BLAS). With K ≤
4 the factorisation runs in four written-out lanes (``_factor_pattern4``). The conditional
covariances of the block's runs are kept (a bounded store: a block ends early when it is full) and
added as ``(Σ_run r_ik) C_k`` after the normalisation. ``tied`` factorises once per pattern (one Λ)
and whitens the filled row ``x̃ = [x_o; −A x_o]`` once, subtracting ``m̃_k P`` per component (``m̃_k
= [μ_o; −A μ_o]``). Loops over a run's rows use unsigned indices: with a signed start numba's
wrap-around checks stop LLVM from vectorising them (7× slower).

``diag`` / ``spherical``: no factorisation and no grouping: missing axes drop out of the sums
(a select in the row-vectorised loops), and E[(x − c)²] adds σ² on missing axes.

No component skipping except zero-weight components (``log w = −inf``): a negligible component's
``exp`` underflows to exactly 0.0 anyway, and blocks with zero responsibility for a component
skip its moment accumulation. The row chunking depends only on ``n`` and the block size, so the
result is deterministic for a given block size.
"""

from __future__ import annotations

import math
import types

import numpy as np

from ._fast_kernels import (
    _JIT_OPTS,
    _JIT_REDUCE_OPTS,
    _PARALLEL_LOCK,
    DEFAULT_BLOCK_SIZE,
    HAVE_NUMBA,
    _finish_stats,
    _stats_buffers,
)

__all__ = ["HAVE_NUMBA", "incomplete_log_resp", "incomplete_stats", "pattern_order"]

_LOG_2PI = math.log(2.0 * math.pi)
_MAX_CHUNKS = 64
_MIN_BLOCKS_PER_CHUNK = 4
#: Runs of at most this many rows sharing a pattern are filled row by row (see ``_fill_run``).
_SHORT_RUN = 6
_MODES = {"full": 0, "tied": 1, "diag": 2, "spherical": 2}

if HAVE_NUMBA:  # pragma: no branch
    import numba
    from numba import njit, prange

    from ._fast_kernels import (
        _add_weighted_gram,
        _add_whitened_squares,
        _block_scratch,
        _normalise_block,
        _scatter_gram,
    )

    _JIT = _JIT_OPTS

    @njit(**_JIT)
    def _row_keys(X):  # pragma: no cover - compiled
        """Bit j of ``keys[i]`` set when ``X[i, j]`` is NaN (d ≤ 62); also whether sorted."""
        n, d = X.shape
        keys = np.empty(n, dtype=np.int64)
        is_sorted = True
        prev = np.int64(-1)
        for i in range(n):
            key = np.int64(0)
            for j in range(d):
                if X[i, j] != X[i, j]:
                    key |= np.int64(1) << j
            keys[i] = key
            if key < prev:
                is_sorted = False
            prev = key
        return keys, is_sorted

    @njit(**_JIT)
    def _factor_pattern(LamT, mi, nm, oi, no, negA, C, hld, W, Lc, idg, Linv, s):
        """Factors of one pattern for every component at once (vectorised over the last axis).

        ``LamT[:, :, k] = Λ_k``; writes ``negA[a, j, k] = −(Λ_mm⁻¹ Λ_mo)[a, j]`` (|m| × |o|),
        ``C[a, b, k] = Λ_mm⁻¹`` (|m| × |m|) and ``hld[k] = ½ log det Λ_mm``, from the lower
        Cholesky factor ``Lc`` of Λ_mm and triangular solves.
        """  # pragma: no cover - compiled
        KP = LamT.shape[2]
        for a in range(nm):
            ma = mi[a]
            for b in range(a + 1):
                mb = mi[b]
                for k in range(KP):
                    s[k] = LamT[ma, mb, k]
                for j in range(b):
                    for k in range(KP):
                        s[k] -= Lc[a, j, k] * Lc[b, j, k]
                if a == b:
                    for k in range(KP):
                        v = math.sqrt(s[k])
                        Lc[a, a, k] = v
                        idg[a, k] = 1.0 / v
                else:
                    for k in range(KP):
                        Lc[a, b, k] = s[k] * idg[b, k]
        for k in range(KP):  # ½ log det Λ_mm = Σ log diag Lc, one log per component
            s[k] = 1.0
        for a in range(nm):
            for k in range(KP):
                s[k] *= Lc[a, a, k]
        for k in range(KP):
            pr = s[k]
            if 1e-300 < pr < 1e300:
                hld[k] = math.log(pr)
            else:  # the product left the normal range: sum the logs instead
                h = 0.0
                for a in range(nm):
                    h += math.log(Lc[a, a, k])
                hld[k] = h
        for a in range(nm):  # forward: W = Lc⁻¹ Λ_mo
            ma = mi[a]
            for j in range(no):
                oj = oi[j]
                for k in range(KP):
                    s[k] = LamT[ma, oj, k]
                for b in range(a):
                    for k in range(KP):
                        s[k] -= Lc[a, b, k] * W[b, j, k]
                for k in range(KP):
                    W[a, j, k] = s[k] * idg[a, k]
        for a in range(nm - 1, -1, -1):  # backward: Lcᵀ A = W (A overwrites W)
            for j in range(no):
                for k in range(KP):
                    s[k] = W[a, j, k]
                for b in range(a + 1, nm):
                    for k in range(KP):
                        s[k] -= Lc[b, a, k] * W[b, j, k]
                for k in range(KP):
                    v = s[k] * idg[a, k]
                    W[a, j, k] = v
                    negA[a, j, k] = -v
        for b in range(nm):  # Linv = Lc⁻¹ (lower)
            for k in range(KP):
                Linv[b, b, k] = idg[b, k]
            for a in range(b + 1, nm):
                for k in range(KP):
                    s[k] = 0.0
                for j in range(b, a):
                    for k in range(KP):
                        s[k] -= Lc[a, j, k] * Linv[j, b, k]
                for k in range(KP):
                    Linv[a, b, k] = s[k] * idg[a, k]
        for a in range(nm):  # C = Linvᵀ Linv
            for b in range(a, nm):
                for k in range(KP):
                    s[k] = 0.0
                for j in range(b, nm):
                    for k in range(KP):
                        s[k] += Linv[j, a, k] * Linv[j, b, k]
                for k in range(KP):
                    C[a, b, k] = s[k]
                    C[b, a, k] = s[k]

    @njit(**_JIT)
    def _factor_pattern4(
        LamT, mi, nm, oi, no, negA, C, hld, W, Lc, idg, Linv, s
    ):  # pragma: no cover
        """``_factor_pattern`` with the components in blocks of four written out as four scalar
        chains (``LamT.shape[2]`` a multiple of 4): LLVM packs them into one vector operation
        per step. At K' ≤ 4 (padded to 4) it takes 1.6 µs per pattern against 2.6 µs for the
        loops over K, whose four iterations are too short for its loop vectoriser; from K = 8
        the loops are as fast. tied (one precision, K' = 1) gains less (kernel 229–250 →
        207–219 ms at 10⁶ × 16, K = 4). Bitwise the same results (the same operations per lane)."""
        KP = LamT.shape[2]
        for k in range(0, KP, 4):
            for a in range(nm):
                ma = mi[a]
                for b in range(a + 1):
                    mb = mi[b]
                    s0 = LamT[ma, mb, k]
                    s1 = LamT[ma, mb, k + 1]
                    s2 = LamT[ma, mb, k + 2]
                    s3 = LamT[ma, mb, k + 3]
                    for j in range(b):
                        s0 -= Lc[a, j, k] * Lc[b, j, k]
                        s1 -= Lc[a, j, k + 1] * Lc[b, j, k + 1]
                        s2 -= Lc[a, j, k + 2] * Lc[b, j, k + 2]
                        s3 -= Lc[a, j, k + 3] * Lc[b, j, k + 3]
                    if a == b:
                        v0 = math.sqrt(s0)
                        v1 = math.sqrt(s1)
                        v2 = math.sqrt(s2)
                        v3 = math.sqrt(s3)
                        Lc[a, a, k] = v0
                        Lc[a, a, k + 1] = v1
                        Lc[a, a, k + 2] = v2
                        Lc[a, a, k + 3] = v3
                        idg[a, k] = 1.0 / v0
                        idg[a, k + 1] = 1.0 / v1
                        idg[a, k + 2] = 1.0 / v2
                        idg[a, k + 3] = 1.0 / v3
                    else:
                        Lc[a, b, k] = s0 * idg[b, k]
                        Lc[a, b, k + 1] = s1 * idg[b, k + 1]
                        Lc[a, b, k + 2] = s2 * idg[b, k + 2]
                        Lc[a, b, k + 3] = s3 * idg[b, k + 3]
            # log det
            p0 = p1 = p2 = p3 = 1.0
            for a in range(nm):
                p0 *= Lc[a, a, k]
                p1 *= Lc[a, a, k + 1]
                p2 *= Lc[a, a, k + 2]
                p3 *= Lc[a, a, k + 3]
            for q, pr in ((0, p0), (1, p1), (2, p2), (3, p3)):
                if 1e-300 < pr < 1e300:
                    hld[k + q] = math.log(pr)
                else:
                    h = 0.0
                    for a in range(nm):
                        h += math.log(Lc[a, a, k + q])
                    hld[k + q] = h
            # forward W = Lc^-1 Lam_mo
            for a in range(nm):
                ma = mi[a]
                for j in range(no):
                    oj = oi[j]
                    s0 = LamT[ma, oj, k]
                    s1 = LamT[ma, oj, k + 1]
                    s2 = LamT[ma, oj, k + 2]
                    s3 = LamT[ma, oj, k + 3]
                    for b in range(a):
                        s0 -= Lc[a, b, k] * W[b, j, k]
                        s1 -= Lc[a, b, k + 1] * W[b, j, k + 1]
                        s2 -= Lc[a, b, k + 2] * W[b, j, k + 2]
                        s3 -= Lc[a, b, k + 3] * W[b, j, k + 3]
                    W[a, j, k] = s0 * idg[a, k]
                    W[a, j, k + 1] = s1 * idg[a, k + 1]
                    W[a, j, k + 2] = s2 * idg[a, k + 2]
                    W[a, j, k + 3] = s3 * idg[a, k + 3]
            for a in range(nm - 1, -1, -1):
                for j in range(no):
                    s0 = W[a, j, k]
                    s1 = W[a, j, k + 1]
                    s2 = W[a, j, k + 2]
                    s3 = W[a, j, k + 3]
                    for b in range(a + 1, nm):
                        s0 -= Lc[b, a, k] * W[b, j, k]
                        s1 -= Lc[b, a, k + 1] * W[b, j, k + 1]
                        s2 -= Lc[b, a, k + 2] * W[b, j, k + 2]
                        s3 -= Lc[b, a, k + 3] * W[b, j, k + 3]
                    v0 = s0 * idg[a, k]
                    v1 = s1 * idg[a, k + 1]
                    v2 = s2 * idg[a, k + 2]
                    v3 = s3 * idg[a, k + 3]
                    W[a, j, k] = v0
                    W[a, j, k + 1] = v1
                    W[a, j, k + 2] = v2
                    W[a, j, k + 3] = v3
                    negA[a, j, k] = -v0
                    negA[a, j, k + 1] = -v1
                    negA[a, j, k + 2] = -v2
                    negA[a, j, k + 3] = -v3
            for b in range(nm):
                Linv[b, b, k] = idg[b, k]
                Linv[b, b, k + 1] = idg[b, k + 1]
                Linv[b, b, k + 2] = idg[b, k + 2]
                Linv[b, b, k + 3] = idg[b, k + 3]
                for a in range(b + 1, nm):
                    s0 = s1 = s2 = s3 = 0.0
                    for j in range(b, a):
                        s0 -= Lc[a, j, k] * Linv[j, b, k]
                        s1 -= Lc[a, j, k + 1] * Linv[j, b, k + 1]
                        s2 -= Lc[a, j, k + 2] * Linv[j, b, k + 2]
                        s3 -= Lc[a, j, k + 3] * Linv[j, b, k + 3]
                    Linv[a, b, k] = s0 * idg[a, k]
                    Linv[a, b, k + 1] = s1 * idg[a, k + 1]
                    Linv[a, b, k + 2] = s2 * idg[a, k + 2]
                    Linv[a, b, k + 3] = s3 * idg[a, k + 3]
            for a in range(nm):
                for b in range(a, nm):
                    s0 = s1 = s2 = s3 = 0.0
                    for j in range(b, nm):
                        s0 += Linv[j, a, k] * Linv[j, b, k]
                        s1 += Linv[j, a, k + 1] * Linv[j, b, k + 1]
                        s2 += Linv[j, a, k + 2] * Linv[j, b, k + 2]
                        s3 += Linv[j, a, k + 3] * Linv[j, b, k + 3]
                    C[a, b, k] = s0
                    C[a, b, k + 1] = s1
                    C[a, b, k + 2] = s2
                    C[a, b, k + 3] = s3
                    C[b, a, k] = s0
                    C[b, a, k + 1] = s1
                    C[b, a, k + 2] = s2
                    C[b, a, k + 3] = s3

    @njit(**_JIT)
    def _fill_run(
        r0, r1, mode, nm, no, mi, oi, means, meansT, negA, pconst, mtil, mt, active,
        Xt, Zt, Zk, D, RC,
    ):  # fmt: skip  # pragma: no cover - compiled
        """Columns ``r0:r1`` (one pattern) of ``D[k] = x̂ − μ_k`` (tied: ``Zt = x̃`` too) and of
        the row constants ``RC[k] = log w_k + log det terms``.

        Long runs loop over rows innermost; short ones (full only) row by row with the components
        innermost (``Zk`` (d, K') scratch), which avoids ~|m|·|o| loop starts per component; with
        four lanes (K' = 4, ``meansT`` padded) written out, as in ``_factor_pattern4``.
        """
        K = D.shape[0]
        d = Xt.shape[0]
        if mode == 0 and r1 - r0 <= _SHORT_RUN and negA.shape[2] == 4:
            for r in range(r0, r1):
                for j in range(no):
                    o = oi[j]
                    x = Xt[o, r]
                    Zk[o, 0] = x - meansT[o, 0]
                    Zk[o, 1] = x - meansT[o, 1]
                    Zk[o, 2] = x - meansT[o, 2]
                    Zk[o, 3] = x - meansT[o, 3]
                for a in range(nm):
                    s0 = s1 = s2 = s3 = 0.0
                    for j in range(no):
                        o = oi[j]
                        s0 += negA[a, j, 0] * Zk[o, 0]
                        s1 += negA[a, j, 1] * Zk[o, 1]
                        s2 += negA[a, j, 2] * Zk[o, 2]
                        s3 += negA[a, j, 3] * Zk[o, 3]
                    ma = mi[a]
                    Zk[ma, 0] = s0
                    Zk[ma, 1] = s1
                    Zk[ma, 2] = s2
                    Zk[ma, 3] = s3
                for k in range(K):
                    if active[k]:
                        RC[k, r] = pconst[k]
                        for i in range(d):
                            D[k, i, r] = Zk[i, k]
            return
        if mode == 0 and r1 - r0 <= _SHORT_RUN:
            for r in range(r0, r1):
                for j in range(no):
                    o = oi[j]
                    x = Xt[o, r]
                    for k in range(K):
                        Zk[o, k] = x - meansT[o, k]
                for a in range(nm):
                    ma = mi[a]
                    for k in range(K):
                        Zk[ma, k] = 0.0
                    for j in range(no):
                        o = oi[j]
                        for k in range(K):
                            Zk[ma, k] += negA[a, j, k] * Zk[o, k]
                for k in range(K):
                    if active[k]:
                        RC[k, r] = pconst[k]
                        for i in range(d):
                            D[k, i, r] = Zk[i, k]
            return
        u0 = np.uint64(r0)  # unsigned indices: no wrap-around checks, the loops vectorise
        u1 = np.uint64(r1)
        if mode == 1:  # x̃ = [x_o; −A x_o]
            for j in range(no):
                o = oi[j]
                for r in range(u0, u1):
                    Zt[o, r] = Xt[o, r]
            for a in range(nm):
                ma = mi[a]
                for r in range(u0, u1):
                    Zt[ma, r] = 0.0
                for j in range(no):
                    coef = negA[a, j, 0]
                    o = oi[j]
                    for r in range(u0, u1):
                        Zt[ma, r] += coef * Zt[o, r]
        for k in range(K):
            if not active[k]:
                continue
            ck = pconst[k]
            for r in range(u0, u1):
                RC[k, r] = ck
            if mode == 0:
                for j in range(no):
                    o = oi[j]
                    m = means[k, o]
                    for r in range(u0, u1):
                        D[k, o, r] = Xt[o, r] - m
                for a in range(nm):  # four terms per pass, in order of j (as the whitening)
                    ma = mi[a]
                    for r in range(u0, u1):
                        D[k, ma, r] = 0.0
                    j = 0
                    while j + 4 <= no:
                        c0, c1, c2, c3 = (
                            negA[a, j, k],
                            negA[a, j + 1, k],
                            negA[a, j + 2, k],
                            negA[a, j + 3, k],
                        )
                        o0, o1, o2, o3 = oi[j], oi[j + 1], oi[j + 2], oi[j + 3]
                        for r in range(u0, u1):
                            D[k, ma, r] = (
                                D[k, ma, r]
                                + c0 * D[k, o0, r]
                                + c1 * D[k, o1, r]
                                + c2 * D[k, o2, r]
                                + c3 * D[k, o3, r]
                            )
                        j += 4
                    while j < no:
                        coef = negA[a, j, k]
                        o = oi[j]
                        for r in range(u0, u1):
                            D[k, ma, r] += coef * D[k, o, r]
                        j += 1
            else:
                for a in range(d):
                    t = mtil[k, a]
                    for r in range(u0, u1):
                        D[k, a, r] = Zt[a, r] - t

    @njit(**_JIT)
    def _block_maha(
        nb, mode, tri, P, active, Zt, Yt, D, RMT, run_r0, nruns, RC, y, maha, L, rowmax
    ):  # pragma: no cover - compiled
        """``L[k, r] = RC[k, r] − ½ ‖D[k, :, r] P_k‖²`` over the block and ``rowmax[r] =
        max_k L[k, r]``. Tied: ‖x̃P − m̃_kP‖², with ``RMT[q, k] = m̃_k P`` of run q."""
        K = D.shape[0]
        d = Zt.shape[0]
        for r in range(nb):
            rowmax[r] = -np.inf
        if mode == 1:
            for j in range(d):
                for r in range(nb):
                    Yt[j, r] = 0.0
                ilim = j + 1 if tri else d
                for i in range(ilim):
                    p = P[0, i, j]
                    for r in range(nb):
                        Yt[j, r] += Zt[i, r] * p
        for k in range(K):
            if not active[k]:
                for r in range(nb):
                    L[k, r] = -np.inf
                continue
            for r in range(nb):
                maha[r] = 0.0
            if mode == 0:
                _add_whitened_squares(D, k, P, tri, nb, y, maha)
            else:
                for q in range(nruns):
                    u0 = np.uint64(run_r0[q])  # unsigned: the loops vectorise
                    u1 = np.uint64(run_r0[q + 1])
                    for j in range(d):
                        m = RMT[q, k, j]
                        for r in range(u0, u1):
                            t = Yt[j, r] - m
                            maha[r] += t * t
            for r in range(nb):
                v = RC[k, r] - 0.5 * maha[r]
                L[k, r] = v
                if v > rowmax[r]:
                    rowmax[r] = v

    def _grouped_kernel(
        X, perm, const0, means, meansT, off, has_off, P, Lam, mode, tri, block, nchunks,
        chunk_order, want_stats, nk_o, sx_o, sxx_o, want_resp, lpn_o, lr_o,
    ):  # fmt: skip  # pragma: no cover - compiled
        """full (mode 0) / tied (mode 1) over rows ``perm`` (grouped by pattern).

        Iteration ``i`` of the parallel loop handles chunk ``chunk_order[i]``: sorted by pattern,
        chunks differ in cost (many rare patterns late in the order), and the threads take
        contiguous ranges of iterations; the spread evens them out. Each chunk keeps its own
        accumulators, so the result does not depend on the order."""
        n, d = X.shape
        K = const0.shape[0]
        KP = Lam.shape[2]  # P.shape[0], padded to 4 when smaller (see _factor_pattern4)
        n_blocks = (n + block - 1) // block
        bpc = (n_blocks + nchunks - 1) // nchunks
        ll_o = np.zeros(nchunks)
        ent_o = np.zeros(nchunks)
        active = np.zeros(K, dtype=np.bool_)
        for k in range(K):
            active[k] = const0[k] > -np.inf  # zero-weight components are never evaluated
        ident = perm.shape[0] == 0  # rows already in pattern order
        for ci in prange(nchunks):
            c = chunk_order[ci]
            Xt = np.empty((d, block))
            Zt = np.empty((d, block))
            Yt = np.empty((d, block))
            D = np.empty((K, d + 1, block))  # [x̂ − μ_k; 1], then [x̂ − c_k; 1] for the moments
            for k in range(K):
                for r in range(block):
                    D[k, d, r] = 1.0
            RMT = np.empty((block, K, d)) if mode == 1 else np.empty((1, 1, 1))
            RC = np.empty((K, block))
            Zk = np.empty((d, KP))
            Wt = np.empty((d + 1, block))
            S = np.zeros((K if want_stats else 1, d + 1, d + 1))  # augmented Gram per component
            y = np.empty(block)
            maha = np.empty(block)
            rowmax, ls, acc, ibuf, L, E = _block_scratch(K, block)
            used = np.zeros(K, dtype=np.bool_)
            # the current pattern and its factors
            cur = np.zeros(d, dtype=np.bool_)
            have = False
            mi = np.empty(d, dtype=np.int64)
            oi = np.empty(d, dtype=np.int64)
            nm = 0
            no = 0
            negA = np.empty((d, d, KP))
            Cp = np.empty((d, d, KP))
            hld = np.empty(KP)
            W = np.empty((d, d, KP))
            Lc = np.empty((d, d, KP))
            idg = np.empty((d, KP))
            Linv = np.empty((d, d, KP))
            sk = np.empty(KP)
            pconst = np.empty(K)
            mtil = np.empty((K, d))  # tied: m̃_k = [μ_o; −A μ_o]
            mt = np.empty((K, d))  # tied: m̃_k P
            # the runs of the current block: rows, missing indices, conditional covariances
            run_r0 = np.empty(block + 1, dtype=np.int64)
            run_nm = np.empty(block, dtype=np.int64)
            run_c = np.empty(block, dtype=np.int64)
            run_mi = np.empty((block, d), dtype=np.int64)
            cstore = np.empty(KP * d * d * 8)
            ll = 0.0
            ent = 0.0
            start = c * bpc * block
            stop = min(n, start + bpc * block)
            bnext = start
            while bnext < stop:  # blocks of ≤ block rows whose patterns' C fit in cstore
                b0 = bnext
                nb = min(block, stop - b0)
                for r in range(nb):
                    src = b0 + r if ident else perm[b0 + r]
                    for j in range(d):
                        Xt[j, r] = X[src, j]
                nruns = 0
                coff = 0
                r0 = 0
                while r0 < nb:
                    same = have
                    if have:
                        for j in range(d):
                            if (Xt[j, r0] != Xt[j, r0]) != cur[j]:
                                same = False
                                break
                    if not same:  # a new pattern: factorise
                        have = True
                        nm = 0
                        no = 0
                        for j in range(d):
                            isn = Xt[j, r0] != Xt[j, r0]
                            cur[j] = isn
                            if isn:
                                mi[nm] = j
                                nm += 1
                            else:
                                oi[no] = j
                                no += 1
                        if KP == 4:
                            _factor_pattern4(
                                Lam, mi, nm, oi, no, negA, Cp, hld, W, Lc, idg, Linv, sk
                            )
                        else:
                            _factor_pattern(
                                Lam, mi, nm, oi, no, negA, Cp, hld, W, Lc, idg, Linv, sk
                            )
                        for k in range(K):
                            kk = k if mode == 0 else 0
                            pconst[k] = const0[k] - hld[kk] - 0.5 * no * _LOG_2PI
                        if mode == 1:
                            for k in range(K):
                                for j in range(no):
                                    mtil[k, oi[j]] = means[k, oi[j]]
                                for a in range(nm):
                                    s = 0.0
                                    for j in range(no):
                                        s += negA[a, j, 0] * means[k, oi[j]]
                                    mtil[k, mi[a]] = s
                                for j in range(d):
                                    s = 0.0
                                    ilim = j + 1 if tri else d
                                    for i in range(ilim):
                                        s += mtil[k, i] * P[0, i, j]
                                    mt[k, j] = s
                    r1 = r0 + 1
                    while r1 < nb:
                        eq = True
                        for j in range(d):
                            if (Xt[j, r1] != Xt[j, r1]) != cur[j]:
                                eq = False
                                break
                        if not eq:
                            break
                        r1 += 1
                    if want_stats and nruns > 0 and coff + KP * nm * nm > cstore.shape[0]:
                        nb = r0  # cstore is full: the block ends before this run
                        break
                    _fill_run(
                        r0, r1, mode, nm, no, mi, oi, means, meansT, negA, pconst, mtil, mt,
                        active, Xt, Zt, Zk, D, RC,
                    )  # fmt: skip
                    run_r0[nruns] = r0
                    if mode == 1:
                        for k in range(K):
                            for j in range(d):
                                RMT[nruns, k, j] = mt[k, j]
                    if want_stats:  # keep the run's pattern for the conditional covariances
                        run_nm[nruns] = nm
                        run_c[nruns] = coff
                        for a in range(nm):
                            run_mi[nruns, a] = mi[a]
                        for kk in range(KP):
                            for a in range(nm):
                                for b in range(nm):
                                    cstore[coff] = Cp[a, b, kk]
                                    coff += 1
                    nruns += 1
                    r0 = r1
                run_r0[nruns] = nb
                bnext = b0 + nb
                _block_maha(
                    nb, mode, tri, P, active, Zt, Yt, D, RMT, run_r0, nruns, RC, y, maha, L, rowmax
                )
                bll, bent = _normalise_block(nb, active, L, E, rowmax, ls, acc, ibuf)
                ll += bll
                ent += bent
                if want_resp:
                    for r in range(nb):
                        lpn = rowmax[r] + ls[r]
                        dst = b0 + r if ident else perm[b0 + r]
                        lpn_o[dst] = lpn
                        for k in range(K):
                            lr_o[dst, k] = L[k, r] - lpn
                if not want_stats:
                    continue
                for k in range(K):
                    used[k] = False
                for q in range(nruns):  # conditional covariance: (Σ_run r_ik) C_k in (m, m)
                    qm = run_nm[q]
                    for k in range(K):
                        if not active[k]:
                            continue
                        s = 0.0
                        for r in range(run_r0[q], run_r0[q + 1]):
                            s += E[k, r]
                        if s > 0.0:
                            used[k] = True
                            base = run_c[q] + (k if mode == 0 else 0) * qm * qm
                            for a in range(qm):
                                ma = run_mi[q, a]
                                for b in range(a, qm):
                                    sxx_o[c, k, ma, run_mi[q, b]] += s * cstore[base + a * qm + b]
                for k in range(K):
                    if not used[k]:
                        continue
                    Dk = D[k]
                    if has_off:
                        for a in range(d):
                            t = off[k, a]
                            for r in range(nb):
                                Dk[a, r] += t
                    _add_weighted_gram(E[k], Dk, Wt, nb, S[k])
            if want_stats:
                for k in range(K):
                    nk_o[c, k] += _scatter_gram(S[k], sxx_o[c, k], sx_o[c, k])
            ll_o[c] = ll
            ent_o[c] = ent
        return ll_o, ent_o

    @njit(**_JIT_REDUCE_OPTS)
    def _masked_diag_moments(Xt, Ek, c, mu, var, nb, sx, sxx):  # pragma: no cover - compiled
        """diag/spherical moments of one block and component, NaN cells taking their
        conditional moments: ``E[x − c] = μ − c`` and ``E[(x − c)²] = (μ − c)² + σ²``. Adds
        ``Σ e E[x − c]`` to ``sx``, ``Σ e E[(x − c)²]`` to ``sxx[:, 0]``, returns ``Σ e``.
        Vector reductions (``reassoc`` here only); a ``dgemv`` in their place gave the serial and
        parallel kernel variants results 1 ulp apart."""
        s0 = 0.0
        for r in range(nb):
            s0 += Ek[r]
        for a in range(Xt.shape[0]):
            cx = c[a]
            cm = mu[a] - cx
            vm = var[a]
            s1 = 0.0
            s2 = 0.0
            for r in range(nb):
                xr = Xt[a, r]
                ob = xr == xr
                t = xr - cx
                t = t if ob else cm
                w = Ek[r] * t
                s1 += w
                s2 += w * t if ob else w * t + Ek[r] * vm
            sx[a] += s1
            sxx[a, 0] += s2
        return s0

    def _masked_kernel(
        X, lw, means, shift, Pd, hl, var, block, nchunks,
        want_stats, nk_o, sx_o, sxx_o, want_resp, lpn_o, lr_o,
    ):  # fmt: skip  # pragma: no cover - compiled
        """diag / spherical: missing axes drop out (``hl[k, j] = log Pd[k, j] − ½ log 2π``)."""
        n, d = X.shape
        K = lw.shape[0]
        n_blocks = (n + block - 1) // block
        bpc = (n_blocks + nchunks - 1) // nchunks
        ll_o = np.zeros(nchunks)
        ent_o = np.zeros(nchunks)
        for c in prange(nchunks):
            Xt = np.zeros((d, block))  # zero: padding columns must stay finite
            maha = np.empty(block)
            rc = np.empty(block)
            rowmax, ls, acc, ibuf, L, E = _block_scratch(K, block)
            active = np.zeros(K, dtype=np.bool_)
            ll = 0.0
            ent = 0.0
            start = c * bpc * block
            stop = min(n, start + bpc * block)
            for b0 in range(start, stop, block):
                nb = min(block, stop - b0)
                for r in range(nb):
                    for j in range(d):
                        Xt[j, r] = X[b0 + r, j]
                if nb < block:
                    for j in range(d):
                        for r in range(nb, block):
                            Xt[j, r] = 0.0
                for r in range(nb):
                    rowmax[r] = -np.inf
                for k in range(K):
                    ck = lw[k]
                    if not (ck > -np.inf):
                        active[k] = False
                        for r in range(nb):
                            L[k, r] = -np.inf
                        continue
                    active[k] = True
                    for r in range(nb):
                        maha[r] = 0.0
                        rc[r] = 0.0
                    for j in range(d):
                        m = means[k, j]
                        p = Pd[k, j]
                        h = hl[k, j]
                        for r in range(nb):
                            x = Xt[j, r]
                            ob = x == x
                            t = (x - m) * p
                            maha[r] += t * t if ob else 0.0
                            rc[r] += h if ob else 0.0
                    for r in range(nb):
                        v = ck + rc[r] - 0.5 * maha[r]
                        L[k, r] = v
                        if v > rowmax[r]:
                            rowmax[r] = v
                bll, bent = _normalise_block(nb, active, L, E, rowmax, ls, acc, ibuf)
                ll += bll
                ent += bent
                if want_resp:
                    for r in range(nb):
                        lpn = rowmax[r] + ls[r]
                        lpn_o[b0 + r] = lpn
                        for k in range(K):
                            lr_o[b0 + r, k] = L[k, r] - lpn
                if not want_stats:
                    continue
                for k in range(K):
                    if not active[k]:
                        continue
                    nk_o[c, k] += _masked_diag_moments(
                        Xt, E[k], shift[k], means[k], var[k], nb, sx_o[c, k], sxx_o[c, k]
                    )
            ll_o[c] = ll
            ent_o[c] = ent
        return ll_o, ent_o

    def _compiled(func, name, parallel):
        # numba's on-disk cache is keyed by the qualified name, not the flags (see _fast_kernels)
        clone = types.FunctionType(func.__code__, func.__globals__, name, func.__defaults__)
        clone.__qualname__ = name
        return njit(parallel=parallel, **_JIT)(clone)

    _grouped_parallel = _compiled(_grouped_kernel, "_grouped_parallel", True)
    _grouped_serial = _compiled(_grouped_kernel, "_grouped_serial", False)
    _masked_parallel = _compiled(_masked_kernel, "_masked_parallel", True)
    _masked_serial = _compiled(_masked_kernel, "_masked_serial", False)


# --------------------------------------------------------------------------------------------
# Python side
# --------------------------------------------------------------------------------------------
def _n_chunks(n, block):
    n_blocks = max(1, -(-n // block))
    return max(1, min(_MAX_CHUNKS, n_blocks // _MIN_BLOCKS_PER_CHUNK))


def _spread_order(nchunks):
    """A fixed permutation of ``range(nchunks)`` whose contiguous ranges sample the whole range
    (stride ≈ 0.618·nchunks, coprime to it)."""
    step = max(1, round(0.6180339887 * nchunks))
    while math.gcd(step, nchunks) != 1:
        step += 1
    return (np.arange(nchunks, dtype=np.int64) * step) % nchunks


#: ``perm`` for rows already in pattern order (the kernels read it as the identity).
_EMPTY_PERM = np.zeros(0, dtype=np.int64)


def _grouping_order(X):
    """As :func:`pattern_order`, but ``_EMPTY_PERM`` when X is already in that order."""
    if X.shape[1] <= 62:
        keys, is_sorted = _row_keys(X)
        if is_sorted:
            return _EMPTY_PERM
        return np.argsort(keys, kind="stable").astype(np.int64)
    return pattern_order(X)


def pattern_order(X):
    """Row order grouping equal missingness patterns (bit j = column j missing, ascending, as
    :func:`em_core.estep.pattern_keys`); ``np.arange(n)`` when X is already in that order."""
    n, d = X.shape
    if d <= 62:
        keys, is_sorted = _row_keys(X)
        if is_sorted:
            return np.arange(n, dtype=np.int64)
        return np.argsort(keys, kind="stable").astype(np.int64)
    packed = np.ascontiguousarray(np.packbits(np.isnan(X), axis=1))
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    return np.argsort(keys, kind="stable").astype(np.int64)


def _prepare(X, log_weights, means, precisions_chol, covariance_type, shift):
    if covariance_type not in _MODES:
        raise ValueError(f"covariance_type must be one of {sorted(_MODES)}")
    X = np.ascontiguousarray(X, dtype=np.float64)
    d = X.shape[1]
    lw = np.ascontiguousarray(log_weights, dtype=np.float64).reshape(-1)
    K = lw.shape[0]
    means = np.ascontiguousarray(means, dtype=np.float64)
    shift = means if shift is None else np.ascontiguousarray(shift, dtype=np.float64)
    if means.shape != (K, d) or shift.shape != (K, d):
        raise ValueError(f"means and shift must have shape {(K, d)}")
    pc = np.ascontiguousarray(precisions_chol, dtype=np.float64)
    return X, lw, means, shift, pc, _MODES[covariance_type]


def _run(X, lw, means, shift, pc, mode, block, parallel, want_stats, want_resp, presorted):
    n, d = X.shape
    K = lw.shape[0]
    nchunks = _n_chunks(n, block)
    nk, sx, sxx = _stats_buffers(nchunks, K, d, mode, want_stats)
    if want_resp:
        lpn, lr = np.empty(n), np.empty((n, K))
    else:
        lpn, lr = np.zeros(1), np.zeros((1, 1))
    if mode == 2:
        Pd = pc.reshape(K, -1)
        if Pd.shape[1] not in (1, d):
            raise ValueError("precisions_chol has the wrong shape")
        Pd = np.ascontiguousarray(np.broadcast_to(Pd, (K, d)))
        hl = np.log(Pd) - 0.5 * _LOG_2PI
        var = 1.0 / Pd**2
        args = (X, lw, means, shift, Pd, hl, var, block, nchunks,
                want_stats, nk, sx, sxx, want_resp, lpn, lr)  # fmt: skip
        kernels = (_masked_parallel, _masked_serial)
    else:
        P = pc if mode == 0 else pc[None]
        if P.shape != (K if mode == 0 else 1, d, d):
            raise ValueError("precisions_chol has the wrong shape")
        P = np.ascontiguousarray(P)
        Lam = P @ np.swapaxes(P, 1, 2)
        if Lam.shape[0] < 4:  # identity components pad K to the lanes of _factor_pattern4
            Lam = np.concatenate([Lam, np.broadcast_to(np.eye(d), (4 - Lam.shape[0], d, d))])
        Lam = np.ascontiguousarray(np.moveaxis(Lam, 0, -1))  # (d, d, K')
        logdet = np.log(np.diagonal(P, axis1=1, axis2=2)).sum(axis=1)
        const0 = np.ascontiguousarray(lw + (logdet if mode == 0 else logdet[0]))
        tri = not np.any(np.tril(P, -1))
        off = np.ascontiguousarray(means - shift)
        has_off = bool(np.any(off))
        perm = _EMPTY_PERM if presorted else _grouping_order(X)
        meansT = np.zeros((d, max(K, Lam.shape[2])))  # full: padded like Lam (see _fill_run)
        meansT[:, :K] = means.T
        args = (X, perm, const0, means, meansT, off, has_off, P, Lam, mode, tri, block, nchunks,
                _spread_order(nchunks), want_stats, nk, sx, sxx, want_resp, lpn, lr)  # fmt: skip
        kernels = (_grouped_parallel, _grouped_serial)
    use_parallel = (n > block and numba.get_num_threads() > 1) if parallel is None else parallel
    if use_parallel and _PARALLEL_LOCK.acquire(blocking=False):
        try:
            ll, ent = kernels[0](*args)
        finally:
            _PARALLEL_LOCK.release()
    else:
        ll, ent = kernels[1](*args)
    return nk, sx, sxx, ll, ent, lpn, lr


def _check(block_size):
    if not HAVE_NUMBA:
        raise ImportError("the incomplete-data kernels need numba (em_core.estep has a fallback)")
    block = DEFAULT_BLOCK_SIZE if block_size is None else int(block_size)
    if block < 1:
        raise ValueError(f"block_size must be >= 1, got {block}")
    return block


def incomplete_stats(
    X, log_weights, means, precisions_chol, covariance_type, shift, *, block_size=None,
    parallel=None, presorted=False,
):  # fmt: skip
    """Fused E-step and sufficient statistics over rows that may contain NaN (missing) cells.

    Parameters and returns as :func:`em_core._fast_kernels.complete_stats`; ``sx`` and ``sxx``
    hold the conditional moments (missing cells at their conditional mean, the conditional
    covariance added to ``sxx``) and ``log_likelihood`` the observed-data log-likelihood.
    Complete rows are allowed (they are the pattern with no missing cell). A row with no observed
    cell contributes log-density 0 and the component's moments. ``presorted=True``: the caller
    knows the rows are grouped by pattern (the result is the same either way; grouping only
    saves factorisations), so the check is skipped.
    """
    block = _check(block_size)
    X, lw, means, shift, pc, mode = _prepare(
        X, log_weights, means, precisions_chol, covariance_type, shift
    )
    nk, sx, sxx, ll, ent, _, _ = _run(
        X, lw, means, shift, pc, mode, block, parallel, True, False, presorted
    )
    return _finish_stats(nk, sx, sxx, ll, ent, mode)


def incomplete_log_resp(
    X, log_weights, means, precisions_chol, covariance_type, *, block_size=None, parallel=None,
    presorted=False,
):  # fmt: skip
    """``(log_prob_norm (n,), log_resp (n, K))`` of rows that may contain NaN cells
    (observed-data densities), as :func:`em_core._fast_kernels.complete_log_resp`."""
    block = _check(block_size)
    X, lw, means, shift, pc, mode = _prepare(
        X, log_weights, means, precisions_chol, covariance_type, None
    )
    out = _run(X, lw, means, shift, pc, mode, block, parallel, False, True, presorted)
    return out[5], out[6]
