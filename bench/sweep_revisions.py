"""The nightly sweep of the working tree against the same sweep at a git revision, in one run.

The pipeline's defaults (K = 1..8 × full, diag, spherical, tied, n_init = 3, mclust's prior,
SQUAREM, and the chosen type extended up to ``--k-limit`` while BIC picks the top) on the order
sample, once with today's em_core and once with em_core as it was at ``--against`` (checked out
into a cached worktree under the temp folder). Each side runs in its own process, warmed first on
a small slice (kernels compiled and cached), then timed; the two alternate ``--repeats`` times
and the fastest of each is kept. Reports both times, their ratio and, cell by cell, how many
candidates end higher / equal / lower (1e-6 relative) today, and the chosen models.

    .venv/bin/python bench/sweep_revisions.py --against HEAD~1 --n 20000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from screening import compare_cells, sample_matrix  # noqa: E402

# Runs inside the tree under test: argv = tree, data.npy, k_limit, n_jobs; prints JSON.
WORKER = """
import json, sys, time, warnings
sys.path.insert(0, sys.argv[1])
import numpy as np
from em_core import configure_threads, select_model
configure_threads()
X = np.load(sys.argv[2])
k_limit, n_jobs = int(sys.argv[3]), int(sys.argv[4])

def sweep(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return select_model(X, range(1, 9), ("full", "diag", "spherical", "tied"), n_init=3,
                            random_state=0, prior="default", acceleration="squarem",
                            k_limit=k_limit, n_jobs=n_jobs)

if __name__ == "__main__":
    sweep(X[:1500])
    started = time.perf_counter()
    result = sweep(X)
    seconds = time.perf_counter() - started
    cells = [[r["n_components"], r["covariance_type"], r["log_likelihood"]] for r in result.table]
    chosen = [result.best.n_components, result.best.covariance_type]
    print(json.dumps({"seconds": seconds, "cells": cells, "chosen": chosen}))
"""


def revision_tree(rev: str) -> Path:
    """A detached worktree at ``rev``, kept under the temp folder so its numba cache is reused."""
    sha = subprocess.run(
        ["git", "rev-parse", rev], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    tree = Path(tempfile.gettempdir()) / f"em-segments-rev-{sha[:12]}"
    if not tree.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), sha],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
    return tree


def run_side(tree: Path, data: Path, k_limit: int, n_jobs: int) -> dict:
    script = data.parent / "sweep_worker.py"
    script.write_text(WORKER)
    out = subprocess.run(
        [sys.executable, str(script), str(tree), str(data), str(k_limit), str(n_jobs)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cells"] = {(k, t): ll for k, t, ll in result["cells"]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--k-limit", type=int, default=16)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    old_tree = revision_tree(args.against)
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "orders.npy"
        np.save(data, sample_matrix(args.n))
        today, then = [], []
        for _ in range(args.repeats):
            then.append(run_side(old_tree, data, args.k_limit, args.n_jobs))
            today.append(run_side(ROOT, data, args.k_limit, args.n_jobs))
    old = min(then, key=lambda r: r["seconds"])
    new = min(today, key=lambda r: r["seconds"])
    higher, equal, lower = compare_cells(old["cells"], new["cells"])
    print(f"n = {args.n}, k_limit = {args.k_limit}, n_jobs = {args.n_jobs}: "
          f"{args.against} {old['seconds']:.1f} s, today {new['seconds']:.1f} s, "
          f"ratio {new['seconds'] / old['seconds']:.2f}")  # fmt: skip
    print(f"candidates today: {higher} higher, {equal} equal, {lower} lower "
          f"(of {len(old['cells'])} then, {len(new['cells'])} today)")  # fmt: skip
    print(f"chosen: {args.against} {tuple(old['chosen'])}, today {tuple(new['chosen'])}")


if __name__ == "__main__":
    main()
