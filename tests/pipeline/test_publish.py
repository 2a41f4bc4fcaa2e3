"""Publishing is atomic: a failure leaves the previous tables intact; history is keyed by date."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from pipeline_helpers import RUN_DATE, failure_messages, run_pipeline

from em_pipeline.defs.resources import Warehouse
from em_pipeline.lib.failpoints import FAILPOINT_ENV
from em_pipeline.lib.published_versions import current_files
from em_pipeline.lib.warehouse import publish_tables, read_table

pytestmark = pytest.mark.slow  # whole nights: scheduled first (tests/conftest.py)


class FailingWarehouse(Warehouse):
    """The real warehouse, with an error injected inside the publish transaction."""

    def before_commit(self, con):
        con.execute("SELECT 1")
        raise RuntimeError("injected failure while publishing")


def _snapshot(home):
    tables = {}
    for name in ("customer_segments", "segment_profiles", "customer_segments_history"):
        tables[name] = read_table(home / "warehouse.duckdb", name)
    files = {name: p.read_bytes() for name, p in current_files(home / "published").items()}
    return tables, files


def test_failure_during_publishing_leaves_previous_tables_intact(full_run):
    home, _ = full_run
    before_tables, before_files = _snapshot(home)
    wh = FailingWarehouse(
        duckdb_path=str(home / "warehouse.duckdb"), parquet_dir=str(home / "published")
    )
    result = run_pipeline(home, "2024-05-02", resources={"warehouse": wh})
    assert not result.success
    assert "injected failure while publishing" in failure_messages(result)
    # the new run got as far as its own segments ...
    assert (home / "runs" / "2024-05-02" / "customer_segments.parquet").exists()
    # ... but what BI reads is exactly yesterday's
    after_tables, after_files = _snapshot(home)
    assert after_files == before_files
    for name, df in before_tables.items():
        pd.testing.assert_frame_equal(after_tables[name], df)
    assert not list((home / "published" / "versions").glob(".staging-*"))
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    dates = {
        str(r[0]) for r in con.execute("SELECT DISTINCT run_date FROM segment_runs").fetchall()
    }
    con.close()
    assert dates == {RUN_DATE}
    # the registry alias still points at the published model, not at the failed run's version
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("customer-segments", "champion")
    latest = max(int(v.version) for v in client.search_model_versions("name = 'customer-segments'"))
    assert int(champion.version) < latest


def test_failing_blocking_check_stops_publication(full_run):
    home, _ = full_run
    before_tables, before_files = _snapshot(home)
    result = run_pipeline(
        home,
        "2024-05-03",
        run_config={"ops": {"segment_profiles_min_segment_share": {"config": {"min_share": 0.9}}}},
    )
    assert not result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["min_segment_share"] is False
    published = result.asset_materializations_for_node("published_segments")
    assert published == []
    after_tables, after_files = _snapshot(home)
    assert after_files == before_files
    pd.testing.assert_frame_equal(
        after_tables["customer_segments"], before_tables["customer_segments"]
    )


def test_the_share_gate_follows_segment_models_min_segment_share(full_run, tmp_path):
    """One setting of the smallest segment: the check gates at the share the model used."""
    seg = {"segments": "components", "min_segment_share": 0.5}
    result = run_pipeline(tmp_path, run_config={"ops": {"segment_model": {"config": seg}}})
    assert not result.success
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name.endswith("share")]
    assert check.passed is False
    assert check.metadata["min_share"].value == 0.5
    assert "min_share 50.00%" in check.metadata["reason"].text
    assert _model_info(tmp_path)["min_segment_share"] == 0.5
    # a default night records the default share, and its gate used it
    home, result = full_run
    assert _model_info(home)["min_segment_share"] == 0.02
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name.endswith("share")]
    assert check.passed and check.metadata["min_share"].value == 0.02


def _model_info(home: Path) -> dict:
    return json.loads((home / "runs" / RUN_DATE / "segment_model.json").read_text())["info"]


def _frame(date, seg):
    return pd.DataFrame({"customer_id": ["a", "b"], "segment": [seg, seg], "run_date": date})


def test_history_is_keyed_by_run_date_and_rerun_replaces_its_rows(tmp_path):
    pq, db = tmp_path / "pub", tmp_path / "w.duckdb"
    for date, seg in (("2024-05-01", 0), ("2024-05-02", 1), ("2024-05-02", 2)):
        publish_tables(pq, db, date, {"cur": _frame(date, seg)}, {"hist": _frame(date, seg)})
    hist = read_table(db, "hist")
    assert len(hist) == 4
    assert hist.groupby(hist["run_date"].astype(str))["segment"].max().to_dict() == {
        "2024-05-01": 0,
        "2024-05-02": 2,
    }
    assert read_table(db, "cur")["segment"].tolist() == [2, 2]
    assert sorted(p.name for p in (pq / "history" / "hist").iterdir()) == [
        "2024-05-01.parquet",
        "2024-05-02.parquet",
    ]


def test_error_before_commit_rolls_back_every_table(tmp_path):
    pq, db = tmp_path / "pub", tmp_path / "w.duckdb"
    publish_tables(
        pq, db, "2024-05-01", {"cur": _frame("2024-05-01", 0)}, {"hist": _frame("2024-05-01", 0)}
    )

    def boom(con):
        # the new rows are visible inside the transaction ...
        assert con.execute("SELECT max(segment) FROM cur").fetchone()[0] == 7
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        publish_tables(
            pq,
            db,
            "2024-05-02",
            {"cur": _frame("2024-05-02", 7)},
            {"hist": _frame("2024-05-02", 7)},
            before_commit=boom,
        )
    # ... and gone after the rollback, in DuckDB and in Parquet
    assert read_table(db, "cur")["segment"].tolist() == [0, 0]
    assert len(read_table(db, "hist")) == 2
    assert pd.read_parquet(pq / "cur.parquet")["segment"].tolist() == [0, 0]
    assert not (pq / "history" / "hist" / "2024-05-02.parquet").exists()
    assert not list((pq / "versions").glob(".staging-*"))


def test_a_late_failure_in_segment_model_closes_its_mlflow_run_as_failed(tmp_path, monkeypatch):
    import mlflow

    from em_pipeline.lib.mlflow_logging import SegmentTracker

    def broken(*args, **kwargs):
        raise RuntimeError("model registry unavailable")

    monkeypatch.setattr(SegmentTracker, "log_pyfunc_model", broken)
    result = run_pipeline(tmp_path)
    assert not result.success
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("em-segments")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.em_run_kind = 'selection'")
    assert [r.info.status for r in runs] == ["FAILED"]


def mlflow_client(home):
    import mlflow

    return mlflow.MlflowClient(f"sqlite:///{home / 'mlflow.db'}")


def _champion_alias(home):
    return mlflow_client(home).get_model_version_by_alias("customer-segments", "champion")


def _run_killed_at(home, run_date, failpoint):
    """The real pipeline in a child process, SIGKILLed at ``failpoint``."""
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[3]); "
        "from pipeline_helpers import run_pipeline; run_pipeline(Path(sys.argv[1]), sys.argv[2])"
    )
    env = {**os.environ, FAILPOINT_ENV: failpoint}
    done = subprocess.run(
        [sys.executable, "-c", code, str(home), run_date, str(Path(__file__).parent)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == -9, done.stderr[-3000:]


def test_a_night_killed_before_the_alias_moved_is_repaired_by_the_next(tmp_path):
    assert run_pipeline(tmp_path, "2024-05-01").success
    _run_killed_at(tmp_path, "2024-05-02", "publish:before_alias")
    champion = read_table(tmp_path / "warehouse.duckdb", "segment_champion").iloc[0]
    assert str(champion["run_date"])[:10] == "2024-05-02"  # published ...
    assert _champion_alias(tmp_path).version != int(champion["model_version"])  # ... alias behind
    result = run_pipeline(tmp_path, "2024-05-03")
    assert result.success, failure_messages(result)
    # raw_customers repaired the alias of 05-02 first (only the repair tags that run promoted),
    # then 05-03 was published and promoted
    assert _champion_alias(tmp_path).version == int(champion["model_version"]) + 1
    tags = mlflow_client(tmp_path).get_run(champion["mlflow_run_id"]).data.tags
    assert tags["promoted"] == "true"


def test_a_dashboard_holding_the_warehouse_open_does_not_stop_the_night(full_run, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(full_run[0], home, symlinks=True)
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print(c.execute('SELECT count(*) FROM customer_segments').fetchone()[0], "
            "flush=True); sys.stdin.readline()",
            str(home / "warehouse.duckdb"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert int(reader.stdout.readline()) > 0  # connected, and stays connected
        result = run_pipeline(home, "2024-05-02")
        assert reader.poll() is None
    finally:
        reader.kill()
    assert result.success, failure_messages(result)
    runs = read_table(home / "warehouse.duckdb", "segment_runs")
    assert sorted(runs["run_date"].astype(str)) == [RUN_DATE, "2024-05-02"]
