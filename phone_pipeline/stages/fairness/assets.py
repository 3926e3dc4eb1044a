"""Fairness of the pipeline itself (analytics zone): quarantine, consent-exclusion and suppression
rates by caller country and number type against the rest, with a table and a plot in the UI."""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from phone_pipeline.automation.partitions import daily_partitions, partition_date
from phone_pipeline.domain.fairness import (
    FLAGGED_GROUP_INPUTS,
    GUESSED_COUNTRY_INPUTS,
    flag_groups,
    group_counts_sql,
    guess_country,
    png_markdown,
    rates_markdown,
    rates_png,
)
from phone_pipeline.domain.numbers import PARSED_NUMBER_INPUTS
from phone_pipeline.lineage import python_step_sql
from phone_pipeline.resources import ContactRules, PipelineConfig
from phone_pipeline.settings import env_name
from phone_pipeline.sql import run, statement
from phone_pipeline.stages.aggregate.checks import CALL_VOLUME_HOURLY
from phone_pipeline.stages.consent.checks import CONSENT_EXCLUSIONS
from phone_pipeline.stages.pseudonymize.checks import CALLS_PSEUDONYMIZED
from phone_pipeline.stages.shared.assets import (
    DUCKDB_POOL,
    DerivedLineage,
    sql_lineage,
    table_metadata,
    zone_attributes,
    zones_connection,
)
from phone_pipeline.stages.shared.checks import blocking, reconcile_check
from phone_pipeline.stages.validate.checks import CALLS_QUARANTINE, CALLS_VALIDATED
from phone_pipeline.warehouse import ANALYTICS, replace_partition

FAIRNESS_RATES = dg.AssetKey(["analytics", "fairness_rates"])
FAIRNESS_COVERAGE = "fairness_groups_cover_every_row"
PUBLISH_REPORT = "SELECT * FROM fairness_report"
FAIRNESS_DEPS = [
    CALLS_VALIDATED,
    CALLS_QUARANTINE,
    CONSENT_EXCLUSIONS,
    CALLS_PSEUDONYMIZED,
    CALL_VOLUME_HOURLY,
]


def fairness_lineage(counts_sql: str) -> DerivedLineage:
    """Column lineage of fairness_rates: the group counts' SQL, then `flag_groups` in Python
    (FLAGGED_GROUP_INPUTS); call_date is the partition's."""
    return sql_lineage(
        PUBLISH_REPORT,
        FAIRNESS_DEPS,
        staged={
            "fairness_report": python_step_sql(
                counts_sql,
                {"call_date": (), **FLAGGED_GROUP_INPUTS},
                passthrough=("measure", "country", "number_type", "rows", "affected"),
            )
        },
        computed={
            "guessed_countries": GUESSED_COUNTRY_INPUTS,
            "number_cache": PARSED_NUMBER_INPUTS,
        },
    )


@dg.asset(
    key=FAIRNESS_RATES,
    deps=FAIRNESS_DEPS,
    partitions_def=daily_partitions,
    **zone_attributes("analytics", "fairness", kinds=("duckdb", "pandas", "matplotlib")),
    pool=DUCKDB_POOL,
    check_specs=[
        blocking(
            FAIRNESS_RATES,
            FAIRNESS_COVERAGE,
            "Read back after the write: for each measure, the groups' rows and affected rows add "
            "up to the partition's counts taken straight from the stages' tables (raw = "
            "validated + quarantined, validated and consent-excluded, admitted and in suppressed "
            "hourly cells): every row that reached a measure's stage is in exactly one group, so "
            "no group of people is left out of the comparison. Flagged groups are findings shown "
            "in the asset's metadata, not a failure.",
        )
    ],
    description=(
        "Per day, measure (quarantine, consent exclusion, suppression) and caller group "
        "(country x number type): rows, rows affected, the group's rate against the rest and the "
        f"overall rate; a group at least {env_name('fairness_ratio')} times the rest with at "
        f"least {env_name('fairness_min_group_rows')} rows is flagged. Aggregates only."
    ),
)
def fairness_rates(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    analytics_warehouse: DuckDBResource,
    pipeline_config: PipelineConfig,
    contact_rules: ContactRules,
):
    call_date = partition_date(context)
    values = {"call_date": call_date, "default_region": pipeline_config.default_region}
    with zones_connection(restricted_warehouse, analytics_warehouse) as con:
        unreadable = [
            row[0] for row in run(con, statement(__file__, "unreadable_callers"), values).fetchall()
        ]
        guessed = pd.DataFrame(
            [(raw, guess_country(raw)) for raw in unreadable], columns=list(GUESSED_COUNTRY_INPUTS)
        ).astype({"raw_number": "string", "country": "string"})
        con.register("guessed_countries", guessed)
        counts_sql = group_counts_sql("guessed_countries")
        counts = run(con, counts_sql, values).df()
        con.unregister("guessed_countries")
        report = flag_groups(
            counts, contact_rules.fairness_ratio, contact_rules.fairness_min_group_rows
        )
        report.insert(0, "call_date", call_date)
        con.register("fairness_report", report)
        replace_partition(con, call_date, {f"{ANALYTICS}.fairness_rates": PUBLISH_REPORT})
        con.unregister("fairness_report")
        coverage = run(con, statement(__file__, "fairness_coverage"), values).fetchall()
        flagged = report[report["flagged"]]
        yield dg.MaterializeResult(
            metadata={
                **table_metadata(
                    con, f"{ANALYTICS}.fairness_rates", call_date, fairness_lineage(counts_sql)
                ),
                "groups_flagged": len(flagged),
                "flagged": dg.MetadataValue.json(
                    [
                        f"{m}: {c}/{t}"
                        for m, c, t in zip(
                            flagged["measure"],
                            flagged["country"],
                            flagged["number_type"],
                            strict=True,
                        )
                    ]
                ),  # fmt: skip
                "rule": (
                    f"rate >= {contact_rules.fairness_ratio} x rest, "
                    f"rows >= {contact_rules.fairness_min_group_rows}, country known"
                ),
                "rates": dg.MetadataValue.md(rates_markdown(report)),
                "plot": dg.MetadataValue.md(
                    png_markdown(
                        rates_png(report, f"Fairness of the pipeline, {call_date}"),
                        "fairness rates",
                    )
                ),  # fmt: skip
            }
        )
    yield reconcile_check(
        FAIRNESS_RATES,
        FAIRNESS_COVERAGE,
        {
            **{f"{measure}: rows": (rows, source) for measure, rows, source, _, _ in coverage},
            **{f"{measure}: affected": (got, source) for measure, _, _, got, source in coverage},
        },
    )
