"""Issue 13: the Markdown tables of Dagster metadata that show values from the data (campaign ids
in the abandonment table, the keys of count tables) keep their shape with hostile values."""

from __future__ import annotations

import datetime as dt

import duckdb

from phone_pipeline.domain.markdown import MAX_CELL_CHARS
from phone_pipeline.stages.compliance import assets as compliance_assets
from phone_pipeline.stages.shared.assets import counts_table
from phone_pipeline.warehouse import COMPLIANCE, COMPLIANCE_TABLES, ensure_tables
from phone_pipeline_tests.domain.test_markdown import HOSTILE, _cells


def test_counts_table_escapes_its_keys() -> None:
    table = counts_table({"a|b\nc": 2})
    assert _cells(table.value)[2] == ["a\\|b c", "2"]


def test_the_abandonment_table_keeps_its_shape_with_hostile_campaign_ids() -> None:
    with duckdb.connect() as con:
        con.execute(f"ATTACH ':memory:' AS {COMPLIANCE}")
        ensure_tables(con, COMPLIANCE, COMPLIANCE_TABLES)
        day = "2026-11-01"
        for campaign in HOSTILE.values():
            con.execute(
                f"INSERT INTO {COMPLIANCE}.abandonment_rates BY NAME SELECT ?::DATE AS call_date, "
                "? AS campaign_id, 10 AS live_answered_calls, 1 AS abandoned_calls, "
                "0.1 AS abandonment_rate, true AS over_limit",
                [day, campaign],
            )
        table = compliance_assets._abandonment_markdown(con, dt.date(2026, 11, 1))
    rows = _cells(table)
    assert len(rows) == 2 + len(HOSTILE)
    assert all(len(cells) == 5 for cells in rows)
    assert len(table) < len(HOSTILE) * (6 * MAX_CELL_CHARS + 100)
    assert "<script>" not in table and "\n```" not in table
