"""Call-log files in profile folders (landing/calls/<profile>/): loaded with their profile into a
real DuckDB file, seen by the sensor, and (one in-process run of ingest and validate) quarantined
as internal calls with the mapping shown in the ingest asset's metadata.

Only fictional numbers (see phone_pipeline_tests/call_log_files.py).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from phone_pipeline.automation.sensors import cursor_key, plan_landing_runs
from phone_pipeline.cli import _partitions_with_data
from phone_pipeline.domain.redaction import contains_phone_number
from phone_pipeline.landing import call_dates_in_file, ingest_new_files
from phone_pipeline.resources import build_resources
from phone_pipeline.settings import Settings
from phone_pipeline.stages.ingest.assets import raw_calls
from phone_pipeline.stages.validate.assets import validate_calls
from phone_pipeline.warehouse import prepare_restricted
from phone_pipeline_tests.call_log_files import (
    ASTERISK_AUTUMN,
    ASTERISK_SPRING,
    FREESWITCH,
    TWILIO,
    TWILIO_WITHOUT_START,
)
from phone_pipeline_tests.conftest import check_results
from phone_pipeline_tests.pipeline_support import module_pipeline, numbers_found

FIRST = dt.date(2026, 3, 1)
LAST = dt.date(2026, 11, 30)
SPRING = dt.date(2026, 3, 29)
AUTUMN = dt.date(2026, 10, 25)
BERLIN = "profiles:\n  asterisk:\n    time_zone: Europe/Berlin\n  freeswitch:\n    time_zone: Europe/Berlin\n"
CONTRACT = (
    "call_id,caller_number,callee_number,started_at,duration_seconds,disposition\n"
    "own-1,+442079460151,2125550152,2026-10-25T12:00:00Z,42,answered\n"
)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "landing" / "calls"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "restricted.duckdb"))
    prepare_restricted(connection)
    yield connection
    connection.close()


def test_profile_folders_load_beside_our_contract_once(
    folder: Path, con: duckdb.DuckDBPyConnection
) -> None:
    (folder.parent.parent / "sources.yaml").write_text(BERLIN)
    write(folder, "own.csv", CONTRACT)
    write(folder, "asterisk/Master.csv", ASTERISK_AUTUMN)
    write(folder, "freeswitch/Master.csv", FREESWITCH)
    write(folder, "twilio/calls-2026-10-25.csv", TWILIO)
    report = ingest_new_files(con, folder, FIRST, LAST)
    assert report.rejected == {}
    assert sorted(report.loaded) == [
        "asterisk/Master.csv", "freeswitch/Master.csv", "own.csv", "twilio/calls-2026-10-25.csv",
    ]  # fmt: skip
    assert report.rows_loaded == 1 + 2 + 4 + 2
    assert (report.nonexistent_times, report.ambiguous_times) == (0, 2)
    files = con.execute(
        "SELECT file_name, profile, rows, local_times_nonexistent, local_times_ambiguous "
        "FROM landing_files ORDER BY file_name"
    ).fetchall()
    assert files == [
        ("asterisk/Master.csv", "asterisk", 2, 0, 1),
        ("freeswitch/Master.csv", "freeswitch", 4, 0, 1),
        ("own.csv", None, 1, 0, 0),
        ("twilio/calls-2026-10-25.csv", "twilio", 2, 0, 0),
    ]
    rows = con.execute(
        "SELECT source_file, source_row, started_at, started_at_utc, timestamp_status, "
        "disposition, internal_extension FROM raw_calls ORDER BY source_file, source_row"
    ).fetchall()
    by_place = {(row[0], row[1]): row[2:] for row in rows}
    utc = dt.UTC
    # 02:30 on Berlin's fall-back day, first occurrence: 00:30 UTC; the text kept as written.
    assert by_place[("asterisk/Master.csv", 1)] == (
        "2026-10-25 02:30:00", dt.datetime(2026, 10, 25, 0, 30, tzinfo=utc), "ok", "answered", None,
    )  # fmt: skip
    assert by_place[("freeswitch/Master.csv", 3)][-1] == "caller"
    assert by_place[("twilio/calls-2026-10-25.csv", 2)][1:4] == (
        dt.datetime(2026, 10, 25, 10, tzinfo=utc), "ok", "no_answer",
    )  # fmt: skip
    assert by_place[("own.csv", 1)][-1] is None  # our contract: judged by no profile
    assert {
        row[0] for row in con.execute("SELECT DISTINCT call_date FROM raw_calls").fetchall()
    } == {AUTUMN}

    again = ingest_new_files(con, folder, FIRST, LAST)  # re-running loads nothing twice
    assert again.loaded == [] and again.rejected == {} and len(again.already_loaded) == 4
    assert con.execute("SELECT count(*) FROM raw_calls").fetchone()[0] == 9


def test_profile_problems_reject_their_files_with_the_file_and_field_named(
    folder: Path, con: duckdb.DuckDBPyConnection
) -> None:
    write(folder, "own.csv", CONTRACT)
    write(folder, "asterisk/Master.csv", ASTERISK_AUTUMN)  # no sources.yaml: no time zone
    write(folder, "twilio/export.csv", TWILIO_WITHOUT_START)
    write(folder, "asterix/Master.csv", ASTERISK_SPRING)
    report = ingest_new_files(con, folder, FIRST, LAST)
    assert report.loaded == ["own.csv"]  # our contract's files are not held up
    assert report.rejected["twilio/export.csv"] == (
        "twilio/export.csv: profile twilio: column 'StartTime' (mapped to started_at) is not in "
        "the file's header row"
    )
    assert report.rejected["asterisk/Master.csv"].startswith(
        "asterisk/Master.csv: profile asterisk has no time zone for its local times: set "
        "profiles.asterisk.time_zone in sources.yaml"
    )
    assert report.rejected["asterix/Master.csv"].startswith(
        "asterix/Master.csv: no call-log profile 'asterix' for its folder; known: asterisk, "
        "freeswitch, twilio"
    )
    # A broken sources.yaml names itself and the field; the rejected files are retried once fixed.
    (folder.parent.parent / "sources.yaml").write_text(
        "profiles:\n  asterisk:\n    time_zone: Europe/Berln\n"
    )
    broken = ingest_new_files(con, folder, FIRST, LAST)
    assert broken.rejected["asterisk/Master.csv"] == (
        "asterisk/Master.csv: not read: sources.yaml: profiles.asterisk.time_zone: 'Europe/Berln' "
        "is no IANA time zone name (such as Europe/Berlin or UTC)"
    )
    (folder.parent.parent / "sources.yaml").write_text(BERLIN)
    fixed = ingest_new_files(con, folder, FIRST, LAST)
    assert fixed.loaded == ["asterisk/Master.csv"]
    assert set(fixed.rejected) == {"twilio/export.csv", "asterix/Master.csv"}


def test_the_sensor_sees_profile_folders_and_their_days(folder: Path) -> None:
    (folder.parent.parent / "sources.yaml").write_text(BERLIN)
    asterisk = write(folder, "asterisk/Master.csv", ASTERISK_SPRING)
    write(folder, "twilio/export.csv", TWILIO_WITHOUT_START)
    old = 1_000_000_000  # modified long ago: complete
    for path in folder.rglob("*.csv"):
        os.utime(path, (old, old))
    plan = plan_landing_runs(folder, {}, 30, FIRST, LAST)
    assert list(plan.runs) == [SPRING.isoformat()]
    assert list(plan.unreadable) == ["twilio/export.csv"]
    assert cursor_key("asterisk/Master.csv") in plan.cursor["files"]
    assert call_dates_in_file(asterisk, FIRST, LAST, folder) == {SPRING}
    json.dumps(plan.cursor)


def test_phone_pipeline_run_finds_the_days_of_profile_folders(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    (settings.home / "sources.yaml").write_text(BERLIN)
    write(settings.landing_calls, "asterisk/Master.csv", ASTERISK_SPRING)
    write(settings.landing_calls, "freeswitch/Master.csv", FREESWITCH)
    write(settings.landing_calls, "twilio/export.csv", TWILIO_WITHOUT_START)
    assert _partitions_with_data(settings) == [SPRING.isoformat(), AUTUMN.isoformat()]
    assert "twilio/export.csv: profile twilio: column 'StartTime'" in capsys.readouterr().err


# --- one in-process run of ingest and validate -----------------------------------------------------


@pytest.fixture(scope="module")
def spring_run(tmp_path_factory: pytest.TempPathFactory):
    with module_pipeline(tmp_path_factory.mktemp("formats")) as pipeline:
        (pipeline.settings.home / "sources.yaml").write_text(BERLIN)
        write(pipeline.settings.landing_calls, "asterisk/Master.csv", ASTERISK_SPRING)
        write(pipeline.settings.landing_calls, "twilio/export.csv", TWILIO_WITHOUT_START)
        result = dg.materialize(
            [raw_calls, validate_calls],
            partition_key=SPRING.isoformat(),
            instance=pipeline.instance,
            resources=build_resources(pipeline.settings),
            raise_on_error=False,
        )
        yield pipeline, result


def test_internal_calls_are_counted_apart_and_the_gates_hold(spring_run) -> None:
    pipeline, result = spring_run
    assert result.success
    checks = check_results(result)
    assert checks["raw_rows_identified_once"] and checks["raw_calls_suite"]
    assert checks["validate_rows_reconcile"]
    # 2 internal calls of 6 rows: outside the share, which the other 4 (all valid) make 0.
    assert checks["quarantine_share_within_limit"]
    assert checks["landing_files_readable"] is False  # the Twilio export without StartTime
    with pipeline.restricted() as con:
        assert con.execute(
            "SELECT source_row, reason, detail FROM calls_quarantine ORDER BY source_row"
        ).fetchall() == [(5, "internal_call", "both"), (6, "internal_call", "caller")]
        assert con.execute("SELECT count(*) FROM calls_validated").fetchone()[0] == 4
        assert con.execute(
            "SELECT min(started_at_utc), count(*) FILTER (WHERE source_row = 2) "
            "FROM calls_validated"
        ).fetchone() == (dt.datetime(2026, 3, 29, 0, 59, 30, tzinfo=dt.UTC), 1)


def test_the_ingest_metadata_shows_the_mapping_without_numbers(spring_run) -> None:
    pipeline, result = spring_run
    metadata = {}
    texts = []
    for event in result.all_events:
        if event.event_type_value in ("ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION"):
            data = event.event_specific_data
            entries = (
                data.materialization.metadata if hasattr(data, "materialization") else data.metadata
            )
            texts.extend(str(value.value) for value in entries.values())
            if event.event_type_value == "ASSET_MATERIALIZATION" and (
                data.materialization.asset_key == raw_calls.key
            ):
                metadata = entries
    profiles = metadata["call_log_profiles"].value
    # Every profile folder holding files, read or not (the Twilio export lacks a column).
    assert list(profiles) == ["asterisk", "twilio"]
    assert profiles["twilio"]["time_zone"] == "UTC"
    assert profiles["asterisk"]["time_zone"] == "Europe/Berlin"
    assert profiles["asterisk"]["columns"]["started_at"] == "start"
    assert profiles["asterisk"]["columns"]["duration_seconds"] == "billsec"
    assert metadata["local_times_resolved_this_run"].value == {
        "nonexistent (DST gap): shifted forward": 1,
        "ambiguous (DST repeat): first occurrence": 0,
    }
    assert not contains_phone_number(json.dumps(profiles))
    # No number of the input, as written or in E.164, in any metadata of the run.
    with pipeline.restricted() as con:
        numbers = set(re.findall(r"\+?[0-9]{7,}", ASTERISK_SPRING)) | {
            row[0] for row in con.execute("SELECT caller_e164 FROM calls_validated").fetchall()
        }
    assert "+442079460101" in numbers and len(numbers) > 8
    assert numbers_found(numbers, texts) == set()
