"""Compile em_core's kernels once, at set-up, by running a real night and a real score.

``python -m em_pipeline.warmup`` runs the nightly job on the built-in sample data in a temporary
home (every covariance type, K up to 3), then scores 10 of its customers through the registered
pyfunc model: every kernel the pipeline uses is compiled with the exact types it will see and
cached by numba on disk, so the first real night runs warm. ``scripts/setup.sh`` calls it after
each install.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

#: the CLI flags of the warm-up night: two restarts, so that a k-means++ start (its compiled
#: Lloyd iterations) runs beside the hierarchical one
SHORT_SWEEP = ("--k-max", "3", "--k-limit", "3", "--n-init", "2")


def warm_up() -> float:
    """Run one sample night and one score in a throw-away home; returns the seconds taken."""
    from em_pipeline.__main__ import main
    from em_pipeline.lib.artifacts import SNAPSHOT

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="em-segments-warmup-") as tmp:
        home = Path(tmp) / "home"
        os.environ["DAGSTER_HOME"] = str(home / "dagster")
        quiet = io.StringIO()
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            # a short sweep compiles the same kernels: numba compiles per argument type, and
            # K = 1..3 of every covariance type meets every type the default sweep does
            code = main(["--home", str(home), *SHORT_SWEEP])  # today: a valid partition
            if code == 0:
                (part,) = (home / "runs").iterdir()
                pd.read_parquet(part / SNAPSHOT).head(10).to_csv(Path(tmp) / "ten.csv")
                code = main(
                    ["score", "--home", str(home), "--input", str(Path(tmp) / "ten.csv"),
                     "--output", str(Path(tmp) / "scored.parquet")]
                )  # fmt: skip
        if code != 0:
            sys.stderr.write(quiet.getvalue())
            raise RuntimeError(f"the warm-up run failed (exit code {code}); its output is above")
    _warm_large_data_kernels()
    return time.perf_counter() - start


def _warm_large_data_kernels() -> None:
    """Kernels the 2,000-row sample night is too small to call: Lloyd's iterations in parallel
    (from two chunks of rows), with the argument types ``em_core.init.lloyd`` passes."""
    import numpy as np

    from em_core._kmeans_kernels import _CHUNK_ROWS
    from em_core.init import lloyd

    X = np.random.default_rng(0).normal(size=(2 * _CHUNK_ROWS, 2))
    lloyd(X, X[:2].copy(), 2)


if __name__ == "__main__":
    print("compiling em_core's kernels (once per install) ...", flush=True)
    print(f"kernels compiled and cached in {warm_up():.0f} s")
