"""The consent audit (`no_consent_violations`) finds admitted calls that break the rule, on its own
formulation (consent states with validity intervals), independent of the stage's ASOF join."""

import datetime as dt
from collections.abc import Iterator

import duckdb
import pytest

from phone_pipeline.domain.consent import purpose_values
from phone_pipeline.sql import run
from phone_pipeline.stages.consent.checks import consent_violations_sql
from phone_pipeline.warehouse import RESTRICTED_TABLES

A, B = "+12025550101", "+12025550102"
DAY = dt.date(2025, 3, 4)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    for table in ("consent_events", "consented_calls"):
        connection.execute(f"CREATE TABLE {table} ({RESTRICTED_TABLES[table]})")
    events = [
        (A, "analytics", "granted", "2025-03-04 08:00"),
        (A, "analytics", "withdrawn", "2025-03-04 12:00"),
        (A, "marketing", "granted", "2025-03-04 13:00"),  # another purpose changes nothing
        (B, "analytics", "granted", "2025-03-04 10:00"),
        # Two events at one instant: granted only if every one of them grants.
        (B, "analytics", "withdrawn", "2025-03-04 14:00"),
        (B, "analytics", "granted", "2025-03-04 14:00"),
    ]
    for number, purpose, status, at in events:
        connection.execute(
            "INSERT INTO consent_events VALUES (?, ?, ?, CAST(? AS TIMESTAMPTZ), 'test', 'f', 1)",
            [number, purpose, status, at],
        )
    yield connection
    connection.close()


def audit(con: duckdb.DuckDBPyConnection, calls: list[tuple]) -> tuple[int, int, int]:
    """calls: (caller, callee or None, identifiable, started_at)."""
    for n, (caller, callee, identifiable, at) in enumerate(calls):
        con.execute(
            "INSERT INTO consented_calls (call_date, call_id, started_at_utc, duration_seconds, "
            "disposition, caller_e164, callee_e164, callee_identifiable, source_file, source_row) "
            "VALUES (DATE '2025-03-04', ?, CAST(? AS TIMESTAMPTZ), 1, 'answered', ?, ?, ?, 'f', ?)",
            [f"c{n}", at, caller, callee, identifiable, n],
        )
    return run(
        con,
        consent_violations_sql("consented_calls", "consent_events"),
        {"call_date": DAY, **purpose_values("analytics")},
    ).fetchone()


def test_calls_within_granted_states_pass(con: duckdb.DuckDBPyConnection) -> None:
    assert audit(
        con,
        [
            (A, None, False, "2025-03-04 08:00"),  # at the grant itself
            (A, B, True, "2025-03-04 11:59:59"),  # both granted
            (B, None, False, "2025-03-04 13:59:59"),
        ],
    ) == (0, 0, 0)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ((A, None, False, "2025-03-04 07:59:59"), (1, 0, 0)),  # before any event
        ((A, None, False, "2025-03-04 12:00"), (1, 0, 0)),  # at the withdrawal
        ((A, None, False, "2025-03-04 13:30"), (1, 0, 0)),  # marketing is not analytics
        ((B, None, False, "2025-03-04 14:00"), (1, 0, 0)),  # granted and withdrawn at once
        ((B, A, True, "2025-03-04 12:30"), (0, 1, 0)),  # callee kept after withdrawing
        ((B, "+12025550199", True, "2025-03-04 12:30"), (0, 1, 0)),  # callee never asked
        ((B, None, True, "2025-03-04 12:30"), (0, 0, 1)),  # flag without a number
        # Not E.164, though its digits are those of a number that granted: no match.
        (("+0" + A[1:], None, False, "2025-03-04 11:00"), (1, 0, 0)),
        ((A[1:] + "0", None, False, "2025-03-04 11:00"), (1, 0, 0)),
        ((B, " " + A, True, "2025-03-04 11:00"), (0, 1, 0)),
    ],
)
def test_each_violation_is_counted(
    con: duckdb.DuckDBPyConnection, call: tuple, expected: tuple[int, int, int]
) -> None:
    assert audit(con, [call]) == expected
