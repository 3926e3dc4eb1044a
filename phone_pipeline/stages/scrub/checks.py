"""Gate of the do-not-call scrub list (`restricted/dnc_scrub_list`)."""

from __future__ import annotations

import dagster as dg

from phone_pipeline.stages.shared.checks import blocking

DNC_SCRUB_LIST = dg.AssetKey(["restricted", "dnc_scrub_list"])

SCRUB_LIST_CHECKS = [
    blocking(
        DNC_SCRUB_LIST,
        "scrub_list_misses_no_number",
        "Re-derived independently: every known number without marketing consent now, and every "
        "number listed in the do-not-call registry, is on the scrub list; once per reason.",
    ),
]


def numbers_missing_from_scrub_list_sql(
    scrub_list: str, known_numbers: str, consent_events: str, dnc_registry: str
) -> str:
    """Counts of numbers the list must hold but does not, written without the list's own SQL:
    (no marketing consent as of `$now`, listed in the registry by then). `known_numbers`: the
    numbers of the validated calls per day (domain.validation.known_numbers_sql)."""
    return f"""
        WITH known AS (
            SELECT e164 FROM {known_numbers}
            UNION SELECT e164 FROM {consent_events} WHERE recorded_at <= $now
        ),
        verdicts AS (
            SELECT known.e164, (
                SELECT bool_and(event.status = 'granted') FROM {consent_events} AS event
                WHERE event.e164 = known.e164 AND event.purpose = 'marketing'
                  AND event.recorded_at = (
                      SELECT max(earlier.recorded_at) FROM {consent_events} AS earlier
                      WHERE earlier.e164 = known.e164 AND earlier.purpose = 'marketing'
                        AND earlier.recorded_at <= $now)
            ) AS marketing_granted
            FROM known
        )
        SELECT
            (SELECT count(*) FROM verdicts WHERE NOT coalesce(marketing_granted, false)
               AND e164 NOT IN (SELECT e164 FROM {scrub_list})),
            (SELECT count(DISTINCT e164) FROM {dnc_registry} WHERE listed_at <= $now
               AND e164 NOT IN (SELECT e164 FROM {scrub_list}))
    """
