"""em_core: Gaussian mixtures by EM on incomplete data — imputation, model selection, alignment.

numpy and scipy only; knows nothing of Dagster, MLflow or pandas.
"""

__version__ = "0.1.0"

from .alignment import align_labels, bhattacharyya, component_distances
from .exceptions import ConvergenceWarning, DegenerateFitError
from .mixture import GaussianMixture
from .params import GMMParams, n_parameters
from .selection import SelectionResult, select_model

__all__ = [
    "ConvergenceWarning",
    "DegenerateFitError",
    "GMMParams",
    "GaussianMixture",
    "SelectionResult",
    "__version__",
    "align_labels",
    "bhattacharyya",
    "component_distances",
    "n_parameters",
    "select_model",
]
