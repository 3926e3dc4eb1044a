"""The one job: every stage of a day partition, the registry refreshes included."""

from __future__ import annotations

import dagster as dg

call_pipeline_job = dg.define_asset_job(
    "call_pipeline",
    selection=dg.AssetSelection.all(),
    description=(
        "Ingest -> validate -> consent -> pseudonymize -> aggregate -> row accounting -> "
        "re-identification risk -> shareable zone for one day, "
        "with the consent registry and cell reference refreshed first. Every stage is gated by "
        "blocking checks: a failed gate stops the stages after it."
    ),
)
