"""Environment variables read when the Dagster definitions are loaded (no Dagster import here).

- ``EM_SEGMENTS_HOME`` (default ``./var``): folder for everything the pipeline writes.
- ``EM_SEGMENTS_DROP_DIR`` (default unset = built-in sample data): customer drop folder;
  ``{run_date}`` in it is replaced by the partition date.
- ``EM_SEGMENTS_CRON`` (default ``0 2 * * *``): cron of the nightly schedule.
- ``EM_SEGMENTS_TIMEZONE`` (default ``UTC``): timezone of the schedule and the daily partitions.
- ``EM_SEGMENTS_START_DATE`` (default ``2024-01-01``): first daily partition.
- ``EM_SEGMENTS_MLFLOW_TRACKING_URI`` (default ``sqlite:///<home>/mlflow.db``): MLflow tracking
  and registry URI.
- ``EM_SEGMENTS_DASK_SCHEDULER`` (default unset = in memory): Dask scheduler address on which
  the model selection's E-steps run.
- ``EM_SEGMENTS_N_JOBS`` (default ``1``): worker processes fitting the model-selection candidates
  in parallel (``-1`` = every core); ignored with a Dask scheduler.
"""

from __future__ import annotations

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

DEFAULT_CRON = "0 2 * * *"
DEFAULT_TIMEZONE = "UTC"
DEFAULT_START_DATE = "2024-01-01"
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
    return os.environ.get(START_DATE_ENV, DEFAULT_START_DATE)


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
