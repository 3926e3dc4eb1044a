"""Unit tests for phone_pipeline.domain.publication: what each dataset's risk is measured on.

By hand, with k = 2: A and B call in hour 1 from R1 (a published cell of 2), C calls in hour 2
from R1 (a suppressed cell of 1). C's figures can be had by differencing (the day's total minus
the published cell), so C is in a group of 1: share below k = 1/3. Add D in another suppressed
cell: the suppressed cells together describe C and D, a group of 2, and nobody is below k.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import duckdb
import pytest

from phone_pipeline.domain.publication import CALL_VOLUME_HOURLY, CALLS_PSEUDONYMIZED
from phone_pipeline.domain.risk import load_trace_index, measure_k_anonymity
from phone_pipeline.sql import run
from phone_pipeline.warehouse import ANALYTICS, ANALYTICS_TABLES

DAY = {"call_date": dt.date(2026, 11, 1)}


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(f"ATTACH ':memory:' AS {ANALYTICS}")
    for table in ("calls_pseudonymized", "call_volume_hourly"):
        connection.execute(f"CREATE TABLE {ANALYTICS}.{table} ({ANALYTICS_TABLES[table]})")
    yield connection
    connection.close()


def add_call(con, caller: str, hour: int, region: str, callee: str | None = None) -> None:
    con.execute(
        f"INSERT INTO {ANALYTICS}.calls_pseudonymized (call_date, call_hour, caller_pseudonym, "
        "callee_pseudonym, caller_country, caller_number_type, region, duration_seconds, "
        f"disposition) VALUES (DATE '2026-11-01', TIMESTAMPTZ '2026-11-01 00:00:00+00' + to_hours(?), ?, ?, "
        "'US', 'mobile', ?, 60, 'answered')",
        [hour, caller, callee, region],
    )


def add_cell(con, hour: int, region: str, subscribers: int, suppressed: bool) -> None:
    con.execute(
        f"INSERT INTO {ANALYTICS}.call_volume_hourly (call_date, call_hour, region, "
        f"distinct_subscribers, suppressed) VALUES (DATE '2026-11-01', TIMESTAMPTZ '2026-11-01 00:00:00+00' "
        "+ to_hours(?), ?, ?, ?)",
        [hour, region, None if suppressed else subscribers, suppressed],
    )


def hourly_k_anonymity(con):
    return measure_k_anonymity(
        con, CALL_VOLUME_HOURLY.risk_relation(), "subscriber",
        CALL_VOLUME_HOURLY.quasi_identifiers, k=2, values=DAY,
    )  # fmt: skip


def test_suppressed_cells_form_one_group(con) -> None:
    for caller in ("A", "B"):
        add_call(con, caller, 1, "R1")
    add_call(con, "C", 2, "R1")
    add_cell(con, 1, "R1", 2, suppressed=False)
    add_cell(con, 2, "R1", 1, suppressed=True)
    measured = hourly_k_anonymity(con)
    assert measured.histogram == {2: 2, 1: 1}
    assert measured.share_below_k == pytest.approx(1 / 3)
    suppressed = run(
        con,
        f"SELECT count(DISTINCT subscriber) FROM {CALL_VOLUME_HOURLY.suppressed_relation()}",
        DAY,
    ).fetchall()[0][0]
    assert suppressed == 1

    add_call(con, "D", 3, "R2")
    add_cell(con, 3, "R2", 1, suppressed=True)
    measured = hourly_k_anonymity(con)
    assert measured.histogram == {2: 4}
    assert measured.share_below_k == 0


def test_row_level_calls_count_callers_and_callees_once(con) -> None:
    add_call(con, "A", 1, "R1", callee="B")
    add_call(con, "B", 1, "R1")
    add_call(con, "C", 2, "R1", callee="A")
    relation = CALLS_PSEUDONYMIZED.risk_relation()
    measured = measure_k_anonymity(
        con, relation, "subscriber", CALLS_PSEUDONYMIZED.quasi_identifiers, k=2, values=DAY
    )
    # Caller groups: (1, R1) = {A, B}, (2, R1) = {C}; callee groups: hour 1 = {B}, hour 2 = {A}.
    # Smallest: A 1 (callee at hour 2), B 1 (callee at hour 1), C 1.
    assert measured.histogram == {1: 3}
    # Traces are the callers' (hour, region) points only.
    index = load_trace_index(
        con, f"(SELECT * FROM {relation} WHERE trace_time IS NOT NULL)",
        "subscriber", "trace_time", "trace_place", DAY,
    )  # fmt: skip
    assert [index.trace(s).tolist() for s in range(index.subscribers)] == [[0], [0], [1]]
