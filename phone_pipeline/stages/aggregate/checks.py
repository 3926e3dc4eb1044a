"""Gates of the aggregate stage: no published cell describes fewer than the minimum of people."""

from __future__ import annotations

from typing import Any

import dagster as dg

from phone_pipeline import catalog
from phone_pipeline.settings import env_name
from phone_pipeline.stages.shared.checks import blocking

CALL_VOLUME_HOURLY = dg.AssetKey(["analytics", "call_volume_hourly"])
CALL_VOLUME_BY_COUNTRY = dg.AssetKey(["analytics", "call_volume_by_country"])

# The published aggregates and the keys of their cells, from the catalog: the aggregate assets,
# the accounting of every published row in one cell of each, and the outputs differential
# privacy can cover are derived from it.
AGGREGATE_CELL_KEYS: dict[dg.AssetKey, tuple[str, ...]] = {
    dg.AssetKey([table.zone, table.name]): table.cell_keys for table in catalog.AGGREGATES
}


def aggregate_checks(asset_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    name = asset_key.path[-1]
    return [
        blocking(
            asset_key,
            f"{name}_suite",
            "Great Expectations on the staged cells: published cells have at least the minimum "
            "of distinct subscribers (under differential privacy: noisy subscribers), suppressed "
            "cells show no figures, rates within [0, 1]; under DP also no median, answered <= "
            "calls, dp_epsilon set.",
        ),
        blocking(
            asset_key,
            f"{name}_totals_reconcile",
            "Calls summed over all cells (before suppression) equal the partition's pseudonymised "
            "rows; no published cell is below the minimum size. Under differential privacy "
            "(exact totals cannot hold under noise): every key of the fixed key set is published "
            "once, and no subscriber exceeds the contribution bounds after bounding.",
        ),
        blocking(
            asset_key,
            f"{name}_privacy_budget",
            "Under differential privacy: this publication's epsilon plus what the day (the "
            f"subscriber-period) already spent stays within {env_name('dp_budget_per_day')}; "
            "otherwise nothing is published. Passes trivially when the output is exact.",
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


def dp_aggregate_expectations(epsilon: float, min_cell_size: int) -> list[Any]:
    """Published noisy cells: non-negative counts, answered within calls, rates in [0, 1], no
    median, withheld cells (noisy subscribers below the minimum) without figures, every row
    carrying its epsilon."""
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToNotBeNull(column="suppressed"),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="suppressed", column_B="figures_withheld"),
        # Null (withheld) figures are skipped.
        gxe.ExpectColumnValuesToBeBetween(column="distinct_subscribers", min_value=min_cell_size),
        *(
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0)
            for column in ("calls", "answered_calls", "total_duration_seconds")
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="calls",
            column_B="answered_calls",
            or_equal=True,
            ignore_row_if="either_value_is_missing",
        ),
        gxe.ExpectColumnValuesToBeBetween(column="answered_rate", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeNull(column="median_duration_seconds"),
        gxe.ExpectColumnValuesToBeBetween(
            column="dp_epsilon", min_value=epsilon, max_value=epsilon
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="dp_epsilon"),
    ]
