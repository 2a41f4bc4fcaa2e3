"""The nightly job and its schedule (cron and timezone from the environment, see settings)."""

import dagster as dg

from em_pipeline import settings
from em_pipeline.defs.partitions import daily_partitions

nightly_segmentation = dg.define_asset_job(
    name=settings.JOB_NAME,
    selection=dg.AssetSelection.groups("segmentation"),
    partitions_def=daily_partitions,
    description="Ingest, impute, segment, log to MLflow and publish one run date.",
)


@dg.schedule(
    name=settings.SCHEDULE_NAME,
    job=nightly_segmentation,
    cron_schedule=settings.cron(),
    execution_timezone=settings.timezone(),
    description="Materialises the partition of the day (the scheduled date in the schedule's "
    "timezone). Cron: EM_SEGMENTS_CRON, timezone: EM_SEGMENTS_TIMEZONE.",
)
def nightly_segmentation_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    run_date = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return dg.RunRequest(run_key=run_date, partition_key=run_date)
