"""Consent, do-not-call and erasure files through the real `call_pipeline` job: read row by row
(a malformed row is quarantined with its reason and row number, the file's other rows are
processed), one erasure request per request id, impossible UTC offsets quarantined, and files that
cannot be read at all shown by WARN checks and in the CLI's exit summary, names redacted."""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from phone_pipeline.domain.pseudonyms import Pseudonymizer
from phone_pipeline.stages.erasure.register import registered_requests
from phone_pipeline.warehouse import RESTRICTED_TABLES, ensure_tables
from phone_pipeline_tests.conftest import TEST_KEY, Pipeline, check_results
from phone_pipeline_tests.pipeline_support import (
    count,
    module_pipeline,
    write_csv_atomically,
)
from phone_pipeline_tests.test_cli import CLI, phone_pipeline

DAY = dt.date(2026, 11, 1)
# Fictional NANP numbers (555-0100..0199).
A, B, C, D, E = (f"+1212555{n:04d}" for n in range(111, 116))
# A number in a file name: never printed, never in metadata.
NAMED = "2125550177"
REQUESTED = "2026-11-03T10:00:00Z"

CALLS = pd.DataFrame(
    [
        {"call_id": f"c{i}", "caller_number": caller, "callee_number": callee,
         "started_at": f"2026-11-01T{9 + i:02d}:00:00Z", "duration_seconds": "60",
         "disposition": "answered", "cell_id": ""}
        for i, (caller, callee) in enumerate(
            [(A, B), (B, C), (C, D), (D, A), (A, C), (B, D), (C, A), (D, B)]
        )
    ]
    # A start 25 hours off UTC: no time zone is, so the time is unreadable, not a day earlier.
    + [{"call_id": "c25", "caller_number": B, "callee_number": D,
        "started_at": "2026-11-02T20:00:00+25:00", "duration_seconds": "60",
        "disposition": "answered", "cell_id": ""}]
)  # fmt: skip

HEADER_CONSENT = "phone_number,purpose,status,recorded_at,source\n"
CONSENT = (
    HEADER_CONSENT
    + f"{A},analytics,granted,2026-10-01T00:00:00Z,web\n"  # row 1
    + f"{B},analytics,granted,2026-10-01T00:00:00Z,web\n"  # row 2
    + f"{C},analytics,granted\n"  # row 3: too few fields
    + f"{C},analytics,granted,2026-10-01T00:00:00+25:00,web\n"  # row 4: no zone is 25 h off
    + f"{D},analytics,granted,2026-10-01T00:00:00Z,web\n"  # row 5: read although 3 and 4 are bad
)
DNC = (
    "phone_number,listed_at\n"
    + f"{E},2026-01-01T00:00:00Z\n"  # row 1
    + f"{D},2026-01-01T00:00:00Z,extra\n"  # row 2: too many fields
    + f"{C},2026-01-01T00:00:00-25:00\n"  # row 3: impossible offset
    + f"{B},2026-12-01T00:00:00Z\n"  # row 4 (after the calls: no finding)
)
ERASURE_HEADER = "phone_number,requested_at,request_id\n"
ERASURE_A = (
    ERASURE_HEADER
    + f"{E},{REQUESTED},req-1\n"  # row 1
    + f"{D},{REQUESTED}\n"  # row 2: too few fields
    + f"{C},{REQUESTED},req-1\n"  # row 3: req-1 again, another number
    + f"{A},2026-11-03T10:00:00+25:00,req-4\n"  # row 4: impossible offset
    + f"+1 212-555-0111,{REQUESTED},req-3\n"  # row 5: A
)
# The same request again, in another spelling and file: the same request, counted once.
ERASURE_B = ERASURE_HEADER + f"(212) 555-0115,{REQUESTED},req-1\n"


def write_unreadable_files(landing: Path) -> dict[str, str]:
    """One file per landing folder that cannot be read at all; folder -> file name."""
    names = {
        "calls": f"calls_{NAMED}.csv.gz",  # not gzip
        "consent": f"consent_{NAMED}.csv",  # not UTF-8
        "dnc": f"dnc_{NAMED}.csv",  # no required column
        "erasure": f"erasure_{NAMED}.csv",  # binary (gzip bytes under a .csv name)
    }
    (landing / "calls" / names["calls"]).write_text("call_id,caller_number\n")
    (landing / "consent" / names["consent"]).write_bytes(
        (HEADER_CONSENT + f"{A},analytics,granted,2026-10-01T00:00:00Z,caf\xe9\n").encode("latin-1")
    )
    (landing / "dnc" / names["dnc"]).write_text(f"number,date\n{E},2026-01-01\n")
    (landing / "erasure" / names["erasure"]).write_bytes(gzip.compress(ERASURE_A.encode()))
    return names


def write_landing(landing: Path) -> None:
    for folder in ("calls", "consent", "dnc", "erasure"):
        (landing / folder).mkdir(parents=True, exist_ok=True)
    write_csv_atomically(CALLS, landing / "calls" / "calls_2026-11-01.csv")
    (landing / "consent" / "consent.csv").write_text(CONSENT)
    (landing / "dnc" / "dnc.csv").write_text(DNC)
    (landing / "erasure" / "erasure_a.csv").write_text(ERASURE_A)
    (landing / "erasure" / "erasure_b.csv").write_text(ERASURE_B)


@dataclass
class Scene:
    pipeline: Pipeline
    result: dg.ExecuteInProcessResult
    checks: dict[str, bool]
    quarantine: dict[str, set[tuple]]
    requests: list[str]
    register_rows: int
    consent_rows: list[int]
    dnc_rows: list[int]
    calls_quarantine: set[tuple]


def check_metadata(result: dg.ExecuteInProcessResult, name: str) -> dict:
    for event in result.all_events:
        if (
            event.event_type_value == "ASSET_CHECK_EVALUATION"
            and event.event_specific_data.check_name == name
        ):
            return {key: value.value for key, value in event.event_specific_data.metadata.items()}
    raise AssertionError(f"no evaluation of {name}")


def quarantines(con: duckdb.DuckDBPyConnection) -> dict[str, set[tuple]]:
    return {
        table: set(con.execute(f"SELECT source_file, source_row, reason FROM {table}").fetchall())
        for table in ("consent_quarantine", "dnc_quarantine", "erasure_quarantine")
    }


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory):
    with module_pipeline(tmp_path_factory.mktemp("registry_files")) as pipeline:
        landing = pipeline.settings.home / "landing"
        write_landing(landing)
        write_unreadable_files(landing)
        result = pipeline.run(DAY)
        with pipeline.restricted() as con:
            found = Scene(
                pipeline=pipeline,
                result=result,
                checks=check_results(result),
                quarantine=quarantines(con),
                requests=[
                    row[0]
                    for row in con.execute(
                        "SELECT request_id FROM erasure_requests ORDER BY 1"
                    ).fetchall()
                ],
                register_rows=count(con, "SELECT count(*) FROM erasure_register"),
                consent_rows=[
                    row[0]
                    for row in con.execute(
                        "SELECT source_row FROM consent_events WHERE source_file = 'consent.csv' "
                        "ORDER BY 1"
                    ).fetchall()
                ],
                calls_quarantine=set(
                    con.execute("SELECT call_id, reason FROM calls_quarantine").fetchall()
                ),
                dnc_rows=[
                    row[0]
                    for row in con.execute(
                        "SELECT source_row FROM dnc_registry ORDER BY 1"
                    ).fetchall()
                ],
            )
        yield found


def test_the_run_succeeds_and_every_blocking_check_passes(scene: Scene) -> None:
    failed = {name for name, passed in scene.checks.items() if not passed}
    assert scene.result.success
    assert failed == {
        "landing_files_readable",
        "consent_files_readable",
        "dnc_files_readable",
        "erasure_files_readable",
    }


def test_a_short_erasure_row_does_not_hide_the_files_other_requests(scene: Scene) -> None:
    assert scene.requests == ["req-1", "req-3"]
    assert scene.register_rows == 2  # one key version
    assert ("erasure_a.csv", 2, "too_few_fields") in scene.quarantine["erasure_quarantine"]


def test_a_second_number_under_one_request_id_is_quarantined(scene: Scene) -> None:
    assert scene.quarantine["erasure_quarantine"] == {
        ("erasure_a.csv", 2, "too_few_fields"),
        ("erasure_a.csv", 3, "duplicate_request_id"),
        ("erasure_a.csv", 4, "bad_requested_at"),
    }
    # Rows, not ids: 6 rows read = 3 usable (req-1 twice, req-3) + 3 quarantined.
    reconcile = check_metadata(scene.result, "erasure_requests_reconcile")
    assert reconcile["rows read = usable + quarantined"] == "6 = 6"
    assert reconcile["usable rows = rows with their request's number and time"] == "3 = 3"
    assert scene.checks["erasure_requests_reconcile"]


def test_consent_and_dnc_files_are_read_row_by_row(scene: Scene) -> None:
    assert scene.consent_rows == [2, 5]  # row 1 is A's, erased (req-3): left out
    assert scene.quarantine["consent_quarantine"] == {
        ("consent.csv", 3, "too_few_fields"),
        ("consent.csv", 4, "bad_recorded_at"),
    }
    assert scene.dnc_rows == [1, 4]
    assert scene.quarantine["dnc_quarantine"] == {
        ("dnc.csv", 2, "too_many_fields"),
        ("dnc.csv", 3, "bad_listed_at"),
    }
    assert scene.checks["consent_registry_rows_reconcile"]
    assert scene.checks["dnc_registry_rows_reconcile"]


def test_a_call_start_with_an_impossible_offset_is_quarantined(scene: Scene) -> None:
    assert scene.calls_quarantine == {("c25", "bad_timestamp")}


@pytest.mark.parametrize(
    ("check", "problem"),
    [
        ("landing_files_readable", "not readable"),
        ("consent_files_readable", "not UTF-8"),
        ("dnc_files_readable", "missing required column"),
        ("erasure_files_readable", "not UTF-8"),
    ],
)
def test_unreadable_files_show_in_a_warn_check_with_redacted_names(
    scene: Scene, check: str, problem: str
) -> None:
    metadata = check_metadata(scene.result, check)
    assert metadata["unreadable_file_count"] == 1
    [(name, message)] = metadata["unreadable_files"].items()
    assert NAMED not in name and NAMED not in message and "<redacted>" in name
    assert problem in message
    severity = next(
        event.event_specific_data.severity
        for event in scene.result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
        and event.event_specific_data.check_name == check
    )
    assert severity == dg.AssetCheckSeverity.WARN


def test_request_id_registered_earlier_cannot_be_given_another_number(scene: Scene) -> None:
    """The file naming req-1's number is gone; a new file gives req-1 another number: that row
    is quarantined, not taken for the registered request (nor silently dropped)."""
    pipeline = scene.pipeline
    erasure = pipeline.settings.home / "landing" / "erasure"
    moved = pipeline.settings.home / "moved"
    moved.mkdir(exist_ok=True)
    for name in ("erasure_a.csv", "erasure_b.csv"):
        shutil.move(erasure / name, moved / name)
    (erasure / "erasure_c.csv").write_text(
        ERASURE_HEADER + f"{B},{REQUESTED},req-1\n" + f"{A},{REQUESTED},req-3\n"
    )
    result = pipeline.run(DAY)
    checks = check_results(result)
    assert result.success and checks["erasure_requests_reconcile"]
    with pipeline.restricted() as con:
        assert quarantines(con)["erasure_quarantine"] == {
            ("erasure_c.csv", 1, "duplicate_request_id"),
        }
        detail = con.execute("SELECT detail FROM erasure_quarantine").fetchone()[0]
        assert "registered earlier" in detail
        assert count(con, "SELECT count(*) FROM erasure_requests") == 2


def test_cli_names_the_files_it_could_not_read(tmp_path: Path) -> None:
    if not CLI.exists():
        pytest.skip(f"console script not installed: {CLI}")
    home = tmp_path / "data"
    landing = home / "landing"
    write_landing(landing)
    names = write_unreadable_files(landing)
    call = phone_pipeline(["run", "--partition", DAY.isoformat()], home, key=TEST_KEY)
    assert call.returncode == 0, call.describe()
    summary = call.stdout.split("Files not read", 1)
    assert len(summary) == 2, call.describe()
    lines = [line for line in summary[1].splitlines()[1:] if line.startswith("  ")]
    assert sorted(line.split(":", 1)[0].strip() for line in lines) == sorted(
        f"{folder}_files_readable" if folder != "calls" else "landing_files_readable"
        for folder in names
    ), call.describe()
    assert NAMED not in call.output


def test_registered_requests_name_the_number_their_register_entries_hold() -> None:
    """The number an earlier run registered under an id is recognised under any version both
    registered and configured; with no such version it is not taken on trust."""
    v1, v2 = Pseudonymizer(bytes(range(32)), 1), Pseudonymizer(bytes(range(1, 33)), 2)
    con = duckdb.connect()
    ensure_tables(con, None, {name: RESTRICTED_TABLES[name]
                              for name in ("erasure_requests", "erasure_register")})  # fmt: skip
    at = dt.datetime(2026, 11, 3, 10, tzinfo=dt.UTC)
    for request_id in ("req-1", "req-2", "req-3"):
        con.execute(
            "INSERT INTO erasure_requests VALUES (?, ?, 'old.csv', ?, ?, [])",
            [request_id, at, at, at],
        )
    con.executemany(
        "INSERT INTO erasure_register VALUES (?, ?, ?)",
        [("req-1", 1, v1.pseudonym(A)), ("req-1", 2, v2.pseudonym(A)),
         ("req-2", 2, v2.pseudonym(B)), ("req-3", 3, "a pseudonym under a retired key")],
    )  # fmt: skip
    con.execute("CREATE TABLE usable (clean_request_id VARCHAR, e164 VARCHAR)")
    con.executemany(
        "INSERT INTO usable VALUES (?, ?)",
        [("req-1", C), ("req-1", A), ("req-2", B), ("req-3", D), ("req-9", E)],
    )
    found = registered_requests(con, "SELECT * FROM usable", lambda: {2: v2})
    assert sorted(found) == [("req-1", at, A), ("req-2", at, B), ("req-3", at, None)]
    # Nothing of this run was registered before: the key is not asked for.
    con.execute("DELETE FROM usable WHERE clean_request_id <> 'req-9'")
    assert registered_requests(con, "SELECT * FROM usable", lambda: 1 / 0) == []
