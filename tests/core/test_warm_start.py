"""A warm start that is already an optimum is kept as given (identical re-runs reproduce)."""

import numpy as np
import pytest

from em_core import GaussianMixture


def _data(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(300, 3)) + c for c in ([0, 0, 0], [4, 1, 0], [0, 5, 2])])
    hide = rng.random(X.shape) < 0.1
    hide[:, 0] &= ~hide[:, 1:].all(axis=1)  # never a whole row
    X[hide] = np.nan
    return X


def _warm(gm: GaussianMixture, **kwargs) -> GaussianMixture:
    return GaussianMixture(
        gm.n_components, covariance_type=gm.covariance_type, weights_init=gm.weights_,
        means_init=gm.means_, precisions_init=gm.precisions_, **kwargs,
    )  # fmt: skip


@pytest.mark.parametrize("acceleration", [None, "squarem"])
def test_a_converged_warm_start_on_the_same_data_is_kept_as_given(acceleration):
    X = _data()
    first = GaussianMixture(3, n_init=2, random_state=0, acceleration=acceleration).fit(X)
    assert first.converged_
    again = _warm(first, n_init=3, random_state=0, acceleration=acceleration).fit(X)
    assert again.best_restart_ == 0 and again.restarts_[0]["n_iter"] == 0
    np.testing.assert_array_equal(again.means_, first.means_)
    np.testing.assert_array_equal(again.weights_, first.weights_)
    # given as precisions: the covariances come back through one inversion (1 ulp)
    np.testing.assert_allclose(again.covariances_, first.covariances_, rtol=1e-13)
    np.testing.assert_allclose(again.predict_proba(X), first.predict_proba(X), atol=1e-13)
    assert again.history_[0] == [again.log_likelihood_]


def test_a_warm_start_that_is_not_an_optimum_runs_em_as_before():
    X = _data()
    first = GaussianMixture(3, random_state=0, max_iter=3).fit(X)  # stopped early
    again = _warm(first, random_state=0).fit(X)
    assert again.restarts_[0]["n_iter"] > 1 and again.log_likelihood_ > first.log_likelihood_
    moved = _warm(first, random_state=0).fit(_data(seed=1))  # other data: EM moves on
    assert moved.restarts_[0]["n_iter"] >= 1
