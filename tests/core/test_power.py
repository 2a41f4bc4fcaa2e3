"""Box-Cox and Yeo-Johnson transforms (em_core.power): λ by maximum likelihood recovers a known λ,
agrees with SciPy's independent optimiser, and the inverse undoes the transform."""

import numpy as np
import pytest
from scipy import stats

from em_core.power import fit_lambda, forward, inverse, resolve_method


def _from_normal(method: str, lam: float, n: int = 20_000, seed: int = 0) -> np.ndarray:
    """x whose transform with λ is exactly normal (inside the transform's range)."""
    rng = np.random.default_rng(seed)
    y = rng.normal(3.0, 0.5, n) if lam >= 0 else rng.normal(-0.8, 0.2, n)
    return inverse(y, method, lam)


@pytest.mark.parametrize("lam", [-0.5, 0.0, 0.25, 0.5, 1.0])
def test_box_cox_recovers_a_known_lambda_and_agrees_with_scipy(lam):
    x = _from_normal("boxcox", lam)
    fitted = fit_lambda(x, "boxcox")
    assert fitted == pytest.approx(lam, abs=0.06)
    assert fitted == pytest.approx(stats.boxcox_normmax(x, method="mle"), abs=1e-5)


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0, 1.5])
def test_yeo_johnson_recovers_a_known_lambda_and_agrees_with_scipy(lam):
    y = np.random.default_rng(1).normal(0.0, 1.0, 20_000)  # both branches, inside the range
    x = inverse(y, "yeojohnson", lam)
    fitted = fit_lambda(x, "yeojohnson")
    assert fitted == pytest.approx(lam, abs=0.08)
    assert fitted == pytest.approx(stats.yeojohnson_normmax(x), abs=1e-5)


@pytest.mark.parametrize("method", ["boxcox", "yeojohnson", "log", "log1p", "none"])
def test_inverse_undoes_the_transform_and_nan_stays_nan(method):
    rng = np.random.default_rng(2)
    x = np.exp(rng.normal(1.0, 1.0, 500))
    if method in ("yeojohnson", "log1p"):
        x = x - 3.0  # negative values too
    x[::7] = np.nan
    lam = fit_lambda(x, method)
    y = forward(x, method, lam)
    assert np.array_equal(np.isnan(y), np.isnan(x))
    np.testing.assert_allclose(inverse(y, method, lam), x, rtol=1e-10, atol=1e-10)


def test_log_is_the_log_of_a_rate_whatever_its_unit_and_finite_at_zero():
    rates = np.array([0.04, 0.4, 4.0, np.nan])
    c = fit_lambda(rates, "log")
    assert c == 0.02
    per_day = forward(rates / 30.0, "log", fit_lambda(rates / 30.0, "log"))
    # a change of unit is a shift: the standardised feature is the same
    np.testing.assert_allclose(np.diff(forward(rates, "log", c))[:2], np.diff(per_day)[:2])
    with_zero = np.array([0.0, 0.04, 0.4])
    c0 = fit_lambda(with_zero, "log")
    assert np.isfinite(forward(with_zero, "log", c0)).all()
    np.testing.assert_allclose(inverse(forward(with_zero, "log", c0), "log", c0), with_zero)
    with pytest.raises(ValueError, match="non-negative"):
        fit_lambda([-1.0, 2.0], "log")
    # a feature that is zero for every customer stays finite (log1p then)
    assert fit_lambda([0.0, 0.0, np.nan], "log") == 1.0


def test_log1p_is_odd_so_a_negative_net_amount_mirrors_a_positive_one():
    x = np.array([-45.1, -0.5, 0.0, 0.5, 45.1, np.nan])
    y = forward(x, "log1p", None)
    np.testing.assert_allclose(y[3:5], np.log1p(x[3:5]))
    np.testing.assert_allclose(y[:2], -y[4:2:-1])
    assert y[2] == 0.0 and np.isnan(y[5])


def test_auto_is_box_cox_for_positive_values_and_yeo_johnson_otherwise():
    assert resolve_method([1.0, 2.0, np.nan], "auto") == "boxcox"
    assert resolve_method([0.0, 2.0, 3.0], "auto") == "yeojohnson"
    assert resolve_method([-1.0, 2.0, 3.0], "auto") == "yeojohnson"
    assert resolve_method([0.0, 2.0], "log1p") == "log1p"


def test_inverse_maps_values_beyond_the_range_to_its_edge():
    # Box-Cox with λ = 0.5 maps x > 0 onto y > -2; an average or imputed y below is clipped
    assert inverse(np.array([-2.5]), "boxcox", 0.5)[0] == pytest.approx(0.0, abs=1e-300)
    assert np.isfinite(inverse(np.array([-2.5, 10.0]), "boxcox", 0.5)).all()


@pytest.mark.parametrize(
    ("x", "method", "message"),
    [
        ([1.0, 2.0, 0.0], "boxcox", "positive"),
        ([1.0, 1.0, 1.0, np.nan], "boxcox", "3 distinct"),
        ([1.0, 2.0, 3.0], "cube", "transform must be one of"),
    ],
)
def test_bad_input_is_named(x, method, message):
    with pytest.raises(ValueError, match=message):
        fit_lambda(x, resolve_method(x, method))
