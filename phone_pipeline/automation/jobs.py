"""The jobs: every stage of a day partition (the registry refreshes included), the retention
sweep, and the record of processing alone (for when a run failed before reaching it)."""

from __future__ import annotations

import dagster as dg

from phone_pipeline.stages.retention.assets import RETENTION_SWEEP

call_pipeline_job = dg.define_asset_job(
    "call_pipeline",
    # The retention sweep is not a day partition's stage: it has its own job and schedule.
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(RETENTION_SWEEP),
    description=(
        "One day: erasure register, consent and do-not-call registries and cell reference "
        "refreshed first; then ingest -> validate -> consent -> pseudonymize -> aggregate -> row "
        "accounting -> re-identification risk -> shareable zone, with the compliance findings, "
        "scrub list and fairness report beside them; then the partition's own retention sweep "
        "(a day past a zone's retention, a backfill, keeps there nothing once its run is done) "
        "and the record of processing last. Every stage is gated by blocking checks: a failed "
        "gate stops the stages after it."
    ),
)

record_of_processing_job = dg.define_asset_job(
    "record_of_processing_job",
    selection=dg.AssetSelection.assets(["governance", "record_of_processing"]),
    description="Regenerates the record of processing alone (after a failed pipeline run).",
)

retention_sweep_job = dg.define_asset_job(
    "retention_sweep",
    selection=dg.AssetSelection.assets(RETENTION_SWEEP),
    description="Deletes the partitions past each zone's retention and logs what it deleted.",
)
