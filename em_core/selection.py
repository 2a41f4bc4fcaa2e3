"""Model selection over the number of components and covariance types (BIC, AIC, ICL)."""

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._parallel import map_in_processes, pickled_or_none
from ._typing import COVARIANCE_TYPES, ArrayLike, Criterion
from ._validation import check_criterion, check_data, check_params, check_random_state
from .exceptions import DegenerateFitError, EmptyComponentError
from .mixture import GaussianMixture
from .models import ALIASES, MODEL_NAMES, canonical_model, kernel_type
from .sources import is_chunk_source

#: Seed codes: the four aliases keep their historical codes, the other models follow.
_COV_CODE = {ALIASES[name]: i for i, name in enumerate(COVARIANCE_TYPES)}
_COV_CODE.update(
    {
        m: len(COVARIANCE_TYPES) + i
        for i, m in enumerate(x for x in MODEL_NAMES if x not in _COV_CODE)
    }
)
#: Rough per-iteration cost order of the E-step kernels, most expensive first (n_jobs > 1
#: submits the expensive candidates first so that no long fit starts last).
_COST_RANK = {"full": 0, "tied": 1, "diag": 2, "spherical": 3}


@dataclass
class SelectionResult:
    """Outcome of :func:`select_model`.

    ``table`` has one dict per candidate with n_components, covariance_type, model,
    log_likelihood, n_parameters, bic, aic, icl (lower is better), converged, n_iter, seconds,
    degenerate, failure (None, "degenerate", "empty_component" or "error"), error,
    smallest_class, eligible and reason (why it cannot be chosen), continued (the chosen
    candidate was run on after its sweep: it had stopped at max_iter, or one more EM step still
    moved it by tol per row or more; its row then describes the continued fit); numeric fields
    are None for a candidate that failed. ``best`` is the chosen
    fitted
    model (never a degenerate one), ``models`` maps (K, covariance type) to the fitted model or
    None.
    """

    criterion: Criterion
    table: list[dict[str, Any]]
    best: GaussianMixture
    best_index: int
    models: dict[tuple[int, str], GaussianMixture | None] = field(repr=False)


def candidate_seed(random_state: int | None, n_components: int, covariance_type: str) -> int:
    """A seed per candidate that depends only on (random_state, K, covariance type), so adding
    or removing candidates never changes the others' fits."""
    code = _COV_CODE[canonical_model(covariance_type)]
    seq = np.random.SeedSequence([random_state or 0, n_components, code])
    return int(seq.generate_state(1, dtype=np.uint32)[0])


def _check_n_jobs(n_jobs: int) -> int:
    """The number of worker processes n_jobs asks for (-1 = every core)."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer):
        raise ValueError(f"n_jobs must be an int, got {n_jobs!r}")
    if n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs must be >= 1, or -1 for every core; got {n_jobs}")
    return (os.cpu_count() or 1) if n_jobs == -1 else int(n_jobs)


def _fit_candidate(
    X: Any, n: int, k: int, ct: str, warm: bool, kwargs: dict[str, Any]
) -> tuple[dict[str, Any], GaussianMixture | None]:
    """Fit one candidate and build its table row (the model is None if it failed). The serial
    loop and the worker processes both run this, so their rows agree."""
    gm = GaussianMixture(k, covariance_type=ct, **kwargs)
    row: dict[str, Any] = {
        "n_components": k, "covariance_type": ct, "model": canonical_model(ct), "warm_start": warm,
        "continued": False,
    }  # fmt: skip
    started = time.perf_counter()
    try:
        if k > n:
            raise _TooFewRows(f"X has {n} rows, fewer than n_components={k}")
        if is_chunk_source(X):
            gm.fit_source(X)
        else:
            gm.fit(X)
    except (DegenerateFitError, np.linalg.LinAlgError, _TooFewRows) as exc:
        # the options were validated before the sweep: only this candidate's numerics fail here
        fitted = None
        row.update(
            log_likelihood=None, n_parameters=None, bic=None, aic=None, icl=None,
            converged=False, n_iter=None, degenerate=isinstance(exc, DegenerateFitError),
            failure=_failure_kind(exc), error=str(exc), best_init=None, smallest_class=None,
        )  # fmt: skip
    else:
        fitted = gm
        row.update(
            **_fit_summary(gm, n), n_parameters=gm.n_parameters,
            degenerate=False, failure=None, error=None,
            best_init=gm.restarts_[gm.best_restart_]["init"],
            smallest_class=int(class_sizes(gm, X).min()),
        )  # fmt: skip
    row["seconds"] = time.perf_counter() - started
    return row, fitted


class _TooFewRows(Exception):
    """A candidate with more components than rows: recorded, not fitted."""


def _failure_kind(exc: Exception) -> str:
    if isinstance(exc, EmptyComponentError):
        return "empty_component"
    return "degenerate" if isinstance(exc, DegenerateFitError) else "error"


def class_sizes(model: GaussianMixture, X: Any) -> np.ndarray:
    """Rows of X (an array or a ChunkSource) whose most probable component is k, shape (K,)."""
    k = model.n_components
    if is_chunk_source(X):
        return X.map_reduce(lambda chunk: np.bincount(model.predict(chunk), minlength=k))
    return np.bincount(model.predict(X), minlength=k)


def _eligibility(row: dict[str, Any], criterion: str, min_class_size: int) -> str | None:
    """Why a candidate cannot be chosen, or None."""
    if row[criterion] is None:
        return row["error"]
    if row["smallest_class"] < min_class_size:
        return (
            f"a component is the most probable one for {row['smallest_class']} row(s), fewer "
            f"than min_class_size={min_class_size}"
        )
    return None


def select_model(
    X: ArrayLike,
    n_components: Iterable[int] = range(1, 9),
    covariance_types: Iterable[str] | str = COVARIANCE_TYPES,
    *,
    criterion: Criterion = "bic",
    n_init: int = 3,
    random_state: int | None = 0,
    callback: Callable[[dict[str, Any]], None] | None = None,
    warm_start: GaussianMixture | None = None,
    n_jobs: int = 1,
    min_class_size: int = 0,
    k_limit: int | None = None,
    **gm_kwargs: Any,
) -> SelectionResult:
    """Fit every (K, covariance type) candidate and pick the best by ``criterion``.

    Criteria follow scikit-learn's sign: BIC = −2 log L + p log n, AIC = −2 log L + 2p,
    ICL = BIC + 2·entropy; **lower is better**. Candidates whose every restart collapsed
    (see :class:`GaussianMixture`, ``eigen_floor``) or emptied a component (expected size below
    one row) are recorded as degenerate, with ``failure`` "degenerate" or "empty_component" and
    the reason in ``error``, and never chosen. Every fitted candidate's row has
    ``smallest_class``, the number of rows of X whose most probable component is the least
    popular one; with ``min_class_size`` > 0 a candidate below it is passed over (a segmentation
    that publishes components as segments needs ``min_class_size=1``: no segment without a
    customer). Each row says whether it was ``eligible`` and, if not, the ``reason``.
    ``callback(row)`` is called after each candidate with the table row plus ``index`` and
    ``total``, for progress reporting. Extra keyword arguments go to :class:`GaussianMixture`
    (e.g. ``prior="default"`` for MAP fits, mclust's ``priorControl()``); they are validated
    before the first fit. ``covariance_types`` takes mclust's model names, scikit-learn's
    aliases, or ``"all"`` for mclust's 14 models; each row records ``model`` (the mclust name).

    ``k_limit``: when the chosen candidate has the largest K tried of its covariance type, that
    type is also tried at the next ``EXTENSION_STEP`` values of K, and again while the choice
    stays at the top, up to ``k_limit`` (None = never). For a mixture whose components are merged
    into clusters afterwards (:mod:`em_core.merging`) a K range that stops BIC short leaves
    components straddling clusters that no merge can undo. The added candidates follow the others
    in ``table`` (same seeds as if they had been in ``n_components``).

    ``warm_start`` (a fitted model, e.g. last night's champion): the candidate with its
    (n_components, covariance_type) gets one extra restart that starts from its parameters and
    races the ``n_init`` fresh ones. Every row records ``warm_start`` (whether the candidate had
    one) and ``best_init`` (the start of the kept restart: "warm", "k-means++", …).
    ``X`` may also be a :class:`~em_core.sources.ChunkSource` (e.g. a Parquet or Dask source of
    :mod:`em_core.backends`): every candidate is then fitted with ``fit_source``.

    ``n_jobs`` (-1 = every core): candidates are fitted in that many *spawned* worker processes
    (one kernel and BLAS thread each; initialisation is serial numpy, so processes use the cores
    where kernel threads cannot). The data is pickled once and sent once to each worker, longer
    candidates (larger K, full covariances) start first, and ``callback`` runs here in
    completion order; ``table``, ``best`` and ``models`` equal the serial run's except the
    ``seconds`` field. With one candidate, or data that cannot be pickled (a DaskSource holds a
    client, and its cluster already parallelises the E-steps), the fit stays serial. As with any
    spawn pool, a script calling this needs an ``if __name__ == "__main__":`` guard.
    """
    workers = _check_n_jobs(n_jobs)
    check_criterion(criterion)
    X, n, ks, cov_types = _checked_grid(X, n_components, covariance_types, n_init, gm_kwargs)
    _check_sweep_options(X, min_class_size, random_state, warm_start, k_limit)
    sweep = _Sweep(X, n, n_init, random_state, gm_kwargs, warm_start, workers)
    table: list[dict[str, Any]] = []
    models: dict[tuple[int, str], GaussianMixture | None] = {}
    candidates = [(k, ct) for ct in cov_types for k in ks]
    while candidates:
        start, rows, fitted = len(table), {}, {}
        for i, (row, gm) in sweep.fit(candidates):
            row["reason"] = _eligibility(row, criterion, min_class_size)
            row["eligible"] = row["reason"] is None
            rows[i], fitted[i] = row, gm
            if callback is not None:
                callback({"index": start + i, "total": start + len(candidates), **row})
        table += [rows[i] for i in range(len(candidates))]
        models.update({key: fitted[i] for i, key in enumerate(candidates)})
        best_index = _best_index(table, criterion)
        candidates = _extension(table[best_index], models, min(k_limit or 0, n))
    best_row = table[best_index]
    best = models[(best_row["n_components"], best_row["covariance_type"])]
    _finish(best, X, n, best_row)
    return SelectionResult(criterion, table, best, best_index, models)


def _checked_grid(
    X: Any,
    n_components: Iterable[int],
    covariance_types: Iterable[str] | str,
    n_init: int,
    gm_kwargs: dict[str, Any],
) -> tuple[Any, int, list[int], list[str]]:
    """The checked data (an array, or a chunk source as given), its row count, the sorted K
    values and the covariance types; every option of every candidate is validated here, before
    the first fit."""
    if not is_chunk_source(X):
        X = check_data(X)
    n = X.n_samples if is_chunk_source(X) else X.shape[0]
    ks = sorted(set(int(k) for k in n_components))
    if isinstance(covariance_types, str):
        covariance_types = MODEL_NAMES if covariance_types == "all" else [covariance_types]
    cov_types = list(dict.fromkeys(covariance_types))
    if not ks:
        raise ValueError("n_components is empty")
    if not cov_types:
        raise ValueError("covariance_types is empty")
    for ct in cov_types:
        check_params(GaussianMixture(1, covariance_type=ct, n_init=n_init, **gm_kwargs))
    if ks[0] < 1:
        raise ValueError(f"n_components must be >= 1, got {ks[0]}")
    if ks[0] > n:
        raise ValueError(f"X has {n} rows, fewer than the smallest n_components={ks[0]}")
    return X, n, ks, cov_types


def _check_sweep_options(
    X: Any,
    min_class_size: Any,
    random_state: Any,
    warm_start: GaussianMixture | None,
    k_limit: Any,
) -> None:
    """ValueError naming the first invalid option of :func:`select_model`'s sweep."""
    if isinstance(min_class_size, bool) or not isinstance(min_class_size, int | np.integer):
        raise ValueError(f"min_class_size must be an int >= 0, got {min_class_size!r}")
    if min_class_size < 0:
        raise ValueError(f"min_class_size must be an int >= 0, got {min_class_size}")
    if random_state is not None and not isinstance(random_state, int):
        raise ValueError("select_model needs an int (or None) random_state")
    check_random_state(random_state)
    if warm_start is not None:
        n_features = X.n_features if is_chunk_source(X) else X.shape[1]
        if warm_start.means_.shape[1] != n_features:
            raise ValueError(
                f"warm_start has {warm_start.means_.shape[1]} features, the data {n_features}"
            )
    if k_limit is not None and (isinstance(k_limit, bool) or not isinstance(k_limit, int)):
        raise ValueError(f"k_limit must be an int or None, got {k_limit!r}")


#: Candidates added per round when the chosen K is the largest tried (see ``k_limit``).
EXTENSION_STEP = 2


def _best_index(table: list[dict[str, Any]], criterion: Criterion) -> int:
    """The eligible row with the lowest criterion (the first on ties)."""
    scored = [i for i, row in enumerate(table) if row["eligible"]]
    if not scored:
        raise DegenerateFitError(
            "no candidate model can be chosen: "
            + "; ".join(
                f"K={r['n_components']} {r['covariance_type']}: {r['reason']}" for r in table
            )
        )
    return min(scored, key=lambda i: (table[i][criterion], i))


def _extension(
    best: dict[str, Any], models: dict[tuple[int, str], Any], k_limit: int
) -> list[tuple[int, str]]:
    """The next candidates when the chosen one has the largest K tried of its covariance type:
    that type at the next ``EXTENSION_STEP`` values of K, up to ``k_limit``; else none."""
    cov = best["covariance_type"]
    top = max(k for k, ct in models if ct == cov)
    if best["n_components"] < top or top >= k_limit:
        return []
    return [(k, cov) for k in range(top + 1, min(top + EXTENSION_STEP, k_limit) + 1)]


class _Sweep:
    """Fits lists of candidates of one sweep: each with its own seed (``candidate_seed``), the
    warm start raced in the candidate of its (K, model), serially or in worker processes (the
    data pickled once, the expensive candidates submitted first)."""

    def __init__(
        self, X: Any, n: int, n_init: int, random_state: int | None,
        gm_kwargs: dict[str, Any], warm_start: GaussianMixture | None, workers: int,
    ) -> None:  # fmt: skip
        self.X, self.n, self.n_init, self.random_state = X, n, n_init, random_state
        self.gm_kwargs, self.warm_start, self.workers = gm_kwargs, warm_start, workers
        self.warm_key = None
        if warm_start is not None:
            k = int(warm_start.means_.shape[0])
            self.warm_key = (k, canonical_model(warm_start.covariance_type))
        self._payload: bytes | None = None
        self._pickled = False

    def _task(self, k: int, ct: str) -> tuple:
        seed = None if self.random_state is None else candidate_seed(self.random_state, k, ct)
        kwargs = dict(self.gm_kwargs, n_init=self.n_init, random_state=seed)
        warm = (k, canonical_model(ct)) == self.warm_key
        if warm:
            kwargs.update(
                weights_init=self.warm_start.weights_,
                means_init=self.warm_start.means_,
                precisions_init=self.warm_start.precisions_,
                n_init=self.n_init + 1,
            )
        return (self.n, k, ct, warm, kwargs)

    def fit(
        self, candidates: list[tuple[int, str]]
    ) -> Iterator[tuple[int, tuple[dict[str, Any], GaussianMixture | None]]]:
        """(index into ``candidates``, (row, model)) per candidate, in completion order."""
        tasks = [self._task(k, ct) for k, ct in candidates]
        workers = min(self.workers, len(tasks))
        if workers > 1 and not self._pickled:
            self._payload, self._pickled = pickled_or_none(self.X), True
        if workers <= 1 or self._payload is None:
            return ((i, _fit_candidate(self.X, *task)) for i, task in enumerate(tasks))
        order = sorted(
            range(len(tasks)),
            key=lambda i: (-tasks[i][1], _COST_RANK[kernel_type(tasks[i][2])], i),
        )
        return map_in_processes(_fit_candidate, self._payload, tasks, order, workers)


#: The chosen candidate's EM may run on for this many times ``max_iter`` more M-steps.
FINISH_FACTOR = 4


def _finish(model: GaussianMixture, X: Any, n: int, row: dict[str, Any]) -> None:
    """Make the chosen candidate a fixed point of EM to within ``tol``, and update its row: the
    chosen model is published, and tomorrow's identical re-run starts from it. A fit stopped at
    ``max_iter`` is continued (``FINISH_FACTOR · max_iter`` more M-steps at most); then, while one
    more EM step still moves the log-likelihood by ``tol`` per row or more (EM's steps need not
    shrink monotonically, so "converged" can stop on a small step in a slow stretch), EM runs on
    again, ``FINISH_FACTOR`` times at most. A converged re-run warm-started from it then keeps it
    as given (``GaussianMixture``, ``warm_start``). Its criteria only fall (EM is monotone)."""
    before = model.n_iter_
    if not model.converged_:
        model.continue_fit(X, FINISH_FACTOR * model.max_iter)
    for _ in range(FINISH_FACTOR):
        steps = model.n_iter_
        model.continue_fit(X)
        if model.n_iter_ == steps:
            break
    if model.n_iter_ != before:
        row.update(**_fit_summary(model, n), continued=True)


def _fit_summary(gm: GaussianMixture, n: int) -> dict[str, Any]:
    """A fitted candidate's log-likelihood, criteria and convergence, as its row records them."""
    ll, p = gm.log_likelihood_, gm.n_parameters
    bic = -2.0 * ll + p * np.log(n)
    return dict(
        log_likelihood=ll, bic=bic, aic=-2.0 * ll + 2.0 * p, icl=bic + 2.0 * gm.entropy_,
        converged=bool(gm.converged_), n_iter=gm.n_iter_,
    )  # fmt: skip
