"""SQUAREM-accelerated EM (Varadhan & Roland 2008) with a monotone safeguard.

EM is a fixed-point iteration. SQUAREM takes two plain EM steps from a point, s₁ = G(s₀) and
s₂ = G(s₁), and extrapolates along them::

    r = s₁ − s₀,   v = s₂ − 2 s₁ + s₀,   α = −‖r‖ / ‖v‖ (at most −1),
    s′ = s₀ − 2α r + α² v                 (α = −1 gives back s₂)

(the "SqS3" step length). The iteration runs on the M-step's input, not on the parameters: s is
the summary (n_k / n, ȳ_k, W_k / n) of an E-step — the masses, the weighted means and the
scatters about them, which do not depend on where the E-step centred its moments — and the
extrapolated point's parameters are the model's own M-step of s′. So every parameter set EM
visits satisfies the covariance model's constraints (a shared shape stays shared, a prior stays
applied), which extrapolating the parameters themselves would not guarantee.

Safeguard: s′ is kept only if its M-step succeeds (masses positive, covariances definite, no
degenerate or empty component) and its E-step's log-likelihood is at least that of s₂;
otherwise the cycle keeps s₂, the result of two plain EM steps. So the recorded trace is
monotone wherever plain EM's is (without a prior; with one, plain EM is monotone in the log
posterior, and the safeguard compares log-likelihoods). Convergence is tested only on plain EM
steps, with the plain rule |Δ log-likelihood| / n < tol, so the answer is a fixed point of the
same EM map.
"""

import numpy as np

from ._typing import FloatArray
from .em import EMRun, EMSteps, empty_component
from .params import GMMParams
from .suffstats import SufficientStats, scatter_of


def _summary(stats: SufficientStats, n: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(n_k / n, ȳ_k, W_k / n): the shift-free point SQUAREM extrapolates."""
    s = scatter_of(stats)
    return stats.nk / n, s.ybar, s.W / n


def _stats_of(point: tuple[FloatArray, FloatArray, FloatArray], like: SufficientStats, n: float):
    """A summary whose M-step is that of ``point``: moments about ȳ_k, so sx = 0 and sxx = W."""
    weights, ybar, W = point
    return SufficientStats(
        like.covariance_type, ybar, weights * n, np.zeros_like(ybar), W * n,
        like.log_likelihood, like.entropy, like.n_samples,
    )  # fmt: skip


def _positive_semidefinite(W: FloatArray) -> bool:
    """Whether every scatter (full (K, d, d) or diagonal (K, d)) could be one."""
    if W.ndim == 2:
        return bool(np.all(W >= 0.0))
    return bool(np.all(np.linalg.eigvalsh(W)[:, 0] >= 0.0))


def _extrapolate(s0, s1, s2):
    """SqS3 point from three summaries, or None when the step length gives nothing beyond s₂."""
    r = [b - a for a, b in zip(s0, s1, strict=True)]
    v = [c - 2.0 * b + a for a, b, c in zip(s0, s1, s2, strict=True)]
    r_norm = np.sqrt(sum(float(np.sum(x * x)) for x in r))
    v_norm = np.sqrt(sum(float(np.sum(x * x)) for x in v))
    if not (v_norm > 0.0 and np.isfinite(r_norm / v_norm)):
        return None
    alpha = -r_norm / v_norm
    if alpha >= -1.0:
        return None
    return tuple(
        a - 2.0 * alpha * dr + alpha * alpha * dv for a, dr, dv in zip(s0, r, v, strict=True)
    )


class _Cycle:
    """One restart's accelerated EM: plain steps recorded into ``run``, extrapolations tried."""

    def __init__(self, steps: EMSteps, run: EMRun, tol: float, max_iter: int) -> None:
        self.steps, self.run, self.tol, self.max_iter = steps, run, tol, max_iter
        self.n = float(steps.source.n_samples)

    def finished(self) -> bool:
        run = self.run
        return run.degenerate is not None or run.converged or run.n_iter >= self.max_iter

    def plain_step(self, stats: SufficientStats) -> SufficientStats | None:
        """One EM step from the current parameters, whose E-step is ``stats``."""
        new, self.run.degenerate = self.steps.maximize(stats, self.run.params)
        if new is None:
            return None
        new_stats = self.steps.expect(new)
        return new_stats if self.run.take(new, new_stats, "em", self.tol, self.n) else None

    def try_extrapolation(self, stats0, stats1, stats2) -> SufficientStats:
        """The E-step the cycle ends on: the extrapolated point's if the safeguard keeps it."""
        point = _extrapolate(*(_summary(s, self.n) for s in (stats0, stats1, stats2)))
        if point is None or point[0].min() <= 0.0:
            return stats2
        if not _positive_semidefinite(point[2]):
            return stats2
        with np.errstate(all="ignore"):
            new, _ = self.steps.maximize(_stats_of(point, stats2, self.n), self.run.params)
        if new is None:
            return stats2
        new_stats = self.steps.expect(new)
        ll = new_stats.log_likelihood
        if not (np.isfinite(ll) and ll >= stats2.log_likelihood):
            self.run.n_rejected += 1
            return stats2
        if empty_component(np.asarray(new_stats.nk)) is not None:
            self.run.n_rejected += 1
            return stats2
        self.run.take(new, new_stats, "squarem", self.tol, self.n)
        return new_stats


def run_squarem(steps: EMSteps, params: GMMParams, *, tol: float, max_iter: int) -> EMRun:
    """EM from ``params`` accelerated by SQUAREM cycles (two plain steps, one safeguarded
    extrapolation); same arguments, stopping rule and failure handling as :func:`em_core.em.run_em`.
    ``max_iter`` bounds the accepted steps, plain and extrapolated."""
    run = EMRun(params)
    cycle = _Cycle(steps, run, tol, max_iter)
    stats0 = steps.expect(params)
    if not run.take(params, stats0, "start", tol, cycle.n):
        return run
    while not cycle.finished():
        stats1 = cycle.plain_step(stats0)
        if stats1 is None or cycle.finished():
            break
        stats2 = cycle.plain_step(stats1)
        if stats2 is None or cycle.finished():
            break
        stats0 = cycle.try_extrapolation(stats0, stats1, stats2)
    return run
