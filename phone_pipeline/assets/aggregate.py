"""Stage 5, aggregate: call figures per day x hour x region and per day x country x number type,
with small-cell suppression; published only after the gates passed on the staged cells."""

from collections.abc import Iterator, Sequence

import dagster as dg
from dagster_duckdb import DuckDBResource

from phone_pipeline.assets.common import (
    DUCKDB_POOL,
    table_metadata,
    zone_attributes,
    zones_connection,
)
from phone_pipeline.assets.retention import retention_refusal
from phone_pipeline.checks.aggregate import (
    CALL_VOLUME_BY_COUNTRY,
    CALL_VOLUME_HOURLY,
    aggregate_checks,
    aggregate_expectations,
)
from phone_pipeline.checks.common import reconcile_check, suite_check
from phone_pipeline.checks.pseudonymize import CALLS_PSEUDONYMIZED
from phone_pipeline.domain.retention import PSEUDONYMIZED
from phone_pipeline.domain.suppression import suppress_small_cells_sql
from phone_pipeline.landing import sql_date
from phone_pipeline.partitions import daily_partitions, partition_date
from phone_pipeline.resources import GreatExpectationsResource, PipelineConfig
from phone_pipeline.warehouse import ANALYTICS, replace_partition

FIGURES = (
    "calls",
    "answered_calls",
    "answered_rate",
    "total_duration_seconds",
    "median_duration_seconds",
)
FIGURES_SQL = """
    count(*) AS calls,
    count(*) FILTER (WHERE disposition = 'answered') AS answered_calls,
    count(*) FILTER (WHERE disposition = 'answered') / count(*) AS answered_rate,
    sum(duration_seconds) AS total_duration_seconds,
    median(duration_seconds) AS median_duration_seconds,
    count(DISTINCT caller_pseudonym) AS distinct_subscribers"""


def _figure_lineage(keys: Sequence[str]) -> dict[str, list[tuple[dg.AssetKey, str]]]:
    source = CALLS_PSEUDONYMIZED
    return {
        **{key: [(source, key)] for key in ("call_date", *keys)},
        "calls": [(source, "call_date")],
        "answered_calls": [(source, "disposition")],
        "answered_rate": [(source, "disposition")],
        "total_duration_seconds": [(source, "duration_seconds")],
        "median_duration_seconds": [(source, "duration_seconds")],
        "distinct_subscribers": [(source, "caller_pseudonym")],
        "suppressed": [(source, "caller_pseudonym")],
    }


def publish_aggregate(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    analytics_warehouse: DuckDBResource,
    gx: GreatExpectationsResource,
    min_cell_size: int,
    asset_key: dg.AssetKey,
    keys: Sequence[str],
    key_expressions: Sequence[str] | None = None,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Stage the cells, suppress small ones, audit, and publish only if every gate passed."""
    table = asset_key.path[-1]
    call_date = partition_date(context)
    expressions = key_expressions or keys
    selected_keys = ", ".join(
        f"{expr} AS {key}" for expr, key in zip(expressions, keys, strict=True)
    )
    with zones_connection(restricted_warehouse, analytics_warehouse) as con:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE staged_cells AS
            SELECT call_date, {selected_keys}, {FIGURES_SQL}
            FROM {ANALYTICS}.calls_pseudonymized WHERE call_date = {sql_date(call_date)}
            GROUP BY ALL
            """
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE staged_published AS "
            + suppress_small_cells_sql("staged_cells", ["call_date", *keys], FIGURES, min_cell_size)
        )
        rows, all_cells_calls = con.execute(
            f"SELECT (SELECT count(*) FROM {ANALYTICS}.calls_pseudonymized WHERE call_date = ?), "
            "(SELECT coalesce(sum(calls), 0) FROM staged_cells)",
            [call_date],
        ).fetchone()
        small_published, suppressed_cells, cells = con.execute(
            f"SELECT count(*) FILTER (WHERE NOT suppressed AND distinct_subscribers < {int(min_cell_size)}), "
            "count(*) FILTER (WHERE suppressed), count(*) FROM staged_published"
        ).fetchone()
        checks = [
            suite_check(
                gx,
                asset_key,
                f"{table}_suite",
                con,
                "SELECT *, calls IS NULL AND distinct_subscribers IS NULL AS figures_withheld "
                "FROM staged_published",
                aggregate_expectations(min_cell_size),
            ),  # fmt: skip
            reconcile_check(
                asset_key,
                f"{table}_totals_reconcile",
                {
                    "calls in all cells = pseudonymised rows": (all_cells_calls, rows),
                    "published cells below the minimum": (small_published, 0),
                },
            ),
        ]
        if all(check.passed for check in checks):
            replace_partition(
                con, call_date, {f"{ANALYTICS}.{table}": "SELECT * FROM staged_published"}
            )
            yield dg.MaterializeResult(
                asset_key=asset_key,
                metadata={
                    **table_metadata(con, f"{ANALYTICS}.{table}", call_date, _figure_lineage(keys)),
                    "cells": cells,
                    "suppressed_cells": suppressed_cells,
                    "min_cell_size": min_cell_size,
                },
            )
        else:
            context.log.error(f"Gates failed on the staged cells: {table} was not published.")
    yield from checks


_AGGREGATE_STYLE = dict(
    deps=[CALLS_PSEUDONYMIZED],
    partitions_def=daily_partitions,
    **zone_attributes("analytics", "aggregate"),
    pool=DUCKDB_POOL,
    output_required=False,
)


@dg.asset(
    key=CALL_VOLUME_HOURLY,
    check_specs=aggregate_checks(CALL_VOLUME_HOURLY),
    description=(
        "Calls, answered calls and rate, total and median duration, distinct subscribers per day "
        "x hour (UTC) x region. Cells with fewer than PHONE_PIPELINE_MIN_CELL_SIZE distinct "
        "subscribers keep their key, show no figures and are flagged `suppressed`."
    ),
    **_AGGREGATE_STYLE,
)
def call_volume_hourly(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    analytics_warehouse: DuckDBResource,
    pipeline_config: PipelineConfig,
    gx: GreatExpectationsResource,
):
    retention_refusal(pipeline_config, (PSEUDONYMIZED,), partition_date(context))
    yield from publish_aggregate(
        context, restricted_warehouse, analytics_warehouse, gx, pipeline_config.min_cell_size,
        CALL_VOLUME_HOURLY, ["call_hour", "region"],
    )  # fmt: skip


@dg.asset(
    key=CALL_VOLUME_BY_COUNTRY,
    check_specs=aggregate_checks(CALL_VOLUME_BY_COUNTRY),
    description=(
        "The same figures per day x caller country x caller number type (mobile, fixed line, ...), "
        "with the same small-cell suppression."
    ),
    **_AGGREGATE_STYLE,
)
def call_volume_by_country(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    analytics_warehouse: DuckDBResource,
    pipeline_config: PipelineConfig,
    gx: GreatExpectationsResource,
):
    # Past the pseudonymised retention the source rows are gone: a rebuild would empty the
    # aggregates that are kept longer.
    retention_refusal(pipeline_config, (PSEUDONYMIZED,), partition_date(context))
    yield from publish_aggregate(
        context, restricted_warehouse, analytics_warehouse, gx, pipeline_config.min_cell_size,
        CALL_VOLUME_BY_COUNTRY, ["caller_country", "caller_number_type"],
        ["coalesce(caller_country, 'unknown')", "coalesce(caller_number_type, 'unknown')"],
    )  # fmt: skip
