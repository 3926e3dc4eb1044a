"""Consent as of each call's time, per purpose.

The rule a reviewer audits: the state of a number for a purpose at time t is the status of its latest
consent event recorded at or before t; no such event means not granted. Two events of one number and
purpose recorded at the same instant resolve to withdrawn (the protective reading).

`consent_as_of_sql` is what the pipeline runs: each number's consent as states valid from one event
to the next, joined to the calls on number and time (a hash join on the number: 10M calls in about
2 s, where an ASOF join sorted them all for 8-13 s). `consent_granted_at` is a small pure-Python
statement of the same rule that tests compare it against; the gate re-derives it with an ASOF join.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from phone_pipeline.domain.timestamps import clean_text_sql, started_at_utc_sql

ANALYTICS = "analytics"
PURPOSES = (ANALYTICS, "marketing")
STATUSES = ("granted", "withdrawn")

# Why a call was left out of the analytics path.
CALLER_NO_CONSENT = "caller_no_analytics_consent"
CALLER_WITHDRAWN = "caller_analytics_consent_withdrawn"
EXCLUSION_REASONS = (CALLER_NO_CONSENT, CALLER_WITHDRAWN)


@dataclass(frozen=True)
class ConsentEvent:
    e164: str
    purpose: str
    status: str
    recorded_at: dt.datetime


def consent_granted_at(
    events: Iterable[ConsentEvent], e164: str, purpose: str, at: dt.datetime
) -> bool:
    """Reference implementation of the as-of rule."""
    relevant = [
        event
        for event in events
        if event.e164 == e164 and event.purpose == purpose and event.recorded_at <= at
    ]
    if not relevant:
        return False
    latest_time = max(event.recorded_at for event in relevant)
    return all(event.status == "granted" for event in relevant if event.recorded_at == latest_time)


def purpose_values(purpose: str) -> dict[str, object]:
    """The value the consent SQL below names, `$purpose`: a known purpose only (a misspelt one
    would find no event, and every call would look unconsented)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown consent purpose {purpose!r}; known: {', '.join(PURPOSES)}")
    return {"purpose": purpose}


def consent_timeline_sql(events_table: str) -> str:
    """One row per number and instant with `granted` for the purpose `$purpose`: the tie rule
    (withdrawn wins) applied."""
    return f"""
        SELECT e164, recorded_at, bool_and(status = 'granted') AS granted
        FROM {events_table}
        WHERE purpose = $purpose
        GROUP BY e164, recorded_at
    """


def consent_states_sql(events_table: str) -> str:
    """One row per number and state (purpose `$purpose`): `granted` from `valid_from` (an
    event's instant) until `valid_until` (the number's next event; NULL: still in force)."""
    return f"""
        SELECT e164, granted, recorded_at AS valid_from,
               lead(recorded_at) OVER (PARTITION BY e164 ORDER BY recorded_at) AS valid_until
        FROM ({consent_timeline_sql(events_table)})
    """


def consent_as_of_sql(calls_table: str, events_table: str) -> str:
    """The calls with `caller_consent` and `callee_consent` (TRUE, FALSE, or NULL for no event)
    for the purpose `$purpose` (see `purpose_values`).

    `calls_table` needs `caller_e164`, `callee_e164` and `started_at_utc`; `events_table` needs
    `e164`, `purpose`, `status` and `recorded_at`. States do not overlap, so each call matches
    at most one state per number and keeps its row.
    """

    def state_at(role: str) -> str:
        return f"""
        LEFT JOIN states AS {role}_state
          ON {role}_state.e164 = calls.{role}_e164
         AND {role}_state.valid_from <= calls.started_at_utc
         AND ({role}_state.valid_until IS NULL OR calls.started_at_utc < {role}_state.valid_until)"""

    return f"""
        WITH states AS ({consent_states_sql(events_table)})
        SELECT calls.*,
               caller_state.granted AS caller_consent,
               callee_state.granted AS callee_consent
        FROM {calls_table} AS calls
        {state_at("caller")}
        {state_at("callee")}
    """


def exclusion_reason_sql(consent_column: str = "caller_consent") -> str:
    """SQL expression: why a call is excluded, NULL when it is admitted."""
    return (
        f"CASE WHEN {consent_column} IS NULL THEN '{CALLER_NO_CONSENT}' "
        f"WHEN NOT {consent_column} THEN '{CALLER_WITHDRAWN}' END"
    )


CONSENT_QUARANTINE_REASONS = (
    "invalid_phone_number",
    "unknown_purpose",
    "unknown_status",
    "bad_recorded_at",
)


def classify_consent_events_sql(staged_events: str, number_cache: str) -> str:
    """Registry rows (text) joined to their parsed number (as read in `$default_region`, see
    `domain.validation.region_values`), with `reason` (NULL = usable event)."""
    purposes = ", ".join(f"'{value}'" for value in PURPOSES)
    statuses = ", ".join(f"'{value}'" for value in STATUSES)
    return f"""
    WITH parsed AS (
        SELECT staged.*, numbers.e164,
               lower({clean_text_sql("staged.purpose")}) AS clean_purpose,
               lower({clean_text_sql("staged.status")}) AS clean_status,
               {started_at_utc_sql("staged.recorded_at")} AS recorded_at_utc
        FROM {staged_events} AS staged
        LEFT JOIN {number_cache} AS numbers
          ON numbers.raw_number = staged.phone_number AND numbers.default_region = $default_region
    )
    SELECT *,
           CASE WHEN e164 IS NULL THEN 'invalid_phone_number'
                WHEN clean_purpose IS NULL OR clean_purpose NOT IN ({purposes}) THEN 'unknown_purpose'
                WHEN clean_status IS NULL OR clean_status NOT IN ({statuses}) THEN 'unknown_status'
                WHEN recorded_at_utc IS NULL THEN 'bad_recorded_at'
           END AS reason
    FROM parsed
    """
