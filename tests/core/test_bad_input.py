"""Every bad input gets a ValueError that names the problem."""

import numpy as np
import pytest

from em_core import GaussianMixture, select_model

from .conftest import make_mixture

X_GOOD = make_mixture(n=60, d=3, seed=0).X


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.arange(10.0), "2-D"),
        (np.zeros((2, 3, 4)), "2-D"),
        (np.array([["a", "b"], ["c", "d"]]), "numeric"),
        (np.array([[1.0, object()], [2.0, 3.0]], dtype=object), "numeric"),
        (np.array([[1.0, np.inf], [2.0, 3.0], [1.0, 2.0]]), "inf"),
        (np.array([[1.0, -np.inf], [2.0, 3.0], [1.0, 2.0]]), "inf"),
        (np.array([[1.0, 2.0], [np.nan, np.nan], [1.0, 2.0]]), "every cell missing"),
        (np.array([[1.0, np.nan], [2.0, np.nan], [1.5, np.nan]]), "every cell missing"),
        (np.empty((0, 3)), "empty"),
    ],
)
def test_bad_data_is_rejected_with_a_clear_message(X, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(1).fit(X)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_components": 0}, "n_components"),
        ({"n_components": -2}, "n_components"),
        ({"n_components": 2.5}, "n_components"),
        ({"covariance_type": "VVX"}, "covariance_type.*EII, VII, EEI.*full \\(VVV\\)"),
        ({"init": "kmeans"}, "init"),
        ({"tol": -1.0}, "tol"),
        ({"reg_covar": -1e-6}, "reg_covar"),
        ({"max_iter": -1}, "max_iter"),
        ({"n_init": 0}, "n_init"),
        ({"random_state": "seed"}, "random_state"),
    ],
)
def test_bad_parameters_are_rejected(kwargs, message):
    params = {"n_components": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        GaussianMixture(**params).fit(X_GOOD)


def test_fewer_rows_than_components():
    with pytest.raises(ValueError, match="fewer than n_components"):
        GaussianMixture(5).fit(X_GOOD[:3])


def test_scoring_checks_feature_count_and_fit_state():
    with pytest.raises(ValueError, match="not fitted"):
        GaussianMixture(2).predict(X_GOOD)
    gm = GaussianMixture(2, random_state=0).fit(X_GOOD)
    with pytest.raises(ValueError, match="features"):
        gm.predict(X_GOOD[:, :2])
    with pytest.raises(ValueError, match="every cell missing"):
        gm.predict_proba(np.full((1, 3), np.nan))
    # one new customer with an empty cell: a whole column is missing, yet it can be scored
    one = np.array([[np.nan, 0.5, -1.0]])
    np.testing.assert_allclose(gm.predict_proba(one).sum(), 1.0)
    assert np.isfinite(gm.impute(one)).all()


def test_bad_warm_start_shapes():
    with pytest.raises(ValueError, match="means_init"):
        GaussianMixture(2, means_init=np.zeros((3, 3))).fit(X_GOOD)
    with pytest.raises(ValueError, match="weights_init"):
        GaussianMixture(2, weights_init=[0.9, 0.9], means_init=np.zeros((2, 3))).fit(X_GOOD)


def test_select_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="criterion"):
        select_model(X_GOOD, [1, 2], criterion="aicc")
    with pytest.raises(ValueError, match="covariance_type"):
        select_model(X_GOOD, [1, 2], covariance_types=("full", "VVX"))
    with pytest.raises(ValueError, match="covariance_types is empty"):
        select_model(X_GOOD, [1, 2], covariance_types=())
    with pytest.raises(ValueError, match="unknown init 'random'"):
        select_model(X_GOOD, [1, 2], init="random")  # before any fit, not as a degenerate row
    with pytest.raises(ValueError, match="prior field 'dof'"):
        select_model(X_GOOD, [1, 2], prior={"dof": "six"})
    with pytest.raises(ValueError, match="n_components"):
        select_model(X_GOOD, [0, 1])
