"""The datasets that may be published to the shareable zone, and what their risk is measured on.

Each candidate is a table of the analytics zone (pseudonymised, internal) with a copy of the same
name and schema in the shareable zone. For each, `risk_relation` gives, for one partition, the
records an outsider could link to a person, one row per (subscriber, record):

- `subscriber`: the pseudonym the record belongs to (the risk counts pseudonyms, never prints them);
- the quasi-identifier columns: what the published dataset shows about that record and an outsider
  can know (when, where, the number's country and type). Duration, disposition and the callee are
  what re-identification would reveal, so they are not quasi-identifiers;
- `trace_time`, `trace_place` (datasets with traces only): the (hour, region) point of the record.

To add an output (say a differentially private aggregate), append a `Candidate` whose relation
yields the records its published figures describe; the risk asset and the publication gate pick
it up, and the shareable zone needs its table in `warehouse.SHAREABLE_TABLES`.

What is deliberately NOT a candidate: `row_accounting`. Its counts include the published calls
and the calls in suppressed cells per aggregate, i.e. the day's total and the suppressed cells'
total: with one suppressed cell in a table, that cell's calls would be read off directly. The
aggregates themselves still allow some differencing (the additive figures of a table's suppressed
cells, taken together, are the day's total, read off the other table, minus its published
cells); the risk asset measures how many subscribers those suppressed cells describe together
(`suppressed_cells_subscribers`) and the gate withholds a table where that is between 1 and k-1.
"""

from __future__ import annotations

from dataclasses import dataclass

from phone_pipeline.warehouse import ANALYTICS


@dataclass(frozen=True)
class Candidate:
    name: str  # table name in the analytics and shareable zones
    quasi_identifiers: tuple[str, ...]
    has_traces: bool  # whether the relation carries (trace_time, trace_place) points
    relation_template: str  # a SELECT over the analytics zone with `{day}` for the partition
    # Aggregates with suppression: the same records, but of the suppressed cells (differencing).
    suppressed_template: str | None = None

    def risk_relation(self, day_sql: str) -> str:
        return "(" + self.relation_template.format(day=day_sql, analytics=ANALYTICS) + ")"

    def suppressed_relation(self, day_sql: str) -> str | None:
        if self.suppressed_template is None:
            return None
        return "(" + self.suppressed_template.format(day=day_sql, analytics=ANALYTICS) + ")"


# Row-level calls: the caller's records (hour, region, their number's country and type) and the
# consenting callee's (hour, their number's country and type; the region is the caller's, so it
# is no point of the callee's trace). A person who is both is one subscriber. Traces are the
# caller's (hour, region) points: received calls would add time-only points, so the unicity
# measured is a lower bound.
CALLS_PSEUDONYMIZED = Candidate(
    name="calls_pseudonymized",
    quasi_identifiers=("role", "call_hour", "place", "country", "number_type"),
    has_traces=True,
    relation_template="""
        SELECT caller_pseudonym AS subscriber, 'caller' AS role, call_hour, region AS place,
               caller_country AS country, caller_number_type AS number_type,
               call_hour AS trace_time, region AS trace_place
        FROM {analytics}.calls_pseudonymized WHERE call_date = {day}
        UNION ALL
        SELECT callee_pseudonym, 'callee', call_hour, NULL, callee_country, callee_number_type,
               NULL, NULL
        FROM {analytics}.calls_pseudonymized
        WHERE call_date = {day} AND callee_pseudonym IS NOT NULL
    """,
)

# Aggregates: a subscriber is described by every published (not suppressed) cell they called in;
# the cell's key is the quasi-identifier and its size is the cell's distinct subscribers.
# Suppressed cells show their key only (that someone called), no figure, so they describe no one.
# Aggregates carry no traces: unicity is not applicable.
_HOURLY_CELLS = """
        SELECT calls.caller_pseudonym AS subscriber, cells.call_hour, cells.region
        FROM {analytics}.calls_pseudonymized AS calls
        JOIN {analytics}.call_volume_hourly AS cells
          ON cells.call_date = calls.call_date AND cells.call_hour = calls.call_hour
         AND cells.region = calls.region AND {suppressed} cells.suppressed
        WHERE calls.call_date = {day}
"""
CALL_VOLUME_HOURLY = Candidate(
    name="call_volume_hourly",
    quasi_identifiers=("call_hour", "region"),
    has_traces=False,
    relation_template=_HOURLY_CELLS.replace("{suppressed}", "NOT"),
    suppressed_template=_HOURLY_CELLS.replace("{suppressed}", ""),
)

_COUNTRY_CELLS = """
        SELECT calls.caller_pseudonym AS subscriber, cells.caller_country, cells.caller_number_type
        FROM {analytics}.calls_pseudonymized AS calls
        JOIN {analytics}.call_volume_by_country AS cells
          ON cells.call_date = calls.call_date
         AND cells.caller_country = coalesce(calls.caller_country, 'unknown')
         AND cells.caller_number_type = coalesce(calls.caller_number_type, 'unknown')
         AND {suppressed} cells.suppressed
        WHERE calls.call_date = {day}
"""
CALL_VOLUME_BY_COUNTRY = Candidate(
    name="call_volume_by_country",
    quasi_identifiers=("caller_country", "caller_number_type"),
    has_traces=False,
    relation_template=_COUNTRY_CELLS.replace("{suppressed}", "NOT"),
    suppressed_template=_COUNTRY_CELLS.replace("{suppressed}", ""),
)

CANDIDATES: list[Candidate] = [CALLS_PSEUDONYMIZED, CALL_VOLUME_HOURLY, CALL_VOLUME_BY_COUNTRY]
