"""Responsible contact: how often, when and how a callee is called.

The rules a compliance reviewer audits, each as a SQL builder (what the pipeline runs, where the
data is) and, where the rule is subtle, a small pure-Python statement of it that tests compare the
SQL against:

- **Contact pressure**: at each call, the calls to the same callee in the 24 hours and the 7 days
  up to and including it, window `[t - 24 h, t]` and `[t - 7 d, t]` (a call exactly 24 hours
  earlier still counts: the protective reading). Per callee and day, the largest of these counts;
  more than the cap (default 3 in 24 h, 7 in 7 d) is flagged. Overall and per campaign.
- **Permitted window** in the callee's local time (default 08:00-21:00, start inclusive, end
  exclusive), using every time zone phonenumbers gives for the number: a call is `permitted` only
  when it falls inside the window in all of them, `outside_window` when it falls outside in any,
  and `unknown` when no zone is known (never assumed).
- **Abandonment** per campaign and day: abandoned / live-answered calls (`answered` + `abandoned`),
  flagged when strictly above the limit (exactly 3% is within a 3% limit). Exact arithmetic.
- **Calls after a do-not-call listing**: a call at or after the number's earliest listing.

The SQL names its values as parameters (`$call_date`, the caps, the window, the limit); the caller
binds them, the rules' from `contact_rule_values` (checked there).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PERMITTED = "permitted"
OUTSIDE_WINDOW = "outside_window"
UNKNOWN_ZONE = "unknown"
WINDOW_STATUSES = (PERMITTED, OUTSIDE_WINDOW, UNKNOWN_ZONE)

# The two scopes of contact-pressure rows: every call, or the calls of one campaign.
SCOPE_ALL = "all"
SCOPE_CAMPAIGN = "campaign"

# Dispositions that are a live answer (the denominator of the abandonment rate).
LIVE_ANSWERED = ("answered", "abandoned")

_WINDOW = re.compile(r"^\s*([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-4]):([0-5]\d)\s*$")


@dataclass(frozen=True)
class PermittedWindow:
    """Local time of day when calls are permitted, in minutes after midnight: [start, end)."""

    start_minute: int
    end_minute: int

    @classmethod
    def parse(cls, text: str) -> PermittedWindow:
        """`"08:00-21:00"`; a window across midnight (`"22:00-06:00"`) is allowed."""
        match = _WINDOW.match(text)
        if not match:
            raise ValueError(f"permitted window must look like 08:00-21:00, got {text!r}")
        start = int(match[1]) * 60 + int(match[2])
        end = int(match[3]) * 60 + int(match[4])
        if end > 24 * 60 or start == end:
            raise ValueError(f"permitted window {text!r} is empty or ends after 24:00")
        return cls(start, end)

    def contains(self, local: dt.datetime | dt.time) -> bool:
        minute = local.hour * 60 + local.minute
        if self.start_minute < self.end_minute:
            return self.start_minute <= minute < self.end_minute
        return minute >= self.start_minute or minute < self.end_minute

    def values(self) -> dict[str, int]:
        """The window as the parameters `window_status_sql` names."""
        return {"window_start_minute": self.start_minute, "window_end_minute": self.end_minute}


def _in_window_sql(minute_of_day_sql: str) -> str:
    """Whether a local minute of the day is in the window `$window_start_minute` to
    `$window_end_minute` (`PermittedWindow.contains`, a window across midnight too)."""
    minute, start, end = minute_of_day_sql, "$window_start_minute", "$window_end_minute"
    return (
        f"(CASE WHEN {start} < {end} THEN {minute} >= {start} AND {minute} < {end} "
        f"ELSE {minute} >= {start} OR {minute} < {end} END)"
    )


# --- reference statements (pure Python) -----------------------------------------------------------


def rolling_counts(times: Sequence[dt.datetime], window: dt.timedelta) -> list[int]:
    """For each call time, how many of `times` fall in [t - window, t] (ties included)."""
    return [sum(1 for other in times if t - window <= other <= t) for t in times]


def window_status(
    started_at_utc: dt.datetime, time_zones: Sequence[str] | None, window: PermittedWindow
) -> str:
    """The permitted-window verdict for one call; zones phonenumbers cannot name are ignored."""
    zones = []
    for name in time_zones or ():
        try:
            zones.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            continue
    zones = [zone for zone in zones if zone.key != "Etc/Unknown"]
    if not zones:
        return UNKNOWN_ZONE
    inside = all(window.contains(started_at_utc.astimezone(zone)) for zone in zones)
    return PERMITTED if inside else OUTSIDE_WINDOW


def over_abandonment_limit(abandoned: int, live_answered: int, limit: float) -> bool:
    """Strictly above the limit, in exact arithmetic (3 of 100 is not above 3%)."""
    if live_answered == 0:
        return False
    return Fraction(abandoned, live_answered) > Fraction(str(limit))


# --- what the pipeline runs (SQL) -----------------------------------------------------------------


def _checked_limit(limit: float) -> Decimal:
    # A decimal, so that the SQL compares exactly (the float 0.03 is not 3/100).
    if not 0 <= float(limit) <= 1:
        raise ValueError(f"abandonment limit must be a share in [0, 1], got {limit!r}")
    return Decimal(str(limit))


def _checked_cap(cap: int) -> int:
    if int(cap) < 1:
        raise ValueError(f"a frequency cap must be at least 1, got {cap!r}")
    return int(cap)


def contact_rule_values(
    window: PermittedWindow, max_calls_24h: int, max_calls_7d: int, max_abandonment_rate: float
) -> dict[str, object]:
    """The rules as the parameters the SQL below names, checked: caps of at least 1, a limit
    that is a share."""
    return {
        **window.values(),
        "max_calls_24h": _checked_cap(max_calls_24h),
        "max_calls_7d": _checked_cap(max_calls_7d),
        "max_abandonment_rate": _checked_limit(max_abandonment_rate),
    }


# An E.164 number is `+` and at most 15 digits, the first not 0: as a BIGINT it is an exact key,
# and sorting calls by an integer instead of a string halves the rolling counts' cost.
def e164_key_sql(column: str) -> str:
    return f"CAST(substr({column}, 2) AS BIGINT)"


_DAY_US, _WEEK_US = 24 * 3600 * 10**6, 7 * 24 * 3600 * 10**6


def contact_pressure_sql(calls: str) -> str:
    """Per callee and day (scope `all`) and per callee, campaign and day (scope `campaign`): the
    day's calls, the largest rolling counts, and whether a cap (`$max_calls_24h`,
    `$max_calls_7d`) was exceeded, for the day `$call_date`.

    `calls` (`call_date`, `callee_e164`, `campaign_id`, `started_at_utc`) must hold the 7 days
    before `$call_date` too.

    A call's windows end on its own day and reach back into two earlier days only in part: the
    day before (24 hours) and the day a week before (7 days); the six days in between count
    whole. So only those three days are sorted, merged per callee by time with the earlier
    days' calls moved forward by their window (a call at s is in the 24 hours up to t exactly
    when s + 24 h >= t), and the days in between are counted by an aggregate. Sorting every
    call of the week instead took 57 s at 10M calls a day with a week kept, against 15 s.
    """

    def moved(days_before: int, shift_us: int, kind: int) -> str:
        return f"""
            SELECT {e164_key_sql("callee_e164")} AS callee_key, campaign_id,
                   epoch_us(started_at_utc) + {shift_us} AS t, {kind} AS kind
            FROM {calls}
            WHERE call_date = $call_date - {days_before}
              AND callee_e164 IN (SELECT callee_e164 FROM todays_callees)"""

    def maxima(keys: str, where: str) -> str:
        # Sorted by time, a call of today comes before an earlier day's call moved to the same
        # instant (that call is still inside the window). The `position` rows up to a call of
        # today are today's calls so far plus the earlier calls that have left its windows:
        # `left_24h` of the day before and `left_7d` of the day a week before, both counted by
        # one running sum (low and high 32 bits). Its 24-hour count is then today's calls so
        # far plus the day before's calls that have not left.
        return f"""
            SELECT {keys}, count(*) FILTER (WHERE kind = 0) AS calls,
                   max(position - 2 * left_24h - left_7d) FILTER (WHERE kind = 0)
                     + count(*) FILTER (WHERE kind = 1) AS max_calls_24h,
                   max(position - left_24h - 2 * left_7d) FILTER (WHERE kind = 0)
                     + count(*) FILTER (WHERE kind = 2) AS max_calls_7d_partial
            FROM (
                SELECT {keys}, kind, position, left_calls & 4294967295 AS left_24h,
                       left_calls >> 32 AS left_7d
                FROM (
                    SELECT {keys}, kind, row_number() OVER running AS position,
                           sum(CASE kind WHEN 1 THEN 1 WHEN 2 THEN 4294967296 ELSE 0 END)
                             OVER running AS left_calls
                    FROM events WHERE {where}
                    WINDOW running AS (PARTITION BY {keys} ORDER BY t, kind
                                       ROWS UNBOUNDED PRECEDING)
                )
            )
            GROUP BY {keys}
            HAVING count(*) FILTER (WHERE kind = 0) > 0"""

    return f"""
        WITH todays_callees AS (
            SELECT DISTINCT callee_e164 FROM {calls}
            WHERE call_date = $call_date AND callee_e164 IS NOT NULL
        ),
        events AS (
            {moved(0, 0, 0)}
            UNION ALL {moved(1, _DAY_US, 1)}
            UNION ALL {moved(7, _WEEK_US, 2)}
        ),
        -- The six whole days in between, per callee and per callee and campaign.
        between_days AS (
            SELECT {e164_key_sql("callee_e164")} AS callee_key, campaign_id, all_campaigns,
                   between_calls
            FROM (
                SELECT callee_e164, campaign_id, grouping(campaign_id) = 1 AS all_campaigns,
                       count(*) AS between_calls
                FROM {calls}
                WHERE call_date BETWEEN $call_date - 6 AND $call_date - 1
                  AND callee_e164 IN (SELECT callee_e164 FROM todays_callees)
                GROUP BY GROUPING SETS ((callee_e164), (callee_e164, campaign_id))
            )
        ),
        scoped AS (
            SELECT callee_key, '{SCOPE_ALL}' AS scope, CAST(NULL AS VARCHAR) AS campaign_id,
                   calls, max_calls_24h,
                   max_calls_7d_partial + coalesce(between_calls, 0) AS max_calls_7d
            FROM ({maxima("callee_key", "TRUE")}) AS maxima
            LEFT JOIN (SELECT * FROM between_days WHERE all_campaigns) USING (callee_key)
            UNION ALL
            SELECT callee_key, '{SCOPE_CAMPAIGN}', campaign_id, calls, max_calls_24h,
                   max_calls_7d_partial + coalesce(between_calls, 0)
            FROM ({maxima("callee_key, campaign_id", "campaign_id IS NOT NULL")}) AS maxima
            LEFT JOIN (SELECT * FROM between_days WHERE NOT all_campaigns)
              USING (callee_key, campaign_id)
        )
        SELECT $call_date AS call_date, '+' || callee_key AS callee_e164, scope, campaign_id,
               calls, max_calls_24h, max_calls_7d,
               max_calls_24h > $max_calls_24h AS over_24h_cap,
               max_calls_7d > $max_calls_7d AS over_7d_cap
        FROM scoped
    """


def number_time_zones_sql(number_table: str, numbers_sql: str) -> str:
    """One row per E.164 number of `numbers_sql` (one column) found in `number_table` (the
    parsed-number cache) with its `time_zones`. A number's zones follow from the number alone,
    so the raw strings that parse to it agree. Only the numbers asked for are grouped: the
    whole cache, which grows with every day, took 7 s at 20M strings."""
    return f"""
        SELECT e164, any_value(time_zones) AS time_zones
        FROM {number_table} WHERE e164 IN ({numbers_sql}) GROUP BY e164
    """


def window_status_sql(calls: str, known_zones: str) -> str:
    """Each call of `calls` (`started_at_utc`, `callee_time_zones`) with `window_status`, for the
    window `$window_start_minute` to `$window_end_minute` (`PermittedWindow.values`).
    `known_zones` is a relation of zone names (`name`) the database can convert (DuckDB's ICU):
    DuckDB reads an unknown zone name as UTC, so names outside it are ignored, and `Etc/Unknown`,
    phonenumbers' "no idea", is never a zone.

    The window is judged on local minutes, so each distinct (zone list, UTC minute) is judged
    once and joined back: a day holds at most 1,440 minutes per zone list, however many calls.
    """
    local_minute = "(hour(local_time) * 60 + minute(local_time))"
    return f"""
        WITH minutes AS (
            SELECT DISTINCT callee_time_zones AS zones,
                   date_trunc('minute', started_at_utc) AS utc_minute
            FROM {calls}
        ),
        verdicts AS (
            SELECT zones, utc_minute, bool_and({_in_window_sql(local_minute)}) AS inside_all
            FROM (
                SELECT zones, utc_minute, timezone(zone, utc_minute) AS local_time
                FROM (SELECT zones, utc_minute, unnest(zones) AS zone FROM minutes)
                WHERE zone <> 'Etc/Unknown' AND zone IN (SELECT name FROM {known_zones})
            )
            GROUP BY zones, utc_minute
        )
        SELECT calls.*,
               CASE WHEN verdicts.inside_all IS NULL THEN '{UNKNOWN_ZONE}'
                    WHEN verdicts.inside_all THEN '{PERMITTED}'
                    ELSE '{OUTSIDE_WINDOW}' END AS window_status
        FROM {calls} AS calls
        LEFT JOIN verdicts
          ON verdicts.zones = calls.callee_time_zones
         AND verdicts.utc_minute = date_trunc('minute', calls.started_at_utc)
    """


def abandonment_sql(calls: str) -> str:
    """Per campaign (NULL: calls without one) and day `$call_date`: live-answered and abandoned
    calls, the rate, and `over_limit` (strictly above `$max_abandonment_rate`, compared exactly
    as decimals: bind a Decimal, see `contact_rule_values`)."""
    live = ", ".join(f"'{value}'" for value in LIVE_ANSWERED)
    return f"""
        SELECT call_date, campaign_id,
               count(*) FILTER (WHERE disposition IN ({live})) AS live_answered_calls,
               count(*) FILTER (WHERE disposition = 'abandoned') AS abandoned_calls,
               abandoned_calls / nullif(live_answered_calls, 0) AS abandonment_rate,
               abandoned_calls > CAST($max_abandonment_rate AS DECIMAL(18, 9))
                                 * live_answered_calls AS over_limit
        FROM {calls}
        WHERE call_date = $call_date
        GROUP BY call_date, campaign_id
    """


def calls_after_dnc_listing_sql(calls: str, listed_since: str) -> str:
    """Per callee and campaign: the calls of the day `$call_date` at or after the callee's
    do-not-call listing.

    `listed_since` has one row per number (`e164`, `listed_since`)."""
    return f"""
        SELECT calls.call_date, calls.callee_e164, calls.campaign_id, count(*) AS calls,
               min(calls.started_at_utc) AS first_call_at, any_value(dnc.listed_since) AS listed_since
        FROM {calls} AS calls
        JOIN {listed_since} AS dnc
          ON dnc.e164 = calls.callee_e164 AND calls.started_at_utc >= dnc.listed_since
        WHERE calls.call_date = $call_date
        GROUP BY calls.call_date, calls.callee_e164, calls.campaign_id
    """
