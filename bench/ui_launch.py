"""A night launched from the Dagster UI against the same night from the CLI, side by side.

The UI case is what an operator's click does: ``dagster dev -w workspace.yaml`` (webserver, daemon,
code server) runs in the background on a free port with its own DAGSTER_HOME, and the nightly job's
partition is submitted through the webserver's GraphQL API (the call the UI's "Materialize" makes);
the time is from submission to the run's terminal status, so it includes the queue, the run
worker's start and its imports. The CLI case is ``python -m em_pipeline`` in a fresh process. Both
run the built-in sample data for the same date in fresh homes, with the executor given by
``--executor`` (the job's default, ``in_process``, or ``multiprocess``).

    python bench/ui_launch.py [--executor in_process|multiprocess] [--repeat 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
JOB = "nightly_segmentation"
RUN_DATE = (dt.date.today() - dt.timedelta(days=1)).isoformat()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(work: Path, executor: str) -> dict[str, str]:
    return {
        **os.environ,
        "DAGSTER_HOME": str(work / "dagster"),
        "EM_SEGMENTS_HOME": str(work / "home"),
        "EM_SEGMENTS_EXECUTOR": executor,
    }


def cli_night(work: Path, executor: str) -> float:
    env = _env(work, executor)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "em_pipeline", "--run-date", RUN_DATE],
        env=env, cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - start


def _wait_for_code_location(client, deadline: float) -> None:
    """Until the webserver answers and has loaded the em_segments code location."""
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    while time.monotonic() < deadline:
        try:
            entries = client._execute(query)["workspaceOrError"]["locationEntries"]
            if any(e["name"] == "em_segments" and e["loadStatus"] == "LOADED" for e in entries):
                return
        except Exception:  # not up yet
            pass
        time.sleep(0.5)
    raise TimeoutError("dagster dev did not load the em_segments code location in time")


def ui_night(work: Path, executor: str, timeout: float = 900.0) -> float:
    """Submit the job's partition to a running ``dagster dev`` and wait for the run to end."""
    from dagster_graphql import DagsterGraphQLClient

    # the CLI writes the instance's dagster.yaml (run queue, concurrency) on first use
    from em_pipeline.__main__ import DAGSTER_YAML

    env = _env(work, executor)
    (work / "dagster").mkdir(parents=True)
    (work / "dagster" / "dagster.yaml").write_text(DAGSTER_YAML)
    port = _free_port()
    server = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-p", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        _wait_for_code_location(client, time.monotonic() + 180)
        start = time.perf_counter()
        run_id = client.submit_job_execution(JOB, tags={"dagster/partition": RUN_DATE})
        deadline = time.monotonic() + timeout
        while (status := client.get_run_status(run_id).value) not in ("SUCCESS", "FAILURE"):
            if status == "CANCELED" or time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} ended {status}")
            time.sleep(0.25)
        elapsed = time.perf_counter() - start
        if status != "SUCCESS":
            raise RuntimeError(f"run {run_id} failed; see {work / 'dagster'}")
        return elapsed
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--executor", default="in_process", choices=("in_process", "multiprocess"))
    p.add_argument("--repeat", type=int, default=2, help="pairs of runs (default 2)")
    args = p.parse_args()
    print(f"run date {RUN_DATE}, executor {args.executor}, sample data")
    print(f"{'pair':>4} {'CLI (s)':>9} {'UI launch (s)':>14} {'UI / CLI':>9}")
    ratios = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            cli = cli_night(Path(tmp) / "cli", args.executor)
            ui = ui_night(Path(tmp) / "ui", args.executor)
        ratios.append(ui / cli)
        print(f"{i + 1:>4} {cli:9.1f} {ui:14.1f} {ui / cli:9.2f}")
    print(f"median UI / CLI: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
