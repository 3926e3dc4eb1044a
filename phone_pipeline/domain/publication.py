"""The datasets that may be published to the shareable zone, and what their risk is measured on.

Each candidate is a table of the analytics zone (pseudonymised, internal) with a copy of the same
name and schema in the shareable zone. For each, `risk_relation` gives, for one partition (the
day bound as `$call_date`), the records an outsider could link to a person, one row per (subscriber, record):

- `subscriber`: the pseudonym the record belongs to (the risk counts pseudonyms, never prints them);
- the quasi-identifier columns: what the published dataset shows about that record and an outsider
  can know (when, where, the number's country and type). Duration, disposition and the callee are
  what re-identification would reveal, so they are not quasi-identifiers;
- `trace_time`, `trace_place` (datasets with traces only): the (hour, region) point of the record.

To add an output (say a differentially private aggregate), add its shareable copy to the catalog
(`catalog.py`) and a `Candidate` here whose relation yields the records its published figures
describe; the risk asset and the publication gate pick it up. The candidates are the catalog's
shareable tables, in its order: a shareable table without a candidate fails at import.

What is deliberately NOT a candidate: `row_accounting`. Its counts include the published calls
and the calls in suppressed cells per aggregate, i.e. the day's total and the suppressed cells'
total: with one suppressed cell in a table, that cell's calls would be read off directly. The
aggregates themselves still allow some differencing (the additive figures of a table's suppressed
cells, taken together, are the day's total, read off the other table, minus its published
cells): the k-anonymity of an aggregate therefore counts the suppressed cells' subscribers as one
more group, so a table whose suppressed cells describe 1 to k-1 subscribers fails the gate.
"""

from __future__ import annotations

from dataclasses import dataclass

from phone_pipeline.catalog import ANALYTICS, shareable_tables
from phone_pipeline.sql import statement


@dataclass(frozen=True)
class Candidate:
    name: str  # table name in the analytics and shareable zones
    quasi_identifiers: tuple[str, ...]
    has_traces: bool  # whether the relation carries (trace_time, trace_place) points
    # A SELECT over the analytics zone (`{analytics}`) of the partition `$call_date`.
    relation_template: str
    # Aggregates with suppression: the same records, but of the suppressed cells (differencing).
    suppressed_template: str | None = None

    def risk_relation(self) -> str:
        """The records, parenthesised; the day is the parameter `$call_date`."""
        return "(" + self.relation_template.format(analytics=ANALYTICS) + ")"

    def suppressed_relation(self) -> str | None:
        if self.suppressed_template is None:
            return None
        return "(" + self.suppressed_template.format(analytics=ANALYTICS) + ")"


# Row-level calls (sql/calls_pseudonymized_records.sql): the caller's records and the consenting
# callee's. A person who is both is one subscriber. Traces are the caller's (hour, region)
# points: received calls would add time-only points, so the unicity measured is a lower bound.
CALLS_PSEUDONYMIZED = Candidate(
    name="calls_pseudonymized",
    quasi_identifiers=("role", "call_hour", "place", "country", "number_type"),
    has_traces=True,
    relation_template=statement(__file__, "calls_pseudonymized_records"),
)

# Aggregates: a subscriber is described by every published (not suppressed) cell they called in;
# the cell's key is the quasi-identifier and its size is the cell's distinct subscribers.
# Suppressed cells show their key only, no figure, but their additive figures taken together are
# the day's total (read off another table of the same calls) minus the published cells: so the
# subscribers of all suppressed cells together form one more group (differencing), marked by a
# constant key. Aggregates carry no traces: unicity is not applicable.
SUPPRESSED_GROUP = "(suppressed cells)"

_HOURLY_CELLS = """
        SELECT calls.caller_pseudonym AS subscriber,
               CASE WHEN NOT cells.suppressed THEN cells.call_hour END AS call_hour,
               CASE WHEN cells.suppressed THEN '{marker}' ELSE cells.region END AS region
        FROM {analytics}.calls_pseudonymized AS calls
        JOIN {analytics}.call_volume_hourly AS cells
          ON cells.call_date = calls.call_date AND cells.call_hour = calls.call_hour
         AND cells.region = calls.region
        WHERE calls.call_date = $call_date {only_suppressed}
"""
_COUNTRY_CELLS = """
        SELECT calls.caller_pseudonym AS subscriber,
               CASE WHEN cells.suppressed THEN '{marker}' ELSE cells.caller_country END
                   AS caller_country,
               CASE WHEN cells.suppressed THEN '{marker}' ELSE cells.caller_number_type END
                   AS caller_number_type
        FROM {analytics}.calls_pseudonymized AS calls
        JOIN {analytics}.call_volume_by_country AS cells
          ON cells.call_date = calls.call_date
         AND cells.caller_country = coalesce(calls.caller_country, 'unknown')
         AND cells.caller_number_type = coalesce(calls.caller_number_type, 'unknown')
        WHERE calls.call_date = $call_date {only_suppressed}
"""


def _cells(template: str, only_suppressed: bool) -> str:
    return template.replace("{marker}", SUPPRESSED_GROUP).replace(
        "{only_suppressed}", "AND cells.suppressed" if only_suppressed else ""
    )


CALL_VOLUME_HOURLY = Candidate(
    name="call_volume_hourly",
    quasi_identifiers=("call_hour", "region"),
    has_traces=False,
    relation_template=_cells(_HOURLY_CELLS, only_suppressed=False),
    suppressed_template=_cells(_HOURLY_CELLS, only_suppressed=True),
)

CALL_VOLUME_BY_COUNTRY = Candidate(
    name="call_volume_by_country",
    quasi_identifiers=("caller_country", "caller_number_type"),
    has_traces=False,
    relation_template=_cells(_COUNTRY_CELLS, only_suppressed=False),
    suppressed_template=_cells(_COUNTRY_CELLS, only_suppressed=True),
)

_RISK_RELATIONS = {
    candidate.name: candidate
    for candidate in (CALLS_PSEUDONYMIZED, CALL_VOLUME_HOURLY, CALL_VOLUME_BY_COUNTRY)
}


def _candidates() -> list[Candidate]:
    missing = [t.copy_of for t in shareable_tables() if t.copy_of not in _RISK_RELATIONS]
    if missing:
        raise LookupError(f"shareable tables without a risk relation: {', '.join(missing)}")
    return [_RISK_RELATIONS[t.copy_of] for t in shareable_tables() if t.copy_of]


# One per shareable table of the catalog (the analytics table it copies), in the catalog's order.
CANDIDATES: list[Candidate] = _candidates()
