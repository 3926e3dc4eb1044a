"""Reading `started_at` as recorded: ISO 8601 with an offset or `Z`; a naive time means UTC."""

from __future__ import annotations

# A date alone is no call start time; anything else ISO-like is left to DuckDB's parser.
_ISO_DATETIME = r"^\s*\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}"
# DuckDB's one-argument trim() strips spaces only; files also carry tabs and CR/LF.
WHITESPACE = " \t\r\n"


def clean_text_sql(column: str) -> str:
    """SQL expression: the text without surrounding whitespace, NULL when nothing is left."""
    return f"nullif(trim({column}, '{WHITESPACE}'), '')"


def started_at_utc_sql(column: str) -> str:
    """SQL expression: the UTC instant, NULL when unreadable. Needs the session TimeZone = 'UTC'."""
    return (
        f"CASE WHEN regexp_matches({column}, '{_ISO_DATETIME}') "
        f"THEN TRY_CAST({clean_text_sql(column)} AS TIMESTAMPTZ) END"
    )
