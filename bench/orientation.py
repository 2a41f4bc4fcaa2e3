"""The 14-model sweep on small data: the common-orientation M-step (EVE, VVE) in numpy vs
compiled, side by side in one run, with the largest BIC difference between the two.

    python bench/orientation.py --datasets wine swiss lifecyclesavings quakes
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "core"))

from mclust_reference import load_dataset  # noqa: E402

from em_core import models, select_model  # noqa: E402


def sweep(X: np.ndarray, compiled: bool) -> tuple[float, dict]:
    models.HAVE_NUMBA = compiled
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = select_model(X, range(1, 10), "all", n_init=1, random_state=0)
    bic = {
        (r["n_components"], r["covariance_type"]): np.nan if r["bic"] is None else float(r["bic"])
        for r in result.table
    }
    return time.perf_counter() - start, bic


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["wine", "swiss", "lifecyclesavings"])
    args = p.parse_args()
    compiled_available = models.HAVE_NUMBA
    sweep(load_dataset("trees"), compiled_available)  # compile once, outside the timings
    print(f"{'dataset':<18} {'n x d':>9} {'numpy (s)':>10} {'compiled (s)':>13} {'ratio':>6} "
          f"{'max |dBIC|':>11}")  # fmt: skip
    for name in args.datasets:
        X = load_dataset(name)
        slow, bic_slow = sweep(X, False)
        fast, bic_fast = sweep(X, compiled_available)
        diffs = [abs(bic_slow[c] - bic_fast[c]) for c in bic_slow
                 if np.isfinite(bic_slow[c]) and np.isfinite(bic_fast.get(c, np.nan))]  # fmt: skip
        print(f"{name:<18} {f'{X.shape[0]}x{X.shape[1]}':>9} {slow:10.2f} {fast:13.2f} "
              f"{slow / fast:6.2f} {max(diffs):11.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
