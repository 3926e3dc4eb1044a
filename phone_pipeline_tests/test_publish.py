"""The two helpers every stage publishes through, on real DuckDB zone files: write-audit-publish
(a failed gate leaves the zone untouched, passing gates replace the partitions atomically) and
the registry refresh (a failure leaves the old registry, malformed rows are quarantined)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from phone_pipeline.stages.dnc.assets import DNC
from phone_pipeline.stages.pseudonymize.checks import CALLS_PSEUDONYMIZED
from phone_pipeline.stages.shared.assets import zones_connection
from phone_pipeline.stages.shared.checks import sql_check
from phone_pipeline.stages.shared.publish import Target, publish_if_gates_pass, stage_rows
from phone_pipeline.stages.shared.registry import replace_registry, stage_registry

DAY = dt.date(2026, 11, 1)
OTHER_DAY = dt.date(2026, 10, 31)
PERIODS = "analytics.pseudonym_key_periods"
ACCOUNTING = "analytics.row_accounting"
LOG = logging.getLogger("phone_pipeline_tests.publish")


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A restricted zone file with analytics attached, the day and the day before published."""
    with zones_connection(
        DuckDBResource(database=str(tmp_path / "restricted.duckdb")),
        DuckDBResource(database=str(tmp_path / "analytics.duckdb")),
    ) as con:
        for day, rows in ((DAY, 10), (OTHER_DAY, 20)):
            con.execute(
                f"INSERT INTO {PERIODS} VALUES (?, 1, ?, 'old', now())", [day, rows]
            )  # fmt: skip
            con.execute(
                f"INSERT INTO {ACCOUNTING} VALUES (?, 'old', 'kept', NULL, ?, now())", [day, rows]
            )
        yield con


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    return con.execute(f"SELECT call_date, rows FROM {table} ORDER BY call_date").fetchall()


def _stage(con: duckdb.DuckDBPyConnection) -> None:
    stage_rows(con, {"staged_new": "SELECT * FROM range(3) AS numbers(n)"})


def _targets(accounting_rows: str = "count(*)") -> list[Target]:
    return [
        Target(
            PERIODS,
            "SELECT DATE '2026-11-01' AS call_date, 2 AS key_version, count(*) AS rows, "
            "'new' AS note, now() AS recorded_at FROM staged_new",
            CALLS_PSEUDONYMIZED,
            metadata=lambda con: {"staged": con.execute("SELECT count(*) FROM staged_new").fetchone()[0]},
        ),
        # Written with the first, reported by it (no materialisation of its own).
        Target(
            ACCOUNTING,
            "SELECT DATE '2026-11-01' AS call_date, 'new' AS stage, 'kept' AS outcome, "
            f"NULL AS reason, {accounting_rows} AS rows, now() AS recorded_at FROM staged_new",
        ),
    ]  # fmt: skip


def _record_spend(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "INSERT INTO analytics.privacy_budget_ledger VALUES (?, 'test', 1.0, 0.0, 3.0, 'test', "
        "'run', now())",
        [DAY],
    )


def _spent(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT count(*) FROM analytics.privacy_budget_ledger").fetchone()[0]


def _gate(name: str, passed: bool) -> dg.AssetCheckResult:
    return sql_check(CALLS_PSEUDONYMIZED, name, passed=passed, metadata={"secret_value": "x"})


def test_a_failed_gate_publishes_nothing_and_names_the_gate(
    con: duckdb.DuckDBPyConnection, caplog: pytest.LogCaptureFixture
) -> None:
    _stage(con)
    gates = [_gate("rows_reconcile", True), _gate("no_numbers", False)]
    before = (_rows(con, PERIODS), _rows(con, ACCOUNTING))

    with caplog.at_level(logging.ERROR, logger=LOG.name):
        publication = publish_if_gates_pass(
            con, LOG, DAY, gates, _targets(), staged="the staged rows", refused="nothing moved",
            before_publish=_record_spend,
        )  # fmt: skip

    assert (_rows(con, PERIODS), _rows(con, ACCOUNTING)) == before
    assert _spent(con) == 0
    assert not publication.published and publication.failed_gates == ["no_numbers"]
    assert publication.results == gates  # the gates, and no materialisation
    assert [record.getMessage() for record in caplog.records] == [
        "Blocking gate(s) no_numbers failed on the staged rows: nothing moved."
    ]


def test_passing_gates_replace_the_partition_of_every_target(
    con: duckdb.DuckDBPyConnection,
) -> None:
    _stage(con)
    gates = [_gate("rows_reconcile", True)]

    publication = publish_if_gates_pass(
        con, LOG, DAY, gates, _targets(), staged="the staged rows", refused="nothing moved",
        before_publish=_record_spend,
    )  # fmt: skip

    assert publication.published and _spent(con) == 1
    assert _rows(con, PERIODS) == [(OTHER_DAY, 20), (DAY, 3)]
    assert _rows(con, ACCOUNTING) == [(OTHER_DAY, 20), (DAY, 3)]
    materialization, gate = publication.results
    assert gate is gates[0]
    assert isinstance(materialization, dg.MaterializeResult)
    assert materialization.asset_key == CALLS_PSEUDONYMIZED
    assert materialization.metadata["dagster/partition_row_count"] == 1
    assert materialization.metadata["dagster/table_name"] == PERIODS
    assert materialization.metadata["staged"] == 3


def test_a_failure_while_publishing_leaves_every_old_row(con: duckdb.DuckDBPyConnection) -> None:
    _stage(con)
    before = (_rows(con, PERIODS), _rows(con, ACCOUNTING))
    # The second target fails after the first was already replaced inside the transaction.
    failing = _targets("NULL")  # rows is NOT NULL

    with pytest.raises(duckdb.ConstraintException):
        publish_if_gates_pass(
            con, LOG, DAY, [_gate("rows_reconcile", True)], failing,
            staged="the staged rows", refused="nothing moved",
        )  # fmt: skip

    assert (_rows(con, PERIODS), _rows(con, ACCOUNTING)) == before


def test_a_warning_is_not_a_gate(con: duckdb.DuckDBPyConnection) -> None:
    _stage(con)
    finding = sql_check(
        CALLS_PSEUDONYMIZED, "finding", passed=False, severity=dg.AssetCheckSeverity.WARN
    )
    with pytest.raises(ValueError, match="finding"):
        publish_if_gates_pass(
            con, LOG, DAY, [finding], _targets(), staged="the staged rows", refused="nothing"
        )
    assert _rows(con, PERIODS) == [(OTHER_DAY, 20), (DAY, 10)]


@pytest.fixture
def restricted(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A restricted zone file whose do-not-call registry holds one listing from an older run."""
    with zones_connection(DuckDBResource(database=str(tmp_path / "restricted.duckdb"))) as con:
        con.execute("INSERT INTO dnc_registry VALUES ('+441134960000', now(), 'old.csv', 1)")
        con.execute("INSERT INTO dnc_quarantine VALUES ('old', NULL, 'old.csv', 2, NULL, NULL)")
        yield con


def _landing(folder: Path) -> None:
    folder.mkdir()
    (folder / "listings.csv").write_text(
        "phone_number,listed_at\n+441134960001,2026-10-01\n+441134960002,2026-10-02,extra\n",
        encoding="utf-8",
    )
    (folder / "broken.csv").write_bytes(b"phone_number,listed_at\n\xff\xfe,2026-10-01\n")


def _refresh(con: duckdb.DuckDBPyConnection, folder: Path, listed_at: str):
    read = stage_registry(con, LOG, DNC, folder)
    return replace_registry(
        con,
        DNC,
        read,
        {
            "dnc_registry": f"SELECT phone_number AS e164, {listed_at} AS listed_at, "
            "source_file, source_row FROM dnc_staged"
        },
        quarantined_sql="SELECT 'unused' AS reason, source_file, source_row FROM dnc_staged "
        "WHERE false",
    )


def test_a_registry_refresh_replaces_the_registry_and_quarantines_malformed_rows(
    restricted: duckdb.DuckDBPyConnection, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _landing(tmp_path / "dnc")
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        refresh = _refresh(restricted, tmp_path / "dnc", "CAST(listed_at AS TIMESTAMPTZ)")

    assert restricted.execute("SELECT e164, source_row FROM dnc_registry").fetchall() == [
        ("+441134960001", 1)
    ]
    assert refresh.quarantined_by_reason == {"too_many_fields": 1}
    assert refresh.rows_read == 2  # the staged row and the malformed one; the broken file is named
    assert refresh.files_readable.check_name == "dnc_files_readable"
    assert not refresh.files_readable.passed
    [message] = [record.getMessage() for record in caplog.records]
    assert message.startswith("Do-not-call file not read: ")


def test_a_failed_registry_refresh_leaves_the_old_registry(
    restricted: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    _landing(tmp_path / "dnc")
    before = [
        restricted.execute(f"SELECT * FROM {table}").fetchall()
        for table in ("dnc_registry", "dnc_quarantine")
    ]
    with pytest.raises(duckdb.Error, match="feed cut"):
        _refresh(restricted, tmp_path / "dnc", "error('feed cut')::TIMESTAMPTZ")
    after = [
        restricted.execute(f"SELECT * FROM {table}").fetchall()
        for table in ("dnc_registry", "dnc_quarantine")
    ]
    assert after == before
