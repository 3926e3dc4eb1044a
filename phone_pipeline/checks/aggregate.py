"""Gates of the aggregate stage: no published cell describes fewer than the minimum of people."""

from __future__ import annotations

from typing import Any

import dagster as dg

from phone_pipeline.checks.common import blocking

CALL_VOLUME_HOURLY = dg.AssetKey(["analytics", "call_volume_hourly"])
CALL_VOLUME_BY_COUNTRY = dg.AssetKey(["analytics", "call_volume_by_country"])


def aggregate_checks(asset_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    name = asset_key.path[-1]
    return [
        blocking(
            asset_key,
            f"{name}_suite",
            "Great Expectations on the staged cells: published cells have at least the minimum "
            "of distinct subscribers, suppressed cells show no figures, rates within [0, 1].",
        ),
        blocking(
            asset_key,
            f"{name}_totals_reconcile",
            "Calls summed over all cells (before suppression) equal the partition's pseudonymised "
            "rows; no published cell is below the minimum size.",
        ),
    ]


def aggregate_expectations(min_cell_size: int) -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToNotBeNull(column="suppressed"),
        # Null (suppressed) figures are skipped: every published count is at least k people.
        gxe.ExpectColumnValuesToBeBetween(column="distinct_subscribers", min_value=min_cell_size),
        gxe.ExpectColumnValuesToBeBetween(column="answered_rate", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="calls", min_value=1),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="suppressed", column_B="figures_withheld"),
    ]
