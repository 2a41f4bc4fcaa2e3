"""The compiled common-orientation loop (EVE, VVE M-steps) equals the numpy reference."""

import numpy as np
import pytest

from em_core import models
from em_core._fast_kernels import HAVE_NUMBA
from em_core._orientation_kernel import orientation_iterations


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize(("k", "d"), [(2, 2), (3, 5), (6, 13), (9, 4)])
@pytest.mark.parametrize("equal_volume", [True, False])
def test_the_compiled_orientation_loop_equals_the_numpy_reference(k, d, equal_volume):
    rng = np.random.default_rng(k * 100 + d)
    a = rng.normal(size=(k, d, 3 * d))
    W = np.einsum("kij,klj->kil", a, a)
    nk = rng.uniform(5, 50, k)
    O = np.ascontiguousarray(models._orientation_start(W, None))
    omega = np.linalg.eigvalsh(W)[:, -1]
    ref_O, ref_shapes = models.orientation_iterations_numpy(W, nk, O, omega, equal_volume)
    got_O, got_shapes = orientation_iterations(
        W, nk, O, omega, equal_volume, models.INNER_TOL, models.INNER_MAX_ITER
    )
    np.testing.assert_allclose(got_O, ref_O, atol=1e-10)
    np.testing.assert_allclose(got_shapes, ref_shapes, rtol=1e-10)
    # and the covariances it gives are orthogonally diagonalised by O
    cov = models._common_orientation_fit(W, nk, None, equal_volume)
    inner = np.einsum("ij,kjl,ml->kim", got_O, cov, got_O)
    off = inner - np.einsum("kii->ki", inner)[:, :, None] * np.eye(d)
    assert np.abs(off).max() <= 1e-9 * np.abs(inner).max()
