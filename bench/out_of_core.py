"""Out-of-core fits: peak memory and time per EM iteration streaming from Parquet, by n.

Generates Parquet datasets at run time (one row group at a time, never the whole dataset in
memory), then fits em_core's GaussianMixture on each in a *fresh subprocess per measurement*, so
peak resident memory (getrusage ru_maxrss) of one fit never mixes with another's:

- ``parquet``: ``fit_source(ParquetSource(path))`` — streamed record batches (pre_buffer=False);
- ``memory``: the file read into one float64 array, then ``fit(X)`` — for comparison;
- ``dask`` (with ``--dask``): ``DaskSource.from_parquet`` on a 2-worker LocalCluster (the client
  process's peak only; the data live in the workers).

Every fit uses the same seed and runs ``--iters`` EM iterations (tol=0), so the final
log-likelihoods must agree (the relative difference to the in-memory fit is printed). Time per
iteration is the median duration of the EM passes over the data (each one E-step map-reduce),
measured inside the fit, as wall clock ("s/iter") and as this process's CPU time over all its
threads ("cpu s/iter", which other processes' load barely affects; not shown for dask, whose work
runs in the workers); "fit s" is the whole fit including moments, k-means++ on a 100k-row sample
and the hard-assignment pass.

    .venv/bin/python bench/out_of_core.py                      # 10^6 and 10^7 rows, d=6, K=4
    .venv/bin/python bench/out_of_core.py --sizes 200000 --dask
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- data
def write_dataset(
    path: Path, n: int, d: int, k: int, row_group: int, missing: float, seed: int = 0
) -> None:
    """A K-component Gaussian mixture written row group by row group (seeded per group)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(k, d))
    chol = np.linalg.cholesky(
        np.array([a @ a.T / d + 0.5 * np.eye(d) for a in rng.normal(size=(k, d, d))])
    )
    schema = pa.schema([(f"x{j}", pa.float64()) for j in range(d)])
    seeds = np.random.SeedSequence(seed).spawn((n + row_group - 1) // row_group)
    with pq.ParquetWriter(path, schema, compression="snappy") as writer:
        for i, start in enumerate(range(0, n, row_group)):
            m = min(row_group, n - start)
            g = np.random.default_rng(seeds[i])
            labels = g.integers(k, size=m)
            X = means[labels] + np.einsum("nij,nj->ni", chol[labels], g.normal(size=(m, d)))
            if missing > 0:
                mask = g.random(X.shape) < missing
                mask[mask.all(axis=1), 0] = False
                X[mask] = np.nan
            cols = [pa.array(X[:, j], from_pandas=True) for j in range(d)]
            writer.write_table(pa.Table.from_arrays(cols, schema=schema), row_group_size=m)


# --------------------------------------------------------------------------- one measurement
class TimedSource:
    """Wraps a source and records the duration of every full pass (map_reduce)."""

    def __init__(self, source):
        self.source = source
        self.n_samples, self.n_features = source.n_samples, source.n_features
        self.passes: list[float] = []
        self.cpu: list[float] = []

    def map_reduce(self, fn):
        t0, c0 = time.perf_counter(), time.process_time()
        out = self.source.map_reduce(fn)
        self.passes.append(time.perf_counter() - t0)
        self.cpu.append(time.process_time() - c0)
        return out

    def sample(self, rng, size):
        return self.source.sample(rng, size)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(mode: str, path: str, args) -> dict:
    import psutil
    import pyarrow.parquet as pq

    from em_core import GaussianMixture, ParquetSource
    from em_core.backends import DaskSource, arrow_to_float

    cluster = client = None
    if mode == "dask":
        import dask
        from distributed import Client, LocalCluster

        from em_core.backends import dask_worker_config

        with dask.config.set(dask_worker_config()):
            cluster = LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            )
        client = Client(cluster)

    def model(max_iter: int) -> GaussianMixture:
        return GaussianMixture(
            args.k,
            covariance_type=args.cov,
            max_iter=max_iter,
            tol=0.0,
            random_state=0,
            init_max_samples=100_000,
        )

    # warm-up on 2000 rows (with missing cells if the data have them): lazy imports, BLAS
    # thread buffers, numba compilation; the baseline is taken after it
    warm = np.random.default_rng(0).normal(size=(2000, args.d))
    if args.missing > 0:
        warm[np.random.default_rng(1).random(warm.shape) < args.missing] = np.nan
        warm[np.isnan(warm).all(axis=1), 0] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model(2).fit(warm)
    base = psutil.Process().memory_info().rss / 2**20
    gm = model(args.iters)
    t0 = time.perf_counter()
    if mode == "memory":
        table = pq.read_table(path)
        X = arrow_to_float(table.columns, table.num_rows)
        del table
        source = TimedSource(gm_array_source(X, gm))
    elif mode == "parquet":
        source = TimedSource(ParquetSource(path, batch_size=args.batch_size))
    else:
        source = TimedSource(DaskSource.from_parquet(path, client=client, partition_rows=250_000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit_source(source)
    seconds = time.perf_counter() - t0
    # passes: moments, hard assignment, then iters + 1 E-steps (the last scores the fit)
    estep = source.passes[2:]
    out = {
        "mode": mode,
        "n": source.n_samples,
        "baseline_mib": base,
        "peak_mib": peak_rss_mib(),
        "s_per_iter": float(np.median(estep)),
        "cpu_per_iter": float(np.median(source.cpu[2:])) if mode != "dask" else None,
        "fit_s": seconds,
        "log_likelihood": gm.log_likelihood_,
        "n_passes": len(source.passes),
    }
    if client is not None:
        source.source.close()
        client.close()
        cluster.close()
    return out


def gm_array_source(X, gm):
    from em_core.sources import ArraySource

    return ArraySource(X, gm.chunk_size, group_patterns=gm.covariance_type in ("full", "tied"))


def run_child(mode: str, path: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(path)]
    cmd += ["--k", str(args.k), "--d", str(args.d), "--cov", args.cov, "--iters", str(args.iters)]
    cmd += ["--batch-size", str(args.batch_size), "--missing", str(args.missing)]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} fit failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7])
    p.add_argument("--d", type=int, default=6)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--cov", default="full")
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--missing", type=float, default=0.0, help="share of MCAR cells")
    p.add_argument("--row-group", type=int, default=65536, help="rows per Parquet row group")
    p.add_argument("--batch-size", type=int, default=65536, help="rows per streamed batch")
    p.add_argument("--no-memory", action="store_true", help="skip the in-memory comparison")
    p.add_argument("--dask", action="store_true", help="also fit on a 2-worker LocalCluster")
    p.add_argument("--dir", help="where to write the data (default: a temporary folder)")
    p.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args)))
        return

    print(machine())
    print(
        f"d={args.d}, K={args.k}, {args.cov}, {args.iters} EM iterations, row groups of "
        f"{args.row_group} rows, batches of {args.batch_size}, {args.missing:.0%} missing cells"
    )
    header = (
        f"{'n':>10} {'mode':>8} {'file MiB':>9} {'base MiB':>9} {'peak MiB':>9} "
        f"{'+MiB':>7} {'s/iter':>8} {'cpu s/iter':>10} {'fit s':>7} {'rel ΔLL':>9}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for size in args.sizes:
            n = int(size)
            path = Path(tmp) / f"mixture_{n}.parquet"
            write_dataset(path, n, args.d, args.k, args.row_group, args.missing)
            modes = ["parquet"] + ([] if args.no_memory else ["memory"])
            modes += ["dask"] if args.dask else []
            results = [run_child(mode, path, args) for mode in modes]
            ref = next((r for r in results if r["mode"] == "memory"), results[0])
            for r in results:
                rel = abs(r["log_likelihood"] - ref["log_likelihood"]) / abs(ref["log_likelihood"])
                cpu = "–" if r["cpu_per_iter"] is None else f"{r['cpu_per_iter']:.2f}"
                print(
                    f"{n:>10} {r['mode']:>8} {path.stat().st_size / 2**20:>9.0f} "
                    f"{r['baseline_mib']:>9.0f} {r['peak_mib']:>9.0f} "
                    f"{r['peak_mib'] - r['baseline_mib']:>7.0f} {r['s_per_iter']:>8.2f} "
                    f"{cpu:>10} {r['fit_s']:>7.1f} {rel:>9.1e}",
                    flush=True,
                )
            path.unlink()


if __name__ == "__main__":
    main()
