"""Housekeeping: killed runs are marked failed, a reset MLflow store is named, an unwritable home
gets one line."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import pytest

from em_pipeline.__main__ import main
from em_pipeline.code_location import job_origin
from em_pipeline.failure_report import EXIT_INTERNAL, EXIT_USAGE
from em_pipeline.lib.failpoints import FAILPOINT_ENV

pytestmark = pytest.mark.slow  # whole nights: scheduled first (tests/conftest.py)


def _cli(home, run_date, env):
    return subprocess.run(
        [sys.executable, "-m", "em_pipeline", "--home", str(home), "--run-date", run_date,
         "--k-max", "3", "--k-limit", "3", "--n-init", "1"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_a_killed_cli_run_is_marked_failed_by_the_next_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    killed = _cli(tmp_path, "2024-05-01", {**env, FAILPOINT_ENV: "publish:before_commit"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    os.environ["DAGSTER_HOME"], old = str(tmp_path / "dagster"), os.environ.get("DAGSTER_HOME")
    try:
        with dg.DagsterInstance.get() as instance:
            (stuck,) = instance.get_runs()
            assert stuck.status == dg.DagsterRunStatus.STARTED  # what Dagster believes
        nxt = _cli(tmp_path, "2024-05-01", env)
        assert nxt.returncode == 0, nxt.stderr[-2000:]
        assert (
            f"repaired: Dagster run {stuck.run_id} (run date 2024-05-01) was killed" in nxt.stdout
        )
        with dg.DagsterInstance.get() as instance:
            marked = instance.get_run_by_id(stuck.run_id)
            assert marked.status == dg.DagsterRunStatus.FAILURE
            assert stuck.remote_job_origin is None  # the killed run never got to record it
            assert marked.remote_job_origin == job_origin(marked.job_name)  # on the timeline
    finally:
        if old is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = old


def test_a_reset_mlflow_store_is_named_instead_of_colliding_versions(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    assert _cli(tmp_path, "2024-05-01", env).returncode == 0
    (tmp_path / "mlflow.db").unlink()  # e.g. a "clean-up" of the tracking store
    night = _cli(tmp_path, "2024-05-02", env)
    assert night.returncode == EXIT_INTERNAL
    cause = next(x for x in night.stderr.splitlines() if x.startswith("  step raw_customers:"))
    assert "does not hold the champion's model: version 1 of customer-segments" in cause
    assert "was reset or replaced" in cause
    assert not (tmp_path / "runs" / "2024-05-02" / "segment_model.json").exists()


def test_an_unwritable_home_gets_one_line(capsys):
    assert main(["--home", "/sys/em-segments-home", "--run-date", "2024-05-01"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1  # sysfs refuses with EPERM or EACCES depending on the kernel
    assert err[0].startswith("error: the home /sys/em-segments-home cannot be written: ")
