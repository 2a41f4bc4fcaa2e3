"""The EM loop over a chunk source, shared by every estimator and backend.

One iteration is one map-reduce: every chunk is summarised under the current parameters
(:func:`em_core.estep.summarize`), the summaries are summed, and the M-step
(:func:`em_core.suffstats.maximize`) maps the sum to new parameters. The E-step of iteration t
also yields the observed-data log-likelihood of the parameters after t M-steps, so the trace
``history[t]`` costs nothing extra and the last entry is the log-likelihood of the returned fit.
"""

from dataclasses import dataclass, field

import numpy as np

from ._typing import FloatArray
from .estep import summarize
from .linalg import CholeskyError
from .models import ALIASES, min_component_mass
from .params import GMMParams
from .prior import Prior
from .sources import ChunkSource
from .suffstats import SufficientStats, maximize

#: Expected size (responsibility mass n_k = Σ_i r_ik) below which a component is empty: it
#: explains less than one row, its parameters are the prior's (or undefined without one), and
#: the model is one with fewer components. mclust stops at a column sum of √ε rows ("mixing
#: proportion fell below threshold") and reports no fit; one row is the natural unit of a count.
MIN_COMPONENT_SIZE = 1.0


def empty_component(nk: FloatArray) -> str | None:
    """Why a fit is not a K-component fit (a component's n_k < MIN_COMPONENT_SIZE), or None."""
    small = np.flatnonzero(nk < MIN_COMPONENT_SIZE)
    if not small.size:
        return None
    k = int(small[np.argmin(nk[small])])
    return (
        f"empty component: component {k} has expected size {nk[k]:.3g} < "
        f"{MIN_COMPONENT_SIZE:g} row (mixing proportion estimated as zero; the model reduces "
        "to one with fewer components)"
    )


def degeneracy(
    params: GMMParams,
    nk: FloatArray,
    column_var: FloatArray,
    reg_covar: float,
    eigen_floor: float,
    model: str | None = None,
) -> str | None:
    """Why a fit is a spurious (collapsed) maximum, or None if it is not.

    A component is degenerate when its responsibility mass is below
    :func:`min_component_mass`, or when the smallest eigenvalue of its un-regularised covariance,
    in units of the data's per-column variance (eig(D^-½ (Σ_k − reg·I) D^-½), D = diag(var)), is
    below ``eigen_floor``: the likelihood then grows without bound as the component shrinks.
    """
    if not (np.all(np.isfinite(params.weights)) and np.all(np.isfinite(params.means))):
        return "non-finite parameters"
    ct, d = params.covariance_type, params.n_features
    model = ALIASES[ct] if model is None else model
    need = min_component_mass(model, d)
    small = np.flatnonzero(nk < need)
    if small.size:
        k = int(small[0])
        return (
            f"component {k} has responsibility mass {nk[k]:.3g} < {need:g} needed for a "
            f"{model} covariance in {d} dimensions"
        )
    if eigen_floor <= 0:
        return None
    scale = np.sqrt(np.where(column_var > 0, column_var, 1.0))
    cov = params.covariances
    if ct in ("full", "tied"):
        cov = np.atleast_3d(cov) if ct == "full" else cov[None]
        cov = cov - reg_covar * np.eye(d)
        standardized = cov / scale[None, :, None] / scale[None, None, :]
        eig = np.linalg.eigvalsh(standardized)[:, 0]
    elif ct == "diag":
        eig = np.min((cov - reg_covar) / scale**2, axis=1)
    else:
        eig = (cov - reg_covar) / np.mean(scale**2)
    bad = np.flatnonzero(eig < eigen_floor)
    if bad.size:
        k = int(bad[np.argmin(eig[bad])])
        which = "the tied covariance" if ct == "tied" else f"component {k}"
        return (
            f"{which} collapsed: smallest covariance eigenvalue {eig[k]:.3g} (in units of the "
            f"data's variance) is below eigen_floor={eigen_floor:g}"
        )
    return None


@dataclass
class EMRun:
    """Outcome of one EM restart. ``history[t]`` is the log-likelihood of the t-th accepted
    parameters; ``steps[t]`` says how they were reached ("start", "em" for a plain EM step,
    "squarem" for an accepted extrapolation); ``n_rejected`` counts extrapolations that the
    safeguard turned down after their E-step (an E-step that is not in the history)."""

    params: GMMParams
    history: list[float] = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False
    degenerate: str | None = None
    empty_component: bool = False  # degenerate because a component emptied (empty_component)
    entropy: float = 0.0
    steps: list[str] = field(default_factory=list)
    n_rejected: int = 0
    #: the start's parameters and entropy, for :meth:`keep_start`
    start: tuple[GMMParams, float] | None = field(default=None, repr=False)

    def keep_start(self) -> bool:
        """Go back to the start when the first EM step did not move the log-likelihood by more
        than the tolerance (the run converged after one step): the start was already an optimum
        to within ``tol``, and keeping it exactly makes an identical re-run from last night's
        parameters reproduce them bit for bit. True if it went back."""
        if not (self.converged and self.n_iter == 1 and self.degenerate is None and self.start):
            return False
        self.params, self.entropy = self.start
        self.history, self.steps, self.n_iter = self.history[:1], self.steps[:1], 0
        return True

    def take(
        self, params: GMMParams, stats: SufficientStats, step: str, tol: float, n: float
    ) -> bool:
        """Accept ``params`` (reached by ``step``), whose E-step over ``n`` rows gave ``stats``;
        mark the run converged when a plain step changed the log-likelihood by less than ``tol``
        per row.
        False, with ``degenerate`` set, when they end the restart: a non-finite log-likelihood
        (the parameters are not taken) or an empty component (taken, so the history shows it)."""
        if not np.isfinite(stats.log_likelihood):
            self.degenerate = "log-likelihood is not finite"
            return False
        self.params = params
        if step == "start":
            self.start = (params, stats.entropy)
        self.n_iter += step != "start"
        self.history.append(stats.log_likelihood)
        self.entropy = stats.entropy
        self.steps.append(step)
        empty = empty_component(np.asarray(stats.nk))
        if empty is not None:
            self.degenerate, self.empty_component = empty, True
            return False
        if step == "em" and abs(self.history[-1] - self.history[-2]) / n < tol:
            self.converged = True
        return True

    @property
    def n_esteps(self) -> int:
        """E-steps spent: one per history entry and one per rejected extrapolation."""
        return len(self.history) + self.n_rejected


@dataclass
class EMSteps:
    """The E- and M-step of one restart with their failure checks, shared by plain EM
    (:func:`run_em`) and accelerated EM (:func:`em_core.acceleration.run_squarem`)."""

    source: ChunkSource
    reg_covar: float
    eigen_floor: float
    column_var: FloatArray
    model: str | None = None
    prior: Prior | None = None

    def expect(self, params: GMMParams) -> SufficientStats:
        """E-step over every chunk of the source, summed."""
        source = self.source
        flags = dict(
            known_complete=bool(getattr(source, "known_complete", False)),
            known_incomplete=bool(getattr(source, "known_incomplete", False)),
            pattern_sorted=bool(getattr(source, "pattern_sorted", False)),
        )
        return source.map_reduce(lambda X, p=params: summarize(X, p, **flags))

    def maximize(
        self, stats: SufficientStats, current: GMMParams
    ) -> tuple[GMMParams | None, str | None]:
        """M-step from ``stats`` (warm-started at ``current``): (parameters, None) or (None,
        why they are degenerate)."""
        try:
            new = maximize(
                stats, self.reg_covar, self.model, self.prior, previous=current.covariances
            )
        except CholeskyError:
            return None, (
                "a covariance matrix became singular; increase reg_covar, decrease "
                "n_components, or scale the data"
            )
        if self.prior is None:
            reason = degeneracy(
                new, stats.nk, self.column_var, self.reg_covar, self.eigen_floor, self.model
            )
        elif not (np.all(np.isfinite(new.weights)) and np.all(np.isfinite(new.means))):
            reason = "non-finite parameters"
        else:
            reason = None
        return (None, reason) if reason is not None else (new, None)


def run_em(steps: EMSteps, params: GMMParams, *, tol: float, max_iter: int) -> EMRun:
    """Iterate E- and M-steps from ``params`` until |Δ log-likelihood| / n < tol or max_iter.

    ``steps`` holds the source, the model (one of mclust's 14; default the kernel's own) and
    the prior, which makes the M-step the posterior mode. A Cholesky failure, an empty
    component (:func:`empty_component`, with or without a prior) or, without a prior, a
    degenerate component ends the restart early with ``degenerate`` set to the reason; its
    parameters are then the last valid ones. With a prior only non-finite parameters and empty
    components count as degenerate.
    """
    run = EMRun(params)
    new, step = params, "start"
    while run.take(new, stats := steps.expect(new), step, tol, steps.source.n_samples):
        if run.converged or run.n_iter == max_iter:
            break
        new, run.degenerate = steps.maximize(stats, run.params)
        if new is None:
            break
        step = "em"
    return run
