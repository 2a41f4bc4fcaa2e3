"""Label alignment and the JSON round trip."""

import json

import numpy as np
import pytest

from em_core import GaussianMixture, align_labels, component_distances

from .conftest import make_mixture, mcar


@pytest.fixture(scope="module")
def fitted():
    X = mcar(make_mixture(n=1200, d=3, k=4, seed=31).X, 0.1, seed=31)
    return X, GaussianMixture(4, n_init=2, random_state=0).fit(X)


def _permuted(gm, order):
    return GaussianMixture.from_params(
        gm.weights_[order], gm.means_[order], gm.covariances_[order], gm.covariance_type
    )


def test_alignment_recovers_known_permutation(fitted):
    X, gm = fitted
    order = np.array([2, 0, 3, 1])  # permuted component j is original component order[j]
    shuffled = _permuted(gm, order)
    perm = align_labels(shuffled, gm)
    np.testing.assert_array_equal(perm, order)
    np.testing.assert_array_equal(perm[shuffled.predict(X)], gm.predict(X))
    dist = component_distances(shuffled, gm)
    assert dist.shape == (4, 4)
    np.testing.assert_allclose(dist[np.arange(4), order], 0.0, atol=1e-10)


def test_alignment_with_different_numbers_of_components(fitted):
    _, gm = fitted
    fewer = _permuted(gm, np.array([3, 1]))
    np.testing.assert_array_equal(align_labels(fewer, gm), [3, 1])
    more = align_labels(gm, fewer)
    assert sorted(more.tolist()) == [-1, -1, 0, 1]
    assert more[3] == 0 and more[1] == 1


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_json_round_trip_is_exact(covariance_type):
    X = mcar(make_mixture(n=500, seed=32).X, 0.1, seed=32)
    gm = GaussianMixture(
        3, covariance_type=covariance_type, n_init=2, random_state=3, acceleration="squarem"
    ).fit(X)
    text = json.dumps(gm.to_dict(), allow_nan=False)
    back = GaussianMixture.from_dict(json.loads(text))
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        np.testing.assert_array_equal(getattr(back, name), getattr(gm, name))
    assert back.history_ == gm.history_
    assert back.history_steps_ == gm.history_steps_ and "squarem" in gm.history_steps_[0]
    assert back.log_likelihood_ == gm.log_likelihood_
    assert back.get_params() == {**gm.get_params()}
    np.testing.assert_array_equal(back.predict_proba(X), gm.predict_proba(X))
    np.testing.assert_array_equal(back.impute(X), gm.impute(X))
    assert back.to_dict() == gm.to_dict()


def test_a_model_file_from_before_acceleration_reads_as_plain_em():
    X = make_mixture(n=200, seed=5).X
    doc = GaussianMixture(2, random_state=0).fit(X).to_dict()
    del doc["hyperparameters"]["acceleration"], doc["fit"]["history_steps"]
    back = GaussianMixture.from_dict(doc)
    assert back.acceleration is None
    assert [len(s) for s in back.history_steps_] == [len(h) for h in back.history_]
    assert all(s[0] == "start" and set(s[1:]) <= {"em"} for s in back.history_steps_)


def test_from_dict_rejects_foreign_documents():
    with pytest.raises(ValueError, match="format"):
        GaussianMixture.from_dict({"weights": [1.0]})
    X = make_mixture(n=100, seed=1).X
    doc = GaussianMixture(2, random_state=0).fit(X).to_dict()
    doc["format_version"] = 99
    with pytest.raises(ValueError, match="format_version"):
        GaussianMixture.from_dict(doc)
