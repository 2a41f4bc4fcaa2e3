"""Per-EM-iteration time: em_core's fused E-step kernel vs scikit-learn ``GaussianMixture``.

Both run in this one process on the same generated data (nothing is written to disk) from the
same initial parameters, with ``tol=0`` so that every iteration runs.

* scikit-learn: ``fit(max_iter=1)`` from the initial parameters, then ``k`` times its own
  ``_e_step`` + ``_m_step`` (exactly what ``fit`` runs per iteration), median time, at each BLAS
  thread count in ``--sklearn-threads``; the best is used for the ratio.
* em_core: ``complete_stats`` (E-step + sufficient statistics, numba on all cores, BLAS limited
  to one thread inside) followed by the M-step from the statistics (same regularisation as
  scikit-learn), timed per iteration, mean of ``k``.

The log-likelihoods printed are the mean per-sample log-likelihood of the E-step of iteration
``k+1`` for both; ``rel`` is their relative difference. Peak memory (MiB) is the largest RSS
increase above the pre-iteration RSS during one extra, untimed iteration, sampled every 2 ms.

    .venv/bin/python bench/kernels.py --quick       # a small grid, about a minute
    .venv/bin/python bench/kernels.py               # n = 1e5, 1e6; d = 4, 16; K = 4, 10
    .venv/bin/python bench/kernels.py --big         # also n = 4e6
    .venv/bin/python bench/kernels.py --serial      # one thread each, CPU-clock timed
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import psutil
from scipy.linalg import cholesky, solve_triangular
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky_from_precisions
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from em_core import _fast_kernels as fk

REG_COVAR = 1e-6


# ------------------------------------------------------------------------------------------
def make_data(n, d, K, seed):
    """A mixture of K Gaussians with random means (spread 4) and random full covariances."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(K, d))
    A = rng.normal(size=(K, d, d)) / np.sqrt(d)
    chols = np.linalg.cholesky(A @ A.transpose(0, 2, 1) + 0.3 * np.eye(d))
    labels = rng.choice(K, size=n, p=rng.dirichlet(np.full(K, 5.0)))
    X = rng.standard_normal((n, d))
    for k in range(K):
        idx = np.flatnonzero(labels == k)
        X[idx] = X[idx] @ chols[k].T + centres[k]
    return np.ascontiguousarray(X)


def initial_params(X, K, cov, seed):
    """Uniform weights, K random rows as means, the data's (co)variance for every component."""
    rng = np.random.default_rng(seed + 1)
    d = X.shape[1]
    means = X[rng.choice(X.shape[0], K, replace=False)].copy()
    weights = np.full(K, 1.0 / K)
    sample = X[rng.choice(X.shape[0], min(X.shape[0], 100_000), replace=False)]
    if cov == "full":
        prec = np.linalg.inv(np.cov(sample.T) + REG_COVAR * np.eye(d))
        precisions = np.repeat(prec[None], K, axis=0)
    else:
        precisions = np.repeat(1.0 / (sample.var(axis=0) + REG_COVAR)[None], K, axis=0)
    return weights, means, precisions


def precisions_chol_from(precisions, cov):
    """Precision Cholesky factors exactly as scikit-learn derives them from precisions_init."""
    return _compute_precision_cholesky_from_precisions(precisions, cov, xp=np)


# ------------------------------------------------------------------------------------------
class PeakRSS:
    """Largest RSS above the value at entry, sampled in a background thread."""

    def __init__(self, interval=0.002):
        self.interval = interval
        self.proc = psutil.Process()

    def __enter__(self):
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def mib(self):
        return (self.peak - self.base) / 2**20


# ------------------------------------------------------------------------------------------
def sklearn_fit(X, K, cov, init, max_iter):
    weights, means, precisions = init
    gm = GaussianMixture(
        n_components=K,
        covariance_type=cov,
        tol=0.0,
        max_iter=max_iter,
        reg_covar=REG_COVAR,
        init_params="random_from_data",  # ignored but cheap (no k-means)
        weights_init=weights,
        means_init=means,
        precisions_init=precisions,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t = time.perf_counter()
        gm.fit(X)
        return time.perf_counter() - t, gm


CLOCK = time.perf_counter
PARALLEL = None


def bench_sklearn(X, K, cov, init, iters, threads):
    """Median time of scikit-learn's own E-step + M-step (what its fit loop runs per iteration)."""
    with threadpool_limits(limits=threads, user_api="blas"):
        _, gm = sklearn_fit(X, K, cov, init, 1)  # initialised from init, one iteration done
        times = []
        for _ in range(iters):
            t = CLOCK()
            log_prob_norm, log_resp = gm._e_step(X)
            gm._m_step(X, log_resp)
            times.append(CLOCK() - t)
        with PeakRSS() as mem:  # separate, untimed: the sampler thread would steal a core
            gm._m_step(X, gm._e_step(X)[1])
    return float(np.median(times)), float(log_prob_norm), mem.mib


def m_step(stats, shift, cov):
    """M-step from the sufficient statistics, regularised exactly as scikit-learn does."""
    nk0, sx, sxx, _, _ = stats
    K, d = sx.shape
    nk = nk0 + 10 * np.finfo(float).eps
    delta = sx / nk[:, None]
    means = shift + delta
    weights = nk / nk.sum()
    if cov == "full":
        covs = (
            sxx
            - sx[:, :, None] * delta[:, None, :]
            - delta[:, :, None] * sx[:, None, :]
            + nk0[:, None, None] * delta[:, :, None] * delta[:, None, :]
        ) / nk[:, None, None]
        covs[:, np.arange(d), np.arange(d)] += REG_COVAR
        pc = np.empty_like(covs)
        for k in range(K):
            pc[k] = solve_triangular(cholesky(covs[k], lower=True), np.eye(d), lower=True).T
    else:
        var = (sxx - 2 * sx * delta + nk0[:, None] * delta**2) / nk[:, None] + REG_COVAR
        pc = 1.0 / np.sqrt(var)
    return np.log(weights), means, pc


def bench_em_core(X, K, cov, init, iters):
    """Median time of complete_stats + M-step from the statistics."""
    weights, means, precisions = init
    params = (np.log(weights), means, precisions_chol_from(precisions, cov))
    n = X.shape[0]
    with threadpool_limits(limits=1, user_api="blas"):
        fk.complete_stats(X[:1000], *params, cov, params[1])  # load / compile the kernel
        times = []
        for _ in range(iters + 1):
            t = CLOCK()
            stats = fk.complete_stats(X, *params, cov, params[1], parallel=PARALLEL)
            params = m_step(stats, params[1], cov)
            times.append(CLOCK() - t)
        ll = stats[3] / n
        with PeakRSS() as mem:
            m_step(fk.complete_stats(X, *params, cov, params[1]), params[1], cov)
    return float(np.median(times[1:])), ll, mem.mib


# ------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="n=1e5 and one n=1e6 config only")
    ap.add_argument("--big", action="store_true", help="add n=4e6 (d=16, K=10 full; d=4, K=4 diag)")
    ap.add_argument("--iters", type=int, default=3, help="timed EM iterations (default 3)")
    ap.add_argument("--sklearn-threads", default="1,2", help="BLAS thread counts to try")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--serial",
        action="store_true",
        help="both on one thread (numba serial kernel, BLAS 1 thread), timed by the thread's CPU\n"
        "clock: a per-core comparison that other processes on the machine barely disturb",
    )
    ap.add_argument("--cov", nargs="+", help="only these covariance types (default all)")
    ap.add_argument("--n", type=int, nargs="+", help="only these row counts (default all)")
    args = ap.parse_args(argv)
    if args.serial:
        global CLOCK, PARALLEL
        CLOCK, PARALLEL = time.thread_time, False
        args.sklearn_threads = "1"

    grid = [(n, d, K, cov) for n in (100_000, 1_000_000) for cov in ("full", "diag")
            for d in (4, 16) for K in (4, 10)]  # fmt: skip
    if args.quick:
        grid = [g for g in grid if g[0] == 100_000] + [(1_000_000, 16, 10, "full")]
    if args.big:
        grid += [(4_000_000, 16, 10, "full"), (4_000_000, 4, 4, "diag")]
    if args.cov:
        grid = [g for g in grid if g[3] in args.cov]
    if args.n:
        grid = [g for g in grid if g[0] in args.n]
    sk_threads = [int(t) for t in args.sklearn_threads.split(",")]

    blas = [
        f"{i['internal_api']} {i['version']} ({i['num_threads']} thr)" for i in threadpool_info()
    ]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"numba {'yes' if fk.HAVE_NUMBA else 'NO'} "
          f"({fk.numba.get_num_threads() if fk.HAVE_NUMBA else 0} threads), "
          f"BLAS: {'; '.join(blas)}")  # fmt: skip
    print(f"# load average at start: {os.getloadavg()}; serial={args.serial}")
    cols = ("n", "d", "K", "cov", "sk s/it", "sk thr", "em s/it", "ratio",
            "sk ll", "em ll", "rel", "sk MiB", "em MiB")  # fmt: skip
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for n, d, K, cov in grid:
        X = make_data(n, d, K, args.seed)
        init = initial_params(X, K, cov, args.seed)
        sk = {t: bench_sklearn(X, K, cov, init, args.iters, t) for t in sk_threads}
        if len({round(v[1], 9) for v in sk.values()}) > 1:
            print(f"# warning: scikit-learn log-likelihoods differ across threads: {sk}")
        best_t = min(sk, key=lambda t: sk[t][0])
        sk_time, sk_ll, sk_mem = sk[best_t]
        em_time, em_ll, em_mem = bench_em_core(X, K, cov, init, args.iters)
        rel = abs(em_ll - sk_ll) / abs(sk_ll)
        row = (f"{n:.0e}", d, K, cov, f"{sk_time:.3f}",
               "/".join(f"{t}:{sk[t][0]:.2f}" for t in sk_threads), f"{em_time:.4f}",
               f"{sk_time / em_time:.1f}", f"{sk_ll:.10f}", f"{em_ll:.10f}", f"{rel:.1e}",
               f"{sk_mem:.0f}", f"{em_mem:.0f}")  # fmt: skip
        print("| " + " | ".join(str(c) for c in row) + " |", flush=True)
        del X
    print(f"# load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
