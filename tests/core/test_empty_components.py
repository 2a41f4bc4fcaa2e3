"""A component with (almost) zero weight is not a component: such a restart is rejected, with or
without a prior, and a candidate whose every restart ends so is never chosen (mclust: NA)."""

import numpy as np
import pytest

from em_core import DegenerateFitError, EmptyComponentError, GaussianMixture, select_model
from em_core.em import MIN_COMPONENT_SIZE
from em_core.selection import class_sizes

from .conftest import make_mixture
from .order_data import make_store_data

pytestmark = pytest.mark.filterwarnings("ignore::em_core.ConvergenceWarning")

SWEEP = dict(
    n_components=range(1, 9),
    covariance_types=("full", "diag", "tied"),
    n_init=1,
    init="hierarchical",
    random_state=0,
    max_iter=200,
)


def _far_component_start(X: np.ndarray) -> dict:
    """A warm start for K = truth + 1 whose extra component sits where there is no data."""
    means = np.vstack([X[:200].mean(axis=0), X[200:].mean(axis=0), [40.0, 40.0]])
    return dict(
        weights_init=[0.45, 0.45, 0.10],
        means_init=means,
        precisions_init=np.stack([np.eye(2)] * 3),
    )


def _two_clusters() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + np.array([8.0, 0.0])])


@pytest.mark.parametrize("prior", ["default", None])
def test_restart_that_empties_a_component_is_rejected_and_says_why(prior):
    X = _two_clusters()
    with pytest.raises(EmptyComponentError, match=r"expected size .* fewer components") as info:
        GaussianMixture(3, n_init=1, prior=prior, **_far_component_start(X)).fit(X)
    assert isinstance(info.value, DegenerateFitError)
    assert "mixture proportions estimated as zero" in str(info.value)

    gm = GaussianMixture(3, n_init=3, prior=prior, random_state=0, **_far_component_start(X))
    gm.fit(X)
    warm = gm.restarts_[0]
    assert warm["init"] == "warm" and warm["degenerate"] and warm["empty_component"]
    assert "component 2 has expected size" in warm["reason"]
    assert gm.best_restart_ != 0
    assert gm.weights_.min() * X.shape[0] >= MIN_COMPONENT_SIZE


@pytest.fixture(scope="module")
def store_sweeps() -> dict:
    """Tie-heavy order data (half one-time buyers): the sweep with and without the prior."""
    X = make_store_data(3000, seed=0)
    return {
        prior: (X, select_model(X, prior=prior, min_class_size=1, **SWEEP))
        for prior in ("default", None)
    }


def test_with_the_prior_candidates_above_the_truth_empty_and_are_never_chosen(store_sweeps):
    X, res = store_sweeps["default"]
    empty = [r for r in res.table if r["failure"] == "empty_component"]
    assert empty, "the sweep should have candidates whose every restart empties a component"
    for row in empty:
        assert row["bic"] is None and row["degenerate"] and not row["eligible"]
        assert "expected size" in row["reason"] and "fewer components" in row["reason"]
        assert res.models[(row["n_components"], row["covariance_type"])] is None
    assert res.table[res.best_index]["eligible"]
    assert res.best.weights_.min() * X.shape[0] >= MIN_COMPONENT_SIZE


@pytest.mark.parametrize("prior", ["default", None])
def test_chosen_model_has_no_component_below_the_floor_and_every_class_has_rows(
    store_sweeps, prior
):
    X, res = store_sweeps[prior]
    best_row = res.table[res.best_index]
    assert best_row["eligible"] and not best_row["degenerate"]
    assert res.best.weights_.min() * X.shape[0] >= MIN_COMPONENT_SIZE
    counts = class_sizes(res.best, X)
    assert counts.min() >= 1 and counts.sum() == X.shape[0]
    assert best_row["smallest_class"] == counts.min()
    for row in res.table:
        gm = res.models[(row["n_components"], row["covariance_type"])]
        if gm is not None:  # every fitted candidate, chosen or not, has its components
            assert gm.weights_.min() * X.shape[0] >= MIN_COMPONENT_SIZE


def test_min_class_size_passes_over_a_better_candidate_with_an_unclaimed_component(store_sweeps):
    _, res = store_sweeps[None]
    unclaimed = [r for r in res.table if r["smallest_class"] == 0]
    assert unclaimed, "the sweep should have a fitted candidate whose component wins no row"
    for row in unclaimed:
        assert not row["eligible"] and "most probable one for 0 row" in row["reason"]
    # without the rule the best of them would have been chosen
    plain = min((r for r in res.table if r["bic"] is not None), key=lambda r: r["bic"])
    assert plain["smallest_class"] == 0
    assert res.table[res.best_index]["bic"] > plain["bic"]


def test_min_class_size_is_validated_before_any_fit():
    X = make_mixture(n=100, d=2, k=2, seed=0).X
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="min_class_size"):
            select_model(X, range(1, 3), min_class_size=bad)
