"""Option types shared across em_core, defined once."""

from typing import Literal

import numpy as np
import numpy.typing as npt

CovarianceType = Literal["full", "tied", "diag", "spherical"]
Criterion = Literal["bic", "aic", "icl"]
InitMethod = Literal["auto", "hierarchical", "k-means++", "random_from_data"]
Acceleration = Literal["squarem"] | None

COVARIANCE_TYPES: tuple[CovarianceType, ...] = ("full", "tied", "diag", "spherical")
CRITERIA: tuple[Criterion, ...] = ("bic", "aic", "icl")
INIT_METHODS: tuple[InitMethod, ...] = ("auto", "hierarchical", "k-means++", "random_from_data")
ACCELERATIONS: tuple[Acceleration, ...] = (None, "squarem")

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]
SeedLike = int | np.random.Generator | None
