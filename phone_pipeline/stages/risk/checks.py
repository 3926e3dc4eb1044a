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


def risk_gate_name(dataset: str) -> str:
    return f"{dataset}_risk_within_limits"


def risk_gate_specs() -> list[dg.AssetCheckSpec]:
    """One gate per candidate dataset, on its shareable asset.

    Failed results say which measure exceeded which limit. A dataset withheld because its
    measured risk exceeds the limits is a deliberate, expected outcome (WARN: the run stays
    green); a risk that was not measured, or measured on other rows than those to publish, is an
    error (ERROR, which blocks).
    """
    return [
        blocking(
            shareable_key(candidate.name),
            risk_gate_name(candidate.name),
            f"The partition of analytics.{candidate.name} is copied to the shareable zone only if "
            "its measured re-identification risk (analytics.reidentification_risk) is within the "
            "configured limits: share of subscribers below k, unicity for p = 1..4 points, "
            "suppressed cells describing fewer than k subscribers. Otherwise nothing is copied "
            "and an earlier copy of the partition is withdrawn.",
        )
        for candidate in CANDIDATES
    ]
