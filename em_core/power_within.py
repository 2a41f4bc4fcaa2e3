"""Power-transform λ estimated within a Gaussian mixture (the idea of flowClust, Lo, Brinkman &
Gottardo 2008), not marginally.

A marginal Box-Cox λ makes a feature's *whole* distribution as Gaussian as it can, which for a
feature that separates groups is the wrong target: a bimodal feature gets bent to look unimodal.
What a mixture needs is each *component* Gaussian. Here λ maximises the mixture's complete-data
log-likelihood, alternating with EM:

1. fit a flexible mixture (``n_components``, full covariances, mclust's prior; one component fewer
   while a fit empties a component) to the standardised transforms of the complete rows, and take
   its posteriors τ_ik;
2. for each free feature j in turn, with τ and the other features' transforms held,

       λ_j = argmax_λ  −½ Σ_k n_k log s²_kj(λ) + Σ_i log |g′_λ(x_ij)|,

   where n_k = Σ_i τ_ik and s²_kj(λ) is component k's τ-weighted residual variance of g_λ(x_·j)
   regressed on the other features (with intercept). That is the part of −½ Σ_k n_k log |Σ_k|
   that depends on λ_j once each component's mean and covariance are profiled out, and the
   Jacobian term makes values on different λ scales comparable (bounded Brent search on
   ``power.LAMBDA_BOUNDS``);
3. repeat from 1 until no λ moves by more than ``tol`` (at most ``max_rounds`` rounds).

A group of customers lying on a curve that a λ straightens (a one-time buyer's visit rate is the
reciprocal of the recency) gets a thin component, which the criterion rewards; the marginal λ
ignores it. Only complete rows take part (at most ``max_rows`` of them, a seeded subsample: λ is
one number per feature and 20,000 rows pin it down); the rows should be dequantised first
(:mod:`em_core.dequantize`) so that no component collapses onto tied values.
"""

from dataclasses import dataclass

import numpy as np

from . import power
from ._typing import ArrayLike, FloatArray
from .exceptions import DegenerateFitError
from .mixture import GaussianMixture

#: Methods whose λ this module estimates.
FREE_METHODS = ("boxcox", "yeojohnson", "signed_yeojohnson")


@dataclass(frozen=True)
class WithinMixtureLambdas:
    """λ per feature (the given λ for fixed features), the rounds run, and λ after each round."""

    lambdas: list[float | None]
    n_rounds: int
    converged: bool
    history: list[list[float | None]]


def fit_lambdas_within_mixture(
    X: ArrayLike,
    methods: list[str],
    lambdas: list[float | None],
    free: list[bool],
    *,
    n_components: int = 8,
    max_rows: int = 20_000,
    tol: float = 0.01,
    max_rounds: int = 10,
    random_state: int = 0,
) -> WithinMixtureLambdas:
    """Estimate λ of the ``free`` features of ``X`` (n, d; NaN = missing) within a mixture.

    ``methods[j]`` is feature j's transform (:func:`em_core.power.forward`); a free feature's must
    be one of ``FREE_METHODS`` and its λ starts at ``lambdas[j]`` (0, a log, if None); a fixed
    feature keeps ``lambdas[j]``. See the module docstring for the criterion.
    """
    X = np.asarray(X, dtype=float)
    d = X.shape[1]
    if not len(methods) == len(lambdas) == len(free) == d:
        raise ValueError(f"methods, lambdas and free need one entry per feature ({d})")
    for method, is_free in zip(methods, free, strict=True):
        if is_free and method not in FREE_METHODS:
            raise ValueError(f"a free feature's transform must be one of {FREE_METHODS}")
    rows = _complete_rows(X, max_rows, random_state)
    if rows.shape[0] < max(10 * d, 2 * n_components):
        raise ValueError(f"{rows.shape[0]} complete rows are too few to estimate λ in a mixture")
    current = [
        (0.0 if lam is None else float(lam)) if f else lam
        for lam, f in zip(lambdas, free, strict=True)
    ]
    history: list[list[float | None]] = []
    for round_ in range(1, max_rounds + 1):
        Y = _transformed(rows, methods, current)
        tau = _posteriors(Y, n_components, random_state)
        previous = list(current)
        for j in (j for j in range(d) if free[j]):
            others = np.delete(Y, j, axis=1)
            current[j] = _best_lambda(rows[:, j], methods[j], others, tau)
            Y[:, j] = _standardised(power.forward(rows[:, j], methods[j], current[j]))
        history.append(list(current))
        moved = max(abs(a - b) for a, b, f in zip(current, previous, free, strict=True) if f)
        if moved < tol:
            return WithinMixtureLambdas(current, round_, True, history)
    return WithinMixtureLambdas(current, max_rounds, False, history)


def component_criterion(
    x: FloatArray, method: str, lam: float, others: FloatArray, tau: FloatArray
) -> float:
    """−½ Σ_k n_k log s²_k(λ) + Σ_i log |g′_λ(x_i)| (see the module docstring)."""
    y = power.forward(x, method, lam)
    design = np.column_stack([np.ones(x.size), others])
    total = float(power.log_jacobian(x, method, lam).sum())
    floor = 1e-12 * max(float(np.var(y)), np.finfo(float).tiny)
    for k in range(tau.shape[1]):
        w = tau[:, k]
        n_k = w.sum()
        if n_k <= design.shape[1]:
            continue
        root = np.sqrt(w)
        coef, *_ = np.linalg.lstsq(design * root[:, None], y * root, rcond=None)
        residual = float(w @ (y - design @ coef) ** 2) / n_k
        total -= 0.5 * n_k * np.log(max(residual, floor))
    return total


def _best_lambda(x: FloatArray, method: str, others: FloatArray, tau: FloatArray) -> float:
    from scipy import optimize  # on first use: importing it costs scoring a second

    with np.errstate(all="ignore"):
        result = optimize.minimize_scalar(
            lambda lam: -component_criterion(x, method, lam, others, tau),
            bounds=power.LAMBDA_BOUNDS, method="bounded", options={"xatol": 1e-4},
        )  # fmt: skip
    return float(result.x)


def _complete_rows(X: FloatArray, max_rows: int, random_state: int) -> FloatArray:
    rows = X[~np.isnan(X).any(axis=1)]
    if rows.shape[0] > max_rows:
        pick = np.random.default_rng(random_state).choice(rows.shape[0], max_rows, replace=False)
        rows = rows[np.sort(pick)]
    return rows


def _transformed(rows: FloatArray, methods: list[str], lambdas: list[float | None]) -> FloatArray:
    columns = [
        power.forward(rows[:, j], m, lam)
        for j, (m, lam) in enumerate(zip(methods, lambdas, strict=True))
    ]
    return np.column_stack([_standardised(c) for c in columns])


def _standardised(y: FloatArray) -> FloatArray:
    scale = y.std()
    return (y - y.mean()) / (scale if scale > 0 else 1.0)


def _posteriors(Y: FloatArray, n_components: int, random_state: int) -> FloatArray:
    """Posteriors of the largest mixture (≤ ``n_components``, ≥ 2 rows per feature and
    component) that fits without an empty or collapsed component."""
    k = max(1, min(n_components, Y.shape[0] // (2 * Y.shape[1])))
    while True:
        gm = GaussianMixture(
            k, covariance_type="full", prior="default", init="k-means++", n_init=1,
            random_state=random_state,
        )  # fmt: skip
        try:
            return gm.fit(Y).predict_proba(Y)
        except DegenerateFitError:
            if k == 1:
                raise
            k -= 1
