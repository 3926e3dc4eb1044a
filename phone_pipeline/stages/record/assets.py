"""Record of processing: regenerated at the end of every run from the pipeline's own definitions
(zones, schemas, checks) and the latest result of every check, shown in the UI and written to
`<data home>/records/record_of_processing.md`."""

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from phone_pipeline import catalog
from phone_pipeline.domain.record import (
    Evidence,
    ProcessingRecord,
    Purpose,
    Safeguard,
    Zone,
    render_markdown,
)
from phone_pipeline.domain.retention import RetentionPolicy
from phone_pipeline.resources import PipelineConfig, PseudonymKeyResource
from phone_pipeline.settings import Settings, env_name, load_settings
from phone_pipeline.stages.retention.assets import (
    LAST_STAGES,
    PARTITION_RETENTION,
    RETENTION_HOLDS,
    retention_policy,
    sweep_not_due,
    today_utc,
)
from phone_pipeline.stages.shared.assets import DUCKDB_POOL, OWNERS, zones_connection

RECORD_OF_PROCESSING = dg.AssetKey(["governance", "record_of_processing"])

PURPOSES = (
    Purpose(
        "analytics",
        "Network coverage, service quality and contact statistics from call logs.",
        "Consent of the caller for `analytics`, as of each call's time; callees appear only "
        "when they consented too.",
    ),
    Purpose(
        "compliance",
        "Protecting called people: contact pressure, calls at intrusive hours, abandoned calls, "
        "calls to do-not-call numbers, computed for every valid call.",
        "Legal obligation (telemarketing and do-not-call rules); no consent needed.",
    ),
    Purpose(
        "marketing (suppression only)",
        "The do-not-call scrub list a dialer checks before a marketing call.",
        "Legal obligation: honouring withdrawn or missing `marketing` consent and DNC listings.",
    ),
    Purpose(
        "accountability",
        "Validating every received record and accounting for it (admitted, quarantined or "
        "excluded with a reason); evidence for this record.",
        "Legal obligation (GDPR Art. 5(2), accountability).",
    ),
)

# Who may read each zone's file; the files' permissions are how a deployment enforces it.
ZONE_AUDIENCES = {
    "restricted": "Pipeline operators only (raw and E.164 numbers).",
    "analytics": "Internal analysts. Pseudonymised rows are still personal data.",
    "compliance": "The compliance team (findings named by pseudonym).",
    "shareable": "Recipients outside the team, for datasets that passed the re-identification "
    "risk gate.",
}

# What each stage does for privacy, keyed by the `stage` tag its assets carry. The checks of
# those assets are the evidence. A stage missing here still appears, under its own name.
STAGE_SAFEGUARDS = {
    "erasure": ("Erasure and opt-out (Art. 17, Art. 7(3))", "Erasure requests remove the "
                "subject from every zone and stay applied at every run through a register of "
                "pseudonyms (never numbers); erasures and consent changes re-run the partitions "
                "they affect."),
    "ingest": ("Completeness", "Every landing row is loaded once, identified by file content "
               "hash and row; unreadable files are reported, not dropped."),
    "validate": ("Accuracy and quarantine", "Numbers normalised to E.164 with phonenumbers; "
                 "invalid rows quarantined with a reason, never silently dropped."),
    "consent": ("Lawfulness: consent as of call time", "Each call is joined to the caller's "
                "latest consent event at or before the call; withdrawn or missing consent "
                "excludes the call with a stated reason."),
    "pseudonymize": ("Pseudonymisation and minimisation", "Numbers replaced by keyed "
                     "HMAC-SHA256 pseudonyms (keys from the environment, versioned, one version "
                     "per partition, rotated with `phone-pipeline rotate-keys`); times "
                     "truncated to the hour, cells to regions, call ids dropped; gates run on "
                     "staged rows before anything is written."),
    "aggregate": ("Small-cell suppression", "Cells with fewer distinct subscribers than the "
                  "minimum keep their key but publish no figures."),
    "accounting": ("Accountability: row accounting", "Received = quarantined + excluded + "
                   "admitted at every stage, per partition."),
    "risk": ("Re-identification risk measured", "k-anonymity (each subscriber counted once) and "
             "unicity for p = 1..4 (time, place) points, per candidate dataset and partition."),
    "publish": ("Risk-gated sharing", "A dataset's partition reaches the shareable zone only "
                "when its measured risk is within the configured limits; a partition that no "
                "longer passes is withdrawn."),
    "contact": ("Responsible contact", "Calls per callee over rolling 24 h and 7 d caps, calls "
                "outside the permitted window in the callee's local time, abandonment per "
                "campaign, calls after a do-not-call listing; compliance zone, by pseudonym."),
    "dnc": ("Do-not-call registry", "Listings normalised like every number; unreadable rows "
            "quarantined with a reason."),
    "scrub": ("Do-not-call scrub list", "Every number that must not be called for marketing "
              "now, rebuilt on every run so that a withdrawal counts at the next run."),
    "fairness": ("Fairness of the pipeline", "Quarantine, consent-exclusion and suppression "
                 "rates per country and number type, compared with the rest."),
    "retention": ("Storage limitation: retention", "A daily sweep deletes partitions past each "
                  "zone's retention and logs the counts; a run of a day past a zone's retention "
                  "(a backfill) sweeps that day from the zone at its end; stages refuse to "
                  "rebuild a swept day."),
}  # fmt: skip


def _retention_by_file_zone(policy: RetentionPolicy) -> dict[str, str]:
    """What each zone file keeps, table by table, from the catalog's retention classes: the days
    of the zones the sweep deletes by partition, and why the others are kept."""
    described: dict[str, list[str]] = {}
    for table in catalog.TABLES:
        if table.retention in catalog.SWEPT and table.partition:
            days = policy.days_by_zone()[table.retention.value]
            kept = f"{days} days" if days else "kept (no limit set)"
        elif table.retention is catalog.Retention.REFERENCED:
            days = policy.restricted_days
            kept = "while a kept row refers to it" + (
                f" (swept with the {days}-day restricted retention)" if days else ""
            )
        else:
            kept = f"not swept, {table.kept_because}"
        described.setdefault(table.zone, []).append(f"{table.name}: {kept}")
    return {zone: "; ".join(items) for zone, items in described.items()}


def _zones(retention: dict[str, str]) -> list[Zone]:
    return [
        Zone(
            name=zone,
            file_name=f"warehouse/{zone}.duckdb",
            audience=ZONE_AUDIENCES.get(zone, "(not declared)"),
            shareable=zone == catalog.SHAREABLE,
            retention=retention.get(zone, "not swept by the retention job"),
            tables={table.name: table.column_names for table in catalog.zone_tables(zone)},
        )
        for zone in catalog.ZONES
    ]


# Checks that may have nothing to prove yet, each with how to tell (a reason, or None when it
# applies): the daily sweep's check before the first sweep, when nothing is past retention.
Applicability = Callable[[], str | None]


def _safeguards(
    context: dg.AssetExecutionContext, applicability: dict[dg.AssetCheckKey, Applicability]
) -> list[Safeguard]:
    # The whole graph of the Definitions, not the run's job: a run of the record alone (after a
    # failed run) must still list every check. A job's asset graph keeps the graph it was
    # selected from (`source_asset_graph`, what Dagster subsets jobs from); `context.repository_def`
    # is not set in `execute_in_process` runs (the CLI's, the tests'), so it cannot serve here.
    graph = context.job_def.asset_layer.asset_graph.source_asset_graph
    evidence_by_stage: dict[str, list[Evidence]] = {}
    partition_of_run: dict[str, str | None] = {}  # checks of a partitioned run: its partition
    for check_key in sorted(graph.asset_check_keys, key=lambda key: key.to_user_string()):
        spec = graph.get_check_spec(check_key)
        stage = graph.get(check_key.asset_key).tags.get("stage", "other")
        latest = context.instance.get_latest_asset_check_evaluation_record(check_key)
        evaluation = latest.evaluation if latest else None
        if not isinstance(evaluation, dg.AssetCheckEvaluation):
            evaluation = None  # planned but never evaluated (its step was skipped)
        not_applicable = None
        if evaluation is None and check_key in applicability:
            not_applicable = applicability[check_key]()
        if evaluation and latest.run_id not in partition_of_run:
            run = context.instance.get_run_by_id(latest.run_id)
            partition_of_run[latest.run_id] = run.tags.get("dagster/partition") if run else None
        evidence_by_stage.setdefault(stage, []).append(
            Evidence(
                check=check_key.name,
                asset=check_key.asset_key.to_user_string(),
                description=spec.description or "",
                blocking=spec.blocking,
                passed=evaluation.passed if evaluation else None,
                severity=evaluation.severity.value if evaluation else "ERROR",
                evaluated_at=(
                    dt.datetime.fromtimestamp(latest.create_timestamp, dt.UTC)
                    if evaluation
                    else None
                ),
                partition=(latest.partition or partition_of_run[latest.run_id])
                if evaluation
                else None,
                not_applicable=not_applicable,
            )
        )
    ordered = list(STAGE_SAFEGUARDS) + sorted(set(evidence_by_stage) - set(STAGE_SAFEGUARDS))
    return [
        Safeguard(
            *STAGE_SAFEGUARDS.get(stage, (stage, "(no description declared for this stage)")),
            evidence=evidence_by_stage.get(stage, []),
        )
        for stage in ordered
    ]


def _settings_in_force(settings: Settings, key_version: int) -> dict[str, str]:
    # Settings hold no secret (the key is read by its resource only); the key's version is shown.
    in_force = {
        field.name: str(getattr(settings, field.name)) for field in dataclasses.fields(settings)
    }
    return {**in_force, "pseudonym_key_version": str(key_version)}


@dg.asset(
    key=RECORD_OF_PROCESSING,
    # Last in every run, after the partition's own retention sweep, so its evidence includes
    # this run's checks.
    deps=[*LAST_STAGES, PARTITION_RETENTION],
    # It reads the zone files when it must tell whether the daily sweep has anything to prove.
    pool=DUCKDB_POOL,
    group_name="governance",
    owners=OWNERS,
    kinds={"markdown"},
    tags={"stage": "record"},
    description=(
        "GDPR Art. 30 style record of processing, regenerated on every run from the pipeline's "
        "own definitions: purposes, categories of data per zone, recipients, retention, "
        "safeguards and the latest result of every check that evidences them. Also written to "
        "`records/record_of_processing.md` in the data home."
    ),
)
def record_of_processing(
    context: dg.AssetExecutionContext,
    pipeline_config: PipelineConfig,
    pseudonym_key: PseudonymKeyResource,
    restricted_warehouse: DuckDBResource,
    analytics_warehouse: DuckDBResource,
    compliance_warehouse: DuckDBResource,
    shareable_warehouse: DuckDBResource,
) -> dg.MaterializeResult:
    settings = load_settings()

    def sweep_applicability() -> str | None:
        with zones_connection(
            restricted_warehouse,
            analytics_warehouse,
            compliance=compliance_warehouse,
            shareable=shareable_warehouse,
        ) as con:
            return sweep_not_due(con, retention_policy(pipeline_config), today_utc())

    record = ProcessingRecord(
        controller=settings.controller or f"(set {env_name('controller')})",
        generated_at=dt.datetime.now(dt.UTC),
        purposes=PURPOSES,
        zones=_zones(_retention_by_file_zone(retention_policy(pipeline_config))),
        safeguards=_safeguards(context, {RETENTION_HOLDS: sweep_applicability}),
        settings=_settings_in_force(settings, pseudonym_key.key_version),
    )
    markdown = render_markdown(record)
    path = Path(pipeline_config.data_home) / "records" / "record_of_processing.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".md.part")
    partial.write_text(markdown, encoding="utf-8")
    partial.replace(path)  # readers never see half a record
    return dg.MaterializeResult(
        metadata={
            "record": dg.MetadataValue.md(markdown),
            "path": dg.MetadataValue.path(str(path)),
            "safeguards": dg.MetadataValue.json(
                {safeguard.name: safeguard.status for safeguard in record.safeguards}
            ),
        }
    )
