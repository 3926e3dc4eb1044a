"""Stage 2, validate: numbers to E.164 (each distinct string parsed once), bad rows to quarantine."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from phone_pipeline.automation.partitions import partition_date
from phone_pipeline.domain.numbers import PARSED_NUMBER_INPUTS
from phone_pipeline.domain.timestamps import clean_text_sql
from phone_pipeline.domain.validation import (
    INTERNAL_CALL,
    cleaned_calls_sql,
    known_numbers_sql,
    quarantine_share,
    quarantine_verdicts_sql,
    row_key_sql,
    validation_values,
)
from phone_pipeline.resources import GreatExpectationsResource, PipelineConfig
from phone_pipeline.sql import run, statement
from phone_pipeline.stages.ingest.checks import RAW_CALLS
from phone_pipeline.stages.shared.assets import (
    DUCKDB_POOL,
    DerivedLineage,
    counts_table,
    partitioned_table_spec,
    restricted_connection,
    sql_lineage,
    table_metadata,
)
from phone_pipeline.stages.shared.checks import reconcile_check, sql_check, suite_check
from phone_pipeline.stages.validate.checks import (
    CALLS_QUARANTINE,
    CALLS_VALIDATED,
    VALIDATED_CHECKS,
    validated_expectations,
)
from phone_pipeline.stages.validate.number_cache import day_number_map
from phone_pipeline.timings import PARSE, recording
from phone_pipeline.warehouse import replace_partition


@dg.multi_asset(
    specs=[
        partitioned_table_spec(
            CALLS_VALIDATED,
            [RAW_CALLS],
            (
                "Calls whose numbers are valid, in E.164 with country and number type; durations "
                "and dispositions checked; one row per call_id. Restricted zone."
            ),
            "restricted",
            "validate",
        ),
        partitioned_table_spec(
            CALLS_QUARANTINE,
            [RAW_CALLS],
            (
                "Raw rows that failed validation, each with a machine-readable `reason` and a "
                "`detail`: nothing is dropped. Restricted zone."
            ),
            "restricted",
            "validate",
        ),
    ],
    check_specs=VALIDATED_CHECKS,
    pool=DUCKDB_POOL,
    name="validate_calls",
)
def validate_calls(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    pipeline_config: PipelineConfig,
    gx: GreatExpectationsResource,
):
    call_date = partition_date(context)
    values = {
        "call_date": call_date,
        **validation_values(pipeline_config.default_region, pipeline_config.max_call_seconds),
    }
    with restricted_connection(restricted_warehouse) as con:
        with recording() as timings:
            newly_parsed = day_number_map(
                con,
                statement(__file__, "numbers_of_the_day"),
                values["default_region"],
                into="day_numbers",
                values=values,
            )
        raw_sql = statement(__file__, "raw_rows_of_the_day")
        cleaned_sql = cleaned_calls_sql(
            raw_sql,
            "day_numbers",
            callee_erased_sql="raw.callee_erased",
            internal_extension_sql="raw.internal_extension",
        )
        # Only the verdicts of rows not admitted are kept (a few percent); both tables are then
        # written straight from the raw rows, never through a wide intermediate table.
        verdicts_sql = quarantine_verdicts_sql(cleaned_sql)
        run(con, "CREATE OR REPLACE TEMP TABLE quarantine_verdicts AS " + verdicts_sql, values)
        verdicts = con.execute("SELECT count(*) FROM quarantine_verdicts").fetchone()[0]
        selects = validation_selects(raw_sql, cleaned_sql)
        replace_counts = replace_partition(con, call_date, selects, values)
        reasons = dict(
            con.execute(
                "SELECT reason, count(*) FROM calls_quarantine WHERE call_date = ? GROUP BY 1",
                [call_date],
            ).fetchall()
        )
        raw_rows = con.execute(
            "SELECT count(*) FROM raw_calls WHERE call_date = ?", [call_date]
        ).fetchone()[0]
        validated, quarantined = (
            replace_counts["calls_validated"],
            replace_counts["calls_quarantine"],
        )
        share = quarantine_share(raw_rows, reasons)
        internal = reasons.get(INTERNAL_CALL, 0)
        yield dg.MaterializeResult(
            asset_key=CALLS_VALIDATED,
            metadata={
                **table_metadata(
                    con, "calls_validated", call_date, validation_lineage(selects, verdicts_sql)
                ),
                "numbers_parsed_this_run": newly_parsed,
                "parse_seconds": timings.seconds(PARSE),
                "quarantine_share": round(share, 6),
                "internal_calls": internal,
            },
        )
        yield dg.MaterializeResult(
            asset_key=CALLS_QUARANTINE,
            metadata={
                **table_metadata(
                    con,
                    "calls_quarantine",
                    call_date,
                    validation_lineage(selects, verdicts_sql, "calls_quarantine"),
                ),  # fmt: skip
                "quarantined_by_reason": counts_table(reasons),
            },
        )
        distinct_call_ids, callees_missing = run(
            con, statement(__file__, "validated_ids_and_missing_callees"), values
        ).fetchone()
        yield suite_check(
            gx, CALLS_VALIDATED, "calls_validated_suite", con,
            "SELECT * FROM calls_validated WHERE call_date = $call_date",
            validated_expectations(pipeline_config.max_call_seconds), values,
        )  # fmt: skip
    yield sql_check(
        CALLS_VALIDATED,
        "quarantine_share_within_limit",
        passed=share <= pipeline_config.max_quarantine_share,
        metadata={
            "quarantine_share": round(share, 6),
            "limit": pipeline_config.max_quarantine_share,
            "internal_calls_not_counted": internal,
            "quarantined_by_reason": counts_table(reasons),
        },
    )
    yield reconcile_check(
        CALLS_VALIDATED,
        "validate_rows_reconcile",
        {
            "raw = validated + quarantined": (raw_rows, validated + quarantined),
            "quarantined written = rows given a reason": (quarantined, verdicts),
            "validated = distinct call ids": (validated, distinct_call_ids),
            "callees missing, not erased": (callees_missing, 0),
        },
    )


def validation_selects(raw_sql: str, cleaned_sql: str) -> dict[str, str]:
    """What replaces the partition of each table, in one transaction: validated and quarantined
    rows never disagree. Quarantined rows are raw rows as recorded: read without the number
    lookups and cleaning. The day's numbers are those of `$call_date`."""
    return {
        "calls_validated": f"""
            SELECT call_date, clean_call_id AS call_id, started_at_utc,
                   CAST(duration_int AS INTEGER) AS duration_seconds,
                   clean_disposition AS disposition, clean_cell_id AS cell_id,
                   caller_e164, caller_country, caller_number_type, caller_geo_region,
                   callee_e164, callee_country, callee_number_type, source_file, source_row,
                   {clean_text_sql("campaign_id")} AS campaign_id,
                   callee_was_erased AS callee_erased
            FROM ({cleaned_sql}) ANTI JOIN quarantine_verdicts USING (row_key)""",
        "calls_quarantine": f"""
            SELECT call_date, reason, detail, source_file, source_row, call_id, caller_number,
                   callee_number, started_at, duration_seconds, disposition, cell_id,
                   campaign_id
            FROM ({raw_sql}) AS raw
            JOIN quarantine_verdicts ON quarantine_verdicts.row_key = {row_key_sql("raw")}""",
        # The day's numbers, from the rows just written (scrub list, consent changes).
        "known_numbers": known_numbers_sql("calls_validated", one_day=True),
    }


def validation_lineage(
    selects: dict[str, str], verdicts_sql: str, table: str = "calls_validated"
) -> DerivedLineage:
    """Column lineage of a validation table, from the SELECTs the run executed."""
    return sql_lineage(
        selects[table],
        [RAW_CALLS],
        other_tables={"landing_files": RAW_CALLS},  # ingest registers each file it loads
        staged={"quarantine_verdicts": verdicts_sql},
        computed={"day_numbers": PARSED_NUMBER_INPUTS},
    )
