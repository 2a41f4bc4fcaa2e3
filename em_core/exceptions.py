"""Exceptions and warnings raised by em_core."""


class DegenerateFitError(ValueError):
    """Every EM restart ended on a degenerate (collapsed) component.

    A Gaussian mixture's likelihood is unbounded when a component collapses onto a few points, so
    such a fit is a spurious maximum, not an answer. Decrease ``n_components``, increase
    ``reg_covar``, use a constrained ``covariance_type`` (``diag``, ``spherical``, ``tied``), or
    scale the data.
    """


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the log-likelihood change fell below ``tol``."""
