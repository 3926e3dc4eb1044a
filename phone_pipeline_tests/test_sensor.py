"""The landing sensor (which files start which runs, and when) and the daily schedule."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from phone_pipeline.automation.partitions import daily_partitions
from phone_pipeline.automation.schedules import daily_reprocess_schedule
from phone_pipeline.automation.sensors import (
    cursor_key,
    landing_calls_sensor,
    plan_landing_runs,
    run_key,
    too_old_warning,
)
from phone_pipeline.landing import content_hash
from phone_pipeline.resources import PipelineConfig
from phone_pipeline_tests.conftest import DAY
from phone_pipeline_tests.pipeline_support import write_csv_atomically

FIRST, LAST = dt.date(2024, 1, 1), dt.date(2026, 12, 31)
SETTLE = 5.0


def call_rows(*starts: str, prefix: str = "c") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "call_id": [f"{prefix}-{i}" for i in range(len(starts))],
            "caller_number": ["+1 212 555 0101"] * len(starts),
            "callee_number": ["+1 212 555 0102"] * len(starts),
            "started_at": list(starts),
            "duration_seconds": ["30"] * len(starts),
            "disposition": ["answered"] * len(starts),
            "cell_id": [""] * len(starts),
        }
    )


def landed(folder: Path, name: str, frame: pd.DataFrame, age_seconds: float = 60.0) -> Path:
    """A complete file whose last change was `age_seconds` ago."""
    path = folder / name
    write_csv_atomically(frame, path)
    make_old(path, age_seconds)
    return path


def make_old(path: Path, age_seconds: float = 60.0) -> None:
    then = time.time() - age_seconds
    os.utime(path, (then, then))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "landing" / "calls"
    path.mkdir(parents=True)
    return path


def plan(folder: Path, cursor: dict, now: float | None = None):
    return plan_landing_runs(folder, cursor, SETTLE, FIRST, LAST, now=now)


# --- plan_landing_runs ----------------------------------------------------------------------------


def test_new_complete_file_requests_a_run_per_partition_it_touches(folder: Path) -> None:
    path = landed(
        folder,
        "calls_two_days.csv",
        call_rows("2026-11-01T10:00:00Z", "2026-11-01 23:59:59", "2026-11-02T00:30:00+01:00",
                  "2026-11-02T08:00:00Z", "yesterday"),
    )  # fmt: skip
    file_hash = content_hash(path)
    result = plan(folder, {})
    # 00:30+01:00 is still 1 November in UTC; the unreadable row starts no run of its own.
    assert result.runs == {"2026-11-01": [file_hash], "2026-11-02": [file_hash]}
    assert result.settling == [] and result.unreadable == {}
    assert result.cursor["hashes"] == [file_hash]
    assert result.cursor["files"][cursor_key("calls_two_days.csv")][2] == file_hash
    json.dumps(result.cursor)  # a sensor cursor is a string: the plan must serialise


def test_same_file_again_or_under_another_name_requests_nothing(folder: Path) -> None:
    path = landed(folder, "calls_a.csv", call_rows("2026-11-01T10:00:00Z"))
    first = plan(folder, {})
    assert list(first.runs) == ["2026-11-01"]

    again = plan(folder, first.cursor)
    assert again.runs == {} and again.settling == []

    copy = folder / "calls_a_resent.csv"
    shutil.copyfile(path, copy)
    make_old(copy)
    renamed = plan(folder, again.cursor)
    assert renamed.runs == {}
    assert renamed.cursor["hashes"] == first.cursor["hashes"]
    assert set(renamed.cursor["files"]) == {
        cursor_key("calls_a.csv"),
        cursor_key("calls_a_resent.csv"),
    }

    # A changed file under a known name is new content: it starts a run.
    landed(folder, "calls_a.csv", call_rows("2026-11-03T10:00:00Z", prefix="fix"))
    changed = plan(folder, renamed.cursor)
    assert list(changed.runs) == ["2026-11-03"]


def test_partial_files_are_never_read(folder: Path) -> None:
    frame = call_rows("2026-11-01T10:00:00Z")
    for suffix in (".part", ".tmp"):
        part = folder / f"calls_b.csv{suffix}"
        frame.to_csv(part, index=False)
        make_old(part)
    result = plan(folder, {})
    assert result.runs == {} and result.settling == [] and result.cursor["files"] == {}

    os.replace(folder / "calls_b.csv.part", folder / "calls_b.csv")
    renamed = plan(folder, result.cursor)
    assert list(renamed.runs) == ["2026-11-01"]


def test_file_modified_just_now_settles_then_runs_when_unchanged(folder: Path) -> None:
    path = folder / "calls_c.csv"
    call_rows("2026-11-01T10:00:00Z").to_csv(path, index=False)
    now = path.stat().st_mtime + 1

    first = plan(folder, {}, now=now)
    assert first.runs == {} and first.settling == ["calls_c.csv"]
    assert first.cursor["hashes"] == []

    # Still growing at the next tick: still settling.
    call_rows("2026-11-01T10:00:00Z", "2026-11-01T11:00:00Z").to_csv(path, index=False)
    grown_at = path.stat().st_mtime
    second = plan(folder, first.cursor, now=grown_at + 1)
    assert second.runs == {} and second.settling == ["calls_c.csv"]

    # Unchanged since the previous tick: complete, even though settle_seconds have not passed.
    third = plan(folder, second.cursor, now=grown_at + 2)
    assert list(third.runs) == ["2026-11-01"] and third.settling == []

    # And never again.
    assert plan(folder, third.cursor, now=grown_at + 60).runs == {}


def test_old_untouched_file_runs_at_the_first_tick(folder: Path) -> None:
    path = folder / "calls_d.csv"
    call_rows("2026-11-01T10:00:00Z").to_csv(path, index=False)
    later = path.stat().st_mtime + SETTLE + 1
    assert list(plan(folder, {}, now=later).runs) == ["2026-11-01"]


def test_unreadable_file_is_reported_redacted_and_starts_nothing(folder: Path) -> None:
    headerless = folder / "calls_no_header.csv"
    headerless.write_text(
        "c-1,+1 212 555 0101,(212) 555-0102,2026-11-01T10:00:00Z,60,answered,\n"
        "c-2,+1 212 555 0103,+1 212 555 0104,2026-11-01T10:05:00Z,60,answered,\n"
    )
    make_old(headerless)
    landed(folder, "calls_stale.csv", call_rows("2019-05-01T10:00:00Z"))  # before the partitions
    result = plan(folder, {})
    assert result.runs == {}
    assert set(result.unreadable) == {"calls_no_header.csv"}
    problem = result.unreadable["calls_no_header.csv"]
    assert "212" not in problem and "555" not in problem
    # Both are remembered: an unchanged unreadable file is not re-read at every tick.
    assert len(result.cursor["hashes"]) == 2
    assert result.too_old == {"calls_stale.csv": [dt.date(2019, 5, 1)]}


def test_days_before_the_first_partition_are_named_not_dropped_silently(folder: Path) -> None:
    landed(folder, "calls_late.csv",
           call_rows("2026-10-30T10:00:00Z", "2026-10-31T10:00:00Z", "2026-11-01T10:00:00Z"))  # fmt: skip
    first = dt.date(2026, 11, 1)
    result = plan_landing_runs(folder, {}, SETTLE, first, LAST)
    assert list(result.runs) == ["2026-11-01"]
    old_days = [dt.date(2026, 10, 30), dt.date(2026, 10, 31)]
    assert result.too_old == {"calls_late.csv": old_days}
    warning = too_old_warning("calls_late.csv", old_days, first, first, None)
    assert warning.startswith(
        "calls_late.csv: calls on 2 day(s) from 2026-10-30 to 2026-10-31 are not processed: the "
        "first partition is 2026-11-01 (PHONE_PIPELINE_START_DATE, from the environment or the "
        "data home's settings.toml): set an earlier date there"
    )


# --- the sensor itself ----------------------------------------------------------------------------


@pytest.fixture
def sensor_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PHONE_PIPELINE_SETTLE_SECONDS", str(SETTLE))
    home = tmp_path / "data"
    (home / "landing" / "calls").mkdir(parents=True)
    with dg.instance_for_test() as instance:
        yield home, instance


def tick(home: Path, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        cursor=cursor,
        # Retention off: the fixed test days would age out of it (test_retention.py tests it).
        resources={
            "pipeline_config": PipelineConfig(data_home=str(home), retention_restricted_days=0)
        },
        instance=instance,
    )
    result = landing_calls_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_sensor_requests_runs_with_partition_and_run_keys(sensor_home) -> None:
    home, instance = sensor_home
    calls = home / "landing" / "calls"
    day_one = landed(calls, "calls_2026-11-01.csv", call_rows("2026-11-01T10:00:00Z"))
    both = landed(
        calls,
        "calls_mixed.csv",
        call_rows("2026-11-01T12:00:00Z", "2026-11-02T09:00:00Z", prefix="m"),
    )

    first = tick(home, instance, None)
    requests = {request.partition_key: request for request in first.run_requests}
    assert set(requests) == {"2026-11-01", "2026-11-02"}
    assert requests["2026-11-01"].run_key == run_key(
        "2026-11-01", [content_hash(day_one), content_hash(both)]
    )
    assert requests["2026-11-02"].run_key == run_key("2026-11-02", [content_hash(both)])
    partition_keys = set(daily_partitions.get_partition_keys())
    for request in first.run_requests:
        assert request.partition_key in partition_keys
        assert request.tags["phone_pipeline/trigger"] == "landing_file"
    assert not first.skip_reason

    # The cursor is a JSON string that the next tick reads back: nothing new, a skip reason.
    cursor = json.loads(first.cursor)
    assert set(cursor["files"]) == {
        cursor_key("calls_2026-11-01.csv"),
        cursor_key("calls_mixed.csv"),
    }
    second = tick(home, instance, first.cursor)
    assert second.run_requests in (None, [])
    assert "no new call-log files" in second.skip_reason.skip_message
    assert json.loads(second.cursor) == cursor

    # A late file for day 2 starts a run for day 2 only, with a new run key.
    late = landed(calls, "calls_late.csv", call_rows("2026-11-02T18:00:00Z", prefix="late"))
    third = tick(home, instance, second.cursor)
    assert [(r.partition_key, r.run_key) for r in third.run_requests] == [
        ("2026-11-02", run_key("2026-11-02", [content_hash(late)]))
    ]
    assert requests["2026-11-02"].run_key != third.run_requests[0].run_key


def test_sensor_waits_for_a_file_still_being_written(sensor_home) -> None:
    home, instance = sensor_home
    path = home / "landing" / "calls" / "calls_now.csv"
    call_rows(f"{DAY.isoformat()}T10:00:00Z").to_csv(path, index=False)  # modified just now

    first = tick(home, instance, None)
    assert first.run_requests in (None, [])
    assert "1 file(s) still being written" in first.skip_reason.skip_message
    second = tick(home, instance, first.cursor)  # unchanged since the previous tick
    assert [request.partition_key for request in second.run_requests] == [DAY.isoformat()]


def test_sensor_skips_an_empty_folder(sensor_home) -> None:
    home, instance = sensor_home
    result = tick(home, instance, None)
    assert result.run_requests in (None, [])
    assert "no new call-log files" in result.skip_reason.skip_message
    assert json.loads(result.cursor) == {"files": {}, "hashes": []}


def test_sensor_cursor_holds_no_phone_numbers(sensor_home) -> None:
    """The cursor is stored in the Dagster instance and shown in the UI: file names that carry a
    line's number must not end up there verbatim."""
    home, instance = sensor_home
    landed(
        home / "landing" / "calls", "cdr_line_+12125550101.csv", call_rows("2026-11-01T10:00:00Z")
    )
    result = tick(home, instance, None)
    assert [request.partition_key for request in result.run_requests] == ["2026-11-01"]
    assert "2125550101" not in result.cursor
    # The next tick still recognises the file (whatever the cursor keys it by).
    assert tick(home, instance, result.cursor).run_requests in (None, [])


# --- the schedule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scheduled, expected",
    [
        (dt.datetime(2026, 11, 2, 2, 30, tzinfo=dt.UTC), "2026-11-01"),
        # 21:30 in New York on 1 November is 02:30 UTC on 2 November.
        (
            dt.datetime(2026, 11, 1, 21, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            "2026-11-01",
        ),
        (dt.datetime(2025, 1, 1, 2, 30, tzinfo=dt.UTC), "2024-12-31"),
    ],
)
def test_schedule_requests_the_previous_day(scheduled: dt.datetime, expected: str) -> None:
    context = dg.build_schedule_context(scheduled_execution_time=scheduled)
    request = daily_reprocess_schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == expected
    assert expected in daily_partitions.get_partition_keys()


def test_schedule_skips_days_before_the_first_partition() -> None:
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2024, 1, 1, 2, 30, tzinfo=dt.UTC)
    )
    assert isinstance(daily_reprocess_schedule(context), dg.SkipReason)


def test_schedule_runs_at_half_past_two_utc() -> None:
    assert daily_reprocess_schedule.cron_schedule == "30 2 * * *"
    assert daily_reprocess_schedule.execution_timezone == "UTC"
    assert daily_reprocess_schedule.job_name == "call_pipeline"


# --- files some run already ingested (the CLI, a backfill) start nothing ----------------------------

DAY_TWO = DAY + dt.timedelta(days=1)


def pipeline_tick(pipeline, cursor: str | None) -> dg.SensorResult:
    """The sensor over the pipeline's own data home and Dagster instance."""
    context = dg.build_sensor_context(
        cursor=cursor,
        resources={
            "pipeline_config": PipelineConfig(
                data_home=str(pipeline.settings.home), retention_restricted_days=0
            )
        },
        instance=pipeline.instance,
    )
    result = landing_calls_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_files_ingested_by_a_cli_run_start_no_run_but_a_new_file_does(
    pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After `phone-pipeline run` (the demo), the sensor's cursor has never seen the files: the
    UI's first tick must not re-run every day (under whatever key the shell has)."""
    monkeypatch.setenv("PHONE_PIPELINE_SETTLE_SECONDS", str(SETTLE))
    calls = pipeline.settings.landing_calls
    landed(calls, "day_one.csv", call_rows(f"{DAY}T10:00:00Z", prefix="a"))
    landed(calls, "day_two.csv", call_rows(f"{DAY_TWO}T10:00:00Z", prefix="b"))
    for day in (DAY, DAY_TWO):  # as `phone-pipeline run` does: the job, in process
        assert pipeline.run(day).success

    first = pipeline_tick(pipeline, None)
    assert first.run_requests in (None, [])
    assert "no new call-log files" in first.skip_reason.skip_message
    assert len(json.loads(first.cursor)["hashes"]) == 2  # remembered: not asked again

    new = landed(calls, "late.csv", call_rows(f"{DAY_TWO}T18:00:00Z", prefix="c"))
    second = pipeline_tick(pipeline, first.cursor)
    assert [(r.partition_key, r.run_key) for r in second.run_requests] == [
        (DAY_TWO.isoformat(), run_key(DAY_TWO.isoformat(), [content_hash(new)]))
    ]


def test_a_file_ingested_for_one_of_its_days_starts_runs_for_the_others_only(pipeline) -> None:
    """`phone-pipeline run --partition D` loads the whole file; its other days were never
    validated, so the sensor still runs those."""
    both = landed(
        pipeline.settings.landing_calls,
        "two_days.csv",
        call_rows(f"{DAY}T10:00:00Z", f"{DAY_TWO}T10:00:00Z"),
    )
    assert pipeline.run(DAY).success
    result = pipeline_tick(pipeline, None)
    assert [(r.partition_key, r.run_key) for r in result.run_requests] == [
        (DAY_TWO.isoformat(), run_key(DAY_TWO.isoformat(), [content_hash(both)]))
    ]


def test_a_busy_warehouse_defers_new_files_to_a_later_tick(pipeline) -> None:
    calls = pipeline.settings.landing_calls
    landed(calls, "day_one.csv", call_rows(f"{DAY}T10:00:00Z", prefix="a"))
    assert pipeline.run(DAY).success
    new = landed(calls, "day_two.csv", call_rows(f"{DAY_TWO}T10:00:00Z", prefix="b"))
    # Another process writes the restricted zone (a run's step): it cannot be read now.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "time.sleep(60)", str(pipeline.settings.restricted_db)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = pipeline_tick(pipeline, None)
        assert busy.run_requests in (None, [])
        assert "in use by a run" in busy.skip_reason.skip_message
        assert busy.cursor is None  # nothing decided: every file is looked at again
    finally:
        holder.kill()
        holder.wait()
    free = pipeline_tick(pipeline, busy.cursor)
    assert [(r.partition_key, r.run_key) for r in free.run_requests] == [
        (DAY_TWO.isoformat(), run_key(DAY_TWO.isoformat(), [content_hash(new)]))
    ]
