"""Collapsed components are spurious maxima: detected, rejected, never selected, never NaN."""

import numpy as np
import pytest

from em_core import DegenerateFitError, GaussianMixture, select_model

pytestmark = pytest.mark.filterwarnings("ignore::em_core.ConvergenceWarning")


def _two_points(n=100, d=3):
    return np.vstack([np.ones((n // 2, d)), np.zeros((n // 2, d))])


def test_data_without_spread_raises_actionable_error():
    with pytest.raises(DegenerateFitError, match="reg_covar") as info:
        GaussianMixture(2, reg_covar=0.0, random_state=0).fit(_two_points())
    assert isinstance(info.value, ValueError)


def test_regularisation_is_the_documented_escape_hatch():
    # scikit-learn's test_regularisation: reg_covar keeps the fit finite once the
    # collapse test is switched off
    gm = GaussianMixture(2, reg_covar=1e-6, eigen_floor=0.0, random_state=0).fit(_two_points())
    assert np.all(np.isfinite(gm.covariances_))
    assert np.isfinite(gm.log_likelihood_)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical", "tied", "EVE"])
def test_a_constant_column_fits_with_the_default_prior(covariance_type):
    # mclust's default prior scale is the data's covariance: singular with a constant column
    rng = np.random.default_rng(4)
    X = np.column_stack([rng.normal(size=300), np.zeros(300), rng.normal(size=300)])
    X[:150, 0] += 4.0
    gm = GaussianMixture(2, covariance_type=covariance_type, prior="default", random_state=0)
    gm.fit(X)
    assert np.isfinite(gm.log_likelihood_)
    assert sorted(np.round(gm.means_[:, 0])) == [0.0, 4.0]


def _with_duplicated_points(seed=0):
    rng = np.random.default_rng(seed)
    blob = rng.normal(size=(400, 2))
    spike = np.tile([[0.3, -0.2]], (6, 1))  # six identical customers
    return np.vstack([blob, spike])


def test_collapsing_restart_is_rejected_and_reported():
    X = _with_duplicated_points()
    # warm start with a narrow component sitting on the duplicates: EM shrinks it onto them
    gm = GaussianMixture(
        2,
        weights_init=[0.02, 0.98],
        means_init=[[0.3, -0.2], [0.0, 0.0]],
        precisions_init=[np.eye(2) * 1e4, np.eye(2)],
        n_init=3,
        random_state=0,
        reg_covar=1e-6,
    ).fit(X)
    warm = gm.restarts_[0]
    assert warm["init"] == "warm" and warm["degenerate"]
    assert "collapsed" in warm["reason"] or "mass" in warm["reason"]
    assert gm.best_restart_ != 0
    assert np.all(np.isfinite(gm.covariances_))


def test_selection_never_picks_a_degenerate_candidate():
    X = _with_duplicated_points(seed=1)
    res = select_model(X, range(1, 6), ("full", "diag"), n_init=2, random_state=0, max_iter=100)
    best_row = res.table[res.best_index]
    assert not best_row["degenerate"]
    for row in res.table:
        gm = res.models[(row["n_components"], row["covariance_type"])]
        if gm is None:
            assert row["error"] and row["bic"] is None
        else:
            assert all(np.isfinite(v) for v in (row["bic"], row["aic"], row["icl"]))
            assert all(
                not r["degenerate"] for r in gm.restarts_ if r["restart"] == gm.best_restart_
            )


def test_selection_records_only_numerical_failures_and_lets_other_errors_through(monkeypatch):
    X = _with_duplicated_points(seed=2)
    original = GaussianMixture.fit

    def buggy(self, data):
        if self.n_components == 2:
            raise ValueError("a bug, not a degenerate fit")
        return original(self, data)

    monkeypatch.setattr(GaussianMixture, "fit", buggy)
    with pytest.raises(ValueError, match="a bug"):
        select_model(X, range(1, 4), ("diag",), n_init=1, random_state=0)
    monkeypatch.undo()
    res = select_model(X[:3], range(1, 6), ("diag",), n_init=1, random_state=0)
    too_many = [r for r in res.table if r["n_components"] > 3]
    assert too_many and all(r["failure"] == "error" for r in too_many)
    assert all("fewer than n_components" in r["error"] for r in too_many)
