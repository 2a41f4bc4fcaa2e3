"""The fused incomplete-data E-step kernels against a plain, independent per-row reference."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import em_core.estep as estep
from em_core import _fast_incomplete as fi
from em_core._fast_kernels import complete_stats
from em_core.params import GMMParams
from em_core.suffstats import SufficientStats

from .test_fast_kernels import _covariances, _params, assert_rel, assert_stats

needs_numba = pytest.mark.skipif(not fi.HAVE_NUMBA, reason="the fused kernels need numba")

COV_TYPES = ["full", "tied", "diag", "spherical"]


def reference(X, log_weights, means, pc, cov, shift):
    """Row by row: scipy's marginal log-density of the observed cells, conditional moments of the
    missing ones from explicit Σ_oo solves (Little & Rubin §11.2); nothing shared with em_core."""
    n, d = X.shape
    K = len(log_weights)
    covs = _covariances(pc, cov, K, d)
    logp = np.empty((n, K))
    xhat = np.empty((n, K, d))
    extra = np.zeros((n, K, d, d))
    for i, x in enumerate(X):
        o = ~np.isnan(x)
        m = ~o
        for k in range(K):
            S, mu = covs[k], means[k]
            logp[i, k] = log_weights[k]
            if o.any():
                logp[i, k] += multivariate_normal(mu[o], S[np.ix_(o, o)]).logpdf(x[o])
            xhat[i, k] = np.where(o, x, mu)
            if m.any():
                if o.any():
                    coef = np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, m)]).T  # Σ_mo Σ_oo⁻¹
                    xhat[i, k, m] = mu[m] + coef @ (x[o] - mu[o])
                    extra[i, k][np.ix_(m, m)] = S[np.ix_(m, m)] - coef @ S[np.ix_(o, m)]
                else:
                    extra[i, k] = S
    lpn = logsumexp(logp, axis=1)
    with np.errstate(under="ignore", invalid="ignore"):
        R = np.exp(logp - lpn[:, None])
    z = xhat - shift[None]
    nk = R.sum(axis=0)
    sx = np.einsum("nk,nkd->kd", R, z)
    sxx = np.einsum("nk,nkd,nke->kde", R, z, z) + np.einsum("nk,nkde->kde", R, extra)
    if cov in ("diag", "spherical"):
        sxx = np.stack([np.diag(s) for s in sxx])
    safe = np.where(R > 0, R, 1.0)
    entropy = -np.sum(np.where(R > 0, R * np.log(safe), 0.0))
    return (nk, sx, sxx, lpn.sum(), entropy), (lpn, logp - lpn[:, None])


def _data(rng, n, d, rate=0.3):
    """MCAR cells, complete rows mixed in, rows with one observed cell and one with none."""
    X = rng.normal(size=(n, d)) * 2.0
    X[rng.random((n, d)) < rate] = np.nan
    X[: n // 10] = rng.normal(size=(n // 10, d))  # complete rows
    for i in range(n // 10, n // 10 + 5):  # a single observed cell
        keep = rng.integers(d)
        X[i, np.arange(d) != keep] = np.nan
    X[n // 10 + 5] = np.nan  # no observed cell at all: log-density 0, the prior moments
    return X[rng.permutation(n)]


@needs_numba
@pytest.mark.parametrize("cov", COV_TYPES)
@pytest.mark.parametrize(
    ("n", "d", "K", "block"),
    # one group of four vector lanes (K = 4), padded ones (K = 1, 3, 6) and three groups (K = 9)
    [(400, 3, 4, 64), (301, 5, 1, None), (500, 8, 3, 37), (450, 6, 6, 50), (260, 5, 9, 40)],
)
def test_incomplete_stats_matches_reference(cov, n, d, K, block):
    rng = np.random.default_rng(n + d + K)
    X = _data(rng, n, d)
    log_weights, means, pc = _params(rng, d, K, cov)
    shift = means + rng.normal(size=means.shape) * 0.1
    ref, (lpn, log_resp) = reference(X, log_weights, means, pc, cov, shift)

    out = fi.incomplete_stats(X, log_weights, means, pc, cov, shift, block_size=block)
    assert_stats(out, ref)
    assert out[2].shape == ((K, d, d) if cov in ("full", "tied") else (K, d))
    if cov in ("full", "tied"):
        np.testing.assert_array_equal(out[2], out[2].transpose(0, 2, 1))
    assert_rel(out[0].sum(), n)

    got_lpn, got_log_resp = fi.incomplete_log_resp(X, log_weights, means, pc, cov, block_size=block)
    assert_rel(got_lpn, lpn)
    assert_rel(got_log_resp, log_resp)


@pytest.mark.parametrize("fast", [pytest.param(True, marks=needs_numba), False])
@pytest.mark.parametrize("cov", COV_TYPES)
def test_summarize_matches_reference(cov, fast, monkeypatch):
    """``estep.summarize`` with the fused kernels and with the numpy fallback (no numba)."""
    monkeypatch.setattr(estep, "USE_FAST_INCOMPLETE", fast)
    rng = np.random.default_rng(5)
    n, d, K = 300, 4, 3
    X = _data(rng, n, d)[1:]  # estep's numpy path: every row keeps an observed cell
    X = X[~np.isnan(X).all(axis=1)]
    log_weights, means, pc = _params(rng, d, K, cov)
    params = GMMParams(np.exp(log_weights), means, pc, cov)
    shift = means + 0.05
    stats = estep.summarize(X, params, SufficientStats.zeros(cov, shift))
    ref, (lpn, log_resp) = reference(X, params.log_weights, means, pc, cov, shift)
    assert_stats((stats.nk, stats.sx, stats.sxx, stats.log_likelihood, stats.entropy), ref)
    assert stats.n_samples == X.shape[0]
    wlp = estep.weighted_log_prob(X, params)
    assert_rel(wlp, log_resp + lpn[:, None])


@needs_numba
@pytest.mark.parametrize("cov", COV_TYPES)
def test_the_kernel_layout_is_made_once_per_parameter_set_not_per_chunk(cov, monkeypatch):
    """An E-step over five chunks (complete ones and ones with missing cells) brings the
    parameters to each kernel's layout once, and gives the statistics of the unchunked call on
    layouts made afresh: the kept layout is the parameters' own."""
    import em_core.params as params_module

    made = {"complete": 0, "incomplete": 0}

    def counted(kind, make):
        def wrapper(*args):
            made[kind] += 1
            return make(*args)

        return wrapper

    monkeypatch.setattr(
        params_module, "complete_layout", counted("complete", params_module.complete_layout)
    )
    monkeypatch.setattr(
        params_module, "incomplete_layout", counted("incomplete", params_module.incomplete_layout)
    )
    rng = np.random.default_rng(8)
    n, d, K = 500, 4, 3
    X = _data(rng, n, d)
    X = X[~np.isnan(X).all(axis=1)]
    X = np.concatenate([rng.normal(size=(200, d)), X])  # the first chunks have no NaN
    log_weights, means, pc = _params(rng, d, K, cov)
    params = GMMParams(np.exp(log_weights), means, pc, cov)
    stats = SufficientStats.zeros(cov, params.means)
    for chunk in np.array_split(X, 5):
        estep.summarize(chunk, params, stats)
    assert made == {"complete": 1, "incomplete": 1}
    first, *rest = np.array_split(X, 5)  # the first chunk is complete, the others are not
    fresh = [complete_stats(first, log_weights, means, pc, cov, params.means)] + [
        fi.incomplete_stats(part, log_weights, means, pc, cov, params.means) for part in rest
    ]
    np.testing.assert_allclose(stats.nk, sum(f[0] for f in fresh), rtol=1e-12)
    np.testing.assert_allclose(stats.sxx, sum(f[2] for f in fresh), rtol=1e-12)
    assert stats.log_likelihood == pytest.approx(sum(f[3] for f in fresh), rel=1e-12)


@needs_numba
@pytest.mark.parametrize("cov", COV_TYPES)
def test_block_size_row_order_and_threads_do_not_change_the_result(cov):
    rng = np.random.default_rng(3)
    n, d, K = 1003, 6, 5
    X = _data(rng, n, d, rate=0.25) + 5.0
    log_weights, means, pc = _params(rng, d, K, cov)
    means += 5.0
    base = fi.incomplete_stats(X, log_weights, means, pc, cov, means, block_size=128)
    for block in (1, 7, 64, 2000):
        assert_stats(
            fi.incomplete_stats(X, log_weights, means, pc, cov, means, block_size=block), base
        )
    order = fi.pattern_order(X)  # grouped by pattern, as ArraySource delivers full/tied chunks
    assert np.array_equal(fi.pattern_order(X[order]), np.arange(n))
    keys = estep.pattern_keys(np.isnan(X))
    assert np.all(np.diff(keys[order]) >= 0)
    assert_stats(fi.incomplete_stats(X[order], log_weights, means, pc, cov, means), base)
    serial = fi.incomplete_stats(
        X, log_weights, means, pc, cov, means, block_size=32, parallel=False
    )
    par = fi.incomplete_stats(X, log_weights, means, pc, cov, means, block_size=32, parallel=True)
    assert_stats(par, serial)
    lpn, _ = fi.incomplete_log_resp(X, log_weights, means, pc, cov, block_size=5)
    lpn_sorted, _ = fi.incomplete_log_resp(X[order], log_weights, means, pc, cov)
    assert_rel(lpn[order], lpn_sorted)
    # presorted only skips the ordering check: sorted or not, the rows give the same result
    for rows in (X[order], X):
        assert_stats(
            fi.incomplete_stats(rows, log_weights, means, pc, cov, means, presorted=True), base
        )
    lpn_pre, _ = fi.incomplete_log_resp(X[order], log_weights, means, pc, cov, presorted=True)
    assert_rel(lpn_pre, lpn_sorted)


@needs_numba
@pytest.mark.parametrize("cov", COV_TYPES)
def test_complete_rows_agree_with_the_complete_data_kernel(cov):
    from em_core import _fast_kernels as fk

    rng = np.random.default_rng(9)
    X = rng.normal(size=(700, 5))
    log_weights, means, pc = _params(rng, 5, 4, cov)
    shift = means - 0.2
    assert_stats(
        fi.incomplete_stats(X, log_weights, means, pc, cov, shift),
        fk.complete_stats(X, log_weights, means, pc, cov, shift),
    )


@needs_numba
@pytest.mark.parametrize("cov", COV_TYPES)
def test_negligible_and_zero_weight_components(cov):
    rng = np.random.default_rng(7)
    n, d, K = 300, 4, 5
    X = _data(rng, n, d)
    log_weights, means, pc = _params(rng, d, K, cov)
    log_weights[1] = -600.0  # r ≈ e^-600: tiny but representable, must still be exact
    log_weights[2] = -2000.0  # r underflows to exactly 0
    log_weights[3] = -np.inf  # zero weight
    out = fi.incomplete_stats(X, log_weights, means, pc, cov, means, block_size=64)
    ref, (lpn, _) = reference(X, log_weights, means, pc, cov, means)
    assert_stats(out, ref)
    assert 0 < out[0][1] < 1e-200
    assert out[0][2] == 0.0 and out[0][3] == 0.0
    assert np.all(out[1][2:4] == 0.0) and np.all(out[2][2:4] == 0.0)
    got_lpn, got_log_resp = fi.incomplete_log_resp(X, log_weights, means, pc, cov)
    assert_rel(got_lpn, lpn)
    assert np.all(got_log_resp[:, 3] == -np.inf)


@needs_numba
@pytest.mark.parametrize("d", [64, 70])
def test_many_features_and_patterns(d):
    """d > 62 (the sort keys patterns by packed bytes), d > 64 (the kernel's 64-bit row key
    then only filters, the cells decide) and nearly every row its own pattern."""
    rng = np.random.default_rng(13)
    n, K = 60, 2
    X = _data(rng, n, d, rate=0.5)
    # pairs of rows share a pattern, except rows 2 and 3: they differ only in columns 0 and c,
    # which share a bit of a 64-bit key at d > 64
    X[1::2] = np.where(np.isnan(X[::2]), np.nan, rng.normal(size=(n // 2, d)))
    c = 64 if d > 64 else 1
    X[2, 0], X[2, c], X[3, 0], X[3, c] = np.nan, 1.0, 1.0, np.nan
    assert (np.isnan(X[2]) != np.isnan(X[3])).sum() == 2
    for cov in ("full", "tied", "diag"):
        log_weights, means, pc = _params(rng, d, K, cov)
        ref, _ = reference(X, log_weights, means, pc, cov, means)
        assert_stats(fi.incomplete_stats(X, log_weights, means, pc, cov, means), ref)
        # in this order rows 2 and 3 are neighbours: their patterns must not be merged
        got = fi.incomplete_stats(X, log_weights, means, pc, cov, means, presorted=True)
        assert_stats(got, ref)
