"""The DuckDB zones and how a partition is written to them.

Each zone is one file, so that its audience is set by who may read that file:
- `restricted.duckdb`: everything with raw or E.164 numbers (the pipeline's operators only);
- `analytics.duckdb`: pseudonymised rows and aggregates, no number (internal analysts);
- `compliance.duckdb`: contact-pressure findings named by pseudonym (the compliance audience);
- `shareable.duckdb`: only datasets whose re-identification risk passed the gate.
The other zones are attached to a restricted connection under their names, so rows move between
zones without passing through Python. Tables are created up front with fixed schemas, so an empty
partition gives empty tables, never a missing one; a column added to a schema later is added to
existing files too. A partition is replaced in one transaction (delete its rows, insert the new
ones): a failure leaves the old rows.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

# The catalog names the attached zone files go under.
ANALYTICS = "analytics"
COMPLIANCE = "compliance"
SHAREABLE = "shareable"

RESTRICTED_TABLES: dict[str, str] = {
    "landing_files": """
        content_hash VARCHAR PRIMARY KEY, file_name VARCHAR NOT NULL, file_size BIGINT NOT NULL,
        rows BIGINT NOT NULL, anchor_date DATE NOT NULL, load_order BIGINT NOT NULL,
        registered_at TIMESTAMPTZ NOT NULL""",
    # Name, size and mtime of landing files already hashed: a partition run then hashes only
    # files that are new or changed, not every file of the landing folder again.
    "landing_file_signatures": """
        file_name VARCHAR NOT NULL, file_size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL,
        content_hash VARCHAR NOT NULL, PRIMARY KEY (file_name, file_size, mtime_ns)""",
    "raw_calls": """
        call_date DATE NOT NULL, content_hash VARCHAR NOT NULL, source_file VARCHAR NOT NULL,
        source_row BIGINT NOT NULL, call_id VARCHAR, caller_number VARCHAR, callee_number VARCHAR,
        started_at VARCHAR, duration_seconds VARCHAR, disposition VARCHAR, cell_id VARCHAR,
        started_at_utc TIMESTAMPTZ, timestamp_status VARCHAR NOT NULL,
        callee_erased BOOLEAN""",
    "number_cache": """
        raw_number VARCHAR NOT NULL, default_region VARCHAR NOT NULL, e164 VARCHAR,
        country VARCHAR, number_type VARCHAR, time_zones VARCHAR[], geo_region VARCHAR,
        reason VARCHAR, PRIMARY KEY (raw_number, default_region)""",
    "calls_validated": """
        call_date DATE NOT NULL, call_id VARCHAR NOT NULL, started_at_utc TIMESTAMPTZ NOT NULL,
        duration_seconds INTEGER NOT NULL, disposition VARCHAR NOT NULL, cell_id VARCHAR,
        caller_e164 VARCHAR NOT NULL, caller_country VARCHAR, caller_number_type VARCHAR,
        caller_time_zones VARCHAR[], caller_geo_region VARCHAR,
        callee_e164 VARCHAR, callee_country VARCHAR, callee_number_type VARCHAR,
        callee_time_zones VARCHAR[], source_file VARCHAR NOT NULL, source_row BIGINT NOT NULL,
        callee_erased BOOLEAN""",
    "calls_quarantine": """
        call_date DATE NOT NULL, reason VARCHAR NOT NULL, detail VARCHAR,
        source_file VARCHAR NOT NULL, source_row BIGINT NOT NULL, call_id VARCHAR,
        caller_number VARCHAR, callee_number VARCHAR, started_at VARCHAR,
        duration_seconds VARCHAR, disposition VARCHAR, cell_id VARCHAR""",
    "consent_events": """
        e164 VARCHAR NOT NULL, purpose VARCHAR NOT NULL, status VARCHAR NOT NULL,
        recorded_at TIMESTAMPTZ NOT NULL, source VARCHAR, source_file VARCHAR NOT NULL,
        source_row BIGINT NOT NULL""",
    "consent_quarantine": """
        reason VARCHAR NOT NULL, detail VARCHAR, source_file VARCHAR NOT NULL,
        source_row BIGINT NOT NULL, phone_number VARCHAR, purpose VARCHAR, status VARCHAR,
        recorded_at VARCHAR, source VARCHAR""",
    "cell_reference": """
        cell_id VARCHAR PRIMARY KEY, region VARCHAR NOT NULL, latitude DOUBLE, longitude DOUBLE""",
    "consented_calls": """
        call_date DATE NOT NULL, call_id VARCHAR NOT NULL, started_at_utc TIMESTAMPTZ NOT NULL,
        duration_seconds INTEGER NOT NULL, disposition VARCHAR NOT NULL, cell_id VARCHAR,
        caller_e164 VARCHAR NOT NULL, caller_country VARCHAR, caller_number_type VARCHAR,
        caller_geo_region VARCHAR, callee_e164 VARCHAR, callee_identifiable BOOLEAN NOT NULL,
        callee_country VARCHAR, callee_number_type VARCHAR, source_file VARCHAR NOT NULL,
        source_row BIGINT NOT NULL""",
    "consent_exclusions": """
        call_date DATE NOT NULL, reason VARCHAR NOT NULL, call_id VARCHAR NOT NULL,
        source_file VARCHAR NOT NULL, source_row BIGINT NOT NULL""",
    # Erasure (assets/erasure.py): requests, the register (pseudonyms, never numbers), what each
    # request removed, unusable request rows, and raw rows left out because their caller is erased.
    "erasure_requests": """
        request_id VARCHAR PRIMARY KEY, requested_at TIMESTAMPTZ NOT NULL,
        source_file VARCHAR NOT NULL, received_at TIMESTAMPTZ NOT NULL, completed_at TIMESTAMPTZ,
        affected_partitions DATE[]""",
    "erasure_register": """
        request_id VARCHAR NOT NULL, key_version INTEGER NOT NULL, pseudonym VARCHAR NOT NULL,
        PRIMARY KEY (request_id, key_version)""",
    "erasure_removals": """
        request_id VARCHAR NOT NULL, zone VARCHAR NOT NULL, table_name VARCHAR NOT NULL,
        action VARCHAR NOT NULL, rows BIGINT NOT NULL, recorded_at TIMESTAMPTZ NOT NULL""",
    "erasure_quarantine": """
        reason VARCHAR NOT NULL, source_file VARCHAR NOT NULL, source_row BIGINT NOT NULL,
        phone_number VARCHAR, requested_at VARCHAR, request_id VARCHAR""",
    "erasure_exclusions": """
        call_date DATE NOT NULL, reason VARCHAR NOT NULL, content_hash VARCHAR NOT NULL,
        source_file VARCHAR NOT NULL, source_row BIGINT NOT NULL,
        PRIMARY KEY (content_hash, source_row)""",
}

_CELL_FIGURES = """
        calls BIGINT, answered_calls BIGINT, answered_rate DOUBLE,
        total_duration_seconds BIGINT, median_duration_seconds DOUBLE,
        distinct_subscribers BIGINT, suppressed BOOLEAN NOT NULL"""

ANALYTICS_TABLES: dict[str, str] = {
    "calls_pseudonymized": """
        call_date DATE NOT NULL, call_hour TIMESTAMPTZ NOT NULL, caller_pseudonym VARCHAR NOT NULL,
        callee_pseudonym VARCHAR, caller_country VARCHAR, caller_number_type VARCHAR,
        callee_country VARCHAR, callee_number_type VARCHAR, region VARCHAR NOT NULL,
        duration_seconds INTEGER NOT NULL, disposition VARCHAR NOT NULL""",
    "call_volume_hourly": """
        call_date DATE NOT NULL, call_hour TIMESTAMPTZ NOT NULL, region VARCHAR NOT NULL,"""
    + _CELL_FIGURES,
    "call_volume_by_country": """
        call_date DATE NOT NULL, caller_country VARCHAR NOT NULL,
        caller_number_type VARCHAR NOT NULL,"""
    + _CELL_FIGURES,
    "row_accounting": """
        call_date DATE NOT NULL, stage VARCHAR NOT NULL, outcome VARCHAR NOT NULL,
        reason VARCHAR, rows BIGINT NOT NULL, recorded_at TIMESTAMPTZ NOT NULL""",
    # Which key version each published partition's pseudonyms use; `note` says why a partition
    # still uses an older one after `phone-pipeline rotate-keys` (its restricted rows are gone).
    "pseudonym_key_periods": """
        call_date DATE NOT NULL, key_version INTEGER, rows BIGINT NOT NULL, note VARCHAR,
        recorded_at TIMESTAMPTZ NOT NULL""",
}


COMPLIANCE_TABLES: dict[str, str] = {}

SHAREABLE_TABLES: dict[str, str] = {}

ATTACHED_ZONE_TABLES: dict[str, dict[str, str]] = {
    ANALYTICS: ANALYTICS_TABLES,
    COMPLIANCE: COMPLIANCE_TABLES,
    SHAREABLE: SHAREABLE_TABLES,
}


def _quoted(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def prepare_restricted(con: duckdb.DuckDBPyConnection) -> None:
    """Session settings and the restricted tables."""
    con.execute("SET TimeZone = 'UTC'")
    ensure_tables(con, None, RESTRICTED_TABLES)
    # An erased callee leaves the call without a callee number (files made before allowed none).
    drop_not_null(con, "main.calls_validated", "callee_e164")


def ensure_tables(
    con: duckdb.DuckDBPyConnection, catalog: str | None, tables: dict[str, str]
) -> None:
    """Create missing tables in `catalog` (None: the connection's own file), and add columns a
    newer schema has to tables made by an older one (nullable: older rows have no value)."""
    prefix = f"{catalog}.main." if catalog else "main."
    for table, columns in tables.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {prefix}{table} ({columns})")
        existing = {name for name, _ in table_columns(con, f"{prefix}{table}")}
        con.execute(f"CREATE OR REPLACE TEMP TABLE expected_schema ({columns})")
        for name, kind in table_columns(con, "temp.main.expected_schema"):
            if name not in existing:
                con.execute(f"ALTER TABLE {prefix}{table} ADD COLUMN {name} {kind}")
    con.execute("DROP TABLE IF EXISTS temp.main.expected_schema")


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
        con.execute(f"ATTACH {_quoted(path)} AS {zone}")
    ensure_tables(con, zone, ATTACHED_ZONE_TABLES[zone])


def replace_partition(
    con: duckdb.DuckDBPyConnection, call_date: dt.date, selects: dict[str, str]
) -> dict[str, int]:
    """Atomically replace one partition of each table by the rows of its SELECT.

    All tables change in one transaction, so that (say) validated and quarantined rows never
    disagree. Returns the new row count of the partition per table.
    """
    counts = {}
    con.execute("BEGIN TRANSACTION")
    try:
        for table, select_sql in selects.items():
            con.execute(f"DELETE FROM {table} WHERE call_date = ?", [call_date])
            con.execute(f"INSERT INTO {table} BY NAME {select_sql}")
            counts[table] = partition_count(con, table, call_date)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
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
