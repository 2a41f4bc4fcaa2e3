"""Imputation: conditional means beat column means and a regression imputer; draws are valid."""

import numpy as np
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer

from em_core import GaussianMixture

from .conftest import make_mixture, mcar


def _rmse(a, b, mask):
    return float(np.sqrt(np.mean((a[mask] - b[mask]) ** 2)))


def test_imputation_beats_column_means_and_iterative_imputer():
    mix = make_mixture(n=2000, d=4, k=3, separation=4.0, seed=12)
    X = mcar(mix.X, 0.2, seed=12)
    mask = np.isnan(X)
    gm = GaussianMixture(3, n_init=3, random_state=0).fit(X)
    filled = gm.impute(X)
    assert not np.isnan(filled).any()
    np.testing.assert_array_equal(filled[~mask], X[~mask])
    em_rmse = _rmse(filled, mix.X, mask)
    mean_rmse = _rmse(np.where(mask, np.nanmean(X, axis=0), X), mix.X, mask)
    iterative = IterativeImputer(random_state=0, max_iter=20).fit_transform(X)
    iter_rmse = _rmse(iterative, mix.X, mask)
    assert em_rmse < 0.8 * mean_rmse
    assert em_rmse <= iter_rmse


def test_multiple_imputation_draws():
    mix = make_mixture(n=600, d=3, k=2, seed=13)
    X = mcar(mix.X, 0.25, seed=13)
    mask = np.isnan(X)
    gm = GaussianMixture(2, n_init=2, random_state=0).fit(X)
    draws = gm.impute(X, n_draws=200, random_state=0)
    assert draws.shape == (200, *X.shape)
    assert not np.isnan(draws).any()
    np.testing.assert_array_equal(draws[:, ~mask], np.broadcast_to(X[~mask], (200, (~mask).sum())))
    # draws vary, and their average approaches the conditional mean
    assert np.all(draws[:, mask].std(axis=0) > 0)
    spread = draws[:, mask].std(axis=0) / np.sqrt(200)
    gap = np.abs(draws[:, mask].mean(axis=0) - gm.impute(X)[mask])
    assert np.mean(gap < 4 * spread + 1e-9) > 0.97
    again = gm.impute(X, n_draws=200, random_state=0)
    np.testing.assert_array_equal(draws, again)


def test_impute_new_rows_with_fitted_model():
    mix = make_mixture(n=1000, d=3, k=2, seed=14)
    gm = GaussianMixture(2, random_state=0).fit(mix.X)
    new = np.array([[np.nan, mix.X[0, 1], mix.X[0, 2]], [1.0, 2.0, 3.0]])
    out = gm.impute(new)
    np.testing.assert_array_equal(out[1], new[1])
    assert np.isfinite(out[0, 0])
