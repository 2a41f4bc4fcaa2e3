"""Drift figures between two segmentations."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from em_core import (
    adjusted_rand_index,
    expected_transitions,
    population_stability_index,
    transition_matrix,
)


def test_transition_matrix_margins():
    rng = np.random.default_rng(0)
    a = rng.integers(3, size=500)
    b = rng.integers(4, size=500)
    t = transition_matrix(a, b, 3, 4)
    assert t.sum() == 500
    np.testing.assert_array_equal(t.sum(axis=1), np.bincount(a, minlength=3))
    np.testing.assert_array_equal(t.sum(axis=0), np.bincount(b, minlength=4))
    with pytest.raises(ValueError, match="outside"):
        transition_matrix([0, 5], [0, 1], 3, 3)


def test_expected_transitions_margins():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(3), size=200)
    q = rng.dirichlet(np.ones(5), size=200)
    t = expected_transitions(p, q)
    assert t.shape == (3, 5)
    assert t.sum() == pytest.approx(200)
    np.testing.assert_allclose(t.sum(axis=1), p.sum(axis=0))
    np.testing.assert_allclose(t.sum(axis=0), q.sum(axis=0))
    hard = np.eye(3)[[0, 1, 2, 2]]
    np.testing.assert_array_equal(expected_transitions(hard, hard), np.diag([1, 1, 2]))


def test_adjusted_rand_index_matches_scikit_learn():
    rng = np.random.default_rng(2)
    for _ in range(5):
        a = rng.integers(4, size=300)
        b = np.where(rng.random(300) < 0.7, a, rng.integers(5, size=300))
        assert adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)
    a = rng.integers(3, size=100)
    assert adjusted_rand_index(a, a) == 1.0
    assert adjusted_rand_index(a, (a + 1) % 3) == 1.0  # renaming does not matter


def test_population_stability_index():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=20_000)
    same = rng.normal(size=20_000)
    shifted = rng.normal(loc=0.5, size=20_000)
    assert population_stability_index(ref, ref) == pytest.approx(0.0, abs=1e-12)
    assert population_stability_index(ref, same) < 0.01
    assert population_stability_index(ref, shifted) > 0.2
    # missingness change counts as drift
    holes = same.copy()
    holes[:4000] = np.nan
    assert population_stability_index(ref, holes) > 0.1
    # two bins, hand-computed: shares (0.5, 0.5) -> (0.25, 0.75)
    value = population_stability_index([0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0], n_bins=2)
    expected = (0.25 - 0.5) * np.log(0.5) + (0.75 - 0.5) * np.log(1.5)
    assert value == pytest.approx(expected, rel=1e-3)
