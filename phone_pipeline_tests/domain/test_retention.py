"""Unit tests for phone_pipeline.domain.retention: cutoffs, boundaries, refusals, the SQL."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from phone_pipeline import catalog
from phone_pipeline.domain.retention import (
    AGGREGATES,
    PSEUDONYMIZED,
    RESTRICTED,
    RETENTION_TABLES,
    RetentionPolicy,
    delete_expired_sql,
    expired_rows_sql,
    retention_cutoff,
)
from phone_pipeline.sql import run

TODAY = dt.date(2026, 11, 23)


def test_cutoff_is_today_minus_the_days_and_zero_keeps_everything() -> None:
    assert retention_cutoff(TODAY, 90) == dt.date(2026, 8, 25)
    assert retention_cutoff(TODAY, 1) == dt.date(2026, 11, 22)
    assert retention_cutoff(TODAY, 0) is None
    with pytest.raises(ValueError):
        retention_cutoff(TODAY, -1)
    with pytest.raises(ValueError):
        RetentionPolicy(restricted_days=-5, pseudonymized_days=396, aggregates_days=0)


@pytest.mark.parametrize(
    ("zone", "days"), [(RESTRICTED, 90), (PSEUDONYMIZED, 396), (AGGREGATES, 30)]
)
def test_partition_at_the_cutoff_is_kept_the_day_before_is_refused(zone: str, days: int) -> None:
    policy = RetentionPolicy(restricted_days=90, pseudonymized_days=396, aggregates_days=30)
    cutoff = TODAY - dt.timedelta(days=days)
    assert policy.cutoff(zone, TODAY) == cutoff
    assert policy.refusal(zone, cutoff, TODAY) is None
    assert policy.refusal(zone, TODAY, TODAY) is None
    reason = policy.refusal(zone, cutoff - dt.timedelta(days=1), TODAY)
    assert reason is not None
    assert zone in reason and str(cutoff) in reason and f"{days} days" in reason


def test_zero_days_never_refuses() -> None:
    policy = RetentionPolicy(restricted_days=0, pseudonymized_days=0, aggregates_days=0)
    assert policy.refusal(RESTRICTED, dt.date(2000, 1, 1), TODAY) is None


def test_expired_rows_sql_counts_and_deletes_only_rows_before_the_cutoff() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (call_date DATE, n INTEGER)")
    days = [dt.date(2026, 8, 23), dt.date(2026, 8, 24), dt.date(2026, 8, 25), dt.date(2026, 8, 26)]
    con.executemany("INSERT INTO t VALUES (?, ?)", [[day, 1] for day in days for _ in range(3)])
    cutoff = {"cutoff": dt.date(2026, 8, 25)}
    assert run(con, expired_rows_sql("t"), cutoff).fetchone()[0] == 6
    run(con, delete_expired_sql("t"), cutoff)
    remaining = con.execute("SELECT call_date, count(*) FROM t GROUP BY 1 ORDER BY 1").fetchall()
    assert remaining == [(dt.date(2026, 8, 25), 3), (dt.date(2026, 8, 26), 3)]


def test_every_day_partitioned_restricted_table_is_swept() -> None:
    # Each holds phone numbers or rows of them: kept past retention, the zone would keep them too.
    # The sweep's own log (counts per file and day) is the one exception.
    partitioned = {
        table.name for table in catalog.zone_tables(catalog.RESTRICTED) if table.partition
    }
    assert partitioned - {"retention_swept_rows"} == set(RETENTION_TABLES[RESTRICTED])


DEFAULTS = RetentionPolicy(restricted_days=90, pseudonymized_days=396, aggregates_days=0)


def test_a_backfill_past_the_restricted_retention_is_processed_once() -> None:
    old = TODAY - dt.timedelta(days=200)
    assert DEFAULTS.zones_past(old, TODAY) == [RESTRICTED]
    assert DEFAULTS.oldest_processed(TODAY) is None  # aggregates are kept forever
    assert DEFAULTS.processing_refusal(old, TODAY, rows_present=10, rows_swept=0) is None
    swept = DEFAULTS.processing_refusal(old, TODAY, rows_present=3, rows_swept=10)
    assert swept is not None and "already swept" in swept
    assert "PHONE_PIPELINE_RETENTION_RESTRICTED_DAYS=90" in swept
    assert str(TODAY - dt.timedelta(days=90)) in swept
    nothing = DEFAULTS.processing_refusal(old, TODAY, rows_present=0, rows_swept=0)
    assert nothing is not None and "no restricted rows" in nothing
    # Within every retention nothing is refused, whatever the rows.
    assert DEFAULTS.processing_refusal(TODAY, TODAY, rows_present=0, rows_swept=0) is None


def test_a_day_past_every_retention_is_never_processed() -> None:
    policy = RetentionPolicy(restricted_days=90, pseudonymized_days=150, aggregates_days=180)
    assert policy.oldest_processed(TODAY) == TODAY - dt.timedelta(days=180)
    day = TODAY - dt.timedelta(days=181)
    assert policy.zones_past(day, TODAY) == [RESTRICTED, PSEUDONYMIZED, AGGREGATES]
    reason = policy.processing_refusal(day, TODAY, rows_present=10, rows_swept=0)
    assert reason is not None and "every zone would delete" in reason
    assert "PHONE_PIPELINE_RETENTION_AGGREGATES_DAYS=180" in reason
    # One day younger: the aggregates keep it, so it is a backfill.
    assert policy.processing_refusal(day + dt.timedelta(days=1), TODAY, 10, 0) is None


def test_the_sweep_of_one_partition_leaves_the_others() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (call_date DATE, n INTEGER)")
    days = [dt.date(2026, 8, 23), dt.date(2026, 8, 24), dt.date(2026, 8, 25)]
    con.executemany("INSERT INTO t VALUES (?, ?)", [[day, 1] for day in days])
    cutoff = dt.date(2026, 8, 25)
    first, last = ({"cutoff": cutoff, "call_date": day} for day in (days[0], days[2]))
    assert run(con, expired_rows_sql("t", one_day=True), first).fetchone()[0] == 1
    run(con, delete_expired_sql("t", one_day=True), first)
    run(con, delete_expired_sql("t", one_day=True), last)  # at the cutoff: kept
    assert [row[0] for row in con.execute("SELECT call_date FROM t ORDER BY 1").fetchall()] == (
        days[1:]
    )
