"""The fused complete-data E-step kernels against a plain, independent scipy reference."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from em_core import _fast_kernels as fk

COV_TYPES = ["full", "tied", "diag", "spherical"]
BACKENDS = ["numba", "numpy"] if fk.HAVE_NUMBA else ["numpy"]
RTOL = 1e-10


def _params(rng, d, K, cov):
    """Random mixture parameters, precisions stored as scikit-learn stores them."""
    means = rng.normal(size=(K, d)) * 2.0
    weights = rng.dirichlet(np.ones(K))

    def prec_chol(C):  # upper-triangular P with P Pᵀ = C⁻¹
        return np.linalg.inv(np.linalg.cholesky(C)).T

    if cov == "full":
        A = rng.normal(size=(K, d, d))
        C = A @ A.transpose(0, 2, 1) / d + np.eye(d)
        pc = np.stack([prec_chol(c) for c in C])
    elif cov == "tied":
        A = rng.normal(size=(d, d))
        pc = prec_chol(A @ A.T / d + np.eye(d))
    elif cov == "diag":
        pc = 1.0 / np.sqrt(rng.uniform(0.5, 2.0, size=(K, d)))
    else:
        pc = 1.0 / np.sqrt(rng.uniform(0.5, 2.0, size=K))
    return np.log(weights), means, pc


def _covariances(pc, cov, K, d):
    if cov == "full":
        return [np.linalg.inv(p @ p.T) for p in pc]
    if cov == "tied":
        return [np.linalg.inv(pc @ pc.T)] * K
    if cov == "diag":
        return [np.diag(1.0 / p**2) for p in pc]
    return [np.eye(d) / p**2 for p in pc]


def reference(X, log_weights, means, pc, cov, shift):
    """Plain scipy/numpy: log-densities from multivariate_normal, explicit loop over components."""
    d = X.shape[1]
    K = len(log_weights)
    covs = _covariances(pc, cov, K, d)
    logp = np.column_stack(
        [log_weights[k] + multivariate_normal.logpdf(X, means[k], covs[k]) for k in range(K)]
    )
    lpn = logsumexp(logp, axis=1)
    with np.errstate(under="ignore"):
        R = np.exp(logp - lpn[:, None])
    nk = R.sum(axis=0)
    sx = np.stack([R[:, k] @ (X - shift[k]) for k in range(K)])
    sxx = np.stack([(X - shift[k]).T @ (R[:, [k]] * (X - shift[k])) for k in range(K)])
    if cov in ("diag", "spherical"):
        sxx = np.stack([np.diag(s) for s in sxx])
    safe = np.where(R > 0, R, 1.0)
    entropy = -np.sum(np.where(R > 0, R * np.log(safe), 0.0))
    return (nk, sx, sxx, lpn.sum(), entropy), (lpn, logp - lpn[:, None])


def assert_rel(actual, desired, rtol=RTOL):
    """Equal to ``rtol`` relative to the largest magnitude of ``desired``."""
    actual = np.asarray(actual, dtype=float)
    desired = np.asarray(desired, dtype=float)
    assert actual.shape == desired.shape
    scale = max(np.max(np.abs(desired)), np.finfo(float).tiny)
    np.testing.assert_allclose(actual, desired, rtol=0, atol=rtol * scale)


def assert_stats(out, ref):
    nk, sx, sxx, ll, ent = out
    rnk, rsx, rsxx, rll, rent = ref
    for k in range(len(rnk)):  # per component: a small component is held to its own scale
        if rnk[k] > 0:
            assert_rel(nk[k], rnk[k])
            assert_rel(sx[k], rsx[k])
            assert_rel(sxx[k], rsxx[k])
    assert_rel(nk, rnk)
    assert_rel(ll, rll)
    assert_rel(ent, rent)
    assert isinstance(ll, float) and isinstance(ent, float)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cov", COV_TYPES)
@pytest.mark.parametrize(
    ("n", "d", "K", "block"), [(1000, 3, 4, 64), (777, 5, 1, 100), (1531, 16, 10, None)]
)
def test_complete_stats_matches_reference(backend, cov, n, d, K, block):
    rng = np.random.default_rng(n + d + K)
    X = rng.normal(size=(n, d)) * 2.0
    log_weights, means, pc = _params(rng, d, K, cov)
    shift = means + rng.normal(size=means.shape) * 0.1
    out = fk.complete_stats(
        X, log_weights, means, pc, cov, shift, block_size=block, backend=backend
    )
    ref, (lpn, log_resp) = reference(X, log_weights, means, pc, cov, shift)
    assert_stats(out, ref)
    assert out[2].shape == ((K, d, d) if cov in ("full", "tied") else (K, d))
    if cov in ("full", "tied"):
        np.testing.assert_array_equal(out[2], out[2].transpose(0, 2, 1))
    assert_rel(out[0].sum(), n)

    got_lpn, got_log_resp = fk.complete_log_resp(
        X, log_weights, means, pc, cov, block_size=block, backend=backend
    )
    assert_rel(got_lpn, lpn)
    assert_rel(got_log_resp, log_resp)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cov", COV_TYPES)
def test_negligible_and_zero_weight_components(backend, cov):
    rng = np.random.default_rng(7)
    n, d, K = 600, 4, 5
    X = rng.normal(size=(n, d))
    log_weights, means, pc = _params(rng, d, K, cov)
    log_weights[1] = -600.0  # r ≈ e^-600: tiny but representable, must still be exact
    log_weights[2] = -2000.0  # r underflows to exactly 0 (the kernel skips it)
    log_weights[3] = -np.inf  # zero weight
    out = fk.complete_stats(X, log_weights, means, pc, cov, means, block_size=64, backend=backend)
    ref, (lpn, _) = reference(X, log_weights, means, pc, cov, means)
    assert_stats(out, ref)
    assert 0 < out[0][1] < 1e-200
    assert out[0][2] == 0.0 and out[0][3] == 0.0
    assert np.all(out[1][2:4] == 0.0) and np.all(out[2][2:4] == 0.0)
    got_lpn, got_log_resp = fk.complete_log_resp(X, log_weights, means, pc, cov, backend=backend)
    assert_rel(got_lpn, lpn)
    assert np.all(got_log_resp[:, 3] == -np.inf)
    assert np.all(np.isfinite(got_log_resp[:, [0, 1, 2, 4]]))


@pytest.mark.parametrize("cov", COV_TYPES)
def test_block_size_and_threads_do_not_change_the_result(cov):
    rng = np.random.default_rng(3)
    n, d, K = 1003, 6, 7
    X = rng.normal(size=(n, d)) + 5.0
    log_weights, means, pc = _params(rng, d, K, cov)
    means += 5.0
    base = fk.complete_stats(X, log_weights, means, pc, cov, means, block_size=256)
    for block in (1, 7, 64, 2000):
        assert_stats(
            fk.complete_stats(X, log_weights, means, pc, cov, means, block_size=block), base
        )
    assert_stats(fk.complete_stats(X, log_weights, means, pc, cov, means, backend="numpy"), base)
    if fk.HAVE_NUMBA:
        serial = fk.complete_stats(
            X, log_weights, means, pc, cov, means, block_size=64, parallel=False
        )
        par = fk.complete_stats(X, log_weights, means, pc, cov, means, block_size=64, parallel=True)
        assert_stats(par, serial)  # same chunking; BLAS kernels may differ in the last bit


@pytest.mark.skipif(not fk.HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("cov", COV_TYPES)
def test_one_row_chunk_runs_serially_with_the_parallel_variants_exact_result(cov):
    """Below one chunk's worth of rows the default takes the serial variant (no thread-pool
    wake-up); it is the same code on the same chunk, so the result is bitwise the same."""
    chosen = []
    variants = (lambda: chosen.append("parallel"), lambda: chosen.append("serial"))
    fk.run_variant(*variants, (), None, 1)
    fk.run_variant(*variants, (), True, 1)
    fk.run_variant(*variants, (), False, 64)
    assert chosen == ["serial", "parallel", "serial"]
    rng = np.random.default_rng(5)
    n, d, K = 300, 5, 4  # a few blocks, one chunk
    X = rng.normal(size=(n, d))
    log_weights, means, pc = _params(rng, d, K, cov)
    default = fk.complete_stats(X, log_weights, means, pc, cov, means)
    par = fk.complete_stats(X, log_weights, means, pc, cov, means, parallel=True)
    for a, b in zip(default, par, strict=True):
        np.testing.assert_array_equal(a, b)


def test_non_triangular_factor_follows_the_stated_formula():
    """A factor with a lower part is applied as a dense matrix (``Σ log diag P`` as documented)."""
    rng = np.random.default_rng(11)
    n, d, K = 300, 4, 3
    X = rng.normal(size=(n, d))
    log_weights, means, pc = _params(rng, d, K, "full")
    dense = pc + np.tril(rng.normal(size=(K, d, d)) * 0.1, -1)
    logp = np.column_stack(
        [
            log_weights[k]
            - 0.5 * (d * np.log(2 * np.pi) + np.sum(((X - means[k]) @ dense[k]) ** 2, axis=1))
            + np.log(np.diag(dense[k])).sum()
            for k in range(K)
        ]
    )
    for backend in BACKENDS:
        lpn, log_resp = fk.complete_log_resp(X, log_weights, means, dense, "full", backend=backend)
        assert_rel(lpn, logsumexp(logp, axis=1))
        assert_rel(log_resp, logp - logsumexp(logp, axis=1, keepdims=True))


def test_invalid_arguments():
    X = np.zeros((5, 2))
    lw, means, pc = np.log([0.5, 0.5]), np.zeros((2, 2)), np.ones((2, 2))
    with pytest.raises(ValueError, match="covariance_type"):
        fk.complete_stats(X, lw, means, pc, "banana", means)
    with pytest.raises(ValueError, match="precisions_chol"):
        fk.complete_stats(X, lw, means, pc, "full", means)
    with pytest.raises(ValueError, match="shift"):
        fk.complete_stats(X, lw, means, pc, "diag", means[:1])
    with pytest.raises(ValueError, match="block_size"):
        fk.complete_stats(X, lw, means, pc, "diag", means, block_size=0)
    with pytest.raises(ValueError, match="backend"):
        fk.complete_stats(X, lw, means, pc, "diag", means, backend="cuda")


@pytest.mark.parametrize("cov", ["diag", "spherical"])
def test_diag_moments_over_many_blocks(cov):
    """diag/spherical moments are vector reductions per block, added over all blocks of a chunk:
    many blocks per chunk, a ragged last block and data far from the origin."""
    rng = np.random.default_rng(11)
    n, d, K = 20_011, 16, 10
    X = rng.normal(size=(n, d)) * 3.0 + 1e3
    log_weights, means, pc = _params(rng, d, K, cov)
    means += 1e3
    shift = means + rng.normal(size=means.shape) * 0.1
    ref, _ = reference(X, log_weights, means, pc, cov, shift)
    for parallel in (False, True):
        out = fk.complete_stats(X, log_weights, means, pc, cov, shift, parallel=parallel)
        assert_stats(out, ref)


@pytest.mark.parametrize("cov", ["diag", "spherical"])
@pytest.mark.parametrize("K", [3, 7])
def test_diag_components_near_and_far_from_the_centre(cov, K):
    """diag/spherical components near the common centre take their moments about it (tiles of
    four and two components, odd d); one far from it, in units of its own σ, takes the direct
    path. Both agree with the reference."""
    rng = np.random.default_rng(K)
    n, d = 3001, 5
    X = rng.normal(size=(n, d)) * 2.0
    log_weights, means, pc = _params(rng, d, K, cov)
    means[-1] += 50.0  # the last component: far away, and narrow
    pc[-1] *= 20.0
    X[:300] = means[-1] + rng.normal(size=(300, d)) / pc[-1].mean()
    shift = means + rng.normal(size=means.shape) * 0.1
    layout = fk.complete_layout(log_weights, means, pc, cov)
    centre = fk._centre(layout.const, means, layout.Pd, shift, 2)
    assert centre.any_far and not centre.near[-1] and centre.near[:-1].all()
    ref, (lpn, log_resp) = reference(X, log_weights, means, pc, cov, shift)
    for parallel in (False, True):
        out = fk.complete_stats(X, log_weights, means, pc, cov, shift, parallel=parallel)
        assert_stats(out, ref)
    got_lpn, got_log_resp = fk.complete_log_resp(X, log_weights, means, pc, cov)
    assert_rel(got_lpn, lpn)
    assert_rel(got_log_resp, log_resp)


@pytest.mark.skipif(not fk.HAVE_NUMBA, reason="numba kernel only")
def test_fast_exp_matches_libm():
    """The kernel's own exp: ≤ 2 ulp from libm on [-708, 0] (and on (0, 709]), exactly 0.0 below
    -708 and for -inf, exactly 1.0 at 0."""
    rng = np.random.default_rng(3)
    x = np.concatenate(
        [
            rng.uniform(-708.0, 0.0, 200_000),
            rng.uniform(-1.0, 1.0, 50_000),
            rng.uniform(0.0, 709.0, 50_000),
            np.arange(-708.0, 709.0),  # integers: t = x / log 2 near ties of the rounding
            np.arange(-708.0, 709.0) * np.log(2.0) + 0.5 * np.log(2.0),
        ]
    )
    x = x[x >= -708.0]

    def fast_exp(a, b):
        v = np.empty((1, a.shape[0]))
        ibuf = np.empty(a.shape[0], dtype=np.int64)
        fk._exp_diff(a[None, :], 0, b, v, a.shape[0], ibuf, ibuf.view(np.float64))
        return v[0]

    v = fast_exp(x + 1.0, np.ones_like(x))
    ref = np.exp((x + 1.0) - 1.0)
    assert np.all(np.abs(v - ref) <= 2.0 * np.spacing(ref))
    x = np.array([-np.inf, -708.5, -745.0, -1e300, 0.0])
    assert list(fast_exp(x, np.zeros_like(x))) == [0.0, 0.0, 0.0, 0.0, 1.0]


@pytest.mark.skipif(not fk.HAVE_NUMBA, reason="numba kernel only")
def test_fast_log_matches_libm():
    """The kernel's own log: ≤ 1 ulp from libm over the normal range (the kernels take it of
    Σ_k exp(L_k − max) ∈ [1, K]); zero, subnormals, inf and NaN fall back to libm."""
    rng = np.random.default_rng(5)
    x = np.concatenate(
        [
            rng.uniform(1.0, 64.0, 200_000),
            rng.uniform(0.5, 2.0, 50_000),
            1.0 + rng.normal(size=20_000) * 1e-9,
            np.exp(rng.uniform(-700.0, 700.0, 50_000)),
            [1.0, 2.0, np.sqrt(0.5), np.sqrt(2.0), np.finfo(float).tiny, np.finfo(float).max],
        ]
    )
    out = np.empty_like(x)
    fk._log_vec(x, out, x.shape[0], np.empty(x.shape[0], dtype=np.int64))
    ref = np.log(x)
    assert np.all(np.abs(out - ref) <= np.spacing(np.abs(ref)))
    assert out[-6] == 0.0
    special = np.array([0.0, 5e-324, 1e-310, np.inf, np.nan])
    out = np.empty_like(special)
    fk._log_vec(special, out, 5, np.empty(5, dtype=np.int64))
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(out, np.log(special))
