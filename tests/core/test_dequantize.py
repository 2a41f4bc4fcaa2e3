"""Dequantisation: each recorded value's rounding unit is found from the data, the jitter stays
within it, and a mixture fitted to dequantised ties cannot collapse onto one."""

import numpy as np
import pytest
from scipy import stats

from em_core import GaussianMixture
from em_core.dequantize import Lattice, dequantize, fit_lattice
from em_core.exceptions import DegenerateFitError


def test_counts_cents_and_continuous_values_get_their_resolution():
    rng = np.random.default_rng(0)
    assert fit_lattice(rng.poisson(30, 1000).astype(float)) == Lattice(1.0)
    assert fit_lattice(np.round(rng.lognormal(3, 1, 1000), 2)).resolution == 0.01
    assert fit_lattice(rng.normal(size=1000)) == Lattice(None)
    assert fit_lattice([np.nan, np.nan]) == Lattice(None)


def test_whole_numbers_among_ratios_are_a_lattice_but_round_prices_are_not():
    rng = np.random.default_rng(1)
    items = 1 + rng.poisson(1.0, 5000)
    orders = np.where(rng.random(5000) < 0.4, 1, 2 + rng.poisson(3, 5000))
    cart = np.round(items * orders / orders + rng.poisson(2, 5000) / orders, 2)
    lattice = fit_lattice(cart)
    assert lattice.resolution == 0.01 and lattice.coarse_units[0] == 1.0
    units = lattice.units(cart)
    assert np.all(units[orders == 1] == 1.0)
    prices = np.round(rng.uniform(5, 500, 5000), 2)  # 1 in 100 is whole by chance
    assert fit_lattice(prices) == Lattice(0.01)


def test_the_jitter_stays_within_each_unit_and_fills_it_uniformly():
    rng = np.random.default_rng(2)
    x = rng.poisson(4, 20_000).astype(float)
    x[::50] = np.nan
    lattice = fit_lattice(x)
    jittered = dequantize(x, lattice, rng.random(x.shape))
    assert np.array_equal(np.isnan(jittered), np.isnan(x))
    offset = (jittered - x)[~np.isnan(x)]
    assert np.all(np.abs(offset) <= 0.5)
    assert stats.kstest(offset + 0.5, "uniform").pvalue > 1e-3
    with pytest.raises(ValueError, match="shape"):
        dequantize(x, lattice, rng.random(3))


def test_round_trip_through_a_dict():
    lattice = Lattice(0.01, (1.0, 0.1))
    assert Lattice.from_dict(lattice.to_dict()) == lattice
    assert Lattice.from_dict(Lattice(None).to_dict()) == Lattice(None)


def test_no_component_collapses_onto_a_tie_once_dequantised():
    rng = np.random.default_rng(3)
    n = 4000
    counts = np.where(rng.random(n) < 0.5, 1.0, 1 + rng.poisson(3.0, n)).astype(float)
    other = rng.normal(size=n) + (counts > 1)
    X = np.column_stack([counts, other])
    # without dequantisation a component sits on the tie at 1: its variance goes to zero
    with pytest.raises(DegenerateFitError, match="collapsed"):
        GaussianMixture(6, covariance_type="diag", random_state=0).fit(X)
    lattice = fit_lattice(counts)
    X[:, 0] = dequantize(counts, lattice, rng.random(n))
    smooth = GaussianMixture(6, covariance_type="diag", random_state=0).fit(X)
    # a uniform on one unit has variance 1/12; components may split a unit, none collapses
    assert smooth.covariances_[:, 0].min() > 0.01 / 12
