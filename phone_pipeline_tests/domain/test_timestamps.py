import datetime as dt

import duckdb
import pytest

from phone_pipeline.domain.timestamps import WHITESPACE, clean_text_sql, started_at_utc_sql

TEXTS = [
    None, "", " ", "\t", "\r\n", " \t\r\n ", "a", " a", "a ", "\ta", "a\t", "a\r\n", "\na",
    " a b ", "a\tb", "a\nb", " \ta\tb\n ", "x\u00a0", "\u00a0x", "  12 ", "ANSWERED\r",
]  # fmt: skip


@pytest.fixture(scope="module")
def con():
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


def _expected_clean(text: str | None) -> str | None:
    return (text.strip(WHITESPACE) or None) if text is not None else None


def test_clean_text_strips_the_same_characters_as_python(con):
    con.execute("CREATE OR REPLACE TEMP TABLE texts (i INTEGER, t VARCHAR)")
    con.executemany("INSERT INTO texts VALUES (?, ?)", list(enumerate(TEXTS)))
    cleaned = dict(con.execute(f"SELECT i, {clean_text_sql('t')} FROM texts").fetchall())
    assert [cleaned[i] for i in range(len(TEXTS))] == [_expected_clean(t) for t in TEXTS]


UTC = dt.UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-04T10:00:00Z", dt.datetime(2025, 3, 4, 10, tzinfo=UTC)),
        (" 2025-03-04 10:00:00Z ", dt.datetime(2025, 3, 4, 10, tzinfo=UTC)),
        ("\t2025-03-04T10:00:00+02:00\r\n", dt.datetime(2025, 3, 4, 8, tzinfo=UTC)),
        ("2025-03-04T10:00:00+02:00\t", dt.datetime(2025, 3, 4, 8, tzinfo=UTC)),
        ("2025-03-04 10:00", dt.datetime(2025, 3, 4, 10, tzinfo=UTC)),  # naive: UTC
        (" 2025-03-04T10:00:00.5-05:30 ", dt.datetime(2025, 3, 4, 15, 30, 0, 500000, tzinfo=UTC)),
        ("2025-03-04", None),  # a date alone is no start time
        ("2025-03-04 10:00:00 Z", None),
        ("2025-02-30T10:00:00Z", None),
        ("yesterday", None),
        ("", None),
        ("\t", None),
        (None, None),
    ],
)
def test_started_at_reads_iso_times_whatever_surrounds_them(con, text, expected):
    assert con.execute(f"SELECT {started_at_utc_sql('$1')}", [text]).fetchone()[0] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01T10:00:00+14:00", dt.datetime(2026, 10, 31, 20, tzinfo=UTC)),  # Kiribati
        ("2026-11-01T10:00:00-12:00", dt.datetime(2026, 11, 1, 22, tzinfo=UTC)),  # Baker Island
        ("2026-11-01T10:00:00-14:00", dt.datetime(2026, 11, 2, 0, tzinfo=UTC)),  # the bound
        (" 2026-11-01T10:00:00+0545 ", dt.datetime(2026, 11, 1, 4, 15, tzinfo=UTC)),  # Nepal
        ("2026-11-01 10:00:00 America/New_York", dt.datetime(2026, 11, 1, 15, tzinfo=UTC)),
        ("2026-11-01T10:00:00+25:00", None),
        ("2026-11-01T10:00:00-25:00", None),
        ("2026-11-01T10:00:00+2500", None),
        ("2026-11-01T10:00:00+25", None),
        ("2026-11-01T10:00:00+14:01", None),
        ("2026-11-01T10:00:00-14:00:01", None),
        ("2026-11-01T10:00:00+99:59", None),
        ("\t2026-11-01T10:00+25:00\r\n", None),
    ],
)
def test_an_offset_no_time_zone_uses_makes_the_time_unreadable(con, text, expected):
    assert con.execute(f"SELECT {started_at_utc_sql('$1')}", [text]).fetchone()[0] == expected
