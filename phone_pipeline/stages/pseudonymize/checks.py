"""Gates of the pseudonymize stage: run on the staged rows BEFORE they reach the analytics file."""

from __future__ import annotations

from typing import Any

import dagster as dg
import duckdb

from phone_pipeline.domain.pseudonyms import PSEUDONYM_REGEX
from phone_pipeline.domain.redaction import contains_phone_number
from phone_pipeline.domain.validation import DISPOSITIONS
from phone_pipeline.stages.shared.checks import blocking, warning

CALLS_PSEUDONYMIZED = dg.AssetKey(["analytics", "calls_pseudonymized"])
PSEUDONYMIZED_COLUMNS = [
    "call_date", "call_hour", "caller_pseudonym", "callee_pseudonym", "caller_country",
    "caller_number_type", "callee_country", "callee_number_type", "region", "duration_seconds",
    "disposition",
]  # fmt: skip

PSEUDONYMIZED_CHECKS = [
    blocking(
        CALLS_PSEUDONYMIZED,
        "calls_pseudonymized_suite",
        "Great Expectations on the staged rows: exactly the minimised columns, well-formed keyed "
        "pseudonyms, known dispositions, a region on every row.",
    ),
    blocking(
        CALLS_PSEUDONYMIZED,
        "no_phone_numbers_in_analytics",
        "No text value of the staged rows equals a raw or E.164 number of the partition, or reads "
        "as a phone number at all, also written with keypad letters, invisible characters or "
        "other scripts' digits.",
    ),
    blocking(
        CALLS_PSEUDONYMIZED,
        "no_erased_subject_in_analytics",
        "No staged row names a pseudonym of the erasure register (any key version): an erased "
        "subject cannot come back through a rebuilt partition. Checked before publishing.",
    ),
    blocking(
        CALLS_PSEUDONYMIZED,
        "pseudonymized_rows_reconcile",
        "One published row per admitted call, every time truncated to the hour.",
    ),
    blocking(
        CALLS_PSEUDONYMIZED,
        "single_pseudonym_key_version",
        "Every pseudonym of the partition uses the primary key version: versions are never "
        "mixed within a partition (pseudonyms of two keys cannot be joined).",
    ),
    warning(
        CALLS_PSEUDONYMIZED,
        "analytics_single_key_version",
        "Across the partitions recorded in analytics.pseudonym_key_periods, one key version: "
        "otherwise cross-partition joins must wait for `phone-pipeline rotate-keys` (a warning: "
        "new partitions keep being published under the new primary key meanwhile).",
    ),
]


def pseudonymized_expectations() -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=PSEUDONYMIZED_COLUMNS, exact_match=True),
        gxe.ExpectColumnValuesToNotBeNull(column="caller_pseudonym"),
        gxe.ExpectColumnValuesToMatchRegex(column="caller_pseudonym", regex=PSEUDONYM_REGEX),
        gxe.ExpectColumnValuesToMatchRegex(column="callee_pseudonym", regex=PSEUDONYM_REGEX),
        gxe.ExpectColumnValuesToNotBeNull(column="region"),
        gxe.ExpectColumnValuesToBeInSet(column="disposition", value_set=list(DISPOSITIONS)),
    ]


def phone_numbers_found(
    con: duckdb.DuckDBPyConnection, staged_table: str, text_columns: list[str]
) -> tuple[int, int]:
    """(known, phone_like): how many distinct staged text values are a number the pipeline has
    seen (raw string or E.164, from the number cache: every string of every partition, ever),
    and how many read as a phone number, disguised or not (domain.redaction: the same rule
    that redacts messages).

    Well-formed pseudonyms of the `*_pseudonym` columns are the pipeline's own HMACs, whose hex
    digits can make a 7-digit run: they are not scanned; anything else in those columns is.
    """
    if not text_columns:
        return 0, 0
    distinct_values = " UNION ".join(
        f"(SELECT DISTINCT {column} AS value, {column.endswith('_pseudonym')} AS pseudonymous "
        f"FROM {staged_table})"
        for column in text_columns
    )
    values = f"SELECT value, pseudonymous FROM ({distinct_values}) WHERE value IS NOT NULL"
    # Semi joins probe the cache with the few published values: a UNION of the cache's
    # columns grew with the cache (6 s at 20M strings, 0.5 s this way).
    known = con.execute(
        f"""
        WITH published_values AS (SELECT DISTINCT value FROM ({values})),
        known_values AS (
            SELECT value FROM published_values
            SEMI JOIN number_cache ON number_cache.raw_number = published_values.value
            UNION
            SELECT value FROM published_values
            SEMI JOIN number_cache ON number_cache.e164 = published_values.value
        )
        SELECT count(*) FROM known_values
        """
    ).fetchone()[0]
    scanned = con.execute(
        f"SELECT DISTINCT value FROM ({values}) "
        "WHERE NOT (pseudonymous AND regexp_full_match(value, ?))",
        [PSEUDONYM_REGEX],
    ).fetchall()
    phone_like = sum(1 for (value,) in scanned if contains_phone_number(value))
    return int(known), phone_like
