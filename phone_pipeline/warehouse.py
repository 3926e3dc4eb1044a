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
from collections.abc import Iterator
from pathlib import Path

import duckdb

from phone_pipeline.domain.validation import known_numbers_sql

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
        started_at_utc TIMESTAMPTZ, timestamp_status VARCHAR NOT NULL, campaign_id VARCHAR,
        callee_erased BOOLEAN""",
    "number_cache": """
        raw_number VARCHAR NOT NULL, default_region VARCHAR NOT NULL, e164 VARCHAR,
        country VARCHAR, number_type VARCHAR, time_zones VARCHAR[], geo_region VARCHAR,
        reason VARCHAR, PRIMARY KEY (raw_number, default_region)""",
    "calls_validated": """
        call_date DATE NOT NULL, call_id VARCHAR NOT NULL, started_at_utc TIMESTAMPTZ NOT NULL,
        duration_seconds INTEGER NOT NULL, disposition VARCHAR NOT NULL, cell_id VARCHAR,
        caller_e164 VARCHAR NOT NULL, caller_country VARCHAR, caller_number_type VARCHAR,
        caller_geo_region VARCHAR, callee_e164 VARCHAR, callee_country VARCHAR,
        callee_number_type VARCHAR, source_file VARCHAR NOT NULL, source_row BIGINT NOT NULL,
        campaign_id VARCHAR, callee_erased BOOLEAN""",
    # Per day, each number of the validated calls, first and last seen that day
    # (domain.validation.known_numbers_sql): written with calls_validated.
    "known_numbers": """
        call_date DATE NOT NULL, e164 VARCHAR NOT NULL, first_seen TIMESTAMPTZ NOT NULL,
        last_seen TIMESTAMPTZ NOT NULL""",
    "calls_quarantine": """
        call_date DATE NOT NULL, reason VARCHAR NOT NULL, detail VARCHAR,
        source_file VARCHAR NOT NULL, source_row BIGINT NOT NULL, call_id VARCHAR,
        caller_number VARCHAR, callee_number VARCHAR, started_at VARCHAR,
        duration_seconds VARCHAR, disposition VARCHAR, cell_id VARCHAR, campaign_id VARCHAR""",
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
        source_row BIGINT NOT NULL, campaign_id VARCHAR""",
    "consent_exclusions": """
        call_date DATE NOT NULL, reason VARCHAR NOT NULL, call_id VARCHAR NOT NULL,
        source_file VARCHAR NOT NULL, source_row BIGINT NOT NULL""",
    # The national do-not-call registry (landing/dnc), refreshed in full each run.
    "dnc_registry": """
        e164 VARCHAR NOT NULL, listed_at TIMESTAMPTZ NOT NULL, source_file VARCHAR NOT NULL,
        source_row BIGINT NOT NULL""",
    "dnc_quarantine": """
        reason VARCHAR NOT NULL, detail VARCHAR, source_file VARCHAR NOT NULL,
        source_row BIGINT NOT NULL, phone_number VARCHAR, listed_at VARCHAR""",
    # What a dialer scrubs against before marketing calls (domain/scrub.py), rebuilt each run.
    # One row per number and reason, checked by its gate: a primary key made each rebuild
    # (delete all, insert all) cost 2.5-3 s at COMMIT for 160k rows, against 0.05 s.
    "dnc_scrub_list": """
        e164 VARCHAR NOT NULL, reason VARCHAR NOT NULL, since TIMESTAMPTZ NOT NULL,
        recorded_at TIMESTAMPTZ NOT NULL""",
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
    # Registry quarantines (consent, do-not-call, erasure) also hold malformed rows of a file
    # (landing.MALFORMED_ROW_REASONS): reason, detail, file and row number, no values.
    "erasure_quarantine": """
        reason VARCHAR NOT NULL, source_file VARCHAR NOT NULL, source_row BIGINT NOT NULL,
        phone_number VARCHAR, requested_at VARCHAR, request_id VARCHAR, detail VARCHAR""",
    "erasure_exclusions": """
        call_date DATE NOT NULL, reason VARCHAR NOT NULL, content_hash VARCHAR NOT NULL,
        source_file VARCHAR NOT NULL, source_row BIGINT NOT NULL,
        PRIMARY KEY (content_hash, source_row)""",
    # Rows of each landing file the retention sweep deleted (counts only), so that ingest's
    # "rows of loaded files = raw rows + rows erased + rows swept" stays exact after a sweep.
    "retention_swept_rows": """
        content_hash VARCHAR NOT NULL, call_date DATE NOT NULL, table_name VARCHAR NOT NULL,
        rows BIGINT NOT NULL, swept_at TIMESTAMPTZ NOT NULL""",
}

_CELL_FIGURES = """
        calls BIGINT, answered_calls BIGINT, answered_rate DOUBLE,
        total_duration_seconds BIGINT, median_duration_seconds DOUBLE,
        distinct_subscribers BIGINT, suppressed BOOLEAN NOT NULL,
        dp_epsilon DOUBLE"""

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
    # One row per table per retention sweep: what was deleted (counts only, never rows).
    "retention_log": """
        swept_at TIMESTAMPTZ NOT NULL, run_id VARCHAR NOT NULL, as_of DATE NOT NULL,
        zone VARCHAR NOT NULL, table_name VARCHAR NOT NULL, retention_days INTEGER NOT NULL,
        cutoff DATE, rows_deleted BIGINT NOT NULL""",
    # Re-identification risk per candidate dataset of the shareable zone (domain/risk.py):
    # counts of subscribers and shares, never pseudonyms.
    "reidentification_risk": """
        call_date DATE NOT NULL, dataset VARCHAR NOT NULL, measure VARCHAR NOT NULL,
        parameter INTEGER, parameter_upper INTEGER, value DOUBLE, subscribers BIGINT,
        sampled BIGINT, margin_95 DOUBLE, applicable BOOLEAN NOT NULL, dataset_rows BIGINT NOT NULL,
        recorded_at TIMESTAMPTZ NOT NULL""",
    # The latest publication decision per partition and dataset: published, withheld, withdrawn.
    "shareable_publications": """
        call_date DATE NOT NULL, dataset VARCHAR NOT NULL, decision VARCHAR NOT NULL,
        reasons VARCHAR, published_rows BIGINT NOT NULL, withdrawn_rows BIGINT NOT NULL,
        recorded_at TIMESTAMPTZ NOT NULL""",
    # The pipeline's own fairness: per measure and caller group (domain/fairness.py). Counts only.
    "fairness_rates": """
        call_date DATE NOT NULL, measure VARCHAR NOT NULL, country VARCHAR NOT NULL,
        number_type VARCHAR NOT NULL, rows BIGINT NOT NULL, affected BIGINT NOT NULL,
        rate DOUBLE, rest_rate DOUBLE, overall_rate DOUBLE, ratio_to_rest DOUBLE,
        flagged BOOLEAN NOT NULL""",
    # One row per differentially private publication: the subscriber-day budget it spent.
    "privacy_budget_ledger": """
        call_date DATE NOT NULL, output VARCHAR NOT NULL, epsilon DOUBLE NOT NULL,
        delta DOUBLE NOT NULL, budget_per_day DOUBLE NOT NULL, mechanism VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL, recorded_at TIMESTAMPTZ NOT NULL""",
    # Which key version each published partition's pseudonyms use; `note` says why a partition
    # still uses an older one after `phone-pipeline rotate-keys` (its restricted rows are gone).
    "pseudonym_key_periods": """
        call_date DATE NOT NULL, key_version INTEGER, rows BIGINT NOT NULL, note VARCHAR,
        recorded_at TIMESTAMPTZ NOT NULL""",
}


COMPLIANCE_TABLES: dict[str, str] = {
    # Responsible contact, per day; people only as pseudonyms (see domain/contact.py).
    "contact_pressure": """
        call_date DATE NOT NULL, callee_pseudonym VARCHAR NOT NULL, scope VARCHAR NOT NULL,
        campaign_id VARCHAR, calls BIGINT NOT NULL, max_calls_24h BIGINT NOT NULL,
        max_calls_7d BIGINT NOT NULL, over_24h_cap BOOLEAN NOT NULL, over_7d_cap BOOLEAN NOT NULL""",
    "quiet_hours": """
        call_date DATE NOT NULL, callee_pseudonym VARCHAR NOT NULL, campaign_id VARCHAR,
        window_status VARCHAR NOT NULL, calls BIGINT NOT NULL""",
    "abandonment_rates": """
        call_date DATE NOT NULL, campaign_id VARCHAR, live_answered_calls BIGINT NOT NULL,
        abandoned_calls BIGINT NOT NULL, abandonment_rate DOUBLE, over_limit BOOLEAN NOT NULL""",
    "dnc_call_findings": """
        call_date DATE NOT NULL, callee_pseudonym VARCHAR NOT NULL, campaign_id VARCHAR,
        calls BIGINT NOT NULL, first_call_at TIMESTAMPTZ NOT NULL,
        listed_since TIMESTAMPTZ NOT NULL""",
}

# Copies of analytics tables, one partition at a time, once their risk passed the gate.
SHAREABLE_TABLES: dict[str, str] = {
    name: ANALYTICS_TABLES[name]
    for name in ("calls_pseudonymized", "call_volume_hourly", "call_volume_by_country")
}

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
    con: duckdb.DuckDBPyConnection, call_date: dt.date, selects: dict[str, str]
) -> dict[str, int]:
    """Atomically replace one partition of each table by the rows of its SELECT.

    All tables change in one transaction, so that (say) validated and quarantined rows never
    disagree. Returns the new row count of the partition per table.
    """
    counts = {}
    with transaction(con):
        for table, select_sql in selects.items():
            con.execute(f"DELETE FROM {table} WHERE call_date = ?", [call_date])
            con.execute(f"INSERT INTO {table} BY NAME {select_sql}")
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


def ddl_column_names(columns: str) -> list[str]:
    """The column names a table definition declares (read by DuckDB itself, in memory)."""
    with duckdb.connect() as con:
        con.execute(f"CREATE TABLE declared ({columns})")
        return [name for name, _ in table_columns(con, "declared")]
