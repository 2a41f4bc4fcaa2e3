"""Fixtures: MLflow isolation and one shared full pipeline run on sample data."""

import os

import pytest
from pipeline_helpers import failure_messages, run_pipeline


@pytest.fixture(autouse=True)
def _isolated_mlflow(monkeypatch, tmp_path):
    """Keep MLflow's global state away from the developer's ./mlruns."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'unused-mlflow.db'}")
    monkeypatch.delenv("EM_SEGMENTS_DROP_DIR", raising=False)
    monkeypatch.delenv("EM_SEGMENTS_MLFLOW_TRACKING_URI", raising=False)
    yield
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture(scope="session")
def full_run(tmp_path_factory):
    """One complete materialisation on sample data, shared by the read-only tests."""
    home = tmp_path_factory.mktemp("em_home")
    old = os.environ.pop("EM_SEGMENTS_DROP_DIR", None)
    try:
        result = run_pipeline(home)
    finally:
        if old is not None:
            os.environ["EM_SEGMENTS_DROP_DIR"] = old
    assert result.success, failure_messages(result)
    return home, result
