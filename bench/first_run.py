"""First-run cost: a night and a 10-row score on a cold numba cache, a warm one, and after the
set-up's warm-up (em_pipeline.warmup), side by side in one run.

Each case runs the CLI in a fresh process with its own NUMBA_CACHE_DIR (empty = cold) and a fresh
home on the built-in sample data (2,000 customers, the CLI's defaults).

    python bench/first_run.py
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def timed(args: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def night_and_score(
    cache: Path, work: Path, score_cache: Path | None = None
) -> tuple[float, float]:
    """A first night, then a 10-row score (with ``score_cache``, default the night's cache)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "DAGSTER_HOME": str(work / "dagster")}
    home = work / "home"
    night = timed(["-m", "em_pipeline", "--home", str(home)], env)
    (part,) = (home / "runs").iterdir()
    pd.read_parquet(part / "raw_customers.parquet").head(10).to_csv(work / "ten.csv")
    fresh = {**env, "NUMBA_CACHE_DIR": str(score_cache or cache)}
    score = timed(
        ["-m", "em_pipeline", "score", "--home", str(home), "--input", str(work / "ten.csv"),
         "--output", str(work / "scored.parquet")],
        fresh,
    )  # fmt: skip
    return night, score


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cold_cache, setup_cache = tmp / "cache-cold", tmp / "cache-setup"
        cold = night_and_score(cold_cache, tmp / "cold", score_cache=tmp / "cache-score")
        warm = night_and_score(cold_cache, tmp / "warm")  # the cache the cold run filled
        env = {**os.environ, "NUMBA_CACHE_DIR": str(setup_cache)}
        warmup = timed(["-m", "em_pipeline.warmup"], env)
        after = night_and_score(setup_cache, tmp / "after")
    print(f"{'case':<32} {'night (s)':>10} {'score 10 rows (s)':>18}")
    print(f"{'cold cache (no warm-up)':<32} {cold[0]:10.1f} {cold[1]:18.1f}")
    print(f"{'warm cache':<32} {warm[0]:10.1f} {warm[1]:18.1f}")
    print(f"{'after set-up warm-up':<32} {after[0]:10.1f} {after[1]:18.1f}")
    print(
        f"warm-up itself (in set-up): {warmup:.1f} s; first night / warm night = "
        f"{after[0] / warm[0]:.2f} (cold: {cold[0] / warm[0]:.2f})"
    )


if __name__ == "__main__":
    main()
