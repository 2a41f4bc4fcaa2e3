"""Agreement with independent implementations: scikit-learn, and a plain missing-data MVN EM."""

import numpy as np
import pytest
from scipy import stats
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from em_core import GaussianMixture

from .conftest import make_mixture, mcar

pytestmark = pytest.mark.filterwarnings("ignore::Warning")


def _initial_params(X, k, covariance_type, seed):
    """Deliberately rough starting parameters shared by both implementations."""
    rng = np.random.default_rng(seed)
    d = X.shape[1]
    means = X[rng.choice(X.shape[0], k, replace=False)]
    weights = np.full(k, 1.0 / k)
    var = X.var(axis=0)
    precisions = {
        "full": np.array([np.diag(1.0 / var)] * k),
        "tied": np.diag(1.0 / var),
        "diag": np.tile(1.0 / var, (k, 1)),
        "spherical": np.full(k, 1.0 / var.mean()),
    }[covariance_type]
    assert means.shape == (k, d)
    return weights, means, precisions


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("k", [1, 4])
def test_trace_equals_scikit_learn(covariance_type, k):
    X = make_mixture(n=2000, d=4, k=4, separation=3.0, seed=21).X
    weights, means, precisions = _initial_params(X, k, covariance_type, seed=k)
    n_iter = 30
    common = dict(
        n_components=k, covariance_type=covariance_type, tol=0.0, max_iter=n_iter,
        reg_covar=1e-6, weights_init=weights, means_init=means, precisions_init=precisions,
    )  # fmt: skip
    ours = GaussianMixture(**common, eigen_floor=0.0).fit(X)
    ref = SkGaussianMixture(**common, n_init=1).fit(X)
    trace = np.asarray(ours.history_[0]) / X.shape[0]
    # scikit-learn records the bound before each M-step: ours[t] for t < n_iter
    np.testing.assert_allclose(trace[:n_iter], ref.lower_bounds_, rtol=1e-8)
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.covariances_, ref.covariances_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.weights_, ref.weights_, rtol=1e-7)
    np.testing.assert_allclose(ours.score_samples(X), ref.score_samples(X), rtol=1e-8)


def _plain_mvn_em(X, mean, cov, n_iter):
    """Textbook EM for one multivariate normal with missing cells (Little & Rubin, §11.2),
    written row by row with explicit Σ_oo solves; returns (log-likelihood trace, mean, cov)."""
    n, d = X.shape
    trace = []
    for _ in range(n_iter + 1):
        ll = 0.0
        s1 = np.zeros(d)
        s2 = np.zeros((d, d))
        for x in X:
            o = ~np.isnan(x)
            m = ~o
            ll += stats.multivariate_normal(mean[o], cov[np.ix_(o, o)]).logpdf(x[o])
            xhat = x.copy()
            extra = np.zeros((d, d))
            if m.any():
                coef = cov[np.ix_(m, o)] @ np.linalg.inv(cov[np.ix_(o, o)])
                xhat[m] = mean[m] + coef @ (x[o] - mean[o])
                extra[np.ix_(m, m)] = cov[np.ix_(m, m)] - coef @ cov[np.ix_(o, m)]
            s1 += xhat
            s2 += np.outer(xhat, xhat) + extra
        trace.append(ll)
        if len(trace) == n_iter + 1:
            break
        mean = s1 / n
        cov = s2 / n - np.outer(mean, mean)
    return np.array(trace), mean, cov


def test_single_gaussian_with_missing_cells_matches_plain_em():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(4, 4))
    true_cov = a @ a.T + 0.5 * np.eye(4)
    X = rng.multivariate_normal([1.0, -2.0, 0.5, 3.0], true_cov, size=300)
    X = mcar(X, 0.3, seed=4)
    mean0 = np.nanmean(X, axis=0)
    cov0 = np.diag(np.nanvar(X, axis=0))
    n_iter = 12
    trace, mean, cov = _plain_mvn_em(X, mean0, cov0, n_iter)
    gm = GaussianMixture(
        1, covariance_type="full", tol=0.0, max_iter=n_iter, reg_covar=0.0,
        means_init=mean0[None], precisions_init=np.linalg.inv(cov0)[None], weights_init=[1.0],
    ).fit(X)  # fmt: skip
    np.testing.assert_allclose(gm.history_[0], trace, rtol=1e-10)
    np.testing.assert_allclose(gm.means_[0], mean, rtol=1e-9)
    np.testing.assert_allclose(gm.covariances_[0], cov, rtol=1e-9)
    assert np.all(np.diff(trace) > -1e-9)
