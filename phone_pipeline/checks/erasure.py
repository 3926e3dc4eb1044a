"""Gates of the erasure stage (`restricted/erasure_register`)."""

from __future__ import annotations

import dagster as dg

from phone_pipeline.checks.common import blocking

ERASURE_REGISTER = dg.AssetKey(["restricted", "erasure_register"])

ERASURE_CHECKS = [
    blocking(
        ERASURE_REGISTER,
        "erasure_requests_reconcile",
        "Every row read from landing/erasure is a usable request or quarantined with a reason, and "
        "every usable request has a register entry under every configured key version.",
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
