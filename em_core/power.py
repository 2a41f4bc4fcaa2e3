"""Power transforms that make a feature closer to Gaussian, with λ by maximum likelihood.

Box-Cox (1964), for x > 0:          y = (x^λ − 1) / λ            (log x at λ = 0)
Yeo-Johnson (2000), for any real x: y = ((x + 1)^λ − 1) / λ        x ≥ 0 (log1p x at λ = 0)
                                    y = −((1 − x)^{2−λ} − 1)/(2−λ)  x < 0 (−log1p(−x) at λ = 2)
signed Yeo-Johnson, any real x:     y = sign(x) · ((1 + |x|)^λ − 1) / λ   (sign(x) log1p|x| at 0)

λ maximises the profile log-likelihood of a normal model for y (σ² at its MLE): for Box-Cox
ℓ(λ) = −n/2 · log σ̂²(λ) + (λ − 1) Σ log x_i, for Yeo-Johnson with Σ sign(x_i) log(1 + |x_i|) as
the Jacobian term (scipy's ``boxcox_llf`` / ``yeojohnson_llf``), searched on ``LAMBDA_BOUNDS``.
The signed Yeo-Johnson transform is odd (Bickel & Doksum (1981)'s way of extending a power
transform to the real line): a net amount's rare negative values (refunds, chargebacks) are
compressed like the positive ones, where Yeo-Johnson's negative branch at λ near 0 raises them to
the power 2 − λ; at λ = 0 it is ``"log1p"``; its log-Jacobian is (λ − 1) log(1 + |x|). The
pipeline estimates its λ within a mixture (:mod:`em_core.power_within`); pinned, it is fitted
marginally like the others.
``"auto"`` picks Box-Cox when every observed value is positive and Yeo-Johnson otherwise. NaN
(a missing cell) stays NaN and takes no part in the fit. ``"log1p"`` and ``"none"`` are the fixed
transforms a schema may pin; ``"log1p"`` is sign(x)·log(1 + |x|), log1p extended oddly to the
negative values a net amount (spend minus refunds) can take. ``"log"`` is log(x + c) for
non-negative x, c = ½ · the smallest positive observed value (1 if none is positive; the fitted
parameter, in the place of λ): the log of a rate or duration whatever its unit (log1p's "+1" is
in the feature's unit and flattens rates below 1), finite at zero; values below −c/2 (a
dequantised zero) are floored there.
"""

from typing import Literal

import numpy as np
from scipy import special

from ._typing import ArrayLike, FloatArray

PowerMethod = Literal["auto", "boxcox", "yeojohnson", "signed_yeojohnson", "log", "log1p", "none"]
POWER_METHODS: tuple[PowerMethod, ...] = (
    "auto", "boxcox", "yeojohnson", "signed_yeojohnson", "log", "log1p", "none"
)  # fmt: skip
#: Where λ is searched: wide enough for logs (0), square roots and reciprocals (−1), and squares.
LAMBDA_BOUNDS = (-4.0, 4.0)


def resolve_method(x: ArrayLike, method: PowerMethod) -> str:
    """The concrete transform of ``method`` for the observed values of ``x``."""
    if method not in POWER_METHODS:
        raise ValueError(f"transform must be one of {POWER_METHODS}, got {method!r}")
    if method != "auto":
        return method
    observed = _observed(x)
    return "boxcox" if observed.size and np.all(observed > 0) else "yeojohnson"


def fit_lambda(x: ArrayLike, method: str) -> float | None:
    """Maximum-likelihood λ of ``method`` ("boxcox" or "yeojohnson") on the observed values of x;
    the offset c of "log"; None for the fixed transforms."""
    if method in ("log1p", "none"):
        return None
    observed = _observed(x)
    if method == "log":
        if np.any(observed < 0):
            raise ValueError("log needs non-negative values; use 'log1p' or 'yeojohnson'")
        positive = observed[observed > 0]
        return float(0.5 * positive.min()) if positive.size else 1.0
    if observed.size < 3 or np.ptp(observed) == 0:
        raise ValueError("a power transform needs at least 3 distinct observed values")
    from scipy import optimize, stats  # on first use: importing them costs scoring a second

    if method == "boxcox":
        if np.any(observed <= 0):
            raise ValueError("Box-Cox needs positive values; use 'yeojohnson' or 'auto'")
        llf = stats.boxcox_llf
    elif method == "yeojohnson":
        llf = stats.yeojohnson_llf
    elif method == "signed_yeojohnson":
        llf = _signed_yeojohnson_llf
    else:
        raise ValueError(f"no λ to fit for transform {method!r}")
    with np.errstate(all="ignore"):
        result = optimize.minimize_scalar(
            lambda lam: -llf(lam, observed), bounds=LAMBDA_BOUNDS, method="bounded",
            options={"xatol": 1e-8},
        )  # fmt: skip
    return float(result.x)


def forward(x: ArrayLike, method: str, lam: float | None) -> FloatArray:
    """The transform of x (NaN stays NaN)."""
    x = np.asarray(x, dtype=float)
    if method == "none":
        return x.copy()
    if method == "log1p":
        return np.sign(x) * np.log1p(np.abs(x))
    if method == "log":
        # only a dequantised zero can fall below −c/2; it is floored there, not lost
        return np.log(np.maximum(x + lam, 0.5 * lam))
    out = np.full_like(x, np.nan)
    seen = ~np.isnan(x)
    if method == "boxcox":
        if np.any(x[seen] <= 0):
            raise ValueError("Box-Cox needs positive values")
        out[seen] = special.boxcox(x[seen], lam)
    elif method == "yeojohnson":
        from scipy import stats

        out[seen] = stats.yeojohnson(x[seen], lmbda=lam)
    elif method == "signed_yeojohnson":
        out[seen] = np.sign(x[seen]) * special.boxcox1p(np.abs(x[seen]), lam)
    else:
        raise ValueError(f"unknown transform {method!r}")
    return out


def log_jacobian(x: ArrayLike, method: str, lam: float) -> FloatArray:
    """log |dy/dx| of the λ-transforms at x: (λ − 1) log x for Box-Cox, (λ − 1) log(1 + |x|) for
    signed Yeo-Johnson and for Yeo-Johnson at x ≥ 0 ((1 − λ) log(1 − x) below 0)."""
    x = np.asarray(x, dtype=float)
    if method == "boxcox":
        return (lam - 1.0) * np.log(x)
    if method == "signed_yeojohnson":
        return (lam - 1.0) * np.log1p(np.abs(x))
    if method == "yeojohnson":
        return np.where(x >= 0, (lam - 1.0) * np.log1p(np.abs(x)), (1.0 - lam) * np.log1p(-x))
    raise ValueError(f"transform {method!r} has no λ")


def _signed_yeojohnson_llf(lam: float, x: FloatArray) -> float:
    """Profile log-likelihood of a normal model for the signed Yeo-Johnson transform of x."""
    y = np.sign(x) * special.boxcox1p(np.abs(x), lam)
    return float(
        -0.5 * x.size * np.log(np.var(y)) + log_jacobian(x, "signed_yeojohnson", lam).sum()
    )


def inverse(y: ArrayLike, method: str, lam: float | None) -> FloatArray:
    """Back to original units. Values outside the transform's range (an imputed or averaged y
    beyond −1/λ) map to the range's edge instead of NaN."""
    y = np.asarray(y, dtype=float)
    if method == "none":
        return y.copy()
    if method == "log1p":
        return np.sign(y) * np.expm1(np.abs(y))
    if method == "log":
        return np.exp(y) - lam
    if method == "boxcox":
        return _inverse_power(y, lam)
    if method == "signed_yeojohnson":
        return np.sign(y) * (_inverse_power(np.abs(y), lam) - 1.0)
    if method == "yeojohnson":
        out = np.empty_like(y)
        pos = y >= 0
        out[pos] = _inverse_power(y[pos], lam) - 1.0
        out[~pos] = 1.0 - _inverse_power(-y[~pos], 2.0 - lam)
        out[np.isnan(y)] = np.nan
        return out
    raise ValueError(f"unknown transform {method!r}")


def _inverse_power(y: FloatArray, lam: float) -> FloatArray:
    """(1 + λ y)^{1/λ} (exp y at λ = 0), the base clipped at the smallest positive float."""
    if abs(lam) < 1e-12:
        return np.exp(y)
    base = np.maximum(1.0 + lam * y, np.finfo(float).tiny)
    with np.errstate(over="ignore"):
        return np.exp(np.log(base) / lam)


def _observed(x: ArrayLike) -> FloatArray:
    x = np.asarray(x, dtype=float).ravel()
    return x[~np.isnan(x)]
