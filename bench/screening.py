"""emEM start screening (``n_screen``) against plain restarts: cost and reached optimum, one run.

The nightly pipeline's sweep (K = 1..8 × full, diag, spherical, tied, n_init = 3, mclust's
prior) on the pipeline's order-data sample, and the same with ``n_screen`` short runs per
k-means++ restart. Reports both wall times, their ratio and, cell by cell, how many candidates
end higher / equal / lower (1e-6 relative) with screening, and the chosen models.

    .venv/bin/python bench/screening.py --n 100000 --n-screen 5
"""

import argparse
import time
import warnings

import numpy as np

from em_core import configure_threads, select_model
from em_pipeline.lib.sample_data import generate_customers
from em_pipeline.lib.schema import DEFAULT_FEATURES


def sample_matrix(n: int, seed: int = 0) -> np.ndarray:
    """The order sample's features, each as sign(x)·log1p|x| (close to the pipeline's default
    transforms, not identical: no log of the visit rate, no standardisation, no dequantisation)."""
    frame, _ = generate_customers(n, seed=seed, generator="orders")
    columns = []
    for feature in DEFAULT_FEATURES:
        x = frame[feature.name].to_numpy(dtype=float)
        columns.append(np.sign(x) * np.log1p(np.abs(x)))
    return np.column_stack(columns)


def sweep(X: np.ndarray, n_screen: int) -> tuple[float, dict]:
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = select_model(
            X, range(1, 9), ("full", "diag", "spherical", "tied"), n_init=3, random_state=0,
            prior="default", n_screen=n_screen,
        )  # fmt: skip
    cells = {(r["n_components"], r["covariance_type"]): r["log_likelihood"] for r in result.table}
    chosen = (result.best.n_components, result.best.covariance_type)
    return time.perf_counter() - started, {"cells": cells, "chosen": chosen}


def compare_cells(plain: dict, other: dict, rel: float = 1e-6) -> tuple[int, int, int]:
    """How many candidates end (higher, equal, lower) in ``other`` than in ``plain``, at ``rel``
    relative tolerance; cells without a fit on either side are left out."""
    higher = equal = lower = 0
    for key, ll in plain.items():
        theirs = other.get(key)
        if ll is None or theirs is None:
            continue
        tol = rel * abs(ll)
        higher += theirs > ll + tol
        lower += theirs < ll - tol
        equal += abs(theirs - ll) <= tol
    return higher, equal, lower


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--n-screen", type=int, default=5)
    args = parser.parse_args()
    configure_threads()
    X = sample_matrix(args.n)
    sweep(X[:2000], 1)  # compile and warm the kernels outside the timings
    plain_s, plain = sweep(X, 1)
    screened_s, screened = sweep(X, args.n_screen)
    higher, equal, lower = compare_cells(plain["cells"], screened["cells"])
    print(f"n = {args.n}: plain {plain_s:.1f} s, n_screen={args.n_screen} {screened_s:.1f} s, "
          f"ratio {screened_s / plain_s:.2f}")  # fmt: skip
    print(f"candidates with screening: {higher} higher, {equal} equal, {lower} lower")
    print(f"chosen: plain {plain['chosen']}, screened {screened['chosen']}")


if __name__ == "__main__":
    main()
