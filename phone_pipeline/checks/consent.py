"""Gates of the consent stage: the registry (`restricted/consent_events`) and the as-of join."""

from __future__ import annotations

from typing import Any

import dagster as dg

from phone_pipeline.checks.common import E164_REGEX, blocking, warning
from phone_pipeline.domain.consent import PURPOSES, STATUSES

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
        "Every row read from landing/consent is either a usable event or quarantined with a reason.",
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


def consent_violations_sql(consented_table: str, events_table: str, call_date_sql: str) -> str:
    """Counts of admitted calls breaking the consent rule, written without the ASOF join so that
    a mistake in the pipeline's join cannot hide itself."""

    def granted_at(number: str) -> str:
        return f"""(
            SELECT bool_and(event.status = 'granted') FROM {events_table} AS event
            WHERE event.e164 = calls.{number} AND event.purpose = 'analytics'
              AND event.recorded_at = (
                  SELECT max(earlier.recorded_at) FROM {events_table} AS earlier
                  WHERE earlier.e164 = calls.{number} AND earlier.purpose = 'analytics'
                    AND earlier.recorded_at <= calls.started_at_utc))"""

    return f"""
        SELECT count(*) FILTER (WHERE NOT coalesce(caller_granted, false)) AS caller_violations,
               count(*) FILTER (WHERE callee_e164 IS NOT NULL AND NOT coalesce(callee_granted, false))
                   AS callee_violations,
               count(*) FILTER (WHERE callee_identifiable <> (callee_e164 IS NOT NULL))
                   AS identifiable_flag_mismatches
        FROM (
            SELECT calls.callee_e164, calls.callee_identifiable,
                   {granted_at("caller_e164")} AS caller_granted,
                   {granted_at("callee_e164")} AS callee_granted
            FROM {consented_table} AS calls
            WHERE calls.call_date = {call_date_sql}
        )
    """
