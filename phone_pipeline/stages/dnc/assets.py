"""The national do-not-call registry: `landing/dnc/*.csv` into `restricted.dnc_registry`."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from phone_pipeline.domain.contract import DNC_OPTIONAL_COLUMNS, DNC_REQUIRED_COLUMNS
from phone_pipeline.domain.dnc import classify_dnc_rows_sql
from phone_pipeline.domain.validation import region_values
from phone_pipeline.resources import PipelineConfig, PseudonymKeyResource
from phone_pipeline.sql import run, statement
from phone_pipeline.stages.dnc.checks import DNC_REGISTRY, DNC_REGISTRY_CHECKS
from phone_pipeline.stages.erasure.register import forget_erased_numbers
from phone_pipeline.stages.shared.assets import (
    DUCKDB_POOL,
    counts_table,
    restricted_connection,
    table_metadata,
    zone_attributes,
)
from phone_pipeline.stages.shared.checks import reconcile_check
from phone_pipeline.stages.shared.registry import LandingRegistry, replace_registry, stage_registry
from phone_pipeline.stages.validate.number_cache import cache_new_numbers
from phone_pipeline.timings import PARSE, recording

DNC = LandingRegistry(
    DNC_REGISTRY, "dnc", "Do-not-call", DNC_REQUIRED_COLUMNS, DNC_OPTIONAL_COLUMNS, (".csv",)
)


@dg.asset(
    key=DNC_REGISTRY,
    **zone_attributes("restricted", "dnc", kinds=("duckdb", "csv")),
    pool=DUCKDB_POOL,
    check_specs=DNC_REGISTRY_CHECKS,
    description=(
        "The national do-not-call registry: every listing from landing/dnc (`phone_number`, "
        "`listed_at`), numbers in E.164, refreshed in full on each run. Unusable rows go to "
        "`dnc_quarantine` with a reason. Restricted zone: holds numbers."
    ),
)
def dnc_registry(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    pipeline_config: PipelineConfig,
    pseudonym_key: PseudonymKeyResource,
):
    region = region_values(pipeline_config.default_region)
    with restricted_connection(restricted_warehouse) as con:
        read = stage_registry(con, context.log, DNC, pipeline_config.landing_dnc)
        with recording() as timings:
            parsed = cache_new_numbers(
                con,
                "SELECT phone_number AS raw_number FROM dnc_staged",
                pipeline_config.default_region,
            )
        run(
            con,
            "CREATE OR REPLACE TEMP TABLE dnc_classified AS "
            + classify_dnc_rows_sql("dnc_staged", "number_cache"),
            region,
        )
        # An erased subject's listing is kept (see README, Erasure), but parsing it must not put
        # the number back into the number cache, which erasure emptied of it.
        forget_erased_numbers(
            con,
            "SELECT e164 FROM dnc_classified WHERE e164 IS NOT NULL",
            pseudonym_key.pseudonymizers,
        )
        refresh = replace_registry(
            con,
            DNC,
            read,
            {"dnc_registry": statement(__file__, "dnc_listings")},
            quarantined_sql=statement(__file__, "dnc_quarantined_rows"),
        )
        listings, numbers, quarantined = con.execute(
            statement(__file__, "dnc_registry_counts")
        ).fetchone()
        yield dg.MaterializeResult(
            asset_key=DNC_REGISTRY,
            metadata={
                **table_metadata(con, "dnc_registry", None),
                "numbers_listed": numbers,
                "numbers_parsed_this_run": parsed,
                "parse_seconds": timings.seconds(PARSE),
                "quarantined_by_reason": counts_table(refresh.quarantined_by_reason),
            },
        )
    yield refresh.files_readable
    yield reconcile_check(
        DNC_REGISTRY,
        "dnc_registry_rows_reconcile",
        {"rows read = listings + quarantined": (refresh.rows_read, listings + quarantined)},
    )
