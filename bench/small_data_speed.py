"""The 14-model sweep (G = 1..9) on small data: em_core against R's ``mclustBIC``, side by side.

For each dataset of tests/core/reference, times em_core's ``select_model(X, range(1, 10), "all")``
with ``n_init=1`` and ``n_init=10`` (each the best of ``--repeats`` runs, after one warm-up that
compiles the kernels), and, when ``Rscript`` with mclust is installed, ``mclustBIC`` on the same
grid in the same run (timed inside R, so R's start-up is not counted). Prints the ratios.

    .venv/bin/python bench/small_data_speed.py [--datasets swiss wine] [--repeats 3]
"""

import argparse
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "core"))

from mclust_reference import DATASETS, load_dataset  # noqa: E402

from em_core import select_model  # noqa: E402

DATA = ROOT / "tests" / "core" / "reference" / "data"
R_TIMING = """
suppressPackageStartupMessages(library(mclust))
X <- as.matrix(read.csv(commandArgs(TRUE)[1]))
reps <- as.integer(commandArgs(TRUE)[2])
invisible(mclustBIC(X[1:20, 1:2], G = 1:2, verbose = FALSE))
best <- Inf
for (r in seq_len(reps)) {
  t0 <- proc.time()[["elapsed"]]
  invisible(mclustBIC(X, G = 1:9, verbose = FALSE))
  best <- min(best, proc.time()[["elapsed"]] - t0)
}
cat(best, "\\n")
"""


def em_core_seconds(name: str, n_init: int, repeats: int) -> float:
    X = load_dataset(name)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            select_model(X, range(1, 10), "all", n_init=n_init, random_state=0)
        best = min(best, time.perf_counter() - started)
    return best


def mclust_seconds(name: str, repeats: int) -> float | None:
    """Best of ``repeats`` ``mclustBIC`` sweeps (all 14 models, G = 1..9); None without R."""
    if shutil.which("Rscript") is None:
        return None
    done = subprocess.run(
        ["Rscript", "-e", R_TIMING, str(DATA / f"{name}.csv"), str(repeats)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        print(f"  (mclust failed on {name}: {done.stderr.strip().splitlines()[-1:]})")
        return None
    return float(done.stdout.split()[0])


def _ratio(seconds: float | None, reference: float | None) -> str:
    return "-" if seconds is None or reference is None else f"{seconds / reference:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-n-init-10", action="store_true")
    args = parser.parse_args()
    em_core_seconds("trees", 1, 1)  # compile outside the timings
    print(f"{'dataset':<18} {'n x d':>9} {'mclust (s)':>10} {'n_init=1':>9} {'ratio':>6} "
          f"{'n_init=10':>10} {'ratio':>6}")  # fmt: skip
    for name in args.datasets:
        X = load_dataset(name)
        ref = mclust_seconds(name, args.repeats)
        one = em_core_seconds(name, 1, args.repeats)
        ten = None if args.skip_n_init_10 else em_core_seconds(name, 10, 1)

        print(
            f"{name:<18} {f'{X.shape[0]}x{X.shape[1]}':>9} "
            f"{'-' if ref is None else f'{ref:.2f}':>10} {one:9.2f} {_ratio(one, ref):>6} "
            f"{'-' if ten is None else f'{ten:.2f}':>10} {_ratio(ten, ref):>6}",
            flush=True,
        )


if __name__ == "__main__":
    main()
