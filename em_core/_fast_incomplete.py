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
Each row block (at most ``block`` rows) is cut into runs of one pattern, found by a 64-bit key of
each row's missing cells built while the block is gathered (above d = 64 the key only filters and
the cells decide). When a run starts a new pattern its factors are computed inside the kernel for
all components at once (four per vector, see below): Cholesky of Λ_mm, ``A`` by triangular solves,
``C``, ½ log det Λ_mm. They are kept while the pattern lasts, so a pattern is factorised once per
parallel chunk (not per row) and there is no Python loop over patterns (at d = 16 with 20% MCAR, 10⁶
rows hold ~30 000 patterns). The transposed (d, rows) buffers ``D[k] = x̂ − μ_k`` receive ``x −
μ_k`` for the whole block at once (NaN where missing) and each run then overwrites its missing rows
with ``−A (x_o − μ_o)``: few loops per run, since most runs are short and every loop pays its own
start-up. The block is whitened with the triangle of P_k, normalised, and its moments are the
register-tiled weighted Gram of ``[z; 1]`` (z = x̂ − c) per component, exactly as in the complete
kernel (``_add_weighted_gram``; no BLAS). full pads K with identity components to a multiple of 4,
K', and its per-pattern and per-row work (factorisation, fill, solves) runs over four components at
a time as one ``<4 x double>`` vector (``_factor_lanes``, :mod:`em_core._lanes4`); tied's single
precision is padded to four lanes too (a vector costs what one scalar lane did).
A pattern whose rows end inside the block and number fewer than |o| (and ≤ 6) skips A: full fills
its rows by two triangular solves each (``_solve_rows``, |m|·|o| + |m|² per row against |m|²·|o|
for A). Most patterns are such: at d = 16 with 20 % MCAR, 10⁵ rows hold 13 000 patterns, 5 800 of
them single rows. The conditional covariances of the block's runs are kept (a bounded store: a block
ends early when it is full) and added as ``(Σ_run r_ik) C_k`` after the normalisation, into a
per-chunk (d, d, K) sum with the components innermost that joins ``sxx`` before the Gram (the same
order of additions as adding them to ``sxx`` directly, a few % faster). ``tied``
factorises once per pattern (one Λ) and whitens the filled row ``x̃ = [x_o; −A x_o]`` once,
subtracting ``m̃_k P`` per component (``m̃_k = [μ_o; −A μ_o]``, formed from C and the precomputed
Λ μ_k and μ_k P); short runs form A x_o as C (Λ_mo x_o), so that only long runs need A. Loops over
a run's rows use
unsigned indices: with a signed start numba's wrap-around checks stop LLVM from vectorising them (7×
slower).

``diag`` / ``spherical``: no factorisation and no grouping: missing axes drop out of the sums
(a select in the row-vectorised loops), and E[(x − c)²] adds σ² on missing axes.

No component skipping except zero-weight components (``log w = −inf``): a negligible component's
``exp`` underflows to exactly 0.0 anyway, and blocks with zero responsibility for a component
skip its moment accumulation. The row chunking depends only on ``n`` and the block size, so the
result is deterministic for a given block size.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._fast_kernels import (
    _COV_CODES,
    _JIT_OPTS,
    _JIT_REDUCE_OPTS,
    _NO_PERM,
    DEFAULT_BLOCK_SIZE,
    DIAGONAL,
    FULL,
    HAVE_NUMBA,
    TIED,
    _finish_stats,
    _stats_buffers,
    compiled_variants,
    frozen,
    n_chunks,
    run_variant,
)

__all__ = ["HAVE_NUMBA", "incomplete_log_resp", "incomplete_stats", "pattern_order"]

_LOG_2PI = math.log(2.0 * math.pi)
_MIN_BLOCKS_PER_CHUNK = 4
#: Runs of at most this many rows sharing a pattern are filled row by row (``_fill_rows_full``).
_SHORT_RUN = 6
#: A zero the kernels start their counters at: numba types the literal ``0`` as ``Literal[int](0)``,
#: and a helper called before the counter is reassigned gets compiled once more for that type.
_ZERO = np.int64(0)
#: tied: runs of at most this many rows take their log-density row by row (``_tied_block_maha``).
#: Up to here the K·d loop starts of the blocked form cost more than the rows themselves.
_ROWWISE_MAHA = 64

if HAVE_NUMBA:  # pragma: no branch
    from numba import njit, prange

    from ._fast_kernels import (
        _add_weighted_gram,
        _add_whitened_squares,
        _block_scratch,
        _normalise_block,
        _scatter_gram,
        _write_block_resp,
    )
    from ._lanes4 import (
        vdiv,
        vfma,
        vfnma,
        vlane,
        vld1,
        vld2,
        vld3,
        vmul,
        vneg,
        vsplat,
        vsqrt,
        vst1,
        vst2,
        vst3,
        vsub,
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

    @njit(inline="always", **_JIT)
    def _log_diag_product(pr, Lc, nm, k):  # pragma: no cover - compiled
        """``log Π_a Lc[a, a, k]`` from the product ``pr``: one log, or the sum of the logs when
        the product has left the normal range."""
        if 1e-300 < pr < 1e300:
            return math.log(pr)
        h = 0.0
        for a in range(nm):
            h += math.log(Lc[a, a, k])
        return h

    @njit(**_JIT)
    def _factor_lanes(
        LamT, mi, nm, oi, no, negA, C, hld, W, Lc, idg, Linv, with_a, t0, k0
    ):  # pragma: no cover - compiled
        """Factors of one pattern for the four components ``k0:k0 + 4`` (one vector register per
        entry, see :mod:`em_core._lanes4`), called for each group of four of the K' lanes (tied:
        one group).

        ``LamT[:, :, k] = Λ_k``; writes ``negA[a, j, k] = −(Λ_mm⁻¹ Λ_mo)[a, j]`` (|m| × |o|),
        ``C[a, b, k] = Λ_mm⁻¹`` (|m| × |m|, the upper triangle b ≥ a only) and ``hld[k] = ½ log
        det Λ_mm``, from the lower Cholesky factor ``Lc`` of Λ_mm and triangular solves.
        ``with_a=False`` skips A (the rows are then filled by per-row solves with ``Lc``, see
        ``_solve_rows``). The solves,
        Lc⁻¹ and Lc⁻ᵀLc⁻¹ update one row at a time (axpy form: row a −= l · row b), each entry
        in the order of its dot product. At d = 16 with 20 % MCAR a pattern took 1.19 µs as four
        written-out scalar chains (numba keeps the SLP vectoriser off) and 2.6 µs as loops over
        K (too short for the loop vectoriser).

        Row a of Lc and of Lc⁻¹ depends only on Λ at ``mi[:a + 1]``, so the first ``t0`` rows,
        shared with the pattern factorised before (the kernel lists the missing cells in
        descending order, and neighbours in the pattern order share their highest ones), are
        kept from it: at d = 16 with 20 % MCAR 21 % of the rows are new, and each row is a
        chain of a square root and a division.
        """
        one = vsplat(1.0)
        for a in range(t0, nm):  # Cholesky Λ_mm = Lc Lcᵀ (rows below t0: kept)
            ma = mi[a]
            for b in range(a + 1):
                t = vld3(LamT, ma, mi[b], k0)
                for j in range(b):
                    t = vfnma(t, vld3(Lc, a, j, k0), vld3(Lc, b, j, k0))
                if a == b:
                    v = vsqrt(t)
                    vst3(v, Lc, a, a, k0)
                    vst2(vdiv(one, v), idg, a, k0)
                else:
                    vst3(vmul(t, vld2(idg, b, k0)), Lc, a, b, k0)
        p = one  # ½ log det Λ_mm = log Π diag Lc
        for a in range(nm):
            p = vmul(p, vld3(Lc, a, a, k0))
        for q in range(4):
            hld[k0 + q] = _log_diag_product(vlane(p, q), Lc, nm, k0 + q)
        for a in range(nm if with_a else 0):  # forward: W = Lc⁻¹ Λ_mo, row a from the rows above
            ma = mi[a]
            for j in range(no):
                vst3(vld3(LamT, ma, oi[j], k0), W, a, j, k0)
            for b in range(a):
                l = vld3(Lc, a, b, k0)
                for j in range(no):
                    vst3(vfnma(vld3(W, a, j, k0), l, vld3(W, b, j, k0)), W, a, j, k0)
            iv = vld2(idg, a, k0)
            for j in range(no):
                vst3(vmul(vld3(W, a, j, k0), iv), W, a, j, k0)
        for a in range(nm - 1 if with_a else -1, -1, -1):  # backward: Lcᵀ A = W, from below
            for b in range(a + 1, nm):
                l = vld3(Lc, b, a, k0)
                for j in range(no):
                    vst3(vfnma(vld3(W, a, j, k0), l, vld3(W, b, j, k0)), W, a, j, k0)
            iv = vld2(idg, a, k0)
            for j in range(no):
                v = vmul(vld3(W, a, j, k0), iv)
                vst3(v, W, a, j, k0)
                vst3(vneg(v), negA, a, j, k0)
        for a in range(t0, nm):  # Linv = Lc⁻¹ (lower), row a from the rows above it
            for b in range(a):
                vst3(vsplat(0.0), Linv, a, b, k0)
            for j in range(a):
                l = vld3(Lc, a, j, k0)
                for b in range(j + 1):
                    vst3(vfnma(vld3(Linv, a, b, k0), l, vld3(Linv, j, b, k0)), Linv, a, b, k0)
            iv = vld2(idg, a, k0)
            for b in range(a):
                vst3(vmul(vld3(Linv, a, b, k0), iv), Linv, a, b, k0)
            vst3(iv, Linv, a, a, k0)
        for j in range(nm):  # C = Linvᵀ Linv, upper triangle only, one row of Linv at a time
            for a in range(j + 1):
                l = vld3(Linv, j, a, k0)
                for b in range(a, j):
                    vst3(vfma(vld3(C, a, b, k0), l, vld3(Linv, j, b, k0)), C, a, b, k0)
                vst3(vmul(l, vld3(Linv, j, j, k0)), C, a, j, k0)  # the first term of (a, j)

    @njit(inline="always", **_JIT)
    def _fill_missing_row(D, k, ma, negA, a, oi, no, u0, u1):  # pragma: no cover - compiled
        """``D[k, ma, r] = Σ_j negA[a, j, k] D[k, oi[j], r]`` over rows u0:u1, in order of j and
        four terms per pass over the row (the last pass padded with zero terms, which add
        exactly nothing to finite values), so ⌈|o|/4⌉ loops, each with its own start-up and
        overlap checks."""
        if no == 0:
            for r in range(u0, u1):
                D[k, ma, r] = 0.0
            return
        j = 0
        while j < no:
            c0, o0 = negA[a, j, k], oi[j]
            c1, o1 = (negA[a, j + 1, k], oi[j + 1]) if j + 1 < no else (0.0, o0)
            c2, o2 = (negA[a, j + 2, k], oi[j + 2]) if j + 2 < no else (0.0, o0)
            c3, o3 = (negA[a, j + 3, k], oi[j + 3]) if j + 3 < no else (0.0, o0)
            if j == 0:
                for r in range(u0, u1):
                    D[k, ma, r] = (  # 0.0 + …: the same rounding as a zeroed row plus terms
                        0.0
                        + c0 * D[k, o0, r]
                        + c1 * D[k, o1, r]
                        + c2 * D[k, o2, r]
                        + c3 * D[k, o3, r]
                    )
            else:
                for r in range(u0, u1):
                    D[k, ma, r] = (
                        D[k, ma, r]
                        + c0 * D[k, o0, r]
                        + c1 * D[k, o1, r]
                        + c2 * D[k, o2, r]
                        + c3 * D[k, o3, r]
                    )
            j += 4

    @njit(inline="always", **_JIT)
    def _observed_diffs(r, no, oi, Xt, meansT, Zk, k0):  # pragma: no cover - compiled
        """``Zk[o, k] = x_o − μ_k,o`` of row r for the four components (lanes) ``k0:k0 + 4``.
        Row-by-row paths of short runs."""
        for j in range(no):
            o = oi[j]
            vst2(vsub(vsplat(Xt[o, r]), vld2(meansT, o, k0)), Zk, o, k0)

    @njit(inline="always", **_JIT)
    def _store_row(r, nm, mi, active, pconst, Zk, D, RC):  # pragma: no cover - compiled
        """Row r of the active components: ``RC[k, r]`` and the missing rows ``D[k, m, r] =
        Zk[m, k]`` (x̂_m − μ_k,m)."""
        for k in range(D.shape[0]):
            if active[k]:
                RC[k, r] = pconst[k]
                for a in range(nm):
                    ma = mi[a]
                    D[k, ma, r] = Zk[ma, k]

    @njit(**_JIT)
    def _tied_pattern_means(nm, mi, C, meansT, tiedT, P, mtil, mt):  # pragma: no cover - compiled
        """tied, one pattern: ``mtil[m, k] = m̃_k,m = −A μ_k,o`` (the missing rows of
        ``m̃_k = [μ_k,o; −A μ_k,o]``, the only ones read) and ``mt[:, k] = m̃_k P``
        for every component, four per vector (``meansT`` (d, K') with K' a multiple of 4).

        With λ_k = Λ μ_k and μ_k P precomputed (``tiedT[0]``, ``tiedT[1]``, (d, K')):
        ``g_k = C λ_k,m = μ_k,m + A μ_k,o`` (C = Λ_mm⁻¹), so ``m̃_k,m = μ_k,m − g_k`` and
        ``m̃_k P = μ_k P − Σ_a g_k,a P[m_a, :]``: |m|² + |m|·d per component instead of
        |m|·|o| + |m|² + d²/2 from Λ_mo μ_o."""
        d = mtil.shape[0]
        for k0 in range(0, meansT.shape[1], 4):
            for j in range(d):
                vst2(vld3(tiedT, 1, j, k0), mt, j, k0)
            for a in range(nm):
                ma = mi[a]
                t = vsplat(0.0)
                for b in range(a):  # C is kept as its upper triangle
                    t = vfma(t, vsplat(C[b, a, 0]), vld3(tiedT, 0, mi[b], k0))
                for b in range(a, nm):
                    t = vfma(t, vsplat(C[a, b, 0]), vld3(tiedT, 0, mi[b], k0))
                vst2(vsub(vld2(meansT, ma, k0), t), mtil, ma, k0)
                for j in range(d):  # all d: a start varying with ma (triangular P, 0 left of
                    # ma) mispredicts the loop's exit; the zeros change nothing
                    vst2(vfnma(vld2(mt, j, k0), t, vsplat(P[0, ma, j])), mt, j, k0)

    @njit(**_JIT)
    def _fill_rows_full(
        r0, r1, nm, no, mi, oi, meansT, negA, pconst, active, Xt, Zk, D, RC
    ):  # pragma: no cover - compiled
        """full, a short run (≤ ``_SHORT_RUN`` rows) of a pattern with A: as ``_fill_run``, row
        by row with the components innermost (``Zk`` (d, K') scratch, four lanes per vector,
        ``meansT`` padded like K'), which avoids ~|m|·|o| loop starts per component."""
        for r in range(r0, r1):
            for k0 in range(0, negA.shape[2], 4):
                _observed_diffs(r, no, oi, Xt, meansT, Zk, k0)
                for a in range(nm):
                    t = vsplat(0.0)
                    for j in range(no):
                        t = vfma(t, vld3(negA, a, j, k0), vld2(Zk, oi[j], k0))
                    vst2(t, Zk, mi[a], k0)
            _store_row(r, nm, mi, active, pconst, Zk, D, RC)

    @njit(**_JIT)
    def _fill_rows_tied(
        r0, r1, nm, no, mi, oi, LamR, C, pconst, mtil, active, Xt, Zt, ut, D, RC
    ):  # pragma: no cover - compiled
        """tied, a short run: as ``_fill_run``, row by row, x̃_m = −A x_o = −C (Λ_mo x_o) with
        C = Λ_mm⁻¹ (no A needed), then x̃_m − m̃_k,m. ``ut = Λ_·o x_o`` for all d rows, four
        per vector (``LamR[o, i] = Λ[i, o]``, (d, d') with d' a multiple of 4): |o| multiply-adds
        per four rows and four chains in flight, against |m|·|o| scalar ones with gathered Λ."""
        for r in range(r0, r1):
            for i0 in range(0, LamR.shape[1], 4):
                t = vsplat(0.0)
                for j in range(no):
                    o = oi[j]
                    t = vfma(t, vld2(LamR, o, i0), vsplat(Xt[o, r]))
                vst1(t, ut, i0)
            for a in range(nm):
                t = 0.0
                for b in range(a):  # C is kept as its upper triangle
                    t -= C[b, a, 0] * ut[mi[b]]
                for b in range(a, nm):
                    t -= C[a, b, 0] * ut[mi[b]]
                Zt[0, mi[a], r] = t
            for k in range(D.shape[0]):
                if active[k]:
                    RC[k, r] = pconst[k]
                    for a in range(nm):
                        ma = mi[a]
                        D[k, ma, r] = Zt[0, ma, r] - mtil[ma, k]

    @njit(**_JIT)
    def _fill_run(
        r0, r1, mode, nm, no, mi, oi, negA, pconst, mtil, active, Zt, D, RC,
    ):  # fmt: skip  # pragma: no cover - compiled
        """Columns ``r0:r1`` (one pattern) of ``D[k] = x̂ − μ_k`` and of the row constants
        ``RC[k] = log w_k + log det terms``: only the missing rows, since the block loop has put
        ``x − μ_k`` in all of them (tied: first the missing rows of ``Zt = x̃``, then
        ``x̃_m − m̃_k,m``). Loops over the run's rows innermost: long runs (short ones are
        filled row by row, ``_fill_rows_full`` / ``_fill_rows_tied``).
        """
        K = D.shape[0]
        u0 = np.uint64(r0)  # unsigned indices: no wrap-around checks, the loops vectorise
        u1 = np.uint64(r1)
        if mode == TIED:  # x̃ = [x_o; −A x_o] (Zt[0, o] holds x_o already)
            for a in range(nm):
                _fill_missing_row(Zt, 0, mi[a], negA, a, oi, no, u0, u1)
        for k in range(K):
            if not active[k]:
                continue
            ck = pconst[k]
            for r in range(u0, u1):
                RC[k, r] = ck
            if mode == FULL:  # D[k, o] holds x_o − μ_o already (see the block loop)
                for a in range(nm):
                    _fill_missing_row(D, k, mi[a], negA, a, oi, no, u0, u1)
            else:  # x̃_m − m̃_k,m = −A (x_o − μ_o); D[k, o] holds x_o − μ_o already
                for a in range(nm):
                    ma = mi[a]
                    t = mtil[ma, k]
                    for r in range(u0, u1):
                        D[k, ma, r] = Zt[0, ma, r] - t

    @njit(**_JIT)
    def _solve_rows(
        r0, r1, nm, no, mi, oi, meansT, LamT, Lc, idg, Ys, pconst, active, Xt, Zk, D, RC,
    ):  # fmt: skip  # pragma: no cover - compiled
        """full, a short pattern factorised without A: per row, ``x̂_m − μ_m = −u`` with
        ``Lc Lcᵀ u = Λ_mo (x_o − μ_o)`` (two triangular solves, ``Ys`` (2, d, K') scratch),
        |m|·|o| + |m|² per row and component instead of |m|²·|o| once for A. Components
        innermost, four lanes per vector (K' a multiple of 4)."""
        for r in range(r0, r1):
            for k0 in range(0, LamT.shape[2], 4):
                _observed_diffs(r, no, oi, Xt, meansT, Zk, k0)
                for a in range(nm):  # Lc y = Λ_mo (x_o − μ_o)
                    ma = mi[a]
                    t = vsplat(0.0)
                    for j in range(no):
                        o = oi[j]
                        t = vfma(t, vld3(LamT, ma, o, k0), vld2(Zk, o, k0))
                    for b in range(a):
                        t = vfnma(t, vld3(Lc, a, b, k0), vld3(Ys, 0, b, k0))
                    vst3(vmul(t, vld2(idg, a, k0)), Ys, 0, a, k0)
                for a in range(nm - 1, -1, -1):  # Lcᵀ u = y
                    t = vld3(Ys, 0, a, k0)
                    for b in range(a + 1, nm):
                        t = vfnma(t, vld3(Lc, b, a, k0), vld3(Ys, 1, b, k0))
                    u = vmul(t, vld2(idg, a, k0))
                    vst3(u, Ys, 1, a, k0)
                    vst2(vneg(u), Zk, mi[a], k0)
            _store_row(r, nm, mi, active, pconst, Zk, D, RC)

    @njit(**_JIT)
    def _tied_block_maha(nb, K, Yt, RMT, run_r0, nruns, L):  # pragma: no cover - compiled
        """tied: ``L[k, r] = ‖x̃_r P − m̃_k P‖²`` run by run (``RMT[q, :, k] = m̃_k P`` of run q):
        runs of up to ``_ROWWISE_MAHA`` rows row by row, four components per vector (d
        multiply-adds per row instead of K·d loop starts); longer runs loop over their rows
        innermost. The same sums in the same order either way."""
        d = Yt.shape[0]
        for q in range(nruns):
            r0 = run_r0[q]
            r1 = run_r0[q + 1]
            if r1 - r0 <= _ROWWISE_MAHA:
                for r in range(r0, r1):
                    for k0 in range(0, K, 4):
                        acc = vsplat(0.0)
                        for j in range(d):
                            t = vsub(vsplat(Yt[j, r]), vld3(RMT, q, j, k0))
                            acc = vfma(acc, t, t)
                        L[k0, r] = vlane(acc, 0)
                        if k0 + 1 < K:
                            L[k0 + 1, r] = vlane(acc, 1)
                        if k0 + 2 < K:
                            L[k0 + 2, r] = vlane(acc, 2)
                        if k0 + 3 < K:
                            L[k0 + 3, r] = vlane(acc, 3)
                continue
            u0 = np.uint64(r0)  # unsigned: the loops vectorise
            u1 = np.uint64(r1)
            for k in range(K):
                for r in range(u0, u1):
                    L[k, r] = 0.0
                for j in range(d):
                    m = RMT[q, j, k]
                    for r in range(u0, u1):
                        t = Yt[j, r] - m
                        L[k, r] += t * t

    @njit(**_JIT)
    def _block_maha(
        nb, mode, tri, P, active, Zt, Yt, D, RMT, run_r0, nruns, RC, y, maha, L, rowmax
    ):  # pragma: no cover - compiled
        """``L[k, r] = RC[k, r] − ½ ‖D[k, :, r] P_k‖²`` over the block and ``rowmax[r] =
        max_k L[k, r]``. Tied: ‖x̃P − m̃_kP‖², with ``RMT[q, :, k] = m̃_k P`` of run q."""
        K = D.shape[0]
        d = Zt.shape[1]
        for r in range(nb):
            rowmax[r] = -np.inf
        if mode == TIED:
            for j in range(d):
                for r in range(nb):
                    Yt[j, r] = 0.0
                ilim = j + 1 if tri else d
                for i in range(ilim):
                    p = P[0, i, j]
                    for r in range(nb):
                        Yt[j, r] += Zt[0, i, r] * p
            _tied_block_maha(nb, K, Yt, RMT, run_r0, nruns, L)
        for k in range(K):
            if not active[k]:
                for r in range(nb):
                    L[k, r] = -np.inf
                continue
            if mode == FULL:
                for r in range(nb):
                    maha[r] = 0.0
                _add_whitened_squares(D, k, P, tri, nb, y, maha)
                for r in range(nb):
                    L[k, r] = maha[r]
            for r in range(nb):
                v = RC[k, r] - 0.5 * L[k, r]
                L[k, r] = v
                if v > rowmax[r]:
                    rowmax[r] = v

    @njit(inline="always", **_JIT)
    def _gather_block(X, perm, ident, b0, nb, mode, Xt, bkey, Zt):  # pragma: no cover - compiled
        """Rows ``b0 … b0 + nb`` of the pattern order (``perm``, or the identity) transposed into
        ``Xt``, their pattern keys (bit j % 64 set: cell j missing) and, tied, a copy in ``Zt``.
        """
        d = Xt.shape[0]
        for r in range(nb):
            src = b0 + r if ident else perm[b0 + r]
            for j in range(d):
                Xt[j, r] = X[src, j]
        for r in range(nb):  # the pattern keys, by rows of Xt: these loops vectorise
            bkey[r] = 0
        for j in range(d):
            bit = np.uint64(1) << np.uint64(j & 63)
            for r in range(nb):
                x = Xt[j, r]
                bkey[r] |= bit if x != x else np.uint64(0)
        if mode == TIED:
            for i in range(d):
                for r in range(nb):
                    Zt[0, i, r] = Xt[i, r]

    @njit(inline="always", **_JIT)
    def _centre_block(Xt, means, active, nb, D):  # pragma: no cover - compiled
        """``D[k] = x − μ_k`` for the whole block; the runs then fill the missing rows."""
        for k in range(means.shape[0]):
            if active[k]:
                for i in range(Xt.shape[0]):
                    m = means[k, i]
                    for r in range(nb):
                        D[k, i, r] = Xt[i, r] - m

    @njit(inline="always", **_JIT)
    def _new_pattern(Xt, r, cur, mi, oi, fmi, fnm):  # pragma: no cover - compiled
        """Row ``r``'s pattern into ``cur``, its missing cells (descending) into ``mi`` and its
        observed ones into ``oi``; returns (|m|, |o|, t0), t0 the leading missing cells it
        shares with the pattern factorised before (``fmi``, ``fnm``: their factors are kept),
        and ``fmi`` becomes its cells."""
        nm = _ZERO  # not the literal 0: see _ZERO
        no = _ZERO
        for j in range(Xt.shape[0] - 1, -1, -1):  # descending, branch-free (random cells)
            isn = Xt[j, r] != Xt[j, r]
            cur[j] = isn
            mi[nm] = j
            oi[no] = j
            nm += isn
            no += not isn
        t0 = _ZERO
        while t0 < nm and t0 < fnm and mi[t0] == fmi[t0]:
            t0 += 1
        for a in range(nm):
            fmi[a] = mi[a]
        return nm, no, t0

    @njit(inline="always", **_JIT)
    def _store_run_covariance(
        mode, q, coff, nm, mi, Cp, run_nm, run_c, run_mi, cstore
    ):  # pragma: no cover - compiled
        """Keep run ``q``'s missing cells and the upper triangle of its conditional covariances
        (components last) at ``cstore[coff:]``; returns the next free offset."""
        NC = Cp.shape[2] if mode == FULL else 1
        run_nm[q] = nm
        run_c[q] = coff
        for a in range(nm):
            run_mi[q, a] = mi[a]
        for a in range(nm):
            for b in range(a, nm):
                if mode == FULL:
                    for k0 in range(0, NC, 4):
                        vst1(vld3(Cp, a, b, k0), cstore, coff + k0)
                else:
                    cstore[coff] = Cp[a, b, 0]
                coff += NC
        return coff

    @njit(inline="always", **_JIT)
    def _add_run_covariances(
        mode, NC, nruns, run_r0, run_nm, run_c, run_mi, cstore, E, sw, Cacc
    ):  # pragma: no cover - compiled
        """Σ over the block's runs of (Σ_run r_ik) C_k, added to ``Cacc`` at the runs' missing
        cells (upper triangle, components last; ``NC`` lanes of C kept per cell)."""
        K = E.shape[0]
        KV = Cacc.shape[2]
        for q in range(nruns):
            qm = run_nm[q]
            if qm == 0:
                continue
            q0 = run_r0[q]
            q1 = run_r0[q + 1]
            if q1 - q0 == 1:  # most runs at n = 10⁵: no loop to start
                for k in range(K):
                    sw[k] = E[k, q0]
            else:
                for k in range(K):
                    t = 0.0
                    for r in range(q0, q1):
                        t += E[k, r]
                    sw[k] = t
            idx = run_c[q]  # C of the run: (a, b ≥ a, component)
            for a in range(qm):  # E is 0 for inactive components: adds +0.0
                ma = run_mi[q, a]
                for b in range(a, qm):
                    mb = run_mi[q, b]  # ≤ ma (mi descends): Cacc[mb, ma] is upper
                    for k0 in range(0, KV, 4):
                        cv = vld1(cstore, idx + k0) if mode == FULL else vsplat(cstore[idx])
                        cnew = vfma(vld3(Cacc, mb, ma, k0), vld1(sw, k0), cv)
                        vst3(cnew, Cacc, mb, ma, k0)
                    idx += NC

    @njit(inline="always", **_JIT)
    def _add_block_grams(nb, active, E, D, off, has_off, Wt, S):  # pragma: no cover - compiled
        """Each component with responsibility in the block adds the weighted Gram of
        ``[x̂ − c_k; 1]`` (``D[k]`` moved from μ_k to c_k by ``off``) to ``S[k]``."""
        for k in range(E.shape[0]):
            used = False
            if active[k]:
                for r in range(nb):
                    if E[k, r] > 0.0:
                        used = True
                        break
            if not used:
                continue
            Dk = D[k]
            if has_off:
                for a in range(Dk.shape[0] - 1):
                    t = off[k, a]
                    for r in range(nb):
                        Dk[a, r] += t
            _add_weighted_gram(E[k], Dk, Wt, nb, S[k])

    @njit(inline="always", **_JIT)
    def _finish_chunk_stats(Cacc, S, nk, sx, sxx):  # pragma: no cover - compiled
        """The chunk's moments: the conditional covariances first (upper triangle), then each
        component's Gram as (n_k, Σ r (x̂ − c), Σ r (x̂ − c)(x̂ − c)ᵀ)."""
        d = sxx.shape[1]
        for k in range(nk.shape[0]):
            for a in range(d):
                for b in range(a, d):
                    sxx[k, a, b] += Cacc[a, b, k]
            nk[k] += _scatter_gram(S[k], sxx[k], sx[k])

    @njit(**_JIT)
    def _pattern_scratch(d, KP, KV):  # pragma: no cover - compiled
        """Buffers of a pattern's factors (``_factor_lanes``, ``_tied_pattern_means``) and of
        the per-row solves: (negA, Cp, hld, W, Lc, idg, Linv, mtil, mt, Zk, Ys)."""
        return (
            np.empty((d, d, KP)), np.empty((d, d, KP)), np.empty(KP), np.empty((d, d, KP)),
            np.empty((d, d, KP)), np.empty((d, KP)), np.empty((d, d, KP)),
            np.empty((d, KV)),  # tied: m̃_k,m = −A μ_o (missing rows), components last
            np.empty((d, KV)),  # tied: m̃_k P
            np.empty((d, KP)), np.empty((2, d, KP)),  # per-row solves (see _solve_rows)
        )  # fmt: skip

    @njit(**_JIT)
    def _run_scratch(block, d, NC):  # pragma: no cover - compiled
        """The runs of a block: (first rows, |m|, offsets into cstore, missing cells, cstore)."""
        return (
            np.empty(block + 1, dtype=np.int64), np.empty(block, dtype=np.int64),
            np.empty(block, dtype=np.int64), np.empty((block, d), dtype=np.uint64),
            np.empty(NC * d * d * 8),
        )  # fmt: skip

    @njit(**_JIT)
    def _tied_rows_of_lam(Lam, mode):  # pragma: no cover - compiled
        """tied: ``LamR[o, i] = Λ[i, o]`` padded to four lanes (see ``_fill_rows_tied``)."""
        d = Lam.shape[0]
        dP = (d + 3) // 4 * 4
        LamR = np.zeros((d, dP) if mode == TIED else (1, 4))
        if mode == TIED:
            for i in range(d):
                for o in range(d):
                    LamR[o, i] = Lam[i, o, 0]
        return LamR

    @njit(**_JIT)
    def _grouped_chunk(
        c, X, perm, const0, means, meansT, tiedT, off, has_off, P, Lam, mode, tri, block, bpc,
        active, ident, want_stats, nk_o, sx_o, sxx_o, want_resp, lpn_o, lr_o,
    ):  # fmt: skip  # pragma: no cover - compiled
        """Chunk ``c`` of :func:`_grouped_kernel` (as ``_fast_kernels._estep_chunk``): blocks of
        rows, in each the runs of rows sharing a missingness pattern, every pattern factorised
        once while it lasts; returns the chunk's (log-likelihood, entropy)."""
        n, d = X.shape
        K = const0.shape[0]
        KP = Lam.shape[2]  # full: K padded to a multiple of 4; tied: its one Λ in 4 lanes
        NC = KP if mode == FULL else 1  # lanes of the conditional covariances kept per run
        KV = meansT.shape[1]  # K padded to a multiple of 4
        Xt = np.empty((d, block))
        Zt = np.empty((1, d, block))  # tied: x̃ (3-D for _fill_missing_row)
        Yt = np.empty((d, block))
        D = np.empty((K, d + 1, block))  # [x̂ − μ_k; 1], then [x̂ − c_k; 1] for the moments
        for k in range(K):
            for r in range(block):
                D[k, d, r] = 1.0
        RMT = np.empty((block, d, KV)) if mode == TIED else np.empty((1, 1, 1))
        RC = np.empty((K, block))
        Wt = np.empty((d + 1, block))
        S = np.zeros((K if want_stats else 1, d + 1, d + 1))  # augmented Gram per component
        y = np.empty(block)
        maha = np.empty(block)
        rowmax, ls, acc, ibuf, L, E = _block_scratch(K, block)
        # the current pattern and its factors
        cur = np.zeros(d, dtype=np.bool_)
        have = False
        factored = False  # the current pattern's factors are computed
        a_ready = False  # and include A
        bkey = np.empty(block, dtype=np.uint64)  # bit j % 64: cell j missing
        curkey = np.uint64(0)
        short_keys = d <= 64  # then the key is the pattern
        # unsigned: indexing with them needs no wrap-around of negative indices (four integer
        # operations per gathered value, the most of the short-run fills before)
        mi = np.empty(d, dtype=np.uint64)  # missing cells, descending (see _factor_lanes)
        oi = np.empty(d, dtype=np.uint64)
        nm = _ZERO  # not the literal 0: see _ZERO
        no = _ZERO
        fmi = np.empty(d, dtype=np.uint64)  # the missing cells of the factors in Lc, Linv
        fnm = 0
        t0 = _ZERO
        pconst = np.empty(K)
        negA, Cp, hld, W, Lc, idg, Linv, mtil, mt, Zk, Ys = _pattern_scratch(d, KP, KV)
        run_r0, run_nm, run_c, run_mi, cstore = _run_scratch(block, d, NC)
        ut = np.empty((d + 3) // 4 * 4)  # tied: Λ x_o of a row (see _fill_rows_tied)
        LamR = _tied_rows_of_lam(Lam, mode)
        Cacc = np.zeros((d, d, KV))  # Σ_runs (Σ_run r_ik) C_k, (m, m) blocks, upper triangle
        sw = np.zeros(KV)  # Σ_run r_ik, 0 in the padding lanes
        ll = 0.0
        ent = 0.0
        start = c * bpc * block
        stop = min(n, start + bpc * block)
        bnext = start
        while bnext < stop:  # blocks of ≤ block rows whose patterns' C fit in cstore
            b0 = bnext
            nb = min(block, stop - b0)
            _gather_block(X, perm, ident, b0, nb, mode, Xt, bkey, Zt)
            _centre_block(Xt, means, active, nb, D)
            nruns = _ZERO
            coff = 0
            r0 = _ZERO
            end = nb  # rows of the block taken: fewer when cstore fills up
            while r0 < nb:
                same = have and bkey[r0] == curkey
                if same and not short_keys:
                    for j in range(d):
                        if (Xt[j, r0] != Xt[j, r0]) != cur[j]:
                            same = False
                            break
                if not same:  # a new pattern
                    have = True
                    factored = False
                    a_ready = False
                    curkey = bkey[r0]
                    nm, no, t0 = _new_pattern(Xt, r0, cur, mi, oi, fmi, fnm)
                    fnm = nm
                r1 = r0 + 1
                while r1 < nb and bkey[r1] == curkey:
                    if not short_keys:  # d > 64: the key is only a filter
                        eq = True
                        for j in range(d):
                            if (Xt[j, r1] != Xt[j, r1]) != cur[j]:
                                eq = False
                                break
                        if not eq:
                            break
                    r1 += 1
                # a full pattern whose rows end inside this block, fewer than |o| of them:
                # per-row solves (|m|² per row) are cheaper than A (|m|²·|o| once)
                short = r1 - r0 < no and r1 - r0 <= _SHORT_RUN and r1 < nb
                need_a = not short
                if not factored or (need_a and not a_ready):
                    factored = True
                    a_ready = need_a
                    for k0 in range(0, KP, 4):
                        _factor_lanes(
                            Lam, mi, nm, oi, no, negA, Cp, hld, W, Lc, idg, Linv, need_a, t0,
                            k0,
                        )  # fmt: skip
                    t0 = nm  # A later for the same pattern: Lc and Lc⁻¹ are kept
                    for k in range(K):
                        kk = k if mode == FULL else 0
                        pconst[k] = const0[k] - hld[kk] - 0.5 * no * _LOG_2PI
                    if mode == TIED:  # m̃_k and m̃_k P, four components per vector
                        _tied_pattern_means(nm, mi, Cp, meansT, tiedT, P, mtil, mt)
                c_need = NC * (nm * (nm + 1) // 2)  # the upper triangle of C
                if want_stats and nruns > 0 and coff + c_need > cstore.shape[0]:
                    end = r0  # cstore is full: the block ends before this run
                    break
                if r1 - r0 > _SHORT_RUN:  # then A is ready (need_a)
                    _fill_run(r0, r1, mode, nm, no, mi, oi, negA, pconst, mtil, active, Zt, D, RC)
                elif mode == TIED:
                    _fill_rows_tied(
                        r0, r1, nm, no, mi, oi, LamR, Cp, pconst, mtil, active, Xt, Zt, ut, D,
                        RC,
                    )  # fmt: skip
                elif a_ready:
                    _fill_rows_full(
                        r0, r1, nm, no, mi, oi, meansT, negA, pconst, active, Xt, Zk, D, RC
                    )
                else:
                    _solve_rows(
                        r0, r1, nm, no, mi, oi, meansT, Lam, Lc, idg, Ys, pconst, active, Xt,
                        Zk, D, RC,
                    )  # fmt: skip
                run_r0[nruns] = r0
                if mode == TIED:
                    for j in range(d):
                        for k0 in range(0, KV, 4):
                            vst3(vld2(mt, j, k0), RMT, nruns, j, k0)
                if want_stats:  # keep the run's pattern for the conditional covariances
                    coff = _store_run_covariance(
                        mode, nruns, coff, nm, mi, Cp, run_nm, run_c, run_mi, cstore
                    )
                nruns += 1
                r0 = r1
            run_r0[nruns] = end
            bnext = b0 + end
            _block_maha(
                end, mode, tri, P, active, Zt, Yt, D, RMT, run_r0, nruns, RC, y, maha, L, rowmax
            )
            bll, bent = _normalise_block(end, active, L, E, rowmax, ls, acc, ibuf)
            ll += bll
            ent += bent
            if want_resp:
                _write_block_resp(b0, end, perm, ident, rowmax, ls, L, lpn_o, lr_o)
            if want_stats:
                _add_run_covariances(
                    mode, NC, nruns, run_r0, run_nm, run_c, run_mi, cstore, E, sw, Cacc
                )
                _add_block_grams(end, active, E, D, off, has_off, Wt, S)
        if want_stats:
            _finish_chunk_stats(Cacc, S, nk_o[c], sx_o[c], sxx_o[c])
        return ll, ent

    def _grouped_kernel(
        X, perm, const0, means, meansT, tiedT, off, has_off, P, Lam, mode, tri, block, nchunks,
        chunk_order, want_stats, nk_o, sx_o, sxx_o, want_resp, lpn_o, lr_o,
    ):  # fmt: skip  # pragma: no cover - compiled
        """full (mode 0) / tied (mode 1) over rows ``perm`` (grouped by pattern).

        Iteration ``i`` of the parallel loop handles chunk ``chunk_order[i]``: sorted by pattern,
        chunks differ in cost (many rare patterns late in the order), and the threads take
        contiguous ranges of iterations; the spread evens them out. Each chunk keeps its own
        accumulators, so the result does not depend on the order."""
        n = X.shape[0]
        K = const0.shape[0]
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
            ll_o[c], ent_o[c] = _grouped_chunk(
                c, X, perm, const0, means, meansT, tiedT, off, has_off, P, Lam, mode, tri, block,
                bpc, active, ident, want_stats, nk_o, sx_o, sxx_o, want_resp, lpn_o, lr_o,
            )  # fmt: skip
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

    @njit(**_JIT_OPTS)
    def _masked_chunk(
        c, X, lw, means, shift, Pd, hl, var, block, bpc, want_stats, nk_o, sx_o, sxx_o, want_resp,
        lpn_o, lr_o,
    ):  # fmt: skip  # pragma: no cover - compiled
        """Rows of chunk ``c`` of :func:`_masked_kernel`: returns its (log-likelihood, entropy)
        and adds its moments to ``nk_o[c]``, ``sx_o[c]``, ``sxx_o[c]`` (see
        :func:`_grouped_chunk`)."""
        n, d = X.shape
        K = lw.shape[0]
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
                j = 0
                while j + 4 <= d:  # four features per pass, in order of j
                    m0, m1, m2, m3 = (
                        means[k, j],
                        means[k, j + 1],
                        means[k, j + 2],
                        means[k, j + 3],
                    )
                    p0, p1, p2, p3 = Pd[k, j], Pd[k, j + 1], Pd[k, j + 2], Pd[k, j + 3]
                    h0, h1, h2, h3 = hl[k, j], hl[k, j + 1], hl[k, j + 2], hl[k, j + 3]
                    for r in range(nb):
                        x0, x1, x2, x3 = Xt[j, r], Xt[j + 1, r], Xt[j + 2, r], Xt[j + 3, r]
                        t0 = (x0 - m0) * p0
                        t1 = (x1 - m1) * p1
                        t2 = (x2 - m2) * p2
                        t3 = (x3 - m3) * p3
                        maha[r] = (
                            maha[r]
                            + (t0 * t0 if x0 == x0 else 0.0)
                            + (t1 * t1 if x1 == x1 else 0.0)
                            + (t2 * t2 if x2 == x2 else 0.0)
                            + (t3 * t3 if x3 == x3 else 0.0)
                        )
                        rc[r] = (
                            rc[r]
                            + (h0 if x0 == x0 else 0.0)
                            + (h1 if x1 == x1 else 0.0)
                            + (h2 if x2 == x2 else 0.0)
                            + (h3 if x3 == x3 else 0.0)
                        )
                    j += 4
                while j < d:
                    m = means[k, j]
                    p = Pd[k, j]
                    h = hl[k, j]
                    for r in range(nb):
                        x = Xt[j, r]
                        ob = x == x
                        t = (x - m) * p
                        maha[r] += t * t if ob else 0.0
                        rc[r] += h if ob else 0.0
                    j += 1
                for r in range(nb):
                    v = ck + rc[r] - 0.5 * maha[r]
                    L[k, r] = v
                    if v > rowmax[r]:
                        rowmax[r] = v
            bll, bent = _normalise_block(nb, active, L, E, rowmax, ls, acc, ibuf)
            ll += bll
            ent += bent
            if want_resp:
                _write_block_resp(b0, nb, _NO_PERM, True, rowmax, ls, L, lpn_o, lr_o)
            if not want_stats:
                continue
            for k in range(K):
                if not active[k]:
                    continue
                nk_o[c, k] += _masked_diag_moments(
                    Xt, E[k], shift[k], means[k], var[k], nb, sx_o[c, k], sxx_o[c, k]
                )
        return ll, ent

    def _masked_kernel(
        X, lw, means, shift, Pd, hl, var, block, nchunks,
        want_stats, nk_o, sx_o, sxx_o, want_resp, lpn_o, lr_o,
    ):  # fmt: skip  # pragma: no cover - compiled
        """diag / spherical: missing axes drop out (``hl[k, j] = log Pd[k, j] − ½ log 2π``)."""
        n = X.shape[0]
        n_blocks = (n + block - 1) // block
        bpc = (n_blocks + nchunks - 1) // nchunks
        ll_o = np.zeros(nchunks)
        ent_o = np.zeros(nchunks)
        for c in prange(nchunks):
            ll_o[c], ent_o[c] = _masked_chunk(
                c, X, lw, means, shift, Pd, hl, var, block, bpc, want_stats, nk_o, sx_o, sxx_o,
                want_resp, lpn_o, lr_o,
            )  # fmt: skip
        return ll_o, ent_o

    _grouped_parallel, _grouped_serial = compiled_variants(_grouped_kernel, "_grouped")
    _masked_parallel, _masked_serial = compiled_variants(_masked_kernel, "_masked")


# --------------------------------------------------------------------------------------------
# Python side
# --------------------------------------------------------------------------------------------
def _spread_order(nchunks):
    """A fixed permutation of ``range(nchunks)`` whose contiguous ranges sample the whole range
    (stride ≈ 0.618·nchunks, coprime to it)."""
    step = max(1, round(0.6180339887 * nchunks))
    while math.gcd(step, nchunks) != 1:
        step += 1
    return (np.arange(nchunks, dtype=np.int64) * step) % nchunks


#: ``perm`` for rows already in pattern order (the kernels read it as the identity).
_EMPTY_PERM = np.zeros(0, dtype=np.int64)
_NO_TIED = np.zeros((2, 1, 4))  # full: no tied precomputations


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


class IncompleteLayout(NamedTuple):
    """Parameters in the missing-data kernels' layout, made once per parameter set
    (:func:`incomplete_layout`; :class:`~em_core.params.GMMParams` keeps it, so once per M-step
    whatever the number of row chunks). Arrays are read-only (see
    :func:`~em_core._fast_kernels.frozen`); fields a mode does not use hold dummies."""

    lw: np.ndarray  #: log w_k (K,)
    means: np.ndarray  #: (K, d)
    mode: int  #: 0 full, 1 tied, 2 diag/spherical
    Pd: np.ndarray  #: diag/spherical: 1/σ_kj (K, d)
    hl: np.ndarray  #: diag/spherical: log Pd − ½ log 2π
    var: np.ndarray  #: diag/spherical: σ²_kj
    P: np.ndarray  #: full/tied: the precision factors (K or 1, d, d)
    Lam: np.ndarray  #: full/tied: Λ = P Pᵀ as (d, d, K'), K' padded to four lanes
    const0: np.ndarray  #: full/tied: log w_k + log det P_k (K,)
    tri: bool  #: full/tied: P is upper triangular
    meansT: np.ndarray  #: full/tied: the means as (d, K'), components last
    tiedT: np.ndarray  #: tied: Λ μ_k and μ_k P, components last (see _tied_pattern_means)


_NO_ARRAY = np.zeros((1, 1))


def incomplete_layout(log_weights, means, precisions_chol, covariance_type) -> IncompleteLayout:
    """Check the parameters' shapes and bring them to the kernels' layout."""
    if covariance_type not in _COV_CODES:
        raise ValueError(f"covariance_type must be one of {sorted(_COV_CODES)}")
    mode = _COV_CODES[covariance_type]
    lw = np.ascontiguousarray(log_weights, dtype=np.float64).reshape(-1)
    K = lw.shape[0]
    means = np.ascontiguousarray(means, dtype=np.float64)
    if means.ndim != 2 or means.shape[0] != K:
        raise ValueError(f"means must have shape ({K}, d), got {means.shape}")
    d = means.shape[1]
    pc = np.ascontiguousarray(precisions_chol, dtype=np.float64)
    if mode == DIAGONAL:
        Pd = pc.reshape(K, -1)
        if Pd.shape[1] not in (1, d):
            raise ValueError("precisions_chol has the wrong shape")
        Pd = np.ascontiguousarray(np.broadcast_to(Pd, (K, d)))
        layout = (lw, means, mode, Pd, np.log(Pd) - 0.5 * _LOG_2PI, 1.0 / Pd**2,
                  _NO_ARRAY[None], _NO_ARRAY[None], lw, True, _NO_ARRAY, _NO_TIED)  # fmt: skip
    else:
        P = pc if mode == FULL else pc[None]
        if P.shape != (K if mode == FULL else 1, d, d):
            raise ValueError("precisions_chol has the wrong shape")
        P = np.ascontiguousarray(P)
        Lam = P @ np.swapaxes(P, 1, 2)
        pad = -Lam.shape[0] % 4  # identity components: K' a multiple of 4 (see _factor_lanes)
        if pad:
            Lam = np.concatenate([Lam, np.broadcast_to(np.eye(d), (pad, d, d))])
        Lam = np.ascontiguousarray(np.moveaxis(Lam, 0, -1))  # (d, d, K')
        logdet = np.log(np.diagonal(P, axis1=1, axis2=2)).sum(axis=1)
        const0 = np.ascontiguousarray(lw + (logdet if mode == FULL else logdet[0]))
        meansT = np.zeros((d, -(-K // 4) * 4))  # K padded like full's Lam (four-lane vectors)
        meansT[:, :K] = means.T
        tiedT = np.stack([P[0] @ (P[0].T @ meansT), P[0].T @ meansT]) if mode == TIED else _NO_TIED
        layout = (lw, means, mode, _NO_ARRAY, _NO_ARRAY, _NO_ARRAY, P, Lam, const0,
                  not np.any(np.tril(P, -1)), meansT, tiedT)  # fmt: skip
    return _frozen_layout(IncompleteLayout(*layout))


#: the array fields of an IncompleteLayout
_ARRAY_FIELDS = ("lw", "means", "Pd", "hl", "var", "P", "Lam", "const0", "meansT", "tiedT")


def _frozen_layout(layout: IncompleteLayout) -> IncompleteLayout:
    """The layout with read-only views of its arrays (see :func:`frozen`)."""
    views = frozen(*(getattr(layout, f) for f in _ARRAY_FIELDS))
    return layout._replace(**dict(zip(_ARRAY_FIELDS, views, strict=True)))


def _run(X, layout, shift, block, parallel, want_stats, want_resp, presorted):
    n, d = X.shape
    K = layout.lw.shape[0]
    nchunks = n_chunks(n, block, _MIN_BLOCKS_PER_CHUNK)
    nk, sx, sxx = _stats_buffers(nchunks, K, d, layout.mode, want_stats)
    if want_resp:
        lpn, lr = np.empty(n), np.empty((n, K))
    else:
        lpn, lr = np.zeros(1), np.zeros((1, 1))
    # frozen again: a layout that came through pickle (a Dask worker's) holds writable arrays
    L = _frozen_layout(layout)
    if L.mode == DIAGONAL:
        X, shift = frozen(X, shift)
        args = (X, L.lw, L.means, shift, L.Pd, L.hl, L.var, block, nchunks,
                want_stats, nk, sx, sxx, want_resp, lpn, lr)  # fmt: skip
        kernels = (_masked_parallel, _masked_serial)
    else:
        off = np.ascontiguousarray(L.means - shift)
        has_off = bool(np.any(off))
        perm = _EMPTY_PERM if presorted else _grouping_order(X)
        X, perm, off, order = frozen(X, perm, off, _spread_order(nchunks))
        args = (X, perm, L.const0, L.means, L.meansT, L.tiedT, off, has_off, L.P, L.Lam, L.mode,
                L.tri, block, nchunks, order, want_stats, nk, sx, sxx, want_resp, lpn,
                lr)  # fmt: skip
        kernels = (_grouped_parallel, _grouped_serial)
    ll, ent = run_variant(*kernels, args, parallel, nchunks)
    return nk, sx, sxx, ll, ent, lpn, lr


def _rows_and_shift(X, layout, shift):
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != layout.means.shape[1]:
        raise ValueError(f"X must have shape (n, {layout.means.shape[1]}), got {X.shape}")
    shift = layout.means if shift is None else np.ascontiguousarray(shift, dtype=np.float64)
    if shift.shape != layout.means.shape:
        raise ValueError(f"means and shift must have shape {layout.means.shape}")
    return X, shift


def _check(block_size):
    if not HAVE_NUMBA:
        raise ImportError("the incomplete-data kernels need numba (em_core.estep has a fallback)")
    block = DEFAULT_BLOCK_SIZE if block_size is None else int(block_size)
    if block < 1:
        raise ValueError(f"block_size must be >= 1, got {block}")
    return block


def incomplete_stats(
    X, log_weights, means, precisions_chol, covariance_type, shift, *, block_size=None,
    parallel=None, presorted=False, layout=None,
):  # fmt: skip
    """Fused E-step and sufficient statistics over rows that may contain NaN (missing) cells.

    Parameters and returns as :func:`em_core._fast_kernels.complete_stats`; ``sx`` and ``sxx``
    hold the conditional moments (missing cells at their conditional mean, the conditional
    covariance added to ``sxx``) and ``log_likelihood`` the observed-data log-likelihood.
    Complete rows are allowed (they are the pattern with no missing cell). A row with no observed
    cell contributes log-density 0 and the component's moments. ``presorted=True``: the caller
    knows the rows are grouped by pattern (the result is the same either way; grouping only
    saves factorisations), so the check is skipped. ``layout``: the parameters already in the
    kernels' layout (:func:`incomplete_layout`); the parameter arguments are then not read.
    """
    block = _check(block_size)
    if layout is None:
        layout = incomplete_layout(log_weights, means, precisions_chol, covariance_type)
    X, shift = _rows_and_shift(X, layout, shift)
    nk, sx, sxx, ll, ent, _, _ = _run(X, layout, shift, block, parallel, True, False, presorted)
    return _finish_stats(nk, sx, sxx, ll, ent, layout.mode)


def incomplete_log_resp(
    X, log_weights, means, precisions_chol, covariance_type, *, block_size=None, parallel=None,
    presorted=False, layout=None,
):  # fmt: skip
    """``(log_prob_norm (n,), log_resp (n, K))`` of rows that may contain NaN cells
    (observed-data densities), as :func:`em_core._fast_kernels.complete_log_resp`."""
    block = _check(block_size)
    if layout is None:
        layout = incomplete_layout(log_weights, means, precisions_chol, covariance_type)
    X, shift = _rows_and_shift(X, layout, None)
    out = _run(X, layout, shift, block, parallel, False, True, presorted)
    return out[5], out[6]
