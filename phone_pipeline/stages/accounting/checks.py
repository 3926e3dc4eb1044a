"""The closing gate: every input row of the partition is accounted for, and the counts add up."""

from __future__ import annotations

import dagster as dg

from phone_pipeline.sql import statement
from phone_pipeline.stages.aggregate.checks import AGGREGATE_CELL_KEYS
from phone_pipeline.stages.shared.checks import blocking

ROW_ACCOUNTING = dg.AssetKey(["analytics", "row_accounting"])

ROW_ACCOUNTING_CHECKS = [
    blocking(
        ROW_ACCOUNTING,
        "row_counts_reconcile",
        "received = validated + quarantined + erased; validated = admitted + excluded; published = "
        "admitted; every published row sits in exactly one aggregate cell of each table.",
    )
]


def accounting_sql() -> str:
    """Long-format counts of the partition (`$call_date`) per stage, outcome and reason (counts
    only): the stages' outcomes, then each aggregate's cell membership."""
    return "\nUNION ALL\n".join(
        [
            statement(__file__, "stage_outcomes"),
            *(
                _cell_membership_sql(key.path[-1], list(keys))
                for key, keys in AGGREGATE_CELL_KEYS.items()
            ),
        ]
    )


def _cell_membership_sql(table: str, keys: list[str]) -> str:
    """Published rows by the state of the aggregate cell they fall in (published, suppressed, or
    none: a row in no cell means the aggregate lost it)."""
    join = " AND ".join(f"cells.{key} IS NOT DISTINCT FROM rows.{key}" for key in keys)
    cells_sql = f"SELECT * FROM analytics.{table} WHERE call_date = $call_date"
    # A differentially private partition publishes a fixed key set: a value outside it was
    # counted in its `other` cell (domain/privacy.py). Exact partitions keep every value as is.
    row_keys = ", ".join(
        key
        if key == "call_hour"
        else f"""CASE WHEN coalesce({key}, 'unknown') IN (SELECT {key} FROM ({cells_sql}))
                      OR NOT EXISTS (SELECT 1 FROM ({cells_sql}) WHERE dp_epsilon IS NOT NULL)
                 THEN coalesce({key}, 'unknown') ELSE 'other' END AS {key}"""
        for key in keys
    )
    return f"""
        SELECT 'aggregate:{table}',
               CASE WHEN cells.suppressed IS NULL THEN 'in_no_cell'
                    WHEN cells.suppressed THEN 'in_suppressed_cell' ELSE 'in_published_cell' END,
               NULL, count(*)
        FROM (SELECT {row_keys} FROM analytics.calls_pseudonymized WHERE call_date = $call_date) AS rows
        LEFT JOIN ({cells_sql}) AS cells ON {join}
        GROUP BY 2
    """
