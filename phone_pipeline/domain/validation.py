"""The row-level rules of validation: which raw call rows are admitted, and why others are not.

Row-level problems go to quarantine with one machine-readable `reason` (the first rule that fails,
in the order below) and a `detail`; nothing is dropped. Batch-level problems are the gates' business.
"""

from __future__ import annotations

from collections.abc import Mapping

from phone_pipeline.domain.timestamps import clean_text_sql

# `abandoned`: a live answer that no agent took (counts as answered for the abandonment rate).
DISPOSITIONS = ("answered", "busy", "no_answer", "failed", "voicemail", "abandoned")

# A call with an internal extension at one end (as its file's profile judged it; detail: caller,
# callee or both): counted with its own reason, not as an invalid number, and not in the
# quarantine share (an office's calls between extensions are no data-quality problem).
INTERNAL_CALL = "internal_call"
# In the order they are tested: the first failing rule names the row's reason.
QUARANTINE_REASONS = (
    "missing_call_id",
    "bad_timestamp",
    "started_at_out_of_range",
    INTERNAL_CALL,
    "invalid_caller_number",
    "invalid_callee_number",
    "invalid_duration",
    "negative_duration",
    "absurd_duration",
    "unknown_disposition",
    "duplicate_call_id",
)


def quarantine_share(raw_rows: int, quarantined_by_reason: Mapping[str, int]) -> float:
    """The share of a day's calls between phone numbers that were quarantined: internal calls
    are counted apart (neither quarantined nor among the rows)."""
    internal = quarantined_by_reason.get(INTERNAL_CALL, 0)
    quarantined = sum(quarantined_by_reason.values()) - internal
    calls = raw_rows - internal
    return quarantined / calls if calls > 0 else 0.0


def row_key_sql(relation: str) -> str:
    """A raw row's place, its file's load order then its row number, packed in one BIGINT so
    that the duplicate search compares integers (a file has fewer than 2^32 rows)."""
    return f"({relation}.load_order * 4294967296 + {relation}.source_row)"


def region_values(default_region: str) -> dict[str, object]:
    """`$default_region`, the region numbers without a country code are read in (the number
    cache's entries are per region), for every SQL that looks numbers up; a value that is no
    ISO 3166 alpha-2 code is a clear error, not a day of numbers found invalid."""
    if not default_region.isalpha() or len(default_region) != 2:
        raise ValueError(f"default region must be an ISO 3166 alpha-2 code, got {default_region!r}")
    return {"default_region": default_region}


def validation_values(default_region: str, max_call_seconds: int) -> dict[str, object]:
    """The values `cleaned_calls_sql` and `quarantine_verdicts_sql` name: `$default_region` (the
    number cache's entries read in it; refused unless an ISO 3166 alpha-2 code) and
    `$max_call_seconds` (longer calls are absurd)."""
    return {**region_values(default_region), "max_call_seconds": int(max_call_seconds)}


def cleaned_calls_sql(
    raw_calls_sql: str,
    number_cache: str,
    callee_erased_sql: str = "FALSE",
    internal_extension_sql: str = "CAST(NULL AS VARCHAR)",
) -> str:
    """Raw rows with their cleaned fields, parsed numbers and `row_key`; no verdict yet.

    `raw_calls_sql` selects the partition's raw rows with their file's `load_order`; numbers
    are looked up as parsed in `$default_region` (see `validation_values`).
    `callee_erased_sql` (over `raw`) marks rows whose callee was erased: their missing callee
    number is no reason to quarantine the caller's call. `internal_extension_sql` (over `raw`)
    names the end of a call that is an internal extension (caller, callee, both; NULL: none).
    """
    return f"""
        SELECT raw.*,
               {row_key_sql("raw")} AS row_key,
               {clean_text_sql("raw.call_id")} AS clean_call_id,
               -- whole seconds only: TRY_CAST alone would take 0x10, 1e3, 1_000 or round 12.5
               CASE WHEN regexp_full_match({clean_text_sql("raw.duration_seconds")}, '[+-]?[0-9]{{1,18}}')
                    THEN CAST({clean_text_sql("raw.duration_seconds")} AS BIGINT) END AS duration_int,
               lower({clean_text_sql("raw.disposition")}) AS clean_disposition,
               {clean_text_sql("raw.cell_id")} AS clean_cell_id,
               caller.e164 AS caller_e164, caller.country AS caller_country,
               caller.number_type AS caller_number_type, caller.geo_region AS caller_geo_region,
               coalesce(caller.reason, 'empty') AS caller_reason,
               callee.e164 AS callee_e164, callee.country AS callee_country,
               callee.number_type AS callee_number_type,
               coalesce(callee.reason, 'empty') AS callee_reason,
               coalesce({callee_erased_sql}, FALSE) AS callee_was_erased,
               {internal_extension_sql} AS internal_end
        FROM ({raw_calls_sql}) AS raw
        LEFT JOIN {number_cache} AS caller
          ON caller.raw_number = raw.caller_number AND caller.default_region = $default_region
        LEFT JOIN {number_cache} AS callee
          ON callee.raw_number = raw.callee_number AND callee.default_region = $default_region
    """


def quarantine_verdicts_sql(cleaned_calls_sql: str) -> str:
    """`row_key`, `reason` and `detail` of each row of `cleaned_calls_sql` that is not admitted;
    a duration above `$max_call_seconds` is absurd (see `validation_values`).

    Narrow on purpose: at 10M rows, carrying whole rows through the duplicate search cost more
    than the rest of validation. The first occurrence of a `call_id` among otherwise valid rows
    (by load order, then row) is kept and later ones are duplicates.
    """
    dispositions = ", ".join(f"'{value}'" for value in DISPOSITIONS)
    return f"""
    WITH verdicts AS (
        SELECT row_key, clean_call_id, caller_reason, callee_reason, internal_end,
               CASE
                 WHEN clean_call_id IS NULL THEN 'missing_call_id'
                 WHEN timestamp_status = 'unreadable' THEN 'bad_timestamp'
                 WHEN timestamp_status = 'out_of_range' THEN 'started_at_out_of_range'
                 WHEN internal_end IS NOT NULL THEN '{INTERNAL_CALL}'
                 WHEN caller_e164 IS NULL THEN 'invalid_caller_number'
                 WHEN callee_e164 IS NULL AND NOT callee_was_erased THEN 'invalid_callee_number'
                 WHEN duration_int IS NULL THEN 'invalid_duration'
                 WHEN duration_int < 0 THEN 'negative_duration'
                 WHEN duration_int > $max_call_seconds THEN 'absurd_duration'
                 WHEN clean_disposition IS NULL OR clean_disposition NOT IN ({dispositions})
                   THEN 'unknown_disposition'
               END AS row_reason
        FROM ({cleaned_calls_sql})
    ),
    -- An aggregate instead of a window over all rows: repeats are rare.
    repeated_ids AS (
        SELECT clean_call_id, min(row_key) AS first_key
        FROM verdicts WHERE row_reason IS NULL
        GROUP BY clean_call_id HAVING count(*) > 1
    )
    SELECT row_key, coalesce(row_reason, 'duplicate_call_id') AS reason,
           CASE WHEN row_reason = '{INTERNAL_CALL}' THEN internal_end
                WHEN row_reason = 'invalid_caller_number' THEN caller_reason
                WHEN row_reason = 'invalid_callee_number' THEN callee_reason
                WHEN row_reason = 'absurd_duration'
                THEN 'longer than ' || $max_call_seconds || ' s'
           END AS detail
    FROM verdicts LEFT JOIN repeated_ids USING (clean_call_id)
    WHERE row_reason IS NOT NULL OR (first_key IS NOT NULL AND row_key <> first_key)
    """


def known_numbers_sql(calls: str, one_day: bool = False) -> str:
    """Per day (every day of `calls`, or with `one_day` the day `$call_date`), each number of the
    day's validated calls, as caller or callee, with the first and the last time it was seen that
    day.

    What later stages need to know of a number's calls across days (the scrub list's numbers
    and their first sighting; the partitions a consent change reaches) without rescanning every
    call kept, which grew with the retention period (4 s a run per day of 10M calls kept).
    """
    day = "call_date = $call_date" if one_day else "TRUE"
    return f"""
        SELECT call_date, e164, min(seen_at) AS first_seen, max(seen_at) AS last_seen FROM (
            SELECT call_date, caller_e164 AS e164, started_at_utc AS seen_at FROM {calls}
            WHERE {day}
            UNION ALL
            SELECT call_date, callee_e164, started_at_utc FROM {calls} WHERE {day}
        ) WHERE e164 IS NOT NULL  -- the number of an erased callee is gone (NULL) from its calls
        GROUP BY call_date, e164
    """
