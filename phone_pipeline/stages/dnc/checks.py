"""Gates of the do-not-call registry (`restricted/dnc_registry`)."""

from __future__ import annotations

import dagster as dg

from phone_pipeline.stages.shared.checks import blocking, warning

DNC_REGISTRY = dg.AssetKey(["restricted", "dnc_registry"])

DNC_REGISTRY_CHECKS = [
    blocking(
        DNC_REGISTRY,
        "dnc_registry_rows_reconcile",
        "Counted in rows: every row of every readable file in landing/dnc (malformed rows "
        "included) is either a usable listing or quarantined with a reason.",
    ),
    warning(
        DNC_REGISTRY,
        "dnc_files_readable",
        "Every file in landing/dnc could be read; rows with problems are quarantined.",
    ),
]
