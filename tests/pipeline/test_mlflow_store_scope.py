"""The pipeline's MLflow store is passed, never left behind as the process's global setting."""

import os

import mlflow
import pandas as pd
import pytest

from em_pipeline.lib.mlflow_logging import MlflowSettings, SegmentTracker, mlflow_uris

_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture
def no_global_store(monkeypatch):
    for name in _URI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    mlflow.set_tracking_uri(None)
    yield
    mlflow.set_tracking_uri(None)


def test_the_block_uses_the_store_and_restores_an_unset_one(no_global_store, tmp_path):
    default = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'a.db'}"
    with mlflow_uris(uri):
        assert mlflow.get_tracking_uri() == uri
        assert mlflow.get_registry_uri() == uri
    assert mlflow.get_tracking_uri() == default
    assert not any(name in os.environ for name in _URI_VARIABLES)


def test_the_callers_own_store_comes_back_even_after_an_error(no_global_store, tmp_path):
    mine = f"sqlite:///{tmp_path / 'mine.db'}"
    mlflow.set_tracking_uri(mine)
    with pytest.raises(RuntimeError), mlflow_uris(f"sqlite:///{tmp_path / 'theirs.db'}"):
        raise RuntimeError("a failing log call")
    assert mlflow.get_tracking_uri() == mine
    assert os.environ["MLFLOW_TRACKING_URI"] == mine


def test_a_tracker_logging_a_dataset_leaves_no_global_store(no_global_store, tmp_path):
    default = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SegmentTracker(MlflowSettings(tracking_uri=uri, experiment_name="scope"))
    run_id = tracker.start_parent_run("2024-01-01", "dagster-run", {})
    digest = tracker.log_dataset(run_id, pd.DataFrame({"x": [1.0, 2.0]}), "drop", "snapshot")
    assert digest
    assert tracker.client.get_run(run_id).inputs.dataset_inputs[0].dataset.digest == digest
    assert mlflow.get_tracking_uri() == default
    assert not any(name in os.environ for name in _URI_VARIABLES)


def test_a_registry_in_the_environment_does_not_redirect_the_tracker(monkeypatch, tmp_path):
    """MlflowClient takes MLFLOW_REGISTRY_URI from the environment when no registry is given; the
    tracker's registry must be the store its models are registered in."""
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SegmentTracker(MlflowSettings(tracking_uri=uri, experiment_name="scope"))
    assert tracker.client._registry_uri == uri
    assert tracker.alias_version() is None  # reads the home's (empty) registry without error
