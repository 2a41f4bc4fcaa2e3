"""The CLI is quiet by default: one line per finished asset, the sweep's progress, the summary."""

from __future__ import annotations

import re

import pytest

from em_pipeline.__main__ import main

pytestmark = pytest.mark.slow  # whole nights: scheduled first (tests/conftest.py)


def test_a_default_run_prints_few_lines_no_debug_no_trace_no_ansi(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    assert main(["--home", str(tmp_path / "home"), "--run-date", "2024-05-01"]) == 0
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).splitlines()
    assert len(lines) <= 40, "\n".join(lines)
    text = "\n".join(lines)
    assert " - DEBUG - " not in text and "Traceback" not in text and "\x1b[" not in text
    assert captured.err == ""
    done = [x.split()[0] for x in lines if re.match(r"^  \w+ +done in +[\d.]+ s$", x)]
    assert done[0] == "raw_customers" and done[-1] == "published_segments" and len(done) == 8
    assert any(re.match(r"^  segment_model: candidate \d+/\d+ \(K=", x) for x in lines)
    # commands in the summary run as printed, from the checkout, without an activated venv
    assert any(
        x.strip().startswith("MLflow:   .venv/bin/mlflow ui --backend-store-uri") for x in lines
    )
    assert any(".venv/bin/dagster dev -w workspace.yaml" in x for x in lines)
    # the MLflow UI opens the experiment as model training, not GenAI
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")
    tags = client.get_experiment_by_name("em-segments").tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"


def test_verbose_shows_dagsters_event_log(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    args = ["--home", str(tmp_path / "home"), "--run-date", "2024-05-01", "--k-max", "2"]
    assert main([*args, "--n-init", "1", "--verbose"]) == 0
    captured = capsys.readouterr()
    assert "STEP_SUCCESS" in captured.out + captured.err


def test_a_cli_run_is_a_run_of_the_code_location(tmp_path, monkeypatch):
    """The UI's job page and Overview timeline select runs by repository: a CLI run carries the
    origin that ``dagster dev -w workspace.yaml`` gives the runs it launches."""
    import dagster as dg
    from dagster._core.storage.tags import REPOSITORY_LABEL_TAG
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    from em_pipeline.definitions import defs

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    args = ["--home", str(tmp_path / "home"), "--run-date", "2024-05-01", "--k-max", "2"]
    assert main([*args, "--k-limit", "2", "--n-init", "1"]) == 0

    (location,) = WorkspaceFileTarget(paths=["workspace.yaml"]).create_origins()
    repository = defs().get_repository_def().name
    label = f"{repository}@{location.location_name}"
    with dg.DagsterInstance.get() as instance:
        filtered = dg.RunsFilter(
            job_name="nightly_segmentation", tags={REPOSITORY_LABEL_TAG: label}
        )
        (run,) = instance.get_runs(filtered)
    assert run.is_success
    origin = run.remote_job_origin
    assert origin.repository_origin.code_location_origin == location
    assert origin.repository_origin.repository_name == repository
    assert origin.job_name == "nightly_segmentation"
