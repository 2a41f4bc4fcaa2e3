"""The daily partitions: one partition = one run date (``YYYY-MM-DD``)."""

import dagster as dg

from em_pipeline import settings

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=settings.start_date(),
    timezone=settings.timezone(),
    # the partition of the current day exists, so the nightly run can process today's drop
    end_offset=1,
)
