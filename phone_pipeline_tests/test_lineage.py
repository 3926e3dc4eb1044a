"""Column lineage is derived from the SQL each stage runs (phone_pipeline/lineage.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from phone_pipeline.assets.aggregate import aggregate_lineage, staged_cells_sql
from phone_pipeline.assets.consent import consent_lineage, consent_outcome_selects
from phone_pipeline.assets.pseudonymize import pseudonymized_lineage, staged_pseudonymized_sql
from phone_pipeline.assets.validate import validation_lineage, validation_selects
from phone_pipeline.checks.aggregate import CALL_VOLUME_HOURLY
from phone_pipeline.checks.consent import CONSENTED_CALLS
from phone_pipeline.checks.pseudonymize import CALLS_PSEUDONYMIZED
from phone_pipeline.checks.validate import CALLS_VALIDATED
from phone_pipeline.domain.suppression import suppress_small_cells_sql
from phone_pipeline.domain.validation import cleaned_calls_sql, quarantine_verdicts_sql
from phone_pipeline.landing import sql_date
from phone_pipeline.lineage import LineageError, derive_lineage
from phone_pipeline.warehouse import ANALYTICS_TABLES, RESTRICTED_TABLES, ddl_column_names
from phone_pipeline_tests.conftest import DAY
from phone_pipeline_tests.pipeline_support import module_pipeline

RAW = dg.AssetKey(["restricted", "raw_calls"])
CELLS = dg.AssetKey(["restricted", "cell_reference"])
EVENTS = dg.AssetKey(["restricted", "consent_events"])
FIGURES = ("calls", "answered_calls", "answered_rate", "total_duration_seconds",
           "median_duration_seconds")  # fmt: skip


def _validation(day: dt.date = DAY) -> tuple[dict[str, str], str]:
    raw_sql = (
        "SELECT raw_calls.*, landing_files.load_order FROM raw_calls "
        f"JOIN landing_files USING (content_hash) WHERE raw_calls.call_date = {sql_date(day)}"
    )
    cleaned = cleaned_calls_sql(raw_sql, "day_numbers", "US", callee_erased_sql="raw.callee_erased")
    return validation_selects(day, raw_sql, cleaned), quarantine_verdicts_sql(cleaned, 7200)


def _aggregate_staged(day: dt.date = DAY) -> dict[str, str]:
    keys = ["call_hour", "region"]
    return {
        "staged_cells": staged_cells_sql(sql_date(day), keys, keys),
        "staged_published": suppress_small_cells_sql(
            "staged_cells", ["call_date", *keys], FIGURES, 5
        ),
    }


def _columns(table: str, tables: dict[str, str]) -> set[str]:
    return set(ddl_column_names(tables[table]))


def test_pseudonyms_come_from_the_numbers_they_were_joined_on() -> None:
    deps = pseudonymized_lineage(staged_pseudonymized_sql(sql_date(DAY))).deps_by_column
    assert deps["caller_pseudonym"] == [(CONSENTED_CALLS, "caller_e164")]
    assert deps["callee_pseudonym"] == [(CONSENTED_CALLS, "callee_e164")]
    assert deps["region"] == [(CELLS, "region"), (CONSENTED_CALLS, "caller_geo_region")]
    assert deps["call_hour"] == [(CONSENTED_CALLS, "started_at_utc")]
    # Every published column is derived, from a column of a dep.
    assert set(deps) == _columns("calls_pseudonymized", ANALYTICS_TABLES)


def test_parsed_numbers_come_from_the_raw_string_of_their_role() -> None:
    selects, verdicts = _validation()
    validated = validation_lineage(selects, verdicts).deps_by_column
    assert validated["caller_e164"] == [(RAW, "caller_number")]
    assert validated["callee_country"] == [(RAW, "callee_number")]
    assert validated["callee_erased"] == [(RAW, "callee_erased")]
    assert validated["call_id"] == [(RAW, "call_id")]
    assert set(validated) == _columns("calls_validated", RESTRICTED_TABLES)
    quarantine = validation_lineage(selects, verdicts, "calls_quarantine").deps_by_column
    assert (RAW, "timestamp_status") in quarantine["reason"]
    assert set(quarantine) == _columns("calls_quarantine", RESTRICTED_TABLES)


def test_consent_decides_whether_a_callee_number_is_kept() -> None:
    selects = consent_outcome_selects(DAY)
    consented = consent_lineage(selects, "consented_calls").deps_by_column
    assert consented["callee_e164"] == [(CALLS_VALIDATED, "callee_e164"), (EVENTS, "status")]
    assert consented["callee_identifiable"] == [(EVENTS, "status")]
    assert set(consented) == _columns("consented_calls", RESTRICTED_TABLES)
    excluded = consent_lineage(selects, "consent_exclusions").deps_by_column
    assert set(excluded) == _columns("consent_exclusions", RESTRICTED_TABLES)


def test_aggregate_figures_come_from_the_pseudonymised_rows() -> None:
    deps = aggregate_lineage(_aggregate_staged()).deps_by_column
    assert deps["distinct_subscribers"] == [(CALLS_PSEUDONYMIZED, "caller_pseudonym")]
    assert (CALLS_PSEUDONYMIZED, "duration_seconds") in deps["total_duration_seconds"]
    # count(*) counts the rows of its cell: it depends on what forms the cell.
    assert {(CALLS_PSEUDONYMIZED, key) for key in ("call_date", "call_hour", "region")} <= set(
        deps["calls"]
    )
    # Exact figures set no dp_epsilon (NULL): it has no source column.
    assert set(deps) == _columns("call_volume_hourly", ANALYTICS_TABLES) - {"dp_epsilon"}


def test_a_table_no_asset_writes_is_an_error() -> None:
    selects, verdicts = _validation()
    # Without the declaration of what computes the day's parsed numbers, their columns have
    # no source: derivation refuses instead of drawing a partial graph.
    with pytest.raises(LineageError, match="day_numbers"):
        derive_lineage(
            selects["calls_validated"],
            {"raw_calls": RAW, "landing_files": RAW},
            staged={"quarantine_verdicts": verdicts},
        )
    with pytest.raises(LineageError, match="staged_published"):
        aggregate_lineage({"staged_cells": _aggregate_staged()["staged_cells"]})


def test_an_unknown_column_is_an_error() -> None:
    with pytest.raises(LineageError):
        derive_lineage("SELECT no_such_column AS x FROM raw_calls", {"raw_calls": RAW})


def test_materialized_lineage_is_what_the_sql_derives(tmp_path: Path) -> None:
    """A real run: each published table's lineage metadata equals the derivation from the SQL
    of the stage, and every column it draws names a column of its source asset."""
    with module_pipeline(tmp_path) as pipeline:
        pipeline.generate(rows=300)
        pipeline.run()
        instance = pipeline.instance

        def drawn(key: dg.AssetKey) -> dict[str, list[tuple[dg.AssetKey, str]]]:
            event = instance.get_latest_materialization_event(key)
            assert event is not None, key
            lineage = event.asset_materialization.metadata["dagster/column_lineage"].value
            return {
                column: [(dep.asset_key, dep.column_name) for dep in deps]
                for column, deps in lineage.deps_by_column.items()
            }

        selects, verdicts = _validation()
        expected = {
            CALLS_VALIDATED: validation_lineage(selects, verdicts),
            CONSENTED_CALLS: consent_lineage(consent_outcome_selects(DAY), "consented_calls"),
            CALLS_PSEUDONYMIZED: pseudonymized_lineage(staged_pseudonymized_sql(sql_date(DAY))),
            CALL_VOLUME_HOURLY: aggregate_lineage(_aggregate_staged()),
        }
        for key, derived in expected.items():
            assert drawn(key) == derived.deps_by_column, key
