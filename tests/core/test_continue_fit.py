"""A chosen candidate that stopped at max_iter is run on to convergence: the published model is a
converged one, its likelihood only rose, and its row and history say so."""

import numpy as np

from em_core import GaussianMixture, select_model


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(400, 2)), rng.normal(size=(400, 2)) * 0.5 + [1.5, 1.0]])
    X[::9, 1] = np.nan
    return X


def test_continue_fit_extends_the_kept_restart_monotonically():
    X = _data()
    gm = GaussianMixture(3, max_iter=3, tol=1e-6, random_state=0).fit(X)
    assert not gm.converged_
    before = gm.log_likelihood_
    kept = gm.best_restart_
    gm.continue_fit(X, max_iter=1000)
    assert gm.converged_ and gm.n_iter_ > 3
    assert gm.log_likelihood_ >= before
    history = np.asarray(gm.history_[kept])
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[:-1]))
    assert history[-1] == gm.log_likelihood_ and len(history) == gm.n_iter_ + 1
    assert gm.restarts_[kept]["converged"] and gm.restarts_[kept]["n_iter"] == gm.n_iter_
    # the same fit as EM run once for as long (tol reached in both)
    long = GaussianMixture(3, max_iter=1000, tol=1e-6, random_state=0).fit(X)
    assert long.converged_
    np.testing.assert_allclose(gm.log_likelihood_, long.log_likelihood_, rtol=1e-6)


def test_select_model_finishes_an_unconverged_winner_and_says_so():
    X = _data(1)
    res = select_model(X, [1, 2, 3], ["full"], n_init=1, random_state=0, max_iter=5, tol=1e-4)
    row = res.table[res.best_index]
    assert row["continued"] and row["converged"] and res.best.converged_
    assert row["n_iter"] == res.best.n_iter_ > 5
    assert row["log_likelihood"] == res.best.log_likelihood_
    others = [r for i, r in enumerate(res.table) if i != res.best_index]
    assert not any(r["continued"] for r in others)
