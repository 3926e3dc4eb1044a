"""Responsible contact (compliance zone): contact pressure, the permitted window in the callee's
local time, abandonment per campaign, and calls after a do-not-call listing, per day.

Computed from every validated call, consented or not: protecting the called person is a legal duty,
not analytics. Rows move from the restricted file to `compliance.duckdb` with callees replaced by
the same keyed pseudonyms as in analytics; the day's rows are staged, audited and only then
published (a failed privacy gate publishes nothing).
"""

import datetime as dt
import functools
from collections.abc import Callable

import dagster as dg
import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource

from phone_pipeline.automation.partitions import daily_partitions, partition_date
from phone_pipeline.domain.contact import (
    PermittedWindow,
    abandonment_sql,
    calls_after_dnc_listing_sql,
    contact_pressure_sql,
    contact_rule_values,
    number_time_zones_sql,
    window_status_sql,
)
from phone_pipeline.domain.dnc import dnc_listed_since_sql
from phone_pipeline.domain.markdown import bounded_text, markdown_table
from phone_pipeline.domain.numbers import PARSED_NUMBER_INPUTS
from phone_pipeline.domain.pseudonyms import PSEUDONYM_MAP_INPUTS
from phone_pipeline.resources import ContactRules, PseudonymKeyResource
from phone_pipeline.settings import env_name
from phone_pipeline.sql import run, statement
from phone_pipeline.stages.compliance.checks import (
    ABANDONMENT_RATES,
    COMPLIANCE_CHECKS,
    CONTACT_PRESSURE,
    DNC_CALL_FINDINGS,
    QUIET_HOURS,
    REFUSED,
    STAGED,
    findings_not_evaluated,
)
from phone_pipeline.stages.dnc.checks import DNC_REGISTRY
from phone_pipeline.stages.erasure.register import COMPLIANCE_PSEUDONYM_TABLES, rows_naming_sql
from phone_pipeline.stages.pseudonymize.checks import phone_numbers_found
from phone_pipeline.stages.shared.assets import (
    DUCKDB_POOL,
    DerivedLineage,
    counts_table,
    sql_lineage,
    zone_attributes,
    zones_connection,
)
from phone_pipeline.stages.shared.checks import reconcile_check, sql_check
from phone_pipeline.stages.shared.publish import Target, publish_if_gates_pass, stage_rows
from phone_pipeline.stages.validate.checks import CALLS_VALIDATED
from phone_pipeline.warehouse import COMPLIANCE

# Campaigns listed in metadata at most: the table holds them all.
MAX_MARKDOWN_ROWS = 100
HISTORY_DAYS = 7  # the longest rolling window reaches this many days before the partition
# A day's 7-day counts read the 7 days before it too, declared as a time-window mapping so the
# lineage and staleness the UI shows are true. Measured with dagster 1.13: the mapped window is
# clipped at the partitions' start date (no error, nothing "required but nonexistent"), and, as a
# plain dependency (no IO manager), earlier days never materialised do not stop a run: they
# contribute no calls (`earlier_days_with_calls` in the metadata names those found).
VALIDATED_WITH_HISTORY = dg.AssetDep(
    CALLS_VALIDATED,
    partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-HISTORY_DAYS, end_offset=0),
)
SAME_DAY = [CALLS_VALIDATED]
# The tables the stage publishes, in the order their materialisations are reported.
COMPLIANCE_TABLES = {
    "contact_pressure": CONTACT_PRESSURE,
    "quiet_hours": QUIET_HOURS,
    "abandonment_rates": ABANDONMENT_RATES,
    "dnc_call_findings": DNC_CALL_FINDINGS,
}


def _spec(key: dg.AssetKey, deps: list, description: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        key,
        deps=deps,
        description=description,
        partitions_def=daily_partitions,
        skippable=True,
        **zone_attributes("compliance", "contact"),
    )


@dg.multi_asset(
    specs=[
        _spec(
            CONTACT_PRESSURE,
            [VALIDATED_WITH_HISTORY],
            "Per callee (pseudonym) and day, overall and per campaign: the day's calls and the "
            "largest number of calls in any 24 hours and 7 days up to one of them (reaching back "
            f"into earlier days), flagged above {env_name('max_calls_24h')} / "
            f"{env_name('max_calls_7d')}. Compliance zone.",
        ),
        _spec(
            QUIET_HOURS,
            SAME_DAY,
            "Per callee (pseudonym), campaign and day: calls inside the permitted window in the "
            "callee's local time (`permitted`, in every zone of the number), outside it in some "
            "zone (`outside_window`), or with no known zone (`unknown`). Compliance zone.",
        ),
        _spec(
            ABANDONMENT_RATES,
            SAME_DAY,
            "Per campaign and day: abandoned / live-answered (answered + abandoned) calls, "
            f"flagged strictly above {env_name('max_abandonment_rate')}. Compliance zone.",
        ),
        _spec(
            DNC_CALL_FINDINGS,
            [CALLS_VALIDATED, DNC_REGISTRY],
            "Calls of the day to a number at or after its do-not-call listing, per callee "
            "(pseudonym) and campaign. Compliance zone.",
        ),
    ],
    check_specs=COMPLIANCE_CHECKS,
    pool=DUCKDB_POOL,
    name="contact_compliance",
)
def contact_compliance(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    compliance_warehouse: DuckDBResource,
    pseudonym_key: PseudonymKeyResource,
    contact_rules: ContactRules,
):
    pseudonymizer = pseudonym_key.pseudonymizer()  # fails early, and clearly, without a key
    call_date = partition_date(context)
    values = compliance_values(call_date, contact_rules)
    with zones_connection(restricted_warehouse, compliance=compliance_warehouse) as con:
        day_calls_sql = compliance_day_calls_sql()
        stage_rows(con, {"day_calls": day_calls_sql}, values)
        history = [
            row[0].isoformat()
            for row in run(con, statement(__file__, "earlier_days_with_calls"), values).fetchall()
        ]
        numbers = [
            row[0] for row in con.execute("SELECT DISTINCT callee_e164 FROM day_calls").fetchall()
        ]
        # HMACs in Python over distinct numbers, joined back: the key never enters SQL.
        pseudonym_map = pd.DataFrame(
            list(pseudonymizer.pseudonyms(numbers).items()), columns=list(PSEUDONYM_MAP_INPUTS)
        )
        con.register("pseudonym_map", pseudonym_map)
        staged = compliance_selects()
        stage_rows(
            con, {f"staged_{table}": select_sql for table, select_sql in staged.items()}, values
        )
        con.unregister("pseudonym_map")

        found_known, found_like = 0, 0
        for table in staged:
            text_columns = [
                row[0]
                for row in con.execute(f"DESCRIBE staged_{table}").fetchall()
                if row[1] == "VARCHAR"
            ]
            known, like = phone_numbers_found(con, f"staged_{table}", text_columns)
            found_known, found_like = found_known + known, found_like + like
        erased_rows = {}  # staged rows naming a pseudonym of the erasure register
        for table in COMPLIANCE_PSEUDONYM_TABLES:
            naming = rows_naming_sql(f"staged_{table}", ["callee_pseudonym"])
            erased_rows[table] = con.execute(naming).fetchone()[0]
        day_calls = con.execute("SELECT count(*) FROM day_calls").fetchone()[0]
        quiet_total, pressure_total = con.execute(
            statement(__file__, "staged_call_totals")
        ).fetchone()
        gates = [
            sql_check(
                CONTACT_PRESSURE,
                "no_phone_numbers_in_compliance",
                passed=found_known == 0 and found_like == 0,
                description=(
                    None
                    if found_known == 0 and found_like == 0
                    else f"{found_known} distinct value(s) of the staged compliance rows equal a "
                    f"number of the partition and {found_like} look like a phone number (values "
                    "not shown): nothing was published."
                ),
                metadata={
                    "tables_scanned": dg.MetadataValue.json(sorted(staged)),
                    "distinct_values_equal_to_a_known_number": found_known,
                    "distinct_values_that_look_like_a_phone_number": found_like,
                },
            ),
            sql_check(
                CONTACT_PRESSURE,
                "no_erased_subject_in_compliance",
                passed=not any(erased_rows.values()),
                description=(
                    None
                    if not any(erased_rows.values())
                    else f"{sum(erased_rows.values())} staged row(s) name an erased subject: "
                    "nothing was published."
                ),
                metadata={
                    "staged_rows_naming_an_erased_subject": dg.MetadataValue.json(erased_rows)
                },
            ),
            reconcile_check(
                QUIET_HOURS,
                "compliance_rows_reconcile",
                {
                    "quiet_hours calls = validated calls": (quiet_total, day_calls),
                    "contact_pressure calls (all) = validated calls": (pressure_total, day_calls),
                },
            ),
        ]
        extra_metadata = _published_metadata(call_date, history, contact_rules)
        publication = publish_if_gates_pass(
            con,
            context.log,
            call_date,
            gates,
            [
                Target(
                    f"{COMPLIANCE}.{table}",
                    f"SELECT * FROM staged_{table}",
                    COMPLIANCE_TABLES[table],
                    lineage=functools.partial(
                        compliance_lineage, f"SELECT * FROM staged_{table}", staged, day_calls_sql
                    ),
                    metadata=extra_metadata[table],
                )
                for table in staged
            ],
            staged=STAGED,
            refused=REFUSED,
            values=values,
        )
        findings = (
            _findings(con, call_date, contact_rules)
            if publication.published
            else findings_not_evaluated(publication.failed_gates)
        )
    yield from publication.results
    yield from findings


def compliance_values(call_date: dt.date, rules: ContactRules) -> dict[str, object]:
    """The values the stage's SQL names: its day, the first day its 7-day counts reach back to,
    and the rules (checked by the domain)."""
    return {
        "call_date": call_date,
        "history_start": call_date - dt.timedelta(days=HISTORY_DAYS),
        **contact_rule_values(
            PermittedWindow.parse(rules.permitted_window),
            rules.max_calls_24h,
            rules.max_calls_7d,
            rules.max_abandonment_rate,
        ),
    }


def compliance_day_calls_sql() -> str:
    """The validated calls of the day `$call_date` with a callee, each with its callee's time
    zones from the parsed-number cache."""
    return (
        "SELECT calls.call_id, calls.call_date, "
        "calls.callee_e164, calls.campaign_id, calls.started_at_utc, calls.disposition, "
        "zones.time_zones AS callee_time_zones "
        "FROM calls_validated AS calls LEFT JOIN ("
        + number_time_zones_sql(
            "number_cache",
            "SELECT callee_e164 FROM calls_validated WHERE call_date = $call_date",
        )
        + ") "
        "AS zones ON zones.e164 = calls.callee_e164 "
        # An erased callee's calls have no callee left to report on.
        "WHERE calls.call_date = $call_date AND calls.callee_e164 IS NOT NULL"
    )


def compliance_selects() -> dict[str, str]:
    """What stages each compliance table, from `day_calls` and the registered `pseudonym_map`;
    the values they name are `compliance_values`."""
    return {
        "contact_pressure": f"""
            SELECT call_date, pseudonyms.pseudonym AS callee_pseudonym, scope, campaign_id, calls,
                   max_calls_24h, max_calls_7d, over_24h_cap, over_7d_cap
            FROM ({contact_pressure_sql("calls_validated")}) AS pressure
            JOIN pseudonym_map AS pseudonyms ON pseudonyms.e164 = pressure.callee_e164""",
        "quiet_hours": f"""
            SELECT call_date, pseudonyms.pseudonym AS callee_pseudonym, campaign_id, window_status,
                   count(*) AS calls
            FROM ({window_status_sql("day_calls", "pg_timezone_names()")}) AS calls
            JOIN pseudonym_map AS pseudonyms ON pseudonyms.e164 = calls.callee_e164
            GROUP BY ALL""",
        "abandonment_rates": abandonment_sql("day_calls"),
        "dnc_call_findings": f"""
            SELECT call_date, pseudonyms.pseudonym AS callee_pseudonym, campaign_id, calls,
                   first_call_at, listed_since
            FROM ({calls_after_dnc_listing_sql(
                "day_calls", f"({dnc_listed_since_sql('dnc_registry')})")}) AS found
            JOIN pseudonym_map AS pseudonyms ON pseudonyms.e164 = found.callee_e164""",
    }  # fmt: skip


def compliance_lineage(
    published_sql: str, staged: dict[str, str], day_calls_sql: str
) -> DerivedLineage:
    """Column lineage of a compliance table, from the SELECTs the run staged it with."""
    return sql_lineage(
        published_sql,
        [CALLS_VALIDATED, DNC_REGISTRY],
        staged={
            **{f"staged_{table}": select_sql for table, select_sql in staged.items()},
            "day_calls": day_calls_sql,
        },
        computed={"pseudonym_map": PSEUDONYM_MAP_INPUTS, "number_cache": PARSED_NUMBER_INPUTS},
    )


def _published_metadata(
    call_date: dt.date, history: list[str], rules: ContactRules
) -> dict[str, Callable[[duckdb.DuckDBPyConnection], dict[str, object]]]:
    """What each compliance table's materialisation adds to its table metadata, read from the
    published partition."""
    partition = {"call_date": call_date}

    def contact_pressure(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
        pressure = run(
            con, statement(__file__, "published_pressure_by_scope"), partition
        ).fetchall()
        by_scope = {scope: (day, week, rows) for scope, day, week, rows in pressure}
        return {
            "callees": by_scope.get("all", (0, 0, 0))[2],
            "callees_over_24h_cap": by_scope.get("all", (0, 0, 0))[0],
            "callees_over_7d_cap": by_scope.get("all", (0, 0, 0))[1],
            "campaign_callees_over_a_cap": sum(
                1
                for _ in run(
                    con,
                    f"SELECT 1 FROM {COMPLIANCE}.contact_pressure WHERE call_date = $call_date "
                    "AND scope = 'campaign' AND (over_24h_cap OR over_7d_cap)",
                    partition,
                ).fetchall()
            ),
            "caps": f"more than {rules.max_calls_24h} in 24 h or {rules.max_calls_7d} in 7 d",
            "earlier_days_with_calls": dg.MetadataValue.json(history),
        }

    def quiet_hours(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
        statuses = dict(
            run(
                con,
                f"SELECT window_status, sum(calls) FROM {COMPLIANCE}.quiet_hours "
                "WHERE call_date = $call_date GROUP BY 1",
                partition,
            ).fetchall()
        )
        return {
            "permitted_window": rules.permitted_window,
            "calls_by_window_status": counts_table(
                {key: int(value) for key, value in statuses.items()}, label="window status"
            ),
        }

    def abandonment_rates(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
        return {
            "limit": rules.max_abandonment_rate,
            "campaigns": dg.MetadataValue.md(_abandonment_markdown(con, call_date)),
        }

    return {
        "contact_pressure": contact_pressure,
        "quiet_hours": quiet_hours,
        "abandonment_rates": abandonment_rates,
        "dnc_call_findings": lambda con: {},
    }


def _abandonment_rows(con, call_date: dt.date) -> list[tuple]:
    return run(
        con, statement(__file__, "published_abandonment_rates"), {"call_date": call_date}
    ).fetchall()


def _abandonment_markdown(con, call_date: dt.date) -> str:
    """Campaigns over the limit first, at most MAX_MARKDOWN_ROWS; campaign ids are data, so
    each cell is escaped and bounded (domain.markdown)."""
    rows = sorted(_abandonment_rows(con, call_date), key=lambda row: (not row[4], row[0]))
    table = markdown_table(
        ["campaign", "live answered", "abandoned", "rate", "over limit"],
        ["---", "---:", "---:", "---:", "---"],
        [
            [
                campaign,
                live,
                abandoned,
                "" if rate is None else f"{rate:.2%}",
                "YES" if over else "no",
            ]
            for campaign, live, abandoned, rate, over in rows[:MAX_MARKDOWN_ROWS]
        ],
    )
    if len(rows) > MAX_MARKDOWN_ROWS:
        table += (
            f"\n\n{len(rows) - MAX_MARKDOWN_ROWS} more campaigns in compliance.abandonment_rates"
        )
    return table


def _findings(con, call_date: dt.date, rules: ContactRules) -> list[dg.AssetCheckResult]:
    over = [
        (campaign, abandoned, live)
        for campaign, live, abandoned, _, flagged in _abandonment_rows(con, call_date)
        if flagged
    ]
    dnc_calls, dnc_callees, dnc_campaigns = run(
        con, statement(__file__, "published_dnc_findings"), {"call_date": call_date}
    ).fetchone()
    return [
        sql_check(
            ABANDONMENT_RATES,
            "abandonment_within_limit",
            passed=not over,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "limit": rules.max_abandonment_rate,
                "campaigns_over_limit": dg.MetadataValue.json(
                    {
                        bounded_text(campaign): f"{abandoned}/{live}"
                        for campaign, abandoned, live in over[:MAX_MARKDOWN_ROWS]
                    }
                ),
            },
        ),
        sql_check(
            DNC_CALL_FINDINGS,
            "no_calls_after_dnc_listing",
            passed=dnc_calls == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "calls_after_listing": int(dnc_calls),
                "callees": int(dnc_callees),
                "campaigns": dg.MetadataValue.json(
                    [bounded_text(name) for name in (dnc_campaigns or [])[:MAX_MARKDOWN_ROWS]]
                ),
            },
        ),
    ]
