"""A publish killed at any instant: readers see all of one night, DuckDB == Parquet, and the next
publish repairs what was left. Each crash is a real SIGKILL of a process in the middle of
``publish_tables`` (see em_pipeline.lib.failpoints)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from em_pipeline.lib.failpoints import FAILPOINT_ENV
from em_pipeline.lib.published_versions import MANIFEST, PublishedLayout
from em_pipeline.lib.warehouse import publish_tables

STEPS = [
    "publish:before_commit",
    "publish:committed",
    "publish:exporting",
    "publish:staged",
    "publish:versioned",
    "publish:switched",
]
SWITCHED = {"publish:switched"}  # crash points after the commit point

NIGHT = textwrap.dedent(
    """
    import sys
    import pandas as pd
    from em_pipeline.lib.history import segment_history_sql
    from em_pipeline.lib.warehouse import publish_tables

    pq, db, date, seg = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    ids = [f"c{i}" for i in range(50)]
    frame = pd.DataFrame({"customer_id": ids, "segment": [seg + i % 3 for i in range(50)]})
    frame["run_date"] = date
    profile = frame.groupby("segment", as_index=False).size().assign(run_date=date)
    publish_tables(
        pq, db, date,
        current={"customer_segments": frame, "segment_profiles": profile},
        history={"customer_segments_history": frame, "segment_runs": profile.head(1)},
        derived={"segment_history": segment_history_sql("customer_segments_history")},
    )
    """
)


def _night(home: Path, date: str, seg: int, failpoint: str | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if k != FAILPOINT_ENV}
    if failpoint:
        env[FAILPOINT_ENV] = failpoint
    args = [str(home / "published"), str(home / "warehouse.duckdb"), date, str(seg)]
    done = subprocess.run(
        [sys.executable, "-c", NIGHT, *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode in (0, -9), done.stderr
    return done.returncode


def _duckdb_tables(db: Path) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(db), read_only=True) as con:
        names = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
        return {n: con.execute(f'SELECT * FROM "{n}"').df() for n in names}


def _parquet_tables(pq: Path) -> dict[str, pd.DataFrame]:
    """Every table as a reader of the stable Parquet paths sees it."""
    tables = {p.stem: f"'{p}'" for p in pq.glob("*.parquet")}
    tables |= {d.name: f"'{d}/*.parquet'" for d in (pq / "history").iterdir()}
    with duckdb.connect() as con:
        return {
            n: con.execute(f"SELECT * FROM read_parquet({src}, union_by_name=true)").df()
            for n, src in tables.items()
        }


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    df = df[sorted(df.columns)].astype(str)
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def assert_parquet_equals_duckdb(home: Path) -> dict[str, pd.DataFrame]:
    """Both ways: the same tables, and each with the same rows."""
    db = _duckdb_tables(home / "warehouse.duckdb")
    pq = _parquet_tables(home / "published")
    assert set(db) == set(pq)
    for name in db:
        pd.testing.assert_frame_equal(_canonical(db[name]), _canonical(pq[name]), obj=name)
    return db


def _published_dates(tables: dict[str, pd.DataFrame]) -> set[str]:
    return set(tables["customer_segments_history"]["run_date"].astype(str))


@pytest.mark.parametrize("step", STEPS)
def test_a_publish_killed_at_any_step_leaves_one_whole_night_and_the_next_repairs_it(
    tmp_path, step
):
    assert _night(tmp_path, "2024-05-01", 0) == 0
    assert _night(tmp_path, "2024-05-02", 10, failpoint=step) == -9
    tables = assert_parquet_equals_duckdb(tmp_path)
    expected_date = "2024-05-02" if step in SWITCHED else "2024-05-01"
    assert set(tables["customer_segments"]["run_date"].astype(str)) == {expected_date}
    assert _published_dates(tables) == {"2024-05-01", expected_date}
    # the next night: consistent, nothing left over, every published date in both
    assert _night(tmp_path, "2024-05-03", 20) == 0
    tables = assert_parquet_equals_duckdb(tmp_path)
    assert _published_dates(tables) == {"2024-05-01", expected_date, "2024-05-03"}
    layout = PublishedLayout.of(tmp_path / "published", tmp_path / "warehouse.duckdb")
    left = sorted(p.name for p in layout.versions.iterdir())
    assert len(left) == 2 and all((layout.versions / v / MANIFEST).exists() for v in left)
    assert layout.current_version().name == left[-1]


def test_a_reader_holding_the_warehouse_open_does_not_block_the_publish(tmp_path):
    assert _night(tmp_path, "2024-05-01", 0) == 0
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print(c.execute('SELECT max(run_date) FROM customer_segments').fetchone()[0], "
            "flush=True); sys.stdin.readline(); "
            "print(c.execute('SELECT max(run_date) FROM customer_segments').fetchone()[0])",
            str(tmp_path / "warehouse.duckdb"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "2024-05-01"
        assert _night(tmp_path, "2024-05-02", 10) == 0  # the dashboard is still connected
        out, _ = reader.communicate("\n", timeout=60)
    finally:
        reader.kill()
    assert out.strip() == "2024-05-01"  # an open connection keeps reading its snapshot
    tables = assert_parquet_equals_duckdb(tmp_path)
    assert set(tables["customer_segments"]["run_date"].astype(str)) == {"2024-05-02"}


def test_a_warehouse_from_before_versioned_publishing_is_taken_over_with_its_history(tmp_path):
    """The old layout (a regular DuckDB file, Parquet files in place, a history file missing)
    becomes the first version; the missing history date is exported from the warehouse."""
    pq, db = tmp_path / "published", tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(
            "CREATE TABLE customer_segments_history AS SELECT 'c1' AS customer_id, 3 AS segment,"
            " DATE '2024-04-30' AS run_date UNION ALL SELECT 'c1', 4, DATE '2024-04-29'"
        )
        con.execute("CREATE TABLE customer_segments AS SELECT 'c1' AS customer_id, 3 AS segment")
    (pq / "history" / "customer_segments_history").mkdir(parents=True)
    pd.DataFrame({"customer_id": ["c1"], "segment": [3]}).to_parquet(
        pq / "customer_segments.parquet"
    )
    frame = pd.DataFrame({"customer_id": ["c1"], "segment": [5], "run_date": ["2024-05-01"]})
    publish_tables(
        pq, db, "2024-05-01", {"customer_segments": frame}, {"customer_segments_history": frame}
    )
    assert db.is_symlink() and (pq / "customer_segments.parquet").is_symlink()
    tables = assert_parquet_equals_duckdb(tmp_path)
    assert _published_dates(tables) == {"2024-04-29", "2024-04-30", "2024-05-01"}
    assert sorted(p.name for p in (pq / "history" / "customer_segments_history").iterdir()) == [
        "2024-04-29.parquet",
        "2024-04-30.parquet",
        "2024-05-01.parquet",
    ]
