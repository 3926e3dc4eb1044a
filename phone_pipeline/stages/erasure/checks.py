"""Gates of the erasure stage (`restricted/erasure_register`)."""

from __future__ import annotations

import dagster as dg

from phone_pipeline.stages.shared.checks import blocking, warning

ERASURE_REGISTER = dg.AssetKey(["restricted", "erasure_register"])

ERASURE_CHECKS = [
    blocking(
        ERASURE_REGISTER,
        "erasure_requests_reconcile",
        "Counted in rows, not request ids: every row of every readable file in landing/erasure "
        "is usable or quarantined with a reason (malformed rows included); every usable row has "
        "its request's number and time (a repeat of it, never another request under its id); "
        "every request of a usable row is registered, with a register entry under every "
        "configured key version.",
    ),
    warning(
        ERASURE_REGISTER,
        "erasure_files_readable",
        "Every file in landing/erasure could be read (UTF-8 CSV with a header naming the required "
        "columns); malformed rows of a readable file are quarantined, its other rows processed.",
    ),
    blocking(
        ERASURE_REGISTER,
        "erased_subjects_absent",
        "After processing: no number of a request processed in this run is left in any "
        "restricted table, and no pseudonym registered or processed in this run is left in any "
        "day of analytics.calls_pseudonymized, shareable.calls_pseudonymized or the compliance "
        "tables (contact_pressure, quiet_hours, dnc_call_findings). Partitions written later are "
        "checked against the whole register before publishing (no_erased_subject_in_analytics, "
        "no_erased_subject_in_compliance).",
    ),
]
