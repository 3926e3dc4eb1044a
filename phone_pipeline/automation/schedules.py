"""A daily schedule re-materialises yesterday, so that late-arriving rows are included."""

import datetime as dt

import dagster as dg

from phone_pipeline.automation.jobs import call_pipeline_job, retention_sweep_job
from phone_pipeline.automation.partitions import partition_range


@dg.schedule(
    job=call_pipeline_job,
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "At 02:30 UTC, re-runs the previous day's partition (consent registry refreshed first, "
        "every gate included) to pick up late-arriving call logs and consent withdrawals."
    ),
)
def daily_reprocess_schedule(context: dg.ScheduleEvaluationContext):
    previous_day = context.scheduled_execution_time.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    first_date, _ = partition_range()
    if previous_day < first_date:
        return dg.SkipReason(f"{previous_day} is before the first partition ({first_date})")
    return dg.RunRequest(partition_key=previous_day.isoformat())


@dg.schedule(
    job=retention_sweep_job,
    cron_schedule="0 4 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "At 04:00 UTC (after the daily re-run), deletes the partitions past each zone's retention "
        "as of the tick's date and logs the deleted row counts in analytics.retention_log."
    ),
)
def daily_retention_schedule(context: dg.ScheduleEvaluationContext):
    as_of = context.scheduled_execution_time.astimezone(dt.UTC).date()
    return dg.RunRequest(
        run_key=f"retention-{as_of.isoformat()}",
        run_config={
            "ops": {"restricted__retention_sweep": {"config": {"as_of": as_of.isoformat()}}}
        },
    )
