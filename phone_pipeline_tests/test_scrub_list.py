"""The do-not-call scrub list through real Dagster runs: rebuilt each run, so a withdrawal recorded
between two runs is honoured by the second."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from phone_pipeline.domain.scrub import SCRUB_REASONS, WITHDRAWN
from phone_pipeline.stages.scrub import assets as scrub
from phone_pipeline_tests.conftest import Pipeline, check_results, materialized
from phone_pipeline_tests.pipeline_support import write_csv_atomically


def test_withdrawal_is_honoured_at_the_next_run(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.generate()
    first = pipeline.run()
    assert "restricted/dnc_scrub_list" in materialized(first)
    assert check_results(first)["scrub_list_misses_no_number"] is True
    with pipeline.restricted() as con:
        reasons = {row[0] for row in con.execute("SELECT reason FROM dnc_scrub_list").fetchall()}
        assert reasons <= set(SCRUB_REASONS) and reasons
        # A number whose marketing consent stands now and that is on the list for no reason.
        granted = con.execute(
            """
            SELECT e164 FROM consent_events WHERE purpose = 'marketing'
            GROUP BY e164 HAVING arg_max(status, recorded_at) = 'granted'
               AND count(*) FILTER (WHERE status = 'withdrawn') = 0
            EXCEPT SELECT e164 FROM dnc_scrub_list ORDER BY 1 LIMIT 1
            """
        ).fetchone()[0]
    withdrawn_at = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
    write_csv_atomically(
        pd.DataFrame(
            {"phone_number": [granted], "purpose": ["marketing"], "status": ["withdrawn"],
             "recorded_at": [withdrawn_at.isoformat()], "source": ["app"]}
        ),
        pipeline.settings.landing_consent / "withdrawals.csv",
    )  # fmt: skip
    second = pipeline.run()
    assert second.success and check_results(second)["scrub_list_misses_no_number"]
    with pipeline.restricted() as con:
        rows = con.execute(
            "SELECT reason, since FROM dnc_scrub_list WHERE e164 = ?", [granted]
        ).fetchall()
    assert rows == [(WITHDRAWN, withdrawn_at)]

    # The table has no primary key (it made every rebuild slow): the gate holds the list to one
    # row per number and reason, and stops the run when the list's SQL repeats rows.
    listed = scrub.scrub_list_sql
    monkeypatch.setattr(
        scrub,
        "scrub_list_sql",
        lambda *args: (
            f"SELECT * FROM ({listed(*args)}) UNION ALL "
            f"SELECT * FROM (SELECT * FROM ({listed(*args)}) LIMIT 1)"
        ),
    )
    third = pipeline.run()
    assert not third.success and check_results(third)["scrub_list_misses_no_number"] is False
