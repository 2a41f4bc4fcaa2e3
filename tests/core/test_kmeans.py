"""The compiled Lloyd iterations of the k-means++ start against their numpy reference."""

import numpy as np
import pytest

from em_core import init, reference
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
