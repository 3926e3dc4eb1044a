"""Daily partitions by the call's UTC date.

`end_offset=1` adds today's partition, so that files landing today can be processed as soon as they
arrive; the schedule re-materialises yesterday once the day is over.
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
    """First and last day that has a partition now."""
    first = dt.date.fromisoformat(load_settings().partitions_start_date)
    return first, dt.datetime.now(dt.UTC).date()
