"""GaussianMixture: the estimator. A thin shell over the kernels, the EM driver and the sources."""

import warnings
from typing import Any

import numpy as np

from ._threads import single_threaded_blas
from ._typing import Acceleration, ArrayLike, CovarianceType, FloatArray, InitMethod, SeedLike
from ._validation import (
    check_data,
    check_n_samples,
    check_params,
    check_random_state,
)
from .acceleration import run_squarem
from .em import MIN_COMPONENT_SIZE, EMRun, EMSteps, run_em
from .estep import (
    _responsibilities,
    group_by_pattern,
    logsumexp_rows,
    pattern_terms,
    weighted_log_prob,
)
from .exceptions import ConvergenceWarning, DegenerateFitError, EmptyComponentError
from .init import (
    hard_assignment_stats,
    hierarchical_labels,
    initial_centers,
    labelled_stats,
    labels_center,
    params_from_assignment,
)
from .linalg import precision_cholesky, precision_cholesky_from_precisions
from .models import canonical_model, kernel_type, n_model_parameters
from .params import GMMParams
from .prior import PairwiseMoments, Prior, resolve_prior
from .sources import ArraySource, ChunkSource, ColumnMoments, is_chunk_source

#: Starts drawn at random, which emEM screening (``n_screen``) multiplies.
_RANDOM_STARTS = ("k-means++", "random_from_data")


class GaussianMixture:
    """Gaussian mixture fitted by EM on data with missing cells (NaN).

    Missing cells are latent variables, like the component labels: the E-step uses each row's
    observed-coordinate marginal for the responsibilities and the conditional Gaussian of its
    missing coordinates for the sufficient statistics (Ghahramani & Jordan 1994). With K = 1 this
    is the classical multivariate-normal EM for missing data (Dempster, Laird & Rubin 1977); with
    no NaN it is ordinary GMM EM and reproduces scikit-learn's ``GaussianMixture`` trajectory.

    Parameters
    ----------
    n_components : int, default 1
        Number of mixture components K.
    covariance_type : str, default "full"
        One of mclust's 14 models (EII, VII, EEI, VEI, EVI, VVI, EEE, VEE, EVE, VVE, EEV, VEV,
        EVV, VVV; see :mod:`em_core.models`) or scikit-learn's names ``full``, ``tied``,
        ``diag``, ``spherical`` (aliases of VVV, EEE, VVI, VII). The fitted covariances take the
        layout of the kernel that evaluates the model (``kernel_type_``): spherical (K,) for
        EII/VII, diag (K, d) for the four diagonal models, tied (d, d) for EEE, full (K, d, d)
        for the other seven.
    prior : None, "default" or dict, default None
        A conjugate prior for MAP-EM (:mod:`em_core.prior`): "default" is mclust's
        ``priorControl()`` (shrinkage 0.01 to the column means, dof d + 2, scale var(X)/K^{2/d});
        a dict overrides any of its fields ``shrinkage``, ``mean``, ``dof``, ``scale``. With a
        prior no fit is rejected as collapsed (the prior keeps covariances away from zero);
        the log-likelihood and criteria are those of the data at the posterior mode, as mclust.
        The prior regularises means and covariances, not proportions: a component can still
        empty out, and a restart that does is rejected (see Notes).
    tol : float, default 1e-6
        Stop when the change of the *mean* observed-data log-likelihood per row is below ``tol``.
    max_iter : int, default 500
        Maximum number of EM iterations (M-steps) per restart.
    n_init : int, default 1
        Number of restarts; the one with the highest log-likelihood among non-degenerate ones is
        kept. With a warm start, restart 0 starts from the given parameters and the others from
        ``init``, so a warm start races fresh restarts; it is kept unless one beats it by more
        than the stopping tolerance (``tol`` per row). A warm start whose first EM step changes
        the log-likelihood by less than ``tol`` per row is kept as given (``n_iter`` 0), so an
        identical re-run from last night's optimum reproduces its parameters exactly.
    init : {"auto", "hierarchical", "k-means++", "random_from_data"}, default "auto"
        Start of each restart. "hierarchical": mclust's model-based agglomerative clustering
        (Fraley 1998; VVV criterion on the scaled SVD of a seeded subsample of at most
        ``hc_max_samples`` rows, missing cells at the column means for the agglomeration only)
        followed by an M-step; "k-means++": k-means++ seeding and Lloyd iterations on the
        observed cells until the centres stop moving; "random_from_data": K distinct rows;
        "auto": restart 0 hierarchical (after the warm start, if any), the others k-means++.
        Each restart's start is recorded in ``restarts_``.
    reg_covar : float, default 1e-6
        Added to the diagonal of every covariance (in data units).
    random_state : int, numpy Generator or None
        Seed for every random choice; same seed and data give the same fit.
    weights_init, means_init, precisions_init : array-like, optional
        Warm start (precision matrices, shaped like ``precisions_``). Missing pieces are derived
        from a hard assignment of the rows to ``means_init`` (or to the ``init`` centres).
    chunk_size : int, default 131072
        Rows per E-step chunk: working memory beyond X is O(chunk_size × K × d).
    eigen_floor : float, default 1e-5
        A component whose un-regularised covariance has an eigenvalue below ``eigen_floor`` in
        units of the data's per-column variance (or whose mass is below
        :func:`em_core.models.min_component_mass`: d + 1 points for VVV and EVV, 2 for a
        per-component volume or shape, 1 otherwise) is a collapsed, spurious maximum: that
        restart is rejected. 0 turns the eigenvalue test off.
    init_max_samples : int, default 100000
        k-means++ seeding and Lloyd iterations run on a seeded subsample of at most this many rows.
    hc_max_samples : int, default 2000
        Rows the hierarchical start agglomerates (mclust's ``subset`` default); memory and time
        grow as its square.
    n_screen : int, default 1
        emEM (Biernacki, Celeux & Govaert 2003): each restart that draws a random start
        ("k-means++", "random_from_data") draws ``n_screen`` of them instead, runs each for
        ``screen_iter`` EM iterations and continues only the one with the highest
        log-likelihood; 1 = no screening. The kept restart's ``history_`` is its screened start's
        short run followed by the continuation; ``restarts_`` records ``screened``.
    screen_iter : int, default 10
        EM iterations of each screened start.
    acceleration : None or "squarem", default None
        "squarem": each restart's EM runs in SQUAREM cycles (Varadhan & Roland 2008; two plain
        EM steps, then one extrapolation along them, kept only if its log-likelihood is at
        least the plain steps'; :mod:`em_core.acceleration`). Same stopping rule, tested on plain
        steps, so the same optimum, usually in fewer E-steps. ``history_steps_`` says which
        entries of ``history_`` were extrapolations.

    Attributes
    ----------
    weights_ : (K,)
    means_ : (K, d)
    covariances_ : full (K, d, d), tied (d, d), diag (K, d), spherical (K,)
    precisions_cholesky_, precisions_ : same shapes as ``covariances_``
    converged_ : bool
    n_iter_ : int — M-steps of the kept restart
    log_likelihood_ : float — total observed-data log-likelihood of the training data at the fit
    history_ : list of lists — per restart, the total log-likelihood at the start parameters and
        after each M-step (the last entry of the kept restart equals ``log_likelihood_``)
    history_steps_ : list of lists — per restart, how each entry of ``history_`` was reached:
        "start", "em" (a plain EM step) or "squarem" (an accepted extrapolation)
    best_restart_ : int — index into ``history_`` of the kept restart
    restarts_ : list of dicts — per restart: init, log_likelihood, n_iter, converged,
        degenerate, empty_component, reason, screened, n_esteps (E-steps spent, rejected
        extrapolations included), accelerated (accepted extrapolations)

    Notes
    -----
    Empty components: a restart whose E-step gives a component an expected size n_k = Σ_i r_ik below
    ``em.MIN_COMPONENT_SIZE`` = 1 row, with or without a prior, is not a K-component fit: it
    stops there and is recorded in ``restarts_`` (``empty_component=True``, ``reason``). If every
    restart ends so, ``fit`` raises :class:`~em_core.exceptions.EmptyComponentError` (a
    ``DegenerateFitError``), as mclust reports no BIC for such a cell.
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: CovarianceType = "full",
        tol: float = 1e-6,
        max_iter: int = 500,
        n_init: int = 1,
        init: InitMethod = "auto",
        reg_covar: float = 1e-6,
        random_state: SeedLike = None,
        weights_init: ArrayLike | None = None,
        means_init: ArrayLike | None = None,
        precisions_init: ArrayLike | None = None,
        chunk_size: int = 131072,
        eigen_floor: float = 1e-5,
        init_max_samples: int = 100_000,
        prior: str | dict[str, Any] | None = None,
        hc_max_samples: int = 2000,
        n_screen: int = 1,
        screen_iter: int = 10,
        acceleration: Acceleration = None,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init = init
        self.reg_covar = reg_covar
        self.random_state = random_state
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.chunk_size = chunk_size
        self.eigen_floor = eigen_floor
        self.init_max_samples = init_max_samples
        self.prior = prior
        self.hc_max_samples = hc_max_samples
        self.n_screen = n_screen
        self.screen_iter = screen_iter
        self.acceleration = acceleration

    # ------------------------------------------------------------------ fitting
    def get_params(self) -> dict[str, Any]:
        """Constructor arguments (JSON-safe except array warm starts and Generators)."""
        names = (
            "n_components covariance_type tol max_iter n_init init reg_covar random_state "
            "weights_init means_init precisions_init chunk_size eigen_floor init_max_samples prior "
            "hc_max_samples n_screen screen_iter acceleration"
        ).split()
        return {name: getattr(self, name) for name in names}

    def fit(self, X: ArrayLike) -> "GaussianMixture":
        """Fit by EM with ``n_init`` restarts. X: (n, d) array, NaN marks a missing cell."""
        check_params(self)
        X = check_data(X)
        check_n_samples(X.shape[0], self.n_components)
        return self.fit_source(self._array_source(X))

    def _array_source(self, X: FloatArray) -> ArraySource:
        """Checked rows as the source the kernels read (missing-data patterns grouped where the
        full and tied kernels use them)."""
        grouped = kernel_type(self.covariance_type) in ("full", "tied")
        return ArraySource(X, self.chunk_size, group_patterns=grouped)

    def fit_source(self, source: ChunkSource) -> "GaussianMixture":
        """Fit from any :class:`~em_core.sources.ChunkSource` (in memory, streamed, distributed)."""
        with single_threaded_blas():
            return self._fit_source(source)

    def _fit_source(self, source: ChunkSource) -> "GaussianMixture":
        check_params(self)
        check_n_samples(source.n_samples, self.n_components)
        rng = check_random_state(self.random_state)
        moments: ColumnMoments = source.map_reduce(ColumnMoments.of)
        column_var = moments.var
        self.model_ = canonical_model(self.covariance_type)
        self.kernel_type_ = kernel_type(self.model_)
        self.prior_ = self._resolve_prior(source, moments)
        warm = self._has_warm_start()
        runs: list[EMRun] = []
        inits: list[str] = []
        failures: list[str] = []
        streams = rng.spawn(self.n_init)
        if warm:
            # the fresh restarts draw the streams a cold fit's would: an identical re-run from
            # last night's optimum can only keep it or find a better one
            streams = [streams[-1], *streams[:-1]]
        for restart, restart_rng in enumerate(streams):
            name = self._restart_method(restart, warm)
            screened = self.n_screen > 1 and name in _RANDOM_STARTS
            try:
                if screened:
                    run = self._screened_run(source, restart_rng, moments, name)
                else:
                    params0 = self._initial_params(source, restart_rng, moments, name)
            except np.linalg.LinAlgError:
                failures.append(f"restart {restart} ({name}): initial covariance is singular")
                runs.append(EMRun(params=None, degenerate="singular initial covariance"))
                inits.append(name)
                continue
            if not screened:
                run = self._run_em(source, params0, column_var, self.max_iter)
            if name == "warm":
                run.keep_start()
            runs.append(run)
            inits.append(name)
            if run.degenerate:
                failures.append(f"restart {restart} ({name}): {run.degenerate}")

        good = [i for i, r in enumerate(runs) if r.degenerate is None]
        self.history_ = [list(r.history) for r in runs]
        self.history_steps_ = [list(r.steps) for r in runs]
        self.restarts_ = [
            {
                "restart": i,
                "init": inits[i],
                "log_likelihood": r.history[-1] if r.history else None,
                "n_iter": r.n_iter,
                "converged": r.converged,
                "degenerate": r.degenerate is not None,
                "empty_component": r.empty_component,
                "reason": r.degenerate,
                "screened": self.n_screen if inits[i] in _RANDOM_STARTS else 1,
                "n_esteps": r.n_esteps,
                "accelerated": r.steps.count("squarem"),
            }
            for i, r in enumerate(runs)
        ]
        if not good:
            raise self._no_fit_error(runs, failures)
        best = self._kept_restart(runs, good, warm, source.n_samples)
        run = runs[best]
        self._set_params(run.params)
        self.best_restart_ = best
        self.converged_ = run.converged
        self.n_iter_ = run.n_iter
        self.log_likelihood_ = float(run.history[-1])
        self.entropy_ = float(run.entropy)
        self.n_samples_fit_ = int(source.n_samples)
        if not run.converged and self.max_iter > 0:
            warnings.warn(
                f"EM did not converge within max_iter={self.max_iter} iterations "
                f"(tol={self.tol}); increase max_iter or tol",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def _kept_restart(self, runs: list[EMRun], good: list[int], warm: bool, n: int) -> int:
        """The restart with the highest log-likelihood; a warm start (restart 0) is kept unless a
        fresh restart beats it by more than the stopping tolerance (``tol`` per row): the same
        optimum reached again keeps last night's parameters instead of a copy an accelerated run
        polished a hair further."""
        best = max(good, key=lambda i: runs[i].history[-1])
        if warm and 0 in good and runs[best].history[-1] - runs[0].history[-1] <= self.tol * n:
            return 0
        return best

    def _run_em(
        self, source: ChunkSource, params0: GMMParams, column_var: FloatArray, max_iter: int
    ) -> EMRun:
        run = run_squarem if self.acceleration == "squarem" else run_em
        steps = EMSteps(
            source, self.reg_covar, self.eigen_floor, column_var, self.model_, self.prior_
        )
        return run(steps, params0, tol=self.tol, max_iter=max_iter)

    def _screened_run(
        self, source: ChunkSource, rng: np.random.Generator, moments: ColumnMoments, name: str
    ) -> EMRun:
        """emEM: ``n_screen`` starts of kind ``name``, ``screen_iter`` EM iterations each; the
        best non-degenerate short run is continued up to ``max_iter`` iterations in all (if
        every short run degenerates, the first is returned as the restart's outcome)."""
        short = min(self.screen_iter, self.max_iter)
        runs = []
        for start_rng in rng.spawn(self.n_screen):
            try:
                params0 = self._initial_params(source, start_rng, moments, name)
            except np.linalg.LinAlgError:
                continue  # another start may be regular; all singular raises below
            runs.append(self._run_em(source, params0, moments.var, short))
        good = [r for r in runs if r.degenerate is None]
        if not good:
            if not runs:
                raise np.linalg.LinAlgError("every screened start is singular")
            return runs[0]
        best = max(good, key=lambda r: r.history[-1])
        if best.converged or best.n_iter >= self.max_iter:
            return best
        rest = self._run_em(source, best.params, moments.var, self.max_iter - best.n_iter)
        if rest.degenerate is not None and rest.n_iter == 0:
            return best  # nothing after the short run was valid
        rest.history = best.history + rest.history[1:]
        rest.steps = best.steps + rest.steps[1:]
        rest.n_iter += best.n_iter
        rest.n_rejected += best.n_rejected
        return rest

    def continue_fit(
        self, X: ArrayLike | ChunkSource, max_iter: int | None = None
    ) -> "GaussianMixture":
        """Run the kept restart's EM on from where it stopped, for up to ``max_iter`` more M-steps
        (default: the model's ``max_iter``), with the same tolerance, model and prior: for a fit
        that hit ``max_iter`` unconverged. EM is monotone, so the log-likelihood only rises. The
        kept restart's ``history_`` and ``restarts_`` entry, ``n_iter_``, ``converged_``,
        ``log_likelihood_`` and ``entropy_`` are extended in place; a continuation that
        degenerates (possible only without a prior), or whose first EM step changes the
        log-likelihood by less than ``tol`` per row (the fit is a fixed point to within the
        tolerance), leaves the fit as it was. ``X``: the training data, as an array or a
        :class:`~em_core.sources.ChunkSource`."""
        params = self._check_fitted()
        source = X if is_chunk_source(X) else self._array_source(check_data(X))
        check_n_samples(source.n_samples, self.n_components)
        moments: ColumnMoments = source.map_reduce(ColumnMoments.of)
        with single_threaded_blas():
            run = self._run_em(
                source, params, moments.var, self.max_iter if max_iter is None else max_iter
            )
        if run.degenerate is not None or not run.history or run.keep_start():
            return self
        kept = self.best_restart_
        self.history_[kept].extend(run.history[1:])
        self.history_steps_[kept].extend(run.steps[1:])
        self._set_params(run.params)
        self.converged_ = run.converged
        self.n_iter_ += run.n_iter
        self.log_likelihood_ = float(run.history[-1])
        self.entropy_ = float(run.entropy)
        self.restarts_[kept].update(
            log_likelihood=self.log_likelihood_,
            n_iter=self.n_iter_,
            converged=run.converged,
            n_esteps=self.restarts_[kept]["n_esteps"] + run.n_esteps - 1,
            accelerated=self.restarts_[kept]["accelerated"] + run.steps.count("squarem"),
        )
        return self

    def _no_fit_error(self, runs: list[EMRun], failures: list[str]) -> DegenerateFitError:
        what = f"{self.n_components}-component {self.covariance_type} mixture"
        if all(r.empty_component for r in runs):
            return EmptyComponentError(
                f"every EM restart of a {what} left a component with an expected size below "
                f"{MIN_COMPONENT_SIZE:g} row: the data support fewer components (mclust: "
                "'mixture proportions estimated as zero'). "
                + "; ".join(failures)
                + ". Decrease n_components."
            )
        return DegenerateFitError(
            f"every EM restart of a {what} collapsed onto a few points or emptied a component "
            "(a spurious maximum): "
            + "; ".join(failures)
            + ". Decrease n_components, increase reg_covar, use a constrained "
            "covariance_type, or scale the data."
        )

    def fit_predict(self, X: ArrayLike) -> np.ndarray:
        return self.fit(X).predict(X)

    def _has_warm_start(self) -> bool:
        return any(
            v is not None for v in (self.weights_init, self.means_init, self.precisions_init)
        )

    def _restart_method(self, restart: int, warm: bool) -> str:
        """Start of a restart: "warm" first if given; with init="auto" then mclust's
        hierarchical agglomeration, then k-means++ (k-means to convergence) for the rest."""
        if warm and restart == 0:
            return "warm"
        if self.init != "auto":
            return self.init
        return "hierarchical" if restart == int(warm) else "k-means++"

    def _initial_params(
        self, source: ChunkSource, rng: np.random.Generator, moments: ColumnMoments, method: str
    ) -> GMMParams:
        k, d, ct = self.n_components, source.n_features, self.kernel_type_
        warm = method == "warm"
        if method == "hierarchical":
            return self._hierarchical_params(source, moments)
        if warm and self.means_init is not None:
            centers = _as_float(self.means_init, (k, d), "means_init")
        else:
            sample = source.sample(rng, self.init_max_samples)
            start = "k-means++" if warm else method
            centers = initial_centers(sample, k, start, rng, moments.mean)
        stats = source.map_reduce(lambda X: hard_assignment_stats(X, centers, ct))
        params = params_from_assignment(stats, self.reg_covar, self.model_, self.prior_)
        if not warm:
            return params
        weights, means, prec_chol = params.weights, params.means, params.precisions_chol
        if self.weights_init is not None:
            weights = _as_float(self.weights_init, (k,), "weights_init")
            if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, rtol=0, atol=1e-8):
                raise ValueError("weights_init must be non-negative and sum to 1")
        if self.means_init is not None:
            means = centers
        if self.precisions_init is not None:
            shape = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[ct]
            precisions = _as_float(self.precisions_init, shape, "precisions_init")
            prec_chol = precision_cholesky_from_precisions(precisions, ct)
        return GMMParams(weights, means, prec_chol, ct)

    def _hierarchical_params(self, source: ChunkSource, moments: ColumnMoments) -> GMMParams:
        """mclust's start: an M-step from the model-based hierarchical partition (VVV criterion
        on the scaled SVD of the data) of a subsample of at most ``hc_max_samples`` rows, drawn
        with a fixed seed so that every candidate of a sweep shares one agglomeration."""
        sample = source.sample(np.random.default_rng(0), self.hc_max_samples)
        k = self.n_components
        labels = hierarchical_labels(np.where(np.isnan(sample), moments.mean, sample), k)
        centers = labels_center(sample, labels, k, moments.mean)
        stats = labelled_stats(sample, labels, centers, self.kernel_type_)
        stats.n_samples = sample.shape[0]
        return params_from_assignment(stats, self.reg_covar, self.model_, self.prior_)

    def _resolve_prior(self, source: ChunkSource, moments: ColumnMoments) -> Prior | None:
        """The prior's hyper-parameters for this (model, K) from the data's moments."""
        if self.prior is None:
            return None
        count = moments.count
        variances = moments.var * count / np.maximum(count - 1.0, 1.0)
        covariance = None
        if self.kernel_type_ in ("full", "tied"):
            mean = moments.mean
            covariance = source.map_reduce(lambda X: PairwiseMoments.of(X, mean)).covariance()
        return resolve_prior(
            self.prior, self.model_, self.n_components, moments.mean, variances, covariance
        )

    def _set_params(self, params: GMMParams) -> None:
        self._params = params
        self.weights_ = params.weights
        self.means_ = params.means
        self.covariances_ = params.covariances
        self.precisions_cholesky_ = params.precisions_chol
        self.precisions_ = params.precisions
        self.n_features_in_ = params.n_features

    # ------------------------------------------------------------------ inference
    def _check_fitted(self) -> GMMParams:
        if not hasattr(self, "_params"):
            raise ValueError("this GaussianMixture is not fitted yet; call fit(X) first")
        return self._params

    def _chunked_rows(self, X: ArrayLike):
        params = self._check_fitted()
        X = check_data(X, n_features=params.n_features, for_fit=False)
        return params, X, range(0, X.shape[0], self.chunk_size)

    def _weighted_log_prob(self, X: ArrayLike) -> FloatArray:
        params, X, starts = self._chunked_rows(X)
        out = np.empty((X.shape[0], params.n_components))
        with single_threaded_blas():
            for s in starts:
                out[s : s + self.chunk_size] = weighted_log_prob(X[s : s + self.chunk_size], params)
        return out

    def score_samples(self, X: ArrayLike) -> FloatArray:
        """Observed-data log-density log p(x_i,obs) of each row (NaN cells marginalised)."""
        return logsumexp_rows(self._weighted_log_prob(X))

    def score(self, X: ArrayLike) -> float:
        """Mean per-row observed-data log-likelihood."""
        return float(np.mean(self.score_samples(X)))

    def predict_proba(self, X: ArrayLike) -> FloatArray:
        """Posterior component probabilities p(k | x_i,obs), shape (n, K); rows sum to 1."""
        wlp = self._weighted_log_prob(X)
        with np.errstate(under="ignore"):
            return np.exp(wlp - logsumexp_rows(wlp)[:, None])

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Most probable component of each row."""
        return np.argmax(self._weighted_log_prob(X), axis=1)

    # ------------------------------------------------------------------ criteria
    @property
    def n_parameters(self) -> int:
        """Free parameters (mclust's ``nMclustParams``): K−1 weights, K·d means, and the
        covariance model's parameters."""
        params = self._check_fitted()
        return n_model_parameters(self._model_name(), params.n_components, params.n_features)

    def _model_name(self) -> str:
        return getattr(self, "model_", None) or canonical_model(self.covariance_type)

    def bic(self, X: ArrayLike) -> float:
        """Bayesian information criterion −2 log L + p log n. The lower the better."""
        n = np.shape(X)[0]
        return -2.0 * float(np.sum(self.score_samples(X))) + self.n_parameters * np.log(n)

    def aic(self, X: ArrayLike) -> float:
        """Akaike information criterion −2 log L + 2p. The lower the better."""
        return -2.0 * float(np.sum(self.score_samples(X))) + 2.0 * self.n_parameters

    def icl(self, X: ArrayLike) -> float:
        """Integrated completed likelihood BIC + 2·EN, EN = −Σ_i Σ_k r_ik log r_ik ≥ 0.

        Biernacki, Celeux & Govaert (2000), in the entropy form of McLachlan & Peel (2000, §6.10).
        ICL ≥ BIC; it penalises overlapping components. The lower the better.
        """
        wlp = self._weighted_log_prob(X)
        lse, _, entropy = _responsibilities(wlp)
        n = wlp.shape[0]
        return -2.0 * float(lse.sum()) + self.n_parameters * np.log(n) + 2.0 * entropy

    # ------------------------------------------------------------------ generation, imputation
    def sample(
        self, n_samples: int = 1, random_state: SeedLike = None
    ) -> tuple[FloatArray, np.ndarray]:
        """Draw ``n_samples`` rows; returns (X (n, d), component labels (n,))."""
        params = self._check_fitted()
        if not isinstance(n_samples, int | np.integer) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        rng = check_random_state(random_state)
        labels = rng.choice(params.n_components, size=n_samples, p=params.weights)
        z = rng.standard_normal((n_samples, params.n_features))
        # x = μ + P⁻ᵀ z has covariance P⁻ᵀ P⁻¹ = Σ
        factors = np.linalg.inv(params.full_precisions_chol)  # (K, d, d): P⁻¹
        X = params.means[labels] + np.einsum("nd,nde->ne", z, factors[labels])
        return X, labels

    def impute(
        self, X: ArrayLike, n_draws: int | None = None, random_state: SeedLike = None
    ) -> FloatArray:
        """Fill missing cells under the fitted mixture.

        Without ``n_draws``: the conditional expectation E[x_mis | x_obs] =
        Σ_k p(k | x_obs) E[x_mis | x_obs, k], shape (n, d). With ``n_draws = m``: m multiple
        imputations, shape (m, n, d): per row and draw, a component from p(k | x_obs), then the
        missing cells from the conditional Gaussian of that component. Observed cells are returned
        unchanged; the imputed cells are exactly ``np.isnan(X)``.
        """
        params, X, _ = self._chunked_rows(X)
        if n_draws is not None and (not isinstance(n_draws, int | np.integer) or n_draws < 1):
            raise ValueError(f"n_draws must be a positive integer, got {n_draws!r}")
        rng = check_random_state(random_state) if n_draws is not None else None
        missing = np.isnan(X)
        out = np.repeat(X[None], n_draws or 1, axis=0)
        incomplete = np.flatnonzero(missing.any(axis=1))
        for start in range(0, incomplete.size, self.chunk_size):
            rows_chunk = incomplete[start : start + self.chunk_size]
            for rows_local, mis in group_by_pattern(missing[rows_chunk]):
                rows = rows_chunk[rows_local]
                lp, diff, cond_cov, mis_idx = pattern_terms(X[rows], mis, params)
                _, resp, _ = _responsibilities(lp + params.log_weights)
                cond_means = params.means[None, :, mis_idx] + diff[:, :, mis_idx]  # (n, K, m)
                if n_draws is None:
                    out[0][np.ix_(rows, mis_idx)] = np.einsum("nk,nkm->nm", resp, cond_means)
                    continue
                chol = np.linalg.cholesky(cond_cov)  # (K, m, m)
                cum = np.cumsum(resp, axis=1)
                for draw in range(n_draws):
                    u = rng.random(rows.size)[:, None]
                    comp = np.minimum((u > cum).sum(axis=1), params.n_components - 1)
                    z = rng.standard_normal((rows.size, mis_idx.size))
                    values = cond_means[np.arange(rows.size), comp] + np.einsum(
                        "nij,nj->ni", chol[comp], z
                    )
                    out[draw][np.ix_(rows, mis_idx)] = values
        return out[0] if n_draws is None else out

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, versioned description of the fitted model (floats round-trip exactly)."""
        from . import __version__

        params = self._check_fitted()
        hyper = {
            k: v
            for k, v in self.get_params().items()
            if k not in ("weights_init", "means_init", "precisions_init")
        }
        if not (hyper["random_state"] is None or isinstance(hyper["random_state"], int)):
            hyper["random_state"] = None
        return {
            "format": "em_core.GaussianMixture",
            "format_version": 1,
            "em_core_version": __version__,
            "hyperparameters": hyper,
            "n_features": params.n_features,
            "model": self._model_name(),
            "prior": None if getattr(self, "prior_", None) is None else self.prior_.to_dict(),
            "weights": params.weights.tolist(),
            "means": params.means.tolist(),
            "covariances": np.asarray(params.covariances).tolist(),
            "precisions_cholesky": np.asarray(params.precisions_chol).tolist(),
            "fit": {
                "converged": bool(self.converged_),
                "n_iter": int(self.n_iter_),
                "log_likelihood": _float_or_none(self.log_likelihood_),
                "entropy": float(self.entropy_),
                "n_samples": int(self.n_samples_fit_),
                "best_restart": int(self.best_restart_),
                "history": [[float(v) for v in h] for h in self.history_],
                "history_steps": self.history_steps_,
                "restarts": self.restarts_,
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GaussianMixture":
        """Rebuild a fitted model written by :meth:`to_dict`."""
        if data.get("format") != "em_core.GaussianMixture":
            raise ValueError("not an em_core.GaussianMixture description (missing 'format')")
        if data.get("format_version") != 1:
            raise ValueError(
                f"unsupported format_version {data.get('format_version')!r}; this em_core reads 1"
            )
        gm = cls(**data["hyperparameters"])
        gm.model_ = canonical_model(gm.covariance_type)
        gm.kernel_type_ = ct = kernel_type(gm.model_)
        gm.prior_ = None if data.get("prior") is None else Prior.from_dict(data["prior"])
        params = GMMParams(
            np.asarray(data["weights"], dtype=np.float64),
            np.asarray(data["means"], dtype=np.float64),
            np.asarray(data["precisions_cholesky"], dtype=np.float64),
            ct,
            exact_covariances=np.asarray(data["covariances"], dtype=np.float64),
        )
        gm._set_params(params)
        fit = data["fit"]
        gm.converged_ = fit["converged"]
        gm.n_iter_ = fit["n_iter"]
        gm.log_likelihood_ = fit["log_likelihood"]
        gm.entropy_ = fit["entropy"]
        gm.n_samples_fit_ = fit["n_samples"]
        gm.best_restart_ = fit["best_restart"]
        gm.history_ = [list(h) for h in fit["history"]]
        # files written before acceleration existed: every step was a plain one
        plain = [["start"] + ["em"] * (len(h) - 1) for h in gm.history_]
        gm.history_steps_ = [list(h) for h in fit.get("history_steps", plain)]
        gm.restarts_ = [dict(r) for r in fit["restarts"]]
        return gm

    @classmethod
    def from_params(
        cls,
        weights: ArrayLike,
        means: ArrayLike,
        covariances: ArrayLike,
        covariance_type: CovarianceType = "full",
        **kwargs: Any,
    ) -> "GaussianMixture":
        """A fitted-looking model from known parameters (for scoring, sampling, tests)."""
        gm = cls(n_components=len(np.asarray(weights)), covariance_type=covariance_type, **kwargs)
        check_params(gm)
        gm.model_ = canonical_model(covariance_type)
        gm.kernel_type_ = kernel = kernel_type(gm.model_)
        gm.prior_ = None
        cov = np.asarray(covariances, dtype=np.float64)
        params = GMMParams(
            np.asarray(weights, dtype=np.float64),
            np.asarray(means, dtype=np.float64),
            precision_cholesky(cov, kernel),
            kernel,
            exact_covariances=cov,
        )
        gm._set_params(params)
        gm.converged_, gm.n_iter_, gm.log_likelihood_, gm.entropy_ = True, 0, None, 0.0
        gm.n_samples_fit_, gm.best_restart_, gm.history_, gm.restarts_ = 0, 0, [], []
        return gm

    def __repr__(self) -> str:
        return (
            f"GaussianMixture(n_components={self.n_components}, "
            f"covariance_type={self.covariance_type!r})"
        )


def _as_float(value: ArrayLike, shape: tuple[int, ...], name: str) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)
