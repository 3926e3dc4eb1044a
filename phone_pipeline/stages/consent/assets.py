"""Stage 3, consent: the registry of consent events, and each call joined to it as of its time."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from phone_pipeline.automation.partitions import partition_date
from phone_pipeline.domain.consent import (
    ANALYTICS,
    classify_consent_events_sql,
    consent_as_of_sql,
    exclusion_reason_sql,
    purpose_values,
)
from phone_pipeline.domain.contract import CONSENT_OPTIONAL_COLUMNS, CONSENT_REQUIRED_COLUMNS
from phone_pipeline.domain.erasure import consent_change_partitions_sql
from phone_pipeline.domain.validation import region_values
from phone_pipeline.resources import (
    GreatExpectationsResource,
    PipelineConfig,
    PseudonymKeyResource,
)
from phone_pipeline.sql import run, statement
from phone_pipeline.stages.consent.checks import (
    CONSENT_EVENTS,
    CONSENT_EVENTS_CHECKS,
    CONSENT_EXCLUSIONS,
    CONSENTED_CALLS,
    CONSENTED_CHECKS,
    consent_events_expectations,
    consent_violations_sql,
    consented_expectations,
)
from phone_pipeline.stages.erasure.checks import ERASURE_REGISTER
from phone_pipeline.stages.erasure.register import forget_erased_numbers
from phone_pipeline.stages.shared.assets import (
    DUCKDB_POOL,
    DerivedLineage,
    counts_table,
    partitioned_table_spec,
    restricted_connection,
    sql_lineage,
    table_metadata,
    zone_attributes,
)
from phone_pipeline.stages.shared.checks import reconcile_check, sql_check, suite_check
from phone_pipeline.stages.shared.registry import LandingRegistry, replace_registry, stage_registry
from phone_pipeline.stages.validate.checks import CALLS_VALIDATED
from phone_pipeline.stages.validate.number_cache import cache_new_numbers
from phone_pipeline.timings import PARSE, recording
from phone_pipeline.warehouse import replace_partition

PARTITION_TAG = "dagster/partition"
CONSENT_REGISTRY = LandingRegistry(
    CONSENT_EVENTS, "consent", "Consent", CONSENT_REQUIRED_COLUMNS, CONSENT_OPTIONAL_COLUMNS
)


@dg.asset(
    key=CONSENT_EVENTS,
    deps=[ERASURE_REGISTER],  # events of erased subjects are left out
    **zone_attributes("restricted", "consent", kinds=("duckdb", "csv")),
    pool=DUCKDB_POOL,
    check_specs=CONSENT_EVENTS_CHECKS,
    description=(
        "The consent registry: every append-only event from landing/consent, numbers in E.164, "
        "refreshed in full on each run so that a withdrawal counts at the next run. Unusable rows "
        "go to `consent_quarantine` with a reason; events of erased subjects are left out. "
        "Restricted zone."
    ),
)
def consent_events(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    pipeline_config: PipelineConfig,
    gx: GreatExpectationsResource,
    pseudonym_key: PseudonymKeyResource,
):
    values = {**region_values(pipeline_config.default_region), **purpose_values(ANALYTICS)}
    with restricted_connection(restricted_warehouse) as con:
        read = stage_registry(con, context.log, CONSENT_REGISTRY, pipeline_config.landing_consent)
        with recording() as timings:
            parsed = cache_new_numbers(
                con,
                "SELECT phone_number AS raw_number FROM consent_staged",
                pipeline_config.default_region,
            )
        run(
            con,
            "CREATE OR REPLACE TEMP TABLE consent_classified AS "
            + classify_consent_events_sql("consent_staged", "number_cache"),
            values,
        )
        # The register applies here too: an erased subject's events (and its cached number) go.
        erased = forget_erased_numbers(
            con,
            "SELECT e164 FROM consent_classified WHERE e164 IS NOT NULL",
            pseudonym_key.pseudonymizers,
        )
        con.execute("CREATE OR REPLACE TEMP TABLE consent_erased (e164 VARCHAR)")
        if erased:
            con.executemany("INSERT INTO consent_erased VALUES (?)", [[n] for n in erased])
        con.execute(statement(__file__, "consent_kept"))
        # Partitions whose consent outcome this refresh can change (a withdrawal, a late grant):
        # the privacy_rerun_sensor re-runs them, published ones included.
        con.execute(statement(__file__, "consent_new_events"))
        affected = [
            row[0].isoformat()
            for row in run(
                con,
                consent_change_partitions_sql(
                    "consent_events", "consent_new_events", "known_numbers"
                ),
                values,
            ).fetchall()
        ]
        refresh = replace_registry(
            con,
            CONSENT_REGISTRY,
            read,
            {"consent_events": statement(__file__, "consent_events_of_kept_rows")},
            quarantined_sql=statement(__file__, "consent_quarantined_rows"),
        )
        events, quarantined, erased_rows = con.execute(
            statement(__file__, "consent_registry_counts")
        ).fetchone()
        by_purpose = con.execute(
            "SELECT purpose || ' ' || status, count(*) FROM consent_events GROUP BY 1"
        ).fetchall()
        yield dg.MaterializeResult(
            asset_key=CONSENT_EVENTS,
            metadata={
                **table_metadata(con, "consent_events", None),
                "numbers_parsed_this_run": parsed,
                "parse_seconds": timings.seconds(PARSE),
                "rows_of_erased_subjects_left_out": erased_rows,
                # Dates are not personal data; this run's own partition is rebuilt by this run.
                "affected_partitions": dg.MetadataValue.json(
                    [day for day in affected if day != context.run.tags.get(PARTITION_TAG)]
                ),
                "events_by_purpose_and_status": counts_table(dict(by_purpose), label="event"),
                "quarantined_by_reason": counts_table(refresh.quarantined_by_reason),
            },
        )
        yield refresh.files_readable
        yield reconcile_check(
            CONSENT_EVENTS,
            "consent_registry_rows_reconcile",
            {
                "rows read = events + quarantined + erased": (
                    refresh.rows_read,
                    events + quarantined + erased_rows,
                )
            },
        )
        yield suite_check(
            gx, CONSENT_EVENTS, "consent_events_suite", con, "SELECT * FROM consent_events",
            consent_events_expectations(),
        )  # fmt: skip


@dg.multi_asset(
    specs=[
        partitioned_table_spec(
            CONSENTED_CALLS,
            [CALLS_VALIDATED, CONSENT_EVENTS],
            (
                "Calls whose caller had granted `analytics` consent at the call's time (the latest "
                "event at or before it). The callee's number is kept only if the callee had "
                "granted it too; otherwise only country and number type remain. Restricted zone."
            ),
            "restricted",
            "consent",
        ),
        partitioned_table_spec(
            CONSENT_EXCLUSIONS,
            [CALLS_VALIDATED, CONSENT_EVENTS],
            "Validated calls left out of analytics, each with the consent reason.",
            "restricted",
            "consent",
        ),
    ],
    check_specs=CONSENTED_CHECKS,
    pool=DUCKDB_POOL,
    name="join_consent",
)
def join_consent(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    gx: GreatExpectationsResource,
):
    call_date = partition_date(context)
    values = {"call_date": call_date, **purpose_values(ANALYTICS)}
    with restricted_connection(restricted_warehouse) as con:
        selects = consent_outcome_selects()
        written = replace_partition(con, call_date, selects, values)
        validated = con.execute(
            "SELECT count(*) FROM calls_validated WHERE call_date = ?", [call_date]
        ).fetchone()[0]
        reasons = dict(
            con.execute(
                "SELECT reason, count(*) FROM consent_exclusions WHERE call_date = ? GROUP BY 1",
                [call_date],
            ).fetchall()
        )
        identifiable = con.execute(
            "SELECT count(*) FILTER (WHERE callee_identifiable) FROM consented_calls WHERE call_date = ?",
            [call_date],
        ).fetchone()[0]
        yield dg.MaterializeResult(
            asset_key=CONSENTED_CALLS,
            metadata={
                **table_metadata(
                    con, "consented_calls", call_date, consent_lineage(selects, "consented_calls")
                ),
                "callees_identifiable": identifiable,
            },
        )
        yield dg.MaterializeResult(
            asset_key=CONSENT_EXCLUSIONS,
            metadata={
                **table_metadata(
                    con,
                    "consent_exclusions",
                    call_date,
                    consent_lineage(selects, "consent_exclusions"),
                ),
                "excluded_by_reason": counts_table(reasons),
            },
        )
        violations = run(
            con, consent_violations_sql("consented_calls", "consent_events"), values
        ).fetchone()
        yield suite_check(
            gx, CONSENTED_CALLS, "consented_calls_suite", con,
            "SELECT * FROM consented_calls WHERE call_date = $call_date", consented_expectations(),
            values,
        )  # fmt: skip
    yield sql_check(
        CONSENTED_CALLS,
        "no_consent_violations",
        passed=not any(violations),
        metadata={
            "callers_without_consent": violations[0],
            "identifiable_callees_without_consent": violations[1],
            "identifiable_flag_mismatches": violations[2],
        },
    )
    yield reconcile_check(
        CONSENTED_CALLS,
        "consent_rows_reconcile",
        {
            "validated = admitted + excluded": (
                validated,
                written["consented_calls"] + written["consent_exclusions"],
            )
        },
    )


def consent_outcome_selects() -> dict[str, str]:
    """What replaces the partition `$call_date` of consented_calls and consent_exclusions, by
    consent for the purpose `$purpose` (analytics)."""
    # A hash join on the number (see consent_as_of_sql) streams the calls: no intermediate table.
    calls = consent_as_of_sql(
        "(SELECT * FROM calls_validated WHERE call_date = $call_date)", "consent_events"
    )
    return {
        # Minimise here: a callee without consent loses the number, keeps country and type.
        "consented_calls": f"""
                SELECT call_date, call_id, started_at_utc, duration_seconds, disposition, cell_id,
                       caller_e164, caller_country, caller_number_type, caller_geo_region,
                       CASE WHEN callee_consent THEN callee_e164 END AS callee_e164,
                       coalesce(callee_consent, false) AS callee_identifiable,
                       callee_country, callee_number_type, source_file, source_row, campaign_id
                FROM ({calls}) WHERE caller_consent""",
        "consent_exclusions": f"""
                SELECT call_date, {exclusion_reason_sql("caller_consent")} AS reason, call_id,
                       source_file, source_row
                FROM ({calls}) WHERE caller_consent IS NOT TRUE""",
    }


def consent_lineage(selects: dict[str, str], table: str) -> DerivedLineage:
    """Column lineage of a consent outcome table, from the SELECTs the run executed."""
    return sql_lineage(selects[table], [CALLS_VALIDATED, CONSENT_EVENTS])
