"""Publishing for BI: Parquet files and an embedded DuckDB warehouse, replaced atomically.

:func:`publish_tables` first stages every Parquet file in a hidden folder next to the published
ones, then replaces the DuckDB tables inside **one transaction** (``CREATE OR REPLACE TABLE``
for the current tables; ``DELETE`` + ``INSERT`` of the run date's rows for the history tables), and
only after the commit renames the staged Parquet files over the published ones (``os.replace``:
atomic on one file system). Any error before the commit rolls the transaction back and deletes
the staging folder, so a failed run leaves the previously published tables intact and a reader
never sees a half-written table.

``derived`` tables are ``SELECT`` statements evaluated *inside* the same transaction, after the
current and history tables were written (so they see tonight's rows), stored with
``CREATE OR REPLACE TABLE`` and copied to Parquet before the commit (e.g. the SCD type 2
``segment_history``, rebuilt from ``customer_segments_history``).

Columns named in :data:`DATE_COLUMNS` are stored as ``DATE``.
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
import pyarrow as pa

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


DATE_COLUMNS = frozenset(
    {
        "run_date",
        "champion_run_date",
        "first_seen",
        "last_seen",
        "retired_at",
        "valid_from",
        "valid_to",
    }
)


def _as_date(df: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in df.columns if c in DATE_COLUMNS]
    if cols:
        df = df.copy()
        for c in cols:
            df[c] = pd.to_datetime(df[c]).astype(pd.ArrowDtype(pa.date32()))
    return df


def publish_tables(
    parquet_dir: str | Path,
    duckdb_path: str | Path,
    run_date: str,
    current: dict[str, pd.DataFrame],
    history: dict[str, pd.DataFrame],
    *,
    derived: dict[str, str] | None = None,
    before_commit: HookFn | None = None,
) -> PublishResult:
    """Publish ``current`` tables (replaced), append ``history`` tables (keyed by run_date) and
    rebuild ``derived`` tables (name -> SELECT over the warehouse), all in one transaction."""
    derived = derived or {}
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
                _add_new_columns(con, name, src)
                con.execute(f"DELETE FROM {t} WHERE run_date = CAST(? AS DATE)", [run_date])
                con.execute(f"INSERT INTO {t} BY NAME SELECT * FROM read_parquet(?)", [src])
            for name, query in derived.items():
                t = _ident(name)
                staged = staging / f"{name}.parquet"
                con.execute(f"CREATE OR REPLACE TABLE {t} AS {query}")
                con.execute(f"COPY {t} TO '{_sql_path(staged)}' (FORMAT PARQUET)")
                moves.append((staged, parquet_dir / f"{name}.parquet"))
                counts[name] = int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
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


def _add_new_columns(con: duckdb.DuckDBPyConnection, name: str, src: str) -> None:
    """Schema evolution of a history table: columns new in tonight's rows are added (older rows
    get NULL), so a release that adds a column does not break an existing warehouse."""
    have = {r[0] for r in con.execute(f"DESCRIBE {_ident(name)}").fetchall()}
    for col, typ, *_ in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [src]).fetchall():
        if col not in have:
            con.execute(f"ALTER TABLE {_ident(name)} ADD COLUMN {_ident(col)} {typ}")


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def read_table_if_exists(duckdb_path: str | Path, name: str) -> pd.DataFrame | None:
    """A published table, or None when the warehouse file or the table does not exist yet."""
    if not Path(duckdb_path).exists():
        return None
    con = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        found = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
        ).fetchone()[0]
        if not found:
            return None
        return con.execute(f"SELECT * FROM {_ident(name)}").df()
    finally:
        con.close()


def read_table(duckdb_path: str | Path, name: str) -> pd.DataFrame:
    """Read a published table through a fresh read-only connection (as a BI tool would)."""
    con = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        return con.execute(f"SELECT * FROM {_ident(name)}").df()
    finally:
        con.close()
