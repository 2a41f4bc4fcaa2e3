"""Exceptions and warnings raised by em_core."""


class DegenerateFitError(ValueError):
    """Every EM restart ended on a degenerate (collapsed) component.

    A Gaussian mixture's likelihood is unbounded when a component collapses onto a few points, so
    such a fit is a spurious maximum, not an answer. Decrease ``n_components``, increase
    ``reg_covar``, use a constrained ``covariance_type`` (``diag``, ``spherical``, ``tied``), or
    scale the data.
    """


class EmptyComponentError(DegenerateFitError):
    """Every EM restart ended with a component whose expected size is below one row.

    Such a fit has fewer components than asked for (mclust reports these cells as NA: "mixture
    proportions estimated as zero"); its BIC would charge parameters of a component that is not
    there. Decrease ``n_components``.
    """


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the log-likelihood change fell below ``tol``."""
