"""Cost of missing data: em_core's time per EM iteration on a 20% MCAR copy versus complete data.

Both fits start from the same parameters on the same generated data (as ``fit_vs_sklearn.py``,
whose generator and MCAR mask this reuses) and run a fixed number of iterations (tol=0); the time
per iteration is fit(max_iter=iters) minus fit(max_iter=1), divided by iters - 1. The complete and
the incomplete fit alternate ``--repeats`` times in one process and the minimum of each is kept,
so that load from other processes hits both alike. Two clocks:

- wall: the default numba threads (both cores), wall-clock time;
- cpu: one numba thread (``--threads 1``), process CPU time, which other processes' load barely
  affects (the number to trust on a busy machine).

    .venv/bin/python bench/missing_data.py --n 1000000 --d 4 16 --k 4 10 --cov full diag
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_vs_sklearn import initial_params, make_data

from em_core import GaussianMixture


def mcar_copy(X: np.ndarray, share: float) -> np.ndarray:
    """The MCAR copy of fit_vs_sklearn.py (seed 7; rows left empty keep their first cell)."""
    rng = np.random.default_rng(7)
    Xm = X.copy()
    Xm[rng.random(X.shape) < share] = np.nan
    empty = np.isnan(Xm).all(axis=1)
    Xm[empty, 0] = X[empty, 0]
    return Xm


def fit_seconds(make, X, iters, clock):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = clock()
        make(iters).fit(X)
        return clock() - t0


def run(n, d, k, cov, iters, repeats, share, clock):
    X = make_data(n, d, k)
    Xm = mcar_copy(X, share)
    w, m, p = initial_params(X, k, cov)
    common = dict(
        n_components=k, covariance_type=cov, tol=0.0, reg_covar=1e-6, eigen_floor=0.0,
        weights_init=w, means_init=m, precisions_init=p,
    )  # fmt: skip

    def make(it):
        return GaussianMixture(**common, max_iter=it)

    with warnings.catch_warnings():  # compile / load the kernels outside the timings
        warnings.simplefilter("ignore")
        make(2).fit(X[:5000])
        make(2).fit(Xm[:5000])
    # per iteration = (min fit(iters) − min fit(1)) / (iters − 1): set-up and the final E-step
    # cancel; minima of each fit length, not of differences (those are biased low under load)
    fit_seconds(make, X, 1, clock)  # first full-size fits pay one-off costs (pages, pools)
    fit_seconds(make, Xm, 1, clock)
    best = {}
    for _ in range(repeats):
        for name, data in (("complete", X), ("incomplete", Xm)):
            for it in (1, iters):
                t = fit_seconds(make, data, it, clock)
                best[name, it] = min(best.get((name, it), np.inf), t)
    return tuple(
        (best[name, iters] - best[name, 1]) / (iters - 1) for name in ("complete", "incomplete")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--d", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--k", type=int, nargs="+", default=[4, 10])
    ap.add_argument("--cov", nargs="+", default=["full", "diag"])
    ap.add_argument("--iters", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--missing", type=float, default=0.2, help="MCAR share of cells")
    ap.add_argument("--threads", type=int, default=None, help="numba threads (1: CPU clock)")
    args = ap.parse_args()
    if args.threads is not None:
        numba.set_num_threads(args.threads)
    serial = numba.get_num_threads() == 1
    clock = time.process_time if serial else time.perf_counter
    unit = "cpu s/it" if serial else "wall s/it"
    print(f"numba threads: {numba.get_num_threads()}, clock: {unit}, MCAR share {args.missing}")
    header = f"{'n':>9} {'d':>3} {'k':>3} {'cov':>9} | {'complete':>9} {'missing':>9} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for n in args.n:
        for d in args.d:
            for k in args.k:
                for cov in args.cov:
                    c, m = run(n, d, k, cov, args.iters, args.repeats, args.missing, clock)
                    print(
                        f"{n:>9} {d:>3} {k:>3} {cov:>9} | {c:>9.4f} {m:>9.4f} {m / c:>6.2f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
