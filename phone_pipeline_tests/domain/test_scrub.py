"""Unit tests for phone_pipeline.domain.scrub: each reason of the scrub list on hand-made tables.
Fictional numbers only (NANP 212-555-01xx)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import duckdb
import pytest

from phone_pipeline.domain.scrub import (
    CAP_7D,
    CAP_24H,
    DNC_LISTED,
    NEVER_GRANTED,
    WITHDRAWN,
    scrub_list_sql,
    scrub_values,
)
from phone_pipeline.domain.validation import known_numbers_sql
from phone_pipeline.sql import run
from phone_pipeline.stages.scrub.checks import numbers_missing_from_scrub_list_sql
from phone_pipeline.warehouse import RESTRICTED_TABLES

VALUES = scrub_values(dt.datetime(2026, 11, 1, tzinfo=dt.UTC), 3, 7)
A, B, C, D, E, F, G, H, L, J, K = (f"+1212555{n:04d}" for n in range(101, 112))


# What the validate stage keeps of the calls, per day (here computed from the table as it is).
KNOWN = f"({known_numbers_sql('calls_validated')})"


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    for table in ("calls_validated", "consent_events", "dnc_registry"):
        connection.execute(f"CREATE TABLE {table} ({RESTRICTED_TABLES[table]})")
    yield connection
    connection.close()


def call(con: duckdb.DuckDBPyConnection, callee: str, started: str) -> None:
    con.execute(
        "INSERT INTO calls_validated (call_date, call_id, started_at_utc, duration_seconds, "
        "disposition, caller_e164, callee_e164, source_file, source_row) "
        "VALUES (?, ?, ?, 30, 'answered', ?, ?, 'f.csv', 1)",
        [at(started).date(), f"{callee}-{started}", at(started), A, callee],
    )


def event(con: duckdb.DuckDBPyConnection, number: str, purpose: str, status: str, when: str):
    con.execute(
        "INSERT INTO consent_events VALUES (?, ?, ?, ?, 'web-form', 'c.csv', 1)",
        [number, purpose, status, at(when)],
    )


def listing(con: duckdb.DuckDBPyConnection, number: str, when: str) -> None:
    con.execute("INSERT INTO dnc_registry VALUES (?, ?, 'dnc.csv', 1)", [number, at(when)])


def scrub(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str, dt.datetime]]:
    sql = scrub_list_sql("calls_validated", KNOWN, "consent_events", "dnc_registry")
    return set(run(con, sql, VALUES).fetchall())


def test_each_reason_with_its_since(con: duckdb.DuckDBPyConnection) -> None:
    for number in (A, B, C, G, H, L, J, K):
        event(con, number, "marketing", "granted", "2026-10-01T00:00")
    event(con, B, "marketing", "withdrawn", "2026-10-15T00:00")
    event(con, B, "marketing", "withdrawn", "2026-10-20T00:00")  # still withdrawn since the 15th
    event(con, C, "marketing", "withdrawn", "2026-10-10T00:00")
    event(con, C, "marketing", "granted", "2026-10-12T00:00")  # granted again: not scrubbed
    event(con, D, "marketing", "granted", "2026-10-05T00:00")
    event(con, D, "marketing", "withdrawn", "2026-10-05T00:00")  # a tie resolves to withdrawn
    event(con, E, "analytics", "granted", "2026-10-01T00:00")  # known, never asked marketing
    event(con, H, "marketing", "withdrawn", "2026-11-02T00:00")  # not yet: after now
    listing(con, G, "2026-10-28T00:00")
    listing(con, G, "2026-10-25T00:00")
    listing(con, L, "2026-11-05T00:00")  # listed in the future
    call(con, E, "2026-10-30T10:00")
    call(con, F, "2026-10-30T10:00")  # a callee with no consent event at all
    for started in ("2026-10-31T01:00", "2026-10-31T12:00", "2026-10-31T20:00"):
        call(con, J, started)  # three in the last 24 hours: the 24 h cap is reached
    for day in range(25, 32):
        call(con, K, f"2026-10-{day}T09:00")  # seven in the last 7 days: the 7 d cap

    assert scrub(con) == {
        (B, WITHDRAWN, at("2026-10-15T00:00")),
        (D, WITHDRAWN, at("2026-10-05T00:00")),
        (E, NEVER_GRANTED, at("2026-10-01T00:00")),
        (F, NEVER_GRANTED, at("2026-10-30T10:00")),
        (G, DNC_LISTED, at("2026-10-25T00:00")),
        (J, CAP_24H, at("2026-10-31T20:00")),
        (K, CAP_7D, at("2026-10-31T09:00")),
    }


def test_withdrawal_then_call_is_scrubbed_and_the_gate_agrees(
    con: duckdb.DuckDBPyConnection,
) -> None:
    for number in (A, B):  # A is the caller of every call
        event(con, number, "marketing", "granted", "2026-10-01T00:00")
    call(con, B, "2026-10-20T10:00")
    assert scrub(con) == set()
    event(con, B, "marketing", "withdrawn", "2026-10-21T00:00")
    call(con, B, "2026-10-22T10:00")  # called after withdrawing
    assert scrub(con) == {(B, WITHDRAWN, at("2026-10-21T00:00"))}

    listing(con, C, "2026-10-01T00:00")
    run(
        con,
        "CREATE TABLE scrub_list AS SELECT * FROM ("
        + scrub_list_sql("calls_validated", KNOWN, "consent_events", "dnc_registry")
        + ")",
        VALUES,
    )
    missing = numbers_missing_from_scrub_list_sql(
        "scrub_list", KNOWN, "consent_events", "dnc_registry"
    )
    assert run(con, missing, VALUES).fetchone() == (0, 0)
    con.execute("DELETE FROM scrub_list WHERE e164 IN (?, ?)", [B, C])
    assert run(con, missing, VALUES).fetchone() == (1, 1)  # the gate notices both


def test_cap_reached_is_the_cap_th_call_of_the_window(con: duckdb.DuckDBPyConnection) -> None:
    for number in (A, B, C, D):
        event(con, number, "marketing", "granted", "2026-10-01T00:00")
    # The latest call (the reference) is at 20:00 on 31 Oct; its 24 hours start 30 Oct 20:00.
    for started in ("2026-10-30T19:59", "2026-10-30T20:00", "2026-10-31T08:00", "2026-10-31T09:00",
                    "2026-10-31T20:00"):  # fmt: skip
        call(con, B, started)  # four in the window (from 20:00 on the 30th, inclusive)
    for started in ("2026-10-31T10:00", "2026-10-31T11:00"):
        call(con, C, started)  # two: one short of the cap
    for started in ("2026-10-31T12:00", "2026-10-31T12:00", "2026-10-31T12:00"):
        call(con, D, started)  # three at one instant
    assert scrub(con) == {
        (B, CAP_24H, at("2026-10-31T09:00")),  # the third of the window, not of all calls
        (D, CAP_24H, at("2026-10-31T12:00")),
    }
