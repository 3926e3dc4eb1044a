"""Reading `started_at` as recorded: ISO 8601 with an offset or `Z`; a naive time means UTC."""

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


def started_at_utc_sql(column: str) -> str:
    """SQL expression: the UTC instant, NULL when unreadable. Needs the session TimeZone = 'UTC'.

    DuckDB's cast reads most values as they are; only those it refuses are trimmed and cast
    again (trimming every value cost 2 s per 10M rows).
    """
    return (
        f"CASE WHEN regexp_matches({column}, '{_ISO_DATETIME}') "
        f"THEN coalesce(TRY_CAST({column} AS TIMESTAMPTZ), "
        f"TRY_CAST(trim({column}, '{WHITESPACE}') AS TIMESTAMPTZ)) END"
    )
