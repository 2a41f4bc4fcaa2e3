"""Runs that died without saying so: marked failed when the next CLI run starts.

A CLI run executes in one process and holds the home's lock from start to end
(:mod:`em_pipeline.lib.home_lock`), so when the next CLI run holds that lock, any CLI run of the
same home that the Dagster instance still shows as started was killed (SIGKILL, OOM, power cut).
Runs launched from the Dagster UI or its schedule are watched by Dagster's run monitoring
(``run_monitoring`` in the ``dagster.yaml`` the CLI writes), which fails runs whose worker died.
"""

from __future__ import annotations

import dagster as dg

from em_pipeline.code_location import record_as_code_location_run
from em_pipeline.defs.schedules import HOME_TAG

LAUNCHER_TAG = "em_segments/launched_by"


def fail_abandoned_runs(instance: dg.DagsterInstance, home: str) -> list[str]:
    """Mark the abandoned CLI runs of ``home`` failed, with the code location's origin a finished
    CLI run gets (so the UI's timeline shows them too); one message per run. Call with the home's
    lock held."""
    runs = instance.get_runs(
        dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING],
            tags={HOME_TAG: home, LAUNCHER_TAG: "cli"},
        )
    )
    done = []
    for run in runs:
        instance.report_run_failed(
            run,
            "marked failed by the next CLI run on this home: the run's process ended without "
            "finishing (killed or crashed)",
        )
        record_as_code_location_run(instance, run.run_id)
        partition = run.tags.get("dagster/partition", "?")
        done.append(f"Dagster run {run.run_id} (run date {partition}) was killed: marked failed")
    return done
