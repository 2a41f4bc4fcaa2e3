"""An E-step kernel of the working tree against the same kernel at a git revision, side by
side in one process: the refactoring check "bitwise the same, no slower".

The kernel module (``--kernel incomplete``: ``em_core/_fast_incomplete.py``, on 20 % MCAR data;
``complete``: ``em_core/_fast_kernels.py``, on complete data) of ``--against`` (default HEAD) is
read from git and loaded as a sibling module of em_core (its relative imports resolve to today's
helpers, so only the kernel module differs). Both are timed alternately on the same data and
parameters (``fit_vs_sklearn``'s generator), ``--repeats`` times, and the minimum of each is
kept; the serial variant is timed in process CPU time (other processes' load barely moves it),
the parallel one in wall time. Every output is compared bitwise. With ``--kernel complete`` the
side called second pays ≈0.2 ms more per call in numba's dispatch of its ``_Centre`` argument (a
second class of that name in one process): compare at n = 10⁶, where that is under 1 %.

    .venv/bin/python bench/kernel_revisions.py --against HEAD~1 --n 100000 --d 6 16 --k 6
    .venv/bin/python bench/kernel_revisions.py --kernel complete --cov full tied diag spherical
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Both sides compiled here, into an empty cache: numba's cached code of the diag/spherical
# missing-data kernel differs from a fresh compilation's by an ulp in the moments (NOTEBOOK.md,
# 2026-12-08), so a cached side against a fresh one is not a bitwise comparison.
os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="kernel-revisions-"))

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_vs_sklearn import make_data  # noqa: E402

from em_core import _fast_incomplete, _fast_kernels  # noqa: E402

#: per ``--kernel``: (module today, its file, the entry point, fraction of cells missing)
KERNELS = {
    "incomplete": (_fast_incomplete, "em_core/_fast_incomplete.py", "incomplete_stats", 0.2),
    "complete": (_fast_kernels, "em_core/_fast_kernels.py", "complete_stats", 0.0),
}


def load_revision(rev: str, module: str, folder: Path):
    """The kernel ``module`` (a path) as it was at ``rev``, importable beside today's em_core."""
    source = subprocess.run(
        ["git", "show", f"{rev}:{module}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    stem = Path(module).stem
    path = folder / f"{stem}_at_rev.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"em_core.{stem}_at_rev", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _params(X: np.ndarray, k: int, cov: str, rng: np.random.Generator):
    """Equal weights, k complete rows as means, precision Cholesky factors (upper, as em_core
    keeps them) of the pooled covariance scaled per component (diag: its diagonal's; spherical:
    the mean variance's)."""
    complete = X[~np.isnan(X).any(axis=1)]
    means = complete[rng.choice(len(complete), k, replace=False)]
    cov_all = np.cov(complete.T)
    scale = rng.uniform(0.8, 1.25, size=k)
    if cov == "diag":
        return np.full(k, -np.log(k)), means, scale[:, None] / np.sqrt(np.diag(cov_all))
    if cov == "spherical":
        return np.full(k, -np.log(k)), means, scale / np.sqrt(np.diag(cov_all).mean())
    chol = np.linalg.cholesky(cov_all)
    upper = np.linalg.inv(chol).T  # Λ = P Pᵀ with P upper-triangular
    pc = np.stack([upper * s for s in scale]) if cov == "full" else upper
    return np.full(k, -np.log(k)), means, pc


def _timed(fn, clock) -> tuple[float, tuple]:
    start = clock()
    out = fn()
    return clock() - start, out


def compare(kernel: str, old, n: int, d: int, k: int, cov: str, repeats: int) -> dict:
    current, _, entry, missing = KERNELS[kernel]
    X = make_data(n, d, k, seed=0)
    rng = np.random.default_rng(1)
    X[rng.random(X.shape) < missing] = np.nan
    lw, means, pc = _params(X, k, cov, rng)
    shift = means + 0.05
    row = {"cov": cov, "n": n, "d": d, "k": k}
    for variant, parallel, clock in (
        ("serial", False, time.process_time), ("parallel", True, time.perf_counter)
    ):  # fmt: skip
        times = {"old": [], "new": []}
        outs = {}
        for _ in range(repeats):
            for name, mod in (("old", old), ("new", current)):
                t, outs[name] = _timed(
                    lambda mod=mod, parallel=parallel: getattr(mod, entry)(
                        X, lw, means, pc, cov, shift, parallel=parallel
                    ),
                    clock,
                )
                times[name].append(t)
        same = all(np.array_equal(a, b) for a, b in zip(outs["old"], outs["new"], strict=True))
        row[variant] = (min(times["old"]), min(times["new"]), same)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--against", default="HEAD")
    p.add_argument("--kernel", choices=sorted(KERNELS), default="incomplete")
    p.add_argument("--n", type=int, nargs="+", default=[100_000])
    p.add_argument("--d", type=int, nargs="+", default=[6, 16])
    p.add_argument("--k", type=int, nargs="+", default=[6])
    p.add_argument("--cov", nargs="+", default=["full", "tied"])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _, module, entry, missing = KERNELS[args.kernel]
        old = load_revision(args.against, module, Path(tmp))
        print(f"working tree vs {args.against}: {entry}, {missing:.0%} MCAR, min of {args.repeats}")
        print(
            f"{'cov':<10}{'n':>9}{'d':>4}{'K':>4}  {'serial old/new (CPU s)':>24} {'ratio':>6}"
            f"  {'parallel old/new (s)':>22} {'ratio':>6}  bitwise"
        )
        for cov in args.cov:
            for n in args.n:
                for d in args.d:
                    for k in args.k:
                        # compile both and warm the caches
                        compare(args.kernel, old, n, d, k, cov, 1)
                        r = compare(args.kernel, old, n, d, k, cov, args.repeats)
                        (so, sn, s_same), (po, pn, p_same) = r["serial"], r["parallel"]
                        print(
                            f"{cov:<10}{n:>9}{d:>4}{k:>4}  {so:>11.3f} / {sn:<10.3f}"
                            f" {sn / so:>6.2f}  {po:>10.3f} / {pn:<9.3f} {pn / po:>6.2f}"
                            f"  {s_same and p_same}"
                        )


if __name__ == "__main__":
    main()
