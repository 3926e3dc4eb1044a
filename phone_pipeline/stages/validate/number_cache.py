"""The cache of numbers already normalised, kept in the restricted zone.

Each distinct raw string is parsed once per default region, ever: later partitions and runs parse
only strings they have not seen (phonenumbers costs 13-24 us per number, the join almost nothing),
and new strings are parsed on every core (parse_worker).
"""

from __future__ import annotations

import duckdb

from phone_pipeline.domain.numbers import E164_SQL_PATTERN, NUMBER_COLUMNS
from phone_pipeline.sql import SqlValues, run
from phone_pipeline.stages.validate.parse_worker import parse_numbers
from phone_pipeline.timings import PARSE, timed


def cache_new_numbers(
    con: duckdb.DuckDBPyConnection,
    numbers_sql: str,
    default_region: str,
    table: str = "number_cache",
    values: SqlValues | None = None,
) -> int:
    """Parse the distinct non-null strings of `numbers_sql` (one column `raw_number`, `values`
    bound to the parameters it names) not cached yet, or cached with a verdict the number rule
    no longer gives (`stale_verdict_sql`)."""
    new_numbers = [
        row[0]
        for row in run(
            con,
            f"""
            SELECT DISTINCT candidates.raw_number
            FROM ({numbers_sql}) AS candidates
            LEFT JOIN (SELECT raw_number, e164 FROM {table} WHERE default_region = $default_region)
              AS cached
              ON cached.raw_number = candidates.raw_number
            WHERE candidates.raw_number IS NOT NULL
              AND (cached.raw_number IS NULL OR {stale_verdict_sql("cached")})
            """,
            {**(values or {}), "default_region": default_region, "e164_pattern": E164_SQL_PATTERN},
        ).fetchall()
    ]
    if not new_numbers:
        return 0
    with timed(PARSE):  # reported by the stage as `parse_seconds` (timings.py)
        parsed = parse_numbers(new_numbers, default_region)[NUMBER_COLUMNS]
    parsed["default_region"] = default_region
    con.register("parsed_numbers", parsed)
    try:
        # Stale entries are replaced (their strings are among the parsed ones).
        con.execute(
            f"DELETE FROM {table} WHERE default_region = ? "
            "AND raw_number IN (SELECT raw_number FROM parsed_numbers)",
            [default_region],
        )
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM parsed_numbers")
    finally:
        con.unregister("parsed_numbers")
    return len(new_numbers)


def stale_verdict_sql(cached: str) -> str:
    """True for a cache entry (alias `cached`, with `raw_number` and `e164`) whose number the
    rule of domain/numbers.py would not vouch for: a cache written before the rule gained the
    E.164 bounds holds phonenumbers-valid numbers of 16+ digits, which the gates reject, so
    they are parsed again instead of trusted. Names `$e164_pattern`: E164_SQL_PATTERN.

    Only the cached rows of the strings asked for are tested, never the whole cache."""
    return f"({cached}.e164 IS NOT NULL AND NOT regexp_full_match({cached}.e164, $e164_pattern))"


def day_number_map(
    con: duckdb.DuckDBPyConnection,
    numbers_sql: str,
    default_region: str,
    into: str,
    table: str = "number_cache",
    values: SqlValues | None = None,
) -> int:
    """`cache_new_numbers`, then the cache entries of `numbers_sql`'s strings (`values` bound
    to the parameters it names) copied into the TEMP table `into`; returns how many strings
    were parsed.

    Joining millions of calls against the day's numbers rather than every number ever cached
    halved validation's joins at 10M calls, and keeps them flat as the cache grows (a cache of
    20M numbers made them 2x slower).
    """
    distinct = f"{into}_strings"
    run(
        con,
        f"CREATE OR REPLACE TEMP TABLE {distinct} AS SELECT DISTINCT raw_number "
        f"FROM ({numbers_sql}) WHERE raw_number IS NOT NULL",
        values,
    )
    try:
        parsed = cache_new_numbers(con, f"SELECT raw_number FROM {distinct}", default_region, table)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {into} AS "
            "SELECT cache.raw_number, cache.default_region, cache.e164, cache.country, "
            "cache.number_type, cache.geo_region, cache.reason "
            f"FROM {table} AS cache SEMI JOIN {distinct} ON {distinct}.raw_number = cache.raw_number "
            "WHERE cache.default_region = ?",
            [default_region],
        )
    finally:
        con.execute(f"DROP TABLE IF EXISTS {distinct}")
    return parsed
