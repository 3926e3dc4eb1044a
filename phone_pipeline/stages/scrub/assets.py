"""The do-not-call scrub list (restricted zone): what a dialer must not call for marketing now."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from phone_pipeline.domain.scrub import scrub_list_sql, scrub_values
from phone_pipeline.domain.validation import known_numbers_sql
from phone_pipeline.resources import ContactRules
from phone_pipeline.sql import run, statement
from phone_pipeline.stages.consent.checks import CONSENT_EVENTS
from phone_pipeline.stages.dnc.checks import DNC_REGISTRY
from phone_pipeline.stages.scrub.checks import (
    DNC_SCRUB_LIST,
    SCRUB_LIST_CHECKS,
    numbers_missing_from_scrub_list_sql,
)
from phone_pipeline.stages.shared.assets import (
    DUCKDB_POOL,
    DerivedLineage,
    counts_table,
    restricted_connection,
    sql_lineage,
    table_metadata,
    zone_attributes,
)
from phone_pipeline.stages.shared.checks import sql_check
from phone_pipeline.stages.validate.checks import CALLS_VALIDATED
from phone_pipeline.warehouse import transaction


def scrub_lineage(select_sql: str) -> DerivedLineage:
    """Column lineage of the scrub list, from the SELECT that rebuilt it; `known_numbers` is
    filled by validation from its validated calls."""
    return sql_lineage(
        select_sql,
        [CALLS_VALIDATED, CONSENT_EVENTS, DNC_REGISTRY],
        staged={"known_numbers": known_numbers_sql("calls_validated")},
    )


@dg.asset(
    key=DNC_SCRUB_LIST,
    deps=[CALLS_VALIDATED, CONSENT_EVENTS, DNC_REGISTRY],
    **zone_attributes("restricted", "scrub", kinds=("duckdb",)),
    pool=DUCKDB_POOL,
    check_specs=SCRUB_LIST_CHECKS,
    description=(
        "Every number that must not be called for marketing now, one row per number and reason "
        "(marketing consent withdrawn or never granted, listed in the do-not-call registry, a "
        "frequency cap reached) with since when. Rebuilt in full on every run, so a withdrawal "
        "counts at the next run. Restricted zone: a dialer scrubs by number."
    ),
)
def dnc_scrub_list(restricted_warehouse: DuckDBResource, contact_rules: ContactRules):
    with restricted_connection(restricted_warehouse) as con:
        # One instant for the whole run, so the list and its gate agree on "now".
        now = con.execute("SELECT now()").fetchone()[0]
        values = scrub_values(now, contact_rules.max_calls_24h, contact_rules.max_calls_7d)
        list_sql = scrub_list_sql(
            "calls_validated", "known_numbers", "consent_events", "dnc_registry"
        )
        select_sql = f"SELECT *, $now AS recorded_at FROM ({list_sql})"
        with transaction(con):
            con.execute("DELETE FROM dnc_scrub_list")
            run(con, f"INSERT INTO dnc_scrub_list BY NAME {select_sql}", values)
        by_reason = dict(
            con.execute("SELECT reason, count(*) FROM dnc_scrub_list GROUP BY 1").fetchall()
        )
        numbers, repeated_rows = con.execute(statement(__file__, "scrub_list_counts")).fetchone()
        missing_consent, missing_listed = run(
            con,
            numbers_missing_from_scrub_list_sql(
                "dnc_scrub_list", "known_numbers", "consent_events", "dnc_registry"
            ),
            values,
        ).fetchone()
        yield dg.MaterializeResult(
            metadata={
                **table_metadata(con, "dnc_scrub_list", None, scrub_lineage(select_sql)),
                "numbers_to_scrub": numbers,
                "rows_by_reason": counts_table(by_reason),
                "as_of": now.isoformat(),
            }
        )
    yield sql_check(
        DNC_SCRUB_LIST,
        "scrub_list_misses_no_number",
        passed=missing_consent == 0 and missing_listed == 0 and repeated_rows == 0,
        metadata={
            "numbers_without_marketing_consent_missing": missing_consent,
            "listed_numbers_missing": missing_listed,
            "rows_repeating_a_number_and_reason": repeated_rows,
        },
    )
