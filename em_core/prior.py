"""A conjugate prior for MAP-EM: mclust's ``priorControl()`` (Fraley & Raftery 2007).

Means get a normal prior μ_k | Σ_k ~ N(μ_P, Σ_k / κ) and covariances an inverse-Wishart
(inverse-gamma for diagonal and spherical models) with ``dof`` ν_P and ``scale`` Λ_P. The M-step
is then the posterior mode:

    μ_k = (n_k ȳ_k + κ μ_P) / (n_k + κ)
    W̃_k = Λ_P + W_k + c_k (ȳ_k − μ_P)(ȳ_k − μ_P)ᵀ,    c_k = κ n_k / (n_k + κ)

and each model's covariance formula on W̃_k with its denominators raised by the prior's degrees
of freedom (VVV: Σ_k = W̃_k / (ν_P + n_k + d + 2); EEE: Λ_P added once,
(Λ_P + Σ_k (W̃_k − Λ_P)) / (ν_P + n + d + 1 + K); …). em_core follows the Fortran of mclust 6's
EM routines (``me*p``, which mclustBIC runs; its one-step ``ms*p`` differ in the EEI, EVI, EII
and EEV denominators) step for step, including where they depart from the paper: EII adds no
Λ_P and ν_P + 2 + K d; EEI keeps ȳ_k as the mean; EEI, EVI and EEV add ν_P + 1 (+ d for EEV)
+ 1 if κ > 0; VEV adds no degrees of freedom. mclust has no prior step for VEE, EVE, VVE and
EVV; em_core gives them VEV's: their M-step on W̃_k with unchanged masses.

mclust's default (``defaultPrior``): κ = 0.01, μ_P = the column means, ν_P = d + 2, and
Λ_P = var(X) / K^{2/d} for ellipsoidal models, Σ_j var(X_j) / (d K^{2/d}) for diagonal and
spherical ones (sample variances, n − 1). Missing cells: means and variances over the observed
cells, covariances over pairwise-observed rows (the diagonal alone if that is not positive
definite). As in mclust, the reported log-likelihood (and BIC, ICL) is the observed-data
log-likelihood at the posterior mode; the prior is not part of the criteria.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from ._typing import FloatArray

#: Models whose prior scale is a scalar (diagonal and spherical covariances).
_SCALAR_SCALE = frozenset({"EII", "VII", "EEI", "VEI", "EVI", "VVI"})
#: Models whose means mclust does not shrink.
_UNSHRUNK_MEANS = frozenset({"EEI"})
_FIELDS = ("shrinkage", "mean", "dof", "scale")


@dataclass(frozen=True)
class Prior:
    """Resolved hyper-parameters for one (model, K) fit; see the module docstring."""

    shrinkage: float
    mean: FloatArray
    dof: float
    scale: FloatArray  # () for diagonal/spherical models, (d, d) otherwise

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Prior":
        return cls(
            float(data["shrinkage"]),
            np.asarray(data["mean"], dtype=np.float64),
            float(data["dof"]),
            np.asarray(data["scale"], dtype=np.float64),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "shrinkage": float(self.shrinkage),
            "mean": self.mean.tolist(),
            "dof": float(self.dof),
            "scale": np.asarray(self.scale).tolist(),
        }


@dataclass
class PairwiseMoments:
    """Additive per-pair count and sum of centred products of the pairwise-observed cells."""

    count: FloatArray
    cross: FloatArray

    @classmethod
    def of(cls, X: FloatArray, center: FloatArray) -> "PairwiseMoments":
        observed = (~np.isnan(X)).astype(np.float64)
        Z = np.where(observed > 0, X - center, 0.0)
        return cls(observed.T @ observed, Z.T @ Z)

    def __add__(self, other: "PairwiseMoments") -> "PairwiseMoments":
        return PairwiseMoments(self.count + other.count, self.cross + other.cross)

    def covariance(self) -> FloatArray:
        """Sample covariance (n − 1) of pairwise-observed cells, or its diagonal if not PD."""
        cov = self.cross / np.maximum(self.count - 1.0, 1.0)
        try:
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            cov = np.diag(np.diag(cov))
        return cov


def check_prior_spec(spec: Any) -> None:
    """Validate ``prior`` as given to an estimator: None, "default" or a dict of overrides."""
    if spec is None or (isinstance(spec, str) and spec == "default"):
        return
    if not isinstance(spec, Mapping):
        raise ValueError(
            f"prior must be None, 'default' or a dict with keys {_FIELDS}; got {spec!r}"
        )
    unknown = sorted(set(spec) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown prior field(s) {unknown}; the fields are {_FIELDS}")
    shrinkage = spec.get("shrinkage")
    if shrinkage is not None and not (isinstance(shrinkage, Real) and shrinkage >= 0):
        raise ValueError(f"prior field 'shrinkage' must be a number >= 0, got {shrinkage!r}")
    dof = spec.get("dof")
    if dof is not None and not (isinstance(dof, Real) and np.isfinite(dof)):
        raise ValueError(f"prior field 'dof' must be a finite number, got {dof!r}")


def resolve_prior(
    spec: Any,
    model: str,
    n_components: int,
    mean: FloatArray,
    variances: FloatArray,
    covariance: FloatArray | None,
) -> Prior | None:
    """mclust's ``defaultPrior`` for (model, K) with the fields of a dict ``spec`` overriding it.

    ``variances`` are the columns' sample variances, ``covariance`` the data's sample covariance
    (needed for ellipsoidal models only). Raises ValueError naming a field that is out of range:
    shrinkage < 0, dof <= d − 1, a scale that is not positive (definite), a mean of wrong shape.
    """
    if spec is None:
        return None
    check_prior_spec(spec)
    given = {} if isinstance(spec, str) else dict(spec)
    d = mean.shape[0]
    fac = (1.0 / n_components) ** (2.0 / d)
    if model in _SCALAR_SCALE:
        default_scale = np.asarray(fac * variances.sum() / d)
    else:
        default_scale = fac * (covariance if covariance is not None else np.diag(variances))
    default_scale = _definite(default_scale, fac * max(1e-6 * float(np.mean(variances)), 1e-12))
    shrinkage = float(given.get("shrinkage", 0.01))
    prior_mean = np.asarray(given.get("mean", mean), dtype=np.float64)
    dof = float(given.get("dof", d + 2.0))
    scale = _check_scale(given.get("scale", default_scale), model, d)
    if prior_mean.shape != (d,) or not np.all(np.isfinite(prior_mean)):
        raise ValueError(f"prior field 'mean' must be {d} finite numbers, got {prior_mean!r}")
    if not dof > d - 1:
        raise ValueError(f"prior field 'dof' must be > d - 1 = {d - 1}, got {dof:g}")
    return Prior(shrinkage, prior_mean, dof, scale)


def _definite(scale: FloatArray, ridge: float) -> FloatArray:
    """mclust's default scale, plus ``ridge`` on the diagonal only where it is singular: a
    constant (or duplicated) column, which would otherwise stop the fit."""
    if scale.ndim == 0:
        return scale if scale > 0 else np.asarray(ridge)
    try:
        np.linalg.cholesky(scale)
        return scale
    except np.linalg.LinAlgError:
        return scale + ridge * np.eye(scale.shape[0])


def _check_scale(value: Any, model: str, d: int) -> FloatArray:
    scale = np.asarray(value, dtype=np.float64)
    if model in _SCALAR_SCALE:
        if scale.ndim != 0 or not np.isfinite(scale) or scale <= 0:
            raise ValueError(
                f"prior field 'scale' must be one positive number for model {model}, got {value!r}"
            )
        return scale
    if scale.ndim == 0:
        scale = float(scale) * np.eye(d)
    if scale.shape != (d, d) or not np.all(np.isfinite(scale)):
        raise ValueError(f"prior field 'scale' must be a ({d}, {d}) matrix for model {model}")
    try:
        np.linalg.cholesky(0.5 * (scale + scale.T))
    except np.linalg.LinAlgError:
        raise ValueError(
            f"prior field 'scale' must be positive definite for model {model}"
        ) from None
    return scale


@dataclass(frozen=True)
class PriorTerms:
    """The prior's additions to one M-step (zero without a prior): posterior means, terms added
    to traces, diagonals and scatter matrices, the scale, and the denominators' offsets."""

    means: FloatArray | None
    trace_extra: FloatArray | float
    diag_extra: FloatArray | float
    matrix_extra: FloatArray | float
    scale_scalar: float
    scale_matrix: FloatArray | float
    prior: Prior | None

    @classmethod
    def none(cls, n_components: int, n_features: int, full: bool) -> "PriorTerms":
        return cls(None, 0.0, 0.0, 0.0, 0.0, 0.0, None)

    @classmethod
    def of(cls, prior: Prior, model: str, nk: FloatArray, ybar: FloatArray) -> "PriorTerms":
        kappa = prior.shrinkage
        c = kappa * nk / (nk + kappa)
        b = ybar - prior.mean
        means = (
            ybar
            if model in _UNSHRUNK_MEANS
            else (nk[:, None] * ybar + kappa * prior.mean) / (nk + kappa)[:, None]
        )
        trace_extra = c * np.sum(b**2, axis=1)
        scalar = model in _SCALAR_SCALE
        return cls(
            means=means,
            trace_extra=trace_extra,
            diag_extra=c[:, None] * b**2,
            matrix_extra=c[:, None, None] * b[:, :, None] * b[:, None, :],
            scale_scalar=0.0 if model == "EII" or not scalar else float(prior.scale),
            scale_matrix=0.0 if scalar else prior.scale,
            prior=prior,
        )

    def dof_extra(self, model: str, n_components: int, n_features: int) -> float:
        """What mclust adds to each model's denominator (0 without a prior)."""
        if self.prior is None:
            return 0.0
        k, d, nu = n_components, n_features, self.prior.dof
        e = 1.0 if self.prior.shrinkage > 0 else 0.0
        return {
            "EII": nu + 2.0 + k * d, "VII": nu + 2.0 + e * d,
            "EEI": nu + 1.0 + e, "EVI": nu + 1.0 + e,
            "VEI": nu + 2.0 + e, "VVI": nu + 2.0 + e,
            "EEE": nu + d + 1.0 + e * k, "VVV": nu + d + 1.0 + e, "EEV": nu + d + 1.0 + e,
        }.get(model, 0.0)  # fmt: skip
