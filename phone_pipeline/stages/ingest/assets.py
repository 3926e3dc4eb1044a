"""Stage 1, ingest: new call-log files into `restricted.raw_calls`, each row tagged with its file."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from phone_pipeline.automation.partitions import daily_partitions, partition_date, partition_range
from phone_pipeline.domain.redaction import redact
from phone_pipeline.domain.validation import row_key_sql
from phone_pipeline.landing import ingest_new_files, profiles_in_use
from phone_pipeline.resources import (
    GreatExpectationsResource,
    PipelineConfig,
    PseudonymKeyResource,
)
from phone_pipeline.sql import run, statement
from phone_pipeline.stages.erasure.checks import ERASURE_REGISTER
from phone_pipeline.stages.erasure.register import apply_register_to_new_calls
from phone_pipeline.stages.ingest.checks import RAW_CALLS, RAW_CALLS_CHECKS, raw_calls_expectations
from phone_pipeline.stages.retention.assets import oldest_processed_day, refuse_past_retention
from phone_pipeline.stages.shared.assets import (
    DUCKDB_POOL,
    restricted_connection,
    table_metadata,
    zone_attributes,
)
from phone_pipeline.stages.shared.checks import (
    files_readable_check,
    reconcile_check,
    suite_check,
)
from phone_pipeline.timings import PARSE, recording


@dg.asset(
    key=RAW_CALLS,
    deps=[ERASURE_REGISTER],  # the register is refreshed first, then applied to new rows
    partitions_def=daily_partitions,
    **zone_attributes("restricted", "ingest", kinds=("duckdb", "csv")),
    pool=DUCKDB_POOL,
    check_specs=RAW_CALLS_CHECKS,
    description=(
        "Call-log rows exactly as recorded (every column as text), one row per input row, tagged "
        "with the source file's name, content hash and row number; files in "
        "landing/calls/<profile>/ are mapped onto the contract by their profile (metadata "
        "call_log_profiles). Files are loaded once by "
        "content hash; rows of erased subjects are removed as they are loaded (see "
        "erasure_register). Restricted zone: holds raw phone numbers."
    ),
)
def raw_calls(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    pipeline_config: PipelineConfig,
    gx: GreatExpectationsResource,
    pseudonym_key: PseudonymKeyResource,
):
    call_date = partition_date(context)
    first_date, last_date = partition_range()
    # Rows of new files older than every zone's retention are loaded as out of range (and so
    # quarantined as `started_at_out_of_range`): nothing of them would be kept. Rows past only
    # the restricted retention are loaded into their day: its run processes them (a backfill).
    oldest = oldest_processed_day(pipeline_config)
    if oldest is not None:
        first_date = max(first_date, oldest)
    with restricted_connection(restricted_warehouse) as con:
        loaded_before = con.execute(
            "SELECT coalesce(max(load_order), 0) FROM landing_files"
        ).fetchone()[0]
        report = ingest_new_files(con, pipeline_config.landing_calls, first_date, last_date)
        with recording() as timings:  # new rows' numbers are parsed when the register is not empty
            erased = apply_register_to_new_calls(
                con, loaded_before, pipeline_config.default_region, pseudonym_key.pseudonymizers
            )
        for problem in report.rejected.values():
            context.log.error(f"Landing file not ingested: {problem}")
        # A partition whose restricted rows were swept stays as its zones keep it, even while
        # its landing files are still there (after loading: a backfill's rows arrive just now).
        refuse_past_retention(con, pipeline_config, call_date)
        files_in_partition = con.execute(
            "SELECT source_file, count(*) FROM raw_calls WHERE call_date = ? GROUP BY 1 ORDER BY 1",
            [call_date],
        ).fetchall()
        yield dg.MaterializeResult(
            asset_key=RAW_CALLS,
            metadata={
                **table_metadata(con, "raw_calls", call_date),
                "files_loaded_this_run": dg.MetadataValue.json(
                    [redact(name) for name in report.loaded]
                ),
                "rows_loaded_this_run": report.rows_loaded,
                "files_already_loaded": len(report.already_loaded),
                "rows_of_erased_subjects_removed_this_run": erased.total,
                "parse_seconds": timings.seconds(PARSE),
                "source_files_in_partition": dg.MetadataValue.json(
                    {redact(name): rows for name, rows in files_in_partition}
                ),
                # The mapping of each source format in landing/calls/<profile>/.
                "call_log_profiles": dg.MetadataValue.json(
                    {
                        name: profile.describe()
                        for name, profile in sorted(
                            profiles_in_use(pipeline_config.landing_calls).items()
                        )
                    }
                ),
                "local_times_resolved_this_run": dg.MetadataValue.json(
                    {
                        "nonexistent (DST gap): shifted forward": report.nonexistent_times,
                        "ambiguous (DST repeat): first occurrence": report.ambiguous_times,
                    }
                ),
            },
        )
        day = {"call_date": call_date}
        partition_sql = "SELECT * FROM raw_calls WHERE call_date = $call_date"
        # A row is identified by its file (load order, one per content hash) and row number,
        # packed in one integer: 4x cheaper to count than (hash, row) pairs. A row of an
        # unregistered file has no key, so it is not counted and the check fails.
        rows, distinct_keys = run(
            con,
            f"SELECT count(*), count(DISTINCT {row_key_sql('keyed')}) FROM ("
            "SELECT landing_files.load_order, raw_calls.source_row FROM raw_calls "
            "LEFT JOIN landing_files USING (content_hash) "
            "WHERE raw_calls.call_date = $call_date) AS keyed",
            day,
        ).fetchone()
        yield files_readable_check(RAW_CALLS, "landing_files_readable", report.rejected)
        file_rows, kept_or_erased = con.execute(
            statement(__file__, "rows_of_loaded_files")
        ).fetchone()
        yield reconcile_check(
            RAW_CALLS,
            "raw_rows_identified_once",
            {
                "rows = distinct (file content hash, row number)": (rows, distinct_keys),
                "rows of loaded files = raw rows + rows erased + rows swept by retention": (
                    file_rows,
                    kept_or_erased,
                ),
            },
        )
        yield suite_check(
            gx, RAW_CALLS, "raw_calls_suite", con, partition_sql, raw_calls_expectations(), day
        )
