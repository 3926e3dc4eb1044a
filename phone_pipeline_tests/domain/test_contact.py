"""Unit tests for phone_pipeline.domain.contact: hand-computed cases for each rule, the SQL the
pipeline runs compared with the pure-Python statement of the rule. Fictional numbers only."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

import duckdb
import pytest

from phone_pipeline.domain.contact import (
    OUTSIDE_WINDOW,
    PERMITTED,
    UNKNOWN_ZONE,
    PermittedWindow,
    abandonment_sql,
    calls_after_dnc_listing_sql,
    contact_pressure_sql,
    contact_rule_values,
    over_abandonment_limit,
    rolling_counts,
    window_status,
    window_status_sql,
)
from phone_pipeline.sql import run

UTC = dt.UTC
WINDOW = PermittedWindow.parse("08:00-21:00")
X, Y = "+12125550101", "+12125550102"
IDAHO = ["America/Boise", "America/Los_Angeles"]  # +1 208: one area code, two zones
NEW_YORK = ["America/New_York"]
NOV_2 = dt.date(2026, 11, 2)
# The rules as the stage binds them: caps 3 and 7, a 3% abandonment limit.
RULES = {"call_date": NOV_2, **contact_rule_values(WINDOW, 3, 7, 0.03)}


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(
        "CREATE TABLE calls (call_id VARCHAR, call_date DATE, callee_e164 VARCHAR, "
        "campaign_id VARCHAR, started_at_utc TIMESTAMPTZ, disposition VARCHAR, "
        "callee_time_zones VARCHAR[])"
    )
    yield connection
    connection.close()


def insert(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    """rows: (callee, campaign, started_at, disposition, zones)."""
    start = con.execute("SELECT count(*) FROM calls").fetchone()[0]
    for i, (callee, campaign, started, disposition, zones) in enumerate(rows, start=start):
        when = at(started)
        con.execute(
            "INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?, ?)",
            [f"c{i}", when.date(), callee, campaign, when, disposition, zones],
        )


# --- contact pressure -----------------------------------------------------------------------------


def pressure(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return run(
        con,
        "SELECT callee_e164, scope, campaign_id, calls, max_calls_24h, max_calls_7d, "
        f"over_24h_cap, over_7d_cap FROM ({contact_pressure_sql('calls')}) "
        "ORDER BY callee_e164, scope, campaign_id",
        RULES,
    ).fetchall()


def test_rolling_24h_window_across_midnight_and_partition_boundary(
    con: duckdb.DuckDBPyConnection,
) -> None:
    times = ["2026-11-01T22:00", "2026-11-01T23:30", "2026-11-02T00:30", "2026-11-02T21:00",
             "2026-11-02T22:00"]  # fmt: skip
    insert(con, [(X, "cmp-a", t, "answered", NEW_YORK) for t in times])
    insert(con, [(Y, None, "2026-11-02T10:00", "answered", NEW_YORK)])
    # 22:00 on the 2nd sees back to 22:00 on the 1st inclusive: all five calls.
    assert rolling_counts([at(t) for t in times], dt.timedelta(hours=24)) == [1, 2, 3, 4, 5]
    assert pressure(con) == [
        (X, "all", None, 3, 5, 5, True, False),
        (X, "campaign", "cmp-a", 3, 5, 5, True, False),
        (Y, "all", None, 1, 1, 1, False, False),  # another callee, no campaign
    ]


def test_rolling_7d_window_reaches_back_seven_days(con: duckdb.DuckDBPyConnection) -> None:
    # One call a day at noon from 26 Oct to 2 Nov: 8 calls; the last sees 26 Oct 12:00 exactly.
    times = [f"2026-10-{day}T12:00" for day in range(26, 32)] + [
        "2026-11-01T12:00", "2026-11-02T12:00", "2026-11-02T12:30"
    ]  # fmt: skip
    insert(con, [(X, "cmp-a" if i % 2 else "cmp-b", t, "answered", NEW_YORK)
                 for i, t in enumerate(times)])  # fmt: skip
    week = dt.timedelta(days=7)
    assert rolling_counts([at(t) for t in times], week) == [1, 2, 3, 4, 5, 6, 7, 8, 8]
    # Per campaign: cmp-b's last call (12:30) sees cmp-b on 28 and 30 Oct, 1 Nov and itself
    # (26 Oct 12:00 is just outside); cmp-a's 12:00 call sees 27, 29 and 31 Oct and itself.
    assert pressure(con) == [
        (X, "all", None, 2, 2, 8, False, True),  # 12:00 and 12:30 on 2 Nov
        (X, "campaign", "cmp-a", 1, 1, 4, False, False),
        (X, "campaign", "cmp-b", 1, 1, 4, False, False),
    ]


def test_pressure_agrees_with_the_rolling_rule_on_random_calls_at_the_edges(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """The SQL merges only today, the day before and the day a week before and counts the days
    in between whole; the rule counts every call of the callee. Calls are drawn at exactly 24 h
    and 7 d before today's calls, at the same instant, and on days outside the week."""
    rng = random.Random(7)
    today = at("2026-11-02T00:00")
    callees = [f"+1212555{n:04d}" for n in range(100, 112)]
    rows = []
    for callee in callees:
        todays = [
            today + dt.timedelta(seconds=rng.randrange(86_400)) for _ in range(rng.randint(1, 6))
        ]
        times = list(todays)
        for t in todays:
            for back in (dt.timedelta(hours=24), dt.timedelta(days=7)):
                if rng.random() < 0.6:
                    times.append(t - back)  # exactly on the window's edge: inside
                if rng.random() < 0.4:
                    times.append(t - back - dt.timedelta(microseconds=1))  # just outside
            if rng.random() < 0.3:
                times.append(t)  # another call at the same instant
        times += [
            today - dt.timedelta(seconds=rng.randrange(9 * 86_400))
            for _ in range(rng.randint(0, 25))
        ]
        rows += [(callee, rng.choice(["cmp-a", "cmp-b", None]), t) for t in times]
    for i, (callee, campaign, when) in enumerate(rows):
        con.execute(
            "INSERT INTO calls VALUES (?, ?, ?, ?, ?, 'answered', NULL)",
            [f"c{i}", when.date(), callee, campaign, when],
        )

    def maxima(key_rows: list[tuple]) -> tuple[int, int, int] | None:
        times = [when for _, _, when in key_rows]
        on_day = [i for i, when in enumerate(times) if when.date() == today.date()]
        if not on_day:
            return None
        day, week = (
            rolling_counts(times, dt.timedelta(hours=24)),
            rolling_counts(times, dt.timedelta(days=7)),
        )
        return len(on_day), max(day[i] for i in on_day), max(week[i] for i in on_day)

    expected = []
    for callee in callees:
        mine = [row for row in rows if row[0] == callee]
        found = maxima(mine)
        expected.append((callee, "all", None, *found, found[1] > 3, found[2] > 7))
        for campaign in ("cmp-a", "cmp-b"):
            found = maxima([row for row in mine if row[1] == campaign])
            if found:
                expected.append((callee, "campaign", campaign, *found, found[1] > 3, found[2] > 7))
    assert pressure(con) == sorted(expected, key=lambda row: row[:3])
    assert any(row[7] for row in expected) and not all(row[7] for row in expected)


# --- permitted window in the callee's local time --------------------------------------------------


def statuses(con: duckdb.DuckDBPyConnection, window: PermittedWindow = WINDOW) -> dict[str, str]:
    return dict(
        run(
            con,
            "SELECT call_id, window_status FROM "
            f"({window_status_sql('calls', 'pg_timezone_names()')})",
            {**RULES, **window.values()},
        ).fetchall()
    )


CASES = [
    # Idaho at 15:30 UTC: 08:30 in Boise (MST) but 07:30 in Los Angeles (PST).
    ("2026-11-02T15:30", IDAHO, OUTSIDE_WINDOW),
    ("2026-11-02T16:00", IDAHO, PERMITTED),  # 09:00 and 08:00
    ("2026-11-03T04:59", IDAHO, OUTSIDE_WINDOW),  # 21:59 Boise, 20:59 Los Angeles
    ("2026-11-03T03:59", IDAHO, PERMITTED),  # 20:59 Boise, 19:59 Los Angeles
    # New York, spring forward on 8 Mar 2026: 12:30 UTC is 07:30 EST the day before, 08:30 EDT.
    ("2026-03-07T12:30", NEW_YORK, OUTSIDE_WINDOW),
    ("2026-03-08T12:30", NEW_YORK, PERMITTED),
    # Fall back on 1 Nov 2026: 01:30 UTC is 21:30 EDT on 31 Oct, then 20:30 EST on 1 Nov.
    ("2026-11-01T01:30", NEW_YORK, OUTSIDE_WINDOW),
    ("2026-11-02T01:30", NEW_YORK, PERMITTED),
    ("2026-11-02T13:00", NEW_YORK, PERMITTED),  # 08:00 EST: the start is inclusive
    ("2026-11-03T02:00", NEW_YORK, OUTSIDE_WINDOW),  # 21:00 EST: the end is exclusive
    # No known zone: never assumed.
    ("2026-11-02T16:00", [], UNKNOWN_ZONE),
    ("2026-11-02T16:00", None, UNKNOWN_ZONE),
    ("2026-11-02T16:00", ["Etc/Unknown"], UNKNOWN_ZONE),
    ("2026-11-02T16:00", ["Not/AZone"], UNKNOWN_ZONE),
]


def test_window_status_by_hand_and_sql_agrees(con: duckdb.DuckDBPyConnection) -> None:
    insert(con, [(X, None, started, "answered", zones) for started, zones, _ in CASES])
    found = statuses(con)
    for i, (started, zones, expected) in enumerate(CASES):
        assert window_status(at(started), zones, WINDOW) == expected, (started, zones)
        assert found[f"c{i}"] == expected, (started, zones)


def test_sql_agrees_with_zoneinfo_every_half_hour_across_dst(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """DuckDB's ICU conversion against Python's zoneinfo over both 2026 DST changes."""
    starts = [at("2026-03-06T00:00"), at("2026-10-30T00:00")]
    times = [start + dt.timedelta(minutes=30 * k) for start in starts for k in range(4 * 48)]
    insert(con, [(X, None, t.isoformat()[:16], "answered", IDAHO) for t in times])
    insert(con, [(X, None, t.isoformat()[:16], "answered", NEW_YORK) for t in times])
    found = statuses(con)
    zones = [IDAHO] * len(times) + [NEW_YORK] * len(times)
    expected = {
        f"c{i}": window_status(t, zone, WINDOW)
        for i, (t, zone) in enumerate(zip(times + times, zones, strict=True))
    }
    assert found == expected
    assert set(found.values()) == {PERMITTED, OUTSIDE_WINDOW}


def test_sql_agrees_with_zoneinfo_for_a_window_across_midnight(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """The window's bounds are bound values: one across midnight reads as `start <= m or
    m < end`, judged in SQL as in Python, on every quarter hour of two days."""
    night = PermittedWindow.parse("22:00-06:15")
    start = at("2026-11-01T00:00")
    times = [start + dt.timedelta(minutes=15 * k) for k in range(4 * 48)]
    insert(con, [(X, None, t.isoformat()[:16], "answered", IDAHO) for t in times])
    found = statuses(con, night)
    expected = {f"c{i}": window_status(t, IDAHO, night) for i, t in enumerate(times)}
    assert found == expected
    assert set(found.values()) == {PERMITTED, OUTSIDE_WINDOW}


def test_window_parsing() -> None:
    assert PermittedWindow.parse("08:00-21:00") == PermittedWindow(480, 1260)
    night = PermittedWindow.parse("22:00-06:00")
    assert night.contains(dt.time(23, 0)) and night.contains(dt.time(5, 59))
    assert not night.contains(dt.time(6, 0))
    for bad in ("8-21", "08:00-08:00", "25:00-26:00", ""):
        with pytest.raises(ValueError):
            PermittedWindow.parse(bad)


# --- abandonment ----------------------------------------------------------------------------------


def test_abandonment_exactly_at_the_limit_is_not_flagged(con: duckdb.DuckDBPyConnection) -> None:
    day = "2026-11-02T10:00"
    insert(con, [(X, "at-limit", day, "abandoned", NEW_YORK)] * 3)
    insert(con, [(X, "at-limit", day, "answered", NEW_YORK)] * 97)
    insert(con, [(X, "at-limit", day, "busy", NEW_YORK)] * 50)  # not live: not in the rate
    insert(con, [(X, "over", day, "abandoned", NEW_YORK)] * 4)
    insert(con, [(X, "over", day, "answered", NEW_YORK)] * 96)
    insert(con, [(X, "just-over", day, "abandoned", NEW_YORK)])
    insert(con, [(X, "just-over", day, "answered", NEW_YORK)] * 32)  # 1/33 = 3.03%
    insert(con, [(X, "none-live", day, "no_answer", NEW_YORK)] * 5)
    rows = {
        row[0]: row[1:]
        for row in run(
            con,
            "SELECT campaign_id, live_answered_calls, abandoned_calls, abandonment_rate, "
            f"over_limit FROM ({abandonment_sql('calls')})",
            RULES,
        ).fetchall()
    }
    assert rows["at-limit"] == (100, 3, 0.03, False)
    assert rows["over"] == (100, 4, 0.04, True)
    assert rows["just-over"][:2] == (33, 1) and rows["just-over"][3] is True
    assert rows["none-live"] == (0, 0, None, False)
    assert not over_abandonment_limit(3, 100, 0.03)
    assert not over_abandonment_limit(6, 200, 0.03)
    assert over_abandonment_limit(4, 100, 0.03)
    assert over_abandonment_limit(1, 33, 0.03)
    assert not over_abandonment_limit(0, 0, 0.03)


# --- calls after a do-not-call listing ------------------------------------------------------------


def test_calls_before_the_listing_are_no_finding(con: duckdb.DuckDBPyConnection) -> None:
    insert(
        con,
        [
            (X, "cmp-a", "2026-11-02T09:00", "answered", NEW_YORK),  # before the listing
            (X, "cmp-a", "2026-11-02T12:00", "answered", NEW_YORK),  # at the listing instant
            (X, "cmp-a", "2026-11-02T15:00", "answered", NEW_YORK),
            (Y, None, "2026-11-02T15:00", "answered", NEW_YORK),  # listed only tomorrow
        ],
    )
    con.execute(
        "CREATE TABLE listed AS SELECT * FROM (VALUES (?, ?), (?, ?)) AS v(e164, listed_since)",
        [X, at("2026-11-02T12:00"), Y, at("2026-11-03T00:00")],
    )
    rows = run(
        con,
        "SELECT callee_e164, campaign_id, calls, first_call_at FROM "
        f"({calls_after_dnc_listing_sql('calls', 'listed')})",
        RULES,
    ).fetchall()
    assert rows == [(X, "cmp-a", 2, at("2026-11-02T12:00"))]
