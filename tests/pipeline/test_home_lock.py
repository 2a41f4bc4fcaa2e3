"""One run per home: a second run fails at once (or waits) naming the first; never any mixing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from pipeline_helpers import failure_messages, run_pipeline

from em_pipeline.lib.failpoints import FAILPOINT_ENV, WAIT_FOR_ENV
from em_pipeline.lib.home_lock import HOLDER_FILE, HomeBusy, hold_home
from em_pipeline.lib.warehouse import read_table

pytestmark = pytest.mark.slow  # whole nights: scheduled first (tests/conftest.py)

HOLD = (
    "import sys, time; from em_pipeline.lib.home_lock import hold_home\n"
    "with hold_home(sys.argv[1], run_date='2024-05-09', command='holder'):\n"
    "    print('held', flush=True); time.sleep(float(sys.argv[2]))\n"
)


def _holder(home, seconds):
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(home), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_second_holder_fails_at_once_naming_the_first(tmp_path):
    p = _holder(tmp_path, 60)
    try:
        start = time.monotonic()
        with pytest.raises(HomeBusy) as err, hold_home(tmp_path):
            pass
        assert time.monotonic() - start < 5
        assert f"pid {p.pid}" in str(err.value) and "run date 2024-05-09" in str(err.value)
    finally:
        p.kill()
        p.wait()


def test_a_waiting_run_gets_the_home_when_the_first_finishes(tmp_path):
    p = _holder(tmp_path, 1.5)
    with hold_home(tmp_path, wait_seconds=60, run_date="2024-05-10"):
        holder = json.loads((tmp_path / HOLDER_FILE).read_text())
        assert holder["pid"] == os.getpid() and holder["run_date"] == "2024-05-10"
    p.wait()
    assert not (tmp_path / HOLDER_FILE).exists()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    p = _holder(tmp_path, 60)
    p.kill()
    p.wait()
    with hold_home(tmp_path):  # the kernel released the flock with the process
        pass


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with hold_home(tmp_path, run_date="a"), hold_home(tmp_path, run_date="b"):
        assert json.loads((tmp_path / HOLDER_FILE).read_text())["run_date"] == "a"
    with hold_home(tmp_path):
        pass


def test_a_dagster_run_on_a_busy_home_fails_naming_the_holder(tmp_path):
    p = _holder(tmp_path, 120)
    try:
        result = run_pipeline(tmp_path)
    finally:
        p.kill()
        p.wait()
    assert not result.success
    assert f"in use by another run: pid {p.pid}" in failure_messages(result)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.parquet"))


def _cli(home, run_date, *extra, env=None):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "em_pipeline",
            "--home",
            str(home),
            "--run-date",
            run_date,
            "--k-max",
            "3",
            "--k-limit",
            "3",
            "--n-init",
            "1",
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_concurrent_cli_runs_on_one_home_exactly_one_publishes(tmp_path):
    release = tmp_path / "release"
    env = {**os.environ, FAILPOINT_ENV: "publish:before_commit", WAIT_FOR_ENV: str(release)}
    first = _cli(tmp_path / "home", "2024-05-01", env=env)
    try:
        deadline = time.monotonic() + 300
        while not (tmp_path / "home" / "published" / "versions").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.2)  # the first run is publishing, paused before its commit
        second = _cli(tmp_path / "home", "2024-05-02")
        _, err = second.communicate(timeout=300)
        assert second.returncode == 3, err
        assert "in use by another run" in err and f"pid {first.pid}" in err
        assert "run date 2024-05-01" in err
        release.touch()
        _, err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, err
    runs = read_table(tmp_path / "home" / "warehouse.duckdb", "segment_runs")
    assert runs["run_date"].astype(str).tolist() == ["2024-05-01"]
    assert not (tmp_path / "home" / "runs" / "2024-05-02").exists()


def test_a_sibling_step_of_the_holding_run_waits_its_turn_another_run_does_not(tmp_path):
    hold = HOLD.replace("run_date='2024-05-09'", "dagster_run_id='R1'")
    p = subprocess.Popen(
        [sys.executable, "-c", hold, str(tmp_path), "1.5"], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout.readline().strip() == "held"
    with pytest.raises(HomeBusy), hold_home(tmp_path, dagster_run_id="R2"):
        pass
    start = time.monotonic()
    with hold_home(tmp_path, dagster_run_id="R1"):  # multiprocess executor: same run, next step
        assert time.monotonic() - start > 0.5  # it waited for the sibling to release the lock
    p.wait()
