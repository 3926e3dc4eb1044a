"""Gates of the validate stage (`restricted/calls_validated`)."""

from __future__ import annotations

from typing import Any

import dagster as dg

from phone_pipeline.domain.numbers import E164_REGEX
from phone_pipeline.domain.validation import DISPOSITIONS
from phone_pipeline.settings import env_name
from phone_pipeline.stages.shared.checks import blocking

CALLS_VALIDATED = dg.AssetKey(["restricted", "calls_validated"])
CALLS_QUARANTINE = dg.AssetKey(["restricted", "calls_quarantine"])

VALIDATED_CHECKS = [
    blocking(
        CALLS_VALIDATED,
        "calls_validated_suite",
        "Great Expectations: numbers in E.164 with a country, durations within bounds, known "
        "dispositions.",
    ),
    blocking(
        CALLS_VALIDATED,
        "quarantine_share_within_limit",
        f"The partition's share of quarantined rows is at most {env_name('max_quarantine_share')} "
        "(internal calls, between extensions of a phone system, are counted apart).",
    ),
    blocking(
        CALLS_VALIDATED,
        "validate_rows_reconcile",
        "Every raw row of the partition is either validated or quarantined, exactly once, "
        "each validated call_id occurs once, and a callee number is missing only where the "
        "callee was erased.",
    ),
]


def validated_expectations(max_call_seconds: int) -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToNotBeNull(column="caller_e164"),
        *[
            gxe.ExpectColumnValuesToMatchRegex(column=column, regex=E164_REGEX)
            for column in ("caller_e164", "callee_e164")
        ],
        # A callee number is missing only where the callee was erased: an SQL equation of
        # validate_rows_reconcile (the suite cannot relate two columns of the distinct frames).
        gxe.ExpectColumnValuesToNotBeNull(column="caller_country"),
        gxe.ExpectColumnValuesToNotBeNull(column="started_at_utc"),
        gxe.ExpectColumnValuesToBeBetween(
            column="duration_seconds", min_value=0, max_value=max_call_seconds
        ),
        gxe.ExpectColumnValuesToBeInSet(column="disposition", value_set=list(DISPOSITIONS)),
    ]
