"""Asset keys of the risk measure and the shareable zone, and the publication gates' specs."""

from __future__ import annotations

import dagster as dg

from phone_pipeline.domain.publication import CANDIDATES
from phone_pipeline.stages.shared.checks import blocking

REIDENTIFICATION_RISK = dg.AssetKey(["analytics", "reidentification_risk"])
SHAREABLE_PUBLICATIONS = dg.AssetKey(["analytics", "shareable_publications"])


def analytics_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["analytics", dataset])


def shareable_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["shareable", dataset])


RISK_MEASURED = "risk_measured_for_every_dataset"
RISK_MEASURED_SPEC = blocking(
    REIDENTIFICATION_RISK,
    RISK_MEASURED,
    "Read back after the write: every dataset that may be shared has, for the partition, its "
    "subscriber count, its share below k at the configured k, unicity for p = 1..4 and (for an "
    "aggregate) the subscribers of its suppressed cells, measured on as many rows as the "
    "dataset's partition holds now.",
)


def risk_gate_name(dataset: str) -> str:
    # Passed means the gate did its job (whatever it decided), not that the risk was low: a
    # withheld dataset passes, with its decision and measures in the result's metadata.
    return f"{dataset}_shared_only_within_risk_limits"


def risk_gate_specs() -> list[dg.AssetCheckSpec]:
    """One gate per candidate dataset, on its shareable asset.

    The gate passes when it did its job: the shareable partition, read back after the
    decision, holds the partition's rows when its measured risk is within the limits and nothing
    when it is not (withheld, or withdrawn). Withholding is a deliberate outcome, so a withheld
    dataset passes, with the decision, each measure and its limit in the metadata. It fails
    (ERROR, which blocks) only when the gate could not or did not do its job: a risk that was not
    measured, or measured on other rows than those to publish, or a shareable partition that
    does not match the decision.
    """
    return [
        blocking(
            shareable_key(candidate.name),
            risk_gate_name(candidate.name),
            f"The partition of analytics.{candidate.name} is copied to the shareable zone only if "
            "its measured re-identification risk (analytics.reidentification_risk) is within the "
            "configured limits: share of subscribers below k, unicity for p = 1..4 points, "
            "suppressed cells describing fewer than k subscribers. Otherwise nothing is copied "
            "and an earlier copy of the partition is withdrawn. Passes when the shareable "
            "partition, read back, follows the decision (published, withheld or withdrawn: see "
            "the metadata); fails when the risk was not measured on these rows or something "
            "over the limits is shared.",
        )
        for candidate in CANDIDATES
    ]
