"""Daily partitions by the call's UTC date.

`end_offset=1` adds today's partition, so that files landing today can be processed as soon as they
arrive; the schedule re-materialises yesterday once the day is over. The first partition is the
setting PHONE_PIPELINE_START_DATE, read when the definitions load: from the environment or the data
home's settings file, where `phone-pipeline generate` and `demo` record the first day they generate
(a running UI shows a changed start after its code location is reloaded).
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from phone_pipeline.settings import load_settings

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=load_settings().partitions_start_date, end_offset=1, timezone="UTC"
)


def partition_date(context: dg.AssetExecutionContext) -> dt.date:
    return dt.date.fromisoformat(context.partition_key)


def partition_range() -> tuple[dt.date, dt.date]:
    """First and last day that has a partition now: the partitions' own first day, never the
    setting read again, so that a sensor or run never asks for a partition the loaded
    definitions do not have."""
    first = daily_partitions.start.date()
    return first, dt.datetime.now(dt.UTC).date()
