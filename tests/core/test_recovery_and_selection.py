"""Recovery of known parameters and of the true number of components."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from em_core import GaussianMixture, align_labels, n_parameters, select_model

from .conftest import make_mixture, mcar


@pytest.mark.parametrize("missing_rate", [0.0, 0.2])
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_recovers_simulated_mixture(missing_rate, covariance_type):
    diagonal = covariance_type == "diag"
    mix = make_mixture(n=3000, d=4, k=3, separation=8.0, seed=2, diagonal=diagonal)
    X = mcar(mix.X, missing_rate, seed=2) if missing_rate else mix.X
    gm = GaussianMixture(3, covariance_type=covariance_type, n_init=3, random_state=0).fit(X)
    assert gm.converged_
    truth = GaussianMixture.from_params(mix.weights, mix.means, mix.covariances, "full")
    perm = align_labels(gm, truth)
    assert sorted(perm) == [0, 1, 2]
    ari = adjusted_rand_score(mix.labels, perm[gm.predict(X)])
    oracle = adjusted_rand_score(mix.labels, truth.predict(X))  # Bayes rule under the truth
    assert ari > 0.9
    assert ari >= oracle - 0.02
    np.testing.assert_allclose(gm.means_, mix.means[perm], atol=0.25)
    np.testing.assert_allclose(gm.weights_, mix.weights[perm], atol=0.03)
    if covariance_type == "full":
        np.testing.assert_allclose(gm.covariances_, mix.covariances[perm], atol=0.3)


def test_same_seed_same_fit_and_fit_predict_consistent():
    X = mcar(make_mixture(seed=8).X, 0.15, seed=8)
    a = GaussianMixture(3, n_init=2, random_state=42).fit(X)
    b = GaussianMixture(3, n_init=2, random_state=42)
    labels = b.fit_predict(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    assert a.history_ == b.history_
    np.testing.assert_array_equal(labels, b.predict(X))


def test_every_restart_records_its_trace():
    X = make_mixture(seed=9).X
    gm = GaussianMixture(3, n_init=4, random_state=0).fit(X)
    assert len(gm.history_) == len(gm.restarts_) == 4
    best = max(range(4), key=lambda i: gm.history_[i][-1])
    assert gm.best_restart_ == best
    assert all(len(h) == r["n_iter"] + 1 for h, r in zip(gm.history_, gm.restarts_, strict=True))


@pytest.mark.parametrize("true_k", [2, 4])
def test_bic_picks_true_number_of_components(true_k):
    mix = make_mixture(n=1500, d=3, k=true_k, separation=8.0, seed=true_k)
    res = select_model(mix.X, n_components=range(1, 7), covariance_types=("full",), n_init=2)
    assert res.best.n_components == true_k
    assert res.table[res.best_index]["n_components"] == true_k
    assert len(res.table) == 6
    for row in res.table:
        assert row["icl"] >= row["bic"] - 1e-9  # ICL adds a non-negative entropy penalty
        assert set(row) >= {
            "n_components", "covariance_type", "log_likelihood", "n_parameters", "bic", "aic",
            "icl", "converged", "n_iter", "seconds",
        }  # fmt: skip


def test_selection_table_criteria_and_callback():
    X = mcar(make_mixture(seed=1).X, 0.1, seed=1)
    seen = []
    res = select_model(X, range(1, 4), ("full", "spherical"), criterion="icl", callback=seen.append)
    assert [s["index"] for s in seen] == list(range(6)) and seen[0]["total"] == 6
    n = X.shape[0]
    for row in res.table:
        gm = res.models[(row["n_components"], row["covariance_type"])]
        assert row["bic"] == pytest.approx(gm.bic(X), rel=1e-10)
        assert row["aic"] == pytest.approx(gm.aic(X), rel=1e-10)
        assert row["icl"] == pytest.approx(gm.icl(X), rel=1e-10)
        assert row["bic"] == pytest.approx(
            -2 * row["log_likelihood"] + row["n_parameters"] * np.log(n)
        )
    best = min(r["icl"] for r in res.table)
    assert res.table[res.best_index]["icl"] == best


def test_parameter_counts_match_known_values():
    # scikit-learn's test_gaussian_mixture_n_parameters: 2 components, 5 features
    expected = {"spherical": 13, "diag": 21, "tied": 26, "full": 41}
    for covariance_type, count in expected.items():
        assert n_parameters(2, 5, covariance_type) == count
        X = make_mixture(n=200, d=5, k=2, seed=0).X
        gm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
        assert gm.n_parameters == count


def test_bic_single_gaussian_one_dimension():
    # scikit-learn's test_bic_1d_1component: BIC of a 1-D normal equals its closed form
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 1))
    gm = GaussianMixture(1, covariance_type="full", reg_covar=0.0).fit(X)
    var = X.var()
    ll = -0.5 * X.shape[0] * (np.log(2 * np.pi * var) + 1.0)
    assert gm.bic(X) == pytest.approx(-2 * ll + 2 * np.log(500), rel=1e-10)


def test_warm_start_races_fresh_restarts_and_is_recorded():
    mix = make_mixture(n=1500, d=3, k=3, separation=6.0, seed=5)
    first = select_model(mix.X, range(2, 5), ("full", "diag"), n_init=2, random_state=0)
    champion = first.best
    # tonight: the same population, rows shuffled
    tonight = mix.X[np.random.default_rng(1).permutation(mix.X.shape[0])]
    cold = select_model(tonight, range(2, 5), ("full", "diag"), n_init=2, random_state=7)
    warm = select_model(
        tonight, range(2, 5), ("full", "diag"), n_init=2, random_state=7, warm_start=champion
    )
    key = (champion.n_components, champion.covariance_type)
    rows = {(r["n_components"], r["covariance_type"]): r for r in warm.table}
    assert rows[key]["warm_start"] and sum(r["warm_start"] for r in warm.table) == 1
    assert rows[key]["best_init"] in ("warm", "k-means++")
    gm = warm.models[key]
    assert len(gm.restarts_) == 3 and gm.restarts_[0]["init"] == "warm"
    cold_ll = cold.models[key].log_likelihood_
    assert gm.log_likelihood_ >= cold_ll - 1e-6 * abs(cold_ll)
    # candidates without a warm start are fitted exactly as without one
    other = (2, "diag")
    assert warm.models[other].history_ == cold.models[other].history_
    with pytest.raises(ValueError, match="features"):
        select_model(mix.X[:, :2], [2], warm_start=champion)


def test_sample_reproduces_the_mixture():
    mix = make_mixture(n=10, d=3, k=3, seed=6)
    gm = GaussianMixture.from_params(mix.weights, mix.means, mix.covariances, "full")
    X, labels = gm.sample(60_000, random_state=0)
    assert X.shape == (60_000, 3) and labels.shape == (60_000,)
    np.testing.assert_allclose(np.bincount(labels, minlength=3) / 60_000, mix.weights, atol=0.01)
    for k in range(3):
        rows = X[labels == k]
        np.testing.assert_allclose(rows.mean(axis=0), mix.means[k], atol=0.05)
        np.testing.assert_allclose(np.cov(rows.T), mix.covariances[k], atol=0.08)
    again, _ = gm.sample(60_000, random_state=0)
    np.testing.assert_array_equal(X, again)
