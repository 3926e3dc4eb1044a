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
        "After processing: no number of a processed request is left in any restricted table, and "
        "no registered pseudonym is left in analytics.calls_pseudonymized, "
        "shareable.calls_pseudonymized or the compliance tables (contact_pressure, quiet_hours, "
        "dnc_call_findings).",
    ),
]
