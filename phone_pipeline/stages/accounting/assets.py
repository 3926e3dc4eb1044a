"""Row accounting: per partition, how many rows were received, quarantined, excluded and admitted
at each stage. The counts must add up, or the gate fails."""

from collections import defaultdict

import dagster as dg
from dagster_duckdb import DuckDBResource

from phone_pipeline.automation.partitions import daily_partitions, partition_date
from phone_pipeline.sql import run, statement
from phone_pipeline.stages.accounting.checks import (
    ROW_ACCOUNTING,
    ROW_ACCOUNTING_CHECKS,
    accounting_sql,
)
from phone_pipeline.stages.aggregate.checks import AGGREGATE_CELL_KEYS
from phone_pipeline.stages.consent.checks import CONSENT_EXCLUSIONS, CONSENTED_CALLS
from phone_pipeline.stages.ingest.checks import RAW_CALLS
from phone_pipeline.stages.pseudonymize.checks import CALLS_PSEUDONYMIZED
from phone_pipeline.stages.shared.assets import (
    DUCKDB_POOL,
    table_metadata,
    zone_attributes,
    zones_connection,
)
from phone_pipeline.stages.shared.checks import reconcile_check
from phone_pipeline.stages.validate.checks import CALLS_QUARANTINE, CALLS_VALIDATED
from phone_pipeline.warehouse import ANALYTICS, replace_partition

STAGE_ASSETS = [
    RAW_CALLS, CALLS_VALIDATED, CALLS_QUARANTINE, CONSENTED_CALLS, CONSENT_EXCLUSIONS,
    CALLS_PSEUDONYMIZED, *AGGREGATE_CELL_KEYS,
]  # fmt: skip


@dg.asset(
    key=ROW_ACCOUNTING,
    deps=STAGE_ASSETS,
    partitions_def=daily_partitions,
    **zone_attributes("analytics", "accounting", kinds=("duckdb",)),
    pool=DUCKDB_POOL,
    check_specs=ROW_ACCOUNTING_CHECKS,
    description=(
        "Per partition: rows received, quarantined (per reason), excluded (per reason), admitted "
        "and published at each stage, and how published rows fall into aggregate cells. Counts "
        "only; internal: never copied to the shareable zone, because its counts of calls in "
        "suppressed cells would let a reader recover suppressed figures by differencing."
    ),
)
def row_accounting(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    analytics_warehouse: DuckDBResource,
):
    call_date = partition_date(context)
    day = {"call_date": call_date}
    with zones_connection(restricted_warehouse, analytics_warehouse) as con:
        replace_partition(
            con,
            call_date,
            {
                f"{ANALYTICS}.row_accounting": "SELECT $call_date AS call_date, *, "
                f"now() AS recorded_at FROM ({accounting_sql()})"
            },
            day,
        )
        table = run(con, statement(__file__, "accounting_of_the_day"), day).fetchall()
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for stage, outcome, _, rows in table:
            counts[(stage, outcome)] += rows
        yield dg.MaterializeResult(
            metadata={
                **table_metadata(con, f"{ANALYTICS}.row_accounting", call_date),
                "accounting": dg.MetadataValue.md(
                    "| stage | outcome | reason | rows |\n| --- | --- | --- | ---: |\n"
                    + "\n".join(f"| {s} | {o} | {r} | {n} |" for s, o, r, n in table)
                ),
            }
        )
    published = counts[("pseudonymize", "published")]
    equations = {
        # Rows of erased callers are removed before validation and counted as excluded.
        "received = validated + quarantined + erased": (
            counts[("ingest", "received")],
            counts[("validate", "validated")]
            + counts[("validate", "quarantined")]
            + counts[("erasure", "excluded")],
        ),
        "validated = admitted + excluded": (
            counts[("validate", "validated")],
            counts[("consent", "admitted")] + counts[("consent", "excluded")],
        ),
        "published = admitted": (published, counts[("consent", "admitted")]),
    }
    for table_key in AGGREGATE_CELL_KEYS:
        stage = f"aggregate:{table_key.path[-1]}"
        equations[f"{stage}: rows in cells = published"] = (
            counts[(stage, "in_published_cell")] + counts[(stage, "in_suppressed_cell")],
            published,
        )
        equations[f"{stage}: rows in no cell"] = (counts[(stage, "in_no_cell")], 0)
    yield reconcile_check(ROW_ACCOUNTING, "row_counts_reconcile", equations)
