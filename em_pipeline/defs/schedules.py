"""The nightly job and its schedule (cron and timezone from the environment, see settings)."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import dagster as dg

from em_pipeline import settings

HOME_TAG = "em_segments/home"

nightly_segmentation = dg.define_asset_job(
    name=settings.JOB_NAME,
    selection=dg.AssetSelection.groups("segmentation"),
    description="Ingest, impute, segment, log to MLflow and publish one run date.",
    # the run queue admits one run per home (tag_concurrency_limits in dagster.yaml)
    tags={HOME_TAG: str(settings.home_dir())},
    # in process: one import and one set of compiled kernels per run, as in the CLI
    executor_def=(
        dg.in_process_executor if settings.executor() == "in_process" else dg.multiprocess_executor
    ),
)


def make_nightly_schedule(cron_schedule: str, timezone: str) -> dg.ScheduleDefinition:
    """Schedule that runs the job for the partition of the day (scheduled date in ``timezone``)."""

    @dg.schedule(
        name=settings.SCHEDULE_NAME,
        job=nightly_segmentation,
        cron_schedule=cron_schedule,
        execution_timezone=timezone,
        description="Materialises the partition of the day (the scheduled date in the schedule's "
        f"timezone). Cron {cron_schedule!r} (EM_SEGMENTS_CRON), timezone {timezone!r} "
        "(EM_SEGMENTS_TIMEZONE).",
    )
    def nightly_segmentation_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        scheduled = context.scheduled_execution_time
        if scheduled is None:  # evaluated by hand, outside a tick
            scheduled = datetime.now(UTC)
        run_date = scheduled.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d")
        return dg.RunRequest(run_key=run_date, partition_key=run_date)

    return nightly_segmentation_schedule


nightly_segmentation_schedule = make_nightly_schedule(settings.cron(), settings.timezone())
