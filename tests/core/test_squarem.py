"""SQUAREM-accelerated EM (acceleration="squarem"): the plain EM optimum in fewer E-steps, a
monotone trace, every step recorded."""

from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from em_core import DegenerateFitError, GaussianMixture, select_model
from em_core.models import MODEL_NAMES

from .conftest import make_mixture, mcar

pytestmark = pytest.mark.filterwarnings("ignore::em_core.ConvergenceWarning")


@cache
def _data(missing: float) -> np.ndarray:
    X = make_mixture(n=600, d=3, k=3, separation=2.5, seed=7).X
    return mcar(X, missing, seed=8) if missing else X


@cache
def _pair(model: str, missing: float, prior: str | None) -> tuple:
    """The same restart (same start) run plainly and with SQUAREM, to a tight tolerance."""
    fits = []
    for acceleration in (None, "squarem"):
        gm = GaussianMixture(
            3, covariance_type=model, prior=prior, init="k-means++", n_init=1, tol=1e-9,
            max_iter=2000, random_state=1, acceleration=acceleration,
        )  # fmt: skip
        fits.append(gm.fit(_data(missing)))
    return tuple(fits)


@pytest.mark.parametrize("missing", [0.0, 0.2])
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_squarem_reaches_the_plain_optimum_with_a_monotone_trace(model, missing):
    plain, fast = _pair(model, missing, None)
    assert fast.log_likelihood_ == pytest.approx(plain.log_likelihood_, rel=1e-6)
    assert plain.converged_ and fast.converged_
    trace = np.asarray(fast.history_[0])
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
    steps = fast.history_steps_[0]
    assert len(steps) == len(trace) and steps[0] == "start"
    assert set(steps[1:]) <= {"em", "squarem"} and steps[-1] == "em"  # stops on a plain step
    record = fast.restarts_[0]
    assert record["accelerated"] == steps.count("squarem")
    assert record["n_esteps"] >= len(trace)
    assert plain.history_steps_[0] == ["start"] + ["em"] * plain.n_iter_


def test_squarem_needs_fewer_e_steps_over_the_fourteen_models():
    """Per model the gain varies (a slow, curved path gains most); over all 28 cells SQUAREM
    spends well under plain EM's E-steps."""
    plain_total = fast_total = 0
    for missing in (0.0, 0.2):
        for model in MODEL_NAMES:
            plain, fast = _pair(model, missing, None)
            plain_total += plain.restarts_[0]["n_esteps"]
            fast_total += fast.restarts_[0]["n_esteps"]
    print(f"E-steps over 28 cells: plain {plain_total}, SQUAREM {fast_total}")
    assert fast_total <= 0.8 * plain_total, (fast_total, plain_total)


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_squarem_reaches_the_map_em_optimum_with_the_prior(model):
    plain, fast = _pair(model, 0.2, "default")
    assert fast.log_likelihood_ == pytest.approx(plain.log_likelihood_, rel=1e-6)
    assert fast.converged_


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    k=st.integers(1, 4),
    missing=st.sampled_from([0.0, 0.25]),
    model=st.sampled_from(list(MODEL_NAMES)),
)
def test_the_accelerated_trace_never_decreases(seed, k, missing, model):
    mix = make_mixture(n=300, d=2, k=3, separation=3.0, seed=seed)
    X = mcar(mix.X, missing, seed=seed) if missing else mix.X
    gm = GaussianMixture(
        k, covariance_type=model, tol=0.0, max_iter=30, n_init=2, reg_covar=0.0,
        random_state=seed, eigen_floor=1e-8, acceleration="squarem",
    )  # fmt: skip
    try:
        gm.fit(X)
    except DegenerateFitError:
        return
    for trace in gm.history_:
        assert np.all(np.diff(trace) >= -1e-9 * np.abs(np.asarray(trace[1:]))), trace


def test_continue_fit_keeps_accelerating():
    X = _data(0.0)
    gm = GaussianMixture(3, covariance_type="VVE", max_iter=6, random_state=0, n_init=1)
    gm.acceleration = "squarem"
    gm.fit(X)
    before = len(gm.history_[0])
    gm.continue_fit(X, max_iter=2000)
    steps = gm.history_steps_[0]
    assert len(steps) == len(gm.history_[0]) > before and "squarem" in steps
    assert gm.restarts_[0]["accelerated"] == steps.count("squarem")


def test_a_bad_acceleration_is_refused_naming_the_option():
    X = make_mixture(n=100, d=2, k=2, seed=0).X
    with pytest.raises(ValueError, match="acceleration 'fast'"):
        GaussianMixture(2, acceleration="fast").fit(X)
    with pytest.raises(ValueError, match="acceleration"):
        select_model(X, range(1, 3), acceleration="aitken")


def test_a_warm_start_at_the_optimum_is_kept_against_the_same_optimum_polished():
    """Last night's optimum raced by accelerated fresh restarts that find the same optimum (to
    the stopping tolerance) stays the kept restart; a clearly better fresh restart still wins."""
    X = _data(0.0)
    n = X.shape[0]
    champion = GaussianMixture(3, random_state=0, n_init=3).fit(X)
    start = dict(
        weights_init=champion.weights_, means_init=champion.means_,
        precisions_init=champion.precisions_,
    )  # fmt: skip
    gm = GaussianMixture(3, random_state=0, n_init=3, acceleration="squarem", **start).fit(X)
    assert gm.best_restart_ == 0 and gm.restarts_[0]["init"] == "warm"
    best_fresh = max(r["log_likelihood"] for r in gm.restarts_[1:])
    assert best_fresh - gm.log_likelihood_ <= gm.tol * n
    # a poor warm start (one component on two clusters) loses to the fresh restarts
    collapsed = np.repeat(champion.means_[:1], 3, axis=0) + np.array([[0.0], [1e-3], [2e-3]])
    poor = dict(start, means_init=collapsed)
    gm = GaussianMixture(3, random_state=0, n_init=3, acceleration="squarem", max_iter=2, **poor)
    gm.fit(X)
    assert gm.best_restart_ != 0
    assert gm.log_likelihood_ > gm.restarts_[0]["log_likelihood"] + gm.tol * n
