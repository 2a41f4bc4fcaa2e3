"""Independent fits in worker processes (``select_model(n_jobs > 1)``).

Initialisation (k-means++, Lloyd, the hard-assignment pass) is serial numpy and dominates a
model-selection sweep, so threads inside the E-step kernels cannot use the cores; separate
processes fitting separate candidates can. Workers are started with *spawn*, never *fork*: the
parent's numba (OpenMP/workqueue) and BLAS thread pools are not fork-safe. Each worker runs its
kernels and BLAS on one thread (the cores go to the processes) and receives the data once,
through the pool initializer, rather than with every task.
"""

import multiprocessing
import pickle
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from ._threads import single_threaded_blas

# Per-worker state, set once by _init_worker.
_FN: Callable[..., Any] | None = None
_DATA: Any = None
_BLAS_LIMIT: Any = None


def pickled_or_none(data: Any) -> bytes | None:
    """``data`` pickled for the workers, or None if it cannot be (e.g. a DaskSource holds a live
    client); the caller then stays serial."""
    try:
        return pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None


def _init_worker(fn: Callable[..., Any], payload: bytes) -> None:
    global _FN, _DATA, _BLAS_LIMIT
    from ._fast_kernels import HAVE_NUMBA

    if HAVE_NUMBA:
        import numba

        numba.set_num_threads(1)
    # threadpool_limits applies on construction; kept for the worker's lifetime, never exited.
    _BLAS_LIMIT = single_threaded_blas()
    _FN, _DATA = fn, pickle.loads(payload)


def _run_task(args: tuple) -> tuple[Any, list[warnings.WarningMessage]]:
    """``_FN(data, *args)`` plus the warnings it raised, which the parent re-issues (a worker's
    own warnings would bypass the caller's filters)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _FN(_DATA, *args)
    return result, [
        warnings.WarningMessage(w.message, w.category, w.filename, w.lineno) for w in caught
    ]


def map_in_processes(
    fn: Callable[..., Any],
    payload: bytes,
    tasks: Sequence[tuple],
    order: Sequence[int],
    max_workers: int,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(i, fn(data, *tasks[i]))`` as each task finishes (completion order).

    ``fn`` must be a module-level function (workers import it by name) and ``payload`` the
    data pickled by :func:`pickled_or_none`. Tasks are submitted in ``order`` (put the longest
    first for load balance). Warnings raised in a worker are re-issued here. On an error, or if
    the consumer stops early, pending tasks are cancelled.
    """
    pool = ProcessPoolExecutor(
        max_workers=max_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(fn, payload),
    )
    registry: dict = {}  # one "default"-action registry per call: a repeated warning shows once
    try:
        pending = {pool.submit(_run_task, tasks[i]): i for i in order}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                i = pending.pop(future)
                result, caught = future.result()
                for w in caught:
                    warnings.warn_explicit(
                        w.message, w.category, w.filename, w.lineno, registry=registry
                    )
                yield i, result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
