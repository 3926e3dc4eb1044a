"""Retention: the daily sweep deletes the day partitions each zone keeps no longer, and a day's
run that processed a partition past some zone's retention (a backfill) sweeps that partition at
its end. Both log what they deleted (counts only) in `analytics.retention_log`. The stages refuse
to rebuild a partition whose restricted rows were swept (see domain/retention.py)."""

import datetime as dt

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from phone_pipeline.automation.partitions import daily_partitions, partition_date
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
    swept_rows_sql,
    unreferenced_numbers_sql,
)
from phone_pipeline.resources import PipelineConfig
from phone_pipeline.settings import default, env_name
from phone_pipeline.sql import run
from phone_pipeline.stages.accounting.checks import ROW_ACCOUNTING
from phone_pipeline.stages.compliance.checks import (
    ABANDONMENT_RATES,
    CONTACT_PRESSURE,
    DNC_CALL_FINDINGS,
    QUIET_HOURS,
)
from phone_pipeline.stages.fairness.assets import FAIRNESS_RATES
from phone_pipeline.stages.risk.checks import SHAREABLE_PUBLICATIONS
from phone_pipeline.stages.scrub.checks import DNC_SCRUB_LIST
from phone_pipeline.stages.shared.assets import (
    DUCKDB_POOL,
    counts_table,
    restricted_connection,
    table_metadata,
    zone_attributes,
    zones_connection,
)
from phone_pipeline.stages.shared.checks import blocking, reconcile_check
from phone_pipeline.warehouse import ANALYTICS, transaction

RETENTION_SWEEP = dg.AssetKey(["restricted", "retention_sweep"])
# The daily sweep's check (the record of processing asks whether it applies yet).
RETENTION_HOLDS = dg.AssetCheckKey(RETENTION_SWEEP, "retention_holds")
PARTITION_RETENTION = dg.AssetKey(["restricted", "partition_retention"])
RETENTION_LOG = f"{ANALYTICS}.retention_log"
# The last stages of a day's run: what reads or writes the partition's rows in any zone. The
# partition's own sweep comes after them, and the record of processing after it. Not the
# shareable copies: a withheld dataset yields no copy, and that would skip what follows
# (shareable_publications is written by the same step, after them).
LAST_STAGES = [
    ROW_ACCOUNTING,
    SHAREABLE_PUBLICATIONS,
    FAIRNESS_RATES,
    DNC_SCRUB_LIST,
    CONTACT_PRESSURE,
    QUIET_HOURS,
    ABANDONMENT_RATES,
    DNC_CALL_FINDINGS,
]


class RetentionSweepConfig(dg.Config):
    as_of: str = Field(
        default="",
        description=(
            "The day the sweep counts retention from (YYYY-MM-DD); empty: the run's UTC date. "
            "The schedule passes its tick's date; a day in the future is refused."
        ),
    )


def _days(setting: str) -> str:
    """`<variable>, default <days>` for a description (from the setting's declaration)."""
    return f"{env_name(setting)}, default {default(setting)}"


def retention_policy(config: PipelineConfig) -> RetentionPolicy:
    return RetentionPolicy(
        restricted_days=config.retention_restricted_days,
        pseudonymized_days=config.retention_pseudonymized_days,
        aggregates_days=config.retention_aggregates_days,
    )


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def oldest_processed_day(config: PipelineConfig) -> dt.date | None:
    """The oldest day a run may process today (older: every zone would delete it); None: any."""
    return retention_policy(config).oldest_processed(today_utc())


def refuse_past_retention(
    con: duckdb.DuckDBPyConnection, config: PipelineConfig, day: dt.date
) -> None:
    """Raise a clear failure when a stage is asked to (re)build a partition that is past some
    zone's retention and cannot be built whole: its restricted rows were swept (landing files
    still on disk must not bring it back), or every zone would delete it."""
    rows_present = con.execute(
        "SELECT count(*) FROM raw_calls WHERE call_date = ?", [day]
    ).fetchone()[0]
    rows_swept = run(con, swept_rows_sql(), {"call_date": day}).fetchone()[0]
    reason = retention_policy(config).processing_refusal(day, today_utc(), rows_present, rows_swept)
    if reason:
        raise dg.Failure(description=f"Refused: {reason}.")


def retention_refusal(config: PipelineConfig, warehouse: DuckDBResource, day: dt.date) -> None:
    """`refuse_past_retention` for a stage without a restricted connection open."""
    if not retention_policy(config).zones_past(day, today_utc()):
        return
    with restricted_connection(warehouse) as con:
        refuse_past_retention(con, config, day)


def _sweep(
    context: dg.AssetExecutionContext,
    con: duckdb.DuckDBPyConnection,
    policy: RetentionPolicy,
    as_of: dt.date,
    day: dt.date | None = None,
) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """Delete what each zone keeps no longer (of partition `day` only, if given), log it in
    retention_log, and return rows deleted per table and the leftovers the check expects to be
    zero. Each source table's rows are counted per file before they go, in the same
    transaction, so that ingest's accounting of every loaded row stays exact."""
    deleted: dict[str, int] = {}
    log_rows = []
    remaining: dict[str, tuple[int, int]] = {}
    for zone, tables in RETENTION_TABLES.items():
        days = policy.days_by_zone()[zone]
        cutoff = policy.cutoff(zone, as_of)
        if day is not None and (cutoff is None or day >= cutoff):
            continue  # a run's own partition: only the zones it is past are swept and logged
        values = {"cutoff": cutoff, "call_date": day}
        one_day = day is not None
        for table in tables:
            rows_deleted = 0
            if cutoff is not None:
                expired = expired_rows_sql(table, one_day)
                rows_deleted = run(con, expired, values).fetchone()[0]
                with transaction(con):
                    if table in SOURCE_ROW_TABLES:
                        run(con, record_swept_rows_sql(table, one_day), values)
                    run(con, delete_expired_sql(table, one_day), values)
                remaining[f"{table}: rows before {cutoff}"] = (
                    run(con, expired, values).fetchone()[0],
                    0,
                )
                context.log.info(f"{table}: {rows_deleted} rows before {cutoff} deleted")
            deleted[table] = rows_deleted
            log_rows.append([zone, table, days, cutoff, rows_deleted])
    cutoff = policy.cutoff(RESTRICTED, as_of)
    if cutoff is not None and (day is None or day < cutoff):
        # Numbers of deleted rows must not live on in the cache that parsed them.
        rows_deleted = con.execute(delete_unreferenced_numbers_sql()).fetchone()[0]
        remaining[f"{NUMBER_CACHE}: entries nothing kept refers to"] = (
            con.execute(unreferenced_numbers_sql()).fetchone()[0],
            0,
        )
        context.log.info(f"{NUMBER_CACHE}: {rows_deleted} entries nothing kept refers to deleted")
        deleted[NUMBER_CACHE] = rows_deleted
        log_rows.append([RESTRICTED, NUMBER_CACHE, policy.restricted_days, cutoff, rows_deleted])
    if log_rows:  # a partition within every retention: nothing to log
        con.executemany(
            f"INSERT INTO {RETENTION_LOG} (swept_at, run_id, as_of, zone, table_name, "
            "retention_days, cutoff, rows_deleted) VALUES (now(), ?, ?, ?, ?, ?, ?, ?)",
            [[context.run.run_id, as_of, *row] for row in log_rows],
        )
    return deleted, remaining


def sweep_not_due(
    con: duckdb.DuckDBPyConnection, policy: RetentionPolicy, as_of: dt.date
) -> str | None:
    """Why the daily sweep's check `retention_holds` does not apply yet, or None when it does:
    the same leftovers the check counts after a sweep (rows older than each zone's cutoff,
    number-cache entries nothing kept refers to) are all zero now, so a sweep would delete
    nothing. Some table not created yet: None (the record then says unproven)."""
    try:
        for zone, tables in RETENTION_TABLES.items():
            cutoff = policy.cutoff(zone, as_of)
            if cutoff is None:
                continue
            for table in tables:
                values = {"cutoff": cutoff, "call_date": None}
                if run(con, expired_rows_sql(table), values).fetchone()[0]:
                    return None
        restricted_swept = policy.cutoff(RESTRICTED, as_of) is not None
        if restricted_swept and con.execute(unreferenced_numbers_sql()).fetchone()[0]:
            return None
    except duckdb.CatalogException:
        return None
    cutoffs = ", ".join(
        f"{zone} {cutoff}" if (cutoff := policy.cutoff(zone, as_of)) else f"{zone} kept"
        for zone in RETENTION_TABLES
    )
    return (
        "the daily sweep has not run on this data home yet, and nothing is past retention: no "
        f"table holds a day older than its zone's cutoff as of {as_of} ({cutoffs}), so a sweep "
        "would delete nothing; each day's run applied retention to its own day"
    )


def _cutoffs_metadata(policy: RetentionPolicy, as_of: dt.date) -> dict[str, dg.MetadataValue]:
    cutoffs = {zone: policy.cutoff(zone, as_of) for zone in RETENTION_TABLES}
    return {
        "retention_days": dg.MetadataValue.json(policy.days_by_zone()),
        "cutoffs": dg.MetadataValue.json(
            {zone: day.isoformat() if day else "kept forever" for zone, day in cutoffs.items()}
        ),
    }


@dg.asset(
    key=RETENTION_SWEEP,
    **zone_attributes("restricted", "retention", kinds=("duckdb",)),
    pool=DUCKDB_POOL,
    check_specs=[
        blocking(
            RETENTION_SWEEP,
            RETENTION_HOLDS.name,
            "After the sweep, no swept table holds a partition older than its zone's cutoff, and "
            "the number cache holds no entry that nothing kept refers to.",
        )
    ],
    description=(
        "Deletes day partitions older than each zone's retention: restricted call rows "
        f"({_days('retention_restricted_days')}), pseudonymised rows in analytics, "
        "their shareable copy and the compliance findings per callee "
        f"({_days('retention_pseudonymized_days')}), aggregates, analytics and "
        f"shareable, and abandonment rates ({_days('retention_aggregates_days')} = "
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
    with zones_connection(
        restricted_warehouse,
        analytics_warehouse,
        compliance=compliance_warehouse,
        shareable=shareable_warehouse,
    ) as con:
        deleted, remaining = _sweep(context, con, policy, as_of)
        yield dg.MaterializeResult(
            metadata={
                "as_of": as_of.isoformat(),
                **_cutoffs_metadata(policy, as_of),
                "rows_deleted": sum(deleted.values()),
                "rows_deleted_per_table": counts_table(deleted, label="table"),
                **table_metadata(con, RETENTION_LOG, None),
            }
        )
    yield reconcile_check(RETENTION_SWEEP, RETENTION_HOLDS.name, remaining)


@dg.asset(
    key=PARTITION_RETENTION,
    deps=LAST_STAGES,
    partitions_def=daily_partitions,
    # Not "duckdb": it deletes rows of other assets' tables and is no table of its own.
    **zone_attributes("restricted", "retention", kinds=("sql",)),
    pool=DUCKDB_POOL,
    check_specs=[
        blocking(
            PARTITION_RETENTION,
            "partition_retention_holds",
            "After the run, its partition holds nothing in a zone whose retention it is past "
            "(a backfill of old days keeps only what each zone's retention allows), and the "
            "number cache holds no entry that nothing kept refers to.",
        )
    ],
    description=(
        "The end of a day's run: when the partition is past some zone's retention (a backfill "
        f"of days older than {_days('retention_restricted_days')}), deletes its "
        "rows from those zones, as the daily retention sweep would, once every stage has used "
        "them: restricted call rows, known numbers and the number-cache entries nothing kept "
        "refers to; pseudonymised rows too when it is past their retention. Logged in "
        "analytics.retention_log. Within every retention it deletes nothing."
    ),
)
def partition_retention(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    analytics_warehouse: DuckDBResource,
    compliance_warehouse: DuckDBResource,
    shareable_warehouse: DuckDBResource,
    pipeline_config: PipelineConfig,
):
    day = partition_date(context)
    as_of = today_utc()
    policy = retention_policy(pipeline_config)
    with zones_connection(
        restricted_warehouse,
        analytics_warehouse,
        compliance=compliance_warehouse,
        shareable=shareable_warehouse,
    ) as con:
        deleted, remaining = _sweep(context, con, policy, as_of, day)
        yield dg.MaterializeResult(
            metadata={
                "as_of": as_of.isoformat(),
                "zones_past_retention": dg.MetadataValue.json(policy.zones_past(day, as_of)),
                **_cutoffs_metadata(policy, as_of),
                "rows_deleted": sum(deleted.values()),
                "rows_deleted_per_table": counts_table(deleted, label="table"),
            }
        )
    yield reconcile_check(PARTITION_RETENTION, "partition_retention_holds", remaining)
