"""Checks of the compliance zone: the contact-pressure findings and their gates.

The two findings (a campaign over the abandonment limit, a call to a number after its do-not-call
listing) are WARN checks, deliberately: they are facts about how people were dialled, not defects
in the data. Blocking on them would stop the very outputs that act on them (the scrub list a dialer
needs to stop the harm) and every unrelated analytics stage of the day, while re-running would not
change them. They show in the UI as failed checks with counts and campaign ids; the compliance
team acts on them. The privacy gate and row reconciliation of the zone itself do block.
"""

from __future__ import annotations

import dagster as dg

from phone_pipeline.settings import default, env_name
from phone_pipeline.stages.shared.checks import blocking, gates_failed_message, sql_check, warning

CONTACT_PRESSURE = dg.AssetKey(["compliance", "contact_pressure"])
QUIET_HOURS = dg.AssetKey(["compliance", "quiet_hours"])
ABANDONMENT_RATES = dg.AssetKey(["compliance", "abandonment_rates"])
DNC_CALL_FINDINGS = dg.AssetKey(["compliance", "dnc_call_findings"])

COMPLIANCE_CHECKS = [
    blocking(
        CONTACT_PRESSURE,
        "no_phone_numbers_in_compliance",
        "No value of the day's compliance tables is a number of the partition (raw or E.164) or "
        "reads as a phone number (also with keypad letters, invisible characters or other "
        "scripts' digits, e.g. in a campaign_id): people appear only as pseudonyms. Checked "
        "before publishing.",
    ),
    blocking(
        CONTACT_PRESSURE,
        "no_erased_subject_in_compliance",
        "No staged row of the day's compliance tables names a pseudonym of the erasure register "
        "(any key version). Checked before publishing.",
    ),
    blocking(
        QUIET_HOURS,
        "compliance_rows_reconcile",
        "Every validated call of the day is counted once in quiet_hours and once in the overall "
        "contact pressure.",
    ),
    warning(
        ABANDONMENT_RATES,
        "abandonment_within_limit",
        "Finding: no campaign's abandonment rate (abandoned / live-answered calls) of the day is "
        f"strictly above {env_name('max_abandonment_rate')} "
        f"(default {default('max_abandonment_rate'):.0%}).",
    ),
    warning(
        DNC_CALL_FINDINGS,
        "no_calls_after_dnc_listing",
        "Finding: no call of the day reached a number at or after its do-not-call listing.",
    ),
]

# The findings are read from the published rows: when a gate refuses to publish, they are
# reported as not evaluated (every check of the step yields a result, so the run fails on the
# gate itself, not on a missing check output).
FINDINGS = ((ABANDONMENT_RATES, "abandonment_within_limit"),
            (DNC_CALL_FINDINGS, "no_calls_after_dnc_listing"))  # fmt: skip


# How a refusal of the day's compliance rows reads, in the log and in the findings' results.
STAGED = "the day's staged compliance rows"
REFUSED = "nothing was published to the compliance zone, and the stages after it do not run"


def gate_failure_description(failed_gates: list[str]) -> str:
    return gates_failed_message(failed_gates, STAGED, REFUSED)


def findings_not_evaluated(failed_gates: list[str]) -> list[dg.AssetCheckResult]:
    """WARN results for the findings when the gates refused the day's rows: not a finding about
    dialling (no values shown: the refused rows may hold a number), only that it was not made."""
    return [
        sql_check(
            asset_key,
            name,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"evaluated": False, "failed_gates": dg.MetadataValue.json(failed_gates)},
            description=f"Not evaluated: {gate_failure_description(failed_gates)}",
        )
        for asset_key, name in FINDINGS
    ]
