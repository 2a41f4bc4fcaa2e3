"""em_core's default sweep on the committed mclust / scikit-learn reference harness.

For each dataset of tests/core/reference, with and without mclust's default prior, runs
``select_model(X, range(1, 10), "all")`` with its defaults and reports the cells that reach the
best-known log-likelihood (mclust 6.0 and scikit-learn n_init=10) within 1e-3·n, the degenerate
cells, the BIC choice against the best-known likelihoods' choice, and the sweep's time.

    .venv/bin/python bench/mclust_harness.py [--datasets quakes wine] [--json out]
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))

from mclust_reference import DATASETS, compare_sweep, load_dataset

from em_core import select_model


def sweep(name: str, prior: str | None, **kwargs) -> tuple[dict, float]:
    X = load_dataset(name)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = select_model(X, range(1, 10), "all", prior=prior, **kwargs)
    seconds = time.perf_counter() - started
    return compare_sweep(name, prior is not None, result.table), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--json", type=Path, help="write every result here")
    args = parser.parse_args()
    results = []
    print(f"{'dataset':18s} {'prior':8s} reached/cells below deg err choice_ok seconds")
    for name in args.datasets:
        for prior in (None, "default"):
            out, seconds = sweep(name, prior)
            out.update(dataset=name, prior=prior or "none", seconds=seconds)
            results.append(out)
            same = out["choice"] == out["best_choice"]
            print(
                f"{name:18s} {prior or 'none':8s} {out['reached']:4d}/{out['cells']:<4d} "
                f"{len(out['below']):5d} {len(out['degenerate']):3d} {len(out['failed']):3d} "
                f"{same!s:5s} {seconds:7.1f}  {out['below'][:4]}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
