"""The zone files: tables created up front, and schemas that grow without losing rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from phone_pipeline.automation.sensors import WarehouseBusy, already_ingested
from phone_pipeline.warehouse import (
    ATTACHED_ZONE_TABLES,
    RESTRICTED_TABLES,
    attach_zone,
    ensure_tables,
    is_lock_conflict,
    prepare_restricted,
    table_columns,
    when_unlocked,
)


def test_a_newer_schema_adds_its_columns_to_an_existing_table(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "zone.duckdb"))
    ensure_tables(con, None, {"calls": "call_id VARCHAR NOT NULL, rows BIGINT"})
    con.execute("INSERT INTO calls VALUES ('a', 1)")

    ensure_tables(con, None, {"calls": "call_id VARCHAR NOT NULL, rows BIGINT, campaign VARCHAR"})

    assert con.execute("SELECT * FROM calls").fetchall() == [("a", 1, None)]
    assert [row[0] for row in con.execute("DESCRIBE calls").fetchall()] == [
        "call_id",
        "rows",
        "campaign",
    ]


def test_every_attached_zone_gets_its_own_file_and_tables(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "restricted.duckdb"))
    for zone in ATTACHED_ZONE_TABLES:
        attach_zone(con, zone, tmp_path / f"{zone}.duckdb")
        attach_zone(con, zone, tmp_path / f"{zone}.duckdb")  # a second time changes nothing
    tables = {
        (row[0], row[1])
        for row in con.execute("SELECT database_name, table_name FROM duckdb_tables()").fetchall()
    }
    for zone, zone_tables in ATTACHED_ZONE_TABLES.items():
        assert (tmp_path / f"{zone}.duckdb").exists()
        assert {(zone, table) for table in zone_tables} <= tables


def test_validated_calls_of_an_older_file_lose_their_time_zone_lists(tmp_path: Path) -> None:
    # Files made before kept each number's time zones beside every call; they are looked up from
    # the number now, and data not needed is not kept.
    con = duckdb.connect(str(tmp_path / "restricted.duckdb"))
    older = RESTRICTED_TABLES["calls_validated"].replace(
        "callee_number_type VARCHAR,",
        "callee_number_type VARCHAR, caller_time_zones VARCHAR[], callee_time_zones VARCHAR[],",
    )
    ensure_tables(con, None, {"calls_validated": older})
    assert "callee_time_zones" in {name for name, _ in table_columns(con, "calls_validated")}

    prepare_restricted(con)

    columns = {name for name, _ in table_columns(con, "calls_validated")}
    assert not columns & {"caller_time_zones", "callee_time_zones"}
    assert "callee_e164" in columns


def test_an_older_file_gets_the_numbers_of_its_validated_days_once(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "restricted.duckdb"))
    prepare_restricted(con)
    con.execute("DROP TABLE known_numbers")  # as in a file made before the table
    for day, caller, callee, at in [
        ("2026-11-01", "+12125550101", "+12125550102", "2026-11-01 10:00"),
        ("2026-11-01", "+12125550102", None, "2026-11-01 09:00"),  # an erased callee
        ("2026-11-02", "+12125550101", "+12125550103", "2026-11-02 08:00"),
    ]:
        con.execute(
            "INSERT INTO calls_validated (call_date, call_id, started_at_utc, duration_seconds, "
            "disposition, caller_e164, callee_e164, source_file, source_row) "
            "VALUES (?, ?, CAST(? AS TIMESTAMPTZ), 1, 'answered', ?, ?, 'f', 1)",
            [day, at, at, caller, callee],
        )

    prepare_restricted(con)
    prepare_restricted(con)  # once only

    rows = con.execute(
        "SELECT call_date::VARCHAR, e164, strftime(first_seen, '%H:%M') FROM known_numbers "
        "ORDER BY 1, 2"
    ).fetchall()
    assert rows == [
        ("2026-11-01", "+12125550101", "10:00"),
        ("2026-11-01", "+12125550102", "09:00"),
        ("2026-11-02", "+12125550101", "08:00"),
        ("2026-11-02", "+12125550103", "08:00"),
    ]


def test_an_older_scrub_list_loses_its_primary_key_and_keeps_its_rows(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "restricted.duckdb"))
    older = RESTRICTED_TABLES["dnc_scrub_list"] + ", PRIMARY KEY (e164, reason)"
    ensure_tables(con, None, {"dnc_scrub_list": older})
    con.execute(
        "INSERT INTO dnc_scrub_list VALUES ('+12125550101', 'dnc_listed', "
        "TIMESTAMPTZ '2026-11-01 10:00:00+00', TIMESTAMPTZ '2026-11-02 00:00:00+00')"
    )

    prepare_restricted(con)
    prepare_restricted(con)  # once only

    keys = con.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'dnc_scrub_list' "
        "AND constraint_type = 'PRIMARY KEY'"
    ).fetchone()[0]
    assert keys == 0
    assert con.execute("SELECT e164, reason FROM dnc_scrub_list").fetchall() == [
        ("+12125550101", "dnc_listed")
    ]


_HOLD_READ_ONLY = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def test_a_writer_waits_for_a_brief_reader_of_another_process(tmp_path: Path) -> None:
    """The CLI's summary and the landing sensor read zone files outside the duckdb pool: a step
    opening the file in that moment waits for the lock instead of failing its run."""
    path = tmp_path / "analytics.duckdb"
    duckdb.connect(str(path)).close()
    reader = subprocess.Popen(
        [sys.executable, "-c", _HOLD_READ_ONLY, str(path), "1.5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert reader.stdout.readline().strip() == "held"
        with pytest.raises(duckdb.IOException, match="Could not set lock"):
            duckdb.connect(str(path))  # what a step met before
        con = when_unlocked(lambda: duckdb.connect(str(path)), seconds=30)
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
        con.close()
    finally:
        reader.wait(timeout=30)
    with pytest.raises(duckdb.IOException, match="Could not set lock"):
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLD_READ_ONLY, str(path), "5"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            holder.stdout.readline()
            when_unlocked(lambda: duckdb.connect(str(path)), seconds=0.5)  # gives up in time
        finally:
            holder.kill()
            holder.wait()


_HOLD_FOR_WRITING = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_the_landing_sensor_waits_for_a_busy_warehouse_but_not_for_a_damaged_one(
    tmp_path: Path,
) -> None:
    """A run writing the restricted file makes the sensor wait a tick; a file that is not a
    DuckDB database is an error to show, never a busy warehouse to wait for forever."""
    path = tmp_path / "restricted.duckdb"
    duckdb.connect(str(path)).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_FOR_WRITING, str(path), "30"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WarehouseBusy):
            already_ingested(path, {"a" * 64})
    finally:
        holder.kill()
        holder.wait()
    damaged = tmp_path / "damaged.duckdb"
    damaged.write_bytes(b"not a database " * 400)
    with pytest.raises(duckdb.IOException, match="not a valid DuckDB database") as raised:
        already_ingested(damaged, {"a" * 64})
    assert not isinstance(raised.value, WarehouseBusy)
    assert not is_lock_conflict(raised.value)
