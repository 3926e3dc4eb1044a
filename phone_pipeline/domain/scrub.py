"""The do-not-call scrub list: every number that must not be called for marketing now, with why
and since when. One row per number and reason (a number can have several).

- `marketing_consent_withdrawn`: the number's latest `marketing` consent event as of now is a
  withdrawal (two events at one instant resolve to withdrawn, as everywhere); `since` is the first
  withdrawal after its last grant.
- `marketing_consent_never_granted`: a number we know of with no `marketing` event at all as of
  now. "Numbers we know of" are every caller and callee in `calls_validated` (all days, read from
  `known_numbers`, its numbers per day) and every number in the consent registry (any purpose);
  `since` is when we first saw it (its first call or registry event). Numbers known only from the
  do-not-call registry carry that reason instead.
- `dnc_registry_listed`: listed in the national registry at or before now; `since` is its
  earliest listing.
- `frequency_cap_24h_reached` / `frequency_cap_7d_reached`: the callee's calls in the 24 hours
  (7 days) up to the latest call in the warehouse already number at least the cap, so one more
  call would exceed it; `since` is the call that reached it. The reference is the latest call
  rather than the wall clock so that the list follows the data it was computed from (in production
  the two are minutes apart); a number leaves the list once its windows slide past.

The list is recomputed in full on every run, so a withdrawal recorded before a run is honoured by
that run.
"""

from __future__ import annotations

import datetime as dt

from phone_pipeline.domain.consent import consent_timeline_sql, purpose_values
from phone_pipeline.domain.contact import e164_key_sql

WITHDRAWN = "marketing_consent_withdrawn"
NEVER_GRANTED = "marketing_consent_never_granted"
DNC_LISTED = "dnc_registry_listed"
CAP_24H = "frequency_cap_24h_reached"
CAP_7D = "frequency_cap_7d_reached"
SCRUB_REASONS = (WITHDRAWN, NEVER_GRANTED, DNC_LISTED, CAP_24H, CAP_7D)


def scrub_values(now: dt.datetime, cap_24h: int, cap_7d: int) -> dict[str, object]:
    """The values `scrub_list_sql` names: `$now` (events and listings after it do not count
    yet), the frequency caps `$cap_24h` and `$cap_7d` (at least 1), and `$purpose` (marketing,
    the consent the list is about)."""
    cap_day, cap_week = int(cap_24h), int(cap_7d)
    if cap_day < 1 or cap_week < 1:
        raise ValueError("frequency caps must be at least 1")
    return {"now": now, "cap_24h": cap_day, "cap_7d": cap_week, **purpose_values("marketing")}


def scrub_list_sql(calls: str, known_numbers: str, consent_events: str, dnc_registry: str) -> str:
    """SELECT `e164`, `reason`, `since` over the tables named (their pipeline schemas;
    `known_numbers` as made by domain.validation.known_numbers_sql from `calls`), with the
    values of `scrub_values` bound.
    """
    events_now = f"(SELECT * FROM {consent_events} WHERE recorded_at <= $now)"

    def cap_reached(span: str, cap: str) -> str:
        # Per callee, the cap-th call of the window: the cap-th earliest time, kept by a bounded
        # aggregate (min(x, n)) instead of numbering every call of the week in a sort (half the
        # time over two days of 10M calls). Numbers as integer keys (see e164_key_sql).
        # list_extract, not [n]: sqlglot (lineage) misreads `$a)[$a` as a dollar-quoted string.
        return f"""
        SELECT callee_key, list_extract(min(started_at_utc, {cap}), {cap}) AS reached_at
        FROM (SELECT {e164_key_sql("callee_e164")} AS callee_key, started_at_utc FROM {calls}), latest
        WHERE started_at_utc BETWEEN latest.reference - INTERVAL {span} AND latest.reference
          AND callee_key IS NOT NULL
        GROUP BY callee_key HAVING count(*) >= {cap}"""

    return f"""
    WITH known AS (
        SELECT e164, min(seen_at) AS first_seen FROM (
            SELECT e164, first_seen AS seen_at FROM {known_numbers}
            UNION ALL SELECT e164, recorded_at FROM {events_now}
        )
        GROUP BY e164
    ),
    marketing AS ({consent_timeline_sql(events_now)}),
    marketing_state AS (
        SELECT e164, arg_max(granted, recorded_at) AS granted_now,
               max(recorded_at) FILTER (WHERE granted) AS last_grant
        FROM marketing GROUP BY e164
    ),
    withdrawn AS (
        SELECT state.e164, min(marketing.recorded_at) AS since
        FROM marketing_state AS state JOIN marketing USING (e164)
        WHERE NOT state.granted_now AND NOT marketing.granted
          AND (state.last_grant IS NULL OR marketing.recorded_at > state.last_grant)
        GROUP BY state.e164
    ),
    latest AS (SELECT max(started_at_utc) AS reference FROM {calls}),
    -- For each callee, the call that reached the cap in the window ending at the reference.
    last_day AS ({cap_reached("24 HOURS", "$cap_24h")}),
    last_week AS ({cap_reached("7 DAYS", "$cap_7d")})
    SELECT e164, '{WITHDRAWN}' AS reason, since FROM withdrawn
    UNION ALL
    SELECT known.e164, '{NEVER_GRANTED}', known.first_seen
    FROM known ANTI JOIN marketing_state USING (e164)
    UNION ALL
    SELECT e164, '{DNC_LISTED}', min(listed_at) FROM {dnc_registry}
    WHERE listed_at <= $now GROUP BY e164
    UNION ALL
    SELECT '+' || callee_key, '{CAP_24H}', reached_at FROM last_day
    UNION ALL
    SELECT '+' || callee_key, '{CAP_7D}', reached_at FROM last_week
    """
