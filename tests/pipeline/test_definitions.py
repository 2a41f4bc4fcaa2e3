import datetime as dt

import dagster as dg
import pytest
from pipeline_helpers import load_defs

from em_pipeline import settings
from em_pipeline.defs.schedules import make_nightly_schedule

pytestmark = pytest.mark.slow  # whole nights: scheduled first (tests/conftest.py)

ASSETS = {
    "raw_customers",
    "customer_features",
    "imputed_customers",
    "segment_model",
    "customer_segments",
    "segment_profiles",
    "segment_drift",
    "published_segments",
}
BLOCKING_CHECKS = {
    "raw_schema",
    "quarantine_share_below_threshold",
    "candidates_finite_and_chosen_converged",
    "segments_cover_snapshot",
    "min_segment_share",
    "drift_ari_above_min",
    "drift_psi_below_max",
    "drift_distance_below_max",
    "drift_share_change_below_max",
}


def test_definitions_load_and_validate():
    d = load_defs()
    dg.Definitions.validate_loadable(d)
    assert {k.to_user_string() for k in d.resolve_all_asset_keys()} == ASSETS
    checks = {s.name: s for c in d.asset_checks for s in c.check_specs}
    assert set(checks) == BLOCKING_CHECKS
    assert all(c.blocking for c in checks.values())
    assert set(d.resources) == {
        "source",
        "customer_schema",
        "storage",
        "warehouse",
        "mlflow_tracker",
        "compute",
    }


def test_job_covers_every_asset_and_check_and_is_daily_partitioned():
    d = load_defs()
    job = d.resolve_job_def(settings.JOB_NAME)
    assert isinstance(job.partitions_def, dg.DailyPartitionsDefinition)
    ops = {n.name for n in job.nodes}
    assert ASSETS <= ops
    check_ops = {
        f"{s.asset_key.to_user_string()}_{s.name}" for c in d.asset_checks for s in c.check_specs
    }
    assert len(check_ops) == len(BLOCKING_CHECKS) and check_ops <= ops


def test_schedule_targets_the_nightly_job_for_the_day_in_its_timezone():
    d = load_defs()
    sched = d.resolve_schedule_def(settings.SCHEDULE_NAME)
    assert sched.job_name == settings.JOB_NAME
    assert sched.cron_schedule == settings.DEFAULT_CRON
    assert sched.execution_timezone == settings.DEFAULT_TIMEZONE

    custom = make_nightly_schedule("30 1 * * *", "Europe/Berlin")
    assert (custom.cron_schedule, custom.execution_timezone) == ("30 1 * * *", "Europe/Berlin")
    # 23:30 UTC on 1 May is already 2 May in Berlin: the partition of the day is 2024-05-02
    ctx = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2024, 5, 1, 23, 30, tzinfo=dt.UTC)
    )
    request = custom(ctx)
    assert request.partition_key == "2024-05-02"
    assert request.run_key == "2024-05-02"


def test_schedule_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(settings.CRON_ENV, "15 3 * * 1-5")
    monkeypatch.setenv(settings.TIMEZONE_ENV, "America/New_York")
    assert settings.cron() == "15 3 * * 1-5"
    assert settings.timezone() == "America/New_York"


def test_workspace_yaml_points_at_the_definitions_module():
    from pathlib import Path

    text = (Path(__file__).parents[2] / "workspace.yaml").read_text()
    assert "module_name: em_pipeline.definitions" in text


def test_no_definitions_module_imports_an_asset_module():
    """File names and helpers come from em_pipeline.lib.artifacts, checks bind assets by key:
    the asset graph is stated once, by the assets' deps."""
    import ast
    from pathlib import Path

    import em_pipeline

    defs_dir = Path(em_pipeline.__file__).parent / "defs"
    offenders = []
    for path in sorted(defs_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "em_pipeline.defs.assets"
            ):
                offenders.append(f"{path.relative_to(defs_dir)}: from {node.module}")
    assert offenders == []


def test_lib_imports_no_dagster():
    """em_pipeline/lib holds the work of the assets as plain functions: no Dagster there."""
    import ast
    from pathlib import Path

    import em_pipeline

    lib_dir = Path(em_pipeline.__file__).parent / "lib"
    offenders = []
    for path in sorted(lib_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "dagster"]
    assert offenders == []


def test_the_job_runs_in_process_and_partitions_start_90_days_back_by_default(monkeypatch):
    monkeypatch.delenv(settings.EXECUTOR_ENV, raising=False)
    monkeypatch.delenv(settings.START_DATE_ENV, raising=False)
    assert settings.executor() == "in_process"
    first = dt.date.fromisoformat(settings.start_date())
    assert (dt.datetime.now(dt.UTC).date() - first).days == 90
    monkeypatch.setenv(settings.EXECUTOR_ENV, "threads")
    with pytest.raises(ValueError, match="EM_SEGMENTS_EXECUTOR must be one of"):
        settings.executor()
    job = load_defs().resolve_job_def(settings.JOB_NAME)
    assert job.executor_def.name == "in_process"


def test_dagster_loads_the_workspace_without_a_code_location_name_warning(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "EM_SEGMENTS_HOME": str(tmp_path),
    }
    root = Path(__file__).resolve().parents[2]
    dagster = Path(sys.executable).with_name("dagster")
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Validation successful for code location em_segments" in done.stderr + done.stdout
    assert "does not match the name" not in done.stderr + done.stdout


def test_dg_lists_and_checks_the_definitions_from_the_project_venv(tmp_path):
    """``dg`` (pinned to Dagster's version) loads the project without activating the venv."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {
        **{k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "EM_SEGMENTS_HOME": str(tmp_path),
    }
    root = Path(__file__).resolve().parents[2]
    dg_cli = str(Path(sys.executable).with_name("dg"))
    check = subprocess.run(
        [dg_cli, "check", "defs"], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert check.returncode == 0, check.stderr[-2000:]
    assert "All definitions loaded successfully." in check.stdout + check.stderr
    assert "virtual environment does not match" not in check.stdout + check.stderr
    listed = subprocess.run(
        [dg_cli, "list", "defs", "--json"], cwd=root, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-2000:]
    defs = json.loads(listed.stdout)
    want = sorted(k.to_user_string() for a in load_defs().assets for k in a.keys)
    assert sorted(a["asset_key"] for a in defs["assets"]) == want
    assert [j["name"] for j in defs["jobs"]] == [settings.JOB_NAME]
    assert [s["name"] for s in defs["schedules"]] == [settings.SCHEDULE_NAME]
