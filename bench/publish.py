"""Publishing cost: versioned atomic publish (em_pipeline.lib.warehouse) vs an in-place update.

Each night publishes the pipeline's tables for ``n`` customers: ``customer_segments`` (current,
with 5 posterior columns), its history (one row per customer per night) and the derived SCD2
``segment_history``. The peer is the previous design: one DuckDB transaction on the published
file itself, then Parquet files renamed into place (it blocks while a dashboard is connected and
cannot switch DuckDB and Parquet together). Times per night and the warehouse size after the last
night, side by side in one run.

    python bench/publish.py --sizes 100000,1000000 --nights 5
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from em_pipeline.lib.history import segment_history_sql
from em_pipeline.lib.warehouse import _as_arrow, publish_tables


def night_tables(n: int, night: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(night)
    date = f"2024-05-{night + 1:02d}"
    seg = rng.integers(0, 5, n)
    cur = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "segment": seg})
    for k in range(5):
        cur[f"prob_segment_{k}"] = rng.random(n)
    cur["run_date"] = date
    hist = cur[["run_date", "customer_id", "segment"]]
    return {"customer_segments": cur}, {"customer_segments_history": hist}


def in_place(pq_dir: Path, db: Path, date: str, current: dict, history: dict) -> None:
    """The peer: one transaction on the published file, then Parquet renamed into place."""
    pq_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(db))
    con.execute("BEGIN TRANSACTION")
    for name, df in current.items():
        con.register("_t", _as_arrow(df))
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _t")
        con.execute(f"COPY {name} TO '{pq_dir / (name + '.tmp.parquet')}'")
    for name, df in history.items():
        con.register("_t", _as_arrow(df))
        con.execute(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT * FROM _t LIMIT 0")
        con.execute(f"DELETE FROM {name} WHERE run_date = CAST(? AS DATE)", [date])
        con.execute(f"INSERT INTO {name} SELECT * FROM _t")
        (pq_dir / name).mkdir(exist_ok=True)
        con.execute(f"COPY (SELECT * FROM _t) TO '{pq_dir / name / (date + '.parquet')}'")
    con.execute(
        "CREATE OR REPLACE TABLE segment_history AS "
        + segment_history_sql("customer_segments_history")
    )
    con.execute("COMMIT")
    con.close()
    for name in current:
        (pq_dir / f"{name}.tmp.parquet").replace(pq_dir / f"{name}.parquet")


def run(n: int, nights: int) -> None:
    for label in ("versioned", "in_place"):
        root = Path(tempfile.mkdtemp(prefix=f"bench-publish-{label}-"))
        times = []
        for night in range(nights):
            current, history = night_tables(n, night)
            date = f"2024-05-{night + 1:02d}"
            start = time.perf_counter()
            if label == "versioned":
                publish_tables(
                    root / "published",
                    root / "warehouse.duckdb",
                    date,
                    current,
                    history,
                    derived={"segment_history": segment_history_sql()},
                )
            else:
                in_place(root / "published", root / "warehouse.duckdb", date, current, history)
            times.append(time.perf_counter() - start)
        size = (root / "warehouse.duckdb").resolve().stat().st_size / 2**20
        print(
            f"n={n:>9,} {label:<9} per night: first {times[0]:6.2f} s, last {times[-1]:6.2f} s,"
            f" mean {np.mean(times):6.2f} s; warehouse {size:7.1f} MiB after {nights} nights",
            flush=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--nights", type=int, default=5)
    args = p.parse_args()
    for n in map(int, args.sizes.split(",")):
        run(n, args.nights)


if __name__ == "__main__":
    main()
