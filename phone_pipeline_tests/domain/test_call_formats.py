"""Unit tests for phone_pipeline.domain.call_formats: profiles as plain data, sources.yaml, the
daylight-saving rule, and files written as Asterisk, FreeSWITCH and Twilio write them.

Only fictional numbers (see phone_pipeline_tests/call_log_files.py).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from phone_pipeline.domain.call_formats import (
    AMBIGUOUS,
    BUILTIN_PROFILES,
    ISO8601,
    NONEXISTENT,
    RFC2822,
    ProfileError,
    build_profile,
    load_profiles,
    map_file,
    parse_time,
    row_call_id,
)
from phone_pipeline.domain.redaction import contains_phone_number
from phone_pipeline_tests.call_log_files import (
    ASTERISK_AUTUMN,
    ASTERISK_SPRING,
    FREESWITCH,
    TWILIO,
    TWILIO_WITHOUT_START,
)

BERLIN = ZoneInfo("Europe/Berlin")
LOCAL = ("%Y-%m-%d %H:%M:%S",)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def profiles(tmp_path: Path, text: str | None = None) -> dict:
    path = tmp_path / "sources.yaml"
    if text is not None:
        path.write_text(text)
    return load_profiles(path)


BERLIN_SOURCES = "profiles:\n  asterisk:\n    time_zone: Europe/Berlin\n  freeswitch:\n    time_zone: Europe/Berlin\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "landing" / "calls" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- times and the daylight-saving rule -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "resolution"),
    [
        # Berlin springs forward 02:00 -> 03:00 on 2026-03-29: 02:30 does not exist, and is
        # shifted forward by the gap (read with the offset before the change, +01:00).
        ("2026-03-29 01:59:59", utc(2026, 3, 29, 0, 59, 59), None),
        ("2026-03-29 02:30:00", utc(2026, 3, 29, 1, 30), NONEXISTENT),
        ("2026-03-29 03:00:00", utc(2026, 3, 29, 1, 0), None),
        # Berlin falls back 03:00 -> 02:00 on 2026-10-25: 02:30 occurs twice; the first
        # occurrence (CEST, +02:00) is taken.
        ("2026-10-25 01:59:59", utc(2026, 10, 24, 23, 59, 59), None),
        ("2026-10-25 02:30:00", utc(2026, 10, 25, 0, 30), AMBIGUOUS),
        ("2026-10-25 03:00:00", utc(2026, 10, 25, 2, 0), None),
        ("2026-07-01 12:00:00", utc(2026, 7, 1, 10, 0), None),
        ("not a time", None, None),
        ("", None, None),
        ("2026-02-30 10:00:00", None, None),
    ],
)
def test_local_times_follow_the_stated_dst_rule(
    text: str, expected: dt.datetime | None, resolution: str | None
) -> None:
    assert parse_time(text, LOCAL, BERLIN) == (expected, resolution)


def test_times_with_an_offset_keep_it_and_naive_times_need_a_zone() -> None:
    formats = (RFC2822, ISO8601)
    assert parse_time("Sun, 25 Oct 2026 09:00:00 +0000", formats, None) == (
        utc(2026, 10, 25, 9, 0),
        None,
    )
    assert parse_time("2026-10-25T11:00:00+02:00", formats, None) == (utc(2026, 10, 25, 9), None)
    assert parse_time("2026-10-25T09:00:00Z", formats, BERLIN) == (utc(2026, 10, 25, 9), None)
    # Naive: read in the zone, unreadable without one.
    assert parse_time("2026-10-25 11:00:00", formats, BERLIN) == (utc(2026, 10, 25, 10), None)
    assert parse_time("2026-10-25 11:00:00", formats, None) == (None, None)
    # An offset no civil zone uses is unreadable, as for our own contract.
    assert parse_time("2026-10-25T09:00:00+15:00", formats, None) == (None, None)


# --- the built-in profiles on files as the systems write them --------------------------------------


def test_asterisk_master_csv_is_mapped_with_its_zone_dispositions_and_extensions(
    tmp_path: Path,
) -> None:
    profile = profiles(tmp_path, BERLIN_SOURCES)["asterisk"]
    mapped = map_file(
        write(tmp_path, "asterisk/Master.csv", ASTERISK_SPRING), "asterisk/Master.csv", profile
    )
    rows = mapped.rows
    assert mapped.row_count == 6
    assert rows["call_id"] == [
        "1774745970.1", "1774747800.3", "1774771200.5", "1774774800.7", "1774778400.9",
        "1774782000.11",
    ]  # fmt: skip
    assert rows["caller_number"][0] == "+442079460101"
    assert rows["callee_number"][0] == "2125550102"
    assert rows["started_at"][0] == "2026-03-29 01:59:30"  # as written
    assert rows["duration_seconds"] == ["120", "0", "0", "0", "300", "60"]  # billsec
    assert rows["disposition"] == [
        "answered", "no_answer", "busy", "failed", "answered", "answered",
    ]  # fmt: skip
    assert rows["started_at_utc"][:2] == [utc(2026, 3, 29, 0, 59, 30), utc(2026, 3, 29, 1, 30)]
    assert (mapped.nonexistent_times, mapped.ambiguous_times) == (1, 0)
    assert rows["internal_extension"] == [None, None, None, None, "both", "caller"]
    assert rows["cell_id"] == [None] * 6


def test_asterisk_without_uniqueid_gets_stable_hashed_call_ids(tmp_path: Path) -> None:
    profile = profiles(tmp_path, BERLIN_SOURCES)["asterisk"]
    path = write(tmp_path, "asterisk/Master.csv", ASTERISK_AUTUMN)
    first = map_file(path, "asterisk/Master.csv", profile)
    again = map_file(path, "asterisk/Master.csv", profile)
    elsewhere = map_file(path, "asterisk/Master-2.csv", profile)
    ids = first.rows["call_id"]
    assert ids == again.rows["call_id"]  # stable: a re-run gives the same ids
    assert len(set(ids)) == 2 and all(call_id.startswith("row-") for call_id in ids)
    assert set(ids).isdisjoint(elsewhere.rows["call_id"])  # the file's name is part of it
    fields = next(csv.reader(io.StringIO(ASTERISK_AUTUMN)))
    assert ids[0] == row_call_id("asterisk/Master.csv", fields)
    assert first.rows["started_at_utc"] == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 2, 30)]
    assert (first.nonexistent_times, first.ambiguous_times) == (0, 1)


def test_freeswitch_default_template_is_mapped(tmp_path: Path) -> None:
    profile = profiles(tmp_path, BERLIN_SOURCES)["freeswitch"]
    mapped = map_file(
        write(tmp_path, "freeswitch/Master.csv", FREESWITCH), "freeswitch/Master.csv", profile
    )
    rows = mapped.rows
    assert rows["call_id"][0] == "2f3c1a6e-5b1d-4c8e-9f0a-1b2c3d4e5f60"
    assert rows["caller_number"] == ["+442079460121", "+442079460123", "1005", "+442079460126"]
    assert rows["duration_seconds"] == ["60", "0", "120", "0"]
    # An unmapped hangup cause stays as written: validation quarantines it as unknown_disposition.
    assert rows["disposition"] == ["answered", "no_answer", "answered", "INCOMPATIBLE_DESTINATION"]
    assert rows["internal_extension"] == [None, None, "caller", None]
    assert rows["started_at_utc"][0] == utc(2026, 10, 25, 0, 15)  # 02:15, first occurrence
    assert (mapped.nonexistent_times, mapped.ambiguous_times) == (0, 1)


def test_twilio_export_is_mapped_in_utc(tmp_path: Path) -> None:
    profile = profiles(tmp_path)["twilio"]
    mapped = map_file(write(tmp_path, "twilio/calls.csv", TWILIO), "twilio/calls.csv", profile)
    rows = mapped.rows
    assert rows["call_id"] == ["CA" + "1" * 32, "CA" + "3" * 32]
    assert rows["caller_number"] == ["+442079460132", "+442079460134"]
    assert rows["callee_number"] == ["+12125550131", "+12125550133"]
    assert rows["started_at_utc"] == [utc(2026, 10, 25, 9), utc(2026, 10, 25, 10)]
    # Twilio leaves Duration empty for calls not answered: 0, by the profile's when_empty.
    assert rows["duration_seconds"] == ["65", "0"]
    assert rows["disposition"] == ["answered", "no_answer"]
    assert rows["internal_extension"] == [None, None]  # no extension rule for Twilio


def test_gzipped_exports_are_read_alike(tmp_path: Path) -> None:
    profile = profiles(tmp_path)["twilio"]
    plain = map_file(write(tmp_path, "twilio/calls.csv", TWILIO), "twilio/calls.csv", profile)
    path = tmp_path / "landing" / "calls" / "twilio" / "calls.csv.gz"
    with gzip.open(path, "wt", newline="") as handle:
        handle.write(TWILIO)
    assert map_file(path, "twilio/calls.csv.gz", profile).rows == plain.rows


# --- profile errors name the file and the field ----------------------------------------------------


def test_a_missing_column_names_the_file_and_the_column(tmp_path: Path) -> None:
    profile = profiles(tmp_path)["twilio"]
    path = write(tmp_path, "twilio/export.csv", TWILIO_WITHOUT_START)
    with pytest.raises(ProfileError) as error:
        map_file(path, "twilio/export.csv", profile)
    assert str(error.value) == (
        "twilio/export.csv: profile twilio: column 'StartTime' (mapped to started_at) is not in "
        "the file's header row"
    )


def test_a_row_of_the_wrong_width_names_the_file_and_row(tmp_path: Path) -> None:
    profile = profiles(tmp_path, BERLIN_SOURCES)["asterisk"]
    text = ASTERISK_AUTUMN + '"","1001","1002","from-internal"\n'
    with pytest.raises(
        ProfileError,
        match=r"asterisk/Master.csv: row 3 has 4 fields; profile "
        r"asterisk expects 16 to 21",
    ):
        map_file(write(tmp_path, "asterisk/Master.csv", text), "asterisk/Master.csv", profile)


def test_local_times_without_a_zone_are_refused_with_what_to_set(tmp_path: Path) -> None:
    profile = profiles(tmp_path)["asterisk"]  # no sources.yaml: the PBX's zone is unknown
    with pytest.raises(
        ProfileError,
        match=r"asterisk/Master.csv: profile asterisk has no time "
        r"zone .* set profiles.asterisk.time_zone in sources.yaml",
    ):
        map_file(
            write(tmp_path, "asterisk/Master.csv", ASTERISK_AUTUMN), "asterisk/Master.csv", profile
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("profiles:\n  asterisk:\n    time_zone: Europe/Berln\n",
         "sources.yaml: profiles.asterisk.time_zone: 'Europe/Berln' is no IANA time zone name"),
        ("profiles:\n  asterisk:\n    timezone: Europe/Berlin\n",
         "sources.yaml: profiles.asterisk.timezone: unknown key"),
        ("profiles:\n  asterisk:\n    dispositions: {ANSWERED: picked_up}\n",
         "sources.yaml: profiles.asterisk.dispositions.ANSWERED: 'picked_up' is not one of"),
        ("profiles:\n  mine:\n    columns: {caller_number: a, callee_number: b}\n",
         "sources.yaml: profiles.mine.columns.started_at: missing"),
        ("profiles:\n  mine:\n    header: false\n    fields: [a, b]\n    columns: {caller_number: a,"
         " callee_number: b, started_at: c, duration_seconds: a, disposition: b}\n",
         "sources.yaml: profiles.mine.columns.started_at: 'c' is not one of the profile's fields"),
        ("profiles:\n  mine:\n    base: asterix\n",
         "sources.yaml: profiles.mine.base: 'asterix' is no built-in profile"),
        ("profiles:\n  asterisk:\n    internal_extension: '[0-9'\n",
         "sources.yaml: profiles.asterisk.internal_extension: not a regular expression"),
        ("profiles: [asterisk]\n", "sources.yaml: profiles: expected a mapping"),
        ("profiles:\n  asterisk: {time_zone: [\n", "sources.yaml: not valid YAML (line"),
    ],
)  # fmt: skip
def test_sources_yaml_errors_name_the_file_and_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ProfileError) as error:
        profiles(tmp_path, text)
    assert str(error.value).startswith(message), str(error.value)


def test_a_custom_profile_from_sources_yaml(tmp_path: Path) -> None:
    found = profiles(
        tmp_path,
        """
profiles:
  dialer:
    header: true
    columns:
      caller_number: Agent Line
      callee_number: Customer
      started_at: Began
      duration_seconds: Secs
      disposition: Result
      campaign_id: Campaign
    time_format: "%d.%m.%Y %H:%M"
    time_zone: Europe/Berlin
    dispositions: {OK: answered, "BESETZT": busy}
  pbx_eu:
    base: asterisk
    time_zone: Europe/Berlin
    internal_extension: "[0-9]{3}"
    dispositions: {CONGESTION: busy}
    columns: {duration_seconds: duration}
""",
    )
    assert {"asterisk", "freeswitch", "twilio", "dialer", "pbx_eu"} <= set(found)
    text = (
        "Agent Line,Customer,Began,Secs,Result,Campaign\n"
        "+442079460141,2125550142,29.03.2026 02:30,61,ok,spring\n"
        "+442079460143,2125550144,29.03.2026 09:15,0,besetzt,spring\n"
    )
    mapped = map_file(
        write(tmp_path, "dialer/today.csv", text), "dialer/today.csv", found["dialer"]
    )
    assert mapped.rows["disposition"] == ["answered", "busy"]  # matched case-insensitively
    assert mapped.rows["campaign_id"] == ["spring", "spring"]
    assert mapped.rows["started_at_utc"] == [utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 7, 15)]
    assert mapped.nonexistent_times == 1
    assert all(call_id.startswith("row-") for call_id in mapped.rows["call_id"])  # no id column
    # A profile based on a built-in keeps what it does not override.
    assert found["pbx_eu"].fields == found["asterisk"].fields
    assert found["pbx_eu"].internal_extension == "[0-9]{3}"
    # Mappings merge key by key over the built-in's.
    assert found["pbx_eu"].dispositions == {**found["asterisk"].dispositions, "CONGESTION": "busy"}
    assert found["pbx_eu"].columns == {**found["asterisk"].columns, "duration_seconds": "duration"}


def test_the_built_in_profiles_are_plain_data_and_describe_without_values() -> None:
    json.dumps(BUILTIN_PROFILES)  # plain data: no code per format
    for name, spec in BUILTIN_PROFILES.items():
        described = build_profile(name, {**spec, "time_zone": "UTC"}).describe()
        assert described["columns"]["started_at"]
        assert described["time_zone"] == "UTC"
        assert not contains_phone_number(json.dumps(described))
    assert build_profile("asterisk", {**BUILTIN_PROFILES["asterisk"]}).describe()["call_id"] == (
        "column uniqueid; where a file has no such column, row- and sha256 of the file's name and "
        "the row's fields"
    )
    custom = {**BUILTIN_PROFILES["twilio"], "dispositions": {"+12125550199": "answered"}}
    assert not contains_phone_number(json.dumps(build_profile("mine", custom).describe()))
