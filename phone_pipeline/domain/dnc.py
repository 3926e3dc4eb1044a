"""The national do-not-call registry: which rows of `landing/dnc/*.csv` are usable listings.

A listing is a number (any spelling the number cache can normalise) and the instant it was listed
(`listed_at`, ISO 8601; a naive time means UTC). A row whose number or time cannot be read is
quarantined with a reason, never dropped. A number listed several times counts from its earliest
listing (`dnc_listed_since_sql`).
"""

from __future__ import annotations

from phone_pipeline.domain.timestamps import started_at_utc_sql

DNC_QUARANTINE_REASONS = ("invalid_phone_number", "bad_listed_at")


def classify_dnc_rows_sql(staged_rows: str, number_cache: str) -> str:
    """Registry rows (text) joined to their parsed number (as read in `$default_region`, see
    domain.validation.region_values), with `reason` (NULL = usable listing)."""
    return f"""
    WITH parsed AS (
        SELECT staged.*, numbers.e164, numbers.reason AS number_reason,
               {started_at_utc_sql("staged.listed_at")} AS listed_at_utc
        FROM {staged_rows} AS staged
        LEFT JOIN {number_cache} AS numbers
          ON numbers.raw_number = staged.phone_number AND numbers.default_region = $default_region
    )
    SELECT *,
           CASE WHEN e164 IS NULL THEN 'invalid_phone_number'
                WHEN listed_at_utc IS NULL THEN 'bad_listed_at'
           END AS reason,
           CASE WHEN e164 IS NULL THEN coalesce(number_reason, 'empty') END AS detail
    FROM parsed
    """


def dnc_listed_since_sql(registry_table: str) -> str:
    """One row per listed number with `listed_since`, its earliest listing."""
    return f"SELECT e164, min(listed_at) AS listed_since FROM {registry_table} GROUP BY e164"
