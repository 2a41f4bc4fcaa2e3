"""Publishing for BI: Parquet files and an embedded DuckDB warehouse, replaced atomically.

:func:`publish_tables` first stages every Parquet file in a hidden folder next to the published
ones, then replaces the DuckDB tables inside **one transaction** (``CREATE OR REPLACE TABLE``
for the current tables; ``DELETE`` + ``INSERT`` of the run date's rows for the history tables), and
only after the commit renames the staged Parquet files over the published ones (``os.replace``:
atomic on one file system). Any error before the commit rolls the transaction back and deletes
the staging folder, so a failed run leaves the previously published tables intact and a reader
never sees a half-written table.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

HookFn = Callable[[duckdb.DuckDBPyConnection], None]


@dataclass(frozen=True)
class PublishResult:
    duckdb_path: Path
    parquet_files: dict[str, Path]
    row_counts: dict[str, int]


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"invalid table name {name!r}")
    return f'"{name}"'


def _as_date(df: pd.DataFrame) -> pd.DataFrame:
    if "run_date" in df.columns:
        df = df.copy()
        df["run_date"] = pd.to_datetime(df["run_date"]).dt.date
    return df


def publish_tables(
    parquet_dir: str | Path,
    duckdb_path: str | Path,
    run_date: str,
    current: dict[str, pd.DataFrame],
    history: dict[str, pd.DataFrame],
    *,
    before_commit: HookFn | None = None,
) -> PublishResult:
    """Publish ``current`` tables (replaced) and append ``history`` tables (keyed by run_date)."""
    parquet_dir = Path(parquet_dir)
    duckdb_path = Path(duckdb_path)
    parquet_dir.mkdir(parents=True, exist_ok=True)
    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    staging = parquet_dir / f".staging-{uuid.uuid4().hex}"
    staging.mkdir()
    moves: list[tuple[Path, Path]] = []
    counts: dict[str, int] = {}
    try:
        for name, df in current.items():
            staged = staging / f"{name}.parquet"
            _as_date(df).to_parquet(staged, index=False)
            moves.append((staged, parquet_dir / f"{name}.parquet"))
            counts[name] = len(df)
        for name, df in history.items():
            if "run_date" not in df.columns:
                raise ValueError(f"history table {name} needs a run_date column")
            staged = staging / f"{name}__{run_date}.parquet"
            _as_date(df).to_parquet(staged, index=False)
            final = parquet_dir / "history" / name / f"{run_date}.parquet"
            moves.append((staged, final))
            counts[name] = len(df)

        con = duckdb.connect(str(duckdb_path))
        try:
            con.execute("BEGIN TRANSACTION")
            for name in current:
                src = str(staging / f"{name}.parquet")
                con.execute(
                    f"CREATE OR REPLACE TABLE {_ident(name)} AS SELECT * FROM read_parquet(?)",
                    [src],
                )
            for name in history:
                src = str(staging / f"{name}__{run_date}.parquet")
                t = _ident(name)
                con.execute(
                    f"CREATE TABLE IF NOT EXISTS {t} AS SELECT * FROM read_parquet(?) LIMIT 0",
                    [src],
                )
                con.execute(f"DELETE FROM {t} WHERE run_date = CAST(? AS DATE)", [run_date])
                con.execute(f"INSERT INTO {t} BY NAME SELECT * FROM read_parquet(?)", [src])
            if before_commit is not None:
                before_commit(con)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for src, dst in moves:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    shutil.rmtree(staging, ignore_errors=True)
    return PublishResult(
        duckdb_path=duckdb_path,
        parquet_files={name: dst for (_, dst), name in zip(moves, counts, strict=True)},
        row_counts=counts,
    )


def read_table(duckdb_path: str | Path, name: str) -> pd.DataFrame:
    """Read a published table through a fresh read-only connection (as a BI tool would)."""
    con = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        return con.execute(f"SELECT * FROM {_ident(name)}").df()
    finally:
        con.close()
