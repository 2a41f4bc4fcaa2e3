"""The CLI's closing block for a failed night: what failed, where, why, and an exit code per class.

Exit codes: 1 internal error (a step raised unexpectedly), 3 another run holds the home (see
:mod:`em_pipeline.lib.home_lock`), 4 the drop was rejected (ingest or its checks), 5 a blocking
check stopped publication or promotion. Full error reports, stack traces included, go to a log file
under ``<home>/logs/`` whose path is printed.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, TextIO

EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_HOME_BUSY = 3
EXIT_BAD_DROP = 4
EXIT_NOT_PUBLISHED = 5

DROP_STEPS = {"raw_customers"}


def report_failure(result: Any, home: Path, run_date: str, out: TextIO) -> int:
    """Print the closing block of a failed run to ``out``; return its exit code."""
    print("\nRUN FAILED", file=out)
    step_errors = _step_errors(result)
    for where, err in step_errors:
        print(f"  {where}: {root_cause(err)}", file=out)
    failed = [ev for ev in result.get_asset_check_evaluations() if not ev.passed]
    for ev in failed:
        reason = ev.metadata.get("reason")
        why = reason.value if reason is not None else "see the check's metadata"
        print(f"  check {ev.check_name} on {ev.asset_key.to_user_string()} failed: {why}", file=out)
    gates = [ev.check_name for ev in failed if ev.check_name.startswith("drift_")]
    if failed and not gates:
        names = ", ".join(ev.check_name for ev in failed)
        print(
            f"  NOT PUBLISHED: the blocking check(s) {names} stopped the night before publishing;"
            " BI keeps the previous tables. Thresholds: ops.<asset>_<check>.config in "
            "--run-config.",
            file=out,
        )
    if gates:
        print(
            f"  NOT PROMOTED: the new model of {run_date} is logged in MLflow (tag promoted=false,"
            " check/* tags say why) but BI keeps the champion's tables and the registry alias is"
            " unchanged. Drift thresholds: ops.segment_drift_<check>.config in --run-config.",
            file=out,
        )
    log = write_error_log(home, run_date, result.run_id, step_errors)
    print(f"  Dagster run id {result.run_id}; error reports with stack traces: {log}", file=out)
    return exit_code(step_errors, [ev.asset_key.to_user_string() for ev in failed])


def exit_code(step_errors: list[tuple[str, Any]], failed_check_assets: list[str]) -> int:
    """The class of a failure: internal errors first (they need a person), then a rejected
    drop (ingest raised its ``dagster.Failure``, or an ingest check failed), then a gate."""
    rejected = {
        where.removeprefix("step ")
        for where, err in step_errors
        if where.removeprefix("step ") in DROP_STEPS and _raised_failure(err)
    }
    if len(rejected) < len(step_errors):
        return EXIT_INTERNAL
    if rejected or set(failed_check_assets) & DROP_STEPS:
        return EXIT_BAD_DROP
    return EXIT_NOT_PUBLISHED if failed_check_assets else EXIT_INTERNAL


def root_cause(err: Any) -> str:
    """The message of the innermost cause: Dagster wraps a step's exception in "Error occurred
    while executing op …", which says nothing about what went wrong."""
    return _root(err).message.strip()


def _raised_failure(err: Any) -> bool:
    """True when the step rejected its input on purpose (``dagster.Failure`` in the chain)."""
    while err is not None:
        if err.cls_name == "Failure":
            return True
        err = getattr(err, "cause", None)
    return False


def _root(err: Any) -> Any:
    while getattr(err, "cause", None) is not None:
        err = err.cause
    return err


def _step_errors(result: Any) -> list[tuple[str, Any]]:
    errors = []
    for event in result.all_events:
        if event.is_step_failure:
            err = event.step_failure_data.error
            if err.cls_name != "DagsterAssetCheckFailedError":  # reported with its reason
                errors.append((f"step {event.step_key}", err))
        elif event.event_type_value == "RESOURCE_INIT_FAILURE":
            errors.append(("resource set-up", event.event_specific_data.error))
    return errors


def write_error_log(home: Path, run_date: str, run_id: str, errors: list[tuple[str, Any]]) -> Path:
    """Every error with its causes and stack trace, in ``<home>/logs/``."""
    folder = home / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_date}_{run_id}.log"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [f"em-segments run {run_id} for {run_date}, failed at {stamp}", ""]
    for where, err in errors:
        lines += [f"== {where}", err.to_string(), ""]
    if not errors:
        lines.append("no step raised: blocking checks stopped the night (see the CLI output)")
    path.write_text("\n".join(lines))
    return path
