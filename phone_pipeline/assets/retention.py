"""Retention sweep: deletes the day partitions each zone keeps no longer and logs what it deleted
(counts only) in `analytics.retention_log`. Runs in its own job, `retention_sweep`, on a daily
schedule; the stages refuse to rebuild a partition past retention (see domain/retention.py)."""

import datetime as dt

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from phone_pipeline.assets.common import (
    DUCKDB_POOL,
    counts_table,
    table_metadata,
    zone_attributes,
    zones_connection,
)
from phone_pipeline.checks.common import blocking, reconcile_check
from phone_pipeline.domain.retention import (
    NUMBER_CACHE,
    RESTRICTED,
    RETENTION_TABLES,
    SOURCE_ROW_TABLES,
    RetentionPolicy,
    delete_expired_sql,
    delete_unreferenced_numbers_sql,
    expired_rows_sql,
    record_swept_rows_sql,
    unreferenced_numbers_sql,
)
from phone_pipeline.resources import PipelineConfig
from phone_pipeline.warehouse import ANALYTICS, transaction

RETENTION_SWEEP = dg.AssetKey(["restricted", "retention_sweep"])
RETENTION_LOG = f"{ANALYTICS}.retention_log"


class RetentionSweepConfig(dg.Config):
    as_of: str = Field(
        default="",
        description=(
            "The day the sweep counts retention from (YYYY-MM-DD); empty: the run's UTC date. "
            "The schedule passes its tick's date; a day in the future is refused."
        ),
    )


def retention_policy(config: PipelineConfig) -> RetentionPolicy:
    return RetentionPolicy(
        restricted_days=config.retention_restricted_days,
        pseudonymized_days=config.retention_pseudonymized_days,
        aggregates_days=config.retention_aggregates_days,
    )


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def retention_refusal(config: PipelineConfig, zones: tuple[str, ...], call_date: dt.date) -> None:
    """Raise a clear failure when a stage is asked to rebuild a partition past any of `zones`'
    retention: its landing files may still exist, but the partition must stay deleted."""
    policy = retention_policy(config)
    for zone in zones:
        reason = policy.refusal(zone, call_date, today_utc())
        if reason:
            raise dg.Failure(description=f"Refused: {reason}.")


@dg.asset(
    key=RETENTION_SWEEP,
    **zone_attributes("restricted", "retention", kinds=("duckdb",)),
    pool=DUCKDB_POOL,
    check_specs=[
        blocking(
            RETENTION_SWEEP,
            "retention_holds",
            "After the sweep, no swept table holds a partition older than its zone's cutoff, and "
            "the number cache holds no entry that nothing kept refers to.",
        )
    ],
    description=(
        "Deletes day partitions older than each zone's retention: restricted call rows "
        "(PHONE_PIPELINE_RETENTION_RESTRICTED_DAYS, default 90), pseudonymised rows in analytics, "
        "their shareable copy and the compliance findings per callee "
        "(PHONE_PIPELINE_RETENTION_PSEUDONYMIZED_DAYS, default 396), aggregates, analytics and "
        "shareable, and abandonment rates (PHONE_PIPELINE_RETENTION_AGGREGATES_DAYS, default 0 = "
        "kept). A partition exactly at the "
        "cutoff is kept. With restricted retention on, number-cache entries that no kept row or "
        "registry refers to any more go too. Each table's deleted row count goes to "
        "analytics.retention_log."
    ),
)
def retention_sweep(
    context: dg.AssetExecutionContext,
    config: RetentionSweepConfig,
    restricted_warehouse: DuckDBResource,
    analytics_warehouse: DuckDBResource,
    compliance_warehouse: DuckDBResource,
    shareable_warehouse: DuckDBResource,
    pipeline_config: PipelineConfig,
):
    real_today = today_utc()
    as_of = dt.date.fromisoformat(config.as_of) if config.as_of else real_today
    if as_of > real_today:
        # A future date would delete partitions before their time.
        raise dg.Failure(description=f"Refused: as_of {as_of} is after today ({real_today}).")
    policy = retention_policy(pipeline_config)
    deleted: dict[str, int] = {}
    log_rows = []
    remaining: dict[str, tuple[int, int]] = {}
    with zones_connection(
        restricted_warehouse,
        analytics_warehouse,
        compliance=compliance_warehouse,
        shareable=shareable_warehouse,
    ) as con:
        for zone, tables in RETENTION_TABLES.items():
            days = policy.days_by_zone()[zone]
            cutoff = policy.cutoff(zone, as_of)
            for table in tables:
                rows_deleted = 0
                if cutoff is not None:
                    rows_deleted = con.execute(expired_rows_sql(table, cutoff)).fetchone()[0]
                    with transaction(con):
                        if table in SOURCE_ROW_TABLES:
                            con.execute(record_swept_rows_sql(table, cutoff))
                        con.execute(delete_expired_sql(table, cutoff))
                    remaining[f"{table}: rows before {cutoff}"] = (
                        con.execute(expired_rows_sql(table, cutoff)).fetchone()[0],
                        0,
                    )
                    context.log.info(f"{table}: {rows_deleted} rows before {cutoff} deleted")
                deleted[table] = rows_deleted
                log_rows.append([zone, table, days, cutoff, rows_deleted])
        cutoff = policy.cutoff(RESTRICTED, as_of)
        if cutoff is not None:
            # Numbers of deleted rows must not live on in the cache that parsed them.
            rows_deleted = con.execute(delete_unreferenced_numbers_sql()).fetchone()[0]
            remaining[f"{NUMBER_CACHE}: entries nothing kept refers to"] = (
                con.execute(unreferenced_numbers_sql()).fetchone()[0],
                0,
            )
            context.log.info(
                f"{NUMBER_CACHE}: {rows_deleted} entries nothing kept refers to deleted"
            )
            deleted[NUMBER_CACHE] = rows_deleted
            log_rows.append(
                [RESTRICTED, NUMBER_CACHE, policy.restricted_days, cutoff, rows_deleted]
            )
        con.executemany(
            f"INSERT INTO {RETENTION_LOG} (swept_at, run_id, as_of, zone, table_name, "
            "retention_days, cutoff, rows_deleted) VALUES (now(), ?, ?, ?, ?, ?, ?, ?)",
            [[context.run.run_id, as_of, *row] for row in log_rows],
        )
        cutoffs = {zone: policy.cutoff(zone, as_of) for zone in RETENTION_TABLES}
        yield dg.MaterializeResult(
            metadata={
                "as_of": as_of.isoformat(),
                "retention_days": dg.MetadataValue.json(policy.days_by_zone()),
                "cutoffs": dg.MetadataValue.json(
                    {
                        zone: cutoff.isoformat() if cutoff else "kept forever"
                        for zone, cutoff in cutoffs.items()
                    }
                ),  # fmt: skip
                "rows_deleted": sum(deleted.values()),
                "rows_deleted_per_table": counts_table(deleted, label="table"),
                **table_metadata(con, RETENTION_LOG, None),
            }
        )
    yield reconcile_check(RETENTION_SWEEP, "retention_holds", remaining)
