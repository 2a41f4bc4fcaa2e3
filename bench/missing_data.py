"""Cost of missing data: em_core's time per EM iteration on a 20% MCAR copy versus complete data.

Both fits start from the same parameters on the same generated data (as ``fit_vs_sklearn.py``,
whose generator and MCAR mask this reuses) and run a fixed number of iterations (tol=0). The time
of one iteration (M-step, then the E-step over all rows) is read inside the fit, between
consecutive M-steps (``em_core.em.maximize`` is wrapped to stamp the clock), so the set-up of a
fit (initialisation, the pattern-sorted copy, first-touch page faults) stays out of it: taking
fit(iters) − fit(1) instead let that set-up, which varied by ±0.2 s between runs, move the
per-iteration figure by ±70 ms at 4 iterations. Per fit the median of its iterations is kept;
the complete and the incomplete fit alternate ``--repeats`` times in one process and the minimum
of those medians is reported, so that load from other processes hits both alike. Two clocks:

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

import em_core.em as em_module
from em_core import GaussianMixture
from em_core.exceptions import DegenerateFitError


def mcar_copy(X: np.ndarray, share: float) -> np.ndarray:
    """The MCAR copy of fit_vs_sklearn.py (seed 7; rows left empty keep their first cell)."""
    rng = np.random.default_rng(7)
    Xm = X.copy()
    Xm[rng.random(X.shape) < share] = np.nan
    empty = np.isnan(Xm).all(axis=1)
    Xm[empty, 0] = X[empty, 0]
    return Xm


def iteration_seconds(make, X, iters, clock):
    """Median time between consecutive M-steps of one fit (one full EM iteration each)."""
    stamps = []
    original = em_module.maximize

    def stamped(*args, **kwargs):
        stamps.append(clock())
        return original(*args, **kwargs)

    em_module.maximize = stamped
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make(iters).fit(X)
    finally:
        em_module.maximize = original
    return float(np.median(np.diff(stamps)))


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
    best = {}
    for _ in range(repeats):
        for name, data in (("complete", X), ("incomplete", Xm)):
            t = iteration_seconds(make, data, iters, clock)
            best[name] = min(best.get(name, np.inf), t)
    return best["complete"], best["incomplete"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--d", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--k", type=int, nargs="+", default=[4, 10])
    ap.add_argument("--cov", nargs="+", default=["full", "diag"])
    ap.add_argument("--iters", type=int, default=6)
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
                    try:
                        c, m = run(n, d, k, cov, args.iters, args.repeats, args.missing, clock)
                    except DegenerateFitError as exc:  # a property of the data, not a timing
                        print(f"{n:>9} {d:>3} {k:>3} {cov:>9} | degenerate fit, skipped: {exc}")
                        continue
                    print(
                        f"{n:>9} {d:>3} {k:>3} {cov:>9} | {c:>9.4f} {m:>9.4f} {m / c:>6.2f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
