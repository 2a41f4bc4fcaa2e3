"""Frozen Gaussian-mixture parameters: the single internal parameterisation."""

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ._fast_incomplete import IncompleteLayout, incomplete_layout
from ._fast_kernels import CompleteLayout, complete_layout
from ._typing import CovarianceType, FloatArray
from .linalg import (
    covariances_from_precision_cholesky,
    full_precision_cholesky,
    log_det_precision_cholesky,
    precisions_from_cholesky,
)


@dataclass(frozen=True, eq=False)
class GMMParams:
    """Weights, means and precision Cholesky factors of a K-component mixture in d dimensions.

    Shapes of ``precisions_chol`` (and of the derived ``covariances``) by covariance type:

    =========== ================ =======================
    type        precisions_chol  meaning
    =========== ================ =======================
    full        (K, d, d)        one matrix per component
    tied        (d, d)           one matrix shared by all
    diag        (K, d)           1/σ per component, axis
    spherical   (K,)             1/σ per component
    =========== ================ =======================

    Derived quantities are computed once and cached; the kernels take them from here and do no
    argument checking of their own. The arrays are read-only copies, so a cached quantity can never
    disagree with the parameters it came from. ``exact_covariances``, when given (an M-step's or
    a saved model's), is returned as ``covariances`` instead of the round trip through the factors.
    """

    weights: FloatArray
    means: FloatArray
    precisions_chol: FloatArray
    covariance_type: CovarianceType
    exact_covariances: FloatArray | None = field(default=None, repr=False, compare=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("weights", "means", "precisions_chol", "exact_covariances"):
            array = getattr(self, name)
            if isinstance(array, np.ndarray) and array.flags.writeable:
                frozen = array.copy()  # the caller's array stays the caller's, writeable
                frozen.flags.writeable = False
                object.__setattr__(self, name, frozen)

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.means.shape[1])

    @cached_property
    def log_weights(self) -> FloatArray:
        with np.errstate(divide="ignore"):
            return np.log(self.weights)

    @cached_property
    def covariances(self) -> FloatArray:
        if self.exact_covariances is not None:
            return self.exact_covariances
        return covariances_from_precision_cholesky(self.precisions_chol, self.covariance_type)

    @cached_property
    def precisions(self) -> FloatArray:
        return precisions_from_cholesky(self.precisions_chol, self.covariance_type)

    @cached_property
    def log_det_half(self) -> FloatArray:
        """Σ_j log P_k,jj = ½ log det Λ_k, shape (K,)."""
        out = log_det_precision_cholesky(
            self.precisions_chol, self.covariance_type, self.n_features
        )
        return np.broadcast_to(np.asarray(out, dtype=float), (self.n_components,))

    @cached_property
    def full_precisions_chol(self) -> FloatArray:
        """(K, d, d) factors for every covariance type (diagonal ones for diag/spherical)."""
        return full_precision_cholesky(
            self.precisions_chol, self.covariance_type, self.n_components, self.n_features
        )

    @cached_property
    def full_precisions(self) -> FloatArray:
        """(K, d, d) precision matrices Λ_k for every covariance type."""
        p = self.full_precisions_chol
        return p @ np.swapaxes(p, -1, -2)

    @cached_property
    def diag_variances(self) -> FloatArray:
        """(K, d) per-axis variances; only meaningful for diag and spherical."""
        pc = np.asarray(self.precisions_chol).reshape(self.n_components, -1)
        return np.broadcast_to(1.0 / np.square(pc), (self.n_components, self.n_features))

    @cached_property
    def complete_layout(self) -> CompleteLayout:
        """These parameters in the complete-data kernel's layout: made once per parameter set,
        so once per M-step however many row chunks the E-step walks."""
        return complete_layout(
            self.log_weights, self.means, self.precisions_chol, self.covariance_type
        )

    @cached_property
    def incomplete_layout(self) -> IncompleteLayout:
        """These parameters in the missing-data kernels' layout (once per parameter set)."""
        return incomplete_layout(
            self.log_weights, self.means, self.precisions_chol, self.covariance_type
        )

    @property
    def n_parameters(self) -> int:
        return n_parameters(self.n_components, self.n_features, self.covariance_type)


def n_parameters(n_components: int, n_features: int, covariance_type: CovarianceType) -> int:
    """Free parameters: (K-1) weights + K·d means + the covariance parameters.

    Covariance parameters: full K·d(d+1)/2, tied d(d+1)/2, diag K·d, spherical K.
    """
    k, d = n_components, n_features
    cov = {
        "full": k * d * (d + 1) // 2,
        "tied": d * (d + 1) // 2,
        "diag": k * d,
        "spherical": k,
    }[covariance_type]
    return (k - 1) + k * d + cov
