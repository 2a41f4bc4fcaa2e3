"""em_core against R's mclust 6.0 through the committed reference harness (tests/core/reference,
written by scripts/reference/; R is needed only to regenerate it, never to run these tests).

Fixed points: for each (dataset, G, model, prior) of ``mclust_fixed_points.json`` mclust's fit
re-run to a tight tolerance. At those parameters em_core's observed-data log-likelihood must be
mclust's, and one em_core EM (MAP-EM with the prior) step must leave them where they are: the
E-steps, M-steps and prior terms agree step for step.
"""

import warnings

import numpy as np
import pytest

from em_core import GaussianMixture, select_model
from em_core.models import MODEL_NAMES, kernel_type

from .mclust_reference import DATASETS, fixed_points, load_dataset, mclust_cells

#: mclust optima that em_core's step moves: the iterative M-steps of VVE and VEE stop at another
#: solution of their inner problem than mclust's (em_core optimum issue).
NOT_YET_FIXED = {
    "quakes/3/VVE/noprior", "wine/3/VVE/noprior", "trees/2/VVE/noprior", "wine/3/VEE/noprior",
}  # fmt: skip


def _step_from_mclust(case: dict) -> tuple[GaussianMixture, np.ndarray]:
    """One em_core EM step started at mclust's fitted parameters; also returns mclust's Σ."""
    X = load_dataset(case["dataset"])
    sigma = np.array(case["sigma"], dtype=float)  # (G, d, d)
    precision = np.linalg.inv(sigma)
    layout = kernel_type(case["model"])
    if layout == "tied":
        precision = precision[0]
    elif layout == "diag":
        precision = np.array([np.diag(p) for p in precision])
    elif layout == "spherical":
        precision = precision[:, 0, 0]
    weights = np.asarray(case["pro"], dtype=float)
    gm = GaussianMixture(
        case["G"], covariance_type=case["model"], prior="default" if case["prior"] else None,
        weights_init=weights / weights.sum(), means_init=np.asarray(case["mean"]),
        precisions_init=precision, max_iter=1, tol=0.0, n_init=1, reg_covar=0.0,
        eigen_floor=0.0,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)
    return gm, sigma


def _as_full(gm: GaussianMixture, shape: tuple[int, int, int]) -> np.ndarray:
    cov, layout = gm.covariances_, gm.kernel_type_
    if layout == "tied":
        return np.broadcast_to(cov, shape)
    if layout == "diag":
        return np.array([np.diag(v) for v in cov])
    if layout == "spherical":
        return np.array([np.eye(shape[1]) * v for v in cov])
    return cov


@pytest.mark.parametrize("key", sorted(fixed_points()))
def test_log_likelihood_at_mclusts_parameters_is_mclusts(key):
    case = fixed_points()[key]
    gm, _ = _step_from_mclust(case)
    n = load_dataset(case["dataset"]).shape[0]
    assert gm.history_[0][0] == pytest.approx(case["loglik"], abs=1e-9 * n)


@pytest.mark.parametrize("key", sorted(set(fixed_points()) - NOT_YET_FIXED))
def test_mclusts_optimum_is_a_fixed_point_of_em_cores_step(key):
    case = fixed_points()[key]
    gm, sigma = _step_from_mclust(case)
    X = load_dataset(case["dataset"])
    n = X.shape[0]
    # mclust stopped at a relative log-likelihood change of 1e-13: its parameters are within
    # ~1e-4 of the exact optimum where the likelihood is flat, so one step may move them that far
    assert gm.history_[0][1] - gm.history_[0][0] <= 1e-6 * n  # nothing left to gain
    pro = np.asarray(case["pro"]) / np.sum(case["pro"])
    np.testing.assert_allclose(gm.weights_, pro, atol=1e-5)
    scale = X.std(axis=0)
    np.testing.assert_allclose(gm.means_ / scale, np.asarray(case["mean"]) / scale, atol=1e-4)
    full = _as_full(gm, sigma.shape)
    np.testing.assert_allclose(full, sigma, rtol=2e-3, atol=1e-6 * np.abs(sigma).max())


@pytest.mark.parametrize("name", DATASETS)
def test_one_component_fits_reach_mclusts_log_likelihood(name):
    """G = 1 without a prior has a closed form for every model: no start can miss it."""
    X = load_dataset(name)
    cells = mclust_cells()["datasets"][name]["noprior"]
    result = select_model(X, [1], MODEL_NAMES, n_init=1, random_state=0, reg_covar=0.0)
    for row in result.table:
        want = (cells.get(row["model"]) or {}).get("1")
        assert want is not None, row["model"]
        assert row["log_likelihood"] == pytest.approx(want["loglik"], abs=1e-6 * X.shape[0])


@pytest.mark.parametrize("name", DATASETS)
def test_one_component_fits_with_the_prior_are_mclusts_closed_forms(name):
    """With ``priorControl()`` mclust fits G = 1 by mvnXII / mvnXXI / mvnXXX, whose prior
    denominators differ from the models' EM steps (e.g. VEI's and EEI's)."""
    X = load_dataset(name)
    cells = mclust_cells()["datasets"][name]["prior"]
    result = select_model(
        X, [1], MODEL_NAMES, n_init=1, random_state=0, reg_covar=0.0, prior="default"
    )
    for row in result.table:
        want = (cells.get(row["model"]) or {}).get("1")
        if want is None:
            continue
        assert row["log_likelihood"] == pytest.approx(want["loglik"], abs=1e-6 * X.shape[0]), row[
            "model"
        ]


def test_eev_fits_components_on_fewer_points_than_dimensions_as_mclust_does():
    """EEV pools its shape over the components, so a component spanning fewer than d + 1 rows
    still has a definite covariance: on swiss (n = 47, d = 6) mclust fits G = 4..9, and so must
    em_core. Up to G = 6 it reaches mclust's log-likelihood or better (G = 7 ends 0.9 below:
    the best-known-optimum part of issue 25 is still open)."""
    X = load_dataset("swiss")
    cells = mclust_cells()["datasets"]["swiss"]["noprior"]["EEV"]
    result = select_model(X, range(4, 10), ["EEV"], random_state=0)
    for row in result.table:
        g = row["n_components"]
        assert row["log_likelihood"] is not None, (g, row["error"])
        if g <= 6:
            assert row["log_likelihood"] >= cells[str(g)]["loglik"] - 1e-3 * X.shape[0], g
