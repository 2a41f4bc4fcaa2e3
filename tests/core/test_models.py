"""mclust's 14 covariance models and the conjugate prior: structure, parameter counts, recovery
of each family's parameters with missing cells, ascent of the log posterior, bad priors."""

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import linear_sum_assignment

from em_core import GaussianMixture, select_model
from em_core.models import ALIASES, MODEL_NAMES, canonical_model, kernel_type, n_model_parameters

from .conftest import mcar
from .order_data import make_order_data

pytestmark = pytest.mark.filterwarnings("ignore::em_core.ConvergenceWarning")


def _rotation(d: int, rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def family_covariances(model: str, k: int, d: int, rng) -> np.ndarray:
    """Random (K, d, d) covariances with exactly the equalities of ``model``'s family."""
    vol, shp, ori = model
    lam = rng.uniform(0.5, 2.0, k) if vol == "V" else np.full(k, rng.uniform(0.5, 2.0))

    def shape():
        a = rng.uniform(0.3, 3.0, d)
        return a / np.exp(np.mean(np.log(a)))

    shared_shape = shape()
    shapes = [shape() if shp == "V" else (np.ones(d) if shp == "I" else shared_shape) for _ in lam]
    shared_rot = _rotation(d, rng)
    rots = [
        np.eye(d) if ori == "I" else (_rotation(d, rng) if ori == "V" else shared_rot) for _ in lam
    ]
    return np.array([lam[i] * rots[i] @ np.diag(shapes[i]) @ rots[i].T for i in range(k)])


def _full(gm: GaussianMixture) -> np.ndarray:
    k, d = gm.means_.shape
    cov = np.asarray(gm.covariances_)
    kind = gm.kernel_type_
    if kind == "full":
        return cov
    if kind == "tied":
        return np.broadcast_to(cov, (k, d, d))
    if kind == "diag":
        return np.array([np.diag(c) for c in cov])
    return np.array([c * np.eye(d) for c in cov])


def test_names_aliases_and_kernels():
    assert len(MODEL_NAMES) == 14
    assert {canonical_model(a) for a in ALIASES} == {"VVV", "EEE", "VVI", "VII"}
    assert canonical_model("vev") == "VEV"
    kernels = {m: kernel_type(m) for m in MODEL_NAMES}
    assert [m for m, t in kernels.items() if t == "spherical"] == ["EII", "VII"]
    assert [m for m, t in kernels.items() if t == "diag"] == ["EEI", "VEI", "EVI", "VVI"]
    assert [m for m, t in kernels.items() if t == "tied"] == ["EEE"]


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_parameter_count_matches_the_degrees_of_freedom_of_the_family(model):
    """nMclustParams counted independently: the dimension of the family's tangent space,
    by finite differences of the covariance map at a random point of the family."""
    k, d = 3, 4
    rng = np.random.default_rng(1)
    vol, shp, ori = model
    # free coordinates: log-volumes, log-shapes (sum zero), rotation generators
    n_vol = k if vol == "V" else 1
    n_shape = 0 if shp == "I" else (d - 1) * (k if shp == "V" else 1)
    n_rot = 0 if ori == "I" else d * (d - 1) // 2 * (k if ori == "V" else 1)
    base = family_covariances(model, k, d, rng)
    samples = np.array([family_covariances(model, k, d, rng).ravel() for _ in range(200)])
    rank = np.linalg.matrix_rank(samples - base.ravel(), tol=1e-8)
    # the family is a manifold of dimension n_vol + n_shape + n_rot; 200 random points span
    # a linear space of at least that dimension (the bound is tight for the linear families)
    assert rank >= n_vol + n_shape + n_rot
    expected = (k - 1) + k * d + n_vol + n_shape + n_rot
    assert n_model_parameters(model, k, d) == expected


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_each_model_recovers_its_own_family_with_20_percent_missing_cells(model):
    rng = np.random.default_rng(sum(map(ord, model)))
    k, d, n = 3, 3, 6000
    covs = family_covariances(model, k, d, rng)
    means = np.array([[0.0, 0.0, 0.0], [7.0, 0.0, 2.0], [0.0, 7.0, -3.0]])
    weights = np.array([0.3, 0.3, 0.4])
    labels = rng.choice(k, n, p=weights)
    chol = np.linalg.cholesky(covs)
    X = means[labels] + np.einsum("nij,nj->ni", chol[labels], rng.normal(size=(n, d)))
    gm = GaussianMixture(k, covariance_type=model, n_init=2, random_state=0).fit(mcar(X, 0.2))
    order = linear_sum_assignment(((gm.means_[:, None, :] - means[None, :, :]) ** 2).sum(axis=2))[1]
    inv = np.argsort(order)
    np.testing.assert_allclose(gm.weights_[inv], weights, atol=0.03)
    np.testing.assert_allclose(gm.means_[inv], means, atol=0.15)
    fitted = _full(gm)[inv]
    scale = np.sqrt(np.einsum("kii->ki", covs))
    err = (fitted - covs) / (scale[:, :, None] * scale[:, None, :])
    assert np.abs(err).max() < 0.12, (model, np.abs(err).max())


def _log_prior(gm: GaussianMixture) -> float:
    """Independent log density of the conjugate prior at gm's parameters (scipy's inverse
    Wishart / inverse gamma and normal), for the models whose step is the exact mode."""
    p = gm.prior_
    k = gm.means_.shape[0]
    covs = _full(gm)
    out = 0.0
    for j in range(k):
        out += stats.multivariate_normal.logpdf(gm.means_[j], p.mean, covs[j] / p.shrinkage)
    if gm.model_ == "VVV":
        out += sum(stats.invwishart.logpdf(c, df=p.dof, scale=p.scale) for c in covs)
    elif gm.model_ == "EEE":
        out += stats.invwishart.logpdf(covs[0], df=p.dof, scale=p.scale)
    else:  # VII: one variance per component, VVI: one per axis and component
        var = np.asarray(gm.covariances_).reshape(k, -1)
        out += stats.invgamma.logpdf(var, a=p.dof / 2, scale=float(p.scale) / 2).sum()
    return float(out)


@pytest.mark.parametrize("model", ["VVV", "EEE", "VVI", "VII"])
@pytest.mark.parametrize("missing", [0.0, 0.2])
def test_log_posterior_never_decreases_with_the_prior(model, missing):
    rng = np.random.default_rng(3)
    X = np.round(rng.gamma(2.0, 2.0, size=(400, 3)))  # integer ties
    X[:150, 1] = 1.0  # a block of identical values that ML would collapse onto
    if missing:
        X = mcar(X, missing, seed=4)
    gm = GaussianMixture(3, covariance_type=model, prior="default", n_init=1, random_state=0)
    gm.max_iter = 0
    gm.fit(X)
    previous = -np.inf
    for _ in range(25):
        ll = gm.log_likelihood_ + _log_prior(gm)
        assert ll >= previous - 1e-9 * abs(ll), (ll, previous)
        previous = ll
        nxt = GaussianMixture(
            3, covariance_type=model, prior="default", max_iter=1, tol=0.0,
            weights_init=gm.weights_, means_init=gm.means_, precisions_init=gm.precisions_,
        )  # fmt: skip
        gm = nxt.fit(X)


@pytest.mark.parametrize(
    ("prior", "field"),
    [
        ({"scale": -1.0}, "scale"),
        ({"scale": 0.0}, "scale"),
        ({"scale": [[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]]}, "scale"),
        ({"shrinkage": -0.1}, "shrinkage"),
        ({"dof": 2.0}, "dof"),
        ({"dof": 1.5}, "dof"),
        ({"mean": [0.0, 1.0]}, "mean"),
        ({"shrink": 0.1}, "shrink"),
        ("flat", "prior"),
    ],
)
def test_bad_prior_raises_naming_the_field(prior, field):
    X = np.random.default_rng(0).normal(size=(50, 3))
    model = "VVV" if not (isinstance(prior, dict) and prior.get("scale") == -1.0) else "VII"
    with pytest.raises(ValueError, match=field):
        GaussianMixture(2, covariance_type=model, prior=prior).fit(X)


def test_prior_round_trips_and_matches_mclust_default_formulas():
    X = np.random.default_rng(0).normal(size=(200, 4)) * [1.0, 2.0, 3.0, 4.0]
    for model in ("VVV", "VII"):
        gm = GaussianMixture(3, covariance_type=model, prior="default", random_state=0).fit(X)
        fac = (1 / 3) ** (2 / 4)
        expected = fac * np.cov(X.T) if model == "VVV" else fac * X.var(axis=0, ddof=1).mean()
        np.testing.assert_allclose(gm.prior_.scale, expected, rtol=1e-12)
        assert gm.prior_.dof == 6 and gm.prior_.shrinkage == 0.01
        np.testing.assert_allclose(gm.prior_.mean, X.mean(axis=0), rtol=1e-12)
        back = GaussianMixture.from_dict(gm.to_dict())
        np.testing.assert_array_equal(back.prior_.scale, gm.prior_.scale)
        np.testing.assert_array_equal(back.predict_proba(X), gm.predict_proba(X))
        assert back.n_parameters == gm.n_parameters


def test_order_data_loses_no_candidate_with_the_prior_and_many_without():
    X = make_order_data(1500, seed=1)
    with_prior = select_model(X, range(1, 7), "all", prior="default", n_init=2)
    lost = [(r["n_components"], r["model"]) for r in with_prior.table if r["bic"] is None]
    assert lost == []
    assert len(with_prior.table) == 14 * 6
    ml = select_model(X, range(1, 7), ["VVV", "VVI", "EVI"], n_init=2)
    assert sum(r["degenerate"] for r in ml.table) >= 3  # the ties that the prior guards
