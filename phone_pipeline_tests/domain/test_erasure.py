"""Unit tests for phone_pipeline.domain.erasure: register entries, matching, request rows."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from phone_pipeline.domain.consent import purpose_values
from phone_pipeline.domain.erasure import (
    RegisterEntry,
    RegisterKeyError,
    classify_erasure_requests_sql,
    consent_change_partitions_sql,
    erased_numbers,
    register_entries,
    resolve_request_ids_sql,
)
from phone_pipeline.domain.pseudonyms import Pseudonymizer
from phone_pipeline.domain.validation import known_numbers_sql
from phone_pipeline.sql import run

KEY_ONE, KEY_TWO = bytes(range(32)), bytes(range(1, 33))
V1, V2 = Pseudonymizer(KEY_ONE, 1), Pseudonymizer(KEY_TWO, 2)
ERASED, KEPT = "+12125550101", "+12125550102"


def test_one_entry_per_request_and_key_version_never_the_number() -> None:
    entries = register_entries({"r-2": KEPT, "r-1": ERASED}, {2: V2, 1: V1})
    assert entries == [
        RegisterEntry("r-1", 1, V1.pseudonym(ERASED)),
        RegisterEntry("r-1", 2, V2.pseudonym(ERASED)),
        RegisterEntry("r-2", 1, V1.pseudonym(KEPT)),
        RegisterEntry("r-2", 2, V2.pseudonym(KEPT)),
    ]
    assert all(ERASED not in repr(entry) and KEPT not in repr(entry) for entry in entries)


def test_numbers_match_under_any_version_both_registered_and_configured() -> None:
    register = {1: {V1.pseudonym(ERASED)}}
    assert erased_numbers([ERASED, KEPT, ERASED], register, {1: V1, 2: V2}) == {ERASED}
    # Registered under v2 only, v1 also configured: matched under v2.
    assert erased_numbers([ERASED, KEPT], {2: {V2.pseudonym(ERASED)}}, {1: V1, 2: V2}) == {ERASED}
    assert erased_numbers([KEPT], register, {1: V1}) == set()


def test_empty_register_needs_no_key() -> None:
    assert erased_numbers([ERASED], {}, {}) == set()


def test_register_without_a_configured_version_refuses_to_match() -> None:
    with pytest.raises(RegisterKeyError, match=r"\[1\]") as error:
        erased_numbers([ERASED], {1: {V1.pseudonym(ERASED)}}, {2: V2})
    assert ERASED not in str(error.value)


def test_request_rows_are_classified_with_a_reason() -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    staged = pd.DataFrame(
        {
            "source_file": "requests.csv",
            "source_row": [1, 2, 3, 4],
            "phone_number": ["(212) 555-0101", "garbage", "+12125550102", "+12125550103"],
            "requested_at": ["2026-11-03T10:00:00Z", "2026-11-03", "yesterday", "2026-11-03 10:00"],
            "request_id": ["r-1", "r-2", "r-3", "  "],
        }
    )
    parsed = pd.DataFrame(
        {
            "raw_number": ["(212) 555-0101", "garbage", "+12125550102", "+12125550103"],
            "e164": [ERASED, None, KEPT, "+12125550103"],
        }
    )
    con.register("staged", staged)
    con.register("parsed", parsed)
    rows = con.execute(
        f"SELECT source_row, e164, reason FROM ({classify_erasure_requests_sql('staged', 'parsed')}) "
        "ORDER BY source_row"
    ).fetchall()
    assert rows == [
        (1, ERASED, None),
        (2, None, "invalid_phone_number"),
        (3, KEPT, "bad_requested_at"),
        (4, "+12125550103", "missing_request_id"),
    ]


OTHER = "+12125550103"
AT = "2026-11-03T10:00:00Z"


def resolved(rows: list[tuple], registered: list[tuple] | None = None) -> list[tuple]:
    """(file, row, number, requested_at, id) request rows -> (file, row, reason) after ids are
    resolved; `registered` rows are (request_id, requested_at, e164) of earlier runs."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register(
        "staged",
        pd.DataFrame(
            rows,
            columns=["source_file", "source_row", "phone_number", "requested_at", "request_id"],
        ),
    )
    numbers = {row[2] for row in rows}
    con.register(
        "parsed",
        pd.DataFrame({"raw_number": sorted(numbers), "e164": [n[-12:] for n in sorted(numbers)]}),
    )
    con.execute(
        "CREATE TEMP TABLE classified AS " + classify_erasure_requests_sql("staged", "parsed")
    )
    con.execute(
        "CREATE TEMP TABLE registered (request_id VARCHAR, requested_at TIMESTAMPTZ, e164 VARCHAR)"
    )
    for row in registered or []:
        con.execute("INSERT INTO registered VALUES (?, ?, ?)", row)
    return con.execute(
        "SELECT source_file, source_row, reason FROM "
        f"({resolve_request_ids_sql('classified', 'registered')}) ORDER BY 1, 2"
    ).fetchall()


def test_one_request_id_names_one_request() -> None:
    rows = [
        ("a.csv", 1, ERASED, AT, "r-1"),
        ("a.csv", 2, KEPT, AT, "r-1"),  # another number under r-1
        ("a.csv", 3, "x" + ERASED, AT, "r-1"),  # the same number spelt otherwise: a repeat
        ("a.csv", 4, ERASED, "2026-11-04T10:00:00Z", "r-1"),  # another time
        ("a.csv", 5, OTHER, AT, "r-2"),
        ("b.csv", 1, ERASED, "2026-11-03T11:00:00+01:00", "r-1"),  # the same instant: a repeat
        ("b.csv", 2, OTHER, AT, " r-2 "),  # the same id, spaces aside: a repeat
        ("b.csv", 3, KEPT, AT, "r-3"),
    ]
    assert resolved(rows) == [
        ("a.csv", 1, None),
        ("a.csv", 2, "duplicate_request_id"),
        ("a.csv", 3, None),
        ("a.csv", 4, "duplicate_request_id"),
        ("a.csv", 5, None),
        ("b.csv", 1, None),
        ("b.csv", 2, None),
        ("b.csv", 3, None),
    ]


def test_a_file_landed_twice_repeats_its_requests() -> None:
    rows = [("a.csv", 1, ERASED, AT, "r-1"), ("a.csv", 2, KEPT, AT, "r-2")]
    twice = rows + [("copy.csv", row, number, at, rid) for _, row, number, at, rid in rows]
    assert {reason for *_, reason in resolved(twice)} == {None}


def test_a_request_id_registered_earlier_keeps_its_request() -> None:
    registered = [("r-1", "2026-11-03 10:00:00+00", KEPT), ("r-2", "2026-11-03 10:00:00+00", None)]
    rows = [
        ("a.csv", 1, ERASED, AT, "r-1"),  # first in the files, but r-1 is KEPT's request
        ("a.csv", 2, KEPT, AT, "r-1"),
        ("a.csv", 3, KEPT, "2026-11-04T10:00:00Z", "r-1"),
        ("a.csv", 4, OTHER, AT, "r-2"),  # no row has r-2's registered number
    ]
    assert resolved(rows, registered) == [
        ("a.csv", 1, "duplicate_request_id"),
        ("a.csv", 2, None),
        ("a.csv", 3, "duplicate_request_id"),
        ("a.csv", 4, "duplicate_request_id"),
    ]


def test_consent_changes_name_the_dates_of_later_calls() -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    events = "e164 VARCHAR, purpose VARCHAR, status VARCHAR, recorded_at TIMESTAMPTZ"
    con.execute(f"CREATE TABLE old_events ({events})")
    con.execute(f"CREATE TABLE new_events ({events})")
    granted = [(ERASED, "analytics", "granted", "2026-10-01 00:00:00+00")]
    con.executemany("INSERT INTO old_events VALUES (?, ?, ?, ?)", granted)
    con.executemany(
        "INSERT INTO new_events VALUES (?, ?, ?, ?)",
        [*granted, (ERASED, "analytics", "withdrawn", "2026-11-02 12:00:00+00"),
         (KEPT, "marketing", "withdrawn", "2026-11-01 00:00:00+00")],
    )  # fmt: skip
    con.execute(
        "CREATE TABLE calls AS SELECT * FROM (VALUES "
        f"(DATE '2026-11-01', '{ERASED}', '{KEPT}', TIMESTAMPTZ '2026-11-01 10:00:00+00'), "
        f"(DATE '2026-11-02', '{ERASED}', '{KEPT}', TIMESTAMPTZ '2026-11-02 11:00:00+00'), "
        f"(DATE '2026-11-02', '{KEPT}', '{KEPT}', TIMESTAMPTZ '2026-11-02 13:00:00+00'), "
        f"(DATE '2026-11-03', '{KEPT}', '{ERASED}', TIMESTAMPTZ '2026-11-03 09:00:00+00')"
        ") AS t(call_date, caller_e164, callee_e164, started_at_utc)"
    )
    known = f"({known_numbers_sql('calls')})"
    sql = consent_change_partitions_sql("old_events", "new_events", known)
    # The withdrawal at noon on the 2nd: the call at 11:00 is before it; as callee on the 3rd.
    # The marketing event changes nothing for analytics.
    analytics = purpose_values("analytics")
    assert [row[0].isoformat() for row in run(con, sql, analytics).fetchall()] == ["2026-11-03"]
    # A removed event counts too (the registry lost it): from its time on.
    assert [
        row[0].isoformat()
        for row in run(
            con, consent_change_partitions_sql("new_events", "old_events", known), analytics
        ).fetchall()
    ] == ["2026-11-03"]
