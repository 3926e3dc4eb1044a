"""Retention: how long each zone keeps its day partitions, and which partitions are past it.

A zone keeps a partition while `call_date >= cutoff`, with `cutoff = today - retention days`: a
partition exactly at the cutoff is kept, the day before it is deleted. 0 days means kept forever.

A day past some zones' retention but not all (a backfill of last year's logs, with the defaults:
older than 90 days, analytics and aggregates still kept) is processed once, end to end, and its
run sweeps what it may not keep at its end. A day whose restricted rows were swept is not rebuilt
(from landing files still on disk or from rows loaded since: the zones that keep it would lose
rows), and a day past every zone's retention is not processed at all (nothing would be kept).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from phone_pipeline import catalog
from phone_pipeline.catalog import Retention, retention_tables
from phone_pipeline.settings import env_name
from phone_pipeline.sql import statement

# Zones of retention (not files): raw and E.164 call rows, pseudonymised call rows, aggregates.
RESTRICTED = Retention.RESTRICTED.value
PSEUDONYMIZED = Retention.PSEUDONYMIZED.value
AGGREGATES = Retention.AGGREGATES.value

# The day-partitioned tables of each retention zone, as `catalog.table` for a table of a zone file
# attached to a restricted connection (analytics, shareable, compliance), or a bare name for a
# table of the restricted file: every table of the catalog whose retention class is swept by day.
# Pseudonymised: rows naming a person by pseudonym, in whichever zone.
RETENTION_TABLES: dict[str, tuple[str, ...]] = retention_tables()

# The environment setting of each zone's retention, named in refusals (declared in settings.py).
RETENTION_SETTING_NAMES = {
    RESTRICTED: "retention_restricted_days",
    PSEUDONYMIZED: "retention_pseudonymized_days",
    AGGREGATES: "retention_aggregates_days",
}
RETENTION_SETTINGS = {zone: env_name(name) for zone, name in RETENTION_SETTING_NAMES.items()}

# Restricted tables whose rows are input rows of a landing file (`content_hash`, `source_row`):
# the sweep records how many of each file's rows it deleted (`restricted.retention_swept_rows`),
# so that "rows of loaded files = raw rows + rows erased + rows swept" stays exact at ingest.
SOURCE_ROW_TABLES: tuple[str, ...] = tuple(
    table.name
    for table in catalog.zone_tables(catalog.RESTRICTED)
    if table.retention is Retention.RESTRICTED
    and table.partition
    and {"content_hash", "source_row"} <= set(table.column_names)
)


@dataclass(frozen=True)
class RetentionPolicy:
    """Days each zone keeps a partition (0 = forever); no defaults: the deployment's come from
    its settings (settings.py declares them)."""

    restricted_days: int
    pseudonymized_days: int
    aggregates_days: int

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

    def zones_past(self, call_date: dt.date, today: dt.date) -> list[str]:
        """The zones whose retention `call_date` is past on `today` (they must not keep it)."""
        return [
            zone
            for zone in self.days_by_zone()
            if (cutoff := self.cutoff(zone, today)) is not None and call_date < cutoff
        ]

    def oldest_processed(self, today: dt.date) -> dt.date | None:
        """The oldest day whose processing keeps anything (some zone still keeps it); None when
        a zone keeps everything. Older days are not processed: every row would be deleted."""
        cutoffs = [self.cutoff(zone, today) for zone in self.days_by_zone()]
        return None if None in cutoffs else min(c for c in cutoffs if c is not None)

    def settings_text(self) -> str:
        return ", ".join(
            f"{RETENTION_SETTINGS[zone]}={days}" for zone, days in self.days_by_zone().items()
        )

    def processing_refusal(
        self, call_date: dt.date, today: dt.date, rows_present: int, rows_swept: int
    ) -> str | None:
        """Why a run must not (re)build `call_date` (None: it may).

        `rows_present`: the day's rows in restricted.raw_calls now; `rows_swept`: its rows that a
        sweep already deleted (restricted.retention_swept_rows). A day past some zones' retention
        is built from its restricted rows once, then swept (see `zones_past`)."""
        past = self.zones_past(call_date, today)
        if not past:
            return None
        cutoffs = ", ".join(f"{zone} {self.cutoff(zone, today)}" for zone in past)
        where = (
            f"partition {call_date} is past the retention of the {', '.join(past)} zone(s) "
            f"(oldest kept day on {today}: {cutoffs}; {self.settings_text()})"
        )
        if len(past) == len(self.days_by_zone()):
            return (
                f"{where}: every zone would delete what it produced, so it is not processed; "
                "raise a retention setting to process it"
            )
        if rows_swept:
            return (
                f"{where}, and {rows_swept} of its restricted rows were already swept: it was "
                "processed before and is not rebuilt (a rebuild from rows loaded since would "
                "replace the rows the other zones keep); rows loaded since go with the next sweep"
            )
        if not rows_present:
            return (
                f"{where} and has no restricted rows to process (none loaded, or all erased): "
                "it is not rebuilt"
            )
        return None


def retention_cutoff(today: dt.date, days: int) -> dt.date | None:
    """First kept day: `today - days`; None for 0 days (kept forever)."""
    if days < 0:
        raise ValueError("retention days must be 0 (forever) or more")
    return None if days == 0 else today - dt.timedelta(days=days)


# The number cache is no day partition: an entry (a raw string and its E.164) stays while a kept
# restricted row or a registry refers to it. Validated calls refer by E.164 (known_numbers, one row
# per number and day); quarantined rows by their raw strings; consent and do-not-call registries
# by E.164. Anything else is parsed again if it comes back: the cache only saves work.
NUMBER_CACHE = "number_cache"


def _unreferenced() -> str:
    # On its own lines: the file opens with a comment that runs to the end of its line.
    return "\n" + statement(__file__, "number_unreferenced") + "\n"


def unreferenced_numbers_sql() -> str:
    """Count of the number cache's entries that nothing kept refers to any more."""
    return f"SELECT count(*) FROM {NUMBER_CACHE} AS cache WHERE {_unreferenced()}"


def delete_unreferenced_numbers_sql() -> str:
    return f"DELETE FROM {NUMBER_CACHE} AS cache WHERE {_unreferenced()}"


def _expired(one_day: bool) -> str:
    # `one_day` narrows the sweep to one partition (a run's own).
    return "call_date < $cutoff" + (" AND call_date = $call_date" if one_day else "")


def expired_rows_sql(table: str, one_day: bool = False) -> str:
    """Count of the rows of `table` older than `$cutoff` (of the partition `$call_date` only,
    if `one_day`)."""
    return f"SELECT count(*) FROM {table} WHERE {_expired(one_day)}"


def delete_expired_sql(table: str, one_day: bool = False) -> str:
    return f"DELETE FROM {table} WHERE {_expired(one_day)}"


def record_swept_rows_sql(table: str, one_day: bool = False) -> str:
    """Rows of `table` (a SOURCE_ROW_TABLES table) older than `$cutoff`, counted per file and
    day, as rows of `retention_swept_rows`; run just before `delete_expired_sql`, in its
    transaction. The table's name, from the catalog, is written as the identifier it counts."""
    if table not in SOURCE_ROW_TABLES:
        raise ValueError(f"{table} holds no landing-file rows")
    return (
        "INSERT INTO retention_swept_rows (content_hash, call_date, table_name, rows, swept_at) "
        f"SELECT content_hash, call_date, '{table}', count(*), now() FROM {table} "
        f"WHERE {_expired(one_day)} GROUP BY content_hash, call_date"
    )


def swept_rows_sql() -> str:
    """The rows of the day `$call_date` that a sweep deleted from its landing files' rows."""
    return "SELECT coalesce(sum(rows), 0) FROM retention_swept_rows WHERE call_date = $call_date"
