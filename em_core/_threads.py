"""Thread hygiene: the fused kernels run their own threads, so BLAS must not add more."""

from contextlib import AbstractContextManager, nullcontext


def single_threaded_blas() -> AbstractContextManager:
    """Limit BLAS to one thread while the numba kernels run (PERF_NOTES: nested BLAS threads
    inside parallel kernels gave no speed-up; limiting them let the kernels scale ≈2×)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it, BLAS keeps its own setting
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
