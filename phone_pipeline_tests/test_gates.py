"""Gates: a failed blocking check stops the stages after it, and the analytics file is only ever
written after its audit passed (write to a staging table, audit, publish)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import duckdb
import pytest

import phone_pipeline.stages.aggregate.assets as aggregate_assets
from phone_pipeline.definitions import defs
from phone_pipeline.domain.suppression import suppress_small_cells_sql
from phone_pipeline.warehouse import prepare_restricted
from phone_pipeline_tests.conftest import DAY, Pipeline, check_results, materialized
from phone_pipeline_tests.pipeline_support import (
    count,
    read_text_csv,
    snapshot,
    step_failures,
    step_outcomes,
    write_csv_atomically,
)

CONSENT_AND_LATER_STEPS = (
    "join_consent",
    "analytics__calls_pseudonymized",
    "analytics__call_volume_hourly",
    "analytics__call_volume_by_country",
    "analytics__row_accounting",
)
# Reported but deliberately not blocking: one unreadable file must not stop every partition, and
# partitions keep being published under a new key while older ones wait for rotation.
WARNING_CHECKS = {
    "landing_files_readable",
    "consent_files_readable",
    "dnc_files_readable",
    "erasure_files_readable",
    "analytics_single_key_version",
    # Findings about dialling behaviour (stages/compliance/checks.py says why they do not block).
    "abandonment_within_limit",
    "no_calls_after_dnc_listing",
}


def analytics_state(pipeline: Pipeline) -> tuple[str, dict]:
    """The analytics file's bytes (hash) and its tables' contents."""
    digest = hashlib.sha256(pipeline.settings.analytics_db.read_bytes()).hexdigest()
    with pipeline.analytics() as con:
        return digest, snapshot(con, exclude_columns=frozenset())


def assert_not_run(result, steps) -> None:
    outcomes = step_outcomes(result)
    for step in steps:
        assert outcomes.get(step, "not started") in ("not started", "STEP_SKIPPED"), step


def test_every_gate_but_file_readability_is_blocking() -> None:
    specs = [
        spec
        for assets_def in defs.resolve_asset_graph().assets_defs
        for spec in assets_def.check_specs
    ]
    assert specs
    for spec in specs:
        assert spec.blocking == (spec.name not in WARNING_CHECKS), spec.name


def test_every_step_queues_in_the_duckdb_pool() -> None:
    """One writer per DuckDB file: every asset step touching DuckDB (its checks run inside it) is
    in the pool."""
    ops = [
        assets_def.node_def
        for assets_def in defs.resolve_asset_graph().assets_defs
        if any("duckdb" in spec.kinds for spec in assets_def.specs)
    ]
    assert len(ops) >= 8
    assert {op.name: op.pool for op in ops} == {op.name: "duckdb" for op in ops}


def test_quarantine_share_gate_stops_downstream(pipeline: Pipeline) -> None:
    pipeline.generate()
    strict = Pipeline(replace(pipeline.settings, max_quarantine_share=0.0), pipeline.instance)
    result = strict.run()

    assert not result.success
    checks = check_results(result)
    assert checks["quarantine_share_within_limit"] is False
    assert checks["raw_calls_suite"] and checks["validate_rows_reconcile"]
    assert set(step_failures(result)) == {"validate_calls"}
    assert_not_run(result, CONSENT_AND_LATER_STEPS)
    assert not materialized(result) & {
        "restricted/consented_calls",
        "restricted/consent_exclusions",
        "analytics/calls_pseudonymized",
        "analytics/call_volume_hourly",
        "analytics/call_volume_by_country",
        "analytics/row_accounting",
    }
    # The checked asset itself was written (that is how blocking checks work) ...
    with pipeline.restricted() as con:
        assert count(con, "SELECT count(*) FROM calls_validated WHERE call_date = ?", [DAY]) > 0
        assert count(con, "SELECT count(*) FROM consented_calls WHERE call_date = ?", [DAY]) == 0
    # ... but nothing reached the analytics zone.
    analytics_db = pipeline.settings.analytics_db
    if analytics_db.exists():
        with pipeline.analytics() as con:
            tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
            if "calls_pseudonymized" in tables:
                assert (
                    count(
                        con, "SELECT count(*) FROM calls_pseudonymized WHERE call_date = ?", [DAY]
                    )
                    == 0
                )

    # With the default limit the same data passes: the gate, not the data, stopped the run.
    assert pipeline.run().success


def test_phone_number_in_analytics_is_caught_before_publishing(pipeline: Pipeline) -> None:
    pipeline.generate()
    assert pipeline.run().success
    before = analytics_state(pipeline)

    # A reference-data mistake: one cell's region holds a phone number, which would be copied
    # into the shareable rows' `region` column.
    cells_file = pipeline.settings.cells_file
    cells = read_text_csv(cells_file)
    cells.loc[cells["cell_id"] == "NYC-01", "region"] = "+1 212 555 0100"
    write_csv_atomically(cells, cells_file)

    result = pipeline.run()
    assert not result.success
    checks = check_results(result)
    assert checks["no_phone_numbers_in_analytics"] is False
    assert set(step_failures(result)) == {"analytics__calls_pseudonymized"}
    assert "analytics/calls_pseudonymized" not in materialized(result)
    assert_not_run(result, CONSENT_AND_LATER_STEPS[2:])
    # Write, audit, publish: the analytics file is exactly as it was before the run.
    assert analytics_state(pipeline) == before
    with pipeline.analytics() as con:
        assert count(con, "SELECT count(*) FROM calls_pseudonymized WHERE region LIKE '%555%'") == 0


def test_broken_suppression_is_caught_before_publishing(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.generate()
    assert pipeline.run().success
    with pipeline.analytics() as con:
        before = snapshot(con)

    def no_suppression(source, key_columns, figure_columns):
        # A regression that forgets the threshold: every cell published with its figures.
        return suppress_small_cells_sql(source, key_columns, figure_columns).replace(
            "$min_cell_size", "1"
        )

    monkeypatch.setattr(aggregate_assets, "suppress_small_cells_sql", no_suppression)
    result = pipeline.run()
    assert not result.success
    checks = check_results(result)
    for table in ("call_volume_hourly", "call_volume_by_country"):
        assert checks[f"{table}_totals_reconcile"] is False, table
    assert checks["call_volume_hourly_suite"] is False
    assert checks["no_phone_numbers_in_analytics"] is True
    assert set(step_failures(result)) >= {"analytics__call_volume_hourly"}
    assert not materialized(result) & {
        "analytics/call_volume_hourly",
        "analytics/call_volume_by_country",
        "analytics/row_accounting",
    }
    assert_not_run(result, ["analytics__row_accounting"])
    with pipeline.analytics() as con:
        after = snapshot(con)
        small_published = count(
            con,
            "SELECT count(*) FROM call_volume_hourly WHERE NOT suppressed AND distinct_subscribers < 5",
        )
    # The aggregates and the accounting still hold the last audited publication.
    assert after == before
    assert small_published == 0


def test_raw_row_of_no_registered_file_stops_the_run(pipeline: Pipeline) -> None:
    pipeline.generate()
    # A row that no loaded file accounts for (say, written by hand): it has no row key.
    with duckdb.connect(str(pipeline.settings.restricted_db)) as con:
        prepare_restricted(con)
        con.execute(
            "INSERT INTO raw_calls (call_date, content_hash, source_file, source_row, "
            "timestamp_status) VALUES (?, 'not-a-loaded-file', 'stray.csv', 1, 'ok')",
            [DAY],
        )
    result = pipeline.run()

    assert not result.success
    checks = check_results(result)
    assert checks["raw_rows_identified_once"] is False
    assert set(step_failures(result)) == {"restricted__raw_calls"}
    assert_not_run(result, ["validate_calls", *CONSENT_AND_LATER_STEPS])
