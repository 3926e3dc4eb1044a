"""Unit tests for phone_pipeline.domain.consent.

The SQL the pipeline runs (`consent_as_of_sql`, a DuckDB ASOF join) is compared with the pure-Python
statement of the rule (`consent_granted_at`) on hand-written cases and on a seeded random history.
Only fictional numbers: NANP 212-555-01xx and the UK drama block 020 7946 0xxx.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator, Sequence

import duckdb
import pytest

from phone_pipeline.domain.consent import (
    CALLER_NO_CONSENT,
    CALLER_WITHDRAWN,
    CONSENT_QUARANTINE_REASONS,
    EXCLUSION_REASONS,
    PURPOSES,
    ConsentEvent,
    classify_consent_events_sql,
    consent_as_of_sql,
    consent_granted_at,
    exclusion_reason_sql,
    purpose_values,
)
from phone_pipeline.domain.validation import region_values
from phone_pipeline.sql import run
from phone_pipeline.stages.validate.number_cache import cache_new_numbers
from phone_pipeline.warehouse import RESTRICTED_TABLES

UTC = dt.UTC
ALICE = "+12125550101"
BOB = "+12125550102"
CAROL = "+442079460103"
DAVE = "+12125550104"

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(
        "CREATE TABLE events (e164 VARCHAR, purpose VARCHAR, status VARCHAR, "
        "recorded_at TIMESTAMPTZ)"
    )
    connection.execute(
        "CREATE TABLE calls (call_id VARCHAR, caller_e164 VARCHAR, callee_e164 VARCHAR, "
        "started_at_utc TIMESTAMPTZ)"
    )
    yield connection
    connection.close()


Call = tuple[str, str, str | None, dt.datetime]  # call_id, caller, callee, started_at


def load(
    con: duckdb.DuckDBPyConnection, events: Sequence[ConsentEvent], calls: Sequence[Call]
) -> None:
    if events:
        con.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?)",
            [(e.e164, e.purpose, e.status, e.recorded_at) for e in events],
        )
    if calls:
        con.executemany("INSERT INTO calls VALUES (?, ?, ?, ?)", list(calls))


def sql_states(
    con: duckdb.DuckDBPyConnection, purpose: str = "analytics"
) -> dict[str, tuple[bool | None, bool | None]]:
    """call_id -> (caller_consent, callee_consent) as the pipeline's SQL computes them."""
    rows = run(
        con,
        f"SELECT call_id, caller_consent, callee_consent FROM ({consent_as_of_sql('calls', 'events')})",
        purpose_values(purpose),
    ).fetchall()
    states = {call_id: (caller, callee) for call_id, caller, callee in rows}
    assert len(states) == len(rows), "the ASOF join must keep exactly one row per call"
    return states


def reference_state(
    events: Sequence[ConsentEvent], e164: str | None, purpose: str, when: dt.datetime
) -> bool | None:
    """The documented rule: None when no event at or before `when`, else the reference verdict."""
    if e164 is None:
        return None
    if not any(e.e164 == e164 and e.purpose == purpose and e.recorded_at <= when for e in events):
        return None
    return consent_granted_at(events, e164, purpose, when)


def reference_states(
    events: Sequence[ConsentEvent], calls: Sequence[Call], purpose: str = "analytics"
) -> dict[str, tuple[bool | None, bool | None]]:
    return {
        call_id: (
            reference_state(events, caller, purpose, started),
            reference_state(events, callee, purpose, started),
        )
        for call_id, caller, callee, started in calls
    }


def grant(e164: str, when: dt.datetime, purpose: str = "analytics") -> ConsentEvent:
    return ConsentEvent(e164, purpose, "granted", when)


def withdraw(e164: str, when: dt.datetime, purpose: str = "analytics") -> ConsentEvent:
    return ConsentEvent(e164, purpose, "withdrawn", when)


# --- the pure-Python reference itself ---------------------------------------------------------


def test_reference_rule_on_its_own() -> None:
    events = [grant(ALICE, at(0)), withdraw(ALICE, at(10)), grant(ALICE, at(20))]
    assert not consent_granted_at([], ALICE, "analytics", at(5))
    assert not consent_granted_at(events, ALICE, "analytics", at(-1))
    assert consent_granted_at(events, ALICE, "analytics", at(0))
    assert consent_granted_at(events, ALICE, "analytics", at(9.99))
    assert not consent_granted_at(events, ALICE, "analytics", at(10))
    assert consent_granted_at(events, ALICE, "analytics", at(20))
    assert not consent_granted_at(events, ALICE, "marketing", at(30))
    assert not consent_granted_at(events, BOB, "analytics", at(30))
    tie = [grant(BOB, at(0)), withdraw(BOB, at(0))]
    assert not consent_granted_at(tie, BOB, "analytics", at(1))


# --- hand-written cases: SQL and reference agree, and both say what the rule says --------------


def test_no_events_means_no_consent(con: duckdb.DuckDBPyConnection) -> None:
    calls = [("c1", ALICE, BOB, at(0))]
    load(con, [], calls)
    assert sql_states(con) == {"c1": (None, None)}
    assert reference_states([], calls) == {"c1": (None, None)}


def test_grant_before_call(con: duckdb.DuckDBPyConnection) -> None:
    events = [grant(ALICE, at(-60))]
    calls = [("c1", ALICE, BOB, at(0))]
    load(con, events, calls)
    assert sql_states(con) == {"c1": (True, None)}
    assert sql_states(con) == reference_states(events, calls)


def test_grant_after_call_does_not_count(con: duckdb.DuckDBPyConnection) -> None:
    events = [grant(ALICE, at(1))]
    calls = [("before", ALICE, BOB, at(0)), ("after", ALICE, BOB, at(2))]
    load(con, events, calls)
    assert sql_states(con) == {"before": (None, None), "after": (True, None)}
    assert sql_states(con) == reference_states(events, calls)


def test_grant_withdraw_grant_with_a_call_in_every_interval(
    con: duckdb.DuckDBPyConnection,
) -> None:
    events = [grant(ALICE, at(0)), withdraw(ALICE, at(10)), grant(ALICE, at(20))]
    calls = [
        ("before_any", ALICE, BOB, at(-5)),
        ("first_grant", ALICE, BOB, at(5)),
        ("withdrawn", ALICE, BOB, at(15)),
        ("regranted", ALICE, BOB, at(25)),
        ("much_later", ALICE, BOB, at(60 * 24 * 30)),
    ]
    load(con, events, calls)
    expected = {
        "before_any": (None, None),
        "first_grant": (True, None),
        "withdrawn": (False, None),
        "regranted": (True, None),
        "much_later": (True, None),
    }
    assert sql_states(con) == expected
    assert reference_states(events, calls) == expected


def test_event_exactly_at_call_time_counts(con: duckdb.DuckDBPyConnection) -> None:
    events = [grant(ALICE, at(0)), withdraw(ALICE, at(10))]
    calls = [
        ("at_grant", ALICE, BOB, at(0)),
        ("just_before_withdraw", ALICE, BOB, at(10) - dt.timedelta(microseconds=1)),
        ("at_withdraw", ALICE, BOB, at(10)),
    ]
    load(con, events, calls)
    expected = {
        "at_grant": (True, None),
        "just_before_withdraw": (True, None),
        "at_withdraw": (False, None),
    }
    assert sql_states(con) == expected
    assert reference_states(events, calls) == expected


def test_instants_are_compared_not_wall_clock_times(con: duckdb.DuckDBPyConnection) -> None:
    # 13:00 at +02:00 is 11:00 UTC: before a call at 11:30 UTC, although "13:00" > "11:30".
    plus_two = dt.timezone(dt.timedelta(hours=2))
    events = [grant(ALICE, dt.datetime(2026, 11, 1, 13, 0, tzinfo=plus_two))]
    calls = [
        ("after", ALICE, BOB, dt.datetime(2026, 11, 1, 11, 30, tzinfo=UTC)),
        ("before", ALICE, BOB, dt.datetime(2026, 11, 1, 10, 59, tzinfo=UTC)),
    ]
    load(con, events, calls)
    assert sql_states(con) == {"after": (True, None), "before": (None, None)}
    assert sql_states(con) == reference_states(events, calls)


@pytest.mark.parametrize("order", ["grant_first", "withdraw_first"])
def test_same_instant_grant_and_withdraw_resolves_to_withdrawn(
    con: duckdb.DuckDBPyConnection, order: str
) -> None:
    pair = [grant(ALICE, at(0)), withdraw(ALICE, at(0))]
    events = pair if order == "grant_first" else pair[::-1]
    events = [grant(ALICE, at(-10)), *events]  # an earlier grant must not win either
    calls = [("c1", ALICE, BOB, at(0)), ("c2", ALICE, BOB, at(5))]
    load(con, events, calls)
    expected = {"c1": (False, None), "c2": (False, None)}
    assert sql_states(con) == expected
    assert reference_states(events, calls) == expected


def test_duplicate_grants_at_one_instant_stay_granted(con: duckdb.DuckDBPyConnection) -> None:
    events = [grant(ALICE, at(0)), grant(ALICE, at(0))]
    calls = [("c1", ALICE, BOB, at(1))]
    load(con, events, calls)
    assert sql_states(con) == {"c1": (True, None)}
    assert sql_states(con) == reference_states(events, calls)


def test_purposes_are_kept_apart(con: duckdb.DuckDBPyConnection) -> None:
    events = [
        grant(ALICE, at(0), purpose="marketing"),
        grant(BOB, at(0), purpose="analytics"),
        withdraw(BOB, at(5), purpose="marketing"),
    ]
    calls = [("c1", ALICE, BOB, at(10))]
    load(con, events, calls)
    assert sql_states(con, "analytics") == {"c1": (None, True)}
    assert sql_states(con, "marketing") == {"c1": (True, False)}
    for purpose in PURPOSES:
        assert sql_states(con, purpose) == reference_states(events, calls, purpose)


def test_unknown_purpose_is_refused_before_reaching_sql() -> None:
    with pytest.raises(ValueError, match="unknown consent purpose"):
        purpose_values("analytics' OR TRUE --")
    with pytest.raises(ValueError, match="unknown consent purpose"):
        purpose_values("Analytics")


def test_several_numbers_interleaved(con: duckdb.DuckDBPyConnection) -> None:
    events = [
        grant(ALICE, at(0)),
        grant(BOB, at(1)),
        withdraw(ALICE, at(2)),
        grant(CAROL, at(3)),
        withdraw(BOB, at(4)),
        grant(ALICE, at(5)),
        withdraw(CAROL, at(6)),
    ]
    calls = [
        ("a", ALICE, BOB, at(0.5)),
        ("b", BOB, ALICE, at(1.5)),
        ("c", ALICE, CAROL, at(2.5)),
        ("d", CAROL, BOB, at(3.5)),
        ("e", BOB, CAROL, at(4.5)),
        ("f", ALICE, BOB, at(5.5)),
        ("g", CAROL, ALICE, at(6.5)),
        ("h", DAVE, ALICE, at(6.5)),
    ]
    load(con, events, calls)
    expected = {
        "a": (True, None),
        "b": (True, True),
        "c": (False, None),
        "d": (True, True),
        "e": (False, True),
        "f": (True, False),
        "g": (False, True),
        "h": (None, True),
    }
    assert reference_states(events, calls) == expected
    assert sql_states(con) == expected


def test_caller_and_callee_columns_are_looked_up_separately(
    con: duckdb.DuckDBPyConnection,
) -> None:
    events = [grant(ALICE, at(0)), withdraw(BOB, at(0))]
    calls = [
        ("alice_calls_bob", ALICE, BOB, at(1)),
        ("bob_calls_alice", BOB, ALICE, at(1)),
        ("alice_calls_nobody_known", ALICE, DAVE, at(1)),
        ("no_callee_number", DAVE, None, at(1)),
    ]
    load(con, events, calls)
    expected = {
        "alice_calls_bob": (True, False),
        "bob_calls_alice": (False, True),
        "alice_calls_nobody_known": (True, None),
        "no_callee_number": (None, None),
    }
    assert sql_states(con) == expected
    assert reference_states(events, calls) == expected


def test_all_call_columns_are_passed_through(con: duckdb.DuckDBPyConnection) -> None:
    load(con, [grant(ALICE, at(0))], [("c1", ALICE, BOB, at(1)), ("c2", BOB, ALICE, at(1))])
    result = run(con, consent_as_of_sql("calls", "events"), purpose_values("analytics"))
    names = [column[0] for column in result.description]
    assert names == [
        "call_id",
        "caller_e164",
        "callee_e164",
        "started_at_utc",
        "caller_consent",
        "callee_consent",
    ]
    assert len(result.fetchall()) == 2


# --- randomized comparison --------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sql_matches_reference_on_random_histories(
    con: duckdb.DuckDBPyConnection, seed: int
) -> None:
    rng = random.Random(seed)
    numbers = [f"+1212555{n:04d}" for n in range(100, 112)]
    # A coarse grid of instants makes ties (same-instant events, calls at event times) common.
    instants = [at(10 * step) for step in range(40)]
    events = [
        ConsentEvent(
            rng.choice(numbers),
            rng.choice(PURPOSES),
            rng.choice(("granted", "granted", "withdrawn")),
            rng.choice(instants),
        )
        for _ in range(250)
    ]
    calls: list[Call] = []
    for index in range(400):
        started = rng.choice(instants) + rng.choice(
            [dt.timedelta(0), dt.timedelta(0), dt.timedelta(minutes=rng.uniform(-9, 9))]
        )
        callee = rng.choice([*numbers, None])
        calls.append((f"call{index}", rng.choice(numbers), callee, started))
    load(con, events, calls)

    for purpose in PURPOSES:
        expected = reference_states(events, calls, purpose)
        actual = sql_states(con, purpose)
        mismatches = {
            key: (actual[key], expected[key]) for key in expected if actual[key] != expected[key]
        }
        assert not mismatches
    # The random history must actually exercise every outcome, or the comparison proves little.
    outcomes = {state for pair in reference_states(events, calls).values() for state in pair}
    assert outcomes == {True, False, None}


# --- exclusion reasons ------------------------------------------------------------------------


def test_exclusion_reason_values() -> None:
    rows = duckdb.sql(
        f"SELECT label, {exclusion_reason_sql()} FROM (VALUES ('granted', TRUE), "
        "('withdrawn', FALSE), ('none', NULL)) AS t(label, caller_consent)"
    ).fetchall()
    assert dict(rows) == {"granted": None, "withdrawn": CALLER_WITHDRAWN, "none": CALLER_NO_CONSENT}
    assert set(EXCLUSION_REASONS) == {CALLER_WITHDRAWN, CALLER_NO_CONSENT}


def test_exclusion_reason_uses_the_named_column() -> None:
    rows = duckdb.sql(
        f"SELECT {exclusion_reason_sql('callee_consent')} FROM "
        "(VALUES (TRUE, NULL), (NULL, FALSE)) AS t(caller_consent, callee_consent)"
    ).fetchall()
    assert rows == [(CALLER_NO_CONSENT,), (CALLER_WITHDRAWN,)]


def test_exclusion_reason_applied_to_as_of_result(con: duckdb.DuckDBPyConnection) -> None:
    load(
        con,
        [grant(ALICE, at(0)), grant(BOB, at(0)), withdraw(BOB, at(5))],
        [("ok", ALICE, BOB, at(6)), ("out", BOB, ALICE, at(6)), ("never", DAVE, ALICE, at(6))],
    )
    rows = run(
        con,
        f"SELECT call_id, {exclusion_reason_sql()} FROM ({consent_as_of_sql('calls', 'events')})",
        purpose_values("analytics"),
    ).fetchall()
    assert dict(rows) == {"ok": None, "out": CALLER_WITHDRAWN, "never": CALLER_NO_CONSENT}


# --- classifying registry rows ----------------------------------------------------------------


@pytest.fixture
def registry(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    con.execute(f"CREATE TABLE number_cache ({RESTRICTED_TABLES['number_cache']})")
    con.execute(
        "CREATE TABLE staged (source_row BIGINT, phone_number VARCHAR, purpose VARCHAR, "
        "status VARCHAR, recorded_at VARCHAR)"
    )
    rows = [
        (1, "212-555-0101", "analytics", "granted", "2026-11-01T10:00:00Z"),
        (2, "(212) 555-0102", "  Marketing ", " WITHDRAWN", "2026-11-01 10:00:00+02:00"),
        (3, "+44 20 7946 0103", "analytics", "granted", "2026-11-01T10:00:00"),
        (4, "12345", "analytics", "granted", "2026-11-01T10:00:00Z"),
        (5, None, "analytics", "granted", "2026-11-01T10:00:00Z"),
        (6, "", "analytics", "granted", "2026-11-01T10:00:00Z"),
        (7, "212-555-0107", "billing", "granted", "2026-11-01T10:00:00Z"),
        (8, "212-555-0108", None, "granted", "2026-11-01T10:00:00Z"),
        (9, "212-555-0109", "analytics", "maybe", "2026-11-01T10:00:00Z"),
        (10, "212-555-0110", "analytics", None, "2026-11-01T10:00:00Z"),
        (11, "212-555-0111", "analytics", "granted", "yesterday"),
        (12, "212-555-0112", "analytics", "granted", "2026-11-01"),
        (13, "212-555-0113", "analytics", "granted", "2026-13-01T10:00:00Z"),
        (14, "212-555-0114", "analytics", "granted", None),
        # Two problems at once: the earlier rule in the list names the reason.
        (15, "12345", "billing", "maybe", "yesterday"),
        (16, "212-555-0116", "billing", "maybe", "yesterday"),
        (17, "212-555-0117", "analytics", "maybe", "yesterday"),
        # An offset no time zone uses: not read as a time a day and more away.
        (18, "212-555-0118", "analytics", "granted", "2026-11-01T10:00:00+25:00"),
    ]
    con.executemany("INSERT INTO staged VALUES (?, ?, ?, ?, ?)", rows)
    parsed = cache_new_numbers(con, "SELECT phone_number AS raw_number FROM staged", "US")
    assert parsed == len({row[1] for row in rows if row[1] is not None})
    return con


def classified(con: duckdb.DuckDBPyConnection, region: str = "US") -> dict[int, tuple]:
    rows = run(
        con,
        "SELECT source_row, reason, e164, clean_purpose, clean_status, recorded_at_utc IS NULL "
        f"FROM ({classify_consent_events_sql('staged', 'number_cache')})",
        region_values(region),
    ).fetchall()
    result = {row[0]: row[1:] for row in rows}
    assert len(result) == len(rows)
    return result


def test_classify_consent_events_reasons(registry: duckdb.DuckDBPyConnection) -> None:
    result = classified(registry)
    reasons = {row: values[0] for row, values in result.items()}
    assert reasons == {
        1: None,
        2: None,
        3: None,
        4: "invalid_phone_number",
        5: "invalid_phone_number",
        6: "invalid_phone_number",
        7: "unknown_purpose",
        8: "unknown_purpose",
        9: "unknown_status",
        10: "unknown_status",
        11: "bad_recorded_at",
        12: "bad_recorded_at",
        13: "bad_recorded_at",
        14: "bad_recorded_at",
        15: "invalid_phone_number",
        16: "unknown_purpose",
        17: "unknown_status",
        18: "bad_recorded_at",
    }
    assert {reason for reason in reasons.values() if reason} == set(CONSENT_QUARANTINE_REASONS)


def test_classify_consent_events_normalises_usable_rows(
    registry: duckdb.DuckDBPyConnection,
) -> None:
    result = classified(registry)
    assert result[1][1:] == ("+12125550101", "analytics", "granted", False)
    assert result[2][1:] == ("+12125550102", "marketing", "withdrawn", False)
    assert result[3][1:] == ("+442079460103", "analytics", "granted", False)
    instants = dict(
        run(
            registry,
            "SELECT source_row, recorded_at_utc FROM "
            f"({classify_consent_events_sql('staged', 'number_cache')}) "
            "WHERE source_row IN (1, 2, 3)",
            region_values("US"),
        ).fetchall()
    )
    # Offsets are honoured and a naive time is read as UTC.
    assert instants[1] == dt.datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    assert instants[2] == dt.datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    assert instants[3] == dt.datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def test_classify_consent_events_uses_the_cache_of_its_region(
    registry: duckdb.DuckDBPyConnection,
) -> None:
    # Nothing was cached for GB: every number is unknown there, hence invalid.
    result = classified(registry, "GB")
    assert {values[0] for values in result.values()} == {"invalid_phone_number"}


@pytest.mark.parametrize("region", ["USA", "U1", "", "U'"])
def test_classify_consent_events_rejects_bad_region(region: str) -> None:
    with pytest.raises(ValueError, match="ISO 3166"):
        classified(duckdb.connect(), region)
