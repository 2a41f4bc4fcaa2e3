"""EM invariants: the observed-data log-likelihood never decreases; densities match scipy."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from em_core import DegenerateFitError, GaussianMixture
from em_core.estep import summarize
from em_core.models import MODEL_NAMES

from .conftest import make_mixture, mcar

COV_TYPES = ["full", "tied", "diag", "spherical"]
pytestmark = pytest.mark.filterwarnings("ignore::em_core.ConvergenceWarning")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    k=st.integers(1, 4),
    d=st.integers(1, 4),
    missing=st.sampled_from([0.0, 0.25]),
    covariance_type=st.sampled_from(COV_TYPES + list(MODEL_NAMES)),
)
def test_log_likelihood_never_decreases(seed, k, d, missing, covariance_type):
    mix = make_mixture(n=300, d=d, k=3, separation=3.0, seed=seed)
    X = mcar(mix.X, missing, seed=seed) if missing else mix.X
    gm = GaussianMixture(
        k, covariance_type=covariance_type, tol=0.0, max_iter=25, n_init=2, reg_covar=0.0,
        random_state=seed, eigen_floor=1e-8,
    )  # fmt: skip
    try:
        gm.fit(X)
    except DegenerateFitError:
        return  # a collapsed restart set is a legitimate outcome on tiny random data
    for trace in gm.history_:
        steps = np.diff(trace)
        assert np.all(steps >= -1e-9 * np.abs(np.asarray(trace[1:]))), steps.min()


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_history_ends_at_log_likelihood_and_matches_score(covariance_type):
    X = mcar(make_mixture(seed=3).X, 0.2, seed=3)
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0, n_init=2).fit(X)
    assert gm.history_[gm.best_restart_][-1] == gm.log_likelihood_
    np.testing.assert_allclose(gm.score_samples(X).sum(), gm.log_likelihood_, rtol=1e-10)
    assert len(gm.history_) == 2


def _reference_logpdf(x, weights, means, covs):
    """log Σ_k w_k N(x_obs | μ_k,obs, Σ_k,obs,obs) with scipy, one row at a time."""
    obs = ~np.isnan(x)
    dens = [
        np.log(w) + stats.multivariate_normal(m[obs], c[np.ix_(obs, obs)]).logpdf(x[obs])
        for w, m, c in zip(weights, means, covs, strict=True)
    ]
    return np.logaddexp.reduce(dens)


def _full_covs(gm):
    d = gm.means_.shape[1]
    k = gm.means_.shape[0]
    c = gm.covariances_
    return {
        "full": lambda: c,
        "tied": lambda: np.broadcast_to(c, (k, d, d)),
        "diag": lambda: np.array([np.diag(v) for v in c]),
        "spherical": lambda: np.array([v * np.eye(d) for v in c]),
    }[gm.covariance_type]()


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_score_samples_matches_scipy_marginals(covariance_type):
    X = mcar(make_mixture(n=200, d=4, seed=5).X, 0.3, seed=5)
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=1).fit(X)
    covs = _full_covs(gm)
    expected = np.array([_reference_logpdf(x, gm.weights_, gm.means_, covs) for x in X])
    np.testing.assert_allclose(gm.score_samples(X), expected, rtol=1e-10)
    proba = gm.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(gm.predict(X), proba.argmax(axis=1))


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_covariances_are_inverse_of_precisions(covariance_type):
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0)
    gm.fit(make_mixture().X)
    if covariance_type in ("full", "tied"):
        np.testing.assert_allclose(
            np.linalg.inv(gm.precisions_), gm.covariances_, rtol=1e-8, atol=1e-12
        )
    else:
        np.testing.assert_allclose(1.0 / gm.precisions_, gm.covariances_, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_no_nan_incomplete_path_equals_complete_path(covariance_type, monkeypatch):
    """With no NaN, routing rows through the missing-data kernels gives the same fit."""
    X = make_mixture(seed=7).X
    kwargs = dict(covariance_type=covariance_type, random_state=0, tol=0.0, max_iter=15)
    complete = GaussianMixture(3, **kwargs).fit(X)
    import em_core.em as em_module

    def forced(X, params, stats=None, **_):
        return summarize(X, params, stats, incomplete_path=True)

    monkeypatch.setattr(em_module, "summarize", forced)
    incomplete = GaussianMixture(3, **kwargs).fit(X)
    np.testing.assert_allclose(incomplete.history_[0], complete.history_[0], rtol=1e-11)
    np.testing.assert_allclose(incomplete.means_, complete.means_, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(incomplete.covariances_, complete.covariances_, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_chunk_size_does_not_change_the_fit(covariance_type):
    X = mcar(make_mixture(n=700, seed=11).X, 0.2, seed=11)
    kwargs = dict(covariance_type=covariance_type, random_state=0, tol=0.0, max_iter=10)
    big = GaussianMixture(3, chunk_size=100_000, **kwargs).fit(X)
    small = GaussianMixture(3, chunk_size=37, **kwargs).fit(X)
    np.testing.assert_allclose(small.history_[0], big.history_[0], rtol=1e-10)
    np.testing.assert_allclose(small.means_, big.means_, rtol=1e-9, atol=1e-12)


def test_pattern_sorted_copy_and_per_chunk_gather_give_the_same_chunks():
    """ArraySource keeps one pattern-sorted copy when it is small enough, and otherwise gathers
    every chunk from the index; the chunks (and so every fit) must be identical."""
    from em_core.sources import ArraySource

    X = mcar(make_mixture(n=1000, seed=5).X, 0.3, seed=5)
    copied = ArraySource(X, 128, group_patterns=True, min_complete_chunk=1)
    gathered = ArraySource(X, 128, group_patterns=True, max_copy_bytes=0, min_complete_chunk=1)
    assert copied._sorted is not None and gathered._sorted is None
    pairs = list(zip(copied.chunks(), gathered.chunks(), strict=True))
    n_complete = int((~np.isnan(X).any(axis=1)).sum())
    assert 0 < n_complete % 128  # so the prefix split below adds a chunk
    assert len(pairs) == -(-n_complete // 128) + -(-(1000 - n_complete) // 128)
    for a, b in pairs:
        np.testing.assert_array_equal(a, b)
    keys = np.concatenate([np.isnan(c) @ (1 << np.arange(X.shape[1])) for c, _ in pairs])
    assert np.all(np.diff(keys) >= 0)  # grouped by pattern
    # the complete rows (key 0) come first and end a chunk: each chunk is complete or has no
    # complete row, which the E-step reads off the chunk's last row
    for chunk, _ in pairs:
        complete_rows = ~np.isnan(chunk).any(axis=1)
        assert complete_rows.all() or not complete_rows.any()
        assert complete_rows.all() == (not np.isnan(chunk[-1]).any())
    # fewer complete rows than min_complete_chunk: no chunk boundary after them, they are the
    # first pattern of the chunk they end in
    merged = list(
        ArraySource(X, 128, group_patterns=True, min_complete_chunk=n_complete + 1).chunks()
    )
    assert len(merged) == -(-1000 // 128)
    np.testing.assert_array_equal(np.concatenate(merged), np.concatenate([a for a, _ in pairs]))
    mixed = merged[n_complete // 128]  # ends in a NaN row, so it takes the missing-data path
    assert not np.isnan(mixed[0]).any() and np.isnan(mixed[-1]).any()
    # which the source announces, so the E-step skips its own ordering check
    assert copied.pattern_sorted and gathered.pattern_sorted
    assert not ArraySource(X, 128).pattern_sorted
    assert not ArraySource(np.nan_to_num(X), 128, group_patterns=True).pattern_sorted


def test_unsorted_source_knows_when_every_chunk_has_a_missing_cell():
    """With scattered NaN every chunk of an unsorted source holds one, and the source says so
    (the E-step then skips its per-chunk scan); one complete chunk withdraws the claim."""
    from em_core.sources import ArraySource

    X = mcar(make_mixture(n=1000, seed=5).X, 0.3, seed=5)
    assert ArraySource(X, 128).known_incomplete
    X[:128] = np.nan_to_num(X[:128])  # the first chunk becomes complete
    assert not ArraySource(X, 128).known_incomplete
    assert not ArraySource(X, 128, group_patterns=True).known_incomplete  # sorted: own check
    assert not ArraySource(np.nan_to_num(X), 128).known_incomplete
