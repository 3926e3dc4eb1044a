"""Reading times as recorded (call `started_at`, consent `recorded_at`, do-not-call `listed_at`,
erasure `requested_at`): ISO 8601 with an offset or `Z`; a naive time means UTC.

An offset no civil time zone uses (`+25:00`, `-14:30`) makes the time unreadable: the row is
quarantined with its stage's time reason rather than moved by a day or more.
"""

from __future__ import annotations

# A date alone is no call start time; anything else ISO-like is left to DuckDB's parser.
_ISO_DATETIME = r"^\s*\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}"
# DuckDB's one-argument trim() strips spaces only; files also carry tabs and CR/LF.
WHITESPACE = " \t\r\n"


def _may_need_trim_sql(column: str) -> str:
    # trim() with a character set costs 4x these tests (0.9 s per 10M values); most values
    # have nothing to trim. A tab, CR or LF anywhere sends the value to trim(), which leaves
    # inner ones alone.
    others = " OR ".join(f"contains({column}, chr({ord(char)}))" for char in WHITESPACE[1:])
    return f"(starts_with({column}, ' ') OR ends_with({column}, ' ') OR {others})"


def clean_text_sql(column: str) -> str:
    """SQL expression: the text without surrounding whitespace, NULL when nothing is left.
    `column` should be a column, not an expression: it is repeated."""
    return (
        f"nullif(CASE WHEN {_may_need_trim_sql(column)} THEN trim({column}, '{WHITESPACE}') "
        f"ELSE {column} END, '')"
    )


# The widest UTC offsets in civil use: UTC-12:00 (Baker Island) to UTC+14:00 (Line Islands,
# Kiribati), per the IANA time zone database; no zone has used one outside +-14:00 since 1900
# (only local mean times of the 1800s did). A symmetric bound keeps the rule one number; an offset
# beyond it is a typing or export error, whatever ISO 8601's syntax allows.
MAX_UTC_OFFSET_HOURS = 14


def started_at_utc_sql(column: str) -> str:
    """SQL expression: the UTC instant, NULL when unreadable or when its offset from UTC is
    beyond MAX_UTC_OFFSET_HOURS. Needs the session TimeZone = 'UTC'.

    DuckDB's cast reads most values as they are; only those it refuses are trimmed and cast
    again (trimming every value cost 2 s per 10M rows). The offset is the wall time as written
    (a cast to TIMESTAMP keeps it and drops the zone) minus the UTC instant; values ending in
    `Z` have none and skip that second cast (0.3 s per 10M rows for the others).
    """
    utc = (
        f"coalesce(TRY_CAST({column} AS TIMESTAMPTZ), "
        f"TRY_CAST(trim({column}, '{WHITESPACE}') AS TIMESTAMPTZ))"
    )
    wall = (
        f"coalesce(TRY_CAST({column} AS TIMESTAMP), "
        f"TRY_CAST(trim({column}, '{WHITESPACE}') AS TIMESTAMP))"
    )
    return (
        f"CASE WHEN regexp_matches({column}, '{_ISO_DATETIME}') THEN "
        f"CASE WHEN ends_with({column}, 'Z') THEN {utc} "
        f"WHEN abs(date_diff('second', CAST({utc} AS TIMESTAMP), {wall})) "
        f"<= {MAX_UTC_OFFSET_HOURS * 3600} THEN {utc} END END"
    )
