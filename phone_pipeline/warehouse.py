"""The DuckDB zones and how a partition is written to them.

Each zone is one file, so that its audience is set by who may read that file:
- `restricted.duckdb`: everything with raw or E.164 numbers (the pipeline's operators only);
- `analytics.duckdb`: pseudonymised rows and aggregates, no number (internal analysts only:
  pseudonymised rows are still personal data, GDPR Art. 4(5));
- `compliance.duckdb`: contact-pressure findings named by pseudonym (the compliance audience);
- `shareable.duckdb`: copies of analytics partitions whose measured re-identification risk
  passed the gate (`analytics.reidentification_risk`, limits in settings); the file to hand out.
The other zones are attached to a restricted connection under their names, so rows move between
zones without passing through Python. Tables are created up front with fixed schemas, so an empty
partition gives empty tables, never a missing one; a column added to a schema later is added to
existing files too. A partition is replaced in one transaction (delete its rows, insert the new
ones): a failure leaves the old rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import duckdb

from phone_pipeline.catalog import ANALYTICS, COMPLIANCE, RESTRICTED, SHAREABLE, ddl_by_table
from phone_pipeline.domain.validation import known_numbers_sql
from phone_pipeline.sql import SqlValues, run

# Each zone's tables: name -> the column list of its CREATE TABLE, from the catalog (catalog.py
# holds every table's columns, descriptions and what it holds about people).
RESTRICTED_TABLES: dict[str, str] = ddl_by_table(RESTRICTED)
ANALYTICS_TABLES: dict[str, str] = ddl_by_table(ANALYTICS)
COMPLIANCE_TABLES: dict[str, str] = ddl_by_table(COMPLIANCE)
# Copies of analytics tables, one partition at a time, once their risk passed the gate.
SHAREABLE_TABLES: dict[str, str] = ddl_by_table(SHAREABLE)

# The zones attached to a restricted connection under their names (the catalog names of DuckDB).
ATTACHED_ZONE_TABLES: dict[str, dict[str, str]] = {
    ANALYTICS: ANALYTICS_TABLES,
    COMPLIANCE: COMPLIANCE_TABLES,
    SHAREABLE: SHAREABLE_TABLES,
}


T = TypeVar("T")
# Readers outside the duckdb pool (the CLI's summary after its run, the landing sensor) hold a
# zone file for milliseconds; a step opening it in that moment waits instead of failing the run.
LOCK_WAIT_SECONDS = 30.0


def is_lock_conflict(error: duckdb.IOException) -> bool:
    """Whether DuckDB refused to open a file because another process holds its lock (and not
    because the file is missing, unreadable or corrupt): worth waiting for, nothing else is."""
    return "Could not set lock" in str(error)


def when_unlocked(open_file: Callable[[], T], seconds: float = LOCK_WAIT_SECONDS) -> T:
    """`open_file()`, retried while another process holds the file's lock (up to `seconds`)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return open_file()
        except duckdb.IOException as error:
            if not is_lock_conflict(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def prepare_restricted(con: duckdb.DuckDBPyConnection) -> None:
    """Session settings and the restricted tables."""
    con.execute("SET TimeZone = 'UTC'")
    if not _has_table(con, "known_numbers"):
        # A new file, or one made before the table: created and filled with the numbers of the
        # days already validated in one transaction, so that it never exists half filled.
        with transaction(con):
            ensure_tables(con, None, {name: RESTRICTED_TABLES[name]
                                      for name in ("calls_validated", "known_numbers")})  # fmt: skip
            con.execute(
                f"INSERT INTO main.known_numbers {known_numbers_sql('main.calls_validated')}"
            )
    ensure_tables(con, None, RESTRICTED_TABLES)
    # An erased callee leaves the call without a callee number (files made before allowed none).
    drop_not_null(con, "main.calls_validated", "callee_e164")
    # Time zones are looked up from the number when needed (contact rules): a list per row and
    # number cost a fifth of validation at 10M calls. Files made before had them.
    for column in ("caller_time_zones", "callee_time_zones"):
        con.execute(f"ALTER TABLE main.calls_validated DROP COLUMN IF EXISTS {column}")
    _drop_primary_key(con, "dnc_scrub_list")


def _drop_primary_key(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Rebuilds `table` of a file made before without its primary key, keeping its rows: DuckDB
    cannot drop a constraint, and a dialer must never find the scrub list empty."""
    has_key = con.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
        [table],
    ).fetchone()[0]
    if not has_key:
        return
    with transaction(con):
        con.execute(f"CREATE TABLE main.{table}_rebuilt ({RESTRICTED_TABLES[table]})")
        con.execute(f"INSERT INTO main.{table}_rebuilt SELECT * FROM main.{table}")
        con.execute(f"DROP TABLE main.{table}")
        con.execute(f"ALTER TABLE main.{table}_rebuilt RENAME TO {table}")


def _has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return (
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND table_name = ?",
            [table],
        ).fetchone()[0]
        > 0
    )


def ensure_tables(
    con: duckdb.DuckDBPyConnection, catalog: str | None, tables: dict[str, str]
) -> None:
    """Create missing tables in `catalog` (None: the connection's own file), and add columns a
    newer schema has to tables made by an older one (nullable: older rows have no value).

    Every step's connection calls this: one catalog query finds what exists (a DESCRIBE and a
    scratch table per table, 960 statements in a run, cost a tenth of a run's time)."""
    prefix = f"{catalog}.main." if catalog else "main."
    existing: dict[str, set[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() "
        "WHERE database_name = coalesce(?, current_database()) AND schema_name = 'main'",
        [catalog],
    ).fetchall():
        existing.setdefault(table, set()).add(column)
    for table, columns in tables.items():
        if table not in existing:
            con.execute(f"CREATE TABLE IF NOT EXISTS {prefix}{table} ({columns})")
            continue
        for name, kind in declared_columns(columns):
            if name not in existing[table]:
                con.execute(f"ALTER TABLE {prefix}{table} ADD COLUMN {name} {kind}")


@functools.cache
def declared_columns(columns: str) -> tuple[tuple[str, str], ...]:
    """(name, type) of each column of a table declaration, as DuckDB reads it (once per
    process: the declarations are constants)."""
    # One scratch database for every declaration: opening one per declaration cost 20 ms each,
    # 0.7 s of every run.
    with _SCRATCH_LOCK:
        scratch = _scratch_database()
        scratch.execute(f"CREATE OR REPLACE TABLE declared ({columns})")
        return tuple(table_columns(scratch, "declared"))


_SCRATCH_LOCK = threading.Lock()


@functools.cache
def _scratch_database() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def attach_zone(con: duckdb.DuckDBPyConnection, zone: str, path: Path | str) -> None:
    """Attach a zone's file under its name on a restricted connection and create its tables.

    One connection over several files lets a stage read restricted rows and publish derived rows
    without moving them through Python.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    attached = {
        row[0] for row in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()
    }
    if zone not in attached:
        when_unlocked(lambda: run(con, f"ATTACH $path AS {zone}", {"path": str(path)}))
    ensure_tables(con, zone, ATTACHED_ZONE_TABLES[zone])


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction around the block: committed at its end, rolled back if it raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def replace_partition(
    con: duckdb.DuckDBPyConnection,
    call_date: dt.date,
    selects: dict[str, str],
    values: SqlValues | None = None,
) -> dict[str, int]:
    """Atomically replace one partition of each table by the rows of its SELECT.

    All tables change in one transaction, so that (say) validated and quarantined rows never
    disagree. `values` are bound to the parameters a SELECT names. Returns the new row count of the partition per table.
    """
    counts = {}
    with transaction(con):
        for table, select_sql in selects.items():
            con.execute(f"DELETE FROM {table} WHERE call_date = ?", [call_date])
            run(con, f"INSERT INTO {table} BY NAME {select_sql}", values)
            counts[table] = partition_count(con, table, call_date)
    return counts


def partition_count(con: duckdb.DuckDBPyConnection, table: str, call_date: dt.date) -> int:
    return con.execute(f"SELECT count(*) FROM {table} WHERE call_date = ?", [call_date]).fetchone()[
        0
    ]


def drop_not_null(con: duckdb.DuckDBPyConnection, table: str, column: str) -> None:
    """Make `column` nullable when an older file declared it NOT NULL."""
    if any(
        name == column and null == "NO"
        for name, _, null, *_ in con.execute(f"DESCRIBE {table}").fetchall()
    ):
        con.execute(f"ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL")


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """(name, type) of each column, in order."""
    return [(row[0], row[1]) for row in con.execute(f"DESCRIBE {table}").fetchall()]
