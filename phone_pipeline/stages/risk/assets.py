"""Re-identification risk of each dataset that may go to the shareable zone, per partition.

Measured on the analytics zone (internal) after the aggregates; the publication gates read the
figures back from `analytics.reidentification_risk`. What the measures mean: domain/risk.py; what
they are measured on, dataset by dataset: domain/publication.py.
"""

import datetime as dt
import time

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from phone_pipeline.automation.partitions import daily_partitions, partition_date
from phone_pipeline.domain.publication import CANDIDATES, Candidate
from phone_pipeline.domain.risk import (
    MAX_POINTS,
    SHARE_BELOW_K,
    SUBSCRIBERS,
    UNICITY,
    RiskLimits,
    RiskMeasure,
    gate_decision,
    load_trace_index,
    measure_k_anonymity,
    measure_unicity,
    measures_markdown,
    partition_seed,
    risk_measure_inputs,
    risk_measures,
)
from phone_pipeline.lineage import python_step_sql
from phone_pipeline.resources import PipelineConfig
from phone_pipeline.sql import run, statement
from phone_pipeline.stages.risk.checks import (
    REIDENTIFICATION_RISK,
    RISK_MEASURED,
    RISK_MEASURED_SPEC,
    analytics_key,
)
from phone_pipeline.stages.shared.assets import (
    DUCKDB_POOL,
    DerivedLineage,
    sql_lineage,
    table_metadata,
    zone_attributes,
    zones_connection,
)
from phone_pipeline.stages.shared.checks import reconcile_check
from phone_pipeline.warehouse import ANALYTICS, replace_partition

PUBLISH_RISK = "SELECT *, now() AS recorded_at FROM risk_rows"


def dataset_rows_sql(candidate: Candidate) -> str:
    """The rows of a dataset's partition (`$call_date`)."""
    return (
        f"SELECT count(*) AS dataset_rows FROM {ANALYTICS}.{candidate.name} "
        "WHERE call_date = $call_date"
    )


def risk_lineage() -> DerivedLineage:
    """Column lineage of reidentification_risk: each dataset's risk relations (the SQL the
    measures read), measured in Python (`risk_measure_inputs`), with its row count."""
    steps = []
    for candidate in CANDIDATES:
        measured = [*candidate.quasi_identifiers]
        if candidate.has_traces:
            measured += ["trace_time", "trace_place"]
        relations = [candidate.risk_relation(), candidate.suppressed_relation()]
        source = " UNION ALL ".join(
            f"SELECT * FROM {relation}" for relation in relations if relation
        )
        step = python_step_sql(source, {"call_date": (), **risk_measure_inputs(measured)})
        steps.append(
            f"SELECT measures.*, counted.dataset_rows FROM ({step}) AS measures "
            f"CROSS JOIN ({dataset_rows_sql(candidate)}) AS counted"
        )
    return sql_lineage(
        PUBLISH_RISK,
        [analytics_key(candidate.name) for candidate in CANDIDATES],
        staged={"risk_rows": " UNION ALL ".join(steps)},
    )


def measure_candidate(
    con, candidate: Candidate, call_date: dt.date, k: int, sample_size: int
) -> list[RiskMeasure]:
    """Every measure of one dataset's partition (the relation is read where it lies, in DuckDB)."""
    day = {"call_date": call_date}
    relation = candidate.risk_relation()
    k_anonymity = measure_k_anonymity(
        con, relation, "subscriber", candidate.quasi_identifiers, k, day
    )
    unicity = None
    if candidate.has_traces:
        index = load_trace_index(
            con, f"(SELECT * FROM {relation} WHERE trace_time IS NOT NULL)",
            "subscriber", "trace_time", "trace_place", day,
        )  # fmt: skip
        unicity = measure_unicity(index, sample_size, partition_seed(call_date, candidate.name))
    suppressed = None
    if (suppressed_relation := candidate.suppressed_relation()) is not None:
        # fetchall, not fetchone: DuckDB 2.0 refuses register() after a result left unfinished.
        suppressed = run(
            con, f"SELECT count(DISTINCT subscriber) FROM {suppressed_relation}", day
        ).fetchall()[0][0]
    return risk_measures(candidate.name, k_anonymity, unicity, suppressed)


def measured_equations(con, call_date: dt.date, k: int) -> dict[str, tuple[int, int]]:
    """What the partition's risk rows hold per dataset against what its gate needs (the
    check's equations: each side must be equal)."""
    found = {
        row[0]: row[1:]
        for row in run(
            con, statement(__file__, "measures_per_dataset"), {"call_date": call_date, "k": k}
        ).fetchall()
    }
    equations: dict[str, tuple[int, int]] = {}
    for candidate in CANDIDATES:
        subscribers, below_k, points, suppressed, measured_rows = found.get(
            candidate.name, (0, 0, 0, 0, -1)
        )
        rows_now = run(con, dataset_rows_sql(candidate), {"call_date": call_date}).fetchall()[0][0]
        name = candidate.name
        equations[f"{name}: subscriber counts"] = (subscribers, 1)
        equations[f"{name}: shares below k={k}"] = (below_k, 1)
        equations[f"{name}: unicity points measured"] = (points, MAX_POINTS)
        has_suppressed = candidate.suppressed_relation() is not None
        equations[f"{name}: suppressed cells' subscriber counts"] = (
            suppressed,
            int(has_suppressed),
        )
        equations[f"{name}: rows measured = rows now"] = (measured_rows, rows_now)
    return equations


def summary_markdown(results: dict[str, list[RiskMeasure]], limits: RiskLimits) -> str:
    lines = [
        f"Limits: share below k={limits.k} <= {limits.max_share_below_k}, "
        f"unicity (p = 1..4) <= {limits.max_unicity}.",
        "",
        "| dataset | subscribers | share below k | unicity p=1 / 2 / 3 / 4 | within limits |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for dataset, measures in results.items():
        below = next((m for m in measures if m.measure == SHARE_BELOW_K), None)
        total = next((m.subscribers for m in measures if m.measure == SUBSCRIBERS), None)
        unicity = [m for m in measures if m.measure == UNICITY]
        shares = " / ".join(
            "n/a" if not m.applicable or m.value is None else f"{m.value:.3f}" for m in unicity
        )
        decision = gate_decision(measures, limits)
        lines.append(
            f"| {dataset} | {'' if total is None else total} "
            f"| {'' if below is None else f'{below.value:.4f}'} | {shares} "
            f"| {'yes' if decision.passed else 'NO: ' + '; '.join(decision.reasons)} |"
        )
    return "\n".join(lines)


@dg.asset(
    key=REIDENTIFICATION_RISK,
    deps=[analytics_key(candidate.name) for candidate in CANDIDATES],
    partitions_def=daily_partitions,
    **zone_attributes("analytics", "risk", kinds=("duckdb", "numpy")),
    pool=DUCKDB_POOL,
    check_specs=[RISK_MEASURED_SPEC],
    description=(
        "Re-identification risk of each dataset that may be shared, per partition, in subscribers "
        "(never pseudonyms): k-anonymity over the published quasi-identifiers (histogram of each "
        "subscriber's smallest group, share below k), unicity given p = 1..4 random (hour, region) "
        "points (de Montjoye et al. 2013; sampled, reproducible seed), and how many subscribers "
        "the suppressed cells describe together. The shareable zone's gates read these figures."
    ),
)
def reidentification_risk(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    analytics_warehouse: DuckDBResource,
    pipeline_config: PipelineConfig,
):
    call_date = partition_date(context)
    limits = pipeline_config.risk_limits
    results: dict[str, list[RiskMeasure]] = {}
    rows = []
    with zones_connection(restricted_warehouse, analytics_warehouse) as con:
        started = time.perf_counter()
        for candidate in CANDIDATES:
            measures = measure_candidate(
                con, candidate, call_date, limits.k, pipeline_config.unicity_sample_size
            )
            results[candidate.name] = measures
            dataset_rows = run(
                con, dataset_rows_sql(candidate), {"call_date": call_date}
            ).fetchall()[0][0]
            rows += [
                {"call_date": call_date, **vars(measure), "dataset_rows": dataset_rows}
                for measure in measures
            ]
        seconds = time.perf_counter() - started
        frame = pd.DataFrame(rows).astype({"parameter": "Int32", "parameter_upper": "Int32",
                                           "subscribers": "Int64", "sampled": "Int64"})  # fmt: skip
        con.register("risk_rows", frame)
        replace_partition(
            con,
            call_date,
            {f"{ANALYTICS}.reidentification_risk": PUBLISH_RISK},
        )
        con.unregister("risk_rows")
        metadata = table_metadata(
            con, f"{ANALYTICS}.reidentification_risk", call_date, risk_lineage()
        )
        measured = measured_equations(con, call_date, limits.k)
    yield dg.MaterializeResult(
        metadata={
            **metadata,
            "summary": dg.MetadataValue.md(summary_markdown(results, limits)),
            **{
                f"risk_{dataset}": dg.MetadataValue.md(measures_markdown(measures))
                for dataset, measures in results.items()
            },
            "k": limits.k,
            "unicity_sample_size": pipeline_config.unicity_sample_size,
            "measure_seconds": round(seconds, 2),
        }
    )
    yield reconcile_check(REIDENTIFICATION_RISK, RISK_MEASURED, measured)
