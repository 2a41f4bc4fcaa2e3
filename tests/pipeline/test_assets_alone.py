"""Assets materialised on their own, with a fake MLflow tracker: what each one reads, writes and
tells MLflow, without the rest of the job."""

from __future__ import annotations

import contextlib
import json
import shutil
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import RUN_DATE, failure_messages, load_defs

from em_pipeline.defs.resources import MlflowTracker, default_resources
from em_pipeline.lib.transforms import FeatureTransform
from em_pipeline.lib.warehouse import read_table


class FakeTracker:
    """Records what an asset tells MLflow; the registry alias starts unset."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []
        self.alias: str | None = None

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args, kwargs))

        return record

    def alias_version(self) -> str | None:
        return self.alias

    def set_alias(self, version: str) -> None:
        self.calls.append(("set_alias", (version,), {}))
        self.alias = version

    def named(self, name: str) -> list[tuple]:
        return [(args, kwargs) for n, args, kwargs in self.calls if n == name]

    # what segment_model reads back from its tracker
    def start_parent_run(self, partition: str, dagster_run_id: str, tags: dict) -> str:
        self.calls.append(("start_parent_run", (partition, dagster_run_id, tags), {}))
        return "parent-1"

    @contextlib.contextmanager
    def failing_with(self, run_id: str):
        yield

    def log_candidate(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append(("log_candidate", args, kwargs))
        return f"candidate-{len(self.named('log_candidate'))}"

    def log_dataset(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append(("log_dataset", args, kwargs))
        return "digest-1"

    def log_pyfunc_model(self, *args: Any, **kwargs: Any) -> tuple[str, str]:
        self.calls.append(("log_pyfunc_model", args, kwargs))
        return "models:/customer-segments/7", "7"


class FakeMlflow(MlflowTracker):
    def tracker(self) -> FakeTracker:  # type: ignore[override]
        return FAKE


FAKE = FakeTracker()


@pytest.fixture
def home(full_run, tmp_path):
    """A finished night's home as it was before publishing: every partition file is there, the
    warehouse is not (so the night's model was fitted against the current champion: none)."""
    copy = tmp_path / "home"
    shutil.copytree(full_run[0], copy, symlinks=True)
    shutil.rmtree(copy / "published")
    (copy / "warehouse.duckdb").unlink()
    global FAKE
    FAKE = FakeTracker()
    return copy


def _alone(asset_name: str, home) -> dg.ExecuteInProcessResult:
    (asset,) = [a for a in load_defs().assets if asset_name in {k.path[-1] for k in a.keys}]
    resources = default_resources(home=home)
    resources["mlflow_tracker"] = FakeMlflow(tracking_uri="fake://")
    return dg.materialize(
        [asset], resources=resources, partition_key=RUN_DATE, raise_on_error=False
    )


def test_segment_drift_alone_reports_a_first_night_and_logs_it(home):
    result = _alone("segment_drift", home)
    assert result.success
    summary = pd.read_json(home / "runs" / RUN_DATE / "drift_summary.json", typ="series")
    assert not summary["has_champion"] and summary["champion_run_date"] is None
    ((_, metrics), _) = FAKE.named("log_metrics")[0]
    assert {"drift_ari", "drift_n_new_segments", "psi_total_spend"} <= set(metrics)
    tables = {args[2] for args, _ in FAKE.named("log_table")}
    assert tables == {"drift_transitions", "drift_segments", "drift_features", "drift_summary"}
    ((_, tags), _) = FAKE.named("set_tags")[0]
    assert tags == {"champion_run_date": "", "compared_with": ""}


def test_published_segments_alone_publishes_and_points_the_alias_at_its_model(home):
    assert _alone("published_segments", home).success
    runs = read_table(home / "warehouse.duckdb", "segment_runs")
    assert runs["run_date"].astype(str).str[:10].tolist() == [RUN_DATE]
    assert [args for args, _ in FAKE.named("set_alias")] == [("1",)]
    ((_, tags), _) = FAKE.named("set_tags")[0]
    assert tags["promoted"] == "true"
    # publishing the same night again: its model was fitted with no champion, and now there is
    # one (itself, promoted meanwhile), so the step refuses instead of publishing stale ids
    again = _alone("published_segments", home)
    assert not again.success
    assert "the champion changed since segment_model ran" in failure_messages(again)
    assert len(FAKE.named("set_alias")) == 1


def test_segment_model_alone_writes_its_files_and_records_the_night_in_mlflow(home):
    result = _alone("segment_model", home)
    assert result.success, failure_messages(result)
    part = home / "runs" / RUN_DATE
    selection = pd.read_parquet(part / "selection.parquet")
    assert len(FAKE.named("log_candidate")) == len(selection)
    assert selection["chosen"].sum() == 1
    info = json.loads((part / "segment_model.json").read_text())["info"]
    assert (info["model_uri"], info["model_version"]) == ("models:/customer-segments/7", "7")
    assert info["data_digest"] == "digest-1" and info["mlflow_run_id"] == "parent-1"
    tables = {args[2] for args, _ in FAKE.named("log_table")}
    assert {"selection_table", "segment_alignment", "segment_registry_proposed"} <= tables
    assert "merge_path" in tables  # segments='merged', the default
    ((args, _),) = FAKE.named("log_pyfunc_model")
    assert args[0] == "parent-1" and args[1] == part / "segment_model.json"
    assert FAKE.named("finish") == [(("parent-1",), {})]
    assert (part / "plots" / "bic_vs_k.png").exists()
    (meta,) = result.asset_materializations_for_node("segment_model")
    assert meta.metadata["mlflow_model_uri"].value == "models:/customer-segments/7"
    assert meta.metadata["mlflow_run_id"].value == "parent-1"


def test_imputed_customers_alone_keeps_every_observed_cell_and_fills_only_the_missing(home):
    part = home / "runs" / RUN_DATE
    (part / "imputed_customers.parquet").unlink()
    assert _alone("imputed_customers", home).success
    raw = pd.read_parquet(part / "raw_customers.parquet").set_index("customer_id")
    out = pd.read_parquet(part / "imputed_customers.parquet").set_index("customer_id")
    assert out.index.equals(raw.index)
    for feature in ("total_spend", "visits_per_month", "avg_cart_size", "days_since_last_order"):
        missing = raw[feature].isna()
        assert missing.any()  # the sample drop has missing cells in every feature
        assert out[f"{feature}_imputed"].equals(missing.rename(f"{feature}_imputed"))
        assert out[feature].notna().all()
        pd.testing.assert_series_equal(
            out.loc[~missing, feature], raw.loc[~missing, feature].astype(float), rtol=1e-9
        )


def test_customer_features_alone_standardise_and_invert_exactly(home):
    part = home / "runs" / RUN_DATE
    for name in ("customer_features.parquet", "transform.json"):
        (part / name).unlink()
    assert _alone("customer_features", home).success
    raw = pd.read_parquet(part / "raw_customers.parquet")
    features = pd.read_parquet(part / "customer_features.parquet")
    transform = FeatureTransform.from_dict(json.loads((part / "transform.json").read_text()))
    names = list(transform.features)
    assert features["customer_id"].tolist() == raw["customer_id"].tolist()
    z = features[names].to_numpy(dtype=float)
    x = raw[names].to_numpy(dtype=float)
    assert np.array_equal(np.isnan(z), np.isnan(x))  # missing cells stay missing, no others
    np.testing.assert_allclose(np.nanmean(z, axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(np.nanstd(z, axis=0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(transform.inverse(z), x, rtol=1e-9)  # NaN where x is NaN
