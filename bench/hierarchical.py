"""The hierarchical start's agglomeration: compiled merge loop, its numpy reference and R's
mclust ``hc`` (if ``Rscript`` with mclust is installed), on the same rows, in one run.

Data: the order sample's features (``screening.sample_matrix``, missing cells at the column
means as the start fills them) and Gaussian rows, m rows each (the start agglomerates at most
``hc_max_samples`` = 2000 rows). Each timing is the best of
``--repeats``; the partitions at K = 1..16 are compared with mclust's where R ran.

    .venv/bin/python bench/hierarchical.py --rows 500 1000 2000
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from screening import sample_matrix

from em_core import hierarchical, reference

R_SCRIPT = """
suppressPackageStartupMessages(library(mclust))
X <- as.matrix(read.csv(commandArgs(TRUE)[1]))
reps <- as.integer(commandArgs(TRUE)[2])
best <- Inf
for (i in seq_len(reps)) {
  best <- min(best, system.time(tree <- hc(X, "VVV", use = "SVD"))[["elapsed"]])
}
cat(best, "\\n")
write.table(hclass(tree, 1:16), commandArgs(TRUE)[3], sep = ",",
            row.names = FALSE, col.names = FALSE)
"""


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def reference_agglomeration(X: np.ndarray) -> np.ndarray:
    Z = hierarchical.transform_for_hc(X, "SVD")
    uniq, counts = np.unique(Z, axis=0, return_counts=True)
    return reference.merge_sequence(uniq, counts, "VVV", hierarchical._alpha(uniq, counts))


def mclust_hc(X: np.ndarray, repeats: int, folder: Path) -> tuple[float, np.ndarray] | None:
    if shutil.which("Rscript") is None:
        return None
    data, labels, script = folder / "x.csv", folder / "labels.csv", folder / "hc.R"
    np.savetxt(data, X, delimiter=",", header=",".join(f"x{i}" for i in range(X.shape[1])),
               comments="", fmt="%.17g")  # fmt: skip
    script.write_text(R_SCRIPT)
    out = subprocess.run(["Rscript", str(script), str(data), str(repeats), str(labels)],
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode != 0:
        return None
    return float(out.stdout.split()[0]), np.loadtxt(labels, delimiter=",", dtype=int)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return len(set(zip(a.tolist(), b.tolist(), strict=True))) == len(set(a.tolist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    orders = sample_matrix(max(args.rows))
    orders = np.where(np.isnan(orders), np.nanmean(orders, axis=0), orders)  # as the start does
    datasets = {
        "orders": orders,
        "gaussian": rng.standard_normal((max(args.rows), 6)),
    }
    hierarchical.agglomerate(datasets["gaussian"][:50])  # compile or load the kernel
    print(f"{'data':<9}{'rows':>6}{'compiled s':>12}{'numpy s':>10}{'mclust s':>10}"
          f"{'numpy/compiled':>16}{'mclust/compiled':>17}  same partitions as mclust")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        for name, data in datasets.items():
            for m in args.rows:
                X = data[:m]
                compiled = best_of(args.repeats, lambda X=X: hierarchical.agglomerate(X))
                numpy_s = best_of(args.repeats, lambda X=X: reference_agglomeration(X))
                peer = mclust_hc(X, args.repeats, Path(folder))
                ours = hierarchical.agglomerate(X)
                if peer is None:
                    r_s, ratio, same = "-", "-", "(no R)"
                else:
                    same = all(
                        same_partition(ours.labels(k), peer[1][:, k - 1]) for k in range(1, 17)
                    )
                    r_s, ratio = f"{peer[0]:.3f}", f"{peer[0] / compiled:.2f}"
                print(f"{name:<9}{m:>6}{compiled:>12.3f}{numpy_s:>10.3f}{r_s:>10}"
                      f"{numpy_s / compiled:>16.2f}{ratio:>17}  {same}")  # fmt: skip


if __name__ == "__main__":
    main()
