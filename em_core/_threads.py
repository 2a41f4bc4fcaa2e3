"""Thread hygiene: the fused kernels run their own threads, so BLAS must not add more, and idle
kernel threads should sleep rather than spin."""

import os
from contextlib import AbstractContextManager, nullcontext

#: What :func:`configure_threads` sets unless the process already chose.
THREAD_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE"}


def configure_threads() -> dict[str, str]:
    """Let idle kernel threads sleep (``OMP_WAIT_POLICY=PASSIVE``) unless the process chose a
    policy itself; returns what it set.

    numba's OpenMP layer spins idle threads by default, which on a shared or oversubscribed
    machine makes an E-step many times slower (bench/README.md). The policy is read once, when
    the OpenMP runtime starts, so an application calls this at its entry point, before the first
    fit; importing em_core changes nothing in the environment."""
    chosen = {}
    for name, value in THREAD_ENVIRONMENT.items():
        if name not in os.environ:
            os.environ[name] = chosen[name] = value
    return chosen


_controller = None


def single_threaded_blas() -> AbstractContextManager:
    """Limit BLAS to one thread while the numba kernels run (PERF_NOTES: nested BLAS threads
    inside parallel kernels gave no speed-up; limiting them let the kernels scale ≈2×).

    The BLAS libraries are looked up once per process (threadpoolctl scans the loaded shared
    objects, ≈3 ms, more than a whole fit on a few dozen rows); one loaded later, after the
    first call, keeps its own thread setting."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # optional: without it, BLAS keeps its own setting
            return nullcontext()
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")
