"""Input checks with messages that name the problem. Kernels behind them assume valid input."""

from numbers import Integral, Real

import numpy as np

from ._typing import ACCELERATIONS, CRITERIA, INIT_METHODS, ArrayLike, FloatArray
from .models import canonical_model
from .prior import check_prior_spec


def check_data(
    X: ArrayLike, *, name: str = "X", n_features: int | None = None, for_fit: bool = True
) -> FloatArray:
    """A float64 (n, d) array with NaN for missing cells; raise ValueError on anything else.

    A column with every cell missing cannot be fitted, but a fitted model scores such a batch
    (e.g. one new customer with an empty cell), so that check applies only when ``for_fit``.
    """
    arr = np.asarray(X)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name} must be numeric; got values of dtype {arr.dtype} that are not numbers "
                "(encode categories or drop non-numeric columns first)"
            ) from exc
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real-valued, got complex dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), got {arr.ndim}-D "
            f"shape {arr.shape}; reshape a single feature with X.reshape(-1, 1)"
        )
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    n, d = arr.shape
    if n == 0 or d == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}")
    if n_features is not None and d != n_features:
        raise ValueError(f"{name} has {d} features, but the model was fitted with {n_features}")
    if np.isinf(arr).any():
        rows, cols = np.nonzero(np.isinf(arr))
        raise ValueError(
            f"{name} contains ±inf (first at row {rows[0]}, column {cols[0]}); "
            "use NaN for missing cells"
        )
    missing = np.isnan(arr)
    if missing.any():
        empty_rows = np.flatnonzero(missing.all(axis=1))
        if empty_rows.size:
            raise ValueError(
                f"{name} has {empty_rows.size} row(s) with every cell missing (first: row "
                f"{empty_rows[0]}); such rows carry no information — remove or quarantine them"
            )
        empty_cols = np.flatnonzero(missing.all(axis=0))
        if for_fit and empty_cols.size:
            raise ValueError(
                f"{name} has column(s) {empty_cols.tolist()} with every cell missing; drop them"
            )
    return arr


def check_params(p) -> None:
    """Validate an estimator's hyper-parameters from one declared table of constraints."""
    k = p.n_components
    if not isinstance(k, Integral) or isinstance(k, bool) or k < 1:
        raise ValueError(f"n_components must be an integer >= 1, got {k!r}")
    canonical_model(p.covariance_type)
    check_prior_spec(getattr(p, "prior", None))
    if getattr(p, "acceleration", None) not in ACCELERATIONS:
        raise ValueError(f"unknown acceleration {p.acceleration!r}; choose one of {ACCELERATIONS}")
    if p.init not in INIT_METHODS:
        raise ValueError(f"unknown init {p.init!r}; choose one of {INIT_METHODS}")
    constraints = {
        "tol": (Real, 0.0, "tol must be a real number >= 0"),
        "reg_covar": (Real, 0.0, "reg_covar must be a real number >= 0"),
        "eigen_floor": (Real, 0.0, "eigen_floor must be a real number >= 0"),
        "max_iter": (Integral, 0, "max_iter must be an integer >= 0"),
        "n_init": (Integral, 1, "n_init must be an integer >= 1"),
        "chunk_size": (Integral, 1, "chunk_size must be an integer >= 1"),
        "init_max_samples": (Integral, 1, "init_max_samples must be an integer >= 1"),
        "hc_max_samples": (Integral, 1, "hc_max_samples must be an integer >= 1"),
        "n_screen": (Integral, 1, "n_screen must be an integer >= 1"),
        "screen_iter": (Integral, 1, "screen_iter must be an integer >= 1"),
    }
    for name, (kind, low, message) in constraints.items():
        value = getattr(p, name)
        if not isinstance(value, kind) or isinstance(value, bool) or value < low:
            raise ValueError(f"{message}, got {value!r}")


def check_criterion(criterion: str) -> None:
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; choose one of {CRITERIA}")


def check_n_samples(n_samples: int, n_components: int) -> None:
    if n_samples < n_components:
        raise ValueError(
            f"X has {n_samples} rows, fewer than n_components={n_components}; "
            "use fewer components or more data"
        )


def check_random_state(seed) -> np.random.Generator:
    """None → fresh entropy (not reproducible); int → seeded Generator; Generator → itself."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, Integral) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise ValueError(f"random_state must be None, an int or a numpy Generator, got {seed!r}")
