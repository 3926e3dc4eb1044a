"""Stage 4, pseudonymize: keyed pseudonyms, hour-level times, minimised columns; written to the
internal analytics file only after its gates passed on the staged rows (write, audit, publish).
Pseudonymised rows are still personal data: they reach the shareable zone only through the
re-identification risk gate (stages/shareable/assets.py)."""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from phone_pipeline.automation.partitions import daily_partitions, partition_date
from phone_pipeline.domain.pseudonyms import PSEUDONYM_MAP_INPUTS, key_versions_sql
from phone_pipeline.resources import (
    GreatExpectationsResource,
    PipelineConfig,
    PseudonymKeyResource,
)
from phone_pipeline.sql import run, statement
from phone_pipeline.stages.consent.checks import CONSENTED_CALLS
from phone_pipeline.stages.erasure.register import rows_naming_sql
from phone_pipeline.stages.pseudonymize.checks import (
    CALLS_PSEUDONYMIZED,
    PSEUDONYMIZED_CHECKS,
    phone_numbers_found,
    pseudonymized_expectations,
)
from phone_pipeline.stages.reference.assets import CELL_REFERENCE
from phone_pipeline.stages.retention.assets import retention_refusal
from phone_pipeline.stages.shared.assets import (
    DUCKDB_POOL,
    DerivedLineage,
    sql_lineage,
    zone_attributes,
    zones_connection,
)
from phone_pipeline.stages.shared.checks import reconcile_check, sql_check, suite_check
from phone_pipeline.stages.shared.publish import Target, publish_if_gates_pass, stage_rows
from phone_pipeline.warehouse import ANALYTICS

PUBLISH_STAGED = "SELECT * FROM staged_pseudonymized"


def staged_pseudonymized_sql() -> str:
    """The day's (`$call_date`) pseudonymised rows, from the admitted calls and the registered
    `pseudonym_map` (PSEUDONYM_MAP_INPUTS)."""
    return statement(__file__, "staged_pseudonymized")


def pseudonymized_lineage(staged_sql: str) -> DerivedLineage:
    """Column lineage of calls_pseudonymized, from the staging SELECT the run executed."""
    return sql_lineage(
        PUBLISH_STAGED,
        [CONSENTED_CALLS, CELL_REFERENCE],
        staged={"staged_pseudonymized": staged_sql},
        computed={"pseudonym_map": PSEUDONYM_MAP_INPUTS},
    )


@dg.asset(
    key=CALLS_PSEUDONYMIZED,
    deps=[CONSENTED_CALLS, CELL_REFERENCE],
    partitions_def=daily_partitions,
    **zone_attributes("analytics", "pseudonymize"),
    pool=DUCKDB_POOL,
    check_specs=PSEUDONYMIZED_CHECKS,
    output_required=False,  # a failed gate publishes nothing
    description=(
        "One row per admitted call, internal analytics zone (pseudonymised rows are still personal "
        "data; shared only if its re-identification risk passes the gate): caller and (consenting) "
        "callee replaced by "
        "keyed HMAC-SHA256 pseudonyms `v<key version>:<128 bits hex>`, time truncated to the hour, "
        "region instead of cell, no call_id. Published only after its gates passed."
    ),
)
def calls_pseudonymized(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    analytics_warehouse: DuckDBResource,
    pseudonym_key: PseudonymKeyResource,
    gx: GreatExpectationsResource,
    pipeline_config: PipelineConfig,
):
    pseudonymizer = pseudonym_key.pseudonymizer()  # fails early, and clearly, without a key
    call_date = partition_date(context)
    # Once a partition past retention was swept its source rows are gone: a rebuild would wipe
    # rows the pseudonymised zone still keeps (a backfill, not swept yet, is built whole).
    retention_refusal(pipeline_config, restricted_warehouse, call_date)
    values = {"call_date": call_date, "key_version": pseudonymizer.key_version}
    with zones_connection(restricted_warehouse, analytics_warehouse) as con:
        numbers = [
            row[0] for row in run(con, statement(__file__, "numbers_of_the_day"), values).fetchall()
        ]
        # HMACs are computed in Python over distinct numbers and joined back: the key never
        # enters SQL text or the database.
        pseudonym_map = pd.DataFrame(
            list(pseudonymizer.pseudonyms(numbers).items()), columns=list(PSEUDONYM_MAP_INPUTS)
        )
        con.register("pseudonym_map", pseudonym_map)
        staged_sql = staged_pseudonymized_sql()
        stage_rows(con, {"staged_pseudonymized": staged_sql}, values)
        con.unregister("pseudonym_map")
        text_columns = [
            row[0]
            for row in con.execute("DESCRIBE staged_pseudonymized").fetchall()
            if row[1] == "VARCHAR"
        ]
        found = phone_numbers_found(con, "staged_pseudonymized", text_columns)
        erased_rows = con.execute(
            rows_naming_sql("staged_pseudonymized", ["caller_pseudonym", "callee_pseudonym"])
        ).fetchone()[0]
        admitted = run(
            con, "SELECT count(*) FROM consented_calls WHERE call_date = $call_date", values
        ).fetchone()[0]
        staged_versions = [
            row[0]
            for row in con.execute(
                key_versions_sql("staged_pseudonymized", ["caller_pseudonym", "callee_pseudonym"])
            ).fetchall()
        ]
        staged, untruncated = con.execute(
            statement(__file__, "staged_rows_and_untruncated_times")
        ).fetchone()
        checks = [
            suite_check(gx, CALLS_PSEUDONYMIZED, "calls_pseudonymized_suite", con,
                        "SELECT * FROM staged_pseudonymized", pseudonymized_expectations()),
            sql_check(
                CALLS_PSEUDONYMIZED,
                "no_phone_numbers_in_analytics",
                passed=found[0] == 0 and found[1] == 0,
                metadata={
                    "text_columns_scanned": dg.MetadataValue.json(text_columns),
                    "distinct_values_equal_to_a_known_number": found[0],
                    "distinct_values_that_look_like_a_phone_number": found[1],
                },
            ),
            sql_check(
                CALLS_PSEUDONYMIZED,
                "no_erased_subject_in_analytics",
                passed=erased_rows == 0,
                metadata={"staged_rows_naming_an_erased_subject": erased_rows},
            ),
            reconcile_check(
                CALLS_PSEUDONYMIZED,
                "pseudonymized_rows_reconcile",
                {"staged = admitted": (staged, admitted), "times not truncated to the hour": (untruncated, 0)},
            ),
            sql_check(
                CALLS_PSEUDONYMIZED,
                "single_pseudonym_key_version",
                passed=set(staged_versions) <= {pseudonymizer.key_version},
                metadata={"key_versions": dg.MetadataValue.json(staged_versions),
                          "primary_key_version": pseudonymizer.key_version},
            ),
        ]  # fmt: skip
        publication = publish_if_gates_pass(
            con,
            context.log,
            call_date,
            checks,
            [
                Target(
                    f"{ANALYTICS}.calls_pseudonymized",
                    PUBLISH_STAGED,
                    CALLS_PSEUDONYMIZED,
                    lineage=lambda: pseudonymized_lineage(staged_sql),
                    metadata={
                        "pseudonym_key_version": pseudonymizer.key_version,
                        "distinct_numbers_pseudonymized": len(pseudonym_map),
                    },
                ),
                Target(
                    f"{ANALYTICS}.pseudonym_key_periods",
                    statement(__file__, "pseudonym_key_periods"),
                ),
            ],
            staged="the staged rows",
            refused="nothing was published to analytics",
            values=values,
        )
        # Evidence across partitions (cheap: one row per partition), shown in the UI.
        period_versions = [
            row[0]
            for row in con.execute(statement(__file__, "key_versions_in_analytics")).fetchall()
        ]
    yield from publication.results
    yield sql_check(
        CALLS_PSEUDONYMIZED,
        "analytics_single_key_version",
        passed=len(period_versions) <= 1,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"key_versions_in_analytics": dg.MetadataValue.json(period_versions)},
    )
