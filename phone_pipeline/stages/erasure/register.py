"""Applying the erasure register to the warehouse (the rules are in domain/erasure.py).

Two entry points:
- `erase_subjects` removes given subjects (E.164 numbers known for this call only, never stored)
  from every restricted table and, by pseudonym, from the analytics, shareable and compliance
  zones;
- `erased_among` tells which numbers of a relation are registered as erased, by pseudonymising them
  under the register's key versions: what ingest and the consent registry run on new rows, so that
  a re-landed file cannot bring an erased subject back.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from phone_pipeline import catalog
from phone_pipeline.catalog import People
from phone_pipeline.domain.erasure import ERASED_SUBJECT, erased_numbers
from phone_pipeline.domain.pseudonyms import Pseudonymizer
from phone_pipeline.sql import SqlValues, run
from phone_pipeline.stages.validate.number_cache import cache_new_numbers
from phone_pipeline.warehouse import ANALYTICS, COMPLIANCE, SHAREABLE, transaction

Pseudonymizers = Mapping[int, Pseudonymizer]


@dataclass
class ErasureOutcome:
    """Rows changed per (zone, table, action), and the partitions (dates) they belong to."""

    rows: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    partitions: set[dt.date] = field(default_factory=set)

    def add(self, zone: str, table: str, action: str, dates: list[tuple]) -> None:
        if dates:
            self.rows[(zone, table, action)] += len(dates)
            self.partitions |= {row[0] for row in dates if row and row[0] is not None}

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def load_register(con: duckdb.DuckDBPyConnection) -> dict[int, set[str]]:
    register: dict[int, set[str]] = defaultdict(set)
    for version, pseudonym in con.execute(
        "SELECT key_version, pseudonym FROM erasure_register"
    ).fetchall():
        register[version].add(pseudonym)
    return dict(register)


def erased_among(
    con: duckdb.DuckDBPyConnection,
    e164_sql: str,
    pseudonymizers: Callable[[], Pseudonymizers],
    values: SqlValues | None = None,
) -> list[str]:
    """The distinct numbers of `e164_sql` (one column; `values` bound to the parameters it
    names) registered as erased. The key is asked for only when the register is not empty."""
    register = load_register(con)
    if not register:
        return []
    numbers = [
        row[0] for row in run(con, f"SELECT DISTINCT * FROM ({e164_sql})", values).fetchall()
    ]
    return sorted(erased_numbers((n for n in numbers if n), register, pseudonymizers()))


def registered_requests(
    con: duckdb.DuckDBPyConnection,
    usable_sql: str,
    pseudonymizers: Callable[[], Pseudonymizers],
) -> list[tuple[str, dt.datetime, str | None]]:
    """For each request id of `usable_sql` (`clean_request_id`, `e164`) registered in an earlier
    run: its `requested_at` and `e164`, the number among those rows its register entries name
    (None when none does): the rows of the `registered` table of
    `domain.erasure.resolve_request_ids_sql`.

    A number matches when its pseudonym equals the id's entry under a version both registered
    and configured; with no such version nothing can match, and the rows are quarantined rather
    than taken for the registered request unchecked. The key is asked for only when an id of
    this run was registered before.
    """
    rows = con.execute(
        f"SELECT DISTINCT usable.clean_request_id, usable.e164, requests.requested_at "
        f"FROM ({usable_sql}) AS usable "
        "JOIN erasure_requests AS requests ON requests.request_id = usable.clean_request_id "
        "ORDER BY 1, 2"
    ).fetchall()
    resolved: dict[str, tuple[dt.datetime, str | None]] = {}
    if rows:
        entries: dict[str, dict[int, str]] = defaultdict(dict)
        for request_id, version, pseudonym in con.execute(
            "SELECT request_id, key_version, pseudonym FROM erasure_register "
            "WHERE request_id IN (SELECT unnest(?))",
            [sorted({row[0] for row in rows})],
        ).fetchall():
            entries[request_id][version] = pseudonym
        configured = pseudonymizers()
        for request_id, e164, requested_at in rows:
            matched = resolved.get(request_id, (requested_at, None))[1]
            if matched is None and any(
                configured[version].pseudonym(e164) == pseudonym
                for version, pseudonym in entries[request_id].items()
                if version in configured
            ):
                matched = e164
            resolved[request_id] = (requested_at, matched)
    return [(request_id, at, e164) for request_id, (at, e164) in resolved.items()]


def forget_erased_numbers(
    con: duckdb.DuckDBPyConnection, e164_sql: str, pseudonymizers: Callable[[], Pseudonymizers]
) -> list[str]:
    """The erased numbers among `e164_sql`, dropped again from the number cache: parsing a
    registry (consent, do-not-call) through the cache would otherwise keep them there."""
    erased = erased_among(con, e164_sql, pseudonymizers)
    if erased:
        con.execute("DELETE FROM number_cache WHERE e164 IN (SELECT unnest(?))", [erased])
    return erased


def _changed(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def erase_subjects(
    con: duckdb.DuckDBPyConnection,
    e164s: list[str],
    default_region: str,
    pseudonyms: set[str] | None = None,
) -> ErasureOutcome:
    """Remove the subjects from the restricted zone and, with `pseudonyms` (their register
    entries), from every attached zone that holds pseudonyms (`pseudonym_removals`).

    Idempotent: a second call finds nothing left to change.
    """
    outcome = ErasureOutcome()
    if not e164s:
        return outcome
    # Raw strings become E.164 through the cache: parse those not parsed yet (rows loaded but not
    # validated), so that every spelling of the number is found.
    cache_new_numbers(
        con,
        "SELECT caller_number AS raw_number FROM raw_calls "
        "UNION SELECT callee_number FROM raw_calls",
        default_region,
    )
    con.register("erased_e164_frame", pd.DataFrame({"e164": e164s}))
    con.execute("CREATE OR REPLACE TEMP TABLE erased_e164 AS SELECT e164 FROM erased_e164_frame")
    con.unregister("erased_e164_frame")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE erased_raw AS "
        "SELECT raw_number FROM number_cache WHERE e164 IN (SELECT e164 FROM erased_e164) "
        "UNION SELECT e164 FROM erased_e164"
    )
    numbers = "(SELECT e164 FROM erased_e164)"
    raws = "(SELECT raw_number FROM erased_raw)"
    restricted = "restricted"
    with transaction(con):
        con.execute(
            "CREATE OR REPLACE TEMP TABLE erased_caller_calls AS SELECT call_date, call_id "
            f"FROM calls_validated WHERE caller_e164 IN {numbers}"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE erased_callee_calls AS SELECT call_date, call_id "
            f"FROM calls_validated WHERE callee_e164 IN {numbers}"
        )
        # Caller erased: the raw row goes, and is accounted for as excluded.
        con.execute(
            f"INSERT OR IGNORE INTO erasure_exclusions SELECT call_date, '{ERASED_SUBJECT}', "
            f"content_hash, source_file, source_row FROM raw_calls WHERE caller_number IN {raws}"
        )
        steps = [
            ("raw_calls", "deleted",
             f"DELETE FROM raw_calls WHERE caller_number IN {raws} RETURNING call_date"),
            ("raw_calls", "callee_removed",
             f"UPDATE raw_calls SET callee_number = NULL, callee_erased = TRUE "
             f"WHERE callee_number IN {raws} RETURNING call_date"),
            ("calls_validated", "deleted",
             f"DELETE FROM calls_validated WHERE caller_e164 IN {numbers} RETURNING call_date"),
            ("calls_validated", "callee_removed",
             "UPDATE calls_validated SET callee_e164 = NULL, callee_country = NULL, "
             "callee_number_type = NULL, callee_erased = TRUE "
             f"WHERE callee_e164 IN {numbers} RETURNING call_date"),
            ("calls_quarantine", "deleted",
             f"DELETE FROM calls_quarantine WHERE caller_number IN {raws} RETURNING call_date"),
            ("known_numbers", "deleted",
             f"DELETE FROM known_numbers WHERE e164 IN {numbers} RETURNING call_date"),
            ("calls_quarantine", "callee_removed",
             f"UPDATE calls_quarantine SET callee_number = NULL WHERE callee_number IN {raws} "
             "RETURNING call_date"),
            ("consented_calls", "deleted",
             f"DELETE FROM consented_calls WHERE caller_e164 IN {numbers} RETURNING call_date"),
            ("consented_calls", "callee_removed",
             "UPDATE consented_calls SET callee_e164 = NULL, callee_identifiable = FALSE, "
             "callee_country = NULL, callee_number_type = NULL "
             "WHERE (call_date, call_id) IN (SELECT (call_date, call_id) FROM erased_callee_calls) "
             "RETURNING call_date"),
            ("consent_exclusions", "deleted",
             "DELETE FROM consent_exclusions WHERE (call_date, call_id) IN "
             "(SELECT (call_date, call_id) FROM erased_caller_calls) RETURNING call_date"),
            ("consent_events", "deleted",
             f"DELETE FROM consent_events WHERE e164 IN {numbers} RETURNING NULL"),
            ("consent_quarantine", "deleted",
             f"DELETE FROM consent_quarantine WHERE phone_number IN {raws} RETURNING NULL"),
            ("number_cache", "deleted",
             f"DELETE FROM number_cache WHERE raw_number IN {raws} OR e164 IN {numbers} "
             "RETURNING NULL"),
        ]  # fmt: skip
        for table, action, sql in steps:
            outcome.add(restricted, table, action, _changed(con, sql))
    if pseudonyms:
        con.register("erased_pseudonym_frame", pd.DataFrame({"pseudonym": sorted(pseudonyms)}))
        con.execute(
            "CREATE OR REPLACE TEMP TABLE erased_pseudonyms AS "
            "SELECT pseudonym FROM erased_pseudonym_frame"
        )
        con.unregister("erased_pseudonym_frame")
        # DuckDB writes one attached file per transaction: each zone goes after the restricted
        # one, in its own. A failure in between leaves the request pending, and the next run
        # completes it.
        for zone, table, action, sql in pseudonym_removals(
            "(SELECT pseudonym FROM erased_pseudonyms)"
        ):
            if _attached(con, zone):
                outcome.add(zone, table, action, _changed(con, sql))
    return outcome


# The zones holding pseudonyms, in the order erasure applies them (each in its own transaction).
_PSEUDONYM_ZONES = (ANALYTICS, SHAREABLE, COMPLIANCE)


def pseudonym_tables() -> list[tuple[str, str, tuple[str, ...]]]:
    """(zone, table, its pseudonym columns) of every table outside the restricted zone that names
    a caller or callee by pseudonym, from the catalog: a table added there is erased too."""
    found = []
    for zone in _PSEUDONYM_ZONES:
        for table in catalog.zone_tables(zone):
            columns = tuple(
                column.name for column in table.columns if column.people & _CALL_PSEUDONYMS
            )
            if columns:
                found.append((zone, table.name, columns))
    return found


_CALL_PSEUDONYMS = People.CALLER_PSEUDONYMS | People.CALLEE_PSEUDONYMS


def pseudonym_removals(marks: str) -> list[tuple[str, str, str, str]]:
    """(zone, table, action, SQL returning call_date) removing the pseudonyms of `marks` (a
    subquery of pseudonyms) from every zone that holds pseudonyms: as caller the row goes, as
    callee the callee pseudonym (and what describes the callee, its `callee_` columns) is
    removed; a row about the callee alone (compliance findings) goes."""
    removals = []
    for zone, name, _ in pseudonym_tables():
        table = catalog.table(zone, name)
        held = table.people
        relation = f"{zone}.{name}"
        if held & People.CALLER_PSEUDONYMS:
            delete = f"DELETE FROM {relation} WHERE caller_pseudonym IN {marks}"
            removals.append((zone, name, "deleted", f"{delete} RETURNING call_date"))
        if held & People.CALLEE_PSEUDONYMS and held & People.CALLER_PSEUDONYMS:
            cleared = ", ".join(
                f"{column} = NULL" for column in table.column_names if column.startswith("callee_")
            )
            update = f"UPDATE {relation} SET {cleared} WHERE callee_pseudonym IN {marks}"
            removals.append((zone, name, "callee_removed", f"{update} RETURNING call_date"))
        elif held & People.CALLEE_PSEUDONYMS:
            delete = f"DELETE FROM {relation} WHERE callee_pseudonym IN {marks}"
            removals.append((zone, name, "deleted", f"{delete} RETURNING call_date"))
    return removals


# Compliance tables naming a callee by pseudonym (abandonment_rates has campaigns only).
COMPLIANCE_PSEUDONYM_TABLES = tuple(
    name for zone, name, _ in pseudonym_tables() if zone == COMPLIANCE
)


def rows_naming_sql(
    relation: str, columns: Sequence[str], values: str = "(SELECT pseudonym FROM erasure_register)"
) -> str:
    """SQL counting the rows of `relation` where one of `columns` holds one of `values` (a
    one-column subquery: by default every pseudonym of the register)."""
    return f"SELECT count(*) FROM {relation} WHERE " + " OR ".join(
        f"{column} IN {values}" for column in columns
    )


def _attached(con: duckdb.DuckDBPyConnection, catalog: str) -> bool:
    return catalog in {
        row[0] for row in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()
    }


def apply_register_to_new_calls(
    con: duckdb.DuckDBPyConnection,
    loaded_before: int,
    default_region: str,
    pseudonymizers: Callable[[], Pseudonymizers],
) -> ErasureOutcome:
    """Remove erased subjects from call files loaded after `loaded_before` (a load order).

    Only when the register is not empty: the new rows' numbers are then parsed here (the cache
    spares validation the work) and matched to the register by pseudonym.
    """
    if not load_register(con):
        return ErasureOutcome()
    values = {"loaded_before": int(loaded_before), "default_region": default_region}
    new_rows = (
        "SELECT caller_number, callee_number FROM raw_calls WHERE content_hash IN "
        "(SELECT content_hash FROM landing_files WHERE load_order > $loaded_before)"
    )
    candidates = (
        f"SELECT caller_number AS raw_number FROM ({new_rows}) "
        f"UNION SELECT callee_number FROM ({new_rows})"
    )
    cache_new_numbers(con, candidates, default_region, values=values)
    e164s = erased_among(
        con,
        f"SELECT cache.e164 FROM number_cache AS cache JOIN ({candidates}) AS new "
        "ON cache.raw_number = new.raw_number AND cache.default_region = $default_region "
        "WHERE cache.e164 IS NOT NULL",
        pseudonymizers,
        values,
    )
    return erase_subjects(con, e164s, default_region)
