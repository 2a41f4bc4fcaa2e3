"""The compiled inner loops of the iterative M-steps (VEI, VEV, VEE, EVE, VVE) equal their numpy
references on random expected scatter matrices."""

import numpy as np
import pytest

from em_core import models, reference
from em_core._fast_kernels import HAVE_NUMBA
from em_core._mstep_kernels import (
    orientation_iterations,
    vee_iterations,
    volumes_and_shape_iterations,
)

SHAPES = [(2, 2), (3, 5), (6, 13), (9, 4)]


def random_scatters(k: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Wishart-like W_k (3d rows each) and masses n_k."""
    rng = np.random.default_rng(k * 100 + d)
    a = rng.normal(size=(k, d, 3 * d)) * rng.uniform(0.2, 5.0, size=(k, 1, 1))
    return np.einsum("kij,klj->kil", a, a), rng.uniform(5, 50, k)


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize(("k", "d"), SHAPES)
@pytest.mark.parametrize("spectra", [True, False])
@pytest.mark.parametrize("warm", [True, False])
def test_the_compiled_volumes_and_shape_loop_equals_the_numpy_reference(k, d, spectra, warm):
    """VEV alternates on the spectra of W_k, VEI on their diagonals; cold (λ = 1) or warm."""
    W, nk = random_scatters(k, d)
    values = np.linalg.eigvalsh(W)[:, ::-1] if spectra else np.einsum("kii->ki", W)
    values = np.ascontiguousarray(values)
    lam0 = np.exp(np.random.default_rng(d).normal(size=k)) if warm else np.ones(k)
    vol_den = nk * d
    ref_lam, ref_a = reference.volumes_and_shape_iterations(
        values, vol_den, lam0.copy(), models.INNER_TOL, models.INNER_MAX_ITER
    )
    got_lam, got_a = volumes_and_shape_iterations(
        values, vol_den, lam0.copy(), models.INNER_TOL, models.INNER_MAX_ITER
    )
    np.testing.assert_allclose(got_lam, ref_lam, rtol=1e-10)
    np.testing.assert_allclose(got_a, ref_a, rtol=1e-10)
    # a fixed point of the alternation: the shape has geometric mean 1 and gives back λ
    assert abs(np.mean(np.log(got_a))) < 1e-12
    lam_again = np.sum(values / got_a, axis=1) / vol_den
    np.testing.assert_allclose(lam_again, got_lam, rtol=1e-6)


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize(("k", "d"), SHAPES)
def test_the_compiled_vee_loop_equals_the_numpy_reference(k, d):
    W, nk = random_scatters(k, d)
    lam0 = np.ones(k)
    ref_lam, ref_c = reference.vee_iterations(
        W, nk, lam0.copy(), models.INNER_TOL, models.INNER_MAX_ITER
    )
    got_lam, got_c = vee_iterations(W, nk, lam0.copy(), models.INNER_TOL, models.INNER_MAX_ITER)
    np.testing.assert_allclose(got_lam, ref_lam, rtol=1e-10)
    np.testing.assert_allclose(got_c, ref_c, rtol=1e-10, atol=1e-10 * np.abs(ref_c).max())
    assert abs(np.linalg.slogdet(got_c)[1]) < 1e-10  # det C = 1
    # λ_k = tr(W_k C⁻¹) / (n_k d) at the fixed point
    lam_again = np.einsum("kij,ji->k", W, np.linalg.inv(got_c)) / (nk * d)
    np.testing.assert_allclose(lam_again, got_lam, rtol=1e-6)


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize(("k", "d"), SHAPES)
@pytest.mark.parametrize("equal_volume", [True, False])
def test_the_compiled_orientation_loop_equals_the_numpy_reference(k, d, equal_volume):
    W, nk = random_scatters(k, d)
    O = np.ascontiguousarray(models._orientation_start(W, None))
    omega = np.linalg.eigvalsh(W)[:, -1]
    ref_O, ref_shapes = reference.orientation_iterations(
        W, nk, O, omega, equal_volume, models.INNER_TOL, models.INNER_MAX_ITER
    )
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
