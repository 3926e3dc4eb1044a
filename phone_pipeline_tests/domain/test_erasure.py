"""Unit tests for phone_pipeline.domain.erasure: register entries, matching, request rows."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from phone_pipeline.domain.erasure import (
    RegisterEntry,
    RegisterKeyError,
    classify_erasure_requests_sql,
    consent_change_partitions_sql,
    erased_numbers,
    register_entries,
)
from phone_pipeline.domain.pseudonyms import Pseudonymizer
from phone_pipeline.domain.validation import known_numbers_sql

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
    assert [row[0].isoformat() for row in con.execute(sql).fetchall()] == ["2026-11-03"]
    # A removed event counts too (the registry lost it): from its time on.
    assert [
        row[0].isoformat()
        for row in con.execute(
            consent_change_partitions_sql("new_events", "old_events", known)
        ).fetchall()
    ] == ["2026-11-03"]
