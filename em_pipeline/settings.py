"""Environment variables read when the Dagster definitions are loaded (no Dagster import here).

- ``EM_SEGMENTS_HOME`` (default ``./var``): folder for everything the pipeline writes.
- ``EM_SEGMENTS_DROP_DIR`` (default unset = built-in sample data): customer drop folder;
  ``{run_date}`` in it is replaced by the partition date.
- ``EM_SEGMENTS_CRON`` (default ``0 2 * * *``): cron of the nightly schedule.
- ``EM_SEGMENTS_TIMEZONE`` (default ``UTC``): timezone of the schedule and the daily partitions.
- ``EM_SEGMENTS_START_DATE`` (default: 90 days before today, UTC): first daily partition, so
  the UI lists recent partitions rather than a thousand missing ones.
- ``EM_SEGMENTS_MLFLOW_TRACKING_URI`` (default ``sqlite:///<home>/mlflow.db``): MLflow tracking
  and registry URI.
- ``EM_SEGMENTS_DASK_SCHEDULER`` (default unset = in memory): Dask scheduler address on which
  the model selection's E-steps run.
- ``EM_SEGMENTS_N_JOBS`` (default ``1``): worker processes fitting the model-selection candidates
  in parallel (``-1`` = every core); ignored with a Dask scheduler.
- ``EM_SEGMENTS_EXECUTOR`` (default ``in_process``): how a run launched from the Dagster UI or the
  schedule executes its steps: ``in_process`` (one process, imports and compiled kernels loaded
  once: as fast as the CLI) or ``multiprocess`` (a process per step).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

HOME_ENV = "EM_SEGMENTS_HOME"
DROP_DIR_ENV = "EM_SEGMENTS_DROP_DIR"
CRON_ENV = "EM_SEGMENTS_CRON"
TIMEZONE_ENV = "EM_SEGMENTS_TIMEZONE"
START_DATE_ENV = "EM_SEGMENTS_START_DATE"
MLFLOW_URI_ENV = "EM_SEGMENTS_MLFLOW_TRACKING_URI"
DASK_SCHEDULER_ENV = "EM_SEGMENTS_DASK_SCHEDULER"
N_JOBS_ENV = "EM_SEGMENTS_N_JOBS"
EXECUTOR_ENV = "EM_SEGMENTS_EXECUTOR"
EXECUTORS = ("in_process", "multiprocess")

DEFAULT_CRON = "0 2 * * *"
DEFAULT_TIMEZONE = "UTC"
DEFAULT_START_DAYS_BACK = 90
JOB_NAME = "nightly_segmentation"
SCHEDULE_NAME = "nightly_segmentation_schedule"


def home_dir(home: str | os.PathLike | None = None) -> Path:
    """The pipeline's home folder as an absolute path (argument, then env var, then ./var)."""
    return Path(home or os.environ.get(HOME_ENV) or "var").expanduser().resolve()


def cron() -> str:
    return os.environ.get(CRON_ENV, DEFAULT_CRON)


def timezone() -> str:
    return os.environ.get(TIMEZONE_ENV, DEFAULT_TIMEZONE)


def start_date() -> str:
    """First daily partition: the environment's, else 90 days before today (UTC)."""
    if os.environ.get(START_DATE_ENV):
        return os.environ[START_DATE_ENV]
    first = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=DEFAULT_START_DAYS_BACK)
    return first.isoformat()


def executor() -> str:
    name = os.environ.get(EXECUTOR_ENV, "") or "in_process"
    if name not in EXECUTORS:
        raise ValueError(f"{EXECUTOR_ENV} must be one of {EXECUTORS}, got {name!r}")
    return name


def mlflow_tracking_uri(home: Path) -> str:
    return os.environ.get(MLFLOW_URI_ENV) or f"sqlite:///{home / 'mlflow.db'}"


def dask_scheduler_address() -> str:
    return os.environ.get(DASK_SCHEDULER_ENV, "")


def n_jobs() -> int:
    raw = os.environ.get(N_JOBS_ENV, "").strip()
    try:
        return int(raw) if raw else 1
    except ValueError:
        msg = f"{N_JOBS_ENV} must be an integer (-1 = every core), got {raw!r}"
        raise ValueError(msg) from None
