"""The compiled Lloyd iterations of the k-means++ start against their numpy reference."""

import numpy as np
import pytest

from em_core import _kmeans_kernels, init, reference
from em_core._fast_kernels import HAVE_NUMBA

from .conftest import make_mixture, mcar

pytestmark = pytest.mark.skipif(not HAVE_NUMBA, reason="compares the compiled loop with numpy")


@pytest.mark.parametrize("k", [1, 3, 8])
@pytest.mark.parametrize("missing", [0.0, 0.2])
def test_compiled_lloyd_equals_the_numpy_reference(k, missing):
    X = make_mixture(n=3000, d=5, k=4, seed=k).X
    if missing:
        X = mcar(X, missing, seed=k)
    start = init.kmeans_plus_plus(X, k, np.random.default_rng(k), np.nanmean(X, axis=0))
    compiled = init.lloyd(X, start, 300)
    in_numpy = reference.lloyd(X, start, 300)
    np.testing.assert_allclose(compiled, in_numpy, rtol=0, atol=1e-10)


def test_lloyd_stops_after_n_iter_and_keeps_an_emptied_clusters_centre():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (200, 2)), rng.normal(10, 1, (200, 2))])
    far = np.array([[0.0, 0.0], [10.0, 10.0], [1e6, 1e6]])  # the third wins no row
    out = init.lloyd(X, far, 50)
    np.testing.assert_array_equal(out[2], far[2])
    np.testing.assert_allclose(out[:2], [X[:200].mean(axis=0), X[200:].mean(axis=0)])
    one = init.lloyd(X, far, 1)  # one iteration: the means of the first assignment
    np.testing.assert_allclose(one, reference.lloyd(X, far, 1), atol=1e-12)
    np.testing.assert_array_equal(init.lloyd(X, far, 0), far)


def test_the_rows_in_chunks_give_one_result_whatever_the_threads():
    """From two chunks of rows the parallel variant runs; it equals the serial one bitwise (the
    chunks depend only on n) and the numpy reference to 1e-10."""
    X = mcar(make_mixture(n=3 * _kmeans_kernels._CHUNK_ROWS, d=4, k=5, seed=3).X, 0.1, seed=3)
    nchunks = _kmeans_kernels.lloyd_chunks(X.shape[0])
    assert nchunks == 3
    start = init.kmeans_plus_plus(X, 5, np.random.default_rng(0), np.nanmean(X, axis=0))
    observed = (~np.isnan(X)).astype(np.float64)
    args = (np.nan_to_num(X), observed, start, 300, init.LLOYD_ATOL, nchunks)
    parallel = _kmeans_kernels.lloyd_parallel(*args)
    serial = _kmeans_kernels.lloyd_serial(*args)
    np.testing.assert_array_equal(parallel, serial)
    np.testing.assert_array_equal(init.lloyd(X, start, 300), serial)
    np.testing.assert_allclose(serial, reference.lloyd(X, start, 300), rtol=0, atol=1e-10)


@pytest.mark.parametrize("k", [2, 5, 9])
def test_compiled_seeding_picks_the_numpy_seedings_centres(k, monkeypatch):
    """k-means++'s local trials scored by the compiled pass pick the same rows as numpy's."""
    X = mcar(make_mixture(n=4000, d=4, k=4, seed=k).X, 0.15, seed=k)
    means = np.nanmean(X, axis=0)
    compiled = init.kmeans_plus_plus(X, k, np.random.default_rng(k), means)
    monkeypatch.setattr(init, "HAVE_NUMBA", False)
    in_numpy = init.kmeans_plus_plus(X, k, np.random.default_rng(k), means)
    np.testing.assert_array_equal(compiled, in_numpy)
