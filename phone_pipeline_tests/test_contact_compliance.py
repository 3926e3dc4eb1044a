"""The compliance zone through real Dagster runs: contact pressure reaching back into earlier
partitions, quiet hours, abandonment and do-not-call findings as checks, and no phone number in
`compliance.duckdb` or the event log."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import pandas as pd
import pytest

from phone_pipeline.domain.redaction import contains_phone_number
from phone_pipeline_tests.conftest import DAY, Pipeline, check_results, materialized
from phone_pipeline_tests.pipeline_support import (
    count,
    input_phone_numbers,
    module_pipeline,
    numbers_found,
    pseudonymizer,
    write_csv_atomically,
)
from phone_pipeline_tests.test_privacy_leaks import (
    PSEUDONYM,
    analytics_texts,
    event_log_texts,
)

COMPLIANCE_ASSETS = {
    "compliance/contact_pressure",
    "compliance/quiet_hours",
    "compliance/abandonment_rates",
    "compliance/dnc_call_findings",
}
# Fictional numbers: a caller with analytics consent and callees in New York and Idaho (+1 208,
# two zones: America/Boise and America/Los_Angeles).
CALLER, NY_CALLEE, IDAHO_CALLEE = "+12125550150", "+12125550151", "+12085550152"


def compliance(pipeline: Pipeline) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(pipeline.settings.compliance_db), read_only=True)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):
    """Two generated days with a do-not-call registry, run in order."""
    with module_pipeline(tmp_path_factory.mktemp("compliance")) as pipeline:
        pipeline.generate(days=2, rows=4_000, dnc_share=0.05)
        results = [pipeline.run(DAY), pipeline.run(DAY + dt.timedelta(days=1))]
        yield pipeline, results


def test_generated_days_materialise_the_compliance_zone(generated) -> None:
    pipeline, results = generated
    for result in results:
        assert result.success
        assert materialized(result) >= COMPLIANCE_ASSETS
        checks = check_results(result)
        assert checks["no_phone_numbers_in_compliance"] and checks["compliance_rows_reconcile"]
        assert checks["abandonment_within_limit"]  # generated campaigns stay below 3%
        assert "no_calls_after_dnc_listing" in checks
    with pipeline.restricted() as restricted, compliance(pipeline) as con:
        for day in (DAY, DAY + dt.timedelta(days=1)):
            validated = count(
                restricted, "SELECT count(*) FROM calls_validated WHERE call_date = ?", [day]
            )
            assert validated > 0
            assert count(con, "SELECT sum(calls) FROM quiet_hours WHERE call_date = ?", [day]) == (
                validated
            )
        statuses = {
            row[0] for row in con.execute("SELECT window_status FROM quiet_hours").fetchall()
        }
        assert {"permitted", "outside_window"} <= statuses
        assert count(con, "SELECT count(*) FROM abandonment_rates WHERE abandoned_calls > 0") > 0
        # Some listed numbers were called after their listing: the finding must be visible.
        assert count(con, "SELECT count(*) FROM dnc_call_findings") > 0
    assert check_results(results[0])["no_calls_after_dnc_listing"] is False


def test_fairness_report_covers_every_row_and_shows_a_plot(generated) -> None:
    pipeline, results = generated
    assert all("analytics/fairness_rates" in materialized(result) for result in results)
    with pipeline.restricted() as restricted, pipeline.analytics() as analytics:
        for day in (DAY, DAY + dt.timedelta(days=1)):
            rows = dict(
                analytics.execute(
                    "SELECT measure, sum(rows) FROM fairness_rates WHERE call_date = ? GROUP BY 1",
                    [day],
                ).fetchall()
            )
            affected = dict(
                analytics.execute(
                    "SELECT measure, sum(affected) FROM fairness_rates WHERE call_date = ? "
                    "GROUP BY 1",
                    [day],
                ).fetchall()
            )
            expected = {
                "quarantine": ("raw_calls", "calls_quarantine"),
                "consent_exclusion": ("calls_validated", "consent_exclusions"),
            }
            for measure, (whole, part) in expected.items():
                sql = "SELECT count(*) FROM {} WHERE call_date = ?"
                assert rows[measure] == count(restricted, sql.format(whole), [day]), measure
                assert affected[measure] == count(restricted, sql.format(part), [day]), measure
            assert rows["suppression"] == count(
                analytics, "SELECT count(*) FROM calls_pseudonymized WHERE call_date = ?", [day]
            )
    event = pipeline.instance.get_latest_materialization_event(
        dg.AssetKey(["analytics", "fairness_rates"])
    )
    metadata = event.asset_materialization.metadata
    assert metadata["plot"].value.startswith("![fairness rates](data:image/png;base64,")
    assert metadata["rates"].value.startswith("| measure | country |")


def test_second_day_counts_reach_back_into_the_first(generated) -> None:
    pipeline, _ = generated
    second = DAY + dt.timedelta(days=1)
    with pipeline.restricted() as restricted:
        weekly = restricted.execute(
            "SELECT callee_e164, count(*) FROM calls_validated GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
        ).fetchone()
        on_second = count(
            restricted,
            "SELECT count(*) FROM calls_validated WHERE callee_e164 = ? AND call_date = ?",
            [weekly[0], second],
        )
    assert weekly[1] > on_second > 0
    pseudonym = pseudonymizer().pseudonyms([weekly[0]])[weekly[0]]
    with compliance(pipeline) as con:
        max_7d = count(
            con,
            "SELECT max_calls_7d FROM contact_pressure WHERE call_date = ? AND scope = 'all' "
            "AND callee_pseudonym = ?",
            [second, pseudonym],
        )
    assert max_7d == weekly[1]  # every call of both days, all within 7 days of the last


def test_no_input_number_in_the_compliance_file(generated) -> None:
    pipeline, _ = generated
    with pipeline.restricted() as con:
        numbers = input_phone_numbers(pipeline.settings.home, con)
        numbers |= {row[0] for row in con.execute("SELECT e164 FROM dnc_registry").fetchall()}
    texts = analytics_texts(pipeline, pipeline.settings.compliance_db)
    assert len(texts) > 100
    assert numbers_found(numbers, texts) == set()
    others = [text for text in texts if not PSEUDONYM.fullmatch(text)]
    assert [text for text in others if contains_phone_number(text)] == []
    blob = pipeline.settings.compliance_db.read_bytes()
    assert {number for number in numbers if number.encode() in blob} == set()
    assert numbers_found(numbers, event_log_texts(pipeline.instance)) == set()


def _calls(rows: list[tuple[str, str, str, str, str]]) -> pd.DataFrame:
    """rows: (call_id, callee, started_at, disposition, campaign_id), all from CALLER."""
    return pd.DataFrame(
        {
            "call_id": [row[0] for row in rows],
            "caller_number": [CALLER] * len(rows),
            "callee_number": [row[1] for row in rows],
            "started_at": [row[2] for row in rows],
            "duration_seconds": ["30"] * len(rows),
            "disposition": [row[3] for row in rows],
            "campaign_id": [row[4] for row in rows],
        }
    )


def test_crafted_findings_abandonment_dnc_and_quiet_hours(pipeline: Pipeline) -> None:
    landing = pipeline.settings.landing_calls
    # Day 1 (31 Oct): 3 calls late in the evening UTC; day 2 (1 Nov): the rest.
    write_csv_atomically(
        _calls([
            ("d1-1", NY_CALLEE, "2026-10-31T22:00:00Z", "answered", "spring"),
            ("d1-2", NY_CALLEE, "2026-10-31T23:00:00Z", "answered", "spring"),
            ("d1-3", NY_CALLEE, "2026-10-31T23:30:00Z", "answered", "spring"),
        ]),
        landing / "day1.csv",
    )  # fmt: skip
    day2 = [("d2-0", NY_CALLEE, "2026-11-01T00:30:00Z", "abandoned", "spring")]
    day2 += [(f"d2-{i}", IDAHO_CALLEE, "2026-11-01T18:00:00Z", "answered", "spring")
             for i in range(1, 33)]  # fmt: skip
    # 15:30 UTC: 08:30 in Boise, 07:30 in Los Angeles: outside the window in one of its zones.
    day2 += [("d2-early", IDAHO_CALLEE, "2026-11-01T15:30:00Z", "busy", "")]
    write_csv_atomically(_calls(day2), landing / "day2.csv")
    consent = pd.DataFrame(
        {"phone_number": [CALLER], "purpose": ["analytics"], "status": ["granted"],
         "recorded_at": ["2026-01-01T00:00:00Z"], "source": ["web-form"]}
    )  # fmt: skip
    write_csv_atomically(consent, pipeline.settings.landing_consent / "consent.csv")
    pipeline.settings.landing_dnc.mkdir(parents=True, exist_ok=True)
    write_csv_atomically(
        pd.DataFrame({"phone_number": ["(212) 555-0151"], "listed_at": ["2026-10-31T23:15:00Z"]}),
        pipeline.settings.landing_dnc / "dnc.csv",
    )
    first = pipeline.run(DAY - dt.timedelta(days=1))
    second = pipeline.run(DAY)
    assert first.success and second.success
    # Day 1: one call (23:30) after the 23:15 listing; day 2: the 00:30 call too.
    assert check_results(first)["no_calls_after_dnc_listing"] is False
    assert check_results(first)["abandonment_within_limit"] is True
    # Day 2: 1 abandoned of 33 live-answered calls = 3.03% > 3%.
    assert check_results(second)["abandonment_within_limit"] is False
    assert check_results(second)["no_calls_after_dnc_listing"] is False
    ny, idaho = (pseudonymizer().pseudonyms([n])[n] for n in (NY_CALLEE, IDAHO_CALLEE))
    with compliance(pipeline) as con:
        pressure = con.execute(
            "SELECT calls, max_calls_24h, over_24h_cap FROM contact_pressure "
            "WHERE call_date = ? AND callee_pseudonym = ? AND scope = 'all'",
            [DAY, ny],
        ).fetchone()
        # The 00:30 call sees the three calls of the evening before, across the partition line.
        assert pressure == (1, 4, True)
        rate = con.execute(
            "SELECT live_answered_calls, abandoned_calls, over_limit FROM abandonment_rates "
            "WHERE call_date = ? AND campaign_id = 'spring'",
            [DAY],
        ).fetchone()
        assert rate == (33, 1, True)
        quiet = dict(
            con.execute(
                "SELECT window_status, sum(calls) FROM quiet_hours WHERE call_date = ? "
                "AND callee_pseudonym = ? GROUP BY 1",
                [DAY, idaho],
            ).fetchall()
        )
        # 18:00 UTC is 11:00 in Boise and 10:00 in Los Angeles.
        assert quiet == {"permitted": 32, "outside_window": 1}
        findings = con.execute(
            "SELECT call_date, calls FROM dnc_call_findings WHERE callee_pseudonym = ? ORDER BY 1",
            [ny],
        ).fetchall()
        assert findings == [(DAY - dt.timedelta(days=1), 1), (DAY, 1)]
