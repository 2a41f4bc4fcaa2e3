"""λ within a mixture (em_core.power_within) and the signed Yeo-Johnson transform."""

import numpy as np
import pytest
from scipy import special

from em_core import power
from em_core.power_within import component_criterion, fit_lambdas_within_mixture

TRUE_LAMBDAS = (0.5, -0.5)


def _clusters_in_transformed_space(n: int = 3000, seed: int = 0) -> np.ndarray:
    """Three Gaussian clusters in y-space, mapped back by Box-Cox with TRUE_LAMBDAS."""
    rng = np.random.default_rng(seed)
    means = np.array([[2.0, -1.6], [7.0, -0.6], [12.0, 0.6]])
    sds = np.array([[1.0, 0.25], [1.0, 0.2], [1.0, 0.15]])
    label = rng.integers(0, 3, n)
    y = means[label] + rng.normal(size=(n, 2)) * sds[label]
    return np.column_stack([power.inverse(y[:, j], "boxcox", TRUE_LAMBDAS[j]) for j in range(2)])


def test_a_known_lambda_is_recovered_within_the_mixture_where_the_marginal_one_is_off():
    X = _clusters_in_transformed_space()
    marginal = [power.fit_lambda(X[:, j], "boxcox") for j in range(2)]
    result = fit_lambdas_within_mixture(
        X, ["boxcox", "boxcox"], [None, None], [True, True], n_components=3
    )
    assert result.converged and len(result.history) == result.n_rounds
    np.testing.assert_allclose(result.lambdas, TRUE_LAMBDAS, atol=0.06)
    # the marginal λ bends the multimodal features towards one Gaussian: off by 0.12-0.18
    for m, w, t in zip(marginal, result.lambdas, TRUE_LAMBDAS, strict=True):
        assert abs(m - t) > 0.1 and abs(w - t) < abs(m - t)


def test_a_fixed_feature_keeps_its_lambda_and_missing_rows_are_left_out():
    X = _clusters_in_transformed_space(seed=1)
    X[::7, 1] = np.nan
    result = fit_lambdas_within_mixture(
        X, ["boxcox", "boxcox"], [None, -0.5], [True, False], n_components=3
    )
    assert result.lambdas[1] == -0.5
    assert result.lambdas[0] == pytest.approx(TRUE_LAMBDAS[0], abs=0.12)


def test_the_criterion_peaks_at_the_lambda_that_makes_the_components_gaussian():
    X = _clusters_in_transformed_space(seed=2)
    label = np.digitize(power.forward(X[:, 0], "boxcox", 0.5), [4.5, 9.5])
    tau = np.eye(3)[label]
    others = np.zeros((X.shape[0], 0))
    grid = np.linspace(-0.5, 1.5, 81)
    values = [component_criterion(X[:, 0], "boxcox", lam, others, tau) for lam in grid]
    assert abs(grid[int(np.argmax(values))] - 0.5) <= 0.1


@pytest.mark.parametrize("lam", [0.0, 0.35, -0.6, 1.0])
def test_signed_yeo_johnson_round_trips_and_is_odd(lam):
    x = np.array([-2500.0, -12.5, -0.3, 0.0, 0.25, 3.0, 80.0, np.nan])
    y = power.forward(x, "signed_yeojohnson", lam)
    np.testing.assert_allclose(power.inverse(y, "signed_yeojohnson", lam), x, rtol=1e-9)
    np.testing.assert_allclose(y[:3], -power.forward(-x[:3], "signed_yeojohnson", lam))
    h = 1e-6
    finite = np.isfinite(x) & (x != 0)
    slope = (
        power.forward(x + h, "signed_yeojohnson", lam)
        - power.forward(x - h, "signed_yeojohnson", lam)
    ) / (2 * h)
    np.testing.assert_allclose(
        np.log(slope[finite]), power.log_jacobian(x[finite], "signed_yeojohnson", lam), atol=1e-5
    )


def test_signed_yeo_johnson_at_zero_is_the_odd_log1p():
    x = np.array([-40.0, -1.0, 0.0, 2.5, 1e5])
    np.testing.assert_array_equal(
        power.forward(x, "signed_yeojohnson", 0.0), power.forward(x, "log1p", None)
    )
    assert power.forward(np.array([3.0]), "boxcox", 0.2)[0] == special.boxcox(3.0, 0.2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"methods": ["log1p", "boxcox"]}, "free feature"),
        ({"free": [True]}, "one entry per feature"),
        ({"n_rows": 12}, "too few"),
        ({"lambdas": [None]}, "one entry per feature"),
    ],
)
def test_bad_input_is_named(kwargs, message):
    X = _clusters_in_transformed_space()[: kwargs.pop("n_rows", 3000)]
    args = {"methods": ["boxcox", "boxcox"], "lambdas": [None, None], "free": [True, True]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        fit_lambdas_within_mixture(X, **args, n_components=3)
