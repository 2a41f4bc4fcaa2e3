"""Model-selection sweep wall time: K = 1..8 × 4 covariance types × restarts on 10^6 customers.

Runs em_core.select_model three times on the same generated data (d = 6, a few latent segments,
optional MCAR cells): with the numba kernels on one thread (serial), on all threads (parallel
inside the kernels), and with ``n_jobs`` worker processes fitting candidates side by side (one
kernel thread each; "processes"). Reports the wall times and speed-ups versus serial, and prints
progress per candidate. All runs must choose the same model.

    .venv/bin/python bench/sweep.py                 # n = 10^6, d = 6
    .venv/bin/python bench/sweep.py --n 200000      # quicker
    .venv/bin/python bench/sweep.py --n-jobs 4      # processes run with 4 workers
"""

import argparse
import time

import numba
import numpy as np

from em_core import select_model


def make_customers(n: int, d: int, k: int, missing: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(k, d))
    scales = rng.uniform(0.5, 1.5, size=(k, d))
    labels = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, 4.0)))
    X = means[labels] + scales[labels] * rng.normal(size=(n, d))
    if missing:
        mask = rng.random(X.shape) < missing
        mask[mask.all(axis=1), 0] = False
        X[mask] = np.nan
    return X


def sweep(X, threads: int, args, n_jobs: int = 1) -> tuple[float, object]:
    numba.set_num_threads(threads)  # with n_jobs > 1 the workers set their own (1 each)
    label = f"{threads} thr" if n_jobs == 1 else f"{n_jobs} proc"
    started = time.perf_counter()

    def progress(row):
        elapsed = time.perf_counter() - started
        bic = "failed" if row["bic"] is None else f"{row['bic']:.0f}"
        print(
            f"  [{label}] {row['index'] + 1:>2}/{row['total']} K={row['n_components']} "
            f"{row['covariance_type']:<9} bic={bic} "
            f"iter={row['n_iter']} {row['seconds']:.1f}s (total {elapsed:.0f}s)",
            flush=True,
        )

    res = select_model(
        X, range(1, args.k_max + 1), ("full", "diag", "spherical", "tied"), n_init=args.n_init,
        random_state=0, max_iter=args.max_iter, tol=args.tol, callback=progress, n_jobs=n_jobs,
    )  # fmt: skip
    return time.perf_counter() - started, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=6)
    ap.add_argument("--true-k", type=int, default=4)
    ap.add_argument("--k-max", type=int, default=8)
    ap.add_argument("--n-init", type=int, default=2)
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--missing", type=float, default=0.0)
    ap.add_argument("--n-jobs", type=int, default=2, help="worker processes of the third run")
    args = ap.parse_args()
    X = make_customers(args.n, args.d, args.true_k, args.missing)
    all_threads = numba.config.NUMBA_NUM_THREADS
    print(
        f"n={args.n} d={args.d} K=1..{args.k_max} × 4 types × {args.n_init} restarts, "
        f"max_iter={args.max_iter}, tol={args.tol}, missing={args.missing}"
    )
    serial_s, serial = sweep(X, 1, args)
    parallel_s, parallel = sweep(X, all_threads, args)
    processes_s, processes = sweep(X, 1, args, n_jobs=args.n_jobs)
    best = parallel.table[parallel.best_index]
    assert serial.best_index == parallel.best_index, "serial and parallel chose different models"
    assert serial.best_index == processes.best_index, "serial and processes chose different models"
    print(f"\nchosen: K={best['n_components']} {best['covariance_type']}")
    runs = [
        ("serial (1 thread)", serial_s),
        (f"parallel ({all_threads} threads)", parallel_s),
        (f"processes (n_jobs={args.n_jobs})", processes_s),
    ]
    for name, seconds in runs:
        print(f"{name + ':':<24}{seconds:8.1f} s   speed-up {serial_s / seconds:5.2f}×")


if __name__ == "__main__":
    main()
