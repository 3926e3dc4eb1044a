"""The shareable zone: a dataset's partition is copied from analytics only if its measured
re-identification risk is within the configured limits (the gate per dataset).

Write-audit-publish: the decision is taken on the figures of `analytics.reidentification_risk`
before anything is written, so a failed gate leaves the shareable file as it was, with one
deliberate exception: a partition published earlier whose risk now fails the limits is withdrawn
(its rows deleted), logged as a warning, recorded in `analytics.shareable_publications` and in
the gate's metadata. The shareable zone then always holds exactly the partitions whose latest
measured risk passed.
"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from phone_pipeline.automation.partitions import daily_partitions, partition_date
from phone_pipeline.domain.publication import CANDIDATES, Candidate
from phone_pipeline.domain.risk import (
    SHARE_BELOW_K,
    UNICITY,
    GateDecision,
    RiskLimits,
    RiskMeasure,
    gate_decision,
)
from phone_pipeline.lineage import python_step_sql
from phone_pipeline.resources import PipelineConfig
from phone_pipeline.settings import env_name
from phone_pipeline.sql import run, statement
from phone_pipeline.stages.risk.checks import (
    REIDENTIFICATION_RISK,
    SHAREABLE_PUBLICATIONS,
    analytics_key,
    risk_gate_name,
    risk_gate_specs,
    shareable_key,
)
from phone_pipeline.stages.shared.assets import (
    DUCKDB_POOL,
    DerivedLineage,
    sql_lineage,
    table_metadata,
    zone_attributes,
    zones_connection,
)
from phone_pipeline.stages.shared.checks import sql_check
from phone_pipeline.warehouse import ANALYTICS, SHAREABLE, replace_partition

WITHHELD_DESCRIPTION = (
    "A dataset whose risk exceeds a limit is not copied, and a copy published earlier is "
    "withdrawn; the gate `{gate}` says which measure, its value and the limit."
)


def _spec(candidate: Candidate) -> dg.AssetSpec:
    return dg.AssetSpec(
        shareable_key(candidate.name),
        deps=[analytics_key(candidate.name), REIDENTIFICATION_RISK],
        description=(
            f"analytics.{candidate.name}, partition by partition, for a wider audience: copied "
            "only when its re-identification risk (analytics/reidentification_risk) is within "
            f"{env_name('max_share_below_k')} and {env_name('max_unicity')}. "
            + WITHHELD_DESCRIPTION.format(gate=risk_gate_name(candidate.name))
        ),
        partitions_def=daily_partitions,
        skippable=True,
        **zone_attributes("shareable", "publish"),
    )


# A dataset's measures of a partition (`$call_date`, `$dataset`), as the gate reads them.
MEASURES_SQL = statement(__file__, "risk_measures_of_dataset")
# What each column of a publication decision row (`_publish_one`) is computed from, among the
# measures' columns (column lineage): the gate (`decide`) reads the share below k, unicity and
# the rows measured; the reasons quote the subscribers and samples; rows published or withdrawn
# follow the decision over the rows measured. The day and the time are no column's.
_GATE_READS = ("measure", "parameter", "value", "applicable", "dataset_rows")
PUBLICATION_INPUTS: dict[str, tuple[str, ...]] = {
    "call_date": (),
    "dataset": ("dataset",),
    "decision": _GATE_READS,
    "reasons": (*_GATE_READS, "subscribers", "sampled"),
    "published_rows": _GATE_READS,
    "withdrawn_rows": _GATE_READS,
    "recorded_at": (),
}
PUBLICATIONS_LINEAGE_SQL = "SELECT * FROM publication_rows"


def publications_lineage() -> DerivedLineage:
    """Column lineage of shareable_publications: decisions computed in Python from the measures
    the gate reads (PUBLICATION_INPUTS), written with bound values."""
    return sql_lineage(
        PUBLICATIONS_LINEAGE_SQL,
        [REIDENTIFICATION_RISK],
        staged={"publication_rows": python_step_sql(MEASURES_SQL, PUBLICATION_INPUTS)},
    )


def _measures(
    con: duckdb.DuckDBPyConnection, dataset: str, call_date: dt.date
) -> tuple[list[RiskMeasure], int | None]:
    """The dataset's measures for the partition and the row count they were measured on."""
    rows = run(con, MEASURES_SQL, {"call_date": call_date, "dataset": dataset}).fetchall()
    return [RiskMeasure(*row[:9]) for row in rows], (rows[0][9] if rows else None)


def decide(
    con: duckdb.DuckDBPyConnection, candidate: Candidate, call_date: dt.date, limits: RiskLimits
) -> tuple[GateDecision, bool, list[RiskMeasure]]:
    """The gate's decision, and whether a failure is an error (risk not measured on these rows)
    rather than a measured risk above the limits."""
    measures, measured_rows = _measures(con, candidate.name, call_date)
    rows_now = con.execute(
        f"SELECT count(*) FROM {ANALYTICS}.{candidate.name} WHERE call_date = ?", [call_date]
    ).fetchall()[0][0]
    if not measures:
        return GateDecision(False, ("the risk of this partition was not measured",)), True, []
    if measured_rows != rows_now:
        reason = (
            f"the risk was measured on {measured_rows} rows, the partition now has {rows_now}: "
            "materialise analytics/reidentification_risk again"
        )
        return GateDecision(False, (reason,)), True, measures
    return gate_decision(measures, limits), False, measures


def _limits_metadata(limits: RiskLimits) -> dict[str, object]:
    return {
        "k": limits.k,
        "max_share_below_k": limits.max_share_below_k,
        "max_unicity": limits.max_unicity,
    }


def _publish_one(
    context: dg.AssetExecutionContext,
    con: duckdb.DuckDBPyConnection,
    candidate: Candidate,
    call_date: dt.date,
    limits: RiskLimits,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    key = shareable_key(candidate.name)
    source = f"{ANALYTICS}.{candidate.name}"
    target = f"{SHAREABLE}.{candidate.name}"
    day = {"call_date": call_date}
    decision, is_error, measures = decide(con, candidate, call_date, limits)
    previously = con.execute(
        f"SELECT count(*) FROM {target} WHERE call_date = ?", [call_date]
    ).fetchall()[0][0]
    copy_sql = f"SELECT * FROM {source} WHERE call_date = $call_date"
    if decision.passed:
        counts = replace_partition(con, call_date, {target: copy_sql}, day)
        outcome, published, withdrawn = "published", counts[target], 0
    elif previously:
        # Deliberate: the shareable zone must not keep a partition whose risk now fails.
        copy_sql = f"SELECT * FROM {source} WHERE false"
        replace_partition(con, call_date, {target: copy_sql})
        outcome, published, withdrawn = "withdrawn", 0, previously
        context.log.warning(
            f"Withdrew {previously} rows of {target} for {call_date}: "
            + "; ".join(decision.reasons)
        )
    else:
        outcome, published, withdrawn = "withheld", 0, 0
        context.log.info(
            f"{candidate.name} of {call_date} not shared: " + "; ".join(decision.reasons)
        )
    recorded = {
        "call_date": call_date,
        "dataset": candidate.name,
        "decision": outcome,
        "reasons": "; ".join(decision.reasons) or None,
        "published_rows": published,
        "withdrawn_rows": withdrawn,
    }
    run(con, statement(__file__, "forget_publication_decision"), recorded)
    run(con, statement(__file__, "record_publication_decision"), recorded)
    if outcome != "withheld":  # the shareable partition changed: record it
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                **table_metadata(
                    con, target, call_date, sql_lineage(copy_sql, [analytics_key(candidate.name)])
                ),
                "publication": outcome,
                "withdrawn_rows": withdrawn,
                "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons) or "none"),
            },
        )  # fmt: skip
    # The gate's own audit: the shareable partition, read back, follows the decision.
    shared_rows = con.execute(
        f"SELECT count(*) FROM {target} WHERE call_date = ?", [call_date]
    ).fetchall()[0][0]
    source_rows = con.execute(
        f"SELECT count(*) FROM {source} WHERE call_date = ?", [call_date]
    ).fetchall()[0][0]
    expected = source_rows if decision.passed else 0
    yield sql_check(
        key,
        risk_gate_name(candidate.name),
        passed=not is_error and shared_rows == expected,
        description=_gate_description(outcome, decision, is_error, shared_rows, expected),
        metadata={
            "publication": outcome,
            "shared_rows": shared_rows,
            "published_rows": published,
            "withdrawn_rows": withdrawn,
            "reasons": dg.MetadataValue.md(
                "\n".join(f"- {reason}" for reason in decision.reasons) or "none: within limits"
            ),
            "measured_vs_limits": dg.MetadataValue.md(_measured_vs_limits(measures, limits)),
            **_limits_metadata(limits),
            **{
                f"{m.measure}_{m.parameter}" if m.parameter is not None else m.measure: m.value
                for m in measures
                if m.measure != "group_size" and m.applicable and m.value is not None
            },
        },
    )


def _gate_description(
    outcome: str, decision: GateDecision, is_error: bool, shared_rows: int, expected: int
) -> str:
    """What the gate did, in a line for the UI: passed means it did its job, whatever it decided."""
    reasons = "; ".join(decision.reasons)
    if is_error:
        return f"The gate could not decide ({outcome}): {reasons}"
    if shared_rows != expected:
        return (
            f"The shareable partition holds {shared_rows} rows where the decision ({outcome}) "
            f"requires {expected}"
        )
    if decision.passed:
        return f"Published: the measured risk is within the limits ({shared_rows} rows shared)."
    return f"{outcome.capitalize()}, as the limits require (nothing shared): {reasons}"


def _measured_vs_limits(measures: list[RiskMeasure], limits: RiskLimits) -> str:
    """Each measure the gate compares with a limit: its value, the limit, and whether it is over."""
    lines = ["| measure | value | limit | over the limit |", "| --- | ---: | ---: | --- |"]
    for m in measures:
        if m.measure == SHARE_BELOW_K and m.parameter == limits.k:
            limit, name = limits.max_share_below_k, f"share below k={m.parameter}"
        elif m.measure == UNICITY and m.applicable:
            limit, name = limits.max_unicity, f"unicity p={m.parameter}"
        else:
            continue
        value = "n/a" if m.value is None else f"{m.value:.4f}"
        over = "yes" if m.value is None or m.value > limit else "no"
        lines.append(f"| {name} | {value} | {limit:.4f} | {over} |")
    return "\n".join(lines)


@dg.multi_asset(
    name="publish_shareable",
    specs=[
        *(_spec(candidate) for candidate in CANDIDATES),
        dg.AssetSpec(
            SHAREABLE_PUBLICATIONS,
            deps=[REIDENTIFICATION_RISK],
            description=(
                "The latest publication decision per partition and dataset: published, withheld "
                "(risk above a limit, nothing shared) or withdrawn (an earlier copy removed), "
                "with the reasons and row counts. Internal evidence of the gate."
            ),
            partitions_def=daily_partitions,
            **zone_attributes("analytics", "publish", kinds=("duckdb",)),
        ),
    ],
    check_specs=risk_gate_specs(),
    pool=DUCKDB_POOL,
    description=(
        "Copies each dataset's partition from the analytics (internal) zone to the shareable zone "
        "when its measured re-identification risk passed the gate; withholds it otherwise."
    ),
)
def publish_shareable(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    analytics_warehouse: DuckDBResource,
    shareable_warehouse: DuckDBResource,
    pipeline_config: PipelineConfig,
):
    call_date = partition_date(context)
    limits = pipeline_config.risk_limits
    with zones_connection(
        restricted_warehouse, analytics_warehouse, shareable=shareable_warehouse
    ) as con:
        for candidate in CANDIDATES:
            yield from _publish_one(context, con, candidate, call_date, limits)
        decisions = run(
            con, statement(__file__, "publication_decisions_of_the_day"), {"call_date": call_date}
        ).fetchall()
        yield dg.MaterializeResult(
            asset_key=SHAREABLE_PUBLICATIONS,
            metadata={
                **table_metadata(con, f"{ANALYTICS}.shareable_publications", call_date,
                                 publications_lineage()),
                "decisions": dg.MetadataValue.md(
                    "| dataset | decision | rows published | rows withdrawn | reasons |\n"
                    "| --- | --- | ---: | ---: | --- |\n"
                    + "\n".join(f"| {d} | {o} | {p} | {w} | {r} |" for d, o, p, w, r in decisions)
                ),
            },
        )  # fmt: skip
