"""SQUAREM-accelerated EM against plain EM, side by side in one run: the sweep's wall time, the
E-steps it spends, and cell by cell the log-likelihood each candidate reaches.

Two workloads:

- the nightly pipeline's sweep (K = 1..8 × full, diag, spherical, tied, n_init = 3, mclust's
  prior) on the pipeline's order-data sample (``bench/screening.py``'s matrix) at ``--n`` rows;
- the 14-model sweep (G = 1..9, ``n_init=1``, no prior) on the committed mclust datasets named
  by ``--datasets``.

    .venv/bin/python bench/acceleration.py --n 100000 --datasets wine quakes gvhd_pos
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "core"))

from mclust_reference import load_dataset  # noqa: E402
from screening import compare_cells, sample_matrix  # noqa: E402

from em_core import configure_threads, select_model  # noqa: E402

ORDER_SWEEP = dict(
    n_components=range(1, 9), covariance_types=("full", "diag", "spherical", "tied"), n_init=3,
    prior="default", random_state=0,
)  # fmt: skip
SMALL_SWEEP = dict(
    n_components=range(1, 10), covariance_types="all", n_init=1, prior=None, random_state=0
)


def sweep(X, acceleration, options) -> dict:
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = select_model(X, acceleration=acceleration, **options)
    seconds = time.perf_counter() - started
    cells, esteps = {}, 0
    for row in result.table:
        key = (row["n_components"], row["covariance_type"])
        cells[key] = row["log_likelihood"]
        gm = result.models.get(key)
        if gm is not None:
            esteps += sum(r["n_esteps"] for r in gm.restarts_)
    chosen = (result.best.n_components, result.best.covariance_type)
    return {"seconds": seconds, "cells": cells, "esteps": esteps, "chosen": chosen}


def compare(label: str, X, options) -> None:
    plain = sweep(X, None, options)
    fast = sweep(X, "squarem", options)
    higher, equal, lower = compare_cells(plain["cells"], fast["cells"])
    time_ratio = fast["seconds"] / plain["seconds"]
    estep_ratio = fast["esteps"] / max(plain["esteps"], 1)
    print(
        f"{label:<22} plain {plain['seconds']:7.1f} s {plain['esteps']:7d} E-steps | SQUAREM "
        f"{fast['seconds']:7.1f} s {fast['esteps']:7d} E-steps | time {time_ratio:.2f}x"
        f" E-steps {estep_ratio:.2f}x | cells {higher} higher, "
        f"{equal} equal, {lower} lower | chosen {plain['chosen']} / {fast['chosen']}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="*", default=[100_000])
    parser.add_argument("--datasets", nargs="*", default=["wine", "quakes", "gvhd_pos"])
    args = parser.parse_args()
    configure_threads()
    sweep(sample_matrix(2000), None, ORDER_SWEEP)  # compile outside the timings
    for name in args.datasets:
        compare(f"{name} (14 models)", load_dataset(name), SMALL_SWEEP)
    for n in args.n:
        compare(f"orders n={n}", sample_matrix(n), ORDER_SWEEP)


if __name__ == "__main__":
    main()
