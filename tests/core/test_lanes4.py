"""The four-lane vector intrinsics: loads/stores hit the right cells, and each lane computes
exactly (bitwise) what the same scalar numba code computes."""

import numpy as np
import pytest

from em_core._fast_kernels import _FASTMATH, HAVE_NUMBA

pytestmark = pytest.mark.skipif(not HAVE_NUMBA, reason="the intrinsics need numba")

if HAVE_NUMBA:
    from numba import njit

    from em_core._lanes4 import (
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

    _OPTS = dict(fastmath=_FASTMATH, error_model="numpy", cache=False)

    @njit(**_OPTS)
    def _lanes(S, A, B, out):
        """Row i of ``out``: nine operations on rows i of S, A, B, four lanes at a time."""
        for i in range(S.shape[0]):
            for k0 in range(0, S.shape[1], 4):
                s, a, b = vld2(S, i, k0), vld2(A, i, k0), vld2(B, i, k0)
                vst3(vfma(s, a, b), out, 0, i, k0)
                vst3(vfnma(s, a, b), out, 1, i, k0)
                vst3(vsub(a, b), out, 2, i, k0)
                vst3(vmul(a, b), out, 3, i, k0)
                vst3(vdiv(a, b), out, 4, i, k0)
                vst3(vsqrt(b), out, 5, i, k0)
                vst3(vneg(a), out, 6, i, k0)
                vst3(vsub(vsplat(S[i, 0]), a), out, 7, i, k0)
                vst3(vfma(vfnma(s, a, b), vsplat(2.0), b), out, 8, i, k0)

    @njit(**_OPTS)
    def _scalar(S, A, B, out):
        """The same with scalar code under the same flags (``contract`` fuses s ± a·b)."""
        for i in range(S.shape[0]):
            for k in range(S.shape[1]):
                s, a, b = S[i, k], A[i, k], B[i, k]
                out[0, i, k] = s + a * b
                out[1, i, k] = s - a * b
                out[2, i, k] = a - b
                out[3, i, k] = a * b
                out[4, i, k] = a / b
                out[5, i, k] = np.sqrt(b)
                out[6, i, k] = -a
                out[7, i, k] = S[i, 0] - a
                t = s - a * b
                out[8, i, k] = t + 2.0 * b

    @njit(**_OPTS)
    def _moves(X1, X2, X3, k0, out1, out2, out3):
        vst1(vld1(X1, k0), out1, k0)
        for i in range(X2.shape[0]):
            vst2(vld2(X2, i, k0), out2, i, k0)
        for i in range(X3.shape[0]):
            for j in range(X3.shape[1]):
                vst3(vld3(X3, i, j, k0), out3, i, j, k0)
        v = vld1(X1, k0)
        return vlane(v, 0), vlane(v, 1), vlane(v, 2), vlane(v, 3)


def test_each_lane_equals_the_scalar_code_bitwise():
    rng = np.random.default_rng(0)
    S, A = rng.normal(size=(2, 7, 8))
    B = rng.uniform(0.1, 3.0, size=(7, 8))
    got, want = np.full((9, 7, 8), np.nan), np.full((9, 7, 8), np.nan)
    _lanes(S, A, B, got)
    _scalar(S, A, B, want)
    np.testing.assert_array_equal(got, want)
    # and they are the operations they claim to be (fused or not: within an ulp or two)
    np.testing.assert_allclose(got[0], S + A * B, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(got[1], S - A * B, rtol=1e-15, atol=1e-15)
    np.testing.assert_array_equal(got[4], A / B)
    np.testing.assert_array_equal(got[5], np.sqrt(B))
    np.testing.assert_array_equal(got[7], S[:, :1] - A)


def test_loads_and_stores_touch_exactly_their_four_cells():
    X1 = np.arange(10.0)
    X2 = np.arange(3 * 9, dtype=float).reshape(3, 9)
    X3 = np.arange(2 * 3 * 9, dtype=float).reshape(2, 3, 9)
    for k0 in (0, 3, 5):
        out1 = np.full(10, -1.0)
        out2 = np.full((3, 9), -1.0)
        out3 = np.full((2, 3, 9), -1.0)
        lanes = _moves(X1, X2, X3, k0, out1, out2, out3)
        assert lanes == tuple(X1[k0 : k0 + 4])
        want1 = np.full(10, -1.0)
        want1[k0 : k0 + 4] = X1[k0 : k0 + 4]
        want2 = np.full((3, 9), -1.0)
        want2[:, k0 : k0 + 4] = X2[:, k0 : k0 + 4]
        want3 = np.full((2, 3, 9), -1.0)
        want3[:, :, k0 : k0 + 4] = X3[:, :, k0 : k0 + 4]
        np.testing.assert_array_equal(out1, want1)
        np.testing.assert_array_equal(out2, want2)
        np.testing.assert_array_equal(out3, want3)
