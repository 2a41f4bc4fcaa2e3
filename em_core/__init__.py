"""em_core: Gaussian mixtures by EM on incomplete data — imputation, model selection, alignment.

numpy and scipy only; knows nothing of Dagster, MLflow or pandas.
"""

__version__ = "0.1.0"

from ._threads import configure_threads
from .alignment import align_labels, bhattacharyya, component_distances, match_segments
from .backends import DaskSource, ParquetSource, fit_parquet, open_source
from .drift import (
    adjusted_rand_index,
    expected_transitions,
    population_stability_index,
    transition_matrix,
)
from .exceptions import ConvergenceWarning, DegenerateFitError, EmptyComponentError
from .mixture import GaussianMixture
from .params import GMMParams, n_parameters
from .selection import SelectionResult, select_model

__all__ = [
    "ConvergenceWarning",
    "DaskSource",
    "DegenerateFitError",
    "EmptyComponentError",
    "GMMParams",
    "GaussianMixture",
    "ParquetSource",
    "SelectionResult",
    "__version__",
    "adjusted_rand_index",
    "align_labels",
    "bhattacharyya",
    "component_distances",
    "configure_threads",
    "expected_transitions",
    "fit_parquet",
    "match_segments",
    "n_parameters",
    "open_source",
    "population_stability_index",
    "select_model",
    "transition_matrix",
]
