"""Contract additions of issue 5, through real Dagster runs: the optional `campaign_id` column,
the `abandoned` disposition, and the do-not-call registry (landing/dnc) with its quarantine."""

from __future__ import annotations

import duckdb
import pandas as pd

from phone_pipeline_tests.conftest import Pipeline, check_results, materialized
from phone_pipeline_tests.pipeline_support import count, read_text_csv, write_csv_atomically


def test_campaign_and_abandoned_flow_into_validated_calls(pipeline: Pipeline) -> None:
    summary = pipeline.generate()
    calls = read_text_csv(summary.call_files[0])
    assert (calls["disposition"] == "abandoned").any()
    result = pipeline.run()
    assert result.success and all(check_results(result).values())
    with pipeline.restricted() as con:
        by_campaign = dict(
            con.execute(
                "SELECT coalesce(campaign_id, '-'), count(*) FROM calls_validated GROUP BY 1"
            ).fetchall()
        )
        abandoned = count(
            con, "SELECT count(*) FROM calls_validated WHERE disposition = 'abandoned'"
        )
    written = calls["campaign_id"].replace("", "-")
    valid_ids = set(by_campaign) - {"-"}
    assert valid_ids == set(written) - {"-"}
    assert abandoned == count_abandoned_valid(calls, pipeline)


def count_abandoned_valid(calls: pd.DataFrame, pipeline: Pipeline) -> int:
    """Abandoned rows of the file that were not quarantined (by call id and source row)."""
    with pipeline.restricted() as con:
        quarantined_rows = {
            row[0] for row in con.execute("SELECT source_row FROM calls_quarantine").fetchall()
        }
    rows = calls.index[calls["disposition"] == "abandoned"] + 1
    return sum(1 for row in rows if row not in quarantined_rows)


def test_file_without_campaign_column_keeps_working(pipeline: Pipeline) -> None:
    summary = pipeline.generate()
    path = summary.call_files[0]
    calls = read_text_csv(path).drop(columns=["campaign_id"])
    write_csv_atomically(calls, path)
    result = pipeline.run()
    assert result.success and all(check_results(result).values())
    with pipeline.restricted() as con:
        assert count(con, "SELECT count(*) FROM calls_validated") > 0
        assert count(con, "SELECT count(*) FROM calls_validated WHERE campaign_id IS NOT NULL") == 0


def test_dnc_registry_admits_listings_and_quarantines_bad_rows(pipeline: Pipeline) -> None:
    pipeline.generate()
    dnc = pd.DataFrame(
        {
            "phone_number": ["+1 212 555 0111", "(212) 555-0111", "N/A", "+1 212 555 0112"],
            "listed_at": ["2026-10-01T00:00:00Z", "2026-09-01", "2026-10-01T00:00:00Z", "soon"],
        }
    )
    pipeline.settings.landing_dnc.mkdir(parents=True, exist_ok=True)
    write_csv_atomically(dnc, pipeline.settings.landing_dnc / "national.csv")
    result = pipeline.run()
    assert "restricted/dnc_registry" in materialized(result)
    checks = check_results(result)
    assert checks["dnc_registry_rows_reconcile"] and checks["dnc_files_readable"]
    with pipeline.restricted() as con:
        listings = con.execute(
            "SELECT e164, CAST(listed_at AS DATE) FROM dnc_registry ORDER BY 2"
        ).fetchall()
        reasons = sorted(
            row[0] for row in con.execute("SELECT reason FROM dnc_quarantine").fetchall()
        )
    # A date alone is no instant (the same rule as call times): quarantined, not guessed.
    assert listings == [("+12125550111", pd.Timestamp("2026-10-01").date())]
    assert reasons == ["bad_listed_at", "bad_listed_at", "invalid_phone_number"]


def test_warehouse_from_before_campaigns_gains_the_column(pipeline: Pipeline) -> None:
    """A restricted file written before `campaign_id` existed: the next run adds the column."""
    pipeline.generate()
    assert pipeline.run().success
    tables = ("raw_calls", "calls_validated", "calls_quarantine", "consented_calls")
    with duckdb.connect(str(pipeline.settings.restricted_db)) as con:
        for table in tables:
            con.execute(f"ALTER TABLE {table} DROP COLUMN campaign_id")
    result = pipeline.run()
    assert result.success and all(check_results(result).values())
    with pipeline.restricted() as con:
        for table in tables:
            columns = [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]
            assert columns[-1] == "campaign_id", table
        # The partition was rewritten from raw rows that lost their campaign: no value, no error.
        assert count(con, "SELECT count(*) FROM calls_validated") > 0
