"""Stage 5, aggregate: call figures per day x hour x region and per day x country x number type,
with small-cell suppression, or, for the outputs in PHONE_PIPELINE_DP_OUTPUTS, with differential
privacy (domain/privacy.py) and a privacy-budget ledger; published only after the gates passed on
the staged cells."""

from collections.abc import Iterator, Mapping, Sequence

import dagster as dg
import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource

from phone_pipeline.automation.partitions import daily_partitions, partition_date
from phone_pipeline.domain.privacy import (
    NOISY_FIGURE_INPUTS,
    OTHER,
    ContributionBounds,
    PrivacySettings,
    bound_violations_sql,
    bounded_calls_sql,
    bounding_values,
    budget_decision,
    cell_figures_sql,
    cells_on_domain_sql,
    country_domain,
    epsilon_split,
    noisy_figures,
    number_type_domain,
    parse_outputs,
    remap_to_domain_sql,
)
from phone_pipeline.domain.suppression import suppress_small_cells_sql, suppression_values
from phone_pipeline.lineage import python_step_sql
from phone_pipeline.resources import GreatExpectationsResource, PipelineConfig
from phone_pipeline.settings import env_name
from phone_pipeline.sql import run, statement
from phone_pipeline.stages.aggregate.checks import (
    AGGREGATE_CELL_KEYS,
    CALL_VOLUME_BY_COUNTRY,
    CALL_VOLUME_HOURLY,
    aggregate_checks,
    aggregate_expectations,
    dp_aggregate_expectations,
)
from phone_pipeline.stages.pseudonymize.checks import CALLS_PSEUDONYMIZED
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

DP_OUTPUTS = tuple(key.path[-1] for key in AGGREGATE_CELL_KEYS)

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


PUBLISH_STAGED = "SELECT * FROM staged_published"
# The staged cells as the suite sees them: a withheld cell shows neither calls nor subscribers.
SUITE_RELATION = (
    "SELECT *, calls IS NULL AND distinct_subscribers IS NULL AS figures_withheld "
    "FROM staged_published"
)
# The key domain of a DP output keyed by region: the reference regions and the `other` cell.
REGION_DOMAIN_SQL = f"SELECT DISTINCT region FROM cell_reference UNION SELECT '{OTHER}'"


def staged_cells_sql(keys: Sequence[str], key_expressions: Sequence[str]) -> str:
    """Exact figures per cell of the day (`$call_date`)."""
    selected_keys = ", ".join(
        f"{expr} AS {key}" for expr, key in zip(key_expressions, keys, strict=True)
    )
    return f"""
        SELECT call_date, {selected_keys}, {FIGURES_SQL}
        FROM {ANALYTICS}.calls_pseudonymized WHERE call_date = $call_date
        GROUP BY ALL
        """


def dp_calls_sql(
    keys: Sequence[str], key_expressions: Sequence[str], remapped: Mapping[str, str]
) -> str:
    """The day's (`$call_date`) pseudonymised calls with their cell keys, each key in `remapped`
    moved onto its domain table (else the `other` cell): what contribution bounding reads."""
    selected_keys = ", ".join(
        f"{remap_to_domain_sql(expr, remapped[key], key) if key in remapped else expr} AS {key}"
        for expr, key in zip(key_expressions, keys, strict=True)
    )
    return (
        f"SELECT caller_pseudonym, callee_pseudonym, {selected_keys}, duration_seconds, "
        f"disposition FROM {ANALYTICS}.calls_pseudonymized WHERE call_date = $call_date"
    )


def key_set_counts_sql(domain_sql: str, keys: Sequence[str]) -> str:
    """(keys of the fixed key set, published rows, distinct published keys): all equal when
    every key is published once."""
    return (
        f"SELECT (SELECT count(*) FROM ({domain_sql})), count(*), "
        f"count(DISTINCT ({', '.join(keys)})) FROM staged_published"
    )


def aggregate_lineage(staged: Mapping[str, str]) -> DerivedLineage:
    """Column lineage of a published aggregate, from the SELECTs that staged its cells (a DP
    output's hourly key domain also reads the reference regions)."""
    return sql_lineage(PUBLISH_STAGED, [CALLS_PSEUDONYMIZED, CELL_REFERENCE], staged=staged)


def dp_aggregate_lineage(
    bounded_sql: str, domain_staged: Mapping[str, str], exact_cells_sql: str, keys: Sequence[str]
) -> DerivedLineage:
    """Column lineage of a DP output: the bounded calls and the key domain in SQL, then
    `noisy_figures` in Python (NOISY_FIGURE_INPUTS); call_date is the partition's."""
    return aggregate_lineage(
        {
            "dp_bounded_calls": bounded_sql,
            **domain_staged,
            "staged_published": python_step_sql(
                exact_cells_sql, {"call_date": (), **NOISY_FIGURE_INPUTS}, passthrough=keys
            ),
        }
    )


def publish_aggregate(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    analytics_warehouse: DuckDBResource,
    gx: GreatExpectationsResource,
    min_cell_size: int,
    asset_key: dg.AssetKey,
    keys: Sequence[str],
    key_expressions: Sequence[str] | None = None,
    privacy: PrivacySettings | None = None,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Stage the cells, suppress small ones, audit, and publish only if every gate passed.

    With differential privacy on for this output, publish noisy figures instead (see
    `publish_dp_aggregate`).
    """
    table = asset_key.path[-1]
    if privacy is not None and privacy.applies_to(table):
        yield from publish_dp_aggregate(
            context, restricted_warehouse, analytics_warehouse, gx, asset_key, keys,
            key_expressions or keys, privacy, min_cell_size,
        )  # fmt: skip
        return
    call_date = partition_date(context)
    values = {"call_date": call_date, **suppression_values(min_cell_size)}
    staged = {
        "staged_cells": staged_cells_sql(keys, key_expressions or keys),
        "staged_published": suppress_small_cells_sql("staged_cells", ["call_date", *keys], FIGURES),
    }
    with zones_connection(restricted_warehouse, analytics_warehouse) as con:
        stage_rows(con, staged, values)
        rows, all_cells_calls = run(con, statement(__file__, "exact_totals"), values).fetchone()
        small_published, suppressed_cells, cells = run(
            con, statement(__file__, "published_cell_counts"), values
        ).fetchone()
        checks = [
            suite_check(
                gx,
                asset_key,
                f"{table}_suite",
                con,
                SUITE_RELATION,
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
        publication = publish_if_gates_pass(
            con,
            context.log,
            call_date,
            checks,
            [
                Target(
                    f"{ANALYTICS}.{table}",
                    PUBLISH_STAGED,
                    asset_key,
                    lineage=lambda: aggregate_lineage(staged),
                    metadata={
                        "cells": cells,
                        "suppressed_cells": suppressed_cells,
                        "min_cell_size": min_cell_size,
                    },
                )
            ],
            staged="the staged cells",
            refused=f"{table} was not published",
        )
    yield from publication.results
    yield sql_check(
        asset_key,
        f"{table}_privacy_budget",
        passed=True,
        metadata={"differential_privacy": "off for this output (exact figures, suppression)"},
    )


def _dp_key_domain(
    con: duckdb.DuckDBPyConnection, table: str
) -> tuple[dict[str, str], str, dict[str, str]]:
    """The fixed key set of a DP output: per remapped key column its domain table, the SQL of
    every key of the day (`$call_date`), and the SELECT that filled each domain table (its
    lineage). Built from reference data and code, never from the calls."""
    if table == CALL_VOLUME_HOURLY.path[-1]:
        con.execute("CREATE OR REPLACE TEMP TABLE dp_domain_region AS " + REGION_DOMAIN_SQL)
        return (
            {"region": "dp_domain_region"},
            statement(__file__, "hourly_key_domain"),
            {"dp_domain_region": REGION_DOMAIN_SQL},
        )
    countries = pd.DataFrame({"caller_country": country_domain()})
    number_types = pd.DataFrame({"caller_number_type": number_type_domain()})
    con.register("countries_frame", countries)
    con.register("number_types_frame", number_types)
    con.execute("CREATE OR REPLACE TEMP TABLE dp_domain_country AS SELECT * FROM countries_frame")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE dp_domain_number_type AS SELECT * FROM number_types_frame"
    )
    con.unregister("countries_frame")
    con.unregister("number_types_frame")
    return (
        {"caller_country": "dp_domain_country", "caller_number_type": "dp_domain_number_type"},
        "SELECT * FROM dp_domain_country CROSS JOIN dp_domain_number_type",
        # phonenumbers' regions and number types: lists in code, from no column.
        {
            "dp_domain_country": python_step_sql("SELECT 1", {"caller_country": ()}),
            "dp_domain_number_type": python_step_sql("SELECT 1", {"caller_number_type": ()}),
        },
    )


def _ledger_markdown(rows: list[tuple]) -> dg.MarkdownMetadataValue:
    lines = ["| output | epsilon | run | recorded at |", "| --- | ---: | --- | --- |"]
    lines += [f"| {output} | {eps:g} | {run[:8]} | {at} |" for output, eps, run, at in rows]
    return dg.MetadataValue.md("\n".join(lines))


def publish_dp_aggregate(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    analytics_warehouse: DuckDBResource,
    gx: GreatExpectationsResource,
    asset_key: dg.AssetKey,
    keys: Sequence[str],
    key_expressions: Sequence[str],
    privacy: PrivacySettings,
    min_cell_size: int,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Bound each subscriber's contribution, add noise over a fixed key set, check the bounds
    and the day's privacy budget, then append to the ledger and publish (or write nothing)."""
    table = asset_key.path[-1]
    call_date = partition_date(context)
    bounds = privacy.bounds
    values = {
        "call_date": call_date,
        **bounding_values(bounds, salt=f"{table}:{call_date.isoformat()}"),
        "output": table,
        "epsilon": privacy.epsilon,
        "budget_per_day": privacy.budget_per_day,
        "mechanism": f"geometric (diffprivlib) L={bounds.max_calls_per_cell} "
        f"C={bounds.max_cells_per_subscriber} D={bounds.max_duration_seconds}s",
        "run_id": context.run.run_id,
    }
    with zones_connection(restricted_warehouse, analytics_warehouse) as con:
        remapped, domain_sql, domain_staged = _dp_key_domain(con, table)
        bounded_sql = bounded_calls_sql(dp_calls_sql(keys, key_expressions, remapped), keys)
        stage_rows(con, {"dp_bounded_calls": bounded_sql}, values)
        exact_cells_sql = cells_on_domain_sql(
            domain_sql, cell_figures_sql("dp_bounded_calls", keys), keys
        )
        exact_cells = run(con, exact_cells_sql, values).df()
        # Never seeded here; suppression applies to the noisy subscriber count only.
        published = noisy_figures(
            exact_cells, privacy.epsilon, bounds, min_noisy_subscribers=min_cell_size
        )
        published.insert(0, "call_date", call_date)
        con.register("dp_published_frame", published)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE staged_published AS SELECT * FROM dp_published_frame"
        )
        con.unregister("dp_published_frame")

        rows, kept_rows = run(con, statement(__file__, "dp_bounded_rows"), values).fetchone()
        domain_keys, published_keys, distinct_published_keys = run(
            con, key_set_counts_sql(domain_sql, keys), values
        ).fetchone()
        above_calls, above_cells, above_clamp = run(
            con, bound_violations_sql("dp_bounded_calls", keys), values
        ).fetchone()
        spent = run(con, statement(__file__, "privacy_spent_on_the_day"), values).fetchone()[0]
        decision = budget_decision(spent, privacy.epsilon, privacy.budget_per_day)
        budget_metadata = {
            "epsilon_this_publication": privacy.epsilon,
            "delta": 0.0,
            "budget_per_day": privacy.budget_per_day,
            "spent_on_this_day_before": round(decision.spent_before, 9),
            "spent_on_this_day_after": round(decision.spent_after, 9),
        }
        checks = [
            suite_check(
                gx,
                asset_key,
                f"{table}_suite",
                con,
                SUITE_RELATION,
                dp_aggregate_expectations(privacy.epsilon, min_cell_size),
            ),
            reconcile_check(
                asset_key,
                f"{table}_totals_reconcile",
                {
                    "published keys = fixed key set": (published_keys, domain_keys),
                    "distinct published keys = published rows": (
                        distinct_published_keys,
                        published_keys,
                    ),
                    "bounded rows above the pseudonymised rows": (max(kept_rows - rows, 0), 0),
                    f"subscriber-cells above {bounds.max_calls_per_cell} calls": (above_calls, 0),
                    f"subscribers in more than {bounds.max_cells_per_subscriber} cells": (
                        above_cells,
                        0,
                    ),
                    f"durations above {bounds.max_duration_seconds} s": (above_clamp, 0),
                },
            ),
            sql_check(
                asset_key,
                f"{table}_privacy_budget",
                passed=decision.allowed,
                metadata=budget_metadata,
                description=None
                if decision.allowed
                else f"Refused: {decision.spent_after:g} would exceed the day's budget "
                f"{decision.budget:g}; nothing was published.",
            ),
        ]

        def record_spend(con: duckdb.DuckDBPyConnection) -> None:
            # The spend is recorded before the figures are written: a failure in between
            # overstates the spend, never hides one.
            run(con, statement(__file__, "record_privacy_spend"), values)

        def published_metadata(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
            ledger_rows = run(
                con, statement(__file__, "privacy_ledger_of_the_day"), values
            ).fetchall()
            return {
                "differential_privacy": "on: noisy figures over a fixed key set",
                **budget_metadata,
                "budget_remaining_on_this_day": round(decision.remaining_after, 9),
                "epsilon_per_measure": dg.MetadataValue.json(epsilon_split(privacy.epsilon)),
                "sensitivity_per_measure": dg.MetadataValue.json(bounds.sensitivities()),
                "max_calls_per_cell": bounds.max_calls_per_cell,
                "max_cells_per_subscriber": bounds.max_cells_per_subscriber,
                "max_duration_seconds": bounds.max_duration_seconds,
                "cells": published_keys,
                "suppressed_cells": int(published["suppressed"].sum()),
                "min_cell_size": min_cell_size,
                "rows_in_partition": rows,
                "rows_dropped_by_bounding": rows - kept_rows,
                "ledger_this_day": _ledger_markdown(ledger_rows),
            }

        publication = publish_if_gates_pass(
            con,
            context.log,
            call_date,
            checks,
            [
                Target(
                    f"{ANALYTICS}.{table}",
                    PUBLISH_STAGED,
                    asset_key,
                    lineage=lambda: dp_aggregate_lineage(
                        bounded_sql, domain_staged, exact_cells_sql, keys
                    ),
                    metadata=published_metadata,
                )
            ],
            staged="the noisy cells",
            refused=f"{table} was not published",
            before_publish=record_spend,
            values=values,
        )
    yield from publication.results


def privacy_settings(config: PipelineConfig, caller_keys_only: bool = False) -> PrivacySettings:
    """The DP settings; an unknown output name fails (a typo must not publish exact figures).

    `caller_keys_only`: the output's keys are attributes of the caller, one cell per subscriber.
    """
    outputs = parse_outputs(config.dp_outputs)
    unknown = sorted(outputs - set(DP_OUTPUTS))
    if unknown:
        raise dg.Failure(
            description=f"{env_name('dp_outputs')} names unknown outputs {unknown}; "
            f"known: {list(DP_OUTPUTS)}."
        )
    bounds = ContributionBounds(
        max_calls_per_cell=config.dp_max_calls_per_cell,
        max_cells_per_subscriber=config.dp_max_cells_per_subscriber,
        max_duration_seconds=config.dp_max_duration_seconds,
    )
    return PrivacySettings(
        outputs=outputs,
        epsilon=config.dp_epsilon,
        budget_per_day=config.dp_budget_per_day,
        bounds=bounds.single_cell() if caller_keys_only else bounds,
    )


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
        f"x hour (UTC) x region. Cells with fewer than {env_name('min_cell_size')} distinct "
        "subscribers keep their key, show no figures and are flagged `suppressed`. Under "
        f"differential privacy ({env_name('dp_outputs')}): noisy figures for every hour x every "
        "reference region, no median, spend recorded in analytics.privacy_budget_ledger."
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
    retention_refusal(pipeline_config, restricted_warehouse, partition_date(context))
    yield from publish_aggregate(
        context, restricted_warehouse, analytics_warehouse, gx, pipeline_config.min_cell_size,
        CALL_VOLUME_HOURLY, list(AGGREGATE_CELL_KEYS[CALL_VOLUME_HOURLY]),
        privacy=privacy_settings(pipeline_config),
    )  # fmt: skip


@dg.asset(
    key=CALL_VOLUME_BY_COUNTRY,
    check_specs=aggregate_checks(CALL_VOLUME_BY_COUNTRY),
    description=(
        "The same figures per day x caller country x caller number type (mobile, fixed line, ...), "
        "with the same small-cell suppression, or under differential privacy every phonenumbers "
        "region x number type with noisy figures."
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
    # Once a partition past retention was swept its source rows are gone: a rebuild would empty
    # the aggregates that are kept longer.
    retention_refusal(pipeline_config, restricted_warehouse, partition_date(context))
    yield from publish_aggregate(
        context, restricted_warehouse, analytics_warehouse, gx, pipeline_config.min_cell_size,
        CALL_VOLUME_BY_COUNTRY, list(AGGREGATE_CELL_KEYS[CALL_VOLUME_BY_COUNTRY]),
        ["coalesce(caller_country, 'unknown')", "coalesce(caller_number_type, 'unknown')"],
        privacy=privacy_settings(pipeline_config, caller_keys_only=True),
    )  # fmt: skip
