"""Backfilling days older than the restricted retention, with the default-like retention
(restricted 90 days, pseudonymised 396, aggregates kept): a day ~200 days old runs end to end
through the job and through `phone-pipeline run`, keeps its analytics and aggregates, and its run
sweeps the day's restricted rows at its end, logged in retention_log, every row accounted for.
A day that every zone's retention has passed is refused with a message naming the file, the
days, the cutoff and the settings."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from phone_pipeline.definitions import defs
from phone_pipeline.domain.retention import RETENTION_TABLES, unreferenced_numbers_sql
from phone_pipeline.resources import build_resources
from phone_pipeline_synthetic import generate
from phone_pipeline_tests.conftest import TEST_KEY, check_results
from phone_pipeline_tests.pipeline_support import (
    accounting,
    count,
    module_pipeline,
    snapshot,
    step_failures,
)
from phone_pipeline_tests.test_cli import CLI, PARTITION_LINE, Call, cli_env

TODAY = dt.datetime.now(dt.UTC).date()
OLD_DAY = TODAY - dt.timedelta(days=200)  # past 90 days, within 396
RECENT_DAY = TODAY - dt.timedelta(days=3)
DEFAULT_LIKE = {
    "retention_restricted_days": 90,
    "retention_pseudonymized_days": 396,
    "retention_aggregates_days": 0,
}
RESTRICTED_TABLES = RETENTION_TABLES["restricted"]


def _restricted_rows_of(con: duckdb.DuckDBPyConnection, day: dt.date) -> dict[str, int]:
    return {
        table: count(con, f"SELECT count(*) FROM {table} WHERE call_date = ?", [day])
        for table in RESTRICTED_TABLES
    }


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory):
    with module_pipeline(tmp_path_factory.mktemp("backfill"), **DEFAULT_LIKE) as pipeline:
        summary = pipeline.generate(start_date=OLD_DAY)
        result = pipeline.run(OLD_DAY)
        yield pipeline, summary, result


def test_the_old_day_runs_end_to_end(backfilled) -> None:
    _, _, result = backfilled
    assert result.success, step_failures(result)
    checks = check_results(result)
    assert all(checks.values()), {name for name, passed in checks.items() if not passed}
    assert checks["partition_retention_holds"] and checks["raw_rows_identified_once"]


def test_analytics_and_aggregates_are_kept(backfilled) -> None:
    pipeline, summary, _ = backfilled
    with pipeline.analytics() as con:
        for table in ("calls_pseudonymized", "call_volume_hourly", "call_volume_by_country"):
            assert count(con, f"SELECT count(*) FROM {table} WHERE call_date = ?", [OLD_DAY]) > 0
        totals = accounting(con, OLD_DAY)
    # Every input row is accounted for: received at ingest = the generated rows.
    assert totals[("ingest", "received")] == summary.rows, totals
    with duckdb.connect(str(pipeline.settings.compliance_db), read_only=True) as con:
        assert count(con, "SELECT count(*) FROM quiet_hours WHERE call_date = ?", [OLD_DAY]) > 0


def test_no_restricted_row_of_the_day_is_left(backfilled) -> None:
    pipeline, summary, _ = backfilled
    with pipeline.restricted() as con:
        assert _restricted_rows_of(con, OLD_DAY) == dict.fromkeys(RESTRICTED_TABLES, 0)
        assert count(con, unreferenced_numbers_sql()) == 0
        # The numbers only the day's calls brought in are gone from the cache: what is left is
        # referred to by the consent registry.
        assert (
            count(
                con,
                "SELECT count(*) FROM number_cache WHERE e164 IS NOT NULL "
                "AND e164 NOT IN (SELECT e164 FROM consent_events)",
            )
            == 0
        )
        swept = con.execute(
            "SELECT table_name, sum(rows) FROM retention_swept_rows WHERE call_date = ? GROUP BY 1",
            [OLD_DAY],
        ).fetchall()
    assert dict(swept)["raw_calls"] + dict(swept).get("erasure_exclusions", 0) == summary.rows


def test_the_sweep_is_logged_in_retention_log(backfilled) -> None:
    pipeline, summary, result = backfilled
    with pipeline.analytics() as con:
        log = {
            row[0]: row[1:]
            for row in con.execute(
                "SELECT table_name, zone, retention_days, cutoff, rows_deleted, as_of "
                "FROM retention_log WHERE run_id = ?",
                [result.run_id],
            ).fetchall()
        }
    # Only the zone the day is past: the restricted tables and the number cache.
    assert set(log) == {*RESTRICTED_TABLES, "number_cache"}
    cutoff = TODAY - dt.timedelta(days=90)
    assert log["raw_calls"] == ("restricted", 90, cutoff, summary.rows, TODAY)
    assert log["calls_validated"][3] > 0 and log["known_numbers"][3] > 0
    assert log["number_cache"][3] > 0


def test_the_daily_sweep_agrees_and_a_rerun_is_refused(backfilled) -> None:
    pipeline, _, _ = backfilled
    with pipeline.analytics() as con:
        before = snapshot(con, call_date=OLD_DAY)
    sweep = defs.resolve_job_def("retention_sweep").execute_in_process(
        instance=pipeline.instance, resources=build_resources(pipeline.settings)
    )
    assert sweep.success and check_results(sweep) == {"retention_holds": True}
    with pipeline.analytics() as con:
        assert count(con, "SELECT sum(rows_deleted) FROM retention_log WHERE run_id = ?",
                     [sweep.run_id]) == 0  # fmt: skip
    # The same day again (by hand, or a sensor): refused, and what the zones keep is untouched.
    again = pipeline.run(OLD_DAY)
    assert not again.success
    failure = step_failures(again)["restricted__raw_calls"]
    assert "already swept" in failure and "PHONE_PIPELINE_RETENTION_RESTRICTED_DAYS=90" in failure
    with pipeline.analytics() as con:
        assert snapshot(con, call_date=OLD_DAY) == before
    # A later day's run still finds every row of every loaded file: kept, erased or swept.
    pipeline.generate(start_date=RECENT_DAY, seed=8)
    recent = pipeline.run(RECENT_DAY)
    assert recent.success, step_failures(recent)
    assert check_results(recent)["raw_rows_identified_once"]
    with pipeline.restricted() as con:
        assert count(con, "SELECT count(*) FROM raw_calls WHERE call_date = ?", [RECENT_DAY]) > 0


def test_a_day_past_the_pseudonymised_retention_keeps_only_its_aggregates(tmp_path: Path) -> None:
    day = TODAY - dt.timedelta(days=450)
    with module_pipeline(tmp_path, **DEFAULT_LIKE) as pipeline:
        pipeline.generate(start_date=day)
        result = pipeline.run(day)
        assert result.success, step_failures(result)
        with pipeline.analytics() as con:
            assert (
                count(con, "SELECT count(*) FROM call_volume_hourly WHERE call_date = ?", [day]) > 0
            )
            assert count(con, "SELECT count(*) FROM row_accounting WHERE call_date = ?", [day]) > 0
            for table in ("calls_pseudonymized",):
                assert count(con, f"SELECT count(*) FROM {table} WHERE call_date = ?", [day]) == 0
        for path in (pipeline.settings.compliance_db, pipeline.settings.shareable_db):
            with duckdb.connect(str(path), read_only=True) as con:
                for table in RETENTION_TABLES["pseudonymized"]:
                    zone, name = table.split(".")
                    if path.stem == zone:
                        assert count(con, f"SELECT count(*) FROM {name} WHERE call_date = ?",
                                     [day]) == 0, table  # fmt: skip
        with pipeline.restricted() as con:
            assert _restricted_rows_of(con, day) == dict.fromkeys(RESTRICTED_TABLES, 0)


def test_a_day_past_every_retention_is_refused_with_the_settings(tmp_path: Path) -> None:
    day = TODAY - dt.timedelta(days=200)
    short = {**DEFAULT_LIKE, "retention_pseudonymized_days": 150, "retention_aggregates_days": 180}
    with module_pipeline(tmp_path, **short) as pipeline:
        pipeline.generate(start_date=day)
        result = pipeline.run(day)
        assert not result.success
        failure = step_failures(result)["restricted__raw_calls"]
        assert "every zone would delete what it produced" in failure
        assert "PHONE_PIPELINE_RETENTION_AGGREGATES_DAYS=180" in failure
        assert str(TODAY - dt.timedelta(days=180)) in failure


# --- through `phone-pipeline run` -----------------------------------------------------------------


def _cli(args: list[str], home: Path, **env: str) -> Call:
    environment = {**cli_env(home, TEST_KEY), **env}
    for name in ("PHONE_PIPELINE_RETENTION_RESTRICTED_DAYS",
                 "PHONE_PIPELINE_RETENTION_PSEUDONYMIZED_DAYS"):  # fmt: skip
        environment.pop(name, None)  # the defaults: 90 and 396 days
    environment["PHONE_PIPELINE_START_DATE"] = "2024-01-01"
    environment.update(env)
    completed = subprocess.run([str(CLI), *args], env=environment, cwd=home.parent,
                               capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    return Call(args, completed.returncode, completed.stdout, completed.stderr)


def test_the_cli_backfills_an_old_day_and_runs_it_once(tmp_path: Path) -> None:
    home = tmp_path / "data"
    summary = generate(home, rows=1_500, days=1, seed=5, start_date=OLD_DAY)
    call = _cli(["run"], home)
    assert call.returncode == 0, call.describe()
    assert "No call-log file" not in call.output
    assert [(day, status) for day, _, status in PARTITION_LINE.findall(call.stdout)] == [
        (OLD_DAY.isoformat(), "ok")
    ], call.describe()
    with duckdb.connect(str(home / "warehouse" / "analytics.duckdb"), read_only=True) as con:
        assert count(con, "SELECT count(*) FROM call_volume_hourly WHERE call_date = ?",
                     [OLD_DAY]) > 0  # fmt: skip
        assert accounting(con, OLD_DAY)[("ingest", "received")] == summary.rows
        assert count(con, "SELECT count(*) FROM retention_log WHERE table_name = 'raw_calls' "
                          "AND rows_deleted = ?", [summary.rows]) == 1  # fmt: skip
    with duckdb.connect(str(home / "warehouse" / "restricted.duckdb"), read_only=True) as con:
        assert _restricted_rows_of(con, OLD_DAY) == dict.fromkeys(RESTRICTED_TABLES, 0)
    # The same backfill again: nothing to do, nothing refused.
    again = _cli(["run"], home)
    assert again.returncode == 0, again.describe()
    assert f"{OLD_DAY}: already processed" in again.stdout
    assert not PARTITION_LINE.findall(again.stdout), again.describe()


def test_the_cli_names_the_file_days_cutoff_and_setting_it_will_not_process(
    tmp_path: Path,
) -> None:
    home = tmp_path / "data"
    generate(home, rows=500, days=2, seed=5, start_date=OLD_DAY)
    call = _cli(["run"], home, PHONE_PIPELINE_RETENTION_PSEUDONYMIZED_DAYS="150",
                PHONE_PIPELINE_RETENTION_AGGREGATES_DAYS="180")  # fmt: skip
    assert call.returncode == 1, call.describe()
    oldest = TODAY - dt.timedelta(days=180)
    second = OLD_DAY + dt.timedelta(days=1)
    for day in (OLD_DAY, second):  # one file per day, each named
        assert f"calls_{day}.csv: calls on 1 day(s) from {day} to {day} are not processed" in (
            call.stderr
        )
    assert f"the oldest day any zone keeps on {TODAY} is {oldest}" in call.stderr
    assert "PHONE_PIPELINE_RETENTION_AGGREGATES_DAYS=180" in call.stderr
    assert "readable dates" not in call.output


# --- erasure around a backfill --------------------------------------------------------------------

A, B, C, D = "+12125550161", "+12125550162", "+12125550163", "+12125550164"  # fictional


def test_erasure_before_and_after_a_backfill(tmp_path: Path) -> None:
    """A request landed before the backfill: the subject's calls never reach the day's rows, and
    the erased rows are swept and counted like the others. A request after it: the rows the zones
    keep of the old day lose the subject at the next run, which reruns nothing of the old day."""
    from phone_pipeline_tests.pipeline_support import pseudonymizer, write_csv_atomically
    from phone_pipeline_tests.test_erasure import analytics_consent, call, request_erasure

    calls = pd.DataFrame(
        [
            call(f"o-{i}", caller, callee, f"{OLD_DAY}T1{i % 10}:00:00Z")
            for i, (caller, callee) in enumerate(
                [(A, B), (A, C), (B, C), (C, B), (B, D), (D, C), (C, D), (D, B)]
            )
        ]  # fmt: skip
    )
    recent = pd.DataFrame([call("r-1", C, D, f"{RECENT_DAY}T10:00:00Z")])
    with module_pipeline(tmp_path, **DEFAULT_LIKE) as pipeline:
        landing = pipeline.settings.landing_calls
        write_csv_atomically(calls, landing / "old.csv")
        consent = analytics_consent([A, B, C, D], f"{OLD_DAY - dt.timedelta(days=1)}T00:00:00Z")
        write_csv_atomically(consent, pipeline.settings.landing_consent / "consent.csv")
        request_erasure(pipeline, "first.csv", [(A, f"{OLD_DAY}T00:00:00Z", "req-a")])
        result = pipeline.run(OLD_DAY)
        assert result.success, step_failures(result)
        assert all(check_results(result).values())
        pseudonyms = pseudonymizer().pseudonyms([A, B])
        with pipeline.restricted() as con:
            swept = dict(con.execute(
                "SELECT table_name, sum(rows) FROM retention_swept_rows WHERE call_date = ? "
                "GROUP BY 1", [OLD_DAY]).fetchall())  # fmt: skip
            assert _restricted_rows_of(con, OLD_DAY) == dict.fromkeys(RESTRICTED_TABLES, 0)
        assert swept == {"raw_calls": 6, "erasure_exclusions": 2}
        with pipeline.analytics() as con:
            kept = con.execute(
                "SELECT caller_pseudonym, callee_pseudonym FROM calls_pseudonymized "
                "WHERE call_date = ?",
                [OLD_DAY],
            ).fetchall()
        assert len(kept) == 6 and pseudonyms[A] not in {p for row in kept for p in row}
        assert pseudonyms[B] in {p for row in kept for p in row}

        request_erasure(pipeline, "second.csv", [(B, f"{RECENT_DAY}T00:00:00Z", "req-b")])
        write_csv_atomically(recent, landing / "recent.csv")
        later = pipeline.run(RECENT_DAY)
        assert later.success, step_failures(later)
        checks = check_results(later)
        assert checks["erased_subjects_absent"] and checks["raw_rows_identified_once"]
        with pipeline.analytics() as con:
            left = con.execute(
                "SELECT caller_pseudonym, callee_pseudonym FROM calls_pseudonymized "
                "WHERE call_date = ?",
                [OLD_DAY],
            ).fetchall()
        assert left and pseudonyms[B] not in {p for row in left for p in row}
