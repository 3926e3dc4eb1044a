"""Gates of the consent stage: the registry (`restricted/consent_events`) and the as-of join."""

from __future__ import annotations

from typing import Any

import dagster as dg

from phone_pipeline.domain.consent import PURPOSES, STATUSES, consent_timeline_sql
from phone_pipeline.domain.numbers import E164_REGEX
from phone_pipeline.stages.shared.checks import blocking, warning

CONSENT_EVENTS = dg.AssetKey(["restricted", "consent_events"])
CONSENTED_CALLS = dg.AssetKey(["restricted", "consented_calls"])
CONSENT_EXCLUSIONS = dg.AssetKey(["restricted", "consent_exclusions"])

CONSENT_EVENTS_CHECKS = [
    blocking(
        CONSENT_EVENTS,
        "consent_events_suite",
        "Great Expectations: every usable event has an E.164 number, a known purpose and status, "
        "and a time.",
    ),
    blocking(
        CONSENT_EVENTS,
        "consent_registry_rows_reconcile",
        "Counted in rows: every row of every readable file in landing/consent (malformed rows "
        "included) is a usable event, quarantined with a reason, or left out as an erased subject's.",
    ),
    warning(
        CONSENT_EVENTS,
        "consent_files_readable",
        "Every file in landing/consent could be read; rows with problems are quarantined.",
    ),
]

CONSENTED_CHECKS = [
    blocking(
        CONSENTED_CALLS,
        "consented_calls_suite",
        "Great Expectations: admitted calls carry an E.164 caller, callees are identifiable only "
        "when flagged so.",
    ),
    blocking(
        CONSENTED_CALLS,
        "no_consent_violations",
        "Re-derives consent as of each admitted call with an independent query: no caller without "
        "analytics consent at the call's time, no identifiable callee without it.",
    ),
    blocking(
        CONSENTED_CALLS,
        "consent_rows_reconcile",
        "Every validated call of the partition is either admitted or excluded with a reason.",
    ),
]


def consent_events_expectations() -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToNotBeNull(column="e164"),
        gxe.ExpectColumnValuesToMatchRegex(column="e164", regex=E164_REGEX),
        gxe.ExpectColumnValuesToBeInSet(column="purpose", value_set=list(PURPOSES)),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=list(STATUSES)),
        gxe.ExpectColumnValuesToNotBeNull(column="recorded_at"),
    ]


def consented_expectations() -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToNotBeNull(column="caller_e164"),
        gxe.ExpectColumnValuesToMatchRegex(column="caller_e164", regex=E164_REGEX),
        # Null callees (not consented) are skipped by GX; present ones must be E.164.
        gxe.ExpectColumnValuesToMatchRegex(column="callee_e164", regex=E164_REGEX),
        gxe.ExpectColumnValuesToBeInSet(column="callee_identifiable", value_set=[True, False]),
    ]


def consent_violations_sql(consented_table: str, events_table: str) -> str:
    """Counts of admitted calls of the day `$call_date` breaking the consent rule (purpose
    `$purpose`: analytics), re-derived with an ASOF join (the latest event at or before the
    call) so that a mistake in the stage's interval join cannot hide itself."""
    return f"""
        WITH timeline AS ({consent_timeline_sql(events_table)})
        SELECT count(*) FILTER (WHERE NOT coalesce(caller_state.granted, false))
                   AS caller_violations,
               count(*) FILTER (WHERE calls.callee_e164 IS NOT NULL
                                  AND NOT coalesce(callee_state.granted, false))
                   AS callee_violations,
               count(*) FILTER (WHERE calls.callee_identifiable <> (calls.callee_e164 IS NOT NULL))
                   AS identifiable_flag_mismatches
        FROM (SELECT caller_e164, callee_e164, started_at_utc, callee_identifiable
              FROM {consented_table} WHERE call_date = $call_date) AS calls
        ASOF LEFT JOIN timeline AS caller_state
          ON caller_state.e164 = calls.caller_e164
         AND caller_state.recorded_at <= calls.started_at_utc
        ASOF LEFT JOIN timeline AS callee_state
          ON callee_state.e164 = calls.callee_e164
         AND callee_state.recorded_at <= calls.started_at_utc
    """
