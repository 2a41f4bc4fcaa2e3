"""Back-fills: current tables follow the latest published date; registry, SCD2 history and drift
comparisons stay consistent under any order of run dates (rules in em_pipeline.lib.publication)."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from pipeline_helpers import failure_messages, run_pipeline

from em_pipeline.lib.warehouse import read_table

pytestmark = pytest.mark.slow  # whole nights: scheduled first (tests/conftest.py)

D1, D2, D3 = "2024-05-01", "2024-05-02", "2024-05-03"


def _dates(df: pd.DataFrame, col: str = "run_date") -> pd.Series:
    return df[col].astype(str).str[:10]


def _tables(home) -> dict[str, pd.DataFrame]:
    names = (
        "customer_segments", "segment_profiles", "segment_champion", "segment_registry",
        "segment_history", "segment_profiles_history", "customer_segments_history",
        "segment_runs", "drift_runs",
    )  # fmt: skip
    return {n: read_table(home / "warehouse.duckdb", n) for n in names}


def assert_consistent(home, sequence: list[str]) -> dict[str, pd.DataFrame]:
    """The rules after running the dates of ``sequence`` in that order (repeats = re-runs)."""
    t = _tables(home)
    order = sorted(set(sequence))
    latest = order[-1]
    last_run = {d: i for i, d in enumerate(sequence)}  # the run whose rows are published
    # current tables and the champion follow the latest published date
    for name in ("customer_segments", "segment_profiles", "segment_champion"):
        assert set(_dates(t[name])) == {latest}, name
    assert sorted(_dates(t["segment_runs"])) == order
    backfill = dict(zip(_dates(t["segment_runs"]), t["segment_runs"]["backfill"], strict=True))
    for d, i in last_run.items():
        assert backfill[d] == any(prev > d for prev in sequence[:i]), d
    # registry: derived from the published profiles, whatever the order
    reg = t["segment_registry"].set_index("segment_id")
    prof = t["segment_profiles_history"].assign(day=_dates(t["segment_profiles_history"]))
    seen = prof.groupby("segment")["day"].agg(["min", "max"])
    assert set(reg.index) == set(seen.index)
    for sid, r in reg.iterrows():
        first, last = str(r["first_seen"])[:10], str(r["last_seen"])[:10]
        assert (first, last) == (seen.loc[sid, "min"], seen.loc[sid, "max"])
        assert first <= last
        if last == latest:
            assert pd.isna(r["retired_at"])
        else:
            assert str(r["retired_at"])[:10] == min(d for d in order if d > last)
    # SCD2: each customer's open row is the segment of the latest published run
    open_rows = t["segment_history"][t["segment_history"]["is_current"]]
    last = t["customer_segments_history"][_dates(t["customer_segments_history"]) == latest]
    merged = last.merge(open_rows, on="customer_id", how="left")
    assert (merged["segment"].astype(int) == merged["segment_id"].astype(int)).all()
    # drift compares each night with the latest published date up to its own, never a later one
    for d, i in last_run.items():
        row = t["drift_runs"][_dates(t["drift_runs"]) == d].iloc[0]
        earlier = [p for p in sequence[:i] if p <= d]
        expected = max(earlier) if earlier else None
        got = None if pd.isna(row["champion_run_date"]) else str(row["champion_run_date"])[:10]
        assert got == expected, (d, got, expected)
    # the registry alias points at the warehouse champion's model version
    client = mlflow.MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    alias = client.get_model_version_by_alias("customer-segments", "champion")
    assert str(alias.version) == str(t["segment_champion"]["model_version"].iloc[0])
    return t


@pytest.mark.parametrize(
    "order", [[D2, D1, D3], [D3, D1], [D2, D1, D1]], ids=["d2-d1-d3", "d3-d1", "d2-d1-rerun-d1"]
)
def test_backfills_keep_current_tables_registry_history_and_drift_consistent(tmp_path, order):
    for i, d in enumerate(order):
        result = run_pipeline(tmp_path, d)
        assert result.success, failure_messages(result)
        assert_consistent(tmp_path, order[: i + 1])


def test_a_rerun_of_the_latest_date_replaces_the_current_tables(tmp_path):
    for d in (D1, D2, D2):
        assert run_pipeline(tmp_path, d).success
    t = assert_consistent(tmp_path, [D1, D2, D2])
    runs = t["segment_runs"]
    assert not runs["backfill"].any()
