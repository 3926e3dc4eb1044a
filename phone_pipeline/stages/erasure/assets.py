"""Erasure: requests from landing/erasure, the register of erased subjects (pseudonyms, never
numbers), and each new request applied to the warehouse once. Runs first in every run of
`call_pipeline`, so that ingest and the consent registry apply an up-to-date register."""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from phone_pipeline import catalog
from phone_pipeline.catalog import People
from phone_pipeline.domain.erasure import (
    ERASURE_REQUIRED_COLUMNS,
    classify_erasure_requests_sql,
    register_entries,
    resolve_request_ids_sql,
)
from phone_pipeline.domain.markdown import markdown_table
from phone_pipeline.domain.numbers import normalize_numbers
from phone_pipeline.resources import PipelineConfig, PseudonymKeyResource
from phone_pipeline.sql import run, statement
from phone_pipeline.stages.erasure.checks import ERASURE_CHECKS, ERASURE_REGISTER
from phone_pipeline.stages.erasure.register import (
    erase_subjects,
    pseudonym_tables,
    registered_requests,
    rows_naming_sql,
)
from phone_pipeline.stages.shared.assets import (
    DUCKDB_POOL,
    counts_table,
    table_metadata,
    zone_attributes,
    zones_connection,
)
from phone_pipeline.stages.shared.checks import reconcile_check, sql_check
from phone_pipeline.stages.shared.registry import LandingRegistry, replace_registry, stage_registry
from phone_pipeline.timings import PARSE, recording
from phone_pipeline.warehouse import transaction

ERASURE_REQUESTS = LandingRegistry(
    ERASURE_REGISTER, "erasure", "Erasure", ERASURE_REQUIRED_COLUMNS, suffixes=(".csv",)
)

# Restricted tables that keep an erased number on purpose, left out of `erased_subjects_absent`
# (the catalog says why of each, `erasure_exempt`): the do-not-call registry, its quarantine and
# the scrub list (GDPR Art. 17(3)(b): erasing a number from a suppression list would make the
# person callable again; nothing of it reaches another zone), and erasure_quarantine (the
# unusable request rows themselves, kept with their text).
ERASURE_KEEPS = frozenset(
    table.name
    for table in catalog.zone_tables(catalog.RESTRICTED)
    if table.erasure_exempt and table.people & People.NUMBERS
)


def number_columns() -> dict[str, tuple[str, ...]]:
    """Every restricted table and column that can hold a subject's number and must not keep it
    once the subject is erased (from the catalog: a table added there is covered)."""
    return {
        table: columns
        for table, columns in catalog.number_columns(catalog.RESTRICTED).items()
        if table not in ERASURE_KEEPS
    }


def pseudonym_counts(pseudonyms: str) -> list[tuple[str, str, str]]:
    """(zone, table, SQL counting its rows that name one of `pseudonyms`, a one-column
    subquery), for every table of every zone that names people by pseudonym."""
    return [
        (zone, table, rows_naming_sql(f"{zone}.{table}", columns, pseudonyms))
        for zone, table, columns in pseudonym_tables()
    ]


@dg.asset(
    key=ERASURE_REGISTER,
    **zone_attributes("restricted", "erasure", kinds=("duckdb", "csv")),
    pool=DUCKDB_POOL,
    check_specs=ERASURE_CHECKS,
    description=(
        "Erasure requests (GDPR Art. 17) from landing/erasure (`phone_number`, `requested_at`, "
        "`request_id`). Keeps a register of keyed pseudonyms of erased numbers, one per request "
        "and key version (never the numbers), and applies each new request once: the subject's "
        "calls as caller are deleted from the restricted zone, analytics and the shareable "
        "zone, as callee the callee's number and pseudonym are removed and the compliance rows "
        "about the callee are deleted. The dates it touched are in the metadata "
        "(`affected_partitions`): the `privacy_rerun_sensor` re-runs them. Bad request rows go "
        "to `erasure_quarantine`. Restricted zone."
    ),
)
def erasure_register(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    analytics_warehouse: DuckDBResource,
    compliance_warehouse: DuckDBResource,
    shareable_warehouse: DuckDBResource,
    pipeline_config: PipelineConfig,
    pseudonym_key: PseudonymKeyResource,
):
    region = pipeline_config.default_region
    with zones_connection(
        restricted_warehouse,
        analytics_warehouse,
        compliance=compliance_warehouse,
        shareable=shareable_warehouse,
    ) as con:
        read = stage_registry(con, context.log, ERASURE_REQUESTS, pipeline_config.landing_erasure)
        # Request numbers are parsed here, not through the number cache: the cache must not
        # keep an erased number.
        raw_numbers = [
            row[0]
            for row in con.execute(
                "SELECT DISTINCT phone_number FROM erasure_staged WHERE phone_number IS NOT NULL"
            ).fetchall()
        ]
        con.register(
            "erasure_numbers", normalize_numbers(raw_numbers, region)[["raw_number", "e164"]]
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE erasure_parsed AS "
            + classify_erasure_requests_sql("erasure_staged", "erasure_numbers")
        )
        con.unregister("erasure_numbers")
        # One request id names one request: the one registered earlier, or its first usable row.
        con.execute(statement(__file__, "erasure_registered_table"))
        registered = registered_requests(
            con,
            "SELECT clean_request_id, e164 FROM erasure_parsed WHERE reason IS NULL",
            pseudonym_key.pseudonymizers,
        )
        if registered:
            con.executemany("INSERT INTO erasure_registered VALUES (?, ?, ?)", registered)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE erasure_classified AS "
            + resolve_request_ids_sql("erasure_parsed", "erasure_registered")
        )
        con.execute(statement(__file__, "erasure_usable"))
        # Requests are kept across refreshes (their completion is evidence): appended, never
        # replaced.
        refresh = replace_registry(
            con,
            ERASURE_REQUESTS,
            read,
            {},
            quarantined_sql=statement(__file__, "erasure_quarantined_rows"),
            appended=[statement(__file__, "erasure_requests_append")],
        )
        requests = dict(con.execute("SELECT request_id, e164 FROM erasure_usable").fetchall())
        # What the register held before this run: entries added now are checked in every zone.
        con.execute(
            "CREATE OR REPLACE TEMP TABLE register_before AS SELECT pseudonym FROM erasure_register"
        )
        versions = {}
        if requests:
            versions = pseudonym_key.pseudonymizers()
            entries = pd.DataFrame(
                [vars(entry) for entry in register_entries(requests, versions)],
                columns=["request_id", "key_version", "pseudonym"],
            )
            con.register("register_frame", entries)
            con.execute(
                "INSERT OR IGNORE INTO erasure_register BY NAME SELECT * FROM register_frame"
            )
            con.unregister("register_frame")

        pending = [
            (request_id, e164)
            for request_id, e164 in con.execute(statement(__file__, "erasure_pending")).fetchall()
        ]
        affected: set = set()
        removed_this_run: dict[str, int] = {}
        parse_seconds = 0.0
        for request_id, e164 in pending:
            pseudonyms = {
                row[0]
                for row in con.execute(
                    "SELECT pseudonym FROM erasure_register WHERE request_id = ?", [request_id]
                ).fetchall()
            }
            with recording() as timings:  # numbers loaded but not validated yet are parsed
                outcome = erase_subjects(con, [e164], region, pseudonyms)
            parse_seconds += timings.totals.get(PARSE, 0.0)
            affected |= outcome.partitions
            removals = [
                (request_id, zone, table, action, rows)
                for (zone, table, action), rows in sorted(outcome.rows.items())
            ]
            with transaction(con):
                if removals:
                    con.executemany(
                        "INSERT INTO erasure_removals VALUES (?, ?, ?, ?, ?, now())", removals
                    )
                run(
                    con,
                    statement(__file__, "erasure_request_completed"),
                    {"affected_partitions": sorted(outcome.partitions), "request_id": request_id},
                )
            for (zone, table, action), rows in outcome.rows.items():
                key = f"{zone}.{table} {action}"
                removed_this_run[key] = removed_this_run.get(key, 0) + rows
        if pending:
            con.execute("CHECKPOINT")  # deleted rows leave the write-ahead log

        # Evidence: nothing of this run's subjects is left, nothing registered is in analytics.
        con.execute("CREATE OR REPLACE TEMP TABLE processed_e164 (e164 VARCHAR)")
        if pending:
            con.executemany(
                "INSERT INTO processed_e164 VALUES (?)", [[e164] for _, e164 in pending]
            )
        # Only when a request was processed: each scan reads every day kept (0.7 s a table per
        # two days of 10M calls), and with no subject there is nothing to find.
        left_in_restricted = sum(
            con.execute(
                rows_naming_sql(table, columns, "(SELECT e164 FROM processed_e164)")
            ).fetchone()[0]
            for table, columns in (number_columns().items() if pending else ())
        )
        # The pseudonyms of this run (new entries: new requests or a new key version; and the
        # requests processed now), in every day kept of every zone that holds pseudonyms. Older
        # entries were checked so when they were new, and every partition written since has
        # been checked against the whole register before publishing (no_erased_subject_in_*
        # gates): scanning every day kept at each run grew with retention, minutes at 396 days.
        run(
            con,
            statement(__file__, "pseudonyms_of_this_run"),
            {"processed_request_ids": [request_id for request_id, _ in pending]},
        )
        checked = con.execute("SELECT count(*) FROM pseudonyms_of_this_run").fetchone()[0]
        left_by_table = {
            f"{zone}.{table}": con.execute(sql).fetchone()[0] if checked else 0
            for zone, table, sql in pseudonym_counts(
                "(SELECT pseudonym FROM pseudonyms_of_this_run)"
            )
        }
        (usable_rows, quarantined, rows_of_their_request, requests_registered,
         request_count, register_rows) = run(
            con, statement(__file__, "erasure_counts"), {"key_versions": sorted(versions)}
        ).fetchone()  # fmt: skip
        audit = con.execute(statement(__file__, "erasure_audit")).fetchall()
        yield dg.MaterializeResult(
            asset_key=ERASURE_REGISTER,
            metadata={
                **table_metadata(con, "erasure_register", None),
                "requests": len(audit),
                "requests_completed_this_run": len(pending),
                "parse_seconds": round(parse_seconds, 3),
                # Dates are not personal data: the sensor re-runs these partitions.
                # (this run's own partition is rebuilt by this run)
                "affected_partitions": dg.MetadataValue.json(
                    sorted(
                        day.isoformat()
                        for day in affected
                        if day.isoformat() != context.run.tags.get("dagster/partition")
                    )
                ),
                "rows_removed_this_run": counts_table(removed_this_run, label="zone.table action"),
                "quarantined_by_reason": counts_table(refresh.quarantined_by_reason),
                "audit": dg.MetadataValue.md(
                    markdown_table(
                        ["request", "received", "completed", "rows removed"],
                        ["---", "---", "---", "---:"],
                        [
                            [
                                rid,
                                f"{received:%Y-%m-%d %H:%M:%S}",
                                "" if done is None else f"{done:%Y-%m-%d %H:%M:%S}",
                                rows,
                            ]
                            for rid, received, done, rows in audit
                        ],  # fmt: skip
                    )
                ),
            },
        )
    yield reconcile_check(
        ERASURE_REGISTER,
        "erasure_requests_reconcile",
        {
            "rows read = usable + quarantined": (refresh.rows_read, usable_rows + quarantined),
            "usable rows = rows with their request's number and time": (
                usable_rows,
                rows_of_their_request,
            ),
            "requests of usable rows = registered requests": (request_count, requests_registered),
            "register entries = requests x key versions": (
                register_rows,
                request_count * len(versions) if request_count else 0,
            ),
        },
    )
    yield sql_check(
        ERASURE_REGISTER,
        "erased_subjects_absent",
        passed=left_in_restricted == 0 and not any(left_by_table.values()),
        metadata={
            "restricted_rows_left_of_processed_requests": left_in_restricted,
            "pseudonyms_of_this_run_checked": checked,
            "rows_with_a_pseudonym_of_this_run": dg.MetadataValue.json(left_by_table),
        },
    )
    yield refresh.files_readable
