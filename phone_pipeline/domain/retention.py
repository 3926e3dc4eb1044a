"""Retention: how long each zone keeps its day partitions, and which partitions are past it.

A zone keeps a partition while `call_date >= cutoff`, with `cutoff = today - retention days`: a
partition exactly at the cutoff is kept, the day before it is deleted. 0 days means kept forever.
The same rule guards the stages, so that a deleted partition is not rebuilt from landing files
that are still on disk.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

# Zones of retention (not files): raw and E.164 call rows, pseudonymised call rows, aggregates.
RESTRICTED = "restricted"
PSEUDONYMIZED = "pseudonymized"
AGGREGATES = "aggregates"

# The day-partitioned tables of each retention zone, as `catalog.table` for an analytics table
# attached to a restricted connection, or a bare name for a table of the restricted file.
RETENTION_TABLES: dict[str, tuple[str, ...]] = {
    RESTRICTED: (
        "raw_calls",
        "calls_validated",
        "calls_quarantine",
        "consented_calls",
        "consent_exclusions",
    ),
    PSEUDONYMIZED: ("analytics.calls_pseudonymized",),
    AGGREGATES: (
        "analytics.call_volume_hourly",
        "analytics.call_volume_by_country",
        "analytics.row_accounting",
    ),
}


@dataclass(frozen=True)
class RetentionPolicy:
    """Days each zone keeps a partition (0 = forever)."""

    restricted_days: int = 90
    pseudonymized_days: int = 396
    aggregates_days: int = 0

    def __post_init__(self) -> None:
        for zone, days in self.days_by_zone().items():
            if days < 0:
                raise ValueError(f"retention of the {zone} zone must be 0 (forever) or more days")

    def days_by_zone(self) -> dict[str, int]:
        return {
            RESTRICTED: self.restricted_days,
            PSEUDONYMIZED: self.pseudonymized_days,
            AGGREGATES: self.aggregates_days,
        }

    def cutoff(self, zone: str, today: dt.date) -> dt.date | None:
        """The oldest partition `zone` keeps on `today`; None when it keeps everything."""
        return retention_cutoff(today, self.days_by_zone()[zone])

    def refusal(self, zone: str, call_date: dt.date, today: dt.date) -> str | None:
        """Why a stage must not rebuild `call_date` in `zone` (None: it may)."""
        cutoff = self.cutoff(zone, today)
        if cutoff is None or call_date >= cutoff:
            return None
        days = self.days_by_zone()[zone]
        return (
            f"partition {call_date} is beyond the {zone} zone's retention ({days} days: "
            f"partitions before {cutoff} are deleted on {today}); it is not rebuilt"
        )


def retention_cutoff(today: dt.date, days: int) -> dt.date | None:
    """First kept day: `today - days`; None for 0 days (kept forever)."""
    if days < 0:
        raise ValueError("retention days must be 0 (forever) or more")
    return None if days == 0 else today - dt.timedelta(days=days)


def expired_rows_sql(table: str, cutoff: dt.date) -> str:
    """Count of the rows of `table` older than `cutoff` (the cutoff is a date, safe to inline)."""
    return f"SELECT count(*) FROM {table} WHERE call_date < DATE '{cutoff.isoformat()}'"


def delete_expired_sql(table: str, cutoff: dt.date) -> str:
    return f"DELETE FROM {table} WHERE call_date < DATE '{cutoff.isoformat()}'"
