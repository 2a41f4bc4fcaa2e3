"""Publishing for BI: an embedded DuckDB warehouse and its Parquet twin, switched in atomically.

:func:`publish_tables` never writes to what readers have open. It copies the current warehouse
file into a staging folder, applies tonight's changes there in **one transaction** (``CREATE OR
REPLACE`` for the current tables; ``DELETE`` + ``INSERT`` of the run date's rows for the history
tables; ``derived`` tables rebuilt by a ``SELECT`` after both, so they see tonight's rows; one
``publish_log`` row), commits and checkpoints it, and exports every table to Parquet **from that
committed database** (history files of other dates are hard links to the previous version's, or
exported afresh when missing, so gaps heal). The folder is fsynced, renamed into
``versions/<version>`` and then the ``current`` pointer is switched to it: the single commit point
(:mod:`em_pipeline.lib.published_versions` has the layout and the recovery).

Why a new file per night rather than the published one updated in place: DuckDB lets one process
write a file only when no other process has it open, even read-only, so a dashboard holding a
connection would fail the night; and DuckDB's commit and the Parquet renames cannot be one atomic
step. Copying the warehouse costs one sequential read and write of the file per night.

Columns named in :data:`DATE_COLUMNS` are stored as ``DATE``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from em_pipeline.lib.failpoints import failpoint
from em_pipeline.lib.published_versions import (
    DB_FILE,
    HISTORY,
    STAGING_PREFIX,
    PublishedLayout,
    collect_garbage,
    ensure_links,
    fsync_tree,
    recover,
    switch,
    write_manifest,
)

HookFn = Callable[[duckdb.DuckDBPyConnection], None]
PUBLISH_LOG = "publish_log"
KEEP_VERSIONS = 2


@dataclass(frozen=True)
class PublishResult:
    duckdb_path: Path
    parquet_files: dict[str, Path]
    row_counts: dict[str, int]
    version: Path


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


def _as_arrow(df: pd.DataFrame) -> pa.Table:
    df = df.copy()
    for c in df.columns:
        if c in DATE_COLUMNS:
            df[c] = pd.to_datetime(df[c]).astype(pd.ArrowDtype(pa.date32()))
    return pa.Table.from_pandas(df, preserve_index=False)


def publish_tables(
    parquet_dir: str | Path,
    duckdb_path: str | Path,
    run_date: str,
    current: dict[str, pd.DataFrame],
    history: dict[str, pd.DataFrame],
    *,
    derived: dict[str, str] | None = None,
    before_commit: HookFn | None = None,
    keep_versions: int = KEEP_VERSIONS,
) -> PublishResult:
    """Publish ``current`` tables (replaced), ``history`` tables (tonight's run_date rows
    replaced) and ``derived`` tables (name -> SELECT over the warehouse) as one new version."""
    derived = derived or {}
    for name, df in history.items():
        if "run_date" not in df.columns:
            raise ValueError(f"history table {name} needs a run_date column")
    layout = PublishedLayout.of(parquet_dir, duckdb_path)
    layout.versions.mkdir(parents=True, exist_ok=True)
    layout.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    recover(layout, keep_versions)
    previous = layout.current_version()
    published_at = datetime.now(UTC).replace(tzinfo=None)
    name = f"{published_at:%Y%m%dT%H%M%S%fZ}-{run_date}"
    staging = layout.versions / f"{STAGING_PREFIX}{name}"
    staging.mkdir()
    try:
        _copy_base(layout, previous, staging / DB_FILE)
        counts = _build_database(
            staging / DB_FILE,
            name,
            run_date,
            published_at,
            current,
            history,
            derived,
            before_commit,
        )
        failpoint("publish:committed")
        kinds = _table_kinds(layout.manifest(previous), current, history, derived)
        rows = _export_parquet(staging, kinds, run_date, previous)
        manifest = {
            "version": name,
            "run_date": run_date,
            "published_at": published_at.isoformat() + "Z",
            "tables": {t: {"kind": kinds[t], "rows": rows[t]} for t in sorted(kinds)},
        }
        write_manifest(staging, manifest)
        fsync_tree(staging)
        failpoint("publish:staged")
        version = layout.versions / name
        staging.rename(version)
        failpoint("publish:versioned")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    switch(layout, version)
    failpoint("publish:switched")
    ensure_links(layout)
    collect_garbage(layout, keep_versions)
    files = {t: layout.parquet_dir / f"{t}.parquet" for t in [*current, *derived]}
    files |= {t: layout.parquet_dir / HISTORY / t / f"{run_date}.parquet" for t in history}
    return PublishResult(layout.duckdb_path, files, counts, version)


def _copy_base(layout: PublishedLayout, previous: Path | None, target: Path) -> None:
    """Start from the published warehouse (or one from before versioned publishing)."""
    base = previous / DB_FILE if previous is not None else layout.legacy_database()
    if base is None:
        return
    if base == layout.legacy_database() and base.with_name(base.name + ".wal").exists():
        duckdb.connect(str(base)).close()  # replays the write-ahead log of a crashed writer
    shutil.copyfile(base, target)


def _build_database(
    db: Path,
    version: str,
    run_date: str,
    published_at: datetime,
    current: dict[str, pd.DataFrame],
    history: dict[str, pd.DataFrame],
    derived: dict[str, str],
    before_commit: HookFn | None,
) -> dict[str, int]:
    """Apply tonight's tables to the staging copy in one transaction; row counts written."""
    counts: dict[str, int] = {}
    con = duckdb.connect(str(db))
    try:
        con.execute("BEGIN TRANSACTION")
        for name, df in current.items():
            con.register("_tonight", _as_arrow(df))
            con.execute(f"CREATE OR REPLACE TABLE {_ident(name)} AS SELECT * FROM _tonight")
            con.unregister("_tonight")
            counts[name] = len(df)
        for name, df in history.items():
            t = _ident(name)
            con.register("_tonight", _as_arrow(df))
            con.execute(f"CREATE TABLE IF NOT EXISTS {t} AS SELECT * FROM _tonight LIMIT 0")
            _add_new_columns(con, name)
            con.execute(f"DELETE FROM {t} WHERE run_date = CAST(? AS DATE)", [run_date])
            con.execute(f"INSERT INTO {t} BY NAME SELECT * FROM _tonight")
            counts[name] = len(df)
            con.unregister("_tonight")
        for name, query in derived.items():
            con.execute(f"CREATE OR REPLACE TABLE {_ident(name)} AS {query}")
            counts[name] = int(con.execute(f"SELECT count(*) FROM {_ident(name)}").fetchone()[0])
        _log_publish(con, version, run_date, published_at, counts)
        if before_commit is not None:
            before_commit(con)
        failpoint("publish:before_commit")
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return counts


def _log_publish(
    con: duckdb.DuckDBPyConnection,
    version: str,
    run_date: str,
    published_at: datetime,
    counts: dict[str, int],
) -> None:
    """One ``publish_log`` row per publish: which version, for which run date, what it wrote."""
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {PUBLISH_LOG} (version VARCHAR, run_date DATE, "
        "published_at TIMESTAMP, row_counts VARCHAR)"
    )
    con.execute(
        f"INSERT INTO {PUBLISH_LOG} VALUES (?, CAST(? AS DATE), ?, ?)",
        [version, run_date, published_at, json.dumps(counts, sort_keys=True)],
    )


def _table_kinds(
    previous: dict | None,
    current: dict[str, pd.DataFrame],
    history: dict[str, pd.DataFrame],
    derived: dict[str, str],
) -> dict[str, str]:
    kinds = {t: meta["kind"] for t, meta in (previous or {}).get("tables", {}).items()}
    kinds |= dict.fromkeys(current, "current") | dict.fromkeys(history, "history")
    kinds |= dict.fromkeys(derived, "derived") | {PUBLISH_LOG: "log"}
    return kinds


def _export_parquet(
    staging: Path, kinds: dict[str, str], run_date: str, previous: Path | None
) -> dict[str, int]:
    """Every table of the staged warehouse as Parquet; returns each table's row count."""
    con = duckdb.connect(str(staging / DB_FILE), read_only=True)
    rows: dict[str, int] = {}
    try:
        tables = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
        for name in tables:
            kinds.setdefault(name, "current")  # a table of a warehouse from before the manifest
            t = _ident(name)
            rows[name] = int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
            if kinds[name] == "history":
                _export_history(con, name, staging, run_date, previous)
            else:
                con.execute(f"COPY {t} TO '{_sql_path(staging / f'{name}.parquet')}'")
            failpoint("publish:exporting")
    finally:
        con.close()
    for name in set(kinds) - set(rows):
        del kinds[name]  # dropped from the warehouse
    return rows


def _export_history(
    con: duckdb.DuckDBPyConnection, name: str, staging: Path, run_date: str, previous: Path | None
) -> None:
    """One file per run date: tonight's exported, the others linked from the previous version
    (they cannot have changed) or exported when that version lacks them."""
    folder = staging / HISTORY / name
    folder.mkdir(parents=True)
    dates = con.execute(
        f"SELECT DISTINCT strftime(run_date, '%Y-%m-%d') FROM {_ident(name)} ORDER BY 1"
    ).fetchall()
    for (day,) in dates:
        target = folder / f"{day}.parquet"
        old = None if previous is None else previous / HISTORY / name / target.name
        if day != run_date and old is not None and old.exists():
            target.hardlink_to(old)
            continue
        con.execute(
            f"COPY (SELECT * FROM {_ident(name)} WHERE run_date = CAST(? AS DATE)) "
            f"TO '{_sql_path(target)}'",
            [day],
        )


def _add_new_columns(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Schema evolution of a history table: columns new in tonight's rows are added (older rows
    get NULL), so a release that adds a column does not break an existing warehouse."""
    have = {r[0] for r in con.execute(f"DESCRIBE {_ident(name)}").fetchall()}
    for col, typ, *_ in con.execute("DESCRIBE SELECT * FROM _tonight").fetchall():
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
